//! PSCI for guests (Arm DEN0022): decoding the calls and the vCPU power
//! state machine of one partition. Pure; the kernel executes the outcome.
#![forbid(unsafe_code)]

use crate::ids::VcpuIndex;
use alloc::vec::Vec;

/// PSCI function IDs (SMC32 and SMC64 conventions).
pub mod function {
    /// PSCI_VERSION.
    pub const VERSION: u32 = 0x8400_0000;
    /// CPU_SUSPEND (32-bit).
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    /// CPU_SUSPEND (64-bit).
    pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON (32-bit).
    pub const CPU_ON_32: u32 = 0x8400_0003;
    /// CPU_ON (64-bit).
    pub const CPU_ON_64: u32 = 0xc400_0003;
    /// AFFINITY_INFO (32-bit).
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    /// AFFINITY_INFO (64-bit).
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    /// MIGRATE_INFO_TYPE.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const FEATURES: u32 = 0x8400_000a;
    /// SMCCC_VERSION (SMCCC 1.1, answered alongside PSCI).
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
}

/// PSCI return codes.
pub mod ret {
    /// SUCCESS.
    pub const SUCCESS: i64 = 0;
    /// NOT_SUPPORTED.
    pub const NOT_SUPPORTED: i64 = -1;
    /// INVALID_PARAMETERS.
    pub const INVALID_PARAMETERS: i64 = -2;
    /// DENIED.
    pub const DENIED: i64 = -3;
    /// ALREADY_ON.
    pub const ALREADY_ON: i64 = -4;
    /// ON_PENDING.
    pub const ON_PENDING: i64 = -5;
    /// INVALID_ADDRESS.
    pub const INVALID_ADDRESS: i64 = -9;
}

/// The PSCI version we implement: 1.0.
pub const VERSION_1_0: i64 = 0x1_0000;

/// A decoded guest call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciCall {
    /// PSCI_VERSION.
    Version,
    /// PSCI_FEATURES(function).
    Features(u32),
    /// SMCCC_VERSION.
    SmcccVersion,
    /// CPU_ON(target MPIDR, entry point, context ID).
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    /// CPU_OFF.
    CpuOff,
    /// CPU_SUSPEND (treated as a WFI-like standby that returns at once).
    CpuSuspend,
    /// AFFINITY_INFO(target MPIDR, lowest affinity level).
    AffinityInfo { target: u64, level: u64 },
    /// MIGRATE_INFO_TYPE.
    MigrateInfoType,
    /// SYSTEM_OFF: this partition only.
    SystemOff,
    /// SYSTEM_RESET: this partition only.
    SystemReset,
    /// Anything else (answered NOT_SUPPORTED).
    Unknown(u32),
}

/// Decodes a call from the guest's x0..x3. SMC32 calls take 32-bit arguments.
pub fn decode(x0: u64, x1: u64, x2: u64, x3: u64) -> PsciCall {
    use function::*;
    let id = x0 as u32;
    let narrow = |v: u64| {
        if id & 0x4000_0000 == 0 {
            v & 0xffff_ffff
        } else {
            v
        }
    };
    match id {
        VERSION => PsciCall::Version,
        FEATURES => PsciCall::Features(x1 as u32),
        SMCCC_VERSION => PsciCall::SmcccVersion,
        CPU_ON_32 | CPU_ON_64 => PsciCall::CpuOn {
            target: narrow(x1),
            entry: narrow(x2),
            context: narrow(x3),
        },
        CPU_OFF => PsciCall::CpuOff,
        CPU_SUSPEND_32 | CPU_SUSPEND_64 => PsciCall::CpuSuspend,
        AFFINITY_INFO_32 | AFFINITY_INFO_64 => PsciCall::AffinityInfo {
            target: narrow(x1),
            level: narrow(x2),
        },
        MIGRATE_INFO_TYPE => PsciCall::MigrateInfoType,
        SYSTEM_OFF => PsciCall::SystemOff,
        SYSTEM_RESET => PsciCall::SystemReset,
        other => PsciCall::Unknown(other),
    }
}

