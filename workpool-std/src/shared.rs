//! The state every handle shares: the core behind its mutex, one waker slot
//! per waiter, and every path that grants, hands off or wakes.
//!
//! The protocol is the same for futures and threads:
//!
//! 1. Under the lock, try for a lease; failing that, register a waiter with
//!    the core and store a waker in its slot *before* the lock is released,
//!    so no hand-off can be missed.
//! 2. Whoever changes the core (release, set, cancel, close) drains the
//!    core's wake queue under the same lock and takes exactly the wakers of
//!    the waiters it names: a release wakes one waiter, not all of them.
//! 3. A woken waiter takes the lock and claims its outcome; a spurious wake
//!    finds it still waiting and it stores its waker again.
//!
//! # No user code under the lock
//!
//! Waking a waker, dropping a waker, dropping a lease and dropping a key are
//! user code: a waker may own the last handle of a task that holds a lease,
//! and so re-enter the pool. None of them runs while the lock is held.
//! Every path decides under the lock, takes the wakers to wake into a
//! [`WakeBatch`] and what it must drop into an [`After`], and acts once the
//! guard is gone. The waker slots are ours (not `event-listener`'s) for the
//! same reason: a re-poll with a new waker swaps it under our lock and drops
//! the old one after unlocking.
//! Threads park on a per-thread `event-listener` [`Event`], which wakes
//! nothing but that thread. `Hash`, `Eq` and `Clone` of `K` do run under the
//! lock (finding a key needs them); the core stays consistent when they
//! panic, so a poisoned lock is still sound to use.
//!
//! # Handles
//!
//! [`Shared`] counts the `Pool` handles beside its `Arc`. Leases, streams,
//! owned futures and `PollPool`s hold the `Arc` but not a handle: none of
//! them can change a target, so once the last handle is gone nothing could
//! ever serve a waiter again, and the last handle's drop closes the pool.
//! A handle is only made from a live one, so the count never comes back
//! from zero.

use std::hash::{BuildHasher, Hash};
use std::mem;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use event_listener::{listener, Event, Listener};
use workpool_core::{Claim, Closed, Counts, Equivalent, TryAcquireError, WaiterId};

use crate::error::AcquireTimeoutError;
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Ordering, PoisonError, StdArc};

/// Which capacity a request may be served from: any key, or the key equal
/// to a `Q` (a borrowed form of `K`, such as `str` for `String`).
pub(crate) enum Want<'a, Q: ?Sized> {
    Any,
    Key(&'a Q),
}

impl<Q: ?Sized> Clone for Want<'_, Q> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Q: ?Sized> Copy for Want<'_, Q> {}

/// The bounds a `Q` needs to stand for a key: found by hash and
/// equivalence, and turned into an owned key when a waiter is the first to
/// ask for it.
pub(crate) trait KeyQuery<K>: Hash + Equivalent<K> + ToOwned<Owned = K> {}

impl<K, Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>> KeyQuery<K> for Q {}

pub(crate) struct Shared<K, S> {
    state: Mutex<State<K, S>>,
    /// How many `Pool` handles exist (see the module docs, "Handles").
    handles: AtomicUsize,
}

pub(crate) struct State<K, S> {
    pub(crate) core: workpool_core::Pool<K, S>,
    /// `wakers[i]`: the waker of the waiter in core slot `i`, once it
    /// registered one. Taken when the waiter is woken, claimed or cancelled.
    /// Never longer than the core's waiter slots once a waiter has left,
    /// so it shrinks with them after a burst.
    wakers: Vec<Option<Waker>>,
}

/// The waker slots never shrink below this many.
const MIN_WAKERS: usize = 16;

/// Where one waiting acquisition (a future or a stream) stands.
#[derive(Debug, Default)]
pub(crate) enum Wait {
    /// Not started (or, for a stream, between items).
    #[default]
    Idle,
    /// Registered with the core.
    Waiting(WaiterId),
    /// Finished: polling again is a bug of the caller.
    Done,
}

