//! Host tests for the translation-table builder: descriptors are checked
//! bit for bit by walking the tables by hand, independently of the code.

use super::*;
use crate::mm::regime::{El2Access, El2Attributes, Stage2Access, Stage2Attributes};
use crate::mm::test_memory::{Event, TestTableMemory};
use crate::mm::{Ipa, VirtAddr};
use proptest::prelude::*;

// Descriptor bits spelled out independently of the code under test
// (ARM ARM D8.3.1, D8.3.2).
const BLOCK: u64 = 0b01;
const TABLE: u64 = 0b11;
const PAGE: u64 = 0b11;
const AF_BIT: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const AP1_RES1: u64 = 1 << 6;
const AP2_RO: u64 = 1 << 7;
const XN_BIT: u64 = 1 << 54;
const S2AP_RW: u64 = 0b11 << 6;
const S2AP_RO: u64 = 0b01 << 6;
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
const MIB2: u64 = 2 << 20;
const GIB: u64 = 1 << 30;

fn el2_table() -> El2PageTable<TestTableMemory> {
    PageTable::new(El2Stage1, TestTableMemory::new()).unwrap()
}

fn stage2_table(ipa_bits: u32) -> Stage2PageTable<TestTableMemory> {
    PageTable::new(Stage2::new(ipa_bits).unwrap(), TestTableMemory::new()).unwrap()
}

/// Raw descriptor `index` of the 4 KiB table at `table`.
fn entry<R: Regime>(pt: &PageTable<R, TestTableMemory>, table: u64, index: usize) -> u64 {
    pt.memory().read_entry(PhysAddr(table), index)
}

/// The next-level table a descriptor points to, checking it is a table descriptor.
fn next_table(descriptor: u64) -> u64 {
    assert_eq!(
        descriptor & 0b11,
        TABLE,
        "not a table descriptor: {descriptor:#x}"
    );
    assert_eq!(
        descriptor & !0x0000_ffff_ffff_f003,
        0,
        "stray bits in {descriptor:#x}"
    );
    descriptor & 0x0000_ffff_ffff_f000
}

fn rw_data() -> El2Attributes {
    El2Attributes::normal(El2Access::ReadWrite, true)
}

fn guest_ram() -> Stage2Attributes {
    Stage2Attributes::normal(Stage2Access::ReadWrite, false)
}

#[test]
fn el2_maps_first_gib_as_one_level_1_block() {
    let mut pt = el2_table();
    pt.map(VirtAddr(0), PhysAddr(0), GIB, rw_data()).unwrap();
    let l1 = next_table(entry(&pt, pt.root().raw(), 0));
    assert_eq!(
        entry(&pt, l1, 0),
        BLOCK | AF_BIT | AP1_RES1 | SH_INNER | XN_BIT, // AttrIndx 0, OA 0
    );
    assert_eq!(entry(&pt, l1, 1), 0);
    assert_eq!(
        pt.memory().tables_allocated(),
        2,
        "root and one level-1 table"
    );
}

#[test]
fn el2_device_page_descriptor_has_attr_index_1_non_shareable_xn() {
    let mut pt = el2_table();
    pt.map(
        VirtAddr(0x0900_0000),
        PhysAddr(0x0900_0000),
        PAGE_SIZE,
        El2Attributes::device(),
    )
    .unwrap();
    let l1 = next_table(entry(&pt, pt.root().raw(), 0));
    let l2 = next_table(entry(&pt, l1, 0));
    let l3 = next_table(entry(&pt, l2, 0x0900_0000 >> 21));
    assert_eq!(
        entry(&pt, l3, 0),
        0x0900_0000 | PAGE | AF_BIT | AP1_RES1 | (1 << 2) | XN_BIT
    );
}

#[test]
fn el2_read_only_executable_page_sets_ap2_and_clears_xn() {
    let mut pt = el2_table();
    let code = El2Attributes::normal(El2Access::ReadOnly, false);
    pt.map(
        VirtAddr(0x4008_0000),
        PhysAddr(0x4008_0000),
        PAGE_SIZE,
        code,
    )
    .unwrap();
    let l1 = next_table(entry(&pt, pt.root().raw(), 0));
    let l2 = next_table(entry(&pt, l1, 1));
    let l3 = next_table(entry(&pt, l2, 0));
    assert_eq!(
        entry(&pt, l3, 0x80),
        0x4008_0000 | PAGE | AF_BIT | AP1_RES1 | AP2_RO | SH_INNER
    );
    assert_eq!(
        pt.translate(VirtAddr(0x4008_0123)),
        Some((PhysAddr(0x4008_0123), code))
    );
}

