//! Software LPIs: configuration from guest memory, INV, pending moves.

use super::*;
use crate::guest_mem::{FakeGuestMemory, GuestMemory};

/// Where the guest's LPI property table lives.
const PROPS: u64 = 0x4000_0000;

/// A vGIC whose vCPUs all use the property table at [`PROPS`] (16 INTID
/// bits) with LPIs enabled, and guest memory holding that table.
fn setup() -> (Vgic, FakeGuestMemory) {
    let mut g = vgic();
    for v in 0..4 {
        write(
            &mut g,
            v,
            rd_frame(v) + gicr_offset::PROPBASER,
            8,
            PROPS | 15,
        );
        write(&mut g, v, rd_frame(v), 4, 1);
    }
    (g, FakeGuestMemory::new(Ipa(PROPS), 0x8000))
}

/// Writes LPI `intid`'s property byte.
fn configure(mem: &mut FakeGuestMemory, intid: u32, priority: u8, enabled: bool) {
    let byte = priority & 0xfc | u8::from(enabled);
    mem.write(Ipa(PROPS + u64::from(intid - 8192)), &[byte])
        .unwrap();
}

fn set(g: &mut Vgic, mem: &FakeGuestMemory, v: u16, intid: u32) -> Actions {
    let table = g.lpi_table(VcpuIndex::new(v), mem).unwrap();
    g.set_lpi_pending(VcpuIndex::new(v), VirtIntId::from_const(intid), &table)
        .unwrap()
}

/// Every vCPU's pending copies of `intid`, as (vCPU, pending).
fn holders(g: &Vgic, intid: u32) -> Vec<u16> {
    (0..4)
        .filter(|&v| g.lpi_pending(VcpuIndex::new(v), VirtIntId::from_const(intid)))
        .collect()
}

#[test]
fn lpi_priority_and_enable_come_from_the_guest_property_table() {
    let (mut g, mut mem) = setup();
    configure(&mut mem, 8200, 0x50, true);
    configure(&mut mem, 8201, 0x30, false);
    assert!(set(&mut g, &mem, 1, 8200).kick.contains(VcpuIndex::new(1)));
    assert!(
        set(&mut g, &mem, 1, 8201).kick.is_empty(),
        "disabled: no kick"
    );
    let image = g.flush(VcpuIndex::new(1), 4).unwrap();
    assert_eq!(image.used, 1);
    let listed = ListRegister(image.lrs[0]);
    assert_eq!(
        (
            listed.vintid(),
            listed.priority(),
            listed.group1(),
            listed.hw()
        ),
        (8200, 0x50, true, false)
    );
    g.fold(VcpuIndex::new(1), &image.lrs[..4], 0, 0).unwrap();
    assert!(
        g.lpi_pending(VcpuIndex::new(1), VirtIntId::from_const(8201)),
        "stays pending while disabled"
    );
}

#[test]
fn a_property_change_takes_effect_on_invalidate() {
    let (mut g, mut mem) = setup();
    configure(&mut mem, 9000, 0x40, false);
    set(&mut g, &mem, 0, 9000);
    configure(&mut mem, 9000, 0x40, true);
    assert!(
        run_guest(&mut g, 0, 4, 4).is_empty(),
        "cached: still disabled"
    );
    let table = g.lpi_table(VcpuIndex::new(0), &mem).unwrap();
    let actions = g
        .invalidate_lpi(VcpuIndex::new(0), VirtIntId::from_const(9000), &table)
        .unwrap();
    assert!(actions.kick.contains(VcpuIndex::new(0)));
    assert_eq!(run_guest(&mut g, 0, 4, 4).len(), 1);
    configure(&mut mem, 9001, 0x40, false);
    set(&mut g, &mem, 0, 9001);
    configure(&mut mem, 9001, 0x20, true);
    let table = g.lpi_table(VcpuIndex::new(0), &mem).unwrap();
    g.invalidate_all_lpis(VcpuIndex::new(0), &table).unwrap();
    assert_eq!(
        run_guest(&mut g, 0, 4, 4),
        [Taken {
            intid: 9001,
            priority: 0x20
        }]
    );
}

