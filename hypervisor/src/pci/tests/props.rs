//! Arbitrary guest accesses: no panic, and nothing reaches a function that
//! is not assigned, or any register of an assigned one but COMMAND/STATUS.

use proptest::prelude::*;

use super::msix::TARGET;
use super::vbridge::{bdf, setup, virt};
use crate::pci::regs;
use crate::pci::{Change, VirtBdf};
use crate::vits::AccessWidth;

fn width() -> impl Strategy<Value = AccessWidth> {
    prop_oneof![
        Just(AccessWidth::Byte),
        Just(AccessWidth::Half),
        Just(AccessWidth::Word),
        Just(AccessWidth::Double),
    ]
}

/// Offsets anywhere, in the window, and in the assigned functions' space.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0..(3u64 << 20),
        (0u64..0x1000),
        (0x8000u64..0x9000),
        (0x40u64..0x100).prop_map(|o| 0x8000 + o),
        // The headers (COMMAND, BARs) of both assigned functions, often.
        (prop_oneof![Just(0u64), Just(0x8000)], 0u64..0x40).prop_map(|(base, o)| base + o),
        (prop_oneof![Just(0u64), Just(0x8000)], 0u64..0x40).prop_map(|(base, o)| base + o),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Read(u64, AccessWidth),
    Write(u64, AccessWidth, u64),
    TableRead(VirtBdf, u64, AccessWidth),
    TableWrite(VirtBdf, u64, AccessWidth, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let device = prop_oneof![
        Just(virt("00:00.0")),
        Just(virt("00:01.0")),
        Just(virt("00:02.0"))
    ];
    prop_oneof![
        (offset(), width()).prop_map(|(o, w)| Op::Read(o, w)),
        (offset(), width(), any::<u64>()).prop_map(|(o, w, v)| Op::Write(o, w, v)),
        // Memory decode and bus mastering on, so BAR mappings come into play.
        prop_oneof![Just(0u64), Just(0x8000)].prop_map(|base| Op::Write(
            base + 4,
            AccessWidth::Half,
            0x6
        )),
        (device.clone(), 0u64..0x3000, width()).prop_map(|(d, o, w)| Op::TableRead(d, o, w)),
        (
            device,
            prop_oneof![any::<u64>(), 0u64..0x100],
            width(),
            any::<u64>()
        )
            .prop_map(|(d, o, w, v)| Op::TableWrite(d, o, w, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn guest_config_accesses_never_panic_nor_reach_unassigned_functions(ops in prop::collection::vec(op(), 1..64)) {
        let (mut bus, devices, mut bridge) = setup();
        let unassigned = [bdf("00:00.0"), bdf("00:01.0"), bdf("00:04.0"), bdf("00:04.1")];
        for op in ops {
            match op {
                Op::Read(o, w) => {
                    if let Ok(value) = bridge.config_read(&bus, o, w) {
                        let bits = match w {
                            AccessWidth::Byte => 8,
                            AccessWidth::Half => 16,
                            _ => 32,
                        };
                        prop_assert!(u64::from(value) < 1u64 << bits, "{value:#x} wider than {bits} bits");
                    }
                }
                Op::Write(o, w, v) => {
                    let _ = bridge.config_write(&mut bus, o, w, v);
                }
                Op::TableRead(d, o, w) => {
                    let _ = bridge.msix_table_read(d, o, w);
                }
                Op::TableWrite(d, o, w, v) => {
                    let Ok(Some(event)) = bridge.msix_table_write(d, o, w, v) else {
                        continue;
                    };
                    let Change::MsixVector { vector, .. } = event.change else {
                        continue;
                    };
                    // What the device is given: only ever the physical
                    // doorbell, live only for a vector the guest unmasked
                    // at its own doorbell with an EventID the ITT holds,
                    // written only inside that function's table.
                    let Some(program) = bridge.msix_program(d, vector, &TARGET) else {
                        continue;
                    };
                    prop_assert_eq!(program.physical.address, TARGET.physical_doorbell);
                    if !program.physical.masked {
                        prop_assert!(!program.guest.masked);
                        prop_assert_eq!(program.guest.address, TARGET.guest_doorbell);
                        prop_assert!(program.guest.data < 1 << TARGET.event_bits);
                    }
                    let device = devices.iter().find(|x| Some(x.bdf()) == bridge.physical(d));
                    let table = device.and_then(|x| {
                        let t = x.capabilities.msix?.table;
                        Some(x.bar(t.bar)?.cpu_address?.raw() + u64::from(t.offset))
                    });
                    let Some(table) = table else {
                        prop_assert!(false, "a program for {d:?} without a table");
                        continue;
                    };
                    for write in &program.writes {
                        let entry = table + u64::from(vector) * 16;
                        prop_assert!((entry..entry + 16).contains(&write.address.raw()), "{write:?}");
                    }
                }
            }
        }
        for touched in bus.touched() {
            prop_assert!(!unassigned.contains(&touched), "touched {touched}");
        }
        for (target, offset, _) in bus.writes() {
            prop_assert_eq!(offset, regs::COMMAND_STATUS, "wrote {} at {:#x}", target, offset);
        }
        // No mapping ever exposes the pages of a physical MSI-X table.
        for device in &devices {
            let Some(table) = device.capabilities.msix.map(|m| m.table) else {
                continue;
            };
            let Some(base) = device.bar(table.bar).and_then(|b| b.cpu_address) else {
                continue;
            };
            let start = base.raw() + u64::from(table.offset) / 4096 * 4096;
            let end = (base.raw() + u64::from(table.offset + table.size)).div_ceil(4096) * 4096;
            for m in bridge.mappings() {
                let (a, b) = (m.host.raw(), m.host.raw() + m.guest.size);
                prop_assert!(b <= start || end <= a, "{m:?} exposes {}'s MSI-X table", device.bdf());
            }
        }
    }

    #[test]
    fn absent_functions_read_all_ones_of_the_access_width(device in 2u8..32, function in 0u8..8, register in 0u16..0x1000) {
        let (bus, _, bridge) = setup();
        let offset = u64::from(device) << 15 | u64::from(function) << 12 | u64::from(register & !3);
        prop_assert_eq!(bridge.config_read(&bus, offset, AccessWidth::Word), Ok(0xffff_ffff));
        prop_assert_eq!(bridge.config_read(&bus, offset, AccessWidth::Byte), Ok(0xff));
        prop_assert!(bus.log.borrow().is_empty());
    }
}
