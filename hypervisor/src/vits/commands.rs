//! The twelve GICv3 ITS commands (IHI 0069, 5.3), executed against the
//! vITS translation state. Each command is fully validated before it
//! changes anything; then the state changes and the backend is told, in
//! that order, so a skipped command leaves no trace but its counter.

use super::backend::{EventRef, VitsBackend};
use super::config::VitsConfig;
use super::error::{CommandError, StallReason};
use super::heavy::{Change, Heavy};
use super::regs::Registers;
use super::state::{Device, EventEntry, TranslationState};
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::guest_mem::GuestMemory;
use crate::ids::{EventId, VcpuIndex, VirtCollectionId, VirtDeviceId};
use crate::mm::Ipa;

/// Why a command did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// Skip the command and carry on.
    Command(CommandError),
    /// Stop the queue at this command (GITS_CREADR.Stalled).
    Stall(StallReason),
}

impl From<CommandError> for Failure {
    fn from(error: CommandError) -> Self {
        Self::Command(error)
    }
}

/// Everything one command may read or change.
pub(super) struct Executor<'a, M: ?Sized, B: ?Sized> {
    /// The partition's choices for this vITS.
    pub config: &'a VitsConfig,
    /// The registers (for the guest's table geometry).
    pub regs: &'a Registers,
    /// The translation state the command changes.
    pub state: &'a mut TranslationState,
    /// Guest memory (for level-1 Device table entries).
    pub mem: &'a M,
    /// Where the command's effect goes.
    pub backend: &'a mut B,
    /// Collections mapped now (held against `config.max_collections`).
    pub mapped_collections: &'a mut usize,
}

