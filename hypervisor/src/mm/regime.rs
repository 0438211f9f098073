//! The two translation regimes the hypervisor builds tables for, their
//! descriptor attribute encodings and the control-register values that go
//! with them: EL2 stage 1 (TTBR0_EL2/TCR_EL2/MAIR_EL2, no VHE) and stage 2
//! (VTTBR_EL2/VTCR_EL2). 4 KiB granule only.
//!
//! Bit positions are from the Arm ARM (DDI 0487) D8.3 "Translation table
//! descriptor formats" and the TCR_EL2/VTCR_EL2 register descriptions.
#![forbid(unsafe_code)]

use core::fmt::Debug;

use super::{Ipa, VirtAddr};
use crate::sysreg::{TcrEl2, VtcrEl2};

/// An address a regime translates: a hypervisor VA (stage 1) or an IPA (stage 2).
pub trait InputAddress: Copy + Debug {
    /// The raw address.
    fn to_raw(self) -> u64;
    /// Wraps a raw address.
    fn from_raw(raw: u64) -> Self;
}

impl InputAddress for VirtAddr {
    fn to_raw(self) -> u64 {
        self.0
    }
    fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl InputAddress for Ipa {
    fn to_raw(self) -> u64 {
        self.0
    }
    fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

/// What the generic table builder needs to know about a translation regime.
pub trait Regime {
    /// The address type this regime translates.
    type Address: InputAddress;
    /// Attributes of a block or page mapping.
    type Attributes: Copy + Debug + PartialEq + Eq;
    /// Input address size in bits (64 - T0SZ).
    fn input_bits(&self) -> u32;
    /// Level of the initial lookup (0..=2 here).
    fn start_level(&self) -> u8;
    /// Number of concatenated 4 KiB tables forming the root (1 for stage 1).
    fn root_tables(&self) -> usize;
    /// Descriptor bits for `attributes` in a block or page descriptor, AF included
    /// (everything except the type bits [1:0] and the output address).
    fn leaf_bits(attributes: &Self::Attributes) -> u64;
    /// The attributes encoded in a block or page descriptor written by `leaf_bits`.
    fn decode_leaf(descriptor: u64) -> Self::Attributes;
}

/// Access flag, descriptor bit 10: always set, we take no Access flag faults.
pub(crate) const AF: u64 = 1 << 10;
/// Execute-never, descriptor bit 54: XN for the one-privilege EL2 regime; in
/// stage 2 it is XN[1] (XN[1:0] = 0b10 blocks execution at EL1 and EL0, and
/// without FEAT_XNX bit 53 is RES0 so bit 54 alone is XN).
const XN: u64 = 1 << 54;
const SH_SHIFT: u32 = 8;
const ATTR_SHIFT: u32 = 2;
const AP_SHIFT: u32 = 6;

/// Shareability of a mapping, descriptor SH[1:0] at bits [9:8].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shareability {
    /// 0b00: used for Device memory (SH is ignored for Device, ARM ARM D8.6.2).
    NonShareable,
    /// 0b10.
    OuterShareable,
    /// 0b11: what Normal memory uses on a multi-core system.
    InnerShareable,
}

impl Shareability {
    const fn bits(self) -> u64 {
        match self {
            Self::NonShareable => 0b00,
            Self::OuterShareable => 0b10,
            Self::InnerShareable => 0b11,
        }
    }

    const fn from_descriptor(descriptor: u64) -> Self {
        // 0b01 is reserved and never written by the builder.
        match (descriptor >> SH_SHIFT) & 0b11 {
            0b10 => Self::OuterShareable,
            0b11 => Self::InnerShareable,
            _ => Self::NonShareable,
        }
    }
}

// ---------------------------------------------------------------- stage 1

/// An index into MAIR_EL2, descriptor AttrIndx[2:0] at bits [4:2].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MairIndex(u8);

impl MairIndex {
    /// Attr0: Normal, inner and outer write-back, read/write-allocate (0xff).
    pub const NORMAL: Self = Self(0);
    /// Attr1: Device-nGnRE (0x04).
    pub const DEVICE: Self = Self(1);

    /// An index in 0..8, or `None`.
    pub const fn new(index: u8) -> Option<Self> {
        if index < 8 {
            Some(Self(index))
        } else {
            None
        }
    }

