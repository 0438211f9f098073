//! SGI routing by affinity and IRM.

use super::*;

/// An ICC_SGI1R_EL1 value.
fn sgi1r(intid: u64, targets: u64, aff1: u64, rs: u64, irm: bool) -> u64 {
    targets | aff1 << 16 | intid << 24 | u64::from(irm) << 40 | rs << 44
}

#[test]
fn target_list_bits_name_vcpus_by_aff0() {
    let request = decode_sgi1r(sgi1r(5, 0b1010, 0, 0, false), VcpuIndex::new(0), 4);
    assert_eq!(
        (request.intid, request.targets.0, request.missing),
        (5, 0b1010, 0)
    );
}

#[test]
fn irm_targets_every_vcpu_but_the_sender() {
    let request = decode_sgi1r(sgi1r(1, 0xffff, 7, 3, true), VcpuIndex::new(2), 4);
    assert_eq!((request.targets.0, request.missing), (0b1011, 0));
}

#[test]
fn targets_that_do_not_exist_are_ignored_and_counted() {
    let request = decode_sgi1r(sgi1r(0, 0b1_0001, 0, 0, false), VcpuIndex::new(0), 4);
    assert_eq!(
        (request.targets.0, request.missing),
        (0b1, 1),
        "Aff0 4 does not exist"
    );
    let request = decode_sgi1r(sgi1r(0, 0b1, 1, 0, false), VcpuIndex::new(0), 4);
    assert_eq!(
        (request.targets.0, request.missing),
        (0, 1),
        "Aff1 1 does not exist"
    );
    let aff3 = 1u64 << 48;
    let request = decode_sgi1r(sgi1r(0, 0b1, 0, 0, false) | aff3, VcpuIndex::new(0), 4);
    assert!(request.targets.is_empty());
    let mut g = vgic();
    let actions = g
        .send_sgi(VcpuIndex::new(0), sgi1r(3, 0xff00, 0, 0, false))
        .unwrap();
    assert!(actions.kick.is_empty());
    assert_eq!(g.counters().sgi_no_target, 8);
}

#[test]
fn the_range_selector_reaches_aff0_above_15() {
    let request = decode_sgi1r(sgi1r(2, 0b100, 0, 1, false), VcpuIndex::new(0), 20);
    assert_eq!(request.targets.0, 1 << 18);
}

#[test]
fn an_sgi_becomes_pending_on_its_targets_which_are_kicked_and_take_it() {
    let mut g = vgic();
    for v in 0..4 {
        enable(&mut g, v, 7, 0x80);
    }
    let actions = g
        .send_sgi(VcpuIndex::new(0), sgi1r(7, 0b0110, 0, 0, false))
        .unwrap();
    assert_eq!(actions.kick.0, 0b0110);
    assert!(actions.hardware.is_empty());
    let taken: Vec<usize> = (0..4).map(|v| run_guest(&mut g, v, 4, 4).len()).collect();
    assert_eq!(taken, [0, 1, 1, 0]);
    assert_eq!(
        g.send_sgi(VcpuIndex::new(4), 0),
        Err(VgicError::NoSuchVcpu(VcpuIndex::new(4)))
    );
}

#[test]
fn an_sgi_to_itself_is_delivered_on_the_next_entry() {
    let mut g = vgic();
    enable(&mut g, 1, 0, 0x80);
    let actions = g
        .send_sgi(VcpuIndex::new(1), sgi1r(0, 0b10, 0, 0, false))
        .unwrap();
    assert!(
        actions.kick.contains(VcpuIndex::new(1)),
        "the kernel may skip a self-kick"
    );
    assert_eq!(
        run_guest(&mut g, 1, 4, 4),
        [Taken {
            intid: 0,
            priority: 0x80
        }]
    );
}
