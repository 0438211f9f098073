//! Per-CPU state, reached through TPIDR_EL2.

use crate::arch::exception::GuestRegs;
use crate::arch::MAX_CPUS;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Exit counters of one CPU, readable by any CPU.
#[derive(Default)]
pub struct ExitCounters {
    /// Every trap from the guest (all causes).
    pub total: AtomicU64,
    /// Traps for MMIO emulation (stage-2 data aborts).
    pub mmio: AtomicU64,
    /// Traps for HVC/SMC calls.
    pub calls: AtomicU64,
    /// Physical IRQs taken while the guest ran.
    pub irqs: AtomicU64,
    /// Trapped WFIs the hypervisor waited out (`wfi = "doorbell"`).
    pub wfi_waits: AtomicU64,
    /// GICv4 doorbells taken (a vLPI arrived while the vPE was not resident).
    pub doorbells: AtomicU64,
    /// Passthrough MSIs taken at EL2 as physical LPIs and injected by
    /// software (the GICv3 path; zero when GICv4 delivers them as vLPIs).
    pub software_msis: AtomicU64,
}

impl core::fmt::Display for ExitCounters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let n = |c: &AtomicU64| c.load(core::sync::atomic::Ordering::Relaxed);
        write!(
            f,
            "exits {} (mmio {}, calls {}, irqs {}, wfi waits {}), passthrough MSIs injected by software {}, doorbells {}",
            n(&self.total),
            n(&self.mmio),
            n(&self.calls),
            n(&self.irqs),
            n(&self.wfi_waits),
            n(&self.software_msis),
            n(&self.doorbells)
        )
    }
}

/// What one physical CPU needs at hand on every trap.
#[repr(C)]
pub struct PerCpu {
    /// The running guest's registers. Must stay first: the vectors save
    /// and restore them at TPIDR_EL2 + 0.
    pub regs: UnsafeCell<GuestRegs>,
    /// This CPU's index in the platform's CPU list.
    pub index: AtomicUsize,
    /// Exit counters.
    pub exits: ExitCounters,
    /// The CPU's MPIDR affinity.
    pub mpidr: AtomicU64,
    /// Whether a vCPU runs (or may run) guest code on this CPU.
    pub in_guest: AtomicBool,
    /// The partition epoch the running vCPU was started in.
    pub epoch: AtomicU64,
    /// The CPU came up and is in its run loop.
    pub online: AtomicBool,
    /// The exceptions injected into the running vCPU, watched for a guest
    /// that re-takes the same one forever. Only this CPU touches it.
    pub fault_loop: spin::Mutex<crate::guest::trap::FaultLoop>,
    /// Set (to the repeat count) when `fault_loop` finds the vCPU stuck;
    /// the trap handler then stops the partition.
    pub stuck_repeats: core::sync::atomic::AtomicU32,
}

// SAFETY: `regs` is only touched by the CPU that owns the block (through
// TPIDR_EL2); every other field is atomic.
unsafe impl Sync for PerCpu {}

#[allow(clippy::declare_interior_mutable_const)]
const PERCPU_INIT: PerCpu = PerCpu {
    regs: UnsafeCell::new(GuestRegs {
        x: [0; 31],
        elr: 0,
        spsr: 0,
    }),
    index: AtomicUsize::new(usize::MAX),
    exits: ExitCounters {
        total: AtomicU64::new(0),
        mmio: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        irqs: AtomicU64::new(0),
        wfi_waits: AtomicU64::new(0),
        doorbells: AtomicU64::new(0),
        software_msis: AtomicU64::new(0),
    },
    mpidr: AtomicU64::new(0),
    in_guest: AtomicBool::new(false),
    epoch: AtomicU64::new(0),
    online: AtomicBool::new(false),
    fault_loop: spin::Mutex::new(crate::guest::trap::FaultLoop::new()),
    stuck_repeats: core::sync::atomic::AtomicU32::new(0),
};

static PERCPU: [PerCpu; MAX_CPUS] = [PERCPU_INIT; MAX_CPUS];

/// Binds the calling CPU to block `index` (TPIDR_EL2).
pub fn init_current(index: crate::ids::CpuIndex) {
    let block = &PERCPU[index.index()];
    block.index.store(index.index(), Ordering::Relaxed);
    block
        .mpidr
        .store(crate::arch::sysreg::mpidr(), Ordering::Relaxed);
    // SAFETY: `block` is this CPU's own block (index is this CPU's).
    unsafe { crate::arch::sysreg::tpidr_el2::write(block as *const PerCpu as u64) };
}

/// The block of CPU `index`.
pub fn get(index: crate::ids::CpuIndex) -> &'static PerCpu {
    // CpuIndex::COUNT == MAX_CPUS: in bounds.
    &PERCPU[index.index()]
}

/// The calling CPU's block, or `None` before `init_current`.
pub fn current() -> Option<&'static PerCpu> {
    // TPIDR_EL2 is UNKNOWN at reset: only trust it if it names one of the
    // blocks (then the block itself, not the raw pointer, is returned).
    let ptr = crate::arch::sysreg::tpidr_el2::read() as *const PerCpu;
    PERCPU.iter().find(|b| core::ptr::eq(*b, ptr))
}

/// The calling CPU's index, or 0 before `init_current` (boot CPU).
pub fn current_index() -> crate::ids::CpuIndex {
    current()
        .and_then(|b| crate::ids::CpuIndex::from_index(b.index.load(Ordering::Relaxed)))
        .unwrap_or_default()
}
