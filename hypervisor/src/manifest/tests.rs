//! Parsing: the board manifests, defaults, and every shape error naming its
//! partition, field and line.

use alloc::string::{String, ToString};
use alloc::vec;

use proptest::prelude::*;

use super::*;

const BOARD_MANIFEST: &str = include_str!("../../../boards/qemu-virt/manifest.toml");

/// A one-partition manifest with `extra` lines appended to the partition.
fn one_partition(extra: &str) -> String {
    let mut text = String::from(
        "[[partition]]\n\
         name = \"alpha\"\n\
         cpus = [0, 1]\n\
         ram = { ipa = 0x4000_0000, size = \"64M\" }\n\
         kernel = { image = \"testguest.bin\", ipa = 0x4020_0000 }\n",
    );
    text.push_str(extra);
    text
}

fn parse_err(text: &str) -> ManifestError {
    match Manifest::parse(text) {
        Ok(manifest) => panic!("parsed: {manifest:?}"),
        Err(error) => error,
    }
}

fn named(name: &str) -> Option<PartitionRef> {
    Some(PartitionRef::Named(name.to_string()))
}

#[test]
fn board_manifest_parses_to_two_partitions() {
    let manifest = Manifest::parse(BOARD_MANIFEST).expect("board manifest parses");
    let alpha = PartitionConfig {
        name: "alpha".to_string(),
        cpus: vec![CpuIndex::from_const(0), CpuIndex::from_const(1)],
        ram: RamConfig {
            ipa: Ipa(0x4000_0000),
            size: 64 << 20,
        },
        identity_mapped: false,
        kernel: ImageConfig {
            image: "testguest.bin".to_string(),
            ipa: Ipa(0x4020_0000),
            format: crate::boot::guest_image::ImageFormat::Raw,
        },
        initrd: None,
        bootargs: "scenario=ticker".to_string(),
        console_ipa: Ipa(0x0900_0000),
        pci: Vec::new(),
        its: crate::manifest::ItsLimits::DEFAULT,
        wfi: crate::manifest::WfiPolicy::Resident,
        dma: crate::manifest::DmaPolicy::Confined,
    };
    let beta = PartitionConfig {
        name: "beta".to_string(),
        cpus: vec![CpuIndex::from_const(2), CpuIndex::from_const(3)],
        ..alpha.clone()
    };
    assert_eq!(manifest.partitions, vec![alpha, beta]);
    assert_eq!(manifest.partitions[1].entry_point(), Ipa(0x4020_0000));
}

#[test]
fn omitted_optional_fields_take_their_defaults() {
    let manifest = Manifest::parse(&one_partition("")).expect("parses");
    let partition = &manifest.partitions[0];
    assert!(!partition.identity_mapped);
    assert_eq!(partition.initrd, None);
    assert_eq!(partition.bootargs, "");
    assert_eq!(partition.console_ipa, DEFAULT_CONSOLE_IPA);
    assert_eq!(partition.wfi, crate::manifest::WfiPolicy::Resident);
}

#[test]
fn the_wfi_policy_is_read_and_a_bad_one_named() {
    let manifest = Manifest::parse(&one_partition("wfi = \"doorbell\"\n")).expect("parses");
    assert_eq!(
        manifest.partitions[0].wfi,
        crate::manifest::WfiPolicy::Doorbell
    );
    let error = parse_err(&one_partition("wfi = \"sleep\"\n"));
    assert_eq!(error.field, "wfi");
    assert!(error.to_string().contains("resident"), "{error}");
}

#[test]
fn optional_fields_are_read_when_given() {
    let text = one_partition(
        "identity_mapped = true\n\
         initrd = { image = \"initrd.img\", ipa = 0x4800_0000 }\n\
         console_ipa = 0x0a00_0000\n",
    );
    let partition = &Manifest::parse(&text).expect("parses").partitions[0];
    assert!(partition.identity_mapped);
    let initrd = partition.initrd.as_ref().expect("initrd");
    assert_eq!(
        (initrd.image.as_str(), initrd.ipa),
        ("initrd.img", Ipa(0x4800_0000))
    );
    assert_eq!(partition.console_ipa, Ipa(0x0a00_0000));
}

#[test]
fn ram_size_accepts_integers_and_suffixes() {
    for (written, bytes) in [
        ("0x400000", 4 << 20),
        ("4194304", 4 << 20),
        ("\"2G\"", 2 << 30),
    ] {
        let text = format!(
            "[[partition]]\nname = \"a\"\ncpus = [0]\nram = {{ ipa = 0, size = {written} }}\n\
             kernel = {{ image = \"k\", ipa = 0 }}\n"
        );
        let manifest = Manifest::parse(&text).expect("parses");
        assert_eq!(manifest.partitions[0].ram.size, bytes, "{written}");
    }
}