    /// The index value.
    pub const fn index(self) -> u8 {
        self.0
    }
}

/// MAIR_EL2 value matching [`MairIndex::NORMAL`] and [`MairIndex::DEVICE`].
pub const MAIR_EL2: u64 = (0x04 << 8) | 0xff;

/// Data access permission at EL2, from AP[2] (bit 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El2Access {
    /// AP[2] = 0.
    ReadWrite,
    /// AP[2] = 1.
    ReadOnly,
}

/// Attributes of an EL2 stage-1 block or page mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct El2Attributes {
    /// Memory type, as an index into MAIR_EL2.
    pub memory: MairIndex,
    /// Shareability (inner for Normal memory, non-shareable for Device).
    pub shareability: Shareability,
    /// Read/write or read-only.
    pub access: El2Access,
    /// Whether instruction fetch is forbidden.
    pub execute_never: bool,
}

impl El2Attributes {
    /// Normal write-back memory, inner shareable.
    pub const fn normal(access: El2Access, execute_never: bool) -> Self {
        Self {
            memory: MairIndex::NORMAL,
            shareability: Shareability::InnerShareable,
            access,
            execute_never,
        }
    }

    /// Device-nGnRE MMIO: read/write, never executable (speculative
    /// instruction fetch from device memory must be impossible).
    pub const fn device() -> Self {
        Self {
            memory: MairIndex::DEVICE,
            shareability: Shareability::NonShareable,
            access: El2Access::ReadWrite,
            execute_never: true,
        }
    }
}

/// AP[1], bit 6: RES1 in the one-privilege EL2 regime (ARM ARM D8.4.1.2.1:
/// "For a stage 1 translation that supports one Exception level, AP[1] is RES1").
const EL2_AP1_RES1: u64 = 1 << 6;
const AP2_READ_ONLY: u64 = 1 << 7;

/// The EL2 stage-1 regime without VHE: TTBR0_EL2 only, 48-bit VA, start level 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El2Stage1;

impl El2Stage1 {
    /// VA size in bits.
    pub const VA_BITS: u32 = 48;

    /// TCR_EL2 value for this regime: T0SZ = 16, walks Normal write-back
    /// inner shareable (tables must live in memory mapped that way), 4 KiB
    /// granule, PS from `pa_range`, TBI off.
    pub const fn tcr_el2(pa_range: PaRange) -> TcrEl2 {
        TcrEl2::RES1
            .with_t0sz(64 - Self::VA_BITS as u64)
            .with_irgn0(WALK_CACHEABILITY)
            .with_orgn0(WALK_CACHEABILITY)
            .with_sh0(WALK_SHAREABILITY)
            .with_tg0(GRANULE_4K)
            .with_ps(pa_range.field() as u64)
    }
}

impl Regime for El2Stage1 {
    type Address = VirtAddr;
    type Attributes = El2Attributes;

    fn input_bits(&self) -> u32 {
        Self::VA_BITS
    }
    fn start_level(&self) -> u8 {
        0
    }
    fn root_tables(&self) -> usize {
        1
    }

    fn leaf_bits(attributes: &El2Attributes) -> u64 {
        let mut bits = AF
            | EL2_AP1_RES1
            | ((attributes.memory.0 as u64) << ATTR_SHIFT)
            | (attributes.shareability.bits() << SH_SHIFT);
        if attributes.access == El2Access::ReadOnly {
            bits |= AP2_READ_ONLY;
        }
        if attributes.execute_never {
            bits |= XN;
        }
        bits
    }

    fn decode_leaf(descriptor: u64) -> El2Attributes {
        El2Attributes {
            memory: MairIndex(((descriptor >> ATTR_SHIFT) & 0b111) as u8),
            shareability: Shareability::from_descriptor(descriptor),
            access: if descriptor & AP2_READ_ONLY != 0 {
                El2Access::ReadOnly
            } else {
                El2Access::ReadWrite
            },
            execute_never: descriptor & XN != 0,
        }
    }
}

/// IRGN0/ORGN0 of TCR_EL2 and VTCR_EL2: table walks write-back
/// read/write-allocate.
const WALK_CACHEABILITY: u64 = 0b01;
/// SH0: table walks inner shareable.
const WALK_SHAREABILITY: u64 = 0b11;
/// TG0: the 4 KiB granule.
const GRANULE_4K: u64 = 0b00;

