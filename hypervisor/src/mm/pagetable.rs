//! A VMSAv8-64 translation-table builder, 4 KiB granule, generic over the
//! regime (EL2 stage 1 or stage 2, see [`super::regime`]).
//!
//! Table memory is reached through [`TableMemory`], so the same code runs
//! on bare metal (identity-mapped tables) and on the host (a `Vec` arena).
//!
//! Live-table discipline (ARM ARM D8.16 "Translation table maintenance"):
//! - a new table is filled completely before the descriptor linking it is
//!   written, with [`TableMemory::publish_barrier`] in between, so a walker
//!   never sees a half-built table;
//! - a valid descriptor is never replaced by a different valid one directly:
//!   the builder writes an invalid descriptor, calls
//!   [`TableMemory::invalidate`] (which must complete the TLB invalidation),
//!   then writes the replacement (break-before-make, ARM ARM D8.16.1);
//! - tables are never freed, so no walker can hold a stale pointer to a
//!   table that has been reused for something else.
#![forbid(unsafe_code)]

use core::cmp::min;

use super::regime::{level_shift, El2Stage1, InputAddress, Regime, Stage2};
use super::PhysAddr;

/// The translation granule and page size.
pub const PAGE_SIZE: u64 = 4096;
/// Descriptors per 4 KiB table.
pub const ENTRIES_PER_TABLE: usize = 512;

/// Output address bits [47:12] of a descriptor.
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
/// One past the largest output address a descriptor can hold.
const OA_LIMIT: u64 = 1 << 48;
const VALID: u64 = 1 << 0;
/// Bit 1: table (levels 0-2) or page (level 3); clear for a block.
const TABLE_OR_PAGE: u64 = 1 << 1;

/// Memory holding translation tables, as the builder reaches it.
///
/// The bare-metal implementation uses identity-mapped pointers into frames
/// from the frame allocator; tests use a `Vec` arena.
pub trait TableMemory {
    /// Allocates `count` physically contiguous, zeroed 4 KiB tables aligned to
    /// `count * 4 KiB` (a concatenated stage-2 root must be aligned to its
    /// whole size, ARM ARM D8.2.6), or `None` if memory is exhausted.
    fn allocate_zeroed(&mut self, count: usize) -> Option<PhysAddr>;
    /// Reads descriptor `index` (0..512) of the table at `table`.
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64;
    /// Writes descriptor `index` (0..512) of the table at `table` with a
    /// single 64-bit store (a walker may read it concurrently).
    fn write_entry(&mut self, table: PhysAddr, index: usize, value: u64);
    /// Makes all preceding descriptor writes visible to the table walker
    /// before any later one (bare metal: `dsb ishst`). Called before a new
    /// table is linked and at the end of every `map`/`remap`.
    fn publish_barrier(&mut self) {}
    /// A valid descriptor covering `[input_start, input_start + size)` has
    /// just been made invalid: remove any TLB entry for that range and wait
    /// for completion before returning (bare metal: `dsb ishst; tlbi
    /// vae2is/ipas2e1is per page or vmalls12e1is; dsb ish`, plus
    /// `vmalle1is` after stage-2 changes). The builder writes the
    /// replacement descriptor, if any, only after this returns.
    fn invalidate(&mut self, _input_start: u64, _size: u64) {}
}

impl<T: TableMemory + ?Sized> TableMemory for &mut T {
    fn allocate_zeroed(&mut self, count: usize) -> Option<PhysAddr> {
        (**self).allocate_zeroed(count)
    }
    fn read_entry(&self, table: PhysAddr, index: usize) -> u64 {
        (**self).read_entry(table, index)
    }
    fn write_entry(&mut self, table: PhysAddr, index: usize, value: u64) {
        (**self).write_entry(table, index, value)
    }
    fn publish_barrier(&mut self) {
        (**self).publish_barrier()
    }
    fn invalidate(&mut self, input_start: u64, size: u64) {
        (**self).invalidate(input_start, size)
    }
}

