//! The manifest parser and validator (`manifest/`): arbitrary text as the
//! operator's `manifest.toml`, checked against a QEMU-virt-like machine.
//!
//! Asserts: every error names what it is about: the partition and the
//! field for every validation error and every shape error inside a
//! partition (a TOML syntax error, a document with no partition and a
//! shape error outside any partition name neither), and a line, when
//! given, inside the text; an accepted manifest
//! keeps every rule the boot path relies on (unique printable names, CPUs
//! that exist and belong to one partition each, aligned non-empty RAM
//! inside the IPA space, the kernel inside its RAM, known PCI functions
//! given once, vITS limits within their bounds).

use std::collections::BTreeSet;

use hypervisor::manifest::{
    DmaPolicy, ErrorKind, ItsLimits, Manifest, ManifestError, Region, ValidationContext,
    MAX_NAME_LEN, RAM_ALIGN,
};
use hypervisor::mm::addr::Range;
use hypervisor::mm::{Ipa, PhysAddr};
use hypervisor::pci::Bdf;

const MIB: u64 = 1 << 20;
const IPA_BITS: u32 = 40;
const CPUS: usize = 4;

const RAM: [Range<PhysAddr>; 1] = [Range {
    start: PhysAddr(0x4000_0000),
    size: 1024 * MIB,
}];
const RESERVED: [Region<'static, PhysAddr>; 2] = [
    Region {
        name: "hypervisor",
        range: Range {
            start: PhysAddr(0x4020_0000),
            size: 16 * MIB,
        },
    },
    Region {
        name: "bundle",
        range: Range {
            start: PhysAddr(0x4800_0000),
            size: 8 * MIB,
        },
    },
];
const WINDOWS: [Region<'static, Ipa>; 2] = [
    Region {
        name: "GICD",
        range: Range {
            start: Ipa(0x0800_0000),
            size: 0x1_0000,
        },
    },
    Region {
        name: "GICR",
        range: Range {
            start: Ipa(0x080a_0000),
            size: 4 * 0x4_0000,
        },
    },
];
static PCI: [Bdf; 3] = [
    Bdf::from_requester_id(0),
    Bdf::from_requester_id(8),
    Bdf::from_requester_id(16),
];

fn image_size(name: &str) -> Option<u64> {
    match name {
        "testguest.bin" | "testguest-hi.bin" | "testguest-hi2.bin" => Some(0x1_0000),
        "Image" => Some(32 * MIB),
        "initrd.img" => Some(MIB),
        _ => None,
    }
}

/// One fuzz input: the manifest's text (invalid UTF-8 replaced).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let manifest = match Manifest::parse(&text) {
        Ok(manifest) => manifest,
        Err(error) => return check_error(&text, &error, false),
    };
    // Both machines: with an SMMU confining DMA and without one (where a
    // partition with PCI functions must say dma = "unconfined").
    for dma_confined in [true, false] {
        let ctx = ValidationContext {
            cpu_count: CPUS,
            ram: &RAM,
            reserved: &RESERVED,
            image_size: &image_size,
            ipa_bits: IPA_BITS,
            device_windows: &WINDOWS,
            pci_devices: &PCI,
            dma_confined,
        };
        match manifest.validate(&ctx) {
            Ok(()) => {
                check_valid(&manifest);
                // Without an SMMU, no partition's devices are confined
                // unless the manifest owned up to it.
                if !dma_confined {
                    for p in &manifest.partitions {
                        assert!(
                            p.pci.is_empty() || p.dma == DmaPolicy::Unconfined,
                            "{}: PCI functions accepted as confined without an SMMU",
                            p.name
                        );
                    }
                }
            }
            Err(error) => check_error(&text, &error, true),
        }
    }
}

fn check_error(text: &str, error: &ManifestError, validating: bool) {
    let shown = error.to_string();
    assert!(shown.starts_with("manifest: "), "{shown}");
    if let Some(line) = error.line {
        let lines = text.lines().count().max(1) as u32;
        assert!(
            line >= 1 && line <= lines + 1,
            "line {line} of {lines}: {shown}"
        );
    }
    match &error.kind {
        ErrorKind::Syntax(message) => {
            assert!(!validating);
            assert!(!message.is_empty(), "{shown}");
        }
        ErrorKind::NoPartitions => {}
        ErrorKind::Shape(message) => {
            assert!(!message.is_empty(), "{shown}");
            // Inside a partition the field is named.
            assert!(
                !error.field.is_empty() || error.partition.is_none(),
                "{shown}"
            );
        }
        _ => {
            assert!(validating, "{shown}");
            assert!(error.partition.is_some(), "no partition named: {shown}");
            assert!(!error.field.is_empty(), "no field named: {shown}");
        }
    }
}

fn check_valid(manifest: &Manifest) {
    let mut names = BTreeSet::new();
    let mut cpus = BTreeSet::new();
    let mut pci = BTreeSet::new();
    assert!(!manifest.partitions.is_empty());
    for partition in &manifest.partitions {
        let name = &partition.name;
        assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN, "{name:?}");
        assert!(name.bytes().all(|b| (0x21..0x7f).contains(&b)), "{name:?}");
        assert!(names.insert(name.clone()), "duplicate {name:?}");
        assert!(!partition.cpus.is_empty());
        for cpu in &partition.cpus {
            assert!(usize::from(cpu.get()) < CPUS, "{cpu:?}");
            assert!(cpus.insert(cpu.get()), "CPU {cpu:?} given twice");
        }
        let ram = partition.ram;
        assert!(ram.size != 0 && ram.size % RAM_ALIGN == 0 && ram.ipa.raw() % RAM_ALIGN == 0);
        let end = ram.ipa.raw().checked_add(ram.size).expect("RAM end fits");
        assert!(end <= 1 << IPA_BITS, "RAM beyond the IPA space");
        let kernel = partition.kernel.ipa.raw();
        assert!(
            kernel >= ram.ipa.raw() && kernel < end,
            "kernel outside RAM"
        );
        for &bdf in &partition.pci {
            assert!(PCI.contains(&bdf), "{bdf} is not on the machine");
            assert!(pci.insert(bdf), "PCI function {bdf} given twice");
        }
        let its = partition.its;
        let max = ItsLimits::MAX;
        assert!(its.max_devices <= max.max_devices && its.max_events <= max.max_events);
        assert!(its.max_commands_per_trap <= max.max_commands_per_trap);
        assert!(its.count >= 1 && its.count <= max.count, "{its:?}");
    }
}
