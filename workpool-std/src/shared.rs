//! The state every handle shares: the core's parts behind their own
//! mutexes, one waker slot per waiter, and every path that grants, hands
//! off or wakes.
//!
//! # Layout
//!
//! The core's [parts](workpool_core::parts): one [`Lane`] (any-key waiters,
//! the ready ring) and a power of two of [`Shard`]s (keys spread by hash),
//! each behind its own mutex on its own cache line, with its own waker
//! slots. Operations on one key lock only its shard, as long as the core
//! says the shard suffices (its group is linked in the ring, which proves
//! that no any-key waiter exists); otherwise they lock the lane, then the
//! shard, and run again. Any-key operations hold the lane and lock the
//! shards of the groups they look at, one at a time. Lock order: lane, then
//! one shard; never two shards. Two atomics are shared by every key: the
//! lease-id counter (one `fetch_add` per grant) and the lane's arrival
//! count (written under the lane's lock, only read by key waiters).
//!
//! # The waiting protocol
//!
//! The same for futures and threads:
//!
//! 1. Under the part's lock, try for a lease; failing that, register a
//!    waiter with the core and store a waker in its slot *before* the lock
//!    is released, so no hand-off can be missed.
//! 2. Whoever changes the core (release, set, cancel, close) drains the
//!    wake lists of the parts it holds and takes exactly the wakers of the
//!    waiters they name: a release wakes one waiter, not all of them.
//! 3. A woken waiter takes its part's lock and claims its outcome; a
//!    spurious wake finds it still waiting and it stores its waker again.
//!
//! # No user code under a lock
//!
//! Waking a waker, dropping a waker, dropping a lease and dropping a key are
//! user code: a waker may own the last handle of a task that holds a lease,
//! and so re-enter the pool. None of them runs while a lock is held. Every
//! path decides under the locks, takes the wakers to wake into a
//! [`WakeBatch`] and what it must drop into an [`After`], and acts once the
//! guards are gone. The waker slots are ours (not `event-listener`'s) for
//! the same reason: a re-poll with a new waker swaps it under our lock and
//! drops the old one after unlocking. Threads park on a per-thread
//! `event-listener` [`Event`], which wakes nothing but that thread. `Hash`,
//! `Eq` and `Clone` of `K` do run under a lock (finding a key needs them);
//! the core stays consistent when they panic, so a poisoned lock is still
//! sound to use.
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
use std::ops::Deref;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use event_listener::{listener, Event, Listener};
use workpool_core::parts::{Lane, LeaseIds, NeedsLane, Shard};
use workpool_core::{Claim, Closed, Counts, Equivalent, Stats, TryAcquireError, WaiterId};

use crate::error::AcquireTimeoutError;
use crate::sync::{
    AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, PoisonError, StdArc,
};
use crate::watch::{Condition, Seen, Watches};

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

/// Keeps a value on cache lines of its own, so that two shards' locks never
/// share one (128 bytes: two lines, for the adjacent-line prefetcher).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) struct Shared<K, S> {
    hasher: S,
    lane: Padded<Mutex<Part<Lane>>>,
    shards: Box<[ShardLock<K>]>,
    /// Set once [`close`](Self::close) starts.
    closed: AtomicBool,
    /// The next lease id, for every part (see [`Ids`]).
    ids: Padded<AtomicU64>,
    /// What key operations read of the lane without its lock.
    hints: Padded<LaneHints>,
    /// How many `Pool` handles exist (see the module docs, "Handles").
    handles: AtomicUsize,
}

/// What the lane publishes for key operations, which read it without the
/// lane's lock. Written only under the lane's lock, and only by any-key
/// traffic, so a pool without any-key waiters never writes this line.
struct LaneHints {
    /// The lane's arrival count (see [`Lane::arrivals`]).
    arrivals: AtomicU64,
    /// True while any-key waiters may be queued: then a release is likely
    /// to need the lane, and takes it first instead of asking its shard
    /// (which still decides: the hint only picks the order of attempts).
    any_waiting: AtomicBool,
}

/// One part of the core with the waker slots of its waiters.
struct Part<P> {
    core: P,
    /// `wakers[i]`: the waker of the part's waiter in slot `i`, once it
    /// registered one. Taken when the waiter is woken, claimed or cancelled.
    /// Never longer than the part's waiter slots once a waiter has left, so
    /// it shrinks with them after a burst.
    wakers: Vec<Option<Waker>>,
    /// The part's `surplus()` and `drained()` watchers (see [`Watches`]).
    watches: Watches,
    /// Acquisitions of this part that a timeout or deadline ended.
    timed_out: u64,
}

/// Where a `surplus()` or `drained()` future stands: registered with a
/// shard's [`Watches`] (shard, entry), or not (yet, or any more).
#[derive(Debug, Default)]
pub(crate) struct Watching {
    at: Option<(usize, usize)>,
}

/// What the waker bookkeeping needs of a part.
trait WaiterSlab {
    fn waiter_slots(&self) -> usize;
    fn has_wakes(&self) -> bool;
    fn poll_wake(&mut self) -> Option<WaiterId>;
}

impl WaiterSlab for Lane {
    fn waiter_slots(&self) -> usize {
        Self::waiter_slots(self)
    }

    #[inline]
    fn has_wakes(&self) -> bool {
        Self::has_wakes(self)
    }

    fn poll_wake(&mut self) -> Option<WaiterId> {
        Self::poll_wake(self)
    }
}

impl<K> WaiterSlab for Shard<K> {
    fn waiter_slots(&self) -> usize {
        Self::waiter_slots(self)
    }

    #[inline]
    fn has_wakes(&self) -> bool {
        Self::has_wakes(self)
    }

