//! Redistributor register values: GICR_CTLR, GICR_TYPER, GICR_WAKER and the
//! LPI table base registers, physical and GICv4.0 virtual (IHI 0069, the
//! GICR_* register descriptions).

use super::bits64;
use crate::mm::addr::PhysAddr;

register! {
    /// GICR_CTLR, the redistributor control register.
    GicrCtlr(u32) {
        flag
        /// EnableLPIs: LPIs are enabled (cannot be cleared on every implementation).
        enable_lpis, with_enable_lpis @ 0;
        flag
        /// CES: clearing EnableLPIs is supported.
        ces, with_ces @ 1;
        flag
        /// IR: LPI invalidate registers are supported (GICv4.1).
        ir, with_ir @ 2;
        flag
        /// RWP: a write to EnableLPIs or the DPG bits is still in progress.
        rwp, with_rwp @ 3;
        flag
        /// UWP: upstream writes are pending.
        uwp, with_uwp @ 31;
    }
}

register! {
    /// GICR_TYPER, what this redistributor is and implements (read only).
    GicrTyper(u64) {
        flag
        /// PLPIS: physical LPIs are supported.
        plpis, with_plpis @ 0;
        flag
        /// VLPIS: virtual LPIs (GICv4) are supported.
        vlpis, with_vlpis @ 1;
        flag
        /// Dirty: VPENDBASER.Dirty is implemented.
        dirty, with_dirty @ 2;
        flag
        /// DirectLPI: the direct LPI registers (SETLPIR, ...) are implemented.
        direct_lpi, with_direct_lpi @ 3;
        flag
        /// Last: the last redistributor of its contiguous region.
        last, with_last @ 4;
        flag
        /// DPGS: the DPG bits of GICR_CTLR are implemented.
        dpgs, with_dpgs @ 5;
        flag
        /// MPAM: MPAM is supported.
        mpam, with_mpam @ 6;
        flag
        /// RVPEID: VPENDBASER records a vPEID (GICv4.1).
        rvpeid, with_rvpeid @ 7;
        flag
        /// VSGI: virtual SGIs can be injected directly (GICv4.1).
        vsgi, with_vsgi @ 26;
        field
        /// Processor_Number: the number an ITS uses as RDbase when PTA == 0.
        processor_number, with_processor_number @ [23:8];
        field
        /// CommonLPIAff: which redistributors share an LPI configuration.
        common_lpi_aff, with_common_lpi_aff @ [25:24];
        field
        /// PPInum: extended PPI range.
        ppi_num, with_ppi_num @ [31:27];
        field
        /// Affinity_Value: Aff3.Aff2.Aff1.Aff0 of the PE this redistributor serves.
        affinity, with_affinity @ [63:32];
    }
}

impl GicrTyper {
    /// The affinity in MPIDR_EL1 layout (Aff3 at [39:32], Aff2..Aff0 at
    /// [23:0]), to match a redistributor with the CPU that reads MPIDR.
    pub const fn mpidr_affinity(self) -> u64 {
        let affinity = self.affinity();
        (affinity & 0x00ff_ffff) | ((affinity >> 24) << 32)
    }
}

register! {
    /// GICR_WAKER, the redistributor power handshake.
    GicrWaker(u32) {
        flag
        /// ProcessorSleep: clear it to mark the PE awake.
        processor_sleep, with_processor_sleep @ 1;
        flag
        /// ChildrenAsleep: the interface is quiescent; poll until it reads 0 after waking.
        children_asleep, with_children_asleep @ 2;
    }
}

