//! The GICv4 backend of the vITS: what the vITS means for an event of a
//! passed-through device becomes VMAPTI, VMOVI, DISCARD, INT, CLEAR, INV
//! and VINVALL on the physical ITS (IHI 0069, 5.3 and 9: the GICv4
//! commands), gathered per trap and submitted as one batch closed by
//! VSYNC. Every other event goes, unchanged, to the inner backend
//! (software injection).
//!
//! Pending state of a vLPI lives in its vPE's virtual pending table, so
//! the ITS moves or clears it with the mapping and the backend never
//! tracks it: VMOVI carries it to the new vPE, DISCARD and CLEAR clear it,
//! INT sets it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::config::{PassthroughConfig, PassthroughConfigError, VpeConfig};
use super::sink::{PhysItsSink, SinkError};
use crate::gic::its_cmd::ItsCommand;
use crate::ids::{EventId, PhysDeviceId, PhysIntId, VcpuIndex, VirtIntId, VpeId};
use crate::vgic::LpiConfig;
use crate::vits::{DeviceBacking, EventRef, Progress, VitsBackend};

/// The GICv4 backend: passthrough events to the physical ITS through `S`,
/// every other event to the inner backend `F`.
#[derive(Debug)]
pub struct Gicv4Backend<S, F> {
    state: PassthroughState,
    sink: S,
    inner: F,
}

/// The backend's own state, which outlives a trap: the config, the
/// physical mappings it made, the open batch and the counters. Kept by the
/// partition between traps when the sink or inner backend is per-trap
/// (see [`Gicv4Backend::from_parts`]).
#[derive(Clone, Debug)]
pub struct PassthroughState {
    config: PassthroughConfig,
    mapped: BTreeMap<(PhysDeviceId, EventId), PhysMapping>,
    batch: Vec<ItsCommand>,
    touched: Vec<VpeId>,
    stats: PassthroughStats,
    logged: u16,
    /// An INVALL done in slices: the next mapping to reload, and whether
    /// an earlier slice reloaded one of its vPE's (so it ends with a
    /// VINVALL).
    invall: Option<((PhysDeviceId, EventId), bool)>,
}

/// Where one physical event translates to, as this backend mapped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysMapping {
    /// The vCPU whose vPE receives the vLPI.
    pub vcpu: VcpuIndex,
    /// That vCPU's vPE.
    pub vpe: VpeId,
    /// The vINTID (the guest's INTID).
    pub vintid: VirtIntId,
}

/// Counters, for logs and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassthroughStats {
    /// Intents refused because they named something outside the config.
    pub refused: u64,
    /// Batches the sink failed to take or finish.
    pub sink_failures: u64,
    /// vLPI property bytes the sink could not write.
    pub config_failures: u64,
    /// Batches submitted (each one queue round-trip).
    pub batches: u64,
    /// Batches submitted before the vITS's sync because `max_batch` was reached.
    pub early_flushes: u64,
    /// Physical commands submitted, VSYNCs included.
    pub commands: u64,
}

/// Why an intent on a passthrough event produced no physical command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The physical device is not one the partition owns.
    ForeignDevice {
        /// The device named.
        device: PhysDeviceId,
    },
    /// The vCPU has no vPE in the config.
    VcpuOutOfRange {
        /// The vCPU named.
        vcpu: VcpuIndex,
    },
    /// The EventID does not fit the device's physical ITT.
    EventOutOfRange {
        /// The device.
        device: PhysDeviceId,
        /// The event named.
        event: EventId,
    },
    /// The vINTID is not covered by the vPEs' tables.
    VintidOutOfRange {
        /// The vINTID named.
        vintid: VirtIntId,
    },
    /// The event has no physical mapping to act on.
    NotMapped {
        /// The device.
        device: PhysDeviceId,
        /// The event.
        event: EventId,
    },
}

impl Refusal {
    /// Bit of the "already logged" mask.
    pub(super) fn log_bit(&self) -> u16 {
        match self {
            Self::ForeignDevice { .. } => 1 << 0,
            Self::VcpuOutOfRange { .. } => 1 << 1,
            Self::EventOutOfRange { .. } => 1 << 2,
            Self::VintidOutOfRange { .. } => 1 << 3,
            Self::NotMapped { .. } => 1 << 4,
        }
    }
}

