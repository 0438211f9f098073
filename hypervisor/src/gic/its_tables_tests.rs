//! Host tests of the ITS table planner.

use super::*;

fn probe(
    kind: ItsTableType,
    entry_bytes: u32,
    page_sizes: PageSizes,
    indirect: bool,
) -> BaserProbe {
    BaserProbe {
        kind,
        entry_bytes,
        page_sizes,
        indirect,
    }
}

fn qemu_device_table() -> BaserProbe {
    // QEMU: 8-byte device entries, every page size, two-level capable.
    probe(ItsTableType::Devices, 8, PageSizes::ALL, true)
}

#[test]
fn qemu_16_bit_device_table_is_flat_in_128_pages_of_4k() {
    let plan = plan(&qemu_device_table(), 16, 1 << 20).expect("fits");
    assert_eq!(plan.levels, TableLevels::Flat);
    assert_eq!(plan.page, ItsPageSize::Size4K);
    assert_eq!(plan.pages, 128);
    assert_eq!(plan.bytes(), 512 << 10);
    assert_eq!(plan.level1_entries(), 0);
    assert_eq!(
        plan.locate(0xffff),
        Some(EntryLocation::Flat { offset: 0xffff * 8 })
    );
    assert_eq!(plan.locate(0x1_0000), None);
}

#[test]
fn flat_table_above_the_budget_goes_two_level() {
    let plan = plan(&qemu_device_table(), 16, 64 << 10).expect("fits");
    assert_eq!(plan.levels, TableLevels::TwoLevel);
    assert_eq!(plan.page, ItsPageSize::Size4K);
    assert_eq!(plan.ids_per_page, 512);
    assert_eq!(plan.level1_entries(), 128);
    assert_eq!(plan.pages, 1);
    assert_eq!(
        plan.locate(1000),
        Some(EntryLocation::TwoLevel {
            level1_index: 1,
            level2_offset: 488 * 8
        })
    );
}

#[test]
fn flat_table_beyond_256_pages_moves_to_bigger_pages() {
    // 2^20 IDs * 8 bytes = 8 MiB: 2048 4K pages, 512 16K pages, 128 64K pages.
    let only_flat = probe(ItsTableType::Devices, 8, PageSizes::ALL, false);
    let plan = plan(&only_flat, 20, u64::MAX).expect("fits with 64K pages");
    assert_eq!(
        (plan.levels, plan.page, plan.pages),
        (TableLevels::Flat, ItsPageSize::Size64K, 128)
    );
}

#[test]
fn huge_device_id_space_needs_two_level_with_64k_pages() {
    // 2^32 IDs: 8192 entries per 64K page, 2^19 level-1 entries = 64 pages.
    let plan = plan(&qemu_device_table(), 32, u64::MAX).expect("fits two-level");
    assert_eq!(plan.levels, TableLevels::TwoLevel);
    assert_eq!(plan.page, ItsPageSize::Size64K);
    assert_eq!(plan.level1_entries(), 1 << 19);
    assert_eq!(plan.pages, 64);
    assert_eq!(
        plan.locate(u32::MAX),
        Some(EntryLocation::TwoLevel {
            level1_index: (1 << 19) - 1,
            level2_offset: 8191 * 8
        })
    );
}

#[test]
fn huge_space_without_indirect_is_too_large() {
    let flat_only = probe(ItsTableType::Devices, 8, PageSizes::ALL, false);
    assert_eq!(
        plan(&flat_only, 32, u64::MAX),
        Err(TableError::TooLarge {
            kind: ItsTableType::Devices,
            id_bits: 32
        })
    );
}

#[test]
fn two_level_with_only_4k_pages_runs_out_of_level1_pages() {
    // 4K pages: 512 IDs per level-2 page; 256 level-1 pages hold 2^17
    // pointers, so 2^26 IDs; 27 bits do not fit.
    let small_pages = probe(
        ItsTableType::Devices,
        8,
        PageSizes::NONE.with(ItsPageSize::Size4K),
        true,
    );
    let fits = plan(&small_pages, 26, 0).expect("exactly 256 pages");
    assert_eq!(fits.pages, 256);
    assert!(matches!(
        plan(&small_pages, 27, 0),
        Err(TableError::TooLarge { .. })
    ));
}

