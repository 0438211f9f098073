//! The capability walk and the MSI, MSI-X and PCIe decoders.

use alloc::vec::Vec;

use super::fake::*;
use crate::pci::regs::cap_id;
use crate::pci::*;

fn bdf(text: &str) -> Bdf {
    text.parse().expect("test BDF")
}

fn ids(entries: &[CapabilityEntry]) -> Vec<(u8, u8)> {
    entries.iter().map(|e| (e.id, e.offset)).collect()
}

#[test]
fn the_walk_lists_e1000e_capabilities_in_list_order() {
    let bus = qemu_virt_bus();
    let caps = walk_capabilities(&bus, bdf("00:03.0"));
    assert_eq!(
        ids(&caps),
        [(0x01, 0xc8), (0x05, 0xd0), (0x10, 0xe0), (0x11, 0xa0)]
    );
}

#[test]
fn a_function_without_the_status_bit_has_no_capabilities() {
    let mut bus = qemu_virt_bus();
    bus.function_mut("00:03.0").set(0x04, 0);
    assert!(walk_capabilities(&bus, bdf("00:03.0")).is_empty());
    assert!(walk_capabilities(&bus, bdf("00:1f.0")).is_empty());
}

#[test]
fn a_looping_capability_list_ends_at_the_first_repeat() {
    let mut bus = qemu_virt_bus();
    // MSI-X at 0xa0 points back to PM at 0xc8.
    let e1000e = bus.function_mut("00:03.0");
    let header = e1000e.get(0xa0);
    e1000e.set(0xa0, header & !0xff00 | 0xc8 << 8);
    let caps = walk_capabilities(&bus, bdf("00:03.0"));
    assert_eq!(
        ids(&caps),
        [(0x01, 0xc8), (0x05, 0xd0), (0x10, 0xe0), (0x11, 0xa0)]
    );
}

#[test]
fn a_capability_pointing_at_itself_is_listed_once() {
    let mut bus = qemu_virt_bus();
    let edu = bus.function_mut("00:02.0");
    let header = edu.get(0x40);
    edu.set(0x40, header | 0x40 << 8);
    assert_eq!(
        ids(&walk_capabilities(&bus, bdf("00:02.0"))),
        [(0x05, 0x40)]
    );
}

#[test]
fn every_possible_list_ends_within_48_entries() {
    // Each dword's next pointer is the following dword, wrapping at the end:
    // the longest loop-free list there is.
    let mut f = FakeFunction::new(0x1234, 0x1, 0, 0);
    f.set(0x04, 1 << 20);
    f.set(0x34, 0x40);
    for offset in (0x40u16..0x100).step_by(4) {
        let next = if offset == 0xfc { 0x40 } else { offset + 4 };
        f.set(offset, u32::from(next) << 8 | 0x09);
    }
    let bus = FakeConfigSpace::default().with("00:02.0", f);
    assert_eq!(walk_capabilities(&bus, bdf("00:02.0")).len(), 48);
}

#[test]
fn a_pointer_into_the_header_ends_the_walk() {
    let mut bus = qemu_virt_bus();
    let edu = bus.function_mut("00:02.0");
    let header = edu.get(0x40);
    edu.set(0x40, header | 0x10 << 8);
    assert_eq!(
        ids(&walk_capabilities(&bus, bdf("00:02.0"))),
        [(0x05, 0x40)]
    );
}

#[test]
fn edu_has_a_64_bit_single_vector_msi_without_masking() {
    let bus = qemu_virt_bus();
    let caps = Capabilities::read(&bus, bdf("00:02.0")).unwrap();
    let msi = caps.msi.unwrap();
    assert_eq!(
        msi,
        MsiCapability {
            offset: 0x40,
            address_64: true,
            per_vector_mask: false,
            vectors_log2: 0
        }
    );
    assert_eq!(
        (msi.data_offset(), msi.mask_offset(), msi.len()),
        (0x0c, None, 0x10)
    );
    assert_eq!((caps.msix, caps.pcie), (None, None));
}

#[test]
fn msi_layout_of_a_32_bit_function_with_masking() {
    let msi = MsiCapability::parse(0x50, (1 << 8 | 3 << 1) << 16 | 0x05);
    assert!(!msi.address_64 && msi.per_vector_mask);
    assert_eq!(msi.vectors_log2, 3);
    assert_eq!(
        (msi.data_offset(), msi.mask_offset(), msi.pending_offset()),
        (0x08, Some(0x0c), Some(0x10))
    );
    assert_eq!(msi.len(), 0x14);
    // Reserved Multiple Message Capable values mean at most 32 vectors.
    assert_eq!(MsiCapability::parse(0x50, (7 << 1) << 16).vectors_log2, 5);
}

