//! Virtual GICv3 scenarios: the guest drives the GIC as an OS
//! driver does (Linux's irq-gic-v3 sequences) and checks what the
//! architecture promises. They hold on a real GICv3/v4 (bare QEMU is the
//! oracle) and must hold on the hypervisor's vGIC alike.
//!
//! Each prints `PASS vgic-<name>: ...` lines and ends with SYSTEM_OFF, or
//! prints `FAIL vgic-<name>: ...` and powers off at the first failure.
//! Every wait is bounded by the virtual counter.

use super::gic::{self, gicd, gicr};
use super::{counter, fdt, mpidr, psci};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// vCPUs the per-vCPU tables hold (the scenarios use vCPUs 0 and 1).
const MAX_CPUS: usize = 4;

/// SGIs each vCPU received, by INTID (0-15).
static RECEIVED: [[AtomicU32; 16]; MAX_CPUS] =
    [const { [const { AtomicU32::new(0) }; 16] }; MAX_CPUS];
/// Interrupts with any other INTID each vCPU received.
static OTHER: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Each vCPU's RD_base (for handlers that read GICR registers).
static MY_RD: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Log of interrupts taken on vCPU 0: INTID | RPR << 16 | depth << 24 | extra << 32.
static LOG: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
/// Entries in LOG.
static LOG_LEN: AtomicUsize = AtomicUsize::new(0);
/// Handler nesting depth on vCPU 0.
static DEPTH: AtomicU32 = AtomicU32::new(0);

/// Work posted for vCPU 1 (a `fn(u64)` as usize; 0: none).
static TASK: AtomicUsize = AtomicUsize::new(0);

/// This vCPU's index into the per-vCPU tables (Aff0).
fn cpu() -> usize {
    (mpidr() & 0xff) as usize % MAX_CPUS
}

/// CNTFRQ_EL0.
pub(crate) fn freq() -> u64 {
    let f: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}

/// Polls `cond` for at most `ms` milliseconds; true as soon as it holds.
pub(crate) fn wait_until(ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = counter() + freq() / 1000 * ms;
    loop {
        if cond() {
            return true;
        }
        if counter() >= end {
            return cond();
        }
        core::hint::spin_loop();
    }
}

/// Busy-waits `ms` milliseconds (interrupts may be taken meanwhile).
pub(crate) fn settle(ms: u64) {
    wait_until(ms, || false);
}

/// The MPIDRs of the device tree's cpu nodes (up to MAX_CPUS) and their count.
fn cpu_mpidrs() -> ([u64; MAX_CPUS], usize) {
    let mut ids = [0; MAX_CPUS];
    let mut n = 0;
    for c in fdt().cpus() {
        if n < MAX_CPUS {
            ids[n] = c.ids().first() as u64;
            n += 1;
        }
    }
    (ids, n)
}

/// Called by a secondary vCPU each time it wakes from WFE: runs work vCPU 0 posted.
pub fn secondary_poll(index: u64) {
    let t = TASK.swap(0, Ordering::AcqRel);
    if t != 0 {
        // SAFETY: only `post` stores TASK, and only from a `fn(u64)`.
        let f = unsafe { core::mem::transmute::<usize, fn(u64)>(t) };
        f(index);
    }
}

/// Posts `f` for vCPU 1 and wakes it (SEV, repeated until it took the
/// work, as it may not have reached WFE yet); false if not taken in 2 s.
pub(crate) fn post(f: fn(u64)) -> bool {
    TASK.store(f as usize, Ordering::Release);
    wait_until(2000, || {
        // SAFETY: SEV only wakes vCPUs waiting in WFE.
        unsafe { core::arch::asm!("dsb ish", "sev") };
        TASK.load(Ordering::Acquire) == 0
    })
}

/// Starts vCPU 1 with PSCI CPU_ON (context 1, our secondary entry);
/// a vCPU already on is fine. Returns its MPIDR.
pub(crate) fn start_vcpu1(what: &str) -> u64 {
    let (cpus, n) = cpu_mpidrs();
    if n < 2 {
        fail!("{what}: needs 2 vCPUs, the device tree has {n}");
    }
    let ret = psci::cpu_on(cpus[1], 1);
    if ret != 0 && ret != -4 && ret != -5 {
        fail!("{what}: CPU_ON({:#x}) returned {ret}", cpus[1]);
    }
    cpus[1]
}

/// Appends an entry to vCPU 0's interrupt log.
fn log(intid: u32, rpr: u8, depth: u32, extra: u32) {
    let i = LOG_LEN.fetch_add(1, Ordering::AcqRel);
    if let Some(slot) = LOG.get(i) {
        slot.store(
            u64::from(intid)
                | (u64::from(rpr) << 16)
                | (u64::from(depth & 0xff) << 24)
                | (u64::from(extra) << 32),
            Ordering::Release,
        );
    }
}

/// Log entry `i` as (INTID, RPR, depth, extra).
fn log_entry(i: usize) -> (u32, u8, u32, u32) {
    let e = LOG.get(i).map_or(0, |s| s.load(Ordering::Acquire));
    (
        (e & 0xffff) as u32,
        (e >> 16) as u8,
        ((e >> 24) & 0xff) as u32,
        (e >> 32) as u32,
    )
}

/// Clears the log and the counters.
fn reset_records() {
    LOG_LEN.store(0, Ordering::Release);
    for row in &RECEIVED {
        for c in row {
            c.store(0, Ordering::Release);
        }
    }
    for c in &OTHER {
        c.store(0, Ordering::Release);
    }
}

/// SGIs `intid` received by vCPU `c`.
fn received(c: usize, intid: u32) -> u32 {
    RECEIVED[c][intid as usize & 0xf].load(Ordering::Acquire)
}

