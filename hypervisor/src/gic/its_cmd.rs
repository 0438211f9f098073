//! The 32-byte ITS command format (IHI 0069, 5.3 "ITS commands"), for every
//! GICv3, GICv4.0 and GICv4.1 command.
//!
//! The same codec decodes what a guest writes into its virtual ITS queue
//! (untrusted: every field is range-checked by the caller) and encodes what
//! the hypervisor writes into the physical queue.

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
        device_id: u32,
        size: u8,
        itt_addr: u64,
        valid: bool,
    },
    /// MAPC: map a collection to a redistributor (`valid == false` unmaps).
    Mapc {
        icid: u16,
        rdbase: RdBase,
        valid: bool,
    },
    /// MAPTI: map (DeviceID, EventID) to an INTID and collection.
    Mapti {
        device_id: u32,
        event_id: u32,
        intid: u32,
        icid: u16,
    },
    /// MAPI: MAPTI with INTID == EventID.
    Mapi {
        device_id: u32,
        event_id: u32,
        icid: u16,
    },
    /// INT: make the event's interrupt pending.
    Int { device_id: u32, event_id: u32 },
    /// CLEAR: clear the event's pending state.
    Clear { device_id: u32, event_id: u32 },
    /// DISCARD: clear pending state and remove the mapping.
    Discard { device_id: u32, event_id: u32 },
    /// INV: reload the configuration of the event's interrupt.
    Inv { device_id: u32, event_id: u32 },
    /// INVALL: reload configuration of every interrupt of a collection.
    Invall { icid: u16 },
    /// MOVI: retarget the event to another collection.
    Movi {
        device_id: u32,
        event_id: u32,
        icid: u16,
    },
    /// MOVALL: move all pending interrupts from one redistributor to another.
    Movall { rdbase1: RdBase, rdbase2: RdBase },
    /// SYNC: wait for the effects of earlier commands on a redistributor.
    Sync { rdbase: RdBase },

    // GICv4.0 virtual commands
    /// VMAPP (GICv4.0 layout): map a vPE to a redistributor and its virtual pending table.
    Vmapp {
        vpe_id: u16,
        rdbase: RdBase,
        vpt_addr: u64,
        vpt_size: u8,
        valid: bool,
    },
    /// VMAPTI: map (DeviceID, EventID) to a vINTID on a vPE, with a doorbell pINTID (1023: none).
    Vmapti {
        device_id: u32,
        event_id: u32,
        vpe_id: u16,
        vintid: u32,
        db_intid: u32,
    },
    /// VMAPI: VMAPTI with vINTID == EventID.
    Vmapi {
        device_id: u32,
        event_id: u32,
        vpe_id: u16,
        db_intid: u32,
    },
    /// VMOVI: retarget an event to another vPE (`db_valid`: the D bit).
    Vmovi {
        device_id: u32,
        event_id: u32,
        vpe_id: u16,
        db_intid: u32,
        db_valid: bool,
    },
    /// VMOVP (GICv4.0 layout): move a vPE to another redistributor.
    Vmovp {
        vpe_id: u16,
        rdbase: RdBase,
        seq_num: u16,
        its_list: u16,
    },
    /// VSYNC: wait for the effects of earlier commands on a vPE.
    Vsync { vpe_id: u16 },
    /// VINVALL: reload configuration of every vLPI of a vPE.
    Vinvall { vpe_id: u16 },

    // GICv4.1 layouts and commands
    /// VMAPP (GICv4.1 layout).
    Vmapp41 {
        vpe_id: u16,
        rdbase: RdBase,
        vpt_addr: u64,
        vpt_size: u8,
        vconf_addr: u64,
        default_db: u32,
        ptz: bool,
        alloc: bool,
        valid: bool,
    },
    /// VMOVP (GICv4.1 layout), with the default doorbell.
    Vmovp41 {
        vpe_id: u16,
        rdbase: RdBase,
        seq_num: u16,
        its_list: u16,
        default_db: u32,
        db_valid: bool,
    },
    /// VSGI: configure a virtual SGI of a vPE.
    Vsgi {
        vpe_id: u16,
        sgi: u8,
        priority: u8,
        group: bool,
        enable: bool,
        clear: bool,
    },
    /// INVDB: invalidate the cached doorbell of a vPE.
    Invdb { vpe_id: u16 },
}

/// Why 32 bytes did not decode into a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The command number in DW0[7:0] names no command.
    UnknownOpcode(u8),
}
