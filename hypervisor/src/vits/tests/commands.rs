//! Every command, its effect on the translation state and the backend,
//! and every command error.

use super::*;
use crate::ids::{EventId, VirtIntId};
use BackendAction as A;

fn errors(h: &Harness<RecordingBackend>, kind: CommandErrorKind) -> u64 {
    h.vits.errors().commands(kind)
}

/// Runs `setup`, forgets its backend actions, runs `commands`, and returns
/// the actions they caused (without the batch's Sync).
fn after_setup(
    h: &mut Harness<RecordingBackend>,
    setup: &[[u64; 4]],
    commands: &[[u64; 4]],
) -> Vec<BackendAction> {
    h.submit(setup);
    h.backend.take();
    h.submit(commands);
    let mut actions = h.backend.take();
    assert_eq!(
        actions.pop(),
        Some(A::Sync),
        "each batch ends with one sync"
    );
    assert_isolated(h.vits.config(), &actions);
    actions
}

#[test]
fn mapd_mapc_mapti_map_event_to_collection_vcpu() {
    let mut h = Harness::recording();
    let actions = after_setup(&mut h, &[], &basic_setup(&[5]));
    assert_eq!(
        actions,
        [A::Map {
            event: event_ref(1, 5),
            vcpu: vcpu(0),
            intid: VirtIntId::from_const(8197)
        }]
    );
    let device = h.vits.state().device(VirtDeviceId::new(1)).expect("mapped");
    assert_eq!(device.backing, DeviceBacking::Passthrough(PASSTHROUGH));
    assert_eq!(device.event_bits, 8);
    assert_eq!(device.itt_addr, Ipa(ITT));
    let event = h.vits.state().event(VirtDeviceId::new(1), EventId::new(5));
    assert_eq!(
        event,
        Some(EventEntry {
            intid: VirtIntId::from_const(8197),
            icid: icid(0)
        })
    );
    assert_eq!(h.vits.errors().total_commands(), 0);
}

#[test]
fn mapd_resolves_emulated_and_unbacked_devices() {
    let mut h = Harness::recording();
    h.submit(&[cmd::mapd(2, 4, ITT, true), cmd::mapd(7, 4, ITT, true)]);
    let state = h.vits.state();
    assert_eq!(
        state.device(VirtDeviceId::new(2)).map(|d| d.backing),
        Some(DeviceBacking::Emulated)
    );
    assert_eq!(
        state.device(VirtDeviceId::new(7)).map(|d| d.backing),
        Some(DeviceBacking::Nothing)
    );
}

#[test]
fn mapd_with_more_event_bits_than_id_bits_is_skipped() {
    let mut h = Harness::recording();
    h.submit(&[cmd::mapd(1, 17, ITT, true), cmd::mapd(1, 16, ITT, true)]);
    assert_eq!(errors(&h, CommandErrorKind::IttTooLarge), 1);
    assert_eq!(
        h.vits
            .state()
            .device(VirtDeviceId::new(1))
            .map(|d| d.event_bits),
        Some(16)
    );
}

#[test]
fn mapd_of_device_id_beyond_devbits_is_skipped() {
    let mut config = config();
    config.device_id_bits = 4;
    config.devices.clear();
    let mut h = Harness::with(config, RecordingBackend::new());
    h.submit(&[cmd::mapd(16, 4, ITT, true), cmd::mapd(15, 4, ITT, true)]);
    assert_eq!(errors(&h, CommandErrorKind::DeviceOutOfRange), 1);
    assert_eq!(h.vits.state().device_count(), 1);
}

#[test]
fn mapd_beyond_flat_device_table_is_skipped() {
    let mut h = Harness::recording();
    // One 64 KiB page of 8-byte entries holds DeviceIDs 0..8192.
    h.submit(&[cmd::mapd(8192, 4, ITT, true), cmd::mapd(8191, 4, ITT, true)]);
    assert_eq!(errors(&h, CommandErrorKind::DeviceNotInTable), 1);
    assert!(h.vits.state().device(VirtDeviceId::new(8191)).is_some());
}

