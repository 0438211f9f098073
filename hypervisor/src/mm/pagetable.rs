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
mod tests {
    use super::*;
    use crate::mm::regime::{El2Access, El2Attributes, Stage2Access, Stage2Attributes};
    use crate::mm::test_memory::{Event, TestTableMemory};
    use crate::mm::{Ipa, VirtAddr};
    use proptest::prelude::*;

    // Descriptor bits spelled out independently of the code under test
    // (ARM ARM D8.3.1, D8.3.2).
    const BLOCK: u64 = 0b01;
    const TABLE: u64 = 0b11;
    const PAGE: u64 = 0b11;
    const AF_BIT: u64 = 1 << 10;
    const SH_INNER: u64 = 0b11 << 8;
    const AP1_RES1: u64 = 1 << 6;
    const AP2_RO: u64 = 1 << 7;
    const XN_BIT: u64 = 1 << 54;
    const S2AP_RW: u64 = 0b11 << 6;
    const S2AP_RO: u64 = 0b01 << 6;
    const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
    const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
    const MIB2: u64 = 2 << 20;
    const GIB: u64 = 1 << 30;

    fn el2_table() -> El2PageTable<TestTableMemory> {
        PageTable::new(El2Stage1, TestTableMemory::new()).unwrap()
    }

    fn stage2_table(ipa_bits: u32) -> Stage2PageTable<TestTableMemory> {
        PageTable::new(Stage2::new(ipa_bits).unwrap(), TestTableMemory::new()).unwrap()
    }

    /// Raw descriptor `index` of the 4 KiB table at `table`.
    fn entry<R: Regime>(pt: &PageTable<R, TestTableMemory>, table: u64, index: usize) -> u64 {
        pt.memory().read_entry(PhysAddr(table), index)
    }

    /// The next-level table a descriptor points to, checking it is a table descriptor.
    fn next_table(descriptor: u64) -> u64 {
        assert_eq!(
            descriptor & 0b11,
            TABLE,
            "not a table descriptor: {descriptor:#x}"
        );
        assert_eq!(
            descriptor & !0x0000_ffff_ffff_f003,
            0,
            "stray bits in {descriptor:#x}"
        );
        descriptor & 0x0000_ffff_ffff_f000
    }

    fn rw_data() -> El2Attributes {
        El2Attributes::normal(El2Access::ReadWrite, true)
    }

    fn guest_ram() -> Stage2Attributes {
        Stage2Attributes::normal(Stage2Access::ReadWrite, false)
    }

    #[test]
    fn el2_maps_first_gib_as_one_level_1_block() {
        let mut pt = el2_table();
        pt.map(VirtAddr(0), PhysAddr(0), GIB, rw_data()).unwrap();
        let l1 = next_table(entry(&pt, pt.root().raw(), 0));
        assert_eq!(
            entry(&pt, l1, 0),
            BLOCK | AF_BIT | AP1_RES1 | SH_INNER | XN_BIT, // AttrIndx 0, OA 0
        );
        assert_eq!(entry(&pt, l1, 1), 0);
        assert_eq!(
            pt.memory().tables_allocated(),
            2,
            "root and one level-1 table"
        );
    }

    #[test]
    fn el2_device_page_descriptor_has_attr_index_1_non_shareable_xn() {
        let mut pt = el2_table();
        pt.map(
            VirtAddr(0x0900_0000),
            PhysAddr(0x0900_0000),
            PAGE_SIZE,
            El2Attributes::device(),
        )
        .unwrap();
        let l1 = next_table(entry(&pt, pt.root().raw(), 0));
        let l2 = next_table(entry(&pt, l1, 0));
        let l3 = next_table(entry(&pt, l2, 0x0900_0000 >> 21));
        assert_eq!(
            entry(&pt, l3, 0),
            0x0900_0000 | PAGE | AF_BIT | AP1_RES1 | (1 << 2) | XN_BIT
        );
    }