/// Counts an interrupt on this vCPU.
fn count(intid: u32) {
    match RECEIVED[cpu()].get(intid as usize) {
        Some(c) => c.fetch_add(1, Ordering::AcqRel),
        None => OTHER[cpu()].fetch_add(1, Ordering::AcqRel),
    };
}

/// Handler: count and end.
fn count_handler(intid: u32) {
    count(intid);
    gic::eoir1(intid);
}

/// Distributor on, this vCPU's redistributor found, woken and configured
/// (SGIs enabled at priority 0xa0, PPIs off), CPU interface as Linux sets
/// it up. Returns RD_base.
fn setup_this_cpu(what: &str) -> usize {
    let me = mpidr();
    let Some(rd) = gic::redist_of(me) else {
        fail!("{what}: no redistributor has the affinity of MPIDR {me:#x}")
    };
    check!(what, gic::redist_wake(rd.base));
    check!(what, gic::redist_config(rd.base, 0xa0));
    MY_RD[cpu()].store(rd.base, Ordering::Release);
    gic::cpu_init();
    rd.base
}

/// vCPU 0's part of the common setup: the GIC from the device tree, the
/// distributor enabled, then its own CPU.
pub(crate) fn setup_boot_cpu(what: &str) -> usize {
    check!(what, gic::discover());
    check!(what, gic::dist_enable());
    setup_this_cpu(what)
}

// ---------------------------------------------------------------- vgic-regs

/// Results of vCPU 1's part of vgic-regs.
static SEC_DONE: AtomicBool = AtomicBool::new(false);
/// vCPU 1's MPIDR (as it reads it).
static SEC_MPIDR: AtomicU64 = AtomicU64::new(0);
/// vCPU 1's RD_base (0: none matched its MPIDR).
static SEC_RD: AtomicUsize = AtomicUsize::new(0);
/// GICR_WAKER before and after vCPU 1 woke its redistributor (u64::MAX: failed).
static SEC_WAKER: AtomicU64 = AtomicU64::new(0);

/// vCPU 1: finds its own redistributor by its MPIDR and wakes it.
fn regs_secondary(_index: u64) {
    let me = mpidr();
    SEC_MPIDR.store(me, Ordering::Release);
    if let Some(rd) = gic::redist_of(me) {
        SEC_RD.store(rd.base, Ordering::Release);
        let w = match gic::redist_wake(rd.base) {
            Ok((before, after, _)) => u64::from(before) | (u64::from(after) << 32),
            Err(_) => u64::MAX,
        };
        SEC_WAKER.store(w, Ordering::Release);
    }
    SEC_DONE.store(true, Ordering::Release);
}

/// vgic-regs: ID and type registers, each vCPU's redistributor, the
/// WAKER handshake, then nonsense writes that must be RAZ/WI.
pub fn regs() -> ! {
    const W: &str = "vgic-regs";
    check!(W, gic::discover());
    let d = gic::gicd_base();
    let (r0, rsize) = gic::first_region();
    println!("{W}: GICD at {d:#x}, redistributors at {r0:#x} ({rsize:#x} bytes)");

    let pidr2 = gic::read32(d + gicd::PIDR2);
    let arch = (pidr2 >> 4) & 0xf;
    if arch != 3 && arch != 4 {
        fail!("{W}: GICD_PIDR2 {pidr2:#x}: ArchRev {arch}, expected 3 (GICv3) or 4");
    }
    println!("PASS {W}: GICD_PIDR2.ArchRev {arch}");

    let typer = gic::read32(d + gicd::TYPER);
    let itl = typer & 0x1f;
    let id_bits = ((typer >> 19) & 0x1f) + 1;
    let lpis = (typer >> 17) & 1;
    let spis = (32 * (itl + 1)).min(1020) - 32;
    if id_bits < 10 || (lpis == 1 && id_bits < 14) {
        fail!("{W}: GICD_TYPER {typer:#x}: {id_bits} INTID bits cannot hold INTIDs up to 1023 (or LPIs from 8192)");
    }
    println!("PASS {W}: GICD_TYPER {typer:#x}: ITLinesNumber {itl} ({spis} SPIs) IDbits {id_bits} LPIS {lpis}");

    let iidr = gic::read32(d + gicd::IIDR);
    if gic::read32(d + gicd::IIDR) != iidr {
        fail!("{W}: GICD_IIDR reads differently twice");
    }
    println!(
        "PASS {W}: GICD_IIDR {iidr:#x} (Implementer {:#x} ProductID {:#x})",
        iidr & 0xfff,
        iidr >> 24
    );

    // ARE must stick once written (Linux relies on it; a vGIC has it RAO).
    check!(W, gic::dist_enable());
    let ctlr = gic::read32(d + gicd::CTLR);
    if ctlr & gicd::CTLR_ARE == 0 || ctlr & gicd::CTLR_GRP1 == 0 {
        fail!("{W}: GICD_CTLR {ctlr:#x} after enabling: ARE or EnableGrp1 not set");
    }
    println!("PASS {W}: GICD_CTLR {ctlr:#x}: ARE and EnableGrp1 set");

    redistributors(arch);
    wake_up();
    nonsense();

    // The GIC still works after the nonsense: an SGI to self, acknowledged
    // by polling ICC_IAR1_EL1 with IRQs masked (as a GICv3 allows).
    let rd = setup_this_cpu(W);
    gic::mask_irqs();
    gic::send_sgi1r(gic::sgi1r_to(mpidr(), 1));
    let mut got = 1023;
    wait_until(500, || {
        got = gic::iar1();
        got != 1023
    });
    if got != 1 {
        fail!("{W}: after the nonsense writes, ICC_IAR1_EL1 gave {got}, expected SGI 1");
    }
    gic::eoir1(1);
    if gic::read32(rd + gicr::ISACTIVER0) & 0xffff != 0 {
        fail!("{W}: SGI 1 still active after EOI");
    }
    println!("PASS {W}: the GIC still delivers: SGI 1 to self acknowledged and ended");
    println!("PASS {W}: done");
    psci::system_off()
}

