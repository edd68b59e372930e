//! The lock of the lane and of each shard: a mutex whose uncontended unlock
//! is a plain store, and whose word sits after the value it guards.
//!
//! `std::sync::Mutex` unlocks with an atomic swap, so that it sees whether a
//! thread went to sleep on the lock and must be woken; on x86 that is a
//! locked instruction, which waits for the critical section's stores to
//! leave the store buffer. Its word also comes first, on the line of the
//! value's first fields. At 100,000 keys (S2: a key's `try` + release, one
//! shard lock and unlock each, no contention) this lock took the cycle from
//! 87–101 ns to 74–87 in `compare` (ARCHITECTURE, "The shards' lock"). Both
//! changes were needed there: the store alone, with the word first, did not
//! move that row.
//!
//! # The protocol
//!
//! `state` is [`FREE`], [`LOCKED`] (nobody said it waits) or [`CONTENDED`]
//! (locked, and a thread may be asleep on it). A lock is taken only by a
//! compare-exchange or a swap that finds it `FREE`, so at most one thread
//! holds it, whatever the unlock does.
//!
//! - **Lock**: a compare-exchange `FREE` → `LOCKED`. Failing that, spin
//!   a while (as `std`'s mutex does) while it is `LOCKED`; then swap in
//!   `CONTENDED` (taking the lock if that found it `FREE`), listen on the
//!   lock's [`Event`], swap again (the holder may have left between), and
//!   sleep until notified or [`NAP`] has passed; repeat.
//! - **Unlock**: if the state reads `LOCKED`, store `FREE` (no locked
//!   instruction); otherwise swap in `FREE` and notify one sleeper.
//!
//! The fast unlock can miss a sleeper: a thread that swaps `LOCKED` →
//! `CONTENDED` between the unlock's read and its store, and then goes to
//! sleep before that store, is not notified (the store also erases its
//! `CONTENDED`). That takes the holder being interrupted between two
//! adjacent instructions while another thread runs its whole slow path,
//! and it costs that thread at most one [`NAP`]: every sleep has that
//! deadline, after which it tries again. Mutual exclusion never depends on
//! it. Closing that window for good needs a store-load fence on the unlock,
//! which costs what the swap costs.
//!
//! Not poisoned by a panic: a panic under a lock (a key's `Hash`, `Eq` or
//! `Clone`, the only user code that runs there) unwinds through the guard,
//! which unlocks; the pool ignored `std`'s poison already (`lock_shard`
//! took the guard out of the `PoisonError`).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{PoisonError, TryLockError};
#[cfg(not(loom))]
use std::time::Duration;

#[cfg(not(loom))]
use event_listener::{listener, Event, Listener};

use crate::sync::{AtomicU8, Ordering};

// Under loom (`RUSTFLAGS="--cfg loom"`), the value is loom's cell, which
// checks that accesses through the lock never overlap, and a sleep is a
// yield (loom has no clock); the pool's models keep loom's own mutex, and
// this lock has a model of its own (`tests::loom_models` below).
#[cfg(loom)]
use loom::cell::UnsafeCell;
#[cfg(not(loom))]
use std::cell::UnsafeCell;

const FREE: u8 = 0;
const LOCKED: u8 = 1;
const CONTENDED: u8 = 2;

/// How long a sleeper sleeps without a notification before it tries
/// again: the most a missed notification can cost (see the module docs).
#[cfg(not(loom))]
const NAP: Duration = Duration::from_millis(1);

/// How many times a blocked lock spins before it sleeps (as `std`'s).
#[cfg(not(loom))]
const SPINS: u32 = 100;
/// One spin under loom, so that its models stay small.
#[cfg(loom)]
const SPINS: u32 = 1;

/// A mutual-exclusion lock with the part of `std::sync::Mutex`'s interface
/// that the pool uses; [`lock`](Self::lock) never fails.
///
/// Laid out (`repr(C)`) as measured best (ARCHITECTURE, "The shards'
/// lock"): 8 bytes first, where `std`'s lock has its word, so that the
/// value's fields sit on the lines ARCHITECTURE's "The shard's cache lines"
/// lays out; then the value; then the lock's word, off the line of the
/// value's first fields; then the event. With the event first instead of
/// the 8 bytes (the word then right beside the shard's next field), the
/// S2 row at 100,000 keys went back to where `std`'s lock had it.
#[repr(C)]
pub(crate) struct Mutex<T> {
    _before: u64,
    value: UnsafeCell<T>,
    state: AtomicU8,
    /// Where blocked threads sleep; it allocates on the first sleep only.
    #[cfg(not(loom))]
    sleepers: Event,
}

