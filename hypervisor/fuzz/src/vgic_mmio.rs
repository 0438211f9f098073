//! The virtual GICv3 (`vgic/`): distributor and redistributor register
//! accesses at any offset, width and value, from any vCPU, mixed with what
//! the kernel does between them (interrupts injected and lines driven,
//! SGIs sent, LPIs made pending, list registers flushed before an entry and
//! folded back after an exit with whatever state the guest left in them).
//!
//! Asserts: a read returns no bits beyond its width; every vCPU a call
//! asks to kick and every hardware action names a vCPU of the partition,
//! and a physical action only a physical INTID the kernel linked; the
//! counters only grow; a flush fills at most the list registers it was
//! given, each with an interrupt of the partition at most once, leaving
//! the rest zero; the LPI pending state stays within the partition's budget.

use std::collections::BTreeSet;

use hypervisor::ids::{PhysIntId, VcpuIndex, VirtIntId};
use hypervisor::mm::Ipa;
use hypervisor::vgic::{
    Action, Actions, LpiConfig, LpiConfigSource, Vgic, VgicConfig, VgicCounters, DIST_SIZE,
    MAX_LRS, REDIST_STRIDE,
};

use crate::input::Input;

const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080a_0000;
/// PPI 27 (the virtual timer) and SPI 40 linked to physical INTIDs.
const LINKS: [(u32, u32); 2] = [(27, 27), (40, 72)];

/// Every LPI enabled at priority 0xa0, except those whose low byte is 0.
struct Properties;

impl LpiConfigSource for Properties {
    fn config(&self, intid: u32) -> Option<LpiConfig> {
        (intid & 0xff != 0).then_some(LpiConfig {
            priority: 0xa0,
            enabled: true,
        })
    }
}

fn config(input: &mut Input) -> VgicConfig {
    VgicConfig {
        num_vcpus: 1 + u16::from(input.u8() % 4),
        num_spis: input.pick(&[32, 64, 988]),
        lpi_id_bits: input.pick(&[0, 14, 16]),
        priority_bits: 5 + input.u8() % 4,
        max_pending_lpis: 4,
        dist_base: Ipa(GICD),
        redist_base: Ipa(GICR),
    }
}

/// An IPA in (mostly) one of the frames.
fn ipa(input: &mut Input, cfg: &VgicConfig) -> u64 {
    let code = input.u8();
    let offset = u64::from(input.u16());
    match code % 8 {
        0..=2 => GICD + offset % DIST_SIZE,
        3..=6 => {
            GICR + (u64::from(code >> 3) % u64::from(cfg.num_vcpus)) * REDIST_STRIDE
                + u64::from(input.u8() & 1) * 0x1_0000
                + offset
        }
        _ => input.u64(),
    }
}

fn intid(input: &mut Input, cfg: &VgicConfig) -> VirtIntId {
    let raw = match input.u8() % 4 {
        0 => u32::from(input.u8() % 32),
        1 => 32 + u32::from(input.u16()) % (u32::from(cfg.num_spis) + 4),
        2 => 8192 + u32::from(input.u16() % 64),
        _ => input.u32(),
    };
    // 1020-8191 are not INTIDs (the type refuses them): the last SPI instead.
    VirtIntId::new(raw).unwrap_or(const { VirtIntId::from_const(1019) })
}

