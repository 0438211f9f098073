//! Physical CPUs: bring-up, which vCPU each one runs, the run loop that
//! starts a vCPU when PSCI says so, and kicks between CPUs.

use super::{machine, percpu, vcpu};
use crate::arch::sysreg::{sev, wfe, wfi};
use crate::drivers::gicv3::{cpu_interface, SGI_KICK};
use core::sync::atomic::Ordering;

extern "C" {
    /// The PSCI CPU_ON entry point in boot.rs.
    fn secondary_entry();
}

/// Starts every other CPU of the platform with PSCI CPU_ON.
pub fn start_secondaries() {
    let platform = machine::platform();
    let me = percpu::current_index();
    for (index, cpu) in crate::ids::CpuIndex::all().zip(&platform.cpus) {
        if index == me || !cpu.available {
            continue;
        }
        if super::spin_table::uses_spin_table(platform, index.index()) {
            if let Err(e) = super::spin_table::release(platform, index.index()) {
                log::error!("CPU {index} (MPIDR {:#x}): spin table: {e}", cpu.mpidr);
            }
            continue;
        }
        let entry = secondary_entry as *const () as u64;
        match machine::firmware_cpu_on(cpu.mpidr, entry, u64::from(index.get())) {
            Ok(()) => {}
            Err(code) => log::error!(
                "CPU {index} (MPIDR {:#x}): PSCI CPU_ON failed ({code})",
                cpu.mpidr
            ),
        }
    }
    for (index, cpu) in crate::ids::CpuIndex::all().zip(&platform.cpus) {
        if index == me || !cpu.available {
            continue;
        }
        // Up to 2 s of the system counter: emulated CPUs can be slow to start.
        let deadline =
            crate::arch::sysreg::counter() + 2 * crate::arch::sysreg::counter_frequency();
        let online = loop {
            if percpu::get(index).online.load(Ordering::Acquire) {
                break true;
            }
            if crate::arch::sysreg::counter() > deadline {
                break false;
            }
            core::hint::spin_loop();
        };
        if !online {
            log::warn!("CPU {index} did not come online");
        }
    }
}

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

/// The run loop of CPU `index`: waits until its vCPU is powered on, then
/// enters the guest. Also where a vCPU goes when it stops (`park`).
pub fn run(index: crate::ids::CpuIndex) -> ! {
    // No vCPU runs here now: the EL1 timers (of a vCPU that stopped, or
    // left by firmware at boot) are stopped, so that no asserted line
    // interrupts EL2 while the CPU waits, or reads pending to a guest.
    crate::arch::sysreg::cntv_ctl_el0::write(0);
    crate::arch::sysreg::cntp_ctl_el0::write(0);
    super::vgic::quiesce_forwarded_ppis(index);
    let block = percpu::get(index);
    block.in_guest.store(false, Ordering::Release);
    block.online.store(true, Ordering::Release);
    let Some((partition, vcpu)) = machine::assignment(index) else {
        // No partition owns this CPU: it stays idle for good, but takes
        // what is routed to it (the console's input interrupt).
        loop {
            wfi();
            vcpu::drain_interrupts();
        }
    };
    loop {
        if super::PANICKED.load(Ordering::Relaxed) {
            super::halt();
        }
        vcpu::drain_interrupts();
        let (pending, stopped) = {
            let mut control = partition.control.lock();
            let stopped = control.run == super::partition::RunState::Stopped;
            let pending = if control.run == super::partition::RunState::Running {
                control.power.take_pending(vcpu)
            } else {
                None
            };
            if pending.is_some() {
                // Under the lock, so that a stop or reset (which changes
                // the state under the same lock, then bumps the epoch and
                // waits for `in_guest` to drop) either sees this CPU in the
                // guest with the old epoch, and kicks it, or finds nothing
                // pending for it.
                block
                    .epoch
                    .store(partition.epoch.load(Ordering::Acquire), Ordering::Release);
                block.in_guest.store(true, Ordering::Release);
            }
            (pending, stopped)
        };
        if let Some((entry, context)) = pending {
            vcpu::start(partition, vcpu, entry, context);
        }
        if stopped && (cpu_interface::ready() || super::gicv2_host::active()) {
            // Stopped, or not started yet: interrupts routed here (the
            // console's input) must still be taken, which WFI allows; every
            // start (partition start, CPU_ON) kicks the CPU with an SGI.
            wfi();
        } else {
            wfe();
        }
    }
}

/// Leaves the guest for good on this CPU (vCPU off, partition stopped or
/// reset) and goes back to the run loop.
pub fn park() -> ! {
    run(percpu::current_index())
}
