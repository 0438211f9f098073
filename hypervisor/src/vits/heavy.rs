//! Commands whose work grows with the events of the vITS (issue 12): a
//! MAPC that maps, retargets or unmaps a collection, a MAPD that drops a
//! device with events, MOVALL and INVALL. Each may touch every event (up to
//! `max_events`, and on GICv4 or the GICv3 software path each event is a
//! physical ITS command), and EL2 is not preemptible, so such a command
//! runs in slices of the per-trap work budget.
//!
//! A command is validated and changes the translation state when it
//! starts, as any command does; what it still owes the backend (the events
//! it has not yet told it about) is kept here with a cursor, and continued
//! on the next trap before anything else. GITS_CREADR stays on the command
//! until it is done (IHI 0069, the ITS command interface: a command is
//! consumed when the ITS has finished with it), so a SYNC behind it
//! completes only after it, and the guest's view when it completes is the
//! one an unbounded execution gives.

use super::backend::{EventRef, Progress, VitsBackend};
use super::config::DeviceBacking;
use super::state::{EventEntry, TranslationState};
use crate::ids::{EventId, VcpuIndex, VirtCollectionId, VirtDeviceId};
use crate::mm::Ipa;

/// What a MAPC does to each event of its collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// The collection was not mapped: its events now go to this vCPU.
    Map(VcpuIndex),
    /// The collection moved between vCPUs: each event moves with it.
    Retarget { from: VcpuIndex, to: VcpuIndex },
    /// The collection was on this vCPU and is unmapped now.
    Unmap(VcpuIndex),
}

/// A command that has started and owes the backend more work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Heavy {
    /// MAPC: the events naming `icid` from `next` on (DeviceID, EventID
    /// order), of which `left` remain.
    Collection {
        icid: VirtCollectionId,
        change: Change,
        next: (VirtDeviceId, EventId),
        left: usize,
    },
    /// MAPD of a mapped device: its events from `next` on are discarded
    /// one by one (the device translates those not yet discarded until the
    /// command is done), then the device is unmapped, and mapped again
    /// with a new ITT if `remap` says how.
    Device {
        device: VirtDeviceId,
        next: EventId,
        remap: Option<(DeviceBacking, u8, Ipa)>,
    },
    /// MOVALL from one vCPU to another (the backend keeps what is left).
    MoveAll { from: VcpuIndex, to: VcpuIndex },
    /// INVALL of a vCPU (the backend keeps what is left).
    InvalidateAll { vcpu: VcpuIndex },
}

/// A heavy command in progress and where it sits in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InProgress {
    /// The work still owed.
    pub heavy: Heavy,
    /// Its queue offset: GITS_CREADR moves past it when it is done.
    pub offset: u64,
}

impl Heavy {
    /// Does at most `budget` units of the work (one per event visited, or
    /// per LPI the backend reports), and returns the units done and what
    /// is left, if anything.
    pub(super) fn advance<B: VitsBackend + ?Sized>(
        self,
        state: &mut TranslationState,
        backend: &mut B,
        budget: usize,
    ) -> (usize, Option<Self>) {
        if budget == 0 {
            return (0, Some(self));
        }
        match self {
            Self::Collection {
                icid,
                change,
                next,
                left,
            } => walk_collection(state, backend, budget, icid, change, next, left),
            Self::Device {
                device,
                next,
                remap,
            } => {
                let (used, next) = walk_device(state, backend, budget, device, next);
                match next {
                    Some(next) => (
                        used,
                        Some(Self::Device {
                            device,
                            next,
                            remap,
                        }),
                    ),
                    None => {
                        // No event left: unmapping the device is cheap now.
                        state.remove_device(device);
                        if let Some((backing, event_bits, itt_addr)) = remap {
                            // Needs no new memory: the device just removed
                            // left its place, its sorted-list entry and its
                            // index slot free for it.
                            let remapped =
                                state.insert_device(device, backing, event_bits, itt_addr);
                            debug_assert!(remapped.is_ok(), "remap after unmap allocated");
                        }
                        (used, None)
                    }
                }
            }
            Self::MoveAll { from, to } => {
                let progress = backend.move_all_pending_within(from, to, budget);
                finish(progress, budget, self)
            }
            Self::InvalidateAll { vcpu } => {
                let progress = backend.reload_config_all_within(vcpu, budget);
                finish(progress, budget, self)
            }
        }
    }

