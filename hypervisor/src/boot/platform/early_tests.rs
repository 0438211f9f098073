//! The heap-free early reader (`early.rs`) agrees with the full parser on
//! every QEMU tree, finds the Raspberry Pi 4 console at its CPU address
//! (through `/soc` `ranges`, past QEMU's FDT_NOPs), follows nested and
//! empty `ranges`, refuses a bus without `ranges`, and never panics on a
//! mutated tree.

use alloc::vec::Vec;

use proptest::prelude::*;
use vm_fdt::FdtWriter;

use super::early::{total_size, EarlyConsole, EarlyTree};
use super::*;

const RASPI4B: &[u8] = include_bytes!("../../../testdata/qemu-raspi4b-nops.dtb");
const FIXTURES: [&[u8]; 6] = [
    RASPI4B,
    include_bytes!("../../../testdata/qemu-virt-gicv4.dtb"),
    include_bytes!("../../../testdata/qemu-virt-gicv2.dtb"),
    include_bytes!("../../../testdata/qemu-virt-numa.dtb"),
    include_bytes!("../../../testdata/qemu-virt-gicv4-smmuv3.dtb"),
    include_bytes!("../../../testdata/qemu-edited-guest.dtb"),
];

fn memory(blob: &[u8]) -> Result<Vec<Range<PhysAddr>>, TreeError> {
    let mut found = Vec::new();
    EarlyTree::new(blob)?.for_each_memory(|r| found.push(r))?;
    Ok(found)
}

fn console(blob: &[u8]) -> Option<EarlyConsole> {
    EarlyTree::new(blob).unwrap().console().unwrap()
}

#[test]
fn early_reader_agrees_with_the_full_parser_on_qemu_trees() {
    for blob in FIXTURES {
        let platform = Platform::from_fdt(blob).unwrap();
        assert_eq!(total_size(blob), Some(blob.len()));
        let mut early = memory(blob).unwrap();
        early.sort_by_key(|r| r.start);
        assert_eq!(early, platform.memory, "{}", platform.model);
        let expected = platform.console.as_ref().map(|c| EarlyConsole {
            base: c.registers.start,
            kind: c.kind,
        });
        assert_eq!(console(blob), expected, "{}", platform.model);
    }
}

#[test]
fn raspi4b_console_is_the_mini_uart_at_its_cpu_address() {
    // stdout-path = "serial1:115200n8", serial1 = /soc/serial@7e215040,
    // /soc ranges map bus 0x7e00_0000 to CPU 0xfe00_0000.
    assert_eq!(
        console(RASPI4B),
        Some(EarlyConsole {
            base: PhysAddr(0xfe21_5040),
            kind: UartKind::Bcm2835Aux,
        })
    );
    let platform = Platform::from_fdt(RASPI4B).unwrap();
    let banner = platform.to_string();
    for expected in [
        "CPUs     4: 0x0 0x1 0x2 0x3 (arm,cortex-a72)",
        "GIC      v2 GICD 0xff841000 (4 KiB), GICC 0xff842000 (8 KiB), GICH 0xff844000 (8 KiB), GICV 0xff846000 (8 KiB)",
        "console  brcm,bcm2835-aux-uart 0xfe215040",
    ] {
        assert!(banner.contains(expected), "banner lacks {expected:?}:\n{banner}");
    }
    let uart = platform.console.unwrap();
    assert_eq!(uart.node, "/soc/serial@7e215040");
    assert_eq!(uart.registers.start, PhysAddr(0xfe21_5040));
    match platform.gic {
        Gic::V2(gic) => {
            assert_eq!(gic.distributor.start, PhysAddr(0xff84_1000));
            assert_eq!(gic.cpu_interface.start, PhysAddr(0xff84_2000));
        }
        Gic::V3(_) => panic!("the Pi 4 has a GIC-400"),
    }
}

#[test]
fn total_size_needs_the_magic() {
    assert_eq!(total_size(&[0; 8]), None);
    assert_eq!(total_size(&[0xd0, 0x0d, 0xfe]), None);
    assert_eq!(
        total_size(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x10, 0]),
        Some(0x1000)
    );
}

/// How the bus between the root and the UART translates.
#[derive(Clone, Copy)]
enum Bus {
    /// `/soc` (1 cell) maps 0x7e00_0000 to 0xfe00_0000 and holds a nested
    /// `/soc/sub` (1 cell) mapping 0x0 to 0x7e20_0000.
    Nested,
    /// `ranges;`: the bus address is the CPU address.
    Identity,
    /// No `ranges`: the UART is not visible to the CPU.
    Missing,
}

