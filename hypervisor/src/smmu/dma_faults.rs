//! DMA faults the SMMU reported for one partition's PCI functions:
//! counted per StreamID, with the last fault kept for the counters, and a
//! rate limit that decides which faults are worth a log line: the first of
//! each stream; then a fault at another page than the stream's previous one
//! (one transfer faults word by word on the same page), at most
//! [`LINES_PER_INTERVAL`] per stream per interval; and once per interval a
//! summary of what went unlogged. A guest that points its device at
//! forbidden memory in a loop cannot flood the console.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use core::fmt;

/// One DMA access the SMMU stopped, as its event record described it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    /// The StreamID of the function that made the access.
    pub stream_id: u32,
    /// The input address (IOVA, i.e. an IPA of the partition) it used.
    pub address: u64,
    /// Whether it was a write (data to memory) or a read.
    pub write: bool,
    /// The event's name (IHI 0070, 7.3: `F_TRANSLATION`, `C_BAD_STE`...).
    pub kind: &'static str,
}

impl fmt::Display for DmaFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {:#x} by StreamID {:#x} ({})",
            if self.write { "write" } else { "read" },
            self.address,
            self.stream_id,
            self.kind
        )
    }
}

impl DmaFault {
    /// The fault an SMMU event record describes: its StreamID, the input
    /// address of the transaction (an IOVA: the partition's IPA, since its
    /// STE translates stage 2 only), and whether it was a write (RnW = 0).
    pub fn from_event(event: &crate::smmu::Event) -> Self {
        Self {
            stream_id: event.stream_id,
            address: event.address().unwrap_or(0),
            write: event.read == Some(false),
            kind: event.kind.name(),
        }
    }
}

/// Most lines per stream per interval after its first fault.
pub const LINES_PER_INTERVAL: u32 = 8;

/// What to log for a fault just recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogDecision {
    /// The stream's first fault: log it in full.
    First,
    /// Log it, with how many faults of the stream went unlogged since the
    /// last line.
    Again {
        /// Faults of this stream recorded but not logged since then.
        suppressed: u64,
    },
    /// Count it only.
    Quiet,
}

/// One stream's faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFaults {
    /// Faults recorded.
    pub count: u64,
    /// The latest fault.
    pub last: DmaFault,
    /// When (counter ticks) the stream's current interval began.
    window_start: u64,
    /// Lines still allowed in this interval.
    lines_left: u32,
    /// Faults recorded but not logged since the last line.
    unlogged: u64,
}

/// The DMA faults of one partition, by StreamID.
#[derive(Clone, Debug, Default)]
pub struct DmaFaultLog {
    streams: BTreeMap<u32, StreamFaults>,
    total: u64,
}

impl DmaFaultLog {
    /// An empty log.
    pub const fn new() -> Self {
        Self {
            streams: BTreeMap::new(),
            total: 0,
        }
    }

    /// Records `fault` at time `now` (counter ticks) and says whether to log
    /// it: the first fault of a stream always; later ones at a new page, or
    /// the first after an `interval` with faults left unlogged, within
    /// [`LINES_PER_INTERVAL`] lines per stream per interval.
    pub fn record(&mut self, fault: DmaFault, now: u64, interval: u64) -> LogDecision {
        self.total = self.total.saturating_add(1);
        match self.streams.get_mut(&fault.stream_id) {
            None => {
                self.streams.insert(
                    fault.stream_id,
                    StreamFaults {
                        count: 1,
                        last: fault,
                        window_start: now,
                        lines_left: LINES_PER_INTERVAL,
                        unlogged: 0,
                    },
                );
                LogDecision::First
            }
            Some(stream) => {
                let new_page = fault.address >> 12 != stream.last.address >> 12;
                stream.count = stream.count.saturating_add(1);
                stream.last = fault;
                let mut summary_due = false;
                if now.wrapping_sub(stream.window_start) >= interval {
                    stream.window_start = now;
                    stream.lines_left = LINES_PER_INTERVAL;
                    summary_due = stream.unlogged != 0;
                }
                if (new_page || summary_due) && stream.lines_left != 0 {
                    stream.lines_left -= 1;
                    let suppressed = stream.unlogged;
                    stream.unlogged = 0;
                    LogDecision::Again { suppressed }
                } else {
                    stream.unlogged = stream.unlogged.saturating_add(1);
                    LogDecision::Quiet
                }
            }
        }
    }

    /// Faults recorded over all streams.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The faults of each stream that had any, by StreamID.
    pub fn streams(&self) -> impl Iterator<Item = (u32, &StreamFaults)> {
        self.streams.iter().map(|(&sid, s)| (sid, s))
    }
}

