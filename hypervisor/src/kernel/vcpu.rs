//! Running a vCPU on its physical CPU: entering it with architectural
//! reset state, and handling its traps (PSCI calls, MMIO emulation,
//! accesses outside the partition, interrupts).

use super::partition::{Partition, RunState};
use super::percpu;
use crate::arch::exception::{enter_guest, GuestRegs};
use crate::arch::mmu;
use crate::arch::sysreg;
use crate::console::log_limit::worth_logging;
use crate::guest::dispatch::{self, SyncAction};
use crate::guest::mmio::{Emulated, MmioMap};
use crate::guest::psci::{self, PsciCall};
use crate::guest::trap::{self, MmioAccess};
use crate::ids::VcpuIndex;
use crate::mm::Ipa;
use crate::sysreg::{guest, Esr, HcrEl2, MdcrEl2, SctlrEl1};
use core::sync::atomic::Ordering;

/// HCR_EL2 for `partition`'s vCPUs on this CPU ([`guest::hcr`]).
fn hcr_for(partition: &Partition) -> HcrEl2 {
    guest::hcr(sysreg::id_aa64pfr0_el1::read(), partition.config.wfi)
}

/// MDCR_EL2 for a vCPU on this CPU ([`guest::mdcr`]).
fn mdcr_for_guest() -> MdcrEl2 {
    guest::mdcr(sysreg::id_aa64dfr0_el1::read(), sysreg::pmcr_el0::read())
}

/// Enters `vcpu` of `partition` on this CPU at `entry` with x0 = `context`,
/// with the EL1 state an architectural reset leaves. Never returns.
pub fn start(partition: &Partition, vcpu: VcpuIndex, entry: u64, context: u64) -> ! {
    let cpu = percpu::current_index();
    reset_el1_state();
    sysreg::vmpidr_el2::write(guest::vmpidr(vcpu.get()));
    sysreg::vpidr_el2::write(sysreg::midr_el1::read());
    // SAFETY: guest::CPTR traps nothing EL2 uses (it is soft-float).
    unsafe { sysreg::cptr_el2::write(guest::CPTR) };
    sysreg::cnthctl_el2::write(guest::CNTHCTL);
    sysreg::cntvoff_el2::write(0);
    // SAFETY: guest::mdcr leaves TDE clear.
    unsafe { sysreg::mdcr_el2::write(mdcr_for_guest()) };
    // SAFETY: guest::hcr sets neither E2H nor TGE; the partition's stage 2
    // is loaded next, before the guest runs.
    unsafe { sysreg::hcr_el2::write(hcr_for(partition)) };
    // SAFETY: the partition's own stage 2, built with its VTCR, and VMID.
    unsafe { mmu::load_stage2(partition.vtcr, partition.stage2_root, partition.vmid) };
    mmu::flush_guest_tlb_local();
    // A fresh virtual CPU interface: no list register left from a previous
    // life, and no physical timer interrupt left active by one.
    super::vgic::clear_lrs();
    super::vgic::quiesce_forwarded_ppis(cpu);
    super::hooks::on_vcpu_entry(cpu);
    if let Some(Some(g)) = partition.gicv4.get() {
        super::gicv4::make_resident(g, cpu, vcpu);
    }
    let regs = GuestRegs {
        x: {
            let mut x = [0; 31];
            x[0] = context;
            x
        },
        elr: entry,
        spsr: guest::SPSR_ENTRY.0,
    };
    // SAFETY: only this CPU touches its own saved registers.
    unsafe { *percpu::get(cpu).regs.get() = regs };
    super::vgic::flush(partition, vcpu);
    // SAFETY: TPIDR_EL2 points at this CPU's block, whose registers we just
    // set, and the stack top is this CPU's.
    unsafe { enter_guest(crate::arch::boot::stack_top(cpu.index())) }
}

/// Puts the EL1 system registers in their reset state, so that nothing of
/// a previous life of the vCPU (or of the hypervisor) leaks into it.
fn reset_el1_state() {
    sysreg::sctlr_el1::write(SctlrEl1::RESET);
    for_each_zeroed();
    crate::arch::sysreg::isb();
}

