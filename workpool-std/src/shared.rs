//! The state every handle shares: the core behind its mutex, one wake-up
//! event per waiter slot, and every path that grants, hands off or wakes.
//!
//! The protocol is the same for futures and threads:
//!
//! 1. Under the lock, try for a lease; failing that, register a waiter with
//!    the core and start listening on the event of its slot *before* the lock
//!    is released, so no notification can be missed.
//! 2. Whoever changes the core (release, set, cancel, close) drains the
//!    core's wake queue under the same lock and notifies exactly the events
//!    of the waiters it names: a release wakes one waiter, not all of them.
//! 3. A woken waiter takes the lock and claims its outcome; a spurious wake
//!    finds it still waiting and it listens again.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use event_listener::{Event, EventListener, Listener};
use workpool_core::{Claim, Closed, Counts, Lease, Pool, TryAcquireError, WaiterId};

use crate::error::AcquireTimeoutError;
use crate::sync::{Mutex, MutexGuard, PoisonError};

/// Which capacity a request may be served from.
pub(crate) enum Want<'a, K> {
    Any,
    Key(&'a K),
}

impl<K> Clone for Want<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Want<'_, K> {}

pub(crate) struct Shared<K> {
    state: Mutex<State<K>>,
}

pub(crate) struct State<K> {
    pub(crate) core: Pool<K>,
    /// `events[i]` wakes the waiter in core slot `i`. Grow-only.
    events: Vec<Event>,
}

/// The progress of one waiting acquisition (a future or a stream).
#[derive(Default)]
pub(crate) struct Wait {
    waiter: Option<WaiterId>,
    listener: Option<EventListener>,
}

impl<K: Hash + Eq + Clone> Shared<K> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                core: Pool::new(),
                events: Vec::new(),
            }),
        }
    }

    /// Locks the state. The core never leaves its state half-changed when
    /// user code (`Hash`, `Eq`, `Clone` of `K`) panics, so a poisoned lock is
    /// still sound to use.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn counts(&self, key: &K) -> Counts {
        self.lock().core.counts(key)
    }

    pub(crate) fn set(&self, key: K, target: u64) {
        let mut state = self.lock();
        state.core.set(key, target);
        state.wake();
    }

    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.core.close();
        state.wake();
    }

    pub(crate) fn release(&self, lease: Lease<K>) {
        let mut state = self.lock();
        let released = state.core.release(lease);
        debug_assert!(released.is_ok(), "a std lease is always live: {released:?}");
        state.wake();
    }

    pub(crate) fn try_acquire(&self, want: Want<'_, K>) -> Result<Lease<K>, TryAcquireError> {
        self.lock().try_acquire(want)
    }

    /// Drives a waiting acquisition; see the module docs for the protocol.
    pub(crate) fn poll_acquire(
        &self,
        wait: &mut Wait,
        want: Want<'_, K>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Lease<K>, Closed>> {
        loop {
            if let Some(listener) = &mut wait.listener {
                if Pin::new(listener).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                wait.listener = None;
            }
            let mut state = self.lock();
            let waiter = match wait.waiter {
                Some(waiter) => waiter,
                None => match state.try_acquire(want) {
                    Ok(lease) => return Poll::Ready(Ok(lease)),
                    Err(TryAcquireError::Closed) => return Poll::Ready(Err(Closed)),
                    Err(TryAcquireError::NoCapacity) => match state.enqueue(want) {
                        Ok(waiter) => waiter,
                        Err(Closed) => return Poll::Ready(Err(Closed)),
                    },
                },
            };
            if let Some(outcome) = state.claim(waiter) {
                wait.waiter = None;
                return Poll::Ready(outcome);
            }
            wait.waiter = Some(waiter);
            wait.listener = Some(state.listen(waiter));
        }
    }

    /// Gives up a waiting acquisition. A lease already handed to it passes on.
    #[inline]
    pub(crate) fn cancel(&self, wait: &mut Wait) {
        // Most acquisitions finish without ever registering: nothing to do.
        if wait.waiter.is_none() && wait.listener.is_none() {
            return;
        }
        self.cancel_slow(wait);
    }

    #[cold]
    fn cancel_slow(&self, wait: &mut Wait) {
        if let Some(waiter) = wait.waiter.take() {
            let mut state = self.lock();
            let cancelled = state.core.cancel(waiter);
            debug_assert!(cancelled.is_ok());
            state.wake();
        }
        // Dropped outside the lock.
        wait.listener = None;
    }

    /// Waits on this thread until a lease is granted, the pool closes or
    /// `deadline` passes.
    pub(crate) fn acquire_blocking(
        &self,
        want: Want<'_, K>,
        deadline: Option<Instant>,
    ) -> Result<Lease<K>, AcquireTimeoutError> {
        let mut state = self.lock();
        match state.try_acquire(want) {
            Ok(lease) => return Ok(lease),
            Err(TryAcquireError::Closed) => return Err(AcquireTimeoutError::Closed),
            Err(TryAcquireError::NoCapacity) => {}
        }
        let waiter = state.enqueue(want)?;
        loop {
            if let Some(outcome) = state.claim(waiter) {
                return Ok(outcome?);
            }
            let listener = state.listen(waiter);
            drop(state);
            let woken = match deadline {
                None => {
                    listener.wait();
                    true
                }
                Some(deadline) => listener.wait_deadline(deadline).is_some(),
            };
            state = self.lock();
            if !woken {
                // Take a lease that raced the deadline rather than pass it on.
                if let Some(outcome) = state.claim(waiter) {
                    return Ok(outcome?);
                }
                let cancelled = state.core.cancel(waiter);
                debug_assert!(cancelled.is_ok());
                state.wake();
                return Err(AcquireTimeoutError::Timeout);
            }
        }
    }
}

