//! Operations on one key, in its shard: finding the shard, a key's counts,
//! setting and closing a key, releasing a lease, and the `surplus()` and
//! `drained()` watchers (the table they register in is
//! [`Watches`](crate::watch::Watches)).
//!
//! Each locks the key's shard alone while the core says the shard suffices
//! (the key's group is linked in the ring, which proves that no any-key
//! waiter exists); otherwise it locks the lane, then the shard, and runs
//! again.

use std::hash::{BuildHasher, Hash};
use std::task::Waker;

use workpool_core::parts::{NeedsLane, Shard};
use workpool_core::{Counts, Equivalent};

use super::{After, LaneGuard, Part, ShardGuard, Shared};
use crate::sync::Ordering;
use crate::watch::{Condition, Seen};

/// Where a `surplus()` or `drained()` future stands: registered with a
/// shard's [`Watches`](crate::watch::Watches) (shard, entry), or not (yet,
/// or any more).
#[derive(Debug, Default)]
pub(crate) struct Watching {
    at: Option<(usize, usize)>,
}

impl<K, S> Shared<K, S> {
    /// Gives a lease back under its shard's lock (and the lane's when the
    /// shard is unlisted), after [`fast_release`](Self::fast_release) could
    /// not put it back in its key's word. True if the shard gave up its
    /// count of the pool (see [`keepalive`](super::keepalive)): the caller
    /// drops it with [`unref`](super::keepalive::unref).
    #[inline]
    pub(crate) fn release_slow(&self, lease: workpool_core::Lease<K>) -> bool {
        let shard = lease.shard();
        if self.hints.any_waiting.load(Ordering::Relaxed) {
            // Any-key waiters are about: the shard is most likely unlisted,
            // so the shard alone would answer `NeedsLane`.
            return self.release_with_lane(shard, lease);
        }
        let mut part = self.lock_shard(shard);
        let (core, mut ids) = part.split_ids(&self.ids);
        match core.release(None, lease, &mut ids) {
            Ok(Ok(key)) => {
                // The key's group may be linked again: its shard offers
                // any-key room.
                self.sync_offer(&mut part);
                let unref = self.let_go(shard, &part);
                if part.core.has_forgotten() || part.watches.is_waiting() {
                    let mut after = After::new();
                    after.push_key(key);
                    self.finish_slow(None, Some(part), after);
                } else if part.core.has_wakes() {
                    self.hand_off_after_release(part, key);
                } else {
                    drop(part);
                    drop(key);
                }
                unref
            }
            Ok(Err(err)) => unreachable!("a std lease was rejected: {err}"),
            Err(NeedsLane(lease)) => {
                drop(part);
                self.release_with_lane(shard, lease)
            }
        }
    }

    /// The end of a release in its shard alone that decided waiters: the
    /// common one, a single key waiter, is handed its lease and woken
    /// without [`finish_slow`](Self::finish_slow)'s batch (the release's
    /// key, the waker and the wake all after unlocking); more go through
    /// it.
    #[inline]
    fn hand_off_after_release(&self, mut part: ShardGuard<'_, K>, key: K) {
        let cells = &self.shards[part.core.index() as usize].cells;
        let Some(waiter) = cells.hand_off_next(&mut part.core) else {
            unreachable!("called with a decided waiter");
        };
        // Woken when dropped, so that a panicking wake of the others below
        // still wakes this one.
        let waker = WakeOnDrop(part.take_decided_waker(waiter));
        if part.core.has_wakes() {
            // Several served (a release of several units): the rest as
            // usual, then this one.
            let mut after = After::new();
            after.push_key(key);
            self.finish_slow(None, Some(part), after);
        } else {
            drop(part);
            drop(key);
        }
        drop(waker);
    }

    #[cold]
    fn release_with_lane(&self, shard: usize, lease: workpool_core::Lease<K>) -> bool {
        let lane = self.lock_lane();
        let part = self.lock_shard(shard);
        self.release_locked(lane, part, shard, lease)
    }

    /// Releases `lease` with the lane and its shard held, then finishes;
    /// true if the shard gave up its count (see [`release_slow`](Self::release_slow)).
    fn release_locked(
        &self,
        mut lane: LaneGuard<'_>,
        mut part: ShardGuard<'_, K>,
        shard: usize,
        lease: workpool_core::Lease<K>,
    ) -> bool {
        let slot = lease.slot();
        let (core, mut ids) = part.split_ids(&self.ids);
        let released = core.release(Some(&mut lane.core), lease, &mut ids);
        let Ok(Ok(key)) = released else {
            unreachable!("a std lease was rejected, or the lane was not enough");
        };
        self.lend_budget(&mut lane, &mut part);
        self.sync_offer(&mut part);
        let unref = self.let_go(shard, &part);
        let mut after = After::new();
        // The common any-key wait: the unit goes to the oldest any-key
        // waiter, whose lease takes the released key (see `handoff`).
        let (handed, key) = if lane.core.has_wakes() {
            self.lane_cells
                .hand_off_any(&mut lane.core, shard, slot, key)
        } else {
            (None, Some(key))
        };
        // Woken when dropped: after unlocking, and even if a wake below
        // panics.
        let waker = WakeOnDrop(handed.and_then(|waiter| lane.take_decided_waker(waiter)));
        if let Some(key) = key {
            after.push_key(key);
        }
        self.finish_lane_op(lane, Some(part), after);
        drop(waker);
        unref
    }

