//! Host tests of the GICv4 passthrough backend against a recording
//! physical ITS, unit by unit and end to end through a real vITS.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::fake::guest::{self, GUEST_RAM};
use super::fake::{PhysEntry, RecordingSink};
use super::*;
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::guest_mem::FakeGuestMemory;
use crate::ids::{
    EventId, PartitionId, PhysDeviceId, PhysIntId, VcpuIndex, VirtDeviceId, VirtIntId, VpeId,
};
use crate::vgic::LpiConfig;
use crate::vits::{BackendAction, DeviceBacking, EventRef, RecordingBackend, Vits, VitsBackend};

/// The partition's first passthrough device: 8 EventID bits.
const NIC: PhysDeviceId = PhysDeviceId::new(0x0100);
/// Its second: 2 EventID bits.
const EDU: PhysDeviceId = PhysDeviceId::new(0x0208);
/// A device of another partition.
const FOREIGN: PhysDeviceId = PhysDeviceId::new(0x0300);
/// First vPE ID; vCPU n is vPE FIRST_VPE + n.
const FIRST_VPE: u16 = 10;
/// First doorbell; vCPU n rings FIRST_DOORBELL + n.
const FIRST_DOORBELL: u32 = 9000;
/// vCPUs of the partition.
const VCPUS: u16 = 4;

fn config() -> PassthroughConfig {
    let vpes = (0..VCPUS)
        .map(|n| VpeConfig {
            vpe: VpeId::new(FIRST_VPE + n),
            doorbell: PhysIntId::from_const(FIRST_DOORBELL + u32::from(n)),
            rdbase: RdBase::processor(n + 4),
        })
        .collect();
    let mut devices = BTreeMap::new();
    devices.insert(NIC, PassthroughDevice { event_id_bits: 8 });
    devices.insert(EDU, PassthroughDevice { event_id_bits: 2 });
    PassthroughConfig {
        partition: PartitionId::new(1),
        vpes,
        devices,
        vlpi_id_bits: 16,
        max_batch: 64,
    }
}

type Backend = Gicv4Backend<RecordingSink, RecordingBackend>;

fn backend_with(config: PassthroughConfig) -> Backend {
    let sink = RecordingSink::for_config(&config);
    Gicv4Backend::new(config, sink, RecordingBackend::new()).expect("valid config")
}

fn backend() -> Backend {
    backend_with(config())
}

fn pt(device: PhysDeviceId, event: u32) -> EventRef {
    EventRef {
        device: VirtDeviceId::new(device.get() >> 8),
        backing: DeviceBacking::Passthrough(device),
        event: EventId::new(event),
    }
}

fn emulated(event: u32) -> EventRef {
    EventRef {
        device: VirtDeviceId::new(7),
        backing: DeviceBacking::Emulated,
        event: EventId::new(event),
    }
}

fn vcpu(n: u16) -> VcpuIndex {
    VcpuIndex::new(n)
}

fn lpi(n: u32) -> VirtIntId {
    VirtIntId::from_const(8192 + n)
}

fn vpe(n: u16) -> u16 {
    FIRST_VPE + n
}

fn entry(n: u16, vintid: VirtIntId) -> PhysEntry {
    PhysEntry {
        vpe: vpe(n),
        vintid: vintid.get(),
        doorbell: FIRST_DOORBELL + u32::from(n),
    }
}

/// The commands of the last batch, without its sync, and the sync.
fn last_batch(b: &Backend) -> (Vec<ItsCommand>, ItsCommand) {
    b.sink().batches.last().cloned().expect("a batch")
}

fn assert_clean(b: &Backend) {
    assert_eq!(b.sink().violations, [], "isolation breached");
    assert_eq!(b.sink().command_errors, [], "hardware would reject");
}

/// Maps `event` of `device` to `vintid` on `vcpu` and syncs.
fn mapped(b: &mut Backend, device: PhysDeviceId, event: u32, on: u16, vintid: VirtIntId) {
    b.map_event(pt(device, event), vcpu(on), vintid);
    b.sync();
}

#[test]
fn map_event_issues_vmapti_with_the_vcpus_vpe_and_doorbell() {
    let mut b = backend();
    mapped(&mut b, NIC, 3, 2, lpi(40));
    let (commands, sync) = last_batch(&b);
    assert_eq!(
        commands,
        [ItsCommand::Vmapti {
            device_id: NIC.get(),
            event_id: 3,
            vpe_id: vpe(2),
            vintid: lpi(40).get(),
            db_intid: FIRST_DOORBELL + 2,
        }]
    );
    assert_eq!(sync, ItsCommand::Vsync { vpe_id: vpe(2) });
    assert_eq!(
        b.sink().events.get(&(NIC.get(), 3)),
        Some(&entry(2, lpi(40)))
    );
    assert_clean(&b);
}

