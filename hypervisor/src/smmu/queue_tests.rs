//! Host tests of the queue rings against a fake SMMU that consumes commands
//! a few at a time, refuses an opcode like an SMMU reporting CERROR_ILL,
//! and produces events.

use super::*;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

/// A fake SMMU command queue: consumes `rate` entries per CONS read.
struct FakeCmdq {
    ring: Ring,
    slots: Vec<[u64; 2]>,
    prod: u32,
    cons: u32,
    rate: u32,
    executed: Vec<[u64; 2]>,
    refuse_opcode: Option<u8>,
    gerror: u32,
    gerrorn: u32,
    err: u32,
    prod_writes: u32,
    cons_reads: u32,
}

impl FakeCmdq {
    fn new(log2: u8, rate: u32) -> Self {
        let ring = Ring::new(log2).unwrap();
        Self {
            ring,
            slots: vec![[0; 2]; ring.entries() as usize],
            prod: 0,
            cons: 0,
            rate,
            executed: Vec::new(),
            refuse_opcode: None,
            gerror: 0,
            gerrorn: 0,
            err: 0,
            prod_writes: 0,
            cons_reads: 0,
        }
    }

    fn stopped(&self) -> bool {
        (self.gerror ^ self.gerrorn) & 1 != 0
    }
}

impl CommandQueueHw for FakeCmdq {
    fn write_entry(&mut self, index: u32, entry: [u64; 2]) {
        self.slots[index as usize] = entry;
    }
    fn read_entry(&mut self, index: u32) -> [u64; 2] {
        self.slots[index as usize]
    }
    fn write_prod(&mut self, prod: CmdqProd) {
        self.prod = prod.wr();
        self.prod_writes += 1;
    }
    fn read_cons(&mut self) -> CmdqCons {
        self.cons_reads += 1;
        for _ in 0..self.rate {
            if self.stopped() || self.ring.is_empty(self.prod, self.cons) {
                break;
            }
            let entry = self.slots[self.ring.index(self.cons) as usize];
            if Some(entry[0] as u8) == self.refuse_opcode {
                self.gerror ^= 1;
                self.err = CERROR_ILL;
                break;
            }
            self.executed.push(entry);
            self.cons = self.ring.advance(self.cons, 1);
        }
        CmdqCons(0).with_rd(self.cons).with_err(self.err)
    }
    fn active_gerror(&mut self) -> Gerror {
        // The SMMU raises the error as it reaches the command.
        let _ = self.read_cons();
        Gerror::active(Gerror(self.gerror), Gerror(self.gerrorn))
    }
    fn ack_gerror(&mut self, errors: Gerror) {
        self.gerrorn ^= errors.0;
    }
}

fn opcodes(executed: &[[u64; 2]]) -> Vec<u8> {
    executed.iter().map(|e| e[0] as u8).collect()
}

#[test]
fn ring_pointer_arithmetic_with_wrap_bit() {
    let ring = Ring::new(2).unwrap();
    assert_eq!(ring.entries(), 4);
    assert!(ring.is_empty(0b000, 0b000));
    assert!(ring.is_empty(0b101, 0b101));
    // Same index, different wrap: full.
    assert!(ring.is_full(0b100, 0b000));
    assert!(ring.is_full(0b001, 0b101));
    assert!(!ring.is_full(0b011, 0b000));
    assert_eq!(ring.used(0b101, 0b011), 2);
    assert_eq!(ring.free(0b101, 0b011), 2);
    // Advancing past the last slot flips the wrap bit and restarts at 0.
    assert_eq!(ring.advance(0b011, 1), 0b100);
    assert_eq!(ring.advance(0b111, 1), 0b000);
    assert!(!ring.wrap(0b011) && ring.wrap(0b100));
    assert_eq!(ring.index(0b110), 0b10);
    // Flags above the wrap bit are not part of the pointer.
    assert_eq!(ring.pointer(0x8000_0000 | (0x7f << 24) | 0b1_0110), 0b110);
    // More than `entries` apart: inconsistent, no free room.
    assert!(!ring.consistent(0b110, 0b001));
    assert_eq!(ring.free(0b110, 0b001), 0);
    assert_eq!(Ring::new(20), Err(QueueError::BadSize { log2: 20 }));
    assert_eq!(Ring::new(19).unwrap().entries(), 1 << 19);
}

