//! A `Vec`-backed [`TableMemory`] for host tests: tables live at fake
//! physical addresses from `BASE` up, and every write, barrier and
//! invalidation is logged so tests can check the order of table updates.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::pagetable::{TableMemory, ENTRIES_PER_TABLE, PAGE_SIZE};
use super::PhysAddr;

/// What the builder did to table memory, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// `write_entry(table, index, value)`.
    Write(PhysAddr, usize, u64),
    /// `publish_barrier()`.
    Barrier,
    /// `invalidate(start, size)`.
    Invalidate(u64, u64),
}

/// Table memory in a `Vec`, with an optional limit on the number of tables.
pub(crate) struct TestTableMemory {
    tables: Vec<[u64; ENTRIES_PER_TABLE]>,
    /// Maximum number of tables `allocate_zeroed` may hand out in total.
    pub limit: usize,
    /// Every write, barrier and invalidation, in order.
    pub log: Vec<Event>,
}

impl TestTableMemory {
    /// Fake PA of the first table: 1 GiB aligned, so any concatenated root is aligned.
    pub const BASE: u64 = 0x4000_0000;

    /// An arena with no allocation limit (beyond what a test can use).
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// An arena that hands out at most `limit` tables.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            tables: Vec::new(),
            limit,
            log: Vec::new(),
        }
    }

    /// Number of tables allocated so far (including alignment padding).
    pub fn tables_allocated(&self) -> usize {
        self.tables.len()
    }

    fn slot(&self, table: PhysAddr) -> usize {
        let offset = table.raw() - Self::BASE;
        assert_eq!(offset % PAGE_SIZE, 0, "table {table:?} not 4 KiB aligned");
        let slot = (offset / PAGE_SIZE) as usize;
        assert!(
            slot < self.tables.len(),
            "table {table:?} was never allocated"
        );
        slot
    }
}

impl TableMemory for TestTableMemory {
    fn allocate_zeroed(&mut self, count: usize) -> Option<PhysAddr> {
        // Pad so the first table is aligned to the whole allocation.
        let first = self.tables.len().next_multiple_of(count);
        if first + count > self.limit {
            return None;
        }
        self.tables.resize(first + count, [0; ENTRIES_PER_TABLE]);
        Some(PhysAddr(Self::BASE + first as u64 * PAGE_SIZE))
    }

    fn read_entry(&self, table: PhysAddr, index: usize) -> u64 {
        self.tables[self.slot(table)][index]
    }

    fn write_entry(&mut self, table: PhysAddr, index: usize, value: u64) {
        let slot = self.slot(table);
        self.tables[slot][index] = value;
        self.log.push(Event::Write(table, index, value));
    }

    fn publish_barrier(&mut self) {
        self.log.push(Event::Barrier);
    }

    fn invalidate(&mut self, input_start: u64, size: u64) {
        self.log.push(Event::Invalidate(input_start, size));
    }
}