impl<K: Hash + Eq + Clone> State<K> {
    fn try_acquire(&mut self, want: Want<'_, K>) -> Result<Lease<K>, TryAcquireError> {
        match want {
            Want::Any => self.core.try_acquire(),
            Want::Key(key) => self.core.try_acquire_key(key),
        }
    }

    fn enqueue(&mut self, want: Want<'_, K>) -> Result<WaiterId, Closed> {
        let waiter = match want {
            Want::Any => self.core.enqueue(),
            Want::Key(key) => self.core.enqueue_key(key),
        }?;
        if self.events.len() <= waiter.index() {
            self.events.resize_with(waiter.index() + 1, Event::new);
        }
        Ok(waiter)
    }

    /// The waiter's outcome if it has one (the waiter is then gone).
    fn claim(&mut self, waiter: WaiterId) -> Option<Result<Lease<K>, Closed>> {
        match self.core.claim(waiter) {
            Ok(Claim::Granted(lease)) => Some(Ok(lease)),
            Ok(Claim::Waiting) => None,
            // An unknown waiter cannot happen: only its owner removes it.
            Ok(Claim::Closed) | Err(_) => Some(Err(Closed)),
        }
    }

    fn listen(&self, waiter: WaiterId) -> EventListener {
        self.events[waiter.index()].listen()
    }

    /// Wakes every waiter the core decided since the last call.
    fn wake(&mut self) {
        while let Some(waiter) = self.core.poll_wake() {
            self.events[waiter.index()].notify(1);
        }
    }
}

