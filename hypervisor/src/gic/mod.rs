//! Pure GIC definitions: register layouts and the ITS command codec.
//! No MMIO here; everything is tested on the host.
#![forbid(unsafe_code)]

pub mod its_cmd;
pub mod its_queue;
pub mod its_tables;
pub mod lpi;
pub mod regs;
pub mod v4;
