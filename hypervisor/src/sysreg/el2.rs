//! EL2 control registers (DDI 0487 D23.2): hypervisor configuration, traps,
//! the EL2 and stage-2 translation regimes. Field layouts are those with
//! HCR_EL2.E2H = 0, which the hypervisor never sets.

register! {
    /// HCR_EL2, Hypervisor Configuration Register.
    HcrEl2(u64) {
        flag /// VM: stage-2 translation for EL1&0.
            vm, with_vm @ 0;
        flag /// SWIO: set/way invalidates become clean and invalidate.
            swio, with_swio @ 1;
        flag /// FMO: physical FIQs to EL2, virtual FIQs enabled.
            fmo, with_fmo @ 3;
        flag /// IMO: physical IRQs to EL2, virtual IRQs enabled.
            imo, with_imo @ 4;
        flag /// AMO: physical SErrors to EL2, virtual SErrors enabled.
            amo, with_amo @ 5;
        flag /// TWI: EL1/EL0 WFI traps to EL2.
            twi, with_twi @ 13;
        flag /// TWE: EL1/EL0 WFE traps to EL2.
            twe, with_twe @ 14;
        flag /// TID3: EL1 reads of the ID group 3 registers trap to EL2.
            tid3, with_tid3 @ 18;
        flag /// TSC: EL1 SMC traps to EL2.
            tsc, with_tsc @ 19;
        flag /// TIDCP: EL1 accesses to IMPLEMENTATION DEFINED registers trap.
            tidcp, with_tidcp @ 20;
        flag /// TGE: trap general exceptions (EL2 host mode); never set here.
            tge, with_tge @ 27;
        flag /// RW: EL1 is AArch64.
            rw, with_rw @ 31;
        flag /// E2H: EL2 host (VHE); never set here.
            e2h, with_e2h @ 34;
        flag /// TERR (FEAT_RAS): accesses to the error record registers trap.
            terr, with_terr @ 36;
        flag /// APK: pointer authentication key registers not trapped.
            apk, with_apk @ 40;
        flag /// API: pointer authentication instructions not trapped.
            api, with_api @ 41;
    }
}

register! {
    /// CPTR_EL2, Architectural Feature Trap Register (E2H = 0 layout).
    CptrEl2(u64) {
        flag /// TZ: SVE accesses trap.
            tz, with_tz @ 8;
        flag /// TFP: FP/SIMD accesses trap.
            tfp, with_tfp @ 10;
        flag /// TSM: SME accesses trap (RES1 without FEAT_SME).
            tsm, with_tsm @ 12;
        flag /// TTA: trace register accesses trap.
            tta, with_tta @ 20;
        flag /// TAM: activity monitor accesses trap.
            tam, with_tam @ 30;
        flag /// TCPAC: CPACR_EL1 accesses from EL1 trap.
            tcpac, with_tcpac @ 31;
    }
}

impl CptrEl2 {
    /// The RES1 bits: [7:0], 9 and 13.
    pub const RES1: Self = Self(0xff | (1 << 9) | (1 << 13));
}

register! {
    /// MDCR_EL2, Monitor Debug Configuration Register.
    MdcrEl2(u64) {
        flag /// TPMS: statistical profiling register accesses trap.
            tpms, with_tpms @ 14;
        flag /// HPMD (FEAT_PMUv3p1): event counters do not count at EL2.
            hpmd, with_hpmd @ 17;
        flag /// TTRF: trace filter control register accesses trap.
            ttrf, with_ttrf @ 19;
        flag /// HCCD (FEAT_PMUv3p5): the cycle counter does not count at EL2.
            hccd, with_hccd @ 23;
        field /// HPMN: event counters accessible from EL1 and EL0.
            hpmn, with_hpmn @ [4:0];
    }
}

