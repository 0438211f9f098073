//! LPI INTIDs: an allocator for physical LPIs and the sizing of the LPI
//! configuration and pending tables, physical and GICv4 virtual (IHI 0069,
//! 5.1 "LPIs").
//!
//! The allocator keeps a sorted list of free spans: memory grows with
//! fragmentation, not with the INTID space, and is capped by the caller.

use alloc::vec::Vec;
use core::fmt;

use crate::ids::{PhysIntId, FIRST_LPI};

/// The fewest INTID bits that leave room for LPIs (8192 needs 14 bits).
pub const MIN_LPI_ID_BITS: u32 = 14;
/// The most INTID bits the architecture allows.
pub const MAX_LPI_ID_BITS: u32 = 32;
/// Alignment of an LPI configuration table (GICR_PROPBASER[51:12]).
pub const PROPERTY_TABLE_ALIGN: u64 = 4 << 10;
/// Alignment of an LPI pending table (GICR_PENDBASER[51:16]).
pub const PENDING_TABLE_ALIGN: u64 = 64 << 10;

/// Why an LPI allocation, free or table sizing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LpiError {
    /// The number of INTID bits is outside 14..=32 or above what the GIC supports.
    IdBitsOutOfRange {
        /// The bits asked for.
        id_bits: u32,
        /// The most the hardware supports.
        supported: u32,
    },
    /// A block of zero INTIDs was asked for.
    EmptyBlock,
    /// No free span holds `count` contiguous INTIDs.
    Exhausted {
        /// The block size asked for.
        count: u32,
    },
    /// A freed block is not inside the LPI range of this allocator.
    OutOfRange {
        /// First INTID of the block.
        first: u32,
        /// Size of the block.
        count: u32,
    },
    /// A freed block overlaps INTIDs that are already free (double free).
    NotAllocated {
        /// First INTID of the block.
        first: u32,
        /// Size of the block.
        count: u32,
    },
    /// Freeing would need more free spans than the allocator may hold.
    TooFragmented,
    /// The free-span list could not grow.
    OutOfMemory,
}

impl fmt::Display for LpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IdBitsOutOfRange { id_bits, supported } => {
                write!(f, "{id_bits} INTID bits asked, 14..={supported} possible")
            }
            Self::EmptyBlock => write!(f, "empty LPI block"),
            Self::Exhausted { count } => write!(f, "no {count} contiguous free LPIs"),
            Self::OutOfRange { first, count } => {
                write!(f, "LPIs {first}+{count} outside the LPI range")
            }
            Self::NotAllocated { first, count } => {
                write!(f, "LPIs {first}+{count} freed but not allocated")
            }
            Self::TooFragmented => write!(f, "LPI free list full"),
            Self::OutOfMemory => write!(f, "out of memory for the LPI free list"),
        }
    }
}

/// A contiguous block of allocated LPI INTIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpiBlock {
    /// The first INTID of the block.
    pub first: PhysIntId,
    /// The number of INTIDs in the block (at least 1).
    pub count: u32,
}

impl LpiBlock {
    /// The `index`-th INTID of the block, if inside it.
    pub fn get(&self, index: u32) -> Option<PhysIntId> {
        if index < self.count {
            self.first.get().checked_add(index).and_then(PhysIntId::new)
        } else {
            None
        }
    }
}

/// A free span `[start, end)`; `u64` so that 2^32 fits as an end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

/// Allocator of physical LPI INTIDs in `[8192, 2^id_bits)`.
#[derive(Debug)]
pub struct LpiAllocator {
    /// Free spans, sorted, disjoint and never adjacent (always merged).
    free: Vec<Span>,
    /// One past the highest LPI INTID.
    limit: u64,
    /// Cap on `free.len()`, which bounds the allocator's memory.
    max_spans: usize,
}

impl LpiAllocator {
    /// An allocator over every LPI of an `id_bits`-bit INTID space, holding
    /// at most `max_spans` free spans (at least 1).
    pub fn new(id_bits: u32, max_spans: usize) -> Result<Self, LpiError> {
        check_id_bits(id_bits, MAX_LPI_ID_BITS)?;
        let limit = 1u64 << id_bits;
        let mut free = Vec::new();
        free.try_reserve(1).map_err(|_| LpiError::OutOfMemory)?;
        free.push(Span {
            start: FIRST_LPI as u64,
            end: limit,
        });
        Ok(Self {
            free,
            limit,
            max_spans: max_spans.max(1),
        })
    }

