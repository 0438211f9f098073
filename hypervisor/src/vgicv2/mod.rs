//! The virtual GICv2 of one partition on a GICv2 host (a GIC-400 with the
//! virtualization extensions, e.g. the Raspberry Pi 4): the emulated
//! distributor (IHI 0048B, 4.3), SGIs by GICD_SGIR, and list-register
//! scheduling in the GICH_LR format. Pure: the kernel traps the guest's
//! GICD page, maps the physical GICV frame at the guest's GICC address,
//! reads the list registers back on every exit ([`VgicV2::fold`]) and
//! writes [`LrImageV2`] before every entry ([`VgicV2::flush`]).
//!
//! The guest sees a GICv2 without the Security Extensions: one interrupt
//! group (Group 0, GICD_IGROUPR reads as zero), GICD_CTLR.Enable only,
//! up to 8 CPU interfaces, SGIs always enabled and edge-triggered.
//! Consequences outside the model (kicks, physical enables for
//! hardware-linked interrupts) come back as [`Actions`], shared with the
//! GICv3 model.
#![forbid(unsafe_code)]

mod dist;
mod lr;
mod sched;

#[cfg(test)]
mod tests;

pub use dist::offset as gicd_offset;
pub use lr::{hcr, misr, ListRegisterV2, Vtr};
pub use sched::LrImageV2;

use alloc::vec::Vec;

use crate::ids::{PhysIntId, VcpuIndex};
pub use crate::vgic::{Action, Actions, VcpuMask};

/// Size of the emulated distributor frame.
pub const GICD_SIZE: u64 = 0x1000;
/// Size of the CPU interface frame the guest sees (the physical GICV frame
/// mapped in its place: GICV_DIR sits at 0x1000, IHI 0048B, 5.6).
pub const GICC_SIZE: u64 = 0x2000;
/// GICv2 addresses at most 8 CPU interfaces (ITARGETSR is a byte mask).
pub const MAX_VCPUS: u16 = 8;
/// Highest SPI INTID + 1 (1020-1023 are special).
const MAX_INTID: u32 = 1020;
/// Most SPIs: GICD_TYPER.ITLinesNumber = 31 (INTIDs 1020-1023 stay special).
const MAX_SPIS: u32 = 992;
/// SGIs and PPIs: INTIDs 0-31, banked per CPU interface.
const PRIVATE: u32 = 32;
/// Priority bits a GICv2 virtual CPU interface implements (GICH_VTR.PRIbits
/// = 4 on GIC-400): priorities are kept as their top 5 bits.
const PRIORITY_MASK: u8 = 0xf8;

/// Why a vGICv2 call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicV2Error {
    /// No vCPU, or more than GICv2's 8.
    BadVcpuCount(u16),
    /// More SPIs than INTIDs 32-1019 hold.
    TooManySpis(u32),
    /// The vCPU index is not one of this partition's.
    NoSuchVcpu(VcpuIndex),
    /// The INTID is not an SGI, PPI or implemented SPI.
    NoSuchIntId(u32),
}

/// One interrupt's state as the emulated distributor sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IrqV2 {
    /// GICD_IPRIORITYR, masked to the implemented bits.
    priority: u8,
    /// GICD_ISENABLER.
    enabled: bool,
    /// GICD_ICFGR: edge-triggered (else level-sensitive).
    edge: bool,
    /// Pending in the model (not counting a list register's copy).
    pending: bool,
    /// Active in the model (not counting a list register's copy).
    active: bool,
    /// GICD_ITARGETSR for an SPI: the vCPUs it may be delivered to.
    targets: u8,
    /// The vCPU that acknowledged an active SPI: it alone may list it.
    owner: Option<VcpuIndex>,
    /// The physical interrupt behind a hardware-linked one (LR.HW = 1).
    hw: Option<PhysIntId>,
    /// Set while one of `owner`'s list registers holds the interrupt.
    listed: Option<Listed>,
}

/// What happened to a listed interrupt since it was listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listed {
    vcpu: VcpuIndex,
    /// The list register was written pending / active.
    pending: bool,
    active: bool,
    /// GICD_ICPENDR / ICACTIVER was written since: drop the register's
    /// pending / active state when it is folded back.
    cancel_pending: bool,
    cancel_active: bool,
}

/// A vCPU's banked interrupts (SGIs and PPIs) and SGI sources.
#[derive(Clone, Debug)]
struct Bank {
    private: [IrqV2; PRIVATE as usize],
    /// Per SGI, one bit per source CPU with that SGI pending (IHI 0048B,
    /// 4.3.13/4.3.14: GICD_SPENDSGIR and GICD_CPENDSGIR).
    sgi_sources: [u8; 16],
}

