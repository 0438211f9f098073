//! The scenarios, chosen by `scenario=` in bootargs.

use super::{delay_ms, fdt, mpidr, psci, ram_end};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// vCPUs (other than 0) that have come up.
static SECONDARIES_UP: AtomicU64 = AtomicU64::new(0);
/// Whether the next synchronous exception is an expected data abort.
static EXPECT_ABORT: AtomicBool = AtomicBool::new(false);
/// Whether the next synchronous exception is an expected undefined
/// instruction (ESR_EL1.EC 0).
static EXPECT_UNDEF: AtomicBool = AtomicBool::new(false);
/// ESR_EL1 of the last expected abort (0: none seen).
static ABORT_ESR: AtomicU64 = AtomicU64::new(0);
/// FAR_EL1 of the last expected abort.
static ABORT_FAR: AtomicU64 = AtomicU64::new(0);

/// Runs `scenario` on vCPU 0.
pub fn run(scenario: &str, boots: usize) -> ! {
    match scenario {
        "hello" => {
            hello();
            psci::system_off()
        }
        "gicv2" => {
            hello();
            super::gicv2_tests::run()
        }
        "ticker" => {
            hello();
            ticker()
        }
        "escape" => {
            hello();
            escape();
            ticker()
        }
        "stuck" => {
            hello();
            stuck()
        }
        "reset" => {
            // vCPU 1 runs (waiting in WFE, which does not trap) while vCPU 0
            // resets the partition: the hypervisor must pull it out.
            hello();
            if boots == 0 {
                println!("reset: first boot, asking for SYSTEM_RESET");
                psci::system_reset()
            }
            println!("PASS reset: partition came back, boot-count {boots}");
            ticker()
        }
        "passthrough" => {
            super::pci_tests::passthrough();
            psci::system_off()
        }
        "passthrough-wfi" => {
            super::pci_tests::passthrough_wfi();
            psci::system_off()
        }
        "passthrough-msix" => {
            super::msix_tests::passthrough_msix();
            psci::system_off()
        }
        "passthrough-pair" => {
            super::pci_tests::passthrough_pair();
            psci::system_off()
        }
        "passthrough-reset" => {
            // Returns only on a boot after the reset.
            super::pci_tests::passthrough_reset(boots);
            psci::system_off()
        }
        "dma-isolation" => {
            super::dma_tests::dma_isolation();
            psci::system_off()
        }
        "dma-victim" => {
            hello();
            super::dma_tests::dma_victim();
            psci::system_off()
        }
        "dma-reset" => {
            // Returns only on a boot after the reset.
            super::dma_tests::dma_reset(boots);
            psci::system_off()
        }
        "cpu-features" => {
            cpu_features();
            psci::system_off()
        }
        "vlpi" => {
            vlpi();
            ticker()
        }
        "vmovp" => super::vmovp_tests::vmovp(),
        "vgic-regs" => super::vgic_tests::regs(),
        "vgic-timer" => super::vgic_tests::timer(),
        "vgic-sgi" => super::vgic_tests::sgi(),
        "vgic-priority" => super::vgic_tests::priority(),
        "vgic-eoimode" => super::vgic_tests::eoimode(),
        "timer-both" => super::timer_tests::both(),
        "timer-pending" => super::timer_tests::pending(),
        "pending-table" => super::pending_table_tests::run(),
        "flood" => super::flood_tests::flood(),
        "flood-neighbour" => super::flood_tests::neighbour(),
        s @ ("vits-basic" | "vits-pending-moves" | "vits-config" | "vits-garbage"
        | "vits-second") => {
            // The vITS scenarios and their ITS driver (vits_tests.rs, its.rs).
            super::vits_tests::run(s)
        }
        other => {
            println!("FAIL unknown scenario {other:?}");
            psci::system_off()
        }
    }
}

