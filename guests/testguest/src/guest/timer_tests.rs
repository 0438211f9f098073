//! The two EL1 timers as an OS uses them: the virtual timer
//! (CNTV_*, PPI 27) and the physical timer (CNTP_*, PPI 30) together, and
//! what GICR_ISPENDR0 shows of a timer's line. Both hold on a real GICv3
//! (bare QEMU is the oracle) and must hold in a partition alike.
//!
//! - `timer-both`: both timers periodic at once (10 ms and 15 ms), each
//!   interrupt taken at or after its programmed CVAL, exact counts; then
//!   masked (CNTx_CTL.IMASK), unmasked and reprogrammed in mixed order,
//!   each expiry taken exactly once.
//! - `timer-pending`: a timer whose PPI is disabled at the GIC, or whose
//!   interrupt is masked by PSTATE.I, reads pending in GICR_ISPENDR0 and
//!   GICR_ICPENDR0 once its deadline passed; IMASK drops the line (and the
//!   pending bit); enabling then delivers each exactly once.
//!
//! Every wait is bounded by the counter; timing is never asserted beyond
//! "not before the deadline".

use super::gic::{self, gicr};
use super::psci;
use super::vgic_tests::{freq, settle, setup_boot_cpu, wait_until};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The EL1 virtual timer's PPI.
pub(super) const VTIMER: u32 = 27;
/// The EL1 physical timer's PPI.
const PTIMER: u32 = 30;
/// CNTx_CTL.ENABLE.
const CTL_ENABLE: u64 = 1 << 0;
/// CNTx_CTL.IMASK.
const CTL_IMASK: u64 = 1 << 1;
/// CNTx_CTL.ISTATUS.
const CTL_ISTATUS: u64 = 1 << 2;

/// One of the two EL1 timers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    Virtual,
    Physical,
}

impl Timer {
    /// Index into the per-timer tables.
    fn index(self) -> usize {
        match self {
            Self::Virtual => 0,
            Self::Physical => 1,
        }
    }

    /// Its PPI.
    fn ppi(self) -> u32 {
        match self {
            Self::Virtual => VTIMER,
            Self::Physical => PTIMER,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Virtual => "virtual timer (PPI 27)",
            Self::Physical => "physical timer (PPI 30)",
        }
    }

    /// The counter it compares against (CNTVCT_EL0 or CNTPCT_EL0).
    pub(super) fn now(self) -> u64 {
        let v: u64;
        // SAFETY: reading a counter has no side effects.
        unsafe {
            match self {
                Self::Virtual => core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v),
                Self::Physical => core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) v),
            }
        }
        v
    }

    /// CNTx_CTL_EL0.
    fn ctl(self) -> u64 {
        let v: u64;
        // SAFETY: reading the timer control has no side effects.
        unsafe {
            match self {
                Self::Virtual => core::arch::asm!("mrs {}, cntv_ctl_el0", out(reg) v),
                Self::Physical => core::arch::asm!("mrs {}, cntp_ctl_el0", out(reg) v),
            }
        }
        v
    }

    /// Writes CNTx_CTL_EL0.
    fn set_ctl(self, v: u64) {
        // SAFETY: this vCPU's own timer only.
        unsafe {
            match self {
                Self::Virtual => core::arch::asm!("msr cntv_ctl_el0, {}", "isb", in(reg) v),
                Self::Physical => core::arch::asm!("msr cntp_ctl_el0, {}", "isb", in(reg) v),
            }
        }
    }

    /// Writes CNTx_CVAL_EL0 (the absolute deadline) and remembers it.
    pub(super) fn set_cval(self, v: u64) {
        DEADLINE[self.index()].store(v, Ordering::Release);
        // SAFETY: this vCPU's own timer only.
        unsafe {
            match self {
                Self::Virtual => core::arch::asm!("msr cntv_cval_el0, {}", "isb", in(reg) v),
                Self::Physical => core::arch::asm!("msr cntp_cval_el0, {}", "isb", in(reg) v),
            }
        }
    }

    /// Arms it `ms` milliseconds from now, enabled and unmasked.
    pub(super) fn arm_in(self, ms: u64) {
        self.set_cval(self.now() + freq() / 1000 * ms);
        self.set_ctl(CTL_ENABLE);
    }

    /// The deadline it was last given through [`Self::set_cval`].
    pub(super) fn deadline(self) -> u64 {
        DEADLINE[self.index()].load(Ordering::Acquire)
    }

    fn of_ppi(intid: u32) -> Option<Self> {
        match intid {
            VTIMER => Some(Self::Virtual),
            PTIMER => Some(Self::Physical),
            _ => None,
        }
    }
}

