//! The partition's virtual host bridge: hiding, translation, BAR, COMMAND,
//! MSI and MSI-X emulation.

use alloc::vec::Vec;

use super::fake::*;
use crate::boot::guest_fdt::{GuestPci, GuestPciWindow};
use crate::mm::addr::{Ipa, Range};
use crate::pci::regs::command;
use crate::pci::*;
use crate::vits::AccessWidth::{self, Byte, Double, Half, Word};

pub fn bdf(text: &str) -> Bdf {
    text.parse().expect("test BDF")
}

pub fn virt(text: &str) -> VirtBdf {
    VirtBdf(bdf(text))
}

/// The guest's bridge: buses 0-1, a 32-bit window at bus address
/// 0x2000_0000 (same IPA) and a 64-bit window seen at a different IPA.
pub fn guest_pci() -> GuestPci {
    GuestPci {
        ecam: Range {
            start: Ipa(0x3000_0000),
            size: 2 << 20,
        },
        first_bus: 0,
        last_bus: 1,
        mem32: Some(GuestPciWindow {
            cpu: Range {
                start: Ipa(0x2000_0000),
                size: 0x1000_0000,
            },
            pci_address: 0x2000_0000,
        }),
        mem64: Some(GuestPciWindow {
            cpu: Range {
                start: Ipa(0x100_0000_0000),
                size: 1 << 32,
            },
            pci_address: 0x80_0000_0000,
        }),
        msi_base: 0,
        dma_coherent: true,
    }
}

/// The host bus brought up, edu at virtual 00:00.0 and e1000e at 00:01.0
/// (virtio-net at physical 00:01.0 stays with the host); the log cleared.
pub fn setup() -> (FakeConfigSpace, Vec<PciDevice>, VirtualHostBridge) {
    setup_with(&[("00:00.0", "00:02.0"), ("00:01.0", "00:03.0")])
}

pub fn setup_with(pairs: &[(&str, &str)]) -> (FakeConfigSpace, Vec<PciDevice>, VirtualHostBridge) {
    let mut bus = qemu_virt_bus();
    let devices = discover(&mut bus, &qemu_virt_bridge()).expect("bring-up");
    let assigned: Vec<(VirtBdf, &PciDevice)> = pairs
        .iter()
        .map(|(v, p)| {
            (
                virt(v),
                devices.iter().find(|d| d.bdf() == bdf(p)).expect("device"),
            )
        })
        .collect();
    let bridge = VirtualHostBridge::new(&mut bus, &guest_pci(), &assigned).expect("bridge");
    bus.log.borrow_mut().clear();
    (bus, devices, bridge)
}

/// ECAM offset of `reg` of virtual function `v` (first bus 0).
pub fn at(v: &str, reg: u16) -> u64 {
    bdf(v).ecam_offset(0).expect("bus") + u64::from(reg)
}

fn read(
    bus: &FakeConfigSpace,
    bridge: &VirtualHostBridge,
    v: &str,
    reg: u16,
    width: AccessWidth,
) -> u32 {
    bridge.config_read(bus, at(v, reg), width).expect("read")
}

fn write(
    bus: &mut FakeConfigSpace,
    bridge: &mut VirtualHostBridge,
    v: &str,
    reg: u16,
    width: AccessWidth,
    value: u64,
) -> Option<Change> {
    bridge
        .config_write(bus, at(v, reg), width, value)
        .expect("write")
        .map(|e| e.change)
}

#[test]
fn unassigned_bdfs_read_as_absent_and_are_never_touched_on_the_host() {
    let (bus, _, bridge) = setup();
    assert_eq!(read(&bus, &bridge, "00:02.0", 0, Word), 0xffff_ffff);
    assert_eq!(read(&bus, &bridge, "00:03.0", 0, Half), 0xffff);
    assert_eq!(read(&bus, &bridge, "01:00.0", 0x3c, Byte), 0xff);
    assert_eq!(read(&bus, &bridge, "00:00.1", 0, Word), 0xffff_ffff);
    assert!(bus.log.borrow().is_empty());
}

#[test]
fn writes_to_unassigned_bdfs_are_ignored() {
    let (mut bus, _, mut bridge) = setup();
    for v in ["00:02.0", "00:03.0", "00:04.0"] {
        assert_eq!(write(&mut bus, &mut bridge, v, 0x04, Word, 0x7), None);
        assert_eq!(
            write(&mut bus, &mut bridge, v, 0x10, Word, 0xffff_ffff),
            None
        );
    }
    assert!(bus.log.borrow().is_empty());
}