#[test]
fn exactly_256_flat_pages_is_the_limit() {
    let p = probe(
        ItsTableType::Collections,
        16,
        PageSizes::NONE.with(ItsPageSize::Size4K),
        false,
    );
    assert_eq!(plan(&p, 16, u64::MAX).expect("1 MiB").pages, 256);
    assert!(plan(&p, 17, u64::MAX).is_err());
}

#[test]
fn odd_entry_sizes_leave_the_page_tail_unused() {
    let p = probe(ItsTableType::Vpes, 24, PageSizes::ALL, true);
    let plan = plan(&p, 16, 0).expect("two-level");
    assert_eq!(plan.ids_per_page, 4096 / 24);
    assert_eq!(plan.level1_entries(), (1u64 << 16).div_ceil(170));
}

#[test]
fn probe_errors_are_reported() {
    let mut p = qemu_device_table();
    p.kind = ItsTableType::Unimplemented;
    assert_eq!(plan(&p, 16, 0), Err(TableError::Unimplemented));
    let mut p = qemu_device_table();
    p.entry_bytes = 0;
    assert_eq!(plan(&p, 16, 0), Err(TableError::BadEntrySize(0)));
    assert_eq!(
        plan(&qemu_device_table(), 0, 0),
        Err(TableError::IdBitsOutOfRange(0))
    );
    assert_eq!(
        plan(&qemu_device_table(), 33, 0),
        Err(TableError::IdBitsOutOfRange(33))
    );
    let mut p = qemu_device_table();
    p.page_sizes = PageSizes::NONE;
    assert_eq!(plan(&p, 16, 0), Err(TableError::NoPageSize));
}

#[test]
fn baser_value_keeps_read_only_fields_and_sets_the_plan() {
    let probed = GitsBaser((1 << 56) | (7 << 48));
    let plan = plan(&qemu_device_table(), 16, 1 << 20).expect("flat");
    let baser = plan
        .baser(
            probed,
            PhysAddr(0x4008_0000),
            Cacheability::ReadWriteAllocWriteBack,
            Shareability::InnerShareable,
        )
        .expect("aligned");
    // Valid, InnerCache 7, Type 1, Entry_Size 7, address, Inner shareable, 4K, 128 pages.
    assert_eq!(baser.0, 0xb907_0000_4008_047f);
    assert_eq!(baser.table_bytes(), plan.bytes());
}

#[test]
fn baser_value_for_two_level_64k_table_above_48_bits() {
    let plan = plan(&qemu_device_table(), 32, u64::MAX).expect("two-level");
    let addr = PhysAddr(0x000a_0000_0001_0000);
    let baser = plan
        .baser(
            GitsBaser(1 << 56 | 7 << 48),
            addr,
            Cacheability::NonCacheable,
            Shareability::NonShareable,
        )
        .expect("52-bit ok with 64K pages");
    assert!(baser.indirect() && baser.valid());
    assert_eq!(baser.page(), ItsPageSize::Size64K);
    assert_eq!(baser.size(), 63);
    assert_eq!(baser.physical_address(), addr);
}

#[test]
fn baser_rejects_misaligned_and_unreachable_addresses() {
    let plan64k = plan(&qemu_device_table(), 32, u64::MAX).expect("two-level 64K");
    let any = GitsBaser(0);
    let (c, s) = (Cacheability::NonCacheable, Shareability::NonShareable);
    assert_eq!(
        plan64k.baser(any, PhysAddr(0x4000_1000), c, s),
        Err(TableError::Misaligned {
            addr: PhysAddr(0x4000_1000),
            align: 64 << 10
        })
    );
    let plan4k = plan(&qemu_device_table(), 16, 1 << 20).expect("flat 4K");
    assert_eq!(
        plan4k.baser(any, PhysAddr(1 << 48), c, s),
        Err(TableError::AddressTooWide {
            addr: PhysAddr(1 << 48)
        })
    );
    let last = PhysAddr((1 << 48) - plan4k.bytes());
    assert!(plan4k.baser(any, last, c, s).is_ok());
    assert!(plan4k.baser(any, PhysAddr(u64::MAX - 0xfff), c, s).is_err());
}

#[test]
fn level1_entry_is_valid_page_address() {
    let plan = plan(&qemu_device_table(), 32, u64::MAX).expect("two-level 64K");
    assert_eq!(
        plan.level1_entry(PhysAddr(0x8_0001_0000)),
        Ok(0x8000_0008_0001_0000)
    );
    assert!(matches!(
        plan.level1_entry(PhysAddr(0x8_0000_8000)),
        Err(TableError::Misaligned { .. })
    ));
}