fn for_each_zeroed() {
    sysreg::vbar_el1::write(0);
    sysreg::tcr_el1::write(0);
    sysreg::ttbr0_el1::write(0);
    sysreg::ttbr1_el1::write(0);
    sysreg::mair_el1::write(0);
    sysreg::amair_el1::write(0);
    sysreg::cpacr_el1::write(0);
    sysreg::contextidr_el1::write(0);
    sysreg::tpidr_el0::write(0);
    sysreg::tpidrro_el0::write(0);
    sysreg::tpidr_el1::write(0);
    sysreg::sp_el0::write(0);
    sysreg::sp_el1::write(0);
    sysreg::elr_el1::write(0);
    sysreg::spsr_el1::write(0);
    sysreg::esr_el1::write(0);
    sysreg::far_el1::write(0);
    sysreg::afsr0_el1::write(0);
    sysreg::afsr1_el1::write(0);
    sysreg::par_el1::write(0);
    sysreg::cntkctl_el1::write(0);
    sysreg::cntv_ctl_el0::write(0);
    sysreg::cntp_ctl_el0::write(0);
    sysreg::cntv_cval_el0::write(0);
    sysreg::cntp_cval_el0::write(0);
    sysreg::csselr_el1::write(0);
    sysreg::mdscr_el1::write(0);
}

/// Handles a trap from the guest running on `cpu`. `vector` is the
/// vector's index within the lower-EL group: 0..4 AArch64 (sync, IRQ,
/// FIQ, SError), 4..8 AArch32 (never enabled).
pub fn handle_trap(cpu: &percpu::PerCpu, vector: u64) {
    cpu.exits.total.fetch_add(1, Ordering::Relaxed);
    let index = cpu.index.load(Ordering::Relaxed);
    let Some((partition, vcpu)) =
        crate::ids::CpuIndex::from_index(index).and_then(super::partition::assignment)
    else {
        log::error!("trap on CPU {index}, which runs no vCPU");
        park();
    };
    // SAFETY: only this CPU touches its own saved registers.
    let regs = unsafe { &mut *cpu.regs.get() };
    super::vgic::fold(partition, vcpu);
    match vector {
        0 => handle_sync(cpu, partition, vcpu, regs),
        1 => {
            cpu.exits.irqs.fetch_add(1, Ordering::Relaxed);
            super::interrupts::take_physical_interrupts(Some((partition, vcpu)));
        }
        _ => {
            let esr = sysreg::esr_el2::read();
            log::error!(
                "partition {}: vCPU {} took {} (ESR_EL2 {esr:#x}, ELR {:#x})",
                partition.name(),
                vcpu.get(),
                if vector == 3 {
                    "an SError"
                } else {
                    "an unexpected exception"
                },
                regs.elr
            );
            super::lifecycle::stop(partition, "fatal exception");
        }
    }
    if !partition.life.is_current(cpu.epoch.load(Ordering::Acquire)) {
        park();
    }
    super::vgic::flush(partition, vcpu);
}

fn handle_sync(cpu: &percpu::PerCpu, partition: &Partition, vcpu: VcpuIndex, regs: &mut GuestRegs) {
    handle_sync_cause(cpu, partition, vcpu, regs);
    let repeats = cpu.stuck_repeats.swap(0, Ordering::Relaxed);
    if repeats != 0 {
        log::error!(
            "partition {}: vCPU {} is stuck: it took the same exception (ESR_EL1 {:#x}) at PC {:#x} {repeats} times in a row; its handler makes no progress",
            partition.name(),
            vcpu.get(),
            sysreg::esr_el1::read(),
            sysreg::elr_el1::read(),
        );
        *cpu.fault_loop.lock() = trap::FaultLoop::new();
        super::lifecycle::stop(partition, "stuck re-taking the same exception");
    }
}