    #[test]
    fn el2_read_only_executable_page_sets_ap2_and_clears_xn() {
        let mut pt = el2_table();
        let code = El2Attributes::normal(El2Access::ReadOnly, false);
        pt.map(
            VirtAddr(0x4008_0000),
            PhysAddr(0x4008_0000),
            PAGE_SIZE,
            code,
        )
        .unwrap();
        let l1 = next_table(entry(&pt, pt.root().raw(), 0));
        let l2 = next_table(entry(&pt, l1, 1));
        let l3 = next_table(entry(&pt, l2, 0));
        assert_eq!(
            entry(&pt, l3, 0x80),
            0x4008_0000 | PAGE | AF_BIT | AP1_RES1 | AP2_RO | SH_INNER
        );
        assert_eq!(
            pt.translate(VirtAddr(0x4008_0123)),
            Some((PhysAddr(0x4008_0123), code))
        );
    }

    #[test]
    fn unaligned_mapping_uses_pages_at_the_edges_and_blocks_inside() {
        let mut pt = el2_table();
        // [0x1ff000, 0x601000): one page, two 2 MiB blocks, one page.
        pt.map(
            VirtAddr(0x1f_f000),
            PhysAddr(0x801f_f000),
            0x40_2000,
            rw_data(),
        )
        .unwrap();
        let attrs = AF_BIT | AP1_RES1 | SH_INNER | XN_BIT;
        let l1 = next_table(entry(&pt, pt.root().raw(), 0));
        let l2 = next_table(entry(&pt, l1, 0));
        let first = next_table(entry(&pt, l2, 0));
        assert_eq!(entry(&pt, first, 511), 0x801f_f000 | PAGE | attrs);
        assert_eq!(entry(&pt, first, 510), 0);
        assert_eq!(entry(&pt, l2, 1), 0x8020_0000 | BLOCK | attrs);
        assert_eq!(entry(&pt, l2, 2), 0x8040_0000 | BLOCK | attrs);
        let last = next_table(entry(&pt, l2, 3));
        assert_eq!(entry(&pt, last, 0), 0x8060_0000 | PAGE | attrs);
        assert_eq!(entry(&pt, last, 1), 0);
    }

    #[test]
    fn output_misaligned_to_blocks_is_mapped_with_pages() {
        let mut pt = stage2_table(40);
        pt.map(Ipa(0), PhysAddr(0x8000_1000), MIB2, guest_ram())
            .unwrap();
        let l1 = pt.root().raw();
        let l2 = next_table(entry(&pt, l1, 0));
        let l3 = next_table(entry(&pt, l2, 0));
        for index in 0..ENTRIES_PER_TABLE {
            assert_eq!(
                entry(&pt, l3, index) & 0x0000_ffff_ffff_f003,
                (0x8000_1000 + index as u64 * PAGE_SIZE) | PAGE
            );
        }
    }

    #[test]
    fn stage2_40_bit_root_is_two_concatenated_level_1_tables() {
        let mut pt = stage2_table(40);
        assert!(
            pt.root().is_aligned(2 * PAGE_SIZE),
            "concatenated root must be 8 KiB aligned"
        );
        // IPA 0xC0_0000_0000 is level-1 index 768: entry 256 of the second table.
        pt.map(
            Ipa(0xc0_0000_0000),
            PhysAddr(0x1_0000_0000),
            GIB,
            guest_ram(),
        )
        .unwrap();
        let second = pt.root().raw() + PAGE_SIZE;
        assert_eq!(
            entry(&pt, second, 256),
            0x1_0000_0000 | BLOCK | AF_BIT | MEMATTR_NORMAL_WB | S2AP_RW | SH_INNER
        );
        assert_eq!(entry(&pt, pt.root().raw(), 256), 0);
        assert_eq!(
            pt.translate(Ipa(0xc0_1234_5678)),
            Some((PhysAddr(0x1_1234_5678), guest_ram()))
        );
        // The top of the 40-bit space is reachable, one past it is not.
        pt.map(
            Ipa((1 << 40) - PAGE_SIZE),
            PhysAddr(0),
            PAGE_SIZE,
            guest_ram(),
        )
        .unwrap();
        assert_eq!(
            pt.map(Ipa(1 << 40), PhysAddr(0), PAGE_SIZE, guest_ram()),
            Err(PageTableError::InputOutOfRange {
                start: 1 << 40,
                size: PAGE_SIZE
            })
        );
    }

