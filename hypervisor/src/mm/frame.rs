//! Physical memory allocation: RAM from the device tree minus reserved
//! ranges (hypervisor image, device tree, initrd/bundle), handed out in
//! 4 KiB pages for translation tables, heap and partition RAM.
//!
//! The free set is a sorted, coalesced list of ranges in a fixed-capacity
//! array, so the allocator works before any heap exists and never
//! allocates itself. Allocation is first fit.
#![forbid(unsafe_code)]

use super::addr::Range;
use super::PhysAddr;

/// Allocation granule.
pub const FRAME_SIZE: u64 = 4096;
/// Default number of disjoint free ranges the allocator can track.
pub const DEFAULT_CAPACITY: usize = 64;

/// Why a frame allocator operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// `start + size` overflows.
    InvalidRange {
        /// Start of the range.
        start: PhysAddr,
        /// Size of the range.
        size: u64,
    },
    /// The range is not 4 KiB aligned in start or size.
    Misaligned {
        /// Start of the range.
        start: PhysAddr,
        /// Size of the range.
        size: u64,
    },
    /// A zero-sized allocation or range was requested.
    ZeroSize,
    /// The alignment is not a power of two.
    BadAlignment {
        /// The requested alignment.
        align: u64,
    },
    /// No free range can hold `size` bytes at `align`.
    OutOfMemory {
        /// Requested size (rounded up to 4 KiB).
        size: u64,
        /// Requested alignment.
        align: u64,
    },
    /// `alloc_at`: part of the range is not free RAM.
    NotFree {
        /// Start of the requested range.
        start: PhysAddr,
        /// Size of the requested range.
        size: u64,
        /// First address in the range that is not free.
        first_busy: PhysAddr,
    },
    /// `free`: part of the range is already free (double free).
    AlreadyFree {
        /// First already-free address in the range.
        addr: PhysAddr,
    },
    /// The operation would need more free ranges than the capacity allows;
    /// nothing was changed.
    TooFragmented,
}

/// A free range `[start, end)`, page aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

/// A first-fit physical frame allocator tracking up to `N` free ranges.
#[derive(Clone, Debug)]
pub struct FrameAllocator<const N: usize = DEFAULT_CAPACITY> {
    /// Sorted by address, disjoint and never adjacent (always coalesced).
    spans: [Span; N],
    len: usize,
}