/// Physical address size, the ID_AA64MMFR0_EL1.PARange encoding that
/// TCR_EL2.PS and VTCR_EL2.PS take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaRange(u8);

impl PaRange {
    /// 48 bits, the largest the 4 KiB descriptor format without LPA2 can output.
    pub const BITS_48: Self = Self(0b101);

    /// From the ID_AA64MMFR0_EL1.PARange field; sizes above 48 bits are
    /// clamped to 48 since our descriptors hold a 48-bit output address.
    pub const fn from_id_field(field: u8) -> Self {
        let field = field & 0xf;
        if field > 0b101 {
            Self::BITS_48
        } else {
            Self(field)
        }
    }

    /// The PS field value.
    pub const fn field(self) -> u8 {
        self.0
    }

    /// Physical address size in bits.
    pub const fn bits(self) -> u32 {
        match self.0 {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            _ => 48,
        }
    }
}

// ---------------------------------------------------------------- stage 2

/// Stage-2 MemAttr[3:0], descriptor bits [5:2] (with HCR_EL2.FWB = 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2MemAttr(u8);

impl Stage2MemAttr {
    /// Normal, outer and inner write-back (0b1111).
    pub const NORMAL_WRITE_BACK: Self = Self(0b1111);
    /// Device-nGnRE (0b0001).
    pub const DEVICE_NGNRE: Self = Self(0b0001);

    /// A raw 4-bit MemAttr value, or `None` if it does not fit.
    pub const fn new(value: u8) -> Option<Self> {
        if value < 16 {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The raw value.
    pub const fn value(self) -> u8 {
        self.0
    }
}

/// Stage-2 data access permission S2AP[1:0], descriptor bits [7:6].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage2Access {
    /// 0b00: no access.
    None,
    /// 0b01: read only.
    ReadOnly,
    /// 0b10: write only.
    WriteOnly,
    /// 0b11: read and write.
    ReadWrite,
}

impl Stage2Access {
    const fn bits(self) -> u64 {
        match self {
            Self::None => 0b00,
            Self::ReadOnly => 0b01,
            Self::WriteOnly => 0b10,
            Self::ReadWrite => 0b11,
        }
    }
}

/// Attributes of a stage-2 block or page mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Attributes {
    /// Memory type.
    pub memory: Stage2MemAttr,
    /// Shareability (inner for Normal memory, non-shareable for Device).
    pub shareability: Shareability,
    /// Guest data access permission.
    pub access: Stage2Access,
    /// Whether guest instruction fetch is forbidden.
    pub execute_never: bool,
}

impl Stage2Attributes {
    /// Normal write-back guest RAM, inner shareable.
    pub const fn normal(access: Stage2Access, execute_never: bool) -> Self {
        Self {
            memory: Stage2MemAttr::NORMAL_WRITE_BACK,
            shareability: Shareability::InnerShareable,
            access,
            execute_never,
        }
    }

    /// Device-nGnRE passthrough MMIO, never executable.
    pub const fn device(access: Stage2Access) -> Self {
        Self {
            memory: Stage2MemAttr::DEVICE_NGNRE,
            shareability: Shareability::NonShareable,
            access,
            execute_never: true,
        }
    }
}

/// Why a stage-2 configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage2ConfigError {
    /// The IPA size is outside 25..=48 bits (T0SZ 16..=39 without FEAT_TTST/LPA2).
    UnsupportedIpaSize(u32),
    /// The IPA size exceeds the physical address size programmed in VTCR_EL2.PS,
    /// which makes every walk fault (ARM ARM D8.1.7).
    IpaExceedsPaRange {
        /// Requested IPA size in bits.
        ipa_bits: u32,
        /// PA size in bits.
        pa_bits: u32,
    },
}

/// A stage-2 regime for a given IPA size: start level and root concatenation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2 {
    ipa_bits: u32,
    start_level: u8,
    root_tables: usize,
}

impl Stage2 {
    /// Smallest supported IPA size (T0SZ = 39).
    pub const MIN_IPA_BITS: u32 = 25;
    /// Largest supported IPA size (T0SZ = 16).
    pub const MAX_IPA_BITS: u32 = 48;