#[test]
fn virtual_bdfs_translate_to_their_physical_functions() {
    let (bus, _, bridge) = setup();
    assert_eq!(read(&bus, &bridge, "00:00.0", 0, Word), 0x11e8_1234);
    assert_eq!(read(&bus, &bridge, "00:01.0", 0, Word), 0x10d3_8086);
    assert_eq!(read(&bus, &bridge, "00:01.0", 2, Half), 0x10d3);
    assert_eq!(read(&bus, &bridge, "00:01.0", 0x0b, Byte), 0x02);
    assert_eq!(bridge.physical(virt("00:01.0")), Some(bdf("00:03.0")));
    assert_eq!(bus.touched(), [bdf("00:02.0"), bdf("00:03.0")]);
}

#[test]
fn guest_bars_start_placed_naturally_aligned_in_the_guest_windows() {
    let (bus, _, bridge) = setup();
    let edu_bar0 = read(&bus, &bridge, "00:00.0", 0x10, Word);
    assert_eq!(edu_bar0, 0x2000_0000);
    let e1000e: Vec<u32> = (0..6)
        .map(|i| read(&bus, &bridge, "00:01.0", 0x10 + 4 * i, Word))
        .collect();
    assert_eq!(e1000e, [0x2010_0000, 0x2012_0000, 0x1, 0x2014_0000, 0, 0]);
}

#[test]
fn the_sizing_probe_reads_the_real_mask_and_the_device_bars_are_never_written() {
    let (mut bus, _, mut bridge) = setup();
    let before = bus.function("00:03.0").config.clone();
    for (reg, mask) in [
        (0x10, 0xfffe_0000),
        (0x14, 0xfffe_0000),
        (0x18, 0xffff_ffe1),
        (0x1c, 0xffff_c000),
    ] {
        let original = read(&bus, &bridge, "00:01.0", reg, Word);
        write(&mut bus, &mut bridge, "00:01.0", reg, Word, 0xffff_ffff);
        assert_eq!(
            read(&bus, &bridge, "00:01.0", reg, Word),
            mask,
            "BAR at {reg:#x}"
        );
        write(
            &mut bus,
            &mut bridge,
            "00:01.0",
            reg,
            Word,
            u64::from(original),
        );
        assert_eq!(read(&bus, &bridge, "00:01.0", reg, Word), original);
    }
    // Unimplemented BARs stay zero.
    write(&mut bus, &mut bridge, "00:01.0", 0x20, Word, 0xffff_ffff);
    assert_eq!(read(&bus, &bridge, "00:01.0", 0x20, Word), 0);
    assert_eq!(bus.function("00:03.0").config, before);
    assert!(bus.writes().is_empty());
}

#[test]
fn a_64_bit_bar_probes_and_moves_over_both_registers() {
    let (mut bus, _, mut bridge) = setup_with(&[("00:00.0", "00:01.0")]);
    assert_eq!(read(&bus, &bridge, "00:00.0", 0x20, Word), 0x0000_000c);
    assert_eq!(read(&bus, &bridge, "00:00.0", 0x24, Word), 0x80);
    write(&mut bus, &mut bridge, "00:00.0", 0x20, Word, 0xffff_ffff);
    write(&mut bus, &mut bridge, "00:00.0", 0x24, Word, 0xffff_ffff);
    assert_eq!(read(&bus, &bridge, "00:00.0", 0x20, Word), 0xffff_c00c);
    assert_eq!(read(&bus, &bridge, "00:00.0", 0x24, Word), 0xffff_ffff);
    write(&mut bus, &mut bridge, "00:00.0", 0x20, Word, 0x0001_0000);
    let moved = write(&mut bus, &mut bridge, "00:00.0", 0x24, Word, 0x80);
    assert_eq!(
        moved,
        Some(Change::BarMoved {
            bar: 4,
            guest_address: 0x80_0001_0000
        })
    );
}

