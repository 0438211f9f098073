//! What a guest sees of the machine besides its GIC and ITS: why it
//! trapped (`trap`), which emulated device an access is for (`mmio`),
//! its PSCI firmware (`psci`), its ID registers
//! (`cpu_features`) and its UART (`vuart`).

pub mod cpu_features;
pub mod mmio;
pub mod psci;
pub mod trap;
pub mod vuart;
