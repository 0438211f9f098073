//! Host tests of the command queue against a fake ITS that consumes a
//! given number of commands each time GITS_CREADR is read.

use super::*;
use crate::gic::its_cmd::RdBase;
use alloc::vec;
use alloc::vec::Vec;

/// A fake ITS: queue memory, CREADR/CWRITER, and what it executed.
struct FakeIts {
    slots: Vec<[u64; 4]>,
    creadr: u64,
    cwriter: u64,
    stalled: bool,
    /// Commands consumed per CREADR read.
    rate: usize,
    /// A DeviceID whose MAPD and INT commands stall the queue (a command
    /// error); Retry re-reads the slot, so they stall again unless replaced.
    poison_device: Option<u32>,
    /// Every SYNC stalls the queue (a broken redistributor).
    poison_sync: bool,
    /// Writes of GITS_CWRITER with Retry set.
    retries: usize,
    /// Reads of CREADR that still show Stalled after a Retry.
    retry_lag: usize,
    /// What is left of `retry_lag` since the last Retry.
    lag_left: usize,
    /// A Retry was written and has not taken effect yet.
    retry_pending: bool,
    executed: Vec<ItsCommand>,
    cwriter_writes: usize,
    creadr_reads: usize,
    relaxes: usize,
}

impl FakeIts {
    fn new(size: u64, rate: usize) -> Self {
        Self {
            slots: vec![[0; 4]; (size / COMMAND_BYTES) as usize],
            creadr: 0,
            cwriter: 0,
            stalled: false,
            rate,
            poison_device: None,
            poison_sync: false,
            retries: 0,
            retry_lag: 0,
            lag_left: 0,
            retry_pending: false,
            executed: Vec::new(),
            cwriter_writes: 0,
            creadr_reads: 0,
            relaxes: 0,
        }
    }

    fn size(&self) -> u64 {
        self.slots.len() as u64 * COMMAND_BYTES
    }

    /// Whether `offset` is published and not yet consumed.
    fn is_pending(&self, offset: u64) -> bool {
        let used = (self.cwriter + self.size() - self.creadr) % self.size();
        (offset + self.size() - self.creadr) % self.size() < used
    }
}

impl CommandQueueHw for FakeIts {
    fn write_command(&mut self, offset: u64, command: [u64; 4]) {
        assert_eq!(offset % COMMAND_BYTES, 0);
        // While stalled, the ITS reads the slot at CREADR again only after
        // Retry: that one slot may be rewritten.
        let stalled_slot = self.stalled && offset == self.creadr;
        assert!(
            stalled_slot || !self.is_pending(offset),
            "overwrote unconsumed slot {offset:#x}"
        );
        self.slots[(offset / COMMAND_BYTES) as usize] = command;
    }

    fn write_cwriter(&mut self, value: GitsCwriter) {
        self.cwriter_writes += 1;
        if value.retry() {
            self.retries += 1;
            self.lag_left = self.retry_lag;
            self.retry_pending = true;
        }
        self.cwriter = value.byte_offset();
    }

    fn read_creadr(&mut self) -> GitsCreadr {
        self.creadr_reads += 1;
        if self.stalled && self.retry_pending {
            // Retry takes effect `retry_lag` reads after it was written.
            if self.lag_left == 0 {
                self.stalled = false;
                self.retry_pending = false;
            } else {
                self.lag_left -= 1;
            }
        }
        for _ in 0..self.rate {
            if self.stalled || self.creadr == self.cwriter {
                break;
            }
            let raw = self.slots[(self.creadr / COMMAND_BYTES) as usize];
            let command = ItsCommand::decode(raw).expect("valid command in queue");
            let poisoned = match command {
                ItsCommand::Mapd { device_id, .. } | ItsCommand::Int { device_id, .. } => {
                    Some(device_id) == self.poison_device
                }
                ItsCommand::Sync { .. } => self.poison_sync,
                _ => false,
            };
            if poisoned {
                self.stalled = true;
                break;
            }
            self.executed.push(command);
            self.creadr = (self.creadr + COMMAND_BYTES) % self.size();
        }
        GitsCreadr(self.creadr).with_stalled(self.stalled)
    }

    fn read_command(&mut self, offset: u64) -> [u64; 4] {
        self.slots[(offset / COMMAND_BYTES) as usize]
    }

    fn relax(&mut self) {
        self.relaxes += 1;
    }
}

const SYNC: ItsCommand = ItsCommand::Sync { rdbase: RdBase(0) };

