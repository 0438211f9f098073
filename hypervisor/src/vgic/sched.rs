//! List-register scheduling: before entry, the highest-priority pending
//! and active interrupts of a vCPU go into its list registers; after exit,
//! what the guest did to them (acknowledge, EOI, deactivate) is folded
//! back into the model (IHI 0069, 4.9: the virtual CPU interface).
//!
//! Active interrupts are listed first, so that the guest's EOI finds them
//! in a register; the rest by priority. What does not fit stays in the
//! model, and a maintenance interrupt brings the vCPU back when registers
//! free up: underflow (UIE) or no-pending (NPIE) for pending ones, EOIcount
//! (LRENPIE) for active ones.

use super::action::Action;
use super::config::MAX_LRS;
use super::irq::Listed;
use super::lpi::ListedLpi;
use super::lr::{hcr, vmcr, ListRegister, LrState};
use super::ops::Route;
use super::{Actions, Vgic, VgicError};
use crate::ids::VcpuIndex;

/// What one list register was given at the last flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    /// The vINTID.
    pub intid: u32,
    /// The value written.
    pub lr: ListRegister,
}

/// The list registers and ICH_HCR_EL2 to enter a vCPU with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrImage {
    /// ICH_LR<n>_EL2 for n < the count flushed; entries not used are 0.
    pub lrs: [u64; MAX_LRS],
    /// How many registers hold an interrupt (the rest are 0).
    pub used: usize,
    /// ICH_HCR_EL2: En plus the maintenance interrupts and traps needed.
    pub hcr: u64,
}

/// An interrupt that wants a list register, in scheduling order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    /// Active ones first.
    not_active: bool,
    /// Then by priority (lower value first), then by INTID.
    priority: u8,
    intid: u32,
    /// Pending and deliverable (not only active).
    pending: bool,
}

/// The best `limit` candidates seen, sorted, and what did not fit.
struct TopN {
    items: [Option<Candidate>; MAX_LRS],
    len: usize,
    limit: usize,
    dropped_pending: bool,
    dropped_active: bool,
}

impl TopN {
    fn new(limit: usize) -> Self {
        Self {
            items: [None; MAX_LRS],
            len: 0,
            limit: limit.min(MAX_LRS),
            dropped_pending: false,
            dropped_active: false,
        }
    }

    fn offer(&mut self, candidate: Candidate) {
        if self.len == self.limit {
            let Some(worst) = self.items[self.len - 1] else {
                return;
            };
            if candidate >= worst {
                self.drop_one(candidate);
                return;
            }
            self.drop_one(worst);
            self.len -= 1;
        }
        let at = self.items[..self.len]
            .iter()
            .position(|item| item.is_some_and(|item| candidate < item))
            .unwrap_or(self.len);
        self.items.copy_within(at..self.len, at + 1);
        self.items[at] = Some(candidate);
        self.len += 1;
    }

    fn drop_one(&mut self, candidate: Candidate) {
        self.dropped_pending |= candidate.pending;
        self.dropped_active |= !candidate.not_active;
    }
}

impl Vgic {
    /// Fills the list registers of `vcpu` (it has `num_lrs` of them,
    /// ICH_VTR_EL2.ListRegs + 1) before entering it. Every call must be
    /// followed by [`Vgic::fold`] after the next exit.
    pub fn flush(&mut self, vcpu: VcpuIndex, num_lrs: usize) -> Result<LrImage, VgicError> {
        if num_lrs == 0 || num_lrs > MAX_LRS {
            return Err(VgicError::ListRegisters(num_lrs));
        }
        let state = self.vcpu(vcpu)?;
        if state.in_guest {
            return Err(VgicError::FlushWithoutFold(vcpu));
        }
        let eoi_mode = state.eoi_mode;
        let mut top = TopN::new(num_lrs);
        self.gather(vcpu, |c| top.offer(c));
        let mut image = LrImage {
            lrs: [0; MAX_LRS],
            used: 0,
            hcr: hcr::EN,
        };
        let mut slots = alloc::vec::Vec::with_capacity(top.len);
        for candidate in top.items.iter().take(top.len).flatten() {
            let lr = self.list(vcpu, *candidate);
            image.lrs[slots.len()] = lr.0;
            slots.push(super::sched::Slot {
                intid: candidate.intid,
                lr,
            });
        }
        image.used = slots.len();
        if top.dropped_pending {
            // IHI 0069, 12.4.8: UIE fires when at most one register is valid,
            // NPIE when none is pending; ask only for what cannot fire at once.
            if image.used >= 2 {
                image.hcr |= hcr::UIE;
            }
            if slots.iter().any(|s| s.lr.state().pending()) {
                image.hcr |= hcr::NPIE;
            } else if image.used == 1 {
                // A single active register: come back when it is deactivated.
                let eoi = slots[0].lr.with_eoi();
                slots[0].lr = eoi;
                image.lrs[0] = eoi.0;
            }
        }
        if top.dropped_active {
            // The guest will deactivate an interrupt no register holds:
            // EOIcount counts it (LRENPIE); with EOImode 1 its ICV_DIR_EL1
            // write is trapped so the INTID is known (TDIR).
            image.hcr |= hcr::LRENPIE;
            if eoi_mode {
                image.hcr |= hcr::TDIR;
            }
        }
        self.forget_idle_spis();
        let state = self.vcpu_mut(vcpu)?;
        state.slots = slots;
        state.in_guest = true;
        Ok(image)
    }

