//! Waking and deferred drops: how every path gets its wakes and drops out
//! from under the locks, and the waker slots of each part.
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
//! `event-listener` [`Event`](event_listener::Event), which wakes nothing
//! but that thread. `Hash`, `Eq` and `Clone` of `K` do run under a lock
//! (finding a key needs them); the core stays consistent when they panic,
//! so a poisoned lock is still sound to use.
//!
//! # Waking
//!
//! An operation that changed the core ends in [`Shared::finish`] (a
//! release without the lane checks the same inline): if the parts it holds
//! have waiters to wake, keys to hand out or watchers to check, the cold
//! [`Shared::finish_slow`] takes the wakers of exactly the waiters the core
//! named (each [`Part`]'s slot for that waiter) into a batch, unlocks and
//! wakes; otherwise the guards and the [`After`] are simply dropped.

use std::mem;
use std::task::Waker;

use workpool_core::parts::{Lane, Shard};
use workpool_core::WaiterId;

use super::{LaneGuard, Part, ShardGuard, Shared};

/// The waker slots never shrink below this many.
pub(super) const MIN_WAKERS: usize = 16;

/// How many wakers one pass under the locks collects before it unlocks to
/// wake them (then it locks again for the rest). Bounded so that waking
/// needs no allocation.
const WAKE_BATCH: usize = 32;

/// Wakers taken under a lock, to be woken after unlocking. Built only when
/// there is someone to wake, so the common release (nobody waiting) does
/// not pay for it. The first waker has a slot of its own and the array for
/// the rest is only filled in once a second one comes: a release wakes one
/// waiter, and then neither building the batch nor dropping it walks the
/// array.
struct WakeBatch {
    first: Option<Waker>,
    rest: Option<[Option<Waker>; WAKE_BATCH - 1]>,
    len: usize,
}

