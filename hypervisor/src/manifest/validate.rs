//! Validation of a parsed manifest against what the machine has: CPUs,
//! physical RAM, reserved ranges, the images in the boot bundle, the IPA
//! size and the device windows every partition gets. The first problem
//! found is returned, naming the partition and the field.

use alloc::string::String;
use alloc::vec::Vec;

use super::error::{ErrorKind, ManifestError, PartitionRef};
use super::interval::{subtract, Interval};
use super::source::FieldLines;
use super::{
    HypervisorConfig, ImageConfig, PartitionConfig, CONSOLE_WINDOW_SIZE, HEAP_ALIGN, KERNEL_ALIGN,
    MAX_BOOTARGS_LEN, MAX_HEAP_BYTES, MAX_NAME_LEN, MIN_HEAP_BYTES, RAM_ALIGN,
};
use crate::mm::addr::Range;
use crate::mm::{Ipa, PhysAddr};

/// What the machine offers, against which a manifest is validated.
pub struct ValidationContext<'a> {
    /// Number of physical CPUs (the entries of `/cpus` in the host device tree).
    pub cpu_count: usize,
    /// Physical RAM ranges.
    pub ram: &'a [Range<PhysAddr>],
    /// Physical ranges not available to partitions (hypervisor, device tree, bundle...).
    pub reserved: &'a [Region<'a, PhysAddr>],
    /// Size in bytes of the named image in the boot bundle, `None` if it is absent.
    pub image_size: &'a dyn Fn(&str) -> Option<u64>,
    /// Size of the guest IPA space in bits (what stage 2 is configured for).
    pub ipa_bits: u32,
    /// Device windows every partition gets at fixed IPAs (GICD, GICR, ITS), besides its console.
    pub device_windows: &'a [Region<'a, Ipa>],
    /// The PCI functions the machine has (host bus:device.function).
    pub pci_devices: &'a [crate::pci::Bdf],
    /// Whether an SMMU translates the DMA of every PCI function through
    /// its partition's stage 2 (probed, with stage-2 support).
    pub dma_confined: bool,
}

/// A named address range, named so that errors can say what overlaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region<'a, A> {
    /// What the range is (`hypervisor`, `GICD`...).
    pub name: &'a str,
    /// Where it is.
    pub range: Range<A>,
}