#[test]
fn lpis_wait_for_enable_lpis_and_unreadable_entries_never_fire() {
    let (mut g, mut mem) = setup();
    write(&mut g, 2, rd_frame(2), 4, 0);
    configure(&mut mem, 8192, 0x40, true);
    set(&mut g, &mem, 2, 8192);
    assert!(run_guest(&mut g, 2, 4, 4).is_empty());
    let actions = write(&mut g, 2, rd_frame(2), 4, 1);
    assert!(actions.kick.contains(VcpuIndex::new(2)));
    assert_eq!(run_guest(&mut g, 2, 4, 4).len(), 1);
    // INTID 0xffff is past the 32 KiB of RAM the table has here.
    set(&mut g, &mem, 2, 0xffff);
    assert_eq!(g.counters().lpi_unreadable, 1);
    assert!(run_guest(&mut g, 2, 4, 4).is_empty());
    let no_table = g.lpi_table(VcpuIndex::new(3), &mem).unwrap();
    // The last SPI is not an LPI; 8191 is no INTID at all.
    assert_eq!(VirtIntId::new(8191), None);
    let not_lpi = g.set_lpi_pending(VcpuIndex::new(3), VirtIntId::from_const(1019), &no_table);
    assert_eq!(
        not_lpi,
        Err(VgicError::NoSuchInterrupt(VirtIntId::from_const(1019)))
    );
    let too_wide = g.set_lpi_pending(VcpuIndex::new(3), VirtIntId::from_const(1 << 16), &no_table);
    assert!(too_wide.is_err());
}

#[test]
fn moving_a_pending_lpi_keeps_exactly_one_instance() {
    let (mut g, mut mem) = setup();
    configure(&mut mem, 8300, 0x40, true);
    set(&mut g, &mem, 0, 8300);
    let actions = g
        .move_lpi_pending(
            VcpuIndex::new(0),
            VcpuIndex::new(2),
            VirtIntId::from_const(8300),
        )
        .unwrap();
    assert!(actions.kick.contains(VcpuIndex::new(2)));
    assert_eq!(holders(&g, 8300), [2]);
    assert!(run_guest(&mut g, 0, 4, 4).is_empty());
    assert_eq!(run_guest(&mut g, 2, 4, 4).len(), 1, "config moved with it");
    assert!(holders(&g, 8300).is_empty());
}

#[test]
fn moving_a_listed_lpi_redirects_it_when_its_vcpu_folds() {
    let (mut g, mut mem) = setup();
    configure(&mut mem, 8400, 0x40, true);
    set(&mut g, &mem, 0, 8400);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    let actions = g
        .move_lpi_pending(
            VcpuIndex::new(0),
            VcpuIndex::new(1),
            VirtIntId::from_const(8400),
        )
        .unwrap();
    assert!(
        actions.kick.contains(VcpuIndex::new(0)),
        "vCPU 0 must exit to give it up"
    );
    g.move_lpi_pending(
        VcpuIndex::new(1),
        VcpuIndex::new(3),
        VirtIntId::from_const(8400),
    )
    .unwrap();
    assert_eq!(holders(&g, 8400), [3]);
    set(&mut g, &mem, 3, 8400); // coalesces with the copy on its way
    let actions = g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    assert!(actions.kick.contains(VcpuIndex::new(3)));
    assert_eq!(holders(&g, 8400), [3]);
    assert_eq!(run_guest(&mut g, 3, 4, 4).len(), 1);
    assert!((0..4).all(|v| run_guest(&mut g, v, 4, 4).is_empty()));
}