impl Wait {
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }
}

/// How many wakers one pass under the lock collects before it unlocks to
/// wake them (then it locks again for the rest). Bounded so that waking
/// needs no allocation.
const WAKE_BATCH: usize = 32;

/// Wakers taken under the lock, to be woken after unlocking. Built only
/// when there is someone to wake, so the common release (nobody waiting)
/// does not pay for it.
struct WakeBatch {
    slots: [Option<Waker>; WAKE_BATCH],
    len: usize,
}

impl WakeBatch {
    fn new(first: Waker) -> Self {
        let mut batch = Self {
            slots: [const { None }; WAKE_BATCH],
            len: 0,
        };
        batch.push(first);
        batch
    }

    fn is_full(&self) -> bool {
        self.len == WAKE_BATCH
    }

    fn push(&mut self, waker: Waker) {
        self.slots[self.len] = Some(waker);
        self.len += 1;
    }

    /// Wakes every waker; call it with no lock held.
    fn wake_all(mut self) {
        for slot in &mut self.slots[..self.len] {
            // Taken out before waking: if one panics, `Drop` still wakes
            // the rest.
            if let Some(waker) = slot.take() {
                waker.wake();
            }
        }
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        // Reached with wakers left only if a wake panicked: the waiters they
        // stand for were decided, so they must still be woken.
        for waker in self.slots[..self.len].iter_mut().filter_map(Option::take) {
            waker.wake();
        }
    }
}

/// What an operation must drop once it has unlocked: a waker it replaced
/// or no longer needs, and keys the core handed back or forgot.
pub(crate) struct After<K> {
    stale: Option<Waker>,
    /// At most one key on every path but `close`, so the `Vec` allocates
    /// only there.
    key: Option<K>,
    keys: Vec<K>,
}

impl<K> After<K> {
    pub(crate) fn new() -> Self {
        Self {
            stale: None,
            key: None,
            keys: Vec::new(),
        }
    }

    /// Keeps a waker to be dropped after unlocking. Every path replaces or
    /// removes at most one waker.
    fn push_stale(&mut self, waker: Option<Waker>) {
        debug_assert!(self.stale.is_none() || waker.is_none());
        if waker.is_some() {
            self.stale = waker;
        }
    }

    fn push_key(&mut self, key: K) {
        match self.key {
            None => self.key = Some(key),
            Some(_) => self.keys.push(key),
        }
    }
}

