//! Rate limits for guest-triggered log lines (issue 12): a guest that
//! makes the hypervisor log (a routine command on the physical ITS, a
//! refused access) must not flood the shared, polled console. Each
//! partition counts each [`Kind`] of line apart ([`GuestLog`]):
//! - a warning or error ([`RateLimit::warning`]) is logged the first time,
//!   then only at the 2nd, 4th, 8th... occurrence with the count, and at
//!   debug level otherwise, so the lines a guest can cause grow with the
//!   logarithm of what it does;
//! - a routine event ([`RateLimit::routine`]: VMAPTI, VMOVI, DISCARD, MSI
//!   and MSI-X enables) is logged at info level the first [`FIRST`] times,
//!   so a run shows the path working, then at debug level only; its counter
//!   says how many there were.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use log::Level;

/// What a guest can make the hypervisor log, counted apart per partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The guest enabled or changed MSI on a passed-through function.
    MsiEnable,
    /// The guest enabled or disabled MSI-X on a passed-through function.
    MsixEnable,
    /// VMAPTI on the physical ITS (a guest MAPTI on GICv4).
    Vmapti,
    /// VMOVI on the physical ITS (a guest MOVI or MAPC retarget on GICv4).
    Vmovi,
    /// DISCARD on the physical ITS (a guest DISCARD or unmap on GICv4).
    Discard,
    /// A passthrough event given a physical LPI (GICv3 software path).
    RoutedMap,
    /// A guest PCI configuration write refused (a 64-bit ECAM store).
    ConfigWriteRefused,
    /// A guest MSI or MSI-X setting that could not reach the device.
    MsiNotCarried,
    /// A vITS request the vGIC refused (an INT beyond the pending-LPI
    /// budget, an INVALL of a vCPU without LPIs).
    VitsToVgic,
    /// A guest vGIC access or LPI operation the vGIC refused.
    VgicRefused,
    /// An MSI-X vector the guest unmasked, carried to the device.
    MsixVector,
    /// A guest access to an MSI-X page refused (a width or alignment the
    /// table does not take).
    MsixPageRefused,
    /// A guest MSI setting held disabled on the device (its doorbell or
    /// data does not name the vITS and an event of the function).
    MsiHeld,
}

impl Kind {
    /// Number of kinds.
    pub const COUNT: usize = 13;

    /// Every kind, in counter order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::MsiEnable,
        Self::MsixEnable,
        Self::Vmapti,
        Self::Vmovi,
        Self::Discard,
        Self::RoutedMap,
        Self::ConfigWriteRefused,
        Self::MsiNotCarried,
        Self::VitsToVgic,
        Self::VgicRefused,
        Self::MsixVector,
        Self::MsixPageRefused,
        Self::MsiHeld,
    ];

    /// The kind's counter.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One partition's counters of the lines it can cause, by [`Kind`].
pub type GuestLog = RateLimit<{ Kind::COUNT }>;

/// Occurrences of one kind logged in full before the log thins out.
pub const FIRST: u64 = 8;

/// Whether the `n`-th occurrence (1-based) of a kind is logged: the first
/// [`FIRST`], then every power of two.
pub fn worth_logging(n: u64) -> bool {
    n <= FIRST || n.is_power_of_two()
}

/// The level of the `n`-th occurrence (1-based) of a guest-triggered
/// warning or error: `level` for the first and then every power of two
/// (the line carries the count), debug for the others.
pub fn warning_level(n: u64, level: Level) -> Level {
    if n.is_power_of_two() {
        level
    } else {
        Level::Debug
    }
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

    /// Counts one guest-triggered warning or error of `kind` and returns
    /// the level to log it at, and its number (1-based): `level` for the
    /// first and then every power of two (the caller prints the count),
    /// debug for the others.
    pub fn warning(&self, kind: Kind, level: Level) -> (Level, u64) {
        let n = self.bump(kind.index());
        (warning_level(n, level), n)
    }

    /// Counts one routine event of `kind` and returns the level to log it
    /// at, and its number (1-based): info for the first [`FIRST`], debug
    /// after.
    pub fn routine(&self, kind: Kind) -> (Level, u64) {
        let n = self.bump(kind.index());
        if n <= FIRST {
            (Level::Info, n)
        } else {
            (Level::Debug, n)
        }
    }

    /// Counts one occurrence of counter `index`; returns its number
    /// (0 for a counter beyond `N`, which is never counted).
    fn bump(&self, index: usize) -> u64 {
        self.counts
            .get(index)
            .map_or(0, |c| c.fetch_add(1, Ordering::Relaxed).saturating_add(1))
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
    fn a_warning_is_at_its_level_the_first_time_and_at_powers_of_two() {
        let at_error: Vec<u64> = (1..=40)
            .filter(|&n| warning_level(n, Level::Error) == Level::Error)
            .collect();
        assert_eq!(at_error, [1, 2, 4, 8, 16, 32]);
        assert_eq!(warning_level(3, Level::Warn), Level::Debug);
    }

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

    /// The levels of `count` occurrences of a warning, at warn.
    fn warning_levels(limit: &GuestLog, kind: Kind, count: usize) -> alloc::vec::Vec<u64> {
        (0..count)
            .filter_map(|_| match limit.warning(kind, Level::Warn) {
                (Level::Warn, n) => Some(n),
                (Level::Debug, _) => None,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_warning_is_logged_once_then_with_its_count_at_powers_of_two() {
        let limit = GuestLog::new();
        let logged = warning_levels(&limit, Kind::ConfigWriteRefused, 1000);
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(limit.count(Kind::ConfigWriteRefused.index()), 1000);
    }

    #[test]
    fn kinds_and_partitions_are_counted_apart() {
        let (alpha, beta) = (GuestLog::new(), GuestLog::new());
        warning_levels(&alpha, Kind::VitsToVgic, 100);
        // Another kind of the same partition, and the same kind of another
        // partition, still get their first line.
        assert_eq!(
            alpha.warning(Kind::MsiNotCarried, Level::Error),
            (Level::Error, 1)
        );
        assert_eq!(
            beta.warning(Kind::VitsToVgic, Level::Warn),
            (Level::Warn, 1)
        );
        assert_eq!(alpha.count(Kind::VitsToVgic.index()), 100);
        assert_eq!(beta.count(Kind::VitsToVgic.index()), 1);
    }

    #[test]
    fn routine_events_are_info_for_the_first_few_then_debug_and_counted() {
        let limit = GuestLog::new();
        let levels: alloc::vec::Vec<Level> =
            (0..100_000).map(|_| limit.routine(Kind::Vmovi).0).collect();
        let info = levels.iter().filter(|l| **l == Level::Info).count();
        assert_eq!(info as u64, FIRST);
        assert!(levels[FIRST as usize..].iter().all(|l| *l == Level::Debug));
        assert_eq!(limit.count(Kind::Vmovi.index()), 100_000);
        assert_eq!(limit.count(Kind::Vmapti.index()), 0);
    }

    #[test]
    fn every_kind_has_its_own_counter() {
        for (i, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        let limit = GuestLog::new();
        for kind in Kind::ALL {
            assert_eq!(limit.routine(kind), (Level::Info, 1), "{kind:?}");
        }
    }

    #[test]
    fn an_unknown_kind_is_never_logged() {
        let limit = RateLimit::<1>::new();
        assert_eq!(limit.note(5), None);
        assert_eq!(limit.count(5), 0);
    }
}
