//! The partition manifest: the human-written TOML that says which
//! partitions the machine is split into (CPUs, RAM, guest images, boot
//! arguments), parsed and validated at boot before any partition starts.
//!
//! [`Manifest::parse`] turns text into typed [`PartitionConfig`]s, rejecting
//! TOML that has the wrong shape; [`Manifest::validate`] checks the result
//! against the machine ([`ValidationContext`]). Either way the first problem
//! becomes one [`ManifestError`] naming the partition, the field and, where
//! known, the line. The format is documented in `docs/manifest.md`.
#![forbid(unsafe_code)]

mod error;
mod interval;
mod raw;
mod source;
mod validate;

use alloc::string::String;
use alloc::vec::Vec;

use serde::Deserialize;
use toml::de::DeTable;

pub use error::{ErrorKind, ManifestError, PartitionRef};
pub use validate::{Region, ValidationContext};

use crate::ids::CpuIndex;
use crate::mm::Ipa;
use raw::RawManifest;
use source::{line_of, FieldLines, SourceMap};

/// Where a partition's virtual PL011 sits when `console_ipa` is not given.
pub const DEFAULT_CONSOLE_IPA: Ipa = Ipa(0x0900_0000);
/// Size of the console's MMIO window (one PL011 register page).
pub const CONSOLE_WINDOW_SIZE: u64 = 0x1000;
/// Alignment of partition RAM, in IPA and size (a stage-2 level-2 block).
pub const RAM_ALIGN: u64 = 2 << 20;
/// Alignment of the kernel load IPA (its entry point).
pub const KERNEL_ALIGN: u64 = 0x1000;
/// Longest partition name, in bytes.
pub const MAX_NAME_LEN: usize = 32;
/// Longest `bootargs`, in bytes (Linux arm64 `COMMAND_LINE_SIZE` less the NUL).
pub const MAX_BOOTARGS_LEN: usize = 2047;
/// The hypervisor heap when `[hypervisor] heap` is not given.
pub const DEFAULT_HEAP_BYTES: usize = crate::partition::budget::HEAP_BYTES;
/// The part of the heap the hypervisor boots with (a static arena in its
/// image: the platform, the manifest while it is parsed); the rest of
/// `heap` is taken from RAM once the manifest is valid.
pub const BOOT_HEAP_BYTES: usize = 2 << 20;
/// Smallest `[hypervisor] heap`: the hypervisor's own share.
pub const MIN_HEAP_BYTES: usize = crate::partition::budget::HYPERVISOR_OWN_BYTES;
/// Largest `[hypervisor] heap`.
pub const MAX_HEAP_BYTES: usize = 1 << 30;
/// `[hypervisor] heap` is a whole number of these.
pub const HEAP_ALIGN: usize = 1 << 20;

/// Settings of the hypervisor itself: `[hypervisor]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HypervisorConfig {
    /// Bytes of the heap (`heap`); `None`: [`DEFAULT_HEAP_BYTES`].
    pub heap: Option<u64>,
}

impl HypervisorConfig {
    /// The heap the partitions' budgets and the hypervisor's own share
    /// must fit (a valid manifest's value fits `usize`).
    pub fn heap_bytes(&self) -> usize {
        self.heap.map_or(DEFAULT_HEAP_BYTES, |h| {
            usize::try_from(h).unwrap_or(usize::MAX)
        })
    }

    /// Bytes of RAM the heap takes beyond the boot arena, rounded up to
    /// whole [`RAM_ALIGN`] blocks (what the kernel carves, and what
    /// validation keeps out of the partitions' RAM).
    pub fn heap_from_ram(&self) -> u64 {
        let beyond = self.heap_bytes().saturating_sub(BOOT_HEAP_BYTES) as u64;
        beyond.next_multiple_of(RAM_ALIGN)
    }
}

/// Bounds on one partition's virtual ITS (a guest cannot exhaust hypervisor
/// memory or hog a CPU with queue work): `[partition.its]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItsLimits {
    /// Most devices mapped at once.
    pub max_devices: usize,
    /// Most events mapped at once, over all devices.
    pub max_events: usize,
    /// Most collections mapped at once.
    pub max_collections: usize,
    /// Most guest commands processed per trap.
    pub max_commands_per_trap: usize,
    /// How many virtual ITSs the partition has (each its own frames and
    /// translation state; passthrough functions' MSIs go to the first).
    pub count: usize,
}

impl ItsLimits {
    /// The defaults of `[partition.its]`.
    pub const DEFAULT: ItsLimits = ItsLimits {
        max_devices: 64,
        max_events: 4096,
        max_collections: 64,
        max_commands_per_trap: 256,
        count: 1,
    };
    /// The largest values accepted (they bound hypervisor memory and work).
    pub const MAX: ItsLimits = ItsLimits {
        max_devices: 4096,
        max_events: 65536,
        max_collections: 4096,
        max_commands_per_trap: 4096,
        count: crate::layout::MAX_ITS,
    };
}

/// A parsed manifest: the partitions, in the order they are written.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The partitions; index `i` is `PartitionId(i)`.
    pub partitions: Vec<PartitionConfig>,
    /// The `[hypervisor]` table.
    pub hypervisor: HypervisorConfig,
    /// Line of each written field, for validation errors.
    lines: FieldLines,
}

