//! Guest-visible registers: reset values, read-only fields, access widths.

use super::*;
use AccessWidth::{Byte, Double, Half, Word};

#[test]
fn typer_reports_a_physical_gicv3_its_with_configured_widths() {
    let mut config = config();
    config.device_id_bits = 20;
    config.event_id_bits = 12;
    config.collection_id_bits = 5;
    let mut h = Harness::with(config, RecordingBackend::new());
    let typer = h.read(offset::TYPER, Double);
    assert_eq!(typer & 1, 1, "Physical");
    assert_eq!((typer >> 1) & 1, 0, "Virtual");
    assert_eq!((typer >> 4) & 0xF, 7, "ITT_entry_size: 8 bytes");
    assert_eq!((typer >> 8) & 0x1F, 11, "ID_bits");
    assert_eq!((typer >> 13) & 0x1F, 19, "Devbits");
    assert_eq!((typer >> 19) & 1, 0, "PTA");
    assert_eq!((typer >> 24) & 0xFF, 0, "HCC");
    assert_eq!((typer >> 32) & 0xF, 4, "CIDbits");
    assert_eq!((typer >> 36) & 1, 1, "CIL");
    assert_eq!(h.read(offset::TYPER, Word), typer & 0xFFFF_FFFF);
    assert_eq!(h.read(offset::TYPER + 4, Word), typer >> 32);
}

#[test]
fn id_registers_report_gicv3_arch_rev() {
    let mut h = Harness::recording();
    assert_eq!((h.read(offset::PIDR2, Word) >> 4) & 0xF, 3);
    assert_eq!(h.read(offset::IIDR, Word) & 0xFFF, 0x43B);
    assert_eq!(h.read(0xFFF0, Word), 0x0D);
    assert_eq!(h.read(0xFFFC, Word), 0xB1);
}

#[test]
fn ctlr_is_quiescent_while_disabled_and_enabled_after_enable() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    assert_eq!(h.read(offset::CTLR, Word), 1 << 31);
    h.write(offset::CTLR, Word, 1);
    assert_eq!(h.read(offset::CTLR, Word), 1);
    assert!(h.vits.is_enabled());
    h.write(offset::CTLR, Word, 0);
    assert_eq!(h.read(offset::CTLR, Word), 1 << 31);
}

#[test]
fn baser_type_and_entry_size_are_read_only() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    h.write(offset::BASER, Double, 0);
    h.write(offset::BASER + 8, Double, u64::MAX);
    let device = h.read(offset::BASER, Double);
    let collection = h.read(offset::BASER + 8, Double);
    assert_eq!((device >> 56) & 7, 1, "Device table type");
    assert_eq!((device >> 48) & 0x1F, 7, "8-byte entries");
    assert_eq!((collection >> 56) & 7, 4, "Collection table type");
    assert_eq!((collection >> 48) & 0x1F, 7);
}

#[test]
fn device_baser_keeps_indirect_and_collection_baser_drops_it() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    h.write(offset::BASER, Double, 1 << 62);
    h.write(offset::BASER + 8, Double, 1 << 62);
    assert_ne!(h.read(offset::BASER, Double) & (1 << 62), 0);
    assert_eq!(h.read(offset::BASER + 8, Double) & (1 << 62), 0);
}

#[test]
fn baser_page_size_reads_back_and_reserved_size_reads_as_64k() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    for (written, read) in [(0, 0), (1, 1), (2, 2), (3, 2)] {
        h.write(offset::BASER, Double, written << 8);
        assert_eq!((h.read(offset::BASER, Double) >> 8) & 3, read);
    }
}

#[test]
fn unimplemented_basers_are_raz_wi() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    for n in 2..8 {
        h.write(offset::BASER + 8 * n, Double, u64::MAX);
        assert_eq!(h.read(offset::BASER + 8 * n, Double), 0);
    }
}

