//! Host tests of the virtual GIC: a partition layout, MMIO helpers, and a
//! fake virtual CPU interface that plays the guest's part on list
//! registers (acknowledge the highest-priority pending one, EOI it).

mod hwstate;
mod lpis;
mod pending_table;
mod props;
mod registers;
mod scheduler;
mod sgis;

use super::*;
use crate::ids::{VcpuIndex, VirtIntId};
use crate::mm::Ipa;
use alloc::vec::Vec;

/// Distributor IPA in the test layout (QEMU virt's).
pub(super) const GICD: u64 = 0x0800_0000;
/// First redistributor IPA.
pub(super) const GICR: u64 = 0x080a_0000;

/// The configuration most tests use: 4 vCPUs, 64 SPIs, 16-bit LPIs.
pub(super) fn config() -> VgicConfig {
    VgicConfig {
        num_vcpus: 4,
        num_spis: 64,
        lpi_id_bits: 16,
        priority_bits: 5,
        max_pending_lpis: 32,
        dist_base: Ipa(GICD),
        redist_base: Ipa(GICR),
    }
}

/// A vGIC with [`config`], the distributor's Group 1 enabled, every SGI,
/// PPI and SPI in Group 1, and `vcpu`s awake.
pub(super) fn vgic() -> Vgic {
    let mut vgic = Vgic::new(config()).expect("valid config");
    write(&mut vgic, 0, GICD, 4, 0x12);
    for reg in 1..3 {
        write(&mut vgic, 0, GICD + 0x80 + 4 * reg, 4, u64::from(u32::MAX));
    }
    for v in 0..4 {
        write(&mut vgic, 0, sgi_frame(v) + 0x80, 4, u64::from(u32::MAX));
    }
    vgic
}

/// vCPU `v`'s RD_base frame.
pub(super) fn rd_frame(v: u16) -> u64 {
    GICR + u64::from(v) * REDIST_STRIDE
}

/// vCPU `v`'s SGI_base frame.
pub(super) fn sgi_frame(v: u16) -> u64 {
    rd_frame(v) + SGI_FRAME
}

/// A guest read by vCPU `v`.
pub(super) fn read(vgic: &mut Vgic, v: u16, ipa: u64, size: u8) -> u64 {
    vgic.mmio_read(VcpuIndex::new(v), Ipa(ipa), size)
}

/// A guest write by vCPU `v`.
pub(super) fn write(vgic: &mut Vgic, v: u16, ipa: u64, size: u8, value: u64) -> Actions {
    vgic.mmio_write(VcpuIndex::new(v), Ipa(ipa), size, value)
}
/// Enables and sets the priority of `intid` (banked for vCPU `v` if < 32).
pub(super) fn enable(vgic: &mut Vgic, v: u16, intid: u32, priority: u8) {
    let frame = if intid < 32 { sgi_frame(v) } else { GICD };
    write(
        vgic,
        v,
        frame + 0x100 + u64::from(intid / 32) * 4,
        4,
        1 << (intid % 32),
    );
    write(
        vgic,
        v,
        frame + 0x400 + u64::from(intid),
        1,
        u64::from(priority),
    );
}

/// Makes `intid` pending through the kernel's injection call.
pub(super) fn inject(vgic: &mut Vgic, v: u16, intid: u32) {
    vgic.inject(VcpuIndex::new(v), VirtIntId::from_const(intid))
        .expect("injectable");
}

/// What the fake guest did with one interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Taken {
    pub intid: u32,
    pub priority: u8,
}

/// The fake CPU interface of one vCPU between an entry and an exit.
pub(super) struct FakeCpuIf {
    pub lrs: [u64; MAX_LRS],
    pub count: usize,
    /// EOIs of interrupts no list register held (ICH_HCR_EL2.EOIcount).
    pub eoi_count: u64,
}

impl FakeCpuIf {
    /// Enters with `image`.
    pub fn enter(image: LrImage, count: usize) -> Self {
        Self {
            lrs: image.lrs,
            count,
            eoi_count: 0,
        }
    }

    /// ICV_IAR1_EL1: the highest-priority pending register (lowest INTID
    /// among equals) becomes active.
    pub fn acknowledge(&mut self) -> Option<Taken> {
        let (index, lr) = self.lrs[..self.count]
            .iter()
            .map(|&raw| ListRegister(raw))
            .enumerate()
            .filter(|(_, lr)| lr.state().pending() && !lr.state().active())
            .min_by_key(|(_, lr)| (lr.priority(), lr.vintid()))?;
        self.lrs[index] = with_state(lr, LrState::Active);
        Some(Taken {
            intid: lr.vintid(),
            priority: lr.priority(),
        })
    }

    /// ICV_EOIR1_EL1 with EOImode 0: deactivates `intid`, or counts an EOI
    /// of an interrupt no register holds (LPIs are never counted).
    pub fn end_of_interrupt(&mut self, intid: u32) {
        let found = self.lrs[..self.count].iter().position(|&raw| {
            ListRegister(raw).vintid() == intid && ListRegister(raw).state().active()
        });
        match found {
            Some(i) => {
                let lr = ListRegister(self.lrs[i]);
                let next = if lr.state().pending() {
                    LrState::Pending
                } else {
                    LrState::Invalid
                };
                self.lrs[i] = with_state(lr, next);
            }
            None if intid < crate::ids::FIRST_LPI => self.eoi_count += 1,
            None => {}
        }
    }

    /// Exits: what the kernel reads back (LRs, ICH_HCR_EL2 with EOIcount).
    pub fn exit(&self) -> (&[u64], u64) {
        (
            &self.lrs[..self.count],
            self.eoi_count << hcr::EOICOUNT_SHIFT,
        )
    }
}

/// `lr` with its state replaced.
pub(super) fn with_state(lr: ListRegister, state: LrState) -> u64 {
    let bits = match state {
        LrState::Invalid => 0,
        LrState::Pending => 1,
        LrState::Active => 2,
        LrState::PendingActive => 3,
    };
    (lr.0 & !(3 << 62)) | (bits << 62)
}

/// One guest run on vCPU `v` with `lrs` list registers: flush, let the
/// guest take and EOI up to `take` interrupts, fold. Returns what it took.
pub(super) fn run_guest(vgic: &mut Vgic, v: u16, lrs: usize, take: usize) -> Vec<Taken> {
    let image = vgic.flush(VcpuIndex::new(v), lrs).expect("flush");
    let mut cpu = FakeCpuIf::enter(image, lrs);
    let mut taken = Vec::new();
    for _ in 0..take {
        let Some(t) = cpu.acknowledge() else { break };
        cpu.end_of_interrupt(t.intid);
        taken.push(t);
    }
    let (read_back, hcr) = cpu.exit();
    vgic.fold(VcpuIndex::new(v), read_back, hcr, 0)
        .expect("fold");
    taken
}