#[test]
fn mapd_needs_a_valid_level1_entry_in_a_two_level_table() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    let indirect = (1 << 63) | (1 << 62) | (0b10 << 8);
    h.write(offset::BASER, AccessWidth::Double, indirect | DEVICE_TABLE);
    h.write(offset::CTLR, AccessWidth::Word, 1);
    // Level-1 entry 1 covers DeviceIDs 8192..16384.
    h.mem
        .write_u64(Ipa(DEVICE_TABLE + 8), (1 << 63) | (RAM_BASE + 0x8_0000))
        .unwrap();
    h.submit(&[cmd::mapd(100, 4, ITT, true), cmd::mapd(8200, 4, ITT, true)]);
    assert_eq!(errors(&h, CommandErrorKind::DeviceNotInTable), 1);
    assert!(h.vits.state().device(VirtDeviceId::new(100)).is_none());
    assert!(h.vits.state().device(VirtDeviceId::new(8200)).is_some());
}

#[test]
fn mapd_needs_a_valid_device_table() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    h.write(offset::BASER, AccessWidth::Double, 0b10 << 8);
    h.write(offset::CTLR, AccessWidth::Word, 1);
    h.submit(&[cmd::mapd(1, 4, ITT, true)]);
    assert_eq!(errors(&h, CommandErrorKind::DeviceNotInTable), 1);
}

#[test]
fn mapd_beyond_the_device_cap_is_skipped_but_remap_is_not() {
    let mut h = Harness::recording();
    let commands: Vec<_> = (0..9).map(|d| cmd::mapd(d, 4, ITT, true)).collect();
    h.submit(&commands);
    assert_eq!(h.vits.state().device_count(), 8);
    assert_eq!(errors(&h, CommandErrorKind::DeviceLimit), 1);
    h.submit(&[cmd::mapd(0, 6, ITT, true)]);
    assert_eq!(errors(&h, CommandErrorKind::DeviceLimit), 1);
    assert_eq!(
        h.vits
            .state()
            .device(VirtDeviceId::new(0))
            .map(|d| d.event_bits),
        Some(6)
    );
}

#[test]
fn mapd_unmap_discards_the_devices_live_events() {
    let mut h = Harness::recording();
    let mut setup = basic_setup(&[1, 2]);
    setup.push(cmd::mapti(1, 3, 9000, 9)); // collection 9 is not mapped
    let actions = after_setup(&mut h, &setup, &[cmd::mapd(1, 0, 0, false)]);
    assert_eq!(
        actions,
        [
            A::Discard {
                event: event_ref(1, 1),
                vcpu: vcpu(0),
                intid: VirtIntId::from_const(8193)
            },
            A::Discard {
                event: event_ref(1, 2),
                vcpu: vcpu(0),
                intid: VirtIntId::from_const(8194)
            },
        ]
    );
    assert_eq!(h.vits.state().device_count(), 0);
    assert_eq!(h.vits.state().event_count(), 0);
}

#[test]
fn mapd_remap_of_a_mapped_device_drops_its_old_events() {
    let mut h = Harness::recording();
    let actions = after_setup(&mut h, &basic_setup(&[1]), &[cmd::mapd(1, 4, ITT, true)]);
    assert_eq!(actions.len(), 1);
    assert!(matches!(actions[0], A::Discard { .. }));
    assert_eq!(h.vits.state().event_count(), 0);
    assert_eq!(
        h.vits
            .state()
            .device(VirtDeviceId::new(1))
            .map(|d| d.event_bits),
        Some(4)
    );
}

#[test]
fn mapd_unmap_of_an_unmapped_device_is_harmless() {
    let mut h = Harness::recording();
    h.submit(&[cmd::mapd(5, 0, 0, false)]);
    assert_eq!(h.vits.errors().total_commands(), 0);
}