/// The counters line: `DMA faults N` and, per stream, its count and last fault.
impl fmt::Display for DmaFaultLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DMA faults {}", self.total)?;
        for (_, stream) in self.streams() {
            write!(
                f,
                "; StreamID {:#x}: {}, last {}",
                stream.last.stream_id, stream.count, stream.last
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn fault(stream_id: u32, address: u64, write: bool) -> DmaFault {
        DmaFault {
            stream_id,
            address,
            write,
            kind: "F_TRANSLATION",
        }
    }

    #[test]
    fn an_smmu_translation_fault_record_becomes_a_write_fault_at_its_input_address() {
        // IHI 0070, 7.3.12 F_TRANSLATION: type 0x10, StreamID in dword 0
        // [63:32]; RnW (dword 1 bit 35) 0 = write, S2 (bit 39), CLASS IN
        // (bits 41:40 = 0b10); input address in dword 2, IPA in dword 3.
        let raw = [
            0x0000_0008_0000_0010,
            (1 << 39) | (0b10 << 40),
            0x6080_0000,
            0x6080_0000,
        ];
        let fault = DmaFault::from_event(&crate::smmu::Event::decode(raw));
        assert_eq!(
            fault,
            DmaFault {
                stream_id: 8,
                address: 0x6080_0000,
                write: true,
                kind: "F_TRANSLATION",
            }
        );
        let read = DmaFault::from_event(&crate::smmu::Event::decode([
            raw[0],
            raw[1] | (1 << 35),
            raw[2],
            raw[3],
        ]));
        assert!(!read.write);
    }

    #[test]
    fn first_fault_of_each_stream_is_logged_and_counted() {
        let mut log = DmaFaultLog::new();
        assert_eq!(
            log.record(fault(8, 0x4000_0000, true), 0, 100),
            LogDecision::First
        );
        assert_eq!(
            log.record(fault(16, 0x800_0000, false), 1, 100),
            LogDecision::First
        );
        assert_eq!(log.total(), 2);
        let streams: alloc::vec::Vec<_> = log.streams().map(|(sid, s)| (sid, s.count)).collect();
        assert_eq!(streams, [(8, 1), (16, 1)]);
    }

    #[test]
    fn faults_on_the_same_page_are_quiet_until_the_interval_passes_then_summarised() {
        let mut log = DmaFaultLog::new();
        assert_eq!(
            log.record(fault(8, 0x1000, true), 1000, 100),
            LogDecision::First
        );
        for t in 1001..1050 {
            let word = 0x1000 + (t - 1000) * 4;
            assert_eq!(log.record(fault(8, word, true), t, 100), LogDecision::Quiet);
        }
        assert_eq!(
            log.record(fault(8, 0x1ffc, false), 1100, 100),
            LogDecision::Again { suppressed: 49 }
        );
        assert_eq!(
            log.record(fault(8, 0x1ff8, false), 1101, 100),
            LogDecision::Quiet
        );
        assert_eq!(log.total(), 52);
        let (_, stream) = log.streams().next().unwrap();
        assert_eq!(stream.count, 52);
        assert_eq!(stream.last, fault(8, 0x1ff8, false));
    }

    #[test]
    fn a_new_page_is_logged_within_the_lines_per_interval() {
        let mut log = DmaFaultLog::new();
        assert_eq!(
            log.record(fault(8, 0x6080_0000, true), 0, 1000),
            LogDecision::First
        );
        assert_eq!(
            log.record(fault(8, 0x6080_0004, true), 1, 1000),
            LogDecision::Quiet
        );
        assert_eq!(
            log.record(fault(8, 0x0800_0000, true), 2, 1000),
            LogDecision::Again { suppressed: 1 }
        );
        // A sweep over pages: LINES_PER_INTERVAL lines in all, then quiet.
        let mut lines = 1;
        for page in 0..100u64 {
            if log.record(fault(8, 0x4000_0000 + (page << 12), true), 3, 1000) != LogDecision::Quiet
            {
                lines += 1;
            }
        }
        assert_eq!(lines, LINES_PER_INTERVAL);
        // The next interval reports what was left out.
        assert!(matches!(
            log.record(fault(8, 0x4000_0000 + (99 << 12), true), 1003, 1000),
            LogDecision::Again { suppressed } if suppressed > 90
        ));
    }

    #[test]
    fn a_quiet_stream_does_not_silence_another() {
        let mut log = DmaFaultLog::new();
        log.record(fault(8, 0x1000, true), 0, 1000);
        assert_eq!(
            log.record(fault(8, 0x1000, true), 1, 1000),
            LogDecision::Quiet
        );
        assert_eq!(
            log.record(fault(9, 0x1000, true), 2, 1000),
            LogDecision::First
        );
    }

    #[test]
    fn counters_line_names_stream_address_direction_and_kind() {
        let mut log = DmaFaultLog::new();
        assert_eq!(log.to_string(), "DMA faults 0");
        log.record(fault(8, 0x4000_0000, true), 0, 1);
        log.record(fault(8, 0x800_0000, false), 5, 1);
        assert_eq!(
            log.to_string(),
            "DMA faults 2; StreamID 0x8: 2, last read of 0x8000000 by StreamID 0x8 (F_TRANSLATION)"
        );
    }
}
