//! Host tests of the VMOVP sequence (`vmovp.rs`) against the recording
//! physical ITS: the commands, their order, SequenceNumber and ITSList,
//! the VSYNCs, the recorded RDbase, and pending vLPIs across the move.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::fake::RecordingSink;
use super::*;
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::gic::its_queue::QueueError;
use crate::ids::{
    EventId, PartitionId, PhysDeviceId, PhysIntId, VcpuIndex, VirtDeviceId, VirtIntId, VpeId,
};
use crate::vits::{DeviceBacking, EventRef, RecordingBackend, VitsBackend};

const NIC: PhysDeviceId = PhysDeviceId::new(0x0100);
const FIRST_VPE: u16 = 20;
const FIRST_DOORBELL: u32 = 9100;
const VCPUS: u16 = 2;

/// vCPU n's vPE starts on the redistributor of CPU n.
fn config() -> PassthroughConfig {
    let vpes = (0..VCPUS)
        .map(|n| VpeConfig {
            vpe: VpeId::new(FIRST_VPE + n),
            doorbell: PhysIntId::from_const(FIRST_DOORBELL + u32::from(n)),
            rdbase: RdBase::processor(n),
        })
        .collect();
    let mut devices = BTreeMap::new();
    devices.insert(NIC, PassthroughDevice { event_id_bits: 8 });
    PassthroughConfig {
        partition: PartitionId::new(1),
        vpes,
        devices,
        vlpi_id_bits: 16,
        max_batch: 64,
    }
}

fn state() -> PassthroughState {
    PassthroughState::new(config()).expect("valid config")
}

fn sink() -> RecordingSink {
    RecordingSink::for_config(&config())
}

fn vmovp(vpe: u16, to: u16, seq_num: u16, its_list: u16) -> ItsCommand {
    ItsCommand::Vmovp {
        vpe_id: vpe,
        rdbase: RdBase::processor(to),
        seq_num,
        its_list,
    }
}

fn vsync(vpe: u16) -> ItsCommand {
    ItsCommand::Vsync { vpe_id: vpe }
}

fn assert_clean(sink: &RecordingSink) {
    assert_eq!(sink.violations, [], "isolation breached");
    assert_eq!(sink.command_errors, [], "hardware would reject");
}

#[test]
fn an_its_that_propagates_vmovp_gets_one_vmovp_with_zero_sequence_and_itslist_then_vsync() {
    let steps = plan_vmovp(
        VpeId::new(5),
        RdBase::processor(3),
        &[VmovpForm::Single; 3],
        77,
    )
    .expect("a plan");
    assert_eq!(
        steps,
        [VmovpStep {
            its: 0,
            vmovp: vmovp(5, 3, 0, 0),
            vsync: vsync(5),
        }]
    );
}

#[test]
fn without_single_vmovp_every_its_gets_the_same_sequence_number_and_itslist_each_then_vsync() {
    let forms = [
        VmovpForm::ItsList { its_number: 0 },
        VmovpForm::ItsList { its_number: 3 },
        VmovpForm::ItsList { its_number: 15 },
    ];
    let steps = plan_vmovp(VpeId::new(5), RdBase::processor(2), &forms, 0x1234).expect("a plan");
    let list = 1 << 0 | 1 << 3 | 1 << 15;
    assert_eq!(
        steps,
        (0..3)
            .map(|its| VmovpStep {
                its,
                vmovp: vmovp(5, 2, 0x1234, list),
                vsync: vsync(5),
            })
            .collect::<Vec<_>>()
    );
    // The encoding carries both fields where IHI 0069 puts them.
    let words = steps[1].vmovp.encode();
    assert_eq!((words[0] >> 32) & 0xffff, 0x1234);
    assert_eq!(words[1] & 0xffff, u64::from(list));
}

#[test]
fn a_plan_with_no_its_mixed_forms_or_bad_its_numbers_is_refused() {
    let to = RdBase::processor(1);
    assert_eq!(
        plan_vmovp(VpeId::new(1), to, &[], 0),
        Err(VmovpError::NoIts)
    );
    for forms in [
        [VmovpForm::Single, VmovpForm::ItsList { its_number: 1 }],
        [VmovpForm::ItsList { its_number: 1 }, VmovpForm::Single],
    ] {
        assert_eq!(
            plan_vmovp(VpeId::new(1), to, &forms, 0),
            Err(VmovpError::MixedForms)
        );
    }
    assert_eq!(
        plan_vmovp(
            VpeId::new(1),
            to,
            &[VmovpForm::ItsList { its_number: 16 }],
            0
        ),
        Err(VmovpError::ItsNumberOutOfRange { its_number: 16 })
    );
    let twice = [VmovpForm::ItsList { its_number: 4 }; 2];
    assert_eq!(
        plan_vmovp(VpeId::new(1), to, &twice, 0),
        Err(VmovpError::DuplicateItsNumber { its_number: 4 })
    );
}

#[test]
fn sequences_get_successive_numbers_that_wrap_at_16_bits() {
    let mut sequencer = VmovpSequencer::new();
    assert_eq!((sequencer.take(), sequencer.take()), (0, 1));
    for _ in 2..=u16::MAX {
        sequencer.take();
    }
    assert_eq!(sequencer.take(), 0);
}

