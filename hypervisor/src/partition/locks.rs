//! Lock order as types (the idea of Hafnium's `vm_locked`): a lock that
//! must be taken after another is reachable only through the guard of
//! the first. [`Ordered`] pairs a lock with the one that comes after it;
//! [`Ordered::lock`] takes the first and gives a [`Locked`], whose
//! [`Locked::split`] hands out the first's data and a [`Then`], the only
//! way to take the second while the first is held. So code that holds
//! both took them in the documented order; code that needs only the second
//! locks it on its own (a single-lock user), which cannot deadlock against
//! an ordered pair as long as it takes nothing else meanwhile.
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
}
