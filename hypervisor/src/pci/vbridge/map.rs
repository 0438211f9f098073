//! Which BARs the guest may reach, and where: the stage-2 mappings the
//! kernel keeps in step with the guest's BAR and COMMAND writes.

use alloc::vec::Vec;

use super::function::{GuestBar, VirtualFunction};
use super::{VirtBdf, VirtualHostBridge};
use crate::mm::addr::{Ipa, PhysAddr, Range};
use crate::pci::Bdf;

/// Stage-2 granule: BARs are mapped in whole pages.
const PAGE: u64 = 4096;

/// A BAR page range to map in the guest's stage 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarMapping {
    /// The device as the guest names it.
    pub device: VirtBdf,
    /// The physical function.
    pub physical: Bdf,
    /// BAR number.
    pub bar: u8,
    /// Where the guest has it (page aligned, size rounded up to a page).
    pub guest: Range<Ipa>,
    /// Where the device's BAR is.
    pub host: PhysAddr,
}

impl VirtualHostBridge {
    /// Every BAR the guest may reach now: memory decode on, page aligned,
    /// inside one of its windows, not overlapping another mapped BAR.
    ///
    /// Both BARs of an overlapping pair are left out: the hardware outcome
    /// of overlapping decode is undefined, and neither may shadow the other.
    pub fn mappings(&self) -> Vec<BarMapping> {
        let mut candidates: Vec<BarMapping> = Vec::new();
        for function in self.functions.iter().filter(|f| f.memory_enabled) {
            for bar in function.bars.iter().filter(|b| b.kind.is_memory()) {
                if let Some(mapping) = self.map_bar(function, bar) {
                    candidates.push(mapping);
                }
            }
        }
        let overlaps = |a: &BarMapping, b: &BarMapping| {
            a.guest.start.raw() < b.guest.start.raw() + b.guest.size
                && b.guest.start.raw() < a.guest.start.raw() + a.guest.size
        };
        candidates
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                !candidates
                    .iter()
                    .enumerate()
                    .any(|(j, b)| j != *i && overlaps(a, b))
            })
            .map(|(_, m)| *m)
            .collect()
    }

    /// [`Self::mappings`] of one device.
    pub fn device_mappings(&self, device: VirtBdf) -> Vec<BarMapping> {
        self.mappings()
            .into_iter()
            .filter(|m| m.device == device)
            .collect()
    }

    fn map_bar(&self, function: &VirtualFunction, bar: &GuestBar) -> Option<BarMapping> {
        let host = bar.host?;
        let size = bar.size.max(PAGE);
        if !bar.address.is_multiple_of(PAGE) || !host.raw().is_multiple_of(PAGE) {
            return None;
        }
        let end = bar.address.checked_add(size)?;
        let window = self
            .windows
            .iter()
            .find(|w| bar.address >= w.pci_start && end <= w.pci_start.saturating_add(w.size))?;
        Some(BarMapping {
            device: function.virt,
            physical: function.phys,
            bar: bar.index,
            guest: Range {
                start: window.ipa.checked_add(bar.address - window.pci_start)?,
                size,
            },
            host,
        })
    }
}
