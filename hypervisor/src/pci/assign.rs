//! Placing BARs in a host bridge's windows.
//!
//! Nothing assigns BARs before the hypervisor runs (QEMU `-kernel` boots it
//! with no firmware), so it places every BAR itself: naturally aligned
//! (PCI LB 3.0, 6.2.5.1: a BAR decodes an aligned power-of-two range),
//! largest first so a bump allocator leaves no holes.

use alloc::vec::Vec;
use core::cmp::Reverse;

use super::bar::{program_bar, Bar, BarKind};
use super::{Bdf, ConfigAccess, PciError};
use crate::boot::platform::{PciHostBridge, PciSpace, PciWindow};
use crate::mm::addr::PhysAddr;

/// Memory BARs are placed and spaced at least this far apart: a stage-2
/// page is the unit in which a BAR can be given to one partition and not
/// another, so no two BARs share a 4 KiB page.
pub const MEMORY_BAR_GRANULE: u64 = 4096;

/// A range of PCI bus addresses that BARs may be placed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusWindow {
    /// I/O, 32-bit or 64-bit memory.
    pub space: PciSpace,
    /// Only prefetchable BARs may go here.
    pub prefetchable: bool,
    /// First PCI bus address.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

impl From<&PciWindow> for BusWindow {
    fn from(window: &PciWindow) -> BusWindow {
        BusWindow {
            space: window.space,
            prefetchable: window.prefetchable,
            start: window.pci_address,
            size: window.size,
        }
    }
}

/// Where a BAR was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index of the window, in the order given to [`BarAllocator::new`].
    pub window: usize,
    /// PCI bus address.
    pub address: u64,
}

/// A bump allocator over windows; give it BARs largest first.
#[derive(Clone, Debug)]
pub struct BarAllocator {
    windows: Vec<(BusWindow, u64)>,
}

impl BarAllocator {
    /// An allocator over `windows`, each empty.
    pub fn new(windows: impl IntoIterator<Item = BusWindow>) -> BarAllocator {
        BarAllocator {
            windows: windows.into_iter().map(|w| (w, w.start)).collect(),
        }
    }

    /// An allocator over a host bridge's `ranges`, indices as in `bridge.windows`.
    pub fn for_bridge(bridge: &PciHostBridge) -> BarAllocator {
        BarAllocator::new(bridge.windows.iter().map(BusWindow::from))
    }

    /// Whether some window could ever hold a BAR of `kind`.
    pub fn has_window_for(&self, kind: BarKind) -> bool {
        self.windows.iter().any(|(w, _)| rank(kind, w).is_some())
    }

    /// Places a BAR of `kind` and `size` (a power of two) from `bdf` BAR `index`.
    pub fn allocate(
        &mut self,
        bdf: Bdf,
        index: u8,
        kind: BarKind,
        size: u64,
    ) -> Result<Placement, PciError> {
        let no_space = PciError::NoSpace {
            bdf,
            bar: index,
            kind,
            size,
        };
        if !size.is_power_of_two() {
            return Err(no_space);
        }
        let footprint = if kind.is_memory() {
            size.max(MEMORY_BAR_GRANULE)
        } else {
            size
        };
        let mut best: Option<(u8, usize, u64)> = None;
        for (window_index, (window, next)) in self.windows.iter().enumerate() {
            let Some(rank) = rank(kind, window) else {
                continue;
            };
            if best.is_some_and(|(best_rank, _, _)| best_rank <= rank) {
                continue;
            }
            if let Some(address) = fit(kind, window, *next, footprint) {
                best = Some((rank, window_index, address));
            }
        }
        let (_, window, address) = best.ok_or(no_space)?;
        if let Some(entry) = self.windows.get_mut(window) {
            entry.1 = address + footprint;
        }
        Ok(Placement { window, address })
    }
}

/// How well a window suits a BAR kind (0 best), `None` if it cannot take it.
///
/// A prefetchable window takes only prefetchable BARs (a non-prefetchable
/// register must not be read speculatively); a 64-bit BAR may go in a
/// 32-bit window but prefers the 64-bit one, to leave low space to the BARs
/// that can only live there.
fn rank(kind: BarKind, window: &BusWindow) -> Option<u8> {
    let (prefetchable, wants_64) = match kind {
        BarKind::Io => return (window.space == PciSpace::Io).then_some(0),
        BarKind::Mem32 { prefetchable } => (prefetchable, false),
        BarKind::Mem64 { prefetchable } => (prefetchable, true),
    };
    if window.prefetchable && !prefetchable {
        return None;
    }
    let exact_prefetch = u8::from(window.prefetchable != prefetchable);
    match (window.space, wants_64) {
        (PciSpace::Mem64, true) => Some(exact_prefetch),
        (PciSpace::Mem32, true) => Some(2 + exact_prefetch),
        (PciSpace::Mem32, false) => Some(exact_prefetch),
        _ => None,
    }
}

/// The first aligned address at or after `next` where `footprint` bytes fit.
fn fit(kind: BarKind, window: &BusWindow, next: u64, footprint: u64) -> Option<u64> {
    let mut address = next.checked_next_multiple_of(footprint)?;
    // Bus address 0 reads as "unassigned" to most software: skip it.
    if address == 0 {
        address = footprint;
    }
    let end = address.checked_add(footprint)?;
    let window_end = window.start.checked_add(window.size)?;
    // A 32-bit register cannot hold an address at or above 4 GiB.
    let register_limit = match kind {
        BarKind::Mem64 { .. } => u64::MAX,
        _ => 1 << 32,
    };
    (end <= window_end && end <= register_limit).then_some(address)
}

/// A BAR with the address the hypervisor gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignedBar {
    /// The BAR, `address` being its programmed PCI bus address.
    pub bar: Bar,
    /// Where the CPU reaches it, or `None` if it was left unassigned (an
    /// I/O BAR on a bridge with no I/O window).
    pub cpu_address: Option<PhysAddr>,
}

/// Places and programs `bars` (each with its function) in `bridge`'s windows,
/// largest first; returns them with their CPU addresses, in the order given.
pub fn assign_bars<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bridge: &PciHostBridge,
    bars: &[(Bdf, Bar)],
) -> Result<Vec<AssignedBar>, PciError> {
    let mut allocator = BarAllocator::for_bridge(bridge);
    let mut order: Vec<usize> = (0..bars.len()).collect();
    order.sort_by_key(|&i| {
        let (bdf, bar) = bars.get(i).copied().unzip();
        (Reverse(bar.map(|b| b.size)), bdf, bar.map(|b| b.index))
    });
    let mut assigned: Vec<AssignedBar> = bars
        .iter()
        .map(|&(_, bar)| AssignedBar {
            bar,
            cpu_address: None,
        })
        .collect();
    for index in order {
        let (Some(&(bdf, bar)), Some(slot)) = (bars.get(index), assigned.get_mut(index)) else {
            continue;
        };
        if bar.kind == BarKind::Io && !allocator.has_window_for(BarKind::Io) {
            // Without an I/O window the CPU cannot reach I/O space at all;
            // the BAR stays unassigned and I/O decode is never enabled.
            continue;
        }
        let placement = allocator.allocate(bdf, bar.index, bar.kind, bar.size)?;
        let window = bridge
            .windows
            .get(placement.window)
            .ok_or(PciError::NoSpace {
                bdf,
                bar: bar.index,
                kind: bar.kind,
                size: bar.size,
            })?;
        program_bar(access, bdf, &bar, placement.address);
        slot.bar.address = placement.address;
        slot.cpu_address = window
            .cpu_address
            .checked_add(placement.address - window.pci_address);
    }
    Ok(assigned)
}
