//! MSI-X passthrough: what the device is given for the guest's table,
//! when, and in which order; the guest's bad addresses and EventIDs; the
//! page around the table.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::fake::*;
use super::vbridge::{at, bdf, setup, setup_with, virt};
use crate::mm::addr::PhysAddr;
use crate::pci::*;
use crate::vits::AccessWidth::{Byte, Double, Half, Word};

/// The vITS doorbell of every partition, and QEMU virt's physical one.
pub const TARGET: MsiTarget = MsiTarget {
    guest_doorbell: 0x0809_0040,
    physical_doorbell: PhysAddr(0x0809_0040),
    event_bits: 8,
};

/// A target whose physical doorbell differs from the guest's, to tell them apart.
const ELSEWHERE: MsiTarget = MsiTarget {
    guest_doorbell: 0x0809_0040,
    physical_doorbell: PhysAddr(0x1_2345_0040),
    event_bits: 8,
};

fn entry(address: u64, data: u32, masked: bool) -> MsixEntry {
    MsixEntry {
        address,
        data,
        masked,
    }
}

/// Host address of e1000e's (physical 00:03.0) BAR3, where its table is.
fn e1000e_table(devices: &[PciDevice]) -> u64 {
    devices
        .iter()
        .find(|d| d.bdf() == bdf("00:03.0"))
        .and_then(|d| d.bar(3))
        .and_then(|b| b.cpu_address)
        .expect("e1000e BAR3 placed")
        .raw()
}

/// e1000e (virtual 00:01.0) with memory decode on.
fn decoding() -> (FakeConfigSpace, Vec<PciDevice>, VirtualHostBridge) {
    let (mut bus, devices, mut bridge) = setup();
    bridge
        .config_write(&mut bus, at("00:01.0", 0x04), Half, 0x6)
        .unwrap();
    (bus, devices, bridge)
}

/// A guest table write and, for a vector change, the program the kernel runs.
fn guest_write(
    bridge: &mut VirtualHostBridge,
    offset: u64,
    width: crate::vits::AccessWidth,
    value: u64,
) -> Option<VectorProgram> {
    let e1000e = virt("00:01.0");
    let event = bridge
        .msix_table_write(e1000e, offset, width, value)
        .unwrap()?;
    match event.change {
        Change::MsixVector { vector, .. } => bridge.msix_program(e1000e, vector, &TARGET),
        other => panic!("unexpected {other:?}"),
    }
}

/// A device's MSI-X table as the writes leave it, checked after every
/// write: an unmasked entry always holds a whole message (never half old,
/// half new) pointing at the physical doorbell.
#[derive(Default)]
struct FakeTable {
    dwords: BTreeMap<u64, u32>,
}

impl FakeTable {
    fn apply(&mut self, writes: &[TableWrite], complete: &[(u64, u32)]) {
        for w in writes {
            self.dwords.insert(w.address.raw(), w.value);
            let entry = w.address.raw() & !0xf;
            let get = |o: u64| self.dwords.get(&(entry + o)).copied().unwrap_or(0);
            if get(12) & 1 == 0 {
                let message = (u64::from(get(0)) | u64::from(get(4)) << 32, get(8));
                assert!(
                    complete.contains(&message),
                    "entry {entry:#x} unmasked with {message:x?}, not one of {complete:x?}"
                );
            }
        }
    }
}

#[test]
fn a_valid_entry_becomes_the_physical_doorbell_and_the_same_eventid() {
    let (vector, held) = entry(0x0809_0040, 7, false).physical(&ELSEWHERE);
    assert_eq!(held, None);
    assert_eq!(
        vector,
        PhysicalVector {
            address: PhysAddr(0x1_2345_0040),
            data: 7,
            masked: false
        }
    );
}

#[test]
fn a_guest_address_other_than_its_doorbell_keeps_the_vector_masked() {
    for address in [0, 0x5000_0000, 0x0809_0044, 0x1_0809_0040, u64::MAX] {
        let (vector, held) = entry(address, 3, false).physical(&ELSEWHERE);
        assert_eq!(held, Some(HeldReason::NotTheDoorbell { address }));
        assert!(vector.masked);
        // The device is never pointed anywhere the guest chose.
        assert_eq!(vector.address, PhysAddr(0x1_2345_0040));
    }
    // Masked by the guest: masked, nothing held against its wish.
    let (vector, held) = entry(0x5000_0000, 3, true).physical(&ELSEWHERE);
    assert!(vector.masked);
    assert_eq!(held, None);
}

