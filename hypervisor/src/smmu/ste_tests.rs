//! Host tests of the STE encoding and the stage-2 configuration, pinned bit
//! by bit against IHI 0070, 5.2 (STE layout), written as literals
//! independent of the encoder.

use super::*;
use crate::mm::regime::{PaRange, Stage2};

fn qemu_features() -> SmmuFeatures {
    SmmuFeatures::from_idr([0x0d44_101b, (19 << 21) | (19 << 16) | 16, 0, 0, 0, 0x74]).unwrap()
}

/// The hypervisor's own VTCR_EL2 for a 40-bit IPA, 40-bit PS, 16-bit VMIDs.
fn cpu_vtcr_40() -> u64 {
    Stage2::new(40)
        .unwrap()
        .vtcr_el2(PaRange::from_id_field(2), true)
        .unwrap()
}

#[test]
fn abort_ste_is_valid_with_config_abort_and_nothing_else() {
    let ste = Ste::abort();
    assert_eq!(ste.0, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert!(ste.valid());
    assert_eq!(ste.config(), 0);
}

#[test]
fn invalid_ste_is_all_zero() {
    assert_eq!(Ste::invalid().0, [0; 8]);
    assert!(!Ste::invalid().valid());
}

#[test]
fn stage2_ste_places_every_field() {
    let cfg = S2Config {
        vmid: crate::mm::Vmid::from_const(0xbeef),
        ttb: 0x0000_0012_3456_7000,
        t0sz: 24,
        sl0: 1,
        ps: 2,
        ir: 1,
        or: 1,
        sh: 3,
    };
    let ste = Ste::stage2(&cfg);
    // DW0: V (bit 0), Config = 0b110 (bits [3:1]).
    assert_eq!(ste.0[0], 0b1101);
    // DW1: SHCFG = 0b01 (incoming) at [45:44]; S1 fields, EATS, STRW zero.
    assert_eq!(ste.0[1], 1 << 44);
    // DW2: S2VMID [15:0]; S2T0SZ [37:32] = 24; S2SL0 [39:38] = 1;
    // S2IR0 [41:40] = 1; S2OR0 [43:42] = 1; S2SH0 [45:44] = 3; S2TG [47:46] = 0;
    // S2PS [50:48] = 2; S2AA64 51; S2ENDI 52 = 0; S2AFFD 53; S2PTW 54;
    // S2HD 55 = S2HA 56 = S2S 57 = 0; S2R 58.
    let expected_dw2 = 0xbeef
        | (24 << 32)
        | (1 << 38)
        | (1 << 40)
        | (1 << 42)
        | (3 << 44)
        | (2 << 48)
        | (1 << 51)
        | (1 << 53)
        | (1 << 54)
        | (1 << 58);
    assert_eq!(ste.0[2], expected_dw2);
    assert_eq!(ste.0[2], 0x046a_3558_0000_beef);
    // DW3: S2TTB [51:4].
    assert_eq!(ste.0[3], 0x0000_0012_3456_7000);
    assert_eq!(&ste.0[4..], &[0; 4]);
    assert!(ste.valid());
    assert_eq!(ste.config(), 0b110);
    assert_eq!(ste.vmid(), crate::mm::Vmid::from_const(0xbeef));
}

#[test]
fn stage2_ste_masks_out_of_range_fields() {
    let cfg = S2Config {
        vmid: crate::mm::Vmid::from_const(1),
        ttb: 0xfff0_0000_0000_1fff,
        t0sz: 0xff,
        sl0: 0xff,
        ps: 0xff,
        ir: 0xff,
        or: 0xff,
        sh: 0xff,
    };
    let ste = Ste::stage2(&cfg);
    // Out-of-range config values stay inside their fields: S2TG stays 0,
    // S2AA64 set, and S2ENDI (bit 52) clear even with PS = 0xff.
    assert_eq!((ste.0[2] >> 46) & 0b11, 0);
    assert_eq!((ste.0[2] >> 52) & 1, 0);
    assert_eq!(ste.0[3], 0x0000_0000_0000_1ff0);
}

#[test]
fn from_vtcr_takes_the_cpu_stage2_format() {
    let vtcr = cpu_vtcr_40();
    // 40-bit IPA at level 1: two concatenated tables, 8 KiB aligned.
    let cfg = S2Config::from_vtcr(crate::mm::Vmid::from_const(7), 0x4008_2000, vtcr).unwrap();
    assert_eq!(
        cfg,
        S2Config {
            vmid: crate::mm::Vmid::from_const(7),
            ttb: 0x4008_2000,
            t0sz: 24,
            sl0: 1,
            ps: 2,
            ir: 1,
            or: 1,
            sh: 3,
        }
    );
    assert_eq!(cfg.root_bytes(), Some(8192));
    cfg.check(&qemu_features()).unwrap();
    // The STE's [50:32] are VTCR_EL2 [18:0] verbatim.
    assert_eq!((Ste::stage2(&cfg).0[2] >> 32) & 0x7ffff, vtcr & 0x7ffff);
}

#[test]
fn from_vtcr_refuses_a_root_not_aligned_to_its_concatenated_size() {
    let err = S2Config::from_vtcr(crate::mm::Vmid::from_const(7), 0x4008_1000, cpu_vtcr_40())
        .unwrap_err();
    assert_eq!(
        err,
        SmmuError::TtbMisaligned {
            ttb: 0x4008_1000,
            align: 8192
        }
    );
}

#[test]
fn from_vtcr_refuses_other_granules_and_bad_sizes() {
    let vtcr = cpu_vtcr_40();
    // TG0 = 64 KiB.
    assert!(matches!(
        S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0, vtcr | (1 << 14)),
        Err(SmmuError::BadVtcr { field: "TG0", .. })
    ));
    // PS = 7 is reserved.
    assert!(matches!(
        S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0, vtcr | (7 << 16)),
        Err(SmmuError::BadVtcr { field: "PS", .. })
    ));
    // T0SZ = 40: a 24-bit IPA is below the 4 KiB granule's minimum.
    assert!(matches!(
        S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0, (vtcr & !0x3f) | 40),
        Err(SmmuError::BadVtcr { field: "T0SZ", .. })
    ));
    // SL0 = level 2 cannot start a 40-bit IPA (it would need 512 tables).
    assert!(matches!(
        S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0, vtcr & !(0b11 << 6)),
        Err(SmmuError::BadVtcr { field: "SL0", .. })
    ));
    // SL0 = 0b11 is not a 4 KiB start level here.
    assert!(matches!(
        S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0, vtcr | (0b11 << 6)),
        Err(SmmuError::BadVtcr { field: "SL0", .. })
    ));
}

