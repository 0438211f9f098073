//! The translation state of one virtual ITS: what a real ITS keeps in its
//! Device table, ITTs and Collection table (IHI 0069, the ITS tables), held in
//! hypervisor memory instead, bounded by the partition's caps.
//!
//! Laid out for the commands a guest sends often (INT, CLEAR, INV, MOVI,
//! DISCARD, and every MSI an emulated device sends), whose cost must not
//! grow with the number of mapped events, and which should cost one
//! dependent cache miss, not two:
//! - devices: a small open-addressing index DeviceID -> slot (at most half
//!   full, so a lookup is one or two probes whatever the device count; the
//!   guest chooses its DeviceIDs, so colliding ones cost it longer probes,
//!   bounded by `max_devices`). The index slot holds the device's event
//!   table itself (its base and length), so an event's slot is found from
//!   the index slot alone: the probe, then the table slot. The rest of the
//!   device (backing, ITT size and address, sparse events) sits in an entry
//!   at a stable place the index slot names, read beside the table slot,
//!   not before it. An ascending list of DeviceIDs serves the commands that
//!   walk the devices in order;
//! - a device's events: a table indexed by EventID, 8 bytes a slot, grown as
//!   the guest maps higher EventIDs, never beyond the ITT size MAPD gave,
//!   only while it stays at least half full (or small), and only while all
//!   tables together stay within twice `max_events` slots. An EventID the
//!   table does not cover goes to the device's sparse list (sorted by
//!   EventID) instead, so a guest that scatters its EventIDs or MAPDs a
//!   2^32-entry ITT costs memory in proportion to its events, not to its
//!   ITT sizes;
//! - collections: ICID -> target vCPU, sorted by ICID, with the number of
//!   events that name each ICID. There is no index by collection: MAPC
//!   (map, retarget, unmap) and the loss of the Collection table, which
//!   must find a collection's events, scan the events, and only when the
//!   collection has any.
//!
//! Every allocation is fallible (`try_reserve`): an operation that cannot
//! get its memory fails with [`NoMemory`] before it changes anything, and
//! the command is skipped and counted like the cap it could not reach.
//! Removing a device, an event or a collection never allocates.

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

/// The heap could not give the translation state the memory an operation
/// needed; nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoMemory;

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

/// Events of a device the table does not cover, sorted by EventID.
type Sparse = Vec<(EventId, EventEntry)>;

/// The mapping of `event` in a table and sparse list.
fn lookup(
    table: &[EventEntry],
    sparse: &[(EventId, EventEntry)],
    event: EventId,
) -> Option<EventEntry> {
    match table.get(slot_index(event)) {
        Some(&slot) => (slot != FREE).then_some(slot),
        None if sparse.is_empty() => None,
        None => sparse
            .binary_search_by_key(&event, |&(id, _)| id)
            .ok()
            .and_then(|at| sparse.get(at))
            .map(|&(_, entry)| entry),
    }
}

/// The events of a table and sparse list, by EventID.
fn all_events<'a>(
    table: &'a [EventEntry],
    sparse: &'a [(EventId, EventEntry)],
) -> impl Iterator<Item = (EventId, EventEntry)> + 'a {
    // Table slots are all below the sparse list's EventIDs, so the two in
    // turn are in EventID order.
    (0u32..)
        .zip(table)
        .filter(|(_, slot)| **slot != FREE)
        .map(|(id, &slot)| (EventId::new(id), slot))
        .chain(sparse.iter().copied())
}

/// Whether `event` fits an ITT of `event_bits` EventID bits.
fn in_range(event_bits: u8, event: EventId) -> bool {
    u64::from(event.get()) >> event_bits == 0
}

/// A mapped device as the state holds it, read in place: a Device table
/// entry and its ITT.
#[derive(Clone, Copy, Debug)]
pub struct Device<'a> {
    /// What the partition config puts behind the DeviceID (resolved at MAPD).
    pub backing: DeviceBacking,
    /// EventID width of the ITT (MAPD Size + 1).
    pub event_bits: u8,
    /// The ITT address the guest gave (kept for the guest's view only; the
    /// vITS never reads or writes it).
    pub itt_addr: Ipa,
    table: &'a [EventEntry],
    sparse: &'a [(EventId, EventEntry)],
    mapped: usize,
}

