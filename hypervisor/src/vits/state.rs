//! The translation state of one virtual ITS: what a real ITS keeps in its
//! Device table, ITTs and Collection table (IHI 0069, the ITS tables), held in
//! hypervisor memory instead, bounded by the partition's caps.
//!
//! Laid out for the commands a guest sends often (INT, CLEAR, INV, MOVI,
//! DISCARD, and every MSI an emulated device sends), whose cost must not
//! grow with the number of mapped events:
//! - devices: entries at stable places, found through a small open-addressing
//!   index DeviceID -> place (8 bytes a slot, at most half full, so a lookup
//!   is one or two probes whatever the device count; the guest chooses its
//!   DeviceIDs, so colliding ones cost it longer probes, bounded by
//!   `max_devices`), and an ascending list of DeviceIDs for the commands that
//!   walk the devices in order;
//! - a device's events: a table indexed by EventID, 8 bytes a slot, grown as
//!   the guest maps higher EventIDs, never beyond the ITT size MAPD gave,
//!   only while it stays at least half full (or small), and only while all
//!   tables together stay within twice `max_events` slots. An EventID the
//!   table does not cover goes to the device's sparse map instead, so a
//!   guest that scatters its EventIDs or MAPDs a 2^32-entry ITT costs
//!   memory in proportion to its events, not to its ITT sizes;
//! - collections: ICID -> target vCPU, with the number of events that name
//!   each ICID. There is no index by collection: MAPC (map, retarget,
//!   unmap) and the loss of the Collection table, which must find a
//!   collection's events, scan the events, and only when the collection
//!   has any.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::config::DeviceBacking;
use crate::ids::{EventId, VcpuIndex, VirtCollectionId, VirtDeviceId, VirtIntId};
use crate::mm::Ipa;

/// One mapped event: an ITT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventEntry {
    /// The guest LPI the event raises.
    pub intid: VirtIntId,
    /// The collection that routes it.
    pub icid: VirtCollectionId,
}

/// A free slot of an event table: INTID 0 is never an LPI (LPIs start at
/// 8192), so no mapping looks like it.
const FREE: EventEntry = EventEntry {
    intid: VirtIntId::from_const(0),
    icid: VirtCollectionId::new(0),
};

/// Slots an event table may reach however empty it is: one MSI-X
/// function's worth of vectors.
const SMALL_TABLE: usize = 64;

/// The first allocation of an event table.
const FIRST_TABLE: usize = 8;

/// One mapped device: a Device table entry and its ITT.
#[derive(Clone, Debug)]
pub struct DeviceEntry {
    /// What the partition config puts behind the DeviceID (resolved at MAPD).
    pub backing: DeviceBacking,
    /// EventID width of the ITT (MAPD Size + 1).
    pub event_bits: u8,
    /// The ITT address the guest gave (kept for the guest's view only; the
    /// vITS never reads or writes it).
    pub itt_addr: Ipa,
    /// Events by EventID below `table.len()`; a free slot is [`FREE`].
    table: Vec<EventEntry>,
    /// Events at or above `table.len()`.
    sparse: BTreeMap<EventId, EventEntry>,
    /// Number of mapped events (table and sparse).
    mapped: usize,
}

impl PartialEq for DeviceEntry {
    /// Equal when the guest-visible contents are: how the events are laid
    /// out (table or sparse map, table size) depends on the order they
    /// were mapped in, not on what they are.
    fn eq(&self, other: &Self) -> bool {
        self.backing == other.backing
            && self.event_bits == other.event_bits
            && self.itt_addr == other.itt_addr
            && self.mapped == other.mapped
            && self.events().eq(other.events())
    }
}

impl Eq for DeviceEntry {}

impl DeviceEntry {
    fn new(backing: DeviceBacking, event_bits: u8, itt_addr: Ipa) -> Self {
        Self {
            backing,
            event_bits,
            itt_addr,
            table: Vec::new(),
            sparse: BTreeMap::new(),
            mapped: 0,
        }
    }

