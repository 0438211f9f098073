//! List-register scheduling for the GICv2 virtual interface: which
//! interrupts go into GICH_LRn before an entry, what comes back on exit,
//! and which maintenance interrupts to ask for (IHI 0048B, 5.3.1 GICH_HCR:
//! UIE when more interrupts wait than list registers hold, NPIE when one
//! must wait for a register's pending state to be consumed first).
//!
//! The same discipline as the GICv3 model (`vgic::sched`): listing moves
//! pending and active state into the register, folding moves what is left
//! back, and guest writes in between are remembered in [`Listed`] so that
//! nothing is lost or doubled.

use alloc::vec::Vec;

use super::lr::{hcr, ListRegisterV2};
use super::{Action, Actions, IrqV2, Listed, VgicV2, VgicV2Error, PRIVATE};
use crate::ids::{PhysIntId, VcpuIndex};
use crate::vgic::LrState;

/// GICv2 has at most 64 list registers (GICH_VTR.ListRegs is 6 bits).
const MAX_LRS: usize = 64;

/// What to write into the virtual interface before entering a vCPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LrImageV2 {
    /// GICH_LR0.. in order; the registers past these are written as 0.
    pub lrs: Vec<ListRegisterV2>,
    /// GICH_HCR: En, plus UIE / NPIE when a maintenance interrupt is needed.
    pub hcr: u32,
}

/// An interrupt that wants a list register on a vCPU.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    intid: u16,
    /// An SGI's source CPU (the lowest with it pending).
    source: u8,
    /// Further sources of the same SGI wait for the next flush.
    more_sources: bool,
    priority: u8,
    pending: bool,
    active: bool,
    hw: Option<PhysIntId>,
    edge: bool,
}

impl VgicV2 {
    /// The interrupts `vcpu` could have listed now, in the order they get
    /// list registers: active first (the guest must be able to deactivate
    /// them), then by priority (lower value first), then by INTID.
    fn candidates(&self, vcpu: VcpuIndex) -> Vec<Candidate> {
        let mut found = Vec::new();
        let Some(bank) = self.banks.get(vcpu.index()) else {
            return found;
        };
        let forward = self.enabled;
        for (intid, irq) in bank.private.iter().enumerate() {
            if irq.listed.is_some() {
                continue;
            }
            let (pending, source, more_sources) = if intid < 16 {
                let sources = bank.sgi_sources[intid];
                let source = sources.trailing_zeros().min(7) as u8;
                (sources != 0, source, sources.count_ones() > 1)
            } else {
                (irq.pending, 0, false)
            };
            let pending = pending && irq.enabled && forward;
            if pending || irq.active {
                found.push(candidate(intid as u16, source, more_sources, irq, pending));
            }
        }
        for (index, irq) in self.spis.iter().enumerate() {
            if irq.listed.is_some() {
                continue;
            }
            let mine = irq.owner == Some(vcpu);
            let pending = irq.pending
                && irq.enabled
                && forward
                && (mine || (!irq.active && irq.targets & (1 << vcpu.get()) != 0));
            if pending || (irq.active && mine) {
                let intid = (PRIVATE as usize + index) as u16;
                found.push(candidate(intid, 0, false, irq, pending));
            }
        }
        found.sort_by_key(|c| (!c.active, c.priority, c.intid));
        found
    }

    /// Whether `vcpu` has an interrupt it could take now (for WFI).
    pub fn has_pending(&self, vcpu: VcpuIndex) -> bool {
        self.candidates(vcpu).iter().any(|c| c.pending)
    }

