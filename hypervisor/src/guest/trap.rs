//! Decoding why the guest trapped to EL2 (ESR_EL2), and building the
//! register state that injects an abort into the guest. Pure: the arch
//! layer reads the registers and hands the raw values in.
#![forbid(unsafe_code)]

use crate::mm::Ipa;
use crate::sysreg::{Esr, SpsrEl2};

/// Exception classes (ESR_ELx.EC, ARM ARM D17.2.37) the hypervisor handles.
pub mod ec {
    /// WFI or WFE.
    pub const WFX: u64 = 0x01;
    /// HVC from AArch64.
    pub const HVC64: u64 = 0x16;
    /// SMC from AArch64 (trapped by HCR_EL2.TSC).
    pub const SMC64: u64 = 0x17;
    /// MSR/MRS/system instruction.
    pub const SYSREG: u64 = 0x18;
    /// Instruction abort from a lower EL.
    pub const IABT_LOWER: u64 = 0x20;
    /// Data abort from a lower EL.
    pub const DABT_LOWER: u64 = 0x24;
    /// Data abort taken without a change of EL (used when injecting into EL1).
    pub const DABT_CURRENT: u64 = 0x25;
    /// Instruction abort without a change of EL.
    pub const IABT_CURRENT: u64 = 0x21;
}

/// The system register a trapped MSR/MRS names, as ESR_EL2's ISS (EC 0x18)
/// encodes it: Op0 in ISS[21:20], Op2 [19:17], Op1 [16:14], CRn [13:10],
/// CRm [4:1] (ARM DDI 0487, D24.2.40); the direction and Rt bits are not
/// part of it. The one place that layout is written down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysRegEncoding(u32);

impl SysRegEncoding {
    /// The ISS bits that name the register.
    const MASK: u32 = 0x3f_fc1e;

    /// The register `S<op0>_<op1>_C<crn>_C<crm>_<op2>` (each field cut to its
    /// width).
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self(
            ((op0 as u32 & 3) << 20)
                | ((op2 as u32 & 7) << 17)
                | ((op1 as u32 & 7) << 14)
                | ((crn as u32 & 0xf) << 10)
                | ((crm as u32 & 0xf) << 1),
        )
    }

    /// The register named by a trapped access's ISS.
    pub const fn from_iss(iss: u64) -> Self {
        Self(iss as u32 & Self::MASK)
    }

    /// The encoding as ISS bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Op0.
    pub const fn op0(self) -> u8 {
        ((self.0 >> 20) & 3) as u8
    }

    /// Op1.
    pub const fn op1(self) -> u8 {
        ((self.0 >> 14) & 7) as u8
    }

    /// CRn.
    pub const fn crn(self) -> u8 {
        ((self.0 >> 10) & 0xf) as u8
    }

    /// CRm.
    pub const fn crm(self) -> u8 {
        ((self.0 >> 1) & 0xf) as u8
    }

    /// Op2.
    pub const fn op2(self) -> u8 {
        ((self.0 >> 17) & 7) as u8
    }
}

/// One MMIO access decoded from a data abort syndrome (ISV = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// The faulting IPA.
    pub ipa: Ipa,
    /// Access size in bytes (1, 2, 4, 8).
    pub size: u8,
    /// Write (true) or read.
    pub write: bool,
    /// The general-purpose register transferred (31 = xzr).
    pub reg: u8,
    /// Sign-extend a narrow load (SSE).
    pub sign_extend: bool,
    /// The register is 64 bits wide (SF); else the result is 32-bit.
    pub reg64: bool,
}

/// Why the guest trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapCause {
    /// A stage-2 data abort the hypervisor can emulate (ISV = 1).
    Mmio(MmioAccess),
    /// A stage-2 data abort without a valid syndrome (e.g. a load pair or
    /// a post-indexed access to an emulated region): cannot be emulated.
    DataAbortNoSyndrome { ipa: Ipa, write: bool, dfsc: u8 },
    /// A stage-2 instruction abort (fetch outside the partition's RAM).
    InstructionAbort { ipa: Ipa },
    /// HVC #imm.
    Hvc(u16),
    /// SMC #imm (ELR_EL2 points at the SMC itself: skip it on return).
    Smc(u16),
    /// A trapped system register access.
    SysReg {
        encoding: SysRegEncoding,
        reg: u8,
        read: bool,
    },
    /// WFI/WFE.
    Wfx,
    /// Anything else, with its exception class.
    Other { ec: u8 },
}

