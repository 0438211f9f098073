//! The GICv3 CPU interface registers (IHI 0069, chapter 12): the physical
//! interface EL2 uses (ICC_*) and the virtual interface control it
//! programs for guests (ICH_*). The list register encoding lives with the
//! list-register scheduler (`vgic::lr::ListRegister`).

register! {
    /// ICC_SRE_EL2, System Register Enable (IHI 0069, 12.2.24).
    IccSreEl2(u64) {
        flag /// SRE: EL2 uses the system register interface.
            sre, with_sre @ 0;
        flag /// DFB: FIQ bypass disabled.
            dfb, with_dfb @ 1;
        flag /// DIB: IRQ bypass disabled.
            dib, with_dib @ 2;
        flag /// Enable: EL1 may use ICC_SRE_EL1 (and so the system registers).
            enable, with_enable @ 3;
    }
}

register! {
    /// ICC_CTLR_EL1, Interrupt Controller Control (IHI 0069, 12.2.6).
    IccCtlrEl1(u64) {
        flag /// CBPR: one binary point register for both groups.
            cbpr, with_cbpr @ 0;
        flag /// EOImode: EOIR drops priority only, DIR deactivates.
            eoimode, with_eoimode @ 1;
    }
}

register! {
    /// ICC_PMR_EL1, Priority Mask (IHI 0069, 12.2.19).
    IccPmrEl1(u64) {
        field /// Priority: only interrupts of higher priority (lower value) are signalled.
            priority, with_priority @ [7:0];
    }
}

register! {
    /// ICC_IGRPEN1_EL1, Group 1 Interrupt Enable (IHI 0069, 12.2.16).
    IccIgrpen1El1(u64) {
        flag /// Enable: Group 1 interrupts are signalled.
            enable, with_enable @ 0;
    }
}

register! {
    /// ICC_IAR1_EL1, Interrupt Acknowledge (IHI 0069, 12.2.14).
    IccIar1El1(u64) {
        field /// INTID of the acknowledged interrupt (1023: none).
            intid, with_intid @ [23:0];
    }
}

register! {
    /// ICC_SGI1R_EL1, SGI Group 1 generation (IHI 0069, 12.2.22).
    IccSgi1rEl1(u64) {
        flag /// IRM: to every PE but this one (the affinity fields are ignored).
            irm, with_irm @ 40;
        field /// TargetList: which Aff0 values, within the range RS selects, receive it.
            target_list, with_target_list @ [15:0];
        field /// Aff1 of the targets.
            aff1, with_aff1 @ [23:16];
        field /// INTID of the SGI (0..=15).
            intid, with_intid @ [27:24];
        field /// Aff2 of the targets.
            aff2, with_aff2 @ [39:32];
        field /// RS: which group of 16 Aff0 values TargetList covers.
            rs, with_rs @ [47:44];
        field /// Aff3 of the targets.
            aff3, with_aff3 @ [55:48];
    }
}

impl IccSgi1rEl1 {
    /// SGI `intid` to the one PE whose MPIDR_EL1 affinity is `mpidr`.
    pub const fn to_one(intid: u32, mpidr: super::MpidrEl1) -> Self {
        let aff0 = mpidr.aff0();
        Self(0)
            .with_intid(intid as u64)
            .with_aff3(mpidr.aff3())
            .with_aff2(mpidr.aff2())
            .with_aff1(mpidr.aff1())
            .with_rs(aff0 >> 4)
            .with_target_list(1 << (aff0 & 0xf))
    }
}

register! {
    /// ICH_HCR_EL2, Hypervisor Control (IHI 0069, 12.4.8).
    IchHcrEl2(u64) {
        flag /// En: the virtual CPU interface is enabled.
            en, with_en @ 0;
        flag /// UIE: maintenance interrupt when at most one list register is valid.
            uie, with_uie @ 1;
        flag /// LRENPIE: maintenance interrupt while EOIcount is not 0.
            lrenpie, with_lrenpie @ 2;
        flag /// NPIE: maintenance interrupt when no list register is pending.
            npie, with_npie @ 3;
        flag /// TDIR: ICV_DIR_EL1 writes trap to EL2 (needs ICH_VTR_EL2.TDS).
            tdir, with_tdir @ 14;
        flag /// DVIM: directly injected virtual interrupts masked (GICv4.1).
            dvim, with_dvim @ 15;
        field /// EOIcount: deactivations of interrupts no list register held.
            eoicount, with_eoicount @ [31:27];
    }
}

