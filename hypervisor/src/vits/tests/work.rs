//! Bounded work per trap (issue 12): `max_commands_per_trap` is a budget of
//! units of work, one per command plus one per event a MAPC or MAPD visits
//! and one per LPI a MOVALL moves, and no trap goes over it. A command that
//! does not finish within what is left of its trap's budget keeps
//! GITS_CREADR on itself and continues on the next trap; what the guest
//! sees when it is done is what an unbounded execution gives.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::budget::any_command;
use super::*;
use crate::ids::{EventId, VirtIntId};
use crate::vits::CountingModel;

/// A vITS with `budget` units per trap, device 1 (8 EventID bits) and
/// device 2 mapped, collections 0 and 1 on vCPUs 0 and 1, and `events`
/// events of device 1 on collection 0 (set up over as many traps as it
/// takes).
fn loaded(budget: usize, events: u32) -> Harness<CountingModel> {
    let mut config = config();
    config.max_commands_per_trap = budget;
    let mut h = Harness::with(config, CountingModel::new(4, 1000));
    let mut setup = alloc::vec![
        cmd::mapd(1, 8, ITT, true),
        cmd::mapd(2, 8, ITT, true),
        cmd::mapc(0, 0, true),
        cmd::mapc(1, 1, true),
    ];
    setup.extend((0..events).map(|e| cmd::mapti(1, e, 8192 + e, 0)));
    h.submit(&setup);
    let end = setup.len() as u64 * COMMAND_SIZE;
    while h.creadr() != end {}
    h.backend.take();
    h
}

/// Reads CREADR (one trap) until it reaches `end`, checking each trap's
/// work against `budget`; returns the number of traps.
fn drain(h: &mut Harness<CountingModel>, end: u64, budget: usize) -> usize {
    let mut traps = 0;
    loop {
        let calls = h.backend.take();
        assert!(calls <= budget, "{calls} backend calls in one trap");
        assert!(h.vits.last_work() <= budget, "{} units", h.vits.last_work());
        if h.vits.regs.creadr == end || h.vits.stall().is_some() {
            return traps;
        }
        h.creadr();
        traps += 1;
        assert!(traps < 1_000_000, "the queue never drained");
    }
}

#[test]
fn a_mapc_retarget_larger_than_the_budget_finishes_over_several_traps() {
    let mut h = loaded(8, 20);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::mapc(0, 2, true), cmd::sync(0)]);
    assert_eq!(h.vits.regs.creadr, base, "CREADR stays on the MAPC");
    assert!(h.vits.command_in_progress());
    assert_eq!(h.backend.take(), 7, "one unit for the command, 7 events");
    assert_eq!(
        h.vits.state().collection(icid(0)),
        Some(vcpu(2)),
        "the collection targets vCPU 2 from the start"
    );
    // 13 events left: 8 on the next trap, then 5 and the SYNC.
    assert_eq!(h.creadr(), base);
    assert_eq!(h.backend.take(), 8);
    assert_eq!(h.creadr(), base + 2 * COMMAND_SIZE);
    assert_eq!(h.backend.take(), 5);
    assert!(!h.vits.command_in_progress());
    for e in 0..20 {
        let route = h.backend.model.route(VirtDeviceId::new(1), EventId::new(e));
        assert_eq!(route.map(|r| r.vcpu), Some(vcpu(2)), "event {e}");
    }
}

#[test]
fn a_heavy_command_after_light_ones_starts_with_what_is_left() {
    let mut h = loaded(8, 20);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::sync(0), cmd::sync(0), cmd::mapc(0, 2, true)]);
    assert_eq!(
        h.vits.regs.creadr,
        base + 2 * COMMAND_SIZE,
        "CREADR on the MAPC"
    );
    assert_eq!(
        h.backend.take(),
        5,
        "8 units: 2 SYNCs, the MAPC and 5 events"
    );
    assert_eq!(drain(&mut h, base + 3 * COMMAND_SIZE, 8), 2);
}

#[test]
fn a_sync_behind_a_heavy_command_completes_only_after_it() {
    let mut h = loaded(4, 40);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::int(1, 39), cmd::mapc(0, 3, true), cmd::sync(3)]);
    let mut calls = 0;
    loop {
        calls += h.backend.take();
        let creadr = h.vits.regs.creadr;
        if creadr > base + COMMAND_SIZE {
            // Past the MAPC: every event has moved, the pending one too.
            assert_eq!(calls, 1 + 40, "the INT and 40 moves");
            assert!(h
                .backend
                .model
                .is_pending(vcpu(3), VirtIntId::from_const(8192 + 39)));
            break;
        }
        assert!(h.vits.command_in_progress(), "CREADR on the MAPC");
        h.creadr();
    }
    assert_eq!(h.vits.regs.creadr, base + 3 * COMMAND_SIZE);
}