#[test]
fn move_vpe_issues_vmovp_then_vsync_in_one_batch_and_records_the_new_rdbase() {
    let mut state = state();
    let mut itss = [(VmovpForm::Single, sink())];
    let moved = state
        .move_vpe(VcpuIndex::new(1), RdBase::processor(3), &mut itss, 9)
        .expect("moved");
    assert_eq!(
        moved,
        VpeMove {
            vpe: VpeId::new(FIRST_VPE + 1),
            from: RdBase::processor(1),
            to: RdBase::processor(3),
            commands: 2,
        }
    );
    let its = &itss[0].1;
    assert_eq!(
        its.batches,
        [(
            alloc::vec![vmovp(FIRST_VPE + 1, 3, 0, 0)],
            vsync(FIRST_VPE + 1)
        )]
    );
    assert_eq!(
        its.vpe_rd.get(&(FIRST_VPE + 1)),
        Some(&RdBase::processor(3))
    );
    assert_eq!(its.vpe_rd.get(&FIRST_VPE), Some(&RdBase::processor(0)));
    assert_eq!(state.config().vpes[1].rdbase, RdBase::processor(3));
    assert_eq!(state.config().vpes[0].rdbase, RdBase::processor(0));
    assert_clean(its);
}

#[test]
fn move_vpe_over_an_itslist_submits_to_each_its_in_order_with_one_sequence_number() {
    let mut state = state();
    let mut itss = [
        (VmovpForm::ItsList { its_number: 2 }, sink()),
        (VmovpForm::ItsList { its_number: 5 }, sink()),
    ];
    state
        .move_vpe(VcpuIndex::new(0), RdBase::processor(1), &mut itss, 41)
        .expect("moved");
    for (_, its) in &itss {
        assert_eq!(
            its.batches,
            [(
                alloc::vec![vmovp(FIRST_VPE, 1, 41, 1 << 2 | 1 << 5)],
                vsync(FIRST_VPE)
            )]
        );
        assert_eq!(its.vpe_rd.get(&FIRST_VPE), Some(&RdBase::processor(1)));
        assert_clean(its);
    }
}

#[test]
fn moving_a_vpe_where_it_already_is_costs_no_command() {
    let mut state = state();
    let mut itss = [(VmovpForm::Single, sink())];
    let moved = state
        .move_vpe(VcpuIndex::new(1), RdBase::processor(1), &mut itss, 0)
        .expect("nothing to do");
    assert_eq!(moved.commands, 0);
    assert!(itss[0].1.batches.is_empty());
}

#[test]
fn a_vcpu_without_a_vpe_is_refused_and_nothing_is_submitted() {
    let mut state = state();
    let mut itss = [(VmovpForm::Single, sink())];
    assert_eq!(
        state.move_vpe(VcpuIndex::new(VCPUS), RdBase::processor(0), &mut itss, 0),
        Err(VmovpError::VcpuOutOfRange {
            vcpu: VcpuIndex::new(VCPUS)
        })
    );
    assert!(itss[0].1.batches.is_empty());
}

#[test]
fn a_failed_its_stops_the_sequence_and_leaves_the_recorded_rdbase() {
    let mut state = state();
    let mut failing = sink();
    failing.fail_submits = 1;
    let mut itss = [
        (VmovpForm::ItsList { its_number: 0 }, sink()),
        (VmovpForm::ItsList { its_number: 1 }, failing),
        (VmovpForm::ItsList { its_number: 2 }, sink()),
    ];
    assert_eq!(
        state.move_vpe(VcpuIndex::new(0), RdBase::processor(1), &mut itss, 3),
        Err(VmovpError::Sink {
            its: 1,
            completed: 1,
            error: SinkError::Queue(QueueError::Stalled { creadr: 0 }),
        })
    );
    assert_eq!(itss[0].1.batches.len(), 1);
    assert!(itss[2].1.batches.is_empty(), "nothing after the failure");
    assert_eq!(state.config().vpes[0].rdbase, RdBase::processor(0));
}

fn nic(event: u32) -> EventRef {
    EventRef {
        device: VirtDeviceId::new(1),
        backing: DeviceBacking::Passthrough(NIC),
        event: EventId::new(event),
    }
}

/// A pending vLPI stays pending across VMOVP (it is a bit of the vPE's
/// pending table, which VMOVP leaves alone), later commands name the
/// same vPE ID, and the teardown unmaps the vPE at its new RDbase.
#[test]
fn a_pending_vlpi_survives_the_move_and_later_commands_and_teardown_follow_it() {
    let vintid = VirtIntId::from_const(8200);
    let mut backend = Gicv4Backend::new(config(), sink(), RecordingBackend::new()).expect("ok");
    backend.map_event(nic(4), VcpuIndex::new(1), vintid);
    backend.set_pending(nic(4), VcpuIndex::new(1), vintid);
    backend.sync();
    let (mut state, its, inner) = backend.into_parts();
    let mut itss = [(VmovpForm::Single, its)];
    state
        .move_vpe(VcpuIndex::new(1), RdBase::processor(0), &mut itss, 0)
        .expect("moved");
    let [(_, its)] = itss;
    assert!(its.pending.contains(&(FIRST_VPE + 1, vintid.get())));
    let mut backend = Gicv4Backend::from_parts(state, its, inner);
    // A MOVI after the move is a VMOVI naming vPE IDs only.
    backend.move_event(nic(4), VcpuIndex::new(1), VcpuIndex::new(0), vintid);
    backend.sync();
    assert!(backend.sink().pending.contains(&(FIRST_VPE, vintid.get())));
    let report = backend.teardown();
    assert_eq!(report.vpes[1].rdbase, RdBase::processor(0));
    assert_clean(backend.sink());
}