/// Interrupts taken per timer.
static TAKEN: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];
/// Interrupts taken before their deadline, or with ISTATUS clear.
static EARLY: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];
/// Interrupts with any other INTID.
static OTHER: AtomicU32 = AtomicU32::new(0);
/// The deadline each timer was last given (CVAL).
static DEADLINE: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
/// Lateness (counter ticks past CVAL) summed, and the largest, per timer.
static LATE_SUM: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static LATE_MAX: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
/// Period in ms per timer (0: one-shot, the handler stops the timer).
static PERIOD_MS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
/// Interrupts wanted per timer in periodic mode.
static WANTED: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];

/// The IRQ hook: checks the deadline and ISTATUS, counts, rearms from the
/// old deadline (periodic) or stops the timer (one-shot, or the last
/// tick), then ends the interrupt (which drops no line by itself).
fn handler(intid: u32) {
    let Some(t) = Timer::of_ppi(intid) else {
        OTHER.fetch_add(1, Ordering::AcqRel);
        gic::eoir1(intid);
        return;
    };
    let i = t.index();
    let now = t.now();
    let deadline = DEADLINE[i].load(Ordering::Acquire);
    if now < deadline || t.ctl() & CTL_ISTATUS == 0 {
        EARLY[i].fetch_add(1, Ordering::AcqRel);
    }
    let late = now.saturating_sub(deadline);
    LATE_SUM[i].fetch_add(late, Ordering::AcqRel);
    LATE_MAX[i].fetch_max(late, Ordering::AcqRel);
    let n = TAKEN[i].fetch_add(1, Ordering::AcqRel) + 1;
    let period = PERIOD_MS[i].load(Ordering::Acquire);
    if period != 0 && n < WANTED[i].load(Ordering::Acquire) {
        // From the old deadline, as a periodic tick would; never in the past.
        let next = (deadline + freq() / 1000 * period).max(now + 1);
        t.set_cval(next);
    } else {
        t.set_ctl(0);
    }
    gic::eoir1(intid);
}

/// Clears the counters.
fn reset() {
    for i in 0..2 {
        TAKEN[i].store(0, Ordering::Release);
        EARLY[i].store(0, Ordering::Release);
        LATE_SUM[i].store(0, Ordering::Release);
        LATE_MAX[i].store(0, Ordering::Release);
        PERIOD_MS[i].store(0, Ordering::Release);
        WANTED[i].store(0, Ordering::Release);
    }
    OTHER.store(0, Ordering::Release);
}

fn taken(t: Timer) -> u32 {
    TAKEN[t.index()].load(Ordering::Acquire)
}

/// Fails unless every interrupt so far came from the timers, at or after
/// its deadline with ISTATUS set.
fn none_early_or_foreign(what: &str) {
    let other = OTHER.load(Ordering::Acquire);
    let early = [
        EARLY[0].load(Ordering::Acquire),
        EARLY[1].load(Ordering::Acquire),
    ];
    if other != 0 || early != [0, 0] {
        fail!("{what}: {other} interrupts with another INTID; before their deadline or with ISTATUS clear: virtual {}, physical {}", early[0], early[1]);
    }
}

/// Both timers' PPIs at their priorities and enabled in `rd`.
fn enable_both(rd: usize) {
    gic::set_priority(rd, VTIMER, 0x90);
    gic::set_priority(rd, PTIMER, 0xa0);
    gic::enable_private(rd, VTIMER);
    gic::enable_private(rd, PTIMER);
}