fn int(event_id: u32) -> ItsCommand {
    ItsCommand::Int {
        device_id: 1,
        event_id,
    }
}

fn queue(size: u64, rate: usize) -> CommandQueue<FakeIts> {
    CommandQueue::new(FakeIts::new(size, rate), size).expect("valid queue")
}

#[test]
fn batch_ends_with_exactly_one_sync() {
    let mut q = queue(4096, 4);
    let batch = [
        ItsCommand::Mapd {
            device_id: 1,
            size: 4,
            itt_addr: 0x1000,
            valid: true,
        },
        ItsCommand::Mapti {
            device_id: 1,
            event_id: 0,
            intid: 8192,
            icid: 0,
        },
        ItsCommand::Inv {
            device_id: 1,
            event_id: 0,
        },
    ];
    q.submit(&batch, SYNC, 100).expect("completes");
    let executed = &q.hw().executed;
    assert_eq!(executed[..3], batch);
    assert_eq!(executed[3..], [SYNC]);
    assert_eq!(executed.iter().filter(|c| c.is_sync()).count(), 1);
}

#[test]
fn batch_is_published_with_one_cwriter_write() {
    let mut q = queue(4096, 64);
    let writes_before = q.hw().cwriter_writes;
    let batch: Vec<_> = (0..20).map(int).collect();
    q.submit(&batch, ItsCommand::Vsync { vpe_id: 3 }, 10)
        .expect("completes");
    assert_eq!(q.hw().cwriter_writes - writes_before, 1);
    assert_eq!(
        q.hw().executed.last(),
        Some(&ItsCommand::Vsync { vpe_id: 3 })
    );
}

#[test]
fn creadr_is_read_only_when_the_ring_looks_full_or_on_completion() {
    let mut q = queue(4096, 64);
    let reads_before = q.hw().creadr_reads;
    let batch: Vec<_> = (0..40).map(int).collect();
    q.submit(&batch, SYNC, 10).expect("completes");
    assert_eq!(q.hw().creadr_reads - reads_before, 1);
}

#[test]
fn a_batch_must_close_with_sync_or_vsync() {
    let mut q = queue(4096, 4);
    assert_eq!(
        q.submit(&[int(0)], int(1), 10),
        Err(QueueError::NotASync { opcode: 0x03 })
    );
    assert!(q.hw().executed.is_empty());
}

#[test]
fn ring_wraps_around_in_order() {
    let mut q = queue(4096, 16);
    let mut expected = Vec::new();
    for round in 0..10u32 {
        let batch: Vec<_> = (0..30).map(|i| int(round * 100 + i)).collect();
        q.submit(&batch, SYNC, 100).expect("completes");
        expected.extend(batch);
        expected.push(SYNC);
    }
    // 310 commands through 128 slots: wrapped twice.
    assert_eq!(q.hw().executed, expected);
    assert_eq!(q.hw().creadr, (310 * COMMAND_BYTES) % 4096);
}

#[test]
fn batch_larger_than_the_ring_waits_for_room() {
    let mut q = queue(4096, 10);
    assert_eq!(q.capacity(), 127);
    let batch: Vec<_> = (0..300).map(int).collect();
    q.submit(&batch, SYNC, 1000)
        .expect("back-pressure, not failure");
    assert_eq!(q.hw().executed.len(), 301);
    assert!(q.hw().cwriter_writes > 2, "published in several steps");
}

#[test]
fn full_queue_with_a_wedged_its_reports_no_progress() {
    let mut q = queue(4096, 0);
    let batch: Vec<_> = (0..200).map(int).collect();
    let result = q.submit(&batch, SYNC, 50);
    assert_eq!(
        result,
        Err(QueueError::NoProgress {
            creadr: 0,
            cwriter: 127 * COMMAND_BYTES
        })
    );
    assert_eq!(q.hw().relaxes, 49);
}

#[test]
fn slow_its_times_out_but_names_the_progress() {
    let mut q = queue(4096, 1);
    let batch: Vec<_> = (0..50).map(int).collect();
    let result = q.submit(&batch, SYNC, 10);
    assert!(
        matches!(result, Err(QueueError::Timeout { creadr, cwriter })
        if creadr > 0 && cwriter == 51 * COMMAND_BYTES)
    );
    // More polling finishes the job.
    assert_eq!(q.wait_until_empty(100), Ok(()));
    assert_eq!(q.hw().executed.len(), 51);
}

const BAD: u32 = 0xbad;

