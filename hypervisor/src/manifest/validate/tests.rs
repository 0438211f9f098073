//! Validation: the board manifests against a QEMU-virt-like machine, then
//! one test per rule, each asserting the partition and field it names.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::super::*;
use crate::mm::addr::Range;
use crate::mm::PhysAddr;

const BOARD_MANIFEST: &str = include_str!("../../../../boards/qemu-virt/manifest.toml");
const INVALID_MANIFEST: &str = include_str!("../../../../boards/qemu-virt/invalid-manifest.toml");

const MIB: u64 = 1 << 20;

/// 1 GiB of RAM at 0x4000_0000, the hypervisor and bundle reserved at its start.
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
const WINDOWS: [Region<'static, Ipa>; 3] = [
    Region {
        name: "GICD",
        range: Range {
            start: Ipa(0x0800_0000),
            size: 0x1_0000,
        },
    },
    Region {
        name: "ITS",
        range: Range {
            start: Ipa(0x0808_0000),
            size: 0x2_0000,
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

fn image_size(name: &str) -> Option<u64> {
    match name {
        "testguest.bin" => Some(0x1_0000),
        "initrd.img" => Some(MIB),
        "huge.img" => Some(128 * MIB),
        _ => None,
    }
}

fn context() -> ValidationContext<'static> {
    ValidationContext {
        cpu_count: 4,
        ram: &RAM,
        reserved: &RESERVED,
        image_size: &image_size,
        ipa_bits: 40,
        device_windows: &WINDOWS,
        pci_devices: &PCI,
        dma_confined: false,
    }
}

/// The machine's PCI functions in these tests: a host bridge and edu.
static PCI: [crate::pci::Bdf; 2] = [
    crate::pci::Bdf::from_requester_id(0),
    crate::pci::Bdf::from_requester_id(8),
];

/// The board manifest as structures, to break one field at a time.
fn board() -> Manifest {
    let manifest = Manifest::parse(BOARD_MANIFEST).expect("board manifest parses");
    Manifest::new(manifest.partitions)
}

fn validate_err(manifest: &Manifest) -> ManifestError {
    match manifest.validate(&context()) {
        Ok(()) => panic!("validated: {manifest:?}"),
        Err(error) => error,
    }
}

/// Breaks partition `index` of the board manifest with `change` and returns
/// the error, after checking it names that partition and `field`.
fn broken(index: usize, field: &str, change: impl FnOnce(&mut PartitionConfig)) -> ErrorKind {
    let mut manifest = board();
    change(&mut manifest.partitions[index]);
    let error = validate_err(&manifest);
    let name = &manifest.partitions[index].name;
    let expected = if validate::partition_ref(index, name) == PartitionRef::Index(index) {
        PartitionRef::Index(index)
    } else {
        PartitionRef::Named(name.clone())
    };
    assert_eq!(error.partition, Some(expected), "{error}");
    assert_eq!(error.field, field, "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&alloc::format!("field {field}: ")),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    error.kind
}

fn alpha() -> PartitionRef {
    PartitionRef::Named("alpha".to_string())
}

#[test]
fn board_manifest_is_valid() {
    Manifest::load(BOARD_MANIFEST, &context()).expect("board manifest is valid");
}

#[test]
fn invalid_board_manifest_names_both_partitions_and_the_line() {
    let error = Manifest::load(INVALID_MANIFEST, &context()).expect_err("must be invalid");
    assert_eq!(error.field, "cpus");
    assert_eq!(
        error.kind,
        ErrorKind::CpuTaken {
            cpu: CpuIndex::from_const(1),
            other: alpha()
        }
    );
    let line = INVALID_MANIFEST
        .lines()
        .position(|l| l.starts_with("cpus = [1, 2]"))
        .map(|i| i as u32 + 1);
    assert_eq!(error.line, line);
    let expected = alloc::format!(
        "manifest: partition \"beta\": field cpus: CPU 1 is already given to \
         partition \"alpha\" (line {})",
        line.unwrap_or(0)
    );
    assert_eq!(error.to_string(), expected);
}

/// 1-based line numbers of the lines of `text` that satisfy `matches`.
fn lines_where(text: &str, matches: impl Fn(&str) -> bool) -> Vec<u32> {
    let numbered = text.lines().zip(1u32..);
    numbered
        .filter(|(l, _)| matches(l))
        .map(|(_, n)| n)
        .collect()
}

#[test]
fn validation_error_points_at_the_written_field() {
    let mut manifest = Manifest::parse(BOARD_MANIFEST).expect("parses");
    manifest.partitions[0].console_ipa = Ipa(0x0800_0000);
    let error = manifest.validate(&context()).expect_err("console on GICD");
    assert_eq!(
        (error.partition, error.field.as_str()),
        (Some(alpha()), "console_ipa")
    );
    assert_eq!(
        error.line,
        lines_where(BOARD_MANIFEST, |l| l.starts_with("console_ipa"))
            .first()
            .copied()
    );
}

#[test]
fn defaulted_field_error_points_at_the_partition_header() {
    let mut manifest = Manifest::parse(BOARD_MANIFEST).expect("parses");
    manifest.partitions[1].console_ipa = Ipa(0x0800_0000);
    let error = manifest.validate(&context()).expect_err("console on GICD");
    assert_eq!(error.field, "console_ipa");
    let headers = lines_where(BOARD_MANIFEST, |l| l == "[[partition]]");
    assert_eq!(error.line, headers.get(1).copied());
}

#[test]
fn no_partitions_is_an_error() {
    let error = validate_err(&Manifest::new(Vec::new()));
    assert_eq!(error.kind, ErrorKind::NoPartitions);
    assert_eq!(error.to_string(), "manifest: no [[partition]] declared");
}

#[test]
fn empty_name_is_rejected() {
    let kind = broken(0, "name", |p| p.name = String::new());
    assert_eq!(kind, ErrorKind::EmptyName);
}

#[test]
fn unprintable_name_is_rejected_and_partition_named_by_index() {
    for name in ["al pha", "al\u{7}pha", "alphä"] {
        let kind = broken(1, "name", |p| p.name = name.to_string());
        assert_eq!(kind, ErrorKind::NameNotPrintable, "{name:?}");
    }
}

#[test]
fn overlong_name_is_rejected() {
    let kind = broken(0, "name", |p| p.name = "a".repeat(MAX_NAME_LEN + 1));
    assert_eq!(
        kind,
        ErrorKind::NameTooLong {
            len: MAX_NAME_LEN + 1
        }
    );
}

#[test]
fn duplicate_name_is_rejected() {
    let kind = broken(1, "name", |p| p.name = "alpha".to_string());
    assert_eq!(kind, ErrorKind::DuplicateName { first: 0 });
}

#[test]
fn partition_without_cpus_is_rejected() {
    assert_eq!(broken(0, "cpus", |p| p.cpus.clear()), ErrorKind::NoCpus);
}

#[test]
fn cpu_beyond_the_machine_is_rejected() {
    let kind = broken(1, "cpus", |p| p.cpus[1] = CpuIndex::from_const(4));
    assert_eq!(
        kind,
        ErrorKind::CpuOutOfRange {
            cpu: CpuIndex::from_const(4),
            count: 4
        }
    );
}

#[test]
fn cpu_listed_twice_in_one_partition_is_rejected() {
    let kind = broken(0, "cpus", |p| p.cpus[1] = CpuIndex::from_const(0));
    assert_eq!(
        kind,
        ErrorKind::CpuListedTwice {
            cpu: CpuIndex::from_const(0)
        }
    );
}

#[test]
fn cpu_given_to_two_partitions_names_both() {
    let kind = broken(1, "cpus", |p| {
        p.cpus = vec![CpuIndex::from_const(3), CpuIndex::from_const(0)]
    });
    assert_eq!(
        kind,
        ErrorKind::CpuTaken {
            cpu: CpuIndex::from_const(0),
            other: alpha()
        }
    );
}

#[test]
fn zero_ram_is_rejected() {
    assert_eq!(
        broken(0, "ram.size", |p| p.ram.size = 0),
        ErrorKind::RamSizeZero
    );
}

#[test]
fn ram_size_not_multiple_of_2m_is_rejected() {
    let kind = broken(0, "ram.size", |p| p.ram.size = 3 * MIB);
    assert_eq!(kind, ErrorKind::RamSizeUnaligned { size: 3 * MIB });
}

#[test]
fn unaligned_ram_ipa_is_rejected() {
    let kind = broken(1, "ram.ipa", |p| p.ram.ipa = Ipa(0x4010_0000));
    assert_eq!(
        kind,
        ErrorKind::RamIpaUnaligned {
            ipa: Ipa(0x4010_0000)
        }
    );
}

#[test]
fn ram_wrapping_the_address_space_is_rejected() {
    let kind = broken(0, "ram.size", |p| {
        p.ram.ipa = Ipa(u64::MAX).align_down(RAM_ALIGN)
    });
    assert_eq!(kind, ErrorKind::RamOverflow);
}

#[test]
fn ram_beyond_the_ipa_space_is_rejected() {
    let kind = broken(0, "ram", |p| p.ram.ipa = Ipa((1 << 40) - 32 * MIB));
    assert_eq!(kind, ErrorKind::RamOutsideIpaSpace { ipa_bits: 40 });
}

#[test]
fn ram_overlapping_a_device_window_names_it() {
    let kind = broken(1, "ram", |p| p.ram.ipa = Ipa(0x0800_0000));
    let gicd = ErrorKind::RamOverlapsDevice {
        device: "GICD".to_string(),
        start: Ipa(0x0800_0000),
        size: 0x1_0000,
    };
    assert_eq!(kind, gicd);
}

#[test]
fn ram_overlapping_the_console_is_rejected() {
    let kind = broken(0, "ram", |p| p.console_ipa = Ipa(0x4100_0000));
    assert!(matches!(kind, ErrorKind::RamOverlapsDevice { device, .. } if device == "console"));
}

#[test]
fn unaligned_console_is_rejected() {
    let kind = broken(0, "console_ipa", |p| p.console_ipa = Ipa(0x0900_0800));
    assert_eq!(
        kind,
        ErrorKind::ConsoleUnaligned {
            ipa: Ipa(0x0900_0800)
        }
    );
}

#[test]
fn console_beyond_the_ipa_space_is_rejected() {
    let kind = broken(1, "console_ipa", |p| p.console_ipa = Ipa(1 << 40));
    assert_eq!(kind, ErrorKind::ConsoleOutsideIpaSpace { ipa_bits: 40 });
}

#[test]
fn console_on_a_device_window_is_rejected() {
    let kind = broken(1, "console_ipa", |p| p.console_ipa = Ipa(0x0809_0000));
    assert_eq!(
        kind,
        ErrorKind::ConsoleOverlapsDevice {
            device: "ITS".to_string()
        }
    );
}

/// Moves partition `p` to identity-mapped RAM at `base` (kernel 2 MiB in).
fn identity_at(p: &mut PartitionConfig, base: u64) {
    p.identity_mapped = true;
    p.ram.ipa = Ipa(base);
    p.kernel.ipa = Ipa(base + 2 * MIB);
}

#[test]
fn identity_mapped_ram_inside_free_ram_is_valid() {
    let mut manifest = board();
    identity_at(&mut manifest.partitions[0], 0x5000_0000);
    identity_at(&mut manifest.partitions[1], 0x5400_0000);
    manifest.validate(&context()).expect("valid");
}

#[test]
fn identity_mapped_ram_outside_physical_ram_is_rejected() {
    let kind = broken(0, "ram", |p| identity_at(p, 0x2000_0000));
    assert_eq!(kind, ErrorKind::IdentityRamNotPhysical);
    // Straddling the end of RAM is outside too.
    let kind = broken(0, "ram", |p| identity_at(p, 0x8000_0000 - 32 * MIB));
    assert_eq!(kind, ErrorKind::IdentityRamNotPhysical);
}

#[test]
fn identity_mapped_ram_over_a_reserved_range_names_it() {
    let kind = broken(1, "ram", |p| identity_at(p, 0x4600_0000));
    assert_eq!(
        kind,
        ErrorKind::IdentityRamReserved {
            region: "bundle".to_string()
        }
    );
}

#[test]
fn identity_mapped_partitions_must_not_share_ram() {
    let mut manifest = board();
    identity_at(&mut manifest.partitions[0], 0x5000_0000);
    identity_at(&mut manifest.partitions[1], 0x5200_0000);
    let error = validate_err(&manifest);
    assert_eq!(error.field, "ram");
    assert_eq!(error.kind, ErrorKind::IdentityRamOverlap { other: alpha() });
}

#[test]
fn total_ram_beyond_free_ram_blames_the_partition_that_does_not_fit() {
    // Free: 1024 MiB - 16 (hypervisor, rounded to 2 MiB blocks: 16) - 8 (bundle) = 1000 MiB,
    // of which the default heap takes 6 MiB (8 MiB less its 2 MiB boot arena).
    let heap = 6 * MIB;
    let kind = broken(1, "ram.size", |p| {
        p.ram.size = 1000 * MIB - heap - 64 * MIB + 2 * MIB
    });
    let free = 1000 * MIB;
    assert_eq!(
        kind,
        ErrorKind::NotEnoughRam {
            requested: free + 2 * MIB,
            free
        }
    );
    let mut manifest = board();
    manifest.partitions[1].ram.size = 1000 * MIB - heap - 64 * MIB;
    manifest.validate(&context()).expect("exactly fits");
}

#[test]
fn identity_mapped_ram_is_not_free_for_others() {
    let mut manifest = board();
    identity_at(&mut manifest.partitions[0], 0x5000_0000);
    manifest.partitions[0].ram.size = 500 * MIB;
    manifest.partitions[1].ram.size = 500 * MIB + 2 * MIB;
    let error = validate_err(&manifest);
    assert_eq!(error.field, "ram.size");
    assert_eq!(
        error.kind,
        ErrorKind::NotEnoughRam {
            // With the default heap's 6 MiB taken from RAM first.
            requested: 508 * MIB,
            free: 500 * MIB
        }
    );
}

#[test]
fn kernel_missing_from_the_bundle_is_rejected() {
    let kind = broken(0, "kernel.image", |p| {
        p.kernel.image = "linux.bin".to_string()
    });
    assert_eq!(
        kind,
        ErrorKind::ImageMissing {
            image: "linux.bin".to_string()
        }
    );
}

#[test]
fn initrd_missing_from_the_bundle_is_rejected() {
    let kind = broken(1, "initrd.image", |p| {
        p.initrd = Some(ImageConfig {
            image: "rootfs.cpio".to_string(),
            ipa: Ipa(0x4200_0000),
            format: crate::boot::guest_image::ImageFormat::Raw,
        });
    });
    assert_eq!(
        kind,
        ErrorKind::ImageMissing {
            image: "rootfs.cpio".to_string()
        }
    );
}

#[test]
fn unaligned_kernel_is_rejected() {
    let kind = broken(0, "kernel.ipa", |p| p.kernel.ipa = Ipa(0x4020_0004));
    assert_eq!(
        kind,
        ErrorKind::ImageUnaligned {
            ipa: Ipa(0x4020_0004)
        }
    );
}

#[test]
fn kernel_outside_ram_is_rejected() {
    let kind = broken(0, "kernel.ipa", |p| p.kernel.ipa = Ipa(0x3000_0000));
    let outside = ErrorKind::ImageOutsideRam {
        image: "testguest.bin".to_string(),
        size: 0x1_0000,
    };
    assert_eq!(kind, outside);
    // Starting inside but running past the end of RAM.
    let kind = broken(0, "kernel.ipa", |p| {
        p.kernel.ipa = Ipa(0x4400_0000 - 0x1000)
    });
    assert_eq!(kind, outside);
}

#[test]
fn initrd_larger_than_ram_is_rejected() {
    let kind = broken(1, "initrd.ipa", |p| {
        p.initrd = Some(ImageConfig {
            image: "huge.img".to_string(),
            ipa: Ipa(0x4000_0000),
            format: crate::boot::guest_image::ImageFormat::Raw,
        });
    });
    assert_eq!(
        kind,
        ErrorKind::ImageOutsideRam {
            image: "huge.img".to_string(),
            size: 128 * MIB
        }
    );
}

#[test]
fn initrd_overlapping_the_kernel_is_rejected() {
    let kind = broken(0, "initrd.ipa", |p| {
        p.initrd = Some(ImageConfig {
            image: "initrd.img".to_string(),
            ipa: Ipa(0x4020_8000),
            format: crate::boot::guest_image::ImageFormat::Raw,
        });
    });
    assert_eq!(kind, ErrorKind::ImagesOverlap);
    let mut manifest = board();
    let initrd = ImageConfig {
        image: "initrd.img".to_string(),
        ipa: Ipa(0x4021_0000),
        format: crate::boot::guest_image::ImageFormat::Raw,
    };
    manifest.partitions[0].initrd = Some(initrd);
    manifest
        .validate(&context())
        .expect("initrd right after the kernel");
}

#[test]
fn overlong_bootargs_are_rejected() {
    let kind = broken(0, "bootargs", |p| {
        p.bootargs = "x".repeat(MAX_BOOTARGS_LEN + 1)
    });
    assert_eq!(
        kind,
        ErrorKind::BootargsTooLong {
            len: MAX_BOOTARGS_LEN + 1
        }
    );
    let mut manifest = board();
    manifest.partitions[0].bootargs = "x".repeat(MAX_BOOTARGS_LEN);
    manifest.validate(&context()).expect("longest bootargs");
}

#[test]
fn bootargs_with_control_characters_are_rejected() {
    for bootargs in ["a\0b", "a\nb"] {
        let kind = broken(1, "bootargs", |p| p.bootargs = bootargs.to_string());
        assert_eq!(kind, ErrorKind::BootargsNotPrintable);
    }
}

#[test]
fn pci_function_absent_from_the_machine_is_rejected() {
    let kind = broken(0, "pci", |p| {
        identity_at(p, 0x5000_0000);
        p.pci = vec![bdf("00:02.0")];
    });
    assert_eq!(
        kind,
        ErrorKind::NoSuchPciDevice {
            bdf: "00:02.0".into()
        }
    );
}

#[test]
fn pci_function_listed_twice_is_rejected() {
    let kind = broken(0, "pci", |p| {
        identity_at(p, 0x5000_0000);
        p.pci = vec![bdf("00:01.0"), bdf("00:01.0")];
    });
    assert_eq!(
        kind,
        ErrorKind::PciDeviceListedTwice {
            bdf: "00:01.0".into()
        }
    );
}

#[test]
fn pci_function_given_to_two_partitions_names_the_first() {
    let mut manifest = board();
    identity_at(&mut manifest.partitions[0], 0x5000_0000);
    manifest.partitions[0].dma = DmaPolicy::Unconfined;
    manifest.partitions[0].pci = vec![bdf("00:01.0")];
    identity_at(&mut manifest.partitions[1], 0x5800_0000);
    manifest.partitions[1].pci = vec![bdf("00:01.0")];
    let error = validate_err(&manifest);
    assert_eq!(error.field, "pci");
    assert_eq!(
        error.kind,
        ErrorKind::PciDeviceTaken {
            bdf: "00:01.0".into(),
            other: alpha()
        }
    );
    // The other partition is named once, not `partition partition "alpha"`.
    assert!(error
        .to_string()
        .ends_with("field pci: PCI function 00:01.0 is already given to partition \"alpha\""));
}

#[test]
fn dma_capable_device_without_identity_mapped_ram_is_refused() {
    let kind = broken(0, "pci", |p| {
        p.dma = DmaPolicy::Unconfined;
        p.pci = vec![bdf("00:01.0")];
    });
    assert_eq!(
        kind,
        ErrorKind::DmaNeedsIdentityMappedRam {
            bdf: "00:01.0".into()
        }
    );
    assert!(
        kind.to_string().contains("identity_mapped = true"),
        "{kind}"
    );
}

#[test]
fn pci_function_with_identity_mapped_ram_and_unconfined_dma_is_accepted_without_smmu() {
    let mut manifest = board();
    identity_at(&mut manifest.partitions[0], 0x5000_0000);
    manifest.partitions[0].dma = DmaPolicy::Unconfined;
    manifest.partitions[0].pci = vec![bdf("00:01.0")];
    assert_eq!(manifest.validate(&context()), Ok(()));
}

#[test]
fn pci_without_smmu_is_refused_unless_dma_is_declared_unconfined() {
    let kind = broken(0, "dma", |p| {
        identity_at(p, 0x5000_0000);
        p.pci = vec![bdf("00:01.0")];
    });
    assert_eq!(
        kind,
        ErrorKind::DmaNotConfined {
            bdf: "00:01.0".into()
        }
    );
    let line = kind.to_string();
    assert!(line.contains("no SMMU"), "{line}");
    assert!(line.contains("dma = \"unconfined\""), "{line}");
}

#[test]
fn with_an_smmu_pci_needs_neither_identity_mapping_nor_a_dma_declaration() {
    let mut manifest = board();
    manifest.partitions[0].pci = vec![bdf("00:01.0")];
    assert!(!manifest.partitions[0].identity_mapped);
    let ctx = ValidationContext {
        dma_confined: true,
        ..context()
    };
    assert_eq!(manifest.validate(&ctx), Ok(()));
    assert_eq!(
        manifest.validate(&context()).map_err(|e| e.field),
        Err("dma".into()),
        "the same manifest without the SMMU"
    );
}

#[test]
fn dma_policy_parses_and_defaults_to_confined() {
    let text = BOARD_MANIFEST.replacen("bootargs", "dma = \"unconfined\"\nbootargs", 1);
    let manifest = Manifest::parse(&text).expect("parses");
    assert_eq!(manifest.partitions[0].dma, DmaPolicy::Unconfined);
    assert_eq!(manifest.partitions[1].dma, DmaPolicy::Confined);
    let text = BOARD_MANIFEST.replacen("bootargs", "dma = \"open\"\nbootargs", 1);
    let error = Manifest::parse(&text).expect_err("unknown policy");
    assert_eq!(error.field, "dma");
}

#[test]
fn its_limits_default_and_parse() {
    let text = BOARD_MANIFEST.replacen(
        "bootargs",
        "its = { max_events = 128, max_commands_per_trap = 16 }\nbootargs",
        1,
    );
    let manifest = Manifest::parse(&text).expect("parses");
    let its = manifest.partitions[0].its;
    assert_eq!(
        (its.max_devices, its.max_events, its.max_commands_per_trap),
        (64, 128, 16)
    );
    assert_eq!(
        manifest.partitions[1].its,
        crate::manifest::ItsLimits::DEFAULT
    );
}

#[test]
fn its_limit_out_of_range_names_the_field() {
    let kind = broken(0, "its.max_events", |p| p.its.max_events = 1 << 20);
    assert_eq!(
        kind,
        ErrorKind::ItsLimitOutOfRange {
            value: 1 << 20,
            max: 65536
        }
    );
    let kind = broken(1, "its.max_commands_per_trap", |p| {
        p.its.max_commands_per_trap = 0
    });
    assert_eq!(
        kind,
        ErrorKind::ItsLimitOutOfRange {
            value: 0,
            max: 4096
        }
    );
}

#[test]
fn its_count_beyond_the_layout_is_refused() {
    let kind = broken(0, "its.count", |p| p.its.count = 5);
    assert_eq!(kind, ErrorKind::ItsLimitOutOfRange { value: 5, max: 4 });
}

#[test]
fn its_max_collections_parses_and_is_bounded() {
    let text = BOARD_MANIFEST.replacen("bootargs", "its = { max_collections = 8 }\nbootargs", 1);
    let manifest = Manifest::parse(&text).expect("parses");
    assert_eq!(manifest.partitions[0].its.max_collections, 8);
    assert_eq!(manifest.partitions[1].its.max_collections, 64);
    let kind = broken(0, "its.max_collections", |p| p.its.max_collections = 65536);
    assert_eq!(
        kind,
        ErrorKind::ItsLimitOutOfRange {
            value: 65536,
            max: 4096
        }
    );
}

#[test]
fn budgets_beyond_the_heap_are_refused_naming_the_heaviest_field() {
    // Each cap alone is in range; together, two such vITSs in the second
    // partition do not fit the heap beside the first.
    let kind = broken(1, "its.max_events", |p| {
        p.its.max_events = 65536;
        p.its.count = 2;
    });
    let ErrorKind::HeapBudget {
        budget,
        needed,
        heap,
    } = kind
    else {
        panic!("{kind:?}");
    };
    assert_eq!(heap, crate::partition::budget::HEAP_BYTES);
    assert!(needed > heap && budget < needed, "{kind:?}");
    let kind = broken(0, "its.max_devices", |p| {
        p.its.max_devices = 4096;
        p.its.max_collections = 4096;
        p.its.max_events = 1;
        p.its.count = 4;
    });
    assert!(matches!(kind, ErrorKind::HeapBudget { .. }), "{kind:?}");
    // The same caps in a partition alone fit: the sum is what counts.
    let mut manifest = board();
    manifest.partitions[1].its.max_events = 16384;
    assert_eq!(manifest.validate(&context()), Ok(()));
}

fn bdf(text: &str) -> crate::pci::Bdf {
    text.parse().expect("a PCI address")
}

mod heap;