    /// Folds the list registers read back after `vcpu` exited (`lrs`, in
    /// the order flushed), with ICH_HCR_EL2 (for EOIcount) and ICH_VMCR_EL2
    /// (for VEOIM), into the model.
    pub fn fold(
        &mut self,
        vcpu: VcpuIndex,
        lrs: &[u64],
        ich_hcr: u64,
        ich_vmcr: u64,
    ) -> Result<Actions, VgicError> {
        let state = self.vcpu_mut(vcpu)?;
        if lrs.len() < state.slots.len() {
            return Err(VgicError::ListRegisters(lrs.len()));
        }
        state.eoi_mode = ich_vmcr & vmcr::VEOIM != 0;
        let slots = core::mem::take(&mut state.slots);
        state.in_guest = false;
        let mut actions = Actions::new();
        // EOIcount first, while the listed interrupts are still marked as
        // such: it only counts deactivations of interrupts no register held.
        for _ in 0..hcr::eoi_count(ich_hcr) {
            self.deactivate_unlisted(vcpu, &mut actions);
        }
        for (slot, &raw) in slots.iter().zip(lrs) {
            let lr = ListRegister(raw);
            // Only the state is the guest's doing; the rest is what we wrote.
            let lr_state = if lr.vintid() == slot.intid {
                lr.state()
            } else {
                slot.lr.state()
            };
            if self.config.is_lpi(slot.intid) {
                self.fold_lpi(vcpu, slot.intid, lr_state, &mut actions);
            } else {
                self.fold_irq(vcpu, slot.intid, lr_state, &mut actions);
            }
        }
        Ok(actions)
    }

    /// Whether `vcpu` has an interrupt to take (to end a WFI).
    pub fn has_pending(&self, vcpu: VcpuIndex) -> bool {
        let mut pending = false;
        self.gather(vcpu, |c| pending |= c.pending);
        pending
    }

    /// Offers every interrupt of `vcpu` that wants a list register.
    fn gather(&self, vcpu: VcpuIndex, mut offer: impl FnMut(Candidate)) {
        let Ok(state) = self.vcpu(vcpu) else {
            return;
        };
        let irq_candidate = |intid: u32, irq: &super::irq::Irq| {
            let group = self.group_enabled(irq.group1);
            irq.wants_lr(group).then_some(Candidate {
                not_active: !irq.active,
                priority: irq.priority,
                intid,
                pending: irq.deliverable(group),
            })
        };
        for (intid, irq) in (0u32..).zip(state.private.iter()) {
            if let Some(c) = irq_candidate(intid, irq) {
                offer(c);
            }
        }
        // Every exit scans the SPIs that may want a register (`spi_busy`):
        // whether one does is the cheap test, so it comes first; its route
        // only for those that do.
        for (intid, irq) in self.busy_spis() {
            let Some(c) = irq_candidate(intid, irq) else {
                continue;
            };
            let home = match irq.owner {
                Some(owner) if irq.active => owner == vcpu,
                _ => match self.route(intid) {
                    Route::Vcpu(v) => v == vcpu,
                    Route::Any => true,
                    Route::Nowhere => false,
                },
            };
            if home {
                offer(c);
            }
        }
        if state.redist.enable_lpis && self.grp1_enabled {
            // The table holds 6 priority bits; the CPU interface may implement fewer.
            let mask = self.config.priority_mask();
            for intid in state.lpis.pending() {
                if let Some(config) = state.lpis.config(intid).filter(|c| c.enabled) {
                    offer(Candidate {
                        not_active: true,
                        priority: config.priority & mask,
                        intid,
                        pending: true,
                    });
                }
            }
        }
    }

