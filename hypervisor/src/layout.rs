//! The guest physical (IPA) map every partition sees besides its RAM and
//! console, which the manifest places. It follows QEMU virt's layout so
//! that guests written for that machine feel at home.
#![forbid(unsafe_code)]

use crate::manifest::Region;
use crate::mm::addr::Range;
use crate::mm::Ipa;

/// Bytes of one GICv3 redistributor (RD + SGI frames, no VLPI frames: the
/// guest sees a GICv3).
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
/// The most vCPUs one partition may have (bounds the redistributor region).
pub const MAX_VCPUS: u64 = 8;

/// The virtual GIC distributor.
pub const GICD: Range<Ipa> = Range {
    start: Ipa(0x0800_0000),
    size: 0x1_0000,
};
/// The virtual ITS (control frame + translation frame).
pub const ITS: Range<Ipa> = Range {
    start: Ipa(0x0808_0000),
    size: 0x2_0000,
};
/// The redistributor region, sized for [`MAX_VCPUS`].
pub const GICR: Range<Ipa> = Range {
    start: Ipa(0x080a_0000),
    size: GICR_FRAME_SIZE * MAX_VCPUS,
};

/// The most virtual ITSs one partition may have.
pub const MAX_ITS: usize = 4;
/// The SPI (counted from INTID 32) of every partition's virtual console, as
/// QEMU virt wires its PL011: INTID 33.
pub const CONSOLE_SPI: u32 = 1;
/// Where further virtual ITSs sit (the first is [`ITS`]): 128 KiB apart.
pub const EXTRA_ITS_BASE: Ipa = Ipa(0x0a00_0000);

/// The frames of the partition's `index`-th virtual ITS (0 = [`ITS`]).
pub fn extra_its(index: usize) -> Range<Ipa> {
    if index == 0 {
        ITS
    } else {
        Range {
            start: Ipa(EXTRA_ITS_BASE.raw() + (index as u64 - 1) * ITS.size),
            size: ITS.size,
        }
    }
}

/// The guest's PCIe ECAM window (16 buses), for passthrough devices.
pub const PCI_ECAM: Range<Ipa> = Range {
    start: Ipa(0x40_1000_0000),
    size: 16 << 20,
};
/// The guest's 32-bit PCI memory window (bus address == IPA), where the
/// virtual host bridge places passthrough BARs.
pub const PCI_MEM32: Range<Ipa> = Range {
    start: Ipa(0x1000_0000),
    size: 0x2eff_0000,
};

/// The guest PCIe host bridge every partition with passthrough devices
/// gets: its requester IDs go to its own vITS as DeviceIDs (msi-map base 0).
pub fn guest_pci() -> crate::boot::guest_fdt::GuestPci {
    crate::boot::guest_fdt::GuestPci {
        ecam: PCI_ECAM,
        first_bus: 0,
        last_bus: 15,
        mem32: Some(crate::boot::guest_fdt::GuestPciWindow {
            cpu: PCI_MEM32,
            pci_address: PCI_MEM32.start.raw(),
        }),
        mem64: None,
        msi_base: 0,
        dma_coherent: true,
    }
}

/// The redistributor region of a partition with `vcpus` vCPUs.
pub fn redistributors(vcpus: usize) -> Range<Ipa> {
    Range {
        start: GICR.start,
        size: GICR_FRAME_SIZE * vcpus as u64,
    }
}

/// The fixed windows, for manifest validation (RAM must not overlap them).
pub fn device_windows() -> [Region<'static, Ipa>; 6] {
    [
        Region {
            name: "GIC distributor",
            range: GICD,
        },
        Region {
            name: "ITS",
            range: ITS,
        },
        Region {
            name: "GIC redistributors",
            range: GICR,
        },
        Region {
            name: "PCI ECAM",
            range: PCI_ECAM,
        },
        Region {
            name: "PCI memory window",
            range: PCI_MEM32,
        },
        Region {
            name: "further ITS frames",
            range: Range {
                start: EXTRA_ITS_BASE,
                size: ITS.size * (MAX_ITS as u64 - 1),
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_do_not_overlap_and_are_64k_aligned() {
        let w = device_windows();
        for (i, a) in w.iter().enumerate() {
            assert_eq!(a.range.start.raw() % 0x1_0000, 0, "{}", a.name);
            for b in &w[i + 1..] {
                let (a0, a1) = (a.range.start.raw(), a.range.start.raw() + a.range.size);
                let (b0, b1) = (b.range.start.raw(), b.range.start.raw() + b.range.size);
                assert!(a1 <= b0 || b1 <= a0, "{} overlaps {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn redistributor_region_grows_with_vcpus() {
        assert_eq!(redistributors(2).size, 0x4_0000);
        assert!(redistributors(MAX_VCPUS as usize).size <= GICR.size);
    }
}
