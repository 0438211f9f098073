//! What the device gets instead of the guest's MSI and MSI-X programming.
//!
//! The guest writes its vITS doorbell (GITS_TRANSLATER, an IPA) and its
//! EventID. The device is given the physical GITS_TRANSLATER and the same
//! EventID: the hypervisor MAPDs each passthrough function on the physical
//! ITS with an ITT of its own (`event_bits` EventID bits), so within that
//! function the guest's EventID names the physical event one to one, and
//! no other function or partition shares the ITT. Whatever the guest
//! writes, the device is only ever pointed at the physical doorbell; a
//! guest address that is not its vITS doorbell, or an EventID the ITT
//! cannot hold, keeps the physical vector masked (MSI: disabled).
//!
//! A physical MSI-X entry is rewritten so that the device never sees a
//! half-written entry unmasked (PCI LB 3.0, 6.8.2.9: software masks a
//! vector while changing it): mask first, then address and data, then the
//! vector control the guest asked for.

use alloc::vec::Vec;

use super::function::VirtualFunction;
use super::msix::MsixPageRegion;
use super::{GuestMsiState, MsixEntry, VirtBdf, VirtualHostBridge};
use crate::mm::addr::PhysAddr;
use crate::pci::regs::msix;
use crate::pci::MsiMessage;

/// Where a partition's passthrough MSIs must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiTarget {
    /// The only message address the guest may program: its vITS GITS_TRANSLATER (an IPA).
    pub guest_doorbell: u64,
    /// What the device is given instead: the physical GITS_TRANSLATER.
    pub physical_doorbell: PhysAddr,
    /// log2 of the EventIDs the hypervisor's ITT for a function holds.
    pub event_bits: u32,
}

impl MsiTarget {
    /// Whether EventIDs `first..=last` fit the function's ITT.
    fn holds(&self, last: u64) -> bool {
        last < 1u64 << self.event_bits.min(32)
    }
}

/// Why the device does not get a vector the guest enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldReason {
    /// The message address is not the guest's vITS doorbell.
    NotTheDoorbell {
        /// What the guest wrote.
        address: u64,
    },
    /// The EventID (message data) is beyond the function's ITT.
    EventOutOfRange {
        /// The (last) EventID the guest asked for.
        event: u64,
    },
}

impl core::fmt::Display for HeldReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotTheDoorbell { address } => {
                write!(f, "address {address:#x} is not the vITS doorbell")
            }
            Self::EventOutOfRange { event } => {
                write!(f, "EventID {event:#x} is beyond the function's ITT")
            }
        }
    }
}

/// One MSI-X table entry as the device holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysicalVector {
    /// Message address: always the physical doorbell.
    pub address: PhysAddr,
    /// Message data: the EventID (0 while held for a bad EventID).
    pub data: u32,
    /// Vector control bit 0.
    pub masked: bool,
}

impl MsixEntry {
    /// The physical entry for this guest entry, and why it is masked
    /// against the guest's wish, if it is.
    pub fn physical(&self, target: &MsiTarget) -> (PhysicalVector, Option<HeldReason>) {
        let data_ok = target.holds(u64::from(self.data));
        let held = if self.masked {
            None
        } else if self.address != target.guest_doorbell {
            Some(HeldReason::NotTheDoorbell {
                address: self.address,
            })
        } else if !data_ok {
            Some(HeldReason::EventOutOfRange {
                event: u64::from(self.data),
            })
        } else {
            None
        };
        let vector = PhysicalVector {
            address: target.physical_doorbell,
            data: if data_ok { self.data } else { 0 },
            masked: self.masked || held.is_some(),
        };
        (vector, held)
    }
}

impl GuestMsiState {
    /// The physical MSI for these settings, and why it stays disabled
    /// against the guest's wish, if it does.
    pub fn physical(&self, target: &MsiTarget) -> (MsiMessage, Option<HeldReason>) {
        // Vector n of a multiple-message function sends data + n (6.8.1.5).
        let last = u64::from(self.data) + (1u64 << self.vectors_log2) - 1;
        let held = if !self.enabled {
            None
        } else if self.address != target.guest_doorbell {
            Some(HeldReason::NotTheDoorbell {
                address: self.address,
            })
        } else if !target.holds(last) {
            Some(HeldReason::EventOutOfRange { event: last })
        } else {
            None
        };
        let message = MsiMessage {
            address: target.physical_doorbell.raw(),
            data: if target.holds(last) { self.data } else { 0 },
            vectors_log2: self.vectors_log2,
            mask: self.mask,
            enable: self.enabled && held.is_none(),
        };
        (message, held)
    }
}

/// One 32-bit write to a physical MSI-X table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableWrite {
    /// Where (in the function's BAR, as the CPU reaches it).
    pub address: PhysAddr,
    /// What.
    pub value: u32,
}