#[test]
fn mapc_makes_events_waiting_on_the_collection_live() {
    let mut h = Harness::recording();
    let setup = [cmd::mapd(1, 8, ITT, true), cmd::mapti(1, 4, 8300, 2)];
    let actions = after_setup(&mut h, &setup, &[cmd::mapc(2, 3, true)]);
    assert_eq!(
        actions,
        [A::Map {
            event: event_ref(1, 4),
            vcpu: vcpu(3),
            intid: VirtIntId::from_const(8300)
        }]
    );
}

#[test]
fn mapc_retarget_of_a_live_collection_moves_its_events() {
    let mut h = Harness::recording();
    let actions = after_setup(&mut h, &basic_setup(&[1, 2]), &[cmd::mapc(0, 2, true)]);
    assert_eq!(
        actions,
        [
            A::Move {
                event: event_ref(1, 1),
                from: vcpu(0),
                to: vcpu(2),
                intid: VirtIntId::from_const(8193)
            },
            A::Move {
                event: event_ref(1, 2),
                from: vcpu(0),
                to: vcpu(2),
                intid: VirtIntId::from_const(8194)
            },
        ]
    );
    assert_eq!(h.vits.state().collection(icid(0)), Some(vcpu(2)));
}

#[test]
fn mapc_to_the_same_vcpu_changes_nothing() {
    let mut h = Harness::recording();
    let actions = after_setup(&mut h, &basic_setup(&[1]), &[cmd::mapc(0, 0, true)]);
    assert!(actions.is_empty());
}

#[test]
fn mapc_unmap_unmaps_events_and_later_int_is_skipped() {
    let mut h = Harness::recording();
    let actions = after_setup(
        &mut h,
        &basic_setup(&[1]),
        &[cmd::mapc(0, 0, false), cmd::int(1, 1)],
    );
    assert_eq!(
        actions,
        [A::Unmap {
            event: event_ref(1, 1),
            vcpu: vcpu(0),
            intid: VirtIntId::from_const(8193)
        }]
    );
    assert_eq!(errors(&h, CommandErrorKind::CollectionNotMapped), 1);
    // The event stays mapped in its ITT; remapping the collection revives it.
    let actions = after_setup(&mut h, &[], &[cmd::mapc(0, 1, true)]);
    assert!(matches!(
        actions[..],
        [A::Map { vcpu, .. }] if vcpu == VcpuIndex::new(1)
    ));
}

#[test]
fn mapc_to_a_processor_number_beyond_the_vcpus_is_skipped() {
    let mut h = Harness::recording();
    h.submit(&[cmd::mapc(0, 4, true)]);
    assert_eq!(errors(&h, CommandErrorKind::TargetOutOfRange), 1);
    assert_eq!(h.vits.state().collection(icid(0)), None);
}

#[test]
fn mapc_of_icid_beyond_cidbits_is_skipped() {
    let mut h = Harness::recording();
    h.submit(&[cmd::mapc(256, 0, true), cmd::mapc(255, 0, true)]);
    assert_eq!(errors(&h, CommandErrorKind::CollectionOutOfRange), 1);
    assert_eq!(h.vits.state().collection(icid(255)), Some(vcpu(0)));
}

#[test]
fn mapc_beyond_the_collection_table_is_skipped() {
    let mut config = config();
    config.collection_id_bits = 16;
    let mut h = Harness::disabled(config, RecordingBackend::new());
    // One 4 KiB page of 8-byte entries: ICIDs 0..512.
    h.write(
        offset::BASER + 8,
        AccessWidth::Double,
        (1 << 63) | COLLECTION_TABLE,
    );
    h.write(offset::CTLR, AccessWidth::Word, 1);
    h.submit(&[cmd::mapc(512, 0, true), cmd::mapc(511, 0, true)]);
    assert_eq!(errors(&h, CommandErrorKind::CollectionOutOfRange), 1);
}