/// Why a page-table operation failed. Input addresses are raw VAs or IPAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageTableError {
    /// The input address is not 4 KiB aligned.
    MisalignedInput {
        /// The offending input address.
        addr: u64,
    },
    /// The output address is not 4 KiB aligned.
    MisalignedOutput {
        /// The offending output address.
        pa: PhysAddr,
    },
    /// The size is not a multiple of 4 KiB.
    MisalignedSize {
        /// The offending size.
        size: u64,
    },
    /// The input range does not fit the regime's input address size.
    InputOutOfRange {
        /// Start of the range.
        start: u64,
        /// Size of the range.
        size: u64,
    },
    /// The output range does not fit a 48-bit output address.
    OutputOutOfRange {
        /// Start of the range.
        pa: PhysAddr,
        /// Size of the range.
        size: u64,
    },
    /// `map` found an existing mapping at this input address.
    AlreadyMapped {
        /// First mapped input address found in the requested range.
        addr: u64,
    },
    /// The table memory could not supply a table.
    OutOfTableMemory,
    /// The table memory returned a misaligned or out-of-range table.
    BadTableAllocation {
        /// What it returned.
        pa: PhysAddr,
    },
}

/// A translation table for regime `R`, its tables held in `M`.
pub struct PageTable<R: Regime, M: TableMemory> {
    regime: R,
    memory: M,
    root: PhysAddr,
}

/// The hypervisor's own EL2 stage-1 table (goes in TTBR0_EL2).
pub type El2PageTable<M> = PageTable<El2Stage1, M>;
/// A partition's stage-2 table (its root goes in VTTBR_EL2.BADDR).
pub type Stage2PageTable<M> = PageTable<Stage2, M>;

impl<R: Regime, M: TableMemory> PageTable<R, M> {
    /// An empty table: allocates the (possibly concatenated) root.
    pub fn new(regime: R, mut memory: M) -> Result<Self, PageTableError> {
        let root = allocate(&mut memory, regime.root_tables())?;
        Ok(Self {
            regime,
            memory,
            root,
        })
    }

    /// Physical address of the root table, for TTBR0_EL2 or VTTBR_EL2.BADDR.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The regime this table is built for.
    pub fn regime(&self) -> &R {
        &self.regime
    }

    /// The table memory.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Maps `[start, start + size)` to `[pa, pa + size)`, failing with
    /// `AlreadyMapped` if any page of the input range is already mapped.
    ///
    /// Uses the largest blocks that alignment allows (1 GiB at level 1, 2 MiB
    /// at level 2, else 4 KiB pages). On any error nothing is left mapped in
    /// the range (tables allocated on the way stay, empty). A zero size is a
    /// no-op. The caller needs no TLB maintenance afterwards (only invalid
    /// descriptors were replaced), but an `isb` before relying on the mapping
    /// from the current context.
    pub fn map(
        &mut self,
        start: R::Address,
        pa: PhysAddr,
        size: u64,
        attributes: R::Attributes,
    ) -> Result<(), PageTableError> {
        let start = start.to_raw();
        let Some(end) = self.check_map(start, pa, size)? else {
            return Ok(());
        };
        if let Some(addr) = self.first_mapped(self.root, self.regime.start_level(), 0, start, end) {
            return Err(PageTableError::AlreadyMapped { addr });
        }
        let leaf_bits = R::leaf_bits(&attributes);
        let level = self.regime.start_level();
        let result = self.map_range(self.root, level, 0, start, end, pa.raw(), leaf_bits, true);
        if result.is_err() {
            // The range was entirely unmapped before and every leaf we wrote
            // lies inside it, so unmapping it restores the previous
            // translation without splitting (hence without allocating).
            let _ = self.unmap_range(self.root, level, 0, start, end, true);
        }
        self.memory.publish_barrier();
        result
    }

    /// Maps `[start, start + size)` to `[pa, pa + size)`, replacing whatever
    /// was mapped there (splitting blocks that straddle the range edges,
    /// break-before-make for every valid descriptor replaced).
    ///
    /// On `OutOfTableMemory` part of the range may already be remapped. A
    /// table that exists under a fully covered range is kept and filled with
    /// smaller mappings rather than replaced by a block, since tables are
    /// never freed.
    pub fn remap(
        &mut self,
        start: R::Address,
        pa: PhysAddr,
        size: u64,
        attributes: R::Attributes,
    ) -> Result<(), PageTableError> {
        let start = start.to_raw();
        let Some(end) = self.check_map(start, pa, size)? else {
            return Ok(());
        };
        let leaf_bits = R::leaf_bits(&attributes);
        let level = self.regime.start_level();
        let result = self.map_range(self.root, level, 0, start, end, pa.raw(), leaf_bits, true);
        self.memory.publish_barrier();
        result
    }