impl<K> std::fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state.try_lock() {
            Ok(state) => f.debug_tuple("Shared").field(&state.core).finish(),
            // A poisoned lock is still sound to use (see `lock`).
            Err(std::sync::TryLockError::Poisoned(poisoned)) => f
                .debug_tuple("Shared")
                .field(&poisoned.into_inner().core)
                .finish(),
            Err(std::sync::TryLockError::WouldBlock) => f.write_str("Shared(<locked>)"),
        }
    }
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait")
            .field("waiter", &self.waiter)
            .field("listening", &self.listener.is_some())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The hand-off protocol driven by hand: poll once, release, check which
    //! waker fired. Small enough to run under Miri.

    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc as StdArc;
    use std::task::{Wake, Waker};

    use super::*;

    /// A waker that counts how often it was woken.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: StdArc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (StdArc<Counter>, Waker) {
        let counter = StdArc::new(Counter::default());
        (StdArc::clone(&counter), Waker::from(counter))
    }

    fn woken(counter: &Counter) -> usize {
        counter.0.load(Ordering::SeqCst)
    }

    #[test]
    fn release_wakes_exactly_the_served_waiter() {
        let shared = Shared::new();
        shared.set("k", 1);
        let held = shared.try_acquire(Want::Any).unwrap();
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let mut a = Wait::default();
        let mut b = Wait::default();
        let mut cx_a = Context::from_waker(&first_waker);
        let mut cx_b = Context::from_waker(&second_waker);
        assert!(shared
            .poll_acquire(&mut a, Want::Any, &mut cx_a)
            .is_pending());
        assert!(shared
            .poll_acquire(&mut b, Want::Key(&"k"), &mut cx_b)
            .is_pending());

        shared.release(held);
        assert_eq!((woken(&first), woken(&second)), (1, 0));
        let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut a, Want::Any, &mut cx_a) else {
            panic!("the woken waiter holds the lease");
        };
        assert!(shared
            .poll_acquire(&mut b, Want::Key(&"k"), &mut cx_b)
            .is_pending());

        shared.release(lease);
        assert_eq!(woken(&second), 1);
        assert!(shared
            .poll_acquire(&mut b, Want::Key(&"k"), &mut cx_b)
            .is_ready());
    }

    #[test]
    fn cancel_after_grant_passes_the_lease_on() {
        let shared = Shared::new();
        shared.set(1u8, 1);
        let held = shared.try_acquire(Want::Any).unwrap();
        let (_, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut first = Wait::default();
        let mut second = Wait::default();
        assert!(shared
            .poll_acquire(&mut first, Want::Any, &mut cx)
            .is_pending());
        assert!(shared
            .poll_acquire(&mut second, Want::Any, &mut cx)
            .is_pending());
        shared.release(held); // granted to `first`, which never collects it
        shared.cancel(&mut first);
        let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut second, Want::Any, &mut cx) else {
            panic!("the cancelled waiter's lease passes on");
        };
        // Lease 2 went back with the cancel; its capacity became lease 3.
        assert_eq!(lease.id(), 3);
        assert_eq!(shared.counts(&1).active, 1);
        shared.release(lease);
        assert_eq!(
            shared.counts(&1),
            Counts {
                target: 1,
                active: 0
            }
        );
    }

    #[test]
    fn close_wakes_every_waiter() {
        let shared = Shared::<u8>::new();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut waits: Vec<Wait> = (0..3).map(|_| Wait::default()).collect();
        for wait in &mut waits {
            assert!(shared.poll_acquire(wait, Want::Any, &mut cx).is_pending());
        }
        shared.close();
        assert_eq!(woken(&count), 3);
        for wait in &mut waits {
            assert!(matches!(
                shared.poll_acquire(wait, Want::Any, &mut cx),
                Poll::Ready(Err(Closed))
            ));
        }
    }

    #[test]
    fn blocking_waiter_is_served_by_another_thread() {
        let shared = StdArc::new(Shared::new());
        shared.set("k", 1);
        let held = shared.try_acquire(Want::Key(&"k")).unwrap();
        let waiter = {
            let shared = StdArc::clone(&shared);
            std::thread::spawn(move || {
                let lease = shared.acquire_blocking(Want::Key(&"k"), None).unwrap();
                let id = lease.id();
                shared.release(lease);
                id
            })
        };
        // Wait until the thread is queued, so the hand-off is what serves it.
        while shared.lock().core.waiters() == 0 {
            std::thread::yield_now();
        }
        shared.release(held);
        assert_eq!(waiter.join().unwrap(), 2);
        assert_eq!(shared.counts(&"k").active, 0);
    }

    #[test]
    fn blocking_deadline_in_the_past_times_out_cleanly() {
        let shared = Shared::<u8>::new();
        let outcome = shared.acquire_blocking(Want::Key(&3), Some(Instant::now()));
        assert!(matches!(outcome, Err(AcquireTimeoutError::Timeout)));
        let state = shared.lock();
        assert_eq!((state.core.waiters(), state.core.len()), (0, 0));
    }

    #[test]
    fn a_pinned_future_can_be_polled_through_the_public_api() {
        // Ties the protocol to the public futures: one poll registers.
        let pool = crate::Pool::new();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(pool.acquire_key(&"k"));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        pool.set("k", 1);
        assert_eq!(woken(&count), 1);
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
}