#[test]
fn an_eventid_beyond_the_functions_itt_keeps_the_vector_masked() {
    let (vector, held) = entry(0x0809_0040, 256, false).physical(&TARGET);
    assert_eq!(held, Some(HeldReason::EventOutOfRange { event: 256 }));
    assert_eq!((vector.masked, vector.data), (true, 0));
    let (vector, held) = entry(0x0809_0040, 255, false).physical(&TARGET);
    assert_eq!((vector.masked, vector.data, held), (false, 255, None));
}

#[test]
fn msi_with_a_bad_address_or_eventid_stays_disabled_on_the_device() {
    let good = GuestMsiState {
        enabled: true,
        vectors_log2: 0,
        address: 0x0809_0040,
        data: 4,
        mask: 0,
    };
    let (message, held) = good.physical(&ELSEWHERE);
    assert_eq!(held, None);
    assert_eq!(
        message,
        MsiMessage {
            address: 0x1_2345_0040,
            data: 4,
            vectors_log2: 0,
            mask: 0,
            enable: true
        }
    );
    let bad = GuestMsiState {
        address: 0x5000_0000,
        ..good
    };
    let (message, held) = bad.physical(&ELSEWHERE);
    assert_eq!(
        held,
        Some(HeldReason::NotTheDoorbell {
            address: 0x5000_0000
        })
    );
    assert_eq!((message.enable, message.address), (false, 0x1_2345_0040));
    // 32 vectors from data 240: the last EventID, 271, does not fit 8 bits.
    let many = GuestMsiState {
        vectors_log2: 5,
        data: 240,
        ..good
    };
    let (message, held) = many.physical(&TARGET);
    assert_eq!(held, Some(HeldReason::EventOutOfRange { event: 271 }));
    assert!(!message.enable);
    // Disabled by the guest: nothing is held against its wish.
    let off = GuestMsiState {
        enabled: false,
        ..bad
    };
    assert_eq!(off.physical(&TARGET).1, None);
}

#[test]
fn reprogramming_masks_the_entry_while_its_message_changes() {
    let base = PhysAddr(0x1000_0020);
    let w = |offset: u64, value: u32| TableWrite {
        address: PhysAddr(0x1000_0020 + offset),
        value,
    };
    let live = |data| PhysicalVector {
        address: PhysAddr(0x0809_0040),
        data,
        masked: false,
    };
    let masked = |data| PhysicalVector {
        masked: true,
        ..live(data)
    };
    // Unknown before: mask, the whole message, then the control asked for.
    assert_eq!(
        reprogram(base, None, live(5)),
        [w(12, 1), w(0, 0x0809_0040), w(4, 0), w(8, 5), w(12, 0)]
    );
    assert_eq!(
        reprogram(base, None, masked(5)),
        [w(12, 1), w(0, 0x0809_0040), w(4, 0), w(8, 5)]
    );
    // Only the mask changes: one write.
    assert_eq!(reprogram(base, Some(masked(5)), live(5)), [w(12, 0)]);
    assert_eq!(reprogram(base, Some(live(5)), masked(5)), [w(12, 1)]);
    // The data of a live entry changes: masked around it.
    assert_eq!(
        reprogram(base, Some(live(5)), live(6)),
        [w(12, 1), w(0, 0x0809_0040), w(4, 0), w(8, 6), w(12, 0)]
    );
    // Of a masked entry: no mask write needed.
    assert_eq!(
        reprogram(base, Some(masked(5)), masked(6)),
        [w(0, 0x0809_0040), w(4, 0), w(8, 6)]
    );
    assert!(reprogram(base, Some(live(5)), live(5)).is_empty());
}

#[test]
fn guest_table_writes_reach_the_device_as_physical_doorbell_and_eventid() {
    let (_, devices, mut bridge) = decoding();
    let table = e1000e_table(&devices);
    let e1000e = virt("00:01.0");
    let mut device = FakeTable::default();
    // As Linux's __pci_write_msi_msg: 32-bit writes, vector masked.
    let vector2 = 2 * 16;
    for (offset, value) in [(0, 0x0809_0040u64), (4, 0), (8, 0x12)] {
        if let Some(p) = guest_write(&mut bridge, vector2 + offset, Word, value) {
            assert!(p.physical.masked);
            device.apply(&p.writes, &[]);
        }
    }
    let unmask = guest_write(&mut bridge, vector2 + 12, Word, 0).unwrap();
    assert_eq!(unmask.held, None);
    assert_eq!(
        unmask.writes,
        [TableWrite {
            address: PhysAddr(table + vector2 + 12),
            value: 0
        }]
    );
    device.apply(&unmask.writes, &[(0x0809_0040, 0x12)]);
    let at = |o: u64| device.dwords.get(&(table + vector2 + o)).copied();
    assert_eq!(
        [at(0), at(4), at(8), at(12)],
        [Some(0x0809_0040), Some(0), Some(0x12), Some(0)]
    );
    // The guest reads back exactly what it wrote, in dwords and qwords.
    assert_eq!(
        bridge.msix_table_read(e1000e, vector2, Word),
        Ok(0x0809_0040)
    );
    assert_eq!(
        bridge.msix_table_read(e1000e, vector2 + 8, Double),
        Ok(0x12)
    );
    // Masking it again is one write.
    let mask = guest_write(&mut bridge, vector2 + 12, Word, 1).unwrap();
    assert_eq!(mask.writes.len(), 1);
    assert_eq!(bridge.msix_table_read(e1000e, vector2 + 12, Word), Ok(1));
}

