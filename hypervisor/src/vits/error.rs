//! Command errors of the virtual ITS and the per-vITS counters the
//! hypervisor reads.
//!
//! IHI 0069, 5.3 (command errors) lets an ITS either stall its queue or
//! ignore a faulty command and carry on. The vITS ignores: a bad command is
//! skipped, counted here by kind, logged once, and the queue continues. Only
//! a failure to read guest memory stalls the queue (GITS_CREADR.Stalled).

use core::fmt;

use crate::ids::{EventId, VirtCollectionId, VirtDeviceId};
use crate::mm::Ipa;

/// Why a guest command was skipped, with the IDs it named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// DW0[7:0] names no ITS command.
    UnknownOpcode { opcode: u8 },
    /// A GICv4 command sent to this ITS, which reports GITS_TYPER.Virtual == 0.
    VirtualCommand { opcode: u8 },
    /// DeviceID does not fit GITS_TYPER.Devbits.
    DeviceOutOfRange { device: VirtDeviceId },
    /// DeviceID is beyond the guest's Device table (GITS_BASER<n>), the table
    /// is not valid, or its level-1 entry is not valid.
    DeviceNotInTable { device: VirtDeviceId },
    /// MAPD asked for more EventID bits than GITS_TYPER.ID_bits allows.
    IttTooLarge {
        device: VirtDeviceId,
        event_bits: u8,
    },
    /// The DeviceID has no MAPD mapping.
    DeviceNotMapped { device: VirtDeviceId },
    /// MAPD of a new device while the partition's device cap is reached.
    DeviceLimit { device: VirtDeviceId },
    /// EventID does not fit the device's ITT size.
    EventOutOfRange {
        device: VirtDeviceId,
        event: EventId,
    },
    /// The (DeviceID, EventID) pair has no MAPTI/MAPI mapping.
    EventNotMapped {
        device: VirtDeviceId,
        event: EventId,
    },
    /// MAPTI/MAPI of an event that is already mapped (UNPREDICTABLE in
    /// IHI 0069; this ITS keeps the old mapping and skips the command).
    EventAlreadyMapped {
        device: VirtDeviceId,
        event: EventId,
    },
    /// MAPTI/MAPI while the partition's event cap is reached.
    EventLimit {
        device: VirtDeviceId,
        event: EventId,
    },
    /// The INTID is not an LPI of the guest's range.
    IntIdOutOfRange {
        device: VirtDeviceId,
        event: EventId,
        /// The raw value the guest wrote (not an INTID of the guest).
        intid: u32,
    },
    /// The ICID is beyond the collection ID width or the Collection table.
    CollectionOutOfRange { icid: VirtCollectionId },
    /// The collection has no MAPC mapping.
    CollectionNotMapped { icid: VirtCollectionId },
    /// An RDbase (processor number, GITS_TYPER.PTA == 0) names no vCPU.
    TargetOutOfRange { rdbase: u64 },
    /// MAPC of a new collection while the partition's collection cap is
    /// reached.
    CollectionLimit { icid: VirtCollectionId },
}

/// The kind of a [`CommandError`], without its IDs: the counter index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CommandErrorKind {
    /// See [`CommandError::UnknownOpcode`].
    UnknownOpcode,
    /// See [`CommandError::VirtualCommand`].
    VirtualCommand,
    /// See [`CommandError::DeviceOutOfRange`].
    DeviceOutOfRange,
    /// See [`CommandError::DeviceNotInTable`].
    DeviceNotInTable,
    /// See [`CommandError::IttTooLarge`].
    IttTooLarge,
    /// See [`CommandError::DeviceNotMapped`].
    DeviceNotMapped,
    /// See [`CommandError::DeviceLimit`].
    DeviceLimit,
    /// See [`CommandError::EventOutOfRange`].
    EventOutOfRange,
    /// See [`CommandError::EventNotMapped`].
    EventNotMapped,
    /// See [`CommandError::EventAlreadyMapped`].
    EventAlreadyMapped,
    /// See [`CommandError::EventLimit`].
    EventLimit,
    /// See [`CommandError::IntIdOutOfRange`].
    IntIdOutOfRange,
    /// See [`CommandError::CollectionOutOfRange`].
    CollectionOutOfRange,
    /// See [`CommandError::CollectionNotMapped`].
    CollectionNotMapped,
    /// See [`CommandError::TargetOutOfRange`].
    TargetOutOfRange,
    /// See [`CommandError::CollectionLimit`].
    CollectionLimit,
}

impl CommandErrorKind {
    /// Number of kinds (the length of the counter array).
    pub const COUNT: usize = 16;

    /// Every kind, in counter order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::UnknownOpcode,
        Self::VirtualCommand,
        Self::DeviceOutOfRange,
        Self::DeviceNotInTable,
        Self::IttTooLarge,
        Self::DeviceNotMapped,
        Self::DeviceLimit,
        Self::EventOutOfRange,
        Self::EventNotMapped,
        Self::EventAlreadyMapped,
        Self::EventLimit,
        Self::IntIdOutOfRange,
        Self::CollectionOutOfRange,
        Self::CollectionNotMapped,
        Self::TargetOutOfRange,
        Self::CollectionLimit,
    ];
}