/// Each vCPU's redistributor: Affinity equals its MPIDR, Processor_Number
/// distinct, Last only on the last, ArchRev like the distributor's.
fn redistributors(arch: u32) {
    const W: &str = "vgic-regs";
    let (cpus, n) = cpu_mpidrs();
    let mut frames = [gic::Redist { base: 0, typer: 0 }; 16];
    let mut count = 0;
    gic::for_each_redist(|r| {
        if count < frames.len() {
            frames[count] = r;
            count += 1;
            true
        } else {
            false
        }
    });
    if count != n {
        fail!("{W}: {count} redistributors found walking the region, {n} cpu nodes");
    }
    // vCPU 0 checks its own; vCPU 1 finds its own (by the MPIDR it reads).
    SEC_DONE.store(false, Ordering::Release);
    if n > 1 {
        start_vcpu1(W);
        if !post(regs_secondary) {
            fail!("{W}: vCPU 1 did not take its work within 2 s");
        }
        if !wait_until(2000, || SEC_DONE.load(Ordering::Acquire)) {
            fail!("{W}: vCPU 1 did not report its redistributor within 2 s");
        }
    }
    for (i, f) in frames[..count].iter().enumerate() {
        let my_mpidr = if i == 0 {
            mpidr()
        } else if i == 1 {
            SEC_MPIDR.load(Ordering::Acquire)
        } else {
            cpus[i]
        };
        let Some(owner) = cpus[..n]
            .iter()
            .position(|&m| gic::mpidr_to_affinity(m) == f.affinity())
        else {
            fail!(
                "{W}: redistributor at {:#x}: Affinity {:#x} matches no cpu node",
                f.base,
                f.affinity()
            )
        };
        if owner != i {
            fail!("{W}: redistributor {i} has cpu {owner}'s affinity: out of order");
        }
        if f.affinity() != gic::mpidr_to_affinity(my_mpidr) {
            fail!(
                "{W}: vcpu{i}: GICR_TYPER Affinity {:#x} but its MPIDR is {my_mpidr:#x}",
                f.affinity()
            );
        }
        if i == 1 && SEC_RD.load(Ordering::Acquire) != f.base {
            fail!(
                "{W}: vcpu1 found its redistributor at {:#x}, the walk at {:#x}",
                SEC_RD.load(Ordering::Acquire),
                f.base
            );
        }
        if frames[..count]
            .iter()
            .filter(|g| g.processor_number() == f.processor_number())
            .count()
            != 1
        {
            fail!(
                "{W}: Processor_Number {} is not unique",
                f.processor_number()
            );
        }
        let last = i + 1 == count;
        if f.last() != last {
            fail!(
                "{W}: vcpu{i}: GICR_TYPER {:#x}: Last is {} on redistributor {i} of {count}",
                f.typer,
                f.last()
            );
        }
        let r_arch = (gic::read32(f.base + gicr::PIDR2) >> 4) & 0xf;
        if r_arch != arch {
            fail!("{W}: vcpu{i}: GICR_PIDR2.ArchRev {r_arch}, GICD says {arch}");
        }
        println!(
            "PASS {W}: vcpu{i} GICR_TYPER {:#x}: Affinity {:#x} == MPIDR, Processor_Number {}, Last {}",
            f.typer,
            f.affinity(),
            f.processor_number(),
            u8::from(f.last())
        );
    }
}

/// Linux's wake-up of each vCPU's redistributor (vCPU 1 did its own).
fn wake_up() {
    const W: &str = "vgic-regs";
    let Some(rd) = gic::redist_of(mpidr()) else {
        fail!("{W}: no redistributor for vCPU 0")
    };
    let (before, after, polls) = check!(W, gic::redist_wake(rd.base));
    if after & gicr::WAKER_PROCESSOR_SLEEP != 0 {
        fail!("{W}: vcpu0 GICR_WAKER {after:#x}: ProcessorSleep did not clear");
    }
    println!("PASS {W}: vcpu0 GICR_WAKER {before:#x} -> {after:#x}: ChildrenAsleep clear after {polls} read(s)");
    if SEC_DONE.load(Ordering::Acquire) && SEC_RD.load(Ordering::Acquire) != 0 {
        let w = SEC_WAKER.load(Ordering::Acquire);
        if w == u64::MAX {
            fail!("{W}: vcpu1: GICR_WAKER.ChildrenAsleep did not clear");
        }
        let (before, after) = (w as u32, (w >> 32) as u32);
        if after & (gicr::WAKER_PROCESSOR_SLEEP | gicr::WAKER_CHILDREN_ASLEEP) != 0 {
            fail!("{W}: vcpu1 GICR_WAKER {after:#x} after waking");
        }
        println!("PASS {W}: vcpu1 GICR_WAKER {before:#x} -> {after:#x}: ChildrenAsleep clear");
    }
}