#[test]
fn qword_table_writes_are_emulated_too() {
    let (_, _, mut bridge) = decoding();
    let e1000e = virt("00:01.0");
    guest_write(&mut bridge, 16, Double, 0x0809_0040);
    let p = guest_write(&mut bridge, 24, Double, 0x0000_0000_0000_0009).unwrap();
    assert_eq!(p.guest, entry(0x0809_0040, 9, false));
    assert_eq!((p.physical.data, p.physical.masked), (9, false));
    assert_eq!(bridge.msix_table_read(e1000e, 16, Double), Ok(0x0809_0040));
    assert_eq!(bridge.msix_table_read(e1000e, 24, Double), Ok(9));
}

#[test]
fn a_bad_guest_address_is_held_masked_and_reported_once_per_life() {
    let (mut bus, _, mut bridge) = decoding();
    guest_write(&mut bridge, 0, Word, 0x5000_0000);
    let first = guest_write(&mut bridge, 12, Word, 0).unwrap();
    assert_eq!(
        first.held,
        Some(HeldReason::NotTheDoorbell {
            address: 0x5000_0000
        })
    );
    assert!(first.first_hold && first.physical.masked);
    // The guest still reads what it wrote.
    assert_eq!(
        bridge.msix_table_read(virt("00:01.0"), 0, Word),
        Ok(0x5000_0000)
    );
    guest_write(&mut bridge, 16, Word, 0x6000_0000);
    let second = guest_write(&mut bridge, 28, Word, 0).unwrap();
    assert!(second.held.is_some() && !second.first_hold);
    // Pointing it at the doorbell releases it.
    let fixed = guest_write(&mut bridge, 0, Word, 0x0809_0040).unwrap();
    assert_eq!((fixed.held, fixed.physical.masked), (None, false));
    bridge.reset(&mut bus);
    bridge
        .config_write(&mut bus, at("00:01.0", 0x04), Half, 0x6)
        .unwrap();
    guest_write(&mut bridge, 0, Word, 0x5000_0000);
    assert!(guest_write(&mut bridge, 12, Word, 0).unwrap().first_hold);
}

#[test]
fn with_decode_off_nothing_is_written_and_decode_on_rewrites_the_whole_table() {
    let (mut bus, devices, mut bridge) = setup();
    let e1000e = virt("00:01.0");
    // The guest cannot reach the table with decode off, but a sync or a
    // program then must not write either.
    bridge
        .msix_table_write(e1000e, 12, Word, 0)
        .unwrap()
        .unwrap();
    assert_eq!(bridge.msix_program(e1000e, 0, &TARGET), None);
    assert!(bridge.msix_sync(e1000e, &TARGET).is_empty());
    bridge
        .config_write(&mut bus, at("00:01.0", 0x04), Half, 0x2)
        .unwrap();
    let programs = bridge.msix_sync(e1000e, &TARGET);
    assert_eq!(programs.len(), 5);
    let table = e1000e_table(&devices);
    let mut device = FakeTable::default();
    for p in &programs {
        device.apply(&p.writes, &[]);
        // Every entry written whole: mask, message, control.
        assert_eq!(p.writes.len(), 4, "vector {}", p.vector);
        assert_eq!(
            p.writes[0].address.raw(),
            table + u64::from(p.vector) * 16 + 12
        );
    }
    // Vector 0 is unmasked with address 0: held; the others masked by the guest.
    assert!(programs[0].held.is_some() && programs[0].physical.masked);
    // A second sync forgets nothing it should not: still a full rewrite.
    assert_eq!(bridge.msix_sync(e1000e, &TARGET)[1].writes.len(), 4);
}

