//! The command queue reader (IHI 0069, "The ITS command interface"):
//! commands are read from the guest's queue between GITS_CREADR and
//! GITS_CWRITER, in order, wrapping at the end of the queue, at most a
//! per-trap budget at a time.
//!
//! GITS_CREADR moves past a command only once the command's effect has
//! been handed to the backend; one backend sync closes the batch before the
//! trap returns, so the guest never sees CREADR ahead of the effects.

use super::backend::VitsBackend;
use super::commands::{Executor, Failure};
use super::error::{CommandError, StallReason};
use super::heavy::{Heavy, InProgress};
use super::Vits;
use crate::gic::its_cmd::{DecodeError, ItsCommand};
use crate::guest_mem::GuestMemory;

/// Bytes per command (IHI 0069, 5.3: every command is 32 bytes).
pub const COMMAND_SIZE: u64 = 32;

impl Vits {
    /// Processes queued commands within the per-trap work budget
    /// (`max_commands_per_trap` units) and returns how many commands it
    /// consumed (executed or skipped). Called on a CWRITER write, a CREADR
    /// read and the enabling of the ITS; the hypervisor may call it from
    /// elsewhere to finish a long queue sooner.
    ///
    /// A command costs one unit, and a command whose work grows with the
    /// events ([`Heavy`]) one more per event it visits (or LPI the backend
    /// moves or reloads), so no trap does more than the budget. A heavy
    /// command that does not finish within what is left keeps GITS_CREADR
    /// on itself and continues first thing on the next trap.
    pub fn process_queue<M, B>(&mut self, mem: &M, backend: &mut B) -> usize
    where
        M: GuestMemory + ?Sized,
        B: VitsBackend + ?Sized,
    {
        let budget = self.config.max_commands_per_trap;
        let (mut consumed, mut work) = (0, 0usize);
        let mut waiting = false;
        if self.regs.enabled {
            if let Some(InProgress { heavy, offset }) = self.in_progress.take() {
                let (used, rest) = heavy.advance(&mut self.state, backend, budget);
                work = used;
                match rest {
                    Some(heavy) => {
                        self.in_progress = Some(InProgress { heavy, offset });
                        waiting = true;
                    }
                    // A CBASER write (with the ITS disabled) moved CREADR
                    // meanwhile: the command is done but no longer there.
                    None if self.regs.creadr == offset => {
                        self.step_creadr();
                        consumed += 1;
                    }
                    None => {}
                }
            }
        }
        while !waiting && work < budget && self.queue_runnable() {
            let offset = self.regs.creadr;
            let raw = match self.read_command(mem, offset) {
                Ok(raw) => raw,
                Err(reason) => {
                    self.stall_queue(reason);
                    break;
                }
            };
            work += 1;
            match self.run_command(raw, mem, backend) {
                Ok(None) => {}
                Ok(Some(heavy)) => {
                    let left = budget.saturating_sub(work);
                    let (used, rest) = heavy.advance(&mut self.state, backend, left);
                    work = work.saturating_add(used);
                    if let Some(heavy) = rest {
                        self.in_progress = Some(InProgress { heavy, offset });
                        break;
                    }
                }
                Err(Failure::Command(error)) => self.report(offset, raw, error),
                Err(Failure::Stall(reason)) => {
                    self.stall_queue(reason);
                    break;
                }
            }
            self.step_creadr();
            consumed += 1;
        }
        if work > 0 {
            backend.sync();
        }
        self.last_work = work;
        consumed
    }

    /// Moves GITS_CREADR past the command it is on, wrapping at the end of
    /// the queue (IHI 0069, the ITS command interface).
    pub(super) fn step_creadr(&mut self) {
        let next = self.regs.creadr.saturating_add(COMMAND_SIZE);
        self.regs.creadr = if next >= self.regs.queue_size() {
            0
        } else {
            next
        };
    }

    /// Whether there is a command to run and the ITS may run it.
    fn queue_runnable(&self) -> bool {
        self.regs.enabled
            && self.regs.queue_valid()
            && self.regs.stall.is_none()
            && self.regs.creadr != self.regs.cwriter
            && self.regs.creadr < self.regs.queue_size()
            && self.regs.cwriter < self.regs.queue_size()
    }

    /// Reads the 32-byte command at `offset` in the queue.
    fn read_command<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
    ) -> Result<[u64; 4], StallReason> {
        let base = self.regs.queue_base();
        let ipa = base
            .checked_add(offset)
            .ok_or(StallReason::MemoryError { ipa: base })?;
        let mut bytes = [0u8; COMMAND_SIZE as usize];
        mem.read(ipa, &mut bytes)
            .map_err(|_| StallReason::MemoryError { ipa })?;
        let mut raw = [0u64; 4];
        for (word, chunk) in raw.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(chunk);
            *word = u64::from_le_bytes(le);
        }
        Ok(raw)
    }

    /// Decodes and executes one command.
    fn run_command<M, B>(
        &mut self,
        raw: [u64; 4],
        mem: &M,
        backend: &mut B,
    ) -> Result<Option<Heavy>, Failure>
    where
        M: GuestMemory + ?Sized,
        B: VitsBackend + ?Sized,
    {
        let command = match ItsCommand::decode(raw) {
            Ok(command) => command,
            Err(DecodeError::UnknownOpcode(opcode)) => {
                return Err(CommandError::UnknownOpcode { opcode }.into())
            }
        };
        let mut executor = Executor {
            config: &self.config,
            regs: &self.regs,
            state: &mut self.state,
            mem,
            backend,
            mapped_collections: &mut self.mapped_collections,
        };
        executor.execute(command)
    }

    /// Counts a skipped command and logs it, once per command and only for
    /// the first few of each kind.
    fn report(&mut self, offset: u64, raw: [u64; 4], error: CommandError) {
        if self.errors.record_command(&error) {
            let name = ItsCommand::decode(raw).map_or("command", |command| command.name());
            log::warn!(
                "vITS {}.{}: {} at queue offset {:#x} skipped: {} (words {:#x?})",
                self.config.partition.get(),
                self.config.index,
                name,
                offset,
                error,
                raw
            );
        }
    }

    /// Stops the queue (GITS_CREADR.Stalled) until the guest retries.
    fn stall_queue(&mut self, reason: StallReason) {
        if self.errors.record_stall() {
            log::warn!(
                "vITS {}.{}: command queue stalled at offset {:#x}: {:?}",
                self.config.partition.get(),
                self.config.index,
                self.regs.creadr,
                reason
            );
        }
        self.regs.stall = Some(reason);
    }
}