/// Whether the PSCI function `id` is implemented (for PSCI_FEATURES).
pub fn implemented(id: u32) -> bool {
    use function::*;
    matches!(
        id,
        VERSION
            | FEATURES
            | CPU_ON_32
            | CPU_ON_64
            | CPU_OFF
            | CPU_SUSPEND_32
            | CPU_SUSPEND_64
            | AFFINITY_INFO_32
            | AFFINITY_INFO_64
            | MIGRATE_INFO_TYPE
            | SYSTEM_OFF
            | SYSTEM_RESET
    )
}

/// The power state of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuPower {
    /// Off: waits for CPU_ON.
    Off,
    /// CPU_ON accepted; its physical CPU has not picked it up yet.
    OnPending { entry: u64, context: u64 },
    /// Running guest code.
    On,
}

/// The vCPU power states of one partition. vCPU `i` has MPIDR Aff0 = `i`.
#[derive(Clone, Debug)]
pub struct PowerStates {
    vcpus: Vec<VcpuPower>,
}

impl PowerStates {
    /// `count` vCPUs, all off.
    pub fn new(count: usize) -> Self {
        Self {
            vcpus: alloc::vec![VcpuPower::Off; count],
        }
    }

    /// The vCPU whose MPIDR is `mpidr`, if it exists in this partition.
    pub fn vcpu_of_mpidr(&self, mpidr: u64) -> Option<VcpuIndex> {
        VcpuIndex::from_affinity(mpidr, self.vcpus.len())
    }

    /// The state of `vcpu`.
    pub fn get(&self, vcpu: VcpuIndex) -> VcpuPower {
        self.vcpus
            .get(vcpu.index())
            .copied()
            .unwrap_or(VcpuPower::Off)
    }

    /// Boots vCPU 0 at `entry` (partition start or reset), all others off.
    pub fn start(&mut self, entry: u64, context: u64) {
        for v in &mut self.vcpus {
            *v = VcpuPower::Off;
        }
        if let Some(v) = self.vcpus.first_mut() {
            *v = VcpuPower::OnPending { entry, context };
        }
    }

    /// CPU_ON: on success the target is OnPending and must be woken.
    /// `entry_ok` says whether the entry address lies in the partition's RAM.
    pub fn cpu_on(
        &mut self,
        target: u64,
        entry: u64,
        context: u64,
        entry_ok: bool,
    ) -> Result<VcpuIndex, i64> {
        let vcpu = self.vcpu_of_mpidr(target).ok_or(ret::INVALID_PARAMETERS)?;
        match self.vcpus[vcpu.index()] {
            VcpuPower::On => Err(ret::ALREADY_ON),
            VcpuPower::OnPending { .. } => Err(ret::ON_PENDING),
            VcpuPower::Off if !entry_ok => Err(ret::INVALID_ADDRESS),
            VcpuPower::Off => {
                self.vcpus[vcpu.index()] = VcpuPower::OnPending { entry, context };
                Ok(vcpu)
            }
        }
    }

    /// The vCPU's physical CPU picked up a pending CPU_ON: returns (entry, context).
    pub fn take_pending(&mut self, vcpu: VcpuIndex) -> Option<(u64, u64)> {
        let slot = self.vcpus.get_mut(vcpu.index())?;
        match *slot {
            VcpuPower::OnPending { entry, context } => {
                *slot = VcpuPower::On;
                Some((entry, context))
            }
            _ => None,
        }
    }

    /// CPU_OFF of `vcpu`.
    pub fn cpu_off(&mut self, vcpu: VcpuIndex) {
        if let Some(v) = self.vcpus.get_mut(vcpu.index()) {
            *v = VcpuPower::Off;
        }
    }

    /// AFFINITY_INFO at level 0: 0 = ON, 1 = OFF, 2 = ON_PENDING.
    pub fn affinity_info(&self, target: u64, level: u64) -> i64 {
        if level != 0 {
            return ret::INVALID_PARAMETERS;
        }
        match self.vcpu_of_mpidr(target).map(|v| self.get(v)) {
            None => ret::INVALID_PARAMETERS,
            Some(VcpuPower::On) => 0,
            Some(VcpuPower::Off) => 1,
            Some(VcpuPower::OnPending { .. }) => 2,
        }
    }