impl<M: GuestMemory + ?Sized, B: VitsBackend + ?Sized> Executor<'_, M, B> {
    /// Runs one decoded command; a command whose work grows with the
    /// events (MAPC, MAPD of a mapped device, MOVALL, INVALL) returns what
    /// it still owes the backend, for [`Heavy::advance`] to do within the
    /// trap's budget.
    pub(super) fn execute(&mut self, command: ItsCommand) -> Result<Option<Heavy>, Failure> {
        match command {
            ItsCommand::Mapd {
                device_id,
                size,
                itt_addr,
                valid,
            } => self.mapd(
                device_id_of(self.config, device_id)?,
                size,
                Ipa(itt_addr),
                valid,
            ),
            ItsCommand::Mapc {
                icid,
                rdbase,
                valid,
            } => Ok(self.mapc(self.collection_id(icid)?, rdbase, valid)?),
            ItsCommand::Mapti {
                device_id,
                event_id,
                intid,
                icid,
            } => light(self.mapti(device_id, event_id, intid, icid)),
            // IHI 0069, 5.3 (MAPI): MAPI is MAPTI with the INTID equal to the EventID.
            ItsCommand::Mapi {
                device_id,
                event_id,
                icid,
            } => light(self.mapti(device_id, event_id, event_id, icid)),
            ItsCommand::Int {
                device_id,
                event_id,
            } => light(self.int(device_id, event_id)),
            ItsCommand::Clear {
                device_id,
                event_id,
            } => light(self.clear(device_id, event_id)),
            ItsCommand::Discard {
                device_id,
                event_id,
            } => light(self.discard(device_id, event_id)),
            ItsCommand::Inv {
                device_id,
                event_id,
            } => light(self.inv(device_id, event_id)),
            ItsCommand::Invall { icid } => Ok(self.invall(self.collection_id(icid)?)?),
            ItsCommand::Movi {
                device_id,
                event_id,
                icid,
            } => light(self.movi(device_id, event_id, icid)),
            ItsCommand::Movall { rdbase1, rdbase2 } => Ok(self.movall(rdbase1, rdbase2)?),
            // IHI 0069, 5.3 (SYNC): SYNC waits for earlier commands' effects on
            // one redistributor. Backend calls are ordered, a heavy command
            // ahead of it holds GITS_CREADR until it is done, and the batch
            // ends with one backend sync before the guest sees CREADR move
            // past this SYNC, so only the target needs checking.
            ItsCommand::Sync { rdbase } => light(vcpu_of(self.config, rdbase).map(|_| ())),
            // GITS_TYPER.Virtual == 0: the GICv4 commands do not exist here.
            other => Err(CommandError::VirtualCommand {
                opcode: other.opcode(),
            }
            .into()),
        }
    }

    /// MAPD (IHI 0069, 5.3): map a DeviceID to an ITT, or unmap it.
    fn mapd(
        &mut self,
        device: VirtDeviceId,
        size: u8,
        itt_addr: Ipa,
        valid: bool,
    ) -> Result<Option<Heavy>, Failure> {
        if !self
            .regs
            .device_in_table(device.get(), self.mem)
            .map_err(Failure::Stall)?
        {
            return Err(CommandError::DeviceNotInTable { device }.into());
        }
        // Size holds the number of EventID bits minus one.
        let event_bits = size.saturating_add(1);
        if valid && event_bits > self.config.event_id_bits {
            return Err(CommandError::IttTooLarge { device, event_bits }.into());
        }
        let remapping = self.state.device(device).is_some();
        if valid && !remapping && self.state.device_count() >= self.config.max_devices {
            return Err(CommandError::DeviceLimit { device }.into());
        }
        let remap = valid.then(|| (self.config.backing(device), event_bits, itt_addr));
        // Unmapping, or remapping, a device with live events is
        // UNPREDICTABLE; this ITS drops them like DISCARD would, so no
        // stale translation or pending state survives the old ITT. They
        // are discarded (and the device unmapped, and remapped) within the
        // budget.
        if self
            .state
            .device(device)
            .is_some_and(|d| d.event_count() > 0)
        {
            return Ok(Some(Heavy::Device {
                device,
                next: EventId::new(0),
                remap,
            }));
        }
        self.state.remove_device(device);
        if let Some((backing, event_bits, itt_addr)) = remap {
            // No heap for the device: skipped and counted like the cap.
            self.state
                .insert_device(device, backing, event_bits, itt_addr)
                .map_err(|_| CommandError::DeviceLimit { device })?;
        }
        Ok(None)
    }

    /// MAPC (IHI 0069, 5.3): map a collection to a vCPU, retarget it, or
    /// unmap it.
    fn mapc(
        &mut self,
        icid: VirtCollectionId,
        rdbase: RdBase,
        valid: bool,
    ) -> Result<Option<Heavy>, CommandError> {
        if !valid {
            let Some(old) = self.state.unmap_collection(icid) else {
                return Ok(None);
            };
            *self.mapped_collections = self.mapped_collections.saturating_sub(1);
            return Ok(self.collection_walk(icid, Change::Unmap(old)));
        }
        let vcpu = vcpu_of(self.config, rdbase)?;
        // The cap bounds the collection state (and the work of dropping the
        // Collection table) whatever ICID width the guest is offered.
        let new = self.state.collection(icid).is_none();
        if new && *self.mapped_collections >= self.config.max_collections {
            return Err(CommandError::CollectionLimit { icid });
        }
        // The collection targets `vcpu` from now on (an MSI of one of its
        // events goes there); the backend hears of its events within the
        // budget. No heap for the collection: skipped and counted like the
        // cap.
        let old = self
            .state
            .map_collection(icid, vcpu)
            .map_err(|_| CommandError::CollectionLimit { icid })?;
        match old {
            None => {
                *self.mapped_collections = self.mapped_collections.saturating_add(1);
                Ok(self.collection_walk(icid, Change::Map(vcpu)))
            }
            Some(old) if old != vcpu => Ok(self.collection_walk(
                icid,
                Change::Retarget {
                    from: old,
                    to: vcpu,
                },
            )),
            Some(_) => Ok(None),
        }
    }

    /// The walk over the events naming `icid`, if any does.
    fn collection_walk(&self, icid: VirtCollectionId, change: Change) -> Option<Heavy> {
        let left = self.state.collection_event_count(icid);
        (left > 0).then_some(Heavy::Collection {
            icid,
            change,
            next: (VirtDeviceId::new(0), EventId::new(0)),
            left,
        })
    }

    /// MAPTI and MAPI (IHI 0069, 5.3): map an event to an LPI and a
    /// collection.
    fn mapti(
        &mut self,
        device_id: u32,
        event_id: u32,
        intid: u32,
        icid: u16,
    ) -> Result<(), CommandError> {
        let (device, entry) = mapped_device(self.config, self.state, device_id)?;
        let event = event_id_of(device, entry, event_id)?;
        let backing = entry.backing;
        let Some(intid) = self.config.guest_lpi(intid) else {
            return Err(CommandError::IntIdOutOfRange {
                device,
                event,
                intid,
            });
        };
        let icid = self.collection_id(icid)?;
        if entry.event(event).is_some() {
            return Err(CommandError::EventAlreadyMapped { device, event });
        }
        if self.state.event_count() >= self.config.max_events {
            return Err(CommandError::EventLimit { device, event });
        }
        let mapping = EventEntry { intid, icid };
        // No heap for the event: skipped and counted like the cap.
        self.state
            .insert_event(device, event, mapping)
            .map_err(|_| CommandError::EventLimit { device, event })?;
        // An event whose collection is not mapped yet translates to
        // nothing; MAPC of that collection makes it live later.
        if let Some(vcpu) = self.state.collection(icid) {
            let event = EventRef {
                device,
                backing,
                event,
            };
            self.backend.map_event(event, vcpu, mapping.intid);
        }
        Ok(())
    }

    /// INT (IHI 0069, 5.3): make the event's LPI pending.
    fn int(&mut self, device_id: u32, event_id: u32) -> Result<(), CommandError> {
        let (event, mapping, vcpu) = live_event(self.config, self.state, device_id, event_id)?;
        self.backend.set_pending(event, vcpu, mapping.intid);
        Ok(())
    }

    /// CLEAR (IHI 0069, 5.3): clear the event's LPI pending state.
    fn clear(&mut self, device_id: u32, event_id: u32) -> Result<(), CommandError> {
        let (event, mapping, vcpu) = live_event(self.config, self.state, device_id, event_id)?;
        self.backend.clear_pending(event, vcpu, mapping.intid);
        Ok(())
    }

    /// DISCARD (IHI 0069, 5.3): clear pending state and unmap the event.
    fn discard(&mut self, device_id: u32, event_id: u32) -> Result<(), CommandError> {
        let (event, mapping, vcpu) = live_event(self.config, self.state, device_id, event_id)?;
        self.state.remove_event(event.device, event.event);
        self.backend.discard_event(event, vcpu, mapping.intid);
        Ok(())
    }

    /// INV (IHI 0069, 5.3): reload the event's LPI configuration.
    fn inv(&mut self, device_id: u32, event_id: u32) -> Result<(), CommandError> {
        let (event, mapping, vcpu) = live_event(self.config, self.state, device_id, event_id)?;
        self.backend.reload_config(event, vcpu, mapping.intid);
        Ok(())
    }

    /// INVALL (IHI 0069, 5.3): reload the configuration of every LPI of
    /// the collection's vCPU.
    fn invall(&mut self, icid: VirtCollectionId) -> Result<Option<Heavy>, CommandError> {
        let vcpu = target(self.state, icid)?;
        Ok(Some(Heavy::InvalidateAll { vcpu }))
    }

    /// MOVI (IHI 0069, 5.3): move the event to another collection; its
    /// pending state moves with it.
    fn movi(&mut self, device_id: u32, event_id: u32, icid: u16) -> Result<(), CommandError> {
        let (event, mapping, from) = live_event(self.config, self.state, device_id, event_id)?;
        let icid = self.collection_id(icid)?;
        let to = target(self.state, icid)?;
        self.state
            .set_event_collection(event.device, event.event, icid);
        if from != to {
            self.backend.move_event(event, from, to, mapping.intid);
        }
        Ok(())
    }

    /// MOVALL (IHI 0069, 5.3): move every LPI pending on one vCPU to
    /// another. Mappings are untouched: MAPC retargets those.
    fn movall(&mut self, rdbase1: RdBase, rdbase2: RdBase) -> Result<Option<Heavy>, CommandError> {
        let from = vcpu_of(self.config, rdbase1)?;
        let to = vcpu_of(self.config, rdbase2)?;
        Ok((from != to).then_some(Heavy::MoveAll { from, to }))
    }
}