    #[test]
    fn stage2_device_page_descriptor_bits() {
        let mut pt = stage2_table(39);
        let mmio = Stage2Attributes::device(Stage2Access::ReadOnly);
        pt.map(Ipa(0x0800_0000), PhysAddr(0x0800_0000), PAGE_SIZE, mmio)
            .unwrap();
        let l2 = next_table(entry(&pt, pt.root().raw(), 0));
        let l3 = next_table(entry(&pt, l2, 0x40));
        assert_eq!(
            entry(&pt, l3, 0),
            0x0800_0000 | PAGE | AF_BIT | MEMATTR_DEVICE_NGNRE | S2AP_RO | XN_BIT
        );
    }

    #[test]
    fn stage2_44_bit_ipa_walks_from_level_0() {
        let mut pt = stage2_table(44);
        pt.map(
            Ipa(0x800_0000_0000),
            PhysAddr(0x4000_0000),
            MIB2,
            guest_ram(),
        )
        .unwrap();
        // Level-0 index 16 (bit 43), then level 1 index 0, level 2 index 0.
        let l1 = next_table(entry(&pt, pt.root().raw(), 16));
        let l2 = next_table(entry(&pt, l1, 0));
        assert_eq!(entry(&pt, l2, 0) & 0b11, BLOCK);
        assert_eq!(
            pt.translate(Ipa(0x800_0000_1000)).map(|(pa, _)| pa),
            Some(PhysAddr(0x4000_1000))
        );
    }

    #[test]
    fn punching_a_page_hole_splits_the_block_before_swapping_it_in() {
        let mut pt = stage2_table(40);
        let base = 0x8000_0000;
        pt.map(Ipa(base), PhysAddr(base), MIB2, guest_ram())
            .unwrap();
        let l2 = next_table(entry(&pt, pt.root().raw(), 2));
        let block = entry(&pt, l2, 0);
        let log_start = pt.memory().log.len();

        pt.unmap(Ipa(base + PAGE_SIZE), PAGE_SIZE).unwrap();

        let l3 = next_table(entry(&pt, l2, 0));
        let attrs = AF_BIT | MEMATTR_NORMAL_WB | S2AP_RW | SH_INNER;
        assert_eq!(block, base | BLOCK | attrs);
        assert_eq!(entry(&pt, l3, 0), base | PAGE | attrs);
        assert_eq!(entry(&pt, l3, 1), 0);
        for index in 2..ENTRIES_PER_TABLE {
            assert_eq!(
                entry(&pt, l3, index),
                (base + index as u64 * PAGE_SIZE) | PAGE | attrs
            );
        }
        assert_eq!(pt.translate(Ipa(base + PAGE_SIZE)), None);
        assert_eq!(
            pt.translate(Ipa(base + 2 * PAGE_SIZE)),
            Some((PhysAddr(base + 2 * PAGE_SIZE), guest_ram()))
        );

        // Order: fill the new table, barrier, break (invalid + TLBI), make.
        let log = &pt.memory().log[log_start..];
        let link = log.len() - 1;
        assert_eq!(log[link], Event::Write(PhysAddr(l2), 0, l3 | TABLE));
        assert_eq!(log[link - 1], Event::Invalidate(base, MIB2));
        assert_eq!(log[link - 2], Event::Write(PhysAddr(l2), 0, 0));
        assert_eq!(log[link - 3], Event::Barrier);
        assert!(log[..link - 3]
            .iter()
            .all(|event| matches!(event, Event::Write(table, _, _) if table.raw() == l3)));
    }