#[test]
fn basers_and_cbaser_ignore_writes_while_enabled() {
    let mut h = Harness::recording();
    let device = h.read(offset::BASER, Double);
    let cbaser = h.read(offset::CBASER, Double);
    h.write(offset::BASER, Double, 0);
    h.write(offset::CBASER, Double, 0);
    assert_eq!(h.read(offset::BASER, Double), device);
    assert_eq!(h.read(offset::CBASER, Double), cbaser);
}

#[test]
fn cbaser_write_resets_creadr_and_cwriter() {
    let mut h = Harness::recording();
    h.submit(&[cmd::sync(0), cmd::sync(0)]);
    assert_eq!(h.creadr(), 64);
    h.write(offset::CTLR, Word, 0);
    h.write(offset::CBASER, Double, (1 << 63) | QUEUE | 15);
    assert_eq!(h.creadr(), 0);
    assert_eq!(h.read(offset::CWRITER, Double), 0);
}

#[test]
fn cbaser_keeps_a_4k_aligned_queue_address_and_drops_res0_bits() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    let written = (1 << 63) | QUEUE | 0xF000 | 3;
    h.write(
        offset::CBASER,
        Double,
        written | (1 << 62) | (0b111 << 56) | 0x300,
    );
    assert_eq!(h.read(offset::CBASER, Double), written);
    assert_eq!(h.vits.regs.queue_base(), Ipa(QUEUE + 0xF000));
    assert_eq!(h.vits.regs.queue_size(), 4 * 0x1000);
}

#[test]
fn halves_of_64bit_registers_are_written_independently() {
    let mut h = Harness::disabled(config(), RecordingBackend::new());
    h.write(offset::CBASER, Word, QUEUE | 1);
    h.write(offset::CBASER + 4, Word, 1 << 31);
    assert_eq!(h.read(offset::CBASER, Double), (1 << 63) | QUEUE | 1);
    assert_eq!(h.read(offset::CBASER + 4, Word), 1 << 31);
    h.write(offset::BASER + 8 + 4, Word, 0);
    assert_eq!(h.read(offset::BASER + 8, Double) >> 63, 0);
    assert_eq!(
        (h.read(offset::BASER + 8 + 4, Word) >> 24) & 7,
        4,
        "Type kept"
    );
}

#[test]
fn odd_widths_reserved_offsets_and_out_of_frame_accesses_are_raz_wi() {
    let mut h = Harness::recording();
    let before = h.vits.state().clone();
    for offset in [
        0u64,
        1,
        3,
        4,
        8,
        0x84,
        0x8A,
        0x40,
        0x200,
        0xFFE9,
        0x1_0000,
        0x1_0044,
        0x2_0000,
        u64::MAX,
    ] {
        for width in [Byte, Half, Word, Double] {
            let _ = h.read(offset, width);
            h.write(offset, width, u64::MAX);
        }
    }
    for width in [Byte, Half, Double] {
        assert_eq!(h.read(offset::CTLR, width), 0);
        assert_eq!(h.read(offset::PIDR2, width), 0);
    }
    assert_eq!(h.read(0x40, Word), 0);
    assert_eq!(
        h.read(offset::TRANSLATER, Word),
        0,
        "TRANSLATER is write-only"
    );
    assert_eq!(h.vits.state(), &before);
}

#[test]
fn translater_write_makes_the_mapped_event_pending() {
    let mut h = Harness::recording();
    // The CPU's writes carry DeviceID 0 in this configuration.
    h.submit(&[
        cmd::mapd(0, 8, ITT, true),
        cmd::mapc(1, 1, true),
        cmd::mapti(0, 3, 8300, 1),
    ]);
    h.backend.take();
    h.write(offset::TRANSLATER, Word, 3);
    h.write(offset::TRANSLATER, Half, 3);
    h.write(offset::TRANSLATER, Word, 4);
    h.write(offset::TRANSLATER, Byte, 3);
    let pend = BackendAction::SetPending {
        event: event_ref(0, 3),
        vcpu: vcpu(1),
        intid: crate::ids::VirtIntId::from_const(8300),
    };
    assert_eq!(h.backend.take(), [pend, pend]);
    assert_eq!(h.vits.errors().translations(), 1);
}