// SAFETY: the lock hands out access to `value` to one thread at a time (the
// module docs), so sharing the lock shares `T` only by moving access
// between threads: `T: Send` suffices, as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above; sending the lock sends the `T` it owns.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            _before: 0,
            value: UnsafeCell::new(value),
            state: AtomicU8::new(FREE),
            #[cfg(not(loom))]
            sleepers: Event::new(),
        }
    }

    /// Takes the lock, waiting for it. Always `Ok`: the `Result` is that of
    /// `std::sync::Mutex::lock`, so that loom's mutex can stand in.
    #[inline]
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, T>, PoisonError<MutexGuard<'_, T>>> {
        if self
            .state
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        Ok(MutexGuard::new(self))
    }

    /// Takes the lock if nobody holds it. `WouldBlock` otherwise, as
    /// `std::sync::Mutex::try_lock`; never `Poisoned`.
    pub(crate) fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError<MutexGuard<'_, T>>> {
        match self
            .state
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(MutexGuard::new(self)),
            Err(_) => Err(TryLockError::WouldBlock),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0;
        loop {
            match self.state.load(Ordering::Relaxed) {
                FREE => {
                    if self
                        .state
                        .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return;
                    }
                }
                LOCKED if spins < SPINS => {
                    spins += 1;
                    #[cfg(not(loom))]
                    std::hint::spin_loop();
                    #[cfg(loom)]
                    loom::thread::yield_now();
                }
                _ => break,
            }
        }
        // Sleep until the holder notifies (or a nap ends), saying so first.
        // The lock taken this way stays `CONTENDED`: its unlock notifies,
        // in case others sleep too.
        while self.state.swap(CONTENDED, Ordering::Acquire) != FREE {
            #[cfg(not(loom))]
            {
                listener!(self.sleepers => sleeping);
                // An unlock between the swap above and the listener's start
                // notified nobody: look again before sleeping.
                if self.state.swap(CONTENDED, Ordering::Acquire) == FREE {
                    return;
                }
                sleeping.wait_timeout(NAP);
            }
            // Loom's stand-in for the sleep: wait for the word to say free
            // (loom explores every order of the holder's unlock and this).
            #[cfg(loom)]
            while self.state.load(Ordering::Relaxed) != FREE {
                loom::thread::yield_now();
            }
        }
    }

    /// The address of the lock's word, for the layout test.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn word_addr(&self) -> usize {
        std::ptr::from_ref(&self.state).addr()
    }

    #[inline]
    fn unlock(&self) {
        if self.state.load(Ordering::Relaxed) == LOCKED {
            self.state.store(FREE, Ordering::Release);
        } else {
            self.unlock_contended();
        }
    }

    #[cold]
    #[inline(never)]
    fn unlock_contended(&self) {
        self.state.swap(FREE, Ordering::Release);
        #[cfg(not(loom))]
        self.sleepers.notify(1);
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => out.field("data", &&*guard),
            Err(_) => out.field("data", &format_args!("<locked>")),
        };
        out.finish_non_exhaustive()
    }
}

/// Access to a [`Mutex`]'s value; unlocks when dropped.
pub(crate) struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
    /// Loom's record of this access to the value, ended before the unlock.
    #[cfg(loom)]
    access: Option<loom::cell::MutPtr<T>>,
}

impl<'a, T> MutexGuard<'a, T> {
    /// The guard of a lock this thread has just taken.
    #[inline]
    fn new(lock: &'a Mutex<T>) -> Self {
        Self {
            lock,
            #[cfg(loom)]
            access: Some(lock.value.get_mut()),
        }
    }

    #[inline]
    fn value(&self) -> *mut T {
        #[cfg(not(loom))]
        return self.lock.value.get();
        #[cfg(loom)]
        // SAFETY: the access is loom's record of this guard's, live until
        // the unlock; loom checks that no other overlaps it.
        return unsafe { self.access.as_ref().expect("held").deref() };
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its thread holds the lock, so
        // no other reference to the value exists.
        unsafe { &*self.value() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference through the guard.
        unsafe { &mut *self.value() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(loom)]
        drop(self.access.take());
        self.lock.unlock();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Mutex, CONTENDED, FREE, LOCKED, NAP};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Barrier};
    use std::time::Instant;

