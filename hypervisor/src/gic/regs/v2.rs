//! GICv2 register values the hypervisor reads or writes (IHI 0048B, 4.3
//! "Distributor register descriptions" and 4.4 "CPU interface register
//! descriptions").

register! {
    /// GICD_CTLR of a GICv2 without Security Extensions (or its
    /// Non-secure view).
    GicdCtlrV2(u32) {
        flag
        /// Enable: forward pending interrupts to the CPU interfaces.
        enable, with_enable @ 0;
    }
}

register! {
    /// GICD_TYPER of a GICv2.
    GicdTyperV2(u32) {
        flag
        /// SecurityExtn: the GIC implements the Security Extensions.
        security_extn, with_security_extn @ 10;
        field
        /// ITLinesNumber: 32 * (N + 1) interrupt lines.
        it_lines_number, with_it_lines_number @ [4:0];
        field
        /// CPUNumber: CPU interfaces minus one.
        cpu_number, with_cpu_number @ [7:5];
    }
}

impl GicdTyperV2 {
    /// SPIs implemented: 32 * (ITLinesNumber + 1) - 32.
    pub const fn spis(self) -> u32 {
        32 * self.it_lines_number()
    }
}

register! {
    /// GICD_SGIR: sends an SGI (write only).
    GicdSgir(u32) {
        field
        /// SGIINTID: the SGI, 0-15.
        sgi_int_id, with_sgi_int_id @ [3:0];
        field
        /// CPUTargetList: one bit per CPU interface.
        cpu_target_list, with_cpu_target_list @ [23:16];
        field
        /// TargetListFilter: 0 = the listed CPUs, 1 = all others, 2 = self.
        target_list_filter, with_target_list_filter @ [25:24];
    }
}

impl GicdSgir {
    /// SGI `sgi` to the CPU interfaces in `targets` (TargetListFilter 0).
    pub const fn to_list(sgi: u8, targets: u8) -> Self {
        Self(0)
            .with_sgi_int_id(sgi as u32)
            .with_cpu_target_list(targets as u32)
    }
}

register! {
    /// GICC_IAR (and the value written back to GICC_EOIR / GICC_DIR).
    GiccIar(u32) {
        field
        /// InterruptID: the INTID (1020-1023 special, 1023 = spurious).
        interrupt_id, with_interrupt_id @ [9:0];
        field
        /// CPUID: for an SGI, the CPU interface that sent it.
        cpu_id, with_cpu_id @ [12:10];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctlr_enable_is_bit_0() {
        assert_eq!(GicdCtlrV2(0).with_enable(true).0, 1);
        assert!(GicdCtlrV2(1).enable());
    }

    #[test]
    fn typer_lines_and_cpus() {
        // GIC-400 with 256 lines (ITLinesNumber 7), 4 CPUs, no security.
        let t = GicdTyperV2(0x67);
        assert_eq!(t.it_lines_number(), 7);
        assert_eq!(t.cpu_number(), 3);
        assert_eq!(t.spis(), 224);
        assert!(!t.security_extn());
        assert!(GicdTyperV2(1 << 10).security_extn());
    }

    #[test]
    fn sgir_places_target_list_and_intid() {
        assert_eq!(GicdSgir::to_list(3, 0b0101).0, 0x0005_0003);
        // Out-of-range SGI numbers are masked to the 4-bit field.
        assert_eq!(GicdSgir::to_list(0x13, 1).sgi_int_id(), 3);
        assert_eq!(GicdSgir(0).with_target_list_filter(2).0, 2 << 24);
    }

    #[test]
    fn iar_splits_intid_and_source_cpu() {
        let iar = GiccIar(0x0c01);
        assert_eq!(iar.interrupt_id(), 1);
        assert_eq!(iar.cpu_id(), 3);
        assert_eq!(GiccIar(0x3ff).interrupt_id(), 1023);
        assert_eq!(GiccIar(0xffff_ffff).interrupt_id(), 0x3ff);
    }
}