    /// The device's mapped events, by EventID.
    pub fn events(&self) -> impl Iterator<Item = (EventId, EventEntry)> + '_ {
        // Table slots are all below the sparse map's EventIDs, so the two in
        // turn are in EventID order.
        let table = (0u32..)
            .zip(&self.table)
            .filter(|(_, slot)| **slot != FREE)
            .map(|(id, &slot)| (EventId::new(id), slot));
        table.chain(self.sparse.iter().map(|(&id, &entry)| (id, entry)))
    }

    /// The device's mapped events from EventID `first` on, by EventID: where
    /// a command resumed over several traps picks up (no walk over the
    /// events before `first`).
    pub fn events_from(&self, first: EventId) -> impl Iterator<Item = (EventId, EventEntry)> + '_ {
        let start = slot_index(first);
        let table = (first.get()..)
            .zip(self.table.get(start..).unwrap_or(&[]))
            .filter(|(_, slot)| **slot != FREE)
            .map(|(id, &slot)| (EventId::new(id), slot));
        table.chain(self.sparse.range(first..).map(|(&id, &entry)| (id, entry)))
    }

    /// Number of mapped events.
    pub fn event_count(&self) -> usize {
        self.mapped
    }

    /// Slots of the device's event table (the events it covers directly).
    pub fn table_slots(&self) -> usize {
        self.table.len()
    }

    /// Whether `event` fits the ITT size.
    pub fn event_in_range(&self, event: EventId) -> bool {
        u64::from(event.get()) >> self.event_bits == 0
    }

    /// The mapping of `event`: one table slot, or the sparse map for an
    /// EventID the table does not cover.
    pub fn event(&self, event: EventId) -> Option<EventEntry> {
        match self.table.get(slot_index(event)) {
            Some(&slot) => (slot != FREE).then_some(slot),
            None if self.sparse.is_empty() => None,
            None => self.sparse.get(&event).copied(),
        }
    }

    /// Maps `event`; false if it already is. `slots` is the vITS's table
    /// allowance.
    fn insert(&mut self, event: EventId, mapping: EventEntry, slots: &mut SlotAllowance) -> bool {
        if mapping == FREE || self.event(event).is_some() {
            return false;
        }
        let index = slot_index(event);
        if index >= self.table.len() {
            self.grow_table(index, slots);
        }
        match self.table.get_mut(index) {
            Some(slot) => *slot = mapping,
            None => {
                self.sparse.insert(event, mapping);
            }
        }
        self.mapped = self.mapped.saturating_add(1);
        true
    }

    /// Unmaps `event`; returns what it was.
    fn remove(&mut self, event: EventId) -> Option<EventEntry> {
        let old = match self.table.get_mut(slot_index(event)) {
            Some(slot) if *slot == FREE => None,
            Some(slot) => Some(core::mem::replace(slot, FREE)),
            None => self.sparse.remove(&event),
        }?;
        self.mapped = self.mapped.saturating_sub(1);
        Some(old)
    }

    /// The mapping of `event`, for changing it in place.
    fn event_mut(&mut self, event: EventId) -> Option<&mut EventEntry> {
        match self.table.get_mut(slot_index(event)) {
            Some(slot) if *slot == FREE => None,
            Some(slot) => Some(slot),
            None => self.sparse.get_mut(&event),
        }
    }

    /// Makes the table cover slot `index` if that keeps it within the ITT
    /// size, at least half full (or small), and within `slots`; otherwise
    /// leaves it, and the event goes to the sparse map.
    fn grow_table(&mut self, index: usize, slots: &mut SlotAllowance) {
        let itt_slots = 1usize
            .checked_shl(u32::from(self.event_bits))
            .unwrap_or(usize::MAX);
        let Some(needed) = index.checked_add(1) else {
            return;
        };
        let dense_enough = SMALL_TABLE.max(self.mapped.saturating_add(1).saturating_mul(2));
        if needed > itt_slots || needed > dense_enough {
            return;
        }
        let old = self.table.len();
        // Doubling keeps the copies of a growing table amortized O(1) per
        // event; the ITT size and the fill rule bound it.
        let doubled = old
            .saturating_mul(2)
            .max(FIRST_TABLE)
            .min(itt_slots)
            .min(dense_enough);
        let mut len = needed.max(doubled);
        if !slots.take(len - old) {
            len = needed;
            if !slots.take(len - old) {
                return;
            }
        }
        self.table.reserve_exact(len - old);
        self.table.resize(len, FREE);
        // Sparse events the table now covers move into it, so the table
        // holds everything below its end and the sparse map the rest.
        let moved = match u32::try_from(len) {
            Ok(end) => {
                let above = self.sparse.split_off(&EventId::new(end));
                core::mem::replace(&mut self.sparse, above)
            }
            Err(_) => core::mem::take(&mut self.sparse),
        };
        for (event, mapping) in moved {
            if let Some(slot) = self.table.get_mut(slot_index(event)) {
                *slot = mapping;
            }
        }
    }
}

