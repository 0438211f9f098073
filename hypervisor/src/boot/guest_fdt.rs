//! The device tree a partition's guest boots with.
//!
//! [`generate`] writes what an unmodified arm64 Linux expects (Linux
//! `Documentation/arch/arm64/booting.rst` and the bindings cited per node):
//! RAM, vCPUs started by PSCI over HVC, the architected timer, a GICv3 with
//! an optional ITS, a PL011 console, `/chosen`, and an optional generic ECAM
//! PCIe host bridge whose MSIs go to the ITS. The guest's addresses are IPAs
//! chosen by the manifest; the configuration is checked first (no vCPUs,
//! overlapping windows, a window too small for what it must hold) and a bad
//! one is refused with an error naming the field.
#![forbid(unsafe_code)]

mod nodes;
mod validate;

#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::mm::addr::{Ipa, Range};

/// Root `compatible` of every partition's tree.
pub const ROOT_COMPATIBLE: &str = "hypervisor,partition";
/// Reference clock of the virtual PL011, as on QEMU virt and Arm's FVPs.
pub const UART_CLOCK_HZ: u32 = 24_000_000;
/// Size of one GICv3 redistributor: RD_base and SGI_base frames (IHI 0069, 12.10).
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;

/// The guest's GICv3: distributor, redistributors and optional ITS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestGic {
    /// GICD frame (64 KiB).
    pub distributor: Range<Ipa>,
    /// One contiguous redistributor region: vCPU i's frames at `i * 128 KiB`.
    pub redistributors: Range<Ipa>,
    /// The virtual ITS register frames, if the guest gets one.
    pub its: Option<Range<Ipa>>,
    /// Further virtual ITSs (their own frames; the first ITS stays the one
    /// the PCIe bridge's `msi-map` names).
    pub extra_its: Vec<Range<Ipa>>,
}

/// The guest's GICv2 on a GICv2 host (IHI 0048B; binding arm,gic.yaml,
/// `arm,gic-400`): the distributor the hypervisor emulates, and the CPU
/// interface, which is the physical GICV frame mapped at this IPA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestGicV2 {
    /// GICD frame (4 KiB).
    pub distributor: Range<Ipa>,
    /// GICC frame (8 KiB: GICV_DIR sits at offset 0x1000).
    pub cpu_interface: Range<Ipa>,
}

/// The guest's virtual PL011.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestConsole {
    /// Register frame (one 4 KiB page).
    pub registers: Range<Ipa>,
    /// Its SPI number (INTID - 32), as the binding's second cell.
    pub spi: u32,
}

/// A window of PCI memory space as the guest's CPU sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestPciWindow {
    /// Where the guest reaches the window.
    pub cpu: Range<Ipa>,
    /// The PCI bus address of its first byte (what BARs hold).
    pub pci_address: u64,
}

/// The guest's generic ECAM PCIe host bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestPci {
    /// ECAM configuration space: 1 MiB per bus from `first_bus`.
    pub ecam: Range<Ipa>,
    /// First bus number.
    pub first_bus: u8,
    /// Last bus number.
    pub last_bus: u8,
    /// 32-bit non-prefetchable memory window (PCI addresses below 4 GiB).
    pub mem32: Option<GuestPciWindow>,
    /// 64-bit memory window.
    pub mem64: Option<GuestPciWindow>,
    /// vITS DeviceID of requester ID 0 (`msi-map` msi-base): DeviceID = base + RID.
    pub msi_base: u32,
    /// `dma-coherent`: copy the host bridge's (QEMU virt's is coherent).
    pub dma_coherent: bool,
}

/// Everything that differs between partitions' device trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFdtConfig {
    /// Partition name, shown in the root `model`.
    pub name: String,
    /// The partition's RAM.
    pub ram: Range<Ipa>,
    /// vCPU i's MPIDR (cpu node `reg`); [`GuestFdtConfig::linear_mpidrs`] gives Aff0 = i.
    pub vcpu_mpidrs: Vec<u64>,
    /// The virtual GIC.
    pub gic: GuestGic,
    /// The virtual console, if any.
    pub console: Option<GuestConsole>,
    /// Kernel command line (`/chosen/bootargs`).
    pub bootargs: String,
    /// Where the initrd was loaded, if one was.
    pub initrd: Option<Range<Ipa>>,
    /// The PCIe host bridge for passthrough devices, if any.
    pub pci: Option<GuestPci>,
    /// How many times the partition was restarted before this boot
    /// (`/chosen/hv,boot-count`; `/chosen/hv,partition` names the partition).
    pub boot_count: u32,
}

impl GuestFdtConfig {
    /// MPIDRs for `count` vCPUs in one cluster: Aff0 = vCPU index.
    pub fn linear_mpidrs(count: usize) -> Vec<u64> {
        (0..count as u64).collect()
    }
}

/// Why a guest device tree could not be generated.
#[derive(Debug, PartialEq, Eq)]
pub enum GuestFdtError {
    /// A configuration field is unusable.
    Invalid {
        /// The field, as a path in [`GuestFdtConfig`] (e.g. `gic.redistributors`).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two address windows overlap.
    Overlap {
        /// The first window's field.
        first: &'static str,
        /// The second window's field.
        second: &'static str,
    },
    /// The device tree writer refused the tree (a bug here, or a NUL in a string).
    Writer(vm_fdt::Error),
}

impl fmt::Display for GuestFdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { field, reason } => write!(f, "guest device tree: {field}: {reason}"),
            Self::Overlap { first, second } => {
                write!(f, "guest device tree: {first} overlaps {second}")
            }
            Self::Writer(error) => write!(f, "guest device tree: writer: {error}"),
        }
    }
}

impl From<vm_fdt::Error> for GuestFdtError {
    fn from(error: vm_fdt::Error) -> Self {
        Self::Writer(error)
    }
}

/// Builds the flattened device tree for the guest `cfg` describes.
pub fn generate(cfg: &GuestFdtConfig) -> Result<Vec<u8>, GuestFdtError> {
    validate::check(cfg)?;
    nodes::write(cfg, nodes::GicNode::V3(&cfg.gic))
}

/// Builds the tree of a partition on a GICv2 host: as [`generate`], but
/// the interrupt controller is an `arm,gic-400` at `gic`'s frames (the
/// GICv3 frames of `cfg.gic` are not described), and the PPI specifiers
/// carry the GICv2 CPU mask. A GICv2 has no ITS: `cfg.pci` must be `None`,
/// and at most 8 vCPUs are addressable.
pub fn generate_gicv2(cfg: &GuestFdtConfig, gic: &GuestGicV2) -> Result<Vec<u8>, GuestFdtError> {
    validate::check(cfg)?;
    validate::check_gicv2(cfg, gic)?;
    nodes::write(cfg, nodes::GicNode::V2(gic))
}
