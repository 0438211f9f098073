//! The guest side of a virtual GICv2 (`arm,gic-400` in the tree, as a
//! partition gets on a GICv2 host such as the Raspberry Pi 4): the
//! distributor and CPU interface by MMIO, the virtual timer's PPI taken
//! and re-armed ten times, and an SGI from vCPU 0 to vCPU 1 through
//! GICD_SGIR (IHI 0048B, 4.3.15).

use super::mmio::{read32, write32};
use super::vgic_tests::{freq, post};
use super::{counter, psci};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER0: usize = 0x100;
const GICD_SGIR: usize = 0xf00;
const GICC_CTLR: usize = 0x000;
const GICC_PMR: usize = 0x004;
const GICC_IAR: usize = 0x00c;
const GICC_EOIR: usize = 0x010;
/// The EL1 virtual timer's PPI.
const VTIMER: u32 = 27;
/// The SGI vCPU 0 sends to vCPU 1.
const SGI: u32 = 1;

static GICD: AtomicUsize = AtomicUsize::new(0);
static GICC: AtomicUsize = AtomicUsize::new(0);
static TICKS: AtomicU32 = AtomicU32::new(0);
/// Bit 31: an SGI was taken; bits [2:0]: its source CPU.
static SGI_TAKEN: AtomicU32 = AtomicU32::new(0);
static VCPU1_READY: AtomicU32 = AtomicU32::new(0);

/// Whether the tree gave this guest a GICv2 (and `discover` found it).
pub fn active() -> bool {
    GICC.load(Ordering::Acquire) != 0
}

fn discover() -> Result<(), &'static str> {
    let fdt = super::fdt();
    let node = fdt
        .find_compatible(&["arm,gic-400", "arm,cortex-a15-gic"])
        .ok_or("no arm,gic-400 node in the device tree")?;
    let mut reg = node.reg().ok_or("the GIC node has no reg")?;
    let d = reg.next().ok_or("the GIC node's reg is empty")?;
    let c = reg.next().ok_or("the GIC node's reg has no GICC")?;
    GICD.store(d.starting_address as usize, Ordering::Release);
    GICC.store(c.starting_address as usize, Ordering::Release);
    Ok(())
}

/// This vCPU's CPU interface on, `intid` (banked) enabled.
fn cpu_init(intid: u32) {
    let gicd = GICD.load(Ordering::Acquire);
    let gicc = GICC.load(Ordering::Acquire);
    write32(gicd + GICD_ISENABLER0, 1 << intid);
    write32(gicc + GICC_PMR, 0xff);
    write32(gicc + GICC_CTLR, 1);
    // SAFETY: unmasking IRQs; the vector calls `handle_irq`.
    unsafe { core::arch::asm!("msr daifclr, #2") };
}

fn arm_timer() {
    let tval = freq() / 100;
    // SAFETY: the guest owns its virtual timer.
    unsafe {
        core::arch::asm!("msr cntv_tval_el0, {}", in(reg) tval);
        core::arch::asm!("msr cntv_ctl_el0, {}", in(reg) 1u64);
        core::arch::asm!("isb");
    }
}

fn stop_timer() {
    // SAFETY: the guest owns its virtual timer.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, {}", in(reg) 0u64) };
}

/// The IRQ vector's GICv2 path: acknowledge, count, end.
pub fn handle_irq() {
    let gicc = GICC.load(Ordering::Acquire);
    let iar = read32(gicc + GICC_IAR);
    let intid = iar & 0x3ff;
    if intid >= 1020 {
        return;
    }
    if intid == VTIMER {
        // Re-armed (the line drops) before the EOI, which also deactivates
        // the physical PPI behind this hardware-linked interrupt.
        if TICKS.fetch_add(1, Ordering::AcqRel) + 1 >= 10 {
            stop_timer();
        } else {
            arm_timer();
        }
    } else if intid == SGI {
        SGI_TAKEN.store((1 << 31) | ((iar >> 10) & 7), Ordering::Release);
    }
    write32(gicc + GICC_EOIR, iar);
}

fn wait_for(what: impl Fn() -> bool) -> bool {
    let deadline = counter() + 3 * freq();
    while counter() < deadline {
        if what() {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

fn vcpu1_init(_index: u64) {
    cpu_init(SGI);
    VCPU1_READY.store(1, Ordering::Release);
}

/// Runs on vCPU 0 after `hello` started vCPU 1.
pub fn run() -> ! {
    if let Err(e) = discover() {
        println!("FAIL gicv2: {e}");
        psci::system_off()
    }
    let gicd = GICD.load(Ordering::Acquire);
    write32(gicd + GICD_CTLR, 1);
    cpu_init(VTIMER);
    arm_timer();
    // Waits in WFI (trapped: the hypervisor sleeps until the timer's PPI
    // arrives, then lists it), bounded by the counter.
    let deadline = counter() + 3 * freq();
    while TICKS.load(Ordering::Acquire) < 10 && counter() < deadline {
        // SAFETY: WFI only waits; IRQs are unmasked and the timer is armed.
        unsafe { core::arch::asm!("wfi") };
    }
    if TICKS.load(Ordering::Acquire) < 10 {
        println!(
            "FAIL gicv2 timer: {} of 10 virtual timer interrupts in 3 s",
            TICKS.load(Ordering::Acquire)
        );
        psci::system_off()
    }
    println!(
        "PASS gicv2 timer: 10 virtual timer interrupts (PPI 27, HW-linked), waited for in WFI"
    );
    if !post(vcpu1_init) || !wait_for(|| VCPU1_READY.load(Ordering::Acquire) != 0) {
        println!("FAIL gicv2 sgi: vCPU 1 did not set up its CPU interface");
        psci::system_off()
    }
    // TargetListFilter 0, CPU target list = vCPU 1 (bit 1), SGI 1.
    write32(gicd + GICD_SGIR, (1 << 1) << 16 | SGI);
    if !wait_for(|| SGI_TAKEN.load(Ordering::Acquire) != 0) {
        println!("FAIL gicv2 sgi: vCPU 1 took no SGI {SGI} in 3 s");
        psci::system_off()
    }
    let taken = SGI_TAKEN.load(Ordering::Acquire);
    println!(
        "PASS gicv2 sgi: vcpu1 took SGI {SGI} from vcpu{}",
        taken & 7
    );
    psci::system_off()
}