impl PartialEq for Device<'_> {
    /// Equal when the guest-visible contents are: how the events are laid
    /// out (table or sparse list, table size) depends on the order they
    /// were mapped in, not on what they are.
    fn eq(&self, other: &Self) -> bool {
        self.backing == other.backing
            && self.event_bits == other.event_bits
            && self.itt_addr == other.itt_addr
            && self.mapped == other.mapped
            && self.events().eq(other.events())
    }
}

impl Eq for Device<'_> {}

impl<'a> Device<'a> {
    /// The device's mapped events, by EventID.
    pub fn events(&self) -> impl Iterator<Item = (EventId, EventEntry)> + 'a {
        all_events(self.table, self.sparse)
    }

    /// The device's mapped events from EventID `first` on, by EventID: where
    /// a command resumed over several traps picks up (no walk over the
    /// events before `first`).
    pub fn events_from(&self, first: EventId) -> impl Iterator<Item = (EventId, EventEntry)> + 'a {
        let start = slot_index(first);
        let table = (first.get()..)
            .zip(self.table.get(start..).unwrap_or(&[]))
            .filter(|(_, slot)| **slot != FREE)
            .map(|(id, &slot)| (EventId::new(id), slot));
        // The sparse list is sorted by EventID: start at the first >= `first`.
        let sparse = self.sparse;
        let at = sparse.partition_point(|&(id, _)| id < first);
        table.chain(sparse.get(at..).unwrap_or(&[]).iter().copied())
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
        in_range(self.event_bits, event)
    }

    /// The mapping of `event`: one table slot, or the sparse list for an
    /// EventID the table does not cover.
    pub fn event(&self, event: EventId) -> Option<EventEntry> {
        lookup(self.table, self.sparse, event)
    }
}

/// A device taken out of the state (unmapped), with the events it had.
#[derive(Clone, Debug)]
pub struct DeviceEntry {
    /// What the partition config put behind the DeviceID.
    pub backing: DeviceBacking,
    /// EventID width of the ITT (MAPD Size + 1).
    pub event_bits: u8,
    /// The ITT address the guest gave.
    pub itt_addr: Ipa,
    table: Vec<EventEntry>,
    sparse: Sparse,
    mapped: usize,
}

impl PartialEq for DeviceEntry {
    /// Equal when the guest-visible contents are (see [`Device`]).
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for DeviceEntry {}

impl DeviceEntry {
    fn new(meta: DeviceMeta, table: Vec<EventEntry>) -> Self {
        Self {
            backing: meta.backing,
            event_bits: meta.event_bits,
            itt_addr: meta.itt_addr,
            table,
            sparse: meta.sparse,
            mapped: meta.mapped,
        }
    }

    /// The device as [`TranslationState::device`] showed it.
    pub fn view(&self) -> Device<'_> {
        Device {
            backing: self.backing,
            event_bits: self.event_bits,
            itt_addr: self.itt_addr,
            table: &self.table,
            sparse: &self.sparse,
            mapped: self.mapped,
        }
    }

    /// The device's mapped events, by EventID.
    pub fn events(&self) -> impl Iterator<Item = (EventId, EventEntry)> + '_ {
        all_events(&self.table, &self.sparse)
    }

    /// Number of mapped events.
    pub fn event_count(&self) -> usize {
        self.mapped
    }

    /// The mapping of `event`.
    pub fn event(&self, event: EventId) -> Option<EventEntry> {
        lookup(&self.table, &self.sparse, event)
    }
}

/// What the state keeps of a mapped device besides its event table.
#[derive(Clone, Debug)]
struct DeviceMeta {
    backing: DeviceBacking,
    event_bits: u8,
    itt_addr: Ipa,
    /// Events at or above the table's end.
    sparse: Sparse,
    /// Number of mapped events (table and sparse).
    mapped: usize,
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
    /// Whether `count` more slots fit.
    fn fits(&self, count: usize) -> bool {
        self.used
            .checked_add(count)
            .is_some_and(|used| used <= self.limit)
    }

    fn take(&mut self, count: usize) {
        self.used = self.used.saturating_add(count);
    }

    /// Returns `count` slots.
    fn give_back(&mut self, count: usize) {
        self.used = self.used.saturating_sub(count);
    }
}