/// Reserved offsets and read-only registers: writes ignored, reserved
/// offsets read as zero (each write three times: the hypervisor logs once).
fn nonsense() {
    const W: &str = "vgic-regs";
    let d = gic::gicd_base();
    let Some(rd) = gic::redist_of(mpidr()) else {
        fail!("{W}: no redistributor for vCPU 0")
    };
    let rd = rd.base;
    let reserved = [
        ("GICD", d, 0x0018),
        ("GICD", d, 0x001c),
        ("GICD", d, 0x0044),
        ("GICD", d, 0x7fe0),
        ("GICR RD_base", rd, 0x0090),
        ("GICR RD_base", rd, 0x0800),
        ("GICR SGI_base", rd, gicr::SGI_BASE + 0x0004),
        ("GICR SGI_base", rd, gicr::SGI_BASE + 0x0040),
    ];
    for &(frame, base, off) in &reserved {
        for _ in 0..3 {
            gic::write32(base + off, 0xdead_beef);
        }
        let v = gic::read32(base + off);
        if v != 0 {
            fail!(
                "{W}: reserved {frame} offset {off:#x} reads {v:#x} after a write, expected RAZ/WI"
            );
        }
    }
    // Byte accesses to a reserved word: RAZ/WI too.
    gic::write8(d + 0x0019, 0xa5);
    let b = gic::read8(d + 0x0019);
    if b != 0 || gic::read32(d + 0x0018) != 0 {
        fail!("{W}: byte write to reserved GICD offset 0x19 reads back {b:#x}");
    }
    println!(
        "PASS {W}: {} reserved offsets (GICD, RD_base, SGI_base; word and byte) are RAZ/WI",
        reserved.len() + 1
    );

    let read_only = [
        ("GICD_TYPER", d + gicd::TYPER),
        ("GICD_IIDR", d + gicd::IIDR),
        ("GICD_PIDR2", d + gicd::PIDR2),
        ("GICR_IIDR", rd + gicr::IIDR),
        ("GICR_TYPER[31:0]", rd + gicr::TYPER),
        ("GICR_TYPER[63:32]", rd + gicr::TYPER + 4),
        ("GICR_PIDR2", rd + gicr::PIDR2),
    ];
    for &(name, addr) in &read_only {
        let v = gic::read32(addr);
        for _ in 0..3 {
            gic::write32(addr, !v);
        }
        let after = gic::read32(addr);
        if after != v {
            fail!("{W}: read-only {name} changed from {v:#x} to {after:#x} by a write");
        }
    }
    println!(
        "PASS {W}: writes to {} read-only registers ignored",
        read_only.len()
    );

    // Reserved GICD_CTLR bits (30:9) stay zero; the rest is restored.
    let ctlr = gic::read32(d + gicd::CTLR);
    gic::write32(d + gicd::CTLR, (ctlr | 0x7fff_fe00) & !gicd::CTLR_RWP);
    check!(W, gic::dist_wait_rwp());
    let after = gic::read32(d + gicd::CTLR);
    gic::write32(d + gicd::CTLR, ctlr & !gicd::CTLR_RWP);
    check!(W, gic::dist_wait_rwp());
    if after & 0x7fff_fe00 != 0 {
        fail!(
            "{W}: GICD_CTLR reserved bits 30:9 read {:#x} after being written",
            after & 0x7fff_fe00
        );
    }
    if gic::read32(d + gicd::CTLR) & !gicd::CTLR_RWP != ctlr & !gicd::CTLR_RWP {
        fail!("{W}: GICD_CTLR did not return to {ctlr:#x}");
    }
    println!("PASS {W}: GICD_CTLR reserved bits 30:9 read as zero after writing ones");
}

// --------------------------------------------------------------- vgic-timer

/// Timer interrupts taken.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// Timer interrupts taken with CNTV_CTL.ISTATUS clear (spurious).
static SPURIOUS: AtomicU32 = AtomicU32::new(0);
/// CNTVCT at each timer interrupt.
static STAMPS: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
/// Programmed period in counter ticks.
static PERIOD: AtomicU64 = AtomicU64::new(0);
/// Running priority seen in the last timer interrupt.
static TIMER_RPR: AtomicU32 = AtomicU32::new(0);
/// Interrupts the timer scenario wants.
const TIMER_TICKS: u32 = 20;
/// The EL1 virtual timer's PPI.
const VTIMER_PPI: u32 = 27;

/// Reads CNTV_CTL_EL0.
fn cntv_ctl() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual timer control has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntv_ctl_el0", out(reg) v) };
    v
}

/// Writes CNTV_CTL_EL0.
fn set_cntv_ctl(v: u64) {
    // SAFETY: this vCPU's virtual timer only.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, {}", "isb", in(reg) v) };
}

/// Writes CNTV_TVAL_EL0 (the next expiry, `v` ticks from now).
fn set_cntv_tval(v: u64) {
    // SAFETY: this vCPU's virtual timer only.
    unsafe { core::arch::asm!("msr cntv_tval_el0, {}", "isb", in(reg) v) };
}

/// Timer handler, as Linux's arch timer: ISTATUS must be set; rearm with
/// TVAL (which drops the level) or stop after the last tick; then EOI.
fn timer_handler(intid: u32) {
    if intid != VTIMER_PPI {
        count(intid);
        gic::eoir1(intid);
        return;
    }
    let now = counter();
    if cntv_ctl() & 0b100 == 0 {
        SPURIOUS.fetch_add(1, Ordering::AcqRel);
    }
    TIMER_RPR.store(u32::from(gic::rpr()), Ordering::Release);
    let n = TICKS.fetch_add(1, Ordering::AcqRel);
    if let Some(s) = STAMPS.get(n as usize) {
        s.store(now, Ordering::Release);
    }
    if n + 1 < TIMER_TICKS {
        set_cntv_tval(PERIOD.load(Ordering::Acquire));
    } else {
        set_cntv_ctl(0);
    }
    gic::eoir1(intid);
}