#[test]
fn mapti_errors_are_skipped_and_counted_by_kind() {
    let mut h = Harness::recording();
    h.submit(&basic_setup(&[1]));
    h.backend.take();
    h.submit(&[
        cmd::mapti(3, 1, 8200, 0),     // device not mapped
        cmd::mapti(1, 256, 8200, 0),   // event beyond 8 bits
        cmd::mapti(1, 2, 8191, 0),     // not an LPI
        cmd::mapti(1, 2, 65536, 0),    // beyond the guest's 16 INTID bits
        cmd::mapti(1, 2, 8200, 300),   // ICID beyond CIDbits
        cmd::mapti(1, 1, 8200, 0),     // already mapped
        cmd::mapti(70000, 1, 8200, 0), // DeviceID beyond Devbits
    ]);
    for kind in [
        CommandErrorKind::DeviceNotMapped,
        CommandErrorKind::EventOutOfRange,
        CommandErrorKind::EventAlreadyMapped,
        CommandErrorKind::CollectionOutOfRange,
        CommandErrorKind::DeviceOutOfRange,
    ] {
        assert_eq!(errors(&h, kind), 1, "{kind:?}");
    }
    assert_eq!(errors(&h, CommandErrorKind::IntIdOutOfRange), 2);
    assert_eq!(h.backend.take(), [A::Sync]);
    // The old mapping survives the duplicate.
    let kept = h.vits.state().event(VirtDeviceId::new(1), EventId::new(1));
    assert_eq!(kept.map(|e| e.intid), Some(VirtIntId::from_const(8193)));
}

#[test]
fn mapti_beyond_the_event_cap_is_skipped() {
    let mut config = config();
    config.max_events = 2;
    let mut h = Harness::with(config, RecordingBackend::new());
    h.submit(&basic_setup(&[1, 2, 3]));
    assert_eq!(h.vits.state().event_count(), 2);
    assert_eq!(errors(&h, CommandErrorKind::EventLimit), 1);
    // Discarding frees room again.
    h.submit(&[cmd::discard(1, 1), cmd::mapti(1, 3, 8195, 0)]);
    assert_eq!(h.vits.state().event_count(), 2);
}

#[test]
fn mapi_uses_the_event_id_as_intid() {
    let mut h = Harness::recording();
    let mut setup = basic_setup(&[]);
    setup[0] = cmd::mapd(1, 16, ITT, true);
    let actions = after_setup(&mut h, &setup, &[cmd::mapi(1, 8200, 1), cmd::mapi(1, 5, 1)]);
    assert_eq!(
        actions,
        [A::Map {
            event: event_ref(1, 8200),
            vcpu: vcpu(1),
            intid: VirtIntId::from_const(8200)
        }]
    );
    assert_eq!(errors(&h, CommandErrorKind::IntIdOutOfRange), 1);
}

#[test]
fn int_clear_inv_name_the_event_target_and_lpi() {
    let mut h = Harness::recording();
    let actions = after_setup(
        &mut h,
        &basic_setup(&[7]),
        &[cmd::int(1, 7), cmd::clear(1, 7), cmd::inv(1, 7)],
    );
    let (event, vcpu, intid) = (event_ref(1, 7), vcpu(0), VirtIntId::from_const(8199));
    assert_eq!(
        actions,
        [
            A::SetPending { event, vcpu, intid },
            A::ClearPending { event, vcpu, intid },
            A::ReloadConfig { event, vcpu, intid },
        ]
    );
}

#[test]
fn per_event_commands_on_unmapped_ids_are_skipped() {
    let mut h = Harness::recording();
    let setup = basic_setup(&[7]);
    for command in [cmd::int, cmd::clear, cmd::inv, cmd::discard] {
        let actions = after_setup(
            &mut h,
            &setup,
            &[command(1, 8), command(4, 7), command(1, 300)],
        );
        assert!(actions.is_empty());
    }
    assert_eq!(errors(&h, CommandErrorKind::EventNotMapped), 4);
    assert_eq!(errors(&h, CommandErrorKind::DeviceNotMapped), 4);
    assert_eq!(errors(&h, CommandErrorKind::EventOutOfRange), 4);
}