#[test]
fn sub_table_form_is_accepted() {
    let text = "[[partition]]\nname = \"a\"\ncpus = [0]\n\
                kernel = { image = \"k\", ipa = 0 }\n\
                [partition.ram]\nipa = 0\nsize = \"2M\"\n";
    let manifest = Manifest::parse(text).expect("parses");
    assert_eq!(manifest.partitions[0].ram.size, 2 << 20);
}

#[test]
fn empty_text_parses_to_no_partitions() {
    assert!(Manifest::parse("").expect("parses").partitions.is_empty());
}

#[test]
fn bad_size_string_names_partition_field_and_line() {
    let text = "[[partition]]\nname = \"alpha\"\ncpus = [0]\n\
                ram = { ipa = 0, size = \"64Q\" }\nkernel = { image = \"k\", ipa = 0 }\n";
    let error = parse_err(text);
    assert_eq!(error.partition, named("alpha"));
    assert_eq!(error.field, "ram.size");
    assert_eq!(error.line, Some(4));
    assert_eq!(
        error.to_string(),
        "manifest: partition \"alpha\": field ram.size: \"64Q\" is not a size \
         (use bytes or K/M/G) (line 4)"
    );
}

#[test]
fn negative_size_is_rejected() {
    let error = parse_err("[[partition]]\nram = { ipa = 0, size = -2 }\n");
    assert_eq!(error.field, "ram.size");
    assert!(error.to_string().contains("negative"), "{error}");
}

#[test]
fn syntax_error_gives_the_line() {
    let error = parse_err(&one_partition("bootargs = \"unterminated\n"));
    assert!(matches!(error.kind, ErrorKind::Syntax(_)), "{error:?}");
    assert_eq!(error.line, Some(6));
    assert!(
        error.to_string().starts_with("manifest: not valid TOML: "),
        "{error}"
    );
}

#[test]
fn unknown_partition_field_is_named() {
    let error = parse_err(&one_partition("colour = \"blue\"\n"));
    assert_eq!(error.partition, named("alpha"));
    assert_eq!(error.field, "colour");
    assert_eq!(error.line, Some(6));
    assert!(
        error.to_string().contains("unknown field `colour`"),
        "{error}"
    );
}

#[test]
fn unknown_nested_field_is_named_with_its_path() {
    let text = one_partition("initrd = { image = \"i\", ipa = 0, size = 3 }\n");
    let error = parse_err(&text);
    assert_eq!(error.partition, named("alpha"));
    assert_eq!(error.field, "initrd.size");
}

#[test]
fn unknown_top_level_field_is_named_without_partition() {
    let error = parse_err("partitions = []\n");
    assert_eq!(error.partition, None);
    assert_eq!(error.field, "partitions");
    assert_eq!(error.to_string().lines().count(), 1);
}

#[test]
fn missing_field_is_named() {
    let text = "[[partition]]\nname = \"alpha\"\ncpus = [0]\n\
                ram = { ipa = 0, size = \"2M\" }\nkernel = { image = \"k\", ipa = 0 }\n\
                [[partition]]\nname = \"beta\"\ncpus = [1]\n\
                ram = { ipa = 0, size = \"2M\" }\n";
    let error = parse_err(text);
    assert_eq!(error.partition, named("beta"));
    assert_eq!(error.field, "kernel");
    assert_eq!(error.line, Some(6));
    assert!(
        error.to_string().contains("missing field `kernel`"),
        "{error}"
    );
}

#[test]
fn missing_nested_field_is_named_with_its_path() {
    let error = parse_err(&one_partition("initrd = { image = \"i\" }\n"));
    assert_eq!(error.field, "initrd.ipa");
    let text = "[[partition]]\nname = \"a\"\ncpus = [0]\nkernel = { image = \"k\", ipa = 0 }\n\
                [partition.ram]\nipa = 0\n";
    let error = parse_err(text);
    assert_eq!((error.field.as_str(), error.line), ("ram.size", Some(5)));
}

#[test]
fn partition_without_name_is_named_by_index() {
    let text = format!("{}[[partition]]\ncpus = [2]\n", one_partition(""));
    let error = parse_err(&text);
    assert_eq!(error.partition, Some(PartitionRef::Index(1)));
    assert_eq!(error.field, "name");
    assert!(
        error
            .to_string()
            .starts_with("manifest: partition #1: field name: "),
        "{error}"
    );
}

