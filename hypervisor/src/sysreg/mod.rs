//! System register *values* as newtypes with the Arm ARM's field names
//! (DDI 0487, chapter D23 "AArch64 System Register Descriptions"; the GIC
//! CPU interface registers in IHI 0069, chapter 12), and the pure decisions
//! that compute them from the CPU's features and the partition's
//! configuration. Declared with the crate's `register!` macro, like the GIC
//! (`gic::regs`) and SMMU (`smmu::regs`) MMIO register values.
//!
//! Reading and writing the registers is `arch::sysreg`'s business: one
//! module per register there, taking and returning these types; a write
//! that can change EL2's own translation, exception handling or per-CPU
//! state is `unsafe`. This module only names bits, so it builds and is
//! tested on the host; where `aarch64-cpu` describes a field too, a host
//! test checks our encoding against its definition.
#![forbid(unsafe_code)]

pub mod el1;
pub mod el2;
pub mod gic;
pub mod guest;
pub mod id;

pub use el1::*;
pub use el2::*;
pub use gic::*;
pub use id::*;