/// vgic-timer: 20 ticks of the EL1 virtual timer every 10 ms through PPI 27.
pub fn timer() -> ! {
    const W: &str = "vgic-timer";
    let rd = setup_boot_cpu(W);
    let period = freq() / 100;
    PERIOD.store(period, Ordering::Release);
    reset_records();
    gic::set_hook(Some(timer_handler));
    gic::set_priority(rd, VTIMER_PPI, 0x90);
    gic::enable_private(rd, VTIMER_PPI);
    if gic::read32(rd + gicr::ISENABLER0) & (1 << VTIMER_PPI) == 0 {
        fail!("{W}: PPI 27 not enabled in GICR_ISENABLER0 after setting it");
    }
    set_cntv_ctl(0);
    let start = counter();
    set_cntv_tval(period);
    set_cntv_ctl(1);
    gic::unmask_irqs();
    let done = wait_until(2000, || TICKS.load(Ordering::Acquire) >= TIMER_TICKS);
    settle(50); // any interrupt after the timer stopped would show up here
    gic::mask_irqs();
    set_cntv_ctl(0);
    check!(W, gic::disable_private(rd, VTIMER_PPI));
    let ticks = TICKS.load(Ordering::Acquire);
    if !done || ticks != TIMER_TICKS {
        fail!("{W}: {ticks} timer interrupts, expected exactly {TIMER_TICKS} (within 2 s)");
    }
    let spurious = SPURIOUS.load(Ordering::Acquire);
    let other = OTHER[0].load(Ordering::Acquire)
        + RECEIVED[0]
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .sum::<u32>();
    if spurious != 0 || other != 0 {
        fail!("{W}: {spurious} interrupts with CNTV_CTL.ISTATUS clear, {other} with another INTID");
    }
    let rpr = TIMER_RPR.load(Ordering::Acquire);
    if rpr != 0x90 {
        fail!("{W}: ICC_RPR_EL1 {rpr:#x} in the timer handler, expected its priority 0x90");
    }
    println!("PASS {W}: {ticks} interrupts from PPI 27 through ICC_IAR1_EL1 (running priority 0x90), none spurious");
    let us = |t: u64| t * 1_000_000 / freq();
    let mut prev = start;
    let (mut min, mut max) = (u64::MAX, 0);
    for s in &STAMPS[..TIMER_TICKS as usize] {
        let t = s.load(Ordering::Acquire);
        let d = t.wrapping_sub(prev);
        min = min.min(d);
        max = max.max(d);
        prev = t;
    }
    let mean = (prev - start) / u64::from(TIMER_TICKS);
    if min < period {
        fail!(
            "{W}: an interval of {} us is shorter than the programmed {} us",
            us(min),
            us(period)
        );
    }
    // How late ticks come depends on the host's load (TCG): reported, not
    // asserted. Early ticks would be a bug, and are checked above.
    println!(
        "PASS {W}: period from CNTVCT: min {} us, mean {} us, max {} us (programmed {} us)",
        us(min),
        us(mean),
        us(max),
        us(period)
    );
    println!("PASS {W}: done");
    psci::system_off()
}

// ----------------------------------------------------------------- vgic-sgi

/// Command for vCPU 1: kind << 32 | intid << 8 | count (0: none).
static COMMAND: AtomicU64 = AtomicU64::new(0);
/// Commands vCPU 1 completed.
static DONE: AtomicU32 = AtomicU32::new(0);
/// Commands vCPU 1 failed (an SGI it sent did not arrive).
static FAILED: AtomicU32 = AtomicU32::new(0);
/// vCPU 1 is set up and takes interrupts.
static READY: AtomicBool = AtomicBool::new(false);
/// Command kinds.
const CMD_TO_VCPU0: u64 = 1;
/// Send with IRM = 1 (every vCPU but the sender).
const CMD_BROADCAST: u64 = 2;
/// Return to the WFE loop.
const CMD_STOP: u64 = 3;

/// Sends `n` SGIs `intid` with ICC_SGI1R_EL1 value `value`, each only after
/// the previous one reached vCPU `to` (so none merge with a pending one).
fn send_counted(value: u64, intid: u32, n: u32, to: usize) -> bool {
    for _ in 0..n {
        let before = received(to, intid);
        gic::send_sgi1r(value);
        if !wait_until(500, || received(to, intid) > before) {
            return false;
        }
    }
    true
}

/// vCPU 1: takes SGIs and sends what vCPU 0 asks for, for at most 20 s.
fn sgi_responder(_index: u64) {
    let _ = setup_this_cpu("vgic-sgi vcpu1");
    gic::unmask_irqs();
    READY.store(true, Ordering::Release);
    let (cpus, _) = cpu_mpidrs();
    let end = counter() + freq() * 20;
    while counter() < end {
        let cmd = COMMAND.swap(0, Ordering::AcqRel);
        if cmd == 0 {
            core::hint::spin_loop();
            continue;
        }
        let (kind, intid, n) = (cmd >> 32, ((cmd >> 8) & 0xf) as u32, (cmd & 0xff) as u32);
        let ok = match kind {
            CMD_TO_VCPU0 => send_counted(gic::sgi1r_to(cpus[0], intid), intid, n, 0),
            CMD_BROADCAST => send_counted(gic::sgi1r_broadcast(intid), intid, n, 0),
            _ => {
                DONE.fetch_add(1, Ordering::AcqRel);
                break;
            }
        };
        if !ok {
            FAILED.fetch_add(1, Ordering::AcqRel);
        }
        DONE.fetch_add(1, Ordering::AcqRel);
    }
    gic::mask_irqs();
    READY.store(false, Ordering::Release);
}

/// Has vCPU 1 run command `kind`; bounded; true if it succeeded.
fn ask_vcpu1(kind: u64, intid: u32, n: u32) -> bool {
    let done = DONE.load(Ordering::Acquire);
    let failed = FAILED.load(Ordering::Acquire);
    COMMAND.store(
        (kind << 32) | (u64::from(intid) << 8) | u64::from(n),
        Ordering::Release,
    );
    wait_until(5000, || DONE.load(Ordering::Acquire) > done)
        && FAILED.load(Ordering::Acquire) == failed
}

