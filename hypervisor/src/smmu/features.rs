//! What an SMMU implements, decoded from SMMU_IDR0..IDR5 (IHI 0070, 6.3.1
//! to 6.3.6), and the refusal of an SMMU the hypervisor cannot use.

use super::regs::{Idr0, Idr1, Idr3, Idr5};
use super::SmmuError;

/// Endianness of the SMMU's table walks (SMMU_IDR0.TTENDIAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endianness {
    /// Both, chosen per context (0b00).
    Mixed,
    /// Little endian only (0b10).
    Little,
    /// Big endian only (0b11).
    Big,
}

/// How the SMMU handles faulting transactions (SMMU_IDR0.STALL_MODEL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallModel {
    /// Stall and terminate both supported (0b00).
    StallAndTerminate,
    /// Terminate only (0b01).
    TerminateOnly,
    /// Stall forced for faults that can stall (0b10).
    StallForced,
}

/// The SMMU's capabilities, as far as the hypervisor cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuFeatures {
    /// Stage 2 translation (IDR0.S2P).
    pub stage2: bool,
    /// Stage 1 translation (IDR0.S1P).
    pub stage1: bool,
    /// AArch64 translation tables (IDR0.TTF bit 1).
    pub aarch64_tables: bool,
    /// Table, queue and walk accesses are IO-coherent (IDR0.COHACC).
    pub coherent: bool,
    /// VMID bits: 16 with IDR0.VMID16, else 8.
    pub vmid_bits: u8,
    /// ASID bits: 16 with IDR0.ASID16, else 8.
    pub asid_bits: u8,
    /// StreamID bits (IDR1.SIDSIZE).
    pub sid_bits: u8,
    /// SubstreamID bits (IDR1.SSIDSIZE).
    pub ssid_bits: u8,
    /// Two-level stream tables (IDR0.ST_LEVEL == 0b01).
    pub two_level_stream_table: bool,
    /// log2 of the largest command queue (IDR1.CMDQS).
    pub cmdq_log2: u8,
    /// log2 of the largest event queue (IDR1.EVENTQS).
    pub evtq_log2: u8,
    /// Output address size in bits (IDR5.OAS).
    pub oas_bits: u8,
    /// The IDR5.OAS encoding, the same as VTCR_EL2.PS's.
    pub oas_field: u8,
    /// 4 KiB granule (IDR5.GRAN4K).
    pub gran_4k: bool,
    /// 16 KiB granule (IDR5.GRAN16K).
    pub gran_16k: bool,
    /// 64 KiB granule (IDR5.GRAN64K).
    pub gran_64k: bool,
    /// The SMMU's interrupts can be MSIs (IDR0.MSI); the driver uses wired ones.
    pub msi: bool,
    /// CMD_SYNC can signal completion by SEV (IDR0.SEV).
    pub sev: bool,
    /// EL2 stage-1 contexts and CMD_TLBI_EL2_* (IDR0.HYP).
    pub hyp: bool,
    /// Broadcast TLB maintenance (IDR0.BTM).
    pub btm: bool,
    /// Hardware access/dirty flag updates (IDR0.HTTU).
    pub httu: u8,
    /// PCIe ATS (IDR0.ATS).
    pub ats: bool,
    /// PCIe PRI (IDR0.PRI).
    pub pri: bool,
    /// Range-based TLB invalidation (IDR3.RIL).
    pub range_invalidation: bool,
    /// Walk endianness.
    pub endianness: Endianness,
    /// Fault stalling model.
    pub stall_model: StallModel,
}

impl SmmuFeatures {
    /// Decodes SMMU_IDR0..IDR5 (`idr[n]` = SMMU_IDRn), refusing an SMMU
    /// without stage 2, AArch64 tables, the 4 KiB granule or little-endian
    /// walks, or whose stream table or queues are preset.
    pub fn from_idr(idr: [u32; 6]) -> Result<Self, SmmuError> {
        let idr0 = Idr0(idr[0]);
        let idr1 = Idr1(idr[1]);
        let idr3 = Idr3(idr[3]);
        let idr5 = Idr5(idr[5]);
        if !idr0.s2p() {
            return Err(SmmuError::MissingFeature("stage 2 translation (IDR0.S2P)"));
        }
        if idr0.ttf() & 0b10 == 0 {
            return Err(SmmuError::MissingFeature(
                "AArch64 translation tables (IDR0.TTF)",
            ));
        }
        if !idr5.gran4k() {
            return Err(SmmuError::MissingFeature("the 4 KiB granule (IDR5.GRAN4K)"));
        }
        let endianness = match idr0.ttendian() {
            0b00 => Endianness::Mixed,
            0b10 => Endianness::Little,
            0b11 => {
                return Err(SmmuError::MissingFeature(
                    "little-endian table walks (IDR0.TTENDIAN)",
                ))
            }
            _ => return Err(SmmuError::Unsupported("a reserved IDR0.TTENDIAN")),
        };
        if idr1.tables_preset() {
            return Err(SmmuError::Unsupported(
                "a preset stream table (IDR1.TABLES_PRESET)",
            ));
        }
        if idr1.queues_preset() {
            return Err(SmmuError::Unsupported("preset queues (IDR1.QUEUES_PRESET)"));
        }
        let oas_field = idr5.oas() as u8;
        let oas_bits = oas_bits(oas_field).ok_or(SmmuError::ReservedOas(oas_field))?;
        let stall_model = match idr0.stall_model() {
            0b00 => StallModel::StallAndTerminate,
            0b10 => StallModel::StallForced,
            // 0b01, and the reserved 0b11 read as the safe choice.
            _ => StallModel::TerminateOnly,
        };
        Ok(Self {
            stage2: true,
            stage1: idr0.s1p(),
            aarch64_tables: true,
            coherent: idr0.cohacc(),
            vmid_bits: if idr0.vmid16() { 16 } else { 8 },
            asid_bits: if idr0.asid16() { 16 } else { 8 },
            sid_bits: idr1.sidsize() as u8,
            ssid_bits: idr1.ssidsize() as u8,
            two_level_stream_table: idr0.st_level() == 0b01,
            cmdq_log2: idr1.cmdqs() as u8,
            evtq_log2: idr1.eventqs() as u8,
            oas_bits,
            oas_field,
            gran_4k: true,
            gran_16k: idr5.gran16k(),
            gran_64k: idr5.gran64k(),
            msi: idr0.msi(),
            sev: idr0.sev(),
            hyp: idr0.hyp(),
            btm: idr0.btm(),
            httu: idr0.httu() as u8,
            ats: idr0.ats(),
            pri: idr0.pri(),
            range_invalidation: idr3.ril(),
            endianness,
            stall_model,
        })
    }
}

