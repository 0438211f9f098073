//! The vGICv2 against IHI 0048B: distributor registers, SGIs by GICD_SGIR
//! and their per-source pending state, the GICH_LR encoding, list-register
//! scheduling with its maintenance requests, and guest input that cannot
//! make the model fail.

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::dist::offset::*;
use super::*;
use crate::vgic::LrState;

const V0: VcpuIndex = VcpuIndex::new(0);
const V1: VcpuIndex = VcpuIndex::new(1);
const V2: VcpuIndex = VcpuIndex::new(2);

fn vgic(vcpus: u16) -> VgicV2 {
    let mut vgic = VgicV2::new(vcpus, 64).unwrap();
    vgic.mmio_write(V0, CTLR, 4, 1).unwrap();
    vgic
}

fn write(vgic: &mut VgicV2, vcpu: VcpuIndex, offset: u64, value: u32) -> Actions {
    vgic.mmio_write(vcpu, offset, 4, value).unwrap()
}

fn read(vgic: &VgicV2, vcpu: VcpuIndex, offset: u64) -> u32 {
    vgic.mmio_read(vcpu, offset, 4).unwrap()
}

/// Enables SPI `intid` targeted at `targets` with priority 0xa0.
fn enable_spi(vgic: &mut VgicV2, intid: u32, targets: u8) {
    let word = u64::from(intid / 32) * 4;
    write(vgic, V0, ISENABLER + word, 1 << (intid % 32));
    vgic.mmio_write(V0, ITARGETSR + u64::from(intid), 1, u32::from(targets))
        .unwrap();
    vgic.mmio_write(V0, IPRIORITYR + u64::from(intid), 1, 0xa0)
        .unwrap();
}

#[test]
fn identification_registers_describe_a_gic400_with_the_partition_size() {
    let vgic = VgicV2::new(2, 64).unwrap();
    // ITLinesNumber = 96 / 32 - 1 = 2, CPUNumber = 2 - 1.
    assert_eq!(read(&vgic, V0, TYPER), 2 | (1 << 5));
    assert_eq!(read(&vgic, V0, IIDR), 0x0200_143b);
    assert_eq!(read(&vgic, V0, PIDR2) >> 4 & 0xf, 2);
    assert_eq!(read(&vgic, V0, CTLR), 0);
    assert_eq!(VgicV2::new(3, 33).unwrap().spis(), 64);
    assert_eq!(VgicV2::new(0, 0).unwrap_err(), VgicV2Error::BadVcpuCount(0));
    assert_eq!(VgicV2::new(9, 0).unwrap_err(), VgicV2Error::BadVcpuCount(9));
    assert_eq!(
        VgicV2::new(1, 1024).unwrap_err(),
        VgicV2Error::TooManySpis(1024)
    );
}

#[test]
fn enable_pending_and_active_banks_set_and_clear() {
    let mut vgic = vgic(2);
    write(&mut vgic, V0, ISENABLER + 4, 0b101);
    assert_eq!(read(&vgic, V1, ISENABLER + 4), 0b101);
    assert_eq!(read(&vgic, V1, ICENABLER + 4), 0b101);
    write(&mut vgic, V0, ICENABLER + 4, 0b001);
    assert_eq!(read(&vgic, V0, ISENABLER + 4), 0b100);
    // Banked: PPI 27 of vCPU 1 is not vCPU 0's.
    write(&mut vgic, V1, ISENABLER, 1 << 27);
    assert_eq!(read(&vgic, V1, ISENABLER) >> 16, 1 << 11);
    assert_eq!(read(&vgic, V0, ISENABLER) >> 16, 0);
    // SGIs: always enabled, pending only through GICD_SGIR/SPENDSGIR.
    assert_eq!(read(&vgic, V0, ISENABLER) & 0xffff, 0xffff);
    write(&mut vgic, V0, ICENABLER, 0xffff);
    write(&mut vgic, V0, ISPENDR, 0xffff);
    assert_eq!(read(&vgic, V0, ISENABLER) & 0xffff, 0xffff);
    assert_eq!(read(&vgic, V0, ISPENDR) & 0xffff, 0);
    write(&mut vgic, V0, ISPENDR + 4, 1 << 3);
    write(&mut vgic, V0, ISACTIVER + 4, 1 << 4);
    assert_eq!(read(&vgic, V1, ISPENDR + 4), 1 << 3);
    assert_eq!(read(&vgic, V1, ICACTIVER + 4), 1 << 4);
    write(&mut vgic, V1, ICPENDR + 4, 1 << 3);
    write(&mut vgic, V1, ICACTIVER + 4, 1 << 4);
    assert_eq!(read(&vgic, V0, ISPENDR + 4), 0);
    assert_eq!(read(&vgic, V0, ISACTIVER + 4), 0);
}

