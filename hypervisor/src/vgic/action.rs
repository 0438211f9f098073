//! What the kernel must do after a vGIC call: the vGIC touches no hardware,
//! so every consequence outside its model comes back as an [`Action`].

use alloc::vec::Vec;

use crate::ids::{PhysIntId, VcpuIndex};

/// A set of vCPUs of one partition (at most [`super::MAX_VCPUS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuMask(pub u64);

impl VcpuMask {
    /// Adds `vcpu` (ignored if its index is 64 or more).
    pub fn insert(&mut self, vcpu: VcpuIndex) {
        if let Some(bit) = 1u64.checked_shl(u32::from(vcpu.get())) {
            self.0 |= bit;
        }
    }

    /// Whether `vcpu` is in the set.
    pub fn contains(&self, vcpu: VcpuIndex) -> bool {
        1u64.checked_shl(u32::from(vcpu.get()))
            .is_some_and(|bit| self.0 & bit != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The vCPUs in the set, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = VcpuIndex> + '_ {
        (0..64u16)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(VcpuIndex::new)
    }
}

/// One thing the kernel must do on the vGIC's behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Enable the physical interrupt behind a hardware-linked one (for a
    /// PPI: on the pCPU that runs `vcpu`; for an SPI `vcpu` is its target).
    EnablePhys { vcpu: VcpuIndex, intid: PhysIntId },
    /// Disable the physical interrupt behind a hardware-linked one.
    DisablePhys { vcpu: VcpuIndex, intid: PhysIntId },
    /// Deactivate the physical interrupt: the guest deactivated (or cleared
    /// the active state of) its hardware-linked twin outside a list register.
    DeactivatePhys { vcpu: VcpuIndex, intid: PhysIntId },
    /// Route a passthrough SPI to the pCPU that runs `vcpu` (IROUTER changed).
    RoutePhys { vcpu: VcpuIndex, intid: PhysIntId },
    /// GICR_CTLR.EnableLPIs of `vcpu` changed (the vITS may need to know).
    LpisEnabled { vcpu: VcpuIndex, enabled: bool },
    /// GICR_PROPBASER of `vcpu` changed: cached LPI configuration was dropped.
    LpiConfigChanged { vcpu: VcpuIndex },
}

/// What one vGIC call asks of the kernel: vCPUs to kick (a physical SGI to
/// the pCPU running each, so it exits and picks up new pending state), and
/// hardware actions in order. Kicks may name the calling vCPU: it picks up
/// its state on the next entry anyway, so the kernel may skip those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// vCPUs that have new work and must exit to see it.
    pub kick: VcpuMask,
    /// Hardware actions, in the order they arose.
    pub hardware: Vec<Action>,
}

impl Actions {
    /// No actions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.kick.is_empty() && self.hardware.is_empty()
    }

    /// Asks for `vcpu` to be kicked.
    pub fn kick(&mut self, vcpu: VcpuIndex) {
        self.kick.insert(vcpu);
    }

    /// Appends a hardware action.
    pub fn push(&mut self, action: Action) {
        self.hardware.push(action);
    }

    /// Adds everything `other` asks for.
    pub fn merge(&mut self, other: Actions) {
        self.kick.0 |= other.kick.0;
        self.hardware.extend(other.hardware);
    }
}