#[test]
fn map_event_copies_the_guest_configuration_into_the_vlpi_property_table() {
    let mut b = backend();
    let config = LpiConfig {
        priority: 0xa0,
        enabled: true,
    };
    b.sink_mut().guest.insert(lpi(1).get(), config);
    mapped(&mut b, NIC, 1, 0, lpi(1));
    assert_eq!(b.sink().vprop.get(&lpi(1).get()), Some(&config));
    // Unreadable guest configuration: disabled, never delivered.
    mapped(&mut b, NIC, 2, 0, lpi(2));
    assert_eq!(
        b.sink().vprop.get(&lpi(2).get()).map(|c| c.enabled),
        Some(false)
    );
}

#[test]
fn unmap_event_discards_the_physical_mapping() {
    let mut b = backend();
    mapped(&mut b, NIC, 5, 1, lpi(5));
    b.unmap_event(pt(NIC, 5), vcpu(1), lpi(5));
    b.sync();
    let (commands, sync) = last_batch(&b);
    assert_eq!(
        commands,
        [ItsCommand::Discard {
            device_id: NIC.get(),
            event_id: 5
        }]
    );
    assert_eq!(sync, ItsCommand::Vsync { vpe_id: vpe(1) });
    assert!(b.sink().events.is_empty());
    assert_eq!(b.mapping(NIC, EventId::new(5)), None);
    assert_clean(&b);
}

#[test]
fn discard_event_issues_discard_and_the_pending_vlpi_goes_with_it() {
    let mut b = backend();
    mapped(&mut b, NIC, 5, 1, lpi(5));
    b.set_pending(pt(NIC, 5), vcpu(1), lpi(5));
    b.sync();
    assert!(b.sink().pending.contains(&(vpe(1), lpi(5).get())));
    b.discard_event(pt(NIC, 5), vcpu(1), lpi(5));
    b.sync();
    assert_eq!(
        last_batch(&b).0,
        [ItsCommand::Discard {
            device_id: NIC.get(),
            event_id: 5
        }]
    );
    assert!(b.sink().events.is_empty());
    assert!(b.sink().pending.is_empty());
    assert_clean(&b);
}

#[test]
fn movi_becomes_vmovi_and_the_event_and_its_pending_vlpi_change_vpe() {
    let mut b = backend();
    mapped(&mut b, NIC, 7, 0, lpi(7));
    b.set_pending(pt(NIC, 7), vcpu(0), lpi(7));
    b.sync();
    b.move_event(pt(NIC, 7), vcpu(0), vcpu(3), lpi(7));
    b.sync();
    let (commands, sync) = last_batch(&b);
    assert_eq!(
        commands[0],
        ItsCommand::Vmovi {
            device_id: NIC.get(),
            event_id: 7,
            vpe_id: vpe(3),
            db_intid: FIRST_DOORBELL + 3,
            db_valid: true,
        }
    );
    // Both vPEs are synced, in the same submit.
    let mut synced: Vec<ItsCommand> = commands[1..].to_vec();
    synced.push(sync);
    assert_eq!(
        synced,
        [
            ItsCommand::Vsync { vpe_id: vpe(0) },
            ItsCommand::Vsync { vpe_id: vpe(3) }
        ]
    );
    assert_eq!(
        b.sink().events.get(&(NIC.get(), 7)),
        Some(&entry(3, lpi(7)))
    );
    assert_eq!(
        b.mapping(NIC, EventId::new(7)).map(|m| m.vcpu),
        Some(vcpu(3))
    );
    assert!(b.sink().pending.contains(&(vpe(3), lpi(7).get())));
    assert!(!b.sink().pending.contains(&(vpe(0), lpi(7).get())));
    assert_clean(&b);
}

#[test]
fn set_pending_issues_int_and_clear_pending_issues_clear() {
    let mut b = backend();
    mapped(&mut b, EDU, 1, 2, lpi(100));
    b.set_pending(pt(EDU, 1), vcpu(2), lpi(100));
    b.sync();
    assert_eq!(
        last_batch(&b).0,
        [ItsCommand::Int {
            device_id: EDU.get(),
            event_id: 1
        }]
    );
    assert!(b.sink().pending.contains(&(vpe(2), lpi(100).get())));
    b.clear_pending(pt(EDU, 1), vcpu(2), lpi(100));
    b.sync();
    assert_eq!(
        last_batch(&b).0,
        [ItsCommand::Clear {
            device_id: EDU.get(),
            event_id: 1
        }]
    );
    assert!(b.sink().pending.is_empty());
    assert_clean(&b);
}

