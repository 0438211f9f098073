//! The virtual PCIe host bridge (`pci/vbridge/`): any guest access to its
//! ECAM window and to the MSI-X tables, in any order, with resets in
//! between, against the host tests' fake QEMU bus (`pci/tests/fake.rs`):
//! edu at virtual 00:00.0, e1000e at 00:01.0 and virtio-net at 00:02.0,
//! while the host bridge function and two root ports stay with the host.
//!
//! Asserts: no configuration access ever reaches a function the partition
//! was not given (the fake bus logs every one), nor a physical BAR; a BDF
//! not assigned reads as absent; a read carries no bits beyond its width;
//! an event names an assigned device and its own physical function; the
//! BARs the guest placed map only inside its PCI windows; the MSI-X entries
//! exist only below the table size.

use hypervisor::boot::guest_fdt::{GuestPci, GuestPciWindow};
use hypervisor::mm::addr::{Ipa, Range};
use hypervisor::pci::{discover, Bdf, ConfigAccess, PciDevice, VirtBdf, VirtualHostBridge};
use hypervisor::vits::AccessWidth;

use crate::input::Input;

#[allow(dead_code)]
#[path = "../../src/pci/tests/fake.rs"]
mod fake;

use fake::{qemu_virt_bridge, qemu_virt_bus, Access, FakeConfigSpace};

/// (virtual, physical) assignments.
const ASSIGNED: [(&str, &str); 3] = [
    ("00:00.0", "00:02.0"),
    ("00:01.0", "00:03.0"),
    ("00:02.0", "00:01.0"),
];
/// The guest's windows: 32-bit at 0x2000_0000, 64-bit at a different IPA.
const MEM32: (u64, u64, u64) = (0x2000_0000, 0x1000_0000, 0x2000_0000);
const MEM64: (u64, u64, u64) = (0x100_0000_0000, 1 << 32, 0x80_0000_0000);

fn guest_pci() -> GuestPci {
    let window = |(ipa, size, pci): (u64, u64, u64)| GuestPciWindow {
        cpu: Range {
            start: Ipa(ipa),
            size,
        },
        pci_address: pci,
    };
    GuestPci {
        ecam: Range {
            start: Ipa(0x3000_0000),
            size: 2 << 20,
        },
        first_bus: 0,
        last_bus: 1,
        mem32: Some(window(MEM32)),
        mem64: Some(window(MEM64)),
        msi_base: 0,
        dma_coherent: true,
    }
}

fn width(input: &mut Input) -> AccessWidth {
    input.pick(&[
        AccessWidth::Word,
        AccessWidth::Half,
        AccessWidth::Byte,
        AccessWidth::Word,
        AccessWidth::Double,
    ])
}

fn mask(width: AccessWidth) -> u64 {
    match width {
        AccessWidth::Byte => 0xff,
        AccessWidth::Half => 0xffff,
        AccessWidth::Word => 0xffff_ffff,
        AccessWidth::Double => u64::MAX,
    }
}

/// An ECAM offset: mostly a header or capability register of one of the
/// first functions, sometimes anywhere.
fn ecam_offset(input: &mut Input) -> u64 {
    let code = input.u8();
    if code & 0x80 != 0 {
        return u64::from(input.u32()) % (3 << 20);
    }
    let function = u64::from(code & 0x1f);
    let register = u64::from(input.u8()) | u64::from(input.u8() & 0xf) << 8 & 0xf00;
    (function << 12) + register
}

/// The bus after discovery and the bridge built over it, as every input
/// starts from them (discovery probes all 256 buses: done once).
struct Setup {
    functions: std::collections::BTreeMap<Bdf, fake::FakeFunction>,
    bridge: VirtualHostBridge,
    physical: Vec<Bdf>,
    virtual_: Vec<VirtBdf>,
    programmed: Vec<u32>,
}

/// The physical BARs of `physical` as `bus` has them.
fn bars(bus: &FakeConfigSpace, physical: &[Bdf]) -> Vec<u32> {
    physical
        .iter()
        .flat_map(|&bdf| (0..6u16).map(move |i| (bdf, 0x10 + 4 * i)))
        .map(|(bdf, offset)| bus.read32(bdf, offset))
        .collect()
}

