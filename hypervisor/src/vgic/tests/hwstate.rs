//! Pending reads of hardware-linked interrupts: the physical line shows
//! through GICR_ISPENDR0/ICPENDR0 (and GICD_ISPENDR for a linked SPI),
//! active comes from the model only.

use super::*;
use crate::ids::PhysIntId;
use core::cell::RefCell;

/// A fake physical GIC: the (vCPU, pINTID) pairs whose line is pending,
/// and every question asked.
#[derive(Default)]
struct FakePhys {
    pending: Vec<(u16, u32)>,
    asked: RefCell<Vec<(u16, u32)>>,
}

impl PhysicalIrqState for FakePhys {
    fn pending(&self, vcpu: VcpuIndex, intid: PhysIntId) -> bool {
        self.asked.borrow_mut().push((vcpu.get(), intid.get()));
        self.pending.contains(&(vcpu.get(), intid.get()))
    }
}

fn linked_timers() -> Vgic {
    let mut g = vgic();
    g.link_hw(VirtIntId::from_const(27), PhysIntId::from_const(27))
        .unwrap();
    g.link_hw(VirtIntId::from_const(30), PhysIntId::from_const(30))
        .unwrap();
    g
}

fn read_with(g: &mut Vgic, v: u16, ipa: u64, phys: &FakePhys) -> u64 {
    g.mmio_read_with(VcpuIndex::new(v), Ipa(ipa), 4, phys)
}

#[test]
fn an_asserted_timer_line_reads_pending_while_the_ppi_is_disabled() {
    let mut g = linked_timers();
    let phys = FakePhys {
        pending: alloc::vec![(1, 30)],
        ..FakePhys::default()
    };
    // Neither PPI enabled: the hypervisor keeps the physical one disabled too.
    for reg in [0x200, 0x280] {
        let value = read_with(&mut g, 0, sgi_frame(1) + reg, &phys);
        assert_eq!(value, 1 << 30, "ISPENDR0/ICPENDR0 at {reg:#x}");
    }
    // Another vCPU's line is its own: vCPU 0's redistributor shows nothing.
    assert_eq!(read_with(&mut g, 0, sgi_frame(0) + 0x200, &phys), 0);
    // Active never comes from the physical side.
    assert_eq!(read_with(&mut g, 1, sgi_frame(1) + 0x300, &phys), 0);
    assert_eq!(read_with(&mut g, 1, sgi_frame(1) + 0x380, &phys), 0);
    // The plain read (no physical side) is the model's.
    assert_eq!(read(&mut g, 1, sgi_frame(1) + 0x200, 4), 0);
}

#[test]
fn only_linked_interrupts_ask_the_physical_side_on_their_own_vcpu() {
    let mut g = linked_timers();
    let phys = FakePhys::default();
    read_with(&mut g, 3, sgi_frame(2) + 0x200, &phys);
    let mut asked = phys.asked.borrow().clone();
    asked.sort_unstable();
    assert_eq!(asked, [(2, 27), (2, 30)]);
    // Reads elsewhere, byte reads and the other pending words ask nothing.
    let phys = FakePhys::default();
    read_with(&mut g, 0, sgi_frame(0) + 0x100, &phys);
    read_with(&mut g, 0, sgi_frame(0) + 0x204, &phys);
    read_with(&mut g, 0, GICD + 0x200, &phys);
    g.mmio_read_with(VcpuIndex::new(0), Ipa(sgi_frame(0) + 0x203), 1, &phys);
    assert!(phys.asked.borrow().is_empty());
}

#[test]
fn the_model_pending_state_and_the_line_combine() {
    let mut g = linked_timers();
    enable(&mut g, 0, 27, 0x80);
    inject(&mut g, 0, 27);
    let none = FakePhys::default();
    assert_eq!(read_with(&mut g, 0, sgi_frame(0) + 0x200, &none), 1 << 27);
    // Listed and acknowledged by the guest, line still high: active and
    // pending, as a level interrupt on hardware.
    let image = g.flush(VcpuIndex::new(0), 4).unwrap();
    let mut cpu = FakeCpuIf::enter(image, 4);
    assert_eq!(cpu.acknowledge().map(|t| t.intid), Some(27));
    let (lrs, hcr) = cpu.exit();
    g.fold(VcpuIndex::new(0), lrs, hcr, 0).unwrap();
    let high = FakePhys {
        pending: alloc::vec![(0, 27)],
        ..FakePhys::default()
    };
    assert_eq!(read_with(&mut g, 0, sgi_frame(0) + 0x200, &high), 1 << 27);
    assert_eq!(read_with(&mut g, 0, sgi_frame(0) + 0x300, &high), 1 << 27);
    // The guest rearmed its timer (line low): active only.
    assert_eq!(read_with(&mut g, 0, sgi_frame(0) + 0x200, &none), 0);
    assert_eq!(read_with(&mut g, 0, sgi_frame(0) + 0x300, &none), 1 << 27);
}

#[test]
fn a_linked_spi_reads_its_line_on_its_target() {
    let mut g = vgic();
    g.link_hw(VirtIntId::from_const(40), PhysIntId::from_const(72))
        .unwrap();
    // IROUTER of SPI 40 -> vCPU 3.
    write(&mut g, 0, GICD + 0x6000 + 8 * 40, 8, 3);
    let phys = FakePhys {
        pending: alloc::vec![(3, 72)],
        ..FakePhys::default()
    };
    assert_eq!(read_with(&mut g, 1, GICD + 0x204, &phys), 1 << 8);
    assert_eq!(read_with(&mut g, 1, GICD + 0x284, &phys), 1 << 8);
    assert_eq!(read_with(&mut g, 1, GICD + 0x304, &phys), 0);
}

#[test]
fn a_linked_ppi_keeps_its_level_trigger_others_are_programmable() {
    let mut g = linked_timers();
    // GICR_ICFGR1 (PPIs 16-31): all edge.
    write(&mut g, 0, sgi_frame(0) + 0xc04, 4, 0xaaaa_aaaa);
    let cfg = read(&mut g, 0, sgi_frame(0) + 0xc04, 4);
    let field = |intid: u32| (cfg >> (2 * (intid - 16))) & 0b11;
    assert_eq!(
        (field(27), field(30)),
        (0b00, 0b00),
        "the timers stay level"
    );
    assert_eq!((field(16), field(26), field(31)), (0b10, 0b10, 0b10));
}