#[test]
fn priorities_keep_five_bits_and_targets_only_existing_vcpus() {
    let mut vgic = vgic(2);
    vgic.mmio_write(V0, IPRIORITYR + 40, 1, 0xff).unwrap();
    assert_eq!(vgic.mmio_read(V0, IPRIORITYR + 40, 1).unwrap(), 0xf8);
    write(&mut vgic, V0, IPRIORITYR + 32, 0x1020_3047);
    assert_eq!(read(&vgic, V0, IPRIORITYR + 32), 0x1020_3040);
    // IHI 0048B, 4.3.12: SGI/PPI target bytes read as the reading CPU.
    assert_eq!(read(&vgic, V1, ITARGETSR), 0x0202_0202);
    assert_eq!(read(&vgic, V0, ITARGETSR + 28), 0x0101_0101);
    write(&mut vgic, V0, ITARGETSR, 0xffff_ffff);
    assert_eq!(read(&vgic, V0, ITARGETSR), 0x0101_0101);
    // SPI 33: vCPUs 2-7 do not exist in a 2-vCPU partition.
    vgic.mmio_write(V0, ITARGETSR + 33, 1, 0xff).unwrap();
    assert_eq!(vgic.mmio_read(V1, ITARGETSR + 33, 1).unwrap(), 0b11);
}

#[test]
fn icfgr_is_read_only_for_sgis_and_ppis_and_holds_spi_edges() {
    let mut vgic = vgic(1);
    assert_eq!(read(&vgic, V0, ICFGR), 0xaaaa_aaaa);
    write(&mut vgic, V0, ICFGR, 0);
    write(&mut vgic, V0, ICFGR + 4, 0xaaaa_aaaa);
    assert_eq!(read(&vgic, V0, ICFGR), 0xaaaa_aaaa);
    assert_eq!(read(&vgic, V0, ICFGR + 4), 0);
    write(&mut vgic, V0, ICFGR + 8, 0xffff_ffff);
    assert_eq!(read(&vgic, V0, ICFGR + 8), 0xaaaa_aaaa);
}

#[test]
fn sgir_reaches_the_target_list_the_others_or_the_sender() {
    let mut vgic = vgic(3);
    // Target list {1, 2} (and bit 5: no such vCPU), SGI 3, from vCPU 0.
    let actions = write(&mut vgic, V0, SGIR, (0b10_0110 << 16) | 3);
    assert_eq!(actions.kick, VcpuMask(0b110));
    assert_eq!(vgic.mmio_read(V1, SPENDSGIR + 3, 1).unwrap(), 0b001);
    assert_eq!(vgic.mmio_read(V2, SPENDSGIR + 3, 1).unwrap(), 0b001);
    assert_eq!(read(&vgic, V1, ISPENDR) & 0xffff, 1 << 3);
    assert_eq!(read(&vgic, V0, ISPENDR) & 0xffff, 0);
    // All but self, from vCPU 2: SGI 3 now pending from sources 0 and 2 on vCPU 1.
    let actions = write(&mut vgic, V2, SGIR, (1 << 24) | 3);
    assert_eq!(actions.kick, VcpuMask(0b011));
    assert_eq!(read(&vgic, V1, SPENDSGIR), 0b101 << 24);
    // Self only.
    let actions = write(&mut vgic, V1, SGIR, (2 << 24) | 15);
    assert_eq!(actions.kick, VcpuMask(0b010));
    assert_eq!(read(&vgic, V1, SPENDSGIR + 12), 0b010 << 24);
    // The reserved filter sends nothing.
    assert!(write(&mut vgic, V1, SGIR, (3 << 24) | 1).kick.is_empty());
    // CPENDSGIR clears per source.
    vgic.mmio_write(V1, CPENDSGIR + 3, 1, 0b001).unwrap();
    assert_eq!(vgic.mmio_read(V1, SPENDSGIR + 3, 1).unwrap(), 0b100);
}

#[test]
fn list_register_fields_follow_the_gich_lr_layout() {
    let lr = ListRegisterV2::software(5, 2, 0xa0, LrState::Pending, false);
    assert_eq!(lr.0, 5 | (2 << 10) | (0x14 << 23) | (1 << 28));
    assert_eq!(
        (lr.vintid(), lr.source(), lr.priority(), lr.state()),
        (5, 2, 0xa0, LrState::Pending)
    );
    assert!(!lr.hw() && !lr.eoi() && !lr.group1());
    // The CPUID field is an SGI's only; a PPI with EOI maintenance.
    let lr = ListRegisterV2::software(20, 7, 0, LrState::Active, true);
    assert_eq!(lr.0, 20 | (1 << 19) | (2 << 28));
    assert!(lr.eoi());
    let lr = ListRegisterV2::hardware(27, 27, 0x08, LrState::Pending);
    assert_eq!(lr.0, 27 | (27 << 10) | (1 << 23) | (1 << 28) | (1 << 31));
    assert_eq!(lr.pintid(), Some(27));
    assert!(!lr.eoi());
    assert_eq!(Vtr(0x9000_0003).list_registers(), 4);
    assert_eq!(Vtr(0x9000_0003).priority_bits(), 5);
}

