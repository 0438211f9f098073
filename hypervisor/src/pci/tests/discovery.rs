//! Enumeration, BAR sizing and BAR assignment.

use alloc::vec::Vec;

use super::fake::*;
use crate::boot::platform::PciSpace;
use crate::pci::regs::{self, command};
use crate::pci::*;

fn bdf(text: &str) -> Bdf {
    text.parse().expect("test BDF")
}

#[test]
fn enumeration_finds_exactly_the_modelled_functions_with_their_requester_ids() {
    let bus = qemu_virt_bus();
    let found = enumerate_bridge(&bus, &qemu_virt_bridge());
    let summary: Vec<(Bdf, u16, u16, u16)> = found
        .iter()
        .map(|f| (f.bdf, f.requester_id(), f.vendor_id, f.device_id))
        .collect();
    assert_eq!(
        summary,
        [
            (bdf("00:00.0"), 0x0000, 0x1b36, 0x0008),
            (bdf("00:01.0"), 0x0008, 0x1af4, 0x1041),
            (bdf("00:02.0"), 0x0010, 0x1234, 0x11e8),
            (bdf("00:03.0"), 0x0018, 0x8086, 0x10d3),
            (bdf("00:04.0"), 0x0020, 0x1b36, 0x000c),
            (bdf("00:04.1"), 0x0021, 0x1b36, 0x000c),
        ]
    );
    let e1000e = &found[3];
    assert_eq!(
        e1000e.class,
        ClassCode {
            base: 0x02,
            sub: 0x00,
            prog_if: 0
        }
    );
    assert_eq!(e1000e.header, HeaderKind::Endpoint);
    assert_eq!(found[2].revision, 0x10);
}

#[test]
fn bridges_are_recorded_with_their_bus_numbers_and_never_written() {
    let bus = qemu_virt_bus();
    let found = enumerate(&bus, 0, 0);
    assert_eq!(
        found[4].header,
        HeaderKind::PciBridge {
            primary: 0,
            secondary: 0,
            subordinate: 0
        }
    );
    assert!(found[4].multi_function);
    assert!(bus.writes().is_empty());
}

#[test]
fn functions_above_0_are_scanned_only_with_the_multi_function_bit() {
    // A phantom function 1 behind a single-function device is not reported.
    let bus = FakeConfigSpace::default()
        .with("00:02.0", edu())
        .with("00:02.1", edu())
        .with("00:05.3", edu());
    let found: Vec<Bdf> = enumerate(&bus, 0, 0).iter().map(|f| f.bdf).collect();
    assert_eq!(found, [bdf("00:02.0")]);
    assert!(!bus.touched().contains(&bdf("00:02.1")));
}

#[test]
fn enumeration_reads_only_buses_in_the_bridge_range() {
    let bus = FakeConfigSpace::default()
        .with("01:00.0", edu())
        .with("02:00.0", e1000e());
    let found: Vec<Bdf> = enumerate(&bus, 1, 1).iter().map(|f| f.bdf).collect();
    assert_eq!(found, [bdf("01:00.0")]);
    assert!(bus.touched().iter().all(|b| b.bus() == 1));
}

#[test]
fn bar_sizing_gives_the_sizes_and_kinds_of_e1000e() {
    let mut bus = qemu_virt_bus();
    let bars = probe_bars(&mut bus, bdf("00:03.0"), HeaderKind::Endpoint).unwrap();
    let mem = BarKind::Mem32 {
        prefetchable: false,
    };
    let got: Vec<(u8, BarKind, u64)> = bars.iter().map(|b| (b.index, b.kind, b.size)).collect();
    assert_eq!(
        got,
        [
            (0, mem, 128 << 10),
            (1, mem, 128 << 10),
            (2, BarKind::Io, 32),
            (3, mem, 16 << 10)
        ]
    );
}

#[test]
fn bar_sizing_sees_one_64_bit_prefetchable_bar_over_two_registers() {
    let mut bus = qemu_virt_bus();
    let bars = probe_bars(&mut bus, bdf("00:01.0"), HeaderKind::Endpoint).unwrap();
    let got: Vec<(u8, BarKind, u64)> = bars.iter().map(|b| (b.index, b.kind, b.size)).collect();
    assert_eq!(
        got,
        [
            (
                1,
                BarKind::Mem32 {
                    prefetchable: false
                },
                0x1000
            ),
            (4, BarKind::Mem64 { prefetchable: true }, 0x4000),
        ]
    );
}