#[test]
fn submit_appends_cmd_sync_and_waits_for_cons_to_pass_it() {
    let mut q = CommandQueue::new(FakeCmdq::new(4, 1), Ring::new(4).unwrap());
    q.submit(
        &[
            Command::CfgiSte { sid: 8, leaf: true },
            Command::TlbiS12Vmall {
                vmid: crate::mm::Vmid::from_const(3),
            },
        ],
        100,
    )
    .unwrap();
    let hw = q.hw();
    assert_eq!(opcodes(&hw.executed), [0x03, 0x28, 0x46]);
    assert_eq!(hw.executed[0], [0x0000_0008_0000_0003, 1]);
    // One PROD write at takeover, one for the batch.
    assert_eq!(hw.prod_writes, 2);
    assert!(hw.ring.is_empty(hw.prod, hw.cons));
}

#[test]
fn a_batch_larger_than_the_ring_waits_for_room_and_completes() {
    // 4 slots, 10 commands + SYNC: the queue fills twice.
    let mut q = CommandQueue::new(FakeCmdq::new(2, 1), Ring::new(2).unwrap());
    let commands: Vec<_> = (0..10)
        .map(|sid| Command::CfgiSte { sid, leaf: true })
        .collect();
    q.submit(&commands, 100).unwrap();
    let hw = q.hw();
    assert_eq!(hw.executed.len(), 11);
    let sids: Vec<u32> = hw.executed[..10]
        .iter()
        .map(|e| (e[0] >> 32) as u32)
        .collect();
    assert_eq!(sids, (0..10).collect::<Vec<_>>());
    assert_eq!(hw.executed[10], Command::SYNC.encode());
    // Every slot was usable: the ring was full (4 written) before the first wait.
    assert!(hw.prod_writes >= 3);
}

#[test]
fn many_batches_wrap_around_the_ring() {
    let mut q = CommandQueue::new(FakeCmdq::new(3, 3), Ring::new(3).unwrap());
    for vmid in 0..50u16 {
        q.submit(
            &[Command::TlbiS12Vmall {
                vmid: crate::mm::Vmid::from_const(vmid),
            }],
            100,
        )
        .unwrap();
    }
    assert_eq!(q.hw().executed.len(), 100);
    assert_eq!(q.hw().executed[98], [0x0000_0031_0000_0028, 0]);
}

#[test]
fn a_wedged_smmu_is_reported_after_the_budget() {
    let mut q = CommandQueue::new(FakeCmdq::new(4, 0), Ring::new(4).unwrap());
    let err = q.submit(&[Command::CfgiAll], 50).unwrap_err();
    assert_eq!(err, QueueError::NoProgress { cons: 0, prod: 2 });
    assert!(
        q.hw().cons_reads <= 2 * 50 + 2,
        "bounded: {}",
        q.hw().cons_reads
    );
    assert!(alloc::format!("{err}").contains("wedged"));
}

#[test]
fn a_slow_smmu_that_moved_is_a_timeout_not_wedged() {
    let mut q = CommandQueue::new(FakeCmdq::new(4, 1), Ring::new(4).unwrap());
    let commands = [Command::CfgiAll; 8];
    // Poll budget 3: the SMMU consumes one entry per read.
    let err = q.submit(&commands, 3).unwrap_err();
    assert!(matches!(err, QueueError::Timeout { .. }), "{err:?}");
}