/// Whether a table of `old` slots should grow to cover slot `index`, and
/// to how many slots (the doubled size first, the bare minimum second):
/// within the ITT size, at least half full (or small), within `slots`.
fn table_growth(
    old: usize,
    index: usize,
    event_bits: u8,
    mapped: usize,
    slots: &SlotAllowance,
) -> Option<(usize, usize)> {
    let itt_slots = 1usize
        .checked_shl(u32::from(event_bits))
        .unwrap_or(usize::MAX);
    let needed = index.checked_add(1)?;
    let dense_enough = SMALL_TABLE.max(mapped.saturating_add(1).saturating_mul(2));
    if index < old || needed > itt_slots || needed > dense_enough {
        return None;
    }
    // Doubling keeps the copies of a growing table amortized O(1) per
    // event; the ITT size and the fill rule bound it.
    let doubled = old
        .saturating_mul(2)
        .max(FIRST_TABLE)
        .min(itt_slots)
        .min(dense_enough)
        .max(needed);
    if slots.fits(doubled - old) {
        Some((doubled, needed))
    } else if slots.fits(needed - old) {
        Some((needed, needed))
    } else {
        None
    }
}

/// Makes `table` `len` slots long (reserving exactly), or fails leaving it.
fn try_grow_table(table: &mut Vec<EventEntry>, len: usize) -> Result<(), NoMemory> {
    let more = len.saturating_sub(table.len());
    table.try_reserve_exact(more).map_err(|_| NoMemory)?;
    table.resize(len, FREE);
    Ok(())
}

/// A collection: its target if mapped, and how many events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CollectionEntry {
    vcpu: Option<VcpuIndex>,
    events: usize,
}

/// Collections by ICID, sorted.
#[derive(Clone, Debug, Default)]
struct Collections {
    entries: Vec<(VirtCollectionId, CollectionEntry)>,
}

impl Collections {
    /// Lists this short are scanned (as a B-tree node is): for the few
    /// collections a guest maps (one per vCPU, typically) a scan is
    /// cheaper than a binary search's unpredictable branches.
    const SCAN: usize = 16;

    fn find(&self, icid: VirtCollectionId) -> Result<usize, usize> {
        if self.entries.len() <= Self::SCAN {
            let at = self
                .entries
                .iter()
                .position(|&(id, _)| id >= icid)
                .unwrap_or(self.entries.len());
            return match self.entries.get(at) {
                Some(&(id, _)) if id == icid => Ok(at),
                _ => Err(at),
            };
        }
        self.entries.binary_search_by_key(&icid, |&(id, _)| id)
    }

    fn get(&self, icid: VirtCollectionId) -> Option<&CollectionEntry> {
        let at = self.find(icid).ok()?;
        self.entries.get(at).map(|(_, entry)| entry)
    }

    fn get_mut(&mut self, icid: VirtCollectionId) -> Option<&mut CollectionEntry> {
        let at = self.find(icid).ok()?;
        self.entries.get_mut(at).map(|(_, entry)| entry)
    }

    /// Room for one more entry if `icid` has none.
    fn reserve_for(&mut self, icid: VirtCollectionId) -> Result<(), NoMemory> {
        if self.find(icid).is_err() {
            self.entries.try_reserve(1).map_err(|_| NoMemory)?;
        }
        Ok(())
    }

    /// The entry of `icid`, made empty if it had none (the caller reserved
    /// room with [`Self::reserve_for`]; without room, None).
    fn entry(&mut self, icid: VirtCollectionId) -> Option<&mut CollectionEntry> {
        let at = match self.find(icid) {
            Ok(at) => at,
            Err(at) => {
                if self.entries.len() == self.entries.capacity() {
                    return None;
                }
                let empty = CollectionEntry {
                    vcpu: None,
                    events: 0,
                };
                self.entries.insert(at, (icid, empty));
                at
            }
        };
        self.entries.get_mut(at).map(|(_, entry)| entry)
    }

    /// Drops the entry of `icid` if it holds nothing.
    fn tidy(&mut self, icid: VirtCollectionId) {
        if let Ok(at) = self.find(icid) {
            if self
                .entries
                .get(at)
                .is_some_and(|(_, e)| e.events == 0 && e.vcpu.is_none())
            {
                self.entries.remove(at);
            }
        }
    }
}

