//! A reference model of a vITS backend, for tests, fuzzing and the bench:
//! it keeps the routes the vITS asked for and the pending LPIs of each
//! vCPU's virtual redistributor as plain sets, so a test can compare what
//! the vITS (or the GICv4 backend in front of it) meant against a model
//! whose state it can read. The running hypervisor injects through the
//! vGIC instead (`kernel/vits.rs`).
//!
//! Pending state is a set per vCPU, so an LPI is pending at most once on a
//! vCPU; every move removes it from the source before adding it to the
//! target, so nothing is lost and nothing fires twice.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::backend::{EventRef, Progress, VitsBackend};
use crate::ids::{EventId, VcpuIndex, VirtDeviceId, VirtIntId};

/// Where an event's MSI goes: what a physical LPI handler looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The vCPU whose redistributor receives the LPI.
    pub vcpu: VcpuIndex,
    /// The guest LPI.
    pub intid: VirtIntId,
}

/// Model pending state and routes for one vITS (tests, fuzzing, bench).
#[derive(Clone, Debug)]
pub struct ModelBackend {
    routes: BTreeMap<(VirtDeviceId, EventId), Route>,
    pending: Vec<BTreeSet<VirtIntId>>,
    max_pending_per_vcpu: usize,
    overflows: u64,
    config_reloads: u64,
    syncs: u64,
}

impl ModelBackend {
    /// A backend for `num_vcpus` vCPUs holding at most
    /// `max_pending_per_vcpu` pending LPIs per vCPU.
    pub fn new(num_vcpus: u16, max_pending_per_vcpu: usize) -> Self {
        Self {
            routes: BTreeMap::new(),
            pending: (0..num_vcpus).map(|_| BTreeSet::new()).collect(),
            max_pending_per_vcpu,
            overflows: 0,
            config_reloads: 0,
            syncs: 0,
        }
    }

    /// Where `event` of `device` goes, if it is mapped.
    pub fn route(&self, device: VirtDeviceId, event: EventId) -> Option<Route> {
        self.routes.get(&(device, event)).copied()
    }

    /// Number of live routes.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Whether `intid` is pending on `vcpu`.
    pub fn is_pending(&self, vcpu: VcpuIndex, intid: VirtIntId) -> bool {
        self.pending
            .get(usize::from(vcpu.get()))
            .is_some_and(|set| set.contains(&intid))
    }

    /// The LPIs pending on `vcpu`, lowest first.
    pub fn pending(&self, vcpu: VcpuIndex) -> impl Iterator<Item = VirtIntId> + '_ {
        self.pending
            .get(usize::from(vcpu.get()))
            .into_iter()
            .flat_map(|set| set.iter().copied())
    }

    /// Number of LPIs pending over all vCPUs.
    pub fn pending_count(&self) -> usize {
        self.pending.iter().map(BTreeSet::len).sum()
    }

    /// The vGIC acknowledges `intid` on `vcpu`: it stops being pending.
    /// Returns whether it was.
    pub fn acknowledge(&mut self, vcpu: VcpuIndex, intid: VirtIntId) -> bool {
        self.pending
            .get_mut(usize::from(vcpu.get()))
            .is_some_and(|set| set.remove(&intid))
    }

    /// Pending LPIs refused because a vCPU's set was full.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// INV and INVALL requests seen (the vGIC rereads the property table).
    pub fn config_reloads(&self) -> u64 {
        self.config_reloads
    }

    /// Batches closed by the vITS.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Makes `intid` pending on `vcpu`. Only new pending state counts
    /// against the cap: a move relocates an LPI that is already counted,
    /// so the total stays below `num_vcpus * max_pending_per_vcpu` and a
    /// move never drops one.
    fn add_pending(&mut self, vcpu: VcpuIndex, intid: VirtIntId, is_move: bool) {
        let cap = self.max_pending_per_vcpu;
        let Some(set) = self.pending.get_mut(usize::from(vcpu.get())) else {
            return;
        };
        if set.contains(&intid) {
            return;
        }
        if !is_move && set.len() >= cap {
            self.overflows = self.overflows.saturating_add(1);
            return;
        }
        set.insert(intid);
    }

    fn remove_pending(&mut self, vcpu: VcpuIndex, intid: VirtIntId) -> bool {
        self.pending
            .get_mut(usize::from(vcpu.get()))
            .is_some_and(|set| set.remove(&intid))
    }
}

