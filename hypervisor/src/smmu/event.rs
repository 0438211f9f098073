//! SMMUv3 event records (IHI 0070, 7.3 "Event records"): 32 bytes the SMMU
//! writes into the event queue when it terminates a transaction or finds a
//! configuration error. Decoding never fails: unknown codes are kept.

use core::fmt;

/// What happened, from the event type in bits [7:0] of dword 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// F_UUT (0x01): unsupported upstream transaction.
    Uut,
    /// C_BAD_STREAMID (0x02): StreamID beyond the stream table.
    BadStreamId,
    /// F_STE_FETCH (0x03): the STE fetch was aborted.
    SteFetch,
    /// C_BAD_STE (0x04): invalid or inconsistent STE.
    BadSte,
    /// F_BAD_ATS_TREQ (0x05): ATS translation request refused.
    BadAtsTreq,
    /// F_STREAM_DISABLED (0x06): non-substream transaction to a substream-only stream.
    StreamDisabled,
    /// F_TRANSL_FORBIDDEN (0x07): ATS-translated transaction refused.
    TranslationForbidden,
    /// C_BAD_SUBSTREAMID (0x08).
    BadSubstreamId,
    /// F_CD_FETCH (0x09): the context descriptor fetch was aborted.
    CdFetch,
    /// C_BAD_CD (0x0a).
    BadCd,
    /// F_WALK_EABT (0x0b): a table walk access got an external abort.
    WalkEabt,
    /// F_TRANSLATION (0x10): no translation for the address.
    Translation,
    /// F_ADDR_SIZE (0x11): address beyond the input or output size.
    AddrSize,
    /// F_ACCESS (0x12): access flag fault.
    Access,
    /// F_PERMISSION (0x13): the access is not permitted.
    Permission,
    /// F_TLB_CONFLICT (0x20).
    TlbConflict,
    /// F_CFG_CONFLICT (0x21).
    CfgConflict,
    /// E_PAGE_REQUEST (0x24).
    PageRequest,
    /// F_VMS_FETCH (0x25).
    VmsFetch,
    /// A code this decoder does not know (implementation defined or newer).
    Unknown(u8),
}

impl EventKind {
    /// The kind for event type `code`.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0x01 => Self::Uut,
            0x02 => Self::BadStreamId,
            0x03 => Self::SteFetch,
            0x04 => Self::BadSte,
            0x05 => Self::BadAtsTreq,
            0x06 => Self::StreamDisabled,
            0x07 => Self::TranslationForbidden,
            0x08 => Self::BadSubstreamId,
            0x09 => Self::CdFetch,
            0x0a => Self::BadCd,
            0x0b => Self::WalkEabt,
            0x10 => Self::Translation,
            0x11 => Self::AddrSize,
            0x12 => Self::Access,
            0x13 => Self::Permission,
            0x20 => Self::TlbConflict,
            0x21 => Self::CfgConflict,
            0x24 => Self::PageRequest,
            0x25 => Self::VmsFetch,
            other => Self::Unknown(other),
        }
    }

    /// The specification's name of the event.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Uut => "F_UUT",
            Self::BadStreamId => "C_BAD_STREAMID",
            Self::SteFetch => "F_STE_FETCH",
            Self::BadSte => "C_BAD_STE",
            Self::BadAtsTreq => "F_BAD_ATS_TREQ",
            Self::StreamDisabled => "F_STREAM_DISABLED",
            Self::TranslationForbidden => "F_TRANSL_FORBIDDEN",
            Self::BadSubstreamId => "C_BAD_SUBSTREAMID",
            Self::CdFetch => "F_CD_FETCH",
            Self::BadCd => "C_BAD_CD",
            Self::WalkEabt => "F_WALK_EABT",
            Self::Translation => "F_TRANSLATION",
            Self::AddrSize => "F_ADDR_SIZE",
            Self::Access => "F_ACCESS",
            Self::Permission => "F_PERMISSION",
            Self::TlbConflict => "F_TLB_CONFLICT",
            Self::CfgConflict => "F_CFG_CONFLICT",
            Self::PageRequest => "E_PAGE_REQUEST",
            Self::VmsFetch => "F_VMS_FETCH",
            Self::Unknown(_) => "unknown event",
        }
    }

    /// Whether this is a translation fault a device's access caused
    /// (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT):
    /// the events that say "this DMA went outside what it may reach".
    pub const fn is_translation_fault(&self) -> bool {
        matches!(
            self,
            Self::Translation | Self::AddrSize | Self::Access | Self::Permission | Self::WalkEabt
        )
    }

    /// Whether the record carries the transaction's fields (RnW, S2, CLASS, InputAddr).
    const fn has_transaction(&self) -> bool {
        self.is_translation_fault()
    }
}