/// A failed check: the field (relative to the partition) and what is wrong.
type Fault = (&'static str, ErrorKind);

/// Checks `partitions` in order; the first fault becomes the error.
pub(super) fn validate(
    partitions: &[PartitionConfig],
    hypervisor: &HypervisorConfig,
    lines: &FieldLines,
    ctx: &ValidationContext<'_>,
) -> Result<(), ManifestError> {
    let heap_error = |kind| {
        let mut error = ManifestError::new(None, HEAP_FIELD, kind);
        error.line = lines.top_line(HEAP_FIELD);
        error
    };
    check_heap_size(hypervisor).map_err(heap_error)?;
    if partitions.is_empty() {
        return Err(ManifestError::new(None, "", ErrorKind::NoPartitions));
    }
    let error = |index: usize, (field, kind): Fault| {
        let mut error = ManifestError::new(
            Some(partition_ref(index, &partitions[index].name)),
            field,
            kind,
        );
        error.line = lines.line(index, field);
        error
    };
    for (index, partition) in partitions.iter().enumerate() {
        let checker = Checker {
            partition,
            earlier: &partitions[..index],
            ctx,
        };
        checker.check().map_err(|fault| error(index, fault))?;
    }
    let heap_from_ram = hypervisor.heap_from_ram();
    match check_total_ram(partitions, heap_from_ram, ctx) {
        Ok(()) => {}
        Err((Some(index), fault)) => return Err(error(index, fault)),
        Err((None, (_, kind))) => return Err(heap_error(kind)),
    }
    check_heap_budgets(partitions, hypervisor.heap_bytes())
        .map_err(|(index, fault)| error(index, fault))
}

/// The manifest field of the heap size.
const HEAP_FIELD: &str = "hypervisor.heap";

/// `[hypervisor] heap` is a whole number of MiB in range.
fn check_heap_size(hypervisor: &HypervisorConfig) -> Result<(), ErrorKind> {
    let Some(heap) = hypervisor.heap else {
        return Ok(());
    };
    let fits = usize::try_from(heap)
        .is_ok_and(|h| (MIN_HEAP_BYTES..=MAX_HEAP_BYTES).contains(&h) && h % HEAP_ALIGN == 0);
    if fits {
        Ok(())
    } else {
        Err(ErrorKind::HeapSize { heap })
    }
}

/// The partitions' hypervisor memory budgets and the hypervisor's own fit
/// the heap of `heap` bytes together (`crate::partition::budget`); the
/// error names the first partition that does not fit and the `its` field
/// that weighs most in its budget.
fn check_heap_budgets(partitions: &[PartitionConfig], heap: usize) -> Result<(), (usize, Fault)> {
    match crate::partition::budget::check(partitions, heap) {
        Ok(_) => Ok(()),
        Err(overdraft) => Err((
            overdraft.partition,
            (
                overdraft.budget.heaviest_field(),
                ErrorKind::HeapBudget {
                    budget: overdraft.budget.total(),
                    needed: overdraft.needed,
                    heap: overdraft.heap,
                },
            ),
        )),
    }
}

/// How an error names a partition: by name when the name is valid.
pub(super) fn partition_ref(index: usize, name: &str) -> PartitionRef {
    if check_name(name).is_ok() {
        PartitionRef::Named(String::from(name))
    } else {
        PartitionRef::Index(index)
    }
}

/// The checks of one partition, against itself, the machine and the partitions before it.
struct Checker<'p, 'c> {
    partition: &'p PartitionConfig,
    earlier: &'p [PartitionConfig],
    ctx: &'p ValidationContext<'c>,
}

impl Checker<'_, '_> {
    fn check(&self) -> Result<(), Fault> {
        self.check_name()?;
        self.check_cpus()?;
        self.check_ram()?;
        self.check_console()?;
        self.check_ram_devices()?;
        if self.partition.identity_mapped {
            self.check_identity_ram()?;
        }
        // The kernel's load IPA is its entry point: a page boundary, as any
        // boot protocol (Linux arm64 Image, bare-metal image) expects.
        let kernel = &self.partition.kernel;
        let kernel = self.check_image(kernel, ("kernel.image", "kernel.ipa"), KERNEL_ALIGN)?;
        if let Some(initrd) = &self.partition.initrd {
            let initrd = self.check_image(initrd, ("initrd.image", "initrd.ipa"), 1)?;
            if initrd.overlaps(kernel) {
                return Err(("initrd.ipa", ErrorKind::ImagesOverlap));
            }
        }
        self.check_bootargs()?;
        self.check_pci()?;
        self.check_its()
    }

    /// `[partition.its]`: every limit in 1..=the hypervisor's maximum.
    fn check_its(&self) -> Result<(), Fault> {
        let (l, max) = (self.partition.its, super::ItsLimits::MAX);
        for (field, value, max) in [
            ("its.max_devices", l.max_devices, max.max_devices),
            ("its.max_events", l.max_events, max.max_events),
            (
                "its.max_collections",
                l.max_collections,
                max.max_collections,
            ),
            (
                "its.max_commands_per_trap",
                l.max_commands_per_trap,
                max.max_commands_per_trap,
            ),
            ("its.count", l.count, max.count),
        ] {
            if value == 0 || value > max {
                return Err((field, ErrorKind::ItsLimitOutOfRange { value, max }));
            }
        }
        Ok(())
    }

    /// Each `pci` entry (an address since parsing): present on the machine, given to
    /// one partition once. Without an SMMU, DMA must be declared
    /// `dma = "unconfined"` and needs IPA == PA.
    fn check_pci(&self) -> Result<(), Fault> {
        let mut seen: Vec<crate::pci::Bdf> = Vec::new();
        for &bdf in &self.partition.pci {
            let name = alloc::format!("{bdf}");
            if !self.ctx.pci_devices.contains(&bdf) {
                return Err(("pci", ErrorKind::NoSuchPciDevice { bdf: name }));
            }
            if seen.contains(&bdf) {
                return Err(("pci", ErrorKind::PciDeviceListedTwice { bdf: name }));
            }
            seen.push(bdf);
            let taken = self.earlier.iter().position(|p| p.pci.contains(&bdf));
            if let Some(index) = taken {
                let other = partition_ref(index, &self.earlier[index].name);
                return Err(("pci", ErrorKind::PciDeviceTaken { bdf: name, other }));
            }
        }
        let Some(first) = seen.first() else {
            return Ok(());
        };
        if self.ctx.dma_confined {
            return Ok(());
        }
        let bdf = alloc::format!("{first}");
        // Every PCI function can master the bus: without an SMMU nothing
        // stops its DMA, so the manifest must say it accepts that.
        if self.partition.dma != super::DmaPolicy::Unconfined {
            return Err(("dma", ErrorKind::DmaNotConfined { bdf }));
        }
        // And its DMA uses physical addresses, which are the guest's only
        // at IPA == PA.
        if !self.partition.identity_mapped {
            return Err(("pci", ErrorKind::DmaNeedsIdentityMappedRam { bdf }));
        }
        Ok(())
    }

    fn check_name(&self) -> Result<(), Fault> {
        check_name(&self.partition.name).map_err(|kind| ("name", kind))?;
        match self
            .earlier
            .iter()
            .position(|p| p.name == self.partition.name)
        {
            Some(first) => Err(("name", ErrorKind::DuplicateName { first })),
            None => Ok(()),
        }
    }

    fn check_cpus(&self) -> Result<(), Fault> {
        let cpus = &self.partition.cpus;
        if cpus.is_empty() {
            return Err(("cpus", ErrorKind::NoCpus));
        }
        for (position, &cpu) in cpus.iter().enumerate() {
            if cpu.index() >= self.ctx.cpu_count {
                let count = self.ctx.cpu_count;
                return Err(("cpus", ErrorKind::CpuOutOfRange { cpu, count }));
            }
            if cpus[..position].contains(&cpu) {
                return Err(("cpus", ErrorKind::CpuListedTwice { cpu }));
            }
            if let Some((other, holder)) = self
                .earlier
                .iter()
                .enumerate()
                .find(|(_, p)| p.cpus.contains(&cpu))
            {
                let other = partition_ref(other, &holder.name);
                return Err(("cpus", ErrorKind::CpuTaken { cpu, other }));
            }
        }
        Ok(())
    }

    fn check_ram(&self) -> Result<(), Fault> {
        let ram = &self.partition.ram;
        if ram.size == 0 {
            return Err(("ram.size", ErrorKind::RamSizeZero));
        }
        if !ram.size.is_multiple_of(RAM_ALIGN) {
            let size = ram.size;
            return Err(("ram.size", ErrorKind::RamSizeUnaligned { size }));
        }
        if !ram.ipa.is_aligned(RAM_ALIGN) {
            return Err(("ram.ipa", ErrorKind::RamIpaUnaligned { ipa: ram.ipa }));
        }
        if ram.ipa.checked_add(ram.size).is_none() {
            return Err(("ram.size", ErrorKind::RamOverflow));
        }
        if !self.ipa_space().contains(self.ram()) {
            let ipa_bits = self.ctx.ipa_bits;
            return Err(("ram", ErrorKind::RamOutsideIpaSpace { ipa_bits }));
        }
        Ok(())
    }

    fn check_console(&self) -> Result<(), Fault> {
        let ipa = self.partition.console_ipa;
        if !ipa.is_aligned(CONSOLE_WINDOW_SIZE) {
            return Err(("console_ipa", ErrorKind::ConsoleUnaligned { ipa }));
        }
        if !self.ipa_space().contains(self.console()) {
            let ipa_bits = self.ctx.ipa_bits;
            return Err((
                "console_ipa",
                ErrorKind::ConsoleOutsideIpaSpace { ipa_bits },
            ));
        }
        if let Some(window) = self.overlapping_window(self.console()) {
            let device = String::from(window.name);
            return Err(("console_ipa", ErrorKind::ConsoleOverlapsDevice { device }));
        }
        Ok(())
    }

    fn check_ram_devices(&self) -> Result<(), Fault> {
        let console = Region {
            name: "console",
            range: Range {
                start: self.partition.console_ipa,
                size: CONSOLE_WINDOW_SIZE,
            },
        };
        let window = self
            .overlapping_window(self.ram())
            .or(Some(&console).filter(|c| self.ram().overlaps(interval(c.range))));
        match window {
            Some(window) => Err((
                "ram",
                ErrorKind::RamOverlapsDevice {
                    device: String::from(window.name),
                    start: window.range.start,
                    size: window.range.size,
                },
            )),
            None => Ok(()),
        }
    }

    fn check_identity_ram(&self) -> Result<(), Fault> {
        let ram = self.ram();
        let inside = self.ctx.ram.iter().any(|r| phys_interval(*r).contains(ram));
        if !inside {
            return Err(("ram", ErrorKind::IdentityRamNotPhysical));
        }
        if let Some(reserved) = self
            .ctx
            .reserved
            .iter()
            .find(|r| phys_interval(r.range).overlaps(ram))
        {
            let region = String::from(reserved.name);
            return Err(("ram", ErrorKind::IdentityRamReserved { region }));
        }
        if let Some((other, holder)) = self.earlier.iter().enumerate().find(|(_, p)| {
            p.identity_mapped && Interval::new(p.ram.ipa.0, p.ram.size).overlaps(ram)
        }) {
            let other = partition_ref(other, &holder.name);
            return Err(("ram", ErrorKind::IdentityRamOverlap { other }));
        }
        Ok(())
    }

    /// Checks one image; returns where it lands in the IPA space.
    fn check_image(
        &self,
        image: &ImageConfig,
        (name_field, ipa_field): (&'static str, &'static str),
        align: u64,
    ) -> Result<Interval, Fault> {
        let Some(size) = (self.ctx.image_size)(&image.image) else {
            let image = image.image.clone();
            return Err((name_field, ErrorKind::ImageMissing { image }));
        };
        if !image.ipa.is_aligned(align) {
            return Err((ipa_field, ErrorKind::ImageUnaligned { ipa: image.ipa }));
        }
        let loaded = Interval::new(image.ipa.0, size);
        if !self.ram().contains(loaded) {
            let image = image.image.clone();
            return Err((ipa_field, ErrorKind::ImageOutsideRam { image, size }));
        }
        Ok(loaded)
    }

    fn check_bootargs(&self) -> Result<(), Fault> {
        let bootargs = &self.partition.bootargs;
        if bootargs.len() > MAX_BOOTARGS_LEN {
            let len = bootargs.len();
            return Err(("bootargs", ErrorKind::BootargsTooLong { len }));
        }
        // The guest reads /chosen/bootargs as a NUL-terminated string.
        if bootargs.chars().any(char::is_control) {
            return Err(("bootargs", ErrorKind::BootargsNotPrintable));
        }
        Ok(())
    }

    fn ram(&self) -> Interval {
        Interval::new(self.partition.ram.ipa.0, self.partition.ram.size)
    }

    fn console(&self) -> Interval {
        Interval::new(self.partition.console_ipa.0, CONSOLE_WINDOW_SIZE)
    }

    fn ipa_space(&self) -> Interval {
        Interval {
            start: 0,
            end: 1u128.checked_shl(self.ctx.ipa_bits).unwrap_or(u128::MAX),
        }
    }

    fn overlapping_window(&self, range: Interval) -> Option<&Region<'_, Ipa>> {
        self.ctx
            .device_windows
            .iter()
            .find(|w| interval(w.range).overlaps(range))
    }
}