impl VitsBackend for ModelBackend {
    fn map_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.routes
            .insert((event.device, event.event), Route { vcpu, intid });
    }

    fn unmap_event(&mut self, event: EventRef, _vcpu: VcpuIndex, _intid: VirtIntId) {
        // The pending state stays in the vCPU's redistributor.
        self.routes.remove(&(event.device, event.event));
    }

    fn discard_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.routes.remove(&(event.device, event.event));
        self.remove_pending(vcpu, intid);
    }

    fn move_event(&mut self, event: EventRef, from: VcpuIndex, to: VcpuIndex, intid: VirtIntId) {
        self.routes
            .insert((event.device, event.event), Route { vcpu: to, intid });
        if usize::from(to.get()) < self.pending.len() && self.remove_pending(from, intid) {
            self.add_pending(to, intid, true);
        }
    }

    fn set_pending(&mut self, _event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.add_pending(vcpu, intid, false);
    }

    fn clear_pending(&mut self, _event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.remove_pending(vcpu, intid);
    }

    fn reload_config(&mut self, _event: EventRef, _vcpu: VcpuIndex, _intid: VirtIntId) {
        self.config_reloads = self.config_reloads.saturating_add(1);
    }

    fn reload_config_all(&mut self, _vcpu: VcpuIndex) {
        self.config_reloads = self.config_reloads.saturating_add(1);
    }

    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex) {
        if from == to || usize::from(to.get()) >= self.pending.len() {
            return;
        }
        let Some(set) = self.pending.get_mut(usize::from(from.get())) else {
            return;
        };
        let moved = core::mem::take(set);
        for intid in moved {
            self.add_pending(to, intid, true);
        }
    }

    /// Moves the lowest `budget` LPIs pending on `from`; done when none is
    /// left there.
    fn move_all_pending_within(
        &mut self,
        from: VcpuIndex,
        to: VcpuIndex,
        budget: usize,
    ) -> Progress {
        if from == to || usize::from(to.get()) >= self.pending.len() {
            return Progress::DONE;
        }
        let Some(set) = self.pending.get_mut(usize::from(from.get())) else {
            return Progress::DONE;
        };
        let moved: Vec<VirtIntId> = set.iter().copied().take(budget).collect();
        for intid in &moved {
            set.remove(intid);
        }
        let done = set.is_empty();
        for &intid in &moved {
            self.add_pending(to, intid, true);
        }
        Progress {
            touched: moved.len(),
            done,
        }
    }

    fn sync(&mut self) {
        self.syncs = self.syncs.saturating_add(1);
    }
}

/// A [`ModelBackend`] that counts what each call touches: one per event
/// call, one per INVALL, one per LPI a MOVALL moves (at least one). The
/// bounded-work host tests and the flood bench (`cargo xtask bench`) read
/// the count per trap with [`CountingModel::take`].
pub struct CountingModel {
    /// The model behind the count.
    pub model: ModelBackend,
    touched: usize,
}

impl CountingModel {
    /// A counting model of `num_vcpus` vCPUs holding at most `max_pending`
    /// pending LPIs.
    pub fn new(num_vcpus: u16, max_pending: usize) -> Self {
        Self {
            model: ModelBackend::new(num_vcpus, max_pending),
            touched: 0,
        }
    }

    /// What was touched since the last call.
    pub fn take(&mut self) -> usize {
        core::mem::take(&mut self.touched)
    }
}

impl VitsBackend for CountingModel {
    fn map_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.touched += 1;
        self.model.map_event(e, v, i);
    }
    fn unmap_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.touched += 1;
        self.model.unmap_event(e, v, i);
    }
    fn discard_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.touched += 1;
        self.model.discard_event(e, v, i);
    }
    fn move_event(&mut self, e: EventRef, from: VcpuIndex, to: VcpuIndex, i: VirtIntId) {
        self.touched += 1;
        self.model.move_event(e, from, to, i);
    }
    fn set_pending(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.touched += 1;
        self.model.set_pending(e, v, i);
    }
    fn clear_pending(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.touched += 1;
        self.model.clear_pending(e, v, i);
    }
    fn reload_config(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.touched += 1;
        self.model.reload_config(e, v, i);
    }
    fn reload_config_all(&mut self, v: VcpuIndex) {
        self.touched += 1;
        self.model.reload_config_all(v);
    }
    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex) {
        self.touched += self.model.pending(from).count().max(1);
        self.model.move_all_pending(from, to);
    }
    fn move_all_pending_within(
        &mut self,
        from: VcpuIndex,
        to: VcpuIndex,
        budget: usize,
    ) -> Progress {
        let progress = self.model.move_all_pending_within(from, to, budget);
        self.touched += progress.touched.max(1);
        progress
    }
    fn sync(&mut self) {
        self.model.sync();
    }
}

/// A backend that does nothing but count its calls: the vITS alone, for
/// timings (`cargo xtask bench`) and for tests whose heap may fail.
#[derive(Debug, Default)]
pub struct NullBackend {
    /// Calls other than `sync`.
    pub calls: u64,
    /// `sync` calls: one per trap that processed commands.
    pub syncs: u64,
}

impl VitsBackend for NullBackend {
    fn map_event(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {
        self.calls += 1;
    }
    fn unmap_event(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {
        self.calls += 1;
    }
    fn discard_event(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {
        self.calls += 1;
    }
    fn move_event(&mut self, _: EventRef, _: VcpuIndex, _: VcpuIndex, _: VirtIntId) {
        self.calls += 1;
    }
    fn set_pending(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {
        self.calls += 1;
    }
    fn clear_pending(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {
        self.calls += 1;
    }
    fn reload_config(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {
        self.calls += 1;
    }
    fn reload_config_all(&mut self, _: VcpuIndex) {
        self.calls += 1;
    }
    fn move_all_pending(&mut self, _: VcpuIndex, _: VcpuIndex) {
        self.calls += 1;
    }
    fn sync(&mut self) {
        self.syncs += 1;
    }
}