/// Devices, events and collections of one vITS.
#[derive(Clone, Debug, Default)]
pub struct TranslationState {
    /// Mapped DeviceIDs, ascending, each with its place in `entries`.
    order: Vec<(VirtDeviceId, u32)>,
    /// Device entries at stable places; None where a device was unmapped.
    entries: Vec<Option<DeviceMeta>>,
    /// Places of `entries` that are None (its capacity is that of
    /// `entries`, so returning a place never allocates).
    free: Vec<u32>,
    /// DeviceID -> event table and place in `entries`.
    index: DeviceIndex,
    /// Mapped collections, and ICIDs that events name (mapped or not).
    collections: Collections,
    event_count: usize,
    slots: SlotAllowance,
}

impl PartialEq for TranslationState {
    /// Equal when the mappings are (see [`Device`]'s equality).
    fn eq(&self, other: &Self) -> bool {
        self.devices().eq(other.devices()) && self.collections().eq(other.collections())
    }
}

impl Eq for TranslationState {}

/// An index slot: a DeviceID, its place and its event table, or vacant
/// (`place == VACANT`, no table).
#[derive(Clone, Debug, PartialEq, Eq)]
struct IndexSlot {
    device: u32,
    place: u32,
    /// Events by EventID below `table.len()`; a free slot is [`FREE`].
    table: Vec<EventEntry>,
}

/// DeviceID -> slot: open addressing with linear probing, a power-of-two
/// number of slots, at most half of them used.
#[derive(Clone, Debug, Default)]
struct DeviceIndex {
    slots: Vec<IndexSlot>,
    used: usize,
}

impl DeviceIndex {
    const VACANT: u32 = u32::MAX;
    const MIN_SLOTS: usize = 16;

    const fn vacant() -> IndexSlot {
        IndexSlot {
            device: 0,
            place: Self::VACANT,
            table: Vec::new(),
        }
    }

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
            if slot.place == Self::VACANT {
                return None;
            }
            if slot.device == device {
                return Some(at);
            }
            at = (at + 1) & self.mask();
        }
        None
    }

    fn get(&self, device: u32) -> Option<&IndexSlot> {
        self.slots.get(self.find(device)?)
    }

    fn get_mut(&mut self, device: u32) -> Option<&mut IndexSlot> {
        let at = self.find(device)?;
        self.slots.get_mut(at)
    }

    /// Makes room for one more device, growing (fallibly) if that would
    /// fill more than half the slots.
    fn reserve_one(&mut self) -> Result<(), NoMemory> {
        if self.used.saturating_add(1).saturating_mul(2) <= self.slots.len() {
            return Ok(());
        }
        let size = self.slots.len().saturating_mul(2).max(Self::MIN_SLOTS);
        let mut grown = Vec::new();
        grown.try_reserve_exact(size).map_err(|_| NoMemory)?;
        grown.resize_with(size, Self::vacant);
        let old = core::mem::replace(&mut self.slots, grown);
        for slot in old.into_iter().filter(|s| s.place != Self::VACANT) {
            self.put(slot);
        }
        Ok(())
    }

    /// Adds `device` (not in the index) at `place`; the caller made room
    /// with [`Self::reserve_one`].
    fn insert(&mut self, device: u32, place: u32) {
        self.put(IndexSlot {
            device,
            place,
            table: Vec::new(),
        });
        self.used = self.used.saturating_add(1);
    }

    /// Writes `slot` at the first vacant slot of its probe sequence.
    fn put(&mut self, slot: IndexSlot) {
        let mut at = self.home(slot.device);
        for _ in 0..self.slots.len() {
            let mask = self.mask();
            match self.slots.get_mut(at) {
                Some(vacant) if vacant.place == Self::VACANT => {
                    *vacant = slot;
                    return;
                }
                Some(_) => at = (at + 1) & mask,
                None => return,
            }
        }
    }

    /// Removes `device`; returns its slot. Later slots of the probe
    /// sequence move back into the hole (no tombstones).
    fn remove(&mut self, device: u32) -> Option<IndexSlot> {
        let mut hole = self.find(device)?;
        let removed = core::mem::replace(self.slots.get_mut(hole)?, Self::vacant());
        let mut next = hole;
        loop {
            next = (next + 1) & self.mask();
            let Some(slot) = self.slots.get(next) else {
                break;
            };
            if slot.place == Self::VACANT || next == hole {
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
                self.slots.swap(hole, next);
                hole = next;
            }
        }
        self.used = self.used.saturating_sub(1);
        Some(removed)
    }
}

