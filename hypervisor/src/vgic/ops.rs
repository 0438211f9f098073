//! Operations on SGIs, PPIs and SPIs shared by the distributor (SPIs) and
//! the SGI_base frames (SGIs and PPIs): the bit-, byte- and two-bit-per-
//! interrupt register layouts (IHI 0069, 12.9.x and 12.11.x), and the
//! kernel's injection calls.

use super::action::Action;
use super::irq::Irq;
use super::{Actions, Vgic, VgicError};
use crate::gic::regs::gicd::GicdIrouter;
use crate::ids::{PhysIntId, VcpuIndex, VirtIntId};

/// What a bit-per-interrupt register write does to each set bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BitOp {
    /// IGROUPR: every bit is written (1 = Group 1).
    Group,
    /// ISENABLER.
    SetEnable,
    /// ICENABLER.
    ClearEnable,
    /// ISPENDR.
    SetPending,
    /// ICPENDR.
    ClearPending,
    /// ISACTIVER.
    SetActive,
    /// ICACTIVER.
    ClearActive,
}

/// What a bit-per-interrupt register read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BitField {
    Group,
    Enable,
    Pending,
    Active,
}

/// Where an SPI's IROUTER sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// One vCPU (Aff3.Aff2.Aff1 = 0, Aff0 = its index).
    Vcpu(VcpuIndex),
    /// IRM = 1: any vCPU may take it (1 of N).
    Any,
    /// An affinity no vCPU has: the SPI is not forwarded.
    Nowhere,
}

/// IROUTER bits a guest may set: Aff3, IRM, Aff2, Aff1, Aff0 (IHI 0069, 12.9.22).
pub(super) const IROUTER_MASK: u64 = GicdIrouter::WRITABLE;

impl Vgic {
    /// The SGI, PPI (banked for `vcpu`) or SPI `intid`.
    pub(super) fn irq(&self, vcpu: VcpuIndex, intid: u32) -> Option<&Irq> {
        if intid < 32 {
            self.vcpus.get(vcpu.index())?.private.get(intid as usize)
        } else {
            self.spis.get(usize::try_from(intid - 32).ok()?)
        }
    }

    /// Mutable [`Vgic::irq`].
    pub(super) fn irq_mut(&mut self, vcpu: VcpuIndex, intid: u32) -> Option<&mut Irq> {
        if intid < 32 {
            self.vcpus
                .get_mut(vcpu.index())?
                .private
                .get_mut(intid as usize)
        } else {
            let index = usize::try_from(intid - 32).ok()?;
            if let Some(word) = self.spi_busy.get_mut(index / 64) {
                *word |= 1 << (index % 64);
            }
            self.spis.get_mut(index)
        }
    }

    /// Where SPI `intid`'s IROUTER sends it.
    pub(super) fn route(&self, intid: u32) -> Route {
        let Some(&router) = intid
            .checked_sub(32)
            .and_then(|i| self.routes.get(i as usize))
        else {
            return Route::Nowhere;
        };
        let router = GicdIrouter(router);
        if router.irm() {
            return Route::Any;
        }
        // vCPU i has Aff1.Aff0 = i (its VMPIDR_EL2), Aff2 = Aff3 = 0.
        match VcpuIndex::from_affinity(router.affinity(), usize::from(self.config.num_vcpus)) {
            Some(vcpu) => Route::Vcpu(vcpu),
            None => Route::Nowhere,
        }
    }

    /// The vCPU that must see `intid` next: the banked owner for SGIs and
    /// PPIs; for an SPI the vCPU holding it active, else its route (an
    /// IRM = 1 SPI names vCPU 0 to kick, though any vCPU may take it).
    pub(super) fn target(&self, vcpu: VcpuIndex, intid: u32) -> Option<VcpuIndex> {
        if intid < 32 {
            return Some(vcpu);
        }
        if let Some(owner) = self.irq(vcpu, intid).and_then(|irq| irq.owner) {
            return Some(owner);
        }
        match self.route(intid) {
            Route::Vcpu(v) => Some(v),
            Route::Any => Some(VcpuIndex::new(0)),
            Route::Nowhere => None,
        }
    }

    /// Whether the distributor forwards interrupts of this group (GICD_CTLR).
    pub(super) fn group_enabled(&self, group1: bool) -> bool {
        if group1 {
            self.grp1_enabled
        } else {
            self.grp0_enabled
        }
    }

