//! Which form of GICv4 direct injection the hardware offers, and whether
//! the hypervisor uses it (IHI 0069H: GITS_TYPER.Virtual/VMAPP,
//! GICR_TYPER.VLPIS/RVPEID, GICD_TYPER2).
//!
//! The ITS backend drives GICv4.0: VMAPP in its 4.0 form (with the vPE's
//! virtual pending table address), VPENDBASER per residency change and
//! doorbells per vPE. A GICv4.1 ITS (GIC-700, Neoverse servers) reads
//! VMAPP in the 4.1 form (the vPE configuration table is shared through
//! GICR_VPROPBASER, default doorbells, vSGIs) and GICR_VPENDBASER
//! differently, so the 4.0 programming must not reach it. On 4.1 hardware
//! direct injection is refused with a clear line and every passthrough
//! MSI takes the GICv3 software path (physical LPI at EL2, injected
//! through a list register), which needs only GITS_TYPER.Physical.
#![forbid(unsafe_code)]

use core::fmt;

use super::regs::gicd::GicdTyper2;
use super::regs::gicr::GicrTyper;
use super::regs::its::GitsTyper;

/// The ID register values the decision is made from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GicV4Ids {
    /// GITS_TYPER of the ITS passthrough devices' MSIs go to.
    pub gits_typer: GitsTyper,
    /// GICR_TYPER of every redistributor, OR-ed (a 4.1 bit on any counts)…
    pub gicr_typer_any: GicrTyper,
    /// …and AND-ed (VLPIS must be on all).
    pub gicr_typer_all: GicrTyper,
    /// GICD_TYPER2 (0 on GICv3/4.0 distributors, which RAZ it).
    pub gicd_typer2: GicdTyper2,
}

/// How passthrough MSIs reach guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectInjection {
    /// GICv4.0: VLPIs straight into the running vCPU.
    V40,
    /// GICv4.1 hardware: not driven; the GICv3 software path is used.
    RefusedV41,
    /// No GICv4 at all (GICv3 ITS, or a redistributor without VLPIs).
    Unavailable,
}

impl GicV4Ids {
    /// Whether the hardware is GICv4.1 (any of its 4.1 identification bits).
    pub fn is_v41(&self) -> bool {
        self.gits_typer.vmapp() || self.gicr_typer_any.rvpeid() || self.gicd_typer2.names_v41()
    }

    /// The decision.
    pub fn direct_injection(&self) -> DirectInjection {
        let virtual_its = self.gits_typer.virtual_lpis();
        let vlpis = self.gicr_typer_all.vlpis();
        match (virtual_its && vlpis, self.is_v41()) {
            (false, _) => DirectInjection::Unavailable,
            (true, true) => DirectInjection::RefusedV41,
            (true, false) => DirectInjection::V40,
        }
    }
}

/// The boot log line for the decision.
impl fmt::Display for DirectInjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V40 => write!(f, "GICv4.0: passthrough MSIs are direct-injected vLPIs"),
            Self::RefusedV41 => write!(
                f,
                "GICv4.1 (GITS_TYPER.VMAPP/RVPEID): direct injection not driven (4.0 forms only); passthrough MSIs take the GICv3 software path"
            ),
            Self::Unavailable => write!(
                f,
                "no GICv4 (ITS or redistributors without VLPIs): passthrough MSIs take the GICv3 software path"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    /// QEMU 10 `virt,gic-version=4` (ARCHITECTURE.md): GITS_TYPER
    /// 0x3f0001efb3, VLPIS on every redistributor, GICD_TYPER2 = 0.
    const VLPIS: GicrTyper = GicrTyper(0).with_vlpis(true);
    const QEMU_V40: GicV4Ids = GicV4Ids {
        gits_typer: GitsTyper(0x3f_0001_efb3),
        gicr_typer_any: VLPIS,
        gicr_typer_all: VLPIS,
        gicd_typer2: GicdTyper2(0),
    };

    #[test]
    fn qemu_gic_version_4_is_v40_and_driven() {
        assert!(!QEMU_V40.is_v41());
        assert_eq!(QEMU_V40.direct_injection(), DirectInjection::V40);
    }

    #[test]
    fn any_v41_identification_refuses_direct_injection() {
        let cases = [
            GicV4Ids {
                gits_typer: QEMU_V40.gits_typer.with_vmapp(true),
                ..QEMU_V40
            },
            GicV4Ids {
                gicr_typer_any: VLPIS.with_rvpeid(true),
                ..QEMU_V40
            },
            GicV4Ids {
                gicd_typer2: GicdTyper2(0).with_vil(true).with_vid(15),
                ..QEMU_V40
            },
        ];
        for ids in cases {
            assert_eq!(
                ids.direct_injection(),
                DirectInjection::RefusedV41,
                "{ids:?}"
            );
        }
        let line = DirectInjection::RefusedV41.to_string();
        assert!(line.contains("GICv3 software path"), "{line}");
    }

    #[test]
    fn no_virtual_its_or_a_redistributor_without_vlpis_is_unavailable() {
        let gicv3 = GicV4Ids {
            gits_typer: QEMU_V40.gits_typer.with_virtual_lpis(false),
            ..QEMU_V40
        };
        assert_eq!(gicv3.direct_injection(), DirectInjection::Unavailable);
        let partial = GicV4Ids {
            gicr_typer_all: GicrTyper(0),
            ..QEMU_V40
        };
        assert_eq!(partial.direct_injection(), DirectInjection::Unavailable);
    }
}