    /// Allocates one LPI INTID.
    pub fn allocate(&mut self) -> Result<PhysIntId, LpiError> {
        self.allocate_block(1).map(|block| block.first)
    }

    /// Allocates `count` contiguous INTIDs, lowest fitting span first.
    /// Never grows the free list: a span shrinks or disappears.
    pub fn allocate_block(&mut self, count: u32) -> Result<LpiBlock, LpiError> {
        if count == 0 {
            return Err(LpiError::EmptyBlock);
        }
        let wanted = count as u64;
        let index = self
            .free
            .iter()
            .position(|span| span.end - span.start >= wanted)
            .ok_or(LpiError::Exhausted { count })?;
        let span = &mut self.free[index];
        let first = span.start;
        span.start += wanted;
        if span.start == span.end {
            self.free.remove(index);
        }
        // `first` >= 8192 and < limit <= 2^32, so it is an LPI.
        let first = u32::try_from(first)
            .ok()
            .and_then(PhysIntId::new)
            .ok_or(LpiError::Exhausted { count })?;
        Ok(LpiBlock { first, count })
    }

    /// Returns one INTID to the allocator.
    pub fn free(&mut self, intid: PhysIntId) -> Result<(), LpiError> {
        self.free_block(LpiBlock {
            first: intid,
            count: 1,
        })
    }

    /// Returns a block to the allocator, merging it with free neighbours.
    /// On error nothing changes.
    pub fn free_block(&mut self, block: LpiBlock) -> Result<(), LpiError> {
        let (first, count) = (block.first.get(), block.count);
        let start = first as u64;
        let end = start + count as u64;
        if count == 0 || start < FIRST_LPI as u64 || end > self.limit {
            return Err(LpiError::OutOfRange { first, count });
        }
        // The first free span that ends after the block starts.
        let index = self.free.partition_point(|span| span.end <= start);
        if self.free.get(index).is_some_and(|span| span.start < end) {
            return Err(LpiError::NotAllocated { first, count });
        }
        let joins_previous = index > 0 && self.free[index - 1].end == start;
        let joins_next = self.free.get(index).is_some_and(|span| span.start == end);
        match (joins_previous, joins_next) {
            (true, true) => {
                self.free[index - 1].end = self.free[index].end;
                self.free.remove(index);
            }
            (true, false) => self.free[index - 1].end = end,
            (false, true) => self.free[index].start = start,
            (false, false) => {
                if self.free.len() >= self.max_spans {
                    return Err(LpiError::TooFragmented);
                }
                self.free
                    .try_reserve(1)
                    .map_err(|_| LpiError::OutOfMemory)?;
                self.free.insert(index, Span { start, end });
            }
        }
        Ok(())
    }

    /// Number of free INTIDs.
    pub fn free_count(&self) -> u64 {
        self.free.iter().map(|span| span.end - span.start).sum()
    }

    /// Number of INTIDs handed out and not freed yet (what a teardown must
    /// bring back to where it was).
    pub fn in_use(&self) -> u64 {
        (self.limit - FIRST_LPI as u64).saturating_sub(self.free_count())
    }

    /// Number of free spans (a measure of fragmentation).
    pub fn span_count(&self) -> usize {
        self.free.len()
    }
}

/// Sizes and alignments of the LPI tables for an INTID width, the same for
/// physical LPIs (GICR_PROPBASER/PENDBASER) and a GICv4.0 vPE's vLPIs
/// (GICR_VPROPBASER/VPENDBASER, VMAPP's VPT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpiTableLayout {
    /// Number of INTID bits the tables cover.
    pub id_bits: u32,
    /// Bytes of the configuration table: one byte per LPI, 2^id_bits - 8192
    /// (IHI 0069, 5.1: the table has no entries for INTIDs below 8192).
    pub property_bytes: u64,
    /// Bytes of the pending table: one bit per INTID, 2^id_bits / 8,
    /// including the first 1 KiB that covers INTIDs below 8192.
    pub pending_bytes: u64,
}

impl LpiTableLayout {
    /// The layout for `id_bits`, checked against `supported` (the GIC's
    /// GICD_TYPER.IDbits + 1, or GITS_TYPER.ID_bits + 1 for a vPE).
    pub fn new(id_bits: u32, supported: u32) -> Result<Self, LpiError> {
        check_id_bits(id_bits, supported.min(MAX_LPI_ID_BITS))?;
        let intids = 1u64 << id_bits;
        Ok(Self {
            id_bits,
            property_bytes: intids - FIRST_LPI as u64,
            pending_bytes: intids / 8,
        })
    }

