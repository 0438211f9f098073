//! The hardware-independent decisions about a partition that the kernel
//! executes: its lifecycle (`lifecycle`: run states, and the order in
//! which stop, reset and load touch the hardware), the memory the
//! hypervisor may spend on its behalf (`budget`), and the lock order of
//! its state as types (`locks`).

pub mod budget;
pub mod lifecycle;
pub mod locks;