/// vgic-sgi: SGIs between vCPU 0 and 1 by affinity and by IRM = 1; both
/// count exactly what was sent.
pub fn sgi() -> ! {
    const W: &str = "vgic-sgi";
    let (cpus, _) = cpu_mpidrs();
    setup_boot_cpu(W);
    start_vcpu1(W);
    reset_records();
    gic::set_hook(Some(count_handler));
    gic::unmask_irqs();
    if !post(sgi_responder) {
        fail!("{W}: vCPU 1 did not take its work within 2 s");
    }
    if !wait_until(2000, || READY.load(Ordering::Acquire)) {
        fail!("{W}: vCPU 1 did not set up its GIC within 2 s");
    }
    if !send_counted(gic::sgi1r_to(cpus[1], 1), 1, 5, 1) {
        fail!(
            "{W}: vcpu0 -> vcpu1 by affinity: SGI 1 not received ({} of 5 arrived)",
            received(1, 1)
        );
    }
    println!(
        "PASS {W}: vcpu0 -> vcpu1 by affinity ({:#x}): SGI 1 x5 received one by one",
        gic::sgi1r_to(cpus[1], 1)
    );
    if !ask_vcpu1(CMD_TO_VCPU0, 2, 5) {
        fail!(
            "{W}: vcpu1 -> vcpu0 by affinity: SGI 2 not received ({} of 5 arrived)",
            received(0, 2)
        );
    }
    println!("PASS {W}: vcpu1 -> vcpu0 by affinity: SGI 2 x5 received one by one");
    if !send_counted(gic::sgi1r_broadcast(3), 3, 3, 1) {
        fail!(
            "{W}: vcpu0 broadcast (IRM=1): SGI 3 not received by vcpu1 ({} of 3 arrived)",
            received(1, 3)
        );
    }
    println!("PASS {W}: vcpu0 broadcast (IRM=1): SGI 3 x3 received by vcpu1");
    if !ask_vcpu1(CMD_BROADCAST, 4, 3) {
        fail!(
            "{W}: vcpu1 broadcast (IRM=1): SGI 4 not received by vcpu0 ({} of 3 arrived)",
            received(0, 4)
        );
    }
    println!("PASS {W}: vcpu1 broadcast (IRM=1): SGI 4 x3 received by vcpu0");
    settle(50); // late duplicates would arrive here
    let _ = ask_vcpu1(CMD_STOP, 0, 0);
    gic::mask_irqs();
    let mut expected = [[0u32; 16]; 2];
    expected[0][2] = 5;
    expected[0][4] = 3;
    expected[1][1] = 5;
    expected[1][3] = 3;
    for (c, row) in expected.iter().enumerate() {
        for (intid, &want) in row.iter().enumerate() {
            let got = received(c, intid as u32);
            if got != want {
                fail!("{W}: vcpu{c} received SGI {intid} {got} times, {want} were sent to it");
            }
        }
        let other = OTHER[c].load(Ordering::Acquire);
        if other != 0 {
            fail!("{W}: vcpu{c} took {other} interrupts that are not SGIs");
        }
    }
    println!("PASS {W}: counts exact: vcpu0 got SGI 2 x5 and SGI 4 x3, vcpu1 got SGI 1 x5 and SGI 3 x3, nothing else (no sender got its own broadcast)");
    println!("PASS {W}: done");
    psci::system_off()
}

// ------------------------------------------------------------ vgic-priority

/// Handler: log INTID and running priority, count, end.
fn order_handler(intid: u32) {
    log(intid, gic::rpr(), DEPTH.load(Ordering::Acquire) + 1, 0);
    count(intid);
    gic::eoir1(intid);
}

/// In SGI 6's handler: SGI 7 preempted it.
static PREEMPTED: AtomicBool = AtomicBool::new(false);
/// In SGI 6's handler: SGI 4 (lower priority) was taken too early.
static LOW_EARLY: AtomicBool = AtomicBool::new(false);
/// In SGI 6's handler: running priority after SGI 7 returned.
static RPR_BACK: AtomicU32 = AtomicU32::new(0);

/// Handler of the preemption test: in SGI 6 (priority 0xa0) send SGI 4
/// (0xc0, must wait) and SGI 7 (0x20, must preempt), with IRQs re-enabled.
fn preempt_handler(intid: u32) {
    let depth = DEPTH.fetch_add(1, Ordering::AcqRel) + 1;
    log(intid, gic::rpr(), depth, 0);
    if intid == 6 {
        let me = mpidr();
        gic::send_sgi1r(gic::sgi1r_to(me, 4));
        gic::send_sgi1r(gic::sgi1r_to(me, 7));
        gic::unmask_irqs();
        let c = cpu();
        PREEMPTED.store(wait_until(500, || received(c, 7) > 0), Ordering::Release);
        settle(20); // SGI 4 would (wrongly) be taken here
        LOW_EARLY.store(received(c, 4) > 0, Ordering::Release);
        RPR_BACK.store(u32::from(gic::rpr()), Ordering::Release);
        gic::mask_irqs();
    }
    count(intid);
    DEPTH.fetch_sub(1, Ordering::AcqRel);
    gic::eoir1(intid);
}