fn poisoned_mapd() -> ItsCommand {
    ItsCommand::Mapd {
        device_id: BAD,
        size: 0,
        itt_addr: 0,
        valid: true,
    }
}

/// A queue over a fake ITS that stalls on DeviceID `BAD`, after one
/// completed SYNC batch (the SYNC a stalled slot is overwritten with).
fn stalling_queue(size: u64, rate: usize) -> CommandQueue<FakeIts> {
    let mut fake = FakeIts::new(size, rate);
    fake.poison_device = Some(BAD);
    let mut q = CommandQueue::new(fake, size).expect("valid");
    q.submit(&[], SYNC, 100).expect("a SYNC alone completes");
    q
}

#[test]
fn stall_before_any_sync_completed_is_reported_with_the_offending_offset() {
    let mut fake = FakeIts::new(4096, 8);
    fake.poison_device = Some(BAD);
    let mut q = CommandQueue::new(fake, 4096).expect("valid");
    let batch = [int(0), int(1), poisoned_mapd(), int(2)];
    assert_eq!(
        q.submit(&batch, SYNC, 100),
        Err(QueueError::Stalled {
            creadr: 2 * COMMAND_BYTES
        })
    );
    assert_eq!(q.hw().executed, [int(0), int(1)]);
    assert_eq!(q.hw().retries, 0, "nothing known to put in the slot");
    assert_eq!(q.skipped_commands(), 0);
}

#[test]
fn stalled_command_is_skipped_and_the_rest_of_the_batch_runs() {
    let mut q = stalling_queue(4096, 8);
    let batch = [int(0), int(1), poisoned_mapd(), int(2)];
    assert_eq!(
        q.submit(&batch, SYNC, 100),
        Err(QueueError::Skipped {
            creadr: 3 * COMMAND_BYTES,
            opcode: 0x08
        })
    );
    // The first SYNC set the filler; the MAPD's slot ran as a SYNC.
    assert_eq!(q.hw().executed, [SYNC, int(0), int(1), SYNC, int(2), SYNC]);
    assert_eq!(q.hw().retries, 1);
    assert_eq!(q.skipped_commands(), 1);
    assert!(!q.hw().stalled);
    // The queue is healthy again.
    q.submit(&[int(3)], SYNC, 100)
        .expect("next batch completes");
    assert_eq!(q.hw().executed[6..], [int(3), SYNC]);
}

#[test]
fn every_stall_of_a_batch_is_skipped_and_counted_the_first_reported() {
    let mut q = stalling_queue(4096, 3);
    let bad_int = ItsCommand::Int {
        device_id: BAD,
        event_id: 9,
    };
    let batch = [bad_int, int(0), poisoned_mapd(), bad_int, int(1)];
    assert_eq!(
        q.submit(&batch, SYNC, 100),
        Err(QueueError::Skipped {
            creadr: COMMAND_BYTES,
            opcode: 0x03
        })
    );
    assert_eq!(q.skipped_commands(), 3);
    assert_eq!(q.hw().retries, 3);
    assert_eq!(
        q.hw().executed,
        [SYNC, SYNC, int(0), SYNC, SYNC, int(1), SYNC]
    );
}

#[test]
fn a_stall_on_the_replacement_is_reported_not_retried_forever() {
    let mut q = stalling_queue(4096, 8);
    q.hw.poison_sync = true;
    let result = q.submit(&[int(0), poisoned_mapd()], SYNC, 1000);
    assert_eq!(
        result,
        Err(QueueError::Stalled {
            creadr: 2 * COMMAND_BYTES
        })
    );
    assert_eq!(q.hw().retries, 1, "one retry per stalled slot");
    // Bounded: the first read, the one that saw the stall again, then the grace.
    assert!(
        q.hw().creadr_reads <= 4 + RESTALL_POLLS as usize,
        "{}",
        q.hw().creadr_reads
    );
}

#[test]
fn an_its_slow_to_act_on_retry_is_given_time_not_reported() {
    let mut q = stalling_queue(4096, 8);
    q.hw.retry_lag = 40;
    assert!(matches!(
        q.submit(&[int(0), poisoned_mapd(), int(1)], SYNC, 1000),
        Err(QueueError::Skipped { opcode: 0x08, .. })
    ));
    assert_eq!(q.hw().retries, 1);
    assert_eq!(q.hw().executed, [SYNC, int(0), SYNC, int(1), SYNC]);
}

