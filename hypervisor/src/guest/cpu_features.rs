//! The CPU a guest sees: what the ID registers tell EL1 about the
//! processor, with every feature the hypervisor does not handle taken out.
//!
//! HCR_EL2.TID3 traps EL1 reads of the ID register space (op0 = 3, op1 = 0,
//! CRn = 0, CRm = 1..7) to EL2. The kernel reads the physical register and
//! hands the value here; the guest gets [`guest_value`]. The policy is an
//! allowlist per AArch64 register: a field is passed through only when the
//! hypervisor lets the guest use the feature as it is (a feature that needs
//! no EL2 state, or whose state stays on the partition's own pinned CPUs);
//! every other field reads as zero, "not implemented". New fields the
//! architecture adds later therefore stay hidden until someone reviews
//! them. A few fields are capped rather than hidden (the physical address
//! size at the stage-2 input size; the GIC system-register interface at
//! GICv3).
//!
//! Hidden, with the reason:
//! - SVE, SME, FPMR: the vector state is not switched and `ZCR_EL2` /
//!   `SMCR_EL2` are not managed; CPTR_EL2 traps their use (UNDEF).
//! - MTE: allocation tags need HCR_EL2.ATA and tag storage for guest RAM.
//! - Pointer authentication: keys would be guest state the hypervisor does
//!   not save; HCR_EL2 leaves PAC instructions trapping (UNDEF).
//! - RAS (and SpecSEI): the error-record registers are physical, shared by
//!   every partition.
//! - AMU, SPE, TRBE, trace, BRBE, MPAM, LORegions, LS64: physical resources
//!   or EL2-managed state.
//! - EL2-only features (EL2, SEL2, VH, VMIDBits, NV, FGT, HCX, TWED, FWB,
//!   EVT, XNX, the stage-2 granule fields): the guest runs at EL1 only.
#![forbid(unsafe_code)]

use super::trap::SysRegEncoding;

/// A field of an ID register: bits `[shift + 3 : shift]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// Passed through.
    Keep(u8),
    /// Passed through, capped at the value given (unsigned fields only).
    Cap(u8, u64),
}

/// Where an ID register sits: CRm and op2 of `S3_0_C0_<CRm>_<op2>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdReg {
    /// CRm, 1..=7.
    pub crm: u8,
    /// op2, 0..=7.
    pub op2: u8,
}

/// The syndrome encoding of an ID register, as [`crate::guest::trap::decode`]
/// reports it.
pub const fn encoding(reg: IdReg) -> SysRegEncoding {
    SysRegEncoding::new(3, 0, 0, reg.crm, reg.op2)
}

/// The ID register a trapped access names, if it lies in the ID space.
pub fn decode(encoding: SysRegEncoding) -> Option<IdReg> {
    let crm = encoding.crm();
    (encoding.op0() == 3 && encoding.op1() == 0 && encoding.crn() == 0 && (1..=7).contains(&crm))
        .then_some(IdReg {
            crm,
            op2: encoding.op2(),
        })
}

/// The largest physical address size a guest is told (ID_AA64MMFR0_EL1.
/// PARange 0b0010: 40 bits), the stage-2 input size of every partition.
pub const GUEST_PARANGE: u64 = 0b0010;

const fn reg(crm: u8, op2: u8) -> IdReg {
    IdReg { crm, op2 }
}