impl<K, S> Shared<K, S> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        Self {
            state: Mutex::new(State {
                core: workpool_core::Pool::with_hasher(hasher),
                wakers: Vec::new(),
            }),
            handles: AtomicUsize::new(1),
        }
    }

    /// Locks the state. The core never leaves its state half-changed when
    /// user code (`Hash`, `Eq`, `Clone` of `K`) panics, so a poisoned lock is
    /// still sound to use.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<K, S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Collects what the core decided, unlocks, and carries it out. The
    /// common case (nothing forgotten, nobody to wake) stays inline.
    #[inline]
    fn finish<'a>(&'a self, state: MutexGuard<'a, State<K, S>>, after: After<K>) {
        if state.core.has_forgotten() || state.core.has_wakes() {
            self.finish_slow(state, after);
        } else {
            drop(state);
            drop(after);
        }
    }

    /// [`finish`](Self::finish) with something to collect; repeats while one
    /// wake batch was not enough.
    #[cold]
    fn finish_slow<'a>(&'a self, mut state: MutexGuard<'a, State<K, S>>, mut after: After<K>) {
        loop {
            while let Some(key) = state.core.poll_forgotten() {
                after.push_key(key);
            }
            let Some(first) = state.next_wake() else {
                drop(state);
                drop(after);
                return;
            };
            let mut batch = WakeBatch::new(first);
            let more = state.fill(&mut batch);
            drop(state);
            batch.wake_all();
            if !more {
                drop(after);
                return;
            }
            state = self.lock();
        }
    }

    pub(crate) fn close(&self) {
        let after = After::new();
        let mut state = self.lock();
        state.core.close();
        self.finish(state, after);
    }

    #[inline]
    pub(crate) fn release(&self, lease: workpool_core::Lease<K>) {
        let mut state = self.lock();
        let key = match state.core.release(lease) {
            Ok(key) => key,
            // A std lease is only ever built from a grant of this pool and
            // released once, by its `Drop`.
            Err(err) => unreachable!("a std lease was rejected: {err}"),
        };
        if state.core.has_forgotten() || state.core.has_wakes() {
            let mut after = After::new();
            after.push_key(key);
            self.finish_slow(state, after);
        } else {
            // Nobody to wake: the common, uncontended case. The key is
            // dropped after unlocking, as always.
            drop(state);
            drop(key);
        }
    }

    /// Gives up a waiting acquisition. A lease already handed to it passes
    /// on.
    #[inline]
    pub(crate) fn cancel(&self, wait: &mut Wait) {
        // Most acquisitions finish without ever registering: nothing to do.
        if let Wait::Waiting(waiter) = mem::replace(wait, Wait::Done) {
            self.cancel_waiter(waiter);
        }
    }

    #[cold]
    fn cancel_waiter(&self, waiter: WaiterId) {
        let mut after = After::new();
        let mut state = self.lock();
        state.cancel(waiter, &mut after);
        self.finish(state, after);
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    pub(crate) fn counts<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Counts {
        self.lock().core.counts(key)
    }

    pub(crate) fn set(&self, key: K, target: u64) {
        let mut after = After::new();
        let mut state = self.lock();
        if let Some(unused) = state.core.set(key, target) {
            after.push_key(unused);
        }
        self.finish(state, after);
    }

    pub(crate) fn try_acquire<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        self.lock().try_acquire(want)
    }

    /// Drives a waiting acquisition; see the module docs for the protocol.
    ///
    /// # Panics
    ///
    /// If `wait` is [`Wait::Done`]: the future was polled after it
    /// completed.
    pub(crate) fn poll_acquire<Q: ?Sized + KeyQuery<K>>(
        &self,
        wait: &mut Wait,
        want: Want<'_, Q>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<workpool_core::Lease<K>, Closed>> {
        assert!(
            !wait.is_done(),
            "a workpool acquire future was polled after it completed"
        );
        let mut state = self.lock();
        let waiter = match *wait {
            Wait::Waiting(waiter) => waiter,
            _ => match state.try_acquire(want) {
                Ok(lease) => {
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(lease));
                }
                Err(TryAcquireError::Closed) => {
                    *wait = Wait::Done;
                    return Poll::Ready(Err(Closed));
                }
                Err(TryAcquireError::NoCapacity) => match state.enqueue(want) {
                    Ok(waiter) => waiter,
                    Err(Closed) => {
                        *wait = Wait::Done;
                        return Poll::Ready(Err(Closed));
                    }
                },
            },
        };
        // Recorded before `claim`, which clones the key: if that panics,
        // dropping the future cancels the waiter and its grant passes on.
        *wait = Wait::Waiting(waiter);
        // Declared after the guard, so both paths below unlock explicitly
        // first. (Should `claim` unwind, `after` is still empty: dropping it
        // under the lock then runs no user code.)
        let mut after = After::new();
        match state.claim(waiter, &mut after) {
            Some(outcome) => {
                *wait = Wait::Done;
                drop(state);
                drop(after);
                Poll::Ready(outcome)
            }
            None => {
                state.register(waiter, cx.waker(), &mut after);
                drop(state);
                drop(after);
                Poll::Pending
            }
        }
    }

    /// Waits on this thread until a lease is granted, the pool closes or
    /// `deadline` passes.
    pub(crate) fn acquire_blocking<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
        deadline: Option<Instant>,
    ) -> Result<workpool_core::Lease<K>, AcquireTimeoutError> {
        let waiter = {
            let mut state = self.lock();
            match state.try_acquire(want) {
                Ok(lease) => return Ok(lease),
                Err(TryAcquireError::Closed) => return Err(AcquireTimeoutError::Closed),
                Err(TryAcquireError::NoCapacity) => {}
            }
            state.enqueue(want)?
        };
        // From here on an unwind (a panicking `K::clone` in `claim`) cancels
        // the waiter, so a grant it holds passes on instead of leaking.
        let mut guard = CancelOnUnwind {
            shared: self,
            waiter: Some(waiter),
        };
        let signal = ThreadSignal::current();
        let waker = Waker::from(StdArc::clone(&signal));
        let mut timed_out = false;
        loop {
            // Listen before looking, so a wake between the look and the wait
            // is not lost.
            listener!(signal.event => listener);
            let mut after = After::new();
            let mut state = self.lock();
            // After the deadline too: take a lease that raced it rather than
            // pass it on.
            if let Some(outcome) = state.claim(waiter, &mut after) {
                guard.waiter = None;
                drop(state);
                return Ok(outcome?);
            }
            if timed_out {
                guard.waiter = None;
                state.cancel(waiter, &mut after);
                self.finish(state, after);
                return Err(AcquireTimeoutError::Timeout);
            }
            state.register(waiter, &waker, &mut after);
            drop(state);
            drop(after);
            timed_out = match deadline {
                None => {
                    listener.wait();
                    false
                }
                Some(deadline) => listener.wait_deadline(deadline).is_none(),
            };
        }
    }

    /// Closes one key in the core and wakes the waiters it failed (and drops
    /// the key if the core forgot it) after unlocking.
    pub(crate) fn close_key<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) {
        let after = After::new();
        let mut state = self.lock();
        state.core.close_key(key);
        self.finish(state, after);
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> State<K, S> {
    fn try_acquire<Q: ?Sized + KeyQuery<K>>(
        &mut self,
        want: Want<'_, Q>,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        match want {
            Want::Any => self.core.try_acquire(),
            Want::Key(key) => self.core.try_acquire_key(key),
        }
    }

    fn enqueue<Q: ?Sized + KeyQuery<K>>(&mut self, want: Want<'_, Q>) -> Result<WaiterId, Closed> {
        let waiter = match want {
            Want::Any => self.core.enqueue(),
            Want::Key(key) => self.core.enqueue_key(key),
        }?;
        if self.wakers.len() <= waiter.index() {
            let len = waiter.index() + 1;
            if len > self.wakers.capacity() {
                // An eighth of slack, as the core's waiter slab keeps: a
                // queued acquisition costs its 40-byte slot there and a
                // 16-byte waker slot here, with little to spare.
                let more = len - self.wakers.len();
                self.wakers.reserve_exact(more.max(len / 8).max(8));
            }
            self.wakers.resize_with(len, || None);
        }
        Ok(waiter)
    }

    /// The waiter's outcome if it has one (the waiter is then gone, and its
    /// stored waker goes to `after` to be dropped).
    fn claim(
        &mut self,
        waiter: WaiterId,
        after: &mut After<K>,
    ) -> Option<Result<workpool_core::Lease<K>, Closed>> {
        let outcome = match self.core.claim(waiter) {
            Ok(Claim::Granted(lease)) => Ok(lease),
            Ok(Claim::Closed) => Err(Closed),
            Ok(Claim::Waiting) => return None,
            Err(err) => unreachable!("only a waiter's owner removes it: {err}"),
        };
        after.push_stale(self.wakers[waiter.index()].take());
        self.trim_wakers();
        Some(outcome)
    }
}

