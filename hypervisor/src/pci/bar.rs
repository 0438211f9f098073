//! Base address registers: decoding, sizing, programming.
//!
//! PCI LB 3.0, 6.2.5.1: software learns a BAR's size by writing all ones
//! and reading back which address bits stuck; the lowest writable address
//! bit is the size, which is also the required alignment. Memory decode is
//! switched off meanwhile, so the function never claims the transient
//! all-ones address.

use alloc::vec::Vec;

use super::enumerate::HeaderKind;
use super::regs::{self, bar, command};
use super::{Bdf, ConfigAccess, PciError};

/// The address space a BAR decodes and how wide its address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O space (bits 31:2 address).
    Io,
    /// 32-bit memory space.
    Mem32 {
        /// Reads have no side effects; the range may be prefetched or merged.
        prefetchable: bool,
    },
    /// 64-bit memory space: this BAR and the next hold one address.
    Mem64 {
        /// Reads have no side effects; the range may be prefetched or merged.
        prefetchable: bool,
    },
}

impl BarKind {
    /// The read-only low bits of the BAR register that encode this kind.
    pub const fn flags(self) -> u32 {
        match self {
            BarKind::Io => bar::IO,
            BarKind::Mem32 { prefetchable } => {
                bar::MEM_TYPE_32 | if prefetchable { bar::PREFETCHABLE } else { 0 }
            }
            BarKind::Mem64 { prefetchable } => {
                bar::MEM_TYPE_64 | if prefetchable { bar::PREFETCHABLE } else { 0 }
            }
        }
    }

    /// How many BAR registers the kind occupies (2 for 64-bit memory).
    pub const fn registers(self) -> u8 {
        match self {
            BarKind::Mem64 { .. } => 2,
            _ => 1,
        }
    }

    /// Whether it decodes memory space (not I/O).
    pub const fn is_memory(self) -> bool {
        !matches!(self, BarKind::Io)
    }

    /// The low bits of the register that are not address bits.
    pub const fn flag_mask(self) -> u32 {
        match self {
            BarKind::Io => bar::IO_FLAGS,
            _ => bar::MEM_FLAGS,
        }
    }
}

/// One implemented BAR as sizing found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// BAR number (0..6); a 64-bit BAR also uses `index + 1`.
    pub index: u8,
    /// Space and width.
    pub kind: BarKind,
    /// Size in bytes, a power of two.
    pub size: u64,
    /// The PCI bus address programmed when it was sized.
    pub address: u64,
}

impl Bar {
    /// The register value (low dword) that places this BAR at `address`.
    pub const fn low_register(&self, address: u64) -> u32 {
        (address as u32 & !self.kind.flag_mask()) | self.kind.flags()
    }
}

/// How many BARs a header layout has (PCI LB 3.0, 6.1; PCI-PCI bridge 1.2, 3.2).
pub const fn bar_count(header: HeaderKind) -> u8 {
    match header {
        HeaderKind::Endpoint => 6,
        HeaderKind::PciBridge { .. } => 2,
        HeaderKind::CardBus | HeaderKind::Unknown(_) => 0,
    }
}

/// Sizes every BAR of `bdf`, restoring each BAR and COMMAND afterwards.
pub fn probe_bars<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    header: HeaderKind,
) -> Result<Vec<Bar>, PciError> {
    let saved_command = with_decode_disabled(access, bdf);
    let result = probe_all(access, bdf, bar_count(header));
    restore_command(access, bdf, saved_command);
    result
}

/// Programs `bar` to decode at PCI bus address `address`, with decode off meanwhile.
///
/// `address` must be aligned to `bar.size`; the caller's allocator makes it so.
pub fn program_bar<A: ConfigAccess + ?Sized>(access: &mut A, bdf: Bdf, bar: &Bar, address: u64) {
    let saved_command = with_decode_disabled(access, bdf);
    let offset = regs::bar_offset(bar.index);
    access.write32(bdf, offset, bar.low_register(address));
    if let BarKind::Mem64 { .. } = bar.kind {
        access.write32(bdf, offset + 4, (address >> 32) as u32);
    }
    restore_command(access, bdf, saved_command);
}

/// Clears I/O and memory decode; returns the COMMAND value to restore.
fn with_decode_disabled<A: ConfigAccess + ?Sized>(access: &mut A, bdf: Bdf) -> u16 {
    let saved = access.read32(bdf, regs::COMMAND_STATUS) as u16;
    // STATUS (31:16) is written as zero: its error bits are write-one-to-clear
    // (PCI LB 3.0, 6.2.3), so zeros leave them alone.
    let off = saved & !(command::IO_SPACE | command::MEMORY_SPACE);
    access.write32(bdf, regs::COMMAND_STATUS, u32::from(off));
    saved
}

fn restore_command<A: ConfigAccess + ?Sized>(access: &mut A, bdf: Bdf, saved: u16) {
    access.write32(bdf, regs::COMMAND_STATUS, u32::from(saved));
}

/// Writes all ones to the BAR register at `offset`, reads the mask back,
/// restores the original; returns (original, mask).
fn size_register<A: ConfigAccess + ?Sized>(access: &mut A, bdf: Bdf, offset: u16) -> (u32, u32) {
    let original = access.read32(bdf, offset);
    access.write32(bdf, offset, u32::MAX);
    let mask = access.read32(bdf, offset);
    access.write32(bdf, offset, original);
    (original, mask)
}

fn probe_all<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    count: u8,
) -> Result<Vec<Bar>, PciError> {
    let mut bars = Vec::new();
    let mut index = 0;
    while index < count {
        let bad = |reason| PciError::BadBar {
            bdf,
            bar: index,
            reason,
        };
        let offset = regs::bar_offset(index);
        let (original, mask) = size_register(access, bdf, offset);
        if mask == 0 {
            // Hardwired to zero: not implemented (6.2.5.1).
            index += 1;
            continue;
        }
        if original == regs::ABSENT && mask == regs::ABSENT {
            return Err(bad("the function stopped answering configuration reads"));
        }
        let (kind, address, address_mask) = if mask & bar::IO != 0 {
            // Some I/O BARs decode only 16 bits and hardwire 31:16 to zero;
            // the lowest writable bit is the size either way.
            let address_mask = u64::from(mask & !bar::IO_FLAGS);
            (
                BarKind::Io,
                u64::from(original & !bar::IO_FLAGS),
                address_mask,
            )
        } else {
            let prefetchable = mask & bar::PREFETCHABLE != 0;
            let low_mask = u64::from(mask & !bar::MEM_FLAGS);
            let low_address = u64::from(original & !bar::MEM_FLAGS);
            match mask & bar::MEM_TYPE_MASK {
                bar::MEM_TYPE_32 => (BarKind::Mem32 { prefetchable }, low_address, low_mask),
                bar::MEM_TYPE_64 => {
                    if index + 1 >= count {
                        return Err(bad("64-bit BAR in the last BAR slot"));
                    }
                    let (high, high_mask) = size_register(access, bdf, offset + 4);
                    (
                        BarKind::Mem64 { prefetchable },
                        u64::from(high) << 32 | low_address,
                        u64::from(high_mask) << 32 | low_mask,
                    )
                }
                bar::MEM_TYPE_1M => return Err(bad("memory type 01 (below 1 MiB) is reserved")),
                _ => return Err(bad("memory type 11 is reserved")),
            }
        };
        if address_mask != 0 {
            bars.push(Bar {
                index,
                kind,
                size: 1 << address_mask.trailing_zeros(),
                address,
            });
        }
        index += kind.registers();
    }
    Ok(bars)
}
