//! The table-based translation state against the B-tree one it replaced
//! (`reference_state`, issue 15): every sequence of state operations gives
//! the same answers from both, whatever the EventIDs, ITT sizes and order,
//! including past the event-table allowance where events go to the sparse
//! maps. Plus the memory bound a guest cannot push.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::reference_state as reference;
use super::*;
use crate::ids::{EventId, VirtIntId};
use crate::vits::state::EventEntry;

/// One operation of the state's (crate-internal) interface.
#[derive(Clone, Copy, Debug)]
enum StateOp {
    /// MAPD: drop the old device, map the new one if `valid`.
    Mapd(u32, u8, bool),
    InsertEvent(u32, u32, u32, u16),
    RemoveEvent(u32, u32),
    SetCollection(u32, u32, u16),
    MapCollection(u16, u16),
    UnmapCollection(u16),
    TakeDevices,
    TakeCollections,
}

/// DeviceIDs 0..DEVICES, and a few far apart (the device index's probing).
const DEVICES: u32 = 40;
const COLLECTIONS: u16 = 4;
/// The allowance of the state under test: 2 * this many table slots, few
/// enough that long runs exhaust it.
const MAX_EVENTS: usize = 40;

fn event_id() -> impl Strategy<Value = u32> {
    prop_oneof![
        // Dense MSI-X-like EventIDs, ascending or not.
        6 => 0..80u32,
        // The top of an ITT, and anything at all.
        1 => prop::sample::select(vec![255u32, 65_535, 0xFFFF_FFFF, 0x7FFF_FFFF]),
        1 => any::<u32>(),
    ]
}

fn state_op() -> impl Strategy<Value = StateOp> {
    let dev = prop_oneof![
        6 => 0..4u32,
        3 => 0..DEVICES,
        1 => prop::sample::select(vec![0x8000u32, 0x9E37_79B9, u32::MAX, 1 << 31]),
    ];
    let icid = 0..COLLECTIONS;
    let bits = prop_oneof![3 => 1..9u8, 1 => Just(16u8), 1 => Just(32u8)];
    prop_oneof![
        2 => (dev.clone(), bits, prop::bool::weighted(0.8))
            .prop_map(|(d, b, v)| StateOp::Mapd(d, b, v)),
        8 => (dev.clone(), event_id(), 8192..8300u32, icid.clone())
            .prop_map(|(d, e, i, c)| StateOp::InsertEvent(d, e, i, c)),
        3 => (dev.clone(), event_id()).prop_map(|(d, e)| StateOp::RemoveEvent(d, e)),
        2 => (dev, event_id(), icid.clone())
            .prop_map(|(d, e, c)| StateOp::SetCollection(d, e, c)),
        2 => (icid.clone(), 0..4u16).prop_map(|(c, v)| StateOp::MapCollection(c, v)),
        1 => icid.prop_map(StateOp::UnmapCollection),
        1 => Just(StateOp::TakeDevices),
        1 => Just(StateOp::TakeCollections),
    ]
}

/// A device's guest-visible contents.
type Contents = (DeviceBacking, u8, Ipa, Vec<(EventId, EventEntry)>);

fn contents(entry: state::Device<'_>) -> Contents {
    let events = entry.events().collect();
    (entry.backing, entry.event_bits, entry.itt_addr, events)
}

fn reference_contents(entry: &reference::DeviceEntry) -> Contents {
    let events = entry.events().collect();
    (entry.backing, entry.event_bits, entry.itt_addr, events)
}