#[test]
fn moving_a_bar_is_reported_once_with_its_new_guest_address() {
    let (mut bus, _, mut bridge) = setup();
    let change = write(&mut bus, &mut bridge, "00:00.0", 0x10, Word, 0x2100_0000);
    assert_eq!(
        change,
        Some(Change::BarMoved {
            bar: 0,
            guest_address: 0x2100_0000
        })
    );
    assert_eq!(
        write(&mut bus, &mut bridge, "00:00.0", 0x10, Word, 0x2100_0000),
        None
    );
    // A byte write to the top byte moves it too.
    let change = write(&mut bus, &mut bridge, "00:00.0", 0x13, Byte, 0x22);
    assert_eq!(
        change,
        Some(Change::BarMoved {
            bar: 0,
            guest_address: 0x2200_0000
        })
    );
    assert_eq!(read(&bus, &bridge, "00:00.0", 0x10, Word), 0x2200_0000);
}

#[test]
fn bars_are_mapped_only_with_memory_decode_on_and_inside_the_guest_windows() {
    let (mut bus, devices, mut bridge) = setup();
    assert!(bridge.mappings().is_empty());
    let on = write(
        &mut bus,
        &mut bridge,
        "00:00.0",
        0x04,
        Half,
        u64::from(command::MEMORY_SPACE),
    );
    assert_eq!(on, Some(Change::MemoryDecode { enabled: true }));
    let edu_host = devices
        .iter()
        .find(|d| d.bdf() == bdf("00:02.0"))
        .unwrap()
        .bar(0)
        .unwrap();
    assert_eq!(
        bridge.device_mappings(virt("00:00.0")),
        [BarMapping {
            device: virt("00:00.0"),
            physical: bdf("00:02.0"),
            bar: 0,
            guest: Range {
                start: Ipa(0x2000_0000),
                size: 1 << 20
            },
            host: edu_host.cpu_address.unwrap(),
        }]
    );
    // The e1000e's decode is still off: none of its BARs are mapped.
    assert!(bridge.device_mappings(virt("00:01.0")).is_empty());
    // Outside the guest's window: not mapped.
    write(&mut bus, &mut bridge, "00:00.0", 0x10, Word, 0x4000_0000);
    assert!(bridge.mappings().is_empty());
}

#[test]
fn a_64_bit_bar_maps_through_the_64_bit_window_translation() {
    let (mut bus, _, mut bridge) = setup_with(&[("00:00.0", "00:01.0")]);
    write(
        &mut bus,
        &mut bridge,
        "00:00.0",
        0x04,
        Half,
        u64::from(command::MEMORY_SPACE),
    );
    let bar4 = bridge.mappings().into_iter().find(|m| m.bar == 4).unwrap();
    assert_eq!(bar4.guest.start, Ipa(0x100_0000_0000));
    assert_eq!(bar4.host.raw(), 0x80_0000_0000);
}

#[test]
fn overlapping_guest_bars_are_both_left_unmapped() {
    let (mut bus, _, mut bridge) = setup();
    for v in ["00:00.0", "00:01.0"] {
        write(
            &mut bus,
            &mut bridge,
            v,
            0x04,
            Half,
            u64::from(command::MEMORY_SPACE),
        );
    }
    assert_eq!(bridge.mappings().len(), 4);
    // e1000e BAR3 (16 KiB) moved into edu's 1 MiB BAR0.
    write(&mut bus, &mut bridge, "00:01.0", 0x1c, Word, 0x2000_4000);
    let bars: Vec<(VirtBdf, u8)> = bridge
        .mappings()
        .iter()
        .map(|m| (m.device, m.bar))
        .collect();
    assert_eq!(bars, [(virt("00:01.0"), 0), (virt("00:01.0"), 1)]);
}

#[test]
fn command_passes_memory_bus_master_intx_and_refuses_io_without_an_io_bar() {
    let (mut bus, _, mut bridge) = setup();
    let all = u64::from(
        command::IO_SPACE | command::MEMORY_SPACE | command::BUS_MASTER | command::INTX_DISABLE,
    ) | 1 << 6
        | 1 << 8;
    write(&mut bus, &mut bridge, "00:00.0", 0x04, Half, all);
    let edu_command = bus.function("00:02.0").get(0x04) as u16;
    assert_eq!(
        edu_command,
        command::MEMORY_SPACE | command::BUS_MASTER | command::INTX_DISABLE
    );
    assert_eq!(
        read(&bus, &bridge, "00:00.0", 0x04, Half),
        u32::from(edu_command)
    );
    // The e1000e has an I/O BAR the host placed: I/O decode is allowed.
    write(&mut bus, &mut bridge, "00:01.0", 0x04, Half, all);
    let e1000e_command = bus.function("00:03.0").get(0x04) as u16;
    assert_eq!(e1000e_command & command::IO_SPACE, command::IO_SPACE);
    assert_eq!(e1000e_command & (1 << 6 | 1 << 8), 0);
}