fn handle_sync_cause(
    cpu: &percpu::PerCpu,
    partition: &Partition,
    vcpu: VcpuIndex,
    regs: &mut GuestRegs,
) {
    let esr = sysreg::esr_el2::read();
    let far = sysreg::far_el2::read();
    let hpfar = sysreg::hpfar_el2::read();
    let cause = trap::decode(esr, far, hpfar);
    match dispatch::sync_action(cause, esr, partition.config.wfi) {
        SyncAction::Call { skip_first } => {
            cpu.exits.calls.fetch_add(1, Ordering::Relaxed);
            if skip_first {
                skip_instruction(regs);
            }
            psci_call(partition, vcpu, regs);
        }
        SyncAction::Mmio(access) => {
            cpu.exits.mmio.fetch_add(1, Ordering::Relaxed);
            if !emulate_mmio(partition, vcpu, access, regs) {
                outside_partition(
                    partition,
                    vcpu,
                    regs,
                    access.ipa.raw(),
                    far,
                    access.write,
                    false,
                    esr,
                );
            }
        }
        SyncAction::NoSyndrome { ipa, write } => {
            if let Some(device) = emulated_device_at(partition, ipa.raw()) {
                // Load/store pair, writeback or SIMD access: the syndrome
                // does not say which registers, so it cannot be emulated.
                log::warn!(
                    "partition {}: vCPU {}: {} the {} at IPA {:#x} with an instruction the hypervisor cannot emulate (no syndrome; ESR_EL2 {esr:#x}, PC {:#x}): abort injected",
                    partition.name(),
                    vcpu.get(),
                    if write { "wrote to" } else { "read from" },
                    device.name(),
                    ipa.raw(),
                    regs.elr
                );
                inject_abort(regs, false, write, far);
            } else {
                outside_partition(partition, vcpu, regs, ipa.raw(), far, write, false, esr);
            }
        }
        SyncAction::FetchAbort { ipa } => {
            outside_partition(partition, vcpu, regs, ipa.raw(), far, false, true, esr);
        }
        SyncAction::Wfx { wait } => {
            skip_instruction(regs);
            if wait {
                wait_for_interrupt(cpu, partition, vcpu);
            }
        }
        SyncAction::IdRegisterRead { encoding, reg } => {
            let value = super::idregs::guest_read(encoding).unwrap_or(0);
            set_reg(regs, reg, value);
            skip_instruction(regs);
        }
        SyncAction::SysRegWrite { encoding, reg }
            if super::vgic::sysreg(partition, vcpu, encoding, reg_value(regs, reg)) =>
        {
            skip_instruction(regs);
        }
        SyncAction::SysRegWrite { .. } | SyncAction::Undefined => {
            let n = partition.life.count_fault();
            if worth_logging(n) {
                log::warn!("partition {}: vCPU {}: unhandled trap ESR_EL2 {esr:#x} at {:#x}: injecting undefined instruction (fault {n})", partition.name(), vcpu.get(), regs.elr);
            }
            inject_undefined(regs);
        }
    }
}

/// A trapped WFI under `wfi = "doorbell"`: unless an interrupt is already
/// pending for the vCPU, its vPE is made non-resident (doorbells on) and
/// the physical CPU waits in WFI at EL2 for any interrupt routed to it (a
/// doorbell, the virtual timer's PPI, a kick, a software-path MSI); those
/// are taken, the vPE made resident again, and the vCPU resumes after its
/// WFI. A wake-up without an interrupt for the guest is allowed: WFI may
/// complete at any time (ARM DDI 0487, D1.6.2).
fn wait_for_interrupt(cpu: &percpu::PerCpu, partition: &Partition, vcpu: VcpuIndex) {
    if partition.vgic.lock().has_pending(vcpu) || super::vgicv2::has_pending(partition, vcpu) {
        return;
    }
    let index = percpu::current_index();
    let gicv4 = partition.gicv4.get().and_then(Option::as_ref);
    if let Some(g) = gicv4 {
        if super::gicv4::make_non_resident(index) {
            // A vLPI was already pending: resume at once.
            super::gicv4::make_resident(g, index, vcpu);
            return;
        }
    }
    cpu.exits.wfi_waits.fetch_add(1, Ordering::Relaxed);
    crate::arch::sysreg::wfi();
    if let Some(g) = gicv4 {
        super::gicv4::make_resident(g, index, vcpu);
    }
    super::interrupts::take_physical_interrupts(Some((partition, vcpu)));
}

/// The emulated device whose window holds `ipa`, if any
/// ([`crate::guest::mmio`] decides; the MSI-X pages come from the bridge).
fn emulated_device_at(partition: &Partition, ipa: u64) -> Option<Emulated> {
    let map = MmioMap {
        console_ipa: partition.config.console_ipa,
        vcpus: partition.config.cpus.len(),
        its_count: partition.vits_count(),
        pci: partition.pci.is_some(),
    };
    map.device_at(Ipa(ipa), |ipa| super::msix::owns(partition, ipa.raw()))
}