/// vgic-priority: PMR masking, priority order with more pending SGIs than
/// list registers, and preemption with the running priority.
pub fn priority() -> ! {
    const W: &str = "vgic-priority";
    let rd = setup_boot_cpu(W);
    let me = mpidr();

    // PMR: an SGI of priority 0x80 stays pending under PMR 0x80.
    reset_records();
    gic::set_hook(Some(count_handler));
    gic::set_priority(rd, 5, 0x80);
    gic::set_pmr(0x80);
    if gic::pmr() != 0x80 {
        fail!(
            "{W}: ICC_PMR_EL1 reads {:#x} after writing 0x80",
            gic::pmr()
        );
    }
    gic::unmask_irqs();
    gic::send_sgi1r(gic::sgi1r_to(me, 5));
    settle(20);
    if received(0, 5) != 0 {
        fail!("{W}: SGI 5 (priority 0x80) taken although ICC_PMR_EL1 is 0x80");
    }
    let pend = gic::read32(rd + gicr::ISPENDR0);
    if pend & (1 << 5) == 0 {
        fail!("{W}: SGI 5 masked by PMR is not pending in GICR_ISPENDR0 ({pend:#x})");
    }
    println!("PASS {W}: SGI 5 (priority 0x80) stays pending under ICC_PMR_EL1 0x80 (GICR_ISPENDR0 {pend:#x})");
    gic::set_pmr(0x90);
    if !wait_until(500, || received(0, 5) > 0) {
        fail!("{W}: SGI 5 not taken after raising ICC_PMR_EL1 to 0x90");
    }
    settle(10);
    if received(0, 5) != 1 {
        fail!("{W}: SGI 5 taken {} times, sent once", received(0, 5));
    }
    gic::mask_irqs();
    gic::set_pmr(0xff);
    println!("PASS {W}: SGI 5 taken once after raising ICC_PMR_EL1 to 0x90");

    // Order: 8 SGIs pending at once (more than QEMU's 4 list registers).
    const PRIOS: [u8; 8] = [0x50, 0x10, 0x70, 0x30, 0x80, 0x20, 0x60, 0x40];
    reset_records();
    gic::set_hook(Some(order_handler));
    for (i, &p) in PRIOS.iter().enumerate() {
        gic::set_priority(rd, 8 + i as u32, p);
    }
    for i in 0..8 {
        gic::send_sgi1r(gic::sgi1r_to(me, 8 + i));
    }
    let all = 0xff00;
    let ok = wait_until(100, || gic::read32(rd + gicr::ISPENDR0) & all == all);
    let pend = gic::read32(rd + gicr::ISPENDR0);
    if !ok {
        fail!("{W}: 8 SGIs sent with IRQs masked, GICR_ISPENDR0 {pend:#x} (expected bits 8-15)");
    }
    gic::unmask_irqs();
    wait_until(500, || LOG_LEN.load(Ordering::Acquire) >= 8);
    settle(20);
    gic::mask_irqs();
    let taken = LOG_LEN.load(Ordering::Acquire);
    let mut want = [0u32; 8];
    for (slot, intid) in want.iter_mut().zip({
        let mut ids = [8u32, 9, 10, 11, 12, 13, 14, 15];
        ids.sort_unstable_by_key(|&i| PRIOS[(i - 8) as usize]);
        ids
    }) {
        *slot = intid;
    }
    if taken != 8 {
        fail!("{W}: {taken} interrupts taken after unmasking 8 pending SGIs");
    }
    for (k, &intid) in want.iter().enumerate() {
        let (got, rpr, _, _) = log_entry(k);
        let prio = PRIOS[(intid - 8) as usize];
        if got != intid {
            fail!("{W}: interrupt {k} taken was SGI {got}, expected SGI {intid} (priority {prio:#x}); priority order broken");
        }
        if rpr != prio {
            fail!("{W}: ICC_RPR_EL1 {rpr:#x} in SGI {intid}'s handler, expected {prio:#x}");
        }
        if received(0, intid) != 1 {
            fail!("{W}: SGI {intid} taken {} times", received(0, intid));
        }
    }
    println!(
        "PASS {W}: 8 pending SGIs taken in priority order {:?}, each once, ICC_RPR_EL1 = its priority",
        want
    );

    // Preemption.
    reset_records();
    gic::set_priority(rd, 6, 0xa0);
    gic::set_priority(rd, 7, 0x20);
    gic::set_priority(rd, 4, 0xc0);
    gic::set_hook(Some(preempt_handler));
    gic::unmask_irqs();
    gic::send_sgi1r(gic::sgi1r_to(me, 6));
    wait_until(1000, || received(0, 4) > 0 && received(0, 6) > 0);
    settle(20);
    gic::mask_irqs();
    let idle = gic::rpr();
    let n = LOG_LEN.load(Ordering::Acquire);
    let entries = [log_entry(0), log_entry(1), log_entry(2)];
    let want = [(6, 0xa0, 1), (7, 0x20, 2), (4, 0xc0, 1)];
    if n != 3
        || entries
            .iter()
            .zip(&want)
            .any(|(e, w)| (e.0, e.1, e.2) != *w)
    {
        fail!(
            "{W}: preemption: taken (INTID, RPR, depth) {:?} (count {n}), expected {want:?}",
            [
                (entries[0].0, entries[0].1, entries[0].2),
                (entries[1].0, entries[1].1, entries[1].2),
                (entries[2].0, entries[2].1, entries[2].2)
            ]
        );
    }
    if !PREEMPTED.load(Ordering::Acquire) || LOW_EARLY.load(Ordering::Acquire) {
        fail!(
            "{W}: preemption: SGI 7 preempted: {}, SGI 4 taken inside SGI 6: {}",
            PREEMPTED.load(Ordering::Acquire),
            LOW_EARLY.load(Ordering::Acquire)
        );
    }
    let back = RPR_BACK.load(Ordering::Acquire);
    if back != 0xa0 || idle != 0xff {
        fail!("{W}: ICC_RPR_EL1 {back:#x} back in SGI 6's handler (expected 0xa0), {idle:#x} when idle (expected 0xff)");
    }
    println!("PASS {W}: SGI 7 (0x20) preempted SGI 6 (0xa0) with IRQs re-enabled in the handler; SGI 4 (0xc0) waited until SGI 6 ended");
    println!("PASS {W}: ICC_RPR_EL1 0xa0 in SGI 6, 0x20 in SGI 7, 0xa0 again after it, 0xc0 in SGI 4, 0xff when idle");
    println!("PASS {W}: done");
    psci::system_off()
}

// ------------------------------------------------------------- vgic-eoimode

/// Per SGI instance seen by the EOImode handler: RPR after EOIR | active << 8.
static AFTER_EOIR: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];

