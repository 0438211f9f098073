//! What the hypervisor does for a guest's trap, decided from the decoded
//! cause and the partition's configuration: the table `kernel/vcpu.rs`
//! carries out. PSCI calls answered without touching any state are
//! answered here too ([`psci_answer`]).
#![forbid(unsafe_code)]

use super::psci::{self, PsciCall};
use super::trap::{MmioAccess, SysRegEncoding, TrapCause};
use crate::manifest::WfiPolicy;
use crate::mm::Ipa;

/// What to do for a synchronous trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncAction {
    /// A PSCI or SMCCC call in x0..x3. `skip_first`: ELR_EL2 points at
    /// the trapped instruction itself (a trapped SMC), so the return
    /// address moves past it before the call is handled (a call that
    /// never returns, CPU_OFF, does not care).
    Call {
        /// Skip the trapped instruction before handling the call.
        skip_first: bool,
    },
    /// An emulated MMIO access (or an abort, if no device is there).
    Mmio(MmioAccess),
    /// A data abort the syndrome cannot describe: never emulated, an abort
    /// is injected (logged by device name when it hit an emulated window).
    NoSyndrome {
        /// The IPA.
        ipa: Ipa,
        /// Whether it was a write.
        write: bool,
    },
    /// An instruction fetch outside the partition: abort injected.
    FetchAbort {
        /// The IPA.
        ipa: Ipa,
    },
    /// WFI or WFE: skip it; then, if `wait`, wait for an interrupt at EL2
    /// (a WFI under `wfi = "doorbell"`).
    Wfx {
        /// Wait for an interrupt before resuming.
        wait: bool,
    },
    /// A read of an ID register (HCR_EL2.TID3), answered from the filtered
    /// physical value.
    IdRegisterRead {
        /// The register.
        encoding: SysRegEncoding,
        /// The destination register.
        reg: u8,
    },
    /// A system register write the vGIC may emulate (ICC_SGI1R, ASGI1R,
    /// SGI0R, DIR); undefined instruction if it does not.
    SysRegWrite {
        /// The register.
        encoding: SysRegEncoding,
        /// The source register.
        reg: u8,
    },
    /// Anything else: undefined instruction injected (logged, counted).
    Undefined,
}

/// ESR_EL2.ISS.TI for a trapped WFx (ARM DDI 0487, D17.2.37): 0b00 is WFI.
const TI_MASK: u64 = 0b11;
const TI_WFI: u64 = 0b00;

/// The action for synchronous trap `cause` (with its raw ESR_EL2 `esr`)
/// of a partition whose WFI policy is `wfi`.
pub fn sync_action(cause: TrapCause, esr: u64, wfi: WfiPolicy) -> SyncAction {
    match cause {
        TrapCause::Hvc(_) => SyncAction::Call { skip_first: false },
        TrapCause::Smc(_) => SyncAction::Call { skip_first: true },
        TrapCause::Mmio(access) => SyncAction::Mmio(access),
        TrapCause::DataAbortNoSyndrome { ipa, write, .. } => SyncAction::NoSyndrome { ipa, write },
        TrapCause::InstructionAbort { ipa } => SyncAction::FetchAbort { ipa },
        TrapCause::Wfx => SyncAction::Wfx {
            wait: esr & TI_MASK == TI_WFI && wfi == WfiPolicy::Doorbell,
        },
        TrapCause::SysReg {
            encoding,
            reg,
            read: true,
        } if super::cpu_features::decode(encoding).is_some() => {
            SyncAction::IdRegisterRead { encoding, reg }
        }
        TrapCause::SysReg {
            encoding,
            reg,
            read: false,
        } => SyncAction::SysRegWrite { encoding, reg },
        TrapCause::SysReg { .. } | TrapCause::Other { .. } => SyncAction::Undefined,
    }
}

