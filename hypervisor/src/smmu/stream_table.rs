//! Stream table layout (IHI 0070, 3.3 "Data structures and translation
//! procedure"): linear, or two-level with SPLIT = 8 (level-2 tables of 256
//! STEs, 16 KiB). Pure arithmetic: what to allocate and where a StreamID's
//! STE lives.

use super::regs::{StrtabBaseCfg, STRTAB_FMT_2LEVEL, STRTAB_FMT_LINEAR};
use super::{SmmuError, SmmuFeatures, Ste};

/// StreamID bits a level-2 table resolves (SMMU_STRTAB_BASE_CFG.SPLIT).
pub const SPLIT: u8 = 8;
/// Bytes of one level-1 descriptor.
pub const L1_DESCRIPTOR_BYTES: u64 = 8;
/// Bytes of one level-2 table: 2^SPLIT STEs.
pub const L2_TABLE_BYTES: u64 = Ste::BYTES << SPLIT;
/// Most StreamID bits a linear table covers (256 KiB); beyond, StreamIDs are
/// out of range (aborted, C_BAD_STREAMID recorded).
pub const MAX_LINEAR_SID_BITS: u8 = 12;
/// Most StreamID bits a two-level table covers (a 32 KiB level 1).
pub const MAX_TWO_LEVEL_SID_BITS: u8 = 20;

/// How the stream table is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamTableFormat {
    /// One array of STEs.
    Linear,
    /// Level-1 descriptors pointing at level-2 arrays of 2^SPLIT STEs.
    TwoLevel,
}

/// Where the STE of one StreamID lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteLocation {
    /// Byte offset of the STE in a linear table.
    Linear {
        /// Byte offset from the table's base.
        offset: u64,
    },
    /// In a two-level table.
    TwoLevel {
        /// Index of the level-1 descriptor.
        l1_index: u32,
        /// Byte offset of the STE in its level-2 table.
        l2_offset: u64,
    },
}

/// The stream table to build for an SMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTablePlan {
    /// Linear or two-level.
    pub format: StreamTableFormat,
    /// StreamID bits the table covers (SMMU_STRTAB_BASE_CFG.LOG2SIZE).
    pub sid_bits: u8,
}

impl StreamTablePlan {
    /// The plan for `features`: two-level when supported and StreamIDs
    /// need more than one level-2 table, else linear; capped so a large
    /// SIDSIZE does not cost megabytes.
    pub fn new(features: &SmmuFeatures) -> Self {
        Self::for_sid_bits(features.sid_bits, features.two_level_stream_table)
    }

    /// The plan for `sid_bits` StreamID bits, with or without two-level support.
    pub fn for_sid_bits(sid_bits: u8, two_level: bool) -> Self {
        if two_level && sid_bits > SPLIT {
            Self {
                format: StreamTableFormat::TwoLevel,
                sid_bits: sid_bits.min(MAX_TWO_LEVEL_SID_BITS),
            }
        } else {
            Self {
                format: StreamTableFormat::Linear,
                sid_bits: sid_bits.min(MAX_LINEAR_SID_BITS),
            }
        }
    }

    /// Bytes of the table SMMU_STRTAB_BASE points at (linear table, or level 1).
    pub const fn table_bytes(&self) -> u64 {
        match self.format {
            StreamTableFormat::Linear => Ste::BYTES << self.sid_bits,
            StreamTableFormat::TwoLevel => L1_DESCRIPTOR_BYTES << (self.sid_bits - SPLIT),
        }
    }

    /// Alignment of that table: its size, at least 64 bytes.
    pub const fn table_align(&self) -> u64 {
        let bytes = self.table_bytes();
        if bytes < 64 {
            64
        } else {
            bytes
        }
    }

    /// Number of level-1 descriptors (0 for a linear table).
    pub const fn l1_entries(&self) -> u32 {
        match self.format {
            StreamTableFormat::Linear => 0,
            StreamTableFormat::TwoLevel => 1 << (self.sid_bits - SPLIT),
        }
    }

    /// SMMU_STRTAB_BASE_CFG for this table.
    pub const fn base_cfg(&self) -> StrtabBaseCfg {
        let cfg = StrtabBaseCfg(0).with_log2size(self.sid_bits as u32);
        match self.format {
            StreamTableFormat::Linear => cfg.with_fmt(STRTAB_FMT_LINEAR),
            StreamTableFormat::TwoLevel => cfg.with_fmt(STRTAB_FMT_2LEVEL).with_split(SPLIT as u32),
        }
    }