impl<M: ?Sized, B: ?Sized> Executor<'_, M, B> {
    /// The guest's ICID as a collection ID, if it is below the collection
    /// count: within GITS_TYPER.CIDbits and the Collection table the guest
    /// gave (IHI 0069, 5.3: an ICID beyond either is a command error).
    fn collection_id(&self, raw: u16) -> Result<VirtCollectionId, CommandError> {
        VirtCollectionId::new_within_bits(raw, self.config.collection_id_bits)
            .filter(|icid| self.regs.collection_in_table(icid.get(), self.config))
            .ok_or(CommandError::CollectionOutOfRange {
                icid: VirtCollectionId::new(raw),
            })
    }
}

/// The guest's DeviceID as a device ID, if it fits the vITS's DeviceID
/// width (GITS_TYPER.Devbits + 1).
fn device_id_of(config: &VitsConfig, raw: u32) -> Result<VirtDeviceId, CommandError> {
    VirtDeviceId::new_within_bits(raw, config.device_id_bits).ok_or(
        CommandError::DeviceOutOfRange {
            device: VirtDeviceId::new(raw),
        },
    )
}

/// The guest's EventID as an event ID of `device`, if it fits the ITT
/// size its MAPD gave (Size + 1 EventID bits).
fn event_id_of(device: VirtDeviceId, entry: Device<'_>, raw: u32) -> Result<EventId, CommandError> {
    EventId::new_within_bits(raw, entry.event_bits).ok_or(CommandError::EventOutOfRange {
        device,
        event: EventId::new(raw),
    })
}