/// Both timers off, their PPIs disabled.
fn stop_both(what: &str, rd: usize) {
    gic::mask_irqs();
    Timer::Virtual.set_ctl(0);
    Timer::Physical.set_ctl(0);
    for ppi in [VTIMER, PTIMER] {
        if let Err(e) = gic::disable_private(rd, ppi) {
            fail!("{what}: {e}");
        }
    }
}

/// timer-both: both timers periodic together, then masked, unmasked and
/// reprogrammed in mixed order.
pub fn both() -> ! {
    const W: &str = "timer-both";
    let rd = setup_boot_cpu(W);
    gic::set_hook(Some(handler));
    reset();
    let (v, p) = (Timer::Virtual, Timer::Physical);
    // Phase 1: 20 ticks of 10 ms and 14 of 15 ms, both running at once.
    let wanted = [(v, 10, 20), (p, 15, 14)];
    for (t, period, n) in wanted {
        PERIOD_MS[t.index()].store(period, Ordering::Release);
        WANTED[t.index()].store(n, Ordering::Release);
    }
    enable_both(rd);
    v.arm_in(10);
    p.arm_in(15);
    gic::unmask_irqs();
    let done = wait_until(3000, || taken(v) >= 20 && taken(p) >= 14);
    settle(50); // a tick after the last one would show up here
    stop_both(W, rd);
    let counts = (taken(v), taken(p));
    if !done || counts != (20, 14) {
        fail!(
            "{W}: virtual timer {} interrupts (want 20), physical timer {} (want 14), within 3 s",
            counts.0,
            counts.1
        );
    }
    none_early_or_foreign(W);
    let us = |ticks: u64| ticks * 1_000_000 / freq();
    for (t, period, n) in wanted {
        let i = t.index();
        println!(
            "PASS {W}: {} fired {n} times every {period} ms, never before its deadline (late: mean {} us, max {} us)",
            t.name(),
            us(LATE_SUM[i].load(Ordering::Acquire) / u64::from(n)),
            us(LATE_MAX[i].load(Ordering::Acquire))
        );
    }

    // Phase 2: one-shots, masked, reprogrammed and unmasked in mixed order.
    reset();
    enable_both(rd);
    gic::unmask_irqs();
    p.arm_in(200); // far away, then brought forward below
    v.set_cval(v.now() + freq() / 1000 * 20);
    v.set_ctl(CTL_ENABLE | CTL_IMASK); // the virtual one masked from the start
    p.set_cval(p.now() + freq() / 1000 * 5);
    if !wait_until(100, || taken(p) == 1) {
        fail!("{W}: the physical timer brought forward to 5 ms did not fire within 100 ms");
    }
    // The virtual timer's deadline passes while it is masked: nothing.
    if !wait_until(200, || v.ctl() & CTL_ISTATUS != 0) {
        fail!("{W}: CNTV_CTL.ISTATUS never set after the deadline");
    }
    settle(20);
    if taken(v) != 0 {
        fail!("{W}: the masked virtual timer was taken");
    }
    println!("PASS {W}: physical timer brought forward from 200 ms to 5 ms taken once; masked virtual timer past its deadline not taken");
    // Unmask the virtual one (its deadline long past): taken at once, once.
    // Meanwhile the physical one is rearmed, masked and unmasked again.
    p.arm_in(30);
    p.set_ctl(CTL_ENABLE | CTL_IMASK);
    v.set_ctl(CTL_ENABLE);
    if !wait_until(100, || taken(v) == 1) {
        fail!("{W}: the virtual timer unmasked after its deadline was not taken");
    }
    p.set_ctl(CTL_ENABLE);
    if !wait_until(200, || taken(p) == 2) {
        fail!("{W}: the physical timer, rearmed, masked and unmasked, did not fire");
    }
    settle(50);
    stop_both(W, rd);
    let counts = (taken(v), taken(p));
    if counts != (1, 2) {
        fail!(
            "{W}: after mask/unmask/reprogram: virtual {} (want 1), physical {} (want 2)",
            counts.0,
            counts.1
        );
    }
    none_early_or_foreign(W);
    println!("PASS {W}: virtual timer unmasked after its deadline taken once; physical timer rearmed, masked and unmasked taken once, not before its deadline");
    println!("PASS {W}: done");
    psci::system_off()
}