/// One fuzz input: a configuration, then a sequence of calls.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let cfg = config(&mut input);
    let Ok(mut vgic) = Vgic::new(cfg) else {
        panic!("valid config refused: {cfg:?}");
    };
    let mut linked = BTreeSet::new();
    for (virt, phys) in LINKS {
        vgic.link_hw(VirtIntId::from_const(virt), PhysIntId::from_const(phys))
            .expect("linkable");
        linked.insert(phys);
    }
    let vcpus = usize::from(cfg.num_vcpus);
    // What each vCPU's list registers were given at its last flush.
    let mut entered: Vec<Option<(usize, [u64; MAX_LRS])>> = vec![None; vcpus];
    let mut counters = *vgic.counters();
    while !input.is_empty() {
        let vcpu = VcpuIndex::new(u16::from(input.u8()) % cfg.num_vcpus);
        let actions = match input.u8() % 9 {
            0 => {
                let size = input.pick(&[1u8, 2, 4, 8, 3]);
                let value = vgic.mmio_read(vcpu, Ipa(ipa(&mut input, &cfg)), size);
                if size < 8 {
                    assert_eq!(value >> (8 * u32::from(size)), 0, "read wider than {size}");
                }
                None
            }
            1 | 2 => {
                let size = input.pick(&[4u8, 8, 1, 2, 4]);
                let at = ipa(&mut input, &cfg);
                Some(vgic.mmio_write(vcpu, Ipa(at), size, input.u64()))
            }
            3 => vgic.inject(vcpu, intid(&mut input, &cfg)).ok(),
            4 => {
                let intid = intid(&mut input, &cfg);
                vgic.set_line(vcpu, intid, input.bool()).ok()
            }
            5 => vgic.send_sgi(vcpu, input.u64()).ok(),
            6 => {
                let intid = intid(&mut input, &cfg);
                match input.u8() % 3 {
                    0 => vgic.set_lpi_pending(vcpu, intid, &Properties).ok(),
                    1 => vgic.deactivate(vcpu, intid).ok(),
                    _ => vgic.clear_lpi_pending(vcpu, intid).ok(),
                }
            }
            7 => {
                let slot = &mut entered[usize::from(vcpu.get())];
                if slot.is_some() {
                    assert!(vgic.flush(vcpu, 4).is_err(), "flush twice without a fold");
                    None
                } else {
                    let num_lrs = 1 + usize::from(input.u8()) % MAX_LRS;
                    let image = vgic.flush(vcpu, num_lrs).expect("flush");
                    check_image(&cfg, &image.lrs, image.used, num_lrs);
                    *slot = Some((image.used, image.lrs));
                    None
                }
            }
            _ => {
                // The guest ran: it changed the state bits of its list
                // registers (or, being buggy, anything), and EOIs counted.
                let Some((used, mut lrs)) = entered[usize::from(vcpu.get())].take() else {
                    continue;
                };
                for lr in lrs.iter_mut().take(used) {
                    match input.u8() % 4 {
                        0 => {}
                        1 => *lr &= !(3 << 62),
                        2 => *lr = *lr & !(3 << 62) | u64::from(input.u8() & 3) << 62,
                        _ => *lr = input.u64(),
                    }
                }
                let hcr = u64::from(input.u8() & 0x1f) << 27;
                let vmcr = if input.bool() { 1 << 9 } else { 0 };
                Some(
                    vgic.fold(vcpu, &lrs[..used], hcr, vmcr)
                        .expect("fold after flush"),
                )
            }
        };
        if let Some(actions) = actions {
            check_actions(&cfg, &linked, &actions);
        }
        let now = *vgic.counters();
        check_counters(&counters, &now);
        counters = now;
    }
    // Once per input (each walks every interrupt of the partition).
    let mut lpis = 0;
    for v in 0..cfg.num_vcpus {
        let _ = vgic.has_pending(VcpuIndex::new(v));
        lpis += (8192..8192 + 64)
            .filter(|&i| vgic.lpi_pending(VcpuIndex::new(v), VirtIntId::from_const(i)))
            .count();
    }
    assert!(lpis <= cfg.max_pending_lpis * vcpus, "{lpis} LPIs pending");
}

fn check_actions(cfg: &VgicConfig, linked: &BTreeSet<u32>, actions: &Actions) {
    for vcpu in actions.kick.iter() {
        assert!(vcpu.get() < cfg.num_vcpus, "kick of {vcpu:?}");
    }
    for action in &actions.hardware {
        let (vcpu, phys) = match *action {
            Action::EnablePhys { vcpu, intid }
            | Action::DisablePhys { vcpu, intid }
            | Action::DeactivatePhys { vcpu, intid }
            | Action::RoutePhys { vcpu, intid } => (vcpu, Some(intid)),
            Action::LpisEnabled { vcpu, .. } | Action::LpiConfigChanged { vcpu } => (vcpu, None),
        };
        assert!(vcpu.get() < cfg.num_vcpus, "{action:?}");
        if let Some(phys) = phys {
            assert!(
                linked.contains(&phys.get()),
                "unlinked physical INTID: {action:?}"
            );
        }
    }
}

fn check_counters(before: &VgicCounters, after: &VgicCounters) {
    let pairs = [
        (before.bad_width, after.bad_width),
        (before.reserved, after.reserved),
        (before.outside, after.outside),
        (before.sgi_no_target, after.sgi_no_target),
        (before.lpi_overflows, after.lpi_overflows),
        (before.lpi_unreadable, after.lpi_unreadable),
    ];
    for (b, a) in pairs {
        assert!(a >= b, "a counter went down: {before:?} -> {after:?}");
    }
}

fn check_image(cfg: &VgicConfig, lrs: &[u64; MAX_LRS], used: usize, num_lrs: usize) {
    assert!(used <= num_lrs, "{used} registers of {num_lrs}");
    let mut seen = BTreeSet::new();
    for (i, &lr) in lrs.iter().enumerate() {
        if i >= used {
            assert_eq!(lr, 0, "register {i} beyond the {used} used");
            continue;
        }
        let vintid = (lr & 0xffff_ffff) as u32;
        let ours = vintid < cfg.spi_end() || cfg.is_lpi(vintid);
        assert!(ours, "LR {i} holds INTID {vintid}");
        assert!(seen.insert(vintid), "INTID {vintid} listed twice");
        assert_ne!(lr >> 62, 0, "LR {i} listed with no state");
    }
}
