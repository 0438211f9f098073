//! The aarch64 EL2 layer: the only place with assembly and system
//! registers. Everything here builds only for the bare-metal target.

pub mod boot;
pub mod exception;
pub mod mmu;
pub mod sysreg;

/// The most physical CPUs the hypervisor drives.
pub const MAX_CPUS: usize = 8;
/// Bytes of EL2 stack per physical CPU.
pub const STACK_SIZE: usize = 64 * 1024;

/// Asks firmware (PSCI SYSTEM_OFF over SMC or HVC per the tree) to power off.
pub fn psci_system_off() -> ! {
    // PSCI 0.2 SYSTEM_OFF. QEMU's built-in firmware takes SMC when EL3 is
    // absent and virtualization=on (the conduit the tree names).
    let _ = smccc::psci::system_off::<smccc::Smc>();
    crate::kernel::halt()
}