/// What the faulting access was for (event CLASS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultClass {
    /// CD: fetching a context descriptor.
    ContextDescriptor,
    /// TTD: walking a translation table.
    TableWalk,
    /// IN: the transaction's own input address.
    Input,
    /// The reserved encoding 0b11.
    Reserved,
}

/// One decoded event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Event type code (dword 0 [7:0]).
    pub code: u8,
    /// The decoded type.
    pub kind: EventKind,
    /// StreamID of the transaction (dword 0 [63:32]).
    pub stream_id: u32,
    /// SubstreamID, when SSV (dword 0 bit 11) says it is valid.
    pub substream_id: Option<u32>,
    /// The transaction's input address (dword 2), for events that have one.
    pub input_address: Option<u64>,
    /// IPA[51:12] of a stage-2 fault (dword 3), for translation faults with S2 = 1.
    pub ipa: Option<u64>,
    /// Address of the aborted fetch: STE, CD or table descriptor (dword 3 [51:3]).
    pub fetch_address: Option<u64>,
    /// RnW (dword 1 bit 35): `Some(true)` read, `Some(false)` write.
    pub read: Option<bool>,
    /// S2 (dword 1 bit 39): the fault came from stage 2.
    pub stage2: bool,
    /// CLASS (dword 1 [41:40]).
    pub class: Option<FaultClass>,
    /// Stall (dword 1 bit 31): the transaction is stalled awaiting CMD_RESUME.
    pub stall: bool,
    /// The record as read, for a log line about an unknown event.
    pub raw: [u64; 4],
}

/// Bits [51:12] and [51:3] of an address field.
const ADDR_51_12: u64 = 0x000f_ffff_ffff_f000;
const ADDR_51_3: u64 = 0x000f_ffff_ffff_fff8;

impl Event {
    /// Decodes a record (dword 0 first). Any input decodes.
    pub fn decode(raw: [u64; 4]) -> Self {
        let code = raw[0] as u8;
        let kind = EventKind::from_code(code);
        let ssv = raw[0] & (1 << 11) != 0;
        let transaction = kind.has_transaction();
        let stage2 = transaction && raw[1] & (1 << 39) != 0;
        let input_address = match kind {
            EventKind::Uut
            | EventKind::BadAtsTreq
            | EventKind::TranslationForbidden
            | EventKind::PageRequest => Some(raw[2]),
            k if k.has_transaction() => Some(raw[2]),
            _ => None,
        };
        let fetch_address = match kind {
            EventKind::SteFetch
            | EventKind::CdFetch
            | EventKind::WalkEabt
            | EventKind::VmsFetch => Some(raw[3] & ADDR_51_3),
            _ => None,
        };
        let ipa = match kind {
            EventKind::Translation
            | EventKind::AddrSize
            | EventKind::Access
            | EventKind::Permission
                if stage2 =>
            {
                Some(raw[3] & ADDR_51_12)
            }
            _ => None,
        };
        let read = match kind {
            EventKind::Uut | EventKind::TranslationForbidden => Some(raw[1] & (1 << 35) != 0),
            k if k.has_transaction() => Some(raw[1] & (1 << 35) != 0),
            _ => None,
        };
        let class = transaction.then(|| match (raw[1] >> 40) & 0b11 {
            0 => FaultClass::ContextDescriptor,
            1 => FaultClass::TableWalk,
            2 => FaultClass::Input,
            _ => FaultClass::Reserved,
        });
        Self {
            code,
            kind,
            stream_id: (raw[0] >> 32) as u32,
            substream_id: ssv.then_some(((raw[0] >> 12) & 0xf_ffff) as u32),
            input_address,
            ipa,
            fetch_address,
            read,
            stage2,
            class,
            stall: transaction && raw[1] & (1 << 31) != 0,
            raw,
        }
    }

