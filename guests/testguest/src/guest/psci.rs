//! PSCI calls over HVC (the conduit our hypervisor's device tree names).

/// PSCI function IDs (DEN0022).
pub const PSCI_VERSION: u64 = 0x8400_0000;
pub const CPU_ON: u64 = 0xc400_0003;
pub const AFFINITY_INFO: u64 = 0xc400_0004;
pub const SYSTEM_OFF: u64 = 0x8400_0008;
pub const SYSTEM_RESET: u64 = 0x8400_0009;

/// Makes a PSCI call, returning x0.
pub fn call(function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: HVC traps to the hypervisor, which implements PSCI.
    unsafe {
        core::arch::asm!("hvc #0", inout("x0") function => ret, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _)
    };
    ret as i64
}

/// Starts vCPU `target` (its MPIDR) at the guest's secondary entry with context `index`.
pub fn cpu_on(target: u64, index: u64) -> i64 {
    call(
        CPU_ON,
        target,
        super::boot::secondary_start as *const () as u64,
        index,
    )
}

/// Powers the partition off.
pub fn system_off() -> ! {
    call(SYSTEM_OFF, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}

/// Resets the partition.
pub fn system_reset() -> ! {
    call(SYSTEM_RESET, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}
