//! Distributor and redistributor register behaviour.

use super::*;

#[test]
fn config_is_validated() {
    let bad = [
        VgicConfig {
            num_vcpus: 0,
            ..config()
        },
        VgicConfig {
            num_vcpus: 65,
            ..config()
        },
        VgicConfig {
            num_spis: 989,
            ..config()
        },
        VgicConfig {
            lpi_id_bits: 13,
            ..config()
        },
        VgicConfig {
            priority_bits: 4,
            ..config()
        },
        VgicConfig {
            dist_base: Ipa(GICD + 0x1000),
            ..config()
        },
        VgicConfig {
            dist_base: Ipa(GICR + REDIST_STRIDE),
            ..config()
        },
        VgicConfig {
            redist_base: Ipa(!0xffff),
            ..config()
        },
    ];
    for config in bad {
        assert!(Vgic::new(config).is_err(), "{config:?}");
    }
    assert!(Vgic::new(VgicConfig {
        lpi_id_bits: 0,
        max_pending_lpis: 0,
        ..config()
    })
    .is_ok());
}

#[test]
fn id_registers_report_gicv3_arm_and_the_same_iidr() {
    let mut g = vgic();
    assert_eq!(read(&mut g, 0, GICD + gicd_offset::PIDR2, 4) >> 4 & 0xf, 3);
    assert_eq!(
        read(&mut g, 0, rd_frame(2) + gicr_offset::PIDR2, 4) >> 4 & 0xf,
        3
    );
    assert_eq!(read(&mut g, 0, GICD + gicd_offset::IIDR, 4), 0x5600_043b);
    assert_eq!(
        read(&mut g, 0, rd_frame(1) + gicr_offset::IIDR, 4),
        0x5600_043b
    );
    // CIDR0..3 read 0x0D, 0xF0, 0x05, 0xB1 (a CoreSight-style component).
    let cidr: Vec<u64> = (0..4)
        .map(|i| read(&mut g, 0, GICD + 0xfff0 + 4 * i, 4))
        .collect();
    assert_eq!(cidr, [0x0d, 0xf0, 0x05, 0xb1]);
    assert_eq!(g.counters(), &VgicCounters::default());
}

#[test]
fn gicd_typer_reports_spis_lpis_and_idbits() {
    let mut g = vgic();
    let typer = read(&mut g, 0, GICD + gicd_offset::TYPER, 4);
    assert_eq!(typer & 0x1f, 2, "ITLinesNumber: 96 INTIDs");
    assert_eq!(typer >> 5 & 7, 3, "CPUNumber");
    assert_ne!(typer & 1 << 17, 0, "LPIS");
    assert_eq!(typer & 1 << 16, 0, "no MBIS");
    assert_eq!(typer & 1 << 8, 0, "no ESPI");
    assert_eq!(typer >> 19 & 0x1f, 15, "IDbits");
    let mut no_lpis = Vgic::new(VgicConfig {
        lpi_id_bits: 0,
        num_spis: 0,
        ..config()
    })
    .unwrap();
    let typer = read(&mut no_lpis, 0, GICD + gicd_offset::TYPER, 4);
    assert_eq!(
        (typer & 0x1f, typer >> 19 & 0x1f, typer & 1 << 17),
        (0, 9, 0)
    );
    assert_eq!(read(&mut g, 0, GICD + gicd_offset::TYPER2, 4), 0);
}

#[test]
fn gicd_ctlr_keeps_are_and_ds_set_and_stores_group_enables() {
    let mut g = Vgic::new(config()).unwrap();
    assert_eq!(
        read(&mut g, 0, GICD, 4),
        0x50,
        "ARE and DS read as one at reset"
    );
    write(&mut g, 0, GICD, 4, 0);
    assert_eq!(read(&mut g, 0, GICD, 4), 0x50, "ARE and DS ignore writes");
    let actions = write(&mut g, 0, GICD, 4, 0xffff_ffff);
    assert_eq!(
        read(&mut g, 0, GICD, 4),
        0x53,
        "EnableGrp0/1 stored, RWP reads 0"
    );
    assert_eq!(actions.kick.0, 0b1111, "enabling a group kicks every vCPU");
}