#[test]
fn bar_sizing_restores_bars_and_command_and_disables_decode_meanwhile() {
    let mut bus = qemu_virt_bus();
    {
        let e1000e = bus.function_mut("00:03.0");
        e1000e.set(
            0x04,
            u32::from(command::MEMORY_SPACE | command::IO_SPACE | command::BUS_MASTER),
        );
        e1000e.set(0x10, 0x1002_0000);
        e1000e.set(0x18, 0x0000_1001);
    }
    let before = bus.function("00:03.0").config.clone();
    probe_bars(&mut bus, bdf("00:03.0"), HeaderKind::Endpoint).unwrap();
    assert_eq!(bus.function("00:03.0").config, before);
    assert_eq!(bus.sized_while_decoding, 0);
    let bars = probe_bars(&mut bus, bdf("00:03.0"), HeaderKind::Endpoint).unwrap();
    assert_eq!((bars[0].address, bars[2].address), (0x1002_0000, 0x1000));
}

#[test]
fn bar_sizing_does_not_clear_status_error_bits() {
    let mut bus = qemu_virt_bus();
    // Signalled system error: STATUS bit 14, write-one-to-clear.
    bus.function_mut("00:02.0").set(0x04, 0x4000_0002);
    probe_bars(&mut bus, bdf("00:02.0"), HeaderKind::Endpoint).unwrap();
    assert_eq!(bus.function("00:02.0").get(0x04), 0x4000_0002);
}

#[test]
fn reserved_memory_type_is_an_error_naming_device_and_bar() {
    let mut bus = FakeConfigSpace::default().with("00:02.0", edu());
    bus.function_mut("00:02.0").set(regs::bar_offset(0), 0x2); // type 01
    let err = probe_bars(&mut bus, bdf("00:02.0"), HeaderKind::Endpoint).unwrap_err();
    assert!(matches!(err, PciError::BadBar { bar: 0, .. }), "{err:?}");
    assert!(alloc::format!("{err}").starts_with("PCI 00:02.0 BAR 0:"));
}

#[test]
fn a_64_bit_bar_in_the_last_slot_is_an_error() {
    let f = FakeFunction::new(0x1234, 0x5678, 0, 0).bar(
        5,
        BarKind::Mem64 {
            prefetchable: false,
        },
        0x1000,
    );
    let mut bus = FakeConfigSpace::default().with("00:02.0", f);
    let err = probe_bars(&mut bus, bdf("00:02.0"), HeaderKind::Endpoint).unwrap_err();
    assert!(matches!(err, PciError::BadBar { bar: 5, .. }), "{err:?}");
}

/// Every memory BAR of every function as (bdf, index, address, size, kind).
fn placed(devices: &[PciDevice]) -> Vec<(Bdf, u8, u64, u64, BarKind)> {
    devices
        .iter()
        .flat_map(|d| {
            d.bars
                .iter()
                .map(move |b| (d.bdf(), b.bar.index, b.bar.address, b.bar.size, b.bar.kind))
        })
        .collect()
}

#[test]
fn discovery_places_every_bar_naturally_aligned_inside_its_window_and_programs_it() {
    let mut bus = qemu_virt_bus();
    let bridge = qemu_virt_bridge();
    let devices = discover(&mut bus, &bridge).unwrap();
    let bars = placed(&devices);
    assert_eq!(bars.len(), 7);
    for &(bdf, index, address, size, kind) in &bars {
        let (footprint, window) = match kind {
            BarKind::Io => (size, &bridge.windows[0]),
            BarKind::Mem32 { .. } => (size.max(4096), &bridge.windows[1]),
            BarKind::Mem64 { .. } => (size.max(4096), &bridge.windows[2]),
        };
        assert_eq!(address % footprint, 0, "{bdf} BAR {index} misaligned");
        assert!(address != 0, "{bdf} BAR {index} at bus address 0");
        assert!(
            address >= window.pci_address && address + size <= window.pci_address + window.size
        );
        // Programmed: the register reads back the address and the kind's flags.
        let register = bus.function(&bdf.to_string()).get(regs::bar_offset(index));
        assert_eq!(
            u64::from(register & !kind.flag_mask()),
            address & 0xffff_ffff
        );
        if let BarKind::Mem64 { .. } = kind {
            let high = bus
                .function(&bdf.to_string())
                .get(regs::bar_offset(index) + 4);
            assert_eq!(u64::from(high), address >> 32);
        }
    }
    for (i, a) in bars.iter().enumerate() {
        for b in &bars[i + 1..] {
            let same_space = a.4.is_memory() == b.4.is_memory();
            let disjoint = a.2 + a.3.max(4096) <= b.2 || b.2 + b.3.max(4096) <= a.2;
            assert!(!same_space || disjoint, "{a:?} overlaps {b:?}");
        }
    }
    assert_eq!(bus.sized_while_decoding, 0);
}

