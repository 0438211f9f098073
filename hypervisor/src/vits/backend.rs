//! The interface between the virtual ITS and whatever delivers its
//! interrupts.
//!
//! The vITS validates every guest command against its own translation state
//! and then says what it means, in virtual terms plus the physical device
//! the partition config put behind the virtual DeviceID. A software backend
//! keeps pending state per vCPU and injects through list registers; a GICv4
//! backend turns the same calls into VMAPTI, VMOVI, DISCARD, INT, CLEAR,
//! INV/VINVALL and VSYNC on the physical ITS. The guest sees the same ITS
//! with either.
//!
//! Every call is infallible: the backend reserves, when it is built, the
//! resources for `VitsConfig::max_events` mappings, so a guest cannot make
//! it run out half-way through a command. Calls arrive in command order;
//! [`VitsBackend::sync`] closes each batch (one per trap), and the guest
//! sees GITS_CREADR move only after it.

use alloc::vec::Vec;

use super::config::DeviceBacking;
use crate::ids::{EventId, VcpuIndex, VirtDeviceId, VirtIntId};

/// One event of one device, as the backend is told about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef {
    /// The guest's DeviceID.
    pub device: VirtDeviceId,
    /// What the partition config puts behind it.
    pub backing: DeviceBacking,
    /// The EventID (the same number the device writes).
    pub event: EventId,
}

/// What a vITS asks of the interrupt delivery below it.
pub trait VitsBackend {
    /// `event` now raises `intid` on `vcpu` (MAPTI/MAPI on a mapped
    /// collection, or MAPC mapping the collection the event names).
    fn map_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId);

    /// `event` no longer translates (MAPC unmapping its collection); a
    /// pending `intid` stays pending on `vcpu`, as it stays in the
    /// redistributor's pending table on hardware (IHI 0069, 5.3, MAPC).
    fn unmap_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId);

    /// `event` no longer translates and `intid` is no longer pending on
    /// `vcpu` (DISCARD, and MAPD dropping a device's events).
    fn discard_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId);

    /// `event` now targets `to` instead of `from`; if `intid` was pending on
    /// `from` it becomes pending on `to` instead, exactly once (MOVI, and
    /// MAPC retargeting a live collection).
    fn move_event(&mut self, event: EventRef, from: VcpuIndex, to: VcpuIndex, intid: VirtIntId);

    /// Make `intid` pending on `vcpu` (INT, or an MSI that translated).
    fn set_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId);

    /// Clear the pending state of `intid` on `vcpu` (CLEAR).
    fn clear_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId);

    /// Reload the configuration (enable, priority) of `intid` from the
    /// guest's LPI configuration table (INV).
    fn reload_config(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId);

    /// Reload the configuration of every LPI of `vcpu` (INVALL).
    fn reload_config_all(&mut self, vcpu: VcpuIndex);

    /// Move every LPI pending on `from` to `to` (MOVALL).
    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex);

    /// MOVALL within a budget: moves at most `budget` pending LPIs (at
    /// least one if any) and says whether `from` has none left. The vITS
    /// calls it again, with the same vCPUs and a fresh budget, on each
    /// later trap until it is done. The default does the whole move in one
    /// call, for backends whose move is bounded by other means.
    fn move_all_pending_within(
        &mut self,
        from: VcpuIndex,
        to: VcpuIndex,
        budget: usize,
    ) -> Progress {
        let _ = budget;
        self.move_all_pending(from, to);
        Progress::DONE
    }

    /// INVALL within a budget: reloads the configuration of at most
    /// `budget` LPIs of `vcpu` and says whether all are done; called again
    /// on later traps like [`Self::move_all_pending_within`]. The default
    /// does it in one call.
    fn reload_config_all_within(&mut self, vcpu: VcpuIndex, budget: usize) -> Progress {
        let _ = budget;
        self.reload_config_all(vcpu);
        Progress::DONE
    }

    /// End of a batch: make every earlier call's effect visible before the
    /// guest sees GITS_CREADR move (one per trap that processed commands).
    fn sync(&mut self);
}

/// How far a budgeted backend operation got in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Units of work done: LPIs or events visited (at most the budget).
    pub touched: usize,
    /// Whether the operation is complete.
    pub done: bool,
}

impl Progress {
    /// Complete in one unit.
    pub const DONE: Self = Self {
        touched: 1,
        done: true,
    };
}