    /// Reads the 32 interrupts `first..first + 32` of a bit-per-interrupt
    /// register; interrupts that do not exist read as 0.
    pub(super) fn read_bits(&self, vcpu: VcpuIndex, first: u32, field: BitField) -> u64 {
        (0..32u32).fold(0, |acc, bit| {
            let set = self.irq(vcpu, first + bit).is_some_and(|irq| match field {
                BitField::Group => irq.group1,
                BitField::Enable => irq.enabled,
                BitField::Pending => irq.pending_view(),
                BitField::Active => irq.active_view(),
            });
            acc | (u64::from(set) << bit)
        })
    }

    /// Writes a bit-per-interrupt register covering `first..first + 32`.
    pub(super) fn write_bits(
        &mut self,
        vcpu: VcpuIndex,
        first: u32,
        value: u64,
        op: BitOp,
        actions: &mut Actions,
    ) {
        for bit in 0..32u32 {
            let set = value & (1 << bit) != 0;
            if set || op == BitOp::Group {
                self.apply_bit(vcpu, first + bit, set, op, actions);
            }
        }
    }

    fn apply_bit(
        &mut self,
        vcpu: VcpuIndex,
        intid: u32,
        set: bool,
        op: BitOp,
        actions: &mut Actions,
    ) {
        let target = self.target(vcpu, intid);
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        let phys = irq.hw;
        let listed_on = irq.listed.map(|l| l.vcpu);
        let was_latched = irq.latch;
        match op {
            BitOp::Group => irq.group1 = set,
            BitOp::SetEnable => irq.enabled = true,
            BitOp::ClearEnable => irq.enabled = false,
            BitOp::SetPending => irq.latch = true,
            BitOp::ClearPending => irq.clear_pending(),
            BitOp::SetActive => {
                irq.active = true;
                if intid >= 32 && irq.owner.is_none() {
                    irq.owner = Some(target.unwrap_or(vcpu));
                }
            }
            BitOp::ClearActive => {
                irq.clear_active();
                if listed_on.is_none() {
                    irq.owner = None;
                }
            }
        }
        let hw_target = target.unwrap_or(vcpu);
        match (op, phys) {
            (BitOp::SetEnable, Some(intid)) => actions.push(Action::EnablePhys {
                vcpu: hw_target,
                intid,
            }),
            (BitOp::ClearEnable, Some(intid)) => actions.push(Action::DisablePhys {
                vcpu: hw_target,
                intid,
            }),
            // The physical twin was acknowledged at EL2 and waits for the
            // guest's deactivation, which will now never come.
            (BitOp::ClearPending, Some(intid)) if was_latched && listed_on.is_none() => actions
                .push(Action::DeactivatePhys {
                    vcpu: hw_target,
                    intid,
                }),
            (BitOp::ClearActive, Some(intid)) if listed_on.is_none() => {
                actions.push(Action::DeactivatePhys {
                    vcpu: hw_target,
                    intid,
                })
            }
            _ => {}
        }
        // A listed copy only changes when its vCPU exits and folds.
        if let Some(listed) = listed_on {
            if matches!(
                op,
                BitOp::ClearPending | BitOp::ClearActive | BitOp::SetPending
            ) {
                actions.kick(listed);
            }
        } else if matches!(op, BitOp::SetEnable | BitOp::SetPending) {
            if let Some(t) = target {
                actions.kick(t);
            }
        }
    }

    /// Reads `size` (1 or 4) priority bytes starting at `intid`.
    pub(super) fn read_priorities(&self, vcpu: VcpuIndex, intid: u32, size: u8) -> u64 {
        (0..u32::from(size)).fold(0, |acc, i| {
            let priority = self.irq(vcpu, intid + i).map_or(0, |irq| irq.priority);
            acc | (u64::from(priority) << (8 * i))
        })
    }

    /// Writes `size` (1 or 4) priority bytes starting at `intid`; bits
    /// below the implemented priority bits are RAZ/WI (IHI 0069, 12.9.17).
    pub(super) fn write_priorities(&mut self, vcpu: VcpuIndex, intid: u32, size: u8, value: u64) {
        let mask = self.config.priority_mask();
        for i in 0..u32::from(size) {
            if let Some(irq) = self.irq_mut(vcpu, intid + i) {
                irq.priority = (value >> (8 * i)) as u8 & mask;
            }
        }
    }

    /// Reads the ICFGR word for the 16 interrupts from `first`.
    pub(super) fn read_config(&self, vcpu: VcpuIndex, first: u32) -> u64 {
        (0..16u32).fold(0, |acc, i| {
            let bits = self.irq(vcpu, first + i).map_or(0, Irq::config_bits);
            acc | (u64::from(bits) << (2 * i))
        })
    }