    /// Unmaps `[start, start + size)`; unmapped parts are skipped and blocks
    /// straddling the edges are split. [`TableMemory::invalidate`] is called
    /// for every descriptor cleared, so no further TLB maintenance is needed.
    ///
    /// Fails with `OutOfTableMemory` only when a split needs a table; the
    /// part of the range before that point is then already unmapped.
    pub fn unmap(&mut self, start: R::Address, size: u64) -> Result<(), PageTableError> {
        let start = start.to_raw();
        let Some(end) = self.check_input(start, size)? else {
            return Ok(());
        };
        let level = self.regime.start_level();
        self.unmap_range(self.root, level, 0, start, end, true)
    }

    /// The output address `addr` translates to and the mapping's attributes,
    /// or `None` if it is unmapped or outside the regime's input range.
    pub fn translate(&self, addr: R::Address) -> Option<(PhysAddr, R::Attributes)> {
        let addr = addr.to_raw();
        if addr >= self.input_limit() {
            return None;
        }
        let mut table = self.root;
        let mut level = self.regime.start_level();
        let mut table_base = 0;
        loop {
            let shift = level_shift(level);
            let index = index_in(table_base, addr, shift);
            let descriptor = self.read(table, index);
            match kind(descriptor, level) {
                Kind::Invalid => return None,
                Kind::Table => {
                    table = PhysAddr(descriptor & OA_MASK);
                    table_base += (index as u64) << shift;
                    level += 1;
                }
                Kind::Leaf => {
                    let offset = addr & ((1 << shift) - 1);
                    let pa = PhysAddr((descriptor & OA_MASK) + offset);
                    return Some((pa, R::decode_leaf(descriptor)));
                }
            }
        }
    }

    fn input_limit(&self) -> u64 {
        1 << self.regime.input_bits()
    }

    /// Validates an input range; `None` for an empty one, else its end.
    fn check_input(&self, start: u64, size: u64) -> Result<Option<u64>, PageTableError> {
        if !start.is_multiple_of(PAGE_SIZE) {
            return Err(PageTableError::MisalignedInput { addr: start });
        }
        if !size.is_multiple_of(PAGE_SIZE) {
            return Err(PageTableError::MisalignedSize { size });
        }
        if size == 0 {
            return Ok(None);
        }
        match start.checked_add(size) {
            Some(end) if end <= self.input_limit() => Ok(Some(end)),
            _ => Err(PageTableError::InputOutOfRange { start, size }),
        }
    }

    /// Validates both ranges of a mapping; `None` for an empty one, else the input end.
    fn check_map(
        &self,
        start: u64,
        pa: PhysAddr,
        size: u64,
    ) -> Result<Option<u64>, PageTableError> {
        if !pa.is_aligned(PAGE_SIZE) {
            return Err(PageTableError::MisalignedOutput { pa });
        }
        let end = self.check_input(start, size)?;
        match pa.raw().checked_add(size) {
            Some(pa_end) if pa_end <= OA_LIMIT => Ok(end),
            _ => Err(PageTableError::OutputOutOfRange { pa, size }),
        }
    }

