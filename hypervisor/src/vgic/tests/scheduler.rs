//! List-register scheduling and folding.

use super::*;
use crate::ids::PhysIntId;

fn lr(image: &LrImage, n: usize) -> ListRegister {
    ListRegister(image.lrs[n])
}

fn pending(g: &mut Vgic, v: u16, intid: u32) -> bool {
    let frame = if intid < 32 { sgi_frame(v) } else { GICD };
    read(g, v, frame + 0x200 + u64::from(intid / 32) * 4, 4) & 1 << (intid % 32) != 0
}

fn active(g: &mut Vgic, v: u16, intid: u32) -> bool {
    let frame = if intid < 32 { sgi_frame(v) } else { GICD };
    read(g, v, frame + 0x300 + u64::from(intid / 32) * 4, 4) & 1 << (intid % 32) != 0
}

#[test]
fn more_pending_than_list_registers_lists_the_highest_priorities_and_asks_for_underflow() {
    let mut g = vgic();
    for (intid, priority) in [
        (40, 0x80),
        (41, 0x10),
        (42, 0x60),
        (43, 0x20),
        (44, 0x40),
        (45, 0x18),
    ] {
        enable(&mut g, 0, intid, priority);
        inject(&mut g, 0, intid);
    }
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    let listed: Vec<u32> = (0..image.used).map(|n| lr(&image, n).vintid()).collect();
    assert_eq!(listed, [41, 45, 43, 44]);
    assert!((0..4).all(|n| lr(&image, n).state() == LrState::Pending && lr(&image, n).group1()));
    assert_eq!(lr(&image, 0).priority(), 0x10);
    assert_eq!(
        image.hcr & (hcr::EN | hcr::UIE | hcr::NPIE),
        hcr::EN | hcr::UIE | hcr::NPIE
    );
    assert_eq!(image.hcr & hcr::LRENPIE, 0);
    g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    let mut order = Vec::new();
    for _ in 0..10 {
        order.extend(run_guest(&mut g, 0, 4, 1).iter().map(|t| t.intid));
    }
    assert_eq!(order, [41, 45, 43, 44, 42, 40]);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!(
        (image.used, image.hcr),
        (0, hcr::EN),
        "nothing left, no maintenance"
    );
}

#[test]
fn an_acknowledged_interrupt_stays_active_across_exits_until_its_eoi() {
    let mut g = vgic();
    enable(&mut g, 1, 20, 0x40);
    inject(&mut g, 1, 20);
    let image = g.flush(VcpuIndex::new(1), 4).unwrap();
    let mut cpu = FakeCpuIf::enter(image, 4);
    assert_eq!(cpu.acknowledge().map(|t| t.intid), Some(20));
    let (lrs, hcr) = cpu.exit();
    g.fold(VcpuIndex::new(1), lrs, hcr, 0).unwrap();
    assert!(active(&mut g, 1, 20) && !pending(&mut g, 1, 20));
    let image = g.flush(VcpuIndex::new(1), 4).unwrap();
    assert_eq!((image.used, lr(&image, 0).state()), (1, LrState::Active));
    let mut cpu = FakeCpuIf::enter(image, 4);
    cpu.end_of_interrupt(20);
    let (lrs, hcr) = cpu.exit();
    g.fold(VcpuIndex::new(1), lrs, hcr, 0).unwrap();
    assert!(!active(&mut g, 1, 20) && !pending(&mut g, 1, 20));
    assert_eq!(g.flush(VcpuIndex::new(1), 4).unwrap().used, 0);
}