register! {
    /// SCTLR_EL2, System Control Register (E2H = 0 layout).
    SctlrEl2(u64) {
        flag /// M: the EL2 stage-1 MMU is on.
            m, with_m @ 0;
        flag /// A: alignment fault checking.
            a, with_a @ 1;
        flag /// C: data accesses cacheable.
            c, with_c @ 2;
        flag /// SA: SP alignment checking.
            sa, with_sa @ 3;
        flag /// I: instruction accesses cacheable.
            i, with_i @ 12;
        flag /// WXN: writable memory is never executable.
            wxn, with_wxn @ 19;
        flag /// EE: big-endian data accesses at EL2.
            ee, with_ee @ 25;
    }
}

impl SctlrEl2 {
    /// The RES1 bits: 4, 5, 11, 16, 18, 22, 23, 28 and 29.
    pub const RES1: Self = Self(0x30c5_0830);

    /// SCTLR_EL2 once the EL2 page tables are live: MMU, data and
    /// instruction caches, SP alignment checks and WXN on.
    pub const fn el2_mmu_on() -> Self {
        Self::RES1
            .with_m(true)
            .with_c(true)
            .with_sa(true)
            .with_i(true)
            .with_wxn(true)
    }
}

register! {
    /// CNTHCTL_EL2, Counter-timer Hypervisor Control (E2H = 0 layout).
    CnthctlEl2(u64) {
        flag /// EL1PCTEN: EL1/EL0 reads of the physical counter not trapped.
            el1pcten, with_el1pcten @ 0;
        flag /// EL1PCEN: EL1/EL0 accesses to the physical timer not trapped.
            el1pcen, with_el1pcen @ 1;
    }
}

register! {
    /// TCR_EL2, Translation Control Register (E2H = 0 layout).
    TcrEl2(u64) {
        flag /// TBI: top byte ignored.
            tbi, with_tbi @ 20;
        field /// T0SZ: the input region is 2^(64 - T0SZ) bytes.
            t0sz, with_t0sz @ [5:0];
        field /// IRGN0: inner cacheability of table walks.
            irgn0, with_irgn0 @ [9:8];
        field /// ORGN0: outer cacheability of table walks.
            orgn0, with_orgn0 @ [11:10];
        field /// SH0: shareability of table walks.
            sh0, with_sh0 @ [13:12];
        field /// TG0: granule size (0b00 = 4 KiB).
            tg0, with_tg0 @ [15:14];
        field /// PS: physical address size (the PARange encoding).
            ps, with_ps @ [18:16];
    }
}

impl TcrEl2 {
    /// The RES1 bits: 23 and 31.
    pub const RES1: Self = Self((1 << 23) | (1 << 31));
}

register! {
    /// VTCR_EL2, Virtualization Translation Control Register.
    VtcrEl2(u64) {
        flag /// VS: 16-bit VMIDs.
            vs, with_vs @ 19;
        field /// T0SZ: the IPA space is 2^(64 - T0SZ) bytes.
            t0sz, with_t0sz @ [5:0];
        field /// SL0: starting level of the stage-2 walk (with TG0).
            sl0, with_sl0 @ [7:6];
        field /// IRGN0: inner cacheability of table walks.
            irgn0, with_irgn0 @ [9:8];
        field /// ORGN0: outer cacheability of table walks.
            orgn0, with_orgn0 @ [11:10];
        field /// SH0: shareability of table walks.
            sh0, with_sh0 @ [13:12];
        field /// TG0: granule size (0b00 = 4 KiB).
            tg0, with_tg0 @ [15:14];
        field /// PS: physical address size of the stage-2 output.
            ps, with_ps @ [18:16];
    }
}

impl VtcrEl2 {
    /// The RES1 bit: 31.
    pub const RES1: Self = Self(1 << 31);
}