impl<K, S> State<K, S> {
    /// Stores `waker` for a waiting waiter, unless the stored one already
    /// wakes the same task; a replaced waker goes to `after` to be dropped.
    fn register(&mut self, waiter: WaiterId, waker: &Waker, after: &mut After<K>) {
        let slot = &mut self.wakers[waiter.index()];
        match slot {
            Some(stored) if stored.will_wake(waker) => {}
            _ => after.push_stale(slot.replace(waker.clone())),
        }
    }

    /// Removes a waiter that gave up; a lease already granted to it passes
    /// on (whoever it serves is woken by the caller's `finish`).
    fn cancel(&mut self, waiter: WaiterId, after: &mut After<K>) {
        let cancelled = self.core.cancel(waiter);
        debug_assert!(cancelled.is_ok(), "only a waiter's owner removes it");
        after.push_stale(self.wakers[waiter.index()].take());
        self.trim_wakers();
    }

    /// Follows the core's waiter slab after a waiter left: drops the waker
    /// slots past its end (all empty: a waiter's waker is taken when it
    /// leaves, so no waker is dropped here, under the lock) and gives
    /// capacity back once less than a quarter is used, keeping the eighth
    /// of slack that growth leaves. O(1) amortised: each slot cut was
    /// pushed once.
    #[inline]
    fn trim_wakers(&mut self) {
        let slots = self.core.waiter_slots();
        if self.wakers.len() > slots {
            self.cut_wakers(slots);
        }
    }