    fn poll_wake(&mut self) -> Option<WaiterId> {
        Self::poll_wake(self)
    }
}

/// Lease ids from one atomic counter shared by every part: unique, never 0,
/// and increasing in grant order within a key (a key's grants are ordered
/// by its shard's lock) and across keys.
struct Ids<'a>(&'a AtomicU64);

impl LeaseIds for Ids<'_> {
    #[inline]
    fn next_id(&mut self) -> u64 {
        // Relaxed: the counter orders nothing but itself, and a lease
        // reaches whoever releases it through a synchronising hand-over.
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    #[inline]
    fn issued(&self, id: u64) -> bool {
        id != 0 && id < self.0.load(Ordering::Relaxed)
    }
}

/// The waker slots never shrink below this many.
const MIN_WAKERS: usize = 16;

/// The number of shards of a new pool: four per core, a power of two,
/// between 4 and 64 (2 under loom, to keep its models small).
fn shard_count() -> usize {
    #[cfg(loom)]
    {
        2
    }
    #[cfg(not(loom))]
    {
        static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *COUNT.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            (4 * cores).next_power_of_two().clamp(4, 64)
        })
    }
}

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

/// How many wakers one pass under the locks collects before it unlocks to
/// wake them (then it locks again for the rest). Bounded so that waking
/// needs no allocation.
const WAKE_BATCH: usize = 32;

/// Wakers taken under a lock, to be woken after unlocking. Built only when
/// there is someone to wake, so the common release (nobody waiting) does
/// not pay for it.
struct WakeBatch {
    slots: [Option<Waker>; WAKE_BATCH],
    len: usize,
}

impl WakeBatch {
    fn new() -> Self {
        Self {
            slots: [const { None }; WAKE_BATCH],
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == WAKE_BATCH
    }

    fn push(&mut self, waker: Waker) {
        self.slots[self.len] = Some(waker);
        self.len += 1;
    }

    /// Wakes every waker, emptying the batch. Called with no lock held.
    fn wake_all(&mut self) {
        for slot in &mut self.slots[..self.len] {
            if let Some(waker) = slot.take() {
                waker.wake();
            }
        }
        self.len = 0;
    }
}

impl Drop for WakeBatch {
    /// Wakes whatever a panicking wake left behind (its drop runs after the
    /// guards are gone, like the batch's own wake).
    fn drop(&mut self) {
        for waker in self.slots[..self.len].iter_mut().filter_map(Option::take) {
            waker.wake();
        }
    }
}

/// What an operation must drop once no lock is held: a waker it replaced
/// or took from a slot, and keys the core handed back. Dropped after the
/// guards, so none of it runs under a lock.
pub(crate) struct After<K> {
    stale: Option<Waker>,
    key: Option<K>,
    keys: Vec<K>,
    /// Wakers of watchers whose condition came true.
    wakes: Vec<Waker>,
}

impl<K> Drop for After<K> {
    /// Wakes the fired watchers (their wakers are user code): an `After` is
    /// dropped once no lock is held. If a wake panics, the rest are still
    /// woken while it unwinds.
    fn drop(&mut self) {
        struct Rest(Vec<Waker>);
        impl Drop for Rest {
            fn drop(&mut self) {
                self.0.drain(..).for_each(Waker::wake);
            }
        }
        let mut rest = Rest(mem::take(&mut self.wakes));
        while let Some(waker) = rest.0.pop() {
            waker.wake();
        }
    }
}

impl<K> After<K> {
    pub(crate) fn new() -> Self {
        Self {
            stale: None,
            key: None,
            keys: Vec::new(),
            wakes: Vec::new(),
        }
    }

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

/// A shard with its waker slots, behind its lock on its own cache lines.
type ShardLock<K> = Padded<Mutex<Part<Shard<K>>>>;
type LaneGuard<'a> = MutexGuard<'a, Part<Lane>>;
type ShardGuard<'a, K> = MutexGuard<'a, Part<Shard<K>>>;

impl<K, S> Shared<K, S> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        let lane = Lane::new();
        let shards = (0..shard_count())
            .map(|i| Padded(Mutex::new(Part::new(Shard::new(i, &lane)))))
            .collect();
        Self {
            hasher,
            lane: Padded(Mutex::new(Part::new(lane))),
            shards,
            closed: AtomicBool::new(false),
            ids: Padded(AtomicU64::new(1)),
            hints: Padded(LaneHints {
                arrivals: AtomicU64::new(0),
                any_waiting: AtomicBool::new(false),
            }),
            handles: AtomicUsize::new(1),
        }
    }

    fn lock_lane(&self) -> LaneGuard<'_> {
        self.lane.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_shard(&self, shard: usize) -> ShardGuard<'_, K> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many shards the pool has.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn ids(&self) -> Ids<'_> {
        Ids(&self.ids)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Drops the guards and `after` at once if the parts they hold have
    /// nothing to wake and no key to hand out; otherwise wakes (the common
    /// case stays inline and builds nothing).
    #[inline]
    fn finish<'a>(
        &'a self,
        lane: Option<LaneGuard<'a>>,
        shard: Option<ShardGuard<'a, K>>,
        after: After<K>,
    ) {
        if let Some(lane) = &lane {
            self.publish(lane);
        }
        let busy = lane.as_ref().is_some_and(|l| l.core.has_wakes())
            || shard.as_ref().is_some_and(|s| {
                s.core.has_wakes() || s.core.has_forgotten() || s.watches.is_waiting()
            });
        if busy {
            self.finish_slow(lane, shard, after);
        } else {
            drop(shard);
            drop(lane);
            drop(after);
        }
    }

