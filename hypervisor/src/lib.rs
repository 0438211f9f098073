//! A static-partitioning type-1 hypervisor for aarch64.
//!
//! Layering (see `docs/architecture.md`):
//! - `arch` and `drivers` touch hardware (assembly, system registers, MMIO)
//!   and build only for the bare-metal target;
//! - everything else is plain Rust that builds and is unit-tested on the
//!   host, reaching hardware only through narrow traits.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

// First: the macro is in scope for every module declared after it.
#[macro_use]
mod register;

pub mod boot;
pub mod console;
pub mod gic;
pub mod gicv4;
pub mod guest;
pub mod guest_mem;
pub mod ids;
pub mod layout;
pub mod manifest;
pub mod mm;
pub mod partition;
pub mod pci;
pub mod smmu;
pub mod sysreg;
pub mod vgic;
pub mod vgicv2;
pub mod vits;

#[cfg(test)]
mod test_alloc;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod drivers;
#[cfg(target_os = "none")]
pub mod kernel;
#[cfg(all(target_os = "none", feature = "selftest"))]
pub mod selftest;
