//! The running hypervisor: boot sequence, partitions on physical CPUs, and
//! trap handling glue between the hardware layer and the pure logic.

pub mod console;
pub mod heap;
pub mod percpu;

use core::panic::PanicInfo;

/// Entry from `boot.rs` on the boot CPU, MMU off, `dtb` = device tree PA.
#[no_mangle]
extern "C" fn rust_primary_main(dtb: usize) -> ! {
    // SAFETY: the loader passed a device tree; it stays untouched in RAM.
    let fdt = match unsafe { fdt::Fdt::from_ptr(dtb as *const u8) } {
        Ok(f) => f,
        Err(_) => halt(),
    };
    if let Some(uart) = fdt.chosen().stdout().and_then(|n| n.reg()).and_then(|mut r| r.next()) {
        // SAFETY: the tree names this PL011 as the console; the MMU is off.
        unsafe { console::init(uart.starting_address as usize) };
    }
    crate::println!("hypervisor: booted at EL2, device tree at {:#x}", dtb);
    crate::arch::psci_system_off();
}

/// Entry from `boot.rs` on a secondary CPU started by PSCI CPU_ON.
#[no_mangle]
extern "C" fn rust_secondary_main(index: usize) -> ! {
    percpu::init_current(index);
    halt()
}

/// Rust handler for traps from the guest (called by the vectors).
#[no_mangle]
extern "C" fn handle_lower_el(_cpu: *mut percpu::PerCpu, _vector: u64) {
    halt()
}

/// Rust handler for exceptions taken from EL2 itself: a hypervisor bug.
#[no_mangle]
extern "C" fn handle_el2_self(vector: u64, frame: *const crate::arch::exception::El2Frame) -> ! {
    // SAFETY: the vector built this frame on the stack just before the call.
    let frame = unsafe { &*frame };
    let esr = crate::read_sysreg!("esr_el2");
    let far = crate::read_sysreg!("far_el2");
    console::write_fmt_force(format_args!(
        "\n[hv] FATAL: exception at EL2 (vector {vector}): ESR_EL2={esr:#x} FAR_EL2={far:#x} ELR_EL2={:#x}\n",
        frame.elr
    ));
    halt()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    console::write_fmt_force(format_args!("\n[hv cpu{}] PANIC: {info}\n", percpu::current_index()));
    halt()
}

/// Stops this CPU for good.
pub fn halt() -> ! {
    loop {
        crate::arch::sysreg::wfe();
    }
}
