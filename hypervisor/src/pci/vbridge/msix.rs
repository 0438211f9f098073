//! The guest's view of MSI-X (PCI LB 3.0, 6.8.2): the capability's enable
//! and function-mask bits, and the vector table the kernel traps.
//!
//! The table lives in a BAR; the kernel unmaps the page(s) holding it from
//! the guest's stage 2 and sends the guest's accesses here. The guest's
//! addresses and data stay in this table (read back as written) and each
//! change is reported, so the kernel programs the physical entry with the
//! physical doorbell and EventID (`program.rs`); what the device holds is
//! shadowed here, so each change costs only the writes it needs. The PBA
//! is not emulated: it reads through, and guest writes to it are dropped.

use alloc::vec::Vec;

use super::program::PhysicalVector;
use super::{DwordWrite, GuestAccessError};
use crate::pci::regs::msix;
use crate::pci::{Bdf, ConfigAccess, MsixCapability};
use crate::vits::AccessWidth;

/// One MSI-X vector as the guest last wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixEntry {
    /// Message address (an IPA: the guest's vITS GITS_TRANSLATER).
    pub address: u64,
    /// Message data (the guest's EventID).
    pub data: u32,
    /// Vector control bit 0: the vector is masked.
    pub masked: bool,
}

impl MsixEntry {
    /// An entry as it is after reset: zero, masked (6.8.2.9).
    pub const RESET: MsixEntry = MsixEntry {
        address: 0,
        data: 0,
        masked: true,
    };

    /// The four dwords of the entry in table layout, e.g. to write a physical entry.
    pub const fn to_dwords(&self) -> [u32; 4] {
        let control = if self.masked { msix::VECTOR_MASKED } else { 0 };
        [
            self.address as u32,
            (self.address >> 32) as u32,
            self.data,
            control,
        ]
    }
}

/// MSI-X emulation for one function: control bits and the vector table.
#[derive(Clone, Debug)]
pub(super) struct MsixEmulation {
    cap: MsixCapability,
    enabled: bool,
    function_mask: bool,
    table: Vec<MsixEntry>,
    /// What each physical entry holds, as far as the hypervisor knows (None: unknown).
    physical: Vec<Option<PhysicalVector>>,
    /// A vector of the function was held masked in this partition life (logged once).
    held_reported: bool,
}

/// What part of a trapped MSI-X page an offset reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixPageRegion {
    /// The vector table: emulated.
    Table,
    /// The pending bit array: reads through, writes are dropped (software
    /// never writes pending bits, PCI LB 3.0, 6.8.2.10).
    PendingBits,
    /// Another register of the device on the same page: through.
    Device,
}

/// A change the guest made to MSI-X.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MsixChange {
    /// The capability's enable or function-mask bit.
    Control { enabled: bool, function_mask: bool },
    /// A table entry.
    Vector { vector: u16, entry: MsixEntry },
}

impl MsixEmulation {
    /// The emulation of `cap` in its reset state.
    pub(super) fn new(cap: MsixCapability) -> Self {
        Self {
            cap,
            enabled: false,
            function_mask: false,
            table: alloc::vec![MsixEntry::RESET; usize::from(cap.table_size)],
            physical: alloc::vec![None; usize::from(cap.table_size)],
            held_reported: false,
        }
    }

    /// The capability being emulated (table and PBA locations).
    pub(super) fn capability(&self) -> &MsixCapability {
        &self.cap
    }

    /// (enable, function mask) as the guest set them.
    pub(super) fn control(&self) -> (bool, bool) {
        (self.enabled, self.function_mask)
    }

    /// The guest's entry for `vector`.
    pub(super) fn entry(&self, vector: u16) -> Option<MsixEntry> {
        self.table.get(usize::from(vector)).copied()
    }

    /// Back to the reset state (a partition reset).
    pub(super) fn reset(&mut self) {
        self.enabled = false;
        self.function_mask = false;
        self.table.fill(MsixEntry::RESET);
        self.physical.fill(None);
        self.held_reported = false;
    }

    /// The number of vectors.
    pub(super) fn vectors(&self) -> u16 {
        self.table.len() as u16
    }

    /// What the device's entry `vector` holds, as far as known.
    pub(super) fn shadow(&self, vector: u16) -> Option<PhysicalVector> {
        self.physical.get(usize::from(vector)).copied().flatten()
    }

    /// Records what the device's entry `vector` now holds (None: unknown).
    pub(super) fn set_shadow(&mut self, vector: u16, value: Option<PhysicalVector>) {
        if let Some(slot) = self.physical.get_mut(usize::from(vector)) {
            *slot = value;
        }
    }

    /// True the first time a vector is held in this partition life.
    pub(super) fn first_hold(&mut self) -> bool {
        !core::mem::replace(&mut self.held_reported, true)
    }

    /// Which region of the table's BAR `bar_offset` falls in.
    pub(super) fn region(&self, bar_offset: u64) -> MsixPageRegion {
        let inside = |r: &crate::pci::BarRegion| {
            let start = u64::from(r.offset);
            (start..start + u64::from(r.size)).contains(&bar_offset)
        };
        if inside(&self.cap.table) {
            MsixPageRegion::Table
        } else if self.cap.pba.bar == self.cap.table.bar && inside(&self.cap.pba) {
            MsixPageRegion::PendingBits
        } else {
            MsixPageRegion::Device
        }
    }