/// The table slot of an EventID (usize::MAX, which no table reaches, if
/// it does not fit a usize).
fn slot_index(event: EventId) -> usize {
    usize::try_from(event.get()).unwrap_or(usize::MAX)
}

/// A place in `TranslationState::entries` as an index.
fn place_index(place: u32) -> usize {
    usize::try_from(place).unwrap_or(usize::MAX)
}

/// How many event-table slots all devices of a vITS may hold together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SlotAllowance {
    used: usize,
    limit: usize,
}

impl SlotAllowance {
    /// Takes `count` slots if they fit.
    fn take(&mut self, count: usize) -> bool {
        match self.used.checked_add(count) {
            Some(used) if used <= self.limit => {
                self.used = used;
                true
            }
            _ => false,
        }
    }

    /// Returns `count` slots.
    fn give_back(&mut self, count: usize) {
        self.used = self.used.saturating_sub(count);
    }
}

/// A collection: its target if mapped, and how many events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CollectionEntry {
    vcpu: Option<VcpuIndex>,
    events: usize,
}

/// Devices, events and collections of one vITS.
#[derive(Clone, Debug, Default)]
pub struct TranslationState {
    /// Mapped DeviceIDs, ascending, each with its place in `entries`.
    order: Vec<(VirtDeviceId, u32)>,
    /// Device entries at stable places; None where a device was unmapped.
    entries: Vec<Option<DeviceEntry>>,
    /// Places of `entries` that are None.
    free: Vec<u32>,
    /// DeviceID -> place in `entries`.
    index: DeviceIndex,
    /// Mapped collections, and ICIDs that events name (mapped or not).
    collections: BTreeMap<VirtCollectionId, CollectionEntry>,
    event_count: usize,
    slots: SlotAllowance,
}

impl PartialEq for TranslationState {
    /// Equal when the mappings are (see [`DeviceEntry`]'s equality).
    fn eq(&self, other: &Self) -> bool {
        self.devices().eq(other.devices()) && self.collections().eq(other.collections())
    }
}

impl Eq for TranslationState {}

/// An index slot: a DeviceID and its place, or [`DeviceIndex::VACANT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexSlot {
    device: u32,
    place: u32,
}

/// DeviceID -> place: open addressing with linear probing, a power-of-two
/// number of slots, at most half of them used.
#[derive(Clone, Debug, Default)]
struct DeviceIndex {
    slots: Vec<IndexSlot>,
    used: usize,
}

impl DeviceIndex {
    const VACANT: IndexSlot = IndexSlot {
        device: 0,
        place: u32::MAX,
    };
    const MIN_SLOTS: usize = 16;