#[test]
fn a_vsync_batch_does_not_become_the_replacement() {
    let mut fake = FakeIts::new(4096, 8);
    fake.poison_device = Some(BAD);
    let mut q = CommandQueue::new(fake, 4096).expect("valid");
    q.submit(&[], ItsCommand::Vsync { vpe_id: 1 }, 100)
        .expect("completes");
    assert_eq!(
        q.submit(&[poisoned_mapd()], SYNC, 100),
        Err(QueueError::Stalled {
            creadr: COMMAND_BYTES
        })
    );
}

#[test]
fn a_skip_while_waiting_for_room_keeps_the_ring_in_order() {
    // 127 slots, 300 commands with a stall every 50: the waits for room
    // meet the stalls too.
    let mut q = stalling_queue(4096, 7);
    let batch: Vec<_> = (0..300)
        .map(|i| {
            if i % 50 == 25 {
                poisoned_mapd()
            } else {
                int(i)
            }
        })
        .collect();
    assert!(matches!(
        q.submit(&batch, SYNC, 1000),
        Err(QueueError::Skipped { opcode: 0x08, .. })
    ));
    assert_eq!(q.skipped_commands(), 6);
    let expected: Vec<_> = core::iter::once(SYNC)
        .chain(
            batch
                .iter()
                .map(|c| if *c == poisoned_mapd() { SYNC } else { *c }),
        )
        .chain(core::iter::once(SYNC))
        .collect();
    assert_eq!(q.hw().executed, expected);
}

proptest::proptest! {
    /// Whatever the ring size, ITS speed and where the bad commands are,
    /// every good command runs once in order, every bad one is replaced by
    /// the SYNC and counted, and the queue ends empty and unstalled.
    #[test]
    fn skipping_stalls_preserves_order_and_counts(
        pages in 1u64..3,
        rate in 1usize..40,
        bad in proptest::collection::vec(proptest::bool::weighted(0.1), 1..400),
    ) {
        let size = pages * 4096;
        let mut q = stalling_queue(size, rate);
        let batch: Vec<_> = bad
            .iter()
            .enumerate()
            .map(|(i, &b)| if b { poisoned_mapd() } else { int(i as u32) })
            .collect();
        let result = q.submit(&batch, SYNC, 10_000);
        let bad_count = bad.iter().filter(|&&b| b).count();
        if bad_count == 0 {
            proptest::prop_assert_eq!(result, Ok(()));
        } else {
            proptest::prop_assert!(
                matches!(result, Err(QueueError::Skipped { opcode: 0x08, .. })),
                "{:?}", result
            );
        }
        proptest::prop_assert_eq!(q.skipped_commands(), bad_count as u64);
        let expected: Vec<_> = core::iter::once(SYNC)
            .chain(batch.iter().map(|c| if *c == poisoned_mapd() { SYNC } else { *c }))
            .chain(core::iter::once(SYNC))
            .collect();
        proptest::prop_assert_eq!(&q.hw().executed, &expected);
        proptest::prop_assert!(!q.hw().stalled);
        proptest::prop_assert_eq!(q.hw().creadr, q.hw().cwriter);
    }
}

#[test]
fn queue_sizes_are_checked() {
    for size in [0, 4095, 4097, 2 * MAX_QUEUE_BYTES] {
        assert!(matches!(
            CommandQueue::new(FakeIts::new(4096, 1), size),
            Err(QueueError::BadSize(_))
        ));
    }
    let q = CommandQueue::new(FakeIts::new(MAX_QUEUE_BYTES, 1), MAX_QUEUE_BYTES).expect("1 MiB");
    assert_eq!(q.capacity(), 32767);
}

#[test]
fn read_pointer_outside_the_queue_is_an_error() {
    let mut fake = FakeIts::new(8192, 1);
    fake.creadr = 0x2000;
    fake.cwriter = 0x2000;
    assert!(matches!(
        CommandQueue::new(fake, 4096),
        Err(QueueError::BadReadPointer { creadr: 0x2000 })
    ));
}

#[test]
fn new_queue_starts_where_the_its_reads() {
    let mut fake = FakeIts::new(4096, 4);
    fake.creadr = 0x7e0;
    fake.cwriter = 0x7e0;
    let mut q = CommandQueue::new(fake, 4096).expect("valid");
    q.submit(&[int(7)], SYNC, 10).expect("completes");
    assert_eq!(q.hw().executed, [int(7), SYNC]);
    assert_eq!(q.hw().creadr, 0x820);
}