/// Name rules: non-empty, at most `MAX_NAME_LEN` bytes of printable ASCII without spaces.
fn check_name(name: &str) -> Result<(), ErrorKind> {
    if name.is_empty() {
        Err(ErrorKind::EmptyName)
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        Err(ErrorKind::NameNotPrintable)
    } else if name.len() > MAX_NAME_LEN {
        Err(ErrorKind::NameTooLong { len: name.len() })
    } else {
        Ok(())
    }
}

/// The partitions that are not identity-mapped must fit, together, in the
/// 2 MiB blocks of physical RAM left free by reserved ranges and
/// identity-mapped partitions. Blame the first partition that does not fit.
/// The heap's share of RAM (`heap_from_ram` bytes, taken first) and the
/// RAM of every partition that is not identity-mapped fit the free RAM;
/// the error names the partition, or no partition for the heap.
fn check_total_ram(
    partitions: &[PartitionConfig],
    heap_from_ram: u64,
    ctx: &ValidationContext<'_>,
) -> Result<(), (Option<usize>, Fault)> {
    let align = u128::from(RAM_ALIGN);
    let mut free: Vec<Interval> = ctx
        .ram
        .iter()
        .map(|r| phys_interval(*r).shrink_to(align))
        .filter(|i| !i.is_empty())
        .collect();
    let taken = ctx.reserved.iter().map(|r| phys_interval(r.range));
    let identity = partitions
        .iter()
        .filter(|p| p.identity_mapped)
        .map(|p| Interval::new(p.ram.ipa.0, p.ram.size));
    for hole in taken.chain(identity) {
        free = subtract(free, hole.grow_to(align));
    }
    let free: u128 = free.iter().map(|i| i.len()).sum();
    let mut requested = u128::from(heap_from_ram);
    let short = |requested| ErrorKind::NotEnoughRam {
        requested: saturate(requested),
        free: saturate(free),
    };
    if requested > free {
        return Err((None, (HEAP_FIELD, short(requested))));
    }
    for (index, partition) in partitions.iter().enumerate() {
        if partition.identity_mapped {
            continue;
        }
        requested += u128::from(partition.ram.size);
        if requested > free {
            return Err((Some(index), ("ram.size", short(requested))));
        }
    }
    Ok(())
}

fn interval(range: Range<Ipa>) -> Interval {
    Interval::new(range.start.0, range.size)
}

fn phys_interval(range: Range<PhysAddr>) -> Interval {
    Interval::new(range.start.0, range.size)
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