impl CommandError {
    /// The counter this error increments.
    pub const fn kind(&self) -> CommandErrorKind {
        match self {
            Self::UnknownOpcode { .. } => CommandErrorKind::UnknownOpcode,
            Self::VirtualCommand { .. } => CommandErrorKind::VirtualCommand,
            Self::DeviceOutOfRange { .. } => CommandErrorKind::DeviceOutOfRange,
            Self::DeviceNotInTable { .. } => CommandErrorKind::DeviceNotInTable,
            Self::IttTooLarge { .. } => CommandErrorKind::IttTooLarge,
            Self::DeviceNotMapped { .. } => CommandErrorKind::DeviceNotMapped,
            Self::DeviceLimit { .. } => CommandErrorKind::DeviceLimit,
            Self::EventOutOfRange { .. } => CommandErrorKind::EventOutOfRange,
            Self::EventNotMapped { .. } => CommandErrorKind::EventNotMapped,
            Self::EventAlreadyMapped { .. } => CommandErrorKind::EventAlreadyMapped,
            Self::EventLimit { .. } => CommandErrorKind::EventLimit,
            Self::IntIdOutOfRange { .. } => CommandErrorKind::IntIdOutOfRange,
            Self::CollectionOutOfRange { .. } => CommandErrorKind::CollectionOutOfRange,
            Self::CollectionNotMapped { .. } => CommandErrorKind::CollectionNotMapped,
            Self::TargetOutOfRange { .. } => CommandErrorKind::TargetOutOfRange,
            Self::CollectionLimit { .. } => CommandErrorKind::CollectionLimit,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownOpcode { opcode } => write!(f, "unknown command number {opcode:#04x}"),
            Self::VirtualCommand { opcode } => {
                write!(f, "GICv4 command {opcode:#04x} on a GICv3 ITS")
            }
            Self::DeviceOutOfRange { device } => write!(f, "DeviceID {device} exceeds Devbits"),
            Self::DeviceNotInTable { device } => {
                write!(f, "DeviceID {device} not covered by the Device table")
            }
            Self::IttTooLarge { device, event_bits } => {
                write!(
                    f,
                    "DeviceID {device}: {event_bits} EventID bits exceed ID_bits"
                )
            }
            Self::DeviceNotMapped { device } => write!(f, "DeviceID {device} not mapped"),
            Self::DeviceLimit { device } => write!(f, "DeviceID {device}: device cap reached"),
            Self::EventOutOfRange { device, event } => {
                write!(f, "DeviceID {device} EventID {event} exceeds the ITT size")
            }
            Self::EventNotMapped { device, event } => {
                write!(f, "DeviceID {device} EventID {event} not mapped")
            }
            Self::EventAlreadyMapped { device, event } => {
                write!(f, "DeviceID {device} EventID {event} already mapped")
            }
            Self::EventLimit { device, event } => {
                write!(f, "DeviceID {device} EventID {event}: event cap reached")
            }
            Self::IntIdOutOfRange {
                device,
                event,
                intid,
            } => write!(
                f,
                "DeviceID {device} EventID {event}: INTID {intid:#x} is not a guest LPI"
            ),
            Self::CollectionOutOfRange { icid } => write!(f, "ICID {icid} out of range"),
            Self::CollectionNotMapped { icid } => write!(f, "ICID {icid} not mapped"),
            Self::TargetOutOfRange { rdbase } => {
                write!(f, "RDbase {rdbase:#x} names no vCPU")
            }
            Self::CollectionLimit { icid } => write!(f, "ICID {icid}: collection cap reached"),
        }
    }
}

/// Why the command queue stopped (GITS_CREADR.Stalled == 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallReason {
    /// Reading guest memory at `ipa` failed (the command, or a table entry).
    MemoryError { ipa: Ipa },
}

/// How many errors of each kind one vITS has seen, for the hypervisor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounters {
    commands: [u64; CommandErrorKind::COUNT],
    stalls: u64,
    translations: u64,
    bad_register_writes: u64,
}

/// Errors of one kind logged before the log goes quiet for that kind, so a
/// guest writing garbage cannot flood the console.
const LOG_LIMIT_PER_KIND: u64 = 16;

impl ErrorCounters {
    /// Skipped commands of `kind`.
    pub fn commands(&self, kind: CommandErrorKind) -> u64 {
        self.commands[kind as usize]
    }

    /// Skipped commands of every kind.
    pub fn total_commands(&self) -> u64 {
        self.commands
            .iter()
            .fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// Times the queue stalled on a guest memory error.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// MSIs (TRANSLATER writes, emulated devices) that did not translate.
    pub fn translations(&self) -> u64 {
        self.translations
    }

    /// Register writes refused (CWRITER beyond the queue, and the like).
    pub fn bad_register_writes(&self) -> u64 {
        self.bad_register_writes
    }

    /// Counts `error` and returns whether it should still be logged.
    pub(super) fn record_command(&mut self, error: &CommandError) -> bool {
        let slot = &mut self.commands[error.kind() as usize];
        *slot = slot.saturating_add(1);
        *slot <= LOG_LIMIT_PER_KIND
    }

    /// Counts a stall and returns whether it should still be logged.
    pub(super) fn record_stall(&mut self) -> bool {
        self.stalls = self.stalls.saturating_add(1);
        self.stalls <= LOG_LIMIT_PER_KIND
    }

    /// Counts a failed translation and returns whether to log it.
    pub(super) fn record_translation(&mut self) -> bool {
        self.translations = self.translations.saturating_add(1);
        self.translations <= LOG_LIMIT_PER_KIND
    }

    /// Counts a refused register write and returns whether to log it.
    pub(super) fn record_register(&mut self) -> bool {
        self.bad_register_writes = self.bad_register_writes.saturating_add(1);
        self.bad_register_writes <= LOG_LIMIT_PER_KIND
    }
}