#[test]
fn a_refused_command_is_reported_replaced_by_sync_and_the_queue_runs_on() {
    let mut fake = FakeCmdq::new(4, 4);
    fake.refuse_opcode = Some(0x2a);
    let mut q = CommandQueue::new(fake, Ring::new(4).unwrap());
    let err = q
        .submit(
            &[
                Command::CfgiAll,
                Command::TlbiS2Ipa {
                    vmid: crate::mm::Vmid::from_const(1),
                    ipa: 0x1000,
                    leaf: true,
                },
                Command::TlbiNsnhAll,
            ],
            100,
        )
        .unwrap_err();
    assert_eq!(
        err,
        QueueError::CommandError {
            index: 1,
            code: CERROR_ILL,
            opcode: 0x2a
        }
    );
    let line = alloc::format!("{err}");
    assert!(
        line.contains("CMD_TLBI_S2_IPA") && line.contains("CERROR_ILL"),
        "{line}"
    );
    // Acknowledged: GERRORN caught up with GERROR.
    assert!(!q.hw().stopped());
    // The next batch completes, and the SMMU ran the SYNC put in its place.
    q.submit(
        &[Command::TlbiS12Vmall {
            vmid: crate::mm::Vmid::from_const(1),
        }],
        100,
    )
    .unwrap();
    assert_eq!(
        opcodes(&q.hw().executed),
        [0x04, 0x46, 0x30, 0x46, 0x28, 0x46]
    );
}

#[test]
fn a_consumer_running_past_the_producer_is_refused() {
    struct Runaway(u32);
    impl CommandQueueHw for Runaway {
        fn write_entry(&mut self, _: u32, _: [u64; 2]) {}
        fn read_entry(&mut self, _: u32) -> [u64; 2] {
            [0; 2]
        }
        fn write_prod(&mut self, _: CmdqProd) {}
        fn read_cons(&mut self) -> CmdqCons {
            let cons = CmdqCons(self.0);
            self.0 = 5;
            cons
        }
        fn active_gerror(&mut self) -> Gerror {
            Gerror(0)
        }
        fn ack_gerror(&mut self, _: Gerror) {}
    }
    let mut q = CommandQueue::new(Runaway(0), Ring::new(4).unwrap());
    // One command + SYNC published (PROD = 2), CONS claims 5.
    assert_eq!(
        q.submit(&[Command::CfgiAll], 10),
        Err(QueueError::BadConsumer { cons: 5, prod: 2 })
    );
}

/// A fake SMMU event queue.
struct FakeEvtq {
    ring: Ring,
    slots: Vec<[u64; 4]>,
    prod: u32,
    ovflg: bool,
    cons_writes: Vec<EventqCons>,
}

impl FakeEvtq {
    fn new(log2: u8) -> Self {
        let ring = Ring::new(log2).unwrap();
        Self {
            ring,
            slots: vec![[0; 4]; ring.entries() as usize],
            prod: 0,
            ovflg: false,
            cons_writes: Vec::new(),
        }
    }

    /// The SMMU records an event for `sid`, unless the queue is full (then
    /// it toggles OVFLG and drops it).
    fn record(&mut self, sid: u32) {
        let cons = self
            .cons_writes
            .last()
            .map_or(0, |c| self.ring.pointer(c.rd()));
        if self.ring.is_full(self.prod, cons) {
            self.ovflg = !self.ovflg;
            return;
        }
        self.slots[self.ring.index(self.prod) as usize] =
            [(u64::from(sid) << 32) | 0x10, 1 << 39, 0x1000, 0x1000];
        self.prod = self.ring.advance(self.prod, 1);
    }
}

impl EventQueueHw for FakeEvtq {
    fn read_prod(&mut self) -> EventqProd {
        EventqProd(0).with_wr(self.prod).with_ovflg(self.ovflg)
    }
    fn read_entry(&mut self, index: u32) -> [u64; 4] {
        self.slots[index as usize]
    }
    fn write_cons(&mut self, cons: EventqCons) {
        self.cons_writes.push(cons);
    }
}