#[test]
fn mapd_unmap_discards_over_several_traps_and_a_remap_waits_for_it() {
    let mut h = loaded(8, 20);
    for e in 0..20 {
        h.vits
            .send_msi(VirtDeviceId::new(1), EventId::new(e), &mut h.backend)
            .expect("live event");
    }
    h.backend.take();
    assert_eq!(h.backend.model.pending(vcpu(0)).count(), 20);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::mapd(1, 4, ITT + 0x1000, true)]);
    assert!(h.vits.command_in_progress());
    let left = h
        .vits
        .state()
        .device(VirtDeviceId::new(1))
        .map(|d| d.event_count());
    assert_eq!(left, Some(13), "7 events discarded, the rest wait");
    assert_eq!(
        drain(&mut h, base + COMMAND_SIZE, 8),
        2,
        "7, then 8, then 5 discards"
    );
    let device = h
        .vits
        .state()
        .device(VirtDeviceId::new(1))
        .expect("remapped");
    assert_eq!((device.event_bits, device.event_count()), (4, 0));
    assert_eq!(h.backend.model.pending_count(), 0);
    assert_eq!(h.backend.model.route_count(), 0);
}

#[test]
fn movall_moves_pending_lpis_over_several_traps() {
    let mut h = loaded(8, 30);
    for e in 0..30 {
        h.vits
            .send_msi(VirtDeviceId::new(1), EventId::new(e), &mut h.backend)
            .expect("live event");
    }
    h.backend.take();
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::movall(0, 1), cmd::sync(1)]);
    assert_eq!(h.vits.regs.creadr, base, "CREADR stays on the MOVALL");
    assert_eq!(
        drain(&mut h, base + 2 * COMMAND_SIZE, 8),
        3,
        "7, 8, 8, 7 LPIs"
    );
    assert_eq!(h.backend.model.pending(vcpu(0)).count(), 0);
    assert_eq!(h.backend.model.pending(vcpu(1)).count(), 30);
}

#[test]
fn a_table_dropped_during_a_heavy_command_finishes_it_first() {
    let mut h = loaded(4, 20);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::mapd(1, 8, ITT, false)]);
    assert!(h.vits.command_in_progress());
    // The guest disables the ITS and drops the Collection table.
    h.write(offset::CTLR, AccessWidth::Word, 0);
    h.write(offset::BASER + 8, AccessWidth::Double, 0);
    assert!(!h.vits.command_in_progress());
    assert_eq!(h.vits.regs.creadr, base + COMMAND_SIZE);
    assert_eq!(h.backend.model.route_count(), 0);
}

/// Maps `events` events of one device (16 EventID bits) on collection 0
/// (vCPU 0), makes them all pending, and returns the commands.
fn big_setup(events: u32) -> Vec<[u64; 4]> {
    let mut setup = alloc::vec![
        cmd::mapd(5, 16, ITT, true),
        cmd::mapc(0, 0, true),
        cmd::mapc(1, 1, true),
    ];
    setup.extend((0..events).map(|e| cmd::mapti(5, e, 8192 + e, 0)));
    setup.extend((0..events).map(|e| cmd::int(5, e)));
    setup
}

/// What the guest sees: devices, events, collections, routes, pending.
type View = (
    Vec<(u32, u8, Vec<(u32, u32, u16)>)>,
    Vec<(u16, u16)>,
    Vec<Option<(u16, u32)>>,
    BTreeSet<(u16, u32)>,
    usize,
);

fn view(h: &Harness<CountingModel>) -> View {
    let state = h.vits.state();
    let mut routes = Vec::new();
    let devices = state
        .devices()
        .map(|(id, dev)| {
            let events = dev
                .events()
                .map(|(e, m)| {
                    let route = h.backend.model.route(id, e);
                    routes.push(route.map(|r| (r.vcpu.get(), r.intid.get())));
                    (e.get(), m.intid.get(), m.icid.get())
                })
                .collect();
            (id.get(), dev.event_bits, events)
        })
        .collect();
    let collections = state
        .collections()
        .map(|(c, v)| (c.get(), v.get()))
        .collect();
    let pending = (0..h.vits.config().num_vcpus)
        .flat_map(|v| h.backend.model.pending(vcpu(v)).map(move |i| (v, i.get())))
        .collect();
    let route_count = h.backend.model.route_count();
    (devices, collections, routes, pending, route_count)
}