/// The devices [`TranslationState::take_devices`] took, by DeviceID (taking
/// them allocates nothing: the state's structures move out whole).
#[derive(Debug)]
pub struct TakenDevices {
    order: alloc::vec::IntoIter<(VirtDeviceId, u32)>,
    entries: Vec<Option<DeviceMeta>>,
    index: DeviceIndex,
}

impl Iterator for TakenDevices {
    type Item = (VirtDeviceId, DeviceEntry);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (id, place) = self.order.next()?;
            let table = self
                .index
                .get_mut(id.get())
                .map(|slot| core::mem::take(&mut slot.table))
                .unwrap_or_default();
            if let Some(meta) = self
                .entries
                .get_mut(place_index(place))
                .and_then(Option::take)
            {
                return Some((id, DeviceEntry::new(meta, table)));
            }
        }
    }
}

impl TranslationState {
    /// An empty state whose event tables hold at most `2 * max_events`
    /// slots together (events beyond go to per-device sparse lists).
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

    /// The device of an index slot.
    fn view<'a>(&'a self, slot: &'a IndexSlot) -> Option<Device<'a>> {
        let meta = self.entries.get(place_index(slot.place))?.as_ref()?;
        Some(Device {
            backing: meta.backing,
            event_bits: meta.event_bits,
            itt_addr: meta.itt_addr,
            table: &slot.table,
            sparse: &meta.sparse,
            mapped: meta.mapped,
        })
    }

