//! Property tests: guest register traffic never panics and stays bounded;
//! the scheduler delivers every pending interrupt exactly once, in
//! priority order; a pending LPI exists in at most one place.

use super::*;
use crate::guest_mem::{FakeGuestMemory, GuestMemory};
use proptest::prelude::*;

/// One thing a guest or the kernel does to the vGIC.
#[derive(Clone, Debug)]
enum Op {
    Read {
        vcpu: u16,
        frame: u8,
        offset: u16,
        size: u8,
    },
    Write {
        vcpu: u16,
        frame: u8,
        offset: u16,
        size: u8,
        value: u64,
    },
    Sgi {
        vcpu: u16,
        value: u64,
    },
    Inject {
        vcpu: u16,
        intid: u32,
    },
    SetLpi {
        vcpu: u16,
        intid: u32,
    },
    MoveLpi {
        from: u16,
        to: u16,
        intid: u32,
    },
    Run {
        vcpu: u16,
        lrs: usize,
        take: usize,
        lr_noise: u64,
    },
}

/// Offsets worth hitting more often than chance would.
const HOT: [u16; 14] = [
    0x0, 0x4, 0x8, 0x14, 0x70, 0x78, 0x80, 0x104, 0x204, 0x304, 0x400, 0xc04, 0x6100, 0xffe8,
];

