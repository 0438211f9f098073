//! Kicks between physical CPUs: the SGI that makes a CPU leave its guest,
//! and the bounded wait until it has.

use super::percpu;
use crate::arch::sysreg::sev;
use crate::drivers::gicv3::{cpu_interface, SGI_KICK};
use core::sync::atomic::Ordering;

/// Sends the kick SGI to CPU `index`, so that it leaves its guest.
pub fn kick(index: crate::ids::CpuIndex) {
    if super::gicv2_host::kick(index.index()) {
        sev();
        return;
    }
    cpu_interface::send_sgi(SGI_KICK, percpu::get(index).mpidr.load(Ordering::Relaxed));
    sev();
}

/// Kicks every other online CPU (used by the panic handler).
pub fn kick_all_others() {
    let me = percpu::current_index();
    for index in crate::ids::CpuIndex::all() {
        if index != me && percpu::get(index).online.load(Ordering::Acquire) {
            kick(index);
        }
    }
}

/// Waits (bounded) until CPU `index` is out of its guest.
pub fn wait_parked(index: crate::ids::CpuIndex) -> bool {
    for _ in 0..50_000_000 {
        if !percpu::get(index).in_guest.load(Ordering::Acquire) {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}
