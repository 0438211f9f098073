//! What a guest sees of the machine besides its GIC and ITS: why it
//! trapped (`trap`), which emulated device an access is for (`mmio`),
//! its PSCI firmware (`psci`), what the hypervisor does for each trap
//! (`dispatch`: the sync-trap table and the stateless PSCI answers), its ID registers
//! (`cpu_features`) and its UART (`vuart`).

pub mod cpu_features;
pub mod dispatch;
pub mod mmio;
pub mod psci;
pub mod trap;
pub mod vuart;