#[test]
fn an_lpi_taken_before_the_move_is_not_delivered_again() {
    let (mut g, mut mem) = setup();
    configure(&mut mem, 8500, 0x40, true);
    set(&mut g, &mem, 1, 8500);
    let image = g.flush(VcpuIndex::new(1), 4).unwrap();
    let mut cpu = FakeCpuIf::enter(image, 4);
    cpu.acknowledge();
    g.move_all_lpis(VcpuIndex::new(1), VcpuIndex::new(2))
        .unwrap();
    let (lrs, hcr) = cpu.exit();
    g.fold(VcpuIndex::new(1), lrs, hcr, 0).unwrap();
    assert!(holders(&g, 8500).is_empty());
}

#[test]
fn clear_while_listed_drops_the_listed_copy() {
    let (mut g, mut mem) = setup();
    configure(&mut mem, 8600, 0x40, true);
    set(&mut g, &mem, 0, 8600);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    g.clear_lpi_pending(VcpuIndex::new(0), VirtIntId::from_const(8600))
        .unwrap();
    assert!(holders(&g, 8600).is_empty());
    g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    assert!(holders(&g, 8600).is_empty());
}

#[test]
fn move_all_moves_every_pending_lpi() {
    let (mut g, mut mem) = setup();
    for intid in 8700..8710 {
        configure(&mut mem, intid, 0x40, true);
        set(&mut g, &mem, 1, intid);
    }
    g.move_all_lpis(VcpuIndex::new(1), VcpuIndex::new(0))
        .unwrap();
    assert!((8700..8710).all(|i| holders(&g, i) == [0]));
    let mut taken = 0;
    for _ in 0..4 {
        taken += run_guest(&mut g, 0, 4, 4).len();
    }
    assert_eq!(taken, 10);
}

#[test]
fn the_pending_set_is_bounded_and_overflows_are_counted() {
    let (mut g, mem) = setup();
    // The budget is 32 per vCPU, 128 for the partition, held by any vCPU.
    for intid in 8192..8192 + 96 {
        set(&mut g, &mem, 0, intid);
    }
    g.move_all_lpis(VcpuIndex::new(0), VcpuIndex::new(1))
        .unwrap();
    for intid in 8192..8192 + 32 {
        set(&mut g, &mem, 2, intid);
    }
    let table = g.lpi_table(VcpuIndex::new(0), &mem).unwrap();
    let full = g.set_lpi_pending(VcpuIndex::new(0), VirtIntId::from_const(9999), &table);
    assert_eq!(
        full,
        Err(VgicError::LpiPendingFull {
            vcpu: VcpuIndex::new(0),
            intid: VirtIntId::from_const(9999)
        })
    );
    assert_eq!(g.counters().lpi_overflows, 1);
    // Already pending there: not a new instance, so not refused.
    assert!(g
        .set_lpi_pending(VcpuIndex::new(2), VirtIntId::from_const(8192), &table)
        .is_ok());
}

/// What a MOVALL or INVALL leaves in one vCPU: its pending LPIs with the
/// configuration delivery would use, and its list-register copies.
type Held = (Vec<(u32, Option<LpiConfig>)>, Vec<(u32, lpi::ListedLpi)>);

fn held(g: &Vgic, v: usize) -> Held {
    let lpis = &g.vcpus[v].lpis;
    (
        lpis.pending().map(|i| (i, lpis.config(i))).collect(),
        lpis.listed.iter().map(|(&i, &l)| (i, l)).collect(),
    )
}

/// Runs a sliced operation with budgets taken in turn from `budgets` until
/// it is done, checking each slice stays within its budget; returns the
/// kicks of all slices.
fn slices(budgets: &[usize], mut step: impl FnMut(usize) -> (Actions, lpi::Slice)) -> VcpuMask {
    let mut kicks = VcpuMask::default();
    for (n, &budget) in budgets.iter().cycle().enumerate() {
        assert!(n < 10_000, "a sliced operation never finished");
        let (actions, slice) = step(budget);
        assert!(slice.touched <= budget, "{slice:?} over budget {budget}");
        assert!(slice.touched > 0 || slice.done, "a slice made no progress");
        kicks.0 |= actions.kick.0;
        if slice.done {
            break;
        }
    }
    kicks
}