fn setup() -> Setup {
    let mut bus = qemu_virt_bus();
    let devices = discover(&mut bus, &qemu_virt_bridge()).expect("the fake bus comes up");
    let assigned: Vec<(VirtBdf, &PciDevice)> = ASSIGNED
        .iter()
        .map(|(v, p)| {
            let p: Bdf = p.parse().expect("BDF");
            (
                VirtBdf(v.parse().expect("BDF")),
                devices.iter().find(|d| d.bdf() == p).expect("device"),
            )
        })
        .collect();
    let bridge = VirtualHostBridge::new(&mut bus, &guest_pci(), &assigned).expect("bridge builds");
    let physical: Vec<Bdf> = assigned.iter().map(|(_, d)| d.bdf()).collect();
    // The physical BARs as discovery programmed them: the guest never moves them.
    let programmed = bars(&bus, &physical);
    Setup {
        functions: bus.functions.clone(),
        bridge,
        virtual_: assigned.iter().map(|(v, _)| *v).collect(),
        physical,
        programmed,
    }
}

/// One fuzz input: a sequence of guest accesses and resets.
pub fn run(data: &[u8]) {
    static SETUP: std::sync::OnceLock<Setup> = std::sync::OnceLock::new();
    let setup = SETUP.get_or_init(setup);
    let mut input = Input(data);
    let mut bus = FakeConfigSpace {
        functions: setup.functions.clone(),
        ..FakeConfigSpace::default()
    };
    let mut bridge = setup.bridge.clone();
    let (physical, virtual_) = (&setup.physical, &setup.virtual_);
    while !input.is_empty() {
        match input.u8() % 6 {
            0 | 1 => {
                let offset = ecam_offset(&mut input);
                let width = width(&mut input);
                if let Ok(value) = bridge.config_read(&bus, offset, width) {
                    assert_eq!(u64::from(value) & !mask(width), 0);
                    let bdf = Bdf::from_ecam_offset(offset, 0).map(|(b, _)| VirtBdf(b));
                    if bdf.is_some_and(|b| !virtual_.contains(&b)) {
                        assert_eq!(
                            u64::from(value),
                            mask(width),
                            "an absent function read {value:#x}"
                        );
                    }
                }
            }
            2 | 3 => {
                let offset = ecam_offset(&mut input);
                let width = width(&mut input);
                let value = input.u64();
                if let Ok(Some(event)) = bridge.config_write(&mut bus, offset, width, value) {
                    assert_eq!(bridge.physical(event.device), Some(event.physical));
                }
            }
            4 => {
                let device = VirtBdf(Bdf::from_requester_id(u16::from(input.u8() % 4) << 3));
                let at = u64::from(input.u16()) % 0x3000;
                let width = width(&mut input);
                if input.bool() {
                    if let Ok(value) = bridge.msix_table_read(device, at, width) {
                        assert_eq!(value & !mask(width), 0);
                    }
                } else if let Ok(Some(event)) =
                    bridge.msix_table_write(device, at, width, input.u64())
                {
                    assert_eq!(event.device, device);
                    assert_eq!(bridge.physical(device), Some(event.physical));
                }
            }
            _ => bridge.reset(&mut bus),
        }
        for access in bus.log.borrow().iter() {
            let (Access::Read(bdf, offset) | Access::Write(bdf, offset, _)) = *access;
            assert!(
                physical.contains(&bdf),
                "access to {bdf} not assigned: {access:?}"
            );
            if let Access::Write(_, offset @ 0x10..=0x27, _) = *access {
                panic!("write to a physical BAR at {offset:#x}: {access:?}");
            }
            let _ = offset;
        }
        bus.log.borrow_mut().clear();
        for &device in virtual_ {
            if let Some(capability) = bridge.msix_capability(device) {
                let size = capability.table_size;
                assert!(bridge.msix_entry(device, size).is_none());
            }
        }
    }
    // Once per input (they read every BAR and build every mapping).
    assert_eq!(
        bars(&bus, physical),
        setup.programmed,
        "a physical BAR moved"
    );
    for mapping in bridge.mappings() {
        let start = mapping.guest.start.raw();
        let end = start + mapping.guest.size;
        let inside = [MEM32, MEM64]
            .iter()
            .any(|&(ipa, size, _)| start >= ipa && end <= ipa + size);
        assert!(inside, "BAR mapped outside the windows: {mapping:?}");
    }
}
