//! Stream table entries (IHI 0070, 5.2 "Stream Table Entry") and the
//! stage-2 configuration one carries: the SMMU walks the same stage-2
//! tables, in the same format, as the CPUs of the partition.

use super::features::oas_bits;
use super::{SmmuError, SmmuFeatures};
use crate::mm::Vmid;

/// STE.Config: abort every transaction, record nothing.
pub const CONFIG_ABORT: u64 = 0b000;
/// STE.Config: stage 1 bypass, stage 2 bypass.
pub const CONFIG_BYPASS: u64 = 0b100;
/// STE.Config: stage 1 bypass, stage 2 translate.
pub const CONFIG_S2_TRANSLATE: u64 = 0b110;

/// STE.SHCFG: use the incoming shareability.
const SHCFG_INCOMING: u64 = 0b01;

/// VTCR_EL2 fields the STE takes over at STE bits [50:32]: T0SZ [5:0],
/// SL0 [7:6], IRGN0 [9:8], ORGN0 [11:10], SH0 [13:12], TG0 [15:14], PS [18:16].
const VTCR_T0SZ: u32 = 0;
const VTCR_SL0: u32 = 6;
const VTCR_IRGN0: u32 = 8;
const VTCR_ORGN0: u32 = 10;
const VTCR_SH0: u32 = 12;
const VTCR_TG0: u32 = 14;
const VTCR_PS: u32 = 16;

/// A stage-2 translation for the StreamIDs of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Config {
    /// The partition's VMID (tags the SMMU's TLB entries, CMD_TLBI_S12_VMALL).
    pub vmid: Vmid,
    /// Physical address of the stage-2 root table (or concatenated roots).
    pub ttb: u64,
    /// S2T0SZ: the IPA size is 64 - t0sz bits.
    pub t0sz: u8,
    /// S2SL0: start level, 4 KiB granule encoding (0 = level 2, 1 = level 1, 2 = level 0).
    pub sl0: u8,
    /// S2PS: output size, the VTCR_EL2.PS encoding.
    pub ps: u8,
    /// S2IR0: inner cacheability of table walks (0 NC, 1 WB-WA, 2 WT, 3 WB).
    pub ir: u8,
    /// S2OR0: outer cacheability of table walks.
    pub or: u8,
    /// S2SH0: shareability of table walks (0 non, 2 outer, 3 inner).
    pub sh: u8,
}

impl S2Config {
    /// The SMMU's view of the stage 2 described by the CPU's VTCR_EL2
    /// (`vtcr`) with root `ttb`: 4 KiB granule, T0SZ/SL0 consistent
    /// (IPA 25..=48 bits, at most 16 concatenated roots) and `ttb` aligned
    /// to the root's size.
    pub fn from_vtcr(vmid: Vmid, ttb: u64, vtcr: u64) -> Result<Self, SmmuError> {
        let field = |shift: u32, width: u32| (vtcr >> shift) & ((1 << width) - 1);
        let tg0 = field(VTCR_TG0, 2);
        if tg0 != 0 {
            return Err(SmmuError::BadVtcr {
                field: "TG0",
                value: tg0,
            });
        }
        let ps = field(VTCR_PS, 3);
        if oas_bits(ps as u8).is_none() {
            return Err(SmmuError::BadVtcr {
                field: "PS",
                value: ps,
            });
        }
        let t0sz = field(VTCR_T0SZ, 6);
        if !(16..=39).contains(&t0sz) {
            return Err(SmmuError::BadVtcr {
                field: "T0SZ",
                value: t0sz,
            });
        }
        let sl0 = field(VTCR_SL0, 2);
        let config = Self {
            vmid,
            ttb,
            t0sz: t0sz as u8,
            sl0: sl0 as u8,
            ps: ps as u8,
            ir: field(VTCR_IRGN0, 2) as u8,
            or: field(VTCR_ORGN0, 2) as u8,
            sh: field(VTCR_SH0, 2) as u8,
        };
        let Some(root_bits) = config.root_bits() else {
            return Err(SmmuError::BadVtcr {
                field: "SL0",
                value: sl0,
            });
        };
        let align = (8u64 << root_bits).max(4096);
        if ttb & (align - 1) != 0 {
            return Err(SmmuError::TtbMisaligned { ttb, align });
        }
        Ok(config)
    }

    /// IPA size in bits.
    pub const fn ipa_bits(&self) -> u8 {
        64 - self.t0sz
    }

    /// Bytes of the root table (all concatenated tables together).
    pub fn root_bytes(&self) -> Option<u64> {
        self.root_bits().map(|bits| (8u64 << bits).max(4096))
    }

    /// IPA bits the root level resolves (9 per table, up to 13 with 16
    /// concatenated tables), or `None` if SL0 and T0SZ disagree (ARM ARM,
    /// AArch64.S2InconsistentSL).
    fn root_bits(&self) -> Option<u32> {
        // 4 KiB granule: SL0 0b00 = level 2, 0b01 = level 1, 0b10 = level 0.
        let level_shift = match self.sl0 {
            0 => 21,
            1 => 30,
            2 => 39,
            _ => return None,
        };
        let ipa_bits = u32::from(self.ipa_bits());
        let root_bits = ipa_bits.checked_sub(level_shift)?;
        (1..=13).contains(&root_bits).then_some(root_bits)
    }

