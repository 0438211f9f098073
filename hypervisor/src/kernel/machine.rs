//! The machine-wide state: what the boot CPU builds once and every CPU
//! then reads. The platform description, the boot bundle, the physical
//! frame allocator, the GIC distributor, and the firmware calls that act
//! on the whole machine. (The partitions and which physical CPU runs which
//! vCPU are in `partition.rs`, above this file.)
//!
//! This is the one place the rest of the kernel reaches that state from.
//! Only the boot sequence (`boot.rs`) installs it, each piece once and
//! before any secondary CPU starts; afterwards it is read-only except the
//! frame allocator, which has its own lock (taken last: nothing is locked
//! while holding it).

use super::halt::halt;
use crate::boot::bundle::Bundle;
use crate::boot::platform::{Platform, PsciConduit};
use crate::drivers::gicv3::Distributor;
use crate::mm::addr::Range;
use crate::mm::frame::FrameAllocator;
use crate::mm::PhysAddr;
use spin::{Mutex, Once};

static PLATFORM: Once<Platform> = Once::new();
static BUNDLE: Once<Bundle<'static>> = Once::new();
static FRAMES: Mutex<Option<FrameAllocator>> = Mutex::new(None);
static GICD: Once<Distributor> = Once::new();

/// The platform, as the device tree describes it.
pub fn platform() -> &'static Platform {
    PLATFORM.get().expect("platform described at boot")
}

/// The boot bundle (manifest and guest images).
pub fn bundle() -> &'static Bundle<'static> {
    BUNDLE.get().expect("bundle parsed at boot")
}

/// The GIC distributor, once boot has found and initialised it.
pub fn gicd() -> Option<&'static Distributor> {
    GICD.get()
}

/// Physical memory for partitions and their tables.
pub fn alloc_frames(size: u64, align: u64) -> Option<PhysAddr> {
    FRAMES.lock().as_mut()?.alloc(size, align).ok()
}

/// Takes exactly `range` from the frame allocator (identity-mapped RAM).
pub fn alloc_frames_at(range: Range<PhysAddr>) -> bool {
    FRAMES
        .lock()
        .as_mut()
        .is_some_and(|f| f.alloc_at(range).is_ok())
}

/// Returns frames `alloc_frames` handed out (`size` as asked then).
pub fn free_frames(start: PhysAddr, size: u64) -> bool {
    FRAMES.lock().as_mut().is_some_and(|f| {
        f.free(Range {
            start,
            size: size.next_multiple_of(crate::mm::PAGE_SIZE),
        })
        .is_ok()
    })
}

/// Bytes the frame allocator has free (for leak checks in the logs).
pub fn free_frame_bytes() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |f| f.free_bytes())
}

/// Boot: the platform description (once).
pub(super) fn install_platform(platform: Platform) -> &'static Platform {
    PLATFORM.call_once(|| platform)
}

/// Boot: the parsed bundle (once).
pub(super) fn install_bundle(bundle: Bundle<'static>) -> &'static Bundle<'static> {
    BUNDLE.call_once(|| bundle)
}

/// Boot: the frame allocator over the platform's free RAM.
pub(super) fn install_frames(frames: FrameAllocator) {
    *FRAMES.lock() = Some(frames);
}

/// Boot: the distributor, made by `make` the first time (once).
pub(super) fn install_gicd(make: impl FnOnce() -> Distributor) -> &'static Distributor {
    GICD.call_once(make)
}

/// A boot error: says what and why, starts no partition, powers off.
pub fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    crate::println!("hypervisor: error: {args}");
    crate::println!("hypervisor: no partition started; powering off");
    firmware_system_off()
}

/// PSCI CPU_ON to firmware, over the conduit the device tree names.
pub fn firmware_cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), smccc::psci::Error> {
    match platform().psci.as_ref().map(|p| p.conduit) {
        Some(PsciConduit::Hvc) => smccc::psci::cpu_on::<smccc::Hvc>(mpidr, entry, context),
        _ => smccc::psci::cpu_on::<smccc::Smc>(mpidr, entry, context),
    }
}

/// PSCI SYSTEM_OFF to firmware; halts if that returns.
pub fn firmware_system_off() -> ! {
    if PLATFORM.get().is_some_and(|p| p.psci.is_none()) {
        // No PSCI (a Raspberry Pi without TF-A): an SMC would be undefined
        // at EL2, so there is nothing to power off with.
        crate::println!("hypervisor: no PSCI firmware: halting instead");
        halt()
    }
    let _ = match PLATFORM
        .get()
        .and_then(|p| p.psci.as_ref())
        .map(|p| p.conduit)
    {
        Some(PsciConduit::Hvc) => smccc::psci::system_off::<smccc::Hvc>(),
        _ => smccc::psci::system_off::<smccc::Smc>(),
    };
    halt()
}
