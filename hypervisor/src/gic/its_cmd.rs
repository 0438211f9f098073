//! The 32-byte ITS command format (IHI 0069, 5.3 "ITS commands"), for every
//! GICv3, GICv4.0 and GICv4.1 command.
//!
//! The same codec decodes what a guest writes into its virtual ITS queue
//! (untrusted: every field is range-checked by the caller) and encodes what
//! the hypervisor writes into the physical queue.

use core::fmt;

use crate::mm::addr::PhysAddr;

/// Where a command sends its effect: a redistributor, named either by its
/// processor number (GITS_TYPER.PTA == 0) or by its physical address
/// (PTA == 1, the address's bits [51:16]). The codec carries the raw field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdBase(pub u64);

/// One decoded ITS command. Field names follow the specification's
/// mnemonics. `size` fields hold the architectural encoding (number of
/// bits minus one for MAPD, as written in the command).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItsCommand {
    // GICv3 physical commands
    /// MAPD: map DeviceID to an ITT (`valid == false` unmaps).
    Mapd {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// Size, DW1[4:0]: EventID bits of the ITT, minus one.
        size: u8,
        /// ITT address (256-byte aligned), bits [51:8] kept in place in DW2.
        itt_addr: u64,
        /// V, DW2[63]: map (1) or unmap (0).
        valid: bool,
    },
    /// MAPC: map a collection to a redistributor (`valid == false` unmaps).
    Mapc {
        /// ICID (collection), DW2[15:0].
        icid: u16,
        /// Target redistributor, DW2[51:16].
        rdbase: RdBase,
        /// V, DW2[63]: map (1) or unmap (0).
        valid: bool,
    },
    /// MAPTI: map (DeviceID, EventID) to an INTID and collection.
    Mapti {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
        /// pINTID, DW1[63:32].
        intid: u32,
        /// ICID (collection), DW2[15:0].
        icid: u16,
    },
    /// MAPI: MAPTI with INTID == EventID.
    Mapi {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
        /// ICID (collection), DW2[15:0].
        icid: u16,
    },
    /// INT: make the event's interrupt pending.
    Int {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
    },
    /// CLEAR: clear the event's pending state.
    Clear {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
    },
    /// DISCARD: clear pending state and remove the mapping.
    Discard {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
    },
    /// INV: reload the configuration of the event's interrupt.
    Inv {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
    },
    /// INVALL: reload configuration of every interrupt of a collection.
    Invall {
        /// ICID (collection), DW2[15:0].
        icid: u16,
    },
    /// MOVI: retarget the event to another collection.
    Movi {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
        /// ICID (collection), DW2[15:0].
        icid: u16,
    },
    /// MOVALL: move all pending interrupts from one redistributor to another.
    Movall {
        /// Source redistributor, DW2[51:16].
        rdbase1: RdBase,
        /// Destination redistributor, DW3[51:16].
        rdbase2: RdBase,
    },
    /// SYNC: wait for the effects of earlier commands on a redistributor.
    Sync {
        /// Target redistributor, DW2[51:16].
        rdbase: RdBase,
    },

    // GICv4.0 virtual commands
    /// VMAPP (GICv4.0 layout): map a vPE to a redistributor and its virtual pending table.
    Vmapp {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// Target redistributor, DW2[51:16].
        rdbase: RdBase,
        /// Virtual pending table address (64 KiB aligned), DW3[51:16] in place.
        vpt_addr: u64,
        /// VPT_size, DW3[4:0]: vINTID bits of the table, minus one.
        vpt_size: u8,
        /// V, DW2[63]: map (1) or unmap (0).
        valid: bool,
    },
    /// VMAPTI: map (DeviceID, EventID) to a vINTID on a vPE, with a doorbell pINTID (1023: none).
    Vmapti {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// vINTID, DW2[31:0].
        vintid: u32,
        /// Dbell_pINTID, DW2[63:32] (1023: no doorbell).
        db_intid: u32,
    },
    /// VMAPI: VMAPTI with vINTID == EventID.
    Vmapi {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// Dbell_pINTID, DW2[63:32] (1023: no doorbell).
        db_intid: u32,
    },
    /// VMOVI: retarget an event to another vPE (`db_valid`: the D bit).
    Vmovi {
        /// DeviceID, DW0[63:32].
        device_id: u32,
        /// EventID, DW1[31:0].
        event_id: u32,
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// Dbell_pINTID, DW2[63:32] (1023: no doorbell).
        db_intid: u32,
        /// D, DW2[0]: Dbell_pINTID is valid.
        db_valid: bool,
    },
    /// VMOVP (GICv4.0 layout): move a vPE to another redistributor.
    Vmovp {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// Target redistributor, DW2[51:16].
        rdbase: RdBase,
        /// SequenceNumber, DW0[47:32] (unused when GITS_TYPER.VMOVP == 1).
        seq_num: u16,
        /// ITSList, DW1[15:0] (unused when GITS_TYPER.VMOVP == 1).
        its_list: u16,
    },
    /// VSYNC: wait for the effects of earlier commands on a vPE.
    Vsync {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
    },
    /// VINVALL: reload configuration of every vLPI of a vPE.
    Vinvall {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
    },

    // GICv4.1 layouts and commands
    /// VMAPP (GICv4.1 layout).
    Vmapp41 {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// Target redistributor, DW2[51:16].
        rdbase: RdBase,
        /// Virtual pending table address (64 KiB aligned), DW3[51:16] in place.
        vpt_addr: u64,
        /// VPT_size, DW3[7:0]: vINTID bits of the table, minus one.
        vpt_size: u8,
        /// VCONF_addr: vLPI configuration table (64 KiB aligned), DW0[51:16] in place.
        vconf_addr: u64,
        /// Default_Doorbell pINTID, DW1[31:0] (1023: none).
        default_db: u32,
        /// PTZ, DW0[9]: the virtual pending table is all zeros.
        ptz: bool,
        /// Alloc, DW0[8]: first map / last unmap of the vPE across ITSs.
        alloc: bool,
        /// V, DW2[63]: map (1) or unmap (0).
        valid: bool,
    },
    /// VMOVP (GICv4.1 layout), with the default doorbell.
    Vmovp41 {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// Target redistributor, DW2[51:16].
        rdbase: RdBase,
        /// SequenceNumber, DW0[47:32] (unused when GITS_TYPER.VMOVP == 1).
        seq_num: u16,
        /// ITSList, DW1[15:0] (unused when GITS_TYPER.VMOVP == 1).
        its_list: u16,
        /// Default_Doorbell pINTID, DW3[31:0].
        default_db: u32,
        /// DB, DW2[63]: Default_Doorbell is valid.
        db_valid: bool,
    },
    /// VSGI: configure a virtual SGI of a vPE.
    Vsgi {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
        /// vINTID of the SGI (0-15), DW0[35:32].
        sgi: u8,
        /// Priority; only bits [7:4] are encoded, in DW0[23:20].
        priority: u8,
        /// Group, DW0[10].
        group: bool,
        /// Enable, DW0[8].
        enable: bool,
        /// Clear, DW0[9]: clear the pending state.
        clear: bool,
    },
    /// INVDB: invalidate the cached doorbell of a vPE.
    Invdb {
        /// vPEID, DW1[47:32].
        vpe_id: u16,
    },
}

