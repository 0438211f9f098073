//! SMMUv3 queues as rings, independent of the hardware (IHI 0070, 3.5
//! "Command and Event queues").
//!
//! A queue of 2^LOG2SIZE entries has PROD and CONS pointers made of an index
//! (bits [LOG2SIZE-1:0]) and a wrap bit (bit LOG2SIZE) that flips on every
//! lap. Equal pointers mean empty; equal indexes with different wrap bits
//! mean full, so all 2^LOG2SIZE slots can be used. Software produces the
//! command queue and the SMMU consumes it; the event queue the other way.
//! The caller serialises access to one queue (one lock per SMMU queue).

use core::fmt;

use super::command::{opcode_name, Command};
use super::event::Event;
use super::regs::{
    CmdqCons, CmdqProd, EventqCons, EventqProd, Gerror, CERROR_ABT, CERROR_ATC_INV_SYNC, CERROR_ILL,
};

/// Bytes of one command queue entry.
pub const COMMAND_BYTES: u64 = 16;
/// Bytes of one event queue entry.
pub const EVENT_BYTES: u64 = 32;
/// Largest LOG2SIZE of any queue (the 20-bit RD/WR fields hold index and wrap).
pub const MAX_LOG2: u8 = 19;

/// The pointer arithmetic of one queue of 2^log2 entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    log2: u8,
}

impl Ring {
    /// A ring of 2^`log2` entries (0..=19).
    pub const fn new(log2: u8) -> Result<Self, QueueError> {
        if log2 > MAX_LOG2 {
            return Err(QueueError::BadSize { log2 });
        }
        Ok(Self { log2 })
    }

    /// LOG2SIZE.
    pub const fn log2(self) -> u8 {
        self.log2
    }

    /// Number of entries.
    pub const fn entries(self) -> u32 {
        1 << self.log2
    }

    /// The wrap and index bits of a pointer register value.
    pub const fn pointer(self, raw: u32) -> u32 {
        raw & ((2 << self.log2) - 1)
    }

    /// The slot a pointer designates.
    pub const fn index(self, pointer: u32) -> u32 {
        pointer & (self.entries() - 1)
    }

    /// The wrap bit of a pointer.
    pub const fn wrap(self, pointer: u32) -> bool {
        pointer & self.entries() != 0
    }

    /// Entries between `cons` and `prod`: 0..=entries for consistent
    /// pointers, more if the pointers are inconsistent.
    pub const fn used(self, prod: u32, cons: u32) -> u32 {
        self.pointer(prod.wrapping_sub(cons))
    }

    /// Whether `prod` and `cons` describe a possible queue state.
    pub const fn consistent(self, prod: u32, cons: u32) -> bool {
        self.used(prod, cons) <= self.entries()
    }

    /// Whether nothing is between `cons` and `prod`.
    pub const fn is_empty(self, prod: u32, cons: u32) -> bool {
        self.pointer(prod) == self.pointer(cons)
    }

    /// Whether every slot holds an entry (same index, different wrap).
    pub const fn is_full(self, prod: u32, cons: u32) -> bool {
        self.pointer(prod ^ cons) == self.entries()
    }

    /// Free slots, 0 when inconsistent.
    pub const fn free(self, prod: u32, cons: u32) -> u32 {
        self.entries().saturating_sub(self.used(prod, cons))
    }

    /// `pointer` moved on by `n` entries, wrapping (and flipping the wrap bit).
    pub const fn advance(self, pointer: u32, n: u32) -> u32 {
        self.pointer(pointer.wrapping_add(n))
    }
}

/// Why the command queue could not take or finish a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// LOG2SIZE beyond 19.
    BadSize {
        /// The size asked for.
        log2: u8,
    },
    /// The SMMU stopped on a command (GERROR.CMDQ_ERR); the driver replaced
    /// it with a CMD_SYNC and acknowledged the error, so the queue runs on.
    CommandError {
        /// Slot of the refused command.
        index: u32,
        /// SMMU_CMDQ_CONS.ERR (1 CERROR_ILL, 2 CERROR_ABT, 3 CERROR_ATC_INV_SYNC).
        code: u32,
        /// Opcode of the refused command.
        opcode: u8,
    },
    /// SMMU_CMDQ_CONS never moved during the whole budget: the SMMU is
    /// wedged, or its command queue is disabled.
    NoProgress {
        /// SMMU_CMDQ_CONS (wrap and index).
        cons: u32,
        /// SMMU_CMDQ_PROD (wrap and index).
        prod: u32,
    },
    /// SMMU_CMDQ_CONS moved but did not get far enough within the budget.
    Timeout {
        /// SMMU_CMDQ_CONS reached.
        cons: u32,
        /// SMMU_CMDQ_PROD.
        prod: u32,
    },
    /// SMMU_CMDQ_CONS is not between what was consumed and produced:
    /// broken hardware or model.
    BadConsumer {
        /// SMMU_CMDQ_CONS read.
        cons: u32,
        /// SMMU_CMDQ_PROD.
        prod: u32,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadSize { log2 } => write!(f, "queue LOG2SIZE {log2} beyond 19"),
            Self::CommandError {
                index,
                code,
                opcode,
            } => {
                let why = match code {
                    CERROR_ILL => "CERROR_ILL",
                    CERROR_ABT => "CERROR_ABT",
                    CERROR_ATC_INV_SYNC => "CERROR_ATC_INV_SYNC",
                    _ => "unknown error",
                };
                write!(
                    f,
                    "{} ({opcode:#04x}) at slot {index} refused: {why} ({code})",
                    opcode_name(opcode)
                )
            }
            Self::NoProgress { cons, prod } => {
                write!(f, "wedged: CONS {cons:#x}, PROD {prod:#x}")
            }
            Self::Timeout { cons, prod } => write!(f, "slow: CONS {cons:#x}, PROD {prod:#x}"),
            Self::BadConsumer { cons, prod } => {
                write!(f, "CONS {cons:#x} inconsistent with PROD {prod:#x}")
            }
        }
    }
}

