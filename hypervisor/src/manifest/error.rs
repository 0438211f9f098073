//! Manifest errors: each one names the partition, the field and what is
//! wrong, so that the single line printed at boot is enough to fix the file.

use alloc::string::String;
use core::fmt;

use crate::ids::CpuIndex;
use crate::mm::Ipa;

/// An error in the manifest: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The partition concerned, or `None` for the document as a whole.
    pub partition: Option<PartitionRef>,
    /// The field path inside the partition (`ram.size`, `cpus[2]`), empty if none.
    pub field: String,
    /// The 1-based line of the manifest text the error points at, when known.
    pub line: Option<u32>,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// How an error names a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionRef {
    /// By its name (only used when the name is valid).
    Named(String),
    /// By its 0-based position in the manifest, when it has no usable name.
    Index(usize),
}

/// What is wrong with the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not valid TOML.
    Syntax(String),
    /// Valid TOML of the wrong shape: unknown or missing field, wrong type, bad size.
    Shape(String),
    /// The manifest declares no partition.
    NoPartitions,
    /// The partition name is empty.
    EmptyName,
    /// The partition name has a character outside printable ASCII (or a space).
    NameNotPrintable,
    /// The partition name is longer than `MAX_NAME_LEN` bytes.
    NameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Another partition already has this name.
    DuplicateName {
        /// Index of the partition that has it first.
        first: usize,
    },
    /// The partition has no CPU.
    NoCpus,
    /// A CPU index beyond the machine's CPUs.
    CpuOutOfRange {
        /// The CPU index given.
        cpu: CpuIndex,
        /// How many CPUs the machine has.
        count: usize,
    },
    /// The same CPU appears twice in the partition's list.
    CpuListedTwice {
        /// The CPU index given twice.
        cpu: CpuIndex,
    },
    /// The CPU already belongs to another partition.
    CpuTaken {
        /// The CPU index.
        cpu: CpuIndex,
        /// The partition it was given to first.
        other: PartitionRef,
    },
    /// The RAM size is zero.
    RamSizeZero,
    /// The RAM size is not a multiple of 2 MiB.
    RamSizeUnaligned {
        /// The size given.
        size: u64,
    },
    /// The RAM IPA is not 2 MiB aligned.
    RamIpaUnaligned {
        /// The IPA given.
        ipa: Ipa,
    },
    /// `ram.ipa + ram.size` does not fit in 64 bits.
    RamOverflow,
    /// The RAM extends beyond the guest IPA space.
    RamOutsideIpaSpace {
        /// The IPA size in bits.
        ipa_bits: u32,
    },
    /// The RAM overlaps one of the partition's device windows.
    RamOverlapsDevice {
        /// Name of the device window.
        device: String,
        /// Its first IPA.
        start: Ipa,
        /// Its size in bytes.
        size: u64,
    },
    /// Identity-mapped RAM not entirely inside one physical RAM range.
    IdentityRamNotPhysical,
    /// Identity-mapped RAM overlaps a reserved physical range.
    IdentityRamReserved {
        /// Name of the reserved range (e.g. `hypervisor`).
        region: String,
    },
    /// Identity-mapped RAM overlaps another identity-mapped partition's RAM.
    IdentityRamOverlap {
        /// The other partition.
        other: PartitionRef,
    },
    /// The partitions ask for more RAM than is free.
    NotEnoughRam {
        /// Bytes requested up to and including this partition.
        requested: u64,
        /// Bytes free for partitions that are not identity-mapped.
        free: u64,
    },
    /// The image is not in the boot bundle.
    ImageMissing {
        /// The image name.
        image: String,
    },
    /// The kernel load IPA (the entry point) is not 4 KiB aligned.
    ImageUnaligned {
        /// The IPA given.
        ipa: Ipa,
    },
    /// The image, loaded at its IPA, does not lie inside the partition's RAM.
    ImageOutsideRam {
        /// The image name.
        image: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The kernel and the initrd overlap once loaded.
    ImagesOverlap,
    /// The boot arguments are longer than `MAX_BOOTARGS_LEN`.
    BootargsTooLong {
        /// Their length in bytes.
        len: usize,
    },
    /// The boot arguments contain a control character (e.g. NUL).
    BootargsNotPrintable,
    /// The console IPA is not 4 KiB aligned.
    ConsoleUnaligned {
        /// The IPA given.
        ipa: Ipa,
    },
    /// The console window extends beyond the guest IPA space.
    ConsoleOutsideIpaSpace {
        /// The IPA size in bits.
        ipa_bits: u32,
    },
    /// The console window overlaps another device window.
    ConsoleOverlapsDevice {
        /// Name of the device window.
        device: String,
    },
    /// No PCI function at that address on the machine.
    NoSuchPciDevice {
        /// The address.
        bdf: String,
    },
    /// The same PCI function is listed twice in this partition.
    PciDeviceListedTwice {
        /// The address.
        bdf: String,
    },
    /// The PCI function is already given to another partition.
    PciDeviceTaken {
        /// The address.
        bdf: String,
        /// The partition that has it.
        other: PartitionRef,
    },
    /// A `[partition.its]` limit is zero or above what the hypervisor allows.
    ItsLimitOutOfRange {
        /// The value given.
        value: usize,
        /// The largest allowed.
        max: usize,
    },
    /// `[hypervisor] heap` is not a whole number of MiB between
    /// [`super::MIN_HEAP_BYTES`] and [`super::MAX_HEAP_BYTES`].
    HeapSize {
        /// The value given, in bytes.
        heap: u64,
    },
    /// The partition's hypervisor memory budget (`crate::partition::budget`), added to
    /// those of the partitions before it and the hypervisor's own, does
    /// not fit the heap.
    HeapBudget {
        /// This partition's budget, in bytes.
        budget: usize,
        /// The sum up to and including it, with the hypervisor's own.
        needed: usize,
        /// The heap, in bytes.
        heap: usize,
    },
    /// A PCI function's DMA cannot be confined (no SMMU) and the partition
    /// does not say `dma = "unconfined"`.
    DmaNotConfined {
        /// The address.
        bdf: String,
    },
    /// A DMA-capable device needs RAM at IPA == PA when there is no SMMU.
    DmaNeedsIdentityMappedRam {
        /// The address.
        bdf: String,
    },
}