register! {
    /// VTTBR_EL2, Virtualization Translation Table Base Register.
    VttbrEl2(u64) {
        flag /// CnP: common not private.
            cnp, with_cnp @ 0;
        field /// BADDR: the stage-2 root table, bits [47:1] of its address.
            baddr, with_baddr @ [47:1];
        field /// VMID: the partition's virtual machine identifier.
            vmid, with_vmid @ [63:48];
    }
}

impl VttbrEl2 {
    /// VTTBR_EL2 for a stage-2 root at `root` (table-aligned) and `vmid`.
    pub const fn new(root: u64, vmid: u16) -> Self {
        Self(0).with_baddr(root >> 1).with_vmid(vmid as u64)
    }
}

register! {
    /// VMPIDR_EL2 (and MPIDR_EL1, which it provides to EL1): the affinity
    /// a vCPU reads.
    MpidrEl1(u64) {
        flag /// MT: the lowest affinity level is a thread.
            mt, with_mt @ 24;
        flag /// U: a uniprocessor system.
            u, with_u @ 30;
        flag /// Bit 31, RES1.
            res1, with_res1 @ 31;
        field /// Aff0.
            aff0, with_aff0 @ [7:0];
        field /// Aff1.
            aff1, with_aff1 @ [15:8];
        field /// Aff2.
            aff2, with_aff2 @ [23:16];
        field /// Aff3.
            aff3, with_aff3 @ [39:32];
    }
}

impl MpidrEl1 {
    /// The affinity fields Aff3..Aff0 only, as GIC routing compares them.
    pub const fn affinity(self) -> u64 {
        self.0 & 0xff_00ff_ffff
    }
}

register! {
    /// SPSR_EL2, saved program status on exception entry to EL2 (and the
    /// state an ERET returns to).
    SpsrEl2(u64) {
        flag /// F: FIQ masked.
            f, with_f @ 6;
        flag /// I: IRQ masked.
            i, with_i @ 7;
        flag /// A: SError masked.
            a, with_a @ 8;
        flag /// D: debug exceptions masked.
            d, with_d @ 9;
        field /// M[3:0]: exception level and stack pointer (0b0101 = EL1h).
            m, with_m @ [3:0];
    }
}

impl SpsrEl2 {
    /// M[3:0] for EL1 using SP_EL1.
    pub const EL1H: u64 = 0b0101;
    /// EL1h with D, A, I and F masked: PSTATE after a reset, and after
    /// an exception taken to EL1.
    pub const EL1H_MASKED: Self = Self(0)
        .with_m(Self::EL1H)
        .with_d(true)
        .with_a(true)
        .with_i(true)
        .with_f(true);
}