/// Why 32 bytes did not decode into a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The command number in DW0[7:0] names no command.
    UnknownOpcode(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOpcode(op) => write!(f, "unknown ITS command number {op:#04x}"),
        }
    }
}

/// ITS command numbers, DW0[7:0] (IHI 0069, 5.3: one subsection per command,
/// in alphabetical order).
pub mod opcode {
    /// MOVI.
    pub const MOVI: u8 = 0x01;
    /// INT.
    pub const INT: u8 = 0x03;
    /// CLEAR.
    pub const CLEAR: u8 = 0x04;
    /// SYNC.
    pub const SYNC: u8 = 0x05;
    /// MAPD.
    pub const MAPD: u8 = 0x08;
    /// MAPC.
    pub const MAPC: u8 = 0x09;
    /// MAPTI.
    pub const MAPTI: u8 = 0x0A;
    /// MAPI.
    pub const MAPI: u8 = 0x0B;
    /// INV.
    pub const INV: u8 = 0x0C;
    /// INVALL.
    pub const INVALL: u8 = 0x0D;
    /// MOVALL.
    pub const MOVALL: u8 = 0x0E;
    /// DISCARD.
    pub const DISCARD: u8 = 0x0F;
    /// VMOVI (GICv4).
    pub const VMOVI: u8 = 0x21;
    /// VMOVP (GICv4).
    pub const VMOVP: u8 = 0x22;
    /// VSGI (GICv4.1).
    pub const VSGI: u8 = 0x23;
    /// VSYNC (GICv4).
    pub const VSYNC: u8 = 0x25;
    /// VMAPP (GICv4).
    pub const VMAPP: u8 = 0x29;
    /// VMAPTI (GICv4).
    pub const VMAPTI: u8 = 0x2A;
    /// VMAPI (GICv4).
    pub const VMAPI: u8 = 0x2B;
    /// VINVALL (GICv4).
    pub const VINVALL: u8 = 0x2D;
    /// INVDB (GICv4.1).
    pub const INVDB: u8 = 0x2E;
}

