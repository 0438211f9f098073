//! The vITS translation state as it was before issue 15: three `BTreeMap`s
//! (devices, each device's events, collections) and a by-collection index.
//! Kept, test-only, as the reference the table-based `state` module is
//! checked against (`tests/state_props.rs`): same operations, same answers.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::ids::{EventId, VcpuIndex, VirtCollectionId, VirtDeviceId};
use crate::mm::Ipa;
use crate::vits::{DeviceBacking, EventEntry};

/// One mapped device: a Device table entry and its ITT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    /// What the partition config puts behind the DeviceID (resolved at MAPD).
    pub backing: DeviceBacking,
    /// EventID width of the ITT (MAPD Size + 1).
    pub event_bits: u8,
    /// The ITT address the guest gave (kept for the guest's view only; the
    /// vITS never reads or writes it).
    pub itt_addr: Ipa,
    events: BTreeMap<EventId, EventEntry>,
}

impl DeviceEntry {
    /// The device's mapped events, by EventID.
    pub fn events(&self) -> impl Iterator<Item = (EventId, EventEntry)> + '_ {
        self.events.iter().map(|(&id, &entry)| (id, entry))
    }
}

/// Devices, events and collections of one vITS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranslationState {
    devices: BTreeMap<VirtDeviceId, DeviceEntry>,
    collections: BTreeMap<VirtCollectionId, VcpuIndex>,
    by_collection: BTreeSet<(VirtCollectionId, VirtDeviceId, EventId)>,
    event_count: usize,
}

impl TranslationState {
    /// Number of mapped devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Number of mapped events over all devices.
    pub fn event_count(&self) -> usize {
        self.event_count
    }

    /// The device mapped at `device`.
    pub fn device(&self, device: VirtDeviceId) -> Option<&DeviceEntry> {
        self.devices.get(&device)
    }

    /// Every mapped device.
    pub fn devices(&self) -> impl Iterator<Item = (VirtDeviceId, &DeviceEntry)> + '_ {
        self.devices.iter().map(|(&id, entry)| (id, entry))
    }

    /// The mapping of `event` of `device`.
    pub fn event(&self, device: VirtDeviceId, event: EventId) -> Option<EventEntry> {
        self.devices.get(&device)?.events.get(&event).copied()
    }

    /// The vCPU collection `icid` targets.
    pub fn collection(&self, icid: VirtCollectionId) -> Option<VcpuIndex> {
        self.collections.get(&icid).copied()
    }

    /// Every mapped collection.
    pub fn collections(&self) -> impl Iterator<Item = (VirtCollectionId, VcpuIndex)> + '_ {
        self.collections.iter().map(|(&id, &vcpu)| (id, vcpu))
    }

    /// The events routed by `icid`, in (DeviceID, EventID) order.
    pub fn events_in_collection(
        &self,
        icid: VirtCollectionId,
    ) -> impl Iterator<Item = (VirtDeviceId, EventId)> + '_ {
        let lo = (icid, VirtDeviceId::new(0), EventId::new(0));
        let hi = (icid, VirtDeviceId::new(u32::MAX), EventId::new(u32::MAX));
        self.by_collection
            .range(lo..=hi)
            .map(|&(_, device, event)| (device, event))
    }

    /// Maps a new device with no events. The caller removed any old one.
    pub fn insert_device(
        &mut self,
        device: VirtDeviceId,
        backing: DeviceBacking,
        event_bits: u8,
        itt_addr: Ipa,
    ) {
        let entry = DeviceEntry {
            backing,
            event_bits,
            itt_addr,
            events: BTreeMap::new(),
        };
        self.devices.insert(device, entry);
    }

    /// Unmaps a device and returns it with the events it had.
    pub fn remove_device(&mut self, device: VirtDeviceId) -> Option<DeviceEntry> {
        let entry = self.devices.remove(&device)?;
        for (&event, mapping) in &entry.events {
            self.by_collection.remove(&(mapping.icid, device, event));
        }
        self.event_count = self.event_count.saturating_sub(entry.events.len());
        Some(entry)
    }

    /// Maps `event` of a mapped `device`; returns false if the device is not
    /// mapped or the event already is.
    pub fn insert_event(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
        mapping: EventEntry,
    ) -> bool {
        let Some(entry) = self.devices.get_mut(&device) else {
            return false;
        };
        if entry.events.contains_key(&event) {
            return false;
        }
        entry.events.insert(event, mapping);
        self.by_collection.insert((mapping.icid, device, event));
        self.event_count = self.event_count.saturating_add(1);
        true
    }

    /// Unmaps `event` of `device` and returns what it was.
    pub fn remove_event(&mut self, device: VirtDeviceId, event: EventId) -> Option<EventEntry> {
        let mapping = self.devices.get_mut(&device)?.events.remove(&event)?;
        self.by_collection.remove(&(mapping.icid, device, event));
        self.event_count = self.event_count.saturating_sub(1);
        Some(mapping)
    }

    /// Points a mapped event at another collection.
    pub fn set_event_collection(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
        icid: VirtCollectionId,
    ) {
        let Some(mapping) = self
            .devices
            .get_mut(&device)
            .and_then(|entry| entry.events.get_mut(&event))
        else {
            return;
        };
        self.by_collection.remove(&(mapping.icid, device, event));
        mapping.icid = icid;
        self.by_collection.insert((icid, device, event));
    }

    /// Maps (or remaps) a collection to a vCPU; returns the old target.
    pub fn map_collection(&mut self, icid: VirtCollectionId, vcpu: VcpuIndex) -> Option<VcpuIndex> {
        self.collections.insert(icid, vcpu)
    }

    /// Unmaps a collection; returns the old target.
    pub fn unmap_collection(&mut self, icid: VirtCollectionId) -> Option<VcpuIndex> {
        self.collections.remove(&icid)
    }

    /// Unmaps every device; returns them with their events.
    pub fn take_devices(&mut self) -> Vec<(VirtDeviceId, DeviceEntry)> {
        self.by_collection.clear();
        self.event_count = 0;
        core::mem::take(&mut self.devices).into_iter().collect()
    }

    /// Unmaps every collection; returns them.
    pub fn take_collections(&mut self) -> Vec<(VirtCollectionId, VcpuIndex)> {
        core::mem::take(&mut self.collections).into_iter().collect()
    }
}
