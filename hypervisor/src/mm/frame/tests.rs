//! Host tests for the frame allocator.

use super::*;
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

fn range(start: u64, size: u64) -> Range<PhysAddr> {
    Range {
        start: PhysAddr(start),
        size,
    }
}

fn ranges<const N: usize>(frames: &FrameAllocator<N>) -> Vec<(u64, u64)> {
    frames
        .free_ranges()
        .map(|r| (r.start.raw(), r.start.raw() + r.size))
        .collect()
}

/// 1 GiB of RAM at 0x4000_0000 with the hypervisor image at its start.
fn qemu_like() -> FrameAllocator {
    let mut frames = FrameAllocator::new();
    frames.add_ram(range(0x4000_0000, 1 << 30)).unwrap();
    frames.reserve(range(0x4000_0000, 2 * MIB)).unwrap();
    frames
}

#[test]
fn reserving_the_middle_of_ram_splits_it() {
    let mut frames = FrameAllocator::<4>::new();
    frames.add_ram(range(0x4000_0000, 16 * MIB)).unwrap();
    frames.reserve(range(0x4040_0000, MIB)).unwrap();
    assert_eq!(
        ranges(&frames),
        [(0x4000_0000, 0x4040_0000), (0x4050_0000, 0x4100_0000)]
    );
    assert_eq!(frames.free_bytes(), 15 * MIB);
}

#[test]
fn ram_is_trimmed_inward_and_reservations_widened_outward_to_pages() {
    let mut frames = FrameAllocator::<4>::new();
    frames.add_ram(range(0x4000_0010, 0x10_0000)).unwrap();
    assert_eq!(ranges(&frames), [(0x4000_1000, 0x4010_0000)]);
    // A device tree at an odd address and size takes whole pages.
    frames.reserve(range(0x4000_2ff8, 0x10)).unwrap();
    assert_eq!(
        ranges(&frames),
        [(0x4000_1000, 0x4000_2000), (0x4000_4000, 0x4010_0000)]
    );
    // Reserving what is not RAM changes nothing.
    frames.reserve(range(0x1000_0000, MIB)).unwrap();
    assert_eq!(ranges(&frames).len(), 2);
}

#[test]
fn adjacent_and_overlapping_ram_merges() {
    let mut frames = FrameAllocator::<4>::new();
    frames.add_ram(range(0x4000_0000, MIB)).unwrap();
    frames.add_ram(range(0x4020_0000, MIB)).unwrap();
    frames.add_ram(range(0x4010_0000, MIB)).unwrap();
    frames.add_ram(range(0x4008_0000, 2 * MIB)).unwrap();
    assert_eq!(ranges(&frames), [(0x4000_0000, 0x4030_0000)]);
}

#[test]
fn alloc_is_first_fit_and_honours_alignment() {
    let mut frames = qemu_like();
    assert_eq!(
        frames.alloc(FRAME_SIZE, FRAME_SIZE),
        Ok(PhysAddr(0x4020_0000))
    );
    // Next 2 MiB boundary after the page just taken.
    assert_eq!(frames.alloc(MIB, 2 * MIB), Ok(PhysAddr(0x4040_0000)));
    // The gap left below it is used first by a small request.
    assert_eq!(
        frames.alloc(3 * FRAME_SIZE, 0),
        Err(FrameError::BadAlignment { align: 0 })
    );
    assert_eq!(frames.alloc(3 * FRAME_SIZE, 1), Ok(PhysAddr(0x4020_1000)));
    // Sizes round up to whole pages.
    assert_eq!(frames.alloc(1, 1), Ok(PhysAddr(0x4020_4000)));
    assert_eq!(frames.alloc(1, 1), Ok(PhysAddr(0x4020_5000)));
}

#[test]
fn concatenated_root_alignment_is_honoured() {
    let mut frames = qemu_like();
    frames.alloc(FRAME_SIZE, FRAME_SIZE).unwrap();
    let root = frames.alloc(2 * FRAME_SIZE, 2 * FRAME_SIZE).unwrap();
    assert!(root.is_aligned(2 * FRAME_SIZE));
    assert_eq!(root, PhysAddr(0x4020_2000));
}