    /// The SPIs `spi_busy` marks, with their INTIDs, ascending.
    fn busy_spis(&self) -> impl Iterator<Item = (u32, &super::irq::Irq)> + '_ {
        (0usize..).zip(&self.spi_busy).flat_map(move |(w, &word)| {
            let mut bits = word;
            core::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + bit)
            })
            .filter_map(move |index| {
                let irq = self.spis.get(index)?;
                Some((u32::try_from(index).ok()?.checked_add(32)?, irq))
            })
        })
    }

    /// Clears the `spi_busy` bits of SPIs that are idle: not listed, not
    /// active, not pending in the model. Whatever changes that again goes
    /// through `irq_mut`, which sets the bit again.
    fn forget_idle_spis(&mut self) {
        let Self { spi_busy, spis, .. } = self;
        for (w, word) in spi_busy.iter_mut().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let idle = spis.get(w * 64 + bit).is_none_or(|irq| {
                    irq.listed.is_none() && !irq.active && !irq.pending_in_model()
                });
                if idle {
                    *word &= !(1u64 << bit);
                }
            }
        }
    }

    /// Moves `candidate`'s pending/active state into a list register value.
    fn list(&mut self, vcpu: VcpuIndex, candidate: Candidate) -> ListRegister {
        let intid = candidate.intid;
        if self.config.is_lpi(intid) {
            if let Ok(state) = self.vcpu_mut(vcpu) {
                state.lpis.remove(intid);
                state.lpis.listed.insert(intid, ListedLpi::default());
            }
            // LPIs are always Group 1 (IHI 0069, 5.1).
            return ListRegister::software(
                intid,
                candidate.priority,
                true,
                LrState::Pending,
                false,
            );
        }
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return ListRegister::default();
        };
        let active = irq.active;
        // A hardware-linked interrupt cannot be pending and active in a
        // list register: its physical twin is active until deactivated.
        let pending = candidate.pending && !(irq.hw.is_some() && active);
        let from_latch = pending && irq.latch;
        if pending {
            irq.latch = false;
        }
        irq.active = false;
        irq.listed = Some(Listed {
            vcpu,
            pending,
            active,
            from_latch,
            cancel_pending: false,
            cancel_active: false,
        });
        let state = LrState::from_flags(pending, active);
        match irq.hw {
            Some(phys) => {
                ListRegister::hardware(intid, phys.get(), irq.priority, irq.group1, state)
            }
            // A level-sensitive interrupt asks for EOI maintenance so its
            // line is sampled again once the guest deactivates it.
            None => {
                ListRegister::software(intid, irq.priority, irq.group1, state, pending && !irq.edge)
            }
        }
    }

    fn fold_irq(&mut self, vcpu: VcpuIndex, intid: u32, lr_state: LrState, actions: &mut Actions) {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        let Some(listed) = irq.listed.take() else {
            return;
        };
        let pending = lr_state.pending() && !listed.cancel_pending;
        let active = lr_state.active() && !listed.cancel_active;
        if pending && (irq.edge || listed.from_latch) {
            irq.latch = true;
        }
        if active {
            irq.active = true;
        }
        irq.owner = if irq.active && intid >= 32 {
            irq.owner.or(Some(vcpu))
        } else {
            None
        };
        // The physical twin waits for a deactivation the guest can no longer do.
        let dropped = (lr_state.pending() && !lr_state.active() && listed.cancel_pending)
            || (lr_state.active() && listed.cancel_active);
        if let (Some(phys), true) = (irq.hw, dropped) {
            actions.push(Action::DeactivatePhys { vcpu, intid: phys });
        }
        let wants = irq.pending_in_model() || irq.active;
        if intid >= 32 && wants {
            if let Some(target) = self.target(vcpu, intid).filter(|&t| t != vcpu) {
                actions.kick(target);
            }
        }
    }

    fn fold_lpi(&mut self, vcpu: VcpuIndex, intid: u32, lr_state: LrState, actions: &mut Actions) {
        let Ok(state) = self.vcpu_mut(vcpu) else {
            return;
        };
        let Some(listed) = state.lpis.listed.remove(&intid) else {
            return;
        };
        // An LPI has no active state that outlives its EOI (IHI 0069, 4.9:
        // an EOI of an LPI no register holds only drops priority), so only
        // a still-pending copy goes back, to wherever it was moved.
        if lr_state.pending() && !listed.cancel {
            let dest = listed.redirect.unwrap_or(vcpu);
            if let Ok(target) = self.vcpu_mut(dest) {
                target.lpis.insert(intid);
            }
            if dest != vcpu {
                actions.kick(dest);
            }
        }
    }

    /// One EOIcount step: the guest deactivated an interrupt no register
    /// held. It EOIs in nesting order, so it is the highest-priority active
    /// interrupt of this vCPU outside the registers.
    fn deactivate_unlisted(&mut self, vcpu: VcpuIndex, actions: &mut Actions) {
        let mut best: Option<(u8, u32)> = None;
        let mut consider = |intid: u32, irq: &super::irq::Irq| {
            if irq.active && irq.listed.is_none() && best.is_none_or(|b| (irq.priority, intid) < b)
            {
                best = Some((irq.priority, intid));
            }
        };
        if let Ok(state) = self.vcpu(vcpu) {
            for (intid, irq) in (0u32..).zip(state.private.iter()) {
                consider(intid, irq);
            }
        }
        for (intid, irq) in (32u32..).zip(self.spis.iter()) {
            if irq.owner == Some(vcpu) {
                consider(intid, irq);
            }
        }
        let Some((_, intid)) = best else {
            return;
        };
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.active = false;
            irq.owner = None;
            if let Some(phys) = irq.hw {
                actions.push(Action::DeactivatePhys { vcpu, intid: phys });
            }
        }
    }
}