#[test]
fn reload_config_writes_the_guest_byte_then_inv_of_the_event() {
    let mut b = backend();
    mapped(&mut b, NIC, 9, 1, lpi(9));
    let config = LpiConfig {
        priority: 0x40,
        enabled: true,
    };
    b.sink_mut().guest.insert(lpi(9).get(), config);
    b.reload_config(pt(NIC, 9), vcpu(1), lpi(9));
    b.sync();
    assert_eq!(b.sink().vprop.get(&lpi(9).get()), Some(&config));
    assert_eq!(
        last_batch(&b).0,
        [ItsCommand::Inv {
            device_id: NIC.get(),
            event_id: 9
        }]
    );
    assert_clean(&b);
}

#[test]
fn reload_config_all_writes_the_vpes_bytes_then_vinvall() {
    let mut b = backend();
    mapped(&mut b, NIC, 1, 1, lpi(1));
    mapped(&mut b, NIC, 2, 1, lpi(2));
    mapped(&mut b, NIC, 3, 2, lpi(3));
    let on = LpiConfig {
        priority: 0x80,
        enabled: true,
    };
    for n in 1..=3 {
        b.sink_mut().guest.insert(lpi(n).get(), on);
    }
    b.reload_config_all(vcpu(1));
    b.sync();
    assert_eq!(last_batch(&b).0, [ItsCommand::Vinvall { vpe_id: vpe(1) }]);
    assert_eq!(b.sink().vprop.get(&lpi(1).get()), Some(&on));
    assert_eq!(b.sink().vprop.get(&lpi(2).get()), Some(&on));
    // vCPU 2's vLPI was not reloaded.
    assert_ne!(b.sink().vprop.get(&lpi(3).get()), Some(&on));
    // The software side hears about INVALL too.
    assert!(b
        .inner()
        .actions
        .contains(&BackendAction::ReloadConfigAll { vcpu: vcpu(1) }));
    assert_clean(&b);
}

#[test]
fn reload_config_all_in_slices_copies_every_byte_and_ends_with_one_vinvall() {
    let mut b = backend();
    let on = LpiConfig {
        priority: 0x40,
        enabled: true,
    };
    // 40 vLPIs, every other one on vCPU 1.
    for n in 0..40 {
        mapped(&mut b, NIC, n, (n % 2) as u16, lpi(n));
        b.sink_mut().guest.insert(lpi(n).get(), on);
    }
    let batches = b.sink().batches.len();
    let mut slices = 0;
    loop {
        let progress = b.reload_config_all_within(vcpu(1), 6);
        b.sync();
        slices += 1;
        assert!(progress.touched <= 6, "{progress:?}");
        if progress.done {
            break;
        }
        assert_eq!(b.sink().batches.len(), batches, "no VINVALL before the end");
    }
    assert_eq!(slices, 7, "40 mappings visited, 6 a slice");
    assert_eq!(last_batch(&b).0, [ItsCommand::Vinvall { vpe_id: vpe(1) }]);
    for n in 0..40 {
        let copied = b.sink().vprop.get(&lpi(n).get()) == Some(&on);
        assert_eq!(copied, n % 2 == 1, "vLPI {n}");
    }
    assert_clean(&b);
}

#[test]
fn reload_config_all_of_a_vcpu_without_vlpis_costs_no_physical_command() {
    let mut b = backend();
    b.reload_config_all(vcpu(0));
    b.sync();
    assert!(b.sink().batches.is_empty());
    assert_eq!(
        b.inner().actions,
        [
            BackendAction::ReloadConfigAll { vcpu: vcpu(0) },
            BackendAction::Sync
        ]
    );
}

#[test]
fn move_all_pending_issues_no_physical_command_and_reaches_the_software_side() {
    let mut b = backend();
    mapped(&mut b, NIC, 1, 0, lpi(1));
    let before = b.sink().batches.len();
    b.move_all_pending(vcpu(0), vcpu(1));
    b.sync();
    assert_eq!(b.sink().batches.len(), before);
    assert!(b.inner().actions.contains(&BackendAction::MoveAllPending {
        from: vcpu(0),
        to: vcpu(1)
    }));
}

#[test]
fn one_trap_is_one_submit_closed_by_one_vsync() {
    let mut b = backend();
    b.map_event(pt(NIC, 1), vcpu(0), lpi(1));
    b.map_event(pt(NIC, 2), vcpu(0), lpi(2));
    b.map_event(pt(EDU, 0), vcpu(0), lpi(3));
    b.set_pending(pt(NIC, 1), vcpu(0), lpi(1));
    b.reload_config(pt(NIC, 2), vcpu(0), lpi(2));
    assert!(
        b.sink().batches.is_empty(),
        "nothing leaves before the sync"
    );
    b.sync();
    assert_eq!(b.sink().batches.len(), 1);
    let (commands, sync) = last_batch(&b);
    assert_eq!(commands.len(), 5);
    assert!(commands.iter().all(|c| !c.is_sync()));
    assert_eq!(sync, ItsCommand::Vsync { vpe_id: vpe(0) });
    assert_eq!(b.stats().batches, 1);
    assert_clean(&b);
}

