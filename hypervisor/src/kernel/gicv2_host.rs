//! The physical GIC-400 (GICv2 with the virtualization extensions) on
//! GICv2 hosts such as the Raspberry Pi 4: distributor and per-CPU
//! interface set-up, the interrupt path at EL2 through GICC_IAR / EOIR /
//! DIR (EOImode 1: EOIR drops the priority, DIR deactivates), and kicks
//! between CPUs as physical SGIs through GICD_SGIR. The GICv3 path
//! (`drivers::gicv3`, `vgic.rs`) is not used on such a host: the kernel's
//! hooks ask [`active`] first.
//!
//! GICv2 names CPUs by CPU interface number (a target-list bit), not by
//! MPIDR: each CPU records its own bit from the banked GICD_ITARGETSR0
//! when it initialises its interface.

use super::{early, machine, percpu};
use crate::boot::platform::GicV2;
use crate::drivers::gicv2::{CpuInterface, Distributor, HypInterface};
use crate::drivers::gicv3::SGI_KICK;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use spin::Once;

static GICD: Once<Distributor> = Once::new();
static GICC: Once<CpuInterface> = Once::new();
static GICH: Once<HypInterface> = Once::new();
/// Each CPU's target-list bit (0: not initialised).
static TARGETS: [AtomicU8; crate::arch::MAX_CPUS] =
    [const { AtomicU8::new(0) }; crate::arch::MAX_CPUS];
/// The maintenance PPI's INTID (0: none in the tree).
static MAINTENANCE: AtomicU32 = AtomicU32::new(0);
/// The GICV frame (what a guest gets as its GICC).
static GICV: Once<crate::mm::addr::Range<crate::mm::PhysAddr>> = Once::new();

/// The GICV frame, if the tree names one.
pub fn virtual_cpu_interface() -> Option<crate::mm::addr::Range<crate::mm::PhysAddr>> {
    GICV.get().copied()
}

/// Whether the host's GIC is a GICv2 driven by this module.
pub fn active() -> bool {
    GICC.is_completed()
}

/// The GICH frame, once [`init`] mapped it (GICv2 with virtualization
/// extensions only).
pub fn hyp_interface() -> Option<&'static HypInterface> {
    GICH.get()
}

/// The distributor, once [`init`] ran.
pub fn distributor() -> Option<&'static Distributor> {
    GICD.get()
}

fn map(base: u64, size: u64, what: &str) {
    if let Err(e) = early::map_device(base, size) {
        machine::fatal(format_args!("cannot map the {what} at {base:#x}: {e:?}"));
    }
}

/// Maps the GIC-400's frames and enables the distributor (boot CPU).
pub fn init(gic: &GicV2) {
    let d = gic.distributor;
    let c = gic.cpu_interface;
    map(d.start.raw(), d.size, "GICv2 distributor");
    map(c.start.raw(), c.size, "GICv2 CPU interface");
    // SAFETY: mapped just above as device memory; the tree names the frame.
    let gicd = GICD.call_once(|| unsafe { Distributor::new(d.start.raw() as usize) });
    if let Some(h) = gic.hyp_interface {
        map(h.start.raw(), h.size, "GICv2 virtual interface control");
        // SAFETY: mapped just above as device memory; the tree names the frame.
        GICH.call_once(|| unsafe { HypInterface::new(h.start.raw() as usize) });
    }
    if let Some(v) = gic.virtual_cpu_interface {
        GICV.call_once(|| v);
    }
    if let Some(intid) = gic.maintenance.and_then(|m| m.intid()) {
        MAINTENANCE.store(intid.get(), Ordering::Relaxed);
    }
    gicd.enable();
    // SAFETY: mapped above as device memory; the tree names the frame.
    GICC.call_once(|| unsafe { CpuInterface::new(c.start.raw() as usize) });
    crate::println!(
        "GIC      GICv2 (GIC-400 class), {} SPIs, virtual interface {}, maintenance PPI {}",
        gicd.spis().saturating_sub(32),
        match GICH.get() {
            Some(h) => alloc::format!("with {} list registers", h.vtr().list_registers()),
            None => alloc::string::String::from("absent"),
        },
        MAINTENANCE.load(Ordering::Relaxed).saturating_sub(16)
    );
}

/// The calling CPU's interface: its target bit, the kick SGI and the
/// maintenance PPI enabled, GICC enabled with EOImode 1 and the priority
/// mask open.
pub fn init_cpu() {
    let (Some(gicd), Some(gicc)) = (GICD.get(), GICC.get()) else {
        return;
    };
    let me = percpu::current_index();
    let mask = gicd.own_target_mask();
    if let Some(t) = TARGETS.get(me.index()) {
        t.store(mask, Ordering::Release);
    }
    gicd.enable_private(SGI_KICK);
    let maintenance = MAINTENANCE.load(Ordering::Relaxed);
    if maintenance != 0 {
        gicd.enable_private(maintenance);
    }
    gicc.enable();
}

/// Kicks CPU `index` with the kick SGI; false if this host is not a GICv2
/// (the caller uses the GICv3 path).
pub fn kick(index: usize) -> bool {
    let Some(gicd) = GICD.get() else {
        return false;
    };
    let mask = TARGETS.get(index).map_or(0, |t| t.load(Ordering::Acquire));
    if mask != 0 {
        // The SGIR write must follow the stores the kicked CPU should see.
        crate::arch::sysreg::dsb_ish();
        gicd.send_sgi(SGI_KICK as u8, mask);
    }
    true
}

/// Takes the interrupts pending at the calling CPU's interface (bounded):
/// the EL1 timers' PPIs go to the running vCPU (priority dropped, left
/// active until the guest deactivates the HW-linked virtual interrupt);
/// kicks and the maintenance PPI only make the CPU leave its guest (the
/// next flush reschedules); anything else is deactivated. Returns false if
/// this host is not a GICv2.
pub fn take_physical_interrupts(
    running: Option<(&super::partition::Partition, crate::ids::VcpuIndex)>,
) -> bool {
    let Some(gicc) = GICC.get() else {
        return false;
    };
    for _ in 0..64 {
        let iar = gicc.acknowledge();
        // 1020-1023 are special (1023: nothing pending).
        let Some(intid) = crate::ids::PhysIntId::from_acknowledge(iar.interrupt_id()) else {
            break;
        };
        gicc.end_of_interrupt(iar);
        let intid = intid.get();
        match running {
            Some((partition, vcpu)) if super::vgic::FORWARDED_PPIS.contains(&intid) => {
                super::vgicv2::inject_forwarded(partition, vcpu, intid);
            }
            _ => gicc.deactivate(iar),
        }
    }
    true
}
