//! SMMUv3 commands (IHI 0070, 4 "Commands"): the few the hypervisor issues,
//! encoded into 16-byte command queue entries (dword 0 first).

use crate::mm::Vmid;

/// Command opcodes, SMMU CMD_* numbers.
pub mod op {
    /// CMD_PREFETCH_CONFIG.
    pub const PREFETCH_CONFIG: u8 = 0x01;
    /// CMD_CFGI_STE.
    pub const CFGI_STE: u8 = 0x03;
    /// CMD_CFGI_STE_RANGE (CMD_CFGI_ALL is this with Range = 31).
    pub const CFGI_STE_RANGE: u8 = 0x04;
    /// CMD_CFGI_CD.
    pub const CFGI_CD: u8 = 0x05;
    /// CMD_CFGI_CD_ALL.
    pub const CFGI_CD_ALL: u8 = 0x06;
    /// CMD_TLBI_NH_ALL.
    pub const TLBI_NH_ALL: u8 = 0x10;
    /// CMD_TLBI_NH_ASID.
    pub const TLBI_NH_ASID: u8 = 0x11;
    /// CMD_TLBI_NH_VA.
    pub const TLBI_NH_VA: u8 = 0x12;
    /// CMD_TLBI_EL2_ALL.
    pub const TLBI_EL2_ALL: u8 = 0x20;
    /// CMD_TLBI_S12_VMALL.
    pub const TLBI_S12_VMALL: u8 = 0x28;
    /// CMD_TLBI_S2_IPA.
    pub const TLBI_S2_IPA: u8 = 0x2a;
    /// CMD_TLBI_NSNH_ALL.
    pub const TLBI_NSNH_ALL: u8 = 0x30;
    /// CMD_ATC_INV.
    pub const ATC_INV: u8 = 0x40;
    /// CMD_SYNC.
    pub const SYNC: u8 = 0x46;
}

/// How CMD_SYNC signals its completion (CMD_SYNC.CS). In every case,
/// SMMU_CMDQ_CONS moving past the CMD_SYNC also says it completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SyncSignal {
    /// SIG_NONE: nothing beyond SMMU_CMDQ_CONS.
    None = 0,
    /// SIG_IRQ: an MSI (not used: the driver programs no MSI address).
    Irq = 1,
    /// SIG_SEV: a WFE wake-up event (IDR0.SEV).
    Sev = 2,
}

/// A command the driver issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// CMD_PREFETCH_CONFIG: hint that the STE of `sid` will be used.
    PrefetchConfig {
        /// The StreamID.
        sid: u32,
    },
    /// CMD_CFGI_STE: forget cached copies of the STE of `sid`; with
    /// `leaf == false`, also of the level-1 descriptor leading to it.
    CfgiSte {
        /// The StreamID.
        sid: u32,
        /// Leaf: only the STE itself.
        leaf: bool,
    },
    /// CMD_CFGI_STE_RANGE: the 2^(range + 1) STEs from `sid` rounded down.
    CfgiSteRange {
        /// The first StreamID (rounded down by the SMMU).
        sid: u32,
        /// Range: log2 of the number of STEs, minus one (0..=31).
        range: u8,
    },
    /// CMD_CFGI_ALL: forget every cached STE and level-1 descriptor.
    CfgiAll,
    /// CMD_TLBI_EL2_ALL: every EL2 TLB entry (IDR0.HYP).
    TlbiEl2All,
    /// CMD_TLBI_S12_VMALL: every TLB entry tagged with `vmid`.
    TlbiS12Vmall {
        /// The VMID.
        vmid: Vmid,
    },
    /// CMD_TLBI_S2_IPA: stage-2 entries of `vmid` for the page at `ipa`.
    TlbiS2Ipa {
        /// The VMID.
        vmid: Vmid,
        /// The IPA (bits [51:12] are used).
        ipa: u64,
        /// Leaf: only last-level entries.
        leaf: bool,
    },
    /// CMD_TLBI_NSNH_ALL: every non-secure, non-hypervisor TLB entry.
    TlbiNsnhAll,
    /// CMD_SYNC: completes once every earlier command has.
    Sync {
        /// Completion signal.
        signal: SyncSignal,
    },
}