#[test]
fn discard_unmaps_the_event_and_clears_its_pending_state() {
    let mut h = Harness::recording();
    let actions = after_setup(
        &mut h,
        &basic_setup(&[7]),
        &[cmd::discard(1, 7), cmd::int(1, 7)],
    );
    assert_eq!(
        actions,
        [A::Discard {
            event: event_ref(1, 7),
            vcpu: vcpu(0),
            intid: VirtIntId::from_const(8199)
        }]
    );
    assert_eq!(errors(&h, CommandErrorKind::EventNotMapped), 1);
    assert_eq!(h.vits.state().event_count(), 0);
}

#[test]
fn invall_reloads_the_collections_vcpu() {
    let mut h = Harness::recording();
    let actions = after_setup(
        &mut h,
        &basic_setup(&[]),
        &[cmd::invall(3), cmd::invall(9), cmd::invall(300)],
    );
    assert_eq!(actions, [A::ReloadConfigAll { vcpu: vcpu(3) }]);
    assert_eq!(errors(&h, CommandErrorKind::CollectionNotMapped), 1);
    assert_eq!(errors(&h, CommandErrorKind::CollectionOutOfRange), 1);
}

#[test]
fn movi_retargets_the_event_to_the_new_collections_vcpu() {
    let mut h = Harness::recording();
    let actions = after_setup(&mut h, &basic_setup(&[7]), &[cmd::movi(1, 7, 2)]);
    assert_eq!(
        actions,
        [A::Move {
            event: event_ref(1, 7),
            from: vcpu(0),
            to: vcpu(2),
            intid: VirtIntId::from_const(8199)
        }]
    );
    let moved = h.vits.state().event(VirtDeviceId::new(1), EventId::new(7));
    assert_eq!(moved.map(|e| e.icid), Some(icid(2)));
    assert_eq!(h.vits.state().events_in_collection(icid(2)).count(), 1);
    assert_eq!(h.vits.state().events_in_collection(icid(0)).count(), 0);
}

#[test]
fn movi_between_collections_of_one_vcpu_tells_the_backend_nothing() {
    let mut h = Harness::recording();
    let mut setup = basic_setup(&[7]);
    setup.push(cmd::mapc(5, 0, true));
    let actions = after_setup(&mut h, &setup, &[cmd::movi(1, 7, 5)]);
    assert!(actions.is_empty());
    let moved = h.vits.state().event(VirtDeviceId::new(1), EventId::new(7));
    assert_eq!(moved.map(|e| e.icid), Some(icid(5)));
}

#[test]
fn movi_to_an_unmapped_or_out_of_range_collection_is_skipped() {
    let mut h = Harness::recording();
    let actions = after_setup(
        &mut h,
        &basic_setup(&[7]),
        &[cmd::movi(1, 7, 9), cmd::movi(1, 7, 300), cmd::movi(1, 8, 1)],
    );
    assert!(actions.is_empty());
    assert_eq!(errors(&h, CommandErrorKind::CollectionNotMapped), 1);
    assert_eq!(errors(&h, CommandErrorKind::CollectionOutOfRange), 1);
    assert_eq!(errors(&h, CommandErrorKind::EventNotMapped), 1);
}

#[test]
fn movall_moves_pending_between_vcpus_and_checks_both_targets() {
    let mut h = Harness::recording();
    let actions = after_setup(
        &mut h,
        &basic_setup(&[]),
        &[
            cmd::movall(0, 3),
            cmd::movall(2, 2),
            cmd::movall(4, 0),
            cmd::movall(0, 1 << 20),
        ],
    );
    assert_eq!(
        actions,
        [A::MoveAllPending {
            from: vcpu(0),
            to: vcpu(3)
        }]
    );
    assert_eq!(errors(&h, CommandErrorKind::TargetOutOfRange), 2);
}

