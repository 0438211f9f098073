//! Partitions' console output on its way to the shared physical console:
//! a bounded ring per partition (its virtual PL011's transmit FIFO, as
//! deep as [`TX_RING`]) framed into lines, and the round-robin drain that
//! moves at most one line of every partition per round, so that however
//! fast one partition writes, another's line reaches the console within
//! one round (at most one [`MAX_LINE`] line of each other partition).
//!
//! The cost of output lands on its writer: a partition whose ring is full
//! waits (its UART says TX FIFO full) until a round has made room, and the
//! writer that makes a line ready waits until some round has taken it, so
//! no line is left in a ring with nobody to print it (`kernel::console`).
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Bytes one partition's output ring holds (its TX FIFO depth).
pub const TX_RING: usize = 4096;
/// The longest line shown; a longer one is split (a full ring always
/// holds at least one line, so it can always be drained).
pub const MAX_LINE: usize = 200;

/// What a take from a ring produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A finished line (newline dropped), or [`MAX_LINE`] bytes of a longer one.
    Line,
    /// The unfinished line so far (only asked for the partition being typed into).
    Partial,
}

/// One partition's pending output, oldest byte first (carriage returns
/// are not kept: the console ends lines itself).
#[derive(Debug, Default)]
pub struct OutputRing {
    bytes: VecDeque<u8>,
    /// The most bytes the ring held at once.
    high_water: usize,
}

impl OutputRing {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            bytes: VecDeque::new(),
            high_water: 0,
        }
    }

    /// Appends `byte`; false if the ring is full (the byte is not taken).
    pub fn push(&mut self, byte: u8) -> bool {
        if byte == b'\r' {
            return true;
        }
        if self.is_full() {
            return false;
        }
        self.bytes.push_back(byte);
        self.high_water = self.high_water.max(self.bytes.len());
        true
    }

    /// Whether the ring has no room.
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= TX_RING
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the ring holds nothing.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The most bytes the ring held at once.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// Whether [`Self::take`] would produce a unit.
    pub fn has_unit(&self, partial: bool) -> bool {
        self.line_end().is_some() || (partial && !self.bytes.is_empty())
    }

    /// Moves the next unit into `out`: a finished line, else (with
    /// `partial`) the unfinished line so far.
    pub fn take(&mut self, partial: bool, out: &mut Vec<u8>) -> Option<Unit> {
        if let Some((len, newline)) = self.line_end() {
            out.extend(self.bytes.drain(..len));
            if newline {
                self.bytes.pop_front();
            }
            return Some(Unit::Line);
        }
        if partial && !self.bytes.is_empty() {
            out.extend(self.bytes.drain(..));
            return Some(Unit::Partial);
        }
        None
    }

    /// The first line's length and whether a newline ends it (else it is
    /// [`MAX_LINE`] bytes without one); `None` for an unfinished line.
    fn line_end(&self) -> Option<(usize, bool)> {
        match self
            .bytes
            .iter()
            .take(MAX_LINE + 1)
            .position(|&b| b == b'\n')
        {
            Some(p) => Some((p, true)),
            None if self.bytes.len() >= MAX_LINE => Some((MAX_LINE, false)),
            None => None,
        }
    }
}

/// Where the drain takes output from: the partitions' rings.
pub trait Sources {
    /// How many partitions there are.
    fn count(&self) -> usize;
    /// Moves partition `index`'s next unit into `out` (a partial line only
    /// if that partition is being typed into).
    fn take(&mut self, index: usize, out: &mut Vec<u8>) -> Option<Unit>;
}

/// The round-robin drain's state: who is served first next round.
#[derive(Debug, Default)]
pub struct Drainer {
    next: usize,
    /// Rounds that moved at least one unit.
    rounds: u64,
}

impl Drainer {
    /// A drain that starts with partition 0.
    pub const fn new() -> Self {
        Self { next: 0, rounds: 0 }
    }

    /// One round: at most one unit of every partition, starting one
    /// partition later than the last round did, each handed to `emit`
    /// with its partition as soon as it is taken. Returns the units moved.
    pub fn round(
        &mut self,
        sources: &mut impl Sources,
        mut emit: impl FnMut(usize, Unit, &[u8]),
    ) -> usize {
        let count = sources.count();
        if count == 0 {
            return 0;
        }
        let start = self.next % count;
        self.next = (start + 1) % count;
        let mut moved = 0;
        let mut text = Vec::new();
        for k in 0..count {
            let index = (start + k) % count;
            text.clear();
            if let Some(unit) = sources.take(index, &mut text) {
                emit(index, unit, &text);
                moved += 1;
            }
        }
        if moved > 0 {
            self.rounds += 1;
        }
        moved
    }

    /// Rounds that moved at least one unit.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::mux::ConsoleMux;

    /// Rings standing in for the partitions' UARTs; partition `typed` is
    /// the one being typed into.
    struct Rings {
        rings: Vec<OutputRing>,
        typed: Option<usize>,
    }

