//! MSI and MSI-X as the guest programs them: kept, read back, reported.

use super::fake::*;
use super::vbridge::{at, bdf, setup, setup_with, virt};
use crate::pci::*;
use crate::vits::AccessWidth::{Byte, Double, Half, Word};

#[test]
fn msi_writes_read_back_as_written_and_never_reach_the_device() {
    let (mut bus, _, mut bridge) = setup();
    let edu = virt("00:00.0");
    let before = bus.function("00:02.0").config.clone();
    let mut events = Vec::new();
    for (reg, width, value) in [
        (0x44, Word, 0x0809_0040u64),
        (0x48, Word, 0x0000_0000),
        (0x4c, Half, 0x0003),
        (0x42, Half, 0x0001),
    ] {
        events.extend(
            bridge
                .config_write(&mut bus, at("00:00.0", reg), width, value)
                .unwrap(),
        );
    }
    assert_eq!(
        bridge.config_read(&bus, at("00:00.0", 0x44), Word),
        Ok(0x0809_0040)
    );
    assert_eq!(bridge.config_read(&bus, at("00:00.0", 0x4c), Word), Ok(3));
    // Message control: enable set, 64-bit capable from the device, ID and next intact.
    assert_eq!(
        bridge.config_read(&bus, at("00:00.0", 0x40), Word),
        Ok(0x0081_0005)
    );
    assert_eq!(bus.function("00:02.0").config, before);
    assert!(bus.writes().is_empty());
    let last = events.last().unwrap();
    assert_eq!((last.device, last.physical), (edu, bdf("00:02.0")));
    assert_eq!(
        last.change,
        Change::Msi(GuestMsiState {
            enabled: true,
            vectors_log2: 0,
            address: 0x0809_0040,
            data: 3,
            mask: 0
        })
    );
    // The address-high write of zero changed nothing: not reported.
    assert_eq!(events.len(), 3);
    assert_eq!(bridge.msi_state(edu).map(|s| s.enabled), Some(true));
}

#[test]
fn msi_upper_address_and_low_bits_behave_as_on_hardware() {
    let (mut bus, _, mut bridge) = setup();
    bridge
        .config_write(&mut bus, at("00:00.0", 0x44), Word, 0x0809_0043)
        .unwrap();
    bridge
        .config_write(&mut bus, at("00:00.0", 0x48), Word, 0x1)
        .unwrap();
    assert_eq!(
        bridge.config_read(&bus, at("00:00.0", 0x44), Word),
        Ok(0x0809_0040)
    );
    assert_eq!(
        bridge.msi_state(virt("00:00.0")).map(|s| s.address),
        Some(0x1_0809_0040)
    );
}

#[test]
fn msi_multiple_message_enable_is_capped_at_what_the_device_can_send() {
    let (mut bus, _, mut bridge) = setup();
    // Ask for 8 vectors (MME = 3) of edu, which can send one.
    bridge
        .config_write(&mut bus, at("00:00.0", 0x42), Half, 3 << 4 | 1)
        .unwrap();
    assert_eq!(
        bridge.config_read(&bus, at("00:00.0", 0x42), Half),
        Ok(0x0081)
    );
    assert_eq!(
        bridge.msi_state(virt("00:00.0")).map(|s| s.vectors_log2),
        Some(0)
    );
}

#[test]
fn msi_mask_bits_are_kept_for_the_vectors_that_exist() {
    let f = FakeFunction::new(0x1234, 0x5678, 0, 0)
        .bar(
            0,
            BarKind::Mem32 {
                prefetchable: false,
            },
            0x1000,
        )
        .msi(0x50, 2, false, true);
    let mut bus = FakeConfigSpace::default().with("00:02.0", f);
    let devices = discover(&mut bus, &super::fake::qemu_virt_bridge()).unwrap();
    let mut bridge = VirtualHostBridge::new(
        &mut bus,
        &super::vbridge::guest_pci(),
        &[(virt("00:00.0"), &devices[0])],
    )
    .unwrap();
    // 32-bit layout: data at +8, mask at +0xc, pending at +0x10.
    bridge
        .config_write(&mut bus, at("00:00.0", 0x5c), Word, 0xffff_ffff)
        .unwrap();
    assert_eq!(bridge.config_read(&bus, at("00:00.0", 0x5c), Word), Ok(0xf));
    bridge
        .config_write(&mut bus, at("00:00.0", 0x58), Word, 0x1234_0042)
        .unwrap();
    assert_eq!(
        bridge.config_read(&bus, at("00:00.0", 0x58), Word),
        Ok(0x0042)
    );
    // Pending bits are the device's.
    bus.function_mut("00:02.0").set(0x60, 0x5);
    assert_eq!(bridge.config_read(&bus, at("00:00.0", 0x60), Word), Ok(0x5));
}