#[test]
fn an_edge_arriving_while_listed_is_neither_lost_nor_doubled() {
    let mut g = vgic();
    enable(&mut g, 0, 50, 0x40);
    inject(&mut g, 0, 50);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    inject(&mut g, 0, 50); // coalesces with the listed, still pending copy
    g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    let taken = run_guest(&mut g, 0, 4, 4);
    assert_eq!(taken.len(), 1);
    // After acknowledge, a new edge makes it pending and active.
    let image = g
        .flush(VcpuIndex::new(0), 4)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(image.used, 0);
    g.fold(VcpuIndex::new(0), &[], 0, 0).unwrap();
    inject(&mut g, 0, 50);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    let mut cpu = FakeCpuIf::enter(image, 4);
    cpu.acknowledge();
    let (lrs, hcr) = cpu.exit();
    g.fold(VcpuIndex::new(0), lrs, hcr, 0).unwrap();
    inject(&mut g, 0, 50);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!(
        (image.used, lr(&image, 0).state()),
        (1, LrState::PendingActive)
    );
}

#[test]
fn icpendr_while_listed_drops_the_listed_copy_on_fold() {
    let mut g = vgic();
    enable(&mut g, 0, 60, 0x40);
    inject(&mut g, 0, 60);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    let actions = write(&mut g, 1, GICD + 0x280 + 4, 4, 1 << 28);
    assert!(
        actions.kick.contains(VcpuIndex::new(0)),
        "the vCPU holding it must exit"
    );
    assert!(!pending(&mut g, 0, 60));
    g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    assert!(!pending(&mut g, 0, 60));
    assert_eq!(g.flush(VcpuIndex::new(0), 4).unwrap().used, 0);
}

#[test]
fn a_hardware_linked_ppi_is_listed_with_hw_and_its_pintid() {
    let mut g = vgic();
    g.link_hw(VirtIntId::from_const(27), PhysIntId::from_const(27))
        .unwrap();
    write(&mut g, 2, sgi_frame(2) + 0x400 + 27, 1, 0xa0);
    let actions = write(&mut g, 2, sgi_frame(2) + 0x100, 4, 1 << 27);
    assert_eq!(
        actions.hardware,
        [Action::EnablePhys {
            vcpu: VcpuIndex::new(2),
            intid: PhysIntId::from_const(27)
        }]
    );
    inject(&mut g, 2, 27);
    let image = g.flush(VcpuIndex::new(2), 4).unwrap();
    let listed = lr(&image, 0);
    assert!(listed.hw() && !listed.eoi());
    assert_eq!(
        (listed.vintid(), listed.pintid(), listed.priority()),
        (27, Some(27), 0xa0)
    );
    // The guest's deactivation reaches the hardware; the model forgets it.
    let mut cpu = FakeCpuIf::enter(image, 4);
    let taken = cpu.acknowledge().unwrap();
    cpu.end_of_interrupt(taken.intid);
    let (lrs, hcr) = cpu.exit();
    let actions = g.fold(VcpuIndex::new(2), lrs, hcr, 0).unwrap();
    assert!(actions.hardware.is_empty());
    assert!(!active(&mut g, 2, 27) && !pending(&mut g, 2, 27));
}

#[test]
fn a_hardware_linked_interrupt_is_never_listed_pending_and_active() {
    let mut g = vgic();
    g.link_hw(VirtIntId::from_const(27), PhysIntId::from_const(27))
        .unwrap();
    enable(&mut g, 0, 27, 0x20);
    write(&mut g, 0, sgi_frame(0) + 0x300, 4, 1 << 27);
    inject(&mut g, 0, 27);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!(lr(&image, 0).state(), LrState::Active);
    let mut cpu = FakeCpuIf::enter(image, 4);
    cpu.end_of_interrupt(27);
    let (lrs, hcr) = cpu.exit();
    g.fold(VcpuIndex::new(0), lrs, hcr, 0).unwrap();
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!(
        lr(&image, 0).state(),
        LrState::Pending,
        "the pending part waited"
    );
}

