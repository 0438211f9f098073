//! Host tests of the virtual GIC: a partition layout and MMIO helpers.

mod registers;

use super::*;
use crate::ids::{VcpuIndex, VirtIntId};
use crate::mm::Ipa;

/// Distributor IPA in the test layout (QEMU virt's).
pub(super) const GICD: u64 = 0x0800_0000;
/// First redistributor IPA.
pub(super) const GICR: u64 = 0x080a_0000;

/// The configuration most tests use: 4 vCPUs, 64 SPIs, 16-bit LPIs.
pub(super) fn config() -> VgicConfig {
    VgicConfig {
        num_vcpus: 4,
        num_spis: 64,
        lpi_id_bits: 16,
        priority_bits: 5,
        max_pending_lpis: 32,
        dist_base: Ipa(GICD),
        redist_base: Ipa(GICR),
    }
}

/// A vGIC with [`config`], the distributor's Group 1 enabled, every SGI,
/// PPI and SPI in Group 1, and `vcpu`s awake.
pub(super) fn vgic() -> Vgic {
    let mut vgic = Vgic::new(config()).expect("valid config");
    write(&mut vgic, 0, GICD, 4, 0x12);
    for reg in 1..3 {
        write(&mut vgic, 0, GICD + 0x80 + 4 * reg, 4, u64::from(u32::MAX));
    }
    for v in 0..4 {
        write(&mut vgic, 0, sgi_frame(v) + 0x80, 4, u64::from(u32::MAX));
    }
    vgic
}

/// vCPU `v`'s RD_base frame.
pub(super) fn rd_frame(v: u16) -> u64 {
    GICR + u64::from(v) * REDIST_STRIDE
}

/// vCPU `v`'s SGI_base frame.
pub(super) fn sgi_frame(v: u16) -> u64 {
    rd_frame(v) + SGI_FRAME
}

/// A guest read by vCPU `v`.
pub(super) fn read(vgic: &mut Vgic, v: u16, ipa: u64, size: u8) -> u64 {
    vgic.mmio_read(VcpuIndex(v), Ipa(ipa), size)
}

/// A guest write by vCPU `v`.
pub(super) fn write(vgic: &mut Vgic, v: u16, ipa: u64, size: u8, value: u64) -> Actions {
    vgic.mmio_write(VcpuIndex(v), Ipa(ipa), size, value)
}
