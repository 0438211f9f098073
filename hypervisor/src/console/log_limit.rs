//! Rate limits for guest-triggered log lines (issue 12): a guest that
//! makes the hypervisor log (a routine command on the physical ITS, a
//! refused access) must not flood the shared, polled console. Each kind of
//! line has a counter; the first few occurrences are logged, then only the
//! 16th, 32nd, 64th... with the count, and the rest at debug level, so the
//! lines a guest can cause grow with the logarithm of what it does.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

/// Occurrences of one kind logged in full before the log thins out.
pub const FIRST: u64 = 8;

/// Whether the `n`-th occurrence (1-based) of a kind is logged: the first
/// [`FIRST`], then every power of two.
pub fn worth_logging(n: u64) -> bool {
    n <= FIRST || n.is_power_of_two()
}

/// Counters of `N` kinds of line, shared by the CPUs (one per partition).
#[derive(Debug)]
pub struct RateLimit<const N: usize> {
    counts: [AtomicU64; N],
}

impl<const N: usize> Default for RateLimit<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RateLimit<N> {
    /// All counters at zero.
    pub const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; N],
        }
    }

    /// Counts one occurrence of `kind`; returns its number (1-based) if it
    /// is to be logged at the normal level, None if at debug only. A kind
    /// beyond `N` is never logged.
    pub fn note(&self, kind: usize) -> Option<u64> {
        let counter = self.counts.get(kind)?;
        let n = counter.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        worth_logging(n).then_some(n)
    }

    /// How many times `kind` occurred.
    pub fn count(&self, kind: usize) -> u64 {
        self.counts
            .get(kind)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_eight_then_powers_of_two_are_logged() {
        let limit = RateLimit::<2>::new();
        let logged: alloc::vec::Vec<u64> = (0..1000).filter_map(|_| limit.note(0)).collect();
        assert_eq!(logged, [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(limit.count(0), 1000);
        assert_eq!(limit.count(1), 0, "kinds are counted apart");
        assert_eq!(limit.note(1), Some(1));
    }

    #[test]
    fn a_million_occurrences_log_fewer_than_thirty_lines() {
        let limit = RateLimit::<1>::new();
        let lines = (0..1_000_000).filter(|_| limit.note(0).is_some()).count();
        assert!(lines < 30, "{lines}");
    }

    #[test]
    fn an_unknown_kind_is_never_logged() {
        let limit = RateLimit::<1>::new();
        assert_eq!(limit.note(5), None);
        assert_eq!(limit.count(5), 0);
    }
}
