//! Bounded work per trap (issue 12): `max_commands_per_trap` counts units
//! of work, one per command plus one per event a command may touch, so a
//! trap of MAPC retargets, MAPD unmaps or MOVALLs cannot touch every event
//! of the vITS once per command. A command that does not fit waits for the
//! next trap with GITS_CREADR on it.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::budget::any_command;
use super::*;

/// A vITS with `budget` units per trap, device 1 (8 EventID bits) and
/// device 2 mapped, collections 0 and 1 on vCPUs 0 and 1, and `events`
/// events of device 1 on collection 0 (set up over as many traps as it
/// takes).
fn loaded(budget: usize, events: u32) -> Harness<RecordingBackend> {
    let mut config = config();
    config.max_commands_per_trap = budget;
    let mut h = Harness::with(config, RecordingBackend::new());
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

fn moves(actions: &[BackendAction]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, BackendAction::Move { .. }))
        .count()
}

#[test]
fn a_mapc_retarget_larger_than_the_budget_runs_alone_in_its_trap() {
    let mut h = loaded(8, 20);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::mapc(0, 2, true), cmd::sync(0), cmd::sync(0)]);
    assert_eq!(h.vits.regs.creadr, base + COMMAND_SIZE, "only the MAPC ran");
    assert_eq!(moves(&h.backend.take()), 20);
    assert_eq!(
        h.creadr(),
        base + 3 * COMMAND_SIZE,
        "the rest on the next trap"
    );
}

#[test]
fn a_heavy_command_after_light_ones_waits_for_the_next_trap() {
    let mut h = loaded(8, 20);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::sync(0), cmd::sync(0), cmd::mapc(0, 2, true)]);
    assert_eq!(
        h.vits.regs.creadr,
        base + 2 * COMMAND_SIZE,
        "CREADR on the MAPC"
    );
    assert_eq!(h.vits.state().collection(icid(0)), Some(vcpu(0)));
    assert_eq!(moves(&h.backend.take()), 0);
    assert_eq!(h.creadr(), base + 3 * COMMAND_SIZE);
    assert_eq!(h.vits.state().collection(icid(0)), Some(vcpu(2)));
    assert_eq!(moves(&h.backend.take()), 20);
}

#[test]
fn mapd_unmaps_are_charged_by_the_events_they_drop() {
    let mut config = config();
    config.max_commands_per_trap = 16;
    let mut h = Harness::with(config, RecordingBackend::new());
    let mut setup = alloc::vec![cmd::mapc(0, 0, true)];
    for device in 3..6u32 {
        setup.push(cmd::mapd(device, 8, ITT, true));
        setup.extend((0..5).map(|e| cmd::mapti(device, e, 8192 + e, 0)));
    }
    h.submit(&setup);
    let end = setup.len() as u64 * COMMAND_SIZE;
    while h.creadr() != end {}
    h.backend.take();
    let unmaps: Vec<_> = (3..6u32).map(|d| cmd::mapd(d, 8, ITT, false)).collect();
    h.submit(&unmaps);
    // 6 + 6 units fit 16; the third MAPD (6 more) waits.
    assert_eq!(h.vits.regs.creadr, end + 2 * COMMAND_SIZE);
    assert_eq!(h.vits.state().device_count(), 1);
    assert_eq!(h.creadr(), end + 3 * COMMAND_SIZE);
    assert_eq!(h.vits.state().device_count(), 0);
}

#[test]
fn movall_is_charged_by_the_events_that_could_be_pending() {
    let mut h = loaded(8, 20);
    let base = h.vits.regs.creadr;
    h.submit(&[cmd::sync(0), cmd::movall(0, 1)]);
    assert_eq!(h.vits.regs.creadr, base + COMMAND_SIZE, "MOVALL waits");
    assert_eq!(h.creadr(), base + 2 * COMMAND_SIZE);
}

/// The commands that can touch many events: MAPC of the loaded
/// collections (retarget, unmap, map), MAPD of the loaded device, MOVALL.
fn heavy_command() -> impl Strategy<Value = [u64; 4]> {
    prop_oneof![
        (0..2u16, 0..4u64, prop::bool::weighted(0.8)).prop_map(|(c, t, v)| cmd::mapc(c, t, v)),
        (1..3u32, prop::bool::ANY).prop_map(|(d, v)| cmd::mapd(d, 8, ITT, v)),
        (0..4u64, 0..4u64).prop_map(|(a, b)| cmd::movall(a, b)),
        (0..40u32, 0..2u16).prop_map(|(e, c)| cmd::mapti(1, e, 8192 + e, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the guest queues, no trap makes more backend calls than
    /// the larger of the budget and one command's worst case.
    #[test]
    fn no_trap_touches_more_than_its_budget(
        budget in 1..48usize,
        commands in prop::collection::vec(prop_oneof![3 => heavy_command(), 2 => any_command()], 1..600),
    ) {
        let mut config = config();
        config.max_commands_per_trap = budget;
        config.max_events = 48;
        let bound = budget.max(1 + config.max_events);
        let mut h = Harness::with(config, RecordingBackend::new());
        // Collections 0 and 1 start with 40 events between them.
        let mut setup = alloc::vec![
            cmd::mapd(1, 8, ITT, true),
            cmd::mapc(0, 0, true),
            cmd::mapc(1, 1, true),
        ];
        setup.extend((0..40u32).map(|e| cmd::mapti(1, e, 8192 + e, (e % 2) as u16)));
        setup.extend(commands.iter().copied());
        let commands = setup;
        h.submit(&commands);
        let mut traps = 0;
        loop {
            let calls = h
                .backend
                .take()
                .into_iter()
                .filter(|a| *a != BackendAction::Sync)
                .count();
            prop_assert!(calls <= bound, "{} backend calls in one trap", calls);
            let before = h.vits.regs.creadr;
            let after = h.creadr();
            traps += 1;
            if after == before || traps > 2 * commands.len() {
                break;
            }
        }
    }
}