#[test]
fn stop_and_reset_mask_every_physical_vector_while_decode_is_on() {
    let (_, devices, mut bridge) = decoding();
    let table = e1000e_table(&devices);
    let writes = bridge.msix_mask_all();
    let addresses: Vec<u64> = writes.iter().map(|w| w.address.raw()).collect();
    assert_eq!(
        addresses,
        (0..5).map(|v| table + v * 16 + 12).collect::<Vec<_>>()
    );
    assert!(writes.iter().all(|w| w.value == 1));
    // Without decode the table is out of reach: nothing to write.
    let (_, _, mut quiet) = setup();
    assert!(quiet.msix_mask_all().is_empty());
}

#[test]
fn the_page_around_the_table_is_table_pending_bits_or_device() {
    let (_, _, bridge) = setup_with(&[("00:00.0", "00:01.0"), ("00:01.0", "00:03.0")]);
    let virtio = virt("00:00.0");
    // virtio-net: 3 vectors at BAR1 + 0, PBA at BAR1 + 0x800, same page.
    assert_eq!(
        bridge.msix_page_region(virtio, 0x2c),
        Some(MsixPageRegion::Table)
    );
    assert_eq!(
        bridge.msix_page_region(virtio, 0x30),
        Some(MsixPageRegion::Device)
    );
    assert_eq!(
        bridge.msix_page_region(virtio, 0x800),
        Some(MsixPageRegion::PendingBits)
    );
    assert_eq!(
        bridge.msix_page_region(virtio, 0x807),
        Some(MsixPageRegion::PendingBits)
    );
    assert_eq!(
        bridge.msix_page_region(virtio, 0x808),
        Some(MsixPageRegion::Device)
    );
    // e1000e: the table fills 0x50 of its page; the PBA is a page further.
    let e1000e = virt("00:01.0");
    assert_eq!(
        bridge.msix_page_region(e1000e, 0x4c),
        Some(MsixPageRegion::Table)
    );
    assert_eq!(
        bridge.msix_page_region(e1000e, 0x50),
        Some(MsixPageRegion::Device)
    );
    assert_eq!(
        bridge.msix_page_region(e1000e, 0x2000),
        Some(MsixPageRegion::PendingBits)
    );
    assert_eq!(bridge.msix_page_region(virt("00:05.0"), 0), None);
}

#[test]
fn bad_table_accesses_are_refused_not_guessed() {
    let (_, _, mut bridge) = decoding();
    let e1000e = virt("00:01.0");
    for (offset, width) in [(0, Byte), (2, Half), (4, Double), (12, Double), (6, Word)] {
        assert!(bridge.msix_table_write(e1000e, offset, width, 0).is_err());
        assert!(bridge.msix_table_read(e1000e, offset, width).is_err());
    }
    // Nothing changed.
    assert_eq!(bridge.msix_entry(e1000e, 0), Some(MsixEntry::RESET));
}

#[test]
fn the_linux_sequence_enables_only_complete_vectors() {
    // pci_msix: Enable + Function Mask, mask every entry, write the
    // messages with 32-bit accesses, clear Function Mask, unmask vectors.
    let (mut bus, _, mut bridge) = decoding();
    let e1000e = virt("00:01.0");
    let control = bridge
        .config_write(&mut bus, at("00:01.0", 0xa2), Half, 0xc000)
        .unwrap()
        .unwrap();
    assert_eq!(
        control.change,
        Change::MsixControl {
            enabled: true,
            function_mask: true
        }
    );
    let mut device = FakeTable::default();
    for p in bridge.msix_sync(e1000e, &TARGET) {
        device.apply(&p.writes, &[]);
    }
    let complete: Vec<(u64, u32)> = (0..5).map(|v| (0x0809_0040, 0x20 + v)).collect();
    for v in 0..5u64 {
        let base = v * 16;
        for (offset, value) in [(12, 1), (0, 0x0809_0040), (4, 0), (8, 0x20 + v)] {
            if let Some(p) = guest_write(&mut bridge, base + offset, Word, value) {
                device.apply(&p.writes, &complete);
            }
            // Linux reads the data back to flush the write.
            let _ = bridge.msix_table_read(e1000e, base + 8, Word);
        }
    }
    bridge
        .config_write(&mut bus, at("00:01.0", 0xa2), Half, 0x8000)
        .unwrap();
    for v in 0..5u64 {
        let p = guest_write(&mut bridge, v * 16 + 12, Word, 0).unwrap();
        assert_eq!(p.held, None);
        device.apply(&p.writes, &complete);
    }
    for v in 0..5u16 {
        assert_eq!(
            bridge.msix_entry(e1000e, v),
            Some(entry(0x0809_0040, 0x20 + u32::from(v), false))
        );
    }
}