/// Runs on secondary vCPU `index`.
pub fn secondary(index: u64) -> ! {
    println!("vcpu{index} up: mpidr {:#x}", mpidr());
    SECONDARIES_UP.fetch_add(1, Ordering::AcqRel);
    loop {
        // SAFETY: WFE only waits.
        unsafe { core::arch::asm!("wfe") };
        super::vgic_tests::secondary_poll(index);
    }
}

/// Runs `f`, which is to take (at most) one synchronous exception of class
/// `class` (0x25: data abort from EL1, 0: unknown/undefined) that resumes
/// after the faulting instruction; returns its ESR_EL1 (0: none taken).
/// Any other exception meanwhile fails as usual.
pub(super) fn expecting_fault(class: u64, f: impl FnOnce()) -> u64 {
    let flag = if class == 0 {
        &EXPECT_UNDEF
    } else {
        &EXPECT_ABORT
    };
    ABORT_ESR.store(0, Ordering::Release);
    flag.store(true, Ordering::Release);
    f();
    flag.store(false, Ordering::Release);
    ABORT_ESR.load(Ordering::Acquire)
}

/// Handles a synchronous exception; returns where to resume.
pub fn on_sync_exception(esr: u64, far: u64, elr: u64) -> u64 {
    let class = esr >> 26;
    if EXPECT_ABORT.swap(false, Ordering::AcqRel) && class == 0x25 {
        ABORT_ESR.store(esr, Ordering::Release);
        ABORT_FAR.store(far, Ordering::Release);
        return elr + 4;
    }
    if EXPECT_UNDEF.swap(false, Ordering::AcqRel) && class == 0 {
        ABORT_ESR.store(esr, Ordering::Release);
        return elr + 4;
    }
    println!(
        "FAIL unexpected synchronous exception: ESR_EL1={esr:#x} FAR_EL1={far:#x} ELR_EL1={elr:#x}"
    );
    psci::system_off()
}

