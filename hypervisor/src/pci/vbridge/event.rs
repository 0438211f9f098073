//! What the virtual host bridge reports, and its errors.

use core::fmt;

use super::{GuestMsiState, MsixEntry};
use crate::pci::Bdf;

/// A BDF on a partition's virtual bus (what the guest names; its requester
/// ID is the guest's virtual ITS DeviceID minus the `msi-map` base).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtBdf(pub Bdf);

/// The virtual BDF of a partition's `index`-th passthrough function (in
/// its manifest's `pci` list): bus 0, devices 1, 2, ... (device 0 is where
/// a host bridge would sit); `None` past device 31.
pub fn virtual_bdf(index: usize) -> Option<VirtBdf> {
    Bdf::new(0, u8::try_from(index.checked_add(1)?).ok()?, 0).map(VirtBdf)
}

impl fmt::Display for VirtBdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "virtual {}", self.0)
    }
}

/// What a guest write changed, for the kernel to carry to the hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// BAR `bar` of the device now decodes at guest PCI bus address `guest_address`.
    BarMoved {
        /// BAR number.
        bar: u8,
        /// The guest's bus address (see [`VirtualHostBridge::device_mappings`] for the IPA).
        guest_address: u64,
    },
    /// COMMAND.Memory Space was switched; BAR mappings follow it.
    MemoryDecode {
        /// The new value.
        enabled: bool,
    },
    /// The guest changed MSI enable, vector count, mask, address or data.
    Msi(GuestMsiState),
    /// The guest changed the MSI-X enable or function-mask bit.
    MsixControl {
        /// MSI-X enable.
        enabled: bool,
        /// All vectors masked.
        function_mask: bool,
    },
    /// The guest changed an MSI-X table entry.
    MsixVector {
        /// Entry number.
        vector: u16,
        /// The entry as the guest now has it.
        entry: MsixEntry,
    },
}

/// A change and the device it concerns, by virtual and physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigEvent {
    /// The device as the guest names it.
    pub device: VirtBdf,
    /// The physical function behind it.
    pub physical: Bdf,
    /// What changed.
    pub change: Change,
}

/// Why a guest access was not carried out (it reads all ones / is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestAccessError {
    /// Past the end of the ECAM window (or the MSI-X table region).
    OutsideWindow {
        /// Offset in the window.
        offset: u64,
    },
    /// A width the register block does not support.
    BadWidth,
    /// Not aligned to its width.
    Misaligned {
        /// Offset of the access.
        offset: u64,
    },
    /// No such device assigned.
    NoSuchDevice {
        /// The device named.
        device: VirtBdf,
    },
    /// The offset in the BAR is not in the MSI-X table: the kernel forwards
    /// the access to the device (the PBA or other registers on the page).
    NotInMsixTable {
        /// Offset in the BAR.
        offset: u64,
    },
}

impl fmt::Display for GuestAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutsideWindow { offset } => write!(f, "offset {offset:#x} outside the window"),
            Self::BadWidth => f.write_str("unsupported access width"),
            Self::Misaligned { offset } => {
                write!(f, "offset {offset:#x} not aligned to the access width")
            }
            Self::NoSuchDevice { device } => write!(f, "{device} is not assigned"),
            Self::NotInMsixTable { offset } => {
                write!(f, "BAR offset {offset:#x} is not in the MSI-X table")
            }
        }
    }
}

/// Why a partition's virtual host bridge could not be built from the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VbridgeError {
    /// The virtual BDF is outside the guest bridge's bus range.
    OutsideBusRange {
        /// The virtual BDF.
        device: VirtBdf,
    },
    /// Two devices at one virtual BDF.
    DuplicateVirtual {
        /// The virtual BDF.
        device: VirtBdf,
    },
    /// One physical function assigned twice.
    DuplicatePhysical {
        /// The physical function.
        physical: Bdf,
    },
    /// Function n > 0 without function 0 at the same virtual device (PCI LB 3.0, 6.2.1).
    NoFunctionZero {
        /// The virtual BDF.
        device: VirtBdf,
    },
    /// Only endpoints (type 0 headers) can be assigned.
    NotAnEndpoint {
        /// The physical function.
        physical: Bdf,
    },
    /// A memory BAR the hypervisor did not place (or whose size is not a power of two).
    UnplacedBar {
        /// The physical function.
        physical: Bdf,
        /// BAR number.
        bar: u8,
    },
    /// The guest's windows cannot hold the device's BARs.
    GuestWindowFull {
        /// The virtual BDF.
        device: VirtBdf,
        /// BAR number.
        bar: u8,
    },
    /// An MSI/MSI-X capability runs past config space, or its table/PBA past its BAR.
    BadCapability {
        /// The physical function.
        physical: Bdf,
        /// Capability ID.
        id: u8,
    },
}

impl fmt::Display for VbridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutsideBusRange { device } => {
                write!(f, "{device}: outside the guest's bus range")
            }
            Self::DuplicateVirtual { device } => write!(f, "{device}: assigned twice"),
            Self::DuplicatePhysical { physical } => write!(f, "PCI {physical}: assigned twice"),
            Self::NoFunctionZero { device } => {
                write!(f, "{device}: function 0 of the device is not assigned")
            }
            Self::NotAnEndpoint { physical } => write!(f, "PCI {physical}: not an endpoint"),
            Self::UnplacedBar { physical, bar } => {
                write!(f, "PCI {physical} BAR {bar}: not placed on the host")
            }
            Self::GuestWindowFull { device, bar } => {
                write!(f, "{device} BAR {bar}: guest PCI windows full")
            }
            Self::BadCapability { physical, id } => {
                write!(f, "PCI {physical} capability {id:#04x}: out of bounds")
            }
        }
    }
}
