//! Distributor register values: GICD_CTLR, GICD_TYPER, GICD_TYPER2,
//! GICD_IROUTER and GICD_PIDR2 (IHI 0069, the GICD_* register descriptions).

use crate::sysreg::MpidrEl1;

register! {
    /// GICD_CTLR as seen by a secure access or with GICD_CTLR.DS == 1.
    ///
    /// A non-secure access with DS == 0 sees another layout: EnableGrp1
    /// at bit 0, EnableGrp1A at bit 1, ARE_NS at bit 4 and RWP at bit 31;
    /// use [`GicdCtlrNs`] for that view.
    GicdCtlr(u32) {
        flag
        /// EnableGrp0: forward Group 0 interrupts.
        enable_grp0, with_enable_grp0 @ 0;
        flag
        /// EnableGrp1NS: forward Non-secure Group 1 interrupts.
        enable_grp1_ns, with_enable_grp1_ns @ 1;
        flag
        /// EnableGrp1S: forward Secure Group 1 interrupts.
        enable_grp1_s, with_enable_grp1_s @ 2;
        flag
        /// ARE_S (ARE when DS == 1): affinity routing for the Secure state.
        are_s, with_are_s @ 4;
        flag
        /// ARE_NS: affinity routing for the Non-secure state.
        are_ns, with_are_ns @ 5;
        flag
        /// DS: the GIC supports a single security state.
        ds, with_ds @ 6;
        flag
        /// E1NWF: 1-of-N wakeup.
        e1nwf, with_e1nwf @ 7;
        flag
        /// nASSGIreq: SGIs have no active state (GICv4.1).
        n_assgi_req, with_n_assgi_req @ 8;
        flag
        /// RWP: a register write is still in progress (read only).
        rwp, with_rwp @ 31;
    }
}

register! {
    /// GICD_CTLR as seen by a Non-secure access when GICD_CTLR.DS == 0.
    GicdCtlrNs(u32) {
        flag
        /// EnableGrp1: forward Non-secure Group 1 interrupts.
        enable_grp1, with_enable_grp1 @ 0;
        flag
        /// EnableGrp1A: the Non-secure alias of EnableGrp1NS.
        enable_grp1a, with_enable_grp1a @ 1;
        flag
        /// ARE_NS: affinity routing for the Non-secure state.
        are_ns, with_are_ns @ 4;
        flag
        /// RWP: a register write is still in progress (read only).
        rwp, with_rwp @ 31;
    }
}

register! {
    /// GICD_TYPER, what the distributor implements (read only).
    GicdTyper(u32) {
        flag
        /// ESPI: the extended SPI range is implemented.
        espi, with_espi @ 8;
        flag
        /// NMI: non-maskable interrupts are supported.
        nmi, with_nmi @ 9;
        flag
        /// SecurityExtn: two security states are supported.
        security_extn, with_security_extn @ 10;
        flag
        /// MBIS: message-based SPIs are supported.
        mbis, with_mbis @ 16;
        flag
        /// LPIS: LPIs are supported.
        lpis, with_lpis @ 17;
        flag
        /// DVIS: direct injection of virtual LPIs (GICv4.0 direct registers).
        dvis, with_dvis @ 18;
        flag
        /// A3V: affinity level 3 values other than 0 are supported.
        a3v, with_a3v @ 24;
        flag
        /// No1N: 1-of-N SPI routing is not supported.
        no1n, with_no1n @ 25;
        flag
        /// RSS: affinity level 0 values up to 255 are supported in SGIs.
        rss, with_rss @ 26;
        field
        /// ITLinesNumber: SPI INTIDs up to 32 * (N + 1) - 1.
        it_lines_number, with_it_lines_number @ [4:0];
        field
        /// CPUNumber: number of PEs minus one, without affinity routing.
        cpu_number, with_cpu_number @ [7:5];
        field
        /// num_LPIs: LPIs without the ITS, 2^(N+1) (0: use IDbits).
        num_lpis, with_num_lpis @ [15:11];
        field
        /// IDbits: INTID bits minus one.
        id_bits, with_id_bits @ [23:19];
        field
        /// ESPI_range: the highest extended SPI INTID is 32 * N + 4127.
        espi_range, with_espi_range @ [31:27];
    }
}

impl GicdTyper {
    /// Number of INTID bits the distributor supports.
    pub const fn intid_bits(self) -> u32 {
        self.id_bits() + 1
    }

    /// One past the highest SPI INTID: 32 * (ITLinesNumber + 1), capped at
    /// 1020 because 1020-1023 are special INTIDs.
    pub const fn spi_limit(self) -> u32 {
        let limit = 32 * (self.it_lines_number() + 1);
        if limit > 1020 {
            1020
        } else {
            limit
        }
    }
}

register! {
    /// GICD_TYPER2 (GICv4.1): the vPE ID width and virtual SGI support;
    /// RAZ on GICv3 and GICv4.0 distributors.
    GicdTyper2(u32) {
        flag
        /// VIL: VID says how wide vPE IDs are (0: 16 bits).
        vil, with_vil @ 7;
        flag
        /// nASSGIcap: SGIs without an active state can be configured.
        n_assgi_cap, with_n_assgi_cap @ 8;
        field
        /// VID: vPE ID bits minus one (when VIL == 1).
        vid, with_vid @ [4:0];
    }
}

