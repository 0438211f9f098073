//! The hypervisor heap: a buddy allocator over a static arena given at
//! boot, grown from RAM frames to the manifest's `[hypervisor] heap` once
//! the manifest is valid (before any partition is built).

use crate::manifest::{HypervisorConfig, RAM_ALIGN};
use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hands `[start, start + size)` to the heap.
///
/// # Safety
/// The region must be mapped normal memory used by nothing else, forever.
pub unsafe fn init(start: usize, size: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.lock().init(start, size) };
}

/// Grows the heap to what `config` asks: the bytes beyond the boot arena
/// (`HypervisorConfig::heap_from_ram`, which validation kept out of the
/// partitions' RAM), taken from the frame allocator for good. Powers off
/// if RAM cannot give them (validation counted them, so only a machine
/// whose RAM is fragmented beyond the 2 MiB blocks it counted).
pub fn grow_from_ram(config: &HypervisorConfig) {
    let bytes = config.heap_from_ram();
    if bytes == 0 {
        return;
    }
    let Some(start) = super::machine::alloc_frames(bytes, RAM_ALIGN) else {
        super::machine::fatal(format_args!(
            "manifest: field hypervisor.heap: no {} MiB of RAM left for the heap beyond its boot arena",
            bytes >> 20
        ));
    };
    let (Ok(start), Ok(size)) = (usize::try_from(start.0), usize::try_from(bytes)) else {
        super::machine::fatal(format_args!("hypervisor.heap: beyond the address space"));
    };
    // SAFETY: the frames were just taken from the frame allocator and are
    // never returned; EL2 maps all RAM as normal memory, identity-mapped.
    unsafe { HEAP.lock().add_to_heap(start, start + size) };
}

/// Bytes the heap has handed out and not had back (the soak checks this
/// returns to its baseline after every partition reset).
pub fn live_bytes() -> usize {
    HEAP.lock().stats_alloc_actual()
}

/// Bytes the heap manages in all (boot arena and RAM it grew by).
pub fn total_bytes() -> usize {
    HEAP.lock().stats_total_bytes()
}