    impl Rings {
        fn new(count: usize) -> Self {
            Self {
                rings: (0..count).map(|_| OutputRing::new()).collect(),
                typed: None,
            }
        }

        /// Writes `text` into partition `index`'s ring as far as it fits;
        /// returns the bytes taken.
        fn write(&mut self, index: usize, text: &[u8]) -> usize {
            text.iter()
                .take_while(|&&b| self.rings[index].push(b))
                .count()
        }
    }

    impl Sources for Rings {
        fn count(&self) -> usize {
            self.rings.len()
        }

        fn take(&mut self, index: usize, out: &mut Vec<u8>) -> Option<Unit> {
            let partial = self.typed == Some(index);
            self.rings[index].take(partial, out)
        }
    }

    #[test]
    fn lines_are_framed_at_newlines_and_split_at_the_longest_line() {
        let mut ring = OutputRing::new();
        for &b in b"one\r\ntwo\nthr" {
            assert!(ring.push(b));
        }
        let mut out = Vec::new();
        assert_eq!(ring.take(false, &mut out), Some(Unit::Line));
        assert_eq!(out, b"one");
        out.clear();
        assert_eq!(ring.take(false, &mut out), Some(Unit::Line));
        assert_eq!(out, b"two");
        out.clear();
        assert!(!ring.has_unit(false));
        assert_eq!(ring.take(false, &mut out), None);
        assert!(ring.has_unit(true));
        assert_eq!(ring.take(true, &mut out), Some(Unit::Partial));
        assert_eq!(out, b"thr");
        for _ in 0..MAX_LINE + 3 {
            ring.push(b'x');
        }
        out.clear();
        assert_eq!(ring.take(false, &mut out), Some(Unit::Line));
        assert_eq!(out.len(), MAX_LINE);
        assert_eq!(ring.len(), 3);
    }

    #[test]
    fn a_full_ring_refuses_bytes_and_can_always_be_drained() {
        let mut ring = OutputRing::new();
        let mut taken = 0;
        while ring.push(b'y') {
            taken += 1;
        }
        assert_eq!(taken, TX_RING);
        assert!(ring.is_full());
        assert_eq!(ring.high_water(), TX_RING);
        // No newline at all, yet a line can be taken: room again.
        assert!(ring.has_unit(false));
        let mut out = Vec::new();
        ring.take(false, &mut out);
        assert!(!ring.is_full() && ring.push(b'z'));
    }

    #[test]
    fn rounds_take_one_line_of_each_partition_in_turn() {
        let mut rings = Rings::new(3);
        rings.write(0, b"a1\na2\n");
        rings.write(1, b"b1\n");
        rings.write(2, b"c1\nc2\n");
        let mut drainer = Drainer::new();
        let mut seen = Vec::new();
        while drainer.round(&mut rings, |i, _, t| seen.push((i, t.to_vec()))) > 0 {}
        let order: Vec<(usize, &[u8])> = seen.iter().map(|(i, t)| (*i, &t[..])).collect();
        assert_eq!(
            order,
            [
                (0, &b"a1"[..]),
                (1, b"b1"),
                (2, b"c1"),
                // The second round starts one later: 1 has nothing left.
                (2, b"c2"),
                (0, b"a2"),
            ]
        );
        assert_eq!(drainer.rounds(), 2);
    }

    /// Bytes shown on the physical console before the first appearance of
    /// `needle`.
    fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn a_flooding_partition_delays_a_quiet_line_by_at_most_one_round() {
        for partitions in [2, 3, 5] {
            for start in 0..partitions {
                let mut rings = Rings::new(partitions);
                let mut drainer = Drainer::new();
                // Whoever the round starts with.
                for _ in 0..start {
                    drainer.round(&mut rings, |_, _, _| {});
                }
                // Every other partition floods: full rings, refilled after
                // each round; the quiet one (the last) writes one line.
                let quiet = partitions - 1;
                let flood = [b'f'; MAX_LINE + 1];
                for i in 0..quiet {
                    while rings.write(i, &flood) > 0 {}
                }
                rings.write(quiet, b"quiet line\n");
                let mut mux = ConsoleMux::new();
                let mut console = Vec::new();
                let mut emitted_lines = 0;
                let mut found = None;
                for _ in 0..3 {
                    drainer.round(&mut rings, |i, unit, text| {
                        assert_eq!(unit, Unit::Line);
                        mux.line(
                            i,
                            if i == quiet { "quiet" } else { "flood" },
                            text,
                            false,
                            &mut console,
                        );
                        if i == quiet {
                            found.get_or_insert(emitted_lines);
                        }
                        emitted_lines += 1;
                    });
                    for i in 0..quiet {
                        while rings.write(i, &flood) > 0 {}
                    }
                }
                // At most one line of each flooding partition before it:
                // one round's quantum of MAX_LINE bytes each.
                let before = found.expect("the quiet line was shown");
                assert!(before < partitions, "{before} lines first");
                let at = position(&console, b"[quiet] quiet line\r\n").unwrap();
                assert!(at <= (partitions - 1) * ("[flood] ".len() + MAX_LINE + 2));
            }
        }
    }