#[test]
fn freeing_coalesces_with_both_neighbours() {
    let mut frames = qemu_like();
    let a = frames.alloc(FRAME_SIZE, 1).unwrap();
    let b = frames.alloc(FRAME_SIZE, 1).unwrap();
    let c = frames.alloc(FRAME_SIZE, 1).unwrap();
    frames.free(range(a.raw(), FRAME_SIZE)).unwrap();
    frames.free(range(c.raw(), FRAME_SIZE)).unwrap();
    assert_eq!(ranges(&frames).len(), 2, "b still splits the free set");
    frames.free(range(b.raw(), FRAME_SIZE)).unwrap();
    assert_eq!(ranges(&frames), [(0x4020_0000, 0x8000_0000)]);
}

#[test]
fn double_free_is_refused() {
    let mut frames = qemu_like();
    let page = frames.alloc(FRAME_SIZE, 1).unwrap();
    frames.free(range(page.raw(), FRAME_SIZE)).unwrap();
    assert_eq!(
        frames.free(range(page.raw(), FRAME_SIZE)),
        Err(FrameError::AlreadyFree { addr: page })
    );
    // Partly free: the reserved image page plus the first free page.
    assert_eq!(
        frames.free(range(0x401f_f000, 2 * FRAME_SIZE)),
        Err(FrameError::AlreadyFree {
            addr: PhysAddr(0x4020_0000)
        })
    );
}

#[test]
fn exhaustion_reports_out_of_memory_and_changes_nothing() {
    let mut frames = FrameAllocator::<4>::new();
    frames.add_ram(range(0x4000_0000, 4 * FRAME_SIZE)).unwrap();
    assert_eq!(
        frames.alloc(5 * FRAME_SIZE, 1),
        Err(FrameError::OutOfMemory {
            size: 5 * FRAME_SIZE,
            align: FRAME_SIZE
        })
    );
    for _ in 0..4 {
        frames.alloc(FRAME_SIZE, 1).unwrap();
    }
    assert!(matches!(
        frames.alloc(FRAME_SIZE, 1),
        Err(FrameError::OutOfMemory { .. })
    ));
    assert_eq!(frames.alloc(0, 1), Err(FrameError::ZeroSize));
    assert!(matches!(
        frames.alloc(u64::MAX, 1),
        Err(FrameError::OutOfMemory { .. })
    ));
}

#[test]
fn alloc_at_takes_exactly_the_requested_range() {
    let mut frames = qemu_like();
    frames.alloc_at(range(0x4800_0000, 128 * MIB)).unwrap();
    assert_eq!(
        ranges(&frames),
        [(0x4020_0000, 0x4800_0000), (0x5000_0000, 0x8000_0000)]
    );
}

#[test]
fn alloc_at_conflicts_name_the_first_busy_address() {
    let mut frames = qemu_like();
    // Overlaps the reserved image at its start.
    assert_eq!(
        frames.alloc_at(range(0x4010_0000, 2 * MIB)),
        Err(FrameError::NotFree {
            start: PhysAddr(0x4010_0000),
            size: 2 * MIB,
            first_busy: PhysAddr(0x4010_0000)
        })
    );
    // Runs past the end of RAM.
    assert_eq!(
        frames.alloc_at(range(0x7ff0_0000, 2 * MIB)),
        Err(FrameError::NotFree {
            start: PhysAddr(0x7ff0_0000),
            size: 2 * MIB,
            first_busy: PhysAddr(0x8000_0000)
        })
    );
    // Overlaps an earlier allocation in the middle.
    frames.alloc_at(range(0x4100_0000, MIB)).unwrap();
    assert!(matches!(
        frames.alloc_at(range(0x40f0_0000, 2 * MIB)),
        Err(FrameError::NotFree {
            first_busy: PhysAddr(0x4100_0000),
            ..
        })
    ));
    // Not RAM at all.
    assert!(matches!(
        frames.alloc_at(range(0x1000_0000, MIB)),
        Err(FrameError::NotFree {
            first_busy: PhysAddr(0x1000_0000),
            ..
        })
    ));
    assert_eq!(
        frames.alloc_at(range(0x4800_0800, MIB)),
        Err(FrameError::Misaligned {
            start: PhysAddr(0x4800_0800),
            size: MIB
        })
    );
    assert_eq!(
        frames.alloc_at(range(0x4800_0000, 0)),
        Err(FrameError::ZeroSize)
    );
    assert_eq!(
        frames.alloc_at(range(!0xfff, 2 * FRAME_SIZE)),
        Err(FrameError::InvalidRange {
            start: PhysAddr(!0xfff),
            size: 2 * FRAME_SIZE
        })
    );
}

