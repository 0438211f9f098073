//! The running hypervisor: boot sequence, partitions on physical CPUs, and
//! trap handling glue between the hardware layer and the pure logic.

pub mod boot;
pub mod console;
pub mod cpus;
pub mod early;
pub mod gicv2_host;
pub mod gicv4;
pub mod guest;
pub mod halt;
pub mod heap;
pub mod hooks;
pub mod idregs;
pub mod interrupts;
pub mod irq;
pub mod lifecycle;
pub mod machine;
pub mod msi_route;
pub mod msix;
pub mod partition;
pub mod pci;
pub mod percpu;
pub mod smmu;
pub mod spin_table;
pub mod vcpu;
pub mod vgic;
pub mod vgicv2;
pub mod vits;

use core::panic::PanicInfo;
use core::sync::atomic::Ordering;
use halt::{halt, PANICKED};

/// Entry from `boot.rs` on the boot CPU, MMU off, `dtb` = device tree PA.
#[no_mangle]
extern "C" fn rust_primary_main(dtb: usize) -> ! {
    // The one place the kernel names the self-tests: it installs their hooks.
    #[cfg(feature = "selftest")]
    hooks::install(&crate::selftest::HOOKS);
    boot::primary(dtb)
}

/// Entry from `boot.rs` on a secondary CPU started by PSCI CPU_ON.
#[no_mangle]
extern "C" fn rust_secondary_main(index: usize) -> ! {
    boot::secondary(index)
}

/// Rust handler for traps from the guest (called by the vectors).
#[no_mangle]
extern "C" fn handle_lower_el(cpu: *const percpu::PerCpu, vector: u64) {
    if PANICKED.load(Ordering::Relaxed) {
        halt();
    }
    // SAFETY: the vectors pass TPIDR_EL2, which points at this CPU's block.
    vcpu::handle_trap(unsafe { &*cpu }, vector)
}

/// Rust handler for exceptions taken from EL2 itself: a hypervisor bug
/// (halts), except an aborted guarded device access (returns, fixed up).
#[no_mangle]
extern "C" fn handle_el2_self(vector: u64, frame: *mut crate::arch::exception::El2Frame) {
    // SAFETY: the vector built this frame on the stack just before the call.
    let frame = unsafe { &mut *frame };
    let esr = crate::arch::sysreg::esr_el2::read();
    // A guarded device access that aborted returns "aborted" to its caller.
    if crate::arch::exception::guarded_fixup(frame, esr) {
        return;
    }
    let far = crate::arch::sysreg::far_el2::read();
    console::write_fmt_force(format_args!(
        "\n[hv cpu{}] FATAL: exception at EL2 (vector {vector}): ESR_EL2={esr:#x} FAR_EL2={far:#x} ELR_EL2={:#x} LR={:#x}\n",
        percpu::current_index(),
        frame.elr,
        frame.x[30]
    ));
    halt()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let me = percpu::current_index();
    if !PANICKED.swap(true, Ordering::AcqRel) {
        console::write_fmt_force(format_args!(
            "\n[hv cpu{me}] PANIC: {info}\n[hv cpu{me}] halting all CPUs\n"
        ));
        // Pull every other CPU out of its guest; each halts on the flag.
        cpus::kick_all_others();
    }
    halt()
}