#[test]
fn a_batch_touching_two_vpes_syncs_both_in_one_submit() {
    let mut b = backend();
    b.map_event(pt(NIC, 1), vcpu(0), lpi(1));
    b.map_event(pt(NIC, 2), vcpu(3), lpi(2));
    b.sync();
    assert_eq!(b.sink().batches.len(), 1);
    let (commands, sync) = last_batch(&b);
    assert_eq!(commands[2], ItsCommand::Vsync { vpe_id: vpe(0) });
    assert_eq!(sync, ItsCommand::Vsync { vpe_id: vpe(3) });
}

#[test]
fn sync_without_physical_work_submits_nothing() {
    let mut b = backend();
    b.sync();
    b.set_pending(emulated(1), vcpu(0), lpi(1));
    b.sync();
    assert!(b.sink().batches.is_empty());
    assert_eq!(b.stats().batches, 0);
}

#[test]
fn discard_then_mapti_gives_a_vlpi_again_without_touching_the_device() {
    let mut b = backend();
    mapped(&mut b, NIC, 4, 1, lpi(4));
    b.discard_event(pt(NIC, 4), vcpu(1), lpi(4));
    b.sync();
    assert!(b.sink().events.is_empty());
    b.map_event(pt(NIC, 4), vcpu(2), lpi(44));
    b.sync();
    assert_eq!(
        last_batch(&b).0,
        [ItsCommand::Vmapti {
            device_id: NIC.get(),
            event_id: 4,
            vpe_id: vpe(2),
            vintid: lpi(44).get(),
            db_intid: FIRST_DOORBELL + 2,
        }]
    );
    // Direct delivery again: the device's next MSI lands on vPE 2.
    assert_eq!(
        b.sink().events.get(&(NIC.get(), 4)),
        Some(&entry(2, lpi(44)))
    );
    // No MAPD (the kernel's ITT stays), and the sink has no way to touch
    // the endpoint's MSI programming at all.
    assert!(b
        .sink()
        .all_commands()
        .iter()
        .all(|c| !matches!(c, ItsCommand::Mapd { .. })));
    assert_clean(&b);
}

#[test]
fn software_events_reach_the_inner_backend_unchanged() {
    let mut b = backend();
    let event = emulated(3);
    b.map_event(event, vcpu(1), lpi(3));
    b.set_pending(event, vcpu(1), lpi(3));
    b.move_event(event, vcpu(1), vcpu(2), lpi(3));
    b.clear_pending(event, vcpu(2), lpi(3));
    b.reload_config(event, vcpu(2), lpi(3));
    b.unmap_event(event, vcpu(2), lpi(3));
    b.discard_event(event, vcpu(2), lpi(3));
    b.sync();
    let nothing = EventRef {
        backing: DeviceBacking::Nothing,
        ..event
    };
    b.set_pending(nothing, vcpu(0), lpi(9));
    assert_eq!(
        b.inner().actions,
        [
            BackendAction::Map {
                event,
                vcpu: vcpu(1),
                intid: lpi(3)
            },
            BackendAction::SetPending {
                event,
                vcpu: vcpu(1),
                intid: lpi(3)
            },
            BackendAction::Move {
                event,
                from: vcpu(1),
                to: vcpu(2),
                intid: lpi(3)
            },
            BackendAction::ClearPending {
                event,
                vcpu: vcpu(2),
                intid: lpi(3)
            },
            BackendAction::ReloadConfig {
                event,
                vcpu: vcpu(2),
                intid: lpi(3)
            },
            BackendAction::Unmap {
                event,
                vcpu: vcpu(2),
                intid: lpi(3)
            },
            BackendAction::Discard {
                event,
                vcpu: vcpu(2),
                intid: lpi(3)
            },
            BackendAction::Sync,
            BackendAction::SetPending {
                event: nothing,
                vcpu: vcpu(0),
                intid: lpi(9)
            },
        ]
    );
    assert!(b.sink().batches.is_empty());
}

#[test]
fn passthrough_events_never_reach_the_inner_backend() {
    let mut b = backend();
    b.map_event(pt(NIC, 1), vcpu(0), lpi(1));
    b.set_pending(pt(NIC, 1), vcpu(0), lpi(1));
    b.map_event(pt(FOREIGN, 1), vcpu(0), lpi(2));
    assert!(b.inner().actions.is_empty());
}

#[test]
fn a_device_of_another_partition_is_refused_counted_and_never_named() {
    let mut b = backend();
    b.map_event(pt(FOREIGN, 1), vcpu(0), lpi(1));
    b.set_pending(pt(FOREIGN, 1), vcpu(0), lpi(1));
    b.discard_event(pt(FOREIGN, 1), vcpu(0), lpi(1));
    b.sync();
    assert!(b.sink().batches.is_empty());
    assert_eq!(b.stats().refused, 3);
    assert_eq!(b.mappings().count(), 0);
}