impl<const N: usize> Default for FrameAllocator<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameAllocator<N> {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        Self {
            spans: [Span { start: 0, end: 0 }; N],
            len: 0,
        }
    }

    /// Adds RAM (a device-tree `memory` range), trimmed inward to whole
    /// pages; overlapping or adjacent RAM merges.
    pub fn add_ram(&mut self, range: Range<PhysAddr>) -> Result<(), FrameError> {
        let (start, end) = bounds(range)?;
        let start = start.div_ceil(FRAME_SIZE) * FRAME_SIZE;
        let end = end / FRAME_SIZE * FRAME_SIZE;
        if start >= end {
            return Ok(());
        }
        self.insert(start, end)
    }

    /// Takes a range out of the free set for good (image, device tree,
    /// initrd, firmware), widened outward to whole pages. Parts that are
    /// not free RAM are ignored.
    pub fn reserve(&mut self, range: Range<PhysAddr>) -> Result<(), FrameError> {
        let (start, end) = bounds(range)?;
        let start = start / FRAME_SIZE * FRAME_SIZE;
        let end = end
            .checked_next_multiple_of(FRAME_SIZE)
            .ok_or(FrameError::InvalidRange {
                start: range.start,
                size: range.size,
            })?;
        if start >= end {
            return Ok(());
        }
        self.remove(start, end)
    }

    /// Allocates `size` bytes (rounded up to whole pages) aligned to `align`
    /// (a power of two; at least 4 KiB is used), first fit from low addresses.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<PhysAddr, FrameError> {
        if size == 0 {
            return Err(FrameError::ZeroSize);
        }
        if !align.is_power_of_two() {
            return Err(FrameError::BadAlignment { align });
        }
        let align = align.max(FRAME_SIZE);
        let out_of_memory = FrameError::OutOfMemory { size, align };
        let size = size
            .checked_next_multiple_of(FRAME_SIZE)
            .ok_or(out_of_memory)?;
        let mut fragmented = false;
        for index in 0..self.len {
            let span = self.spans[index];
            let Some(start) = span.start.checked_next_multiple_of(align) else {
                continue;
            };
            let Some(end) = start.checked_add(size) else {
                continue;
            };
            if end > span.end {
                continue;
            }
            // Carving from the middle leaves two pieces: one more range.
            if start > span.start && end < span.end && self.len == N {
                fragmented = true;
                continue;
            }
            self.remove(start, end)?;
            return Ok(PhysAddr(start));
        }
        Err(if fragmented {
            FrameError::TooFragmented
        } else {
            FrameError::OutOfMemory { size, align }
        })
    }

    /// Allocates exactly `range` (identity-mapped partition RAM), failing
    /// with `NotFree` if any page of it is not free RAM.
    pub fn alloc_at(&mut self, range: Range<PhysAddr>) -> Result<(), FrameError> {
        let (start, end) = page_bounds(range)?;
        // Free ranges are coalesced, so a free range lies within one span.
        let index = self.spans[..self.len].partition_point(|span| span.end <= start);
        let span = self.spans.get(index).filter(|_| index < self.len);
        match span {
            Some(span) if span.start <= start && end <= span.end => self.remove(start, end),
            _ => Err(FrameError::NotFree {
                start: range.start,
                size: range.size,
                first_busy: PhysAddr(match span {
                    Some(span) if span.start <= start => span.end,
                    _ => start,
                }),
            }),
        }
    }

    /// Returns `range` to the free set, coalescing with its neighbours;
    /// `AlreadyFree` if any of it is free already.
    pub fn free(&mut self, range: Range<PhysAddr>) -> Result<(), FrameError> {
        let (start, end) = page_bounds(range)?;
        let index = self.spans[..self.len].partition_point(|span| span.end <= start);
        if index < self.len && self.spans[index].start < end {
            return Err(FrameError::AlreadyFree {
                addr: PhysAddr(self.spans[index].start.max(start)),
            });
        }
        self.insert(start, end)
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.spans[..self.len]
            .iter()
            .map(|span| span.end - span.start)
            .sum()
    }

    /// The free ranges, in address order.
    pub fn free_ranges(&self) -> impl Iterator<Item = Range<PhysAddr>> + '_ {
        self.spans[..self.len].iter().map(|span| Range {
            start: PhysAddr(span.start),
            size: span.end - span.start,
        })
    }

    /// Adds `[start, end)` to the free set, merging with every span it
    /// overlaps or touches.
    fn insert(&mut self, start: u64, end: u64) -> Result<(), FrameError> {
        let spans = &self.spans[..self.len];
        let first = spans.partition_point(|span| span.end < start);
        let last = spans.partition_point(|span| span.start <= end);
        let merged = if first < last {
            Span {
                start: start.min(spans[first].start),
                end: end.max(spans[last - 1].end),
            }
        } else {
            Span { start, end }
        };
        self.splice(first, last, &[merged])
    }

    /// Removes `[start, end)` from the free set, keeping what is left of
    /// the spans at either edge.
    fn remove(&mut self, start: u64, end: u64) -> Result<(), FrameError> {
        let spans = &self.spans[..self.len];
        let first = spans.partition_point(|span| span.end <= start);
        let last = spans.partition_point(|span| span.start < end);
        if first == last {
            return Ok(());
        }
        let mut pieces = [Span { start: 0, end: 0 }; 2];
        let mut count = 0;
        if spans[first].start < start {
            pieces[count] = Span {
                start: spans[first].start,
                end: start,
            };
            count += 1;
        }
        if end < spans[last - 1].end {
            pieces[count] = Span {
                start: end,
                end: spans[last - 1].end,
            };
            count += 1;
        }
        self.splice(first, last, &pieces[..count])
    }

    /// Replaces `spans[first..last]` with `pieces`, or fails with
    /// `TooFragmented` (changing nothing) if that exceeds the capacity.
    fn splice(&mut self, first: usize, last: usize, pieces: &[Span]) -> Result<(), FrameError> {
        let new_len = self.len - (last - first) + pieces.len();
        if new_len > N {
            return Err(FrameError::TooFragmented);
        }
        let new_last = first + pieces.len();
        self.spans.copy_within(last..self.len, new_last);
        self.spans[first..new_last].copy_from_slice(pieces);
        self.len = new_len;
        Ok(())
    }
}

/// `(start, end)` of a range, checking for overflow.
fn bounds(range: Range<PhysAddr>) -> Result<(u64, u64), FrameError> {
    let end = range.end().ok_or(FrameError::InvalidRange {
        start: range.start,
        size: range.size,
    })?;
    Ok((range.start.raw(), end.raw()))
}

/// `(start, end)` of a non-empty, page-aligned range.
fn page_bounds(range: Range<PhysAddr>) -> Result<(u64, u64), FrameError> {
    if range.size == 0 {
        return Err(FrameError::ZeroSize);
    }
    if !range.start.is_aligned(FRAME_SIZE) || !range.size.is_multiple_of(FRAME_SIZE) {
        return Err(FrameError::Misaligned {
            start: range.start,
            size: range.size,
        });
    }
    bounds(range)
}

#[cfg(test)]
mod tests;