/// The CPU the hypervisor shows: the ID register fields of the features
/// it does not handle read as absent, and an SVE instruction (which the
/// CPU has under `-cpu max`, but the hypervisor traps) is undefined.
fn cpu_features() {
    macro_rules! id_reg {
        ($name:literal) => {{
            let v: u64;
            // SAFETY: reading an ID register has no side effect.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v) };
            v
        }};
    }
    let field = |v: u64, shift: u32| (v >> shift) & 0xf;
    let pfr0 = id_reg!("id_aa64pfr0_el1");
    let pfr1 = id_reg!("id_aa64pfr1_el1");
    let isar1 = id_reg!("id_aa64isar1_el1");
    let mmfr0 = id_reg!("id_aa64mmfr0_el1");
    let zfr0 = id_reg!("S3_0_C0_C4_4");
    let checks = [
        ("SVE", field(pfr0, 32), 0),
        ("RAS", field(pfr0, 28), 0),
        ("EL2", field(pfr0, 8), 0),
        ("GIC", field(pfr0, 24), 1),
        ("MTE", field(pfr1, 8), 0),
        ("SME", field(pfr1, 24), 0),
        ("APA", field(isar1, 4), 0),
        ("API", field(isar1, 8), 0),
        ("GPA", field(isar1, 24), 0),
        ("GPI", field(isar1, 28), 0),
        ("ZFR0", zfr0, 0),
        ("PARange", field(mmfr0, 0), 2),
    ];
    for (name, got, want) in checks {
        if got != want {
            println!("FAIL cpu-features: {name} reads {got:#x}, expected {want:#x}");
            psci::system_off();
        }
    }
    println!("PASS cpu-features: SVE, RAS, EL2, MTE, SME, pointer authentication read as absent, GIC as system registers, PARange 40 bits");
    println!("cpu-features: PFR0 {pfr0:#x} PFR1 {pfr1:#x} ISAR1 {isar1:#x} MMFR0 {mmfr0:#x}");
    ABORT_ESR.store(0, Ordering::Release);
    EXPECT_UNDEF.store(true, Ordering::Release);
    // A guest that enables SVE at EL1 anyway (CPACR_EL1.ZEN), so that only
    // the hypervisor's trap (CPTR_EL2.TZ) stands between it and the unit.
    // SAFETY: RDVL x0, #1 (SVE) only writes x0, or is undefined; CPACR_EL1
    // is put back (FP/SIMD enabled, SVE trapped at EL1) after it.
    unsafe {
        core::arch::asm!(
            "mrs {saved}, cpacr_el1",
            "orr {tmp}, {saved}, #(3 << 16)",
            "msr cpacr_el1, {tmp}",
            "isb",
            ".inst 0x04bf5020",
            "msr cpacr_el1, {saved}",
            "isb",
            saved = out(reg) _,
            tmp = out(reg) _,
            out("x0") _,
        )
    };
    let esr = ABORT_ESR.load(Ordering::Acquire);
    if EXPECT_UNDEF.swap(false, Ordering::AcqRel) || esr >> 26 != 0 {
        println!("FAIL cpu-features: an SVE instruction ran (or faulted with ESR_EL1 {esr:#x}) instead of being undefined");
        psci::system_off();
    }
    println!("PASS cpu-features: an SVE instruction is undefined (ESR_EL1 {esr:#x})");
    ABORT_ESR.store(0, Ordering::Release);
    EXPECT_UNDEF.store(true, Ordering::Release);
    // An IMPLEMENTATION DEFINED system register (op0 3, CRn 15): the
    // hypervisor traps it (HCR_EL2.TIDCP) and it is undefined for us.
    // SAFETY: a read of S3_0_C15_C0_0 only writes x0, or is undefined.
    unsafe { core::arch::asm!("mrs x0, S3_0_C15_C0_0", out("x0") _) };
    let esr = ABORT_ESR.load(Ordering::Acquire);
    if EXPECT_UNDEF.swap(false, Ordering::AcqRel) || esr >> 26 != 0 {
        println!("FAIL cpu-features: an IMPLEMENTATION DEFINED register read was not undefined (ESR_EL1 {esr:#x})");
        psci::system_off();
    }
    println!(
        "PASS cpu-features: an IMPLEMENTATION DEFINED register is undefined (ESR_EL1 {esr:#x})"
    );
}

/// PSCI version, then every other vCPU started with CPU_ON.
fn hello() {
    let version = psci::call(psci::PSCI_VERSION, 0, 0, 0);
    println!("psci version {}.{}", version >> 16, version & 0xffff);
    let cpus: heapless_cpus::Cpus = heapless_cpus::collect();
    let mut started = 0;
    for (index, &mpidr) in cpus.ids().iter().enumerate().skip(1) {
        let ret = psci::cpu_on(mpidr, index as u64);
        if ret != 0 {
            println!("FAIL cpu_on({mpidr:#x}) returned {ret}");
            psci::system_off();
        }
        started += 1;
        // Starting a vCPU that is on already must fail with ALREADY_ON (-4).
        let again = psci::cpu_on(mpidr, index as u64);
        if again != -4 && again != -5 {
            println!("FAIL second cpu_on({mpidr:#x}) returned {again}, expected ALREADY_ON or ON_PENDING");
            psci::system_off();
        }
    }
    for _ in 0..2000 {
        if SECONDARIES_UP.load(Ordering::Acquire) == started {
            break;
        }
        delay_ms(1);
    }
    let up = SECONDARIES_UP.load(Ordering::Acquire);
    if up != started {
        println!("FAIL only {up} of {started} secondary vCPUs came up");
        psci::system_off();
    }
    for &mpidr in cpus.ids().iter().skip(1) {
        let state = psci::call(psci::AFFINITY_INFO, mpidr, 0, 0);
        if state != 0 {
            println!("FAIL affinity_info({mpidr:#x}) = {state}, expected ON (0)");
            psci::system_off();
        }
    }
    println!("PASS hello: {} vcpus up", up + 1);
}