#[test]
fn out_of_range_vcpus_events_and_vintids_are_refused() {
    let mut b = backend();
    b.map_event(pt(NIC, 1), vcpu(VCPUS), lpi(1));
    b.map_event(pt(EDU, 4), vcpu(0), lpi(1));
    b.map_event(pt(NIC, 1), vcpu(0), VirtIntId::from_const(1019));
    b.map_event(pt(NIC, 1), vcpu(0), VirtIntId::from_const(1 << 16));
    mapped(&mut b, NIC, 2, 0, lpi(2));
    b.move_event(pt(NIC, 2), vcpu(0), vcpu(VCPUS + 7), lpi(2));
    b.reload_config_all(vcpu(u16::MAX));
    b.sync();
    assert_eq!(b.stats().refused, 6);
    assert_eq!(b.sink().events.len(), 1);
    assert_eq!(
        b.sink().events.get(&(NIC.get(), 2)),
        Some(&entry(0, lpi(2)))
    );
    assert_clean(&b);
}

#[test]
fn commands_on_an_unmapped_event_are_refused_before_the_hardware_sees_them() {
    let mut b = backend();
    b.set_pending(pt(NIC, 1), vcpu(0), lpi(1));
    b.clear_pending(pt(NIC, 1), vcpu(0), lpi(1));
    b.reload_config(pt(NIC, 1), vcpu(0), lpi(1));
    b.move_event(pt(NIC, 1), vcpu(0), vcpu(1), lpi(1));
    b.sync();
    assert_eq!(b.stats().refused, 4);
    assert!(b.sink().batches.is_empty());
    // Discarding what is not mapped is already done: no command, no count.
    b.discard_event(pt(NIC, 1), vcpu(0), lpi(1));
    b.sync();
    assert_eq!(b.stats().refused, 4);
    assert!(b.sink().batches.is_empty());
}

#[test]
fn a_failing_sink_is_counted_and_nothing_panics() {
    let mut b = backend();
    b.sink_mut().fail_submits = 1;
    b.map_event(pt(NIC, 1), vcpu(0), lpi(1));
    b.sync();
    assert_eq!(b.stats().sink_failures, 1);
    assert_eq!(b.flush(), Ok(()), "the failed batch is not retried");
    // The next trap works again.
    b.map_event(pt(NIC, 2), vcpu(0), lpi(2));
    b.sync();
    assert_eq!(b.stats().sink_failures, 1);
    assert_eq!(
        b.sink().events.get(&(NIC.get(), 2)),
        Some(&entry(0, lpi(2)))
    );
    assert_eq!(b.sink().violations, []);
}

#[test]
fn a_failing_property_write_is_counted_and_the_inv_still_goes() {
    let mut b = backend();
    mapped(&mut b, NIC, 1, 0, lpi(1));
    b.sink_mut().fail_config = true;
    b.reload_config(pt(NIC, 1), vcpu(0), lpi(1));
    b.reload_config_all(vcpu(0));
    b.sync();
    assert_eq!(b.stats().config_failures, 2);
    assert_eq!(b.sink().invalidations.len(), 2);
}

#[test]
fn teardown_discards_everything_and_says_what_the_kernel_undoes() {
    let mut b = backend();
    for event in 0..5 {
        b.map_event(pt(NIC, event), vcpu((event % 4) as u16), lpi(event));
    }
    b.map_event(pt(EDU, 0), vcpu(1), lpi(50));
    b.sync();
    b.set_pending(pt(NIC, 2), vcpu(2), lpi(2));
    // Left open on purpose: teardown submits it first.
    let report = b.teardown();
    assert_eq!(report.result, Ok(()));
    assert_eq!(report.discarded, 6);
    assert!(b.sink().events.is_empty(), "nothing stays mapped");
    assert!(b.sink().pending.is_empty());
    assert_eq!(b.mappings().count(), 0);
    assert_eq!(report.devices, [NIC, EDU]);
    assert_eq!(report.vpes, config().vpes);
    assert_eq!(
        report.doorbells,
        (0..4)
            .map(|n| PhysIntId::from_const(FIRST_DOORBELL + n))
            .collect::<Vec<_>>()
    );
    assert_clean(&b);
    // Restart: the same event maps again.
    mapped(&mut b, NIC, 2, 0, lpi(2));
    assert_eq!(
        b.sink().events.get(&(NIC.get(), 2)),
        Some(&entry(0, lpi(2)))
    );
    assert_clean(&b);
}