    #[cold]
    fn cut_wakers(&mut self, slots: usize) {
        debug_assert!(
            self.wakers[slots..].iter().all(Option::is_none),
            "a waker outlived its waiter"
        );
        self.wakers.truncate(slots);
        if self.wakers.capacity() > MIN_WAKERS && slots < self.wakers.capacity() / 4 {
            self.wakers.shrink_to((slots + slots / 8).max(MIN_WAKERS));
        }
    }

    /// The waker of the next waiter the core decided, if any.
    fn next_wake(&mut self) -> Option<Waker> {
        while let Some(waiter) = self.core.poll_wake() {
            // A waiter that never stored a waker is between its enqueue and
            // its claim under this same lock: nothing to wake.
            if let Some(waker) = self.wakers[waiter.index()].take() {
                return Some(waker);
            }
        }
        None
    }

    /// Adds the wakers of further decided waiters to `batch`. True if the
    /// batch filled up with more to come.
    fn fill(&mut self, batch: &mut WakeBatch) -> bool {
        while !batch.is_full() {
            match self.next_wake() {
                Some(waker) => batch.push(waker),
                None => return false,
            }
        }
        true
    }
}

impl<K, S> Shared<K, S> {
    /// Counts a new `Pool` handle, made from a live one.
    pub(crate) fn add_handle(&self) {
        // Relaxed, as in `Arc::clone`: the caller holds a handle, so the
        // count cannot reach zero meanwhile. It cannot overflow either: each
        // handle also holds an `Arc`, whose count aborts first.
        let old = self.handles.fetch_add(1, Ordering::Relaxed);
        debug_assert!(old > 0, "a handle was made from a dropped one");
    }

    /// Counts a dropped `Pool` handle; the last one closes the pool. Called
    /// with no lock held (from `Pool::drop`, which the pool never runs
    /// under its lock), so `close` wakes the waiters after unlocking as
    /// always.
    pub(crate) fn drop_handle(&self) {
        // Whoever takes the count to zero closes; every other effect of the
        // handles is ordered by the mutex that `close` takes.
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }
}

/// Cancels a blocking waiter if its thread unwinds while it waits.
struct CancelOnUnwind<'a, K, S> {
    shared: &'a Shared<K, S>,
    waiter: Option<WaiterId>,
}

impl<K, S> Drop for CancelOnUnwind<'_, K, S> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.shared.cancel_waiter(waiter);
        }
    }
}

/// A thread's wake-up: a waker that notifies the thread's own `Event`.
/// One per thread, reused by every blocking wait, so waiting allocates
/// nothing; waking it runs no user code.
struct ThreadSignal {
    event: Event,
}

impl ThreadSignal {
    fn current() -> StdArc<Self> {
        crate::sync::thread_local! {
            static SIGNAL: StdArc<ThreadSignal> = StdArc::new(ThreadSignal { event: Event::new() });
        }
        SIGNAL.with(StdArc::clone)
    }
}

impl std::task::Wake for ThreadSignal {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.event.notify(1);
    }
}