    /// Where the STE of `sid` lives, or an error if the table does not cover it.
    pub fn locate(&self, sid: u32) -> Result<SteLocation, SmmuError> {
        if u64::from(sid) >> self.sid_bits != 0 {
            return Err(SmmuError::StreamIdTooLarge {
                sid,
                bits: self.sid_bits,
            });
        }
        Ok(match self.format {
            StreamTableFormat::Linear => SteLocation::Linear {
                offset: u64::from(sid) * Ste::BYTES,
            },
            StreamTableFormat::TwoLevel => SteLocation::TwoLevel {
                l1_index: sid >> SPLIT,
                l2_offset: u64::from(sid & ((1 << SPLIT) - 1)) * Ste::BYTES,
            },
        })
    }
}

/// A level-1 stream table descriptor: L2Ptr [51:6] and Span [4:0], with
/// Span = SPLIT + 1 (the level-2 table holds 2^(Span - 1) STEs). Span 0
/// (an all-zero descriptor) means no level-2 table: its StreamIDs abort.
pub const fn l1_descriptor(l2_table: u64) -> u64 {
    (l2_table & 0x000f_ffff_ffff_ffc0) | (SPLIT as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_sidsize_16_gets_a_two_level_table_of_2_kib() {
        let plan = StreamTablePlan::for_sid_bits(16, true);
        assert_eq!(plan.format, StreamTableFormat::TwoLevel);
        assert_eq!(plan.sid_bits, 16);
        assert_eq!(plan.table_bytes(), 2048);
        assert_eq!(plan.table_align(), 2048);
        assert_eq!(plan.l1_entries(), 256);
        // FMT = 1 at [17:16], SPLIT = 8 at [10:6], LOG2SIZE = 16.
        assert_eq!(plan.base_cfg().0, 0x1_0210);
        assert_eq!(L2_TABLE_BYTES, 16 * 1024);
    }

    #[test]
    fn small_or_linear_only_smmus_get_a_linear_table() {
        let plan = StreamTablePlan::for_sid_bits(8, true);
        assert_eq!(plan.format, StreamTableFormat::Linear);
        assert_eq!(plan.table_bytes(), 16 * 1024);
        assert_eq!(plan.base_cfg().0, 8);
        let plan = StreamTablePlan::for_sid_bits(0, false);
        assert_eq!(plan.table_bytes(), 64);
        assert_eq!(plan.table_align(), 64);
        // Without two levels, a large SIDSIZE is capped.
        let plan = StreamTablePlan::for_sid_bits(32, false);
        assert_eq!(plan.sid_bits, MAX_LINEAR_SID_BITS);
        assert_eq!(plan.table_bytes(), 256 * 1024);
        assert_eq!(plan.l1_entries(), 0);
    }

    #[test]
    fn two_level_tables_are_capped_too() {
        let plan = StreamTablePlan::for_sid_bits(32, true);
        assert_eq!(plan.sid_bits, MAX_TWO_LEVEL_SID_BITS);
        assert_eq!(plan.table_bytes(), 32 * 1024);
        assert_eq!(
            plan.locate(1 << 20),
            Err(SmmuError::StreamIdTooLarge {
                sid: 1 << 20,
                bits: 20
            })
        );
    }

    #[test]
    fn locate_splits_the_streamid_at_split() {
        let plan = StreamTablePlan::for_sid_bits(16, true);
        assert_eq!(
            plan.locate(0x0123).unwrap(),
            SteLocation::TwoLevel {
                l1_index: 1,
                l2_offset: 0x23 * 64
            }
        );
        assert_eq!(
            plan.locate(0xffff).unwrap(),
            SteLocation::TwoLevel {
                l1_index: 0xff,
                l2_offset: 0xff * 64
            }
        );
        assert!(plan.locate(0x1_0000).is_err());
        let linear = StreamTablePlan::for_sid_bits(6, false);
        assert_eq!(
            linear.locate(63).unwrap(),
            SteLocation::Linear { offset: 63 * 64 }
        );
        assert_eq!(
            linear.locate(64),
            Err(SmmuError::StreamIdTooLarge { sid: 64, bits: 6 })
        );
    }

    #[test]
    fn l1_descriptor_places_l2ptr_and_span() {
        assert_eq!(l1_descriptor(0x4123_4000), 0x4123_4009);
        // Bits outside L2Ptr [51:6] never leak into the descriptor.
        assert_eq!(l1_descriptor(u64::MAX), 0x000f_ffff_ffff_ffc9);
    }
}