    /// Everything off (partition stopped).
    pub fn all_off(&mut self) {
        for v in &mut self.vcpus {
            *v = VcpuPower::Off;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smc32_calls_take_32_bit_arguments() {
        assert_eq!(
            decode(0x8400_0003, 0xffff_ffff_0000_0001, 0x1_4020_0000, 7),
            PsciCall::CpuOn {
                target: 1,
                entry: 0x4020_0000,
                context: 7
            }
        );
        assert_eq!(
            decode(0xc400_0003, 1, 0x1_4020_0000, 7),
            PsciCall::CpuOn {
                target: 1,
                entry: 0x1_4020_0000,
                context: 7
            }
        );
        assert_eq!(decode(0x8400_0008, 0, 0, 0), PsciCall::SystemOff);
        assert_eq!(decode(0xc400_0099, 0, 0, 0), PsciCall::Unknown(0xc400_0099));
    }

    #[test]
    fn cpu_on_powers_a_vcpu_once_and_reports_its_state() {
        let mut p = PowerStates::new(2);
        p.start(0x4020_0000, 0x4800_0000);
        assert_eq!(
            p.take_pending(VcpuIndex::new(0)),
            Some((0x4020_0000, 0x4800_0000))
        );
        assert_eq!(p.affinity_info(1, 0), 1);
        assert_eq!(p.cpu_on(1, 0x4020_1000, 1, true), Ok(VcpuIndex::new(1)));
        assert_eq!(p.affinity_info(1, 0), 2);
        assert_eq!(p.cpu_on(1, 0x4020_1000, 1, true), Err(ret::ON_PENDING));
        assert_eq!(p.take_pending(VcpuIndex::new(1)), Some((0x4020_1000, 1)));
        assert_eq!(p.cpu_on(1, 0x4020_1000, 1, true), Err(ret::ALREADY_ON));
        assert_eq!(p.affinity_info(1, 0), 0);
        p.cpu_off(VcpuIndex::new(1));
        assert_eq!(p.affinity_info(1, 0), 1);
    }

    #[test]
    fn cpu_on_refuses_unknown_targets_and_bad_entry_points() {
        let mut p = PowerStates::new(2);
        assert_eq!(p.cpu_on(2, 0, 0, true), Err(ret::INVALID_PARAMETERS));
        assert_eq!(p.cpu_on(0x100, 0, 0, true), Err(ret::INVALID_PARAMETERS));
        assert_eq!(p.cpu_on(1, 0, 0, false), Err(ret::INVALID_ADDRESS));
        assert_eq!(p.affinity_info(0, 1), ret::INVALID_PARAMETERS);
    }

    #[test]
    fn targets_are_bounded_by_the_vcpu_count_and_aff2_aff3() {
        let mut p = PowerStates::new(2);
        // Aff2 or Aff3 on top of a valid Aff0: no vCPU.
        assert_eq!(
            p.cpu_on(1 << 16 | 1, 4, 0, true),
            Err(ret::INVALID_PARAMETERS)
        );
        assert_eq!(p.affinity_info(1 << 32 | 1, 0), ret::INVALID_PARAMETERS);
        // The last vCPU is a target; one past it is not.
        assert_eq!(p.affinity_info(1, 0), 1);
        assert_eq!(p.affinity_info(2, 0), ret::INVALID_PARAMETERS);
        // Non-affinity MPIDR bits (RES1, MT) are not part of the target.
        assert_eq!(
            p.cpu_on(1 << 31 | 1 << 24 | 1, 4, 0, true),
            Ok(VcpuIndex::new(1))
        );
    }

    #[test]
    fn features_lists_what_is_implemented() {
        assert!(implemented(function::CPU_ON_64));
        assert!(!implemented(0x8400_0012));
    }
}