#[test]
fn io_bars_are_listed_as_not_given_with_their_size() {
    let (_, _, bridge) = setup();
    let io = bridge.io_bars_not_given();
    assert_eq!(io.len(), 1, "only the e1000e has an I/O BAR: {io:?}");
    assert_eq!(
        (io[0].device, io[0].physical, io[0].bar, io[0].size),
        (virt("00:01.0"), bdf("00:03.0"), 2, 32)
    );
}

#[test]
fn a_byte_write_to_command_leaves_the_other_byte_alone() {
    let (mut bus, _, mut bridge) = setup();
    write(
        &mut bus,
        &mut bridge,
        "00:00.0",
        0x05,
        Byte,
        u64::from(command::INTX_DISABLE >> 8),
    );
    write(
        &mut bus,
        &mut bridge,
        "00:00.0",
        0x04,
        Byte,
        u64::from(command::BUS_MASTER),
    );
    let command = bus.function("00:02.0").get(0x04) as u16;
    assert_eq!(command, command::BUS_MASTER | command::INTX_DISABLE);
}

#[test]
fn status_error_bits_clear_only_when_the_guest_writes_status() {
    let (mut bus, _, mut bridge) = setup();
    bus.function_mut("00:02.0").set(0x04, 0x4000_0000);
    write(
        &mut bus,
        &mut bridge,
        "00:00.0",
        0x04,
        Half,
        u64::from(command::MEMORY_SPACE),
    );
    assert_eq!(bus.function("00:02.0").get(0x04) >> 16, 0x4000);
    write(&mut bus, &mut bridge, "00:00.0", 0x06, Half, 0x4000);
    assert_eq!(bus.function("00:02.0").get(0x04) >> 16, 0);
}

#[test]
fn expansion_rom_and_extended_capabilities_read_as_absent() {
    let (mut bus, _, mut bridge) = setup();
    write(&mut bus, &mut bridge, "00:01.0", 0x30, Word, 0xffff_ffff);
    assert_eq!(read(&bus, &bridge, "00:01.0", 0x30, Word), 0);
    // The e1000e has AER at 0x100 and DSN at 0x140: the guest sees none.
    assert_eq!(read(&bus, &bridge, "00:01.0", 0x100, Word), 0);
    assert_eq!(read(&bus, &bridge, "00:01.0", 0x140, Word), 0);
    write(&mut bus, &mut bridge, "00:01.0", 0x104, Word, 0xffff_ffff);
    assert!(bus.writes().is_empty());
}

#[test]
fn interrupt_pin_reads_zero_and_the_line_is_the_guests_scratch_byte() {
    let (mut bus, _, mut bridge) = setup();
    assert_eq!(read(&bus, &bridge, "00:00.0", 0x3d, Byte), 0);
    write(&mut bus, &mut bridge, "00:00.0", 0x3c, Word, 0xffff_ff2a);
    assert_eq!(read(&bus, &bridge, "00:00.0", 0x3c, Word), 0x2a);
    assert!(bus.writes().is_empty());
}

#[test]
fn the_multi_function_bit_reflects_the_virtual_device_only() {
    let (bus, _, bridge) = setup_with(&[
        ("00:05.0", "00:02.0"),
        ("00:05.1", "00:03.0"),
        ("00:06.0", "00:01.0"),
    ]);
    assert_eq!(read(&bus, &bridge, "00:05.0", 0x0e, Byte), 0x80);
    assert_eq!(read(&bus, &bridge, "00:05.1", 0x0e, Byte), 0x80);
    assert_eq!(read(&bus, &bridge, "00:06.0", 0x0e, Byte), 0x00);
}