/// The answer to a PSCI or SMCCC call that needs no partition state, or
/// `None` for the calls the kernel carries out (CPU_ON, CPU_OFF,
/// AFFINITY_INFO, SYSTEM_OFF, SYSTEM_RESET) and the vendor calls.
pub fn psci_answer(call: &PsciCall) -> Option<i64> {
    match *call {
        PsciCall::Version => Some(psci::VERSION_1_0),
        PsciCall::Features(function) => Some(if psci::implemented(function) {
            0
        } else {
            psci::ret::NOT_SUPPORTED
        }),
        PsciCall::SmcccVersion => Some(psci::ret::NOT_SUPPORTED),
        // No Trusted OS to migrate (PSCI 1.0, 5.8: type 2).
        PsciCall::MigrateInfoType => Some(2),
        // A standby that wakes at once is a valid CPU_SUSPEND.
        PsciCall::CpuSuspend => Some(0),
        PsciCall::Unknown(_)
        | PsciCall::CpuOn { .. }
        | PsciCall::AffinityInfo { .. }
        | PsciCall::CpuOff
        | PsciCall::SystemOff
        | PsciCall::SystemReset => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::trap::decode;

    /// ESR_EL2 with exception class `ec` and ISS `iss`.
    fn esr(ec: u64, iss: u64) -> u64 {
        ec << 26 | 1 << 25 | iss
    }

    #[test]
    fn hvc_is_a_call_and_smc_a_call_that_skips_its_instruction_first() {
        let hvc = esr(0x16, 0);
        let smc = esr(0x17, 0);
        assert_eq!(
            sync_action(decode(hvc, 0, 0), hvc, WfiPolicy::Resident),
            SyncAction::Call { skip_first: false }
        );
        assert_eq!(
            sync_action(decode(smc, 0, 0), smc, WfiPolicy::Resident),
            SyncAction::Call { skip_first: true }
        );
    }

    #[test]
    fn only_a_wfi_under_the_doorbell_policy_waits() {
        let wfi = esr(0x01, 0b00);
        let wfe = esr(0x01, 0b01);
        let wait = |e: u64, policy| sync_action(decode(e, 0, 0), e, policy);
        assert_eq!(
            wait(wfi, WfiPolicy::Doorbell),
            SyncAction::Wfx { wait: true }
        );
        assert_eq!(
            wait(wfi, WfiPolicy::Resident),
            SyncAction::Wfx { wait: false }
        );
        assert_eq!(
            wait(wfe, WfiPolicy::Doorbell),
            SyncAction::Wfx { wait: false }
        );
    }

    #[test]
    fn data_aborts_with_and_without_syndrome_and_fetch_aborts() {
        // ISV = 1, 4-byte write of x3.
        let with = esr(0x24, 1 << 24 | 2 << 22 | 3 << 16 | 1 << 6);
        let hpfar = 0x0900_0000 >> 8;
        match sync_action(decode(with, 0x10, hpfar), with, WfiPolicy::Resident) {
            SyncAction::Mmio(access) => {
                assert_eq!(access.ipa, Ipa(0x0900_0010));
                assert!(access.write);
                assert_eq!((access.size, access.reg), (4, 3));
            }
            other => panic!("{other:?}"),
        }
        let without = esr(0x24, 1 << 6);
        assert_eq!(
            sync_action(decode(without, 0, hpfar), without, WfiPolicy::Resident),
            SyncAction::NoSyndrome {
                ipa: Ipa(0x0900_0000),
                write: true
            }
        );
        let fetch = esr(0x20, 0);
        assert_eq!(
            sync_action(decode(fetch, 0, hpfar), fetch, WfiPolicy::Resident),
            SyncAction::FetchAbort {
                ipa: Ipa(0x0900_0000)
            }
        );
    }

    #[test]
    fn id_register_reads_are_answered_other_sysreg_reads_and_unknown_classes_are_undefined() {
        // ID_AA64PFR0_EL1: Op0 3, Op1 0, CRn 0, CRm 4, Op2 0; read into x5.
        let iss = 3 << 20 | 4 << 1 | 5 << 5 | 1;
        let read = esr(0x18, iss);
        assert_eq!(
            sync_action(decode(read, 0, 0), read, WfiPolicy::Resident),
            SyncAction::IdRegisterRead {
                encoding: SysRegEncoding::from_iss(iss),
                reg: 5
            }
        );
        // The same register written: left to the vGIC, which refuses it.
        let write = esr(0x18, iss & !1);
        assert!(matches!(
            sync_action(decode(write, 0, 0), write, WfiPolicy::Resident),
            SyncAction::SysRegWrite { reg: 5, .. }
        ));
        // A read of a non-ID register (CNTFRQ_EL0 space: Op0 3, Op1 3, CRn 14).
        let other = esr(0x18, 3 << 20 | 3 << 14 | 14 << 10 | 1);
        assert_eq!(
            sync_action(decode(other, 0, 0), other, WfiPolicy::Resident),
            SyncAction::Undefined
        );
        let brk = esr(0x3c, 0);
        assert_eq!(
            sync_action(decode(brk, 0, 0), brk, WfiPolicy::Resident),
            SyncAction::Undefined
        );
    }

    #[test]
    fn stateless_psci_calls_are_answered_here_the_rest_by_the_kernel() {
        assert_eq!(psci_answer(&PsciCall::Version), Some(psci::VERSION_1_0));
        assert_eq!(
            psci_answer(&PsciCall::SmcccVersion),
            Some(psci::ret::NOT_SUPPORTED)
        );
        assert_eq!(psci_answer(&PsciCall::MigrateInfoType), Some(2));
        assert_eq!(psci_answer(&PsciCall::CpuSuspend), Some(0));
        assert_eq!(
            psci_answer(&PsciCall::Features(psci::function::CPU_ON_64)),
            Some(0)
        );
        assert_eq!(
            psci_answer(&PsciCall::Features(0xc600_0001)),
            Some(psci::ret::NOT_SUPPORTED)
        );
        for call in [
            PsciCall::CpuOff,
            PsciCall::SystemOff,
            PsciCall::SystemReset,
            PsciCall::Unknown(0xc600_0001),
        ] {
            assert_eq!(psci_answer(&call), None, "{call:?}");
        }
    }
}