    /// Checks the configuration against what the SMMU implements: VMID
    /// width, IPA size and root address within the OAS, a valid PS. A PS
    /// beyond the OAS is not an error (the CPU's PARange is often wider than
    /// the SMMU's OAS, as on QEMU: 48 against 44 bits): `for_smmu` caps it.
    pub fn check(&self, features: &SmmuFeatures) -> Result<(), SmmuError> {
        if !self.vmid.fits_bits(features.vmid_bits) {
            return Err(SmmuError::VmidTooLarge {
                vmid: self.vmid,
                bits: features.vmid_bits,
            });
        }
        let Some(ps_bits) = oas_bits(self.ps) else {
            return Err(SmmuError::BadVtcr {
                field: "PS",
                value: u64::from(self.ps),
            });
        };
        if self.ipa_bits() > ps_bits {
            // An IPA wider than the output: refused for the CPU as well
            // (`Stage2::vtcr_el2`), and an ILLEGAL STE for some SMMUs.
            return Err(SmmuError::BadVtcr {
                field: "T0SZ",
                value: u64::from(self.t0sz),
            });
        }
        if self.ipa_bits() > features.oas_bits {
            return Err(SmmuError::SizeExceedsOas {
                what: "IPA",
                bits: self.ipa_bits(),
                oas_bits: features.oas_bits,
            });
        }
        if self.ttb >> features.oas_bits != 0 {
            return Err(SmmuError::SizeExceedsOas {
                what: "root table address",
                bits: (64 - self.ttb.leading_zeros()) as u8,
                oas_bits: features.oas_bits,
            });
        }
        if self.root_bits().is_none() {
            return Err(SmmuError::BadVtcr {
                field: "SL0",
                value: u64::from(self.sl0),
            });
        }
        Ok(())
    }

    /// The configuration the STE gets on an SMMU with `features`: checked,
    /// S2PS capped to the OAS (a stage-2 descriptor whose output address
    /// lies beyond it then faults with F_ADDR_SIZE rather than being
    /// truncated), and non-cacheable walks if the SMMU is not coherent.
    pub fn for_smmu(&self, features: &SmmuFeatures) -> Result<Self, SmmuError> {
        self.check(features)?;
        let cfg = Self {
            ps: if self.ps > features.oas_field {
                features.oas_field
            } else {
                self.ps
            },
            ..*self
        };
        Ok(if features.coherent {
            cfg
        } else {
            cfg.with_noncacheable_walks()
        })
    }

    /// The same configuration with non-cacheable table walks, for an SMMU
    /// that cannot snoop the CPU caches (IDR0.COHACC == 0): the walks then
    /// read memory, so the tables must be cleaned to the point of coherency.
    pub const fn with_noncacheable_walks(self) -> Self {
        Self {
            ir: 0,
            or: 0,
            sh: 0b10,
            ..self
        }
    }

    /// The VTCR_EL2-format bits [18:0] the STE holds at bits [50:32].
    const fn vtcr_bits(&self) -> u64 {
        ((self.t0sz as u64 & 0x3f) << VTCR_T0SZ)
            | ((self.sl0 as u64 & 0b11) << VTCR_SL0)
            | ((self.ir as u64 & 0b11) << VTCR_IRGN0)
            | ((self.or as u64 & 0b11) << VTCR_ORGN0)
            | ((self.sh as u64 & 0b11) << VTCR_SH0)
            | ((self.ps as u64 & 0b111) << VTCR_PS)
    }
}

/// One stream table entry: 64 bytes, dword 0 first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ste(pub [u64; 8]);

impl Ste {
    /// Bytes of one STE.
    pub const BYTES: u64 = 64;

    /// V = 0: transactions are terminated and C_BAD_STE is recorded.
    pub const fn invalid() -> Self {
        Self([0; 8])
    }

    /// V = 1, Config = abort: transactions are terminated with an abort,
    /// nothing recorded; every other field is ignored.
    pub const fn abort() -> Self {
        let mut raw = [0; 8];
        raw[0] = 1 | (CONFIG_ABORT << 1);
        Self(raw)
    }

    /// V = 1, Config = stage 1 bypass + stage 2 translate with `cfg`:
    /// AArch64 tables (S2AA64), 4 KiB granule (S2TG = 0), little endian,
    /// no access flag faults (S2AFFD: our descriptors always set AF and the
    /// SMMU may not update it), protected walks (S2PTW), faults terminate
    /// (S2S = 0) and are recorded (S2R), incoming shareability kept (SHCFG).
    pub const fn stage2(cfg: &S2Config) -> Self {
        let mut raw = [0; 8];
        raw[0] = 1 | (CONFIG_S2_TRANSLATE << 1);
        raw[1] = SHCFG_INCOMING << 44;
        raw[2] = cfg.vmid.get() as u64
            | (cfg.vtcr_bits() << 32)
            | (1 << 51) // S2AA64
            | (1 << 53) // S2AFFD
            | (1 << 54) // S2PTW
            | (1 << 58); // S2R
        raw[3] = cfg.ttb & 0x000f_ffff_ffff_fff0; // S2TTB [51:4]
        Self(raw)
    }

    /// STE.V.
    pub const fn valid(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// STE.Config.
    pub const fn config(&self) -> u64 {
        (self.0[0] >> 1) & 0b111
    }

    /// STE.S2VMID.
    pub const fn vmid(&self) -> Vmid {
        Vmid::from_const(self.0[2] as u16)
    }
}

impl core::fmt::Debug for Ste {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Ste({:#x?})", self.0)
    }
}

#[cfg(test)]
#[path = "ste_tests.rs"]
mod tests;
