//! What a guest sees of the machine besides its GIC and ITS: why it
//! trapped (`trap`), its PSCI firmware (`psci`), its ID registers
//! (`cpu_features`) and its UART (`vuart`).

pub mod cpu_features;
pub mod psci;
pub mod trap;
pub mod vuart;
