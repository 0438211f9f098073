//! The command queue: ordering, wrap-around, the per-trap budget, stalls.

use super::*;
use AccessWidth::{Double, Word};

#[test]
fn commands_wait_until_the_its_is_enabled() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    h.submit(&basic_setup(&[1]));
    assert_eq!(h.vits.state().device_count(), 0);
    assert_eq!(h.creadr(), 0);
    h.write(offset::CTLR, Word, 1);
    assert_eq!(h.vits.state().event_count(), 1);
    assert_eq!(h.creadr(), 6 * COMMAND_SIZE);
}

#[test]
fn creadr_advances_to_cwriter_and_one_sync_closes_each_trap() {
    let mut h = Harness::recording();
    h.submit(&basic_setup(&[1, 2, 3]));
    assert_eq!(h.creadr(), h.read(offset::CWRITER, Double));
    let syncs = h
        .backend
        .actions
        .iter()
        .filter(|a| **a == BackendAction::Sync)
        .count();
    assert_eq!(syncs, 1);
    assert_eq!(h.backend.actions.last(), Some(&BackendAction::Sync));
}

#[test]
fn a_read_of_creadr_with_nothing_queued_adds_no_sync() {
    let mut h = Harness::recording();
    h.backend.take();
    h.creadr();
    assert!(h.backend.take().is_empty());
}

#[test]
fn queue_wraps_around_its_end() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    // A one-page queue holds 128 commands.
    h.write(offset::CBASER, Double, (1 << 63) | QUEUE);
    h.write(offset::CTLR, Word, 1);
    let fill: Vec<_> = (0..126).map(|_| cmd::sync(0)).collect();
    h.submit(&fill);
    assert_eq!(h.creadr(), 126 * COMMAND_SIZE);
    h.submit(&basic_setup(&[1, 2]));
    assert_eq!(h.creadr(), 5 * COMMAND_SIZE, "wrapped past the end");
    assert_eq!(h.vits.state().event_count(), 2);
}

#[test]
fn work_beyond_the_trap_budget_continues_when_the_guest_polls_creadr() {
    let mut config = config();
    config.max_commands_per_trap = 4;
    let mut h = Harness::with(config, RecordingBackend::new());
    h.submit(&basic_setup(&[1, 2, 3, 4, 5]));
    assert_eq!(
        h.vits.regs.creadr,
        4 * COMMAND_SIZE,
        "first trap: 4 commands"
    );
    assert_eq!(h.creadr(), 8 * COMMAND_SIZE);
    assert_eq!(h.creadr(), 10 * COMMAND_SIZE);
    assert_eq!(h.creadr(), 10 * COMMAND_SIZE);
    assert_eq!(h.vits.state().event_count(), 5);
    let syncs = h
        .backend
        .actions
        .iter()
        .filter(|a| **a == BackendAction::Sync)
        .count();
    assert_eq!(syncs, 3, "one sync per trap that did work");
}

#[test]
fn cwriter_beyond_the_queue_halts_the_queue_until_written_in_range() {
    let mut h = Harness::recording();
    let end = h.enqueue(&[cmd::mapd(1, 4, ITT, true)]);
    h.write(offset::CWRITER, Double, 0x1_0000);
    assert_eq!(h.read(offset::CWRITER, Double), 0x1_0000);
    assert_eq!(h.vits.errors().bad_register_writes(), 1);
    assert_eq!(h.creadr(), 0);
    assert_eq!(h.vits.state().device_count(), 0);
    h.write(offset::CWRITER, Double, end);
    assert_eq!(h.creadr(), end);
    assert_eq!(h.vits.state().device_count(), 1);
}

#[test]
fn cwriter_keeps_only_its_offset_field() {
    let mut h = Harness::recording();
    h.enqueue(&[cmd::sync(0)]);
    h.write(offset::CWRITER, Double, 0x20 | 0x1F);
    assert_eq!(h.read(offset::CWRITER, Double), 0x20);
    h.write(offset::CWRITER + 4, Word, u64::from(u32::MAX));
    assert_eq!(h.read(offset::CWRITER, Double), 0x20);
}