#[test]
fn every_ipa_size_the_cpu_builds_is_accepted() {
    for ipa_bits in Stage2::MIN_IPA_BITS..=48 {
        let s2 = Stage2::new(ipa_bits).unwrap();
        let vtcr = s2.vtcr_el2(PaRange::BITS_48, true).unwrap();
        let cfg = S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0x10_0000, vtcr)
            .unwrap_or_else(|e| panic!("{ipa_bits}-bit IPA: {e}"));
        assert_eq!(u32::from(cfg.ipa_bits()), ipa_bits);
    }
}

#[test]
fn check_refuses_vmid_ps_and_ipa_beyond_the_smmu() {
    let mut features = qemu_features();
    let cfg = S2Config::from_vtcr(
        crate::mm::Vmid::from_const(0x1ff),
        0x4000_0000,
        cpu_vtcr_40(),
    )
    .unwrap();
    cfg.check(&features).unwrap();
    features.vmid_bits = 8;
    assert_eq!(
        cfg.check(&features),
        Err(SmmuError::VmidTooLarge {
            vmid: crate::mm::Vmid::from_const(0x1ff),
            bits: 8
        })
    );
    let mut features = qemu_features();
    features.oas_bits = 36;
    features.oas_field = 1;
    // A 40-bit IPA beyond a 36-bit OAS.
    assert_eq!(
        cfg.check(&features),
        Err(SmmuError::SizeExceedsOas {
            what: "IPA",
            bits: 40,
            oas_bits: 36
        })
    );
    // An IPA (40 bits) wider than PS (36 bits).
    let narrow_ps = S2Config { ps: 1, ..cfg };
    assert_eq!(
        narrow_ps.check(&qemu_features()),
        Err(SmmuError::BadVtcr {
            field: "T0SZ",
            value: 24
        })
    );
    // A reserved PS.
    let bad_ps = S2Config { ps: 7, ..cfg };
    assert!(matches!(
        bad_ps.check(&qemu_features()),
        Err(SmmuError::BadVtcr { field: "PS", .. })
    ));
    // Root above the OAS.
    let cfg = S2Config {
        ttb: 1 << 44,
        ..S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0, cpu_vtcr_40()).unwrap()
    };
    assert!(matches!(
        cfg.check(&qemu_features()),
        Err(SmmuError::SizeExceedsOas {
            what: "root table address",
            ..
        })
    ));
}

#[test]
fn noncacheable_walks_clear_the_walk_cacheability() {
    let cfg = S2Config::from_vtcr(crate::mm::Vmid::from_const(1), 0x4000_0000, cpu_vtcr_40())
        .unwrap()
        .with_noncacheable_walks();
    let dw2 = Ste::stage2(&cfg).0[2];
    assert_eq!((dw2 >> 40) & 0b1111, 0, "S2IR0 and S2OR0 non-cacheable");
    assert_eq!((dw2 >> 44) & 0b11, 0b10, "S2SH0 outer shareable");
}

#[test]
fn for_smmu_caps_a_cpu_pa_range_wider_than_the_oas() {
    // QEMU: -cpu max has a 48-bit PARange, the SMMU a 44-bit OAS.
    let vtcr = Stage2::new(40)
        .unwrap()
        .vtcr_el2(PaRange::BITS_48, true)
        .unwrap();
    let cfg = S2Config::from_vtcr(crate::mm::Vmid::from_const(3), 0x4000_0000, vtcr).unwrap();
    assert_eq!(cfg.ps, 5);
    let smmu = cfg.for_smmu(&qemu_features()).unwrap();
    assert_eq!(smmu.ps, 4, "S2PS = OAS (44 bits)");
    assert_eq!((Ste::stage2(&smmu).0[2] >> 48) & 0b111, 4);
    // A narrower PS stays as it is; the walk attributes stay cacheable on a coherent SMMU.
    let narrow = S2Config { ps: 2, ..cfg }
        .for_smmu(&qemu_features())
        .unwrap();
    assert_eq!((narrow.ps, narrow.ir, narrow.or, narrow.sh), (2, 1, 1, 3));
    // A non-coherent SMMU gets non-cacheable walks.
    let mut features = qemu_features();
    features.coherent = false;
    let nc = cfg.for_smmu(&features).unwrap();
    assert_eq!((nc.ir, nc.or, nc.sh), (0, 0, 0b10));
    // And an invalid configuration is still refused.
    assert!(S2Config {
        vmid: crate::mm::Vmid::from_const(0x100),
        ..cfg
    }
    .for_smmu(&SmmuFeatures {
        vmid_bits: 8,
        ..qemu_features()
    })
    .is_err());
}