    /// The regime for an IPA size of `ipa_bits`.
    ///
    /// Picks the deepest start level that can resolve the IPA with at most 16
    /// concatenated root tables, which saves one lookup level: ARM ARM D8.2.6
    /// (and the pseudocode AArch64.S2InconsistentSL) allows a start level L
    /// for IPA sizes from `(3 - L) * 9 + 13` up to `(3 - L) * 9 + 25` bits,
    /// the top 4 of those resolved by concatenating up to 16 tables.
    /// So: 25..=34 bits start at level 2, 35..=43 at level 1, 44..=48 at level 0.
    pub const fn new(ipa_bits: u32) -> Result<Self, Stage2ConfigError> {
        if ipa_bits < Self::MIN_IPA_BITS || ipa_bits > Self::MAX_IPA_BITS {
            return Err(Stage2ConfigError::UnsupportedIpaSize(ipa_bits));
        }
        let start_level: u8 = if ipa_bits <= 34 {
            2
        } else if ipa_bits <= 43 {
            1
        } else {
            0
        };
        // Bits the initial lookup resolves; beyond 9, each extra bit doubles
        // the number of concatenated tables.
        let root_bits = ipa_bits - level_shift(start_level);
        let root_tables = if root_bits > 9 {
            1 << (root_bits - 9)
        } else {
            1
        };
        Ok(Self {
            ipa_bits,
            start_level,
            root_tables,
        })
    }

    /// IPA size in bits.
    pub const fn ipa_bits(&self) -> u32 {
        self.ipa_bits
    }

    /// VTCR_EL2.T0SZ.
    pub const fn t0sz(&self) -> u8 {
        (64 - self.ipa_bits) as u8
    }

    /// VTCR_EL2.SL0 for the 4 KiB granule: 0b00 = level 2, 0b01 = level 1,
    /// 0b10 = level 0.
    pub const fn sl0(&self) -> u8 {
        2 - self.start_level
    }

    /// VTCR_EL2 value: T0SZ, SL0, walks Normal write-back inner shareable,
    /// 4 KiB granule, PS from `pa_range`, VS = 1 for 16-bit VMIDs, bit 31 RES1.
    pub const fn vtcr_el2(
        &self,
        pa_range: PaRange,
        vmid_16bit: bool,
    ) -> Result<u64, Stage2ConfigError> {
        if self.ipa_bits > pa_range.bits() {
            return Err(Stage2ConfigError::IpaExceedsPaRange {
                ipa_bits: self.ipa_bits,
                pa_bits: pa_range.bits(),
            });
        }
        Ok(VtcrEl2::RES1
            .with_t0sz(self.t0sz() as u64)
            .with_sl0(self.sl0() as u64)
            .with_irgn0(WALK_CACHEABILITY)
            .with_orgn0(WALK_CACHEABILITY)
            .with_sh0(WALK_SHAREABILITY)
            .with_tg0(GRANULE_4K)
            .with_ps(pa_range.field() as u64)
            .with_vs(vmid_16bit)
            .0)
    }
}

impl Regime for Stage2 {
    type Address = Ipa;
    type Attributes = Stage2Attributes;

    fn input_bits(&self) -> u32 {
        self.ipa_bits
    }
    fn start_level(&self) -> u8 {
        self.start_level
    }
    fn root_tables(&self) -> usize {
        self.root_tables
    }

    fn leaf_bits(attributes: &Stage2Attributes) -> u64 {
        let mut bits = AF
            | ((attributes.memory.0 as u64) << ATTR_SHIFT)
            | (attributes.access.bits() << AP_SHIFT)
            | (attributes.shareability.bits() << SH_SHIFT);
        if attributes.execute_never {
            bits |= XN;
        }
        bits
    }

    fn decode_leaf(descriptor: u64) -> Stage2Attributes {
        Stage2Attributes {
            memory: Stage2MemAttr(((descriptor >> ATTR_SHIFT) & 0xf) as u8),
            shareability: Shareability::from_descriptor(descriptor),
            access: match (descriptor >> AP_SHIFT) & 0b11 {
                0b00 => Stage2Access::None,
                0b01 => Stage2Access::ReadOnly,
                0b10 => Stage2Access::WriteOnly,
                _ => Stage2Access::ReadWrite,
            },
            execute_never: descriptor & XN != 0,
        }
    }
}