fn tree_with(bus: Bus) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_string("model", "Bus test").unwrap();
    let memory = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0, 0x4000_0000]).unwrap();
    w.end_node(memory).unwrap();
    let disabled = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0x8000_0000, 0x1000])
        .unwrap();
    w.property_string("status", "disabled").unwrap();
    w.end_node(disabled).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/soc/sub/serial@40:115200")
        .unwrap();
    w.end_node(chosen).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    match bus {
        Bus::Nested => w
            .property_array_u32("ranges", &[0x7e00_0000, 0, 0xfe00_0000, 0x180_0000])
            .unwrap(),
        Bus::Identity => w.property_null("ranges").unwrap(),
        Bus::Missing => {}
    }
    let sub = w.begin_node("sub").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    match bus {
        Bus::Nested => w
            .property_array_u32("ranges", &[0, 0x7e20_0000, 0x1000])
            .unwrap(),
        Bus::Identity | Bus::Missing => w.property_null("ranges").unwrap(),
    }
    // A sibling with a matching name prefix comes first: only the exact
    // unit address may be taken.
    for unit in ["serial@0", "serial@40"] {
        let serial = w.begin_node(unit).unwrap();
        w.property_string("compatible", "brcm,bcm2835-aux-uart")
            .unwrap();
        w.property_array_u32("reg", &[if unit == "serial@0" { 0 } else { 0x40 }, 0x40])
            .unwrap();
        w.end_node(serial).unwrap();
    }
    w.end_node(sub).unwrap();
    w.end_node(soc).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn nested_ranges_are_applied_bus_by_bus() {
    let blob = tree_with(Bus::Nested);
    assert_eq!(
        console(&blob),
        Some(EarlyConsole {
            base: PhysAddr(0xfe20_0040),
            kind: UartKind::Bcm2835Aux,
        })
    );
    assert_eq!(
        memory(&blob).unwrap(),
        [Range {
            start: PhysAddr(0),
            size: 0x4000_0000
        }]
    );
    let uart = Platform::from_fdt(&blob).ok().and_then(|p| p.console);
    // The full parser needs a GIC and CPUs; the console alone must agree.
    let tree = tree::Tree::parse(&blob).unwrap();
    let node = tree.find_path("/soc/sub/serial@40").unwrap();
    assert_eq!(
        decode::reg(&tree, node).unwrap()[0].start,
        PhysAddr(0xfe20_0040)
    );
    assert!(uart.is_none());
}

#[test]
fn empty_ranges_is_the_identity() {
    let blob = tree_with(Bus::Identity);
    assert_eq!(console(&blob).map(|c| c.base), Some(PhysAddr(0x40)));
}

#[test]
fn a_bus_without_ranges_hides_its_children() {
    let blob = tree_with(Bus::Missing);
    assert_eq!(console(&blob), None);
    let tree = tree::Tree::parse(&blob).unwrap();
    let node = tree.find_path("/soc/sub/serial@40").unwrap();
    let error = decode::reg(&tree, node).unwrap_err();
    assert_eq!(
        error.to_string(),
        "device tree node /soc: property ranges: missing: children are not visible to the CPU"
    );
}

/// A blob mutated at a few places: overwritten bytes, then truncated.
fn mutated(base: &[u8], edits: &[(usize, u8)], keep: usize) -> Vec<u8> {
    let mut blob = base.to_vec();
    for &(at, byte) in edits {
        let at = at % blob.len();
        blob[at] = byte;
    }
    blob.truncate(keep.max(1));
    blob
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Neither reader panics on a corrupted tree, and what the early
    /// reader accepts is usable: RAM ranges that do not wrap, non-empty.
    #[test]
    fn mutated_trees_never_panic(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec((0usize..30_000, any::<u8>()), 1..8),
        keep in 0usize..30_000,
    ) {
        let blob = mutated(FIXTURES[which], &edits, keep);
        let _ = Platform::from_fdt(&blob);
        if let Ok(early) = EarlyTree::new(&blob) {
            let mut ranges = Vec::new();
            let _ = early.for_each_memory(|r| ranges.push(r));
            for range in ranges {
                prop_assert!(range.size != 0);
                prop_assert!(range.start.0.checked_add(range.size).is_some());
            }
            let _ = early.console();
        }
    }
}