#[test]
fn a_level_interrupt_asks_for_eoi_maintenance_and_follows_its_line() {
    let mut g = vgic();
    enable(&mut g, 0, 33, 0x40);
    g.set_line(VcpuIndex::new(0), VirtIntId::from_const(33), true)
        .unwrap();
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert!(lr(&image, 0).eoi(), "re-sample the line after deactivation");
    g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    assert_eq!(run_guest(&mut g, 0, 4, 1).len(), 1);
    assert!(pending(&mut g, 0, 33), "line still high: pending again");
    g.set_line(VcpuIndex::new(0), VirtIntId::from_const(33), false)
        .unwrap();
    assert!(!pending(&mut g, 0, 33));
    assert!(run_guest(&mut g, 0, 4, 1).is_empty());
}

#[test]
fn an_eoi_of_an_unlisted_active_interrupt_deactivates_the_highest_priority_one() {
    let mut g = vgic();
    for (intid, priority) in [
        (32, 0x10),
        (33, 0x20),
        (34, 0x30),
        (35, 0x40),
        (36, 0x50),
        (37, 0x60),
    ] {
        enable(&mut g, 0, intid, priority);
    }
    write(&mut g, 0, GICD + 0x304, 4, 0b11_1111);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_ne!(image.hcr & hcr::LRENPIE, 0);
    assert_eq!(image.hcr & hcr::TDIR, 0, "EOImode 0 needs no DIR trap");
    let listed: Vec<u32> = (0..4).map(|n| lr(&image, n).vintid()).collect();
    assert_eq!(listed, [32, 33, 34, 35]);
    g.fold(
        VcpuIndex::new(0),
        &image.lrs[..4],
        1 << hcr::EOICOUNT_SHIFT,
        0,
    )
    .unwrap();
    assert!(!active(&mut g, 0, 36) && active(&mut g, 0, 37));
}

#[test]
fn eoimode_1_with_unlisted_active_interrupts_traps_dir_and_deactivates_precisely() {
    let mut g = vgic();
    for intid in 16..22 {
        enable(&mut g, 1, intid, 0x40);
    }
    write(&mut g, 1, sgi_frame(1) + 0x300, 4, 0x3f << 16);
    let image = g.flush(VcpuIndex::new(1), 4).unwrap();
    g.fold(VcpuIndex::new(1), &image.lrs[..4], 0, vmcr::VEOIM)
        .unwrap();
    let image = g.flush(VcpuIndex::new(1), 4).unwrap();
    assert_ne!(image.hcr & hcr::TDIR, 0);
    g.fold(VcpuIndex::new(1), &image.lrs[..4], 0, vmcr::VEOIM)
        .unwrap();
    g.deactivate(VcpuIndex::new(1), VirtIntId::from_const(21))
        .unwrap();
    assert!(!active(&mut g, 1, 21) && active(&mut g, 1, 20));
}

#[test]
fn a_single_list_register_holding_an_active_interrupt_asks_for_eoi_maintenance() {
    let mut g = vgic();
    enable(&mut g, 0, 40, 0x10);
    enable(&mut g, 0, 41, 0x20);
    write(&mut g, 0, GICD + 0x304, 4, 1 << 8);
    inject(&mut g, 0, 41);
    let image = g.flush(VcpuIndex::new(0), 1).unwrap();
    assert_eq!(
        (lr(&image, 0).vintid(), lr(&image, 0).state()),
        (40, LrState::Active)
    );
    assert!(lr(&image, 0).eoi());
    assert_eq!(
        image.hcr & (hcr::UIE | hcr::NPIE),
        0,
        "either would fire at once"
    );
}

#[test]
fn an_spi_rerouted_while_listed_reaches_its_new_target_after_the_fold() {
    let mut g = vgic();
    enable(&mut g, 0, 70, 0x40);
    inject(&mut g, 0, 70);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    let actions = write(&mut g, 0, GICD + gicd_offset::IROUTER + 8 * 70, 8, 3);
    assert!(actions.kick.contains(VcpuIndex::new(0)));
    assert_eq!(
        g.flush(VcpuIndex::new(3), 4).unwrap().used,
        0,
        "still listed on vCPU 0"
    );
    g.fold(VcpuIndex::new(3), &[0; 4], 0, 0).unwrap();
    let actions = g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    assert!(actions.kick.contains(VcpuIndex::new(3)));
    assert_eq!(run_guest(&mut g, 3, 4, 4).len(), 1);
    assert!(run_guest(&mut g, 0, 4, 4).is_empty());
}