const LOGGED_SINK: u16 = 1 << 8;
const LOGGED_CONFIG: u16 = 1 << 9;

/// What the kernel must undo itself after [`Gicv4Backend::teardown`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeardownReport {
    /// Physical events DISCARDed.
    pub discarded: usize,
    /// Devices to unmap with MAPD V=0 (then SYNC), and whose ITTs to free.
    pub devices: Vec<PhysDeviceId>,
    /// vPEs to unmap with VMAPP V=0 at their RDbase, once non-resident.
    pub vpes: Vec<VpeConfig>,
    /// Doorbell LPIs to free (after the VMAPP V=0 of their vPE).
    pub doorbells: Vec<PhysIntId>,
    /// Whether the DISCARD batches reached the ITS (first failure).
    pub result: Result<(), SinkError>,
}

/// What a disabled or unreadable guest LPI configuration becomes.
const DISABLED: LpiConfig = LpiConfig {
    priority: 0xfc,
    enabled: false,
};

impl PassthroughState {
    /// Fresh state for `config`, or why the config is unusable. Reserves
    /// the batch up front: queuing a command never allocates.
    pub fn new(config: PassthroughConfig) -> Result<Self, PassthroughConfigError> {
        config.validate()?;
        let batch = Vec::with_capacity(config.max_batch);
        let touched = Vec::with_capacity(config.vpes.len());
        Ok(Self {
            config,
            mapped: BTreeMap::new(),
            batch,
            touched,
            stats: PassthroughStats::default(),
            logged: 0,
            invall: None,
        })
    }

    /// The configuration (the vPEs, doorbells and devices set up at boot).
    pub fn config(&self) -> &PassthroughConfig {
        &self.config
    }

    /// Records that the vPE of vCPU `index` now lives at `rdbase` (after
    /// a completed VMOVP sequence, [`Self::move_vpe`]).
    pub(super) fn set_rdbase(&mut self, index: usize, rdbase: crate::gic::its_cmd::RdBase) {
        if let Some(vpe) = self.config.vpes.get_mut(index) {
            vpe.rdbase = rdbase;
        }
    }

    /// How many physical events are mapped (VMAPTI'd and not discarded).
    pub fn mapped_count(&self) -> usize {
        self.mapped.len()
    }
}

impl<S: PhysItsSink, F: VitsBackend> Gicv4Backend<S, F> {
    /// A backend over `sink` and `inner` for `config`.
    pub fn new(
        config: PassthroughConfig,
        sink: S,
        inner: F,
    ) -> Result<Self, PassthroughConfigError> {
        Ok(Self::from_parts(
            PassthroughState::new(config)?,
            sink,
            inner,
        ))
    }

    /// A backend from state kept between traps, with this trap's sink and
    /// inner backend.
    pub fn from_parts(state: PassthroughState, sink: S, inner: F) -> Self {
        Self { state, sink, inner }
    }

    /// Gives the parts back, submitting first any batch still open (an
    /// MSI from [`crate::vits::Vits::send_msi`] is not followed by a sync).
    pub fn into_parts(mut self) -> (PassthroughState, S, F) {
        // A failure is counted and logged by `flush`; nothing more to do.
        let _ = self.flush();
        (self.state, self.sink, self.inner)
    }

    /// The configuration.
    pub fn config(&self) -> &PassthroughConfig {
        &self.state.config
    }

    /// The counters.
    pub fn stats(&self) -> PassthroughStats {
        self.state.stats
    }

    /// The physical mapping of `event` of `device`, if this backend made one.
    pub fn mapping(&self, device: PhysDeviceId, event: EventId) -> Option<PhysMapping> {
        self.state.mapped.get(&(device, event)).copied()
    }