#[test]
fn move_all_in_slices_of_one_moves_pending_and_listed_lpis() {
    let (mut g, mut mem) = setup();
    for intid in 8700..8710 {
        configure(&mut mem, intid, 0x40, true);
        set(&mut g, &mem, 1, intid);
    }
    let image = g.flush(VcpuIndex::new(1), 4).unwrap();
    let mut touched = 0;
    let kicks = slices(&[1], |budget| {
        let (actions, slice) = g
            .move_lpis_within(VcpuIndex::new(1), VcpuIndex::new(0), budget)
            .unwrap();
        touched += slice.touched;
        (actions, slice)
    });
    assert_eq!(touched, 10, "six pending, four listed, one each");
    assert!(kicks.contains(VcpuIndex::new(0)));
    g.fold(VcpuIndex::new(1), &image.lrs[..4], 0, 0).unwrap();
    assert!((8700..8710).all(|i| holders(&g, i) == [0]));
}

#[test]
fn invalidate_all_in_slices_rereads_held_lpis_and_forgets_the_rest() {
    let (mut g, mut mem) = setup();
    for intid in 9000..9008 {
        configure(&mut mem, intid, 0x40, false);
        set(&mut g, &mem, 0, intid);
    }
    // 9004..9008 stop being held; their cached bytes must go.
    for intid in 9004..9008 {
        g.clear_lpi_pending(VcpuIndex::new(0), VirtIntId::from_const(intid))
            .unwrap();
    }
    for intid in 9000..9008 {
        configure(&mut mem, intid, 0x20, true);
    }
    let table = g.lpi_table(VcpuIndex::new(0), &mem).unwrap();
    let (_, first) = g
        .invalidate_lpis_within(VcpuIndex::new(0), 0, 3, &table)
        .unwrap();
    assert_eq!((first.touched, first.done), (3, false));
    // Another walker's INVALL of the same vCPU starts from the beginning.
    let (_, other) = g
        .invalidate_lpis_within(VcpuIndex::new(0), 1, 100, &table)
        .unwrap();
    assert_eq!((other.touched, other.done), (8, true));
    let kicks = slices(&[3], |budget| {
        g.invalidate_lpis_within(VcpuIndex::new(0), 0, budget, &table)
            .unwrap()
    });
    assert!(kicks.contains(VcpuIndex::new(0)));
    let cached: Vec<u32> = g.vcpus[0].lpis.cached().iter().map(|c| c.0).collect();
    assert_eq!(cached, [9000, 9001, 9002, 9003]);
    assert_eq!(run_guest(&mut g, 0, 4, 4).len(), 4);
}

mod sliced {
    use super::*;
    use proptest::prelude::*;

    /// A vGIC with LPIs pending on random vCPUs (INTIDs 8192..8256, random
    /// property bytes), some moved between vCPUs or cleared again (leaving
    /// cached bytes of LPIs no longer held), some in list registers (the
    /// images of the vCPUs flushed, to fold afterwards), and the property
    /// bytes changed afterwards.
    fn scene(
        pending: &[(u16, u8)],
        gone: &[(u16, u16, u8)],
        bytes: &[u8],
        flushed: &[u16],
        later: &[u8],
    ) -> (Vgic, FakeGuestMemory, Vec<(u16, LrImage)>) {
        let (mut g, mut mem) = setup();
        for (i, &byte) in bytes.iter().enumerate() {
            configure(&mut mem, 8192 + i as u32, byte, byte & 1 != 0);
        }
        for &(v, i) in pending {
            let table = g.lpi_table(VcpuIndex::new(v), &mem).unwrap();
            // Past the partition's budget: refused, as it should be.
            let _ = g.set_lpi_pending(
                VcpuIndex::new(v),
                VirtIntId::from_const(8192 + u32::from(i)),
                &table,
            );
        }
        for &(v, w, i) in gone {
            let intid = VirtIntId::from_const(8192 + u32::from(i));
            let (v, w) = (VcpuIndex::new(v), VcpuIndex::new(w));
            if v == w {
                g.clear_lpi_pending(v, intid).unwrap();
            } else {
                g.move_lpi_pending(v, w, intid).unwrap();
            }
        }
        let mut images = Vec::new();
        for &v in flushed {
            if images.iter().all(|(w, _)| *w != v) {
                images.push((v, g.flush(VcpuIndex::new(v), 4).unwrap()));
            }
        }
        for (i, &byte) in later.iter().enumerate() {
            configure(&mut mem, 8192 + i as u32, byte, byte & 1 != 0);
        }
        (g, mem, images)
    }

