//! The GICv3 software path of passthrough MSIs: the vITS backend for
//! passed-through devices where the ITS has no virtual LPIs. Each event the
//! guest maps on an owned device gets a physical LPI on the collection of
//! its target vCPU's physical CPU (MAPD with a hypervisor ITT once per
//! device and life, then MAPTI + INV, each batch closed by SYNC); the
//! kernel routes that LPI, taken at EL2, to the vINTID in the partition's
//! vGIC (one exit per MSI). MOVI follows the guest's moves; DISCARD and
//! unmap free the LPI and its route; [`RoutedState::teardown`] removes
//! everything the guest made (DISCARD, MAPD V=0, ITTs given back).
//!
//! The isolation rule is the GICv4 backend's ([`super::owned_event`]):
//! only devices of the config are named, only EventIDs their physical ITT
//! holds. What the vGIC sees (pending state, configuration) always goes on
//! to the inner backend, software injection, which delivers the routed LPIs.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::backend::{passthrough, Refusal};
use super::config::{owned_event, PassthroughDevice};
use super::sink::{PhysItsQueue, SinkError};
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::ids::{EventId, PartitionId, PhysDeviceId, PhysIntId, VcpuIndex, VirtIntId};
use crate::mm::PhysAddr;
use crate::vits::{EventRef, Progress, VitsBackend};

/// What the kernel fixes for one partition's software path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedConfig {
    /// The partition.
    pub partition: PartitionId,
    /// Its name, for the log lines.
    pub name: String,
    /// The physical devices it owns, with the EventID bits of the ITT the
    /// software path gives each.
    pub devices: BTreeMap<PhysDeviceId, PassthroughDevice>,
}

/// A collection on the physical ITS: one per physical CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collection {
    /// Its ICID.
    pub icid: u16,
    /// Its redistributor (what a SYNC after a command on it waits for).
    pub rdbase: RdBase,
}

/// The kernel's resources the software path takes and gives back (the
/// LPI allocator, ITT memory, the routing table the EL2 IRQ path reads).
pub trait LpiRouting {
    /// Makes the device table cover `device` (a level-2 page if indirect).
    fn prepare_device(&mut self, device: PhysDeviceId) -> bool;
    /// Memory for the ITT of a device with `event_id_bits` EventID bits.
    fn allocate_itt(&mut self, event_id_bits: u8) -> Option<PhysAddr>;
    /// Gives back an ITT [`Self::allocate_itt`] returned.
    fn free_itt(&mut self, itt: PhysAddr, event_id_bits: u8);
    /// A free physical LPI, configured enabled.
    fn allocate_lpi(&mut self) -> Option<PhysIntId>;
    /// Gives back an LPI (disabled).
    fn free_lpi(&mut self, lpi: PhysIntId);
    /// Points `lpi` at `target` (or nowhere) for the EL2 IRQ path; `false`
    /// if the routing table cannot hold `lpi`.
    fn set_route(&mut self, lpi: PhysIntId, target: Option<(VcpuIndex, VirtIntId)>) -> bool;
    /// The collection of the physical CPU that runs `vcpu`.
    fn collection(&self, vcpu: VcpuIndex) -> Option<Collection>;
    /// The redistributor the device-wide commands (MAPD, DISCARD) sync on.
    fn home(&self) -> Option<RdBase>;
}

/// A passthrough event as mapped on the physical ITS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutedEvent {
    /// Its physical LPI.
    pub lpi: PhysIntId,
    /// The vCPU it targets.
    pub vcpu: VcpuIndex,
    /// The guest's INTID.
    pub vintid: VirtIntId,
}

/// Why a guest's mapping produced no physical LPI (logged; the event is
/// then not delivered, and nothing of it stays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The isolation check refused it.
    Refused(Refusal),
    /// The vCPU has no physical CPU with a collection.
    NoCollection,
    /// No redistributor to sync device-wide commands on.
    NoHome,
    /// The device table could not cover the device.
    DeviceTable,
    /// No memory for the device's ITT.
    NoItt,
    /// No physical LPI left.
    NoLpi,
    /// The routing table cannot hold the LPI.
    NoRoute,
    /// The physical ITS refused or did not finish the commands.
    Sink(SinkError),
}

/// Counters, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutedStats {
    /// Intents refused by the isolation check.
    pub refused: u64,
    /// Mappings that failed for lack of a resource or a queue failure.
    pub failures: u64,
    /// Events given a physical LPI (each a guest MAPTI or MAPC on the path).
    pub maps: u64,
}