#[test]
fn unaligned_mapping_uses_pages_at_the_edges_and_blocks_inside() {
    let mut pt = el2_table();
    // [0x1ff000, 0x601000): one page, two 2 MiB blocks, one page.
    pt.map(
        VirtAddr(0x1f_f000),
        PhysAddr(0x801f_f000),
        0x40_2000,
        rw_data(),
    )
    .unwrap();
    let attrs = AF_BIT | AP1_RES1 | SH_INNER | XN_BIT;
    let l1 = next_table(entry(&pt, pt.root().raw(), 0));
    let l2 = next_table(entry(&pt, l1, 0));
    let first = next_table(entry(&pt, l2, 0));
    assert_eq!(entry(&pt, first, 511), 0x801f_f000 | PAGE | attrs);
    assert_eq!(entry(&pt, first, 510), 0);
    assert_eq!(entry(&pt, l2, 1), 0x8020_0000 | BLOCK | attrs);
    assert_eq!(entry(&pt, l2, 2), 0x8040_0000 | BLOCK | attrs);
    let last = next_table(entry(&pt, l2, 3));
    assert_eq!(entry(&pt, last, 0), 0x8060_0000 | PAGE | attrs);
    assert_eq!(entry(&pt, last, 1), 0);
}

#[test]
fn output_misaligned_to_blocks_is_mapped_with_pages() {
    let mut pt = stage2_table(40);
    pt.map(Ipa(0), PhysAddr(0x8000_1000), MIB2, guest_ram())
        .unwrap();
    let l1 = pt.root().raw();
    let l2 = next_table(entry(&pt, l1, 0));
    let l3 = next_table(entry(&pt, l2, 0));
    for index in 0..ENTRIES_PER_TABLE {
        assert_eq!(
            entry(&pt, l3, index) & 0x0000_ffff_ffff_f003,
            (0x8000_1000 + index as u64 * PAGE_SIZE) | PAGE
        );
    }
}

#[test]
fn stage2_40_bit_root_is_two_concatenated_level_1_tables() {
    let mut pt = stage2_table(40);
    assert!(
        pt.root().is_aligned(2 * PAGE_SIZE),
        "concatenated root must be 8 KiB aligned"
    );
    // IPA 0xC0_0000_0000 is level-1 index 768: entry 256 of the second table.
    pt.map(
        Ipa(0xc0_0000_0000),
        PhysAddr(0x1_0000_0000),
        GIB,
        guest_ram(),
    )
    .unwrap();
    let second = pt.root().raw() + PAGE_SIZE;
    assert_eq!(
        entry(&pt, second, 256),
        0x1_0000_0000 | BLOCK | AF_BIT | MEMATTR_NORMAL_WB | S2AP_RW | SH_INNER
    );
    assert_eq!(entry(&pt, pt.root().raw(), 256), 0);
    assert_eq!(
        pt.translate(Ipa(0xc0_1234_5678)),
        Some((PhysAddr(0x1_1234_5678), guest_ram()))
    );
    // The top of the 40-bit space is reachable, one past it is not.
    pt.map(
        Ipa((1 << 40) - PAGE_SIZE),
        PhysAddr(0),
        PAGE_SIZE,
        guest_ram(),
    )
    .unwrap();
    assert_eq!(
        pt.map(Ipa(1 << 40), PhysAddr(0), PAGE_SIZE, guest_ram()),
        Err(PageTableError::InputOutOfRange {
            start: 1 << 40,
            size: PAGE_SIZE
        })
    );
}

#[test]
fn stage2_device_page_descriptor_bits() {
    let mut pt = stage2_table(39);
    let mmio = Stage2Attributes::device(Stage2Access::ReadOnly);
    pt.map(Ipa(0x0800_0000), PhysAddr(0x0800_0000), PAGE_SIZE, mmio)
        .unwrap();
    let l2 = next_table(entry(&pt, pt.root().raw(), 0));
    let l3 = next_table(entry(&pt, l2, 0x40));
    assert_eq!(
        entry(&pt, l3, 0),
        0x0800_0000 | PAGE | AF_BIT | MEMATTR_DEVICE_NGNRE | S2AP_RO | XN_BIT
    );
}

#[test]
fn stage2_44_bit_ipa_walks_from_level_0() {
    let mut pt = stage2_table(44);
    pt.map(
        Ipa(0x800_0000_0000),
        PhysAddr(0x4000_0000),
        MIB2,
        guest_ram(),
    )
    .unwrap();
    // Level-0 index 16 (bit 43), then level 1 index 0, level 2 index 0.
    let l1 = next_table(entry(&pt, pt.root().raw(), 16));
    let l2 = next_table(entry(&pt, l1, 0));
    assert_eq!(entry(&pt, l2, 0) & 0b11, BLOCK);
    assert_eq!(
        pt.translate(Ipa(0x800_0000_1000)).map(|(pa, _)| pa),
        Some(PhysAddr(0x4000_1000))
    );
}

