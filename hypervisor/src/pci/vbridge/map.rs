//! Which BARs the guest may reach, and where: the stage-2 mappings the
//! kernel keeps in step with the guest's BAR and COMMAND writes.

use alloc::vec::Vec;

use super::function::{GuestBar, VirtualFunction};
use super::{VirtBdf, VirtualHostBridge};
use crate::mm::addr::{Ipa, PhysAddr, Range};
use crate::pci::Bdf;

/// Stage-2 granule: BARs are mapped in whole pages.
const PAGE: u64 = 4096;

/// A range of BAR pages to map in the guest's stage 2 (a whole BAR, or a
/// part of one around its MSI-X table).
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
    /// Where the device has the same bytes.
    pub host: PhysAddr,
}

/// Pages of a BAR holding an MSI-X table: the kernel traps them and
/// sends accesses to [`VirtualHostBridge::msix_table_read`] /
/// [`VirtualHostBridge::msix_table_write`]; offsets outside the table
/// (the PBA, other registers on the page) it forwards to `host`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixTrap {
    /// The device as the guest names it.
    pub device: VirtBdf,
    /// The physical function.
    pub physical: Bdf,
    /// BAR number holding the table.
    pub bar: u8,
    /// The trapped pages as the guest has them now.
    pub guest: Range<Ipa>,
    /// The same pages of the device.
    pub host: PhysAddr,
    /// Offset in the BAR of the first trapped byte.
    pub bar_offset: u64,
}

impl VirtualHostBridge {
    /// Every range of BAR pages the guest may reach directly now: memory
    /// decode on, page aligned, inside one of its windows, not overlapping
    /// another BAR, and never the pages of an MSI-X table (see [`MsixTrap`]).
    ///
    /// A BAR holding an MSI-X table gives up to two ranges, before and after
    /// the table's pages. If the table were mapped, the guest would write
    /// its doorbell and EventID into the device, which would then send
    /// writes to addresses the guest chose: the table is the isolation point.
    pub fn mappings(&self) -> Vec<BarMapping> {
        let mut ranges = Vec::new();
        for whole in self.whole_bars() {
            match self.msix_hole(&whole) {
                None => ranges.push(whole),
                Some((hole_start, hole_end)) => {
                    ranges.extend(piece(&whole, 0, hole_start));
                    ranges.extend(piece(&whole, hole_end, whole.guest.size));
                }
            }
        }
        ranges
    }

    /// [`Self::mappings`] of one device.
    pub fn device_mappings(&self, device: VirtBdf) -> Vec<BarMapping> {
        self.mappings()
            .into_iter()
            .filter(|m| m.device == device)
            .collect()
    }

    /// The MSI-X table pages to trap now, one per device whose table BAR is mapped.
    pub fn msix_traps(&self) -> Vec<MsixTrap> {
        self.whole_bars()
            .iter()
            .filter_map(|whole| {
                let (start, end) = self.msix_hole(whole)?;
                Some(MsixTrap {
                    device: whole.device,
                    physical: whole.physical,
                    bar: whole.bar,
                    guest: Range {
                        start: whole.guest.start.checked_add(start)?,
                        size: end - start,
                    },
                    host: whole.host.checked_add(start)?,
                    bar_offset: start,
                })
            })
            .collect()
    }

    /// The trap covering guest address `ipa` and the offset of `ipa` in its BAR.
    pub fn msix_trap_at(&self, ipa: Ipa) -> Option<(MsixTrap, u64)> {
        self.msix_traps().into_iter().find_map(|trap| {
            let into = ipa.raw().checked_sub(trap.guest.start.raw())?;
            (into < trap.guest.size).then_some((trap, trap.bar_offset + into))
        })
    }

    /// Whole BARs that may be mapped: both of an overlapping pair are left
    /// out, since overlapping decode is undefined and neither may shadow the other.
    fn whole_bars(&self) -> Vec<BarMapping> {
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

    /// The page-aligned offsets [start, end) of the MSI-X table in `whole`, if it holds one.
    fn msix_hole(&self, whole: &BarMapping) -> Option<(u64, u64)> {
        let function = self.functions.iter().find(|f| f.virt == whole.device)?;
        let table = function.msix.as_ref()?.capability().table;
        if table.bar != whole.bar {
            return None;
        }
        let start = u64::from(table.offset) / PAGE * PAGE;
        let end = (u64::from(table.offset) + u64::from(table.size))
            .div_ceil(PAGE)
            .saturating_mul(PAGE)
            .min(whole.guest.size);
        Some((start, end))
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

/// The part [start, end) of `whole`, if not empty.
fn piece(whole: &BarMapping, start: u64, end: u64) -> Option<BarMapping> {
    (start < end).then_some(BarMapping {
        guest: Range {
            start: whole.guest.start.checked_add(start)?,
            size: end - start,
        },
        host: whole.host.checked_add(start)?,
        ..*whole
    })
}
