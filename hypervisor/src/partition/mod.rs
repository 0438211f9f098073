//! The hardware-independent decisions about a partition that the kernel
//! executes: its lifecycle (`lifecycle`: run states, and the order in
//! which stop, reset and load touch the hardware), and the lock order of
//! its state as types (`locks`).

pub mod lifecycle;
pub mod locks;