/// Bit position of the lowest input-address bit a level resolves with the
/// 4 KiB granule: level 3 resolves [20:12], level 2 [29:21], level 1
/// [38:30], level 0 [47:39].
pub(crate) const fn level_shift(level: u8) -> u32 {
    12 + 9 * (3 - level as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage2_40_bit_ipa_starts_at_level_1_with_two_concatenated_tables() {
        let s2 = Stage2::new(40).unwrap();
        assert_eq!((s2.start_level(), s2.root_tables()), (1, 2));
        assert_eq!((s2.t0sz(), s2.sl0()), (24, 0b01));
    }

    #[test]
    fn stage2_start_level_and_concatenation_follow_the_ipa_size() {
        // (ipa bits, start level, root tables, SL0)
        let cases = [
            (25, 2, 1, 0b00),
            (30, 2, 1, 0b00),
            (32, 2, 4, 0b00),
            (34, 2, 16, 0b00),
            (35, 1, 1, 0b01),
            (39, 1, 1, 0b01),
            (42, 1, 8, 0b01),
            (43, 1, 16, 0b01),
            (44, 0, 1, 0b10),
            (48, 0, 1, 0b10),
        ];
        for (bits, level, tables, sl0) in cases {
            let s2 = Stage2::new(bits).unwrap();
            assert_eq!(
                (s2.start_level(), s2.root_tables(), s2.sl0()),
                (level, tables, sl0),
                "{bits}-bit IPA"
            );
            assert_eq!(s2.t0sz() as u32, 64 - bits);
        }
    }

    #[test]
    fn stage2_rejects_ipa_sizes_outside_25_to_48_bits() {
        assert_eq!(
            Stage2::new(24),
            Err(Stage2ConfigError::UnsupportedIpaSize(24))
        );
        assert_eq!(
            Stage2::new(49),
            Err(Stage2ConfigError::UnsupportedIpaSize(49))
        );
    }

    #[test]
    fn vtcr_el2_encodes_every_field() {
        let s2 = Stage2::new(40).unwrap();
        let vtcr = s2.vtcr_el2(PaRange::from_id_field(2), true).unwrap();
        // RES1 | VS | PS=40 bits | TG0=4K SH0=inner ORGN0=IRGN0=WB | SL0=1 | T0SZ=24
        assert_eq!(
            vtcr,
            (1 << 31) | (1 << 19) | (2 << 16) | 0x3500 | (1 << 6) | 24
        );
        assert_eq!(
            s2.vtcr_el2(PaRange::from_id_field(1), false),
            Err(Stage2ConfigError::IpaExceedsPaRange {
                ipa_bits: 40,
                pa_bits: 36
            })
        );
    }

    #[test]
    fn tcr_el2_and_mair_el2_values() {
        assert_eq!(
            El2Stage1::tcr_el2(PaRange::BITS_48).0,
            0x8080_0000 | (5 << 16) | 0x3500 | 16
        );
        assert_eq!(MAIR_EL2, 0x04ff);
        // 52-bit PARange clamps to 48 bits.
        assert_eq!(PaRange::from_id_field(6), PaRange::BITS_48);
    }

    #[test]
    fn attributes_round_trip_through_descriptor_bits() {
        for access in [El2Access::ReadWrite, El2Access::ReadOnly] {
            for xn in [false, true] {
                let attrs = El2Attributes::normal(access, xn);
                assert_eq!(El2Stage1::decode_leaf(El2Stage1::leaf_bits(&attrs)), attrs);
            }
        }
        let device = El2Attributes::device();
        assert_eq!(
            El2Stage1::decode_leaf(El2Stage1::leaf_bits(&device)),
            device
        );
        for access in [
            Stage2Access::None,
            Stage2Access::ReadOnly,
            Stage2Access::WriteOnly,
            Stage2Access::ReadWrite,
        ] {
            for attrs in [
                Stage2Attributes::normal(access, false),
                Stage2Attributes::device(access),
            ] {
                assert_eq!(Stage2::decode_leaf(Stage2::leaf_bits(&attrs)), attrs);
            }
        }
    }
}
