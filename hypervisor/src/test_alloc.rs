//! Host tests only: the global allocator of the test binary, which counts
//! per thread the heap a test's code takes, in the units of the
//! hypervisor's buddy heap (every block rounded up to a power of two, at
//! least a word and the alignment), so a test can hold a partition's
//! allocations against its budget ([`crate::partition::budget`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, observed.
struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

std::thread_local! {
    static ARENA: Cell<Option<&'static Arena>> = const { Cell::new(None) };
    static ROUTING: Cell<bool> = const { Cell::new(false) };
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
    static INJECTED: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` with this thread's allocations failing (returning null, as an
/// exhausted heap does) once `succeed` of them have been served; returns
/// what `f` returned and how many allocations were made to fail. Only for
/// code that handles failure (`try_reserve`): an infallible allocation
/// that fails aborts the test binary.
pub fn failing_after<R>(succeed: usize, f: impl FnOnce() -> R) -> (R, usize) {
    INJECTED.with(|c| c.set(0));
    FAIL_AFTER.with(|c| c.set(Some(succeed)));
    let result = f();
    FAIL_AFTER.with(|c| c.set(None));
    (result, INJECTED.with(Cell::get))
}

/// Whether this allocation is to fail ([`failing_after`]).
fn inject_failure() -> bool {
    FAIL_AFTER
        .try_with(|c| match c.get() {
            None => false,
            Some(0) => {
                INJECTED.with(|i| i.set(i.get().saturating_add(1)));
                true
            }
            Some(n) => {
                c.set(Some(n - 1));
                false
            }
        })
        .unwrap_or(false)
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

/// A buddy heap (`buddy_system_allocator`, as the hypervisor's) over a
/// leaked buffer, that this thread's allocations go to inside
/// [`Arena::route`]. An allocation it cannot satisfy is counted and
/// served by the system allocator instead, so the test sees the failure.
pub struct Arena {
    heap: spin::Mutex<buddy_system_allocator::Heap<32>>,
    start: usize,
    end: usize,
    failures: core::sync::atomic::AtomicUsize,
}

impl Arena {
    /// A heap of `size` bytes for this thread (it lives for the rest of
    /// the process; a thread has one arena at a time).
    pub fn new(size: usize) -> &'static Arena {
        let layout = Layout::from_size_align(size, 4096).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let start = unsafe { System.alloc(layout) } as usize;
        assert!(start != 0, "arena memory");
        let mut heap = buddy_system_allocator::Heap::<32>::empty();
        // SAFETY: the buffer was just allocated, is never freed and is used
        // by nothing but this heap.
        unsafe { heap.init(start, size) };
        let arena: &'static Arena = std::boxed::Box::leak(std::boxed::Box::new(Arena {
            heap: spin::Mutex::new(heap),
            start,
            end: start + size,
            failures: core::sync::atomic::AtomicUsize::new(0),
        }));
        ARENA.with(|a| a.set(Some(arena)));
        arena
    }

    /// Runs `f` with this thread's allocations served by the arena.
    pub fn route<R>(&self, f: impl FnOnce() -> R) -> R {
        ROUTING.with(|r| r.set(true));
        let result = f();
        ROUTING.with(|r| r.set(false));
        result
    }

    /// Allocations the arena could not satisfy.
    pub fn failures(&self) -> usize {
        self.failures.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes the arena has handed out and not had back.
    pub fn used(&self) -> usize {
        self.heap.lock().stats_alloc_actual()
    }

    fn holds(&self, ptr: *mut u8) -> bool {
        (self.start..self.end).contains(&(ptr as usize))
    }
}

/// The arena this thread's allocations go to now, if any.
fn routed() -> Option<&'static Arena> {
    if ROUTING.try_with(Cell::get).unwrap_or(false) {
        ARENA.try_with(Cell::get).ok().flatten()
    } else {
        None
    }
}

/// The arena `ptr` came from, if any.
fn owner(ptr: *mut u8) -> Option<&'static Arena> {
    ARENA
        .try_with(Cell::get)
        .ok()
        .flatten()
        .filter(|arena| arena.holds(ptr))
}

fn arena_alloc(arena: &Arena, layout: Layout) -> Option<*mut u8> {
    match arena.heap.lock().alloc(layout) {
        Ok(ptr) => Some(ptr.as_ptr()),
        Err(()) => {
            arena
                .failures
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            None
        }
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

// SAFETY: every call is forwarded unchanged to `System` or the arena, which
// uphold the GlobalAlloc contract, or fails with null (which the contract
// allows, leaving a reallocated block as it was); the counters only observe
// layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if inject_failure() {
            return core::ptr::null_mut();
        }
        if let Some(ptr) = routed().and_then(|arena| arena_alloc(arena, layout)) {
            charge(layout);
            return ptr;
        }
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            charge(layout);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if inject_failure() {
            return core::ptr::null_mut();
        }
        if let Some(ptr) = routed().and_then(|arena| arena_alloc(arena, layout)) {
            // SAFETY: the arena handed out `layout.size()` bytes at `ptr`.
            unsafe { ptr.write_bytes(0, layout.size()) };
            charge(layout);
            return ptr;
        }
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            charge(layout);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let (Some(arena), Some(block)) = (owner(ptr), core::ptr::NonNull::new(ptr)) {
            arena.heap.lock().dealloc(block, layout);
            refund(layout);
            return;
        }
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) };
        refund(layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if inject_failure() {
            // The block at `ptr` stays as it was, as `realloc` requires.
            return core::ptr::null_mut();
        }
        if routed().is_some() || owner(ptr).is_some() {
            // Allocate, copy, free: as the buddy heap does.
            let Ok(grown) = Layout::from_size_align(new_size, layout.align()) else {
                return core::ptr::null_mut();
            };
            // SAFETY: `grown` has the caller's non-zero size and alignment.
            let new = unsafe { self.alloc(grown) };
            if !new.is_null() {
                // SAFETY: both blocks hold at least the smaller size and
                // are distinct live allocations.
                unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
                // SAFETY: `ptr` was allocated with `layout` by this allocator.
                unsafe { self.dealloc(ptr, layout) };
            }
            return new;
        }
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
