//! The aarch64 EL2 layer: the only place with assembly and system
//! registers. Everything here builds only for the bare-metal target.

pub mod boot;
pub mod cache;
pub mod exception;
pub mod mmu;
pub mod sysreg;

/// The most physical CPUs the hypervisor drives (compiled in: per-CPU
/// stacks and blocks); the tree says how many there are at boot. The same
/// bound as every `CpuIndex`, so a CpuIndex always names a block.
pub const MAX_CPUS: usize = crate::ids::CpuIndex::COUNT;
/// Bytes of EL2 stack per physical CPU.
pub const STACK_SIZE: usize = 64 * 1024;
