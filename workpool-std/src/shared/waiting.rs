//! The waiting protocol: an acquisition takes a lease at once or
//! registers a waiter, then claims the outcome once woken, as a future
//! ([`Shared::poll_acquire`]) or on a thread ([`Shared::acquire_blocking`]);
//! or gives up ([`Shared::cancel`]).
//!
//! The same for futures and threads:
//!
//! 1. Under the part's lock, try for a lease; failing that, register a
//!    waiter with the core and store a waker in its slot *before* the lock
//!    is released, so no hand-off can be missed.
//! 2. Whoever changes the core (release, set, cancel, close) drains the
//!    wake lists of the parts it holds and takes exactly the wakers of the
//!    waiters they name: a release wakes one waiter, not all of them (see
//!    [`wake`](super::wake)). For a key waiter it also claims the outcome
//!    and publishes it in the waiter's hand-off cell (see
//!    [`handoff`](super::handoff)), under the same lock.
//! 3. A woken key waiter takes its published outcome without a lock. A
//!    waiter with nothing published (an any-key waiter, a spurious wake,
//!    a hand-off that found the cell taken) takes its part's lock, looks
//!    in its cell again, then claims its outcome from the core; still
//!    waiting, it stores its waker again.
//!
//! Threads park on a per-thread `event-listener` [`Event`] ([`ThreadSignal`]),
//! which wakes nothing but that thread.

use std::hash::{BuildHasher, Hash};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use event_listener::{listener, Event, Listener};
use workpool_core::parts::{Entered, NeedsLane};
use workpool_core::{Claim, Closed, TryAcquireError, WaiterId};

