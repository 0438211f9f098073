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
    /// A DeviceID whose commands stall the queue (a command error).
    poison_device: Option<u32>,
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
        assert!(
            !self.is_pending(offset),
            "overwrote unconsumed slot {offset:#x}"
        );
        self.slots[(offset / COMMAND_BYTES) as usize] = command;
    }

    fn write_cwriter(&mut self, value: GitsCwriter) {
        self.cwriter_writes += 1;
        if value.retry() {
            self.stalled = false;
            self.poison_device = None;
        }
        self.cwriter = value.byte_offset();
    }

    fn read_creadr(&mut self) -> GitsCreadr {
        self.creadr_reads += 1;
        for _ in 0..self.rate {
            if self.stalled || self.creadr == self.cwriter {
                break;
            }
            let raw = self.slots[(self.creadr / COMMAND_BYTES) as usize];
            let command = ItsCommand::decode(raw).expect("valid command in queue");
            let poisoned = match command {
                ItsCommand::Mapd { device_id, .. } => Some(device_id) == self.poison_device,
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

#[test]
fn stalled_queue_is_reported_with_the_offending_offset() {
    let mut fake = FakeIts::new(4096, 8);
    fake.poison_device = Some(0xbad);
    let mut q = CommandQueue::new(fake, 4096).expect("valid");
    let batch = [
        int(0),
        int(1),
        ItsCommand::Mapd {
            device_id: 0xbad,
            size: 0,
            itt_addr: 0,
            valid: true,
        },
        int(2),
    ];
    assert_eq!(
        q.submit(&batch, SYNC, 100),
        Err(QueueError::Stalled {
            creadr: 2 * COMMAND_BYTES
        })
    );
    assert_eq!(q.hw().executed, [int(0), int(1)]);
    // After Retry (the fake then accepts the command), the queue drains.
    q.retry();
    assert_eq!(q.wait_until_empty(100), Ok(()));
    assert_eq!(q.hw().executed.len(), 5);
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