register! {
    /// ESR_ELx, the syndrome of an exception (ESR_EL2 read on a trap,
    /// ESR_EL1 written when injecting one).
    Esr(u64) {
        flag /// IL: the trapped instruction is 32 bits wide.
            il, with_il @ 25;
        field /// ISS: the class-specific syndrome.
            iss, with_iss @ [24:0];
        field /// EC: the exception class (`trap::ec`).
            ec, with_ec @ [31:26];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sctlr_el2_mmu_on_is_the_documented_value() {
        // M, C, SA, I, WXN over the RES1 bits.
        assert_eq!(SctlrEl2::el2_mmu_on().0, 0x30cd_183d);
    }

    #[test]
    fn vttbr_el2_puts_the_vmid_above_the_root() {
        let v = VttbrEl2::new(0x8_1234_5000, 0xabcd);
        assert_eq!(v.0, 0xabcd_0008_1234_5000);
        assert_eq!(v.vmid(), 0xabcd);
        assert!(!v.cnp());
    }

    #[test]
    fn mpidr_affinity_drops_mt_u_and_res1() {
        let m = MpidrEl1(0)
            .with_res1(true)
            .with_u(true)
            .with_mt(true)
            .with_aff3(2)
            .with_aff0(5);
        assert_eq!(m.affinity(), 0x2_0000_0005);
    }

    #[test]
    fn el2_fields_sit_where_aarch64_cpu_puts_them() {
        use aarch64_cpu::registers::{
            CNTHCTL_EL2, HCR_EL2, SCTLR_EL2, TCR_EL2, VTCR_EL2, VTTBR_EL2,
        };
        let hcr = HcrEl2(0)
            .with_vm(true)
            .with_swio(true)
            .with_fmo(true)
            .with_imo(true)
            .with_amo(true)
            .with_tid3(true)
            .with_tsc(true)
            .with_tidcp(true)
            .with_rw(true)
            .with_terr(true)
            .with_tge(true)
            .with_e2h(true)
            .with_apk(true)
            .with_api(true);
        let theirs = HCR_EL2::VM::SET
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FMO::SET
            + HCR_EL2::IMO::SET
            + HCR_EL2::AMO::SET
            + HCR_EL2::TID3::SET
            + HCR_EL2::TSC::SET
            + HCR_EL2::TIDCP::SET
            + HCR_EL2::RW::SET
            + HCR_EL2::TERR::SET
            + HCR_EL2::TGE::SET
            + HCR_EL2::E2H::SET
            + HCR_EL2::APK::SET
            + HCR_EL2::API::SET;
        assert_eq!(hcr.0, theirs.value);
        let sctlr = SctlrEl2(0)
            .with_m(true)
            .with_a(true)
            .with_c(true)
            .with_sa(true);
        let sctlr = sctlr.with_i(true).with_wxn(true).with_ee(true);
        let theirs = SCTLR_EL2::M::SET
            + SCTLR_EL2::A::SET
            + SCTLR_EL2::C::SET
            + SCTLR_EL2::SA::SET
            + SCTLR_EL2::I::SET
            + SCTLR_EL2::WXN::SET
            + SCTLR_EL2::EE::SET;
        assert_eq!(sctlr.0, theirs.value);
        let cnthctl = CnthctlEl2(0).with_el1pcten(true).with_el1pcen(true);
        assert_eq!(
            cnthctl.0,
            (CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::SET).value
        );
        let full = |w: u64| (1u64 << w) - 1;
        let tcr = TcrEl2(0)
            .with_t0sz(full(6))
            .with_irgn0(3)
            .with_orgn0(3)
            .with_sh0(3);
        let tcr = tcr.with_tg0(3).with_ps(7).with_tbi(true);
        let theirs = TCR_EL2::T0SZ.val(0x3f)
            + TCR_EL2::IRGN0.val(3)
            + TCR_EL2::ORGN0.val(3)
            + TCR_EL2::SH0.val(3)
            + TCR_EL2::TG0.val(3)
            + TCR_EL2::PS.val(7)
            + TCR_EL2::TBI::SET;
        assert_eq!(tcr.0, theirs.value);
        let vtcr = VtcrEl2(0)
            .with_t0sz(0x3f)
            .with_sl0(3)
            .with_irgn0(3)
            .with_orgn0(3);
        let vtcr = vtcr.with_sh0(3).with_tg0(3).with_ps(7).with_vs(true);
        let theirs = VTCR_EL2::T0SZ.val(0x3f)
            + VTCR_EL2::SL0.val(3)
            + VTCR_EL2::IRGN0.val(3)
            + VTCR_EL2::ORGN0.val(3)
            + VTCR_EL2::SH0.val(3)
            + VTCR_EL2::TG0.val(3)
            + VTCR_EL2::PS.val(7)
            + VTCR_EL2::VS.val(1)
            + VTCR_EL2::RES1.val(1);
        assert_eq!((vtcr.0 | VtcrEl2::RES1.0), theirs.value);
        let vttbr = VttbrEl2::new(0xffff_ffff_fffe, 0xffff);
        let theirs = VTTBR_EL2::BADDR.val(0x7fff_ffff_ffff) + VTTBR_EL2::VMID.val(0xffff);
        assert_eq!(vttbr.0, theirs.value);
    }
}