#[test]
fn msix_enable_and_function_mask_are_trapped_and_reported() {
    let (mut bus, _, mut bridge) = setup();
    let event = bridge
        .config_write(&mut bus, at("00:01.0", 0xa3), Byte, 0xc0)
        .unwrap()
        .unwrap();
    assert_eq!(
        event.change,
        Change::MsixControl {
            enabled: true,
            function_mask: true
        }
    );
    assert_eq!(event.physical, bdf("00:03.0"));
    // Table size (5 vectors: 4) stays the device's.
    assert_eq!(
        bridge.config_read(&bus, at("00:01.0", 0xa2), Half),
        Ok(0xc004)
    );
    assert_eq!(bus.function("00:03.0").get(0xa0) >> 30, 0);
    assert!(bus.writes().is_empty());
    // Table and PBA locations read as the device has them.
    assert_eq!(bridge.config_read(&bus, at("00:01.0", 0xa4), Word), Ok(0x3));
    assert_eq!(
        bridge.config_read(&bus, at("00:01.0", 0xa8), Word),
        Ok(0x2003)
    );
    bridge
        .config_write(&mut bus, at("00:01.0", 0xa8), Word, 0)
        .unwrap();
    assert_eq!(
        bridge.config_read(&bus, at("00:01.0", 0xa8), Word),
        Ok(0x2003)
    );
    assert_eq!(bridge.msix_control(virt("00:01.0")), Some((true, true)));
}

#[test]
fn msix_table_entries_start_masked_and_read_back_as_written() {
    let (_, _, mut bridge) = setup();
    let e1000e = virt("00:01.0");
    let cap = *bridge.msix_capability(e1000e).unwrap();
    assert_eq!(
        (cap.table.bar, cap.table.offset, cap.pba.offset),
        (3, 0, 0x2000)
    );
    assert_eq!(bridge.msix_table_read(e1000e, 4 * 16 + 12, Word), Ok(1));
    let vector2 = 2 * 16;
    let mut changes = Vec::new();
    for (offset, width, value) in [
        (vector2, Double, 0x0000_0000_0809_0040u64),
        (vector2 + 8, Word, 0x11),
        (vector2 + 12, Word, 0),
    ] {
        changes.extend(
            bridge
                .msix_table_write(e1000e, offset, width, value)
                .unwrap(),
        );
    }
    assert_eq!(
        bridge.msix_table_read(e1000e, vector2, Double),
        Ok(0x0809_0040)
    );
    assert_eq!(
        bridge.msix_table_read(e1000e, vector2 + 8, Double),
        Ok(0x11)
    );
    let entry = MsixEntry {
        address: 0x0809_0040,
        data: 0x11,
        masked: false,
    };
    assert_eq!(bridge.msix_entry(e1000e, 2), Some(entry));
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2].change, Change::MsixVector { vector: 2, entry });
    assert_eq!(entry.to_dwords(), [0x0809_0040, 0, 0x11, 0]);
    // Rewriting the same value reports nothing.
    assert_eq!(
        bridge.msix_table_write(e1000e, vector2 + 8, Word, 0x11),
        Ok(None)
    );
}

#[test]
fn msix_table_refuses_bad_widths_and_leaves_the_pba_to_the_device() {
    let (_, _, mut bridge) = setup();
    let e1000e = virt("00:01.0");
    assert_eq!(
        bridge.msix_table_write(e1000e, 0, Byte, 1),
        Err(GuestAccessError::BadWidth)
    );
    assert_eq!(
        bridge.msix_table_read(e1000e, 2, Half),
        Err(GuestAccessError::BadWidth)
    );
    assert_eq!(
        bridge.msix_table_read(e1000e, 4, Double),
        Err(GuestAccessError::Misaligned { offset: 4 })
    );
    assert_eq!(
        bridge.msix_table_read(e1000e, 0x2000, Word),
        Err(GuestAccessError::NotInMsixTable { offset: 0x2000 })
    );
    assert_eq!(
        bridge.msix_table_write(e1000e, 5 * 16, Word, 0),
        Err(GuestAccessError::NotInMsixTable { offset: 80 })
    );
    assert_eq!(
        bridge.msix_table_read(virt("00:00.0"), 0, Word),
        Err(GuestAccessError::NotInMsixTable { offset: 0 })
    );
    assert_eq!(
        bridge.msix_table_read(virt("00:07.0"), 0, Word),
        Err(GuestAccessError::NoSuchDevice {
            device: virt("00:07.0")
        })
    );
}

#[test]
fn virtio_msix_table_and_pba_share_bar1() {
    let (_, _, bridge) = setup_with(&[("00:00.0", "00:01.0")]);
    let cap = bridge.msix_capability(virt("00:00.0")).unwrap();
    assert_eq!(
        (cap.table_size, cap.table.bar, cap.pba.bar, cap.pba.offset),
        (3, 1, 1, 0x800)
    );
}