    /// Every physical mapping this backend made, by device and event.
    pub fn mappings(&self) -> impl Iterator<Item = ((PhysDeviceId, EventId), PhysMapping)> + '_ {
        self.state
            .mapped
            .iter()
            .map(|(&key, &mapping)| (key, mapping))
    }

    /// The physical sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The physical sink, mutably.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// The backend of non-passthrough events.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The backend of non-passthrough events, mutably.
    pub fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }

    /// Submits the open batch, if any, closed by VSYNCs of the vPEs it
    /// touched: one queue round-trip. A failed batch is counted, logged
    /// once and dropped, not retried; the mappings keep what was asked, so
    /// a later teardown still DISCARDs them.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        let state = &mut self.state;
        let Some((&last, others)) = state.touched.split_last() else {
            return Ok(());
        };
        // IHI 0069, 5.3 (VSYNC): a VSYNC only waits for the effects on its
        // own vPE, so each vPE the batch touched gets one; the last closes
        // the batch. A batch that touched one vPE ends with one VSYNC.
        for &vpe in others {
            state.batch.push(ItsCommand::Vsync { vpe_id: vpe.get() });
        }
        let sync = ItsCommand::Vsync { vpe_id: last.get() };
        let count = state.batch.len().saturating_add(1) as u64;
        let result = self.sink.submit(&state.batch, sync);
        state.batch.clear();
        state.touched.clear();
        state.stats.batches = state.stats.batches.saturating_add(1);
        state.stats.commands = state.stats.commands.saturating_add(count);
        if let Err(error) = result {
            state.stats.sink_failures = state.stats.sink_failures.saturating_add(1);
            if state.logged & LOGGED_SINK == 0 {
                state.logged |= LOGGED_SINK;
                log::error!(
                    "partition {}: passthrough batch of {count} commands failed: {error}",
                    state.config.partition.get()
                );
            }
        }
        result
    }

    /// Partition reset or stop: DISCARDs every physical event still mapped
    /// and says what the kernel must undo after (MAPD V=0, VMAPP V=0, LPIs
    /// to free). The backend is then as after `new`, ready to restart.
    pub fn teardown(&mut self) -> TeardownReport {
        self.state.invall = None;
        let mut result = self.flush();
        let mapped = core::mem::take(&mut self.state.mapped);
        for (&(device, event), mapping) in &mapped {
            // IHI 0069, 5.3 (DISCARD): removes the translation and the
            // vLPI's pending state in its vPE's virtual pending table.
            let discard = ItsCommand::Discard {
                device_id: device.get(),
                event_id: event.get(),
            };
            if let Err(error) = self.push(discard, [Some(mapping.vpe), None]) {
                result = result.and(Err(error));
            }
        }
        result = result.and(self.flush());
        let config = &self.state.config;
        TeardownReport {
            discarded: mapped.len(),
            devices: config.devices.keys().copied().collect(),
            vpes: config.vpes.clone(),
            doorbells: config
                .vpes
                .iter()
                .map(|v| v.doorbell)
                .filter(|d| d.get() != crate::gic::its_cmd::NO_DOORBELL)
                .collect(),
            result,
        }
    }

    /// Queues `command`, which waits on the vPEs in `vpes`; flushes first
    /// if the batch and its VSYNCs would no longer fit `max_batch`.
    fn push(&mut self, command: ItsCommand, vpes: [Option<VpeId>; 2]) -> Result<(), SinkError> {
        let state = &self.state;
        let new_vpes = vpes
            .iter()
            .flatten()
            .filter(|vpe| !state.touched.contains(vpe))
            .count();
        let needed = state
            .batch
            .len()
            .saturating_add(1)
            .saturating_add(state.touched.len())
            .saturating_add(new_vpes);
        let mut result = Ok(());
        if needed > state.config.max_batch {
            self.state.stats.early_flushes = self.state.stats.early_flushes.saturating_add(1);
            result = self.flush();
        }
        let state = &mut self.state;
        state.batch.push(command);
        for vpe in vpes.into_iter().flatten() {
            if !state.touched.contains(&vpe) {
                state.touched.push(vpe);
            }
        }
        result
    }

    /// Counts `refusal` and logs the first of its kind.
    fn refuse(&mut self, refusal: Refusal) {
        let state = &mut self.state;
        state.stats.refused = state.stats.refused.saturating_add(1);
        let bit = refusal.log_bit();
        if state.logged & bit == 0 {
            state.logged |= bit;
            log::warn!(
                "partition {}: passthrough intent refused: {refusal:?}",
                state.config.partition.get()
            );
        }
    }

    /// The owned physical device behind `event`, checked against the
    /// config; `None` (and counted) if the event must not reach the ITS.
    fn owned(&mut self, device: PhysDeviceId, event: EventId) -> Option<PhysDeviceId> {
        match super::config::owned_event(&self.state.config.devices, device, event) {
            Ok(_) => Some(device),
            Err(refusal) => {
                self.refuse(refusal);
                None
            }
        }
    }

    /// The vPE of `vcpu`, or `None` (and counted).
    fn vpe(&mut self, vcpu: VcpuIndex) -> Option<VpeConfig> {
        let vpe = self.state.config.vpe_of(vcpu);
        if vpe.is_none() {
            self.refuse(Refusal::VcpuOutOfRange { vcpu });
        }
        vpe
    }

    /// The mapping of an owned event, or `None` (and counted).
    fn mapped(&mut self, device: PhysDeviceId, event: EventId) -> Option<PhysMapping> {
        let mapping = self.state.mapped.get(&(device, event)).copied();
        if mapping.is_none() {
            self.refuse(Refusal::NotMapped { device, event });
        }
        mapping
    }

    /// Copies the guest's configuration of `vintid` into the VM's vLPI
    /// property table.
    fn load_config(&mut self, vcpu: VcpuIndex, vintid: VirtIntId) {
        load_config(&mut self.sink, &mut self.state, vcpu, vintid);
    }

    /// Queues `command` for an event mapped on `vpe`; a sink failure is
    /// already counted and logged by `flush`.
    fn queue(&mut self, command: ItsCommand, vpes: [Option<VpeId>; 2]) {
        let _ = self.push(command, vpes);
    }

    /// Removes the physical mapping of an owned event, if there is one.
    fn discard(&mut self, device: PhysDeviceId, event: EventId) {
        if let Some(mapping) = self.state.mapped.remove(&(device, event)) {
            let command = ItsCommand::Discard {
                device_id: device.get(),
                event_id: event.get(),
            };
            self.queue(command, [Some(mapping.vpe), None]);
        }
    }
}

