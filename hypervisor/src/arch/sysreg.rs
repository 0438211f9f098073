//! System register access that the `aarch64-cpu` crate does not cover
//! (GIC CPU interface, hypervisor control), and the barriers that must sit
//! next to writes that change translation or trapping.
//!
//! `aarch64-cpu` declares its register writes `nomem`, so the compiler may
//! move memory accesses across them: every write here that changes how
//! memory is translated is followed by an `isb` (and a `dsb` where the
//! architecture needs table writes to be visible first) in asm that is NOT
//! `nomem`, which the compiler treats as a memory barrier.

/// Reads a system register by name or `S<op0>_<op1>_C<n>_C<m>_<op2>` encoding.
#[macro_export]
macro_rules! read_sysreg {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reading a system register has no side effect on memory.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nostack)) };
        value
    }};
}

/// Writes a system register by name or encoding.
#[macro_export]
macro_rules! write_sysreg {
    ($reg:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the caller's module documents why this write is sound at EL2;
        // the asm is not `nomem`, so memory accesses are not moved across it.
        unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nostack)) };
    }};
}

/// Instruction synchronization barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

/// Data synchronization barrier, inner shareable.
#[inline(always)]
pub fn dsb_ish() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("dsb ish", options(nostack)) };
}

/// Data synchronization barrier, full system.
#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Send event (wakes CPUs waiting in WFE).
#[inline(always)]
pub fn sev() {
    // SAFETY: SEV only signals an event.
    unsafe { core::arch::asm!("sev", options(nomem, nostack)) };
}

/// Wait for event.
#[inline(always)]
pub fn wfe() {
    // SAFETY: WFE only suspends until an event.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
}

/// Wait for interrupt: wakes when an interrupt is pending at the GIC CPU
/// interface even while PSTATE masks it (unlike `wfe`, which needs an
/// event).
#[inline(always)]
pub fn wfi() {
    // SAFETY: waiting has no effect on memory.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
}

/// The physical counter (CNTPCT_EL0), for timestamps.
#[inline(always)]
pub fn counter() -> u64 {
    isb();
    read_sysreg!("cntpct_el0")
}

/// The counter frequency in Hz (CNTFRQ_EL0).
#[inline(always)]
pub fn counter_frequency() -> u64 {
    read_sysreg!("cntfrq_el0")
}

/// MPIDR_EL1 affinity fields (Aff3..Aff0) of this CPU.
#[inline(always)]
pub fn mpidr() -> u64 {
    read_sysreg!("mpidr_el1") & 0xff_00ff_ffff
}