impl WakeBatch {
    fn new() -> Self {
        Self {
            first: None,
            rest: None,
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == WAKE_BATCH
    }

    fn push(&mut self, waker: Waker) {
        match (self.len, &mut self.rest) {
            (0, _) => self.first = Some(waker),
            (n, Some(rest)) => rest[n - 1] = Some(waker),
            (_, rest @ None) => {
                let mut slots = [const { None }; WAKE_BATCH - 1];
                slots[0] = Some(waker);
                *rest = Some(slots);
            }
        }
        self.len += 1;
    }

    /// Wakes every waker, emptying the batch. Called with no lock held; if
    /// a wake panics, the batch's drop wakes the rest.
    fn wake_all(&mut self) {
        if let Some(waker) = self.first.take() {
            waker.wake();
        }
        if let Some(rest) = &mut self.rest {
            for slot in &mut rest[..self.len.saturating_sub(1)] {
                if let Some(waker) = slot.take() {
                    waker.wake();
                }
            }
        }
        self.len = 0;
    }
}

impl Drop for WakeBatch {
    /// Wakes whatever a panicking wake left behind (its drop runs after the
    /// guards are gone, like the batch's own wake).
    fn drop(&mut self) {
        if self.len > 0 {
            self.wake_all();
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
    pub(super) wakes: Vec<Waker>,
}

impl<K> Drop for After<K> {
    /// Wakes the fired watchers (their wakers are user code): an `After` is
    /// dropped once no lock is held. If a wake panics, the rest are still
    /// woken while it unwinds.
    #[inline]
    fn drop(&mut self) {
        if !self.wakes.is_empty() {
            self.wake_watchers();
        }
    }
}

impl<K> After<K> {
    #[cold]
    fn wake_watchers(&mut self) {
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

    pub(super) fn push_stale(&mut self, waker: Option<Waker>) {
        debug_assert!(self.stale.is_none() || waker.is_none());
        if waker.is_some() {
            self.stale = waker;
        }
    }

    pub(super) fn push_key(&mut self, key: K) {
        match self.key {
            None => self.key = Some(key),
            Some(_) => self.keys.push(key),
        }
    }
}

/// What the waker bookkeeping needs of a part.
pub(super) trait WaiterSlab {
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

impl<K, S> Shared<K, S> {
    /// Drops the guards and `after` at once if the parts they hold have
    /// nothing to wake and no key to hand out; otherwise wakes (the common
    /// case stays inline and builds nothing).
    #[inline]
    pub(super) fn finish<'a>(
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

    /// Collects the keys the shard forgot (dropped with `after`, once no
    /// lock is held) and frees their words. Every path that may forget a
    /// key calls it before it lets the shard go: a key set after that could
    /// take a forgotten key's slot (the core reaps a retired slot to reuse
    /// it, and would drop its key under the lock), and the forgotten key's
    /// word, still naming the slot, would be lent to the new key under the
    /// old key's minter (leases the core rejects as stale at release).
    #[inline]
    pub(super) fn collect_forgotten(&self, part: &mut Part<Shard<K>>, after: &mut After<K>) {
        if part.core.has_forgotten() {
            while let Some(key) = part.core.poll_forgotten() {
                after.push_key(key);
            }
            self.free_dead_words(part, after);
        }
    }

    /// Collects forgotten keys and the wakers of decided waiters, unlocks,
    /// wakes; and again while a full batch left some behind.
    #[cold]
    pub(super) fn finish_slow<'a>(
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
                // A word dies only with its key.
                self.collect_forgotten(part, &mut after);
                // Key waiters: their outcomes are claimed and published
                // here, under the lock that decided them (see `handoff`).
                let cells = &self.shards[part.core.index() as usize].cells;
                more_shard = part.fill(&mut batch, |core, waiter| cells.hand_off(core, waiter));
            }
            let more_lane = lane
                .as_mut()
                .is_some_and(|part| part.fill(&mut batch, |_, _| {}));
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
}

impl<P: WaiterSlab> Part<P> {
    /// Makes sure the waker slots reach `waiter`'s slot.
    pub(super) fn reserve_slot(&mut self, waiter: WaiterId) {
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
    pub(super) fn register<K>(&mut self, waiter: WaiterId, waker: &Waker, after: &mut After<K>) {
        let slot = &mut self.wakers[waiter.index()];
        match slot {
            Some(stored) if stored.will_wake(waker) => {}
            _ => after.push_stale(slot.replace(waker.clone())),
        }
    }

    /// Stores the first waker of a waiter that just registered; returns
    /// what its slot held (nothing, as a rule: a waiter's waker leaves with
    /// it), for the caller to drop after unlocking.
    pub(super) fn register_first(&mut self, waiter: WaiterId, waker: &Waker) -> Option<Waker> {
        let stale = self.wakers[waiter.index()].replace(waker.clone());
        debug_assert!(stale.is_none(), "a waker outlived its waiter");
        stale
    }

    /// Takes the waker of a waiter that left (claimed or cancelled), to be
    /// dropped after unlocking, and trims the slots.
    pub(super) fn take_waker<K>(&mut self, waiter: WaiterId, after: &mut After<K>) {
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

    /// The waker of a decided waiter, to be woken once no lock is held
    /// (as [`fill`](Self::fill) takes it), and the slots trimmed.
    pub(super) fn take_decided_waker(&mut self, waiter: WaiterId) -> Option<Waker> {
        let waker = self.wakers[waiter.index()].take();
        let slots = self.core.waiter_slots();
        if self.wakers.len() > slots {
            self.cut_wakers(slots);
        }
        waker
    }

    /// Moves the wakers of decided waiters into `batch`, after `decided`
    /// saw each (a key waiter's hand-off); true if some are left because
    /// the batch is full.
    fn fill(&mut self, batch: &mut WakeBatch, mut decided: impl FnMut(&mut P, WaiterId)) -> bool {
        let more = loop {
            if batch.is_full() {
                break self.core.has_wakes();
            }
            let Some(waiter) = self.core.poll_wake() else {
                break false;
            };
            decided(&mut self.core, waiter);
            // A waiter that never stored a waker is between its enqueue
            // and its claim under this same lock: nothing to wake.
            if let Some(waker) = self.wakers[waiter.index()].take() {
                batch.push(waker);
            }
        };
        // A hand-off's claim let the waiter's slot go.
        let slots = self.core.waiter_slots();
        if self.wakers.len() > slots {
            self.cut_wakers(slots);
        }
        more
    }
}
