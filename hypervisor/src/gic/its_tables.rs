//! Allocation plans for the ITS memory tables behind GITS_BASER<n>: Device,
//! Collection and vPE tables (IHI 0069, GITS_BASER<n> and 5.2 "The ITS").
//!
//! The driver probes each BASER (Type and Entry_Size are read only; it
//! writes each Page_Size and Indirect and reads back what sticks), then
//! asks [`plan`] how to lay out a table covering the IDs it needs.

use core::fmt;

use super::regs::its::{GitsBaser, ItsLevel1Entry, ItsPageSize, ItsTableType};
use super::regs::{Cacheability, Shareability};
use crate::mm::addr::PhysAddr;

/// Most pages a BASER can describe: Size is 8 bits, pages minus one.
pub const MAX_TABLE_PAGES: u64 = 256;
/// Bytes of one level-1 entry of a two-level table.
pub const LEVEL1_ENTRY_BYTES: u64 = 8;

/// A set of page sizes a BASER accepted when probed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageSizes(u8);

impl PageSizes {
    /// No page size.
    pub const NONE: Self = Self(0);
    /// All three page sizes.
    pub const ALL: Self = Self(0b111);

    /// The set with `page` added.
    pub const fn with(self, page: ItsPageSize) -> Self {
        Self(self.0 | 1 << page.bits())
    }

    /// Whether `page` is in the set.
    pub const fn contains(self, page: ItsPageSize) -> bool {
        self.0 & (1 << page.bits()) != 0
    }
}

/// What probing one GITS_BASER<n> found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaserProbe {
    /// The table type (GITS_BASER<n>.Type).
    pub kind: ItsTableType,
    /// Bytes per entry (GITS_BASER<n>.Entry_Size + 1).
    pub entry_bytes: u32,
    /// The page sizes that stuck when written.
    pub page_sizes: PageSizes,
    /// Whether Indirect stuck when written as 1 (two-level tables supported).
    pub indirect: bool,
}

/// Flat or two-level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableLevels {
    /// One contiguous table of entries.
    Flat,
    /// A level-1 table of 8-byte pointers to level-2 pages of entries,
    /// allocated when an ID in their range is first used.
    TwoLevel,
}

/// Where the entry for one ID lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryLocation {
    /// Byte offset in a flat table.
    Flat {
        /// Offset from the table base.
        offset: u64,
    },
    /// Level-1 slot and byte offset in the level-2 page it points to.
    TwoLevel {
        /// Index of the level-1 entry.
        level1_index: u64,
        /// Offset in the level-2 page.
        level2_offset: u64,
    },
}

/// How to allocate and program one ITS table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TablePlan {
    /// Which table.
    pub kind: ItsTableType,
    /// Page size to program (and of every level-2 page).
    pub page: ItsPageSize,
    /// Flat or two-level.
    pub levels: TableLevels,
    /// Bytes per entry.
    pub entry_bytes: u32,
    /// Number of ID bits the table covers.
    pub id_bits: u32,
    /// Pages of the flat or level-1 table (1..=256).
    pub pages: u64,
    /// Entries in one page (of the flat table, or of a level-2 page).
    pub ids_per_page: u64,
}

/// Why no plan or no BASER value could be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The BASER has no table (Type == 0).
    Unimplemented,
    /// Entry_Size is zero or above 32 bytes.
    BadEntrySize(u32),
    /// The number of ID bits is outside 1..=32.
    IdBitsOutOfRange(u32),
    /// No page size stuck when probed.
    NoPageSize,
    /// Neither a flat nor a two-level table fits in 256 pages.
    TooLarge {
        /// The table.
        kind: ItsTableType,
        /// The ID bits asked for.
        id_bits: u32,
    },
    /// The table address is not aligned to the page size.
    Misaligned {
        /// The address given.
        addr: PhysAddr,
        /// The alignment required.
        align: u64,
    },
    /// The table does not fit below the BASER's address limit (2^48, or
    /// 2^52 with 64 KiB pages).
    AddressTooWide {
        /// The address given.
        addr: PhysAddr,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unimplemented => write!(f, "GITS_BASER has no table"),
            Self::BadEntrySize(bytes) => write!(f, "bad ITS table entry size {bytes}"),
            Self::IdBitsOutOfRange(bits) => write!(f, "{bits} ID bits out of 1..=32"),
            Self::NoPageSize => write!(f, "GITS_BASER accepts no page size"),
            Self::TooLarge { kind, id_bits } => {
                write!(f, "{kind:?} table for {id_bits} ID bits exceeds 256 pages")
            }
            Self::Misaligned { addr, align } => {
                write!(f, "ITS table at {addr} not aligned to {align:#x}")
            }
            Self::AddressTooWide { addr } => write!(f, "ITS table at {addr} above BASER reach"),
        }
    }
}