#[test]
fn drain_hands_events_in_order_and_moves_cons() {
    let mut q = EventQueue::new(FakeEvtq::new(3), Ring::new(3).unwrap());
    let mut sids = Vec::new();
    assert_eq!(
        q.drain(16, &mut |e| sids.push(e.stream_id)),
        Drained::default()
    );
    assert!(
        q.hw().cons_writes.is_empty(),
        "nothing consumed, CONS untouched"
    );
    for sid in 0..5 {
        q.hw.record(sid);
    }
    assert!(q.pending());
    let drained = q.drain(16, &mut |e| sids.push(e.stream_id));
    assert_eq!(drained.events, 5);
    assert!(!drained.more && !drained.overflowed);
    assert_eq!(sids, [0, 1, 2, 3, 4]);
    assert_eq!(q.hw().cons_writes.last().unwrap().rd(), 5);
    assert!(!q.pending());
}

#[test]
fn drain_is_bounded_and_resumes_across_the_wrap() {
    let mut q = EventQueue::new(FakeEvtq::new(2), Ring::new(2).unwrap());
    let mut sids = Vec::new();
    for round in 0..5u32 {
        for i in 0..3 {
            q.hw.record(round * 3 + i);
        }
        let first = q.drain(2, &mut |e| sids.push(e.stream_id));
        assert_eq!((first.events, first.more), (2, true));
        let rest = q.drain(2, &mut |e| sids.push(e.stream_id));
        assert_eq!((rest.events, rest.more), (1, false));
    }
    assert_eq!(sids, (0..15).collect::<Vec<_>>());
}

#[test]
fn overflow_is_reported_once_and_acknowledged() {
    let mut q = EventQueue::new(FakeEvtq::new(2), Ring::new(2).unwrap());
    for sid in 0..6 {
        q.hw.record(sid); // 4 fit, the 5th toggles OVFLG, the 6th toggles it back
    }
    q.hw.ovflg = true; // one overflow episode
    let drained = q.drain(16, &mut |_| {});
    assert!(drained.overflowed);
    assert_eq!(drained.events, 4);
    assert!(q.hw().cons_writes.last().unwrap().ovackflg());
    // Acknowledged: the next drain sees no new overflow.
    q.hw.record(9);
    let drained = q.drain(16, &mut |_| {});
    assert!(!drained.overflowed);
    assert_eq!(drained.events, 1);
    assert!(q.hw().cons_writes.last().unwrap().ovackflg());
}

#[test]
fn an_inconsistent_producer_resynchronises_without_reading_garbage() {
    let mut q = EventQueue::new(FakeEvtq::new(2), Ring::new(2).unwrap());
    q.hw.prod = 0b110; // 6 ahead of CONS 0 in a 4-entry ring
    let mut seen = 0;
    let drained = q.drain(16, &mut |_| seen += 1);
    assert!(drained.resynced);
    assert_eq!(seen, 0);
    assert_eq!(q.hw().cons_writes.last().unwrap().rd(), 0b110);
}

proptest! {
    #[test]
    fn ring_used_plus_free_is_the_size_for_consistent_pointers(
        log2 in 0u8..=19, cons in any::<u32>(), used in any::<u32>()
    ) {
        let ring = Ring::new(log2).unwrap();
        let used = used % (ring.entries() + 1);
        let cons = ring.pointer(cons);
        let prod = ring.advance(cons, used);
        prop_assert!(ring.consistent(prod, cons));
        prop_assert_eq!(ring.used(prod, cons), used);
        prop_assert_eq!(ring.used(prod, cons) + ring.free(prod, cons), ring.entries());
        prop_assert_eq!(ring.is_empty(prod, cons), used == 0);
        prop_assert_eq!(ring.is_full(prod, cons), used == ring.entries());
    }

    #[test]
    fn drain_never_panics_on_any_producer_value(prod in any::<u32>(), max in 0usize..64) {
        let mut q = EventQueue::new(FakeEvtq::new(3), Ring::new(3).unwrap());
        q.hw.prod = prod & 0xf_ffff;
        let drained = q.drain(max, &mut |_| {});
        prop_assert!(drained.events <= max.min(8));
    }
}
