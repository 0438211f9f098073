//! The virtual ITS: a guest-visible GICv3 ITS with its own translation
//! state, per partition.
//!
//! The guest programs it like hardware: tables and a command queue in its
//! own memory, commands announced through GITS_CWRITER. The vITS reads each
//! command through [`GuestMemory`], validates it against this vITS's own
//! virtual DeviceIDs, EventIDs, INTIDs and collections, updates its
//! [`TranslationState`], and tells a [`VitsBackend`] what it means. Nothing
//! here touches hardware; the backend does.
//!
//! - `regs`: register layouts and the register file;
//! - `queue`: the command queue reader;
//! - `commands`: the twelve GICv3 commands;
//! - `state`: devices, events, collections;
//! - `backend`: the backend trait and a recording backend;
//! - `model`: a reference model backend (software injection, per-vCPU
//!   pending state) that tests, fuzzing and the bench compare against.
#![forbid(unsafe_code)]

mod backend;
mod commands;
mod config;
mod error;
mod heavy;
mod mmio;
mod model;
mod queue;
mod regs;
mod state;

#[cfg(test)]
mod tests;

pub use backend::{BackendAction, EventRef, Progress, RecordingBackend, VitsBackend};
pub use config::{ConfigError, DeviceBacking, VitsConfig};
pub use error::{CommandError, CommandErrorKind, ErrorCounters, StallReason};
pub use model::{CountingModel, ModelBackend, NullBackend};
pub use queue::COMMAND_SIZE;
pub use regs::{offset, AccessWidth, FRAME_SIZE};
pub use state::{Device, DeviceEntry, EventEntry, NoMemory, TranslationState};

use crate::ids::{EventId, VirtDeviceId};
use regs::{Registers, Table};

/// One virtual ITS of a partition.
#[derive(Clone, Debug)]
pub struct Vits {
    config: VitsConfig,
    regs: Registers,
    state: TranslationState,
    errors: ErrorCounters,
    /// Collections mapped now, held against `config.max_collections`.
    mapped_collections: usize,
    /// The command at GITS_CREADR, started and not finished within its
    /// trap's budget.
    in_progress: Option<heavy::InProgress>,
    /// Units of work the last `process_queue` did.
    last_work: usize,
}

/// Why an MSI (a TRANSLATER write or an emulated device) raised nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// GITS_CTLR.Enabled is 0: the ITS ignores TRANSLATER writes.
    Disabled,
    /// The (DeviceID, EventID) pair does not translate.
    Untranslatable(CommandError),
}

impl Vits {
    /// A vITS in its reset state, or why `config` is unusable.
    pub fn new(config: VitsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let state = TranslationState::with_max_events(config.max_events);
        Ok(Self {
            config,
            regs: Registers::new(),
            state,
            errors: ErrorCounters::default(),
            mapped_collections: 0,
            in_progress: None,
            last_work: 0,
        })
    }

    /// The configuration this vITS was built with.
    pub fn config(&self) -> &VitsConfig {
        &self.config
    }

    /// The translation state (read-only).
    pub fn state(&self) -> &TranslationState {
        &self.state
    }

    /// Error counters, by kind.
    pub fn errors(&self) -> &ErrorCounters {
        &self.errors
    }

    /// Why the command queue is stalled, if it is.
    pub fn stall(&self) -> Option<StallReason> {
        self.regs.stall
    }

    /// Whether a command started and waits for later traps to finish it
    /// (GITS_CREADR is on it).
    pub fn command_in_progress(&self) -> bool {
        self.in_progress.is_some()
    }

    /// Units of work (commands, plus events visited or LPIs moved by the
    /// commands that touch many) the last queue processing did: at most
    /// `max_commands_per_trap`.
    pub fn last_work(&self) -> usize {
        self.last_work
    }

    /// Whether the guest enabled the ITS (GITS_CTLR.Enabled).
    pub fn is_enabled(&self) -> bool {
        self.regs.enabled
    }

    /// Delivers an MSI from an emulated device (or a CPU write to
    /// GITS_TRANSLATER): translates (DeviceID, EventID) and makes the LPI
    /// pending on its vCPU. A failed translation is dropped, as the
    /// architecture does with an MSI that does not translate, and counted.
    pub fn send_msi<B: VitsBackend + ?Sized>(
        &mut self,
        device: VirtDeviceId,
        event: EventId,
        backend: &mut B,
    ) -> Result<(), TranslateError> {
        if !self.regs.enabled {
            return Err(TranslateError::Disabled);
        }
        match commands::live_event(&self.config, &self.state, device.get(), event.get()) {
            Ok((event, mapping, vcpu)) => {
                backend.set_pending(event, vcpu, mapping.intid);
                Ok(())
            }
            Err(error) => {
                if self.errors.record_translation() {
                    log::warn!(
                        "vITS {}.{}: MSI dropped: {}",
                        self.config.partition.get(),
                        self.config.index,
                        error
                    );
                }
                Err(TranslateError::Untranslatable(error))
            }
        }
    }

    /// Tears everything down (partition reset or destroy): every live event
    /// is discarded through the backend, then the vITS is as after `new`.
    pub fn reset<B: VitsBackend + ?Sized>(&mut self, backend: &mut B) {
        self.complete_in_progress(backend);
        self.drop_table(Table::Device, backend);
        self.drop_table(Table::Collection, backend);
        backend.sync();
        self.regs = Registers::new();
    }

    /// Finishes the command in progress, whatever it costs (before a
    /// table is dropped or the vITS reset, themselves unbounded), and moves
    /// GITS_CREADR past it.
    fn complete_in_progress<B: VitsBackend + ?Sized>(&mut self, backend: &mut B) {
        if let Some(heavy::InProgress { heavy, offset }) = self.in_progress.take() {
            heavy.complete(&mut self.state, backend);
            if self.regs.creadr == offset {
                self.step_creadr();
            }
        }
    }

    /// Forgets a table whose BASER lost its Valid bit, and what it held.
    fn drop_table<B: VitsBackend + ?Sized>(&mut self, table: Table, backend: &mut B) {
        self.complete_in_progress(backend);
        match table {
            Table::Device => {
                for (device, entry) in self.state.take_devices() {
                    for (event, mapping) in entry.events() {
                        if let Some(vcpu) = self.state.collection(mapping.icid) {
                            let event = EventRef {
                                device,
                                backing: entry.backing,
                                event,
                            };
                            backend.discard_event(event, vcpu, mapping.intid);
                        }
                    }
                }
            }
            Table::Collection => {
                // One pass over the events (in DeviceID, EventID order)
                // instead of one per collection: the table may hold many.
                let taken = self.state.take_collections();
                self.mapped_collections = 0;
                if taken.is_empty() {
                    return;
                }
                for (device, entry) in self.state.devices() {
                    for (event, mapping) in entry.events() {
                        let Ok(at) = taken.binary_search_by_key(&mapping.icid, |&(icid, _)| icid)
                        else {
                            continue;
                        };
                        let Some(&(_, vcpu)) = taken.get(at) else {
                            continue;
                        };
                        let event = EventRef {
                            device,
                            backing: entry.backing,
                            event,
                        };
                        backend.unmap_event(event, vcpu, mapping.intid);
                    }
                }
            }
        }
    }
}