#[test]
fn translater_writes_are_ignored_while_disabled() {
    let mut h = Harness::recording();
    h.submit(&basic_setup(&[3]));
    h.write(offset::CTLR, Word, 0);
    h.backend.take();
    let result = h.vits.send_msi(
        VirtDeviceId::new(1),
        crate::ids::EventId::new(3),
        &mut h.backend,
    );
    assert_eq!(result, Err(TranslateError::Disabled));
    h.write(offset::TRANSLATER, Word, 3);
    assert!(h.backend.take().is_empty());
}

#[test]
fn emulated_device_msi_translates_through_send_msi() {
    let mut h = Harness::recording();
    h.submit(&[
        cmd::mapd(2, 4, ITT, true),
        cmd::mapc(0, 2, true),
        cmd::mapti(2, 1, 8201, 0),
    ]);
    h.backend.take();
    let ok = h.vits.send_msi(
        VirtDeviceId::new(2),
        crate::ids::EventId::new(1),
        &mut h.backend,
    );
    assert_eq!(ok, Ok(()));
    assert!(matches!(
        h.backend.take()[..],
        [BackendAction::SetPending { vcpu, .. }] if vcpu == VcpuIndex::new(2)
    ));
    let bad = h.vits.send_msi(
        VirtDeviceId::new(2),
        crate::ids::EventId::new(2),
        &mut h.backend,
    );
    assert!(matches!(bad, Err(TranslateError::Untranslatable(_))));
}

#[test]
fn clearing_device_baser_valid_discards_every_device() {
    let mut h = Harness::recording();
    h.submit(&basic_setup(&[1, 2]));
    h.write(offset::CTLR, Word, 0);
    h.backend.take();
    h.write(offset::BASER, Double, 0b10 << 8);
    let actions = h.backend.take();
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, BackendAction::Discard { .. }))
            .count(),
        2
    );
    assert_eq!(actions.last(), Some(&BackendAction::Sync));
    assert_eq!(h.vits.state().device_count(), 0);
}

#[test]
fn clearing_collection_baser_valid_unmaps_every_collection() {
    let mut h = Harness::recording();
    h.submit(&basic_setup(&[1]));
    h.write(offset::CTLR, Word, 0);
    h.backend.take();
    h.write(offset::BASER + 8, Double, 0);
    let actions = h.backend.take();
    assert!(matches!(
        actions[..],
        [BackendAction::Unmap { .. }, BackendAction::Sync]
    ));
    assert_eq!(h.vits.state().collections().count(), 0);
    assert_eq!(h.vits.state().event_count(), 1, "ITT entries stay");
}

#[test]
fn config_validation_refuses_unusable_configs() {
    let mut bad = config();
    bad.num_vcpus = 0;
    assert_eq!(Vits::new(bad).err(), Some(ConfigError::NoVcpus));
    let mut bad = config();
    bad.lpi_id_bits = 13;
    assert!(matches!(Vits::new(bad), Err(ConfigError::IdBits { .. })));
    let mut bad = config();
    bad.max_commands_per_trap = 0;
    assert!(matches!(Vits::new(bad), Err(ConfigError::ZeroCap { .. })));
    let mut bad = config();
    bad.devices.insert(
        VirtDeviceId::new(9),
        DeviceBacking::Passthrough(PASSTHROUGH),
    );
    assert!(matches!(
        Vits::new(bad),
        Err(ConfigError::AliasedDevice { .. })
    ));
    let mut bad = config();
    bad.devices
        .insert(VirtDeviceId::new(1 << 16), DeviceBacking::Emulated);
    assert!(matches!(
        Vits::new(bad),
        Err(ConfigError::DeviceIdTooWide { .. })
    ));
}