    /// Writes the ICFGR word for the 16 interrupts from `first`; only
    /// Int_config[1] (edge) is writable, bit 0 is RES0 (IHI 0069, 12.9.9).
    /// SGIs stay edge-triggered, and a hardware-linked PPI keeps the
    /// trigger of the hardware behind it (the timers' level outputs): for
    /// PPIs it is IMPLEMENTATION DEFINED whether the field is programmable
    /// (IHI 0069, GICR_ICFGR1), and these are not.
    pub(super) fn write_config(&mut self, vcpu: VcpuIndex, first: u32, value: u64) {
        for i in 0..16u32 {
            let intid = first + i;
            if intid < 16 {
                continue;
            }
            if let Some(irq) = self.irq_mut(vcpu, intid) {
                if intid < 32 && irq.hw.is_some() {
                    continue;
                }
                irq.edge = value & (0b10 << (2 * i)) != 0;
            }
        }
    }

    /// Makes SGI/PPI/SPI `intid` pending as an edge would (a hardware-linked
    /// interrupt the kernel took at EL2, or an emulated device's edge). For
    /// SGIs and PPIs `vcpu` names the banked copy; for SPIs it is ignored.
    pub fn inject(&mut self, vcpu: VcpuIndex, intid: VirtIntId) -> Result<Actions, VgicError> {
        self.vcpu(vcpu)?;
        let target = self.target(vcpu, intid.get());
        let irq = self
            .irq_mut(vcpu, intid.get())
            .ok_or(VgicError::NoSuchInterrupt(intid))?;
        irq.latch = true;
        let mut actions = Actions::new();
        let listed = irq.listed.map(|l| l.vcpu);
        if let Some(t) = listed.or(target) {
            actions.kick(t);
        }
        Ok(actions)
    }

    /// Drives the input line of a level-sensitive SGI/PPI/SPI an emulated
    /// device owns: pending while high (IHI 0069, 4.1.2).
    pub fn set_line(
        &mut self,
        vcpu: VcpuIndex,
        intid: VirtIntId,
        high: bool,
    ) -> Result<Actions, VgicError> {
        self.vcpu(vcpu)?;
        let target = self.target(vcpu, intid.get());
        let irq = self
            .irq_mut(vcpu, intid.get())
            .ok_or(VgicError::NoSuchInterrupt(intid))?;
        let rising = high && !irq.line;
        irq.line = high;
        let mut actions = Actions::new();
        if rising {
            if let Some(t) = target {
                actions.kick(t);
            }
        }
        Ok(actions)
    }

    /// Links PPI or SPI `intid` to physical `phys`: list registers carry
    /// HW = 1 and pINTID, so the guest's deactivation reaches the hardware
    /// (IHI 0069, 4.9.2). A PPI is linked on every vCPU (the virtual timer,
    /// PPI 27, on each vCPU's own pCPU).
    pub fn link_hw(&mut self, intid: VirtIntId, phys: PhysIntId) -> Result<(), VgicError> {
        let linkable = (16..self.config.spi_end()).contains(&intid.get()) && phys.get() < 1020;
        if !linkable {
            return Err(VgicError::NoSuchInterrupt(intid));
        }
        if intid.get() < 32 {
            for vcpu in &mut self.vcpus {
                vcpu.private[intid.index()].hw = Some(phys);
            }
        } else if let Some(irq) = self.irq_mut(VcpuIndex::new(0), intid.get()) {
            irq.hw = Some(phys);
        }
        Ok(())
    }

    /// A trapped ICV_DIR_EL1 write (ICH_HCR_EL2.TDIR, which [`Vgic::flush`]
    /// asks for when the guest uses EOImode 1 and an active interrupt is
    /// not in a list register): deactivates `intid` on `vcpu`.
    pub fn deactivate(&mut self, vcpu: VcpuIndex, intid: VirtIntId) -> Result<Actions, VgicError> {
        self.vcpu(vcpu)?;
        let mut actions = Actions::new();
        let Some(irq) = self.irq_mut(vcpu, intid.get()) else {
            // IHI 0069, 12.2.4: deactivating an INTID that is not active
            // (or an LPI, which has no active state) has no effect.
            return Ok(actions);
        };
        let mine = intid.get() < 32 || irq.owner == Some(vcpu);
        if irq.active && irq.listed.is_none() && mine {
            irq.active = false;
            irq.owner = None;
            if let Some(phys) = irq.hw {
                actions.push(Action::DeactivatePhys { vcpu, intid: phys });
            }
        }
        Ok(actions)
    }
}