/// Copies the guest's configuration of `vintid` (from `vcpu`'s LPI
/// property table) into the VM's vLPI property table, which is what the
/// redistributor reads for a vLPI (IHI 0069, 9: GICR_VPROPBASER).
fn load_config<S: PhysItsSink>(
    sink: &mut S,
    state: &mut PassthroughState,
    vcpu: VcpuIndex,
    vintid: VirtIntId,
) {
    let config = sink.guest_lpi_config(vcpu, vintid).unwrap_or(DISABLED);
    if let Err(error) = sink.set_vlpi_config(vintid, config) {
        config_failed(state, error);
    }
}

/// Counts a vLPI property byte the sink could not write; logs the first.
fn config_failed(state: &mut PassthroughState, error: SinkError) {
    state.stats.config_failures = state.stats.config_failures.saturating_add(1);
    if state.logged & LOGGED_CONFIG == 0 {
        state.logged |= LOGGED_CONFIG;
        log::error!(
            "partition {}: vLPI configuration not written: {error}",
            state.config.partition.get()
        );
    }
}

/// The physical device behind a passthrough event, `None` for the others.
pub(super) fn passthrough(event: &EventRef) -> Option<PhysDeviceId> {
    match event.backing {
        DeviceBacking::Passthrough(device) => Some(device),
        DeviceBacking::Emulated | DeviceBacking::Nothing => None,
    }
}