/// Plans a table for `id_bits` IDs: flat when it fits in 256 pages and in
/// `max_flat_bytes`, else two-level when Indirect sticks, else flat anyway
/// when it fits at all. Picks the smallest page size that works, to waste
/// the least memory per (level-2) page.
pub fn plan(
    probe: &BaserProbe,
    id_bits: u32,
    max_flat_bytes: u64,
) -> Result<TablePlan, TableError> {
    if probe.kind == ItsTableType::Unimplemented {
        return Err(TableError::Unimplemented);
    }
    if !(1..=32).contains(&probe.entry_bytes) {
        return Err(TableError::BadEntrySize(probe.entry_bytes));
    }
    if !(1..=32).contains(&id_bits) {
        return Err(TableError::IdBitsOutOfRange(id_bits));
    }
    if probe.page_sizes == PageSizes::NONE {
        return Err(TableError::NoPageSize);
    }
    let flat = best(probe, id_bits, TableLevels::Flat);
    let two_level = if probe.indirect {
        best(probe, id_bits, TableLevels::TwoLevel)
    } else {
        None
    };
    let choice = match (flat, two_level) {
        (Some(flat), _) if flat.bytes() <= max_flat_bytes => Some(flat),
        (_, Some(two_level)) => Some(two_level),
        (flat, None) => flat,
    };
    choice.ok_or(TableError::TooLarge {
        kind: probe.kind,
        id_bits,
    })
}

/// The smallest-page plan with `levels` that fits in 256 pages, if any.
fn best(probe: &BaserProbe, id_bits: u32, levels: TableLevels) -> Option<TablePlan> {
    let ids = 1u64 << id_bits;
    let entry = probe.entry_bytes as u64;
    ItsPageSize::ALL
        .into_iter()
        .filter(|page| probe.page_sizes.contains(*page))
        .find_map(|page| {
            let ids_per_page = page.bytes() / entry;
            let bytes = match levels {
                TableLevels::Flat => ids * entry,
                TableLevels::TwoLevel => ids.div_ceil(ids_per_page) * LEVEL1_ENTRY_BYTES,
            };
            let pages = bytes.div_ceil(page.bytes());
            (pages <= MAX_TABLE_PAGES).then_some(TablePlan {
                kind: probe.kind,
                page,
                levels,
                entry_bytes: probe.entry_bytes,
                id_bits,
                pages,
                ids_per_page,
            })
        })
}

impl TablePlan {
    /// Bytes to allocate now: the flat or level-1 table (zeroed).
    pub const fn bytes(&self) -> u64 {
        self.pages * self.page.bytes()
    }

    /// Alignment of that allocation, and of every level-2 page.
    pub const fn align(&self) -> u64 {
        self.page.bytes()
    }

    /// Number of level-1 entries (0 for a flat table).
    pub const fn level1_entries(&self) -> u64 {
        match self.levels {
            TableLevels::Flat => 0,
            TableLevels::TwoLevel => (1u64 << self.id_bits).div_ceil(self.ids_per_page),
        }
    }

    /// Where the entry of `id` lives, or `None` if `id` is out of range.
    pub const fn locate(&self, id: u32) -> Option<EntryLocation> {
        if (id as u64) >> self.id_bits != 0 {
            return None;
        }
        let entry = self.entry_bytes as u64;
        Some(match self.levels {
            TableLevels::Flat => EntryLocation::Flat {
                offset: id as u64 * entry,
            },
            TableLevels::TwoLevel => EntryLocation::TwoLevel {
                level1_index: id as u64 / self.ids_per_page,
                level2_offset: (id as u64 % self.ids_per_page) * entry,
            },
        })
    }

    /// A valid level-1 entry pointing at a zeroed level-2 page at `page`.
    pub fn level1_entry(&self, page: PhysAddr) -> Result<u64, TableError> {
        self.check_address(page, self.page.bytes())?;
        Ok(ItsLevel1Entry::valid_page(page).0)
    }

    /// The GITS_BASER<n> value that installs this plan's table at `addr`,
    /// built on the value read at probe time (Type and Entry_Size are read
    /// only). OuterCache is left 0: same as inner.
    pub fn baser(
        &self,
        probed: GitsBaser,
        addr: PhysAddr,
        cache: Cacheability,
        share: Shareability,
    ) -> Result<GitsBaser, TableError> {
        self.check_address(addr, self.bytes())?;
        Ok(probed
            .with_valid(true)
            .with_indirect(self.levels == TableLevels::TwoLevel)
            .with_page(self.page)
            .with_size(self.pages - 1)
            .with_inner_cache(cache.bits())
            .with_outer_cache(0)
            .with_shareability(share.bits())
            .with_physical_address(addr))
    }

    /// `addr` is page aligned and `[addr, addr + bytes)` is below the
    /// address limit of the page size (52 bits only with 64 KiB pages).
    fn check_address(&self, addr: PhysAddr, bytes: u64) -> Result<(), TableError> {
        let align = self.page.bytes();
        if !addr.is_aligned(align) {
            return Err(TableError::Misaligned { addr, align });
        }
        let limit = GitsBaser(0).with_page(self.page).address_limit();
        match addr.checked_add(bytes) {
            Some(end) if end.raw() <= limit => Ok(()),
            _ => Err(TableError::AddressTooWide { addr }),
        }
    }
}

#[cfg(test)]
#[path = "its_tables_tests.rs"]
mod tests;