impl<K, S> std::fmt::Debug for Shared<K, S> {
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

#[cfg(all(test, not(loom)))]
mod tests {
    //! The hand-off protocol driven by hand: poll once, release, check which
    //! waker fired. Small enough to run under Miri.

    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc as StdArc;
    use std::task::{Wake, Waker};

    use std::future::Future;

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

    fn new_shared<K>() -> Shared<K, crate::DefaultHashBuilder> {
        Shared::with_hasher(crate::DefaultHashBuilder::default())
    }

    fn woken(counter: &Counter) -> usize {
        counter.0.load(Ordering::SeqCst)
    }

    #[test]
    fn release_wakes_exactly_the_served_waiter() {
        let shared = new_shared();
        shared.set("k", 1);
        let held = shared.try_acquire(Want::<&str>::Any).unwrap();
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let mut a = Wait::default();
        let mut b = Wait::default();
        let mut cx_a = Context::from_waker(&first_waker);
        let mut cx_b = Context::from_waker(&second_waker);
        assert!(shared
            .poll_acquire(&mut a, Want::<&str>::Any, &mut cx_a)
            .is_pending());
        assert!(shared
            .poll_acquire(&mut b, Want::Key(&"k"), &mut cx_b)
            .is_pending());

        shared.release(held);
        assert_eq!((woken(&first), woken(&second)), (1, 0));
        let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut a, Want::<&str>::Any, &mut cx_a)
        else {
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
        let shared = new_shared();
        shared.set(1u8, 1);
        let held = shared.try_acquire(Want::<u8>::Any).unwrap();
        let (_, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut first = Wait::default();
        let mut second = Wait::default();
        assert!(shared
            .poll_acquire(&mut first, Want::<u8>::Any, &mut cx)
            .is_pending());
        assert!(shared
            .poll_acquire(&mut second, Want::<u8>::Any, &mut cx)
            .is_pending());
        shared.release(held); // granted to `first`, which never collects it
        shared.cancel(&mut first);
        let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut second, Want::<u8>::Any, &mut cx)
        else {
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
        let shared = new_shared::<u8>();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut waits: Vec<Wait> = (0..3).map(|_| Wait::default()).collect();
        for wait in &mut waits {
            assert!(shared
                .poll_acquire(wait, Want::<u8>::Any, &mut cx)
                .is_pending());
        }
        shared.close();
        assert_eq!(woken(&count), 3);
        for wait in &mut waits {
            assert!(matches!(
                shared.poll_acquire(wait, Want::<u8>::Any, &mut cx),
                Poll::Ready(Err(Closed))
            ));
        }
    }

    #[test]
    fn waker_slots_shrink_with_the_waiters() {
        let shared = new_shared::<u8>();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let n = if cfg!(miri) { 100 } else { 10_000 };
        let mut waits: Vec<Wait> = (0..n).map(|_| Wait::default()).collect();
        for wait in &mut waits {
            assert!(shared
                .poll_acquire(wait, Want::<u8>::Any, &mut cx)
                .is_pending());
        }
        assert_eq!(shared.lock().wakers.len(), n);
        // The oldest stays, in slot 0; the slots above it go.
        for wait in &mut waits[1..] {
            shared.cancel(wait);
        }
        {
            let state = shared.lock();
            assert_eq!((state.core.waiter_slots(), state.wakers.len()), (1, 1));
            assert!(state.wakers.capacity() <= MIN_WAKERS);
        }
        shared.set(1, 1);
        assert_eq!(woken(&count), 1, "its waker survived the trimming");
        let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut waits[0], Want::<u8>::Any, &mut cx)
        else {
            panic!("the woken waiter holds the lease");
        };
        assert_eq!(shared.lock().wakers.len(), 0);
        shared.release(lease);
    }

    #[test]
    fn blocking_waiter_is_served_by_another_thread() {
        let shared = StdArc::new(new_shared());
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
        let shared = new_shared::<u8>();
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