    /// A watcher leaves (its future completed or was dropped); its waker is
    /// dropped after unlocking.
    pub(crate) fn unwatch(&self, watching: &mut Watching) {
        if let Some((shard, entry)) = watching.at.take() {
            let waker = self.lock_shard(shard).watches.remove(entry);
            drop(waker);
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// The full hash of `key` and the shard it lives in.
    #[inline]
    pub(crate) fn locate<Q: ?Sized + Hash>(&self, key: &Q) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        // The high half: the shard's table uses the hash folded and
        // spread again, so keys of one shard still spread over its table.
        let shard = (hash >> 32) as usize & (self.shards.len() - 1);
        (hash, shard)
    }

    pub(crate) fn counts<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Counts {
        let (hash, shard) = self.locate(key);
        // The key's own word alone: the other keys' words stay lent.
        let mut part = self.lock_shard(shard);
        self.collect_key(shard, &mut part, hash);
        part.core.counts(hash, key)
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
        let mut part = self.lock_settled(shard);
        let (core, mut ids) = part.split_ids(&self.ids);
        if core.set_in(None, hash, &mut key, target, &mut ids).is_ok() {
            self.sync_offer(&mut part);
            self.finish(None, Some(part), after);
            return;
        }
        drop(part);
        let mut lane = self.lock_lane();
        let mut part = self.lock_settled(shard);
        let (core, mut ids) = part.split_ids(&self.ids);
        let set = core.set_in(Some(&mut lane.core), hash, &mut key, target, &mut ids);
        debug_assert!(set.is_ok(), "a call with the lane needs no lane");
        self.sync_offer(&mut part);
        if let Some(unused) = key.take() {
            after.push_key(unused);
        }
        self.finish_lane_op(lane, Some(part), after);
    }

    pub(crate) fn close_key<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) {
        let (hash, shard) = self.locate(key);
        let mut part = self.lock_settled(shard);
        if part.core.close_key(None, hash, key).is_ok() {
            self.finish(None, Some(part), After::new());
            return;
        }
        drop(part);
        let mut lane = self.lock_lane();
        let mut part = self.lock_settled(shard);
        let closed = part.core.close_key(Some(&mut lane.core), hash, key);
        debug_assert!(closed.is_ok(), "a call with the lane needs no lane");
        self.finish_lane_op(lane, Some(part), After::new());
    }

    /// Whether `lease` is surplus now.
    pub(crate) fn is_surplus(&self, lease: &workpool_core::Lease<K>) -> bool {
        let shard = lease.shard();
        let part = self.lock_settled(shard);
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
    /// same locks; hands it back otherwise. `Ok` says, as
    /// [`release_slow`](Self::release_slow) does, whether the shard gave up its count.
    pub(crate) fn release_if_surplus(
        &self,
        lease: workpool_core::Lease<K>,
    ) -> Result<bool, workpool_core::Lease<K>> {
        let shard = lease.shard();
        let mut part = self.lock_settled(shard);
        match part.core.is_surplus(None, &lease) {
            Ok(false) => return Err(lease),
            Ok(true) => {
                let (core, mut ids) = part.split_ids(&self.ids);
                let released = core.release(None, lease, &mut ids);
                match released {
                    Ok(Ok(key)) => {
                        // The key's group may be linked again, as in
                        // `release_slow`: its shard offers any-key room.
                        self.sync_offer(&mut part);
                        let unref = self.let_go(shard, &part);
                        let mut after = After::new();
                        after.push_key(key);
                        self.finish(None, Some(part), after);
                        return Ok(unref);
                    }
                    Ok(Err(err)) => unreachable!("a std lease was rejected: {err}"),
                    Err(NeedsLane(back)) => {
                        drop(part);
                        return self.release_if_surplus_with_lane(shard, back);
                    }
                }
            }
            Err(NeedsLane(())) => {}
        }
        drop(part);
        self.release_if_surplus_with_lane(shard, lease)
    }

    fn release_if_surplus_with_lane(
        &self,
        shard: usize,
        lease: workpool_core::Lease<K>,
    ) -> Result<bool, workpool_core::Lease<K>> {
        let lane = self.lock_lane();
        let part = self.lock_shard(shard);
        if !part
            .core
            .is_surplus(Some(&lane.core), &lease)
            .unwrap_or(false)
        {
            return Err(lease);
        }
        Ok(self.release_locked(lane, part, shard, lease))
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
        let mut part = self.lock_settled(shard);
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
        let mut part = self.lock_settled(shard);
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

impl<K> Part<Shard<K>> {
    /// Re-checks the shard's watched keys after an operation (see
    /// [`Watches::check`](crate::watch::Watches::check)); fired watchers are
    /// woken once no lock is held.
    /// `over_limit` says whether the pool is over its limit (only known
    /// with the lane held; false otherwise: a limit is only lowered by
    /// `set_limit`, which checks with it).
    pub(super) fn check_watches(&mut self, over_limit: bool, after: &mut After<K>) {
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

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// Splits `units` units off `lease` into a new lease of its key (see
    /// [`Shard::split`]), under its shard's lock, with the key's word
    /// collected first: the new id is then above every id the key's word
    /// minted, as the rule of lease ids within a key asks. The key's hash
    /// (user code) is taken before the lock.
    pub(crate) fn split(
        &self,
        lease: &mut workpool_core::Lease<K>,
        units: u64,
    ) -> Option<workpool_core::Lease<()>> {
        let (hash, shard) = self.locate(lease.key());
        debug_assert_eq!(shard, lease.shard(), "a lease's key hashes to its shard");
        let mut part = self.lock_shard(shard);
        self.collect_key(shard, &mut part, hash);
        let (core, mut ids) = part.split_ids(&self.ids);
        core.split(lease, units, &mut ids)
    }
}

/// A waker woken when dropped (if any), once no lock is held.
struct WakeOnDrop(Option<Waker>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(waker) = self.0.take() {
            waker.wake();
        }
    }
}
