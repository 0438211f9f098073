//! The physical ITS command queue as a ring, independent of the hardware
//! (IHI 0069, GITS_CBASER, GITS_CWRITER, GITS_CREADR and 5.3 "ITS commands").
//!
//! Software owns the slots from GITS_CWRITER up to (not including) the one
//! before GITS_CREADR; the ITS owns the rest. One slot always stays empty,
//! so that CWRITER == CREADR means "empty" and never "full". The caller
//! serialises access to one queue (one lock per physical ITS).
//!
//! A command error may stall the queue (GITS_CREADR.Stalled; IHI 0069,
//! "The ITS command interface": whether an error stalls or is ignored is
//! IMPLEMENTATION DEFINED, and with GITS_TYPER.SEIS == 1 it also raises a
//! system error). GITS_CREADR is read only, so the only way past the
//! offending command is to rewrite its slot and write GITS_CWRITER.Retry,
//! which makes the ITS read the slot at GITS_CREADR again. The queue puts a
//! SYNC it has already seen complete in the slot (a SYNC to a valid
//! redistributor does nothing but wait), retries once, logs the first stall
//! with the command, counts every one, and reports the skipped command to
//! the caller once the rest of its batch has run.

use core::fmt;

use super::its_cmd::ItsCommand;
use super::regs::its::{GitsCreadr, GitsCwriter};

/// Bytes of one command slot.
pub const COMMAND_BYTES: u64 = 32;
/// Largest queue GITS_CBASER can describe: 256 pages of 4 KiB.
pub const MAX_QUEUE_BYTES: u64 = 256 * 4096;
/// Reads of GITS_CREADR that may still show the queue stalled on a slot
/// just rewritten and retried (the ITS acts on Retry in its own time)
/// before the ITS is taken to have stalled on the replacement too.
pub const RESTALL_POLLS: u32 = 256;

/// The memory and registers behind one command queue.
pub trait CommandQueueHw {
    /// Writes one command, DW0 first, into the slot `offset` bytes from the queue base.
    fn write_command(&mut self, offset: u64, command: [u64; 4]);
    /// Makes every written command visible to the ITS (a DSB, plus a cache
    /// clean if the queue is not coherent), then writes GITS_CWRITER.
    fn write_cwriter(&mut self, value: GitsCwriter);
    /// Reads GITS_CREADR.
    fn read_creadr(&mut self) -> GitsCreadr;
    /// Reads back the command in the slot `offset` bytes from the queue
    /// base (to name a command the ITS stalled on).
    fn read_command(&mut self, offset: u64) -> [u64; 4];
    /// Called between two polls of GITS_CREADR (a spin hint or a short delay).
    fn relax(&mut self) {}
}

/// Why the queue could not take or finish a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue size is not a multiple of 4 KiB in 4 KiB..=1 MiB.
    BadSize(u64),
    /// The command closing a batch is not a SYNC or VSYNC.
    NotASync {
        /// Its command number.
        opcode: u8,
    },
    /// GITS_CREADR.Stalled: the ITS stopped on the command at `creadr`
    /// (a command error) and could not be moved past it: no SYNC known to
    /// complete to put in its place yet, or the ITS stalled again on the
    /// replacement.
    Stalled {
        /// Byte offset of the offending command.
        creadr: u64,
    },
    /// The ITS stalled on a command of the batch (a command error); the
    /// command was skipped (replaced by a SYNC and retried) and the rest
    /// of the batch ran. The queue is usable again.
    Skipped {
        /// Byte offset of the skipped command.
        creadr: u64,
        /// Its command number.
        opcode: u8,
    },
    /// GITS_CREADR never moved during the whole budget: the ITS is wedged
    /// or disabled.
    NoProgress {
        /// Byte offset GITS_CREADR stayed at.
        creadr: u64,
        /// Byte offset of GITS_CWRITER.
        cwriter: u64,
    },
    /// GITS_CREADR moved but did not get far enough within the budget.
    Timeout {
        /// Byte offset GITS_CREADR had reached.
        creadr: u64,
        /// Byte offset of GITS_CWRITER.
        cwriter: u64,
    },
    /// GITS_CREADR points outside the queue: broken hardware or model.
    BadReadPointer {
        /// The byte offset read.
        creadr: u64,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadSize(size) => write!(f, "bad ITS queue size {size:#x}"),
            Self::NotASync { opcode } => write!(f, "batch closed by command {opcode:#04x}"),
            Self::Stalled { creadr } => write!(f, "ITS queue stalled at {creadr:#x}"),
            Self::Skipped { creadr, opcode } => write!(
                f,
                "ITS command {opcode:#04x} at {creadr:#x} failed (queue stalled) and was skipped"
            ),
            Self::NoProgress { creadr, cwriter } => {
                write!(
                    f,
                    "ITS queue wedged: CREADR {creadr:#x}, CWRITER {cwriter:#x}"
                )
            }
            Self::Timeout { creadr, cwriter } => {
                write!(
                    f,
                    "ITS queue slow: CREADR {creadr:#x}, CWRITER {cwriter:#x}"
                )
            }
            Self::BadReadPointer { creadr } => write!(f, "GITS_CREADR {creadr:#x} out of queue"),
        }
    }
}