    fn fold_all(g: &mut Vgic, images: &[(u16, LrImage)]) {
        for (v, image) in images {
            g.fold(VcpuIndex::new(*v), &image.lrs[..4], 0, 0).unwrap();
        }
    }

    /// What a scene is made of: pending (vCPU, LPI), moved or cleared
    /// (from, to, LPI), property bytes, vCPUs flushed, bytes changed
    /// later, and the budgets of the slices in turn.
    type Inputs = (
        Vec<(u16, u8)>,
        Vec<(u16, u16, u8)>,
        Vec<u8>,
        Vec<u16>,
        Vec<u8>,
        Vec<usize>,
    );

    fn inputs() -> impl Strategy<Value = Inputs> {
        (
            prop::collection::vec((0u16..4, 0u8..64), 0..160),
            prop::collection::vec((0u16..4, 0u16..4, 0u8..64), 0..40),
            prop::collection::vec(any::<u8>(), 64),
            prop::collection::vec(0u16..4, 0..4),
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(1usize..12, 1..6),
        )
    }

    proptest! {
        #[test]
        fn move_all_in_slices_ends_as_move_all_at_once(
            (pending, gone, bytes, flushed, later, budgets) in inputs(),
            from in 0u16..4,
            to in 0u16..4,
        ) {
            let (mut whole, _, images) = scene(&pending, &gone, &bytes, &flushed, &later);
            let mut sliced = whole.clone();
            let (from, to) = (VcpuIndex::new(from), VcpuIndex::new(to));
            let expected = whole.move_all_lpis(from, to).unwrap().kick;
            let kicks = slices(&budgets, |budget| {
                sliced.move_lpis_within(from, to, budget).unwrap()
            });
            prop_assert_eq!(kicks, expected);
            fold_all(&mut whole, &images);
            fold_all(&mut sliced, &images);
            for v in 0..4 {
                prop_assert_eq!(held(&sliced, v), held(&whole, v));
            }
        }

        #[test]
        fn invalidate_all_in_slices_ends_as_invalidate_all_at_once(
            (pending, gone, bytes, flushed, later, budgets) in inputs(),
            vcpu in 0u16..4,
        ) {
            let (mut whole, mem, images) = scene(&pending, &gone, &bytes, &flushed, &later);
            let mut sliced = whole.clone();
            let vcpu = VcpuIndex::new(vcpu);
            let table = whole.lpi_table(vcpu, &mem).unwrap();
            let expected = whole.invalidate_all_lpis(vcpu, &table).unwrap().kick;
            let kicks = slices(&budgets, |budget| {
                sliced.invalidate_lpis_within(vcpu, 0, budget, &table).unwrap()
            });
            prop_assert_eq!(kicks, expected);
            prop_assert_eq!(
                sliced.vcpus[usize::from(vcpu.get())].lpis.cached(),
                whole.vcpus[usize::from(vcpu.get())].lpis.cached()
            );
            prop_assert_eq!(sliced.counters(), whole.counters());
            fold_all(&mut whole, &images);
            fold_all(&mut sliced, &images);
            for v in 0..4 {
                prop_assert_eq!(held(&sliced, v), held(&whole, v));
            }
        }
    }
}
