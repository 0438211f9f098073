//! Calls an image adds to the kernel's paths without the kernel importing
//! it: the self-tests (`crate::selftest`, cargo feature `selftest`)
//! install theirs once, at the boot CPU's entry, before any other CPU or
//! guest runs. Without them every hook is a no-op.

use crate::ids::CpuIndex;
use spin::Once;

/// The calls. Each runs on the path its doc names, on the CPU taking it.
pub struct Hooks {
    /// After the partitions' set-up, before their images are loaded, with
    /// the hypervisor's command line (`/chosen/bootargs`).
    pub before_load: fn(cmdline: &str),
    /// As a vCPU is entered on the CPU, after its stage 2 and virtual CPU
    /// interface are loaded.
    pub on_vcpu_entry: fn(cpu: CpuIndex),
    /// A guest hypercall PSCI does not define: `Some(result)` if the hook
    /// answers it, else `None` (the guest gets NOT_SUPPORTED).
    pub hypercall: fn(function: u32) -> Option<i64>,
    /// A physical LPI taken at EL2 that is no passthrough MSI: whether the
    /// hook took it (it is then not counted as a vPE doorbell).
    pub on_doorbell: fn(intid: u32) -> bool,
}

static HOOKS: Once<&'static Hooks> = Once::new();

/// Installs `hooks` (the first call wins; later ones are ignored).
pub fn install(hooks: &'static Hooks) {
    HOOKS.call_once(|| hooks);
}

/// See [`Hooks::before_load`].
pub fn before_load(cmdline: &str) {
    if let Some(h) = HOOKS.get() {
        (h.before_load)(cmdline);
    }
}

/// See [`Hooks::on_vcpu_entry`].
pub fn on_vcpu_entry(cpu: CpuIndex) {
    if let Some(h) = HOOKS.get() {
        (h.on_vcpu_entry)(cpu);
    }
}

/// See [`Hooks::hypercall`].
pub fn hypercall(function: u32) -> Option<i64> {
    HOOKS.get().and_then(|h| (h.hypercall)(function))
}

/// See [`Hooks::on_doorbell`].
pub fn on_doorbell(intid: u32) -> bool {
    HOOKS.get().is_some_and(|h| (h.on_doorbell)(intid))
}