/// The doorbell pINTID meaning "no doorbell" in VMAPTI, VMAPI and VMOVI
/// (IHI 0069, 5.3: Dbell_pINTID == 1023 generates no physical interrupt).
pub const NO_DOORBELL: u32 = 1023;

/// Width of an RDbase field, DW[51:16] (IHI 0069, 5.3, MAPC).
const RDBASE_BITS: u32 = 36;

impl RdBase {
    /// The processor-number form, used when GITS_TYPER.PTA == 0.
    pub const fn processor(number: u16) -> Self {
        Self(number as u64)
    }

    /// The address form (GITS_TYPER.PTA == 1): the redistributor's
    /// physical address, which must be 64 KiB aligned and below 2^52.
    pub fn from_address(addr: PhysAddr) -> Option<Self> {
        if addr.is_aligned(1 << 16) && addr.raw() >> 52 == 0 {
            Some(Self(addr.raw() >> 16))
        } else {
            None
        }
    }

    /// The redistributor address this field names, in the PTA == 1 form.
    pub const fn address(self) -> PhysAddr {
        PhysAddr((self.0 & low_mask(RDBASE_BITS)) << 16)
    }
}

impl ItsCommand {
    /// The command number written to DW0[7:0].
    pub const fn opcode(&self) -> u8 {
        match self {
            Self::Mapd { .. } => opcode::MAPD,
            Self::Mapc { .. } => opcode::MAPC,
            Self::Mapti { .. } => opcode::MAPTI,
            Self::Mapi { .. } => opcode::MAPI,
            Self::Int { .. } => opcode::INT,
            Self::Clear { .. } => opcode::CLEAR,
            Self::Discard { .. } => opcode::DISCARD,
            Self::Inv { .. } => opcode::INV,
            Self::Invall { .. } => opcode::INVALL,
            Self::Movi { .. } => opcode::MOVI,
            Self::Movall { .. } => opcode::MOVALL,
            Self::Sync { .. } => opcode::SYNC,
            Self::Vmapp { .. } | Self::Vmapp41 { .. } => opcode::VMAPP,
            Self::Vmapti { .. } => opcode::VMAPTI,
            Self::Vmapi { .. } => opcode::VMAPI,
            Self::Vmovi { .. } => opcode::VMOVI,
            Self::Vmovp { .. } | Self::Vmovp41 { .. } => opcode::VMOVP,
            Self::Vsync { .. } => opcode::VSYNC,
            Self::Vinvall { .. } => opcode::VINVALL,
            Self::Vsgi { .. } => opcode::VSGI,
            Self::Invdb { .. } => opcode::INVDB,
        }
    }