    /// Does all of the work, whatever it costs: for a table dropped or a
    /// reset while the command is in progress, themselves unbounded.
    pub(super) fn complete<B: VitsBackend + ?Sized>(
        self,
        state: &mut TranslationState,
        backend: &mut B,
    ) {
        let mut rest = Some(self);
        while let Some(heavy) = rest {
            rest = heavy.advance(state, backend, usize::MAX).1;
        }
    }
}

/// The units and the remainder of a backend-kept operation.
fn finish(progress: Progress, budget: usize, heavy: Heavy) -> (usize, Option<Heavy>) {
    // A backend that reports nothing done still used its call.
    let used = progress.touched.clamp(1, budget);
    (used, (!progress.done).then_some(heavy))
}

/// The MAPC walk: tells the backend about each event naming `icid`.
fn walk_collection<B: VitsBackend + ?Sized>(
    state: &TranslationState,
    backend: &mut B,
    budget: usize,
    icid: VirtCollectionId,
    change: Change,
    next: (VirtDeviceId, EventId),
    mut left: usize,
) -> (usize, Option<Heavy>) {
    let mut used = 0usize;
    let (first_device, first_event) = next;
    for (device, entry) in state.devices().skip_while(|(id, _)| *id < first_device) {
        let first = if device == first_device {
            first_event
        } else {
            EventId::new(0)
        };
        for (event, mapping) in entry.events_from(first) {
            if left == 0 {
                return (used, None);
            }
            if used >= budget {
                let rest = Heavy::Collection {
                    icid,
                    change,
                    next: (device, event),
                    left,
                };
                return (used, Some(rest));
            }
            used += 1;
            if mapping.icid != icid {
                continue;
            }
            left -= 1;
            let event = EventRef {
                device,
                backing: entry.backing,
                event,
            };
            tell(backend, change, event, mapping);
        }
    }
    (used, None)
}

/// What one event of a MAPC means to the backend.
fn tell<B: VitsBackend + ?Sized>(
    backend: &mut B,
    change: Change,
    event: EventRef,
    mapping: EventEntry,
) {
    match change {
        Change::Map(vcpu) => backend.map_event(event, vcpu, mapping.intid),
        // Retargeting a live collection moves each of its events, and with
        // it any pending state, so a later MOVALL finds nothing left behind
        // and nothing is lost in between.
        Change::Retarget { from, to } => backend.move_event(event, from, to, mapping.intid),
        // IHI 0069, 5.3 (MAPC): a pending LPI stays pending.
        Change::Unmap(vcpu) => backend.unmap_event(event, vcpu, mapping.intid),
    }
}

/// The MAPD walk: discards the device's events from `next` on, as DISCARD
/// would, removing each from the state (one unit each, where dropping the
/// whole device at once would cost all its events in one trap).
fn walk_device<B: VitsBackend + ?Sized>(
    state: &mut TranslationState,
    backend: &mut B,
    budget: usize,
    device: VirtDeviceId,
    mut next: EventId,
) -> (usize, Option<EventId>) {
    let mut used = 0usize;
    loop {
        let Some(entry) = state.device(device) else {
            return (used, None);
        };
        let backing = entry.backing;
        let Some((event, mapping)) = entry.events_from(next).next() else {
            return (used, None);
        };
        if used >= budget {
            return (used, Some(event));
        }
        used += 1;
        state.remove_event(device, event);
        if let Some(vcpu) = state.collection(mapping.icid) {
            let event = EventRef {
                device,
                backing,
                event,
            };
            backend.discard_event(event, vcpu, mapping.intid);
        }
        match event.get().checked_add(1) {
            Some(after) => next = EventId::new(after),
            None => return (used, None),
        }
    }
}