#[test]
fn reserved_offsets_and_bad_widths_read_zero_ignore_writes_and_count() {
    let mut g = vgic();
    let ctlr = read(&mut g, 0, GICD, 4);
    assert_eq!(read(&mut g, 0, GICD + 0x20, 4), 0);
    write(&mut g, 0, GICD + 0x20, 4, u64::MAX);
    assert_eq!(g.counters().reserved, 2);
    // A 64-bit or 16-bit access to GICD_CTLR, and a misaligned one.
    assert_eq!(read(&mut g, 0, GICD, 8), 0);
    write(&mut g, 0, GICD, 2, 0);
    write(&mut g, 0, GICD + 2, 4, 0);
    assert_eq!(g.counters().bad_width, 3);
    assert_eq!(read(&mut g, 0, GICD, 4), ctlr, "nothing changed");
    assert_eq!(
        read(&mut g, 0, rd_frame(0) + 0x40, 8),
        0,
        "no DirectLPI: SETLPIR is reserved"
    );
    assert_eq!(
        read(&mut g, 0, sgi_frame(0) + 0x800, 4),
        0,
        "no ITARGETSR in the SGI frame"
    );
    assert_eq!(g.counters().reserved, 4);
}

#[test]
fn the_first_invalid_access_is_reported_once() {
    let mut g = vgic();
    assert_eq!(g.take_fault_report(), None);
    write(&mut g, 1, GICD + 0x24, 4, 1);
    write(&mut g, 2, GICD + 0x28, 4, 1);
    let report = g.take_fault_report().expect("one report");
    assert_eq!(
        (report.vcpu, report.ipa, report.write),
        (VcpuIndex::new(1), Ipa(GICD + 0x24), true)
    );
    assert_eq!(g.take_fault_report(), None);
}

#[test]
fn banked_distributor_words_are_raz_wi_under_affinity_routing() {
    let mut g = vgic();
    write(&mut g, 0, GICD + 0x100, 4, u64::from(u32::MAX));
    write(&mut g, 0, GICD + 0x400, 4, 0xa0a0_a0a0);
    assert_eq!(read(&mut g, 0, GICD + 0x100, 4), 0);
    assert_eq!(read(&mut g, 0, GICD + 0x400, 4), 0);
    assert_eq!(
        read(&mut g, 0, sgi_frame(0) + 0x100, 4),
        0,
        "SGI frame untouched"
    );
    assert_eq!(read(&mut g, 0, GICD + 0x800, 1), 0, "ITARGETSR RAZ");
    assert_eq!(
        g.counters().reserved,
        0,
        "architected RAZ/WI is not a fault"
    );
}

#[test]
fn ipriorityr_is_byte_accessible_and_masked_to_the_implemented_bits() {
    let mut g = vgic();
    let base = GICD + 0x400 + 40;
    write(&mut g, 0, base, 4, 0x4433_2211);
    write(&mut g, 0, base + 1, 1, 0xff);
    // 5 priority bits: the low three bits read as zero.
    assert_eq!(read(&mut g, 0, base, 4), 0x4030_f810);
    assert_eq!(read(&mut g, 0, base + 2, 1), 0x30);
    write(&mut g, 0, base + 1, 2, 0);
    assert_eq!(
        g.counters().bad_width,
        1,
        "16-bit accesses are not supported"
    );
}