/// Bits of a PA size encoding (SMMU_IDR5.OAS, VTCR_EL2.PS, STE.S2PS):
/// 0 = 32, 1 = 36, 2 = 40, 3 = 42, 4 = 44, 5 = 48, 6 = 52; 7 is reserved.
pub const fn oas_bits(field: u8) -> Option<u8> {
    match field {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 10's SMMUv3 (`-M virt,iommu=smmuv3`), measured.
    const QEMU: [u32; 6] = [0x0d44_101b, (19 << 21) | (19 << 16) | 16, 0, 0, 0, 0x74];

    #[test]
    fn qemu_smmu_is_accepted_with_its_features() {
        let f = SmmuFeatures::from_idr(QEMU).unwrap();
        assert!(f.stage2 && f.stage1 && f.aarch64_tables && f.coherent);
        assert_eq!((f.vmid_bits, f.asid_bits, f.sid_bits), (16, 16, 16));
        assert!(f.two_level_stream_table);
        assert_eq!((f.cmdq_log2, f.evtq_log2), (19, 19));
        assert_eq!((f.oas_bits, f.oas_field), (44, 4));
        assert!(f.gran_4k && f.gran_16k && f.gran_64k);
        assert!(!f.msi && !f.ats && !f.pri && !f.hyp);
        assert_eq!(f.endianness, Endianness::Little);
        assert_eq!(f.stall_model, StallModel::TerminateOnly);
    }

    #[test]
    fn smmu_without_stage2_is_refused_naming_s2p() {
        let mut idr = QEMU;
        idr[0] &= !1;
        let e = SmmuFeatures::from_idr(idr).unwrap_err();
        assert_eq!(
            e,
            SmmuError::MissingFeature("stage 2 translation (IDR0.S2P)")
        );
        assert!(alloc::format!("{e}").contains("S2P"));
    }

    #[test]
    fn smmu_with_aarch32_tables_only_is_refused() {
        let mut idr = QEMU;
        idr[0] = (idr[0] & !(0b11 << 2)) | (0b01 << 2);
        assert!(matches!(
            SmmuFeatures::from_idr(idr),
            Err(SmmuError::MissingFeature(m)) if m.contains("TTF")
        ));
        // Both formats is fine.
        idr[0] |= 0b11 << 2;
        assert!(SmmuFeatures::from_idr(idr).is_ok());
    }

    #[test]
    fn smmu_without_4k_granule_is_refused() {
        let mut idr = QEMU;
        idr[5] &= !(1 << 4);
        assert!(matches!(
            SmmuFeatures::from_idr(idr),
            Err(SmmuError::MissingFeature(m)) if m.contains("GRAN4K")
        ));
    }

    #[test]
    fn big_endian_only_walks_and_preset_tables_are_refused() {
        let mut idr = QEMU;
        idr[0] |= 0b11 << 21;
        assert!(SmmuFeatures::from_idr(idr).is_err());
        let mut idr = QEMU;
        idr[1] |= 1 << 30;
        assert!(matches!(
            SmmuFeatures::from_idr(idr),
            Err(SmmuError::Unsupported(m)) if m.contains("TABLES_PRESET")
        ));
    }

    #[test]
    fn small_smmu_decodes_8_bit_ids_linear_table_noncoherent() {
        // S2P only, AArch64, no COHACC, 8-bit VMIDs, linear only, 6 SID bits,
        // 8-entry queues, 40-bit OAS, mixed endian, stall and terminate.
        let idr = [0b10_01, (3 << 21) | (3 << 16) | 6, 0, 1 << 10, 0, 0x10 | 2];
        let f = SmmuFeatures::from_idr(idr).unwrap();
        assert!(!f.stage1 && !f.coherent && !f.two_level_stream_table);
        assert_eq!((f.vmid_bits, f.sid_bits, f.oas_bits), (8, 6, 40));
        assert_eq!((f.cmdq_log2, f.evtq_log2), (3, 3));
        assert_eq!(f.endianness, Endianness::Mixed);
        assert_eq!(f.stall_model, StallModel::StallAndTerminate);
        assert!(f.range_invalidation);
        assert!(!f.gran_16k && !f.gran_64k);
    }

    #[test]
    fn every_oas_encoding_maps_or_is_refused() {
        let expected = [32, 36, 40, 42, 44, 48, 52];
        for (field, bits) in expected.iter().enumerate() {
            assert_eq!(oas_bits(field as u8), Some(*bits));
        }
        let mut idr = QEMU;
        idr[5] |= 7;
        assert_eq!(SmmuFeatures::from_idr(idr), Err(SmmuError::ReservedOas(7)));
    }
}