/// A command queue: the ring arithmetic, back-pressure and bounded waits.
#[derive(Debug)]
pub struct CommandQueue<H> {
    hw: H,
    /// Queue size in bytes.
    size: u64,
    /// Where the next command goes (our copy of GITS_CWRITER, maybe ahead
    /// of it until published).
    write: u64,
    /// What GITS_CWRITER holds.
    published: u64,
    /// GITS_CREADR as last read: never ahead of the real one, so the room
    /// it implies is a lower bound and the register is read only when full.
    last_read: u64,
    /// A SYNC the ITS has completed: what a stalled command's slot is
    /// overwritten with to skip it.
    filler: Option<ItsCommand>,
    /// The slot last overwritten to skip a stall, until GITS_CREADR moves
    /// past it (a second stall there is not retried again).
    skipping: Option<u64>,
    /// Reads that showed the queue still stalled on `skipping`.
    restall_polls: u32,
    /// The first command the current batch skipped (offset, opcode).
    batch_skip: Option<(u64, u8)>,
    /// Commands skipped since the queue was set up.
    skipped: u64,
}

impl<H: CommandQueueHw> CommandQueue<H> {
    /// Takes over a queue of `size_bytes` just programmed in GITS_CBASER:
    /// starts writing where the ITS reads, and tells it so in GITS_CWRITER.
    pub fn new(mut hw: H, size_bytes: u64) -> Result<Self, QueueError> {
        if size_bytes == 0 || !size_bytes.is_multiple_of(4096) || size_bytes > MAX_QUEUE_BYTES {
            return Err(QueueError::BadSize(size_bytes));
        }
        let creadr = hw.read_creadr().byte_offset();
        if creadr >= size_bytes {
            return Err(QueueError::BadReadPointer { creadr });
        }
        hw.write_cwriter(GitsCwriter::from_byte_offset(creadr));
        Ok(Self {
            hw,
            size: size_bytes,
            write: creadr,
            published: creadr,
            last_read: creadr,
            filler: None,
            skipping: None,
            restall_polls: 0,
            batch_skip: None,
            skipped: 0,
        })
    }

    /// Most commands the queue holds at once (one slot stays empty).
    pub const fn capacity(&self) -> u64 {
        self.size / COMMAND_BYTES - 1
    }

    /// The hardware behind the queue.
    pub fn hw(&self) -> &H {
        &self.hw
    }

    /// Commands the ITS stalled on that were skipped, since set-up.
    pub const fn skipped_commands(&self) -> u64 {
        self.skipped
    }

    /// Writes `commands` then exactly one `sync` (SYNC or VSYNC), waiting
    /// for room when the ring is full, and waits until the ITS has consumed
    /// all of it. Each wait polls GITS_CREADR at most `budget` times.
    ///
    /// On error, the commands written so far may have been published.
    pub fn submit(
        &mut self,
        commands: &[ItsCommand],
        sync: ItsCommand,
        budget: u32,
    ) -> Result<(), QueueError> {
        if !sync.is_sync() {
            return Err(QueueError::NotASync {
                opcode: sync.opcode(),
            });
        }
        self.batch_skip = None;
        for command in commands.iter().chain(core::iter::once(&sync)) {
            self.push(command, budget)?;
        }
        self.publish();
        self.wait_until_empty(budget)?;
        if let Some((creadr, opcode)) = self.batch_skip.take() {
            return Err(QueueError::Skipped { creadr, opcode });
        }
        if matches!(sync, ItsCommand::Sync { .. }) {
            // Completed: a safe replacement for a command the ITS stalls on.
            self.filler = Some(sync);
        }
        Ok(())
    }