#[test]
fn punching_a_page_hole_splits_the_block_before_swapping_it_in() {
    let mut pt = stage2_table(40);
    let base = 0x8000_0000;
    pt.map(Ipa(base), PhysAddr(base), MIB2, guest_ram())
        .unwrap();
    let l2 = next_table(entry(&pt, pt.root().raw(), 2));
    let block = entry(&pt, l2, 0);
    let log_start = pt.memory().log.len();

    pt.unmap(Ipa(base + PAGE_SIZE), PAGE_SIZE).unwrap();

    let l3 = next_table(entry(&pt, l2, 0));
    let attrs = AF_BIT | MEMATTR_NORMAL_WB | S2AP_RW | SH_INNER;
    assert_eq!(block, base | BLOCK | attrs);
    assert_eq!(entry(&pt, l3, 0), base | PAGE | attrs);
    assert_eq!(entry(&pt, l3, 1), 0);
    for index in 2..ENTRIES_PER_TABLE {
        assert_eq!(
            entry(&pt, l3, index),
            (base + index as u64 * PAGE_SIZE) | PAGE | attrs
        );
    }
    assert_eq!(pt.translate(Ipa(base + PAGE_SIZE)), None);
    assert_eq!(
        pt.translate(Ipa(base + 2 * PAGE_SIZE)),
        Some((PhysAddr(base + 2 * PAGE_SIZE), guest_ram()))
    );

    // Order: fill the new table, barrier, break (invalid + TLBI), make.
    let log = &pt.memory().log[log_start..];
    let link = log.len() - 1;
    assert_eq!(log[link], Event::Write(PhysAddr(l2), 0, l3 | TABLE));
    assert_eq!(log[link - 1], Event::Invalidate(base, MIB2));
    assert_eq!(log[link - 2], Event::Write(PhysAddr(l2), 0, 0));
    assert_eq!(log[link - 3], Event::Barrier);
    assert!(log[..link - 3]
        .iter()
        .all(|event| matches!(event, Event::Write(table, _, _) if table.raw() == l3)));
}

#[test]
fn a_new_table_is_filled_before_it_is_linked() {
    let mut pt = el2_table();
    pt.map(VirtAddr(0x1000), PhysAddr(0x1000), 3 * PAGE_SIZE, rw_data())
        .unwrap();
    let log = &pt.memory().log;
    let link_positions: Vec<_> = log
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Write(_, _, v) if v & 0b11 == TABLE && v & AF_BIT == 0 => Some((i, v & OA_MASK)),
            _ => None,
        })
        .collect();
    assert_eq!(link_positions.len(), 3, "level 1, 2 and 3 tables");
    // Built bottom up; only the link into the live root needs the
    // barrier, which orders the whole new subtree before it.
    let (root_link, _) = link_positions[2];
    assert_eq!(
        log[root_link],
        Event::Write(pt.root(), 0, link_positions[2].1 | TABLE)
    );
    assert_eq!(log[root_link - 1], Event::Barrier);
    assert_eq!(
        log.iter().filter(|e| **e == Event::Barrier).count(),
        2,
        "root link and end of map"
    );
    for (position, table) in link_positions {
        let later_writes_into_it = log[position..]
            .iter()
            .any(|e| matches!(e, Event::Write(t, _, _) if t.raw() == table));
        assert!(
            !later_writes_into_it,
            "table {table:#x} written after being linked"
        );
    }
}

#[test]
fn remapping_a_page_inside_a_block_changes_only_that_page() {
    let mut pt = stage2_table(40);
    pt.map(Ipa(0), PhysAddr(0x8000_0000), MIB2, guest_ram())
        .unwrap();
    let read_only = Stage2Attributes::normal(Stage2Access::ReadOnly, true);
    pt.remap(Ipa(0x5000), PhysAddr(0x9000_0000), PAGE_SIZE, read_only)
        .unwrap();
    assert_eq!(
        pt.translate(Ipa(0x5000)),
        Some((PhysAddr(0x9000_0000), read_only))
    );
    assert_eq!(
        pt.translate(Ipa(0x4000)),
        Some((PhysAddr(0x8000_4000), guest_ram()))
    );
    assert_eq!(
        pt.translate(Ipa(0x6000)),
        Some((PhysAddr(0x8000_6000), guest_ram()))
    );
}

