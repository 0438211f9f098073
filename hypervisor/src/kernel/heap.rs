//! The hypervisor heap: a buddy allocator over a RAM region given at boot.

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

/// Bytes the heap has handed out and not had back (the soak checks this
/// returns to its baseline after every partition reset).
pub fn live_bytes() -> usize {
    HEAP.lock().stats_alloc_actual()
}