/// Declares a PROPBASER-layout register (IDbits, 4 KiB aligned address).
macro_rules! propbaser {
    ($(#[$meta:meta])* $name:ident) => {
        register! {
            $(#[$meta])*
            $name(u64) {
                field
                /// IDbits: number of INTID bits the table covers, minus one.
                id_bits, with_id_bits @ [4:0];
                field
                /// InnerCache attributes of the table accesses.
                inner_cache, with_inner_cache @ [9:7];
                field
                /// Shareability of the table accesses.
                shareability, with_shareability @ [11:10];
                field
                /// OuterCache attributes of the table accesses.
                outer_cache, with_outer_cache @ [58:56];
            }
        }

        impl $name {
            /// Physical_Address, bits [51:12]: the configuration table base.
            pub const fn physical_address(self) -> PhysAddr {
                PhysAddr(self.0 & bits64(51, 12))
            }

            /// A copy with Physical_Address set (bits below 4 KiB dropped).
            pub const fn with_physical_address(self, addr: PhysAddr) -> Self {
                Self((self.0 & !bits64(51, 12)) | (addr.0 & bits64(51, 12)))
            }
        }
    };
}

propbaser!(
    /// GICR_PROPBASER, the LPI configuration table shared by redistributors.
    GicrPropbaser
);
propbaser!(
    /// GICR_VPROPBASER (GICv4.0 layout), the resident vPE's vLPI configuration table.
    GicrVpropbaser
);

register! {
    /// GICR_PENDBASER, this redistributor's LPI pending table.
    GicrPendbaser(u64) {
        flag
        /// PTZ: the pending table is known to be all zeros.
        ptz, with_ptz @ 62;
        field
        /// InnerCache attributes of the table accesses.
        inner_cache, with_inner_cache @ [9:7];
        field
        /// Shareability of the table accesses.
        shareability, with_shareability @ [11:10];
        field
        /// OuterCache attributes of the table accesses.
        outer_cache, with_outer_cache @ [58:56];
    }
}

register! {
    /// GICR_VPENDBASER (GICv4.0 layout), the resident vPE's vLPI pending table.
    GicrVpendbaser(u64) {
        flag
        /// Valid: a vPE is resident; write it 0 first when switching vPEs.
        valid, with_valid @ 63;
        flag
        /// IDAI: the implementation-defined area of the table is invalid.
        idai, with_idai @ 62;
        flag
        /// PendingLast: after descheduling, a vLPI was pending (doorbell hint).
        pending_last, with_pending_last @ 61;
        flag
        /// Dirty: the redistributor is still parsing the table after a write.
        dirty, with_dirty @ 60;
        field
        /// InnerCache attributes of the table accesses.
        inner_cache, with_inner_cache @ [9:7];
        field
        /// Shareability of the table accesses.
        shareability, with_shareability @ [11:10];
        field
        /// OuterCache attributes of the table accesses.
        outer_cache, with_outer_cache @ [58:56];
    }
}

/// Physical_Address accessors of the pending-table registers, bits [51:16].
macro_rules! pending_address {
    ($name:ident) => {
        impl $name {
            /// Physical_Address, bits [51:16]: the 64 KiB aligned pending table.
            pub const fn physical_address(self) -> PhysAddr {
                PhysAddr(self.0 & bits64(51, 16))
            }

            /// A copy with Physical_Address set (bits below 64 KiB dropped).
            pub const fn with_physical_address(self, addr: PhysAddr) -> Self {
                Self((self.0 & !bits64(51, 16)) | (addr.0 & bits64(51, 16)))
            }
        }
    };
}

pending_address!(GicrPendbaser);
pending_address!(GicrVpendbaser);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typer_decodes_processor_number_affinity_and_lpi_support() {
        // CPU 1 at Aff3.Aff2.Aff1.Aff0 = 2.0.0.1, last frame, PLPIS+VLPIS+DirectLPI.
        let typer = GicrTyper(0x0200_0001_0000_011b);
        assert!(typer.plpis() && typer.vlpis() && typer.direct_lpi() && typer.last());
        assert!(!typer.dirty() && !typer.vsgi());
        assert_eq!(typer.processor_number(), 1);
        assert_eq!(typer.affinity(), 0x0200_0001);
        assert_eq!(typer.mpidr_affinity(), 0x02_0000_0001);
    }

    #[test]
    fn waker_handshake_bits() {
        assert_eq!(GicrWaker(0).with_processor_sleep(true).0, 0x2);
        assert!(GicrWaker(0x4).children_asleep());
        assert!(GicrCtlr(0x8).rwp());
    }

    #[test]
    fn propbaser_places_idbits_attributes_and_address() {
        let prop = GicrPropbaser(0)
            .with_id_bits(15)
            .with_inner_cache(7)
            .with_shareability(1)
            .with_physical_address(PhysAddr(0x4_0123_4fff));
        assert_eq!(prop.0, 0x0000_0004_0123_478f);
        assert_eq!(prop.physical_address(), PhysAddr(0x4_0123_4000));
        assert_eq!(GicrVpropbaser(prop.0).id_bits(), 15);
    }

    #[test]
    fn pendbaser_address_is_64k_aligned_and_ptz_is_bit_62() {
        let pend = GicrPendbaser(0)
            .with_ptz(true)
            .with_physical_address(PhysAddr(0x000f_ffff_ffff_ffff));
        assert_eq!(pend.0, 0x400f_ffff_ffff_0000);
    }

    #[test]
    fn vpendbaser_flags_are_in_the_top_nibble() {
        let vpend = GicrVpendbaser(0xf000_0000_0000_0000);
        assert!(vpend.valid() && vpend.idai() && vpend.pending_last() && vpend.dirty());
        let cleared = vpend.with_valid(false);
        assert_eq!(cleared.0, 0x7000_0000_0000_0000);
        let programmed = GicrVpendbaser(0)
            .with_outer_cache(7)
            .with_physical_address(PhysAddr(0x8_0001_0000));
        assert_eq!(programmed.0, 0x0700_0008_0001_0000);
    }
}