/// Touches memory outside the partition's RAM: expects an abort each time.
/// Targets: the addresses in bootarg `escape=A,B,...` (e.g. where another
/// partition's RAM sits physically), else the first byte past our RAM.
fn escape() {
    let ram_end = ram_end();
    match super::bootarg("escape") {
        Some(list) => {
            for target in list
                .split(',')
                .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
            {
                escape_at(target);
            }
        }
        None => escape_at(ram_end),
    }
    pair_access_to_console();
}

/// A load pair from the virtual console: it traps without a syndrome the
/// hypervisor can emulate, so an abort must come back (not a wrong value).
fn pair_access_to_console() {
    let base = fdt()
        .chosen()
        .stdout()
        .and_then(|n| n.reg())
        .and_then(|mut r| r.next())
        .map_or(0, |r| r.starting_address as u64);
    ABORT_ESR.store(0, Ordering::Release);
    EXPECT_ABORT.store(true, Ordering::Release);
    // SAFETY: reads two device registers; the hypervisor must refuse.
    unsafe {
        core::arch::asm!("ldp {a}, {b}, [{base}]", base = in(reg) base, a = out(reg) _, b = out(reg) _)
    };
    let esr = ABORT_ESR.load(Ordering::Acquire);
    if esr == 0 {
        println!("FAIL escape: a load pair from the console at {base:#x} was not refused");
        psci::system_off();
    }
    println!("PASS escape: load pair from the console aborted (ESR_EL1={esr:#x})");
}

fn escape_at(target: u64) {
    for (what, write) in [("read", false), ("write", true)] {
        ABORT_ESR.store(0, Ordering::Release);
        EXPECT_ABORT.store(true, Ordering::Release);
        // SAFETY: deliberately out of bounds; the hypervisor must contain it.
        unsafe {
            if write {
                core::ptr::write_volatile(target as *mut u64, 0xdead_beef);
            } else {
                let _ = core::ptr::read_volatile(target as *const u64);
            }
        }
        let esr = ABORT_ESR.load(Ordering::Acquire);
        let far = ABORT_FAR.load(Ordering::Acquire);
        if esr == 0 {
            println!("FAIL escape: {what} at {target:#x} outside the partition did not abort");
            psci::system_off();
        }
        println!("PASS escape: {what} at {target:#x} aborted (ESR_EL1={esr:#x} FAR_EL1={far:#x})");
    }
}

/// A broken guest: its exception handler returns to the instruction that
/// faulted, which faults again, forever (what a kernel that lost its
/// vectors, or a file that is not a kernel, does). The hypervisor must stop
/// this partition with a reason, and nothing else may notice.
pub(super) fn stuck() -> ! {
    let ram_end = ram_end();
    println!("stuck: faulting at {ram_end:#x} with a handler that returns to the fault");
    // SAFETY: installs vectors whose every entry is `eret`, then reads past
    // the partition's RAM: the injected abort returns to the same load.
    unsafe {
        core::arch::asm!(
            "msr vbar_el1, {v}",
            "isb",
            "2: ldr {tmp}, [{addr}]",
            "b 2b",
            v = in(reg) super::boot::eret_vectors_addr(),
            addr = in(reg) ram_end,
            tmp = out(reg) _,
        );
    }
    // Not reached: the load never completes.
    println!("FAIL stuck: the load outside the partition completed");
    psci::system_off()
}

/// Prints a numbered tick every 100 ms, forever.
fn ticker() -> ! {
    let mut n = 0u64;
    loop {
        println!("tick {n}");
        n += 1;
        delay_ms(100);
    }
}

/// The MPIDRs of the vCPUs in the device tree, without a heap.
mod heapless_cpus {
    /// Up to 16 MPIDRs.
    pub struct Cpus {
        ids: [u64; 16],
        len: usize,
    }

    impl Cpus {
        /// The MPIDRs found.
        pub fn ids(&self) -> &[u64] {
            &self.ids[..self.len]
        }
    }