    /// Threads that add under the lock with a plain read and write lose no
    /// addition: at most one holds it at a time.
    #[test]
    fn one_holder_at_a_time() {
        let threads = 4;
        let rounds = if cfg!(miri) { 50 } else { 20_000 };
        let lock = Arc::new(Mutex::new(0u64));
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (lock, start) = (Arc::clone(&lock), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..rounds {
                        let mut guard = lock.lock().unwrap();
                        let seen = *guard;
                        std::hint::spin_loop();
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let guard = lock.lock().unwrap();
        assert_eq!(*guard, threads as u64 * rounds);
        assert_eq!(lock.state.load(Ordering::Relaxed), LOCKED);
        drop(guard);
        assert_eq!(lock.state.load(Ordering::Relaxed), FREE);
    }

    /// A thread asleep on the lock is woken by the unlock that sees it, and
    /// one whose notice the fast unlock erased wakes after its nap.
    #[test]
    fn a_sleeper_gets_the_lock() {
        // A thread that takes the lock once, started when it is held, and
        // seen to announce that it waits.
        let blocked = |lock: &Arc<Mutex<()>>| {
            let sleeper = {
                let lock = Arc::clone(lock);
                std::thread::spawn(move || drop(lock.lock().unwrap()))
            };
            while lock.state.load(Ordering::Relaxed) != CONTENDED {
                std::thread::yield_now();
            }
            sleeper
        };
        let lock = Arc::new(Mutex::new(()));
        let guard = lock.lock().unwrap();
        let sleeper = blocked(&lock);
        drop(guard);
        sleeper.join().unwrap();
        assert_eq!(lock.state.load(Ordering::Relaxed), FREE);

        // The missed notice, forced: the holder's unlock reads `LOCKED`
        // because the sleeper's `CONTENDED` is overwritten before it.
        let guard = lock.lock().unwrap();
        let sleeper = blocked(&lock);
        // Let it fall asleep, then erase its notice as a racing fast
        // unlock would, and unlock without notifying.
        std::thread::sleep(NAP / 4);
        lock.state.store(LOCKED, Ordering::Relaxed);
        let erased = Instant::now();
        drop(guard);
        sleeper.join().unwrap();
        assert!(erased.elapsed() < NAP * 1000, "the nap ended the sleep");
        assert!(lock.try_lock().is_ok());
    }

    #[test]
    fn try_lock_and_debug() {
        let lock = Mutex::new(5);
        let guard = lock.try_lock().unwrap();
        assert!(lock.try_lock().is_err());
        assert!(format!("{lock:?}").contains("<locked>"));
        drop(guard);
        assert!(format!("{lock:?}").contains('5'));
    }
}

/// Loom models of the lock's exclusion and ordering: whatever the
/// interleaving, two accesses through it never overlap, and an access
/// sees the writes of the one before it (loom's cell checks both), through
/// the fast unlock's store and the contended unlock's swap. The models take
/// the lock without waiting (`try_lock`, or `lock` once the word is seen
/// free): loom has no clock for the sleep's nap, and a model in which a
/// thread waits forever on a word it may keep reading stale explores
/// without end. The sleep and the nap are the unit tests' (above).
#[cfg(all(test, loom))]
mod loom_models {
    use super::{Mutex, CONTENDED};
    use crate::sync::Ordering;
    use loom::sync::Arc;
    use loom::thread;

    /// Two threads take the lock if free and add one; the main thread then
    /// sees every addition made.
    fn add_if_free(contended: bool) {
        loom::model(move || {
            let lock = Arc::new(Mutex::new(0u32));
            let other = {
                let lock = Arc::clone(&lock);
                thread::spawn(move || match lock.try_lock() {
                    Ok(mut guard) => {
                        if contended {
                            // As a sleeper's notice would: the unlock swaps.
                            lock.state.store(CONTENDED, Ordering::Relaxed);
                        }
                        *guard += 1;
                        1
                    }
                    Err(_) => 0,
                })
            };
            let mine = match lock.try_lock() {
                Ok(mut guard) => {
                    *guard += 1;
                    1
                }
                Err(_) => 0,
            };
            let theirs = other.join().unwrap();
            assert!(mine + theirs >= 1, "one of two takes a free lock");
            assert_eq!(*lock.lock().unwrap(), mine + theirs);
        });
    }

    #[test]
    fn accesses_never_overlap_and_see_the_last_one() {
        add_if_free(false);
    }

    #[test]
    fn the_contended_unlock_orders_too() {
        add_if_free(true);
    }
}