/// Applies `op` to both; asserts they answer alike.
fn apply(op: StateOp, new: &mut TranslationState, old: &mut reference::TranslationState) {
    let d = VirtDeviceId::new;
    match op {
        StateOp::Mapd(device, bits, valid) => {
            let got = new.remove_device(d(device)).map(|e| contents(e.view()));
            let want = old.remove_device(d(device)).map(|e| reference_contents(&e));
            assert_eq!(got, want, "{op:?}: removed device");
            if valid {
                let itt = Ipa(ITT + u64::from(device) * 0x1000);
                let backing = config().backing(d(device));
                assert_eq!(new.insert_device(d(device), backing, bits, itt), Ok(()));
                old.insert_device(d(device), backing, bits, itt);
            }
        }
        StateOp::InsertEvent(device, event, intid, collection) => {
            let mapping = EventEntry {
                intid: VirtIntId::from_const(intid),
                icid: icid(collection),
            };
            let got = new.insert_event(d(device), EventId::new(event), mapping);
            let want = old.insert_event(d(device), EventId::new(event), mapping);
            assert_eq!(got, Ok(want), "{op:?}");
        }
        StateOp::RemoveEvent(device, event) => {
            let got = new.remove_event(d(device), EventId::new(event));
            let want = old.remove_event(d(device), EventId::new(event));
            assert_eq!(got, want, "{op:?}");
        }
        StateOp::SetCollection(device, event, collection) => {
            new.set_event_collection(d(device), EventId::new(event), icid(collection));
            old.set_event_collection(d(device), EventId::new(event), icid(collection));
        }
        StateOp::MapCollection(collection, target) => {
            let got = new.map_collection(icid(collection), vcpu(target));
            let want = old.map_collection(icid(collection), vcpu(target));
            assert_eq!(got, Ok(want), "{op:?}");
        }
        StateOp::UnmapCollection(collection) => {
            let got = new.unmap_collection(icid(collection));
            let want = old.unmap_collection(icid(collection));
            assert_eq!(got, want, "{op:?}");
        }
        StateOp::TakeDevices => {
            let got: Vec<_> = new
                .take_devices()
                .map(|(id, e)| (id, contents(e.view())))
                .collect();
            let want: Vec<_> = old
                .take_devices()
                .iter()
                .map(|(id, e)| (*id, reference_contents(e)))
                .collect();
            assert_eq!(got, want, "{op:?}");
        }
        StateOp::TakeCollections => {
            assert_eq!(new.take_collections(), old.take_collections(), "{op:?}");
        }
    }
}