    /// Fills `vcpu`'s `num_lrs` list registers (GICH_VTR.ListRegs + 1)
    /// and says which maintenance interrupts to enable. Call after
    /// [`VgicV2::fold`] of the previous run.
    pub fn flush(&mut self, vcpu: VcpuIndex, num_lrs: usize) -> Result<LrImageV2, VgicV2Error> {
        self.irq(vcpu, 0)?;
        let num_lrs = num_lrs.min(MAX_LRS);
        let candidates = self.candidates(vcpu);
        let mut image = LrImageV2 {
            lrs: Vec::new(),
            hcr: hcr::EN,
        };
        let mut contents = Vec::new();
        for c in candidates.iter().take(num_lrs) {
            // IHI 0048B, 5.3.9: a hardware-linked register may not be
            // pending and active at once; list it active, keep the pending
            // state, and come back when the register is no longer pending.
            let pending = c.pending && !(c.hw.is_some() && c.active);
            let state = LrState::from_flags(pending, c.active);
            let lr = match c.hw {
                Some(pintid) if c.intid >= 16 => {
                    ListRegisterV2::hardware(c.intid, pintid.get() as u16, c.priority, state)
                }
                _ => ListRegisterV2::software(c.intid, c.source, c.priority, state, !c.edge),
            };
            if c.more_sources || pending != c.pending {
                image.hcr |= hcr::NPIE;
            }
            image.lrs.push(lr);
            contents.push((c.intid, c.source));
            self.take_listed(vcpu, c, pending);
        }
        if candidates.len() > num_lrs {
            // Underflow: refill when at most one register is still in use.
            image.hcr |= hcr::UIE;
        }
        self.lr_contents[vcpu.index()] = contents;
        Ok(image)
    }

    /// Moves a listed candidate's state out of the model.
    fn take_listed(&mut self, vcpu: VcpuIndex, c: &Candidate, pending: bool) {
        let intid = u32::from(c.intid);
        if intid < 16 && pending {
            self.banks[vcpu.index()].sgi_sources[intid as usize] &= !(1 << c.source);
        }
        let Ok(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        if intid >= 16 && pending {
            irq.pending = false;
        }
        irq.active = false;
        if intid >= PRIVATE {
            irq.owner = Some(vcpu);
        }
        irq.listed = Some(Listed {
            vcpu,
            pending,
            active: c.active,
            cancel_pending: false,
            cancel_active: false,
        });
    }

    /// Takes back `vcpu`'s list registers as read on exit (`lrs[n]` =
    /// GICH_LRn, at least as many as the last flush wrote): what is still
    /// pending or active returns to the model. Returns the physical
    /// deactivations the guest asked for through GICD_ICACTIVER while the
    /// hardware still had the interrupt active in a register.
    pub fn fold(
        &mut self,
        vcpu: VcpuIndex,
        lrs: &[ListRegisterV2],
    ) -> Result<Actions, VgicV2Error> {
        self.irq(vcpu, 0)?;
        let contents = core::mem::take(&mut self.lr_contents[vcpu.index()]);
        let mut actions = Actions::new();
        for (index, &(intid, source)) in contents.iter().enumerate() {
            let intid = u32::from(intid);
            let Ok(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            let Some(listed) = irq.listed.take() else {
                continue;
            };
            if listed.vcpu != vcpu {
                // Listed by another vCPU since (cannot happen while the
                // kernel folds on every exit): that vCPU's fold owns it.
                irq.listed = Some(listed);
                continue;
            }
            // A register the kernel could not read keeps what it was given.
            let state = lrs
                .get(index)
                .map_or(LrState::from_flags(listed.pending, listed.active), |lr| {
                    lr.state()
                });
            let pending = state.pending() && !listed.cancel_pending;
            let active = state.active() && !listed.cancel_active;
            if let (true, Some(pintid)) = (state.active() && listed.cancel_active, irq.hw) {
                actions.push(Action::DeactivatePhys {
                    vcpu,
                    intid: pintid,
                });
            }
            irq.active |= active;
            if intid >= 16 {
                irq.pending |= pending;
            }
            if intid >= PRIVATE && !irq.active {
                irq.owner = None;
            }
            if intid < 16 && pending {
                self.banks[vcpu.index()].sgi_sources[intid as usize] |= 1 << (source & 7);
            }
        }
        Ok(actions)
    }
}

fn candidate(intid: u16, source: u8, more_sources: bool, irq: &IrqV2, pending: bool) -> Candidate {
    Candidate {
        intid,
        source,
        more_sources: more_sources && pending,
        priority: irq.priority,
        pending,
        active: irq.active,
        hw: irq.hw,
        edge: irq.edge,
    }
}