    /// Collects the `reg` of every /cpus/cpu node.
    pub fn collect() -> Cpus {
        let mut c = Cpus {
            ids: [0; 16],
            len: 0,
        };
        for cpu in super::fdt().cpus() {
            if c.len < 16 {
                c.ids[c.len] = cpu.ids().first() as u64;
                c.len += 1;
            }
        }
        c
    }
}

/// The hypervisor's count of this vCPU's exits (for other scenario files).
pub fn exit_count_pub() -> u64 {
    exit_count()
}

/// The hypervisor's count of this vCPU's exits (vendor hypercall).
fn exit_count() -> u64 {
    psci::call(0xc600_0001, 0, 0, 0) as u64
}

/// Waits (bounded, 1 s) until `TAKEN` exceeds `before`; returns the last INTID.
fn wait_irq(before: u64) -> Option<u32> {
    for _ in 0..1000 {
        if super::gic::TAKEN.load(Ordering::Acquire) > before {
            return Some(super::gic::LAST_INTID.load(Ordering::Acquire));
        }
        delay_ms(1);
    }
    None
}

/// GICv4 direct injection: edu (its BAR0 at `edu=` in our IPA space) sends
/// its MSI, which the ITS turns into vINTID 8192 for this vCPU: taken
/// through ICV_IAR1_EL1 with no exit. Then the doorbell path.
fn vlpi() {
    let Some(edu) = super::bootarg("edu")
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
    else {
        println!("FAIL vlpi: no edu= bootarg");
        psci::system_off()
    };
    super::gic::enable();
    super::gic::unmask_irqs();
    for round in 0..3 {
        let taken = super::gic::TAKEN.load(Ordering::Acquire);
        let before = exit_count();
        let start = super::counter();
        // SAFETY: edu's interrupt-raise register, mapped into our IPA space.
        unsafe { core::ptr::write_volatile((edu + 0x60) as *mut u32, 1) };
        // counter()'s ISB takes the pending vLPI first: ticks from the
        // trigger write to the handler's return (for cargo xtask bench).
        let ticks = super::counter().wrapping_sub(start);
        let handled = super::gic::TAKEN.load(Ordering::Acquire) > taken;
        let intid = wait_irq(taken);
        let after = exit_count();
        // SAFETY: edu's interrupt-acknowledge register.
        unsafe { core::ptr::write_volatile((edu + 0x64) as *mut u32, 1) };
        // One exit is the second EXIT_COUNT call itself.
        let exits = after.wrapping_sub(before).wrapping_sub(1);
        match intid {
            Some(8192) if exits == 0 => println!("PASS vlpi: round {round}: vINTID 8192 taken through ICV_IAR1_EL1, hypervisor exits during delivery: 0"),
            Some(i) => {
                println!("FAIL vlpi: round {round}: INTID {i}, hypervisor exits during delivery: {exits}");
                psci::system_off()
            }
            None => {
                println!("FAIL vlpi: round {round}: no interrupt within 1 s");
                psci::system_off()
            }
        }
        println!("vlpi: round {round}: ticks from trigger write to handler return: {ticks} (handler ran: {handled})");
    }
    // Doorbell: with IRQs masked, ask the hypervisor to deschedule our vPE
    // and trigger edu; the vLPI must be pending when we come back.
    super::gic::mask_irqs();
    let taken = super::gic::TAKEN.load(Ordering::Acquire);
    let rang = psci::call(0xc600_0002, 0, 0, 0);
    super::gic::unmask_irqs();
    let intid = wait_irq(taken);
    // SAFETY: edu's interrupt-acknowledge register.
    unsafe { core::ptr::write_volatile((edu + 0x64) as *mut u32, 1) };
    match (rang, intid) {
        (0, Some(8192)) => println!("PASS doorbell: doorbell taken while non-resident, vINTID 8192 delivered once resident again"),
        (r, i) => {
            println!("FAIL doorbell: hypercall {r}, interrupt after residency {i:?}");
            psci::system_off()
        }
    }
}