    /// Collects forgotten keys and the wakers of decided waiters, unlocks,
    /// wakes; and again while a full batch left some behind.
    #[cold]
    fn finish_slow<'a>(
        &'a self,
        mut lane: Option<LaneGuard<'a>>,
        mut shard: Option<ShardGuard<'a, K>>,
        mut after: After<K>,
    ) {
        let index = shard.as_ref().map(|s| s.core.index() as usize);
        if let Some(part) = shard.as_mut() {
            if part.watches.is_waiting() {
                let over_limit = lane.as_ref().is_some_and(|l| l.core.over_limit());
                part.check_watches(over_limit, &mut after);
            }
        }
        let mut batch = WakeBatch::new();
        loop {
            let mut more_shard = false;
            if let Some(part) = shard.as_mut() {
                while let Some(key) = part.core.poll_forgotten() {
                    after.push_key(key);
                }
                more_shard = part.fill(&mut batch);
            }
            let more_lane = lane.as_mut().is_some_and(|part| part.fill(&mut batch));
            drop(shard.take());
            drop(lane.take());
            batch.wake_all();
            if !more_shard && !more_lane {
                drop(after);
                return;
            }
            // Lock again only what still has waiters to wake, lane first.
            lane = more_lane.then(|| self.lock_lane());
            shard = more_shard.then(|| self.lock_shard(index.unwrap_or_default()));
        }
    }

    /// Finishes an operation that held the lane (and maybe a shard): while
    /// a limit is set (or was just lifted) the pool's room may now serve
    /// waiters of other shards, so the lane's loop hands it out, locking
    /// those shards one at a time; each shard's wakes are left queued in it
    /// and woken once no lock is held.
    fn finish_lane_op<'a>(
        &'a self,
        mut lane: LaneGuard<'a>,
        part: Option<ShardGuard<'a, K>>,
        after: After<K>,
    ) {
        if lane.core.distribute_next().is_none() {
            return self.finish(Some(lane), part, after);
        }
        let mut after = after;
        let mut touched = 0u64;
        if let Some(mut part) = part {
            // Checked before the shard is let go: a key this operation
            // drained could be forgotten, and its slot reused, before the
            // shard is locked again to wake.
            if part.watches.is_waiting() {
                part.check_watches(lane.core.over_limit(), &mut after);
            }
            touched |= 1 << part.core.index();
            drop(part);
        }
        touched |= self.distribute(&mut lane);
        self.finish(Some(lane), None, after);
        self.wake_shards(touched);
    }

    /// The lane's loop that hands out the pool's room; returns the shards
    /// it served waiters in, as a bit mask (at most 64 shards).
    fn distribute(&self, lane: &mut LaneGuard<'_>) -> u64 {
        let mut touched = 0u64;
        while let Some(shard) = lane.core.distribute_next() {
            let mut part = self.lock_shard(shard);
            lane.core.distribute_step(&mut part.core, &mut self.ids());
            touched |= 1 << shard;
        }
        touched
    }

    /// Wakes the waiters the shards in `mask` decided, shard by shard.
    fn wake_shards(&self, mut mask: u64) {
        while mask != 0 {
            let shard = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.finish(None, Some(self.lock_shard(shard)), After::new());
        }
    }

    /// Sets or removes the pool-wide limit (see the lane's `set_limit` for
    /// the steps), then wakes whoever a raised or lifted limit served.
    pub(crate) fn set_limit(&self, limit: Option<u64>) {
        let mut lane = self.lock_lane();
        lane.core.set_limit(limit);
        if limit.is_some() {
            for shard in 0..self.shards.len() {
                self.lock_shard(shard).core.enter_limit(&mut lane.core);
            }
        }
        let touched = self.distribute(&mut lane);
        if limit.is_none() {
            for shard in 0..self.shards.len() {
                self.lock_shard(shard).core.leave_limit(&lane.core);
            }
        }
        // A lowered limit makes every lease surplus at once.
        let mut after = After::new();
        if lane.core.over_limit() {
            for shard in 0..self.shards.len() {
                let mut part = self.lock_shard(shard);
                if part.watches.is_waiting() {
                    part.check_watches(true, &mut after);
                }
            }
        }
        self.finish(Some(lane), None, after);
        self.wake_shards(touched);
    }

    pub(crate) fn limit(&self) -> Option<u64> {
        self.lock_lane().core.limit()
    }

    /// Live leases over all keys: the lane's count while a limit is set,
    /// otherwise the shards' counts summed one by one.
    pub(crate) fn active(&self) -> u64 {
        if let Some(active) = self.lock_lane().core.active() {
            return active;
        }
        (0..self.shards.len())
            .map(|s| self.lock_shard(s).core.active())
            .sum()
    }

    /// Publishes whether any-key waiters are queued or a limit is set (then
    /// releases go through the lane), under the lane's lock.
    #[inline]
    fn publish(&self, lane: &LaneGuard<'_>) {
        let arrivals = lane.core.arrivals();
        if self.hints.arrivals.load(Ordering::Relaxed) != arrivals {
            self.hints.arrivals.store(arrivals, Ordering::Relaxed);
        }
        let any = lane.core.waiters() > 0 || lane.core.limit().is_some();
        if self.hints.any_waiting.load(Ordering::Relaxed) != any {
            self.hints.any_waiting.store(any, Ordering::Relaxed);
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut lane = self.lock_lane();
        lane.core.close();
        self.finish(Some(lane), None, After::new());
        for shard in 0..self.shards.len() {
            let mut lane = self.lock_lane();
            let mut part = self.lock_shard(shard);
            part.core.close(&mut lane.core);
            drop(lane);
            self.finish(None, Some(part), After::new());
        }
    }

    /// Gives a lease back: in its shard alone while its key's group is
    /// linked, otherwise with the lane.
    #[inline]
    pub(crate) fn release(&self, lease: workpool_core::Lease<K>) {
        let shard = lease.shard();
        if self.hints.any_waiting.load(Ordering::Relaxed) {
            // Any-key waiters are about: the key's group is most likely
            // unlinked, so the shard alone would answer `NeedsLane`.
            return self.release_with_lane(shard, lease);
        }
        let mut part = self.lock_shard(shard);
        match part.core.release(None, lease, &mut self.ids()) {
            Ok(Ok(key)) => {
                if part.core.has_forgotten() || part.core.has_wakes() || part.watches.is_waiting() {
                    let mut after = After::new();
                    after.push_key(key);
                    self.finish_slow(None, Some(part), after);
                } else {
                    drop(part);
                    drop(key);
                }
            }
            Ok(Err(err)) => unreachable!("a std lease was rejected: {err}"),
            Err(NeedsLane(lease)) => {
                drop(part);
                self.release_with_lane(shard, lease);
            }
        }
    }

    #[cold]
    fn release_with_lane(&self, shard: usize, lease: workpool_core::Lease<K>) {
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        let released = part
            .core
            .release(Some(&mut lane.core), lease, &mut self.ids());
        let Ok(Ok(key)) = released else {
            unreachable!("a std lease was rejected, or the lane was not enough");
        };
        let mut after = After::new();
        after.push_key(key);
        self.finish_lane_op(lane, Some(part), after);
    }

    /// Gives up a wait: a waiter still registered is cancelled with the
    /// core (its grant, if any, passes on).
    #[inline]
    pub(crate) fn cancel(&self, wait: &mut Wait) {
        if let Wait::Waiting(waiter) = mem::replace(wait, Wait::Done) {
            self.cancel_waiter(waiter, false);
        }
    }

    /// Cancels a registered waiter; `timed_out` counts it as ended by a
    /// timeout or deadline.
    #[cold]
    fn cancel_waiter(&self, waiter: WaiterId, timed_out: bool) {
        let mut after = After::new();
        let Some(shard) = waiter.shard() else {
            let mut lane = self.lock_lane();
            let cancelled = lane.core.cancel(waiter);
            debug_assert!(cancelled.is_ok(), "only a waiter's owner removes it");
            lane.timed_out += u64::from(timed_out);
            lane.take_waker(waiter, &mut after);
            let part = match cancelled {
                Ok(Some(returned)) => {
                    let mut part = self.lock_shard(returned.shard());
                    part.core
                        .give_back(&mut lane.core, returned, &mut self.ids());
                    Some(part)
                }
                _ => None,
            };
            self.finish_lane_op(lane, part, after);
            return;
        };
        let mut part = self.lock_shard(shard);
        match part.core.cancel(None, waiter, &mut self.ids()) {
            Ok(Err(NeedsLane(()))) => {}
            cancelled => {
                debug_assert!(cancelled.is_ok(), "only a waiter's owner removes it");
                part.timed_out += u64::from(timed_out);
                part.take_waker(waiter, &mut after);
                self.finish(None, Some(part), after);
                return;
            }
        }
        drop(part);
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        let cancelled = part
            .core
            .cancel(Some(&mut lane.core), waiter, &mut self.ids());
        debug_assert!(
            matches!(cancelled, Ok(Ok(()))),
            "only a waiter's owner removes it"
        );
        part.timed_out += u64::from(timed_out);
        part.take_waker(waiter, &mut after);
        self.finish_lane_op(lane, Some(part), after);
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// The full hash of `key` and the shard it lives in.
    #[inline]
    fn locate<Q: ?Sized + Hash>(&self, key: &Q) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        // The high half: the shard's table uses the hash folded and
        // spread again, so keys of one shard still spread over its table.
        let shard = (hash >> 32) as usize & (self.shards.len() - 1);
        (hash, shard)
    }

    pub(crate) fn counts<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Counts {
        let (hash, shard) = self.locate(key);
        self.lock_shard(shard).core.counts(hash, key)
    }

    pub(crate) fn waiting<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> usize {
        let (hash, shard) = self.locate(key);
        self.lock_shard(shard).core.waiting(hash, key)
    }

    /// The shard `key` lives in, for tests that want keys in different
    /// shards.
    pub(crate) fn shard_of<Q: ?Sized + Hash>(&self, key: &Q) -> usize {
        self.locate(key).1
    }

    pub(crate) fn set(&self, key: K, target: u64) {
        let (hash, shard) = self.locate(&key);
        // Declared before the guards: the key, when the core does not keep
        // it or `K::eq` panics under the lock, is dropped after unlocking.
        let mut key = Some(key);
        let mut after = After::new();
        let mut part = self.lock_shard(shard);
        if part
            .core
            .set_in(None, hash, &mut key, target, &mut self.ids())
            .is_ok()
        {
            self.finish(None, Some(part), after);
            return;
        }
        drop(part);
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        let set = part.core.set_in(
            Some(&mut lane.core),
            hash,
            &mut key,
            target,
            &mut self.ids(),
        );
        debug_assert!(set.is_ok(), "a call with the lane needs no lane");
        if let Some(unused) = key.take() {
            after.push_key(unused);
        }
        self.finish_lane_op(lane, Some(part), after);
    }

    pub(crate) fn close_key<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) {
        let (hash, shard) = self.locate(key);
        let mut part = self.lock_shard(shard);
        if part.core.close_key(None, hash, key).is_ok() {
            self.finish(None, Some(part), After::new());
            return;
        }
        drop(part);
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        let closed = part.core.close_key(Some(&mut lane.core), hash, key);
        debug_assert!(closed.is_ok(), "a call with the lane needs no lane");
        self.finish_lane_op(lane, Some(part), After::new());
    }

    pub(crate) fn try_acquire<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        match want {
            Want::Any => self.try_any(&mut self.lock_lane()),
            Want::Key(key) => {
                let (hash, shard) = self.locate(key);
                let mut part = self.lock_shard(shard);
                if let Ok(taken) = part.core.try_acquire_key(None, hash, key, &mut self.ids()) {
                    return taken;
                }
                // A limit is set: the lane counts the pool's leases.
                drop(part);
                let mut lane = self.lock_lane();
                let mut part = self.lock_shard(shard);
                part.core
                    .try_acquire_key(Some(&mut lane.core), hash, key, &mut self.ids())
                    .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"))
            }
        }
    }

    /// An any-key lease, round-robin over the keys with room: looks at the
    /// group under the lane's cursor in its shard, unlinking full ones.
    fn try_any(
        &self,
        lane: &mut LaneGuard<'_>,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        if lane.core.is_closed() {
            return Err(TryAcquireError::Closed);
        }
        while let Some(shard) = lane.core.next_shard() {
            let mut part = self.lock_shard(shard);
            if let Some(lease) = lane.core.try_take(&mut part.core, &mut self.ids()) {
                return Ok(lease);
            }
        }
        Err(TryAcquireError::NoCapacity)
    }

    /// Takes a lease at once or registers a waiter, with the lane's lock
    /// held (any key) or the key's shard's.
    fn start(&self, want: Want<'_, impl ?Sized + KeyQuery<K>>) -> Result<Started<'_, K>, Closed> {
        Ok(match want {
            Want::Any => {
                let mut lane = self.lock_lane();
                match self.try_any(&mut lane) {
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
                let (hash, shard) = self.locate(key);
                let mut part = self.lock_shard(shard);
                let arrivals = self.hints.arrivals.load(Ordering::Relaxed);
                let started = match part.core.try_acquire_key(None, hash, key, &mut self.ids()) {
                    Ok(Ok(lease)) => Ok(lease),
                    Ok(Err(TryAcquireError::Closed)) => return Err(Closed),
                    Ok(Err(TryAcquireError::NoCapacity)) => part
                        .core
                        .enqueue_key(None, hash, key, arrivals, &mut self.ids())
                        .unwrap_or_else(|_| unreachable!("the shard needed no lane"))
                        .map(Err)?,
                    Err(NeedsLane(())) => {
                        // A limit is set: take the lane, then the shard.
                        drop(part);
                        let mut lane = self.lock_lane();
                        part = self.lock_shard(shard);
                        self.start_key_with_lane(&mut lane, &mut part, hash, key)?
                    }
                };
                match started {
                    Ok(lease) => Started::Leased(lease),
                    Err(waiter) => {
                        part.reserve_slot(waiter);
                        Started::Shard(part, waiter)
                    }
                }
            }
        })
    }

    /// A key acquisition's start while a limit is set, with the lane's and
    /// the shard's locks held: a lease, or a registered waiter.
    #[allow(clippy::type_complexity)]
    fn start_key_with_lane(
        &self,
        lane: &mut LaneGuard<'_>,
        part: &mut ShardGuard<'_, K>,
        hash: u64,
        key: &(impl ?Sized + KeyQuery<K>),
    ) -> Result<Result<workpool_core::Lease<K>, WaiterId>, Closed> {
        let lane = &mut lane.core;
        let taken = part
            .core
            .try_acquire_key(Some(&mut *lane), hash, key, &mut self.ids())
            .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
        match taken {
            Ok(lease) => Ok(Ok(lease)),
            Err(TryAcquireError::Closed) => Err(Closed),
            Err(TryAcquireError::NoCapacity) => {
                let arrivals = lane.arrivals();
                let queued = part
                    .core
                    .enqueue_key(Some(&mut *lane), hash, key, arrivals, &mut self.ids())
                    .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"))
                    .map(Err);
                // With a limit, a key waiter took a count of its own.
                self.hints
                    .arrivals
                    .store(lane.arrivals(), Ordering::Relaxed);
                queued
            }
        }
    }

    /// Locks the part that holds `waiter` and claims its outcome: `None`
    /// while it waits (the guard is handed back to register a waker).
    fn claim<'a>(
        &'a self,
        waiter: WaiterId,
        after: &mut After<K>,
    ) -> Result<Option<Result<workpool_core::Lease<K>, Closed>>, Locked<'a, K>> {
        match waiter.shard() {
            None => self.claim_any(self.lock_lane(), waiter, after),
            Some(shard) => self.claim_key(self.lock_shard(shard), waiter, after),
        }
    }

    fn claim_any<'a>(
        &'a self,
        mut lane: LaneGuard<'a>,
        waiter: WaiterId,
        after: &mut After<K>,
    ) -> Result<Option<Result<workpool_core::Lease<K>, Closed>>, Locked<'a, K>> {
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
        waiter: WaiterId,
        after: &mut After<K>,
    ) -> Result<Option<Result<workpool_core::Lease<K>, Closed>>, Locked<'a, K>> {
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
        let mut after = After::new();
        let (locked, waiter) = match *wait {
            Wait::Waiting(waiter) => match self.claim(waiter, &mut after) {
                Ok(outcome) => {
                    *wait = Wait::Done;
                    drop(after);
                    return Poll::Ready(outcome.expect("a claim decided"));
                }
                Err(locked) => (locked, waiter),
            },
            _ => match self.start(want) {
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
            },
        };
        // A waiter that just registered waits: the request found no room
        // under the same lock.
        *wait = Wait::Waiting(waiter);
        locked.register(waiter, cx.waker(), &mut after);
        drop(after);
        Poll::Pending
    }

    /// Waits on this thread, until `deadline` if there is one.
    pub(crate) fn acquire_blocking<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
        deadline: Option<Instant>,
    ) -> Result<workpool_core::Lease<K>, AcquireTimeoutError> {
        let waiter = match self.start(want)? {
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
            let locked = match self.claim(waiter, &mut after) {
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

    /// Every tracked key with its counts and waiters, shard by shard.
    pub(crate) fn snapshot(&self) -> Vec<(K, Counts, usize)> {
        // Declared before the guards: should a `K::clone` panic, the keys
        // cloned so far are dropped after the lock is released.
        let mut all = Vec::new();
        for shard in 0..self.shards.len() {
            let part = self.lock_shard(shard);
            all.reserve(part.core.len());
            all.extend(part.core.entries().map(|(k, c, w)| (k.clone(), c, w)));
            drop(part);
        }
        all
    }

    /// Sets several targets under the lane's lock and the locks of every
    /// shard they touch (every shard for `replace`, which sets every other
    /// tracked key to 0), so that no acquisition sees some applied and
    /// others not. A lane holder may lock shards in any order: nobody else
    /// holds the lane, and a thread that holds one shard waits for nothing
    /// while it does.
    pub(crate) fn set_all(&self, targets: impl IntoIterator<Item = (K, u64)>, replace: bool) {
        // Hashed before locking; `Hash` of `K` may still run under the
        // locks (for `replace`), as the rules allow.
        let targets: Vec<(u64, usize, K, u64)> = targets
            .into_iter()
            .map(|(key, target)| {
                let (hash, shard) = self.locate(&key);
                (hash, shard, key, target)
            })
            .collect();
        // Everything that holds keys is declared before the guards, so that
        // a panicking `K::clone` or `K::eq` under the locks drops its keys
        // (the targets not applied yet, the clones found for `replace`, the
        // key being set) only after unlocking.
        let mut targets = targets.into_iter();
        // For `replace`: every tracked key not named, found before the
        // targets are applied (they only touch named keys).
        let mut others: Vec<(usize, u64, K)> = Vec::new();
        let mut key: Option<K>;
        let mut after = After::new();
        let mut lane = self.lock_lane();
        let mut parts: Vec<Option<ShardGuard<'_, K>>> =
            (0..self.shards.len()).map(|_| None).collect();
        let mut touched = 0u64;
        if replace {
            let named = targets.as_slice();
            let mut by_hash: Vec<(u64, usize)> =
                named.iter().enumerate().map(|(i, t)| (t.0, i)).collect();
            by_hash.sort_unstable();
            for (shard, slot) in parts.iter_mut().enumerate() {
                let part = slot.insert(self.lock_shard(shard));
                touched |= 1 << shard;
                for (tracked, _, _) in part.core.entries() {
                    let hash = self.hasher.hash_one(tracked);
                    let start = by_hash.partition_point(|&(h, _)| h < hash);
                    let is_named = by_hash[start..]
                        .iter()
                        .take_while(|&&(h, _)| h == hash)
                        .any(|&(_, i)| named[i].2 == *tracked);
                    if !is_named {
                        others.push((shard, hash, tracked.clone()));
                    }
                }
            }
        }
        loop {
            let (hash, shard, target) = if let Some((hash, shard, k, target)) = targets.next() {
                key = Some(k);
                (hash, shard, target)
            } else if let Some((shard, hash, k)) = others.pop() {
                key = Some(k);
                (hash, shard, 0)
            } else {
                break;
            };
            let part = parts[shard].get_or_insert_with(|| self.lock_shard(shard));
            touched |= 1 << shard;
            let set = part.core.set_in(
                Some(&mut lane.core),
                hash,
                &mut key,
                target,
                &mut self.ids(),
            );
            debug_assert!(set.is_ok(), "a call with the lane needs no lane");
            if let Some(unused) = key.take() {
                after.push_key(unused);
            }
            // Collected as they come: a later key could reuse the slot of one
            // forgotten here, and drop it under the lock.
            while let Some(key) = part.core.poll_forgotten() {
                after.push_key(key);
            }
        }
        while let Some(shard) = lane.core.distribute_next() {
            let part = parts[shard].get_or_insert_with(|| self.lock_shard(shard));
            lane.core.distribute_step(&mut part.core, &mut self.ids());
            touched |= 1 << shard;
        }
        let over_limit = lane.core.over_limit();
        for part in parts.iter_mut().flatten() {
            if part.watches.is_waiting() {
                part.check_watches(over_limit, &mut after);
            }
        }
        drop(parts);
        self.finish(Some(lane), None, after);
        self.wake_shards(touched);
    }

    /// What the pool did since it was made, part by part.
    pub(crate) fn stats(&self) -> Stats {
        let lane = self.lock_lane();
        let mut stats = lane.core.stats();
        stats.timed_out += lane.timed_out;
        drop(lane);
        for shard in 0..self.shards.len() {
            let part = self.lock_shard(shard);
            stats = stats + part.core.stats();
            stats.timed_out += part.timed_out;
        }
        stats
    }

    /// Whether `lease` is surplus now.
    pub(crate) fn is_surplus(&self, lease: &workpool_core::Lease<K>) -> bool {
        let shard = lease.shard();
        let part = self.lock_shard(shard);
        if let Ok(surplus) = part.core.is_surplus(None, lease) {
            return surplus;
        }
        drop(part);
        let lane = self.lock_lane();
        let part = self.lock_shard(shard);
        part.core
            .is_surplus(Some(&lane.core), lease)
            .unwrap_or(false)
    }

    /// Releases `lease` if it is surplus, checking and releasing under the
    /// same locks; hands it back otherwise.
    pub(crate) fn release_if_surplus(
        &self,
        lease: workpool_core::Lease<K>,
    ) -> Result<(), workpool_core::Lease<K>> {
        let shard = lease.shard();
        let mut part = self.lock_shard(shard);
        match part.core.is_surplus(None, &lease) {
            Ok(false) => return Err(lease),
            Ok(true) => match part.core.release(None, lease, &mut self.ids()) {
                Ok(Ok(key)) => {
                    let mut after = After::new();
                    after.push_key(key);
                    self.finish(None, Some(part), after);
                    return Ok(());
                }
                Ok(Err(err)) => unreachable!("a std lease was rejected: {err}"),
                Err(NeedsLane(back)) => {
                    drop(part);
                    return self.release_if_surplus_with_lane(shard, back);
                }
            },
            Err(NeedsLane(())) => {}
        }
        drop(part);
        self.release_if_surplus_with_lane(shard, lease)
    }

    fn release_if_surplus_with_lane(
        &self,
        shard: usize,
        lease: workpool_core::Lease<K>,
    ) -> Result<(), workpool_core::Lease<K>> {
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        if !part
            .core
            .is_surplus(Some(&lane.core), &lease)
            .unwrap_or(false)
        {
            return Err(lease);
        }
        let released = part
            .core
            .release(Some(&mut lane.core), lease, &mut self.ids());
        let Ok(Ok(key)) = released else {
            unreachable!("a std lease was rejected, or the lane was not enough");
        };
        let mut after = After::new();
        after.push_key(key);
        self.finish_lane_op(lane, Some(part), after);
        Ok(())
    }

    /// One poll of a `surplus()` future: true once `lease` is surplus, or
    /// became so at a check since the watcher registered; otherwise the
    /// watcher is registered (the first time) with `waker`, or its waker
    /// updated. Every waker it replaces or lets go is dropped after
    /// unlocking.
    pub(crate) fn poll_surplus(
        &self,
        lease: &workpool_core::Lease<K>,
        watching: &mut Watching,
        waker: &Waker,
    ) -> bool {
        let shard = lease.shard();
        let mut after = After::new();
        let mut part = self.lock_shard(shard);
        let surplus = match part.core.is_surplus(None, lease) {
            Ok(surplus) => surplus,
            Err(NeedsLane(())) => {
                drop(part);
                let lane = self.lock_lane();
                let with_lane = self.lock_shard(shard);
                let surplus = with_lane
                    .core
                    .is_surplus(Some(&lane.core), lease)
                    .unwrap_or(false);
                drop(lane);
                part = with_lane;
                surplus
            }
        };
        let done = part.watch(
            watching,
            surplus,
            lease.slot(),
            Condition::Surplus,
            waker,
            &mut after,
        );
        drop(part);
        drop(after);
        done
    }

    /// One poll of a `drained()` future: true once `key` has no live lease,
    /// or had none at a check since the watcher registered.
    pub(crate) fn poll_drained<Q: ?Sized + Hash + Equivalent<K>>(
        &self,
        key: &Q,
        watching: &mut Watching,
        waker: &Waker,
    ) -> bool {
        let (hash, shard) = self.locate(key);
        let mut after = After::new();
        let mut part = self.lock_shard(shard);
        let slot = part.core.slot(hash, key);
        let drained = match (slot, watching.at) {
            (None, _) => true, // not tracked: no live lease
            (Some(slot), Some((_, entry)))
                if part.watches.slot(entry).is_some_and(|s| s != slot) =>
            {
                true // forgotten (so drained) and tracked again
            }
            (Some(slot), _) => part.core.slot_counts(slot).is_none_or(|c| c.active == 0),
        };
        let done = part.watch(
            watching,
            drained,
            slot.unwrap_or_default(),
            Condition::Drained,
            waker,
            &mut after,
        );
        drop(part);
        drop(after);
        done
    }
}

impl<K, S> Shared<K, S> {
    /// A watcher leaves (its future completed or was dropped); its waker is
    /// dropped after unlocking.
    pub(crate) fn unwatch(&self, watching: &mut Watching) {
        if let Some((shard, entry)) = watching.at.take() {
            let waker = self.lock_shard(shard).watches.remove(entry);
            drop(waker);
        }
    }

    /// How many keys are tracked, summed shard by shard.
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|s| self.lock_shard(s).core.len())
            .sum()
    }

    /// How many waiters wait, in the lane and shard by shard.
    pub(crate) fn waiters(&self) -> usize {
        let any = self.lock_lane().core.waiters();
        any + (0..self.shards.len())
            .map(|s| self.lock_shard(s).core.waiters())
            .sum::<usize>()
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
    /// Stores `waker` in the waiter's slot, then unlocks.
    fn register(self, waiter: WaiterId, waker: &Waker, after: &mut After<K>) {
        match self {
            Self::Lane(mut lane) => lane.register(waiter, waker, after),
            Self::Shard(mut part) => part.register(waiter, waker, after),
        }
    }
}

impl<P> Part<P> {
    fn new(core: P) -> Self {
        Self {
            core,
            wakers: Vec::new(),
            watches: Watches::default(),
            timed_out: 0,
        }
    }
}

impl<K> Part<Shard<K>> {
    /// Re-checks the shard's watched keys after an operation (see
    /// [`Watches::check`]); fired watchers are woken once no lock is held.
    /// `over_limit` says whether the pool is over its limit (only known
    /// with the lane held; false otherwise: a limit is only lowered by
    /// `set_limit`, which checks with it).
    fn check_watches(&mut self, over_limit: bool, after: &mut After<K>) {
        let core = &self.core;
        self.watches.check(
            |slot| Seen::of(core.slot_counts(slot), over_limit),
            &mut after.wakes,
        );
    }

    /// The end of a watcher's poll, under the shard's lock, once `holds`
    /// says whether its condition holds now: true (and the watcher leaves)
    /// if it holds or the watcher fired since it registered; otherwise
    /// registers it on `slot` or stores its new waker.
    fn watch(
        &mut self,
        watching: &mut Watching,
        holds: bool,
        slot: usize,
        condition: Condition,
        waker: &Waker,
        after: &mut After<K>,
    ) -> bool {
        match watching.at {
            Some((_, entry)) if holds || self.watches.slot(entry).is_none() => {
                watching.at = None;
                after.push_stale(self.watches.remove(entry));
                true
            }
            Some((_, entry)) => {
                after.push_stale(self.watches.update(entry, waker));
                false
            }
            None if holds => true,
            None => {
                let entry = self.watches.register(slot, condition, waker);
                watching.at = Some((self.core.index() as usize, entry));
                false
            }
        }
    }
}

impl<P: WaiterSlab> Part<P> {
    /// Makes sure the waker slots reach `waiter`'s slot.
    fn reserve_slot(&mut self, waiter: WaiterId) {
        if self.wakers.len() <= waiter.index() {
            let len = waiter.index() + 1;
            if len > self.wakers.capacity() {
                // Grow by an eighth, as the core's slab does.
                let more = len - self.wakers.len();
                self.wakers.reserve_exact(more.max(len / 8).max(8));
            }
            self.wakers.resize_with(len, || None);
        }
    }

    /// Stores `waker` for `waiter`, unless the stored one would wake the
    /// same task; a replaced waker is dropped after unlocking.
    fn register<K>(&mut self, waiter: WaiterId, waker: &Waker, after: &mut After<K>) {
        let slot = &mut self.wakers[waiter.index()];
        match slot {
            Some(stored) if stored.will_wake(waker) => {}
            _ => after.push_stale(slot.replace(waker.clone())),
        }
    }

    /// Takes the waker of a waiter that left (claimed or cancelled), to be
    /// dropped after unlocking, and trims the slots.
    fn take_waker<K>(&mut self, waiter: WaiterId, after: &mut After<K>) {
        after.push_stale(self.wakers.get_mut(waiter.index()).and_then(Option::take));
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

    /// Moves the wakers of decided waiters into `batch`; true if some are
    /// left because the batch is full.
    fn fill(&mut self, batch: &mut WakeBatch) -> bool {
        while !batch.is_full() {
            let Some(waiter) = self.core.poll_wake() else {
                return false;
            };
            // A waiter that never stored a waker is between its enqueue
            // and its claim under this same lock: nothing to wake.
            if let Some(waker) = self.wakers[waiter.index()].take() {
                batch.push(waker);
            }
        }
        self.core.has_wakes()
    }
}

impl<K, S> Shared<K, S> {
    pub(crate) fn add_handle(&self) {
        // Relaxed, as in `Arc::clone`: the caller holds a handle, so the
        // count cannot reach zero meanwhile. It cannot overflow either: each
        // handle also holds an `Arc`, whose count aborts first.
        let old = self.handles.fetch_add(1, Ordering::Relaxed);
        debug_assert!(old > 0, "a handle was made from a dropped one");
    }

    pub(crate) fn drop_handle(&self) {
        // Whoever takes the count to zero closes; every other effect of the
        // handles is ordered by the mutexes that `close` takes.
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
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

/// `mutex`'s guard unless another thread holds it (a poisoned lock is still
/// sound to use, see [`Shared::lock_lane`]).
fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

impl<K, S> std::fmt::Debug for Shared<K, S> {
    /// Counts what it can see without waiting: a part whose lock another
    /// thread holds is left out of the counts, and `complete` says so.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mut keys, mut waiters, mut complete) = (0, 0, true);
        match try_lock(&self.lane) {
            Some(lane) => waiters += lane.core.waiters(),
            None => complete = false,
        }
        for shard in self.shards.iter() {
            match try_lock(shard) {
                Some(part) => {
                    keys += part.core.len();
                    waiters += part.core.waiters();
                }
                None => complete = false,
            }
        }
        let mut out = f.debug_struct("Shared");
        out.field("keys", &keys)
            .field("waiters", &waiters)
            .field("closed", &self.is_closed())
            .field("shards", &self.shards.len());
        if !complete {
            out.field("complete", &false);
        }
        out.finish_non_exhaustive()
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
        assert_eq!(shared.lock_lane().wakers.len(), n);
        // The oldest stays, in slot 0; the slots above it go.
        for wait in &mut waits[1..] {
            shared.cancel(wait);
        }
        {
            let lane = shared.lock_lane();
            assert_eq!((lane.core.waiter_slots(), lane.wakers.len()), (1, 1));
            assert!(lane.wakers.capacity() <= MIN_WAKERS);
        }
        shared.set(1, 1);
        assert_eq!(woken(&count), 1, "its waker survived the trimming");
        let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut waits[0], Want::<u8>::Any, &mut cx)
        else {
            panic!("the woken waiter holds the lease");
        };
        assert_eq!(shared.lock_lane().wakers.len(), 0);
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
        while shared.waiters() == 0 {
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
        assert_eq!((shared.waiters(), shared.len()), (0, 0));
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