/// The virtual GICv2 of one partition.
#[derive(Clone, Debug)]
pub struct VgicV2 {
    /// GICD_CTLR.Enable.
    enabled: bool,
    banks: Vec<Bank>,
    spis: Vec<IrqV2>,
    /// What each vCPU's list registers were given at the last flush, in
    /// register order: (INTID, SGI source).
    lr_contents: Vec<Vec<(u16, u8)>>,
}

impl VgicV2 {
    /// A distributor for `vcpus` vCPUs and `spis` SPIs (rounded up to a
    /// multiple of 32, as GICD_TYPER.ITLinesNumber counts them).
    pub fn new(vcpus: u16, spis: u32) -> Result<Self, VgicV2Error> {
        if vcpus == 0 || vcpus > MAX_VCPUS {
            return Err(VgicV2Error::BadVcpuCount(vcpus));
        }
        let spis = spis.div_ceil(32) * 32;
        if spis > MAX_SPIS {
            return Err(VgicV2Error::TooManySpis(spis));
        }
        let mut private = [IrqV2::default(); PRIVATE as usize];
        for sgi in private.iter_mut().take(16) {
            (sgi.enabled, sgi.edge) = (true, true);
        }
        let bank = Bank {
            private,
            sgi_sources: [0; 16],
        };
        Ok(Self {
            enabled: false,
            banks: (0..vcpus).map(|_| bank.clone()).collect(),
            spis: (0..spis).map(|_| IrqV2::default()).collect(),
            lr_contents: (0..vcpus).map(|_| Vec::new()).collect(),
        })
    }

    /// The number of vCPUs.
    pub fn vcpus(&self) -> u16 {
        self.banks.len() as u16
    }

    /// The number of SPIs (INTIDs 32 up to 32 + this).
    pub fn spis(&self) -> u32 {
        self.spis.len() as u32
    }

    /// Links virtual `intid` (a PPI of `vcpu`, or an SPI) to physical
    /// `pintid`: the guest's deactivation deactivates it (the virtual
    /// timer's PPI, a passthrough SPI).
    pub fn link_hw(
        &mut self,
        vcpu: VcpuIndex,
        intid: u32,
        pintid: PhysIntId,
    ) -> Result<(), VgicV2Error> {
        if intid < 16 || !(16..MAX_INTID).contains(&pintid.get()) {
            return Err(VgicV2Error::NoSuchIntId(intid));
        }
        self.irq_mut(vcpu, intid)?.hw = Some(pintid);
        Ok(())
    }

    /// Makes `intid` pending for `vcpu` (a PPI of that vCPU, or an SPI) as
    /// its device or the physical interrupt behind it asserts it; returns
    /// the vCPUs to kick.
    pub fn inject(&mut self, vcpu: VcpuIndex, intid: u32) -> Result<Actions, VgicV2Error> {
        if intid < 16 {
            return Err(VgicV2Error::NoSuchIntId(intid));
        }
        let irq = self.irq_mut(vcpu, intid)?;
        irq.pending = true;
        let targets = if intid < PRIVATE {
            1u8 << vcpu.get()
        } else {
            irq.targets
        };
        Ok(self.kick_targets(targets))
    }

    /// The interrupt `intid` as seen from `vcpu` (its bank for 0-31).
    fn irq(&self, vcpu: VcpuIndex, intid: u32) -> Result<&IrqV2, VgicV2Error> {
        if intid >= MAX_INTID {
            return Err(VgicV2Error::NoSuchIntId(intid));
        }
        let bank = self
            .banks
            .get(vcpu.index())
            .ok_or(VgicV2Error::NoSuchVcpu(vcpu))?;
        match intid.checked_sub(PRIVATE) {
            None => Ok(&bank.private[intid as usize]),
            Some(spi) => self
                .spis
                .get(spi as usize)
                .ok_or(VgicV2Error::NoSuchIntId(intid)),
        }
    }

    fn irq_mut(&mut self, vcpu: VcpuIndex, intid: u32) -> Result<&mut IrqV2, VgicV2Error> {
        if intid >= MAX_INTID {
            return Err(VgicV2Error::NoSuchIntId(intid));
        }
        let bank = self
            .banks
            .get_mut(vcpu.index())
            .ok_or(VgicV2Error::NoSuchVcpu(vcpu))?;
        match intid.checked_sub(PRIVATE) {
            None => Ok(&mut bank.private[intid as usize]),
            Some(spi) => self
                .spis
                .get_mut(spi as usize)
                .ok_or(VgicV2Error::NoSuchIntId(intid)),
        }
    }

    /// Kicks the vCPUs in the byte mask `targets` that exist.
    fn kick_targets(&self, targets: u8) -> Actions {
        let mut actions = Actions::new();
        for vcpu in 0..self.vcpus() {
            if targets & (1 << vcpu) != 0 {
                actions.kick(VcpuIndex::new(vcpu));
            }
        }
        actions
    }

    /// The byte mask of every vCPU of the partition.
    fn all_vcpus(&self) -> u8 {
        ((1u16 << self.vcpus()) - 1) as u8
    }
}