    /// Writes leaves for `[start, end)` → `pa..` into `table` (at `level`,
    /// translating from `table_base`) and below, creating or splitting
    /// tables as needed. Every valid descriptor replaced goes through
    /// break-before-make.
    #[allow(clippy::too_many_arguments)]
    fn map_range(
        &mut self,
        table: PhysAddr,
        level: u8,
        table_base: u64,
        start: u64,
        end: u64,
        pa: u64,
        leaf_bits: u64,
        live: bool,
    ) -> Result<(), PageTableError> {
        let shift = level_shift(level);
        let entry_size = 1u64 << shift;
        let mut addr = start;
        while addr < end {
            let index = index_in(table_base, addr, shift);
            let entry_start = table_base + ((index as u64) << shift);
            let chunk_end = min(end, entry_start + entry_size);
            let out = pa + (addr - start);
            let descriptor = self.read(table, index);
            let covers_entry = addr == entry_start && chunk_end == entry_start + entry_size;
            let existing = kind(descriptor, level);
            if covers_entry
                && leaf_allowed(level)
                && out.is_multiple_of(entry_size)
                && existing != Kind::Table
            {
                let new = out | leaf_bits | leaf_type(level);
                if existing == Kind::Leaf && descriptor != new {
                    self.break_entry(table, index, entry_start, entry_size, live);
                }
                self.write(table, index, new);
            } else if existing == Kind::Table {
                let next = PhysAddr(descriptor & OA_MASK);
                self.map_range(
                    next,
                    level + 1,
                    entry_start,
                    addr,
                    chunk_end,
                    out,
                    leaf_bits,
                    live,
                )?;
            } else {
                // A new table, unreachable by any walker until linked: fill
                // it (with the split block, if any, then the new mapping).
                let next = self.new_next_table(descriptor, level)?;
                let result = self.map_range(
                    next,
                    level + 1,
                    entry_start,
                    addr,
                    chunk_end,
                    out,
                    leaf_bits,
                    false,
                );
                // Link even on failure: the table is consistent, and linking
                // it keeps it reachable for the caller's rollback.
                self.link(
                    table,
                    index,
                    next,
                    descriptor,
                    entry_start,
                    entry_size,
                    live,
                );
                result?;
            }
            addr = chunk_end;
        }
        Ok(())
    }

    /// Clears leaves in `[start, end)` of `table` and below.
    fn unmap_range(
        &mut self,
        table: PhysAddr,
        level: u8,
        table_base: u64,
        start: u64,
        end: u64,
        live: bool,
    ) -> Result<(), PageTableError> {
        let shift = level_shift(level);
        let entry_size = 1u64 << shift;
        let mut addr = start;
        while addr < end {
            let index = index_in(table_base, addr, shift);
            let entry_start = table_base + ((index as u64) << shift);
            let chunk_end = min(end, entry_start + entry_size);
            let descriptor = self.read(table, index);
            match kind(descriptor, level) {
                Kind::Invalid => {}
                Kind::Table => {
                    let next = PhysAddr(descriptor & OA_MASK);
                    self.unmap_range(next, level + 1, entry_start, addr, chunk_end, live)?;
                }
                Kind::Leaf if addr == entry_start && chunk_end == entry_start + entry_size => {
                    self.break_entry(table, index, entry_start, entry_size, live);
                }
                Kind::Leaf => {
                    // Punch a hole in a block: split it into a new table
                    // without the hole, then swap it in.
                    let next = self.new_next_table(descriptor, level)?;
                    let result =
                        self.unmap_range(next, level + 1, entry_start, addr, chunk_end, false);
                    // Link even if a deeper split failed: the new table is
                    // consistent (the block minus what was unmapped).
                    self.link(
                        table,
                        index,
                        next,
                        descriptor,
                        entry_start,
                        entry_size,
                        live,
                    );
                    result?;
                }
            }
            addr = chunk_end;
        }
        Ok(())
    }

    /// First mapped input address in `[start, end)`, if any.
    fn first_mapped(
        &self,
        table: PhysAddr,
        level: u8,
        table_base: u64,
        start: u64,
        end: u64,
    ) -> Option<u64> {
        let shift = level_shift(level);
        let mut addr = start;
        while addr < end {
            let index = index_in(table_base, addr, shift);
            let entry_start = table_base + ((index as u64) << shift);
            let chunk_end = min(end, entry_start + (1 << shift));
            let descriptor = self.read(table, index);
            match kind(descriptor, level) {
                Kind::Invalid => {}
                Kind::Leaf => return Some(addr),
                Kind::Table => {
                    let next = PhysAddr(descriptor & OA_MASK);
                    if let Some(found) =
                        self.first_mapped(next, level + 1, entry_start, addr, chunk_end)
                    {
                        return Some(found);
                    }
                }
            }
            addr = chunk_end;
        }
        None
    }

    /// A new, not yet linked table for the level below `level`: empty, or
    /// if `descriptor` is a block, the same mapping as 512 smaller leaves.
    fn new_next_table(&mut self, descriptor: u64, level: u8) -> Result<PhysAddr, PageTableError> {
        let next = allocate(&mut self.memory, 1)?;
        if kind(descriptor, level) == Kind::Leaf {
            let child_level = level + 1;
            let child_size = 1u64 << level_shift(child_level);
            let attributes = descriptor & !(OA_MASK | VALID | TABLE_OR_PAGE);
            let base = descriptor & OA_MASK;
            for index in 0..ENTRIES_PER_TABLE {
                let out = base + index as u64 * child_size;
                self.memory
                    .write_entry(next, index, out | attributes | leaf_type(child_level));
            }
        }
        Ok(next)
    }

