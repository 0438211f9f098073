//! The EL2 controls a vCPU runs under, computed from the CPU's features and
//! the partition's configuration: the pure half of entering a guest, so
//! that which traps a guest gets is decided (and tested) here, and
//! `kernel/` only reads the ID registers and writes the results.

use super::{
    CnthctlEl2, CptrEl2, HcrEl2, IdAa64Dfr0El1, IdAa64Pfr0El1, MdcrEl2, MpidrEl1, PmcrEl0, SpsrEl2,
};
use crate::manifest::WfiPolicy;

/// HCR_EL2 while a guest runs: stage 2 on (VM), set/way cleans upgraded
/// (SWIO), physical FIQ/IRQ/SError to EL2 (FMO/IMO/AMO), reads of the ID
/// registers trapped so the guest sees only features the hypervisor
/// handles (TID3, [`crate::guest::cpu_features`]), SMC trapped (TSC), the
/// IMPLEMENTATION DEFINED registers trapped (TIDCP: what they do to a core,
/// its caches or its neighbours is the vendor's secret, not the
/// partition's), EL1 is AArch64 (RW). APK/API stay 0: pointer
/// authentication is hidden, and a guest that enables it anyway traps to
/// EL2 and gets an UNDEF.
const HCR_GUEST: HcrEl2 = HcrEl2(0)
    .with_vm(true)
    .with_swio(true)
    .with_fmo(true)
    .with_imo(true)
    .with_amo(true)
    .with_tid3(true)
    .with_tsc(true)
    .with_tidcp(true)
    .with_rw(true);

/// HCR_EL2 for a vCPU on a CPU with ID_AA64PFR0_EL1 `pfr0`: WFI trapped
/// under `wfi = "doorbell"`; TERR (the RAS error records trap: RAS is
/// hidden from the guest's ID registers and the records describe the
/// machine's errors, not the partition's) only where the CPU has
/// FEAT_RAS, elsewhere the bit is RES0.
pub const fn hcr(pfr0: IdAa64Pfr0El1, wfi: WfiPolicy) -> HcrEl2 {
    HCR_GUEST
        .with_terr(pfr0.ras() != 0)
        .with_twi(matches!(wfi, WfiPolicy::Doorbell))
}

/// CPTR_EL2: FP/SIMD not trapped (the hypervisor is soft-float and never
/// touches them, and each vCPU owns its physical CPU); SVE (TZ), SME
/// (TSM), trace (TTA) and the activity monitors (TAM) trapped: they are
/// hidden from the guest's ID registers and their state is not switched.
pub const CPTR: CptrEl2 = CptrEl2::RES1
    .with_tz(true)
    .with_tsm(true)
    .with_tta(true)
    .with_tam(true);

/// MDCR_EL2 for a vCPU: the statistical profiling (TPMS) and trace filter
/// (TTRF) registers trapped, both hidden from the guest; all event
/// counters to the guest (HPMN = PMCR_EL0.N); and where the PMU version
/// has the controls, EL2 kept out of its counts, so its PMU sees its own
/// work, not the hypervisor's (HPMD, FEAT_PMUv3p1) nor in its cycle
/// counter (HCCD, FEAT_PMUv3p5).
pub const fn mdcr(dfr0: IdAa64Dfr0El1, pmcr: PmcrEl0) -> MdcrEl2 {
    MdcrEl2(0)
        .with_tpms(true)
        .with_ttrf(true)
        .with_hpmn(pmcr.n())
        .with_hpmd(dfr0.pmu_at_least(IdAa64Dfr0El1::PMUV3P1))
        .with_hccd(dfr0.pmu_at_least(IdAa64Dfr0El1::PMUV3P5))
}

/// CNTHCTL_EL2: EL1 may use the physical counter and timer.
pub const CNTHCTL: CnthctlEl2 = CnthctlEl2(0).with_el1pcten(true).with_el1pcen(true);

/// VMPIDR_EL2 of vCPU `index`: Aff1.Aff0 = the index (the vGIC's
/// redistributor affinity), the RES1 bit set.
pub const fn vmpidr(index: u16) -> MpidrEl1 {
    let index = index as u64;
    MpidrEl1(0)
        .with_res1(true)
        .with_aff0(index & 0xff)
        .with_aff1(index >> 8)
}

/// SPSR_EL2 for entering a vCPU: EL1h with D, A, I and F masked, as an
/// architectural reset leaves PSTATE.
pub const SPSR_ENTRY: SpsrEl2 = SpsrEl2::EL1H_MASKED;

#[cfg(test)]
mod tests {
    use super::*;

    const NO_RAS: IdAa64Pfr0El1 = IdAa64Pfr0El1(0);

    #[test]
    fn hcr_traps_wfi_only_under_doorbell() {
        assert!(!hcr(NO_RAS, WfiPolicy::Resident).twi());
        assert!(hcr(NO_RAS, WfiPolicy::Doorbell).twi());
        // The bits the kernel has set since TIDCP (VM SWIO FMO IMO AMO
        // TID3 TSC TIDCP RW).
        assert_eq!(hcr(NO_RAS, WfiPolicy::Resident).0, 0x801c_003b);
    }

    #[test]
    fn hcr_terr_follows_feat_ras() {
        assert!(!hcr(NO_RAS, WfiPolicy::Resident).terr());
        let ras = IdAa64Pfr0El1(0).with_ras(1);
        assert!(hcr(ras, WfiPolicy::Resident).terr());
        assert!(!hcr(ras, WfiPolicy::Resident).e2h() && !hcr(ras, WfiPolicy::Resident).tge());
    }

    #[test]
    fn cptr_traps_sve_sme_trace_amu_but_not_fp() {
        assert_eq!(CPTR.0, 0x32ff | (1 << 8) | (1 << 20) | (1 << 30));
        assert!(!CPTR.tfp() && !CPTR.tcpac());
    }

    #[test]
    fn mdcr_gives_the_guest_every_counter_and_hides_el2_by_pmu_version() {
        let pmcr = PmcrEl0(0).with_n(6);
        let dfr0 = |v| IdAa64Dfr0El1(0).with_pmuver(v);
        let v3 = mdcr(dfr0(0b0001), pmcr);
        assert_eq!(v3.hpmn(), 6);
        assert!(v3.tpms() && v3.ttrf() && !v3.hpmd() && !v3.hccd());
        let p1 = mdcr(dfr0(IdAa64Dfr0El1::PMUV3P1), pmcr);
        assert!(p1.hpmd() && !p1.hccd());
        let p5 = mdcr(dfr0(IdAa64Dfr0El1::PMUV3P5), pmcr);
        assert!(p5.hpmd() && p5.hccd());
        let impdef = mdcr(dfr0(IdAa64Dfr0El1::IMPDEF), pmcr);
        assert!(!impdef.hpmd() && !impdef.hccd());
        assert_eq!(p5.0, (1 << 14) | (1 << 17) | (1 << 19) | (1 << 23) | 6);
    }

    #[test]
    fn entry_state_is_el1h_masked_and_vmpidr_names_the_vcpu() {
        assert_eq!(SPSR_ENTRY.0, 0x3c5);
        assert_eq!(vmpidr(3).0, (1 << 31) | 3);
        assert_eq!(CNTHCTL.0, 0b11);
    }
}