fn offset() -> impl Strategy<Value = u16> {
    prop_oneof![
        any::<u16>(),
        prop::sample::select(HOT.to_vec()),
        (0u16..0x80).prop_map(|i| 0x6100 + 8 * i)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop::sample::select(vec![1u8, 2, 3, 4, 8]);
    prop_oneof![
        (0u16..5, 0u8..3, offset(), size.clone()).prop_map(|(vcpu, frame, offset, size)| {
            Op::Read {
                vcpu,
                frame,
                offset,
                size,
            }
        }),
        (0u16..5, 0u8..3, offset(), size, any::<u64>()).prop_map(
            |(vcpu, frame, offset, size, value)| Op::Write {
                vcpu,
                frame,
                offset,
                size,
                value
            }
        ),
        (0u16..5, any::<u64>()).prop_map(|(vcpu, value)| Op::Sgi { vcpu, value }),
        (0u16..5, 0u32..130).prop_map(|(vcpu, intid)| Op::Inject { vcpu, intid }),
        (0u16..5, 8150u32..8300).prop_map(|(vcpu, intid)| Op::SetLpi { vcpu, intid }),
        (0u16..5, 0u16..5, 8150u32..8300).prop_map(|(from, to, intid)| Op::MoveLpi {
            from,
            to,
            intid
        }),
        (0u16..5, 0usize..6, 0usize..4, any::<u64>()).prop_map(|(vcpu, lrs, take, lr_noise)| {
            Op::Run {
                vcpu,
                lrs,
                take,
                lr_noise,
            }
        }),
    ]
}

fn frame_ipa(vcpu: u16, frame: u8, offset: u16) -> u64 {
    match frame {
        0 => GICD + u64::from(offset),
        1 => rd_frame(vcpu) + u64::from(offset),
        _ => sgi_frame(vcpu) + u64::from(offset),
    }
}

proptest! {
    #[test]
    fn random_guest_and_kernel_traffic_never_panics_and_stays_bounded(
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut g = vgic();
        let mem = FakeGuestMemory::new(Ipa(0x4000_0000), 0x1000);
        for op in ops {
            match op {
                Op::Read { vcpu, frame, offset, size } => {
                    let value = read(&mut g, vcpu, frame_ipa(vcpu, frame, offset), size);
                    if size < 8 {
                        prop_assert_eq!(value >> (8 * u32::from(size)), 0, "no bits beyond the access");
                    }
                }
                Op::Write { vcpu, frame, offset, size, value } => {
                    let actions = write(&mut g, vcpu, frame_ipa(vcpu, frame, offset), size, value);
                    prop_assert!(actions.kick.0 >> 4 == 0, "kicks name existing vCPUs");
                }
                Op::Sgi { vcpu, value } => {
                    if let Ok(actions) = g.send_sgi(VcpuIndex::new(vcpu), value) {
                        prop_assert!(actions.kick.0 >> 4 == 0);
                    }
                }
                Op::Inject { vcpu, intid } => {
                    // 1020-8191 are not INTIDs: the type refuses them before the model.
                    if let Some(intid) = VirtIntId::new(intid) {
                        let _ = g.inject(VcpuIndex::new(vcpu), intid);
                    }
                }
                Op::SetLpi { vcpu, intid } => {
                    if let (Ok(table), Some(intid)) = (g.lpi_table(VcpuIndex::new(vcpu), &mem), VirtIntId::new(intid)) {
                        let _ = g.set_lpi_pending(VcpuIndex::new(vcpu), intid, &table);
                    }
                }
                Op::MoveLpi { from, to, intid } => {
                    if let Some(intid) = VirtIntId::new(intid) {
                        let _ = g.move_lpi_pending(VcpuIndex::new(from), VcpuIndex::new(to), intid);
                    }
                }
                Op::Run { vcpu, lrs, take, lr_noise } => {
                    let Ok(image) = g.flush(VcpuIndex::new(vcpu), lrs) else { continue };
                    prop_assert!(image.used <= lrs);
                    let mut cpu = FakeCpuIf::enter(image, lrs);
                    for _ in 0..take {
                        if let Some(t) = cpu.acknowledge() {
                            if lr_noise & 1 == 0 {
                                cpu.end_of_interrupt(t.intid);
                            }
                        }
                    }
                    // A guest cannot write list registers, but fold must
                    // survive any state bits read back.
                    if lr_noise & 2 != 0 {
                        cpu.lrs[0] ^= lr_noise & (3 << 62);
                    }
                    let (read_back, hcr) = cpu.exit();
                    prop_assert!(g.fold(VcpuIndex::new(vcpu), read_back, hcr, lr_noise & vmcr::VEOIM).is_ok());
                }
            }
            prop_assert!(g.lpi_total() <= config().max_pending_lpis * 4);
            for state in &g.vcpus {
                prop_assert!(state.slots.len() <= MAX_LRS);
            }
        }
        let _ = mem.read_u64(Ipa(0x4000_0000));
    }

    #[test]
    fn the_scheduler_delivers_every_pending_interrupt_once_in_priority_order(
        picks in prop::collection::btree_map(0u32..160, any::<u8>(), 1..40),
        lrs in 1usize..5,
        takes in prop::collection::vec(1usize..4, 1..6),
    ) {
        let mut g = vgic();
        let mut mem = FakeGuestMemory::new(Ipa(0x4000_0000), 0x1000);
        write(&mut g, 0, rd_frame(0) + gicr_offset::PROPBASER, 8, 0x4000_0000 | 15);
        write(&mut g, 0, rd_frame(0), 4, 1);
        let mut expected = Vec::new();
        for (&pick, &priority) in &picks {
            // 0..96: SGIs, PPIs and SPIs; 96..160: LPIs 8192..8255.
            if pick < 96 {
                enable(&mut g, 0, pick, priority);
                inject(&mut g, 0, pick);
                expected.push(pick);
            } else {
                let intid = 8192 + pick - 96;
                mem.write(Ipa(0x4000_0000 + u64::from(pick - 96)), &[priority | 1]).unwrap();
                let table = g.lpi_table(VcpuIndex::new(0), &mem).unwrap();
                g.set_lpi_pending(VcpuIndex::new(0), VirtIntId::from_const(intid), &table).unwrap();
                expected.push(intid);
            }
        }
        let mut delivered: Vec<Taken> = Vec::new();
        for round in 0..200 {
            delivered.extend(run_guest(&mut g, 0, lrs, takes[round % takes.len()]));
        }
        let mut got: Vec<u32> = delivered.iter().map(|t| t.intid).collect();
        got.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(got, expected, "each exactly once");
        prop_assert!(delivered.windows(2).all(|w| w[0].priority <= w[1].priority), "{:?}", delivered);
        prop_assert!(!g.has_pending(VcpuIndex::new(0)));
    }

    #[test]
    fn a_pending_lpi_is_never_in_two_places_and_never_lost(
        ops in prop::collection::vec((0u8..5, 0u16..4, 0u32..4, 0usize..3), 1..120),
    ) {
        let mut g = vgic();
        let mut mem = FakeGuestMemory::new(Ipa(0x4000_0000), 0x1000);
        for v in 0..4 {
            write(&mut g, v, rd_frame(v) + gicr_offset::PROPBASER, 8, 0x4000_0000 | 15);
            write(&mut g, v, rd_frame(v), 4, 1);
        }
        for i in 0..4 {
            mem.write(Ipa(0x4000_0000 + i), &[0x41]).unwrap();
        }
        // Where the vITS routes each LPI; whether a delivery is owed (set
        // and neither cleared nor delivered since); how many sets have not
        // been matched by a delivery (a copy a running vCPU holds can still
        // be taken after a CLEAR, as on hardware, but never more often than
        // it was set).
        let mut route = [0u16; 4];
        let mut owed = [false; 4];
        let mut credits = [0u32; 4];
        let mut cpus: [Option<FakeCpuIf>; 4] = [None, None, None, None];
        for (kind, vcpu, lpi, take) in ops {
            let intid = 8192 + lpi;
            let slot = lpi as usize;
            match kind {
                0 => {
                    let table = g.lpi_table(VcpuIndex::new(route[slot]), &mem).unwrap();
                    g.set_lpi_pending(VcpuIndex::new(route[slot]), VirtIntId::from_const(intid), &table).unwrap();
                    owed[slot] = true;
                    credits[slot] += 1;
                }
                1 => {
                    g.move_lpi_pending(VcpuIndex::new(route[slot]), VcpuIndex::new(vcpu), VirtIntId::from_const(intid)).unwrap();
                    route[slot] = vcpu;
                }
                2 => {
                    g.clear_lpi_pending(VcpuIndex::new(route[slot]), VirtIntId::from_const(intid)).unwrap();
                    owed[slot] = false;
                }
                3 if cpus[usize::from(vcpu)].is_none() => {
                    let image = g.flush(VcpuIndex::new(vcpu), 2).unwrap();
                    cpus[usize::from(vcpu)] = Some(FakeCpuIf::enter(image, 2));
                }
                _ => {
                    if let Some(mut cpu) = cpus[usize::from(vcpu)].take() {
                        for _ in 0..take {
                            let Some(t) = cpu.acknowledge() else { break };
                            let i = (t.intid - 8192) as usize;
                            prop_assert!(credits[i] > 0, "LPI {} delivered twice", t.intid);
                            credits[i] -= 1;
                            owed[i] = false;
                            cpu.end_of_interrupt(t.intid);
                        }
                        let (lrs, hcr) = cpu.exit();
                        g.fold(VcpuIndex::new(vcpu), lrs, hcr, 0).unwrap();
                    }
                }
            }
            for i in 0..4u32 {
                let places = (0..4).filter(|&v| g.lpi_pending(VcpuIndex::new(v), VirtIntId::from_const(8192 + i))).count();
                prop_assert!(places <= 1, "LPI {} pending in {} places", 8192 + i, places);
            }
        }
        for (v, cpu) in cpus.iter_mut().enumerate() {
            if let Some(cpu) = cpu.take() {
                let (lrs, hcr) = cpu.exit();
                g.fold(VcpuIndex::new(v as u16), lrs, hcr, 0).unwrap();
            }
        }
        for _ in 0..4 {
            for v in 0..4 {
                for t in run_guest(&mut g, v, 2, 2) {
                    let i = (t.intid - 8192) as usize;
                    prop_assert!(credits[i] > 0, "LPI {} delivered twice", t.intid);
                    credits[i] -= 1;
                    owed[i] = false;
                }
            }
        }
        prop_assert_eq!(owed, [false; 4], "every owed LPI was delivered");
    }
}