#[test]
fn wrong_type_names_the_array_element() {
    let text = "[[partition]]\nname = \"alpha\"\ncpus = [0, \"one\"]\n";
    let error = parse_err(text);
    assert_eq!(error.partition, named("alpha"));
    assert_eq!(error.field, "cpus[1]");
    assert_eq!(error.line, Some(3));
}

#[test]
fn pci_entry_that_is_not_an_address_is_a_shape_error() {
    let error =
        parse_err("[[partition]]\nname = \"alpha\"\ncpus = [0]\npci = [\"00:01.0\", \"edu\"]\n");
    assert_eq!(error.field, "pci");
    assert!(
        matches!(&error.kind, ErrorKind::Shape(m) if m.contains("\"edu\" is not a PCI address"))
    );
}

#[test]
fn cpu_index_beyond_the_supported_cpus_is_a_shape_error() {
    let error = parse_err("[[partition]]\nname = \"alpha\"\ncpus = [0, 64]\n");
    assert!(error.field.starts_with("cpus"), "{}", error.field);
    assert!(matches!(&error.kind, ErrorKind::Shape(m) if m.contains("CPU 64 is beyond")));
}

#[test]
fn out_of_range_cpu_number_is_a_shape_error() {
    let error = parse_err("[[partition]]\nname = \"alpha\"\ncpus = [-1]\n");
    assert_eq!(error.field, "cpus[0]");
    assert!(matches!(error.kind, ErrorKind::Shape(_)));
}

#[test]
fn wrong_type_of_field_is_named() {
    let error = parse_err(&one_partition("identity_mapped = \"yes\"\n"));
    assert_eq!(error.field, "identity_mapped");
    let error = parse_err(&one_partition("console_ipa = \"9000000\"\n"));
    assert_eq!(error.field, "console_ipa");
}

#[test]
fn partition_as_a_single_table_is_rejected() {
    let error = parse_err("[partition]\nname = \"alpha\"\n");
    assert_eq!(error.partition, None);
    assert_eq!(error.field, "partition");
}

#[test]
fn every_error_is_one_line() {
    for text in [
        "[[partition]\n",
        "x = 1\n",
        "[[partition]]\nname = 3\n",
        "a = \"\n\"\n",
    ] {
        let error = parse_err(text);
        assert_eq!(error.to_string().lines().count(), 1, "{error}");
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = Manifest::parse(&text);
    }

    #[test]
    fn tomlish_text_never_panics(text in "[\\[\\]{}=,.\"'#\\n a-z0-9_-]{0,200}") {
        let _ = Manifest::parse(&text);
    }

    #[test]
    fn mutated_board_manifest_never_panics(
        position in 0..BOARD_MANIFEST.len(),
        insert in "[\\[\\]{}=,.\"'#\\n a-z0-9_-]{0,8}",
        cut in 0usize..16,
    ) {
        let mut text = String::from(BOARD_MANIFEST);
        let position = (0..=position).rev().find(|&p| text.is_char_boundary(p)).unwrap_or(0);
        let end = (position + cut..=text.len()).find(|&p| text.is_char_boundary(p)).unwrap_or(text.len());
        text.replace_range(position..end, &insert);
        if let Err(error) = Manifest::parse(&text) {
            prop_assert_eq!(error.to_string().lines().count(), 1);
        }
    }
}

#[test]
fn kernel_format_defaults_to_image_and_takes_raw() {
    use crate::boot::guest_image::ImageFormat;
    let m = Manifest::parse(&one_partition("")).unwrap();
    assert_eq!(m.partitions[0].kernel.format, ImageFormat::Image);
    let raw = one_partition("").replace(
        "ipa = 0x4020_0000 }",
        "ipa = 0x4020_0000, format = \"raw\" }",
    );
    assert_ne!(raw, one_partition(""), "the fixture's kernel line changed");
    let m = Manifest::parse(&raw).unwrap();
    assert_eq!(m.partitions[0].kernel.format, ImageFormat::Raw);
}

#[test]
fn an_unknown_kernel_format_names_the_field() {
    let bad = one_partition("").replace(
        "ipa = 0x4020_0000 }",
        "ipa = 0x4020_0000, format = \"elf\" }",
    );
    let error = parse_err(&bad);
    assert_eq!(error.field, "kernel.format");
}
