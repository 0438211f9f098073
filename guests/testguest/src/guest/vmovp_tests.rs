//! The guest side of the hypervisor's `selftest=vmovp` (`scenario=vmovp
//! edu=ADDR`): edu's MSI is vINTID 8192 of a vPE the hypervisor first
//! makes resident on CPU 0 (vCPU 0's), then moves to CPU 1's
//! redistributor with VMOVP while a vLPI is pending in it. vCPU 1 (on
//! CPU 1) waits with IRQs unmasked; every vLPI on either vCPU is counted,
//! so "taken once on vCPU 1" also means "never on vCPU 0".

use super::vgic_tests::{post, settle, start_vcpu1, wait_until};
use super::{gic, mpidr, psci};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// edu's MSI (EventID 0).
const VINTID: u32 = 8192;
/// edu's EventID 1, raised by the hypervisor with an ITS INT.
const VINTID_INT: u32 = 8193;
/// The hypervisor's vmovp hypercall and its doorbell counters.
const SELFTEST_VMOVP: u64 = 0xc600_0004;
const SELFTEST_DOORBELLS: u64 = 0xc600_0005;

/// Interrupts taken on vCPU 0 and 1: 8192, 8193, anything else.
static TAKEN: [[AtomicU32; 3]; 2] = [const { [const { AtomicU32::new(0) }; 3] }; 2];
/// vCPU 1: the hypervisor's exit count, read in the handler of its n-th interrupt.
static EXITS_AT: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
/// vCPU 1: interrupts taken.
static V1_COUNT: AtomicUsize = AtomicUsize::new(0);
/// vCPU 1 waits with IRQs unmasked.
static V1_READY: AtomicBool = AtomicBool::new(false);

macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("FAIL vmovp: {}", format_args!($($arg)*));
        psci::system_off()
    }};
}

fn taken(vcpu: usize, slot: usize) -> u32 {
    TAKEN[vcpu][slot].load(Ordering::Acquire)
}

fn counts() -> [[u32; 3]; 2] {
    [0, 1].map(|v| [0, 1, 2].map(|s| taken(v, s)))
}

/// The IRQ hook of both vCPUs.
fn hook(intid: u32) {
    let vcpu = (mpidr() & 0xff) as usize;
    let slot = match intid {
        VINTID => 0,
        VINTID_INT => 1,
        _ => 2,
    };
    if let Some(row) = TAKEN.get(vcpu) {
        row[slot].fetch_add(1, Ordering::AcqRel);
    }
    if vcpu == 1 {
        let n = V1_COUNT.fetch_add(1, Ordering::AcqRel);
        if let Some(slot) = EXITS_AT.get(n) {
            slot.store(super::scenarios::exit_count_pub(), Ordering::Release);
        }
    }
    gic::eoir1(intid);
}

/// vCPU 1: interrupts on, then wait for them forever (WFI is not
/// trapped: a vLPI for a resident vPE ends it without an exit).
fn vcpu1_wait(_index: u64) {
    gic::enable();
    V1_READY.store(true, Ordering::Release);
    gic::unmask_irqs();
    loop {
        // SAFETY: WFI only waits.
        unsafe { core::arch::asm!("wfi") };
    }
}

fn edu_write(edu: u64, offset: u64) {
    // SAFETY: edu's BAR0, mapped into our IPA space by the hypervisor.
    unsafe { core::ptr::write_volatile((edu + offset) as *mut u32, 1) };
}

/// The scenario, on vCPU 0.
pub fn vmovp() -> ! {
    let Some(edu) = super::bootarg("edu")
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
    else {
        fail!("no edu= bootarg")
    };
    gic::set_hook(Some(hook));
    gic::enable();
    gic::unmask_irqs();
    // Before the move: resident on CPU 0, taken on vCPU 0 with no exit.
    let before = super::scenarios::exit_count_pub();
    edu_write(edu, 0x60);
    let arrived = wait_until(1000, || taken(0, 0) == 1);
    let exits = super::scenarios::exit_count_pub().wrapping_sub(before + 1);
    edu_write(edu, 0x64);
    if !arrived || exits != 0 || counts() != [[1, 0, 0], [0, 0, 0]] {
        fail!("before the move: counts {:?}, exits {exits}", counts())
    }
    println!("vmovp: before the move vINTID 8192 taken on vCPU 0 (CPU 0), hypervisor exits: 0");
    start_vcpu1("vmovp");
    if !post(vcpu1_wait) || !wait_until(2000, || V1_READY.load(Ordering::Acquire)) {
        fail!("vCPU 1 did not start waiting")
    }
    // The move, with our IRQs masked: nothing may reach vCPU 0 meanwhile.
    gic::mask_irqs();
    let result = psci::call(SELFTEST_VMOVP, 0, 0, 0);
    edu_write(edu, 0x64);
    gic::unmask_irqs();
    if result != 0 {
        fail!("the hypervisor's vmovp step failed ({result})")
    }
    let both = wait_until(1000, || taken(1, 0) >= 1 && taken(1, 1) >= 1);
    settle(100);
    if !both || counts() != [[1, 0, 0], [1, 1, 0]] {
        fail!(
            "after the move: counts {:?} (want [[1, 0, 0], [1, 1, 0]])",
            counts()
        )
    }
    println!("PASS vmovp: vINTID 8192 left pending before the move and vINTID 8193 raised after it, each taken once on vCPU 1 (CPU 1), nothing on vCPU 0");
    // A new MSI: straight to the vPE, resident on CPU 1.
    edu_write(edu, 0x60);
    let arrived = wait_until(1000, || taken(1, 0) == 2);
    settle(100);
    edu_write(edu, 0x64);
    let n = V1_COUNT.load(Ordering::Acquire);
    let exits = EXITS_AT[2]
        .load(Ordering::Acquire)
        .wrapping_sub(EXITS_AT[1].load(Ordering::Acquire) + 1);
    if !arrived || n != 3 || counts() != [[1, 0, 0], [2, 1, 0]] || exits != 0 {
        fail!(
            "new MSI after the move: counts {:?}, vCPU 1 interrupts {n}, exits {exits}",
            counts()
        )
    }
    let doorbells = psci::call(SELFTEST_DOORBELLS, 0, 0, 0) as u64;
    let (cpu0, cpu1) = (doorbells & 0xffff, (doorbells >> 16) & 0xffff);
    if (cpu0, cpu1) != (1, 1) {
        fail!("doorbells: CPU 0 {cpu0}, CPU 1 {cpu1} (want 1 and 1)")
    }
    println!("PASS vmovp: after the move edu's MSI taken once on vCPU 1, hypervisor exits: 0; doorbells: CPU 0 1 (before the move), CPU 1 1 (after)");
    psci::system_off()
}
