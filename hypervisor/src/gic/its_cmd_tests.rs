//! Host tests of the ITS command codec: every layout pinned bit by bit
//! against IHI 0069, 5.3, written as literals independent of the encoder.

use super::*;
use proptest::prelude::*;

const DEV: u32 = 0xdead_beef;
const EV: u32 = 0x1234_5678;

fn roundtrip(cmd: ItsCommand) -> [u64; 4] {
    let raw = cmd.encode();
    assert_eq!(ItsCommand::decode(raw), Ok(cmd), "{raw:#x?}");
    raw
}

fn roundtrip_v41(cmd: ItsCommand) -> [u64; 4] {
    let raw = cmd.encode();
    assert_eq!(ItsCommand::decode_v41(raw), Ok(cmd), "{raw:#x?}");
    raw
}

#[test]
fn mapd_places_deviceid_size_itt_and_valid() {
    let cmd = ItsCommand::Mapd {
        device_id: DEV,
        size: 4,
        itt_addr: 0x8765_4300,
        valid: true,
    };
    assert_eq!(
        roundtrip(cmd),
        [0xdead_beef_0000_0008, 0x4, 0x8000_0000_8765_4300, 0]
    );
}

#[test]
fn mapd_with_maximum_ids_and_highest_256_byte_aligned_itt() {
    let cmd = ItsCommand::Mapd {
        device_id: u32::MAX,
        size: 31,
        itt_addr: 0x000f_ffff_ffff_ff00,
        valid: true,
    };
    assert_eq!(
        roundtrip(cmd),
        [0xffff_ffff_0000_0008, 0x1f, 0x800f_ffff_ffff_ff00, 0]
    );
}

#[test]
fn mapd_masks_unaligned_itt_and_oversized_size() {
    let cmd = ItsCommand::Mapd {
        device_id: 1,
        size: 0xff,
        itt_addr: u64::MAX,
        valid: false,
    };
    assert_eq!(
        cmd.encode(),
        [0x0000_0001_0000_0008, 0x1f, 0x000f_ffff_ffff_ff00, 0]
    );
}

#[test]
fn mapc_with_processor_number_rdbase() {
    let cmd = ItsCommand::Mapc {
        icid: 0xabcd,
        rdbase: RdBase::processor(3),
        valid: true,
    };
    assert_eq!(roundtrip(cmd), [0x09, 0, 0x8000_0000_0003_abcd, 0]);
}

#[test]
fn mapc_with_address_rdbase() {
    let rdbase = RdBase::from_address(PhysAddr(0x080a_0000)).expect("64K aligned");
    assert_eq!(rdbase, RdBase(0x80a));
    assert_eq!(rdbase.address(), PhysAddr(0x080a_0000));
    let cmd = ItsCommand::Mapc {
        icid: 1,
        rdbase,
        valid: true,
    };
    assert_eq!(roundtrip(cmd), [0x09, 0, 0x8000_0000_080a_0001, 0]);
}

#[test]
fn rdbase_address_form_rejects_unaligned_and_too_wide_addresses() {
    assert_eq!(RdBase::from_address(PhysAddr(0x080a_8000)), None);
    assert_eq!(RdBase::from_address(PhysAddr(1 << 52)), None);
    let top = RdBase::from_address(PhysAddr(0x000f_ffff_ffff_0000)).expect("fits");
    assert_eq!(top.address(), PhysAddr(0x000f_ffff_ffff_0000));
}

#[test]
fn rdbase_is_masked_to_36_bits() {
    let cmd = ItsCommand::Sync {
        rdbase: RdBase(u64::MAX),
    };
    assert_eq!(cmd.encode(), [0x05, 0, 0x000f_ffff_ffff_0000, 0]);
}

#[test]
fn mapti_places_event_pintid_and_icid() {
    let cmd = ItsCommand::Mapti {
        device_id: DEV,
        event_id: EV,
        intid: 8192,
        icid: 7,
    };
    assert_eq!(
        roundtrip(cmd),
        [0xdead_beef_0000_000a, 0x0000_2000_1234_5678, 0x7, 0]
    );
}

#[test]
fn mapti_with_maximum_eventid_and_intid() {
    let cmd = ItsCommand::Mapti {
        device_id: u32::MAX,
        event_id: u32::MAX,
        intid: u32::MAX,
        icid: u16::MAX,
    };
    assert_eq!(roundtrip(cmd), [0xffff_ffff_0000_000a, u64::MAX, 0xffff, 0]);
}

