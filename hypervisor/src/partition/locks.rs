//! Lock order as types (the idea of Hafnium's `vm_locked`): a lock that
//! must be taken after another is reachable only through the guard of
//! the first. [`Ordered`] pairs a lock with the one that comes after it;
//! [`Ordered::lock`] takes the first and gives a [`Locked`], whose
//! [`Locked::split`] hands out the first's data and a [`Then`], the only
//! way to take the second while the first is held. So code that holds
//! both took them in the documented order; code that needs only the second
//! locks it on its own (a single-lock user), which cannot deadlock against
//! an ordered pair as long as it takes nothing else meanwhile. [`Fan`]
//! is the same for a lock with two locks after it (each reachable only
//! through its guard, in no order between them that the type fixes).
//!
//! What they allow:
//!
//! ```
//! use hypervisor::partition::locks::{Fan, Ordered};
//! let (a, b, c) = (spin::Mutex::new(1u8), spin::Mutex::new(2u8), spin::Mutex::new(3u8));
//! let pair = Ordered::new(&a, &b);
//! let mut held = pair.lock();
//! let (first, then) = held.split();
//! *first += *then.lock();
//! drop(held);
//! let fan = Fan::new(&a, &b, &c);
//! let mut held = fan.lock();
//! let (first, then_b, then_c) = held.split();
//! *first += *then_b.lock() + *then_c.lock();
//! assert_eq!(*first, 8);
//! ```
//!
//! What the types refuse, at compile time:
//!
//! ```compile_fail
//! // The right to the second lock cannot outlive the first's guard.
//! use hypervisor::partition::locks::Ordered;
//! let (a, b) = (spin::Mutex::new(1u8), spin::Mutex::new(2u8));
//! let pair = Ordered::new(&a, &b);
//! let then = {
//!     let mut held = pair.lock();
//!     let (_, then) = held.split();
//!     then
//! };
//! let _ = then.lock();
//! ```
//!
//! ```compile_fail
//! // A second lock's guard cannot outlive the first's.
//! use hypervisor::partition::locks::Fan;
//! let (a, b, c) = (spin::Mutex::new(1u8), spin::Mutex::new(2u8), spin::Mutex::new(3u8));
//! let fan = Fan::new(&a, &b, &c);
//! let mut held = fan.lock();
//! let (_, _, then_c) = held.split();
//! let c_guard = then_c.lock();
//! drop(held);
//! let _ = *c_guard;
//! ```
//!
//! ```compile_fail
//! // A `Then` is made only by a held guard's `split`.
//! use hypervisor::partition::locks::Then;
//! let b = spin::Mutex::new(2u8);
//! let _ = Then { second: &b };
//! ```
#![forbid(unsafe_code)]

use spin::{Mutex, MutexGuard};

/// Lock `first`, then (optionally) `second`, never the other way round.
pub struct Ordered<'a, A, B> {
    first: &'a Mutex<A>,
    second: &'a Mutex<B>,
}

impl<'a, A, B> Ordered<'a, A, B> {
    /// The pair `first` -> `second`.
    pub fn new(first: &'a Mutex<A>, second: &'a Mutex<B>) -> Self {
        Self { first, second }
    }

    /// Takes the first lock.
    pub fn lock(&self) -> Locked<'a, A, B> {
        Locked {
            guard: self.first.lock(),
            second: self.second,
        }
    }
}

/// The first lock of an [`Ordered`] pair, held.
pub struct Locked<'a, A, B> {
    guard: MutexGuard<'a, A>,
    second: &'a Mutex<B>,
}

impl<'a, A, B> Locked<'a, A, B> {
    /// The first lock's data, and the right to take the second lock while
    /// the first stays held (both borrow this guard).
    pub fn split(&mut self) -> (&mut A, Then<'_, B>) {
        (
            &mut self.guard,
            Then {
                second: self.second,
            },
        )
    }
}

impl<A, B> core::ops::Deref for Locked<'_, A, B> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.guard
    }
}