/// ID_AA64PFR0_EL1.
pub const ID_AA64PFR0: IdReg = reg(4, 0);
/// ID_AA64PFR1_EL1.
pub const ID_AA64PFR1: IdReg = reg(4, 1);
/// ID_AA64ZFR0_EL1 (SVE).
pub const ID_AA64ZFR0: IdReg = reg(4, 4);
/// ID_AA64SMFR0_EL1 (SME).
pub const ID_AA64SMFR0: IdReg = reg(4, 5);
/// ID_AA64DFR0_EL1.
pub const ID_AA64DFR0: IdReg = reg(5, 0);
/// ID_AA64ISAR0_EL1.
pub const ID_AA64ISAR0: IdReg = reg(6, 0);
/// ID_AA64ISAR1_EL1.
pub const ID_AA64ISAR1: IdReg = reg(6, 1);
/// ID_AA64ISAR2_EL1.
pub const ID_AA64ISAR2: IdReg = reg(6, 2);
/// ID_AA64MMFR0_EL1.
pub const ID_AA64MMFR0: IdReg = reg(7, 0);
/// ID_AA64MMFR1_EL1.
pub const ID_AA64MMFR1: IdReg = reg(7, 1);
/// ID_AA64MMFR2_EL1.
pub const ID_AA64MMFR2: IdReg = reg(7, 2);

/// The fields of an AArch64 ID register the guest may see, by register.
/// Registers of CRm 4..=7 not listed here read as zero.
fn allowlist(reg: IdReg) -> &'static [Field] {
    use Field::{Cap, Keep};
    match reg {
        // EL0, EL1, EL3, FP, AdvSIMD, GIC (system registers, GICv3 at most),
        // DIT, CSV2, CSV3. Hidden: EL2, RAS, SVE, SEL2, MPAM, AMU, RME.
        ID_AA64PFR0 => &[
            Keep(0),
            Keep(4),
            Keep(12),
            Keep(16),
            Keep(20),
            Cap(24, 1),
            Keep(48),
            Keep(56),
            Keep(60),
        ],
        // BT, SSBS, CSV2_frac. Hidden: MTE, RAS_frac, MPAM_frac, SME,
        // RNDR_trap, NMI, GCS and everything newer.
        ID_AA64PFR1 => &[Keep(0), Keep(4), Keep(32)],
        // DebugVer, PMUVer, BRPs, WRPs, CTX_CMPs, DoubleLock. Hidden:
        // TraceVer, PMSVer (SPE), TraceFilt, TraceBuffer, MTPMU, BRBE.
        ID_AA64DFR0 => &[Keep(0), Keep(8), Keep(12), Keep(20), Keep(28), Keep(36)],
        // Every instruction-set field: plain EL0/EL1 instructions.
        ID_AA64ISAR0 => &[
            Keep(4),
            Keep(8),
            Keep(12),
            Keep(16),
            Keep(20),
            Keep(28),
            Keep(32),
            Keep(36),
            Keep(40),
            Keep(44),
            Keep(48),
            Keep(52),
            Keep(56),
            Keep(60),
        ],
        // DPB, JSCVT, FCMA, LRCPC, FRINTTS, SB, SPECRES, BF16, DGH, I8MM,
        // XS. Hidden: APA, API, GPA, GPI (pointer authentication), LS64.
        ID_AA64ISAR1 => &[
            Keep(0),
            Keep(12),
            Keep(16),
            Keep(20),
            Keep(32),
            Keep(36),
            Keep(40),
            Keep(44),
            Keep(48),
            Keep(52),
            Keep(56),
        ],
        // WFxT, RPRES, BC, CLRBHB, CSSC. Hidden: GPA3, APA3, MOPS,
        // PAC_frac and the 128-bit system instructions.
        ID_AA64ISAR2 => &[Keep(0), Keep(4), Keep(20), Keep(28), Keep(52)],
        // PARange (capped at the stage-2 input size), ASIDBits, BigEnd,
        // SNSMem, BigEndEL0, TGran16, TGran64, TGran4, ExS, ECV (self-
        // synchronized counter reads only). Hidden: the stage-2 granule
        // fields, FGT.
        ID_AA64MMFR0 => &[
            Cap(0, GUEST_PARANGE),
            Keep(4),
            Keep(8),
            Keep(12),
            Keep(16),
            Keep(20),
            Keep(24),
            Keep(28),
            Keep(44),
            Cap(60, 1),
        ],
        // HAFDBS, HPDS, PAN, ETS, AFP, nTLBPA, CMOW, ECBHB. Hidden:
        // VMIDBits, VH, LO, SpecSEI, XNX, TWED, HCX, TIDCP1.
        ID_AA64MMFR1 => &[
            Keep(0),
            Keep(12),
            Keep(20),
            Keep(36),
            Keep(44),
            Keep(48),
            Keep(56),
            Keep(60),
        ],
        // CnP, UAO, LSM, IESB, VARange, CCIDX, ST, AT, IDS, TTL, BBM, E0PD.
        // Hidden: NV, FWB, EVT.
        ID_AA64MMFR2 => &[
            Keep(0),
            Keep(4),
            Keep(8),
            Keep(12),
            Keep(16),
            Keep(20),
            Keep(28),
            Keep(32),
            Keep(36),
            Keep(48),
            Keep(52),
            Keep(60),
        ],
        // ID_AA64PFR2, ZFR0, SMFR0, FPFR0, DFR1, DFR2, AFR0, AFR1, ISAR3,
        // MMFR3, MMFR4 and the reserved encodings: nothing.
        _ => &[],
    }
}