    /// Alignment of the configuration table.
    pub const fn property_align(&self) -> u64 {
        PROPERTY_TABLE_ALIGN
    }

    /// Alignment of the pending table.
    pub const fn pending_align(&self) -> u64 {
        PENDING_TABLE_ALIGN
    }

    /// The IDbits field of GICR_(V)PROPBASER, and VMAPP's VPT_size: bits minus one.
    pub const fn id_bits_field(&self) -> u8 {
        (self.id_bits - 1) as u8
    }
}

/// An LPI configuration byte (IHI 0069, 5.1: priority in [7:2], bit 1
/// RES1, Enable in bit 0); the priority's low two bits are dropped.
pub const fn lpi_config_byte(priority: u8, enabled: bool) -> u8 {
    (priority & 0xfc) | 0b10 | enabled as u8
}

/// `Ok` when `id_bits` is in `14..=supported`.
fn check_id_bits(id_bits: u32, supported: u32) -> Result<(), LpiError> {
    if (MIN_LPI_ID_BITS..=supported).contains(&id_bits) {
        Ok(())
    } else {
        Err(LpiError::IdBitsOutOfRange { id_bits, supported })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_counts_allocations_and_returns_to_zero_when_all_are_freed() {
        let mut a = LpiAllocator::new(16, 8).unwrap();
        assert_eq!(a.in_use(), 0);
        let first = a.allocate().unwrap();
        let block = a.allocate_block(4).unwrap();
        let last = a.allocate().unwrap();
        assert_eq!(a.in_use(), 6);
        a.free_block(block).unwrap();
        assert_eq!(a.in_use(), 2);
        // A refused free changes nothing.
        assert!(a.free(PhysIntId::from_const(block.first.get())).is_err());
        assert_eq!(a.in_use(), 2);
        a.free(first).unwrap();
        a.free(last).unwrap();
        assert_eq!(a.in_use(), 0);
        assert_eq!(a.span_count(), 1);
    }

    #[test]
    fn allocation_starts_at_8192() {
        let mut lpis = LpiAllocator::new(16, 8).expect("valid");
        assert_eq!(lpis.allocate(), Ok(PhysIntId::from_const(8192)));
        assert_eq!(lpis.allocate(), Ok(PhysIntId::from_const(8193)));
        assert_eq!(lpis.free_count(), 65536 - 8192 - 2);
    }

    #[test]
    fn id_bits_below_14_or_above_32_are_rejected() {
        assert!(matches!(
            LpiAllocator::new(13, 8),
            Err(LpiError::IdBitsOutOfRange { .. })
        ));
        assert!(matches!(
            LpiAllocator::new(33, 8),
            Err(LpiError::IdBitsOutOfRange { .. })
        ));
        assert_eq!(
            LpiAllocator::new(14, 8).expect("8192 LPIs").free_count(),
            8192
        );
    }

    #[test]
    fn full_32_bit_space_ends_at_u32_max() {
        let mut lpis = LpiAllocator::new(32, 8).expect("valid");
        let count = u32::MAX - FIRST_LPI + 1;
        let block = lpis.allocate_block(count).expect("whole space");
        assert_eq!(block.get(count - 1), Some(PhysIntId::from_const(u32::MAX)));
        assert_eq!(block.get(count), None);
        assert_eq!(lpis.allocate(), Err(LpiError::Exhausted { count: 1 }));
        assert_eq!(lpis.free_block(block), Ok(()));
        assert_eq!(lpis.free_count(), count as u64);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut lpis = LpiAllocator::new(14, 8).expect("valid");
        assert!(lpis.allocate_block(8192).is_ok());
        assert_eq!(lpis.allocate(), Err(LpiError::Exhausted { count: 1 }));
        assert_eq!(lpis.allocate_block(0), Err(LpiError::EmptyBlock));
    }

    #[test]
    fn freed_blocks_merge_with_both_neighbours() {
        let mut lpis = LpiAllocator::new(14, 8).expect("valid");
        let a = lpis.allocate_block(4).expect("a");
        let b = lpis.allocate_block(4).expect("b");
        let c = lpis.allocate_block(4).expect("c");
        lpis.free_block(a).expect("free a");
        lpis.free_block(c).expect("free c");
        assert_eq!(lpis.span_count(), 2);
        lpis.free_block(b).expect("free b");
        assert_eq!(lpis.span_count(), 1);
        assert_eq!(lpis.free_count(), 8192);
    }

    #[test]
    fn a_hole_is_reused_by_a_block_that_fits() {
        let mut lpis = LpiAllocator::new(14, 8).expect("valid");
        let a = lpis.allocate_block(32).expect("a");
        let _b = lpis.allocate_block(32).expect("b");
        lpis.free_block(a).expect("free a");
        assert_eq!(
            lpis.allocate_block(64).expect("c").first,
            PhysIntId::from_const(8192 + 64)
        );
        assert_eq!(
            lpis.allocate_block(32).expect("d").first,
            PhysIntId::from_const(8192)
        );
    }

    #[test]
    fn double_free_and_foreign_ranges_are_rejected() {
        let mut lpis = LpiAllocator::new(14, 8).expect("valid");
        let id = lpis.allocate().expect("one");
        assert_eq!(lpis.free(id), Ok(()));
        assert_eq!(
            lpis.free(id),
            Err(LpiError::NotAllocated {
                first: 8192,
                count: 1
            })
        );
        // 8191 is not an INTID at all: the type cannot name it.
        assert_eq!(PhysIntId::new(8191), None);
        assert_eq!(
            lpis.free(PhysIntId::from_const(16384)),
            Err(LpiError::OutOfRange {
                first: 16384,
                count: 1
            })
        );
        let block = LpiBlock {
            first: PhysIntId::from_const(16000),
            count: 1000,
        };
        assert!(matches!(
            lpis.free_block(block),
            Err(LpiError::OutOfRange { .. })
        ));
    }

    #[test]
    fn partially_free_block_is_rejected_without_change() {
        let mut lpis = LpiAllocator::new(14, 8).expect("valid");
        let block = lpis.allocate_block(8).expect("block");
        lpis.free(PhysIntId::from_const(8195)).expect("one of them");
        let before = lpis.free_count();
        assert!(matches!(
            lpis.free_block(block),
            Err(LpiError::NotAllocated { .. })
        ));
        assert_eq!(lpis.free_count(), before);
    }

    #[test]
    fn fragmentation_is_bounded_by_max_spans() {
        let mut lpis = LpiAllocator::new(14, 3).expect("valid");
        let ids: Vec<_> = (0..8).map(|_| lpis.allocate().expect("id")).collect();
        // Spans: the tail, then two isolated holes: the cap is reached.
        lpis.free(ids[1]).expect("hole 1");
        lpis.free(ids[3]).expect("hole 2");
        assert_eq!(lpis.free(ids[5]), Err(LpiError::TooFragmented));
        // Freeing next to a hole merges, which never needs a new span.
        assert_eq!(lpis.free(ids[2]), Ok(()));
        assert_eq!(lpis.span_count(), 2);
        assert_eq!(lpis.free(ids[5]), Ok(()));
    }

    #[test]
    fn table_sizes_for_16_bit_intids() {
        let layout = LpiTableLayout::new(16, 16).expect("valid");
        assert_eq!(layout.property_bytes, 65536 - 8192);
        assert_eq!(layout.pending_bytes, 8192);
        assert_eq!(layout.pending_align(), 64 << 10);
        assert_eq!(layout.property_align(), 4 << 10);
        assert_eq!(layout.id_bits_field(), 15);
    }

    #[test]
    fn table_sizes_for_the_extremes() {
        let small = LpiTableLayout::new(14, 16).expect("valid");
        assert_eq!((small.property_bytes, small.pending_bytes), (8192, 2048));
        let huge = LpiTableLayout::new(32, 32).expect("valid");
        assert_eq!(huge.property_bytes, (1 << 32) - 8192);
        assert_eq!(huge.pending_bytes, 512 << 20);
    }

    #[test]
    fn table_layout_refuses_more_bits_than_the_gic_has() {
        assert_eq!(
            LpiTableLayout::new(17, 16),
            Err(LpiError::IdBitsOutOfRange {
                id_bits: 17,
                supported: 16
            })
        );
        assert!(LpiTableLayout::new(13, 16).is_err());
    }

    #[test]
    fn config_byte_has_res1_bit_and_drops_low_priority_bits() {
        assert_eq!(lpi_config_byte(0xa3, true), 0xa3);
        assert_eq!(lpi_config_byte(0xa0, false), 0xa2);
        assert_eq!(lpi_config_byte(0xff, true), 0xff);
    }
}