#[test]
fn kept_state_counts_mapped_events_and_none_after_teardown_or_discard() {
    let mut b = backend();
    for event in 0..3 {
        b.map_event(pt(NIC, event), vcpu(0), lpi(event));
    }
    b.map_event(pt(FOREIGN, 0), vcpu(0), lpi(9));
    b.discard_event(pt(NIC, 1), vcpu(0), lpi(1));
    b.sync();
    // What the kernel keeps between traps and reads for its footprint.
    let (state, sink, inner) = b.into_parts();
    assert_eq!(state.mapped_count(), 2, "the foreign event maps nothing");
    assert_eq!(state.config().vpes.len(), usize::from(VCPUS));
    let mut b = Gicv4Backend::from_parts(state, sink, inner);
    b.teardown();
    let (state, _, _) = b.into_parts();
    assert_eq!(state.mapped_count(), 0);
}

#[test]
fn teardown_reports_a_failing_sink() {
    let mut b = backend();
    mapped(&mut b, NIC, 1, 0, lpi(1));
    b.sink_mut().fail_submits = 1;
    let report = b.teardown();
    assert!(report.result.is_err());
    assert_eq!(report.discarded, 1);
}

#[test]
fn a_batch_larger_than_max_batch_is_split_within_the_bound() {
    let mut config = config();
    config.max_batch = 8;
    let mut b = backend_with(config);
    for event in 0..20 {
        b.map_event(pt(NIC, event), vcpu((event % 2) as u16), lpi(event));
    }
    b.sync();
    assert!(b.stats().early_flushes > 0);
    for (commands, sync) in &b.sink().batches {
        assert!(commands.len() < 8, "{} commands + sync", commands.len());
        assert!(sync.is_sync());
    }
    assert_eq!(b.sink().events.len(), 20);
    assert_clean(&b);
}

#[test]
fn into_parts_submits_an_open_batch() {
    let mut b = backend();
    // An MSI the vITS translated outside a command batch: no sync follows.
    mapped(&mut b, NIC, 1, 0, lpi(1));
    b.set_pending(pt(NIC, 1), vcpu(0), lpi(1));
    let (state, sink, inner) = b.into_parts();
    assert!(sink.pending.contains(&(vpe(0), lpi(1).get())));
    let b = Gicv4Backend::from_parts(state, sink, inner);
    assert_eq!(b.mappings().count(), 1);
}

#[test]
fn config_validation_refuses_shared_vpes_doorbells_and_bad_widths() {
    let mut c = config();
    c.vpes[1].vpe = c.vpes[0].vpe;
    assert_eq!(
        c.validate(),
        Err(PassthroughConfigError::DuplicateVpe {
            vpe: VpeId::new(FIRST_VPE)
        })
    );
    let mut c = config();
    c.vpes[1].doorbell = c.vpes[0].doorbell;
    assert!(matches!(
        c.validate(),
        Err(PassthroughConfigError::DuplicateDoorbell { .. })
    ));
    let mut c = config();
    c.vpes[0].doorbell = PhysIntId::from_const(40);
    assert!(matches!(
        c.validate(),
        Err(PassthroughConfigError::DoorbellNotLpi { .. })
    ));
    let mut c = config();
    c.vpes.clear();
    assert_eq!(c.validate(), Err(PassthroughConfigError::NoVcpus));
    let mut c = config();
    c.vlpi_id_bits = 13;
    assert!(c.validate().is_err());
    let mut c = config();
    c.max_batch = 4;
    assert!(c.validate().is_err());
    let mut c = config();
    c.devices
        .insert(FOREIGN, PassthroughDevice { event_id_bits: 0 });
    assert!(c.validate().is_err());
    assert_eq!(config().validate(), Ok(()));
}

// End to end: a real vITS, driven by guest commands, over this backend.

struct Guest {
    vits: Vits,
    mem: FakeGuestMemory,
    backend: Backend,
}

impl Guest {
    /// A vITS whose virtual device 1 is NIC and device 2 is emulated.
    fn new() -> Self {
        let (vits, mem) = guest::vits(NIC, VCPUS);
        let mut guest = Self {
            vits,
            mem,
            backend: backend(),
        };
        guest::enable(&mut guest.vits, &guest.mem, &mut guest.backend);
        guest
    }

    /// Writes `commands` into the queue and rings CWRITER: one trap.
    fn run(&mut self, commands: &[ItsCommand]) {
        guest::run(&mut self.vits, &mut self.mem, &mut self.backend, commands);
    }
}

fn mapc(icid: u16, on: u16) -> ItsCommand {
    ItsCommand::Mapc {
        icid,
        rdbase: RdBase::processor(on),
        valid: true,
    }
}

fn mapti(device: u32, event: u32, intid: VirtIntId, icid: u16) -> ItsCommand {
    ItsCommand::Mapti {
        device_id: device,
        event_id: event,
        intid: intid.get(),
        icid,
    }
}