impl<S: PhysItsSink, F: VitsBackend> VitsBackend for Gicv4Backend<S, F> {
    fn map_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        let Some(device) = passthrough(&event) else {
            return self.inner.map_event(event, vcpu, intid);
        };
        let Some(device) = self.owned(device, event.event) else {
            return;
        };
        let Some(target) = self.vpe(vcpu) else {
            return;
        };
        if !self.state.config.is_vlpi(intid) {
            return self.refuse(Refusal::VintidOutOfRange { vintid: intid });
        }
        let mapping = PhysMapping {
            vcpu,
            vpe: target.vpe,
            vintid: intid,
        };
        if self.state.mapped.get(&(device, event.event)) == Some(&mapping) {
            return;
        }
        // The vITS never maps a live event twice; if this one is, drop the
        // old translation first, as VMAPTI over a live one is a command
        // error (IHI 0069, 5.3, VMAPTI).
        self.discard(device, event.event);
        self.load_config(vcpu, intid);
        // IHI 0069, 5.3 (VMAPTI): the device's next MSI of this event
        // becomes vINTID on the vPE, resident or not (then the doorbell
        // tells the hypervisor). The device was MAPD'd by the kernel and
        // stays so: after a DISCARD the same VMAPTI gives direct delivery
        // again with no change to the endpoint's MSI programming.
        let command = ItsCommand::Vmapti {
            device_id: device.get(),
            event_id: event.event.get(),
            vpe_id: target.vpe.get(),
            vintid: intid.get(),
            db_intid: target.doorbell.get(),
        };
        self.state.mapped.insert((device, event.event), mapping);
        self.queue(command, [Some(target.vpe), None]);
    }

    /// The vITS keeps a pending LPI pending across MAPC V=0, as a physical
    /// redistributor keeps it in its pending table. GICv4 cannot remove a
    /// vLPI's translation and keep its pending bit: DISCARD clears it in
    /// the vPE's virtual pending table (IHI 0069, 5.3, DISCARD), and no
    /// other command stops the device's MSIs from reaching the vPE. The
    /// translation must go (the guest asked for it), so a vLPI pending at
    /// this instant is dropped. Guests unmap a collection after moving its
    /// interrupts away (CPU offline), so nothing is pending then in
    /// practice.
    fn unmap_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        let Some(device) = passthrough(&event) else {
            return self.inner.unmap_event(event, vcpu, intid);
        };
        if let Some(device) = self.owned(device, event.event) {
            self.discard(device, event.event);
        }
    }

    fn discard_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        let Some(device) = passthrough(&event) else {
            return self.inner.discard_event(event, vcpu, intid);
        };
        if let Some(device) = self.owned(device, event.event) {
            self.discard(device, event.event);
        }
    }

    fn move_event(&mut self, event: EventRef, from: VcpuIndex, to: VcpuIndex, intid: VirtIntId) {
        let Some(device) = passthrough(&event) else {
            return self.inner.move_event(event, from, to, intid);
        };
        let Some(device) = self.owned(device, event.event) else {
            return;
        };
        let Some(target) = self.vpe(to) else {
            return;
        };
        let Some(mapping) = self.mapped(device, event.event) else {
            return;
        };
        let moved = PhysMapping {
            vcpu: to,
            vpe: target.vpe,
            ..mapping
        };
        self.state.mapped.insert((device, event.event), moved);
        if mapping.vpe == target.vpe {
            return;
        }
        // IHI 0069, 5.3 (VMOVI): the event now targets the new vPE and a
        // pending vLPI moves from the old vPE's pending table to the new
        // one's, exactly once. Both vPEs are synced at the end of the batch.
        let command = ItsCommand::Vmovi {
            device_id: device.get(),
            event_id: event.event.get(),
            vpe_id: target.vpe.get(),
            db_intid: target.doorbell.get(),
            db_valid: true,
        };
        self.queue(command, [Some(mapping.vpe), Some(target.vpe)]);
    }

    fn set_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        let Some(device) = passthrough(&event) else {
            return self.inner.set_pending(event, vcpu, intid);
        };
        self.event_command(device, event.event, vcpu, |device_id, event_id| {
            // IHI 0069, 5.3 (INT): sets the vLPI pending on the mapped vPE.
            ItsCommand::Int {
                device_id,
                event_id,
            }
        });
    }

    fn clear_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        let Some(device) = passthrough(&event) else {
            return self.inner.clear_pending(event, vcpu, intid);
        };
        self.event_command(device, event.event, vcpu, |device_id, event_id| {
            // IHI 0069, 5.3 (CLEAR): clears the vLPI's pending state.
            ItsCommand::Clear {
                device_id,
                event_id,
            }
        });
    }

    fn reload_config(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        let Some(device) = passthrough(&event) else {
            return self.inner.reload_config(event, vcpu, intid);
        };
        let Some(device) = self.owned(device, event.event) else {
            return;
        };
        if self.vpe(vcpu).is_none() {
            return;
        }
        let Some(mapping) = self.mapped(device, event.event) else {
            return;
        };
        self.load_config(vcpu, mapping.vintid);
        // IHI 0069, 5.3 (INV): the redistributor rereads the vLPI's byte
        // from the VM's vLPI property table.
        let command = ItsCommand::Inv {
            device_id: device.get(),
            event_id: event.event.get(),
        };
        self.queue(command, [Some(mapping.vpe), None]);
    }

    fn reload_config_all(&mut self, vcpu: VcpuIndex) {
        // The bounded walk with a budget no walk reaches: one slice does it
        // all (and finishes a walk a bounded INVALL left in progress).
        let progress = self.reload_config_all_within(vcpu, usize::MAX);
        debug_assert!(progress.done);
    }

    /// MOVALL moves pending LPIs between redistributors and leaves the
    /// mappings alone. The vITS retargets mappings only through MAPC,
    /// which calls `move_event` for every event of the collection; for a
    /// passthrough event that is a VMOVI, which moves its pending vLPI with
    /// it (IHI 0069, 5.3, VMOVI). So when a guest does what the
    /// architecture asks (MAPC retarget, then MOVALL), nothing is left on
    /// the old vPE. A guest that issues MOVALL without retargeting keeps
    /// its passthrough events mapped to the old vPE: GICv4 has no command
    /// that moves a vLPI's pending bit without its mapping, so the pending
    /// vLPI stays there and is delivered to the old vCPU, late but not lost.
    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex) {
        self.inner.move_all_pending(from, to);
    }

    fn move_all_pending_within(
        &mut self,
        from: VcpuIndex,
        to: VcpuIndex,
        budget: usize,
    ) -> Progress {
        self.inner.move_all_pending_within(from, to, budget)
    }

    /// INVALL in slices: the inner backend's part first, then the vPE's
    /// passthrough mappings from where the last slice stopped, one unit
    /// each (a vLPI property byte copied), then one VINVALL.
    fn reload_config_all_within(&mut self, vcpu: VcpuIndex, budget: usize) -> Progress {
        let resumed = self.state.invall.take();
        let mut touched = 0;
        if resumed.is_none() {
            let inner = self.inner.reload_config_all_within(vcpu, budget);
            if !inner.done {
                return inner;
            }
            touched = inner.touched;
        }
        let Some(target) = self.vpe(vcpu) else {
            return Progress {
                touched: touched.max(1),
                done: true,
            };
        };
        let (start, mut any) = resumed.unwrap_or(((PhysDeviceId::new(0), EventId::new(0)), false));
        let mut failure = None;
        for (&key, mapping) in self.state.mapped.range(start..) {
            if touched >= budget {
                self.state.invall = Some((key, any));
                break;
            }
            touched += 1;
            if mapping.vpe != target.vpe {
                continue;
            }
            any = true;
            let config = self
                .sink
                .guest_lpi_config(vcpu, mapping.vintid)
                .unwrap_or(DISABLED);
            if let Err(error) = self.sink.set_vlpi_config(mapping.vintid, config) {
                failure = Some(error);
            }
        }
        if let Some(error) = failure {
            config_failed(&mut self.state, error);
        }
        let done = self.state.invall.is_none();
        if done && any {
            // IHI 0069, 5.3 (VINVALL): the vPE's redistributor rereads
            // every vLPI configuration.
            let command = ItsCommand::Vinvall {
                vpe_id: target.vpe.get(),
            };
            self.queue(command, [Some(target.vpe), None]);
        }
        Progress {
            touched: touched.max(1),
            done,
        }
    }

    fn sync(&mut self) {
        // Failures are counted and logged by `flush`; the vITS's CREADR
        // still advances, as a hardware ITS's does past a failed command.
        let _ = self.flush();
        self.inner.sync();
    }
}

impl<S: PhysItsSink, F: VitsBackend> Gicv4Backend<S, F> {
    /// INT or CLEAR on an owned, mapped event.
    fn event_command(
        &mut self,
        device: PhysDeviceId,
        event: EventId,
        vcpu: VcpuIndex,
        build: impl FnOnce(u32, u32) -> ItsCommand,
    ) {
        let Some(device) = self.owned(device, event) else {
            return;
        };
        if self.vpe(vcpu).is_none() {
            return;
        }
        let Some(mapping) = self.mapped(device, event) else {
            return;
        };
        self.queue(build(device.get(), event.get()), [Some(mapping.vpe), None]);
    }
}