    /// The specification's name of the command, for logs.
    pub const fn name(&self) -> &'static str {
        match opcode_name(self.opcode()) {
            Some(name) => name,
            None => "?",
        }
    }

    /// Whether this is a SYNC or VSYNC, the commands that wait for the
    /// effects of the commands before them (IHI 0069, 5.3, SYNC and VSYNC).
    pub const fn is_sync(&self) -> bool {
        matches!(self, Self::Sync { .. } | Self::Vsync { .. })
    }

    /// The 32-byte encoding, as four little-endian doublewords DW0..DW3.
    /// Every field is masked to its architectural width; RES0 bits are 0.
    pub const fn encode(&self) -> [u64; 4] {
        let op = self.opcode() as u64;
        match *self {
            Self::Mapd {
                device_id,
                size,
                itt_addr,
                valid,
            } => [
                op | dev(device_id),
                put(size as u64, 4, 0),
                (itt_addr & bits(51, 8)) | put(valid as u64, 63, 63),
                0,
            ],
            Self::Mapc {
                icid,
                rdbase,
                valid,
            } => [
                op,
                0,
                icid as u64 | rd(rdbase) | put(valid as u64, 63, 63),
                0,
            ],
            Self::Mapti {
                device_id,
                event_id,
                intid,
                icid,
            } => [
                op | dev(device_id),
                event_id as u64 | put(intid as u64, 63, 32),
                icid as u64,
                0,
            ],
            Self::Mapi {
                device_id,
                event_id,
                icid,
            } => [op | dev(device_id), event_id as u64, icid as u64, 0],
            Self::Int {
                device_id,
                event_id,
            }
            | Self::Clear {
                device_id,
                event_id,
            }
            | Self::Discard {
                device_id,
                event_id,
            }
            | Self::Inv {
                device_id,
                event_id,
            } => [op | dev(device_id), event_id as u64, 0, 0],
            Self::Invall { icid } => [op, 0, icid as u64, 0],
            Self::Movi {
                device_id,
                event_id,
                icid,
            } => [op | dev(device_id), event_id as u64, icid as u64, 0],
            Self::Movall { rdbase1, rdbase2 } => [op, 0, rd(rdbase1), rd(rdbase2)],
            Self::Sync { rdbase } => [op, 0, rd(rdbase), 0],
            Self::Vmapp {
                vpe_id,
                rdbase,
                vpt_addr,
                vpt_size,
                valid,
            } => [
                op,
                vpe(vpe_id),
                rd(rdbase) | put(valid as u64, 63, 63),
                (vpt_addr & bits(51, 16)) | put(vpt_size as u64, 4, 0),
            ],
            Self::Vmapti {
                device_id,
                event_id,
                vpe_id,
                vintid,
                db_intid,
            } => [
                op | dev(device_id),
                event_id as u64 | vpe(vpe_id),
                vintid as u64 | put(db_intid as u64, 63, 32),
                0,
            ],
            Self::Vmapi {
                device_id,
                event_id,
                vpe_id,
                db_intid,
            } => [
                op | dev(device_id),
                event_id as u64 | vpe(vpe_id),
                put(db_intid as u64, 63, 32),
                0,
            ],
            Self::Vmovi {
                device_id,
                event_id,
                vpe_id,
                db_intid,
                db_valid,
            } => [
                op | dev(device_id),
                event_id as u64 | vpe(vpe_id),
                db_valid as u64 | put(db_intid as u64, 63, 32),
                0,
            ],
            Self::Vmovp {
                vpe_id,
                rdbase,
                seq_num,
                its_list,
            } => [
                op | put(seq_num as u64, 47, 32),
                its_list as u64 | vpe(vpe_id),
                rd(rdbase),
                0,
            ],
            Self::Vsync { vpe_id } | Self::Vinvall { vpe_id } | Self::Invdb { vpe_id } => {
                [op, vpe(vpe_id), 0, 0]
            }
            Self::Vmapp41 {
                vpe_id,
                rdbase,
                vpt_addr,
                vpt_size,
                vconf_addr,
                default_db,
                ptz,
                alloc,
                valid,
            } => [
                op | put(alloc as u64, 8, 8) | put(ptz as u64, 9, 9) | (vconf_addr & bits(51, 16)),
                default_db as u64 | vpe(vpe_id),
                rd(rdbase) | put(valid as u64, 63, 63),
                (vpt_addr & bits(51, 16)) | put(vpt_size as u64, 7, 0),
            ],
            Self::Vmovp41 {
                vpe_id,
                rdbase,
                seq_num,
                its_list,
                default_db,
                db_valid,
            } => [
                op | put(seq_num as u64, 47, 32),
                its_list as u64 | vpe(vpe_id),
                rd(rdbase) | put(db_valid as u64, 63, 63),
                default_db as u64,
            ],
            Self::Vsgi {
                vpe_id,
                sgi,
                priority,
                group,
                enable,
                clear,
            } => [
                op | put(enable as u64, 8, 8)
                    | put(clear as u64, 9, 9)
                    | put(group as u64, 10, 10)
                    | put((priority >> 4) as u64, 23, 20)
                    | put(sgi as u64, 35, 32),
                vpe(vpe_id),
                0,
                0,
            ],
        }
    }

    /// Decodes 32 bytes with the GICv3 and GICv4.0 layouts (VMAPP and VMOVP
    /// in their 4.0 form; VSGI and INVDB, whose numbers are unambiguous, too).
    ///
    /// Total on any input: RES0 bits are ignored, as an ITS does, and only
    /// an unknown command number is an error.
    pub const fn decode(raw: [u64; 4]) -> Result<Self, DecodeError> {
        let [dw0, dw1, dw2, dw3] = raw;
        let device_id = get(dw0, 63, 32) as u32;
        let event_id = get(dw1, 31, 0) as u32;
        let icid = get(dw2, 15, 0) as u16;
        let vpe_id = get(dw1, 47, 32) as u16;
        let command = match dw0 as u8 {
            opcode::MAPD => Self::Mapd {
                device_id,
                size: get(dw1, 4, 0) as u8,
                itt_addr: dw2 & bits(51, 8),
                valid: get(dw2, 63, 63) != 0,
            },
            opcode::MAPC => Self::Mapc {
                icid,
                rdbase: rd_of(dw2),
                valid: get(dw2, 63, 63) != 0,
            },
            opcode::MAPTI => Self::Mapti {
                device_id,
                event_id,
                intid: get(dw1, 63, 32) as u32,
                icid,
            },
            opcode::MAPI => Self::Mapi {
                device_id,
                event_id,
                icid,
            },
            opcode::INT => Self::Int {
                device_id,
                event_id,
            },
            opcode::CLEAR => Self::Clear {
                device_id,
                event_id,
            },
            opcode::DISCARD => Self::Discard {
                device_id,
                event_id,
            },
            opcode::INV => Self::Inv {
                device_id,
                event_id,
            },
            opcode::INVALL => Self::Invall { icid },
            opcode::MOVI => Self::Movi {
                device_id,
                event_id,
                icid,
            },
            opcode::MOVALL => Self::Movall {
                rdbase1: rd_of(dw2),
                rdbase2: rd_of(dw3),
            },
            opcode::SYNC => Self::Sync { rdbase: rd_of(dw2) },
            opcode::VMAPP => Self::Vmapp {
                vpe_id,
                rdbase: rd_of(dw2),
                vpt_addr: dw3 & bits(51, 16),
                vpt_size: get(dw3, 4, 0) as u8,
                valid: get(dw2, 63, 63) != 0,
            },
            opcode::VMAPTI => Self::Vmapti {
                device_id,
                event_id,
                vpe_id,
                vintid: get(dw2, 31, 0) as u32,
                db_intid: get(dw2, 63, 32) as u32,
            },
            opcode::VMAPI => Self::Vmapi {
                device_id,
                event_id,
                vpe_id,
                db_intid: get(dw2, 63, 32) as u32,
            },
            opcode::VMOVI => Self::Vmovi {
                device_id,
                event_id,
                vpe_id,
                db_intid: get(dw2, 63, 32) as u32,
                db_valid: get(dw2, 0, 0) != 0,
            },
            opcode::VMOVP => Self::Vmovp {
                vpe_id,
                rdbase: rd_of(dw2),
                seq_num: get(dw0, 47, 32) as u16,
                its_list: get(dw1, 15, 0) as u16,
            },
            opcode::VSYNC => Self::Vsync { vpe_id },
            opcode::VINVALL => Self::Vinvall { vpe_id },
            opcode::INVDB => Self::Invdb { vpe_id },
            opcode::VSGI => Self::Vsgi {
                vpe_id,
                sgi: get(dw0, 35, 32) as u8,
                priority: (get(dw0, 23, 20) as u8) << 4,
                group: get(dw0, 10, 10) != 0,
                enable: get(dw0, 8, 8) != 0,
                clear: get(dw0, 9, 9) != 0,
            },
            other => return Err(DecodeError::UnknownOpcode(other)),
        };
        Ok(command)
    }

    /// Decodes 32 bytes with the GICv4.1 layouts: VMAPP and VMOVP decode as
    /// `Vmapp41` and `Vmovp41`; every other command as in [`Self::decode`].
    pub const fn decode_v41(raw: [u64; 4]) -> Result<Self, DecodeError> {
        let [dw0, dw1, dw2, dw3] = raw;
        match dw0 as u8 {
            opcode::VMAPP => Ok(Self::Vmapp41 {
                vpe_id: get(dw1, 47, 32) as u16,
                rdbase: rd_of(dw2),
                vpt_addr: dw3 & bits(51, 16),
                vpt_size: get(dw3, 7, 0) as u8,
                vconf_addr: dw0 & bits(51, 16),
                default_db: get(dw1, 31, 0) as u32,
                ptz: get(dw0, 9, 9) != 0,
                alloc: get(dw0, 8, 8) != 0,
                valid: get(dw2, 63, 63) != 0,
            }),
            opcode::VMOVP => Ok(Self::Vmovp41 {
                vpe_id: get(dw1, 47, 32) as u16,
                rdbase: rd_of(dw2),
                seq_num: get(dw0, 47, 32) as u16,
                its_list: get(dw1, 15, 0) as u16,
                default_db: get(dw3, 31, 0) as u32,
                db_valid: get(dw2, 63, 63) != 0,
            }),
            _ => Self::decode(raw),
        }
    }
}

