//! PCI: the physical host bridge and each partition's virtual one.
//!
//! - `bdf`: bus/device/function addresses, requester IDs, ECAM offsets;
//! - `regs`: configuration-space offsets and bits;
//! - `enumerate`: finding functions on the host bridge's buses;
//! - `bar`: BAR decoding and sizing; `assign`: placing BARs in the windows;
//! - `capability`: the capability list, MSI, MSI-X, PCI Express;
//! - `device`: [`discover`], the whole bring-up of one host bridge;
//! - `exclusive`: functions of different partitions share no DeviceID or
//!   StreamID;
//! - `vbridge`: a partition's virtual host bridge, the config-space filter
//!   with BAR, MSI and MSI-X emulation ([`VirtualHostBridge`]).
//!
//! Configuration space is reached only through [`ConfigAccess`]; the kernel
//! implements it over ECAM, tests over a fake that models QEMU's devices.
#![forbid(unsafe_code)]

mod assign;
mod bar;
mod bdf;
mod capability;
mod device;
mod enumerate;
mod exclusive;
pub mod regs;
mod vbridge;

#[cfg(test)]
mod tests;

use core::fmt;

pub use assign::{
    assign_bars, AssignedBar, BarAllocator, BusWindow, Placement, MEMORY_BAR_GRANULE,
};
pub use bar::{bar_count, probe_bars, program_bar, Bar, BarKind};
pub use bdf::{Bdf, BdfParseError};
pub use capability::{
    walk_capabilities, BarRegion, Capabilities, CapabilityEntry, MsiCapability, MsiMessage,
    MsixCapability, PcieCapability,
};
pub use device::{discover, PciDevice};
pub use enumerate::{enumerate, enumerate_bridge, ClassCode, HeaderKind, PciFunction};
pub use exclusive::{check_exclusive_ids, AssignedFunction};
pub use vbridge::{
    reprogram, virtual_bdf, BarMapping, Change, ConfigEvent, GuestAccessError, GuestMsiState,
    HeldReason, MsiTarget, MsixEntry, MsixPageRegion, MsixTrap, PhysicalVector, TableWrite,
    VbridgeError, VectorProgram, VirtBdf, VirtualHostBridge,
};

/// Dword access to the configuration space of the functions behind one host bridge.
///
/// `offset` is a multiple of 4 below 4096. A function that does not exist
/// reads as all ones and ignores writes, as ECAM does (PCIe base 6.0, 7.2.2).
pub trait ConfigAccess {
    /// Reads the dword at `offset` of `bdf`'s configuration space.
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    /// Writes the dword at `offset` of `bdf`'s configuration space.
    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32);
}

/// Why the hypervisor could not bring up a host bridge's devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// A BAR reads back an encoding the PCI specification reserves.
    BadBar {
        /// The function.
        bdf: Bdf,
        /// BAR number.
        bar: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// No window of the host bridge has room for a BAR.
    NoSpace {
        /// The function.
        bdf: Bdf,
        /// BAR number.
        bar: u8,
        /// What the BAR decodes.
        kind: BarKind,
        /// Its size in bytes.
        size: u64,
    },
    /// A capability is malformed, or cannot take the values asked of it.
    BadCapability {
        /// The function.
        bdf: Bdf,
        /// Capability ID.
        id: u8,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadBar { bdf, bar, reason } => write!(f, "PCI {bdf} BAR {bar}: {reason}"),
            Self::NoSpace {
                bdf,
                bar,
                kind,
                size,
            } => write!(
                f,
                "PCI {bdf} BAR {bar} ({kind:?}, {size:#x} bytes): host bridge windows exhausted"
            ),
            Self::BadCapability { bdf, id, reason } => {
                write!(f, "PCI {bdf} capability {id:#04x}: {reason}")
            }
        }
    }
}