/// Emulates an access to one of the partition's virtual devices: the
/// device computes the value read (or takes the value written), then the
/// access completes as the instruction would have (IHI-independent: the
/// ISV syndrome says the register, size and extension).
fn emulate_mmio(
    partition: &Partition,
    vcpu: VcpuIndex,
    access: MmioAccess,
    regs: &mut GuestRegs,
) -> bool {
    let Some(device) = emulated_device_at(partition, access.ipa.raw()) else {
        return false;
    };
    let value = access.store_value(reg_value(regs, access.reg));
    let read = match device {
        Emulated::Console => console_access(partition, vcpu, access, value),
        Emulated::Gic => super::vgic::mmio(partition, vcpu, access, value),
        Emulated::Its(index) => super::vits::mmio(partition, vcpu, index, access, value),
        Emulated::PciConfig => super::pci::config_access(partition, access, value),
        Emulated::MsixTable => super::msix::access(partition, access, value),
    };
    if !access.write {
        set_reg(regs, access.reg, access.load_value(read));
    }
    skip_instruction(regs);
    true
}

/// An access to the virtual PL011 (`kernel::console` shows its output).
fn console_access(partition: &Partition, vcpu: VcpuIndex, access: MmioAccess, value: u64) -> u64 {
    let offset = access.ipa.raw() - partition.config.console_ipa.raw();
    super::console::guest_access(partition, vcpu, offset, access.write, value as u32)
}

/// A guest access outside everything the partition owns: contained by
/// injecting a synchronous external abort, as a bus error would be.
#[allow(clippy::too_many_arguments)]
fn outside_partition(
    partition: &Partition,
    vcpu: VcpuIndex,
    regs: &mut GuestRegs,
    ipa: u64,
    far: u64,
    write: bool,
    instruction: bool,
    esr: u64,
) {
    // Guest faults are logged the first eight times, then at powers of two:
    // a guest that faults in a loop costs a handful of lines.
    let n = partition.life.count_fault();
    if worth_logging(n) {
        log::warn!(
            "partition {}: vCPU {} {} IPA {ipa:#x} outside the partition (ESR_EL2 {esr:#x}, PC {:#x}): abort injected",
            partition.name(),
            vcpu.get(),
            if instruction { "fetched from" } else if write { "wrote to" } else { "read from" },
            regs.elr
        );
    }
    inject_abort(regs, instruction, write, far);
}

fn inject_undefined(regs: &mut GuestRegs) {
    let mut inj = external_abort(regs, false, false, sysreg::far_el1::read());
    // EC 0 (unknown reason), IL = 1: what an undefined instruction reports;
    // the same entry to the guest's synchronous vector as an abort.
    inj.esr_el1 = Esr(0).with_il(true).0;
    write_injection(regs, &inj);
}

/// Injects a synchronous external abort at the guest's faulting
/// instruction (a data abort, or an instruction abort if `instruction`).
fn inject_abort(regs: &mut GuestRegs, instruction: bool, write: bool, far: u64) {
    let inj = external_abort(regs, instruction, write, far);
    write_injection(regs, &inj);
}

fn external_abort(
    regs: &GuestRegs,
    instruction: bool,
    write: bool,
    far: u64,
) -> trap::AbortInjection {
    trap::inject_external_abort(
        instruction,
        write,
        regs.elr,
        regs.spsr,
        far,
        sysreg::vbar_el1::read(),
    )
}

/// Writes the guest's EL1 exception state and where it resumes, and
/// watches for a guest that keeps re-taking the same exception.
fn write_injection(regs: &mut GuestRegs, inj: &trap::AbortInjection) {
    if let Some(cpu) = percpu::current() {
        let now = crate::arch::sysreg::counter();
        // Ten seconds of counter time.
        let window = crate::arch::sysreg::counter_frequency().saturating_mul(10);
        if let Some(n) = cpu
            .fault_loop
            .lock()
            .record(inj.elr_el1, inj.esr_el1, now, window)
        {
            cpu.stuck_repeats.store(n, Ordering::Relaxed);
        }
    }
    sysreg::esr_el1::write(inj.esr_el1);
    sysreg::far_el1::write(inj.far_el1);
    sysreg::elr_el1::write(inj.elr_el1);
    sysreg::spsr_el1::write(inj.spsr_el1);
    regs.elr = inj.elr_el2;
    regs.spsr = inj.spsr_el2;
}