#[test]
fn e1000e_has_five_msix_vectors_with_table_and_pba_in_bar3() {
    let bus = qemu_virt_bus();
    let caps = Capabilities::read(&bus, bdf("00:03.0")).unwrap();
    let msix = caps.msix.unwrap();
    assert_eq!(msix.table_size, 5);
    assert_eq!(
        msix.table,
        BarRegion {
            bar: 3,
            offset: 0,
            size: 80
        }
    );
    assert_eq!(
        msix.pba,
        BarRegion {
            bar: 3,
            offset: 0x2000,
            size: 8
        }
    );
    let pcie = caps.pcie.unwrap();
    assert_eq!((pcie.offset, pcie.version, pcie.port_type), (0xe0, 2, 0));
    assert!(caps.msi.is_some());
}

#[test]
fn virtio_net_has_msix_in_bar1_and_its_vendor_capabilities() {
    let bus = qemu_virt_bus();
    let caps = Capabilities::read(&bus, bdf("00:01.0")).unwrap();
    let msix = caps.msix.unwrap();
    assert_eq!(
        (msix.table_size, msix.table.bar, msix.pba.offset),
        (3, 1, 0x800)
    );
    let vendor = caps.list.iter().filter(|c| c.id == cap_id::VENDOR).count();
    assert_eq!(vendor, 5);
}

#[test]
fn a_reserved_msix_bir_is_an_error() {
    let mut bus = qemu_virt_bus();
    bus.function_mut("00:03.0").set(0xa4, 0x0000_0006);
    let err = Capabilities::read(&bus, bdf("00:03.0")).unwrap_err();
    assert!(
        matches!(err, PciError::BadCapability { id: 0x11, .. }),
        "{err:?}"
    );
}

#[test]
fn programming_msi_writes_the_message_and_then_enables() {
    let mut bus = qemu_virt_bus();
    let edu = bdf("00:02.0");
    let msi = Capabilities::read(&bus, edu).unwrap().msi.unwrap();
    let message = MsiMessage {
        address: 0x0809_0040,
        data: 7,
        vectors_log2: 0,
        mask: 0,
        enable: true,
    };
    bus.log.borrow_mut().clear();
    msi.program(&mut bus, edu, &message).unwrap();
    let f = bus.function("00:02.0");
    assert_eq!((f.get(0x44), f.get(0x48), f.get(0x4c)), (0x0809_0040, 0, 7));
    assert_eq!(f.get(0x40) >> 16 & 1, 1);
    // The enable bit is the last thing written.
    let writes = bus.writes();
    assert_eq!(writes.last().map(|w| (w.1, w.2 >> 16 & 1)), Some((0x40, 1)));
    assert_eq!(
        writes.first().map(|w| (w.1, w.2 >> 16 & 1)),
        Some((0x40, 0))
    );
}

#[test]
fn programming_msi_refuses_what_the_function_cannot_do() {
    let mut bus = qemu_virt_bus();
    let edu = bdf("00:02.0");
    let msi = Capabilities::read(&bus, edu).unwrap().msi.unwrap();
    let two_vectors = MsiMessage {
        address: 0x0809_0040,
        vectors_log2: 1,
        ..MsiMessage::default()
    };
    assert!(msi.program(&mut bus, edu, &two_vectors).is_err());
    let narrow = MsiCapability {
        address_64: false,
        ..msi
    };
    let high = MsiMessage {
        address: 0x1_0000_0000,
        ..MsiMessage::default()
    };
    assert!(narrow.program(&mut bus, edu, &high).is_err());
}

#[test]
fn msix_control_sets_enable_and_function_mask() {
    let mut bus = qemu_virt_bus();
    let e1000e = bdf("00:03.0");
    let msix = Capabilities::read(&bus, e1000e).unwrap().msix.unwrap();
    msix.set_control(&mut bus, e1000e, true, true);
    assert_eq!(bus.function("00:03.0").get(0xa0) >> 30, 0b11);
    msix.set_control(&mut bus, e1000e, true, false);
    let header = bus.function("00:03.0").get(0xa0);
    assert_eq!(header >> 30, 0b10);
    assert_eq!(header >> 16 & 0x7ff, 4);
}