/// Device 1 (NIC) with events 0..4 on collection 0 (vCPU 0), collection
/// 1 on vCPU 1, and one emulated event on device 2.
fn guest_setup() -> Guest {
    let mut guest = Guest::new();
    let mut commands = alloc::vec![
        ItsCommand::Mapd {
            device_id: 1,
            size: 7,
            itt_addr: GUEST_RAM + 0x3_0000,
            valid: true,
        },
        ItsCommand::Mapd {
            device_id: 2,
            size: 7,
            itt_addr: GUEST_RAM + 0x3_1000,
            valid: true,
        },
        mapc(0, 0),
        mapc(1, 1),
        mapti(2, 0, lpi(99), 0),
    ];
    for event in 0..4 {
        commands.push(mapti(1, event, lpi(event), 0));
    }
    guest.run(&commands);
    guest
}

#[test]
fn a_guest_mapti_trap_is_one_submit_of_vmaptis() {
    let guest = guest_setup();
    assert_eq!(guest.backend.sink().batches.len(), 1);
    for event in 0..4 {
        assert_eq!(
            guest.backend.sink().events.get(&(NIC.get(), event)),
            Some(&entry(0, lpi(event)))
        );
    }
    // The emulated event went to the software side.
    assert!(guest
        .backend
        .inner()
        .actions
        .iter()
        .any(|a| matches!(a, BackendAction::Map { intid, .. } if *intid == lpi(99))));
    assert_clean(&guest.backend);
}

#[test]
fn a_guest_mapc_retarget_and_movall_move_every_vlpi_with_its_pending_state() {
    let mut guest = guest_setup();
    guest.run(&[ItsCommand::Int {
        device_id: 1,
        event_id: 2,
    }]);
    assert!(guest
        .backend
        .sink()
        .pending
        .contains(&(vpe(0), lpi(2).get())));
    let before = guest.backend.sink().batches.len();
    // Linux's CPU offline: retarget the collection, then MOVALL.
    guest.run(&[
        mapc(0, 3),
        ItsCommand::Movall {
            rdbase1: RdBase::processor(0),
            rdbase2: RdBase::processor(3),
        },
    ]);
    assert_eq!(guest.backend.sink().batches.len(), before + 1);
    let (commands, _) = last_batch(&guest.backend);
    let vmovis = commands
        .iter()
        .filter(|c| matches!(c, ItsCommand::Vmovi { .. }))
        .count();
    assert_eq!(vmovis, 4);
    for event in 0..4 {
        assert_eq!(
            guest.backend.sink().events.get(&(NIC.get(), event)),
            Some(&entry(3, lpi(event)))
        );
    }
    assert_eq!(
        guest.backend.sink().pending.iter().collect::<Vec<_>>(),
        [&(vpe(3), lpi(2).get())],
        "pending exactly once, on the new vPE"
    );
    assert_clean(&guest.backend);
}

#[test]
fn a_guest_discard_then_mapti_of_the_same_event_is_a_vlpi_again() {
    let mut guest = guest_setup();
    guest.run(&[
        ItsCommand::Discard {
            device_id: 1,
            event_id: 1,
        },
        mapti(1, 1, lpi(77), 1),
    ]);
    let (commands, _) = last_batch(&guest.backend);
    assert!(matches!(
        commands[0],
        ItsCommand::Discard { event_id: 1, .. }
    ));
    assert!(matches!(
        commands[1],
        ItsCommand::Vmapti { event_id: 1, .. }
    ));
    assert_eq!(
        guest.backend.sink().events.get(&(NIC.get(), 1)),
        Some(&entry(1, lpi(77)))
    );
    assert_clean(&guest.backend);
}

#[test]
fn a_guest_vits_reset_leaves_nothing_mapped_on_the_physical_its() {
    let mut guest = guest_setup();
    guest.vits.reset(&mut guest.backend);
    assert!(guest.backend.sink().events.is_empty());
    let report = guest.backend.teardown();
    assert_eq!(report.discarded, 0);
    assert_clean(&guest.backend);
}

// Isolation under random intents.

#[derive(Clone, Debug)]
enum Intent {
    Map(EventRef, u16, u32),
    Unmap(EventRef, u16, u32),
    Discard(EventRef, u16, u32),
    Move(EventRef, u16, u16, u32),
    SetPending(EventRef, u16, u32),
    ClearPending(EventRef, u16, u32),
    Reload(EventRef, u16, u32),
    ReloadAll(u16),
    MoveAll(u16, u16),
    Sync,
    Teardown,
}

