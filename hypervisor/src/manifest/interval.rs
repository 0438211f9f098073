//! Half-open byte intervals `[start, end)` in `u128`, so that `start + size`
//! of any 64-bit range never overflows. Address types are stripped before
//! and restored after: this is arithmetic only.

use alloc::vec::Vec;

/// A half-open interval of addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Interval {
    /// First address.
    pub start: u128,
    /// One past the last address.
    pub end: u128,
}

impl Interval {
    /// `[start, start + size)`.
    pub(super) fn new(start: u64, size: u64) -> Self {
        Self {
            start: u128::from(start),
            end: u128::from(start) + u128::from(size),
        }
    }

    /// Whether the two intervals share an address (empty ones share none).
    pub(super) fn overlaps(self, other: Interval) -> bool {
        self.start < other.end && other.start < self.end && !self.is_empty() && !other.is_empty()
    }

    /// Whether `inner` lies entirely inside `self`.
    pub(super) fn contains(self, inner: Interval) -> bool {
        self.start <= inner.start && inner.end <= self.end
    }

    /// Whether the interval has no address.
    pub(super) fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// Size in bytes.
    pub(super) fn len(self) -> u128 {
        self.end.saturating_sub(self.start)
    }

    /// The largest sub-interval whose ends are multiples of `align` (a power of two).
    pub(super) fn shrink_to(self, align: u128) -> Self {
        Self {
            start: self.start.next_multiple_of(align),
            end: self.end & !(align - 1),
        }
    }

    /// The smallest super-interval whose ends are multiples of `align` (a power of two).
    pub(super) fn grow_to(self, align: u128) -> Self {
        Self {
            start: self.start & !(align - 1),
            end: self.end.next_multiple_of(align),
        }
    }
}

/// `set` minus `hole`: the non-empty pieces of each interval left around it.
pub(super) fn subtract(set: Vec<Interval>, hole: Interval) -> Vec<Interval> {
    let mut left = Vec::with_capacity(set.len() + 1);
    for piece in set {
        if !piece.overlaps(hole) {
            left.push(piece);
            continue;
        }
        let below = Interval {
            start: piece.start,
            end: hole.start,
        };
        let above = Interval {
            start: hole.end,
            end: piece.end,
        };
        left.extend([below, above].into_iter().filter(|i| !i.is_empty()));
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn touching_intervals_do_not_overlap() {
        assert!(!Interval::new(0, 0x1000).overlaps(Interval::new(0x1000, 0x1000)));
        assert!(Interval::new(0, 0x1001).overlaps(Interval::new(0x1000, 0x1000)));
        assert!(!Interval::new(0x1000, 0).overlaps(Interval::new(0, 0x2000)));
    }

    #[test]
    fn top_of_address_space_does_not_overflow() {
        let top = Interval::new(u64::MAX, u64::MAX);
        assert_eq!(top.end, u128::from(u64::MAX) * 2);
        assert!(top.overlaps(Interval::new(u64::MAX, 1)));
    }

    #[test]
    fn subtract_splits_around_the_hole() {
        let left = subtract(vec![Interval::new(0, 100)], Interval::new(10, 20));
        assert_eq!(left, vec![Interval::new(0, 10), Interval::new(30, 70)]);
        let none = subtract(vec![Interval::new(10, 5)], Interval::new(0, 100));
        assert!(none.is_empty());
    }

    #[test]
    fn alignment_shrinks_and_grows_to_boundaries() {
        let i = Interval::new(0x1000, 0x40_0000);
        assert_eq!(i.shrink_to(0x20_0000), Interval::new(0x20_0000, 0x20_0000));
        assert_eq!(i.grow_to(0x20_0000), Interval::new(0, 0x60_0000));
    }
}