#[test]
fn an_active_spi_is_listed_only_on_the_vcpu_that_acknowledged_it() {
    let mut g = vgic();
    enable(&mut g, 0, 80, 0x40);
    inject(&mut g, 0, 80);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    let mut cpu = FakeCpuIf::enter(image, 4);
    cpu.acknowledge();
    let (lrs, hcr) = cpu.exit();
    g.fold(VcpuIndex::new(0), lrs, hcr, 0).unwrap();
    write(&mut g, 0, GICD + gicd_offset::IROUTER + 8 * 80, 8, 1);
    assert!(run_guest(&mut g, 1, 4, 4).is_empty());
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!((image.used, lr(&image, 0).state()), (1, LrState::Active));
}

#[test]
fn disabled_interrupts_and_disabled_groups_are_not_listed() {
    let mut g = vgic();
    enable(&mut g, 0, 40, 0x40);
    inject(&mut g, 0, 40);
    write(&mut g, 0, GICD + 0x184, 4, 1 << 8);
    assert!(run_guest(&mut g, 0, 4, 4).is_empty());
    assert!(!g.has_pending(VcpuIndex::new(0)) && pending(&mut g, 0, 40));
    write(&mut g, 0, GICD + 0x104, 4, 1 << 8);
    assert!(g.has_pending(VcpuIndex::new(0)));
    write(&mut g, 0, GICD, 4, 0);
    assert!(!g.has_pending(VcpuIndex::new(0)), "EnableGrp1 off holds it");
    write(&mut g, 0, GICD, 4, 2);
    assert_eq!(run_guest(&mut g, 0, 4, 4).len(), 1);
}

#[test]
fn flush_and_fold_must_alternate() {
    let mut g = vgic();
    assert_eq!(g.fold(VcpuIndex::new(0), &[], 0, 0), Ok(Actions::new()));
    g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!(
        g.flush(VcpuIndex::new(0), 4),
        Err(VgicError::FlushWithoutFold(VcpuIndex::new(0)))
    );
    assert_eq!(
        g.flush(VcpuIndex::new(1), 0),
        Err(VgicError::ListRegisters(0))
    );
    assert_eq!(
        g.flush(VcpuIndex::new(9), 4),
        Err(VgicError::NoSuchVcpu(VcpuIndex::new(9)))
    );
}

#[test]
fn an_spi_left_pending_while_its_group_is_off_is_listed_once_the_group_is_on() {
    // Exits walk only the SPIs marked as maybe wanting a register; the
    // mark must survive flushes that could not list the SPI.
    let mut g = vgic();
    enable(&mut g, 0, 40, 0x80);
    write(&mut g, 0, GICD, 4, 0x10); // ARE, Group 1 off
    inject(&mut g, 0, 40);
    for _ in 0..3 {
        let image = g.flush(VcpuIndex::new(0), 4).unwrap();
        assert_eq!(image.used, 0, "group 1 is off");
        g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    }
    write(&mut g, 0, GICD, 4, 0x12); // Group 1 on again
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!((image.used, lr(&image, 0).vintid()), (1, 40));
    g.fold(VcpuIndex::new(0), &image.lrs[..4], 0, 0).unwrap();
    // Taken and completed: the SPI is idle again, and an edge later is
    // listed as before.
    let taken = run_guest(&mut g, 0, 4, 1);
    assert_eq!(taken.iter().map(|t| t.intid).collect::<Vec<_>>(), [40]);
    for _ in 0..2 {
        let image = g.flush(VcpuIndex::new(0), 4).unwrap();
        g.fold(VcpuIndex::new(0), &image.lrs[..image.used.max(1)], 0, 0)
            .unwrap();
    }
    inject(&mut g, 0, 40);
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    assert_eq!((image.used, lr(&image, 0).vintid()), (1, 40));
}
