//! Host tests only: the global allocator of the test binary, which counts
//! per thread the heap a test's code takes, in the units of the
//! hypervisor's buddy heap (every block rounded up to a power of two, at
//! least a word and the alignment), so a test can hold a partition's
//! allocations against its budget ([`crate::budget`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, observed.
struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

std::thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// Bytes a block of `layout` takes in the hypervisor's buddy heap
/// (`buddy_system_allocator::Heap::alloc`'s rounding).
pub fn buddy_bytes(layout: Layout) -> usize {
    layout
        .size()
        .next_power_of_two()
        .max(layout.align())
        .max(core::mem::size_of::<usize>())
}

/// What this thread allocated while a [`Meter`] was running.
pub struct Meter {
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Meter {
    /// Starts counting this thread's allocations from zero.
    pub fn start() -> Self {
        LIVE.with(|c| c.set(0));
        PEAK.with(|c| c.set(0));
        ARMED.with(|c| c.set(true));
        Self {
            _not_send: core::marker::PhantomData,
        }
    }

    /// The most buddy bytes allocated and not freed since the start (frees
    /// of blocks allocated before it count as negative, saturating at
    /// zero).
    pub fn peak(&self) -> usize {
        PEAK.with(Cell::get)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        ARMED.with(|c| c.set(false));
    }
}

fn charge(layout: Layout) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let live = LIVE.with(|c| {
                let live = c.get().saturating_add(buddy_bytes(layout));
                c.set(live);
                live
            });
            PEAK.with(|c| c.set(c.get().max(live)));
        }
    });
}

fn refund(layout: Layout) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            LIVE.with(|c| c.set(c.get().saturating_sub(buddy_bytes(layout))));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// GlobalAlloc contract; the counters only observe layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            charge(layout);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            charge(layout);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) };
        refund(layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // The buddy heap reallocates by allocating the new block before
            // freeing the old one: both count at the peak.
            if let Ok(grown) = Layout::from_size_align(new_size, layout.align()) {
                charge(grown);
            }
            refund(layout);
        }
        new
    }
}
