//! What the partition's manifest decides about its virtual GIC: how many
//! vCPUs and SPIs it has, whether it has LPIs, and where the guest finds
//! the distributor and the redistributors.

use crate::mm::Ipa;

/// Size of the distributor frame (IHI 0069, 12.8: GICD is one 64 KiB frame).
pub const DIST_SIZE: u64 = 0x1_0000;
/// Size of one redistributor: RD_base + SGI_base frames, no VLPI frames
/// (IHI 0069, 12.10: a GICv3 redistributor is two 64 KiB frames).
pub const REDIST_STRIDE: u64 = 0x2_0000;
/// Offset of the SGI_base frame inside a redistributor.
pub const SGI_FRAME: u64 = 0x1_0000;
/// Most vCPUs a partition's vGIC serves (one bit each in a [`super::VcpuMask`]).
pub const MAX_VCPUS: u16 = 64;
/// Most SPIs: INTIDs 32..=1019 (IHI 0069, 2.2: 1020-1023 are special).
pub const MAX_SPIS: u16 = 988;
/// Most list registers ICH_VTR_EL2.ListRegs can announce.
pub const MAX_LRS: usize = 16;

/// The configuration of one partition's virtual GICv3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VgicConfig {
    /// Number of vCPUs; vCPU `i` has MPIDR Aff0 = `i`, Aff1..3 = 0.
    pub num_vcpus: u16,
    /// Number of SPIs (INTIDs 32 .. 32 + `num_spis`).
    pub num_spis: u16,
    /// INTID bits of the guest's LPIs (GICD_TYPER.IDbits + 1); 0 = no LPIs.
    pub lpi_id_bits: u8,
    /// Priority bits the virtual CPU interface implements (ICH_VTR_EL2.PRIbits + 1).
    pub priority_bits: u8,
    /// LPI pending budget per vCPU; the partition may hold this times
    /// `num_vcpus` pending LPIs in all, spread over vCPUs in any way.
    pub max_pending_lpis: usize,
    /// IPA of the distributor frame (64 KiB aligned).
    pub dist_base: Ipa,
    /// IPA of vCPU 0's redistributor; vCPU `i`'s is at `+ i * 128 KiB`.
    pub redist_base: Ipa,
}

/// Why a [`VgicConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `num_vcpus` is 0 or above [`MAX_VCPUS`].
    VcpuCount(u16),
    /// `num_spis` is above [`MAX_SPIS`].
    SpiCount(u16),
    /// `lpi_id_bits` is neither 0 nor 14..=32.
    LpiIdBits(u8),
    /// `priority_bits` is outside 5..=8 (IHI 0069, ICH_VTR_EL2.PRIbits).
    PriorityBits(u8),
    /// LPIs are configured but `max_pending_lpis` is 0.
    NoLpiCapacity,
    /// A frame base is not 64 KiB aligned.
    Unaligned { frame: &'static str, base: Ipa },
    /// A frame's end does not fit in the address space.
    Overflow { frame: &'static str },
    /// The distributor overlaps the redistributor region.
    Overlap,
}

impl VgicConfig {
    /// Checks every field; the vGIC relies on these bounds everywhere.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.num_vcpus == 0 || self.num_vcpus > MAX_VCPUS {
            return Err(ConfigError::VcpuCount(self.num_vcpus));
        }
        if self.num_spis > MAX_SPIS {
            return Err(ConfigError::SpiCount(self.num_spis));
        }
        if self.lpi_id_bits != 0 && !(14..=32).contains(&self.lpi_id_bits) {
            return Err(ConfigError::LpiIdBits(self.lpi_id_bits));
        }
        if !(5..=8).contains(&self.priority_bits) {
            return Err(ConfigError::PriorityBits(self.priority_bits));
        }
        if self.lpis() && self.max_pending_lpis == 0 {
            return Err(ConfigError::NoLpiCapacity);
        }
        for (frame, base) in [
            ("distributor", self.dist_base),
            ("redistributors", self.redist_base),
        ] {
            if !base.is_aligned(DIST_SIZE) {
                return Err(ConfigError::Unaligned { frame, base });
            }
        }
        let dist_end =
            self.dist_base
                .raw()
                .checked_add(DIST_SIZE)
                .ok_or(ConfigError::Overflow {
                    frame: "distributor",
                })?;
        let redist_end = self.redist_end().ok_or(ConfigError::Overflow {
            frame: "redistributors",
        })?;
        if self.dist_base.raw() < redist_end && self.redist_base.raw() < dist_end {
            return Err(ConfigError::Overlap);
        }
        Ok(())
    }

    /// Whether the partition has LPIs (and so a vITS may target it).
    pub fn lpis(&self) -> bool {
        self.lpi_id_bits != 0
    }

    /// One past the last SPI INTID.
    pub fn spi_end(&self) -> u32 {
        32 + u32::from(self.num_spis)
    }

    /// Size of the redistributor region: one 128 KiB redistributor per vCPU.
    pub fn redist_size(&self) -> u64 {
        u64::from(self.num_vcpus) * REDIST_STRIDE
    }

    /// The mask of implemented priority bits (the top `priority_bits`).
    pub fn priority_mask(&self) -> u8 {
        let unimplemented = 8u32.saturating_sub(u32::from(self.priority_bits));
        0xffu8.checked_shl(unimplemented).unwrap_or(0)
    }

    /// Whether `intid` is an LPI this partition's INTID width covers.
    pub fn is_lpi(&self, intid: u32) -> bool {
        self.lpis() && intid >= crate::ids::FIRST_LPI && u64::from(intid) >> self.lpi_id_bits == 0
    }

    fn redist_end(&self) -> Option<u64> {
        self.redist_base.raw().checked_add(self.redist_size())
    }
}