/// The writes that take the physical entry at `entry` from `before` (None:
/// unknown) to `after`. The entry is masked while its address or data
/// change, so the device never sends a message half written.
pub fn reprogram(
    entry: PhysAddr,
    before: Option<PhysicalVector>,
    after: PhysicalVector,
) -> Vec<TableWrite> {
    let mut writes = Vec::new();
    let mut at = |offset: u64, value: u32| {
        if let Some(address) = entry.checked_add(offset) {
            writes.push(TableWrite { address, value });
        }
    };
    let content_changes = before.is_none_or(|b| b.address != after.address || b.data != after.data);
    // What the device's mask bit is now, as far as we know.
    let mut masked = before.map(|b| b.masked);
    if content_changes {
        if masked != Some(true) {
            at(12, msix::VECTOR_MASKED);
            masked = Some(true);
        }
        at(0, after.address.raw() as u32);
        at(4, (after.address.raw() >> 32) as u32);
        at(8, after.data);
    }
    if masked != Some(after.masked) {
        at(12, if after.masked { msix::VECTOR_MASKED } else { 0 });
    }
    writes
}

/// What the kernel does to one physical vector after a guest change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorProgram {
    /// The vector.
    pub vector: u16,
    /// The guest's entry.
    pub guest: MsixEntry,
    /// What the device now holds.
    pub physical: PhysicalVector,
    /// Why it is masked against the guest's wish, if it is.
    pub held: Option<HeldReason>,
    /// This is the first vector of the function held in this partition life (log it).
    pub first_hold: bool,
    /// The writes, in order; the kernel reads the entry back after them
    /// (a read flushes posted writes to the device).
    pub writes: Vec<TableWrite>,
}

impl VirtualHostBridge {
    /// Where the CPU reaches entry `vector` of `function`'s physical table.
    fn physical_entry(function: &VirtualFunction, vector: u16) -> Option<PhysAddr> {
        let table = function.msix.as_ref()?.capability().table;
        let bar = function.bars.iter().find(|b| b.index == table.bar)?;
        bar.host?
            .checked_add(u64::from(table.offset))?
            .checked_add(u64::from(vector) * msix::ENTRY_SIZE)
    }

    /// Brings the device's MSI-X entry `vector` of `device` in line with
    /// the guest's entry. `None` if there is no such vector, or if the
    /// device's memory decode is off (its table cannot be written then:
    /// the entry is forgotten and rewritten by [`Self::msix_sync`]).
    pub fn msix_program(
        &mut self,
        device: VirtBdf,
        vector: u16,
        target: &MsiTarget,
    ) -> Option<VectorProgram> {
        let function = self.function_mut(device)?;
        let entry = Self::physical_entry(function, vector)?;
        let decoding = function.memory_enabled;
        let msix = function.msix.as_mut()?;
        let guest = msix.entry(vector)?;
        if !decoding {
            msix.set_shadow(vector, None);
            return None;
        }
        let (physical, held) = guest.physical(target);
        let writes = reprogram(entry, msix.shadow(vector), physical);
        msix.set_shadow(vector, Some(physical));
        let first_hold = held.is_some() && msix.first_hold();
        Some(VectorProgram {
            vector,
            guest,
            physical,
            held,
            first_hold,
            writes,
        })
    }

    /// Rewrites every physical vector of `device` from the guest's table,
    /// forgetting what the device was thought to hold (memory decode was
    /// just switched on: the table may hold anything, e.g. from before).
    pub fn msix_sync(&mut self, device: VirtBdf, target: &MsiTarget) -> Vec<VectorProgram> {
        let Some(msix) = self.function_mut(device).and_then(|f| f.msix.as_mut()) else {
            return Vec::new();
        };
        let vectors = msix.vectors();
        for vector in 0..vectors {
            msix.set_shadow(vector, None);
        }
        (0..vectors)
            .filter_map(|vector| self.msix_program(device, vector, target))
            .collect()
    }

    /// Masks every physical MSI-X vector of every function whose memory
    /// decode is on (partition stop or reset, before decode goes off).
    pub fn msix_mask_all(&mut self) -> Vec<TableWrite> {
        let mut writes = Vec::new();
        for function in &mut self.functions {
            if !function.memory_enabled {
                continue;
            }
            let vectors = function.msix.as_ref().map_or(0, |m| m.vectors());
            for vector in 0..vectors {
                let Some(address) =
                    Self::physical_entry(function, vector).and_then(|entry| entry.checked_add(12))
                else {
                    continue;
                };
                writes.push(TableWrite {
                    address,
                    value: msix::VECTOR_MASKED,
                });
                if let Some(msix) = function.msix.as_mut() {
                    msix.set_shadow(vector, None);
                }
            }
        }
        writes
    }

    /// The BARs holding MSI-X tables, as the CPU reaches them: (device,
    /// base, size), for the kernel to map at EL2.
    pub fn msix_table_bars(&self) -> Vec<(VirtBdf, PhysAddr, u64)> {
        self.functions
            .iter()
            .filter_map(|f| {
                let table = f.msix.as_ref()?.capability().table;
                let bar = f.bars.iter().find(|b| b.index == table.bar)?;
                Some((f.virt, bar.host?, bar.size))
            })
            .collect()
    }

    /// Which part of `device`'s MSI-X page `bar_offset` (in the table's BAR) reaches.
    pub fn msix_page_region(&self, device: VirtBdf, bar_offset: u64) -> Option<MsixPageRegion> {
        Some(self.function(device)?.msix.as_ref()?.region(bar_offset))
    }
}