/// Decodes ESR_EL2 (+ FAR_EL2 and HPFAR_EL2 for aborts) of a trap from EL1/EL0.
pub fn decode(esr: u64, far: u64, hpfar: u64) -> TrapCause {
    let class = (esr >> 26) & 0x3f;
    let iss = esr & 0x1ff_ffff;
    // HPFAR_EL2.FIPA holds IPA[51:12] in bits [43:4]; the page offset comes from FAR.
    let ipa = Ipa((((hpfar >> 4) & 0xff_ffff_ffff) << 12) | (far & 0xfff));
    match class {
        ec::DABT_LOWER => {
            let write = iss & (1 << 6) != 0;
            if iss & (1 << 24) == 0 {
                return TrapCause::DataAbortNoSyndrome {
                    ipa,
                    write,
                    dfsc: (iss & 0x3f) as u8,
                };
            }
            TrapCause::Mmio(MmioAccess {
                ipa,
                size: 1 << ((iss >> 22) & 3),
                write,
                reg: ((iss >> 16) & 0x1f) as u8,
                sign_extend: iss & (1 << 21) != 0,
                reg64: iss & (1 << 15) != 0,
            })
        }
        ec::IABT_LOWER => TrapCause::InstructionAbort { ipa },
        ec::HVC64 => TrapCause::Hvc((iss & 0xffff) as u16),
        ec::SMC64 => TrapCause::Smc((iss & 0xffff) as u16),
        ec::SYSREG => TrapCause::SysReg {
            encoding: SysRegEncoding::from_iss(iss),
            reg: ((iss >> 5) & 0x1f) as u8,
            read: iss & 1 != 0,
        },
        ec::WFX => TrapCause::Wfx,
        other => TrapCause::Other { ec: other as u8 },
    }
}

impl MmioAccess {
    /// The value a read returns into the guest register, narrowed and
    /// sign- or zero-extended as the syndrome says.
    pub fn load_value(&self, raw: u64) -> u64 {
        let bits = u32::from(self.size) * 8;
        let mut v = if bits == 64 {
            raw
        } else {
            raw & ((1u64 << bits) - 1)
        };
        if self.sign_extend && bits < 64 && v & (1 << (bits - 1)) != 0 {
            v |= !((1u64 << bits) - 1);
        }
        if !self.reg64 {
            v &= 0xffff_ffff;
        }
        v
    }

    /// The value a write stores, taken from the guest register.
    pub fn store_value(&self, reg_value: u64) -> u64 {
        let bits = u32::from(self.size) * 8;
        if bits == 64 {
            reg_value
        } else {
            reg_value & ((1u64 << bits) - 1)
        }
    }
}

/// What to write into the guest's EL1 registers and ELR/SPSR_EL2 to make
/// it take a synchronous external data abort, as hardware would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortInjection {
    /// ESR_EL1 for the guest's handler.
    pub esr_el1: u64,
    /// ELR_EL1: the faulting instruction.
    pub elr_el1: u64,
    /// SPSR_EL1: the guest's PSTATE at the fault.
    pub spsr_el1: u64,
    /// FAR_EL1: the faulting virtual address.
    pub far_el1: u64,
    /// ELR_EL2: where the guest resumes (its vector).
    pub elr_el2: u64,
    /// SPSR_EL2: EL1h with D, A, I, F masked.
    pub spsr_el2: u64,
}

/// Builds the injection of a synchronous external abort (DFSC 0b010000)
/// for a guest data or instruction abort taken at `guest_elr` with PSTATE
/// `guest_spsr`, virtual address `far`, vector base `vbar_el1`
/// (ARM ARM D1.10.2 "exception vectors": the offset depends on the EL and
/// stack pointer the exception is taken from).
pub fn inject_external_abort(
    instruction: bool,
    write: bool,
    guest_elr: u64,
    guest_spsr: u64,
    far: u64,
    vbar_el1: u64,
) -> AbortInjection {
    let from_el0 = guest_spsr & 0b1100 == 0;
    let vector_offset = if from_el0 {
        0x400
    } else if guest_spsr & 1 != 0 {
        0x200
    } else {
        0x000
    };
    let class = match (instruction, from_el0) {
        (false, false) => ec::DABT_CURRENT,
        (false, true) => ec::DABT_LOWER,
        (true, false) => ec::IABT_CURRENT,
        (true, true) => ec::IABT_LOWER,
    };
    let wnr = if write && !instruction { 1 << 6 } else { 0 };
    AbortInjection {
        // DFSC/IFSC 0b010000: synchronous external abort.
        esr_el1: Esr(0)
            .with_ec(class)
            .with_il(true)
            .with_iss(wnr | 0b01_0000)
            .0,
        elr_el1: guest_elr,
        spsr_el1: guest_spsr,
        far_el1: far,
        // VBAR_EL1 is the guest's: wrap as the hardware would.
        elr_el2: vbar_el1.wrapping_add(vector_offset),
        spsr_el2: SpsrEl2::EL1H_MASKED.0,
    }
}