#[test]
fn sgi_sources_are_listed_one_at_a_time_with_npie() {
    let mut vgic = vgic(3);
    write(&mut vgic, V0, SGIR, (0b010 << 16) | 1);
    write(&mut vgic, V2, SGIR, (0b010 << 16) | 1);
    let image = vgic.flush(V1, 4).unwrap();
    assert_eq!(image.lrs.len(), 1);
    assert_eq!(image.lrs[0].vintid(), 1);
    assert_eq!(image.lrs[0].source(), 0);
    assert_eq!(image.hcr, hcr::EN | hcr::NPIE);
    // The guest acknowledged and deactivated it: the next source follows.
    vgic.fold(V1, &[ListRegisterV2::default()]).unwrap();
    let image = vgic.flush(V1, 4).unwrap();
    assert_eq!(image.lrs[0].source(), 2);
    assert_eq!(image.hcr, hcr::EN);
    vgic.fold(V1, &[ListRegisterV2::default()]).unwrap();
    assert!(!vgic.has_pending(V1));
}

#[test]
fn more_interrupts_than_list_registers_ask_for_underflow() {
    let mut vgic = vgic(1);
    for intid in 32..38 {
        enable_spi(&mut vgic, intid, 1);
        write(&mut vgic, V0, ISPENDR + 4, 1 << (intid - 32));
    }
    vgic.mmio_write(V0, IPRIORITYR + 37, 1, 0x10).unwrap();
    let image = vgic.flush(V0, 4).unwrap();
    let listed: Vec<u16> = image.lrs.iter().map(|lr| lr.vintid()).collect();
    // Priority first (37 has 0x10), then INTID.
    assert_eq!(listed, [37, 32, 33, 34]);
    assert_eq!(image.hcr, hcr::EN | hcr::UIE);
    // Two were taken, two still wait in their registers.
    let back = [
        ListRegisterV2::default(),
        ListRegisterV2::default(),
        image.lrs[2],
        image.lrs[3],
    ];
    vgic.fold(V0, &back).unwrap();
    let image = vgic.flush(V0, 4).unwrap();
    let listed: Vec<u16> = image.lrs.iter().map(|lr| lr.vintid()).collect();
    assert_eq!(listed, [33, 34, 35, 36]);
    assert_eq!(image.hcr, hcr::EN);
}

#[test]
fn an_active_spi_stays_with_the_vcpu_that_took_it() {
    let mut vgic = vgic(2);
    enable_spi(&mut vgic, 40, 0b11);
    let kicks = write(&mut vgic, V1, ISPENDR + 4, 1 << 8);
    assert_eq!(kicks.kick, VcpuMask(0b11));
    let image = vgic.flush(V0, 4).unwrap();
    assert_eq!(image.lrs[0].vintid(), 40);
    assert!(vgic.flush(V1, 4).unwrap().lrs.is_empty());
    // vCPU 0 acknowledged it; it is pending again meanwhile.
    let mut active = image.lrs[0];
    active.0 = (active.0 & !(3 << 28)) | (2 << 28);
    vgic.fold(V0, &[active]).unwrap();
    write(&mut vgic, V1, ISPENDR + 4, 1 << 8);
    assert!(vgic.flush(V1, 4).unwrap().lrs.is_empty());
    let image = vgic.flush(V0, 4).unwrap();
    assert_eq!(image.lrs[0].state(), LrState::PendingActive);
}

#[test]
fn icpendr_while_listed_drops_the_registers_pending_state() {
    let mut vgic = vgic(2);
    enable_spi(&mut vgic, 33, 0b01);
    write(&mut vgic, V0, ISPENDR + 4, 1 << 1);
    let image = vgic.flush(V0, 4).unwrap();
    assert_eq!(read(&vgic, V1, ISPENDR + 4), 1 << 1);
    write(&mut vgic, V1, ICPENDR + 4, 1 << 1);
    assert_eq!(read(&vgic, V1, ISPENDR + 4), 0);
    vgic.fold(V0, &image.lrs).unwrap();
    assert!(!vgic.has_pending(V0));
}

