//! Device register access the way an OS driver must do it under a
//! hypervisor: one plain `ldr`/`str` per access (as Linux's readl/writel),
//! never a pair, writeback or SIMD form, so that a trapped access carries a
//! syndrome the hypervisor can emulate. Shared by the GIC, ITS and PCI code.

/// Reads a byte register.
pub fn read8(addr: usize) -> u8 {
    let v: u32;
    // SAFETY: callers pass device registers of this guest (from its device
    // tree); a read has no effect beyond the register's own.
    unsafe {
        core::arch::asm!("ldrb {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack))
    };
    v as u8
}

/// Writes a byte register.
pub fn write8(addr: usize, v: u8) {
    // SAFETY: as `read8`.
    unsafe {
        core::arch::asm!("strb {v:w}, [{a}]", a = in(reg) addr, v = in(reg) u32::from(v), options(nostack))
    };
}

/// Reads a 32-bit register.
pub fn read32(addr: usize) -> u32 {
    let v: u32;
    // SAFETY: as `read8`.
    unsafe {
        core::arch::asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack))
    };
    v
}

/// Writes a 32-bit register.
pub fn write32(addr: usize, v: u32) {
    // SAFETY: as `read8`.
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack))
    };
}

/// Reads a 64-bit register (one access).
pub fn read64(addr: usize) -> u64 {
    let v: u64;
    // SAFETY: as `read8`, for registers that allow 64-bit accesses.
    unsafe {
        core::arch::asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack))
    };
    v
}

/// Writes a 64-bit register (one access).
pub fn write64(addr: usize, v: u64) {
    // SAFETY: as `read64`.
    unsafe {
        core::arch::asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack))
    };
}