#[test]
fn sync_checks_its_target_and_adds_no_backend_work() {
    let mut h = Harness::recording();
    let actions = after_setup(&mut h, &[], &[cmd::sync(3), cmd::sync(4)]);
    assert!(actions.is_empty());
    assert_eq!(errors(&h, CommandErrorKind::TargetOutOfRange), 1);
}

#[test]
fn unknown_and_gicv4_commands_are_skipped_and_the_queue_continues() {
    let mut h = Harness::recording();
    let vmapti = [0x2A | (1 << 32), 8192, 0, 0];
    let vsync = [0x25, 0, 0, 0];
    h.submit(&[
        [0x00, 0, 0, 0],
        [0xFF, 0, 0, 0],
        vmapti,
        vsync,
        cmd::mapd(1, 4, ITT, true),
    ]);
    assert_eq!(errors(&h, CommandErrorKind::UnknownOpcode), 2);
    assert_eq!(errors(&h, CommandErrorKind::VirtualCommand), 2);
    assert!(h.vits.state().device(VirtDeviceId::new(1)).is_some());
    assert_eq!(h.creadr(), 5 * COMMAND_SIZE);
}

#[test]
fn error_logging_goes_quiet_but_counting_does_not() {
    let mut h = Harness::recording();
    let garbage = [[0xFFu64, 0, 0, 0]; 40];
    h.submit(&garbage);
    assert_eq!(errors(&h, CommandErrorKind::UnknownOpcode), 40);
    assert_eq!(h.vits.errors().total_commands(), 40);
}

mod typed_decode {
    //! The decode boundary (issue 16): a DeviceID beyond the vITS's DeviceID
    //! bits, an EventID beyond the device's ITT size and an ICID beyond the
    //! collection count are refused with their own error, and an ID within
    //! them is never refused for its range.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn ids_are_refused_exactly_when_beyond_their_range(
            device_bits in 2..=16u8,
            collection_bits in 1..=8u8,
            itt_bits in 1..=16u8,
            device in any::<u32>(),
            event in prop_oneof![0..70_000u32, any::<u32>()],
            icid in any::<u16>(),
        ) {
            let mut config = config();
            config.device_id_bits = device_bits;
            config.collection_id_bits = collection_bits;
            // Within the device table page: 8-byte entries, 64 KiB.
            let device = device & 0x1FFF;
            let mut h = Harness::with(config, RecordingBackend::new());
            let count = |h: &Harness<RecordingBackend>, kind| h.vits.errors().commands(kind);
            h.submit(&[cmd::mapd(device, itt_bits, ITT, true)]);
            let device_fits = u64::from(device) >> device_bits == 0;
            prop_assert_eq!(count(&h, CommandErrorKind::DeviceOutOfRange), u64::from(!device_fits));
            h.submit(&[cmd::mapc(icid, 0, true)]);
            let icid_fits = u64::from(icid) >> collection_bits == 0;
            prop_assert_eq!(
                count(&h, CommandErrorKind::CollectionOutOfRange),
                u64::from(!icid_fits)
            );
            if device_fits {
                h.submit(&[cmd::mapti(device, event, 8192, icid)]);
                let event_fits = u64::from(event) >> itt_bits == 0;
                prop_assert_eq!(
                    count(&h, CommandErrorKind::EventOutOfRange),
                    u64::from(!event_fits)
                );
                if event_fits {
                    prop_assert_eq!(
                        count(&h, CommandErrorKind::CollectionOutOfRange),
                        2 * u64::from(!icid_fits)
                    );
                    prop_assert_eq!(h.vits.state().event_count(), usize::from(icid_fits));
                }
            }
        }
    }
}