impl GicdTyper2 {
    /// Whether any GICv4.1 identification is present (VIL or a VID width).
    pub const fn names_v41(self) -> bool {
        self.vil() || self.vid() != 0
    }
}

register! {
    /// GICD_IROUTER<n>: where SPI n goes with affinity routing (64 bits).
    GicdIrouter(u64) {
        flag
        /// Interrupt_Routing_Mode: 1 = to any participating PE (1 of N).
        irm, with_irm @ 31;
        field
        /// Aff0.
        aff0, with_aff0 @ [7:0];
        field
        /// Aff1.
        aff1, with_aff1 @ [15:8];
        field
        /// Aff2.
        aff2, with_aff2 @ [23:16];
        field
        /// Aff3.
        aff3, with_aff3 @ [39:32];
    }
}

impl GicdIrouter {
    /// The bits a write keeps: Aff3, IRM, Aff2, Aff1, Aff0 (the rest RES0).
    pub const WRITABLE: u64 = Self(0)
        .with_aff0(0xff)
        .with_aff1(0xff)
        .with_aff2(0xff)
        .with_aff3(0xff)
        .with_irm(true)
        .0;

    /// Routing to the one PE whose MPIDR is `mpidr` (IRM = 0).
    pub const fn to_pe(mpidr: MpidrEl1) -> Self {
        Self(0)
            .with_aff0(mpidr.aff0())
            .with_aff1(mpidr.aff1())
            .with_aff2(mpidr.aff2())
            .with_aff3(mpidr.aff3())
    }

    /// The affinity fields alone, in MPIDR layout (the layouts agree).
    pub const fn affinity(self) -> u64 {
        Self(0)
            .with_aff0(self.aff0())
            .with_aff1(self.aff1())
            .with_aff2(self.aff2())
            .with_aff3(self.aff3())
            .0
    }
}

register! {
    /// GICD_PIDR2, peripheral ID 2: the architecture revision.
    GicdPidr2(u32) {
        field
        /// ArchRev: 0x3 = GICv3, 0x4 = GICv4.
        arch_rev, with_arch_rev @ [7:4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typer2_vid_and_vil_name_gicv4_1() {
        let t = GicdTyper2(0).with_vil(true).with_vid(15);
        assert_eq!(t.0, 0x8f);
        assert!(t.names_v41());
        assert!(GicdTyper2(0x0f).names_v41());
        assert!(GicdTyper2(1 << 7).vil());
        assert!(GicdTyper2(1 << 8).n_assgi_cap());
        assert!(!GicdTyper2(1 << 8).names_v41());
        assert!(!GicdTyper2(0).names_v41());
        assert_eq!(GicdTyper2(u32::MAX).vid(), 0x1f);
    }

    #[test]
    fn irouter_fields_and_writable_mask() {
        assert_eq!(GicdIrouter::WRITABLE, 0xff_8000_0000 | 0xff_ffff);
        let r = GicdIrouter(0x12_8034_5678);
        assert!(r.irm());
        assert_eq!(
            (r.aff3(), r.aff2(), r.aff1(), r.aff0()),
            (0x12, 0x34, 0x56, 0x78)
        );
        assert_eq!(r.affinity(), 0x12_0034_5678);
        assert!(!GicdIrouter(1 << 30).irm());
    }

    #[test]
    fn irouter_to_pe_copies_the_mpidr_affinity() {
        let mpidr = MpidrEl1(0)
            .with_res1(true)
            .with_mt(true)
            .with_aff3(0x02)
            .with_aff2(0x03)
            .with_aff1(0x04)
            .with_aff0(0x05);
        let r = GicdIrouter::to_pe(mpidr);
        assert_eq!(r.0, 0x02_0003_0405);
        assert!(!r.irm());
        assert_eq!(r.affinity(), mpidr.affinity());
    }

    #[test]
    fn pidr2_arch_rev_is_bits_7_to_4() {
        assert_eq!(GicdPidr2(0x3b).arch_rev(), 3);
        assert_eq!(GicdPidr2(0x4b).arch_rev(), 4);
        assert_eq!(GicdPidr2(0).with_arch_rev(0x14).0, 0x40);
    }

    #[test]
    fn ctlr_secure_view_bits() {
        let ctlr = GicdCtlr(0)
            .with_are_s(true)
            .with_are_ns(true)
            .with_ds(true)
            .with_enable_grp1_ns(true);
        assert_eq!(ctlr.0, 0x72);
        assert!(GicdCtlr(1 << 31).rwp());
    }

    #[test]
    fn ctlr_non_secure_view_puts_are_ns_at_bit_4() {
        let ctlr = GicdCtlrNs(0).with_are_ns(true).with_enable_grp1a(true);
        assert_eq!(ctlr.0, 0x12);
    }

    #[test]
    fn typer_with_lpis_and_16_bit_intids() {
        // 288 INTIDs (ITLinesNumber 8), LPIS, IDbits 15.
        let typer = GicdTyper(0x0078_0008 | 1 << 17);
        assert!(typer.lpis() && !typer.mbis() && !typer.dvis());
        assert_eq!(typer.intid_bits(), 16);
        assert_eq!(typer.spi_limit(), 288);
    }

    #[test]
    fn spi_limit_stops_before_special_intids() {
        assert_eq!(GicdTyper(0x1f).spi_limit(), 1020);
    }
}