#[test]
fn mapi_and_movi_place_event_and_icid() {
    let mapi = ItsCommand::Mapi {
        device_id: DEV,
        event_id: EV,
        icid: 0x22,
    };
    assert_eq!(
        roundtrip(mapi),
        [0xdead_beef_0000_000b, 0x1234_5678, 0x22, 0]
    );
    let movi = ItsCommand::Movi {
        device_id: DEV,
        event_id: EV,
        icid: 0x33,
    };
    assert_eq!(
        roundtrip(movi),
        [0xdead_beef_0000_0001, 0x1234_5678, 0x33, 0]
    );
}

#[test]
fn device_event_commands_use_their_own_numbers() {
    let d = DEV;
    let e = EV;
    let cases = [
        (
            ItsCommand::Int {
                device_id: d,
                event_id: e,
            },
            0x03,
        ),
        (
            ItsCommand::Clear {
                device_id: d,
                event_id: e,
            },
            0x04,
        ),
        (
            ItsCommand::Discard {
                device_id: d,
                event_id: e,
            },
            0x0f,
        ),
        (
            ItsCommand::Inv {
                device_id: d,
                event_id: e,
            },
            0x0c,
        ),
    ];
    for (cmd, op) in cases {
        assert_eq!(
            roundtrip(cmd),
            [0xdead_beef_0000_0000 | op, 0x1234_5678, 0, 0]
        );
    }
}

#[test]
fn invall_movall_and_sync_place_their_targets() {
    assert_eq!(
        roundtrip(ItsCommand::Invall { icid: 0xfffe }),
        [0x0d, 0, 0xfffe, 0]
    );
    let movall = ItsCommand::Movall {
        rdbase1: RdBase(1),
        rdbase2: RdBase(0xf_ffff_ffff),
    };
    assert_eq!(
        roundtrip(movall),
        [0x0e, 0, 0x1_0000, 0x000f_ffff_ffff_0000]
    );
    let sync = ItsCommand::Sync {
        rdbase: RdBase::processor(2),
    };
    assert_eq!(roundtrip(sync), [0x05, 0, 0x2_0000, 0]);
}

#[test]
fn vmapp_v40_layout() {
    let cmd = ItsCommand::Vmapp {
        vpe_id: 0x1234,
        rdbase: RdBase::processor(5),
        vpt_addr: 0x4_5678_0000,
        vpt_size: 15,
        valid: true,
    };
    assert_eq!(
        roundtrip(cmd),
        [
            0x29,
            0x0000_1234_0000_0000,
            0x8000_0000_0005_0000,
            0x0000_0004_5678_000f
        ]
    );
}

#[test]
fn vmapp_v40_vpt_size_is_five_bits() {
    let cmd = ItsCommand::Vmapp {
        vpe_id: 0,
        rdbase: RdBase(0),
        vpt_addr: 0x1_ffff,
        vpt_size: 0xff,
        valid: false,
    };
    assert_eq!(cmd.encode()[3], 0x0000_0000_0001_001f);
}

#[test]
fn vmapp_v41_layout() {
    let cmd = ItsCommand::Vmapp41 {
        vpe_id: 0xbeef,
        rdbase: RdBase::processor(1),
        vpt_addr: 0x8_0000_0000,
        vpt_size: 0xc7,
        vconf_addr: 0x9_0001_0000,
        default_db: 8200,
        ptz: true,
        alloc: true,
        valid: true,
    };
    assert_eq!(
        roundtrip_v41(cmd),
        [
            0x0000_0009_0001_0329,
            0x0000_beef_0000_2008,
            0x8000_0000_0001_0000,
            0x0000_0008_0000_00c7,
        ]
    );
}

#[test]
fn vmapti_vmapi_with_no_doorbell() {
    let vmapti = ItsCommand::Vmapti {
        device_id: DEV,
        event_id: EV,
        vpe_id: 9,
        vintid: 8195,
        db_intid: NO_DOORBELL,
    };
    assert_eq!(
        roundtrip(vmapti),
        [
            0xdead_beef_0000_002a,
            0x0000_0009_1234_5678,
            0x0000_03ff_0000_2003,
            0
        ]
    );
    let vmapi = ItsCommand::Vmapi {
        device_id: DEV,
        event_id: EV,
        vpe_id: 9,
        db_intid: NO_DOORBELL,
    };
    assert_eq!(
        roundtrip(vmapi),
        [
            0xdead_beef_0000_002b,
            0x0000_0009_1234_5678,
            0x0000_03ff_0000_0000,
            0
        ]
    );
}

#[test]
fn vmovi_places_doorbell_and_d_bit() {
    let cmd = ItsCommand::Vmovi {
        device_id: DEV,
        event_id: EV,
        vpe_id: 0xffff,
        db_intid: 8300,
        db_valid: true,
    };
    assert_eq!(
        roundtrip(cmd),
        [
            0xdead_beef_0000_0021,
            0x0000_ffff_1234_5678,
            0x0000_206c_0000_0001,
            0
        ]
    );
}