#[test]
fn the_capability_list_reads_through() {
    let (bus, _, bridge) = setup();
    assert_eq!(read(&bus, &bridge, "00:01.0", 0x34, Byte), 0xc8);
    let mut pointer = read(&bus, &bridge, "00:01.0", 0x34, Byte) as u16;
    let mut ids = Vec::new();
    while pointer != 0 {
        let header = read(&bus, &bridge, "00:01.0", pointer, Half);
        ids.push(header as u8);
        pointer = (header >> 8) as u16;
    }
    assert_eq!(ids, [0x01, 0x05, 0x10, 0x11]);
    // The PCIe capability's registers read as the device has them.
    assert_eq!(read(&bus, &bridge, "00:01.0", 0xe2, Half), 0x0002);
}

#[test]
fn config_accesses_of_bad_width_alignment_or_offset_are_errors() {
    let (mut bus, _, mut bridge) = setup();
    let err = |r: Result<u32, GuestAccessError>| r.unwrap_err();
    assert_eq!(
        err(bridge.config_read(&bus, 0, Double)),
        GuestAccessError::BadWidth
    );
    assert_eq!(
        err(bridge.config_read(&bus, 2, Word)),
        GuestAccessError::Misaligned { offset: 2 }
    );
    assert_eq!(
        err(bridge.config_read(&bus, 1, Half)),
        GuestAccessError::Misaligned { offset: 1 }
    );
    assert_eq!(
        err(bridge.config_read(&bus, 2 << 20, Word)),
        GuestAccessError::OutsideWindow { offset: 2 << 20 }
    );
    assert!(bridge.config_write(&mut bus, u64::MAX, Byte, 0).is_err());
    assert!(bus.log.borrow().is_empty());
}

#[test]
fn the_manifest_errors_name_the_device() {
    let mut bus = qemu_virt_bus();
    let devices = discover(&mut bus, &qemu_virt_bridge()).unwrap();
    let get = |p: &str| devices.iter().find(|d| d.bdf() == bdf(p)).unwrap();
    let build = |bus: &mut FakeConfigSpace, pairs: &[(&str, &PciDevice)]| {
        let list: Vec<(VirtBdf, &PciDevice)> = pairs.iter().map(|(v, d)| (virt(v), *d)).collect();
        VirtualHostBridge::new(bus, &guest_pci(), &list).unwrap_err()
    };
    let (edu, e1000e) = (get("00:02.0"), get("00:03.0"));
    assert_eq!(
        build(&mut bus, &[("00:00.0", edu), ("00:00.0", e1000e)]),
        VbridgeError::DuplicateVirtual {
            device: virt("00:00.0")
        }
    );
    assert_eq!(
        build(&mut bus, &[("00:00.0", edu), ("00:01.0", edu)]),
        VbridgeError::DuplicatePhysical {
            physical: bdf("00:02.0")
        }
    );
    assert_eq!(
        build(&mut bus, &[("02:00.0", edu)]),
        VbridgeError::OutsideBusRange {
            device: virt("02:00.0")
        }
    );
    assert_eq!(
        build(&mut bus, &[("00:03.1", edu)]),
        VbridgeError::NoFunctionZero {
            device: virt("00:03.1")
        }
    );
    assert_eq!(
        build(&mut bus, &[("00:00.0", get("00:04.0"))]),
        VbridgeError::NotAnEndpoint {
            physical: bdf("00:04.0")
        }
    );
    let mut small = guest_pci();
    if let Some(w) = small.mem32.as_mut() {
        w.cpu.size = 0x10_0000;
    }
    let list = [(virt("00:00.0"), edu), (virt("00:01.0"), e1000e)];
    let err = VirtualHostBridge::new(&mut bus, &small, &list).unwrap_err();
    assert!(
        matches!(err, VbridgeError::GuestWindowFull { device, .. } if device == virt("00:01.0")),
        "{err:?}"
    );
    assert_eq!(
        alloc::format!("{err}"),
        "virtual 00:01.0 BAR 0: guest PCI windows full"
    );
}

#[test]
fn passthrough_functions_sit_at_devices_1_to_31_of_virtual_bus_0() {
    assert_eq!(virtual_bdf(0), Some(virt("00:01.0")));
    assert_eq!(virtual_bdf(1), Some(virt("00:02.0")));
    assert_eq!(virtual_bdf(30), Some(virt("00:1f.0")));
    // Device 32 does not exist: a 32nd function has no slot.
    assert_eq!(virtual_bdf(31), None);
    assert_eq!(virtual_bdf(255), None);
    assert_eq!(virtual_bdf(usize::MAX), None);
}