    proptest::proptest! {
        /// The kernel's rule (the writer whose byte finished a line runs
        /// rounds until its ring holds no finished line) leaves no line in
        /// any ring, and each line is shown after at most one line of each
        /// other partition from the moment it was finished.
        #[test]
        fn the_writer_rule_strands_nothing_and_bounds_the_wait(
            writes in proptest::collection::vec(
                (0usize..3, proptest::prop_oneof![
                    5 => proptest::sample::select(alloc::vec![b'x', b'y']),
                    1 => proptest::prelude::Just(b'\n'),
                ]),
                1..2000,
            ),
        ) {
            let mut rings = Rings::new(3);
            let mut drainer = Drainer::new();
            for (index, byte) in writes {
                proptest::prop_assert!(rings.rings[index].push(byte), "never full under the rule");
                if !rings.rings[index].has_unit(false) {
                    continue;
                }
                // Units of the others shown before this partition's line.
                let mut others = 0;
                let mut shown = false;
                while !shown {
                    let moved = drainer.round(&mut rings, |i, _, _| {
                        if i == index {
                            shown = true;
                        } else if !shown {
                            others += 1;
                        }
                    });
                    proptest::prop_assert!(moved > 0);
                }
                proptest::prop_assert!(others <= 2, "{} other lines first", others);
                proptest::prop_assert!(!rings.rings[index].has_unit(false));
            }
            proptest::prop_assert!(rings.rings.iter().all(|r| !r.has_unit(false)));
        }

        /// However writes and rounds interleave, every byte of every
        /// partition arrives, in order, under its own prefix, and lines of
        /// different partitions never mix.
        #[test]
        fn every_byte_arrives_in_order_under_its_prefix(
            steps in proptest::collection::vec(
                (0usize..3, proptest::collection::vec(proptest::prop_oneof![
                    6 => proptest::sample::select(alloc::vec![b'a', b'b', b'c', b'd']),
                    1 => proptest::prelude::Just(b'\n'),
                ], 0..300), 0usize..3),
                1..40,
            ),
            typed in proptest::option::of(0usize..3),
        ) {
            let mut rings = Rings::new(3);
            rings.typed = typed;
            let mut drainer = Drainer::new();
            let mut mux = ConsoleMux::new();
            let mut console = Vec::new();
            let mut written: [Vec<u8>; 3] = Default::default();
            let mut shown: [Vec<u8>; 3] = Default::default();
            let names = ["p0", "p1", "p2"];
            let mut drain = |rings: &mut Rings, rounds: usize, shown: &mut [Vec<u8>; 3], console: &mut Vec<u8>| {
                for _ in 0..rounds {
                    drainer.round(rings, |i, unit, text| {
                        shown[i].extend_from_slice(text);
                        match unit {
                            Unit::Line => {
                                if text.len() < MAX_LINE { shown[i].push(b'\n') }
                                mux.line(i, names[i], text, false, console);
                            }
                            Unit::Partial => mux.partial(i, names[i], text, false, console),
                        }
                    });
                }
            };
            for (index, text, rounds) in &steps {
                let mut rest = &text[..];
                // The writer waits while its ring is full: rounds run.
                while !rest.is_empty() {
                    let n = rings.write(*index, rest);
                    written[*index].extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if !rest.is_empty() {
                        drain(&mut rings, 1, &mut shown, &mut console);
                    }
                }
                drain(&mut rings, *rounds, &mut shown, &mut console);
            }
            // Everything finished is shown; unfinished lines of partitions
            // not typed into stay in their rings.
            while rings.rings.iter().any(|r| r.has_unit(false)) {
                drain(&mut rings, 1, &mut shown, &mut console);
            }
            for i in 0..3 {
                let mut all = shown[i].clone();
                let mut rest = Vec::new();
                proptest::prop_assert!(rings.rings[i].len() < MAX_LINE);
                rings.rings[i].take(true, &mut rest);
                all.extend_from_slice(&rest);
                // A split line shows as a line; compare without newlines
                // where the split was.
                let strip = |v: &[u8]| v.iter().copied().filter(|&b| b != b'\n').collect::<Vec<u8>>();
                proptest::prop_assert_eq!(strip(&all), strip(&written[i]));
            }
            // Every console line starts with one partition's prefix: none
            // was entered mid-line by another.
            for line in console.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                proptest::prop_assert!(
                    names.iter().any(|n| line.starts_with(alloc::format!("[{n}] ").as_bytes())),
                    "{:?}", alloc::string::String::from_utf8_lossy(line)
                );
                let body = &line[5..];
                proptest::prop_assert!(!body.windows(2).any(|w| w == b"[p"), "mixed: {:?}", line);
            }
        }
    }
}