#[test]
fn vmovp_v40_layout() {
    let cmd = ItsCommand::Vmovp {
        vpe_id: 3,
        rdbase: RdBase::processor(4),
        seq_num: 0xaaaa,
        its_list: 0x5555,
    };
    assert_eq!(
        roundtrip(cmd),
        [0x0000_aaaa_0000_0022, 0x0000_0003_0000_5555, 0x4_0000, 0]
    );
}

#[test]
fn vmovp_v41_layout_adds_default_doorbell() {
    let cmd = ItsCommand::Vmovp41 {
        vpe_id: 3,
        rdbase: RdBase::processor(4),
        seq_num: 0,
        its_list: 0,
        default_db: 0xffff_ffff,
        db_valid: true,
    };
    assert_eq!(
        roundtrip_v41(cmd),
        [
            0x22,
            0x0000_0003_0000_0000,
            0x8000_0000_0004_0000,
            0xffff_ffff
        ]
    );
}

#[test]
fn vpe_only_commands_place_vpeid() {
    assert_eq!(
        roundtrip(ItsCommand::Vsync { vpe_id: 0x77 }),
        [0x25, 0x77 << 32, 0, 0]
    );
    assert_eq!(
        roundtrip(ItsCommand::Vinvall { vpe_id: 0x78 }),
        [0x2d, 0x78 << 32, 0, 0]
    );
    assert_eq!(
        roundtrip(ItsCommand::Invdb { vpe_id: 0x79 }),
        [0x2e, 0x79 << 32, 0, 0]
    );
}

#[test]
fn vsgi_layout_keeps_priority_top_nibble() {
    let cmd = ItsCommand::Vsgi {
        vpe_id: 2,
        sgi: 15,
        priority: 0xa0,
        group: true,
        enable: true,
        clear: false,
    };
    assert_eq!(
        roundtrip(cmd),
        [0x0000_000f_00a0_0523, 0x0000_0002_0000_0000, 0, 0]
    );
    let low_nibble = ItsCommand::Vsgi {
        vpe_id: 2,
        sgi: 15,
        priority: 0xaf,
        group: true,
        enable: true,
        clear: true,
    };
    assert_eq!(low_nibble.encode()[0], 0x0000_000f_00a0_0723);
}

#[test]
fn decode_rejects_unknown_command_numbers() {
    for op in [0x00u8, 0x02, 0x06, 0x07, 0x10, 0x20, 0x24, 0x2c, 0x2f, 0xff] {
        assert_eq!(
            ItsCommand::decode([op as u64, 0, 0, 0]),
            Err(DecodeError::UnknownOpcode(op))
        );
        assert_eq!(
            ItsCommand::decode_v41([op as u64, 0, 0, 0]),
            Err(DecodeError::UnknownOpcode(op))
        );
        assert_eq!(opcode_name(op), None);
    }
}

#[test]
fn decode_ignores_res0_bits() {
    let raw = [
        0x0000_0005_ffff_ff0c | 0xff00,
        0xffff_ffff_0000_0007,
        u64::MAX,
        u64::MAX,
    ];
    assert_eq!(
        ItsCommand::decode(raw),
        Ok(ItsCommand::Inv {
            device_id: 5,
            event_id: 7
        })
    );
}

#[test]
fn decode_and_decode_v41_differ_only_for_vmapp_and_vmovp() {
    let raw = [0x29 | 0x300, 0x10, 0, 0xff];
    assert!(matches!(
        ItsCommand::decode(raw),
        Ok(ItsCommand::Vmapp { vpt_size: 0x1f, .. })
    ));
    assert!(matches!(
        ItsCommand::decode_v41(raw),
        Ok(ItsCommand::Vmapp41 {
            vpt_size: 0xff,
            ptz: true,
            alloc: true,
            default_db: 0x10,
            ..
        })
    ));
    let sync = [0x05, 0, 0x3_0000, 0];
    assert_eq!(ItsCommand::decode(sync), ItsCommand::decode_v41(sync));
}

#[test]
fn names_and_opcodes_agree() {
    let all = [
        ItsCommand::Mapd {
            device_id: 0,
            size: 0,
            itt_addr: 0,
            valid: false,
        },
        ItsCommand::Sync { rdbase: RdBase(0) },
        ItsCommand::Vsync { vpe_id: 0 },
    ];
    let names: alloc::vec::Vec<_> = all.iter().map(ItsCommand::name).collect();
    assert_eq!(names, ["MAPD", "SYNC", "VSYNC"]);
    assert!(!all[0].is_sync() && all[1].is_sync() && all[2].is_sync());
    for op in 0..=255u8 {
        if let Ok(cmd) = ItsCommand::decode([op as u64, 0, 0, 0]) {
            assert_eq!(cmd.opcode(), op);
            assert_eq!(Some(cmd.name()), opcode_name(op));
        }
    }
}