    /// Points entry `index` of `table` at the filled table `next`, replacing
    /// `old` (break-before-make if `old` was a valid block).
    #[allow(clippy::too_many_arguments)]
    fn link(
        &mut self,
        table: PhysAddr,
        index: usize,
        next: PhysAddr,
        old: u64,
        entry_start: u64,
        entry_size: u64,
        live: bool,
    ) {
        if live {
            // The new table's contents must be observable before the
            // pointer to it; below a fresh table, the barrier issued when
            // the topmost fresh table is linked orders the whole subtree.
            self.memory.publish_barrier();
        }
        if old & VALID != 0 {
            self.break_entry(table, index, entry_start, entry_size, live);
        }
        self.write(table, index, next.raw() | TABLE_OR_PAGE | VALID);
    }

    /// Break step of break-before-make: invalidate the entry and, if a walker
    /// can reach `table` (`live`), its TLB entries.
    fn break_entry(
        &mut self,
        table: PhysAddr,
        index: usize,
        entry_start: u64,
        entry_size: u64,
        live: bool,
    ) {
        self.write(table, index, 0);
        if live {
            self.memory.invalidate(entry_start, entry_size);
        }
    }

    /// Reads entry `index` of a table, which may be a concatenated root.
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        let (table, index) = locate(table, index);
        self.memory.read_entry(table, index)
    }

    /// Writes entry `index` of a table, which may be a concatenated root.
    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        let (table, index) = locate(table, index);
        self.memory.write_entry(table, index, value)
    }
}

/// Allocates `count` tables and checks what the memory handed back.
fn allocate<M: TableMemory>(memory: &mut M, count: usize) -> Result<PhysAddr, PageTableError> {
    let table = memory
        .allocate_zeroed(count)
        .ok_or(PageTableError::OutOfTableMemory)?;
    let bytes = count as u64 * PAGE_SIZE;
    let fits = table
        .checked_add(bytes)
        .is_some_and(|end| end.raw() <= OA_LIMIT);
    if !table.is_aligned(bytes.next_power_of_two()) || !fits {
        return Err(PageTableError::BadTableAllocation { pa: table });
    }
    Ok(table)
}

/// What a descriptor is at a given level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Invalid,
    Table,
    Leaf,
}

/// Decodes bits [1:0] (ARM ARM D8.3.1): x0 invalid; at levels 0-2, 01 block
/// and 11 table; at level 3, 11 page and 01 reserved (treated as invalid).
/// Level 0 blocks do not exist with 4 KiB granules and no LPA2; the builder
/// never writes one, so one read back is treated as invalid too.
fn kind(descriptor: u64, level: u8) -> Kind {
    match (descriptor & (VALID | TABLE_OR_PAGE), level) {
        (0b11, 3) => Kind::Leaf,
        (0b11, _) => Kind::Table,
        (0b01, 1 | 2) => Kind::Leaf,
        _ => Kind::Invalid,
    }
}

/// Whether a block or page may be written at `level` (4 KiB granule: 1 GiB
/// blocks at level 1, 2 MiB at level 2, pages at level 3).
fn leaf_allowed(level: u8) -> bool {
    (1..=3).contains(&level)
}

/// Type bits [1:0] of a leaf: page (0b11) at level 3, block (0b01) above.
fn leaf_type(level: u8) -> u64 {
    if level == 3 {
        VALID | TABLE_OR_PAGE
    } else {
        VALID
    }
}

/// Index of the entry translating `addr` in a table whose entry 0 translates
/// `table_base`; above 511 only for a concatenated root.
fn index_in(table_base: u64, addr: u64, shift: u32) -> usize {
    ((addr - table_base) >> shift) as usize
}

/// The 4 KiB table and index within it holding entry `index` of a table
/// that may be several concatenated ones.
fn locate(table: PhysAddr, index: usize) -> (PhysAddr, usize) {
    let page = (index / ENTRIES_PER_TABLE) as u64;
    (table + page * PAGE_SIZE, index % ENTRIES_PER_TABLE)
}

#[cfg(test)]
mod tests;
