//! A static-partitioning type-1 hypervisor for aarch64.
//!
//! Layering (see `docs/architecture.md`):
//! - `arch` and `drivers` touch hardware (assembly, system registers, MMIO)
//!   and build only for the bare-metal target;
//! - everything else is plain Rust that builds and is unit-tested on the
//!   host, reaching hardware only through narrow traits.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

// First: the macro is in scope for every module declared after it.
#[macro_use]
mod register;

pub mod budget;
pub mod bundle;
pub mod console_mux;
pub mod cpu_features;
pub mod dma_faults;
pub mod gic;
pub mod guest_fdt;
pub mod guest_image;
pub mod guest_mem;
pub mod ids;
pub mod layout;
pub mod log_limit;
pub mod manifest;
pub mod mm;
pub mod passthrough;
pub mod pci;
pub mod platform;
pub mod psci;
pub mod smmu;
pub mod trap;
pub mod vgic;
pub mod vits;
pub mod vuart;

#[cfg(test)]
mod test_alloc;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod drivers;
#[cfg(target_os = "none")]
pub mod kernel;