/// Runs `commands` with `budget` units a trap on a vITS whose caps hold
/// `max_events`, in queue-sized batches; checks every trap; returns the
/// guest's view and the most traps one command of `heavy` took.
fn run_bounded(commands: &[[u64; 4]], budget: usize, max_events: usize) -> (View, usize) {
    let mut config = config();
    config.max_commands_per_trap = budget;
    config.max_events = max_events;
    config.lpi_id_bits = 17;
    let mut h = Harness::with(config, CountingModel::new(4, max_events.max(64)));
    let mut most = 0;
    for batch in commands.chunks(1024) {
        h.submit(batch);
        let end = h.read(offset::CWRITER, AccessWidth::Double);
        most = most.max(drain(&mut h, end, budget));
    }
    (view(&h), most)
}

/// The default manifest budget: 256 units a trap.
const DEFAULT_BUDGET: usize = 256;

/// 65,536 events (the most 16 EventID bits give), all pending: a MAPC
/// retarget, a MOVALL, a MAPC unmap and map, an INVALL and a MAPD V=0 each
/// finish over many traps, none above the budget, with the state an
/// unbounded run gives.
#[test]
fn heavy_commands_over_65536_events_stay_within_the_budget() {
    const EVENTS: u32 = 65_536;
    let mut commands = big_setup(EVENTS);
    let heavy = [
        cmd::mapc(0, 2, true),
        cmd::movall(2, 3),
        cmd::mapc(0, 0, false),
        cmd::mapc(0, 1, true),
        cmd::invall(0),
        cmd::sync(1),
    ];
    commands.extend(heavy);
    let (bounded, most) = run_bounded(&commands, DEFAULT_BUDGET, EVENTS as usize);
    assert!(
        most >= EVENTS as usize / DEFAULT_BUDGET,
        "a batch holding a 65,536-event command took only {most} traps"
    );
    let (unbounded, _) = run_bounded(&commands, usize::MAX, EVENTS as usize);
    assert_eq!(bounded, unbounded);
    assert_eq!(bounded.3.len(), EVENTS as usize, "every LPI still pending");
    assert!(
        bounded.3.iter().all(|&(v, _)| v == 3),
        "moved by the MOVALL"
    );
    // Then the device goes, over as many traps again.
    commands.push(cmd::mapd(5, 16, ITT, false));
    let (bounded, _) = run_bounded(&commands, DEFAULT_BUDGET, EVENTS as usize);
    let (unbounded, _) = run_bounded(&commands, usize::MAX, EVENTS as usize);
    assert_eq!(bounded, unbounded);
    assert!(bounded.0.is_empty() && bounded.2.is_empty());
}

/// The commands that can touch many events: MAPC of the loaded
/// collections (retarget, unmap, map), MAPD of the loaded device, MOVALL,
/// INVALL, with MAPTI and INT to refill.
fn heavy_command() -> impl Strategy<Value = [u64; 4]> {
    prop_oneof![
        (0..2u16, 0..4u64, prop::bool::weighted(0.8)).prop_map(|(c, t, v)| cmd::mapc(c, t, v)),
        (1..3u32, prop::bool::ANY).prop_map(|(d, v)| cmd::mapd(d, 8, ITT, v)),
        (0..4u64, 0..4u64).prop_map(|(a, b)| cmd::movall(a, b)),
        (0..2u16).prop_map(cmd::invall),
        (0..40u32, 0..2u16).prop_map(|(e, c)| cmd::mapti(1, e, 8192 + e, c)),
        (0..40u32).prop_map(|e| cmd::int(1, e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the guest queues, no trap does more than the budget, and
    /// the guest's view once the queue is drained is the one an unbounded
    /// execution gives.
    #[test]
    fn any_budget_gives_the_unbounded_result_and_no_trap_exceeds_it(
        budget in 1..48usize,
        commands in prop::collection::vec(prop_oneof![3 => heavy_command(), 2 => any_command()], 1..600),
    ) {
        // Collections 0 and 1 start with 40 events between them, all pending.
        let mut setup = alloc::vec![
            cmd::mapd(1, 8, ITT, true),
            cmd::mapc(0, 0, true),
            cmd::mapc(1, 1, true),
        ];
        setup.extend((0..40u32).map(|e| cmd::mapti(1, e, 8192 + e, (e % 2) as u16)));
        setup.extend((0..40u32).map(|e| cmd::int(1, e)));
        setup.extend(commands.iter().copied());
        let (bounded, _) = run_bounded(&setup, budget, 48);
        let (unbounded, _) = run_bounded(&setup, usize::MAX, 48);
        prop_assert_eq!(bounded, unbounded);
    }
}