    #[test]
    fn a_new_table_is_filled_before_it_is_linked() {
        let mut pt = el2_table();
        pt.map(VirtAddr(0x1000), PhysAddr(0x1000), 3 * PAGE_SIZE, rw_data())
            .unwrap();
        let log = &pt.memory().log;
        let link_positions: Vec<_> = log
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Event::Write(_, _, v) if v & 0b11 == TABLE && v & AF_BIT == 0 => {
                    Some((i, v & OA_MASK))
                }
                _ => None,
            })
            .collect();
        assert_eq!(link_positions.len(), 3, "level 1, 2 and 3 tables");
        // Built bottom up; only the link into the live root needs the
        // barrier, which orders the whole new subtree before it.
        let (root_link, _) = link_positions[2];
        assert_eq!(
            log[root_link],
            Event::Write(pt.root(), 0, link_positions[2].1 | TABLE)
        );
        assert_eq!(log[root_link - 1], Event::Barrier);
        assert_eq!(
            log.iter().filter(|e| **e == Event::Barrier).count(),
            2,
            "root link and end of map"
        );
        for (position, table) in link_positions {
            let later_writes_into_it = log[position..]
                .iter()
                .any(|e| matches!(e, Event::Write(t, _, _) if t.raw() == table));
            assert!(
                !later_writes_into_it,
                "table {table:#x} written after being linked"
            );
        }
    }

    #[test]
    fn remapping_a_page_inside_a_block_changes_only_that_page() {
        let mut pt = stage2_table(40);
        pt.map(Ipa(0), PhysAddr(0x8000_0000), MIB2, guest_ram())
            .unwrap();
        let read_only = Stage2Attributes::normal(Stage2Access::ReadOnly, true);
        pt.remap(Ipa(0x5000), PhysAddr(0x9000_0000), PAGE_SIZE, read_only)
            .unwrap();
        assert_eq!(
            pt.translate(Ipa(0x5000)),
            Some((PhysAddr(0x9000_0000), read_only))
        );
        assert_eq!(
            pt.translate(Ipa(0x4000)),
            Some((PhysAddr(0x8000_4000), guest_ram()))
        );
        assert_eq!(
            pt.translate(Ipa(0x6000)),
            Some((PhysAddr(0x8000_6000), guest_ram()))
        );
    }

    #[test]
    fn remapping_a_valid_block_breaks_before_making() {
        let mut pt = stage2_table(40);
        pt.map(Ipa(0), PhysAddr(0), MIB2, guest_ram()).unwrap();
        let l2 = next_table(entry(&pt, pt.root().raw(), 0));
        let log_start = pt.memory().log.len();
        let device = Stage2Attributes::device(Stage2Access::ReadWrite);
        pt.remap(Ipa(0), PhysAddr(MIB2), MIB2, device).unwrap();
        let new = MIB2 | BLOCK | AF_BIT | MEMATTR_DEVICE_NGNRE | S2AP_RW | XN_BIT;
        assert_eq!(
            pt.memory().log[log_start..],
            [
                Event::Write(PhysAddr(l2), 0, 0),
                Event::Invalidate(0, MIB2),
                Event::Write(PhysAddr(l2), 0, new),
                Event::Barrier,
            ]
        );
    }

    #[test]
    fn map_refuses_to_overlap_an_existing_mapping() {
        let mut pt = el2_table();
        pt.map(VirtAddr(0x20_0000), PhysAddr(0), MIB2, rw_data())
            .unwrap();
        assert_eq!(
            pt.map(VirtAddr(0x1f_0000), PhysAddr(0), 0x20_0000, rw_data()),
            Err(PageTableError::AlreadyMapped { addr: 0x20_0000 })
        );
        // Nothing of the refused range got mapped.
        assert_eq!(pt.translate(VirtAddr(0x1f_0000)), None);
    }

    #[test]
    fn map_rejects_misaligned_and_out_of_range_arguments() {
        let mut pt = el2_table();
        let attrs = rw_data();
        assert_eq!(
            pt.map(VirtAddr(0x1001), PhysAddr(0), PAGE_SIZE, attrs),
            Err(PageTableError::MisalignedInput { addr: 0x1001 })
        );
        assert_eq!(
            pt.map(VirtAddr(0), PhysAddr(0x10), PAGE_SIZE, attrs),
            Err(PageTableError::MisalignedOutput { pa: PhysAddr(0x10) })
        );
        assert_eq!(
            pt.map(VirtAddr(0), PhysAddr(0), 100, attrs),
            Err(PageTableError::MisalignedSize { size: 100 })
        );
        assert_eq!(
            pt.map(
                VirtAddr((1 << 48) - PAGE_SIZE),
                PhysAddr(0),
                2 * PAGE_SIZE,
                attrs
            ),
            Err(PageTableError::InputOutOfRange {
                start: (1 << 48) - PAGE_SIZE,
                size: 2 * PAGE_SIZE
            })
        );
        assert_eq!(
            pt.map(VirtAddr(!0xfff), PhysAddr(0), PAGE_SIZE, attrs),
            Err(PageTableError::InputOutOfRange {
                start: !0xfff,
                size: PAGE_SIZE
            })
        );
        assert_eq!(
            pt.map(VirtAddr(0), PhysAddr(1 << 48), PAGE_SIZE, attrs),
            Err(PageTableError::OutputOutOfRange {
                pa: PhysAddr(1 << 48),
                size: PAGE_SIZE
            })
        );
        assert_eq!(pt.map(VirtAddr(0), PhysAddr(0), 0, attrs), Ok(()));
        assert_eq!(pt.translate(VirtAddr(0)), None);
    }

    #[test]
    fn map_out_of_table_memory_leaves_nothing_mapped() {
        // Root + level-2 + level-3 table fit; the second 1 GiB region's
        // level-2 table does not.
        let mut pt =
            PageTable::new(Stage2::new(39).unwrap(), TestTableMemory::with_limit(3)).unwrap();
        let result = pt.map(
            Ipa(GIB - PAGE_SIZE),
            PhysAddr(0),
            2 * PAGE_SIZE,
            guest_ram(),
        );
        assert_eq!(result, Err(PageTableError::OutOfTableMemory));
        assert_eq!(pt.translate(Ipa(GIB - PAGE_SIZE)), None);
        assert_eq!(pt.translate(Ipa(GIB)), None);
    }

    #[test]
    fn new_fails_cleanly_without_table_memory() {
        let result = PageTable::new(Stage2::new(40).unwrap(), TestTableMemory::with_limit(1));
        assert!(matches!(result, Err(PageTableError::OutOfTableMemory)));
    }

    #[test]
    fn unmap_of_whole_blocks_and_unmapped_ranges() {
        let mut pt = el2_table();
        pt.map(VirtAddr(0), PhysAddr(0), 4 * MIB2, rw_data())
            .unwrap();
        pt.unmap(VirtAddr(MIB2), 2 * MIB2).unwrap();
        assert_eq!(
            pt.translate(VirtAddr(MIB2 - PAGE_SIZE)).map(|m| m.0),
            Some(PhysAddr(MIB2 - PAGE_SIZE))
        );
        assert_eq!(pt.translate(VirtAddr(MIB2)), None);
        assert_eq!(pt.translate(VirtAddr(3 * MIB2 - 1)), None);
        assert_eq!(
            pt.translate(VirtAddr(3 * MIB2)).map(|m| m.0),
            Some(PhysAddr(3 * MIB2))
        );
        // Unmapping something never mapped is fine.
        pt.unmap(VirtAddr(100 * GIB), GIB).unwrap();
        // The hole can be mapped again.
        pt.map(VirtAddr(MIB2), PhysAddr(0x1000_0000), MIB2, rw_data())
            .unwrap();
        assert_eq!(
            pt.translate(VirtAddr(MIB2 + 8)).map(|m| m.0),
            Some(PhysAddr(0x1000_0008))
        );
    }

    #[test]
    fn translate_outside_the_input_range_is_none() {
        let pt = stage2_table(32);
        assert_eq!(pt.translate(Ipa(1 << 32)), None);
        assert_eq!(pt.translate(Ipa(u64::MAX)), None);
    }

    /// A mapping for the property test: page-granular input and output.
    #[derive(Clone, Debug)]
    struct Mapping {
        start: u64,
        pa: u64,
        pages: u64,
        attributes: Stage2Attributes,
    }

    /// Up to 12 disjoint mappings laid out left to right in a 40-bit IPA
    /// space, some 2 MiB aligned in both input and output so blocks appear.
    fn mappings() -> impl Strategy<Value = Vec<Mapping>> {
        let one = (
            0u64..1200,
            1u64..1100,
            0u64..(1 << 20),
            any::<bool>(),
            0u8..3,
        );
        prop::collection::vec(one, 1..12).prop_map(|specs| {
            let mut next = 0u64;
            let mut out = Vec::new();
            for (gap, pages, pa_page, block_aligned, kind) in specs {
                let mut start = next + gap * PAGE_SIZE;
                let mut pa = pa_page * PAGE_SIZE;
                if block_aligned {
                    start = start.next_multiple_of(MIB2);
                    pa = pa.next_multiple_of(MIB2);
                }
                let attributes = match kind {
                    0 => guest_ram(),
                    1 => Stage2Attributes::normal(Stage2Access::ReadOnly, true),
                    _ => Stage2Attributes::device(Stage2Access::ReadWrite),
                };
                out.push(Mapping {
                    start,
                    pa,
                    pages,
                    attributes,
                });
                next = start + pages * PAGE_SIZE;
            }
            out
        })
    }

    proptest! {
        #[test]
        fn translate_round_trips_random_mappings(mappings in mappings(), unmap_mask in any::<u16>()) {
            let mut pt = stage2_table(40);
            for m in &mappings {
                pt.map(Ipa(m.start), PhysAddr(m.pa), m.pages * PAGE_SIZE, m.attributes).unwrap();
            }
            // Every page (probed at an odd offset) of every mapping.
            for m in &mappings {
                for page in 0..m.pages {
                    let offset = page * PAGE_SIZE + 0x18;
                    prop_assert_eq!(
                        pt.translate(Ipa(m.start + offset)),
                        Some((PhysAddr(m.pa + offset), m.attributes))
                    );
                }
            }
            // Gaps between mappings and beyond the last one are unmapped.
            let mut previous_end = 0;
            for m in &mappings {
                if m.start > previous_end {
                    prop_assert_eq!(pt.translate(Ipa(previous_end)), None);
                    prop_assert_eq!(pt.translate(Ipa(m.start - 1)), None);
                }
                previous_end = m.start + m.pages * PAGE_SIZE;
            }
            prop_assert_eq!(pt.translate(Ipa(previous_end)), None);
            prop_assert_eq!(pt.translate(Ipa(previous_end + GIB)), None);
            // Unmap a random subset; the rest must be untouched.
            for (i, m) in mappings.iter().enumerate() {
                if unmap_mask & (1 << i) != 0 {
                    pt.unmap(Ipa(m.start), m.pages * PAGE_SIZE).unwrap();
                }
            }
            for (i, m) in mappings.iter().enumerate() {
                let unmapped = unmap_mask & (1 << i) != 0;
                for page in [0, m.pages / 2, m.pages - 1] {
                    let addr = m.start + page * PAGE_SIZE;
                    let expected = (!unmapped).then(|| (PhysAddr(m.pa + page * PAGE_SIZE), m.attributes));
                    prop_assert_eq!(pt.translate(Ipa(addr)), expected);
                }
            }
        }
    }
}