#[test]
fn remapping_a_valid_block_breaks_before_making() {
    let mut pt = stage2_table(40);
    pt.map(Ipa(0), PhysAddr(0), MIB2, guest_ram()).unwrap();
    let l2 = next_table(entry(&pt, pt.root().raw(), 0));
    let log_start = pt.memory().log.len();
    let device = Stage2Attributes::device(Stage2Access::ReadWrite);
    pt.remap(Ipa(0), PhysAddr(MIB2), MIB2, device).unwrap();
    let new = MIB2 | BLOCK | AF_BIT | MEMATTR_DEVICE_NGNRE | S2AP_RW | XN_BIT;
    assert_eq!(
        pt.memory().log[log_start..],
        [
            Event::Write(PhysAddr(l2), 0, 0),
            Event::Invalidate(0, MIB2),
            Event::Write(PhysAddr(l2), 0, new),
            Event::Barrier,
        ]
    );
}

#[test]
fn map_refuses_to_overlap_an_existing_mapping() {
    let mut pt = el2_table();
    pt.map(VirtAddr(0x20_0000), PhysAddr(0), MIB2, rw_data())
        .unwrap();
    assert_eq!(
        pt.map(VirtAddr(0x1f_0000), PhysAddr(0), 0x20_0000, rw_data()),
        Err(PageTableError::AlreadyMapped { addr: 0x20_0000 })
    );
    // Nothing of the refused range got mapped.
    assert_eq!(pt.translate(VirtAddr(0x1f_0000)), None);
}

#[test]
fn map_rejects_misaligned_and_out_of_range_arguments() {
    let mut pt = el2_table();
    let attrs = rw_data();
    assert_eq!(
        pt.map(VirtAddr(0x1001), PhysAddr(0), PAGE_SIZE, attrs),
        Err(PageTableError::MisalignedInput { addr: 0x1001 })
    );
    assert_eq!(
        pt.map(VirtAddr(0), PhysAddr(0x10), PAGE_SIZE, attrs),
        Err(PageTableError::MisalignedOutput { pa: PhysAddr(0x10) })
    );
    assert_eq!(
        pt.map(VirtAddr(0), PhysAddr(0), 100, attrs),
        Err(PageTableError::MisalignedSize { size: 100 })
    );
    assert_eq!(
        pt.map(
            VirtAddr((1 << 48) - PAGE_SIZE),
            PhysAddr(0),
            2 * PAGE_SIZE,
            attrs
        ),
        Err(PageTableError::InputOutOfRange {
            start: (1 << 48) - PAGE_SIZE,
            size: 2 * PAGE_SIZE
        })
    );
    assert_eq!(
        pt.map(VirtAddr(!0xfff), PhysAddr(0), PAGE_SIZE, attrs),
        Err(PageTableError::InputOutOfRange {
            start: !0xfff,
            size: PAGE_SIZE
        })
    );
    assert_eq!(
        pt.map(VirtAddr(0), PhysAddr(1 << 48), PAGE_SIZE, attrs),
        Err(PageTableError::OutputOutOfRange {
            pa: PhysAddr(1 << 48),
            size: PAGE_SIZE
        })
    );
    assert_eq!(pt.map(VirtAddr(0), PhysAddr(0), 0, attrs), Ok(()));
    assert_eq!(pt.translate(VirtAddr(0)), None);
}

#[test]
fn map_out_of_table_memory_leaves_nothing_mapped() {
    // Root + level-2 + level-3 table fit; the second 1 GiB region's
    // level-2 table does not.
    let mut pt = PageTable::new(Stage2::new(39).unwrap(), TestTableMemory::with_limit(3)).unwrap();
    let result = pt.map(
        Ipa(GIB - PAGE_SIZE),
        PhysAddr(0),
        2 * PAGE_SIZE,
        guest_ram(),
    );
    assert_eq!(result, Err(PageTableError::OutOfTableMemory));
    assert_eq!(pt.translate(Ipa(GIB - PAGE_SIZE)), None);
    assert_eq!(pt.translate(Ipa(GIB)), None);
}

#[test]
fn new_fails_cleanly_without_table_memory() {
    let result = PageTable::new(Stage2::new(40).unwrap(), TestTableMemory::with_limit(1));
    assert!(matches!(result, Err(PageTableError::OutOfTableMemory)));
}