/// Whether `ppi` reads set in the 32-bit SGI_base register at `reg`.
fn bit(rd: usize, reg: usize, ppi: u32) -> bool {
    gic::read32(rd + reg) & (1 << ppi) != 0
}

/// timer-pending: the timer lines read pending while masked.
pub fn pending() -> ! {
    const W: &str = "timer-pending";
    let rd = setup_boot_cpu(W);
    gic::set_hook(Some(handler));
    reset();
    gic::mask_irqs();
    let timers = [Timer::Virtual, Timer::Physical];
    for t in timers {
        gic::set_priority(rd, t.ppi(), 0x90);
        if let Err(e) = gic::disable_private(rd, t.ppi()) {
            fail!("{W}: {e}");
        }
        t.arm_in(2);
    }
    // PPIs disabled at the GIC, deadlines passed: both lines are asserted.
    for t in timers {
        if !wait_until(200, || bit(rd, gicr::ISPENDR0, t.ppi())) {
            fail!("{W}: {} disabled at the GIC, past its deadline (CNTx_CTL {:#x}): not pending in GICR_ISPENDR0", t.name(), t.ctl());
        }
        if !bit(rd, gicr::ICPENDR0, t.ppi()) || bit(rd, gicr::ISENABLER0, t.ppi()) {
            fail!(
                "{W}: {}: GICR_ICPENDR0 must show it pending and GICR_ISENABLER0 disabled",
                t.name()
            );
        }
        if bit(rd, gicr::ISACTIVER0, t.ppi()) {
            fail!("{W}: {}: active although never acknowledged", t.name());
        }
    }
    println!("PASS {W}: both timer lines past their deadline read pending in GICR_ISPENDR0 and GICR_ICPENDR0 while their PPIs are disabled");
    // IMASK deasserts the line: a level interrupt is no longer pending.
    for t in timers {
        t.set_ctl(CTL_ENABLE | CTL_IMASK);
        if !wait_until(200, || !bit(rd, gicr::ISPENDR0, t.ppi())) {
            fail!(
                "{W}: {}: still pending after CNTx_CTL.IMASK dropped its line",
                t.name()
            );
        }
        t.set_ctl(CTL_ENABLE);
        if !wait_until(200, || bit(rd, gicr::ISPENDR0, t.ppi())) {
            fail!(
                "{W}: {}: not pending again after IMASK was cleared",
                t.name()
            );
        }
    }
    println!("PASS {W}: CNTx_CTL.IMASK clears the pending bit of each (level-sensitive), clearing IMASK sets it again");
    // Enabled at the GIC, still masked by PSTATE.I: pending, not taken.
    for t in timers {
        gic::enable_private(rd, t.ppi());
    }
    settle(20);
    for t in timers {
        if !bit(rd, gicr::ISPENDR0, t.ppi()) || taken(t) != 0 {
            fail!(
                "{W}: {}: enabled with IRQs masked: must stay pending and untaken",
                t.name()
            );
        }
    }
    println!("PASS {W}: enabled with PSTATE.I set, both still read pending and nothing is taken");
    gic::unmask_irqs();
    let done = wait_until(200, || timers.iter().all(|&t| taken(t) == 1));
    settle(50);
    gic::mask_irqs();
    let counts = (taken(Timer::Virtual), taken(Timer::Physical));
    if !done || counts != (1, 1) {
        fail!(
            "{W}: unmasked: virtual {} interrupts, physical {} (want 1 each)",
            counts.0,
            counts.1
        );
    }
    // The handler stopped both timers: their lines are low, nothing pending.
    for t in timers {
        if bit(rd, gicr::ISPENDR0, t.ppi()) || bit(rd, gicr::ISACTIVER0, t.ppi()) {
            fail!(
                "{W}: {}: still pending or active after it was handled",
                t.name()
            );
        }
    }
    none_early_or_foreign(W);
    stop_both(W, rd);
    println!("PASS {W}: unmasked, each taken exactly once, then neither pending nor active");
    println!("PASS {W}: done");
    psci::system_off()
}