/// The value a guest reads from ID register `reg` whose physical value is
/// `host`.
pub fn guest_value(reg: IdReg, host: u64) -> u64 {
    // CRm 1..=3: the AArch32 ID registers (EL0 may run AArch32); they
    // describe the same instructions the AArch64 registers allow, and no
    // AArch32 feature needs EL2 state.
    if reg.crm <= 3 {
        return host;
    }
    allowlist(reg).iter().fold(0, |acc, field| {
        let (shift, cap) = match *field {
            Field::Keep(s) => (s, u64::MAX),
            Field::Cap(s, c) => (s, c),
        };
        let value = ((host >> shift) & 0xf).min(cap);
        acc | (value << shift)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with the feature fields `-cpu max` sets (SVE, SME, MTE, PAC,
    /// RAS, AMU, a 48-bit PARange, FGT): made up field by field, not a dump.
    const MAX_PFR0: u64 = 0x1201_1111_1111_2222;
    const MAX_PFR1: u64 = 0x0000_0011_0100_0221;
    const MAX_ISAR1: u64 = 0x0011_1111_1021_1052;
    const MAX_MMFR0: u64 = 0x1100_0010_0010_1126;

    fn field(value: u64, shift: u32) -> u64 {
        (value >> shift) & 0xf
    }

    #[test]
    fn encoding_and_decode_agree_over_the_whole_id_space() {
        for crm in 1..=7 {
            for op2 in 0..=7 {
                let r = IdReg { crm, op2 };
                assert_eq!(decode(encoding(r)), Some(r));
            }
        }
    }

    #[test]
    fn registers_outside_the_id_space_are_not_decoded() {
        // MIDR_EL1 (CRm 0), ICC_SGI1R_EL1 (op0 3, op1 0, CRn 12), and an
        // op1 = 1 register (CCSIDR_EL1).
        let iss = SysRegEncoding::from_iss;
        assert_eq!(decode(iss(3 << 20)), None);
        let sgi1r = iss((3 << 20) | (5 << 17) | (12 << 10) | (11 << 1));
        assert_eq!(sgi1r, SysRegEncoding::new(3, 0, 12, 11, 5));
        assert_eq!(decode(sgi1r), None);
        assert_eq!(decode(iss((3 << 20) | (1 << 14))), None);
        // The syndrome the trap decoder gives for ID_AA64PFR0_EL1 (with Rt 7
        // and the read bit, which are not part of the register's name).
        let iss_pfr0 = (3 << 20) | (4 << 1) | (7 << 5) | 1;
        assert_eq!(decode(iss(iss_pfr0)), Some(ID_AA64PFR0));
    }

    #[test]
    fn sve_ras_amu_mpam_and_el2_are_hidden_from_pfr0() {
        let g = guest_value(ID_AA64PFR0, MAX_PFR0);
        assert_eq!(field(g, 32), 0, "SVE");
        assert_eq!(field(g, 28), 0, "RAS");
        assert_eq!(field(g, 8), 0, "EL2");
        assert_eq!(field(g, 40), 0, "MPAM");
        assert_eq!(field(g, 44), 0, "AMU");
        assert_eq!(field(g, 0), field(MAX_PFR0, 0), "EL0");
        assert_eq!(field(g, 16), field(MAX_PFR0, 16), "FP");
        assert_eq!(field(g, 20), field(MAX_PFR0, 20), "AdvSIMD");
        assert_eq!(field(g, 56), field(MAX_PFR0, 56), "CSV2");
    }

    #[test]
    fn the_gic_field_says_gicv3_system_registers_at_most() {
        let g = guest_value(ID_AA64PFR0, 3 << 24);
        assert_eq!(field(g, 24), 1);
        assert_eq!(field(guest_value(ID_AA64PFR0, 0), 24), 0);
    }

    #[test]
    fn mte_and_sme_are_hidden_bti_and_ssbs_kept() {
        let g = guest_value(ID_AA64PFR1, MAX_PFR1);
        assert_eq!(field(g, 8), 0, "MTE");
        assert_eq!(field(g, 24), 0, "SME");
        assert_eq!(field(g, 0), field(MAX_PFR1, 0), "BT");
        assert_eq!(field(g, 4), field(MAX_PFR1, 4), "SSBS");
    }

    #[test]
    fn pointer_authentication_is_hidden_everywhere() {
        let g = guest_value(ID_AA64ISAR1, MAX_ISAR1);
        for shift in [4, 8, 24, 28] {
            assert_eq!(field(g, shift), 0, "ISAR1 field at {shift}");
        }
        assert_eq!(field(g, 12), field(MAX_ISAR1, 12), "JSCVT");
        let g2 = guest_value(ID_AA64ISAR2, u64::MAX);
        for shift in [8, 12, 24] {
            assert_eq!(field(g2, shift), 0, "ISAR2 field at {shift}");
        }
    }

    #[test]
    fn the_physical_address_size_is_capped_at_the_stage2_input_size() {
        let g = guest_value(ID_AA64MMFR0, MAX_MMFR0);
        assert_eq!(field(g, 0), GUEST_PARANGE);
        assert_eq!(field(g, 56), 0, "FGT");
        // A smaller physical size stays what it is.
        assert_eq!(field(guest_value(ID_AA64MMFR0, 1), 0), 1);
    }

    #[test]
    fn vector_extensions_and_unlisted_registers_read_as_zero() {
        for r in [
            ID_AA64ZFR0,
            ID_AA64SMFR0,
            reg(4, 2),
            reg(5, 4),
            reg(7, 3),
            reg(7, 4),
        ] {
            assert_eq!(guest_value(r, u64::MAX), 0, "{r:?}");
        }
    }

    #[test]
    fn aarch32_registers_pass_through() {
        assert_eq!(guest_value(reg(1, 0), 0x1234_5678), 0x1234_5678);
        assert_eq!(guest_value(reg(3, 2), 0x11), 0x11);
    }

    #[test]
    fn a_guest_never_sees_a_field_the_host_lacks() {
        // Passing through or capping can only lower a field.
        for crm in 4..=7 {
            for op2 in 0..=7 {
                let r = IdReg { crm, op2 };
                for host in [0, MAX_PFR0, MAX_PFR1, MAX_ISAR1, MAX_MMFR0, u64::MAX] {
                    let g = guest_value(r, host);
                    for shift in (0..64).step_by(4) {
                        assert!(field(g, shift) <= field(host, shift), "{r:?} bit {shift}");
                    }
                }
            }
        }
    }
}