#[test]
fn running_out_of_range_slots_fails_without_changing_anything() {
    let mut frames = FrameAllocator::<2>::new();
    frames.add_ram(range(0, 16 * FRAME_SIZE)).unwrap();
    frames.reserve(range(4 * FRAME_SIZE, FRAME_SIZE)).unwrap();
    let before = ranges(&frames);
    // Needs a third slot: a hole in the middle of the second range.
    assert_eq!(
        frames.reserve(range(8 * FRAME_SIZE, FRAME_SIZE)),
        Err(FrameError::TooFragmented)
    );
    assert_eq!(
        frames.alloc_at(range(8 * FRAME_SIZE, FRAME_SIZE)),
        Err(FrameError::TooFragmented)
    );
    assert_eq!(ranges(&frames), before);
}

#[test]
fn alloc_skips_fits_that_would_need_a_range_slot_it_does_not_have() {
    let mut frames = FrameAllocator::<2>::new();
    frames.add_ram(range(0, 16 * FRAME_SIZE)).unwrap();
    frames.reserve(range(0, FRAME_SIZE)).unwrap();
    frames
        .reserve(range(4 * FRAME_SIZE, 4 * FRAME_SIZE))
        .unwrap();
    // Free: [1, 4) and [8, 16) pages. Page 2 would split the first range;
    // page 8 starts the second, so that is taken instead.
    assert_eq!(
        frames.alloc(FRAME_SIZE, 2 * FRAME_SIZE),
        Ok(PhysAddr(8 * FRAME_SIZE))
    );
    // Now every aligned fit would split a range.
    assert_eq!(
        frames.alloc(FRAME_SIZE, 2 * FRAME_SIZE),
        Err(FrameError::TooFragmented)
    );
    assert_eq!(frames.alloc(FRAME_SIZE, 1), Ok(PhysAddr(FRAME_SIZE)));
}

proptest! {
    /// Random allocations and frees keep allocations disjoint, inside RAM,
    /// aligned, and the byte count conserved; freeing everything restores
    /// the initial free set.
    #[test]
    fn alloc_and_free_conserve_memory(ops in prop::collection::vec((1u64..40, 0u32..6, any::<bool>()), 1..80)) {
        let mut frames = qemu_like();
        let initial = ranges(&frames);
        let total = frames.free_bytes();
        let mut live: Vec<(u64, u64)> = Vec::new();
        for (pages, align_log, free_one) in ops {
            if free_one && !live.is_empty() {
                let (start, size) = live.swap_remove(pages as usize % live.len());
                frames.free(range(start, size)).unwrap();
            } else {
                let align = FRAME_SIZE << align_log;
                let size = pages * FRAME_SIZE;
                let start = frames.alloc(size, align).unwrap().raw();
                prop_assert_eq!(start % align, 0);
                prop_assert!(start >= 0x4020_0000 && start + size <= 0x8000_0000);
                for &(other, other_size) in &live {
                    prop_assert!(start + size <= other || other + other_size <= start);
                }
                live.push((start, size));
            }
            let used: u64 = live.iter().map(|&(_, size)| size).sum();
            prop_assert_eq!(frames.free_bytes() + used, total);
        }
        for (start, size) in live {
            frames.free(range(start, size)).unwrap();
        }
        prop_assert_eq!(ranges(&frames), initial);
    }
}
