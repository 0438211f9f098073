//! The state of one SGI, PPI or SPI (IHI 0069, 4.1: the interrupt life
//! cycle), as the emulated distributor and redistributors see it.
//!
//! Between a guest exit and the next entry the model is the truth. While an
//! interrupt sits in a list register its pending and active state belong to
//! that register: `latch` and `active` then hold only what happened *since*
//! it was listed, and [`Listed`] remembers what the register was given, so
//! folding the register back merges the two without losing or doubling
//! anything.

use crate::ids::{PhysIntId, VcpuIndex};

/// One SGI, PPI or SPI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Irq {
    /// Priority as the guest wrote it, masked to the implemented bits.
    pub priority: u8,
    /// Group 1 (IGROUPR bit set); else Group 0.
    pub group1: bool,
    /// Forwarding enabled (ISENABLER).
    pub enabled: bool,
    /// Edge-triggered (ICFGR 0b10); else level-sensitive.
    pub edge: bool,
    /// Pending latch: an edge, an ISPENDR write, or an SGI.
    pub latch: bool,
    /// The input line of a level-sensitive interrupt an emulated device drives.
    pub line: bool,
    /// Active (acknowledged, not yet deactivated).
    pub active: bool,
    /// The physical interrupt a guest deactivation also deactivates (LR.HW).
    pub hw: Option<PhysIntId>,
    /// The vCPU that holds an SPI's active state: an active SPI belongs to
    /// the PE that acknowledged it until deactivated (IHI 0069, 4.1).
    pub owner: Option<VcpuIndex>,
    /// Set while a list register of some vCPU holds this interrupt.
    pub listed: Option<Listed>,
}

/// What a list register was given when an interrupt was listed, and what
/// the guest's registers asked for since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The vCPU whose list register holds it.
    pub vcpu: VcpuIndex,
    /// The register was written pending.
    pub pending: bool,
    /// The register was written active.
    pub active: bool,
    /// The pending state came from the latch (not only from a level line).
    pub from_latch: bool,
    /// ICPENDR was written since: drop the register's pending state on fold.
    pub cancel_pending: bool,
    /// ICACTIVER was written since: drop the register's active state on fold.
    pub cancel_active: bool,
}

impl Irq {
    /// An SGI: edge-triggered, always (IHI 0069, 12.11.8: ICFGR0 is RO for SGIs).
    pub fn sgi() -> Self {
        Self {
            edge: true,
            ..Self::default()
        }
    }

    /// Whether the interrupt is pending outside any list register.
    pub fn pending_in_model(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }

    /// Pending as the guest reads it in ISPENDR: the model plus what a list
    /// register holds as of the last fold.
    pub fn pending_view(&self) -> bool {
        self.pending_in_model() || self.listed.is_some_and(|l| l.pending && !l.cancel_pending)
    }

    /// Active as the guest reads it in ISACTIVER.
    pub fn active_view(&self) -> bool {
        self.active || self.listed.is_some_and(|l| l.active && !l.cancel_active)
    }

    /// Whether a list register may be given this interrupt as pending.
    pub fn deliverable(&self, group_enabled: bool) -> bool {
        self.listed.is_none() && self.enabled && group_enabled && self.pending_in_model()
    }

    /// Whether it needs a list register at all (pending or active).
    pub fn wants_lr(&self, group_enabled: bool) -> bool {
        self.listed.is_none() && (self.active || self.deliverable(group_enabled))
    }

    /// Writes the guest's ICPENDR: the latch clears, and a listed copy is
    /// dropped on fold. A level line that is still high keeps it pending
    /// (IHI 0069, 4.1.2: level-sensitive pending follows the line).
    pub fn clear_pending(&mut self) {
        self.latch = false;
        if let Some(listed) = self.listed.as_mut() {
            listed.cancel_pending = true;
        }
    }

    /// Writes the guest's ICACTIVER.
    pub fn clear_active(&mut self) {
        self.active = false;
        if let Some(listed) = self.listed.as_mut() {
            listed.cancel_active = true;
        }
    }

    /// The ICFGR field: 0b10 edge, 0b00 level.
    pub fn config_bits(&self) -> u32 {
        if self.edge {
            0b10
        } else {
            0b00
        }
    }
}