    /// Writes GITS_CWRITER.Retry to restart a stalled queue (after the
    /// driver has dealt with the offending command).
    pub fn retry(&mut self) {
        self.hw
            .write_cwriter(GitsCwriter::from_byte_offset(self.published).with_retry(true));
    }

    /// Polls (at most `budget` times) until the ITS consumed every
    /// published command.
    pub fn wait_until_empty(&mut self, budget: u32) -> Result<(), QueueError> {
        let target = self.published;
        self.poll(budget, |read| read == target)
    }

    /// Writes one command, first making room if the ring is full.
    fn push(&mut self, command: &ItsCommand, budget: u32) -> Result<(), QueueError> {
        let next = (self.write + COMMAND_BYTES) % self.size;
        if next == self.last_read {
            // Looks full from the cached pointer: ask the ITS.
            self.read_pointer()?;
        }
        if next == self.last_read {
            // Full: hand the ITS what is written, then wait for a free slot.
            self.publish();
            self.poll(budget, |read| read != next)?;
        }
        self.hw.write_command(self.write, command.encode());
        self.write = next;
        Ok(())
    }

    /// Publishes the written commands through GITS_CWRITER.
    fn publish(&mut self) {
        if self.published != self.write {
            self.hw
                .write_cwriter(GitsCwriter::from_byte_offset(self.write));
            self.published = self.write;
        }
    }

    /// Reads GITS_CREADR's offset, checking it lies in the queue.
    fn read_pointer(&mut self) -> Result<u64, QueueError> {
        let creadr = self.hw.read_creadr();
        let offset = creadr.byte_offset();
        if offset >= self.size {
            return Err(QueueError::BadReadPointer { creadr: offset });
        }
        if creadr.stalled() {
            self.skip_stalled(offset)?;
        } else if self.skipping.is_some_and(|slot| slot != offset) {
            self.skipping = None;
        }
        self.last_read = offset;
        Ok(offset)
    }

    /// The ITS stalled on the command at `offset`: overwrites it with the
    /// filler SYNC and writes GITS_CWRITER.Retry so that the ITS reads the
    /// slot again. Once per slot: a slot still stalled after
    /// [`RESTALL_POLLS`] reads is reported.
    fn skip_stalled(&mut self, offset: u64) -> Result<(), QueueError> {
        let Some(filler) = self.filler else {
            return Err(QueueError::Stalled { creadr: offset });
        };
        if self.skipping == Some(offset) {
            self.restall_polls += 1;
            if self.restall_polls > RESTALL_POLLS {
                return Err(QueueError::Stalled { creadr: offset });
            }
            return Ok(());
        }
        let raw = self.hw.read_command(offset);
        let opcode = raw[0] as u8;
        if self.skipped == 0 {
            log::warn!(
                "physical ITS stalled at {offset:#x} on {:?} ({raw:#x?}): skipped; further skips are counted",
                ItsCommand::decode(raw)
            );
        } else {
            log::debug!("physical ITS stalled at {offset:#x} on command {opcode:#04x}: skipped");
        }
        self.skipped += 1;
        self.batch_skip.get_or_insert((offset, opcode));
        self.skipping = Some(offset);
        self.restall_polls = 0;
        self.hw.write_command(offset, filler.encode());
        self.retry();
        Ok(())
    }

    /// Polls GITS_CREADR up to `budget` times (at least once) until `done`.
    fn poll(&mut self, budget: u32, done: impl Fn(u64) -> bool) -> Result<(), QueueError> {
        let first = self.read_pointer()?;
        let mut read = first;
        let mut moved = false;
        for _ in 1..budget.max(1) {
            if done(read) {
                return Ok(());
            }
            self.hw.relax();
            read = self.read_pointer()?;
            moved |= read != first;
        }
        if done(read) {
            return Ok(());
        }
        let cwriter = self.published;
        Err(if moved {
            QueueError::Timeout {
                creadr: read,
                cwriter,
            }
        } else {
            QueueError::NoProgress {
                creadr: read,
                cwriter,
            }
        })
    }
}

#[cfg(test)]
#[path = "its_queue_tests.rs"]
mod tests;