/// Every command number with the bits its layout defines (IHI 0069, 5.3),
/// for the GICv3/4.0 decoder and, where different, the GICv4.1 one.
const LAYOUTS: [(u8, [u64; 4], Option<[u64; 4]>); 21] = {
    const DEVW: u64 = 0xffff_ffff_0000_00ff;
    const OP: u64 = 0xff;
    const VPEW: u64 = 0x0000_ffff_0000_0000;
    const RDW: u64 = 0x000f_ffff_ffff_0000;
    [
        (0x08, [DEVW, 0x1f, 0x800f_ffff_ffff_ff00, 0], None),
        (0x09, [OP, 0, 0x800f_ffff_ffff_ffff, 0], None),
        (0x0a, [DEVW, u64::MAX, 0xffff, 0], None),
        (0x0b, [DEVW, 0xffff_ffff, 0xffff, 0], None),
        (0x03, [DEVW, 0xffff_ffff, 0, 0], None),
        (0x04, [DEVW, 0xffff_ffff, 0, 0], None),
        (0x0f, [DEVW, 0xffff_ffff, 0, 0], None),
        (0x0c, [DEVW, 0xffff_ffff, 0, 0], None),
        (0x0d, [OP, 0, 0xffff, 0], None),
        (0x01, [DEVW, 0xffff_ffff, 0xffff, 0], None),
        (0x0e, [OP, 0, RDW, RDW], None),
        (0x05, [OP, 0, RDW, 0], None),
        (
            0x29,
            [OP, VPEW, 0x800f_ffff_ffff_0000, 0x000f_ffff_ffff_001f],
            Some([
                0x000f_ffff_ffff_03ff,
                0x0000_ffff_ffff_ffff,
                0x800f_ffff_ffff_0000,
                0x000f_ffff_ffff_00ff,
            ]),
        ),
        (0x2a, [DEVW, 0x0000_ffff_ffff_ffff, u64::MAX, 0], None),
        (
            0x2b,
            [DEVW, 0x0000_ffff_ffff_ffff, 0xffff_ffff_0000_0000, 0],
            None,
        ),
        (
            0x21,
            [DEVW, 0x0000_ffff_ffff_ffff, 0xffff_ffff_0000_0001, 0],
            None,
        ),
        (
            0x22,
            [0x0000_ffff_0000_00ff, 0x0000_ffff_0000_ffff, RDW, 0],
            Some([
                0x0000_ffff_0000_00ff,
                0x0000_ffff_0000_ffff,
                0x800f_ffff_ffff_0000,
                0xffff_ffff,
            ]),
        ),
        (0x25, [OP, VPEW, 0, 0], None),
        (0x2d, [OP, VPEW, 0, 0], None),
        (0x23, [0x0000_000f_00f0_07ff, VPEW, 0, 0], None),
        (0x2e, [OP, VPEW, 0, 0], None),
    ]
};

fn masked(raw: [u64; 4], mask: [u64; 4]) -> [u64; 4] {
    [
        raw[0] & mask[0],
        raw[1] & mask[1],
        raw[2] & mask[2],
        raw[3] & mask[3],
    ]
}

proptest! {
    #[test]
    fn decode_never_panics_on_any_input(raw in any::<[u64; 4]>()) {
        let _ = ItsCommand::decode(raw);
        let _ = ItsCommand::decode_v41(raw);
    }

    #[test]
    fn encode_of_decode_keeps_exactly_the_layout_bits(
        index in 0..LAYOUTS.len(),
        raw in any::<[u64; 4]>(),
    ) {
        let (op, mask, mask_v41) = LAYOUTS[index];
        let raw = [(raw[0] & !0xff) | op as u64, raw[1], raw[2], raw[3]];

        let cmd = ItsCommand::decode(raw).expect("known opcode");
        prop_assert_eq!(cmd.opcode(), op);
        prop_assert_eq!(cmd.encode(), masked(raw, mask));
        prop_assert_eq!(ItsCommand::decode(cmd.encode()), Ok(cmd));

        let cmd41 = ItsCommand::decode_v41(raw).expect("known opcode");
        prop_assert_eq!(cmd41.encode(), masked(raw, mask_v41.unwrap_or(mask)));
        prop_assert_eq!(ItsCommand::decode_v41(cmd41.encode()), Ok(cmd41));
    }
}