    /// Where probing for `device` starts (Fibonacci hashing: the top bits
    /// of the product, so consecutive DeviceIDs spread out).
    fn home(&self, device: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        if bits == 0 {
            return 0;
        }
        let hash = u64::from(device.wrapping_mul(0x9E37_79B9));
        usize::try_from(hash >> (32 - bits.min(32))).unwrap_or(0)
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding `device`.
    fn find(&self, device: u32) -> Option<usize> {
        let mut at = self.home(device);
        // At most half full: a vacant slot ends every probe sequence.
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(at)?;
            if slot.place == Self::VACANT.place {
                return None;
            }
            if slot.device == device {
                return Some(at);
            }
            at = (at + 1) & self.mask();
        }
        None
    }

    fn get(&self, device: u32) -> Option<u32> {
        Some(self.slots.get(self.find(device)?)?.place)
    }

    /// Adds `device` (not in the index) at `place`.
    fn insert(&mut self, device: u32, place: u32) {
        if self.used.saturating_add(1).saturating_mul(2) > self.slots.len() {
            let size = self.slots.len().saturating_mul(2).max(Self::MIN_SLOTS);
            let old = core::mem::replace(&mut self.slots, alloc::vec![Self::VACANT; size]);
            for slot in old.into_iter().filter(|s| s.place != Self::VACANT.place) {
                self.put(slot);
            }
        }
        self.put(IndexSlot { device, place });
        self.used = self.used.saturating_add(1);
    }

    /// Writes `slot` at the first vacant slot of its probe sequence.
    fn put(&mut self, slot: IndexSlot) {
        let mut at = self.home(slot.device);
        for _ in 0..self.slots.len() {
            let mask = self.mask();
            match self.slots.get_mut(at) {
                Some(vacant) if vacant.place == Self::VACANT.place => {
                    *vacant = slot;
                    return;
                }
                Some(_) => at = (at + 1) & mask,
                None => return,
            }
        }
    }

    /// Removes `device`; returns its place. Later slots of the probe
    /// sequence move back into the hole (no tombstones).
    fn remove(&mut self, device: u32) -> Option<u32> {
        let mut hole = self.find(device)?;
        let place = self.slots.get(hole)?.place;
        let mut next = hole;
        loop {
            next = (next + 1) & self.mask();
            let Some(&slot) = self.slots.get(next) else {
                break;
            };
            if slot.place == Self::VACANT.place || next == hole {
                break;
            }
            let home = self.home(slot.device);
            // The slot may stay if its home lies cyclically in (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                if let Some(target) = self.slots.get_mut(hole) {
                    *target = slot;
                }
                hole = next;
            }
        }
        if let Some(target) = self.slots.get_mut(hole) {
            *target = Self::VACANT;
        }
        self.used = self.used.saturating_sub(1);
        Some(place)
    }
}

impl TranslationState {
    /// An empty state whose event tables hold at most `2 * max_events`
    /// slots together (events beyond go to per-device sparse maps).
    pub fn with_max_events(max_events: usize) -> Self {
        Self {
            slots: SlotAllowance {
                used: 0,
                limit: max_events.saturating_mul(2),
            },
            ..Self::default()
        }
    }

    /// Number of mapped devices.
    pub fn device_count(&self) -> usize {
        self.order.len()
    }

    /// Number of mapped events over all devices.
    pub fn event_count(&self) -> usize {
        self.event_count
    }

    /// Event-table slots allocated over all devices (at most twice
    /// `max_events`; 8 bytes each).
    pub fn event_table_slots(&self) -> usize {
        self.slots.used
    }

    /// The device mapped at `device`.
    pub fn device(&self, device: VirtDeviceId) -> Option<&DeviceEntry> {
        let place = self.index.get(device.get())?;
        self.entries.get(place_index(place))?.as_ref()
    }