#[test]
fn enable_pending_active_sets_and_clears_read_back_per_spi() {
    let mut g = vgic();
    let word = GICD + 4; // INTIDs 32..63
    for (set, clear) in [(0x100, 0x180), (0x200, 0x280), (0x300, 0x380)] {
        write(&mut g, 0, word + set, 4, 0b1010);
        write(&mut g, 0, word + set, 4, 0b0100);
        assert_eq!(read(&mut g, 0, word + clear, 4), 0b1110, "set at {set:#x}");
        write(&mut g, 0, word + clear, 4, 0b0010);
        assert_eq!(
            read(&mut g, 0, word + set, 4),
            0b1100,
            "clear at {clear:#x}"
        );
    }
    // INTIDs beyond the configured SPIs (96 and up) read as zero.
    write(&mut g, 0, GICD + 0x100 + 12, 4, u64::from(u32::MAX));
    assert_eq!(read(&mut g, 0, GICD + 0x100 + 12, 4), 0);
}

#[test]
fn icfgr_sgis_are_fixed_edge_and_ppis_and_spis_are_programmable() {
    let mut g = vgic();
    let sgi = sgi_frame(1);
    write(&mut g, 1, sgi + 0xc00, 4, 0);
    assert_eq!(read(&mut g, 1, sgi + 0xc00, 4), 0xaaaa_aaaa);
    write(&mut g, 1, sgi + 0xc04, 4, 0xffff_ffff);
    assert_eq!(
        read(&mut g, 1, sgi + 0xc04, 4),
        0xaaaa_aaaa,
        "bit 0 of each field is RES0"
    );
    write(&mut g, 0, GICD + 0xc08, 4, 0x8);
    assert_eq!(read(&mut g, 0, GICD + 0xc08, 4), 0x8);
    assert_eq!(read(&mut g, 0, GICD + 0xd04, 4), 0, "IGRPMODR RAZ");
}

#[test]
fn irouter_is_64_bit_with_32_bit_halves_and_masks_reserved_bits() {
    let mut g = vgic();
    let router = GICD + gicd_offset::IROUTER + 8 * 40;
    write(&mut g, 0, router, 8, 0xffff_ff12_ffff_ff03);
    assert_eq!(read(&mut g, 0, router, 8), 0x0000_0012_80ff_ff03);
    write(&mut g, 0, router + 4, 4, 0);
    write(&mut g, 0, router, 4, 2);
    assert_eq!(read(&mut g, 0, router, 8), 2);
    assert_eq!(read(&mut g, 0, router + 4, 4), 0);
    assert_eq!(read(&mut g, 0, router, 1), 0);
    assert_eq!(g.counters().bad_width, 1);
}

#[test]
fn gicr_typer_gives_affinity_processor_number_last_and_plpis() {
    let mut g = vgic();
    for v in 0..4u16 {
        let typer = read(&mut g, 0, rd_frame(v) + gicr_offset::TYPER, 8);
        assert_eq!(typer >> 32, u64::from(v), "Aff0");
        assert_eq!(typer >> 8 & 0xffff, u64::from(v), "Processor_Number");
        assert_eq!(typer >> 4 & 1, u64::from(v == 3), "Last");
        assert_eq!(typer & 0b11, 1, "PLPIS, no VLPIS");
        let high = read(&mut g, 0, rd_frame(v) + gicr_offset::TYPER + 4, 4);
        assert_eq!(high, typer >> 32);
    }
}

#[test]
fn gicr_waker_handshake_completes_at_once() {
    let mut g = vgic();
    let waker = rd_frame(1) + gicr_offset::WAKER;
    assert_eq!(read(&mut g, 1, waker, 4), 0b110, "asleep at reset");
    write(&mut g, 1, waker, 4, 0);
    assert_eq!(
        read(&mut g, 1, waker, 4),
        0,
        "ChildrenAsleep follows ProcessorSleep"
    );
    write(&mut g, 1, waker, 4, 0b010);
    assert_eq!(read(&mut g, 1, waker, 4), 0b110);
}