fn any_event() -> impl Strategy<Value = EventRef> {
    let device = prop_oneof![
        Just(NIC),
        Just(EDU),
        Just(FOREIGN),
        any::<u32>().prop_map(PhysDeviceId::new),
    ];
    let backing = prop_oneof![
        4 => device.prop_map(DeviceBacking::Passthrough),
        1 => Just(DeviceBacking::Emulated),
        1 => Just(DeviceBacking::Nothing),
    ];
    let event = prop_oneof![0u32..8, any::<u32>()];
    (backing, event, 0u32..4).prop_map(|(backing, event, device)| EventRef {
        device: VirtDeviceId::new(device),
        backing,
        event: EventId::new(event),
    })
}

fn any_intent() -> impl Strategy<Value = Intent> {
    let vcpu = prop_oneof![4 => 0u16..VCPUS, 1 => any::<u16>()];
    let intid = prop_oneof![4 => 8192u32..8200, 1 => any::<u32>()];
    prop_oneof![
        1 => (any_event(), vcpu.clone(), intid.clone()).prop_map(|(e, v, i)| Intent::Map(e, v, i)),
        1 => (any_event(), vcpu.clone(), intid.clone()).prop_map(|(e, v, i)| Intent::Unmap(e, v, i)),
        1 => (any_event(), vcpu.clone(), intid.clone()).prop_map(|(e, v, i)| Intent::Discard(e, v, i)),
        1 => (any_event(), vcpu.clone(), vcpu.clone(), intid.clone())
            .prop_map(|(e, f, t, i)| Intent::Move(e, f, t, i)),
        1 => (any_event(), vcpu.clone(), intid.clone())
            .prop_map(|(e, v, i)| Intent::SetPending(e, v, i)),
        1 => (any_event(), vcpu.clone(), intid.clone())
            .prop_map(|(e, v, i)| Intent::ClearPending(e, v, i)),
        1 => (any_event(), vcpu.clone(), intid).prop_map(|(e, v, i)| Intent::Reload(e, v, i)),
        1 => vcpu.clone().prop_map(Intent::ReloadAll),
        1 => (vcpu.clone(), vcpu).prop_map(|(f, t)| Intent::MoveAll(f, t)),
        3 => Just(Intent::Sync),
        1 => Just(Intent::Teardown),
    ]
}

fn apply(b: &mut Backend, intent: &Intent) {
    let (v, i) = (VcpuIndex::new, VirtIntId::from_const);
    match *intent {
        Intent::Map(e, c, n) => b.map_event(e, v(c), i(n)),
        Intent::Unmap(e, c, n) => b.unmap_event(e, v(c), i(n)),
        Intent::Discard(e, c, n) => b.discard_event(e, v(c), i(n)),
        Intent::Move(e, f, t, n) => b.move_event(e, v(f), v(t), i(n)),
        Intent::SetPending(e, c, n) => b.set_pending(e, v(c), i(n)),
        Intent::ClearPending(e, c, n) => b.clear_pending(e, v(c), i(n)),
        Intent::Reload(e, c, n) => b.reload_config(e, v(c), i(n)),
        Intent::ReloadAll(c) => b.reload_config_all(v(c)),
        Intent::MoveAll(f, t) => b.move_all_pending(v(f), v(t)),
        Intent::Sync => b.sync(),
        Intent::Teardown => {
            let _ = b.teardown();
        }
    }
}

proptest! {
    #[test]
    fn random_intents_never_name_anything_outside_the_partition(
        intents in proptest::collection::vec(any_intent(), 0..80),
        failures in 0usize..3,
    ) {
        let mut config = config();
        config.max_batch = 6;
        let mut b = backend_with(config);
        b.sink_mut().fail_submits = failures;
        for intent in &intents {
            apply(&mut b, intent);
        }
        b.sync();
        let sink = b.sink();
        prop_assert_eq!(&sink.violations, &Vec::<ItsCommand>::new());
        for (commands, sync) in &sink.batches {
            prop_assert!(commands.len() < 6);
            prop_assert!(sync.is_sync());
        }
        // Passthrough intents never leak to the software side.
        for action in &b.inner().actions {
            if let Some(event) = action.event() {
                prop_assert!(!matches!(event.backing, DeviceBacking::Passthrough(_)));
            }
        }
        // Without sink failures the hardware model is exactly the
        // backend's, and no command was one hardware would reject.
        if failures == 0 {
            prop_assert_eq!(&sink.command_errors, &Vec::<ItsCommand>::new());
            let model: Vec<_> = sink.events.iter().map(|(&(d, e), p)| ((d, e), p.vpe, p.vintid)).collect();
            let ours: Vec<_> = b.mappings().map(|((d, e), m)| ((d.get(), e.get()), m.vpe.get(), m.vintid.get())).collect();
            prop_assert_eq!(model, ours);
        }
        let report = b.teardown();
        prop_assert!(b.mappings().next().is_none());
        if failures == 0 {
            prop_assert_eq!(report.result, Ok(()));
            prop_assert!(b.sink().events.is_empty());
        }
    }
}
