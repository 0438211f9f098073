//! The guest proper (bare metal only).

mod boot;
#[macro_use]
mod console;
mod dma_tests;
mod flood_tests;
mod gic;
mod gicv2_tests;
mod mmio;
mod msix_tests;
mod pci_tests;
mod pending_table_tests;
mod psci;
mod scenarios;
mod timer_tests;
mod vgic_tests;
mod vits_tests;
mod vmovp_tests;

use core::sync::atomic::{AtomicU64, Ordering};

/// Physical address of the device tree (set by vCPU 0 at boot).
static DTB: AtomicU64 = AtomicU64::new(0);

/// The guest's device tree.
pub fn fdt() -> fdt::Fdt<'static> {
    let ptr = DTB.load(Ordering::Acquire) as *const u8;
    // SAFETY: the hypervisor placed a device tree there and nothing writes it.
    match unsafe { fdt::Fdt::from_ptr(ptr) } {
        Ok(f) => f,
        Err(_) => psci::system_off(),
    }
}

/// The first address past the guest's RAM (the end of its highest memory
/// region), 0 if the tree names none.
pub fn ram_end() -> u64 {
    fdt()
        .memory()
        .regions()
        .filter_map(|r| Some(r.starting_address as u64 + r.size? as u64))
        .max()
        .unwrap_or(0)
}

/// The value of `key=` in `/chosen/bootargs`.
pub fn bootarg(key: &str) -> Option<&'static str> {
    let args = fdt().chosen().bootargs()?;
    args.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// This vCPU's MPIDR affinity.
pub fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) v) };
    v & 0xff_00ff_ffff
}

/// The virtual counter.
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v) };
    v
}

/// Busy-waits for `ms` milliseconds of the virtual counter.
pub fn delay_ms(ms: u64) {
    let freq: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq) };
    let end = counter() + freq / 1000 * ms;
    while counter() < end {
        core::hint::spin_loop();
    }
}

/// Entry of vCPU 0 (from boot.rs), MMU off.
#[no_mangle]
extern "C" fn guest_main(dtb: u64) -> ! {
    DTB.store(
        if dtb == 0 { fallback_dtb() } else { dtb },
        Ordering::Release,
    );
    console::init();
    let name = fdt()
        .find_node("/chosen")
        .and_then(|n| n.property("hv,partition"))
        .and_then(|p| p.as_str())
        .unwrap_or("?");
    let boots = fdt()
        .find_node("/chosen")
        .and_then(|n| n.property("hv,boot-count"))
        .and_then(|p| p.as_usize())
        .unwrap_or(0);
    let scenario = bootarg("scenario").unwrap_or("hello");
    println!(
        "boot: partition {name} vcpu0 mpidr {:#x} scenario {scenario} boot-count {boots}",
        mpidr()
    );
    scenarios::run(scenario, boots)
}

/// Where QEMU puts the device tree when it enters an ELF with x0 = 0 (the
/// start of RAM, below our image); 0 if no tree is there.
fn fallback_dtb() -> u64 {
    const RAM_START: u64 = 0x4000_0000;
    // SAFETY: the start of RAM is ours and readable; only the magic is read.
    let magic = unsafe { core::ptr::read_volatile(RAM_START as *const u32) };
    if u32::from_be(magic) == 0xd00d_feed {
        RAM_START
    } else {
        0
    }
}

/// Entry of a secondary vCPU (from boot.rs), started by PSCI CPU_ON.
#[no_mangle]
extern "C" fn guest_secondary_main(context: u64) -> ! {
    scenarios::secondary(context)
}

/// A synchronous exception reached the guest's vector (from boot.rs).
/// Returns the address to resume at.
#[no_mangle]
extern "C" fn guest_sync_exception(esr: u64, far: u64, elr: u64) -> u64 {
    scenarios::on_sync_exception(esr, far, elr)
}

/// An IRQ reached the guest's vector (from boot.rs).
#[no_mangle]
extern "C" fn guest_irq() {
    if gicv2_tests::active() {
        gicv2_tests::handle_irq();
        return;
    }
    gic::handle_irq();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("FAIL panic: {info}");
    psci::system_off()
}