use super::{After, KeyQuery, LaneGuard, ShardGuard, Shared, Want};
use crate::error::AcquireTimeoutError;
use crate::sync::{Ordering, StdArc};

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

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// [`Pool::try_acquire_key_many`](crate::Pool::try_acquire_key_many):
    /// always under the key's shard's lock (and the lane's, while a limit
    /// is set): the key's word is collected first, so the core sees all of
    /// its room.
    pub(crate) fn try_key_many_locked<Q: ?Sized + KeyQuery<K>>(
        &self,
        hash: u64,
        shard: usize,
        key: &Q,
        units: u64,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        let mut part = self.lock_shard(shard);
        self.collect_key(shard, &mut part, hash);
        let (core, mut ids) = part.split_ids(&self.ids);
        if let Ok(taken) = core.try_acquire_key_many(None, hash, key, units, &mut ids) {
            return taken;
        }
        drop(part);
        self.try_key_with_lane(shard, hash, key, units)
    }

    /// A key's `try` once its shard alone answered `NeedsLane` (a limit is
    /// set and the shard's budget falls short): the lane counts the pool's
    /// leases. A grant lends the shard a budget.
    #[cold]
    #[inline(never)]
    fn try_key_with_lane(
        &self,
        shard: usize,
        hash: u64,
        key: &(impl ?Sized + KeyQuery<K>),
        units: u64,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        let (mut lane, mut part) = self.relock_with_lane(shard, hash, units);
        let (core, mut ids) = part.split_ids(&self.ids);
        let taken = core
            .try_acquire_key_many(Some(&mut lane.core), hash, key, units, &mut ids)
            .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
        if taken.is_ok() {
            self.lend_budget(&mut lane, &mut part);
        }
        taken
    }

    /// Takes the lane, then the key's shard (the lock order; the caller
    /// let the shard go), for a key operation its shard alone could not
    /// finish under a limit. Budgets come back first if the limit's free
    /// room is short of `units`; the key's word is collected again (a
    /// grant made meanwhile may have lent it the key's room).
    #[cold]
    fn relock_with_lane(
        &self,
        shard: usize,
        hash: u64,
        units: u64,
    ) -> (LaneGuard<'_>, ShardGuard<'_, K>) {
        let mut lane = self.lock_lane();
        self.reclaim_if_short(&mut lane, units);
        let mut part = self.lock_shard(shard);
        self.collect_key(shard, &mut part, hash);
        (lane, part)
    }

    /// [`start`](Self::start) of `units` units of a key: always under its
    /// shard's lock, with the key's word collected first, so that no unit
    /// lent to the fast path is missed and a waiter queues only once the
    /// core holds every unit of the key.
    #[inline]
    fn start_key_many(
        &self,
        key: &(impl ?Sized + KeyQuery<K>),
        units: u64,
    ) -> Result<Started<'_, K>, Closed> {
        let (hash, shard) = self.locate(key);
        let mut part = self.lock_shard(shard);
        self.collect_key(shard, &mut part, hash);
        let arrivals = self.hints.arrivals.load(Ordering::Relaxed);
        let (core, mut ids) = part.split_ids(&self.ids);
        let queued = match core.try_or_enqueue_key_many(hash, key, arrivals, units, &mut ids) {
            Ok(Ok(Entered::Leased(lease))) => return Ok(Started::Leased(lease)),
            Ok(Ok(Entered::Queued(waiter))) => Some(waiter),
            // Closed, or more units than a lease can hold (which no wait
            // could ever serve): `Closed` (documented).
            Ok(Err(_)) => return Err(Closed),
            Err(NeedsLane(())) => None,
        };
        let started = match queued {
            Some(waiter) => Err(waiter),
            None => {
                // A limit is set: take the lane, then the shard.
                drop(part);
                let (mut lane, relocked) = self.relock_with_lane(shard, hash, units);
                part = relocked;
                self.start_key_with_lane(&mut lane, &mut part, hash, key, units)?
            }
        };
        Ok(match started {
            Ok(lease) => Started::Leased(lease),
            Err(waiter) => {
                part.reserve_slot(waiter);
                Started::Shard(part, waiter)
            }
        })
    }

    /// [`Pool::try_acquire_key`](crate::Pool::try_acquire_key) under the
    /// key's shard's lock (and the lane's, while a limit is set).
    #[inline]
    pub(crate) fn try_key_locked<Q: ?Sized + KeyQuery<K>>(
        &self,
        hash: u64,
        shard: usize,
        key: &Q,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        let mut part = self.lock_shard(shard);
        self.collect_key(shard, &mut part, hash);
        let (core, mut ids) = part.split_ids(&self.ids);
        // The lease stays in `taken` until returned: one more move through
        // a `match` measured 20% on this path (store forwarding).
        if let Ok(taken) = core.try_acquire_key(None, hash, key, &mut ids) {
            if let Ok(lease) = &taken {
                self.lend_slot(
                    shard,
                    &mut part,
                    lease.slot(),
                    Some((hash, lease.key(), K::clone)),
                );
            }
            return taken;
        }
        // A limit is set and the budget falls short: written out here, not
        // a call to `try_key_with_lane`, which made the shard-alone grant's
        // lease take one more copy through the stack (S2's locked `try`
        // 50 -> 60 ns per cycle, the same instruction count).
        drop(part);
        let (mut lane, mut part) = self.relock_with_lane(shard, hash, 1);
        let (core, mut ids) = part.split_ids(&self.ids);
        let taken = core
            .try_acquire_key(Some(&mut lane.core), hash, key, &mut ids)
            .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
        if taken.is_ok() {
            self.lend_budget(&mut lane, &mut part);
        }
        taken
    }

    /// Takes a lease at once or registers a waiter, with the lane's lock
    /// held (any key) or the key's shard's.
    /// `located`: the key's hash and shard, when the caller tried its word
    /// already.
    fn start(
        &self,
        want: Want<'_, impl ?Sized + KeyQuery<K>>,
        located: Option<(u64, usize)>,
    ) -> Result<Started<'_, K>, Closed> {
        Ok(match want.normal() {
            Want::KeyMany(key, units) => return self.start_key_many(key, units),
            Want::Any => {
                if let Some(lease) = self.try_any_unlaned() {
                    return Ok(Started::Leased(lease));
                }
                let mut lane = self.lock_lane();
                let mut taken = self.try_any(&mut lane);
                if matches!(taken, Err(TryAcquireError::NoCapacity)) && lane.core.has_budgets() {
                    // Nobody waits for the pool's room while shards hold
                    // budgets: take them back, and look again.
                    self.reclaim_budgets(&mut lane);
                    taken = self.try_any(&mut lane);
                }
                match taken {
                    Ok(lease) => Started::Leased(lease),
                    Err(TryAcquireError::Closed) => return Err(Closed),
                    Err(TryAcquireError::NoCapacity) => {
                        let waiter = lane.core.enqueue()?;
                        self.hints
                            .arrivals
                            .store(lane.core.arrivals(), Ordering::Relaxed);
                        self.hints.any_waiting.store(true, Ordering::Relaxed);
                        lane.reserve_slot(waiter);
                        Started::Lane(lane, waiter)
                    }
                }
            }
            Want::Key(key) => {
                let (hash, shard) = match located {
                    Some(located) => located,
                    None => {
                        let (hash, shard) = self.locate(key);
                        if let Ok(lease) = self.fast_take(hash, shard, key) {
                            return Ok(Started::Leased(lease));
                        }
                        (hash, shard)
                    }
                };
                let mut part = self.lock_shard(shard);
                self.collect_key(shard, &mut part, hash);
                let arrivals = self.hints.arrivals.load(Ordering::Relaxed);
                let (core, mut ids) = part.split_ids(&self.ids);
                let queued = match core.try_or_enqueue_key_many(hash, key, arrivals, 1, &mut ids) {
                    Ok(Ok(Entered::Leased(lease))) => {
                        self.lend_slot(
                            shard,
                            &mut part,
                            lease.slot(),
                            Some((hash, lease.key(), K::clone)),
                        );
                        return Ok(Started::Leased(lease));
                    }
                    Ok(Ok(Entered::Queued(waiter))) => Some(waiter),
                    // One unit: closed is the only way it fails.
                    Ok(Err(_)) => return Err(Closed),
                    // Under a limit, unless the shard's budget granted.
                    Err(NeedsLane(())) => None,
                };
                let started = match queued {
                    Some(waiter) => Err(waiter),
                    None => {
                        // A limit is set: take the lane, then the shard.
                        drop(part);
                        let (mut lane, relocked) = self.relock_with_lane(shard, hash, 1);
                        part = relocked;
                        self.start_key_with_lane(&mut lane, &mut part, hash, key, 1)?
                    }
                };
                match started {
                    Ok(lease) => {
                        self.lend_slot(
                            shard,
                            &mut part,
                            lease.slot(),
                            Some((hash, lease.key(), K::clone)),
                        );
                        Started::Leased(lease)
                    }
                    Err(waiter) => {
                        part.reserve_slot(waiter);
                        Started::Shard(part, waiter)
                    }
                }
            }
        })
    }

    /// A key acquisition's start of `units` units while a limit is set,
    /// with the lane's and the shard's locks held: a lease (and the shard
    /// lent a budget), or a registered waiter.
    #[allow(clippy::type_complexity)]
    fn start_key_with_lane(
        &self,
        guard: &mut LaneGuard<'_>,
        part: &mut ShardGuard<'_, K>,
        hash: u64,
        key: &(impl ?Sized + KeyQuery<K>),
        units: u64,
    ) -> Result<Result<workpool_core::Lease<K>, WaiterId>, Closed> {
        let lane = &mut guard.core;
        let (core, mut ids) = part.split_ids(&self.ids);
        let taken = core
            .try_acquire_key_many(Some(&mut *lane), hash, key, units, &mut ids)
            .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
        match taken {
            Ok(lease) => {
                self.lend_budget(guard, part);
                Ok(Ok(lease))
            }
            Err(TryAcquireError::Closed) => Err(Closed),
            Err(TryAcquireError::NoCapacity) => {
                let arrivals = lane.arrivals();
                let queued = core
                    .enqueue_key_many(Some(&mut *lane), hash, key, arrivals, units, &mut ids)
                    .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
                // With a limit, a key waiter took a count of its own.
                self.hints
                    .arrivals
                    .store(lane.arrivals(), Ordering::Relaxed);
                // Closed, or more units than a lease can hold (which no
                // wait could ever serve): `Closed` (documented).
                Ok(Err(queued.map_err(|_| Closed)?))
            }
        }
    }

    /// Claims `waiter`'s outcome: a key waiter's from its hand-off cell
    /// without a lock if it was published there, otherwise under the lock
    /// of its part; `None` while it waits (the guard is handed back to
    /// register a waker). `want` is what the waiter asked for.
    fn claim<'a, Q: ?Sized + KeyQuery<K>>(
        &'a self,
        waiter: WaiterId,
        want: Want<'_, Q>,
        after: &mut After<K>,
    ) -> Result<Option<Result<workpool_core::Lease<K>, Closed>>, Locked<'a, K>> {
        if let Some(outcome) = self.take_published(waiter, want) {
            return Ok(Some(outcome));
        }
        match (waiter.shard(), want) {
            (Some(shard), Want::Key(key) | Want::KeyMany(key, _)) => {
                self.claim_key(self.lock_shard(shard), shard, waiter, key, after)
            }
            (None, _) => self.claim_any(self.lock_lane(), waiter, after),
            (Some(_), Want::Any) => unreachable!("a key waiter polled for any key"),
        }
    }

    /// A key waiter's outcome if its releaser published it: taken without
    /// a lock (see [`handoff`](super::handoff)).
    #[inline]
    fn take_published<Q: ?Sized + KeyQuery<K>>(
        &self,
        waiter: WaiterId,
        want: Want<'_, Q>,
    ) -> Option<Result<workpool_core::Lease<K>, Closed>> {
        match (waiter.shard(), want) {
            (Some(shard), Want::Key(key) | Want::KeyMany(key, _)) => {
                self.shards[shard].cells.take(waiter, || key.to_owned())
            }
            (None, Want::Any) => self.lane_cells.take_outcome(waiter),
            _ => None,
        }
    }

    fn claim_any<'a>(
        &'a self,
        mut lane: LaneGuard<'a>,
        waiter: WaiterId,
        after: &mut After<K>,
    ) -> Result<Option<Result<workpool_core::Lease<K>, Closed>>, Locked<'a, K>> {
        // Published since the look without the lock? Under the lock the
        // answer is final (hand-offs publish under it), and the core no
        // longer knows a waiter whose outcome was published.
        if self.lane_cells.is_published(waiter) {
            drop(lane);
            return Ok(self.lane_cells.take_outcome(waiter));
        }
        let claimed = match lane.core.claim_shard(waiter) {
            Ok(Some(shard)) => {
                let part = self.lock_shard(shard);
                lane.core.claim(waiter, Some(&part.core))
            }
            _ => lane.core.claim::<K>(waiter, None),
        };
        let outcome = match claimed {
            Ok(Claim::Granted(lease)) => Ok(lease),
            Ok(Claim::Closed) => Err(Closed),
            Ok(Claim::Waiting) => return Err(Locked::Lane(lane)),
            Err(err) => unreachable!("only a waiter's owner removes it: {err}"),
        };
        lane.take_waker(waiter, after);
        drop(lane);
        Ok(Some(outcome))
    }

    fn claim_key<'a>(
        &'a self,
        mut part: ShardGuard<'a, K>,
        shard: usize,
        waiter: WaiterId,
        key: &(impl ?Sized + KeyQuery<K>),
        after: &mut After<K>,
    ) -> Result<Option<Result<workpool_core::Lease<K>, Closed>>, Locked<'a, K>> {
        // Published since the look without the lock? Under the lock the
        // answer is final (hand-offs publish under it).
        let cells = &self.shards[shard].cells;
        if cells.is_published(waiter) {
            // The cell is the waiter's now: taken after unlocking, so that
            // the key's copy runs no user code under the lock.
            drop(part);
            return Ok(cells.take(waiter, || key.to_owned()));
        }
        let outcome = match part.core.claim(waiter) {
            Ok(Claim::Granted(lease)) => Ok(lease),
            Ok(Claim::Closed) => Err(Closed),
            Ok(Claim::Waiting) => return Err(Locked::Shard(part)),
            Err(err) => unreachable!("only a waiter's owner removes it: {err}"),
        };
        part.take_waker(waiter, after);
        drop(part);
        Ok(Some(outcome))
    }

    /// One poll of an acquisition: a lease, `Closed`, or registered (with
    /// the waker stored) and pending.
    ///
    /// # Panics
    ///
    /// If the acquisition already completed (`wait` is `Done`).
    #[inline]
    pub(crate) fn poll_acquire<Q: ?Sized + KeyQuery<K>>(
        &self,
        wait: &mut Wait,
        want: Want<'_, Q>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<workpool_core::Lease<K>, Closed>> {
        self.poll_acquire_from(wait, want, None, cx)
    }

    /// [`poll_acquire`](Self::poll_acquire) of a key whose word the caller
    /// tried already (`located`: its hash and shard), before a first poll.
    ///
    /// The common wake, an outcome its releaser published, is taken here,
    /// in the caller; the rest is a call away.
    #[inline]
    pub(crate) fn poll_acquire_from<Q: ?Sized + KeyQuery<K>>(
        &self,
        wait: &mut Wait,
        want: Want<'_, Q>,
        located: Option<(u64, usize)>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<workpool_core::Lease<K>, Closed>> {
        if let Wait::Waiting(waiter) = *wait {
            // Nothing to drop after a lock.
            if let Some(outcome) = self.take_published(waiter, want) {
                *wait = Wait::Done;
                return Poll::Ready(outcome);
            }
        }
        self.poll_acquire_locked(wait, want, located, cx)
    }

    /// The rest of [`poll_acquire_from`](Self::poll_acquire_from), under
    /// the locks.
    #[inline(never)]
    fn poll_acquire_locked<Q: ?Sized + KeyQuery<K>>(
        &self,
        wait: &mut Wait,
        want: Want<'_, Q>,
        located: Option<(u64, usize)>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<workpool_core::Lease<K>, Closed>> {
        assert!(
            !wait.is_done(),
            "a workpool acquire future was polled after it completed"
        );
        if let Wait::Waiting(waiter) = *wait {
            let mut after = After::new();
            return match self.claim(waiter, want, &mut after) {
                Ok(outcome) => {
                    *wait = Wait::Done;
                    drop(after);
                    Poll::Ready(outcome.expect("a claim decided"))
                }
                Err(locked) => {
                    // Still waiting: the waker is stored again (a replaced
                    // one is dropped after unlocking, with `after`).
                    locked.register(waiter, cx.waker(), &mut after);
                    drop(after);
                    Poll::Pending
                }
            };
        }
        let (locked, waiter) = match self.start(want, located) {
            Ok(Started::Leased(lease)) => {
                *wait = Wait::Done;
                return Poll::Ready(Ok(lease));
            }
            Err(Closed) => {
                *wait = Wait::Done;
                return Poll::Ready(Err(Closed));
            }
            Ok(Started::Lane(lane, waiter)) => (Locked::Lane(lane), waiter),
            Ok(Started::Shard(part, waiter)) => (Locked::Shard(part), waiter),
        };
        // A waiter that just registered waits: the request found no room
        // under the same lock. Its slot held no waker (a waiter's waker
        // leaves with it); whatever it held is dropped after unlocking.
        *wait = Wait::Waiting(waiter);
        drop(locked.register_first(waiter, cx.waker()));
        Poll::Pending
    }

    /// Waits on this thread, until `deadline` if there is one.
    pub(crate) fn acquire_blocking<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
        deadline: Option<Instant>,
    ) -> Result<workpool_core::Lease<K>, AcquireTimeoutError> {
        let waiter = match self.start(want, None)? {
            Started::Leased(lease) => return Ok(lease),
            Started::Lane(_, waiter) | Started::Shard(_, waiter) => waiter,
        };
        // From here on, a panic (a `K::clone` in the claim, say) must not
        // leave the waiter registered: its grant would leak.
        let mut guard = CancelOnUnwind {
            shared: self,
            waiter: Some(waiter),
        };
        let signal = ThreadSignal::current();
        let waker = Waker::from(StdArc::clone(&signal));
        let mut timed_out = false;
        loop {
            // Listen before the claim: a hand-off after the claim notifies
            // this listener.
            listener!(signal.event => listener);
            let mut after = After::new();
            let locked = match self.claim(waiter, want, &mut after) {
                Ok(outcome) => {
                    guard.waiter = None;
                    drop(after);
                    return Ok(outcome.expect("a claim decided")?);
                }
                Err(locked) => locked,
            };
            if timed_out {
                drop(locked);
                guard.waiter = None;
                self.cancel_waiter(waiter, true);
                // The cancel may have found it granted: then it passed the
                // lease on, and the deadline still wins.
                return Err(AcquireTimeoutError::Timeout);
            }
            locked.register(waiter, &waker, &mut after);
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
}

/// How [`Shared::start`] left an acquisition.
enum Started<'a, K> {
    Leased(workpool_core::Lease<K>),
    /// An any-key waiter, registered under the lane's lock, still held.
    Lane(LaneGuard<'a>, WaiterId),
    /// A key waiter, registered under its shard's lock, still held.
    Shard(ShardGuard<'a, K>, WaiterId),
}

/// The lock of the part that holds a waiter still waiting.
enum Locked<'a, K> {
    Lane(LaneGuard<'a>),
    Shard(ShardGuard<'a, K>),
}

impl<K> Locked<'_, K> {
    /// Stores a new waiter's first waker, then unlocks; returns what the
    /// slot held (nothing, as a rule), to be dropped after unlocking.
    #[inline]
    fn register_first(self, waiter: WaiterId, waker: &Waker) -> Option<Waker> {
        match self {
            Self::Lane(mut lane) => lane.register_first(waiter, waker),
            Self::Shard(mut part) => part.register_first(waiter, waker),
        }
    }

    /// Stores `waker` in the waiter's slot, then unlocks.
    fn register(self, waiter: WaiterId, waker: &Waker, after: &mut After<K>) {
        match self {
            Self::Lane(mut lane) => lane.register(waiter, waker, after),
            Self::Shard(mut part) => part.register(waiter, waker, after),
        }
    }
}

/// Cancels a blocking waiter if its thread unwinds before it is done.
struct CancelOnUnwind<'a, K, S> {
    shared: &'a Shared<K, S>,
    waiter: Option<WaiterId>,
}

impl<K, S> Drop for CancelOnUnwind<'_, K, S> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.shared.cancel_waiter(waiter, false);
        }
    }
}

/// One per thread: the `Event` a blocking wait parks on, and the waker that
/// notifies it. Nothing else listens to it, so a notification always
/// reaches the waiting call of that thread.
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