/// The specification's name for a command number, if it names a command.
pub const fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        opcode::MOVI => "MOVI",
        opcode::INT => "INT",
        opcode::CLEAR => "CLEAR",
        opcode::SYNC => "SYNC",
        opcode::MAPD => "MAPD",
        opcode::MAPC => "MAPC",
        opcode::MAPTI => "MAPTI",
        opcode::MAPI => "MAPI",
        opcode::INV => "INV",
        opcode::INVALL => "INVALL",
        opcode::MOVALL => "MOVALL",
        opcode::DISCARD => "DISCARD",
        opcode::VMOVI => "VMOVI",
        opcode::VMOVP => "VMOVP",
        opcode::VSGI => "VSGI",
        opcode::VSYNC => "VSYNC",
        opcode::VMAPP => "VMAPP",
        opcode::VMAPTI => "VMAPTI",
        opcode::VMAPI => "VMAPI",
        opcode::VINVALL => "VINVALL",
        opcode::INVDB => "INVDB",
        _ => return None,
    })
}

/// A mask of the low `width` bits (`width` in 1..=64).
const fn low_mask(width: u32) -> u64 {
    u64::MAX >> (64 - width)
}

/// A mask of bits `[hi:lo]`.
const fn bits(hi: u32, lo: u32) -> u64 {
    low_mask(hi - lo + 1) << lo
}

/// Field `[hi:lo]` of `word`, shifted down.
const fn get(word: u64, hi: u32, lo: u32) -> u64 {
    (word >> lo) & low_mask(hi - lo + 1)
}

/// `value` masked to the width of `[hi:lo]` and shifted into place.
const fn put(value: u64, hi: u32, lo: u32) -> u64 {
    (value & low_mask(hi - lo + 1)) << lo
}

/// DeviceID into DW0[63:32].
const fn dev(device_id: u32) -> u64 {
    put(device_id as u64, 63, 32)
}

/// vPEID into DW1[47:32].
const fn vpe(vpe_id: u16) -> u64 {
    put(vpe_id as u64, 47, 32)
}

/// An RDbase into bits [51:16] of its doubleword.
const fn rd(rdbase: RdBase) -> u64 {
    put(rdbase.0, 51, 16)
}

/// The RDbase field [51:16] of a doubleword.
const fn rd_of(word: u64) -> RdBase {
    RdBase(get(word, 51, 16))
}

#[cfg(test)]
#[path = "its_cmd_tests.rs"]
mod tests;