/// One recorded backend call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendAction {
    /// [`VitsBackend::map_event`].
    Map {
        event: EventRef,
        vcpu: VcpuIndex,
        intid: VirtIntId,
    },
    /// [`VitsBackend::unmap_event`].
    Unmap {
        event: EventRef,
        vcpu: VcpuIndex,
        intid: VirtIntId,
    },
    /// [`VitsBackend::discard_event`].
    Discard {
        event: EventRef,
        vcpu: VcpuIndex,
        intid: VirtIntId,
    },
    /// [`VitsBackend::move_event`].
    Move {
        event: EventRef,
        from: VcpuIndex,
        to: VcpuIndex,
        intid: VirtIntId,
    },
    /// [`VitsBackend::set_pending`].
    SetPending {
        event: EventRef,
        vcpu: VcpuIndex,
        intid: VirtIntId,
    },
    /// [`VitsBackend::clear_pending`].
    ClearPending {
        event: EventRef,
        vcpu: VcpuIndex,
        intid: VirtIntId,
    },
    /// [`VitsBackend::reload_config`].
    ReloadConfig {
        event: EventRef,
        vcpu: VcpuIndex,
        intid: VirtIntId,
    },
    /// [`VitsBackend::reload_config_all`].
    ReloadConfigAll { vcpu: VcpuIndex },
    /// [`VitsBackend::move_all_pending`].
    MoveAllPending { from: VcpuIndex, to: VcpuIndex },
    /// [`VitsBackend::sync`].
    Sync,
}

impl BackendAction {
    /// The event the action names, if any.
    pub fn event(&self) -> Option<EventRef> {
        match *self {
            Self::Map { event, .. }
            | Self::Unmap { event, .. }
            | Self::Discard { event, .. }
            | Self::Move { event, .. }
            | Self::SetPending { event, .. }
            | Self::ClearPending { event, .. }
            | Self::ReloadConfig { event, .. } => Some(event),
            _ => None,
        }
    }

    /// Every vCPU the action names.
    pub fn vcpus(&self) -> [Option<VcpuIndex>; 2] {
        match *self {
            Self::Map { vcpu, .. }
            | Self::Unmap { vcpu, .. }
            | Self::Discard { vcpu, .. }
            | Self::SetPending { vcpu, .. }
            | Self::ClearPending { vcpu, .. }
            | Self::ReloadConfig { vcpu, .. }
            | Self::ReloadConfigAll { vcpu } => [Some(vcpu), None],
            Self::Move { from, to, .. } | Self::MoveAllPending { from, to } => {
                [Some(from), Some(to)]
            }
            Self::Sync => [None, None],
        }
    }
}

/// A backend that only records what it is told, for tests and fuzzing.
#[derive(Clone, Debug, Default)]
pub struct RecordingBackend {
    /// Every call, oldest first.
    pub actions: Vec<BackendAction>,
}

impl RecordingBackend {
    /// An empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the calls recorded so far and starts a new recording.
    pub fn take(&mut self) -> Vec<BackendAction> {
        core::mem::take(&mut self.actions)
    }
}

impl VitsBackend for RecordingBackend {
    fn map_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.actions.push(BackendAction::Map { event, vcpu, intid });
    }

    fn unmap_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.actions
            .push(BackendAction::Unmap { event, vcpu, intid });
    }

    fn discard_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.actions
            .push(BackendAction::Discard { event, vcpu, intid });
    }

    fn move_event(&mut self, event: EventRef, from: VcpuIndex, to: VcpuIndex, intid: VirtIntId) {
        self.actions.push(BackendAction::Move {
            event,
            from,
            to,
            intid,
        });
    }

    fn set_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.actions
            .push(BackendAction::SetPending { event, vcpu, intid });
    }

    fn clear_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.actions
            .push(BackendAction::ClearPending { event, vcpu, intid });
    }

    fn reload_config(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.actions
            .push(BackendAction::ReloadConfig { event, vcpu, intid });
    }

    fn reload_config_all(&mut self, vcpu: VcpuIndex) {
        self.actions.push(BackendAction::ReloadConfigAll { vcpu });
    }

    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex) {
        self.actions
            .push(BackendAction::MoveAllPending { from, to });
    }

    fn sync(&mut self) {
        self.actions.push(BackendAction::Sync);
    }
}