/// The memory and registers behind a command queue.
pub trait CommandQueueHw {
    /// Writes one entry, dword 0 first, into slot `index` (cleaning it to
    /// the point of coherency if the SMMU does not snoop).
    fn write_entry(&mut self, index: u32, entry: [u64; 2]);
    /// Reads the entry in slot `index`.
    fn read_entry(&mut self, index: u32) -> [u64; 2];
    /// Makes every written entry visible to the SMMU (a DSB), then writes
    /// SMMU_CMDQ_PROD.
    fn write_prod(&mut self, prod: CmdqProd);
    /// Reads SMMU_CMDQ_CONS.
    fn read_cons(&mut self) -> CmdqCons;
    /// The active global errors (SMMU_GERROR ^ SMMU_GERRORN).
    fn active_gerror(&mut self) -> Gerror;
    /// Acknowledges the active errors in `errors` by toggling SMMU_GERRORN
    /// (after a barrier, so a repaired entry is visible first).
    fn ack_gerror(&mut self, errors: Gerror);
    /// Called between two polls (a spin hint or a short delay).
    fn relax(&mut self) {}
}

/// A command queue: ring arithmetic, back-pressure, CMD_SYNC completion
/// and command errors, with every wait bounded.
#[derive(Debug)]
pub struct CommandQueue<H> {
    hw: H,
    ring: Ring,
    /// Our SMMU_CMDQ_PROD (wrap and index), possibly ahead of the register
    /// until published.
    prod: u32,
    /// What SMMU_CMDQ_PROD holds.
    published: u32,
    /// SMMU_CMDQ_CONS as last read (never ahead of the real one).
    cons: u32,
}

impl<H: CommandQueueHw> CommandQueue<H> {
    /// Takes over a queue just programmed (SMMU_CMDQ_BASE, PROD = CONS = 0):
    /// starts producing where the SMMU consumes.
    pub fn new(mut hw: H, ring: Ring) -> Self {
        let cons = ring.pointer(hw.read_cons().rd());
        hw.write_prod(CmdqProd(0).with_wr(cons));
        Self {
            hw,
            ring,
            prod: cons,
            published: cons,
            cons,
        }
    }

    /// The hardware behind the queue.
    pub fn hw(&self) -> &H {
        &self.hw
    }

    /// The ring.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// Writes `commands` and one closing CMD_SYNC (no signal), waiting for
    /// room when the ring is full, then waits until SMMU_CMDQ_CONS passed
    /// the CMD_SYNC: every command has then completed. Each wait polls at
    /// most `budget` times. On error, some commands may have been published.
    pub fn submit(&mut self, commands: &[Command], budget: u32) -> Result<(), QueueError> {
        for command in commands.iter().chain(core::iter::once(&Command::SYNC)) {
            self.push(command, budget)?;
        }
        self.publish();
        let target = self.prod;
        self.poll(budget, |ring, cons| ring.is_empty(target, cons))
    }

    /// Writes one command, first making room if the ring is full.
    fn push(&mut self, command: &Command, budget: u32) -> Result<(), QueueError> {
        if self.ring.is_full(self.prod, self.cons) {
            // Looks full from the cached pointer: ask the SMMU.
            self.read_cons()?;
        }
        if self.ring.is_full(self.prod, self.cons) {
            // Full: hand the SMMU what is written, then wait for a free slot.
            self.publish();
            let prod = self.prod;
            self.poll(budget, |ring, cons| !ring.is_full(prod, cons))?;
        }
        self.hw
            .write_entry(self.ring.index(self.prod), command.encode());
        self.prod = self.ring.advance(self.prod, 1);
        Ok(())
    }

    /// Publishes the written commands through SMMU_CMDQ_PROD.
    fn publish(&mut self) {
        if self.published != self.prod {
            self.hw.write_prod(CmdqProd(0).with_wr(self.prod));
            self.published = self.prod;
        }
    }