/// Every query of the state gives the same answer from both.
fn assert_same(new: &TranslationState, old: &reference::TranslationState, probes: &[(u32, u32)]) {
    assert_eq!(new.device_count(), old.device_count(), "device count");
    assert_eq!(new.event_count(), old.event_count(), "event count");
    let got: Vec<_> = new.devices().map(|(id, e)| (id, contents(e))).collect();
    let want: Vec<_> = old
        .devices()
        .map(|(id, e)| (id, reference_contents(e)))
        .collect();
    assert_eq!(got, want, "devices and their events");
    assert!(new.collections().eq(old.collections()), "collections");
    for c in 0..COLLECTIONS {
        assert!(
            new.events_in_collection(icid(c))
                .eq(old.events_in_collection(icid(c))),
            "events of collection {c}"
        );
        assert_eq!(new.collection(icid(c)), old.collection(icid(c)));
    }
    for &(device, event) in probes {
        let (device, event) = (VirtDeviceId::new(device), EventId::new(event));
        assert_eq!(new.event(device, event), old.event(device, event));
        assert_eq!(
            new.device(device).map(contents),
            old.device(device).map(reference_contents)
        );
    }
    // The allowance is what the tables hold, and holds.
    let slots: usize = new.devices().map(|(_, e)| e.table_slots()).sum();
    assert_eq!(slots, new.event_table_slots());
    assert!(slots <= 2 * MAX_EVENTS, "{slots} table slots");
    for (_, entry) in new.devices() {
        let itt = 1u64 << entry.event_bits;
        assert!(
            entry.table_slots() as u64 <= itt,
            "table beyond the ITT size"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn table_state_answers_like_the_btree_state_it_replaced(
        ops in prop::collection::vec(state_op(), 1..200)
    ) {
        let mut new = TranslationState::with_max_events(MAX_EVENTS);
        let mut old = reference::TranslationState::default();
        let mut probes = Vec::new();
        for op in ops {
            if let StateOp::InsertEvent(d, e, ..)
            | StateOp::RemoveEvent(d, e)
            | StateOp::SetCollection(d, e, _) = op
            {
                probes.push((d, e));
            }
            apply(op, &mut new, &mut old);
            assert_same(&new, &old, &probes);
        }
    }
}

#[test]
fn a_huge_itt_and_scattered_event_ids_allocate_nothing_in_proportion() {
    let mut state = TranslationState::with_max_events(16);
    state
        .insert_device(VirtDeviceId::new(1), DeviceBacking::Nothing, 32, Ipa(ITT))
        .unwrap();
    assert_eq!(state.event_table_slots(), 0, "MAPD allocates no table");
    let mapping = EventEntry {
        intid: VirtIntId::from_const(8192),
        icid: icid(0),
    };
    for event in [u32::MAX, 1 << 31, 1 << 20, 70_000] {
        assert_eq!(
            state.insert_event(VirtDeviceId::new(1), EventId::new(event), mapping),
            Ok(true)
        );
    }
    assert_eq!(
        state.event_table_slots(),
        0,
        "scattered EventIDs stay sparse"
    );
    assert_eq!(
        state.event(VirtDeviceId::new(1), EventId::new(u32::MAX)),
        Some(mapping)
    );
    // Ascending EventIDs from 0 fill a table, which takes the sparse events
    // it comes to cover.
    for event in 0..16 {
        assert_eq!(
            state.insert_event(VirtDeviceId::new(1), EventId::new(event), mapping),
            Ok(true)
        );
    }
    let table = state.event_table_slots();
    assert!(
        (16..=32).contains(&table),
        "{table} slots for 16 dense events"
    );
    assert_eq!(state.event_count(), 20);
    let events: Vec<u32> = state
        .device(VirtDeviceId::new(1))
        .unwrap()
        .events()
        .map(|(e, _)| e.get())
        .collect();
    let mut want: Vec<u32> = (0..16).collect();
    want.extend([70_000, 1 << 20, 1 << 31, u32::MAX]);
    assert_eq!(events, want, "EventID order across table and sparse map");
}

#[test]
fn unmapping_a_device_returns_its_table_slots_to_the_allowance() {
    let mut state = TranslationState::with_max_events(64);
    let mapping = EventEntry {
        intid: VirtIntId::from_const(8192),
        icid: icid(0),
    };
    for round in 0..10u32 {
        let device = VirtDeviceId::new(round);
        state
            .insert_device(device, DeviceBacking::Nothing, 16, Ipa(ITT))
            .unwrap();
        for event in 0..64 {
            assert_eq!(
                state.insert_event(device, EventId::new(event), mapping),
                Ok(true)
            );
        }
        assert_eq!(state.device(device).unwrap().table_slots(), 64);
        state.remove_device(device);
        assert_eq!(state.event_table_slots(), 0);
    }
}

#[test]
fn many_devices_are_found_after_growth_and_removals() {
    let mut new = TranslationState::with_max_events(0);
    let mut old = reference::TranslationState::default();
    // Consecutive and colliding-looking DeviceIDs, mapped, half unmapped,
    // mapped again at reused places.
    let ids: Vec<u32> = (0..600u32)
        .map(|i| i.wrapping_mul(0x1_0001) ^ (i << 20))
        .collect();
    for &id in &ids {
        new.insert_device(VirtDeviceId::new(id), DeviceBacking::Nothing, 4, Ipa(ITT))
            .unwrap();
        old.insert_device(VirtDeviceId::new(id), DeviceBacking::Nothing, 4, Ipa(ITT));
    }
    for &id in ids.iter().step_by(2) {
        assert!(new.remove_device(VirtDeviceId::new(id)).is_some());
        old.remove_device(VirtDeviceId::new(id));
    }
    for &id in ids.iter().step_by(4) {
        new.insert_device(VirtDeviceId::new(id), DeviceBacking::Emulated, 5, Ipa(ITT))
            .unwrap();
        old.insert_device(VirtDeviceId::new(id), DeviceBacking::Emulated, 5, Ipa(ITT));
    }
    let probes: Vec<(u32, u32)> = ids
        .iter()
        .map(|&id| (id, 0))
        .chain([(7, 0), (u32::MAX, 0)])
        .collect();
    for &(id, _) in &probes {
        assert_eq!(
            new.device(VirtDeviceId::new(id)).map(contents),
            old.device(VirtDeviceId::new(id)).map(reference_contents),
            "device {id:#x}"
        );
    }
    assert_eq!(new.device_count(), old.device_count());
    assert!(new
        .devices()
        .map(|(id, e)| (id, contents(e)))
        .eq(old.devices().map(|(id, e)| (id, reference_contents(e)))));
}

/// The state's bookkeeping agrees with its contents: event and table-slot
/// counts, and the per-collection counts MAPC's work charge reads.
fn assert_consistent(state: &TranslationState) {
    let events: usize = state.devices().map(|(_, e)| e.events().count()).sum();
    assert_eq!(events, state.event_count(), "event count");
    let counted: usize = state.devices().map(|(_, e)| e.event_count()).sum();
    assert_eq!(counted, state.event_count(), "per-device counts");
    let slots: usize = state.devices().map(|(_, e)| e.table_slots()).sum();
    assert_eq!(slots, state.event_table_slots(), "table slots");
    for c in 0..COLLECTIONS {
        let named = state
            .devices()
            .flat_map(|(_, e)| e.events())
            .filter(|(_, m)| m.icid == icid(c))
            .count();
        assert_eq!(
            state.collection_event_count(icid(c)),
            named,
            "collection {c}"
        );
    }
    assert!(
        state.devices().map(|(id, _)| id).is_sorted(),
        "device order"
    );
}

/// Whether anything a guest or the counters can see differs.
fn same_state(a: &TranslationState, b: &TranslationState) -> bool {
    a == b
        && a.event_count() == b.event_count()
        && a.event_table_slots() == b.event_table_slots()
        && (0..COLLECTIONS)
            .all(|c| a.collection_event_count(icid(c)) == b.collection_event_count(icid(c)))
}

/// `op` with the heap failing after `succeed` allocations: an operation
/// that fails changes nothing (the reference is left alone too); one that
/// succeeds answers like the reference. Unmapping a device and mapping it
/// again never needs memory.
fn apply_failing(
    op: StateOp,
    succeed: usize,
    new: &mut TranslationState,
    old: &mut reference::TranslationState,
) {
    use crate::test_alloc::failing_after;
    let d = VirtDeviceId::new;
    let before = new.clone();
    match op {
        StateOp::Mapd(device, bits, valid) => {
            let itt = Ipa(ITT + u64::from(device) * 0x1000);
            let backing = config().backing(d(device));
            let was_mapped = new.device(d(device)).is_some();
            let removed = new.remove_device(d(device)).map(|e| contents(e.view()));
            let want = old.remove_device(d(device)).map(|e| reference_contents(&e));
            assert_eq!(removed, want, "{op:?}: removed device");
            if !valid {
                return;
            }
            let (got, _) =
                failing_after(succeed, || new.insert_device(d(device), backing, bits, itt));
            if was_mapped {
                assert_eq!(got, Ok(()), "{op:?}: a remap needs no memory");
            }
            match got {
                Ok(()) => old.insert_device(d(device), backing, bits, itt),
                Err(state::NoMemory) => assert!(new.device(d(device)).is_none(), "{op:?}"),
            }
        }
        StateOp::InsertEvent(device, event, intid, collection) => {
            let mapping = EventEntry {
                intid: VirtIntId::from_const(intid),
                icid: icid(collection),
            };
            let (got, _) = failing_after(succeed, || {
                new.insert_event(d(device), EventId::new(event), mapping)
            });
            match got {
                Ok(got) => {
                    let want = old.insert_event(d(device), EventId::new(event), mapping);
                    assert_eq!(got, want, "{op:?}");
                }
                Err(state::NoMemory) => {
                    assert!(same_state(new, &before), "{op:?} changed the state")
                }
            }
        }
        StateOp::SetCollection(device, event, collection) => {
            let (changed, _) = failing_after(succeed, || {
                new.set_event_collection(d(device), EventId::new(event), icid(collection))
            });
            if changed {
                old.set_event_collection(d(device), EventId::new(event), icid(collection));
            } else {
                assert!(same_state(new, &before), "{op:?} changed the state");
            }
        }
        StateOp::MapCollection(collection, target) => {
            let (got, _) = failing_after(succeed, || {
                new.map_collection(icid(collection), vcpu(target))
            });
            match got {
                Ok(got) => {
                    let want = old.map_collection(icid(collection), vcpu(target));
                    assert_eq!(got, want, "{op:?}");
                }
                Err(state::NoMemory) => {
                    assert!(same_state(new, &before), "{op:?} changed the state")
                }
            }
        }
        // Unmapping needs no memory.
        StateOp::RemoveEvent(device, event) => {
            let (got, _) = failing_after(0, || new.remove_event(d(device), EventId::new(event)));
            let want = old.remove_event(d(device), EventId::new(event));
            assert_eq!(got, want, "{op:?}");
        }
        StateOp::UnmapCollection(collection) => {
            let (got, _) = failing_after(0, || new.unmap_collection(icid(collection)));
            assert_eq!(got, old.unmap_collection(icid(collection)), "{op:?}");
        }
        StateOp::TakeDevices => {
            let (taken, _) = failing_after(0, || new.take_devices());
            let got: Vec<_> = taken.map(|(id, e)| (id, contents(e.view()))).collect();
            let want: Vec<_> = old
                .take_devices()
                .iter()
                .map(|(id, e)| (*id, reference_contents(e)))
                .collect();
            assert_eq!(got, want, "{op:?}");
        }
        // The list it returns is the one allocation that may not fail.
        StateOp::TakeCollections => apply(op, new, old),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With the heap failing at any point of any operation, every
    /// operation either completes, answering like the reference, or fails
    /// leaving the state as it was; the bookkeeping stays true throughout,
    /// through table growth, sparse lists, index growth, device removal
    /// and re-mapping at reused places.
    #[test]
    fn a_failing_heap_leaves_the_state_consistent(
        ops in prop::collection::vec((state_op(), prop::option::weighted(0.5, 0..4usize)), 1..200)
    ) {
        let mut new = TranslationState::with_max_events(MAX_EVENTS);
        let mut old = reference::TranslationState::default();
        let mut probes = Vec::new();
        for (op, fail) in ops {
            if let StateOp::InsertEvent(d, e, ..)
            | StateOp::RemoveEvent(d, e)
            | StateOp::SetCollection(d, e, _) = op
            {
                probes.push((d, e));
            }
            match fail {
                Some(succeed) => apply_failing(op, succeed, &mut new, &mut old),
                None => apply(op, &mut new, &mut old),
            }
            assert_consistent(&new);
            assert_same(&new, &old, &probes);
        }
    }
}

/// Remapping and unmapping devices with events, over and over at reused
/// places, with the heap refusing everything: nothing fails, nothing leaks
/// out of the allowance.
#[test]
fn removing_and_remapping_devices_needs_no_memory() {
    use crate::test_alloc::failing_after;
    let mut state = TranslationState::with_max_events(256);
    let mapping = EventEntry {
        intid: VirtIntId::from_const(8192),
        icid: icid(1),
    };
    for device in 0..8 {
        state
            .insert_device(
                VirtDeviceId::new(device),
                DeviceBacking::Nothing,
                8,
                Ipa(ITT),
            )
            .unwrap();
        for event in 0..20 {
            assert_eq!(
                state.insert_event(VirtDeviceId::new(device), EventId::new(event * 3), mapping),
                Ok(true)
            );
        }
    }
    let ((), failed) = failing_after(0, || {
        for round in 0..4u32 {
            for device in (0..8).filter(|d| d % 2 == round % 2) {
                let old = state.remove_device(VirtDeviceId::new(device)).unwrap();
                assert_eq!(old.event_count(), if round < 2 { 20 } else { 0 });
                let again = state.insert_device(
                    VirtDeviceId::new(device),
                    DeviceBacking::Emulated,
                    9,
                    Ipa(ITT),
                );
                assert_eq!(again, Ok(()), "remap of {device}");
            }
        }
    });
    assert_eq!(failed, 0);
    // A new device needs memory unless every structure has room left:
    // if it fails, it fails at the first refusal, changing nothing.
    let before = state.clone();
    let (added, failed) = failing_after(0, || {
        state.insert_device(VirtDeviceId::new(100), DeviceBacking::Nothing, 8, Ipa(ITT))
    });
    if added.is_err() {
        assert!(same_state(&state, &before));
    }
    assert_consistent(&state);
    assert_eq!(state.event_count(), 0);
    assert_eq!(state.event_table_slots(), 0);
    assert_eq!(
        state.device_count(),
        8 + usize::from(state.device(VirtDeviceId::new(100)).is_some())
    );
    assert!(failed <= 1, "{failed} allocations attempted");
}

/// The vITS with a heap that refuses everything: MAPD of a new device,
/// MAPC of a new collection and MAPTI that needs a table are skipped and
/// counted as their cap's error, the state and the backend untouched; the
/// same commands succeed once the heap serves again, and INT finds the
/// event.
#[test]
fn a_vits_on_an_exhausted_heap_skips_the_mapping_commands_and_counts_them() {
    use crate::test_alloc::failing_after;
    let mut h = Harness::with(config(), crate::vits::NullBackend::default());
    let commands = [cmd::mapd(5, 8, ITT, true), cmd::mapc(3, 1, true)];
    let ((), failed) = failing_after(0, || h.submit(&commands));
    assert!(failed >= 2, "{failed} allocations refused");
    assert_eq!(h.vits.state().device_count(), 0);
    assert_eq!(h.vits.state().collections().count(), 0);
    assert_eq!(h.vits.errors().commands(CommandErrorKind::DeviceLimit), 1);
    assert_eq!(
        h.vits.errors().commands(CommandErrorKind::CollectionLimit),
        1
    );
    h.submit(&commands);
    assert!(h.vits.state().device(VirtDeviceId::new(5)).is_some());
    assert_eq!(h.vits.state().collection(icid(3)), Some(vcpu(1)));
    let map = [cmd::mapti(5, 7, 8200, 3)];
    failing_after(0, || h.submit(&map));
    assert_eq!(h.vits.state().event_count(), 0);
    assert_eq!(h.vits.errors().commands(CommandErrorKind::EventLimit), 1);
    assert_eq!(h.backend.calls, 0, "the backend heard of nothing");
    h.submit(&map);
    h.submit(&[cmd::int(5, 7)]);
    assert_eq!(h.vits.state().event_count(), 1);
    assert_eq!(h.backend.calls, 2, "map and INT");
    assert_eq!(h.vits.errors().total_commands(), 3);
}