/// Resumes the guest after the (4-byte) instruction that trapped. The PC is
/// the guest's: it wraps as the hardware's would, never overflows here.
fn skip_instruction(regs: &mut GuestRegs) {
    regs.elr = regs.elr.wrapping_add(4);
}

fn reg_value(regs: &GuestRegs, reg: u8) -> u64 {
    if reg == 31 {
        0
    } else {
        regs.x[reg as usize]
    }
}

fn set_reg(regs: &mut GuestRegs, reg: u8, value: u64) {
    if reg != 31 {
        regs.x[reg as usize] = value;
    }
}

/// A function ID PSCI does not define: one of the test hypercalls in an
/// image built with the `selftest` feature (its hook), else NOT_SUPPORTED.
fn test_hypercall(function: u32) -> i64 {
    super::hooks::hypercall(function).unwrap_or(psci::ret::NOT_SUPPORTED)
}

/// A PSCI (or SMCCC) call from the guest.
fn psci_call(partition: &Partition, vcpu: VcpuIndex, regs: &mut GuestRegs) {
    let call = psci::decode(regs.x[0], regs.x[1], regs.x[2], regs.x[3]);
    let result: i64 = match call {
        // Answered without partition state (`guest::dispatch`).
        PsciCall::Version
        | PsciCall::Features(_)
        | PsciCall::SmcccVersion
        | PsciCall::MigrateInfoType
        | PsciCall::CpuSuspend => dispatch::psci_answer(&call).unwrap_or(psci::ret::NOT_SUPPORTED),
        PsciCall::Unknown(function) => test_hypercall(function),
        PsciCall::CpuOn {
            target,
            entry,
            context,
        } => {
            let entry_ok = partition.ipa_in_ram(entry, 4);
            let r = partition
                .control
                .lock()
                .power
                .cpu_on(target, entry, context, entry_ok);
            match r {
                Ok(target_vcpu) => {
                    // The target's CPU may wait in WFI (partition not yet
                    // started when it came online): an interrupt ends that.
                    match partition.cpu_of(target_vcpu) {
                        Some(cpu) => super::cpus::kick(cpu),
                        None => crate::arch::sysreg::sev(),
                    }
                    0
                }
                Err(code) => code,
            }
        }
        PsciCall::AffinityInfo { target, level } => {
            partition.control.lock().power.affinity_info(target, level)
        }
        PsciCall::CpuOff => {
            partition.control.lock().power.cpu_off(vcpu);
            park();
        }
        PsciCall::SystemOff => {
            super::lifecycle::stop(partition, "PSCI SYSTEM_OFF");
            park();
        }
        PsciCall::SystemReset => {
            super::lifecycle::reset(partition, "PSCI SYSTEM_RESET");
            park();
        }
    };
    regs.x[0] = result as u64;
}

/// Acknowledges and ends every pending physical interrupt on this CPU
/// while no vCPU runs on it (parked or idle).
pub fn drain_interrupts() {
    super::interrupts::take_physical_interrupts(None);
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
    let Some((partition, vcpu)) = super::partition::assignment(index) else {
        // No partition owns this CPU: it stays idle for good, but takes
        // what is routed to it (the console's input interrupt).
        loop {
            sysreg::wfi();
            drain_interrupts();
        }
    };
    loop {
        if super::halt::PANICKED.load(Ordering::Relaxed) {
            super::halt::halt();
        }
        drain_interrupts();
        let (pending, stopped) = {
            let mut control = partition.control.lock();
            let stopped = control.run == RunState::Stopped;
            let pending = if control.run == RunState::Running {
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
                block.epoch.store(partition.life.epoch(), Ordering::Release);
                block.in_guest.store(true, Ordering::Release);
            }
            (pending, stopped)
        };
        if let Some((entry, context)) = pending {
            start(partition, vcpu, entry, context);
        }
        if stopped && (crate::drivers::gicv3::cpu_interface::ready() || super::gicv2_host::active())
        {
            // Stopped, or not started yet: interrupts routed here (the
            // console's input) must still be taken, which WFI allows; every
            // start (partition start, CPU_ON) kicks the CPU with an SGI.
            sysreg::wfi();
        } else {
            sysreg::wfe();
        }
    }
}

/// Leaves the guest for good on this CPU (vCPU off, partition stopped or
/// reset) and goes back to the run loop.
pub fn park() -> ! {
    run(percpu::current_index())
}