#[test]
fn unmap_of_whole_blocks_and_unmapped_ranges() {
    let mut pt = el2_table();
    pt.map(VirtAddr(0), PhysAddr(0), 4 * MIB2, rw_data())
        .unwrap();
    pt.unmap(VirtAddr(MIB2), 2 * MIB2).unwrap();
    assert_eq!(
        pt.translate(VirtAddr(MIB2 - PAGE_SIZE)).map(|m| m.0),
        Some(PhysAddr(MIB2 - PAGE_SIZE))
    );
    assert_eq!(pt.translate(VirtAddr(MIB2)), None);
    assert_eq!(pt.translate(VirtAddr(3 * MIB2 - 1)), None);
    assert_eq!(
        pt.translate(VirtAddr(3 * MIB2)).map(|m| m.0),
        Some(PhysAddr(3 * MIB2))
    );
    // Unmapping something never mapped is fine.
    pt.unmap(VirtAddr(100 * GIB), GIB).unwrap();
    // The hole can be mapped again.
    pt.map(VirtAddr(MIB2), PhysAddr(0x1000_0000), MIB2, rw_data())
        .unwrap();
    assert_eq!(
        pt.translate(VirtAddr(MIB2 + 8)).map(|m| m.0),
        Some(PhysAddr(0x1000_0008))
    );
}

#[test]
fn translate_outside_the_input_range_is_none() {
    let pt = stage2_table(32);
    assert_eq!(pt.translate(Ipa(1 << 32)), None);
    assert_eq!(pt.translate(Ipa(u64::MAX)), None);
}

/// A mapping for the property test: page-granular input and output.
#[derive(Clone, Debug)]
struct Mapping {
    start: u64,
    pa: u64,
    pages: u64,
    attributes: Stage2Attributes,
}

/// Up to 12 disjoint mappings laid out left to right in a 40-bit IPA
/// space, some 2 MiB aligned in both input and output so blocks appear.
fn mappings() -> impl Strategy<Value = Vec<Mapping>> {
    let one = (
        0u64..1200,
        1u64..1100,
        0u64..(1 << 20),
        any::<bool>(),
        0u8..3,
    );
    prop::collection::vec(one, 1..12).prop_map(|specs| {
        let mut next = 0u64;
        let mut out = Vec::new();
        for (gap, pages, pa_page, block_aligned, kind) in specs {
            let mut start = next + gap * PAGE_SIZE;
            let mut pa = pa_page * PAGE_SIZE;
            if block_aligned {
                start = start.next_multiple_of(MIB2);
                pa = pa.next_multiple_of(MIB2);
            }
            let attributes = match kind {
                0 => guest_ram(),
                1 => Stage2Attributes::normal(Stage2Access::ReadOnly, true),
                _ => Stage2Attributes::device(Stage2Access::ReadWrite),
            };
            out.push(Mapping {
                start,
                pa,
                pages,
                attributes,
            });
            next = start + pages * PAGE_SIZE;
        }
        out
    })
}

proptest! {
    #[test]
    fn translate_round_trips_random_mappings(mappings in mappings(), unmap_mask in any::<u16>()) {
        let mut pt = stage2_table(40);
        for m in &mappings {
            pt.map(Ipa(m.start), PhysAddr(m.pa), m.pages * PAGE_SIZE, m.attributes).unwrap();
        }
        // Every page (probed at an odd offset) of every mapping.
        for m in &mappings {
            for page in 0..m.pages {
                let offset = page * PAGE_SIZE + 0x18;
                prop_assert_eq!(
                    pt.translate(Ipa(m.start + offset)),
                    Some((PhysAddr(m.pa + offset), m.attributes))
                );
            }
        }
        // Gaps between mappings and beyond the last one are unmapped.
        let mut previous_end = 0;
        for m in &mappings {
            if m.start > previous_end {
                prop_assert_eq!(pt.translate(Ipa(previous_end)), None);
                prop_assert_eq!(pt.translate(Ipa(m.start - 1)), None);
            }
            previous_end = m.start + m.pages * PAGE_SIZE;
        }
        prop_assert_eq!(pt.translate(Ipa(previous_end)), None);
        prop_assert_eq!(pt.translate(Ipa(previous_end + GIB)), None);
        // Unmap a random subset; the rest must be untouched.
        for (i, m) in mappings.iter().enumerate() {
            if unmap_mask & (1 << i) != 0 {
                pt.unmap(Ipa(m.start), m.pages * PAGE_SIZE).unwrap();
            }
        }
        for (i, m) in mappings.iter().enumerate() {
            let unmapped = unmap_mask & (1 << i) != 0;
            for page in [0, m.pages / 2, m.pages - 1] {
                let addr = m.start + page * PAGE_SIZE;
                let expected = (!unmapped).then(|| (PhysAddr(m.pa + page * PAGE_SIZE), m.attributes));
                prop_assert_eq!(pt.translate(Ipa(addr)), expected);
            }
        }
    }
}