#[test]
fn cpu_addresses_follow_the_window_translation() {
    let mut bus = FakeConfigSpace::default().with("00:02.0", edu());
    let bridge = bridge_with_windows(vec![window(
        PciSpace::Mem32,
        0x4000_0000,
        0x10_4000_0000,
        0x100_0000,
    )]);
    let devices = discover(&mut bus, &bridge).unwrap();
    let bar0 = devices[0].bar(0).unwrap();
    assert_eq!(bar0.bar.address, 0x4000_0000);
    assert_eq!(bar0.cpu_address.map(|a| a.raw()), Some(0x10_4000_0000));
}

#[test]
fn the_64_bit_bar_goes_to_the_64_bit_window_and_32_bit_bars_stay_low() {
    let mut bus = qemu_virt_bus();
    let devices = discover(&mut bus, &qemu_virt_bridge()).unwrap();
    let virtio = devices.iter().find(|d| d.bdf() == bdf("00:01.0")).unwrap();
    assert_eq!(virtio.bar(4).unwrap().bar.address, 0x80_0000_0000);
    assert!(virtio.bar(1).unwrap().bar.address < 1 << 32);
}

#[test]
fn small_memory_bars_each_get_their_own_page() {
    let mem = BarKind::Mem32 {
        prefetchable: false,
    };
    let tiny = |id| {
        FakeFunction::new(0x1234, id, 0, 0)
            .bar(0, mem, 0x100)
            .bar(1, mem, 0x10)
    };
    let mut bus = FakeConfigSpace::default()
        .with("00:01.0", tiny(1))
        .with("00:02.0", tiny(2));
    let bridge = bridge_with_windows(vec![window(
        PciSpace::Mem32,
        0x1000_0000,
        0x1000_0000,
        0x4000,
    )]);
    let devices = discover(&mut bus, &bridge).unwrap();
    let mut pages: Vec<u64> = placed(&devices).iter().map(|b| b.2 >> 12).collect();
    pages.sort();
    pages.dedup();
    assert_eq!(pages.len(), 4);
}

#[test]
fn exhausted_windows_are_an_error_naming_device_and_bar() {
    let mut bus = qemu_virt_bus();
    // 1 MiB of 32-bit space: edu's BAR0 alone fills it.
    let bridge = bridge_with_windows(vec![window(
        PciSpace::Mem32,
        0x1000_0000,
        0x1000_0000,
        1 << 20,
    )]);
    let err = discover(&mut bus, &bridge).unwrap_err();
    assert!(
        matches!(
            err,
            PciError::NoSpace {
                bar: 0 | 1,
                size: 0x2_0000,
                ..
            }
        ),
        "{err:?}"
    );
    let text = alloc::format!("{err}");
    assert!(text.starts_with("PCI 00:03.0 BAR"), "{text}");
    assert!(text.ends_with("host bridge windows exhausted"), "{text}");
}

#[test]
fn io_bars_stay_unassigned_without_an_io_window() {
    let mut bus = qemu_virt_bus();
    let mut bridge = qemu_virt_bridge();
    bridge.windows.remove(0);
    let devices = discover(&mut bus, &bridge).unwrap();
    let e1000e = devices.iter().find(|d| d.bdf() == bdf("00:03.0")).unwrap();
    assert_eq!(e1000e.bar(2).unwrap().cpu_address, None);
    assert_eq!(bus.function("00:03.0").get(regs::bar_offset(2)), 0x1);
}

#[test]
fn a_prefetchable_window_takes_only_prefetchable_bars() {
    let window = BusWindow {
        space: PciSpace::Mem64,
        prefetchable: true,
        start: 0x80_0000_0000,
        size: 1 << 30,
    };
    let mut allocator = BarAllocator::new([window]);
    let d = bdf("00:01.0");
    let plain = BarKind::Mem64 {
        prefetchable: false,
    };
    assert!(matches!(
        allocator.allocate(d, 0, plain, 0x4000),
        Err(PciError::NoSpace { .. })
    ));
    let placement = allocator.allocate(d, 4, BarKind::Mem64 { prefetchable: true }, 0x4000);
    assert_eq!(
        placement,
        Ok(Placement {
            window: 0,
            address: 0x80_0000_0000
        })
    );
}

#[test]
fn a_32_bit_bar_is_never_placed_above_4_gib() {
    let window = BusWindow {
        space: PciSpace::Mem32,
        prefetchable: false,
        start: 0xffff_f000,
        size: 0x2000,
    };
    let mut allocator = BarAllocator::new([window]);
    let mem = BarKind::Mem32 {
        prefetchable: false,
    };
    assert!(allocator.allocate(bdf("00:01.0"), 0, mem, 0x1000).is_ok());
    assert!(allocator.allocate(bdf("00:01.0"), 1, mem, 0x1000).is_err());
}
