//! A private decoder for the twelve GICv3 physical ITS commands
//! (IHI 0069, 5.3), used until the shared codec in `gic::its_cmd` lands.
//!
//! It produces the shared [`ItsCommand`] type with the same field
//! conventions as that codec (RDbase holds the field DW[51:16] shifted
//! down, `itt_addr` keeps its bit positions), so swapping it for
//! `ItsCommand::decode` changes nothing downstream.

use crate::gic::its_cmd::{ItsCommand, RdBase};

/// What a command number is, as far as a GICv3 ITS is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    /// One of the twelve GICv3 commands.
    Command(ItsCommand),
    /// A GICv4 command number (0x20..=0x2F range of IHI 0069, 5.3).
    Virtual(u8),
    /// A number that names no command.
    Unknown(u8),
}

/// Field `[hi:lo]` of `word`, shifted down.
const fn field(word: u64, hi: u32, lo: u32) -> u64 {
    (word >> lo) & (u64::MAX >> (63 - (hi - lo)))
}

/// Decodes one 32-byte command. Total: RES0 bits are ignored as an ITS does.
pub(super) fn decode(raw: [u64; 4]) -> Decoded {
    let [dw0, dw1, dw2, dw3] = raw;
    let device_id = field(dw0, 63, 32) as u32;
    let event_id = field(dw1, 31, 0) as u32;
    let icid = field(dw2, 15, 0) as u16;
    let valid = field(dw2, 63, 63) != 0;
    let opcode = field(dw0, 7, 0) as u8;
    let command = match opcode {
        0x08 => ItsCommand::Mapd {
            device_id,
            size: field(dw1, 4, 0) as u8,
            itt_addr: dw2 & (field(u64::MAX, 43, 0) << 8),
            valid,
        },
        0x09 => ItsCommand::Mapc {
            icid,
            rdbase: RdBase(field(dw2, 51, 16)),
            valid,
        },
        0x0A => ItsCommand::Mapti {
            device_id,
            event_id,
            intid: field(dw1, 63, 32) as u32,
            icid,
        },
        0x0B => ItsCommand::Mapi {
            device_id,
            event_id,
            icid,
        },
        0x03 => ItsCommand::Int {
            device_id,
            event_id,
        },
        0x04 => ItsCommand::Clear {
            device_id,
            event_id,
        },
        0x0F => ItsCommand::Discard {
            device_id,
            event_id,
        },
        0x0C => ItsCommand::Inv {
            device_id,
            event_id,
        },
        0x0D => ItsCommand::Invall { icid },
        0x01 => ItsCommand::Movi {
            device_id,
            event_id,
            icid,
        },
        0x0E => ItsCommand::Movall {
            rdbase1: RdBase(field(dw2, 51, 16)),
            rdbase2: RdBase(field(dw3, 51, 16)),
        },
        0x05 => ItsCommand::Sync {
            rdbase: RdBase(field(dw2, 51, 16)),
        },
        0x21 | 0x22 | 0x23 | 0x25 | 0x29 | 0x2A | 0x2B | 0x2D | 0x2E => {
            return Decoded::Virtual(opcode)
        }
        other => return Decoded::Unknown(other),
    };
    Decoded::Command(command)
}