    /// Whether config-space dword `offset` lies in the capability (12 bytes).
    pub(super) fn contains(&self, offset: u16) -> bool {
        let start = u16::from(self.cap.offset);
        offset >= start && offset < start + 12
    }

    /// The guest-visible dword at config offset `offset` (dword aligned, inside).
    pub(super) fn read<A: ConfigAccess + ?Sized>(&self, access: &A, phys: Bdf, offset: u16) -> u32 {
        let base = u16::from(self.cap.offset);
        match offset - base {
            0 => {
                let header = access.read32(phys, base);
                let mut control = (header >> 16) as u16 & msix::TABLE_SIZE_MASK;
                if self.enabled {
                    control |= msix::ENABLE;
                }
                if self.function_mask {
                    control |= msix::FUNCTION_MASK;
                }
                header & 0xffff | u32::from(control) << 16
            }
            // Table and PBA offset/BIR are read-only: as the device has them.
            msix::TABLE => self.cap.table.offset | u32::from(self.cap.table.bar),
            msix::PBA => self.cap.pba.offset | u32::from(self.cap.pba.bar),
            _ => 0,
        }
    }

    /// Applies a guest write to the capability; reports a control change.
    pub(super) fn write_capability(
        &mut self,
        write: &DwordWrite,
        current: u32,
    ) -> Option<MsixChange> {
        if write.offset != u16::from(self.cap.offset) || write.mask & 0xffff_0000 == 0 {
            return None;
        }
        let control = (write.merge(current) >> 16) as u16;
        let before = (self.enabled, self.function_mask);
        self.enabled = control & msix::ENABLE != 0;
        self.function_mask = control & msix::FUNCTION_MASK != 0;
        let (enabled, function_mask) = (self.enabled, self.function_mask);
        ((enabled, function_mask) != before).then_some(MsixChange::Control {
            enabled,
            function_mask,
        })
    }

    /// Locates a table access: (vector, byte offset in the entry), or why not.
    fn locate(&self, bar_offset: u64, width: AccessWidth) -> Result<(u16, u64), GuestAccessError> {
        let start = u64::from(self.cap.table.offset);
        let end = start + u64::from(self.cap.table.size);
        if bar_offset < start || bar_offset >= end {
            return Err(GuestAccessError::NotInMsixTable { offset: bar_offset });
        }
        // 6.8.2: the table is accessed with aligned dwords or aligned qwords.
        let bytes = match width {
            AccessWidth::Word => 4,
            AccessWidth::Double => 8,
            AccessWidth::Byte | AccessWidth::Half => return Err(GuestAccessError::BadWidth),
        };
        let relative = bar_offset - start;
        if !relative.is_multiple_of(bytes) {
            return Err(GuestAccessError::Misaligned { offset: bar_offset });
        }
        let vector = u16::try_from(relative / msix::ENTRY_SIZE)
            .map_err(|_| GuestAccessError::NotInMsixTable { offset: bar_offset })?;
        Ok((vector, relative % msix::ENTRY_SIZE))
    }

    /// Reads the table at `bar_offset` (an offset in the table's BAR).
    pub(super) fn read_table(
        &self,
        bar_offset: u64,
        width: AccessWidth,
    ) -> Result<u64, GuestAccessError> {
        let (vector, within) = self.locate(bar_offset, width)?;
        let entry = self
            .entry(vector)
            .ok_or(GuestAccessError::NotInMsixTable { offset: bar_offset })?;
        let dwords = entry.to_dwords();
        let dword = |i: u64| u64::from(dwords.get(i as usize).copied().unwrap_or(0));
        Ok(match width {
            AccessWidth::Double => dword(within / 4) | dword(within / 4 + 1) << 32,
            _ => dword(within / 4),
        })
    }

    /// Writes the table at `bar_offset`; reports the entry if it changed.
    pub(super) fn write_table(
        &mut self,
        bar_offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<Option<MsixChange>, GuestAccessError> {
        let (vector, within) = self.locate(bar_offset, width)?;
        let entry = self
            .table
            .get_mut(usize::from(vector))
            .ok_or(GuestAccessError::NotInMsixTable { offset: bar_offset })?;
        let before = *entry;
        let mut dwords = entry.to_dwords();
        let first = (within / 4) as usize;
        let count = if width == AccessWidth::Double { 2 } else { 1 };
        for i in 0..count {
            if let Some(slot) = dwords.get_mut(first + i) {
                *slot = (value >> (32 * i)) as u32;
            }
        }
        *entry = MsixEntry {
            address: u64::from(dwords[0]) | u64::from(dwords[1]) << 32,
            data: dwords[2],
            // Vector control bits 31:1 are reserved (read as zero here).
            masked: dwords[3] & msix::VECTOR_MASKED != 0,
        };
        Ok((*entry != before).then_some(MsixChange::Vector {
            vector,
            entry: *entry,
        }))
    }
}