#[test]
fn a_queue_outside_guest_ram_stalls_without_advancing() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    h.write(offset::CBASER, Double, (1 << 63) | 0x8000_0000);
    h.write(offset::CTLR, Word, 1);
    h.write(offset::CWRITER, Double, 0x40);
    assert_eq!(h.creadr(), 1, "offset 0, Stalled");
    assert!(matches!(
        h.vits.stall(),
        Some(StallReason::MemoryError { .. })
    ));
    assert_eq!(h.vits.errors().stalls(), 1);
    assert!(h.backend.take().is_empty());
}

#[test]
fn a_stalled_queue_resumes_only_on_retry() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    // Two-level Device table whose level-1 page is outside RAM.
    let indirect = (1 << 63) | (1 << 62) | (0b10 << 8);
    h.write(offset::BASER, Double, indirect | 0x9000_0000);
    h.write(offset::CTLR, Word, 1);
    h.submit(&[
        cmd::mapc(0, 0, true),
        cmd::mapd(1, 4, ITT, true),
        cmd::sync(0),
    ]);
    assert_eq!(h.creadr(), COMMAND_SIZE | 1, "stalled at MAPD");
    assert_eq!(
        h.vits.state().collections().count(),
        1,
        "MAPC before it ran"
    );
    let end = h.read(offset::CWRITER, Double);
    h.write(offset::CWRITER, Double, end);
    assert_eq!(h.creadr(), COMMAND_SIZE | 1, "no retry: still stalled");
    // The guest fixes the table and retries; the table can only change
    // while disabled.
    h.write(offset::CTLR, Word, 0);
    h.write(offset::BASER, Double, indirect | DEVICE_TABLE);
    h.mem.write_u64(Ipa(DEVICE_TABLE), 1 << 63).unwrap();
    h.write(offset::CTLR, Word, 1);
    h.write(offset::CWRITER, Double, end | 1);
    assert_eq!(h.creadr(), 3 * COMMAND_SIZE);
    assert!(h.vits.state().device(VirtDeviceId::new(1)).is_some());
}

#[test]
fn commands_run_in_queue_order() {
    let mut h = Harness::recording();
    // INT before MAPTI fails; INT after it succeeds.
    let mut commands = basic_setup(&[]);
    commands.extend([cmd::int(1, 1), cmd::mapti(1, 1, 8193, 0), cmd::int(1, 1)]);
    h.submit(&commands);
    assert_eq!(
        h.vits.errors().commands(CommandErrorKind::EventNotMapped),
        1
    );
    let kinds: Vec<_> = h
        .backend
        .take()
        .into_iter()
        .map(|a| core::mem::discriminant(&a))
        .collect();
    let map = core::mem::discriminant(&BackendAction::Map {
        event: event_ref(1, 1),
        vcpu: vcpu(0),
        intid: crate::ids::VirtIntId::from_const(0),
    });
    let pend = core::mem::discriminant(&BackendAction::SetPending {
        event: event_ref(1, 1),
        vcpu: vcpu(0),
        intid: crate::ids::VirtIntId::from_const(0),
    });
    assert_eq!(
        kinds,
        [map, pend, core::mem::discriminant(&BackendAction::Sync)]
    );
}

#[test]
fn reset_discards_everything_and_returns_to_the_reset_state() {
    let mut h = Harness::recording();
    h.submit(&basic_setup(&[1, 2]));
    h.backend.take();
    h.vits.reset(&mut h.backend);
    let actions = h.backend.take();
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, BackendAction::Discard { .. }))
            .count(),
        2
    );
    assert_eq!(h.vits.state(), &TranslationState::default());
    assert!(!h.vits.is_enabled());
    assert_eq!(h.read(offset::CBASER, Double), 0);
}
