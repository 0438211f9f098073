//! Pending state through the software backend: moves keep every pending
//! LPI exactly once.

use super::*;
use crate::ids::{EventId, VirtIntId};

fn lpi(event: u32) -> VirtIntId {
    VirtIntId::from_const(8192 + event)
}

#[test]
fn int_makes_the_lpi_pending_on_the_collections_vcpu() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1]);
    commands.push(cmd::int(1, 1));
    h.submit(&commands);
    assert!(h.backend.is_pending(vcpu(0), lpi(1)));
    assert_eq!(h.backend.pending_count(), 1);
    assert_eq!(
        h.backend
            .route(VirtDeviceId::new(1), EventId::new(1))
            .map(|r| r.vcpu),
        Some(vcpu(0))
    );
}

#[test]
fn clear_removes_the_pending_state() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1]);
    commands.extend([cmd::int(1, 1), cmd::clear(1, 1)]);
    h.submit(&commands);
    assert_eq!(h.backend.pending_count(), 0);
}

#[test]
fn movi_moves_pending_interrupt_to_new_vcpu() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1]);
    commands.extend([cmd::int(1, 1), cmd::movi(1, 1, 2)]);
    h.submit(&commands);
    assert!(!h.backend.is_pending(vcpu(0), lpi(1)));
    assert!(h.backend.is_pending(vcpu(2), lpi(1)));
    assert_eq!(h.backend.pending_count(), 1);
    assert_eq!(
        h.backend
            .route(VirtDeviceId::new(1), EventId::new(1))
            .map(|r| r.vcpu),
        Some(vcpu(2))
    );
}

#[test]
fn mapc_retarget_keeps_pending_interrupts() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1, 2, 3]);
    commands.extend([cmd::int(1, 1), cmd::int(1, 3), cmd::mapc(0, 3, true)]);
    h.submit(&commands);
    let on3: Vec<_> = h.backend.pending(vcpu(3)).collect();
    assert_eq!(on3, [lpi(1), lpi(3)]);
    assert_eq!(h.backend.pending_count(), 2);
}

#[test]
fn mapc_retarget_then_movall_delivers_each_pending_lpi_once() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1, 2]);
    // LPI 8200 is pending on vCPU 0 without being one of this ITS's
    // events: MOVALL moves it too, as it moves everything pending there.
    commands.extend([cmd::int(1, 1), cmd::int(1, 2)]);
    h.submit(&commands);
    h.backend
        .set_pending(event_ref(1, 9), vcpu(0), VirtIntId::from_const(8200));
    h.submit(&[cmd::mapc(0, 1, true), cmd::movall(0, 1)]);
    let on1: Vec<_> = h.backend.pending(vcpu(1)).collect();
    assert_eq!(on1, [lpi(1), lpi(2), VirtIntId::from_const(8200)]);
    assert_eq!(h.backend.pending(vcpu(0)).count(), 0);
    for intid in on1 {
        assert!(h.backend.acknowledge(vcpu(1), intid));
        assert!(!h.backend.acknowledge(vcpu(1), intid), "fires once");
    }
}

#[test]
fn movall_merges_an_lpi_pending_on_both_vcpus_into_one() {
    let mut h = Harness::software();
    h.submit(&basic_setup(&[]));
    h.backend.set_pending(event_ref(1, 1), vcpu(0), lpi(1));
    h.backend.set_pending(event_ref(1, 1), vcpu(2), lpi(1));
    h.submit(&[cmd::movall(0, 2)]);
    assert_eq!(h.backend.pending_count(), 1);
    assert!(h.backend.is_pending(vcpu(2), lpi(1)));
}

#[test]
fn discard_clears_pending_and_the_route() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1]);
    commands.extend([cmd::int(1, 1), cmd::discard(1, 1)]);
    h.submit(&commands);
    assert_eq!(h.backend.pending_count(), 0);
    assert_eq!(h.backend.route_count(), 0);
}

#[test]
fn mapc_unmap_leaves_pending_lpi_on_its_vcpu() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1]);
    commands.extend([cmd::int(1, 1), cmd::mapc(0, 0, false)]);
    h.submit(&commands);
    assert!(h.backend.is_pending(vcpu(0), lpi(1)));
    assert_eq!(h.backend.route_count(), 0);
}

#[test]
fn mapd_unmap_drops_routes_and_pending_state() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1, 2]);
    commands.extend([cmd::int(1, 1), cmd::int(1, 2), cmd::mapd(1, 0, 0, false)]);
    h.submit(&commands);
    assert_eq!(h.backend.pending_count(), 0);
    assert_eq!(h.backend.route_count(), 0);
}

#[test]
fn repeated_int_leaves_one_pending_lpi() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1]);
    commands.extend([cmd::int(1, 1), cmd::int(1, 1)]);
    h.submit(&commands);
    assert_eq!(h.backend.pending_count(), 1);
}

#[test]
fn new_pending_state_beyond_the_per_vcpu_cap_is_refused_and_counted() {
    let config = config();
    let backend = ModelBackend::new(config.num_vcpus, 2);
    let mut h = Harness::with(config, backend);
    let mut commands = basic_setup(&[1, 2, 3]);
    commands.extend([cmd::int(1, 1), cmd::int(1, 2), cmd::int(1, 3)]);
    h.submit(&commands);
    assert_eq!(h.backend.pending_count(), 2);
    assert_eq!(h.backend.overflows(), 1);
}

#[test]
fn moves_ignore_the_cap_so_nothing_pending_is_lost() {
    let config = config();
    let backend = ModelBackend::new(config.num_vcpus, 1);
    let mut h = Harness::with(config, backend);
    let mut commands = basic_setup(&[1]);
    commands.extend([cmd::mapti(1, 2, 8194, 1), cmd::int(1, 1), cmd::int(1, 2)]);
    commands.push(cmd::movall(0, 1));
    h.submit(&commands);
    assert_eq!(h.backend.pending(vcpu(1)).count(), 2);
    assert_eq!(h.backend.overflows(), 0);
}

#[test]
fn inv_and_invall_ask_for_a_config_reload() {
    let mut h = Harness::software();
    let mut commands = basic_setup(&[1]);
    commands.extend([cmd::inv(1, 1), cmd::invall(0)]);
    h.submit(&commands);
    assert_eq!(h.backend.config_reloads(), 2);
    assert_eq!(h.backend.syncs(), 1);
}