/// The mapped device the guest's DeviceID names, after the range check.
fn mapped_device<'s>(
    config: &VitsConfig,
    state: &'s TranslationState,
    raw: u32,
) -> Result<(VirtDeviceId, Device<'s>), CommandError> {
    let device = device_id_of(config, raw)?;
    let entry = state
        .device(device)
        .ok_or(CommandError::DeviceNotMapped { device })?;
    Ok((device, entry))
}

/// The vCPU a mapped collection targets.
fn target(state: &TranslationState, icid: VirtCollectionId) -> Result<VcpuIndex, CommandError> {
    state
        .collection(icid)
        .ok_or(CommandError::CollectionNotMapped { icid })
}

/// A mapped event whose collection is mapped, with its target vCPU: what
/// INT, CLEAR, DISCARD, INV, MOVI and an incoming MSI all need.
pub(super) fn live_event(
    config: &VitsConfig,
    state: &TranslationState,
    device_id: u32,
    event_id: u32,
) -> Result<(EventRef, EventEntry, VcpuIndex), CommandError> {
    let (device, entry) = mapped_device(config, state, device_id)?;
    let event = event_id_of(device, entry, event_id)?;
    let backing = entry.backing;
    let mapping = entry
        .event(event)
        .ok_or(CommandError::EventNotMapped { device, event })?;
    let vcpu = target(state, mapping.icid)?;
    let event = EventRef {
        device,
        backing,
        event,
    };
    Ok((event, mapping, vcpu))
}

/// A command that is done when it returns.
fn light(result: Result<(), CommandError>) -> Result<Option<Heavy>, Failure> {
    result.map(|()| None).map_err(Failure::Command)
}

/// The vCPU an RDbase names: with GITS_TYPER.PTA == 0 it is a processor
/// number, which the vGIC makes equal to the vCPU index.
fn vcpu_of(config: &VitsConfig, rdbase: RdBase) -> Result<VcpuIndex, CommandError> {
    match u16::try_from(rdbase.0) {
        Ok(index) if index < config.num_vcpus => Ok(VcpuIndex::new(index)),
        _ => Err(CommandError::TargetOutOfRange { rdbase: rdbase.0 }),
    }
}