/// Handler with EOImode = 1: EOIR (priority drop), note the running
/// priority and GICR_ISACTIVER0; deactivate with DIR except the first
/// SGI 10, which stays active for the main flow to check and deactivate.
fn eoi_handler(intid: u32) {
    let rpr = gic::rpr();
    gic::eoir1(intid);
    let dropped = gic::rpr();
    let rd = MY_RD[cpu()].load(Ordering::Acquire);
    let active = (gic::read32(rd + gicr::ISACTIVER0) >> intid) & 1;
    let i = LOG_LEN.load(Ordering::Acquire);
    if let Some(s) = AFTER_EOIR.get(i) {
        s.store(u32::from(dropped) | (active << 8), Ordering::Release);
    }
    let first_10 = intid == 10 && received(cpu(), 10) == 0;
    log(intid, rpr, 1, 0);
    count(intid);
    if !first_10 {
        gic::dir(intid);
    }
}

/// Whether `intid` is active in GICR_ISACTIVER0 of `rd`.
fn is_active(rd: usize, intid: u32) -> bool {
    gic::read32(rd + gicr::ISACTIVER0) & (1 << intid) != 0
}

/// Whether `intid` is pending in GICR_ISPENDR0 of `rd`.
fn is_pending(rd: usize, intid: u32) -> bool {
    gic::read32(rd + gicr::ISPENDR0) & (1 << intid) != 0
}

/// vgic-eoimode: with ICC_CTLR_EL1.EOImode = 1, EOIR drops the priority
/// and DIR deactivates, separately.
pub fn eoimode() -> ! {
    const W: &str = "vgic-eoimode";
    let rd = setup_boot_cpu(W);
    let me = mpidr();
    reset_records();
    gic::set_priority(rd, 10, 0x40);
    gic::set_priority(rd, 11, 0x80);
    gic::set_ctlr(gic::ctlr() | gic::CTLR_EOIMODE);
    let ctlr = gic::ctlr();
    if ctlr & gic::CTLR_EOIMODE == 0 {
        fail!("{W}: ICC_CTLR_EL1 {ctlr:#x}: EOImode did not stick");
    }
    println!("PASS {W}: ICC_CTLR_EL1.EOImode set ({ctlr:#x})");
    gic::set_hook(Some(eoi_handler));
    gic::unmask_irqs();

    gic::send_sgi1r(gic::sgi1r_to(me, 10));
    if !wait_until(500, || received(0, 10) > 0) {
        fail!("{W}: SGI 10 not taken");
    }
    let (_, rpr, _, _) = log_entry(0);
    let after = AFTER_EOIR[0].load(Ordering::Acquire);
    if rpr != 0x40 || after & 0xff != 0xff || after >> 8 != 1 {
        fail!("{W}: SGI 10: ICC_RPR_EL1 {rpr:#x} before EOIR (expected 0x40), {:#x} after (expected 0xff), active after EOIR: {}", after & 0xff, after >> 8);
    }
    if !is_active(rd, 10) {
        fail!("{W}: SGI 10 not active in GICR_ISACTIVER0 after EOIR, before DIR");
    }
    println!("PASS {W}: SGI 10 after ICC_EOIR1_EL1: running priority 0x40 -> 0xff (dropped), still active in GICR_ISACTIVER0");

    // Sent again while active: must stay pending, not be taken.
    gic::send_sgi1r(gic::sgi1r_to(me, 10));
    settle(20);
    if received(0, 10) != 1 {
        fail!("{W}: SGI 10 taken again while still active (not yet deactivated)");
    }
    if !is_pending(rd, 10) || !is_active(rd, 10) {
        fail!(
            "{W}: SGI 10 sent again while active: pending {} active {}, expected both",
            is_pending(rd, 10),
            is_active(rd, 10)
        );
    }
    println!("PASS {W}: SGI 10 sent again while active stays active and pending, not taken");

    // A lower-priority SGI is taken: the priority was dropped.
    gic::send_sgi1r(gic::sgi1r_to(me, 11));
    if !wait_until(500, || received(0, 11) > 0) {
        fail!(
            "{W}: SGI 11 (priority 0x80) not taken while SGI 10 is active after its priority drop"
        );
    }
    if is_active(rd, 11) || !is_active(rd, 10) {
        fail!(
            "{W}: after SGI 11's EOIR+DIR: SGI 11 active {}, SGI 10 active {}",
            is_active(rd, 11),
            is_active(rd, 10)
        );
    }
    println!("PASS {W}: SGI 11 (priority 0x80) taken and deactivated while SGI 10 stays active");

    // DIR from outside the handler: SGI 10 deactivated, its pending instance follows.
    gic::dir(10);
    if !wait_until(500, || received(0, 10) >= 2) {
        fail!("{W}: after ICC_DIR_EL1 of SGI 10, its pending instance was not taken");
    }
    settle(20);
    gic::mask_irqs();
    let act = gic::read32(rd + gicr::ISACTIVER0) & 0xffff;
    let pend = gic::read32(rd + gicr::ISPENDR0) & 0xffff;
    if received(0, 10) != 2 || received(0, 11) != 1 || act != 0 || pend != 0 {
        fail!("{W}: at the end SGI 10 taken {} times (2 sent), SGI 11 {} (1 sent), GICR_ISACTIVER0 {act:#x}, GICR_ISPENDR0 {pend:#x}", received(0, 10), received(0, 11));
    }
    println!("PASS {W}: ICC_DIR_EL1 deactivated SGI 10, its pending instance then taken once; nothing left active or pending");
    gic::set_ctlr(gic::ctlr() & !gic::CTLR_EOIMODE);
    if gic::ctlr() & gic::CTLR_EOIMODE != 0 {
        fail!("{W}: EOImode did not clear");
    }
    println!("PASS {W}: done");
    psci::system_off()
}