#[test]
fn hardware_linked_interrupts_carry_the_physical_id_and_its_actions() {
    let mut vgic = vgic(1);
    vgic.link_hw(V0, 27, PhysIntId::from_const(27)).unwrap();
    let actions = write(&mut vgic, V0, ISENABLER, 1 << 27);
    assert_eq!(
        actions.hardware,
        [Action::EnablePhys {
            vcpu: V0,
            intid: PhysIntId::from_const(27)
        }]
    );
    assert_eq!(vgic.inject(V0, 27).unwrap().kick, VcpuMask(1));
    let image = vgic.flush(V0, 4).unwrap();
    assert_eq!(image.lrs[0].pintid(), Some(27));
    // The guest acknowledged it; then clears its active state by GICD.
    let mut active = image.lrs[0];
    active.0 = (active.0 & !(3 << 28)) | (2 << 28);
    write(&mut vgic, V0, ICACTIVER, 1 << 27);
    let actions = vgic.fold(V0, &[active]).unwrap();
    assert_eq!(
        actions.hardware,
        [Action::DeactivatePhys {
            vcpu: V0,
            intid: PhysIntId::from_const(27)
        }]
    );
    // Pending while active is not allowed with HW = 1: listed active only.
    vgic.mmio_write(V0, ISACTIVER, 4, 1 << 27).unwrap();
    vgic.inject(V0, 27).unwrap();
    let image = vgic.flush(V0, 4).unwrap();
    assert_eq!(image.lrs[0].state(), LrState::Active);
    assert_eq!(image.hcr, hcr::EN | hcr::NPIE);
    assert_eq!(
        vgic.link_hw(V0, 3, PhysIntId::from_const(27)),
        Err(VgicV2Error::NoSuchIntId(3))
    );
}

#[test]
fn a_disabled_distributor_forwards_nothing() {
    let mut vgic = VgicV2::new(1, 32).unwrap();
    write(&mut vgic, V0, SGIR, (2 << 24) | 4);
    assert!(vgic.flush(V0, 4).unwrap().lrs.is_empty());
    write(&mut vgic, V0, CTLR, 1);
    assert_eq!(vgic.flush(V0, 4).unwrap().lrs.len(), 1);
}

/// One guest or kernel step.
#[derive(Clone, Debug)]
enum Step {
    Read(u16, u64, u8),
    Write(u16, u64, u8, u32),
    Flush(u16, usize),
    Fold(u16, Vec<u32>),
    Inject(u16, u32),
}

fn step() -> impl Strategy<Value = Step> {
    let vcpu = 0u16..10;
    let width = prop::sample::select(vec![1u8, 2, 4, 8]);
    prop_oneof![
        (vcpu.clone(), 0u64..0x1100, width.clone()).prop_map(|(v, o, w)| Step::Read(v, o, w)),
        (vcpu.clone(), 0u64..0x1100, width, any::<u32>())
            .prop_map(|(v, o, w, x)| Step::Write(v, o, w, x)),
        (vcpu.clone(), 0usize..70).prop_map(|(v, n)| Step::Flush(v, n)),
        (vcpu.clone(), prop::collection::vec(any::<u32>(), 0..6))
            .prop_map(|(v, lrs)| Step::Fold(v, lrs)),
        (vcpu, 0u32..1100).prop_map(|(v, i)| Step::Inject(v, i)),
    ]
}

proptest! {
    /// Any sequence of guest accesses and kernel calls is answered without
    /// a panic, and no flush lists an INTID twice on one vCPU.
    #[test]
    fn guest_input_never_breaks_the_model(steps in prop::collection::vec(step(), 1..64)) {
        let mut vgic = VgicV2::new(3, 64).unwrap();
        for step in steps {
            match step {
                Step::Read(v, o, w) => { let _ = vgic.mmio_read(VcpuIndex::new(v), o, w); }
                Step::Write(v, o, w, x) => { let _ = vgic.mmio_write(VcpuIndex::new(v), o, w, x); }
                Step::Flush(v, n) => {
                    if let Ok(image) = vgic.flush(VcpuIndex::new(v), n) {
                        prop_assert!(image.lrs.len() <= n.min(64));
                        let mut ids: Vec<u16> = image.lrs.iter().map(|l| l.vintid()).collect();
                        ids.sort_unstable();
                        ids.dedup();
                        prop_assert_eq!(ids.len(), image.lrs.len());
                    }
                }
                Step::Fold(v, lrs) => {
                    let lrs: Vec<ListRegisterV2> = lrs.into_iter().map(ListRegisterV2).collect();
                    let _ = vgic.fold(VcpuIndex::new(v), &lrs);
                }
                Step::Inject(v, i) => { let _ = vgic.inject(VcpuIndex::new(v), i); }
            }
        }
    }
}