    /// The device mapped at `device`.
    pub fn device(&self, device: VirtDeviceId) -> Option<Device<'_>> {
        self.view(self.index.get(device.get())?)
    }

    /// Every mapped device, by DeviceID.
    pub fn devices(&self) -> impl Iterator<Item = (VirtDeviceId, Device<'_>)> + '_ {
        self.order
            .iter()
            .filter_map(|&(id, _)| Some((id, self.device(id)?)))
    }

    /// The mapping of `event` of `device`: the index slot, then the table
    /// slot (the device entry only for an EventID beyond the table).
    pub fn event(&self, device: VirtDeviceId, event: EventId) -> Option<EventEntry> {
        let slot = self.index.get(device.get())?;
        match slot.table.get(slot_index(event)) {
            Some(&mapping) => (mapping != FREE).then_some(mapping),
            None => self.view(slot)?.event(event),
        }
    }

    /// The vCPU collection `icid` targets.
    pub fn collection(&self, icid: VirtCollectionId) -> Option<VcpuIndex> {
        self.collections.get(icid)?.vcpu
    }

    /// How many events name `icid` (mapped or not): what a MAPC of it
    /// touches.
    pub fn collection_event_count(&self, icid: VirtCollectionId) -> usize {
        self.collections.get(icid).map_or(0, |entry| entry.events)
    }

    /// Every mapped collection.
    pub fn collections(&self) -> impl Iterator<Item = (VirtCollectionId, VcpuIndex)> + '_ {
        self.collections
            .entries
            .iter()
            .filter_map(|&(id, entry)| Some((id, entry.vcpu?)))
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

    /// Like [`Self::events_in_collection`], with each event's device and
    /// mapping.
    pub(super) fn collection_events(
        &self,
        icid: VirtCollectionId,
    ) -> impl Iterator<Item = (VirtDeviceId, Device<'_>, EventId, EventEntry)> + '_ {
        let named = self.collection_event_count(icid);
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

    /// Maps a new device with no events, replacing any old one. Fails with
    /// nothing changed if the heap cannot hold it (never when `device` was
    /// mapped: its room is reused).
    pub(super) fn insert_device(
        &mut self,
        device: VirtDeviceId,
        backing: DeviceBacking,
        event_bits: u8,
        itt_addr: Ipa,
    ) -> Result<(), NoMemory> {
        self.remove_device(device);
        // Room first, in every structure, so a failure changes nothing.
        self.order.try_reserve(1).map_err(|_| NoMemory)?;
        if self.free.is_empty() {
            if u32::try_from(self.entries.len()).is_err() {
                return Err(NoMemory);
            }
            self.entries.try_reserve(1).map_err(|_| NoMemory)?;
            let capacity = self.entries.capacity();
            self.free
                .try_reserve(capacity.saturating_sub(self.free.len()))
                .map_err(|_| NoMemory)?;
        }
        self.index.reserve_one()?;
        let meta = DeviceMeta {
            backing,
            event_bits,
            itt_addr,
            sparse: Vec::new(),
            mapped: 0,
        };
        let place = match self.free.pop() {
            Some(place) => place,
            None => {
                let place = u32::try_from(self.entries.len()).map_err(|_| NoMemory)?;
                self.entries.push(None);
                place
            }
        };
        if let Some(slot) = self.entries.get_mut(place_index(place)) {
            *slot = Some(meta);
        }
        let at = self.order.partition_point(|&(id, _)| id < device);
        self.order.insert(at, (device, place));
        self.index.insert(device.get(), place);
        Ok(())
    }

    /// Unmaps a device and returns it with the events it had.
    pub(super) fn remove_device(&mut self, device: VirtDeviceId) -> Option<DeviceEntry> {
        let slot = self.index.remove(device.get())?;
        let meta = self.entries.get_mut(place_index(slot.place))?.take()?;
        // Within the capacity reserved when the place was made.
        self.free.push(slot.place);
        if let Ok(at) = self.order.binary_search_by_key(&device, |&(id, _)| id) {
            self.order.remove(at);
        }
        let entry = DeviceEntry::new(meta, slot.table);
        for (_, mapping) in entry.events() {
            self.forget_event(mapping.icid);
        }
        self.event_count = self.event_count.saturating_sub(entry.mapped);
        self.slots.give_back(entry.table.len());
        Some(entry)
    }

    /// Maps `event` of a mapped `device`; Ok(false) if the device is not
    /// mapped or the event already is (or `mapping` names INTID 0, which is
    /// no LPI); fails with nothing changed if the heap cannot hold it.
    pub(super) fn insert_event(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
        mapping: EventEntry,
    ) -> Result<bool, NoMemory> {
        if mapping == FREE || self.event(device, event).is_some() {
            return Ok(false);
        }
        let Some(slot) = self.index.get_mut(device.get()) else {
            return Ok(false);
        };
        let Some(Some(meta)) = self.entries.get_mut(place_index(slot.place)) else {
            return Ok(false);
        };
        self.collections.reserve_for(mapping.icid)?;
        let index = slot_index(event);
        let old = slot.table.len();
        let mut in_table = index < old;
        if !in_table {
            if let Some((len, needed)) =
                table_growth(old, index, meta.event_bits, meta.mapped, &self.slots)
            {
                // The doubled size, else the bare minimum; else sparse.
                if try_grow_table(&mut slot.table, len).is_ok()
                    || try_grow_table(&mut slot.table, needed).is_ok()
                {
                    self.slots.take(slot.table.len() - old);
                    // Sparse events the table now covers move into it, so
                    // the table holds everything below its end and the
                    // sparse list the rest.
                    let end = slot.table.len();
                    let moved = meta.sparse.partition_point(|&(id, _)| slot_index(id) < end);
                    for (id, moved_mapping) in meta.sparse.drain(..moved) {
                        if let Some(to) = slot.table.get_mut(slot_index(id)) {
                            *to = moved_mapping;
                        }
                    }
                    in_table = index < end;
                }
            }
        }
        if in_table {
            if let Some(to) = slot.table.get_mut(index) {
                *to = mapping;
            }
        } else {
            meta.sparse.try_reserve(1).map_err(|_| NoMemory)?;
            let at = meta.sparse.partition_point(|&(id, _)| id < event);
            meta.sparse.insert(at, (event, mapping));
        }
        meta.mapped = meta.mapped.saturating_add(1);
        if let Some(entry) = self.collections.entry(mapping.icid) {
            entry.events = entry.events.saturating_add(1);
        }
        self.event_count = self.event_count.saturating_add(1);
        Ok(true)
    }

    /// Unmaps `event` of `device` and returns what it was.
    pub(super) fn remove_event(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
    ) -> Option<EventEntry> {
        let slot = self.index.get_mut(device.get())?;
        let meta = self.entries.get_mut(place_index(slot.place))?.as_mut()?;
        let old = match slot.table.get_mut(slot_index(event)) {
            Some(to) if *to == FREE => None,
            Some(to) => Some(core::mem::replace(to, FREE)),
            None => {
                let at = meta
                    .sparse
                    .binary_search_by_key(&event, |&(id, _)| id)
                    .ok()?;
                Some(meta.sparse.remove(at).1)
            }
        }?;
        meta.mapped = meta.mapped.saturating_sub(1);
        self.forget_event(old.icid);
        self.event_count = self.event_count.saturating_sub(1);
        Some(old)
    }

    /// Points a mapped event at another collection; false (nothing
    /// changed) if the event is not mapped or the heap cannot hold an
    /// entry for `icid` (which only an ICID no MAPC mapped and no event
    /// names can need).
    pub(super) fn set_event_collection(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
        icid: VirtCollectionId,
    ) -> bool {
        if self.event(device, event).is_none() || self.collections.reserve_for(icid).is_err() {
            return false;
        }
        let Some(slot) = self.index.get_mut(device.get()) else {
            return false;
        };
        let Some(Some(meta)) = self.entries.get_mut(place_index(slot.place)) else {
            return false;
        };
        let mapping = match slot.table.get_mut(slot_index(event)) {
            Some(to) => Some(to),
            None => meta
                .sparse
                .binary_search_by_key(&event, |&(id, _)| id)
                .ok()
                .and_then(|at| meta.sparse.get_mut(at))
                .map(|(_, mapping)| mapping),
        };
        let Some(mapping) = mapping.filter(|m| **m != FREE) else {
            return false;
        };
        let old = core::mem::replace(&mut mapping.icid, icid);
        if old != icid {
            if let Some(entry) = self.collections.entry(icid) {
                entry.events = entry.events.saturating_add(1);
            }
            self.forget_event(old);
        }
        true
    }

    /// Maps (or remaps) a collection to a vCPU; returns the old target.
    /// Fails with nothing changed if the heap cannot hold a new entry.
    pub(super) fn map_collection(
        &mut self,
        icid: VirtCollectionId,
        vcpu: VcpuIndex,
    ) -> Result<Option<VcpuIndex>, NoMemory> {
        self.collections.reserve_for(icid)?;
        let entry = self.collections.entry(icid).ok_or(NoMemory)?;
        Ok(entry.vcpu.replace(vcpu))
    }

    /// Unmaps a collection; returns the old target.
    pub(super) fn unmap_collection(&mut self, icid: VirtCollectionId) -> Option<VcpuIndex> {
        let old = self.collections.get_mut(icid)?.vcpu.take();
        self.collections.tidy(icid);
        old
    }

    /// Unmaps every device; returns them with their events, by DeviceID.
    pub(super) fn take_devices(&mut self) -> TakenDevices {
        self.collections.entries.retain_mut(|(_, entry)| {
            entry.events = 0;
            entry.vcpu.is_some()
        });
        self.event_count = 0;
        self.slots.used = 0;
        self.free = Vec::new();
        TakenDevices {
            order: core::mem::take(&mut self.order).into_iter(),
            entries: core::mem::take(&mut self.entries),
            index: core::mem::take(&mut self.index),
        }
    }

    /// Unmaps every collection; returns them, by ICID. (The list is the
    /// state's one infallible allocation: a teardown, at most 4 bytes per
    /// mapped collection.)
    pub(super) fn take_collections(&mut self) -> Vec<(VirtCollectionId, VcpuIndex)> {
        let taken = self.collections().collect();
        self.collections.entries.retain_mut(|(_, entry)| {
            entry.vcpu = None;
            entry.events > 0
        });
        taken
    }

    /// One event fewer names `icid`.
    fn forget_event(&mut self, icid: VirtCollectionId) {
        if let Some(entry) = self.collections.get_mut(icid) {
            entry.events = entry.events.saturating_sub(1);
        }
        self.collections.tidy(icid);
    }
}