impl RoutedStats {
    /// Counts one failed mapping or move; the level to log it at (error
    /// for the first and each power of two) and its number.
    fn failed(&mut self) -> (log::Level, u64) {
        self.failures = self.failures.saturating_add(1);
        let n = self.failures;
        (
            crate::console::log_limit::warning_level(n, log::Level::Error),
            n,
        )
    }
}

/// What a teardown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutedTeardown {
    /// Events DISCARDed (their LPIs and routes freed).
    pub discarded: usize,
    /// Devices unmapped (MAPD V=0), their ITTs freed.
    pub unmapped: usize,
    /// Devices whose MAPD V=0 failed: their ITTs stay allocated (the ITS
    /// may still use them), never reused.
    pub kept_itts: usize,
}

/// The software path's state for one partition, kept across traps.
#[derive(Clone, Debug)]
pub struct RoutedState {
    config: RoutedConfig,
    devices: BTreeMap<PhysDeviceId, PhysAddr>,
    events: BTreeMap<(PhysDeviceId, EventId), RoutedEvent>,
    stats: RoutedStats,
    logged: u16,
}

impl RoutedState {
    /// Fresh state: nothing mapped on the physical ITS.
    pub fn new(config: RoutedConfig) -> Self {
        Self {
            config,
            devices: BTreeMap::new(),
            events: BTreeMap::new(),
            stats: RoutedStats::default(),
            logged: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RoutedConfig {
        &self.config
    }

    /// Devices MAPD'd this life.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Events mapped to a physical LPI (one LPI each).
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The physical mapping of `event` of `device`, if any.
    pub fn event(&self, device: PhysDeviceId, event: EventId) -> Option<RoutedEvent> {
        self.events.get(&(device, event)).copied()
    }

    /// The counters.
    pub fn stats(&self) -> RoutedStats {
        self.stats
    }

    /// The guest mapped `event` of `device` to `vintid` on `vcpu`.
    pub fn map<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized>(
        &mut self,
        sink: &mut S,
        routing: &mut R,
        device: PhysDeviceId,
        event: EventId,
        vcpu: VcpuIndex,
        vintid: VirtIntId,
    ) -> Result<RoutedEvent, RouteError> {
        let owned = match owned_event(&self.config.devices, device, event) {
            Ok(owned) => owned,
            Err(refusal) => {
                self.refuse(refusal);
                return Err(RouteError::Refused(refusal));
            }
        };
        // The vITS never maps a live event twice; if it did, the old
        // translation goes first (MAPTI over a live one is a command error).
        self.unmap(sink, routing, device, event);
        let result = self.map_owned(sink, routing, device, owned, event, vcpu, vintid);
        match result {
            Ok(mapped) => {
                // Routine and guest-driven: the first few at info, then
                // counted (`stats.maps`) at debug (`console::log_limit`).
                self.stats.maps = self.stats.maps.saturating_add(1);
                let level = if self.stats.maps <= crate::console::log_limit::FIRST {
                    log::Level::Info
                } else {
                    log::Level::Debug
                };
                log::log!(
                level,
                "partition {}: passthrough {:#x} event {} -> physical LPI {} -> vCPU {} vINTID {} (software path)",
                self.config.name,
                device.get(),
                event.get(),
                mapped.lpi.get(),
                vcpu.get(),
                vintid.get()
            );
            }
            Err(error) => {
                // A guest out of LPIs can fail every MAPTI: the first
                // failure, then each power of two with the count.
                let (level, n) = self.stats.failed();
                log::log!(
                    level,
                    "partition {}: mapping passthrough {:#x} event {}: {error:?} ({n} failures so far)",
                    self.config.name,
                    device.get(),
                    event.get()
                );
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn map_owned<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized>(
        &mut self,
        sink: &mut S,
        routing: &mut R,
        device: PhysDeviceId,
        owned: PassthroughDevice,
        event: EventId,
        vcpu: VcpuIndex,
        vintid: VirtIntId,
    ) -> Result<RoutedEvent, RouteError> {
        let collection = routing.collection(vcpu).ok_or(RouteError::NoCollection)?;
        self.ensure_device(sink, routing, device, owned)?;
        let lpi = routing.allocate_lpi().ok_or(RouteError::NoLpi)?;
        // The route exists before the LPI can fire: an MSI right after the
        // MAPTI finds its vINTID.
        if !routing.set_route(lpi, Some((vcpu, vintid))) {
            routing.free_lpi(lpi);
            return Err(RouteError::NoRoute);
        }
        // IHI 0069, 5.3 (MAPTI): the device's event now raises `lpi` on the
        // collection's redistributor; INV makes it read the LPI's
        // configuration; SYNC on that redistributor waits for both.
        let commands = [
            ItsCommand::Mapti {
                device_id: device.get(),
                event_id: event.get(),
                intid: lpi.get(),
                icid: collection.icid,
            },
            ItsCommand::Inv {
                device_id: device.get(),
                event_id: event.get(),
            },
        ];
        let sync = ItsCommand::Sync {
            rdbase: collection.rdbase,
        };
        if let Err(error) = sink.submit(&commands, sync) {
            // Nothing of the event stays: neither the route nor the LPI.
            routing.set_route(lpi, None);
            routing.free_lpi(lpi);
            return Err(RouteError::Sink(error));
        }
        let mapped = RoutedEvent { lpi, vcpu, vintid };
        self.events.insert((device, event), mapped);
        Ok(mapped)
    }

    /// MAPD of an owned device with a fresh ITT, once per life.
    fn ensure_device<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized>(
        &mut self,
        sink: &mut S,
        routing: &mut R,
        device: PhysDeviceId,
        owned: PassthroughDevice,
    ) -> Result<(), RouteError> {
        if self.devices.contains_key(&device) {
            return Ok(());
        }
        let home = routing.home().ok_or(RouteError::NoHome)?;
        if !routing.prepare_device(device) {
            return Err(RouteError::DeviceTable);
        }
        let itt = routing
            .allocate_itt(owned.event_id_bits)
            .ok_or(RouteError::NoItt)?;
        let mapd = ItsCommand::Mapd {
            device_id: device.get(),
            size: owned.event_id_bits.saturating_sub(1),
            itt_addr: itt.raw(),
            valid: true,
        };
        if let Err(error) = sink.submit(&[mapd], ItsCommand::Sync { rdbase: home }) {
            routing.free_itt(itt, owned.event_id_bits);
            return Err(RouteError::Sink(error));
        }
        self.devices.insert(device, itt);
        Ok(())
    }

    /// The guest moved the event to `to` (MOVI, MAPC retarget): the
    /// physical LPI follows to that vCPU's CPU, its pending state with it
    /// (IHI 0069, 5.3, MOVI). Returns whether the physical MOVI was done.
    pub fn move_to<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized>(
        &mut self,
        sink: &mut S,
        routing: &mut R,
        device: PhysDeviceId,
        event: EventId,
        to: VcpuIndex,
    ) -> bool {
        let Some(mapped) = self.events.get(&(device, event)).copied() else {
            return false;
        };
        let Some(collection) = routing.collection(to) else {
            self.refuse(Refusal::VcpuOutOfRange { vcpu: to });
            return false;
        };
        // The route changes first: an LPI taken on the old CPU meanwhile
        // already goes to the new vCPU, whose vGIC state is the same model.
        routing.set_route(mapped.lpi, Some((to, mapped.vintid)));
        let movi = ItsCommand::Movi {
            device_id: device.get(),
            event_id: event.get(),
            icid: collection.icid,
        };
        let sync = ItsCommand::Sync {
            rdbase: collection.rdbase,
        };
        let moved = sink.submit(&[movi], sync).is_ok();
        if !moved {
            let (level, n) = self.stats.failed();
            log::log!(
                level,
                "partition {}: physical MOVI of {:#x} event {} refused ({n} failures so far)",
                self.config.name,
                device.get(),
                event.get()
            );
        }
        self.events
            .insert((device, event), RoutedEvent { vcpu: to, ..mapped });
        moved
    }

    /// The guest unmapped or discarded the event: DISCARD, route and LPI
    /// freed. Returns whether the event was mapped.
    pub fn unmap<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized>(
        &mut self,
        sink: &mut S,
        routing: &mut R,
        device: PhysDeviceId,
        event: EventId,
    ) -> bool {
        match self.events.remove(&(device, event)) {
            Some(mapped) => {
                discard(sink, routing, device, event, mapped);
                true
            }
            None => false,
        }
    }

    /// Partition reset or stop: every event goes (DISCARD, LPI and route
    /// freed), then every device (MAPD V=0, ITT freed); the next life MAPDs
    /// them afresh.
    pub fn teardown<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized>(
        &mut self,
        sink: &mut S,
        routing: &mut R,
    ) -> RoutedTeardown {
        let mut report = RoutedTeardown::default();
        for ((device, event), mapped) in core::mem::take(&mut self.events) {
            discard(sink, routing, device, event, mapped);
            report.discarded += 1;
        }
        let devices: Vec<_> = core::mem::take(&mut self.devices).into_iter().collect();
        for (device, itt) in devices {
            let bits = self
                .config
                .devices
                .get(&device)
                .map_or(1, |d| d.event_id_bits);
            let mapd = ItsCommand::Mapd {
                device_id: device.get(),
                size: 0,
                itt_addr: 0,
                valid: false,
            };
            let unmapped = routing.home().is_some_and(|home| {
                sink.submit(&[mapd], ItsCommand::Sync { rdbase: home })
                    .is_ok()
            });
            // The ITS may still use an ITT whose MAPD V=0 did not complete:
            // such an ITT is kept, not reused.
            if unmapped {
                routing.free_itt(itt, bits);
                report.unmapped += 1;
            } else {
                report.kept_itts += 1;
                log::error!(
                    "partition {}: MAPD V=0 of {:#x} refused; its ITT at {} stays allocated",
                    self.config.name,
                    device.get(),
                    itt
                );
            }
        }
        report
    }

    /// Counts `refusal` and logs the first of its kind.
    fn refuse(&mut self, refusal: Refusal) {
        self.stats.refused = self.stats.refused.saturating_add(1);
        let bit = refusal.log_bit();
        if self.logged & bit == 0 {
            self.logged |= bit;
            log::warn!(
                "partition {}: passthrough intent refused: {refusal:?} (software path)",
                self.config.name
            );
        }
    }
}

/// DISCARD of a mapped event (IHI 0069, 5.3: removes the translation and
/// clears the LPI's pending state), then its route and LPI freed. A failed
/// DISCARD still frees them: the route is gone first, so a late LPI is
/// dropped at EL2.
fn discard<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized>(
    sink: &mut S,
    routing: &mut R,
    device: PhysDeviceId,
    event: EventId,
    mapped: RoutedEvent,
) {
    routing.set_route(mapped.lpi, None);
    if let Some(home) = routing.home() {
        let discard = ItsCommand::Discard {
            device_id: device.get(),
            event_id: event.get(),
        };
        let _ = sink.submit(&[discard], ItsCommand::Sync { rdbase: home });
    }
    routing.free_lpi(mapped.lpi);
}

/// The software path as a vITS backend for one trap: passthrough events
/// get physical LPIs through `S` and `R`; every intent then goes on to
/// the inner backend `F` (software injection into the vGIC).
pub struct RoutedBackend<'a, S: ?Sized, R: ?Sized, F: ?Sized> {
    state: &'a mut RoutedState,
    sink: &'a mut S,
    routing: &'a mut R,
    inner: &'a mut F,
}

impl<'a, S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized, F: VitsBackend + ?Sized>
    RoutedBackend<'a, S, R, F>
{
    /// The backend over `state` for one trap.
    pub fn new(
        state: &'a mut RoutedState,
        sink: &'a mut S,
        routing: &'a mut R,
        inner: &'a mut F,
    ) -> Self {
        Self {
            state,
            sink,
            routing,
            inner,
        }
    }
}

impl<S: PhysItsQueue + ?Sized, R: LpiRouting + ?Sized, F: VitsBackend + ?Sized> VitsBackend
    for RoutedBackend<'_, S, R, F>
{
    fn map_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        if let Some(device) = passthrough(&event) {
            let _ = self
                .state
                .map(self.sink, self.routing, device, event.event, vcpu, intid);
        }
        self.inner.map_event(event, vcpu, intid);
    }

    fn unmap_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        if let Some(device) = passthrough(&event) {
            self.state
                .unmap(self.sink, self.routing, device, event.event);
        }
        self.inner.unmap_event(event, vcpu, intid);
    }

    fn discard_event(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        if let Some(device) = passthrough(&event) {
            self.state
                .unmap(self.sink, self.routing, device, event.event);
        }
        self.inner.discard_event(event, vcpu, intid);
    }

    fn move_event(&mut self, event: EventRef, from: VcpuIndex, to: VcpuIndex, intid: VirtIntId) {
        if let Some(device) = passthrough(&event) {
            self.state
                .move_to(self.sink, self.routing, device, event.event, to);
        }
        self.inner.move_event(event, from, to, intid);
    }

    fn set_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.inner.set_pending(event, vcpu, intid);
    }

    fn clear_pending(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.inner.clear_pending(event, vcpu, intid);
    }

    fn reload_config(&mut self, event: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.inner.reload_config(event, vcpu, intid);
    }

    fn reload_config_all(&mut self, vcpu: VcpuIndex) {
        self.inner.reload_config_all(vcpu);
    }

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

    fn reload_config_all_within(&mut self, vcpu: VcpuIndex, budget: usize) -> Progress {
        self.inner.reload_config_all_within(vcpu, budget)
    }

    fn sync(&mut self) {
        self.inner.sync();
    }
}