    /// Every mapped device, by DeviceID.
    pub fn devices(&self) -> impl Iterator<Item = (VirtDeviceId, &DeviceEntry)> + '_ {
        self.order.iter().filter_map(|&(id, place)| {
            let entry = self.entries.get(place_index(place))?.as_ref()?;
            Some((id, entry))
        })
    }

    /// The mapping of `event` of `device`.
    pub fn event(&self, device: VirtDeviceId, event: EventId) -> Option<EventEntry> {
        self.device(device)?.event(event)
    }

    /// The vCPU collection `icid` targets.
    pub fn collection(&self, icid: VirtCollectionId) -> Option<VcpuIndex> {
        self.collections.get(&icid)?.vcpu
    }

    /// How many events name `icid` (mapped or not): what a MAPC of it
    /// touches.
    pub fn collection_event_count(&self, icid: VirtCollectionId) -> usize {
        self.collections.get(&icid).map_or(0, |entry| entry.events)
    }

    /// Every mapped collection.
    pub fn collections(&self) -> impl Iterator<Item = (VirtCollectionId, VcpuIndex)> + '_ {
        self.collections
            .iter()
            .filter_map(|(&id, entry)| Some((id, entry.vcpu?)))
    }

    /// The events routed by `icid`, in (DeviceID, EventID) order: a scan of
    /// the events, skipped when none names `icid` and stopped at the last
    /// one that does.
    pub fn events_in_collection(
        &self,
        icid: VirtCollectionId,
    ) -> impl Iterator<Item = (VirtDeviceId, EventId)> + '_ {
        self.collection_events(icid)
            .map(|(device, _, event, _)| (device, event))
    }

    /// Like [`Self::events_in_collection`], with each event's device entry
    /// and mapping.
    pub(super) fn collection_events(
        &self,
        icid: VirtCollectionId,
    ) -> impl Iterator<Item = (VirtDeviceId, &DeviceEntry, EventId, EventEntry)> + '_ {
        let named = self.collections.get(&icid).map_or(0, |entry| entry.events);
        self.devices()
            .take_while(move |_| named > 0)
            .flat_map(move |(id, entry)| {
                entry
                    .events()
                    .filter(move |(_, mapping)| mapping.icid == icid)
                    .map(move |(event, mapping)| (id, entry, event, mapping))
            })
            .take(named)
    }

    /// Maps a new device with no events, replacing any old one.
    pub(super) fn insert_device(
        &mut self,
        device: VirtDeviceId,
        backing: DeviceBacking,
        event_bits: u8,
        itt_addr: Ipa,
    ) {
        self.remove_device(device);
        let entry = DeviceEntry::new(backing, event_bits, itt_addr);
        let place = match self.free.pop() {
            Some(place) => place,
            None => {
                let Ok(place) = u32::try_from(self.entries.len()) else {
                    return;
                };
                self.entries.push(None);
                place
            }
        };
        if let Some(slot) = self.entries.get_mut(place_index(place)) {
            *slot = Some(entry);
        }
        let at = self.order.partition_point(|&(id, _)| id < device);
        self.order.insert(at, (device, place));
        self.index.insert(device.get(), place);
    }

    /// Unmaps a device and returns it with the events it had.
    pub(super) fn remove_device(&mut self, device: VirtDeviceId) -> Option<DeviceEntry> {
        let place = self.index.remove(device.get())?;
        let entry = self.entries.get_mut(place_index(place))?.take()?;
        self.free.push(place);
        if let Ok(at) = self.order.binary_search_by_key(&device, |&(id, _)| id) {
            self.order.remove(at);
        }
        for (_, mapping) in entry.events() {
            self.forget_event(mapping.icid);
        }
        self.event_count = self.event_count.saturating_sub(entry.mapped);
        self.slots.give_back(entry.table.len());
        Some(entry)
    }

    /// Maps `event` of a mapped `device`; returns false if the device is not
    /// mapped or the event already is (or `mapping` names INTID 0, which is
    /// no LPI).
    pub(super) fn insert_event(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
        mapping: EventEntry,
    ) -> bool {
        let Some(place) = self.index.get(device.get()) else {
            return false;
        };
        let Some(Some(entry)) = self.entries.get_mut(place_index(place)) else {
            return false;
        };
        if !entry.insert(event, mapping, &mut self.slots) {
            return false;
        }
        self.name_event(mapping.icid);
        self.event_count = self.event_count.saturating_add(1);
        true
    }

    /// Unmaps `event` of `device` and returns what it was.
    pub(super) fn remove_event(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
    ) -> Option<EventEntry> {
        let mapping = self.device_entry_mut(device)?.remove(event)?;
        self.forget_event(mapping.icid);
        self.event_count = self.event_count.saturating_sub(1);
        Some(mapping)
    }

    /// Points a mapped event at another collection.
    pub(super) fn set_event_collection(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
        icid: VirtCollectionId,
    ) {
        let Some(mapping) = self
            .device_entry_mut(device)
            .and_then(|entry| entry.event_mut(event))
        else {
            return;
        };
        let old = core::mem::replace(&mut mapping.icid, icid);
        if old != icid {
            self.forget_event(old);
            self.name_event(icid);
        }
    }

    /// Maps (or remaps) a collection to a vCPU; returns the old target.
    pub(super) fn map_collection(
        &mut self,
        icid: VirtCollectionId,
        vcpu: VcpuIndex,
    ) -> Option<VcpuIndex> {
        let entry = self.collections.entry(icid).or_insert(CollectionEntry {
            vcpu: None,
            events: 0,
        });
        entry.vcpu.replace(vcpu)
    }

    /// Unmaps a collection; returns the old target.
    pub(super) fn unmap_collection(&mut self, icid: VirtCollectionId) -> Option<VcpuIndex> {
        let entry = self.collections.get_mut(&icid)?;
        let old = entry.vcpu.take();
        if entry.events == 0 {
            self.collections.remove(&icid);
        }
        old
    }

    /// Unmaps every device; returns them with their events.
    pub(super) fn take_devices(&mut self) -> Vec<(VirtDeviceId, DeviceEntry)> {
        self.collections.retain(|_, entry| {
            entry.events = 0;
            entry.vcpu.is_some()
        });
        self.event_count = 0;
        self.slots.used = 0;
        let order = core::mem::take(&mut self.order);
        let mut entries = core::mem::take(&mut self.entries);
        self.free = Vec::new();
        self.index = DeviceIndex::default();
        order
            .into_iter()
            .filter_map(|(id, place)| Some((id, entries.get_mut(place_index(place))?.take()?)))
            .collect()
    }

    /// Unmaps every collection; returns them, by ICID.
    pub(super) fn take_collections(&mut self) -> Vec<(VirtCollectionId, VcpuIndex)> {
        let taken = self.collections().collect();
        self.collections.retain(|_, entry| {
            entry.vcpu = None;
            entry.events > 0
        });
        taken
    }

    fn device_entry_mut(&mut self, device: VirtDeviceId) -> Option<&mut DeviceEntry> {
        let place = self.index.get(device.get())?;
        self.entries.get_mut(place_index(place))?.as_mut()
    }

    /// One more event names `icid`.
    fn name_event(&mut self, icid: VirtCollectionId) {
        let entry = self.collections.entry(icid).or_insert(CollectionEntry {
            vcpu: None,
            events: 0,
        });
        entry.events = entry.events.saturating_add(1);
    }

    /// One event fewer names `icid`.
    fn forget_event(&mut self, icid: VirtCollectionId) {
        if let Some(entry) = self.collections.get_mut(&icid) {
            entry.events = entry.events.saturating_sub(1);
            if entry.events == 0 && entry.vcpu.is_none() {
                self.collections.remove(&icid);
            }
        }
    }
}