/// One partition as the manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionConfig {
    /// Unique printable name, used in logs and console prefixes.
    pub name: String,
    /// Physical CPUs; vCPU `i` runs on `cpus[i]`.
    pub cpus: Vec<CpuIndex>,
    /// Guest RAM.
    pub ram: RamConfig,
    /// Whether RAM sits at IPA == PA (for DMA passthrough without an SMMU).
    pub identity_mapped: bool,
    /// The kernel image; the guest is entered at its load IPA.
    pub kernel: ImageConfig,
    /// An optional initial RAM disk.
    pub initrd: Option<ImageConfig>,
    /// The guest's `/chosen/bootargs` (empty by default).
    pub bootargs: String,
    /// Base IPA of the guest's virtual PL011.
    pub console_ipa: Ipa,
    /// PCI functions passed through, by host bus:device.function address
    /// (parsed with the manifest, checked against the machine at boot).
    pub pci: Vec<crate::pci::Bdf>,
    /// Limits of the partition's virtual ITS.
    pub its: ItsLimits,
    /// What a vCPU's WFI does.
    pub wfi: WfiPolicy,
    /// Whether the partition accepts DMA that no SMMU confines.
    pub dma: DmaPolicy,
}

/// What the DMA of a partition's PCI functions may reach (`dma`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmaPolicy {
    /// Only the partition's own RAM (and its MSI doorbell): the SMMU
    /// translates every DMA through the partition's stage 2. A machine
    /// without an SMMU refuses a partition with `pci` under this policy.
    #[default]
    Confined,
    /// Said by the manifest on a machine without an SMMU: the partition's
    /// devices can reach all physical memory, and the owner accepts it.
    /// With an SMMU the devices are confined all the same.
    Unconfined,
}

/// What a vCPU's WFI does (`wfi = "resident"` or `"doorbell"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WfiPolicy {
    /// WFI runs natively (not trapped); the vCPU's vPE stays resident, so
    /// a passthrough MSI (a vLPI) wakes it with no hypervisor exit.
    #[default]
    Resident,
    /// WFI traps; the hypervisor makes the vPE non-resident with its
    /// doorbells enabled and waits in WFI at EL2 until an interrupt (a
    /// doorbell, the virtual timer, a kick) wakes it, then makes the vPE
    /// resident again and returns: one exit per WFI, and the physical CPU
    /// is the hypervisor's while the vCPU waits.
    Doorbell,
}

/// A partition's RAM in its IPA space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamConfig {
    /// First IPA (2 MiB aligned).
    pub ipa: Ipa,
    /// Size in bytes (a multiple of 2 MiB).
    pub size: u64,
}

/// An image from the boot bundle and where it is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// Name of the image in the boot bundle.
    pub image: String,
    /// IPA the image is copied to.
    pub ipa: Ipa,
    /// What the file is (kernels: an arm64 Image unless it says `raw`;
    /// an initrd is always plain bytes).
    pub format: crate::boot::guest_image::ImageFormat,
}

impl Manifest {
    /// A manifest of `partitions` that did not come from text (no line numbers).
    pub fn new(partitions: Vec<PartitionConfig>) -> Self {
        Self {
            partitions,
            hypervisor: HypervisorConfig::default(),
            lines: FieldLines::default(),
        }
    }

    /// Parses manifest text; syntax and shape errors name the partition and field.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let root = DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
        let sources = SourceMap::build(text, root.get_ref());
        let raw = RawManifest::deserialize(toml::de::Deserializer::from(root))
            .map_err(|e| shape_error(&sources, &e))?;
        Ok(Self {
            hypervisor: raw.hypervisor.into_config(),
            partitions: raw.partition.into_iter().map(|p| p.into_config()).collect(),
            lines: sources.field_lines(),
        })
    }

    /// Checks the manifest against the machine; the first problem is returned.
    pub fn validate(&self, ctx: &ValidationContext<'_>) -> Result<(), ManifestError> {
        validate::validate(&self.partitions, &self.hypervisor, &self.lines, ctx)
    }

    /// [`parse`](Self::parse) then [`validate`](Self::validate): the boot path.
    pub fn load(text: &str, ctx: &ValidationContext<'_>) -> Result<Self, ManifestError> {
        let manifest = Self::parse(text)?;
        manifest.validate(ctx)?;
        Ok(manifest)
    }
}

impl PartitionConfig {
    /// Where the guest starts executing: the kernel's load IPA.
    pub fn entry_point(&self) -> Ipa {
        self.kernel.ipa
    }
}

fn syntax_error(text: &str, error: &toml::de::Error) -> ManifestError {
    ManifestError {
        partition: None,
        field: String::new(),
        line: error.span().map(|span| line_of(text, span.start)),
        kind: ErrorKind::Syntax(String::from(error.message().trim_end())),
    }
}

fn shape_error(sources: &SourceMap<'_>, error: &toml::de::Error) -> ManifestError {
    let location = sources.locate(error.span(), error.message());
    ManifestError {
        partition: location.partition.map(|index| sources.partition_ref(index)),
        field: location.field,
        line: location.line,
        kind: ErrorKind::Shape(String::from(error.message().trim_end())),
    }
}

#[cfg(test)]
mod tests;