    /// The address a log line should name: the IPA of a stage-2 fault if
    /// given, else the input address, else the fetch address.
    pub fn address(&self) -> Option<u64> {
        self.input_address.or(self.ipa).or(self.fetch_address)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:#04x}) StreamID {:#x}",
            self.kind.name(),
            self.code,
            self.stream_id
        )?;
        if let Some(ssid) = self.substream_id {
            write!(f, " SubstreamID {ssid:#x}")?;
        }
        match self.read {
            Some(true) => write!(f, " read")?,
            Some(false) => write!(f, " write")?,
            None => {}
        }
        if let Some(addr) = self.input_address {
            write!(f, " at {addr:#x}")?;
        }
        if let Some(ipa) = self.ipa {
            write!(f, " IPA {ipa:#x}")?;
        }
        if let Some(fetch) = self.fetch_address {
            write!(f, " fetching {fetch:#x}")?;
        }
        if self.stage2 {
            write!(f, " (stage 2)")?;
        }
        if let EventKind::Unknown(_) = self.kind {
            write!(f, " raw {:#x?}", self.raw)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Records written as literals from the layouts of IHI 0070, 7.3.
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stage2_translation_fault_on_write_decodes_every_field() {
        // F_TRANSLATION, StreamID 0x0010, no SubstreamID; dword 1: RnW = 0
        // (write), S2 = 1, CLASS = IN (0b10); InputAddr; IPA.
        let raw = [
            0x0000_0010_0000_0010,
            (1 << 39) | (0b10 << 40),
            0x0000_0000_0900_0040,
            0x0000_0000_0900_0000,
        ];
        let e = Event::decode(raw);
        assert_eq!(e.kind, EventKind::Translation);
        assert_eq!(e.kind.name(), "F_TRANSLATION");
        assert_eq!(e.stream_id, 0x10);
        assert_eq!(e.substream_id, None);
        assert_eq!(e.read, Some(false));
        assert!(e.stage2 && !e.stall);
        assert_eq!(e.class, Some(FaultClass::Input));
        assert_eq!(e.input_address, Some(0x0900_0040));
        assert_eq!(e.ipa, Some(0x0900_0000));
        assert_eq!(e.fetch_address, None);
        assert_eq!(e.address(), Some(0x0900_0040));
        let line = alloc::format!("{e}");
        assert!(
            line.contains("F_TRANSLATION") && line.contains("write"),
            "{line}"
        );
        assert!(
            line.contains("0x9000040") && line.contains("StreamID 0x10"),
            "{line}"
        );
    }

    #[test]
    fn permission_fault_read_with_substream_and_stall() {
        let raw = [
            0xffff_ffff_0000_0013 | (1 << 11) | (0xabcde << 12),
            (1 << 35) | (1 << 31) | (0b01 << 40),
            0xffff_ffff_ffff_ffff,
            0,
        ];
        let e = Event::decode(raw);
        assert_eq!(e.kind, EventKind::Permission);
        assert_eq!(e.stream_id, u32::MAX);
        assert_eq!(e.substream_id, Some(0xabcde));
        assert_eq!(e.read, Some(true));
        assert!(e.stall && !e.stage2);
        assert_eq!(e.class, Some(FaultClass::TableWalk));
        // S2 = 0: no IPA.
        assert_eq!(e.ipa, None);
    }

    #[test]
    fn configuration_errors_carry_only_the_stream() {
        for (code, kind) in [
            (0x02, EventKind::BadStreamId),
            (0x04, EventKind::BadSte),
            (0x21, EventKind::CfgConflict),
        ] {
            let e = Event::decode([0x0000_0123_0000_0000 | code, u64::MAX, u64::MAX, u64::MAX]);
            assert_eq!(e.kind, kind);
            assert_eq!(e.stream_id, 0x123);
            assert_eq!(
                (e.input_address, e.ipa, e.fetch_address, e.read, e.class),
                (None, None, None, None, None)
            );
            assert!(!e.stage2 && !e.stall);
        }
    }

    #[test]
    fn fetch_and_walk_aborts_carry_the_fetch_address() {
        let e = Event::decode([0x0000_0007_0000_0003, 0, 0, 0x000f_0000_1234_567f]);
        assert_eq!(e.kind, EventKind::SteFetch);
        assert_eq!(e.fetch_address, Some(0x000f_0000_1234_5678));
        let e = Event::decode([
            0x0000_0007_0000_000b,
            (1 << 39) | (0b01 << 40),
            0x8000,
            0x4000_1008,
        ]);
        assert_eq!(e.kind, EventKind::WalkEabt);
        assert_eq!(e.kind.name(), "F_WALK_EABT");
        assert_eq!(e.input_address, Some(0x8000));
        assert_eq!(e.fetch_address, Some(0x4000_1008));
        assert!(e.stage2);
        assert_eq!(e.ipa, None);
    }

    #[test]
    fn every_named_code_round_trips_and_unknown_codes_are_kept() {
        for code in 0..=u8::MAX {
            let kind = EventKind::from_code(code);
            match kind {
                EventKind::Unknown(c) => {
                    assert_eq!(c, code);
                    assert_eq!(kind.name(), "unknown event");
                }
                _ => assert_ne!(kind.name(), "unknown event"),
            }
        }
        for code in [0x10, 0x11, 0x12, 0x13] {
            assert!(EventKind::from_code(code).is_translation_fault());
        }
        let e = Event::decode([0xe0, 1, 2, 3]);
        assert_eq!(e.kind, EventKind::Unknown(0xe0));
        assert!(alloc::format!("{e}").contains("raw"));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_keeps_code_and_stream(raw in any::<[u64; 4]>()) {
            let e = Event::decode(raw);
            prop_assert_eq!(e.code, raw[0] as u8);
            prop_assert_eq!(e.stream_id, (raw[0] >> 32) as u32);
            prop_assert_eq!(e.raw, raw);
            let _ = alloc::format!("{e}");
            if let Some(ipa) = e.ipa {
                prop_assert_eq!(ipa & 0xfff, 0);
                prop_assert!(ipa < 1 << 52);
            }
        }
    }
}