register! {
    /// ICH_VTR_EL2, VGIC Type (IHI 0069, 12.4.10).
    IchVtrEl2(u64) {
        flag /// TDS: ICH_HCR_EL2.TDIR is implemented.
            tds, with_tds @ 19;
        flag /// nV4: direct injection of virtual interrupts NOT supported.
            nv4, with_nv4 @ 20;
        field /// ListRegs: the number of list registers minus one.
            list_regs, with_list_regs @ [4:0];
        field /// IDbits: virtual INTID bits (0b000 = 16, 0b001 = 24).
            idbits, with_idbits @ [25:23];
        field /// PREbits: virtual preemption bits minus one.
            prebits, with_prebits @ [28:26];
        field /// PRIbits: virtual priority bits minus one.
            pribits, with_pribits @ [31:29];
    }
}

impl IchVtrEl2 {
    /// The list registers this CPU implements.
    pub const fn lr_count(self) -> usize {
        self.list_regs() as usize + 1
    }
}

register! {
    /// ICH_VMCR_EL2, Virtual Machine Control (IHI 0069, 12.4.14): the
    /// guest's view of its ICV_* control state.
    IchVmcrEl2(u64) {
        flag /// VENG0: virtual Group 0 enabled.
            veng0, with_veng0 @ 0;
        flag /// VENG1: virtual Group 1 enabled.
            veng1, with_veng1 @ 1;
        flag /// VEOIM: the guest split priority drop and deactivation (its ICC_CTLR_EL1.EOImode).
            veoim, with_veoim @ 9;
        field /// VPMR: the guest's priority mask.
            vpmr, with_vpmr @ [31:24];
    }
}

#[cfg(test)]
mod tests {
    use super::super::MpidrEl1;
    use super::*;

    #[test]
    fn sgi1r_targets_one_pe_by_affinity_and_range() {
        // Aff3 1, Aff2 2, Aff1 3, Aff0 0x25: range 2, target bit 5.
        let mpidr = MpidrEl1(0x1_8002_0325);
        let v = IccSgi1rEl1::to_one(9, mpidr);
        assert_eq!(
            v.0,
            (1 << 48) | (2 << 44) | (2 << 32) | (9 << 24) | (3 << 16) | (1 << 5)
        );
        assert!(!v.irm());
    }

    #[test]
    fn vtr_counts_list_registers_from_listregs() {
        assert_eq!(IchVtrEl2(0x9000_0003).lr_count(), 4);
        assert!(IchVtrEl2(1 << 19).tds());
    }

    #[test]
    fn gic_fields_sit_where_aarch64_cpu_puts_them() {
        use aarch64_cpu::registers::{ICC_SRE_EL2, ICH_HCR_EL2, ICH_VTR_EL2};
        let sre = IccSreEl2(0)
            .with_sre(true)
            .with_dfb(true)
            .with_dib(true)
            .with_enable(true);
        let theirs = ICC_SRE_EL2::SRE::SET
            + ICC_SRE_EL2::DFB::SET
            + ICC_SRE_EL2::DIB::SET
            + ICC_SRE_EL2::ENABLE::SET;
        assert_eq!(sre.0, theirs.value);
        let hcr = IchHcrEl2(0)
            .with_en(true)
            .with_uie(true)
            .with_lrenpie(true)
            .with_npie(true);
        let hcr = hcr.with_tdir(true).with_dvim(true).with_eoicount(0x1f);
        let theirs = ICH_HCR_EL2::En::SET
            + ICH_HCR_EL2::UIE::SET
            + ICH_HCR_EL2::LRENPIE::SET
            + ICH_HCR_EL2::NPIE::SET
            + ICH_HCR_EL2::TDIR::SET
            + ICH_HCR_EL2::DVIM::SET
            + ICH_HCR_EL2::EOIcount.val(0x1f);
        assert_eq!(hcr.0, theirs.value);
        let vtr = IchVtrEl2(0)
            .with_list_regs(0x1f)
            .with_idbits(7)
            .with_prebits(7);
        let vtr = vtr.with_pribits(7);
        let theirs = ICH_VTR_EL2::ListRegs.val(0x1f)
            + ICH_VTR_EL2::IDbits.val(7)
            + ICH_VTR_EL2::PREbits.val(7)
            + ICH_VTR_EL2::PRIbits.val(7);
        assert_eq!(vtr.0, theirs.value);
    }
}
