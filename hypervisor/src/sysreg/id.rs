//! The identification and feature registers the hypervisor itself reads
//! (DDI 0487 D23.2): only the fields it acts on are named.

register! {
    /// ID_AA64PFR0_EL1, Processor Feature Register 0.
    IdAa64Pfr0El1(u64) {
        field /// RAS: the RAS extension version (0: not implemented).
            ras, with_ras @ [31:28];
    }
}

register! {
    /// ID_AA64DFR0_EL1, Debug Feature Register 0.
    IdAa64Dfr0El1(u64) {
        field /// PMUVer: the PMU version (0: none, 0xf: IMPLEMENTATION DEFINED).
            pmuver, with_pmuver @ [11:8];
    }
}

impl IdAa64Dfr0El1 {
    /// PMUVer of FEAT_PMUv3p1 (MDCR_EL2.HPMD).
    pub const PMUV3P1: u64 = 0b0100;
    /// PMUVer of FEAT_PMUv3p5 (MDCR_EL2.HCCD).
    pub const PMUV3P5: u64 = 0b0110;
    /// PMUVer of an IMPLEMENTATION DEFINED PMU: not an architected version.
    pub const IMPDEF: u64 = 0b1111;

    /// Whether the architected PMU is at least `version` (an IMPLEMENTATION
    /// DEFINED PMU is none of them).
    pub const fn pmu_at_least(self, version: u64) -> bool {
        let v = self.pmuver();
        v >= version && v != Self::IMPDEF
    }
}

register! {
    /// ID_AA64MMFR0_EL1, Memory Model Feature Register 0.
    IdAa64Mmfr0El1(u64) {
        field /// PARange: the physical address size.
            parange, with_parange @ [3:0];
    }
}

register! {
    /// ID_AA64MMFR1_EL1, Memory Model Feature Register 1.
    IdAa64Mmfr1El1(u64) {
        field /// VMIDBits: 0b0000 = 8 bits, 0b0010 = 16 bits.
            vmidbits, with_vmidbits @ [7:4];
    }
}

impl IdAa64Mmfr1El1 {
    /// Whether VMIDs are 16 bits wide.
    pub const fn vmid_16bit(self) -> bool {
        self.vmidbits() == 0b0010
    }

    /// The VMID width in bits.
    pub const fn vmid_bits(self) -> u32 {
        if self.vmid_16bit() {
            16
        } else {
            8
        }
    }
}

register! {
    /// PMCR_EL0, Performance Monitors Control.
    PmcrEl0(u64) {
        field /// N: the number of event counters implemented.
            n, with_n @ [15:11];
    }
}

register! {
    /// CTR_EL0, Cache Type Register.
    CtrEl0(u64) {
        field /// DminLine: log2 of the smallest data cache line, in words.
            dminline, with_dminline @ [19:16];
    }
}

impl CtrEl0 {
    /// The smallest data cache line in bytes.
    pub const fn dcache_line_bytes(self) -> u64 {
        4 << self.dminline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmu_versions_order_and_impdef_is_none() {
        let dfr0 = |v: u64| IdAa64Dfr0El1(0).with_pmuver(v);
        assert!(dfr0(IdAa64Dfr0El1::PMUV3P5).pmu_at_least(IdAa64Dfr0El1::PMUV3P1));
        assert!(!dfr0(0b0011).pmu_at_least(IdAa64Dfr0El1::PMUV3P1));
        assert!(!dfr0(IdAa64Dfr0El1::IMPDEF).pmu_at_least(IdAa64Dfr0El1::PMUV3P1));
    }

    #[test]
    fn ctr_line_size_and_vmid_width() {
        assert_eq!(CtrEl0(4 << 16).dcache_line_bytes(), 64);
        assert_eq!(IdAa64Mmfr1El1(0x20).vmid_bits(), 16);
        assert_eq!(IdAa64Mmfr1El1(0).vmid_bits(), 8);
    }

    #[test]
    fn id_fields_sit_where_aarch64_cpu_puts_them() {
        use aarch64_cpu::registers::{ID_AA64DFR0_EL1, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1};
        assert_eq!(
            IdAa64Dfr0El1(0).with_pmuver(0xf).0,
            ID_AA64DFR0_EL1::PMUVer.val(0xf).value
        );
        assert_eq!(
            IdAa64Mmfr0El1(0).with_parange(0xf).0,
            ID_AA64MMFR0_EL1::PARange.val(0xf).value
        );
        assert_eq!(
            IdAa64Mmfr1El1(0).with_vmidbits(0xf).0,
            ID_AA64MMFR1_EL1::VMIDBits.val(0xf).value
        );
    }
}