    /// Reads SMMU_CMDQ_CONS, checking for a command error and that it lies
    /// between what was consumed and what was published.
    fn read_cons(&mut self) -> Result<u32, QueueError> {
        if self.hw.active_gerror().cmdq_err() {
            return Err(self.skip_error());
        }
        let cons = self.ring.pointer(self.hw.read_cons().rd());
        // CONS may only move forward, and never past what we published.
        let consumed = self.ring.used(cons, self.cons);
        let outstanding = self.ring.used(self.published, self.cons);
        if consumed > outstanding {
            return Err(QueueError::BadConsumer {
                cons,
                prod: self.published,
            });
        }
        self.cons = cons;
        Ok(cons)
    }

    /// The SMMU stopped on the command at SMMU_CMDQ_CONS (IHI 0070, 7.1
    /// "Command queue errors"): replace it by a CMD_SYNC, which does
    /// nothing harmful, and acknowledge the error so the SMMU resumes.
    fn skip_error(&mut self) -> QueueError {
        let cons = self.hw.read_cons();
        let index = self.ring.index(self.ring.pointer(cons.rd()));
        let opcode = self.hw.read_entry(index)[0] as u8;
        self.hw.write_entry(index, Command::SYNC.encode());
        self.hw.ack_gerror(Gerror(0).with_cmdq_err(true));
        QueueError::CommandError {
            index,
            code: cons.err(),
            opcode,
        }
    }

    /// Polls SMMU_CMDQ_CONS up to `budget` times (at least once) until `done`.
    fn poll(&mut self, budget: u32, done: impl Fn(Ring, u32) -> bool) -> Result<(), QueueError> {
        let first = self.read_cons()?;
        let mut cons = first;
        for _ in 1..budget.max(1) {
            if done(self.ring, cons) {
                return Ok(());
            }
            self.hw.relax();
            cons = self.read_cons()?;
        }
        if done(self.ring, cons) {
            return Ok(());
        }
        let prod = self.published;
        Err(if cons != first {
            QueueError::Timeout { cons, prod }
        } else {
            QueueError::NoProgress { cons, prod }
        })
    }
}

/// The memory and registers behind an event queue.
pub trait EventQueueHw {
    /// Reads SMMU_EVENTQ_PROD, then a barrier so that entries are read after it.
    fn read_prod(&mut self) -> EventqProd;
    /// Reads the entry in slot `index` (invalidating it from the CPU caches
    /// first if the SMMU does not snoop).
    fn read_entry(&mut self, index: u32) -> [u64; 4];
    /// A barrier so that every entry read is done, then writes SMMU_EVENTQ_CONS.
    fn write_cons(&mut self, cons: EventqCons);
}

/// What one `drain` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events handed to the callback.
    pub events: usize,
    /// The SMMU lost events to a full queue since the last drain
    /// (SMMU_EVENTQ_PROD.OVFLG toggled); acknowledged.
    pub overflowed: bool,
    /// Events remain after the bound was reached.
    pub more: bool,
    /// SMMU_EVENTQ_PROD was inconsistent with our CONS: the queue was
    /// resynchronised, skipping whatever it held.
    pub resynced: bool,
}

/// An event queue: consumes records bounded per call and acknowledges
/// overflows.
#[derive(Debug)]
pub struct EventQueue<H> {
    hw: H,
    ring: Ring,
    /// Our SMMU_EVENTQ_CONS (wrap and index).
    cons: u32,
    /// Our SMMU_EVENTQ_CONS.OVACKFLG.
    ovack: bool,
}

impl<H: EventQueueHw> EventQueue<H> {
    /// Takes over a queue just programmed (SMMU_EVENTQ_BASE, PROD = CONS = 0).
    pub fn new(hw: H, ring: Ring) -> Self {
        Self {
            hw,
            ring,
            cons: 0,
            ovack: false,
        }
    }

    /// The hardware behind the queue.
    pub fn hw(&self) -> &H {
        &self.hw
    }

    /// Hands at most `max` records to `handle`, oldest first, then tells
    /// the SMMU they are consumed (and acknowledges an overflow).
    pub fn drain(&mut self, max: usize, handle: &mut dyn FnMut(Event)) -> Drained {
        let prod_reg = self.hw.read_prod();
        let prod = self.ring.pointer(prod_reg.wr());
        let mut drained = Drained {
            overflowed: prod_reg.ovflg() != self.ovack,
            ..Drained::default()
        };
        if !self.ring.consistent(prod, self.cons) {
            // Hardware or model bug: nothing between CONS and PROD can be
            // trusted; start again from PROD.
            self.cons = prod;
            drained.resynced = true;
        }
        while drained.events < max && !self.ring.is_empty(prod, self.cons) {
            let entry = self.hw.read_entry(self.ring.index(self.cons));
            handle(Event::decode(entry));
            self.cons = self.ring.advance(self.cons, 1);
            drained.events += 1;
        }
        drained.more = !self.ring.is_empty(prod, self.cons);
        self.ovack = prod_reg.ovflg();
        if drained.events > 0 || drained.overflowed || drained.resynced {
            self.hw
                .write_cons(EventqCons(0).with_rd(self.cons).with_ovackflg(self.ovack));
        }
        drained
    }

    /// Whether records wait (reads SMMU_EVENTQ_PROD).
    pub fn pending(&mut self) -> bool {
        let prod = self.ring.pointer(self.hw.read_prod().wr());
        !self.ring.is_empty(prod, self.cons)
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
