//! SGIs between vCPUs: a guest write to ICC_SGI1R_EL1 traps to EL2
//! (HCR_EL2.IMO = 1); the kernel hands the value here (IHI 0069, 12.2.22).

use super::action::VcpuMask;
use super::{Actions, Vgic, VgicError};
use crate::ids::VcpuIndex;
use crate::sysreg::IccSgi1rEl1;

/// A decoded ICC_SGI1R_EL1 write, in this partition's vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgiRequest {
    /// The SGI (0-15).
    pub intid: u8,
    /// The vCPUs that receive it.
    pub targets: VcpuMask,
    /// Targets the value named that no vCPU of the partition has.
    pub missing: u32,
}

/// Decodes `value` written by `sender` in a partition of `num_vcpus`
/// vCPUs, where vCPU `i` has affinity 0.0.Aff1.Aff0 = `i`
/// ([`VcpuIndex::from_affinity`]). IRM = 1 targets every vCPU but the
/// sender; else the TargetList bits name Aff0 = RS * 16 + bit within
/// Aff3.Aff2.Aff1.
pub fn decode_sgi1r(value: u64, sender: VcpuIndex, num_vcpus: u16) -> SgiRequest {
    let value = IccSgi1rEl1(value);
    let intid = value.intid() as u8;
    let mut targets = VcpuMask::default();
    let mut missing = 0;
    if value.irm() {
        for v in (0..num_vcpus).map(VcpuIndex::new).filter(|&v| v != sender) {
            targets.insert(v);
        }
        return SgiRequest {
            intid,
            targets,
            missing,
        };
    }
    // The targets' affinity in MPIDR layout, Aff0 added per TargetList bit.
    let upper = crate::sysreg::MpidrEl1(0)
        .with_aff1(value.aff1())
        .with_aff2(value.aff2())
        .with_aff3(value.aff3())
        .affinity();
    let list = value.target_list();
    for bit in (0..16).filter(|bit| list >> bit & 1 != 0) {
        let aff0 = value.rs() * 16 + bit;
        match VcpuIndex::from_affinity(upper | aff0, usize::from(num_vcpus)) {
            Some(vcpu) => targets.insert(vcpu),
            None => missing += 1,
        }
    }
    SgiRequest {
        intid,
        targets,
        missing,
    }
}

impl Vgic {
    /// Emulates `sender`'s ICC_SGI1R_EL1 write of `value`: the SGI becomes
    /// pending on each target vCPU, which must be kicked. Targets that do
    /// not exist are ignored and counted.
    pub fn send_sgi(&mut self, sender: VcpuIndex, value: u64) -> Result<Actions, VgicError> {
        self.vcpu(sender)?;
        let request = decode_sgi1r(value, sender, self.config.num_vcpus);
        self.counters.sgi_no_target = self
            .counters
            .sgi_no_target
            .saturating_add(u64::from(request.missing));
        let mut actions = Actions::new();
        for target in request.targets.iter() {
            let Ok(state) = self.vcpu_mut(target) else {
                continue;
            };
            let Some(sgi) = state.private.get_mut(usize::from(request.intid)) else {
                continue;
            };
            sgi.latch = true;
            // A listed copy of a pending SGI coalesces on fold; an active one
            // becomes pending and active once the target exits.
            actions.kick(target);
        }
        Ok(actions)
    }
}