/// Bits [51:12] of an address field.
const ADDR_51_12: u64 = 0x000f_ffff_ffff_f000;

impl Command {
    /// CMD_SYNC with no signal beyond SMMU_CMDQ_CONS.
    pub const SYNC: Self = Self::Sync {
        signal: SyncSignal::None,
    };

    /// The command's opcode.
    pub const fn opcode(&self) -> u8 {
        match self {
            Self::PrefetchConfig { .. } => op::PREFETCH_CONFIG,
            Self::CfgiSte { .. } => op::CFGI_STE,
            Self::CfgiSteRange { .. } | Self::CfgiAll => op::CFGI_STE_RANGE,
            Self::TlbiEl2All => op::TLBI_EL2_ALL,
            Self::TlbiS12Vmall { .. } => op::TLBI_S12_VMALL,
            Self::TlbiS2Ipa { .. } => op::TLBI_S2_IPA,
            Self::TlbiNsnhAll => op::TLBI_NSNH_ALL,
            Self::Sync { .. } => op::SYNC,
        }
    }

    /// Whether this is a CMD_SYNC.
    pub const fn is_sync(&self) -> bool {
        matches!(self, Self::Sync { .. })
    }

    /// The 16-byte queue entry: dword 0, dword 1.
    pub const fn encode(&self) -> [u64; 2] {
        let opcode = self.opcode() as u64;
        match *self {
            // SID [63:32].
            Self::PrefetchConfig { sid } => [opcode | ((sid as u64) << 32), 0],
            // SID [63:32]; Leaf: dword 1 bit 0.
            Self::CfgiSte { sid, leaf } => [opcode | ((sid as u64) << 32), leaf as u64],
            // SID [63:32]; Range: dword 1 [4:0].
            Self::CfgiSteRange { sid, range } => {
                [opcode | ((sid as u64) << 32), (range & 0x1f) as u64]
            }
            Self::CfgiAll => [opcode, 31],
            Self::TlbiEl2All | Self::TlbiNsnhAll => [opcode, 0],
            // VMID [47:32].
            Self::TlbiS12Vmall { vmid } => [opcode | ((vmid.get() as u64) << 32), 0],
            // VMID [47:32]; NUM/SCALE 0 (one page); dword 1: Leaf bit 0,
            // TTL and TG 0 (no hint), Address [51:12].
            Self::TlbiS2Ipa { vmid, ipa, leaf } => [
                opcode | ((vmid.get() as u64) << 32),
                (ipa & ADDR_51_12) | leaf as u64,
            ],
            // CS [13:12]; MSH, MSIAttr, MSIData and MSIAddress 0 (no MSI).
            Self::Sync { signal } => [opcode | ((signal as u64) << 12), 0],
        }
    }
}

/// The name of a command opcode, for a log line about a refused command.
pub const fn opcode_name(opcode: u8) -> &'static str {
    match opcode {
        op::PREFETCH_CONFIG => "CMD_PREFETCH_CONFIG",
        op::CFGI_STE => "CMD_CFGI_STE",
        op::CFGI_STE_RANGE => "CMD_CFGI_STE_RANGE",
        op::CFGI_CD => "CMD_CFGI_CD",
        op::CFGI_CD_ALL => "CMD_CFGI_CD_ALL",
        op::TLBI_NH_ALL => "CMD_TLBI_NH_ALL",
        op::TLBI_NH_ASID => "CMD_TLBI_NH_ASID",
        op::TLBI_NH_VA => "CMD_TLBI_NH_VA",
        op::TLBI_EL2_ALL => "CMD_TLBI_EL2_ALL",
        op::TLBI_S12_VMALL => "CMD_TLBI_S12_VMALL",
        op::TLBI_S2_IPA => "CMD_TLBI_S2_IPA",
        op::TLBI_NSNH_ALL => "CMD_TLBI_NSNH_ALL",
        op::ATC_INV => "CMD_ATC_INV",
        op::SYNC => "CMD_SYNC",
        _ => "unknown command",
    }
}