#[test]
fn propbaser_and_pendbaser_keep_guest_fields_until_lpis_are_enabled() {
    let mut g = vgic();
    let rd = rd_frame(0);
    let actions = write(
        &mut g,
        0,
        rd + gicr_offset::PROPBASER,
        8,
        0xffff_ffff_ffff_ffff,
    );
    assert_eq!(
        read(&mut g, 0, rd + gicr_offset::PROPBASER, 8),
        0x070f_ffff_ffff_ff9f
    );
    assert!(actions.hardware.contains(&Action::LpiConfigChanged {
        vcpu: VcpuIndex::new(0)
    }));
    write(
        &mut g,
        0,
        rd + gicr_offset::PENDBASER,
        8,
        0xffff_ffff_ffff_ffff,
    );
    assert_eq!(
        read(&mut g, 0, rd + gicr_offset::PENDBASER, 8),
        0x070f_ffff_ffff_0f80,
        "PTZ reads 0"
    );
    let actions = write(&mut g, 0, rd + gicr_offset::CTLR, 4, 1);
    assert_eq!(
        read(&mut g, 0, rd + gicr_offset::CTLR, 4),
        0b11,
        "EnableLPIs and CES"
    );
    assert!(actions.hardware.contains(&Action::LpisEnabled {
        vcpu: VcpuIndex::new(0),
        enabled: true
    }));
    write(&mut g, 0, rd + gicr_offset::PROPBASER, 8, 0x4000_000f);
    assert_eq!(
        read(&mut g, 0, rd + gicr_offset::PROPBASER, 8),
        0x070f_ffff_ffff_ff9f,
        "frozen"
    );
}

#[test]
fn enable_lpis_stays_clear_without_lpis() {
    let mut g = Vgic::new(VgicConfig {
        lpi_id_bits: 0,
        ..config()
    })
    .unwrap();
    write(&mut g, 0, rd_frame(0), 4, 1);
    assert_eq!(read(&mut g, 0, rd_frame(0), 4), 0b10);
    assert_eq!(
        read(&mut g, 0, rd_frame(0) + gicr_offset::TYPER, 4) & 1,
        0,
        "no PLPIS"
    );
}

#[test]
fn any_vcpu_may_access_another_vcpus_redistributor() {
    let mut g = vgic();
    write(&mut g, 0, sgi_frame(2) + 0x100, 4, 1 << 5);
    assert_eq!(read(&mut g, 3, sgi_frame(2) + 0x100, 4), 1 << 5);
    assert_eq!(read(&mut g, 3, sgi_frame(1) + 0x100, 4), 0);
}

#[test]
fn accesses_outside_every_frame_are_counted() {
    let mut g = vgic();
    assert!(!g.contains(Ipa(GICR + 4 * REDIST_STRIDE)));
    assert!(g.contains(Ipa(GICR + 4 * REDIST_STRIDE - 4)));
    assert_eq!(read(&mut g, 0, GICR + 4 * REDIST_STRIDE, 4), 0);
    assert_eq!(g.counters().outside, 1);
}

#[test]
fn hardware_linked_spi_enable_and_route_become_physical_actions() {
    let mut g = vgic();
    g.link_hw(
        VirtIntId::from_const(40),
        crate::ids::PhysIntId::from_const(72),
    )
    .unwrap();
    let actions = write(&mut g, 0, GICD + 0x104, 4, 1 << 8);
    let phys = crate::ids::PhysIntId::from_const(72);
    assert_eq!(
        actions.hardware,
        [Action::EnablePhys {
            vcpu: VcpuIndex::new(0),
            intid: phys
        }]
    );
    let actions = write(&mut g, 0, GICD + gicd_offset::IROUTER + 8 * 40, 8, 2);
    assert_eq!(
        actions.hardware,
        [Action::RoutePhys {
            vcpu: VcpuIndex::new(2),
            intid: phys
        }]
    );
    let actions = write(&mut g, 0, GICD + 0x184, 4, 1 << 8);
    assert_eq!(
        actions.hardware,
        [Action::DisablePhys {
            vcpu: VcpuIndex::new(2),
            intid: phys
        }]
    );
    assert!(
        g.link_hw(VirtIntId::from_const(3), phys).is_err(),
        "SGIs cannot be linked"
    );
    assert!(
        g.link_hw(VirtIntId::from_const(96), phys).is_err(),
        "beyond the SPIs"
    );
}