impl ManifestError {
    /// An error about one field of one partition, without a line yet.
    pub fn new(partition: Option<PartitionRef>, field: &str, kind: ErrorKind) -> Self {
        Self {
            partition,
            field: String::from(field),
            line: None,
            kind,
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest: ")?;
        if let Some(partition) = &self.partition {
            write!(f, "{partition}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "field {}: ", self.field)?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl fmt::Display for PartitionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(name) => write!(f, "partition \"{name}\""),
            Self::Index(index) => write!(f, "partition #{index}"),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::{MAX_BOOTARGS_LEN, MAX_NAME_LEN};
        match self {
            Self::Syntax(message) => write!(f, "not valid TOML: {message}"),
            Self::Shape(message) => write!(f, "{message}"),
            Self::NoPartitions => write!(f, "no [[partition]] declared"),
            Self::EmptyName => write!(f, "the name is empty"),
            Self::NameNotPrintable => {
                write!(f, "the name must be printable ASCII without spaces")
            }
            Self::NameTooLong { len } => {
                write!(f, "the name has {len} bytes, at most {MAX_NAME_LEN}")
            }
            Self::DuplicateName { first } => {
                write!(f, "the name is already used by partition #{first}")
            }
            Self::NoCpus => write!(f, "no CPU given"),
            Self::CpuOutOfRange { cpu, count } => {
                write!(f, "CPU {} does not exist (the machine has {count})", cpu.get())
            }
            Self::CpuListedTwice { cpu } => write!(f, "CPU {} is listed twice", cpu.get()),
            Self::CpuTaken { cpu, other } => {
                write!(f, "CPU {} is already given to {other}", cpu.get())
            }
            Self::RamSizeZero => write!(f, "the RAM size is zero"),
            Self::RamSizeUnaligned { size } => {
                write!(f, "{size:#x} is not a multiple of 2 MiB")
            }
            Self::RamIpaUnaligned { ipa } => write!(f, "{ipa} is not 2 MiB aligned"),
            Self::RamOverflow => write!(f, "ram.ipa + ram.size overflows"),
            Self::RamOutsideIpaSpace { ipa_bits } => {
                write!(f, "the RAM ends beyond the {ipa_bits}-bit IPA space")
            }
            Self::RamOverlapsDevice {
                device,
                start,
                size,
            } => write!(
                f,
                "the RAM overlaps the {device} window at {start} (size {size:#x})"
            ),
            Self::IdentityRamNotPhysical => write!(
                f,
                "identity-mapped RAM must lie inside one physical RAM range"
            ),
            Self::IdentityRamReserved { region } => write!(
                f,
                "identity-mapped RAM overlaps the reserved {region} range"
            ),
            Self::IdentityRamOverlap { other } => {
                write!(f, "identity-mapped RAM overlaps the RAM of {other}")
            }
            Self::NotEnoughRam { requested, free } => write!(
                f,
                "partitions need {requested:#x} bytes of RAM, only {free:#x} are free"
            ),
            Self::ImageMissing { image } => {
                write!(f, "image \"{image}\" is not in the boot bundle")
            }
            Self::ImageUnaligned { ipa } => write!(f, "{ipa} is not 4 KiB aligned"),
            Self::ImageOutsideRam { image, size } => write!(
                f,
                "image \"{image}\" ({size:#x} bytes) does not fit inside the partition's RAM"
            ),
            Self::ImagesOverlap => write!(f, "the initrd overlaps the kernel"),
            Self::NoSuchPciDevice { bdf } => write!(f, "no PCI function {bdf} on this machine"),
            Self::ItsLimitOutOfRange { value, max } => write!(f, "{value} is out of range (1..={max})"),
            Self::HeapSize { heap } => write!(
                f,
                "the hypervisor heap must be a whole number of MiB from {} MiB to {} MiB, not {heap} bytes",
                super::MIN_HEAP_BYTES >> 20,
                super::MAX_HEAP_BYTES >> 20
            ),
            Self::HeapBudget { budget, needed, heap } => write!(
                f,
                "the partition's hypervisor memory budget is {} KiB; with the partitions before it and the hypervisor's own {} KiB that makes {} KiB, more than the {} KiB heap (lower its.max_events, its.max_devices, its.max_collections or its.count, or raise hypervisor.heap)",
                budget.div_ceil(1024),
                crate::partition::budget::HYPERVISOR_OWN_BYTES / 1024,
                needed.div_ceil(1024),
                heap / 1024
            ),
            Self::PciDeviceListedTwice { bdf } => write!(f, "PCI function {bdf} is listed twice"),
            Self::PciDeviceTaken { bdf, other } => {
                write!(f, "PCI function {bdf} is already given to {other}")
            }
            Self::DmaNotConfined { bdf } => write!(
                f,
                "PCI function {bdf} could reach all memory by DMA: this machine has no SMMU; \
                 say dma = \"unconfined\" to accept that"
            ),
            Self::DmaNeedsIdentityMappedRam { bdf } => write!(
                f,
                "PCI function {bdf} can do DMA: without an SMMU it needs identity_mapped = true (RAM at IPA == PA)"
            ),
            Self::BootargsTooLong { len } => {
                write!(f, "{len} bytes, at most {MAX_BOOTARGS_LEN}")
            }
            Self::BootargsNotPrintable => write!(f, "contains a control character"),
            Self::ConsoleUnaligned { ipa } => write!(f, "{ipa} is not 4 KiB aligned"),
            Self::ConsoleOutsideIpaSpace { ipa_bits } => {
                write!(f, "the console ends beyond the {ipa_bits}-bit IPA space")
            }
            Self::ConsoleOverlapsDevice { device } => {
                write!(f, "the console overlaps the {device} window")
            }
        }
    }
}