#[cfg(test)]
mod tests {
    //! Every layout pinned as literals against IHI 0070, 4.3 to 4.7.
    use super::*;

    #[test]
    fn cfgi_ste_places_sid_and_leaf() {
        assert_eq!(
            Command::CfgiSte {
                sid: 0xdead_beef,
                leaf: true
            }
            .encode(),
            [0xdead_beef_0000_0003, 1]
        );
        assert_eq!(
            Command::CfgiSte {
                sid: 0x10,
                leaf: false
            }
            .encode(),
            [0x0000_0010_0000_0003, 0]
        );
    }

    #[test]
    fn cfgi_all_is_cfgi_ste_range_with_range_31() {
        assert_eq!(Command::CfgiAll.encode(), [0x04, 31]);
        assert_eq!(
            Command::CfgiSteRange {
                sid: 0x100,
                range: 7
            }
            .encode(),
            [0x0000_0100_0000_0004, 7]
        );
        // Range is 5 bits: a larger value cannot leak into dword 1's RES0 bits.
        assert_eq!(
            Command::CfgiSteRange {
                sid: 0,
                range: 0xff
            }
            .encode()[1],
            0x1f
        );
    }

    #[test]
    fn tlbi_s12_vmall_places_vmid() {
        assert_eq!(
            Command::TlbiS12Vmall {
                vmid: crate::mm::Vmid::from_const(0xabcd)
            }
            .encode(),
            [0x0000_abcd_0000_0028, 0]
        );
    }

    #[test]
    fn tlbi_s2_ipa_places_vmid_address_and_leaf() {
        assert_eq!(
            Command::TlbiS2Ipa {
                vmid: crate::mm::Vmid::from_const(5),
                ipa: 0x0000_0089_abcd_e123,
                leaf: true
            }
            .encode(),
            [0x0000_0005_0000_002a, 0x0000_0089_abcd_e001]
        );
        // Bits above 51 are not part of the address.
        assert_eq!(
            Command::TlbiS2Ipa {
                vmid: crate::mm::Vmid::from_const(0),
                ipa: u64::MAX,
                leaf: false
            }
            .encode()[1],
            0x000f_ffff_ffff_f000
        );
    }

    #[test]
    fn global_invalidations_are_bare_opcodes() {
        assert_eq!(Command::TlbiNsnhAll.encode(), [0x30, 0]);
        assert_eq!(Command::TlbiEl2All.encode(), [0x20, 0]);
        assert_eq!(
            Command::PrefetchConfig { sid: 3 }.encode(),
            [0x0000_0003_0000_0001, 0]
        );
    }

    #[test]
    fn cmd_sync_places_completion_signal() {
        assert_eq!(Command::SYNC.encode(), [0x46, 0]);
        assert_eq!(
            Command::Sync {
                signal: SyncSignal::Sev
            }
            .encode(),
            [0x2046, 0]
        );
        assert!(Command::SYNC.is_sync());
        assert!(!Command::CfgiAll.is_sync());
    }

    #[test]
    fn opcode_names_cover_what_we_issue() {
        for cmd in [
            Command::CfgiAll,
            Command::TlbiNsnhAll,
            Command::TlbiEl2All,
            Command::SYNC,
            Command::TlbiS12Vmall {
                vmid: crate::mm::Vmid::from_const(0),
            },
        ] {
            assert!(opcode_name(cmd.opcode()).starts_with("CMD_"));
        }
        assert_eq!(opcode_name(0xff), "unknown command");
    }
}