#[test]
fn reset_quiesces_the_devices_and_restores_the_guest_view() {
    let (mut bus, _, mut bridge) = setup();
    let w = |bus: &mut FakeConfigSpace,
             bridge: &mut VirtualHostBridge,
             v: &str,
             reg: u16,
             value: u64| {
        bridge.config_write(bus, at(v, reg), Word, value).unwrap();
    };
    w(&mut bus, &mut bridge, "00:00.0", 0x04, 0x6);
    w(&mut bus, &mut bridge, "00:00.0", 0x10, 0x2800_0000);
    w(&mut bus, &mut bridge, "00:00.0", 0x40, 0x0001_0000);
    w(&mut bus, &mut bridge, "00:01.0", 0xa0, 0x8000_0000);
    bridge
        .msix_table_write(virt("00:01.0"), 12, Word, 0)
        .unwrap();
    // The kernel programmed the physical MSI meanwhile.
    bus.function_mut("00:02.0").set(0x40, 0x0081_0005);
    bridge.reset(&mut bus);
    assert_eq!(bus.function("00:02.0").get(0x04) & 0x7, 0);
    assert_eq!(bus.function("00:02.0").get(0x40) >> 16 & 1, 0);
    assert_eq!(
        bridge.config_read(&bus, at("00:00.0", 0x10), Word),
        Ok(0x2000_0000)
    );
    assert_eq!(
        bridge.msi_state(virt("00:00.0")),
        Some(GuestMsiState::default())
    );
    assert_eq!(bridge.msix_control(virt("00:01.0")), Some((false, false)));
    assert_eq!(
        bridge.msix_entry(virt("00:01.0"), 0).map(|e| e.masked),
        Some(true)
    );
    assert!(bridge.mappings().is_empty());
}

#[test]
fn the_msix_table_pages_are_never_mapped_but_trapped() {
    let (mut bus, devices, mut bridge) = setup();
    let e1000e = virt("00:01.0");
    bridge
        .config_write(&mut bus, at("00:01.0", 0x04), Half, 0x2)
        .unwrap();
    let host_bar3 = devices
        .iter()
        .find(|d| d.bdf() == bdf("00:03.0"))
        .and_then(|d| d.bar(3))
        .and_then(|b| b.cpu_address)
        .unwrap();
    // BAR3 is 16 KiB at guest 0x2014_0000 with the table in its first page.
    let bar3: Vec<BarMapping> = bridge
        .device_mappings(e1000e)
        .into_iter()
        .filter(|m| m.bar == 3)
        .collect();
    assert_eq!(bar3.len(), 1);
    assert_eq!(bar3[0].guest.start.raw(), 0x2014_1000);
    assert_eq!(bar3[0].guest.size, 0x3000);
    assert_eq!(bar3[0].host.raw(), host_bar3.raw() + 0x1000);
    let traps = bridge.msix_traps();
    assert_eq!(traps.len(), 1);
    assert_eq!(
        (traps[0].device, traps[0].bar, traps[0].bar_offset),
        (e1000e, 3, 0)
    );
    assert_eq!(
        (traps[0].guest.start.raw(), traps[0].guest.size),
        (0x2014_0000, 0x1000)
    );
    assert_eq!(traps[0].host, host_bar3);
    let (trap, offset) = bridge
        .msix_trap_at(crate::mm::addr::Ipa(0x2014_0028))
        .unwrap();
    assert_eq!((trap.device, offset), (e1000e, 0x28));
    assert_eq!(bridge.msix_trap_at(crate::mm::addr::Ipa(0x2014_1000)), None);
}

#[test]
fn a_bar_holding_only_the_msix_table_and_pba_is_trapped_whole() {
    let (mut bus, _, mut bridge) = setup_with(&[("00:00.0", "00:01.0")]);
    bridge
        .config_write(&mut bus, at("00:00.0", 0x04), Half, 0x2)
        .unwrap();
    let bars: Vec<u8> = bridge.mappings().iter().map(|m| m.bar).collect();
    assert_eq!(bars, [4]);
    let trap = bridge.msix_traps()[0];
    assert_eq!((trap.bar, trap.guest.size), (1, 0x1000));
    // The PBA shares the page: the kernel forwards it to the device.
    assert_eq!(
        bridge.msix_table_read(virt("00:00.0"), 0x800, Word),
        Err(GuestAccessError::NotInMsixTable { offset: 0x800 })
    );
}

#[test]
fn no_table_page_is_ever_in_the_mappings_whatever_the_guest_writes() {
    let (mut bus, _, mut bridge) = setup();
    bridge
        .config_write(&mut bus, at("00:01.0", 0x04), Half, 0x2)
        .unwrap();
    for address in [0x2000_0000u64, 0x2014_0000, 0x2ff0_0000, 0x2013_c000] {
        bridge
            .config_write(&mut bus, at("00:01.0", 0x1c), Word, address)
            .unwrap();
        for trap in bridge.msix_traps() {
            for m in bridge.mappings() {
                let (a, b) = (m.guest.start.raw(), trap.guest.start.raw());
                assert!(
                    a + m.guest.size <= b || b + trap.guest.size <= a,
                    "{m:?} maps {trap:?}"
                );
            }
        }
    }
}
