//! Distributor register values: GICD_CTLR and GICD_TYPER (IHI 0069, the
//! GICD_* register descriptions).

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

#[cfg(test)]
mod tests {
    use super::*;

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
