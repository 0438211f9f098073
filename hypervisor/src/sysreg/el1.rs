//! EL1 registers the hypervisor interprets when it gives a vCPU its reset
//! state. The rest of the EL1 context (VBAR_EL1, TTBRs, the timers'
//! compare values...) is only zeroed and is written as raw `u64`.

register! {
    /// SCTLR_EL1, System Control Register (EL1).
    SctlrEl1(u64) {
        flag /// M: the EL1&0 stage-1 MMU is on.
            m, with_m @ 0;
        flag /// C: data accesses cacheable.
            c, with_c @ 2;
        flag /// I: instruction accesses cacheable.
            i, with_i @ 12;
    }
}

impl SctlrEl1 {
    /// The bits an Armv8.0 reset leaves set, RES1 there: EOS (11), TSCXT
    /// (20), EIS (22), SPAN (23), nTLSMD (28), LSMAOE (29).
    pub const RES1: Self = Self(0x30d0_0800);
    /// SCTLR_EL1 at reset: MMU and caches off, the RES1 bits set.
    pub const RESET: Self = Self::RES1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sctlr_el1_reset_has_mmu_and_caches_off() {
        let r = SctlrEl1::RESET;
        assert!(!r.m() && !r.c() && !r.i());
        let bits = [11, 20, 22, 23, 28, 29];
        assert_eq!(r.0, bits.iter().map(|b| 1u64 << b).sum::<u64>());
    }

    #[test]
    fn el1_fields_sit_where_aarch64_cpu_puts_them() {
        use aarch64_cpu::registers::SCTLR_EL1;
        let theirs = SCTLR_EL1::M::SET + SCTLR_EL1::C::SET + SCTLR_EL1::I::SET;
        assert_eq!(
            SctlrEl1(0).with_m(true).with_c(true).with_i(true).0,
            theirs.value
        );
    }
}