impl<A, B> core::ops::DerefMut for Locked<'_, A, B> {
    fn deref_mut(&mut self) -> &mut A {
        &mut self.guard
    }
}

/// The right to take the second lock of a pair whose first is held; it
/// cannot outlive that guard.
pub struct Then<'g, B> {
    second: &'g Mutex<B>,
}

impl<'g, B> Then<'g, B> {
    /// Takes the second lock (released when the guard drops, before the
    /// first is).
    pub fn lock(&self) -> MutexGuard<'g, B> {
        self.second.lock()
    }
}

/// Lock `first`, then (optionally) `b` and/or `c`, never either before it.
pub struct Fan<'a, A, B, C> {
    first: &'a Mutex<A>,
    b: &'a Mutex<B>,
    c: &'a Mutex<C>,
}

impl<'a, A, B, C> Fan<'a, A, B, C> {
    /// `first` -> `b`, `first` -> `c`.
    pub fn new(first: &'a Mutex<A>, b: &'a Mutex<B>, c: &'a Mutex<C>) -> Self {
        Self { first, b, c }
    }

    /// Takes the first lock.
    pub fn lock(&self) -> FanLocked<'a, A, B, C> {
        FanLocked {
            guard: self.first.lock(),
            b: self.b,
            c: self.c,
        }
    }
}

/// The first lock of a [`Fan`], held.
pub struct FanLocked<'a, A, B, C> {
    guard: MutexGuard<'a, A>,
    b: &'a Mutex<B>,
    c: &'a Mutex<C>,
}

impl<A, B, C> FanLocked<'_, A, B, C> {
    /// The first lock's data, and the rights to take `b` and `c` while the
    /// first stays held (all three borrow this guard).
    pub fn split(&mut self) -> (&mut A, Then<'_, B>, Then<'_, C>) {
        (
            &mut self.guard,
            Then { second: self.b },
            Then { second: self.c },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_lock_is_taken_while_the_first_is_held_and_released_first() {
        let (a, b) = (Mutex::new(1u32), Mutex::new(10u32));
        let pair = Ordered::new(&a, &b);
        let mut held = pair.lock();
        let (first, then) = held.split();
        *first += 1;
        {
            let mut second = then.lock();
            *second += 1;
            // Both are held: neither can be taken by anyone else.
            assert!(a.try_lock().is_none());
            assert!(b.try_lock().is_none());
        }
        // The second went with its guard; the first is still held.
        assert!(b.try_lock().is_some());
        assert!(a.try_lock().is_none());
        drop(held);
        assert_eq!((*a.lock(), *b.lock()), (2, 11));
    }

    #[test]
    fn a_single_lock_user_of_the_second_does_not_need_the_first() {
        let (a, b) = (Mutex::new(()), Mutex::new(5u8));
        let _pair = Ordered::new(&a, &b);
        assert_eq!(*b.lock(), 5);
        assert!(a.try_lock().is_some());
    }

    #[test]
    fn the_first_lock_alone_reads_and_writes_through_the_guard() {
        let (a, b) = (Mutex::new(alloc::vec![1u8]), Mutex::new(()));
        let pair = Ordered::new(&a, &b);
        pair.lock().push(2);
        assert_eq!(*pair.lock(), alloc::vec![1, 2]);
    }

    #[test]
    fn a_fan_gives_both_later_locks_only_while_the_first_is_held() {
        let (a, b, c) = (Mutex::new(0u8), Mutex::new(0u8), Mutex::new(0u8));
        let fan = Fan::new(&a, &b, &c);
        let mut held = fan.lock();
        let (first, then_b, then_c) = held.split();
        *first = 1;
        {
            let (mut gb, mut gc) = (then_b.lock(), then_c.lock());
            *gb = 2;
            *gc = 3;
            assert!(a.try_lock().is_none());
        }
        // Either later lock may be taken alone, in either order.
        *then_c.lock() += 1;
        *then_b.lock() += 1;
        drop(held);
        assert_eq!((*a.lock(), *b.lock(), *c.lock()), (1, 3, 4));
    }
}