/// Identical injections in a row, each within [`FaultLoop::record`]'s
/// window of the first, that mark a guest as stuck: a guest looping on its
/// own fault handler gets there in well under a second on hardware (a few
/// seconds under QEMU's emulation); one that handles a fault and moves on
/// takes some other exception in between, or repeats far more slowly.
pub const STUCK_REPEATS: u32 = 10_000;

/// Watches the exceptions a vCPU is given for a guest that re-takes the
/// same one forever (its handler returns to the faulting instruction, or
/// its vectors fault themselves): such a vCPU makes no progress and only
/// burns its CPU in EL2, so it is stopped with a clear reason instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultLoop {
    /// PC (ELR_EL2 at the trap) of the last injection.
    pc: u64,
    /// Syndrome given to the guest with it.
    esr: u64,
    /// Identical injections in a row so far.
    repeats: u32,
    /// Counter time of the first of them.
    since: u64,
}

impl FaultLoop {
    /// No injection seen.
    pub const fn new() -> Self {
        Self {
            pc: 0,
            esr: 0,
            repeats: 0,
            since: 0,
        }
    }

    /// Records an injection of syndrome `esr` for the instruction at `pc`
    /// at counter time `now`. Returns the number of identical injections in
    /// a row once it reaches [`STUCK_REPEATS`] within `window` counter ticks
    /// of the first: the guest is stuck.
    pub fn record(&mut self, pc: u64, esr: u64, now: u64, window: u64) -> Option<u32> {
        if pc == self.pc && esr == self.esr && self.repeats > 0 {
            if now.wrapping_sub(self.since) > window {
                // Slow repeats are a guest that retries, not a loop.
                self.repeats = 1;
                self.since = now;
            } else {
                self.repeats = self.repeats.saturating_add(1);
            }
        } else {
            *self = Self {
                pc,
                esr,
                repeats: 1,
                since: now,
            };
        }
        (self.repeats >= STUCK_REPEATS).then_some(self.repeats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_injection_repeated_fast_marks_the_guest_stuck() {
        let mut f = FaultLoop::new();
        for i in 1..STUCK_REPEATS {
            assert_eq!(
                f.record(0x4020_1000, 0x9600_0010, u64::from(i), 1_000_000),
                None
            );
        }
        assert_eq!(
            f.record(
                0x4020_1000,
                0x9600_0010,
                u64::from(STUCK_REPEATS),
                1_000_000
            ),
            Some(STUCK_REPEATS)
        );
    }

    #[test]
    fn a_different_injection_or_a_slow_retry_starts_the_count_again() {
        let mut f = FaultLoop::new();
        for i in 1..STUCK_REPEATS {
            f.record(0x1000, 0x9600_0010, u64::from(i), 1_000_000);
        }
        // Another PC in between: the run is broken.
        assert_eq!(f.record(0x2000, 0x9600_0010, 0, 1_000_000), None);
        assert_eq!(f.record(0x1000, 0x9600_0010, 1, 1_000_000), None);
        // The same fault, but spread over more than the window: a guest
        // that retries now and then, never stuck.
        let mut f = FaultLoop::new();
        for i in 0..u64::from(STUCK_REPEATS) * 2 {
            assert_eq!(f.record(0x1000, 0x9600_0010, i * 1000, 1_000_000), None);
        }
    }

    #[test]
    fn counter_wrap_and_extreme_values_do_not_panic() {
        let mut f = FaultLoop::new();
        for now in [u64::MAX - 1, u64::MAX, 0, 1] {
            assert_eq!(f.record(u64::MAX, u64::MAX, now, u64::MAX), None);
        }
    }

    /// ESR for a data abort from a lower EL with ISV set.
    fn dabt(sas: u64, srt: u64, write: bool, sse: bool, sf: bool) -> u64 {
        (ec::DABT_LOWER << 26)
            | (1 << 25)
            | (1 << 24)
            | (sas << 22)
            | ((sse as u64) << 21)
            | (srt << 16)
            | ((sf as u64) << 15)
            | ((write as u64) << 6)
            | 0x07
    }

    #[test]
    fn data_abort_with_syndrome_decodes_to_mmio_access_at_the_full_ipa() {
        // HPFAR_EL2.FIPA (bits [43:4]) holds IPA[51:12].
        let cause = decode(
            dabt(2, 5, true, false, false),
            0xffff_0000_0900_0018,
            (0x0900_0000u64 >> 12) << 4,
        );
        assert_eq!(
            cause,
            TrapCause::Mmio(MmioAccess {
                ipa: Ipa(0x0900_0018),
                size: 4,
                write: true,
                reg: 5,
                sign_extend: false,
                reg64: false
            })
        );
    }

    #[test]
    fn high_ipa_bits_come_from_hpfar() {
        // IPA 0x40_1000_2008: HPFAR_EL2.FIPA = IPA >> 12 placed at bit 4.
        let hpfar = (0x40_1000_2008u64 >> 12) << 4;
        match decode(dabt(3, 1, false, false, true), 0x8, hpfar) {
            TrapCause::Mmio(a) => assert_eq!(a.ipa, Ipa(0x40_1000_2008)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn abort_without_syndrome_is_not_emulated() {
        let esr = (ec::DABT_LOWER << 26) | (1 << 25) | (1 << 6) | 0x07;
        assert_eq!(
            decode(esr, 0x10, 0x10 << 4),
            TrapCause::DataAbortNoSyndrome {
                ipa: Ipa(0x10010),
                write: true,
                dfsc: 7
            }
        );
    }

    #[test]
    fn hvc_smc_and_others_decode() {
        assert_eq!(
            decode((ec::HVC64 << 26) | (1 << 25) | 0x12, 0, 0),
            TrapCause::Hvc(0x12)
        );
        assert_eq!(
            decode((ec::SMC64 << 26) | (1 << 25), 0, 0),
            TrapCause::Smc(0)
        );
        assert_eq!(decode(0x3c << 26, 0, 0), TrapCause::Other { ec: 0x3c });
    }

    #[test]
    fn loads_are_narrowed_and_extended_as_the_syndrome_says() {
        let mut a = MmioAccess {
            ipa: Ipa(0),
            size: 1,
            write: false,
            reg: 0,
            sign_extend: true,
            reg64: true,
        };
        assert_eq!(a.load_value(0x1ff), 0xffff_ffff_ffff_ffff);
        a.reg64 = false;
        assert_eq!(a.load_value(0x80), 0xffff_ff80);
        a.sign_extend = false;
        assert_eq!(a.load_value(0x1234), 0x34);
        a.size = 8;
        a.reg64 = true;
        assert_eq!(a.load_value(u64::MAX), u64::MAX);
        assert_eq!(MmioAccess { size: 2, ..a }.store_value(0x1234_5678), 0x5678);
    }

    #[test]
    fn injected_abort_from_el1h_uses_the_current_el_spx_vector() {
        let inj = inject_external_abort(false, true, 0x4020_1000, 0x3c5, 0x5000_0000, 0x4020_0800);
        assert_eq!(inj.elr_el2, 0x4020_0a00);
        assert_eq!(inj.esr_el1 >> 26, ec::DABT_CURRENT);
        assert_eq!(inj.esr_el1 & (1 << 6), 1 << 6, "WnR kept");
        assert_eq!(inj.esr_el1 & 0x3f, 0x10, "synchronous external abort");
        assert_eq!(inj.esr_el1 & (1 << 25), 1 << 25, "32-bit instruction");
        assert_eq!(
            (inj.elr_el1, inj.spsr_el1, inj.far_el1),
            (0x4020_1000, 0x3c5, 0x5000_0000)
        );
        assert_eq!(inj.spsr_el2, 0x3c5);
    }

    #[test]
    fn injection_with_a_vbar_at_the_top_of_the_address_space_wraps_not_panics() {
        let inj = inject_external_abort(false, false, 0, 0x3c5, 0, !0x7ff);
        assert_eq!(inj.elr_el2, (!0x7ff_u64).wrapping_add(0x200));
    }

    #[test]
    fn injected_abort_from_el0_uses_the_lower_el_vector() {
        let inj = inject_external_abort(true, false, 0x1000, 0x0, 0x1000, 0x8000);
        assert_eq!(inj.elr_el2, 0x8400);
        assert_eq!(inj.esr_el1 >> 26, ec::IABT_LOWER);
    }
}
