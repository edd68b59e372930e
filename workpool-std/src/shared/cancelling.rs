//! Giving up a wait: a future dropped or a thread that timed out cancels
//! its waiter with the core, and whatever was granted to it passes on as a
//! release would pass it (see [`waiting`](super::waiting)).

use std::mem;

use workpool_core::parts::NeedsLane;
use workpool_core::WaiterId;

use super::handoff::Outcome;
use super::waiting::Wait;
use super::{After, LaneGuard, ShardGuard, Shared};

impl<K, S> Shared<K, S> {
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
    pub(super) fn cancel_waiter(&self, waiter: WaiterId, timed_out: bool) {
        // A grant the waiter had goes on or back; if it was its shard's last
        // unit, the shard gives up its count of the pool, dropped at the end
        // (the canceller holds a count of its own: see `keepalive`).
        if self.cancel_locked(waiter, timed_out) {
            self.unref_own();
        }
    }

    fn cancel_locked(&self, waiter: WaiterId, timed_out: bool) -> bool {
        let mut after = After::new();
        let Some(shard) = waiter.shard() else {
            let mut lane = self.lock_lane();
            if let Some(outcome) = self.lane_cells.take_outcome(waiter) {
                return self.cancel_published_any(lane, outcome, timed_out);
            }
            let cancelled = lane.core.cancel(waiter);
            debug_assert!(cancelled.is_ok(), "only a waiter's owner removes it");
            lane.timed_out += u64::from(timed_out);
            lane.take_waker(waiter, &mut after);
            let (part, unref) = match cancelled {
                Ok(Some(returned)) => {
                    let shard = returned.shard();
                    let mut part = self.lock_shard(shard);
                    let (core, mut ids) = part.split_ids(&self.ids);
                    core.give_back(&mut lane.core, returned, &mut ids);
                    self.sync_offer(&mut part);
                    let unref = self.let_go(shard, &part);
                    (Some(part), unref)
                }
                _ => (None, false),
            };
            self.finish_lane_op(lane, part, after);
            return unref;
        };
        let mut part = self.lock_shard(shard);
        if let Some(outcome) = self.shards[shard].cells.take_outcome(waiter) {
            return self.cancel_published(part, shard, outcome, timed_out);
        }
        let (core, mut ids) = part.split_ids(&self.ids);
        match core.cancel(None, waiter, &mut ids) {
            Ok(Err(NeedsLane(()))) => {}
            cancelled => {
                debug_assert!(cancelled.is_ok(), "only a waiter's owner removes it");
                part.timed_out += u64::from(timed_out);
                part.take_waker(waiter, &mut after);
                // A head that held room back may have left it to the ring:
                // the shard offers any-key room again.
                self.sync_offer(&mut part);
                let unref = self.let_go(shard, &part);
                self.finish(None, Some(part), after);
                return unref;
            }
        }
        drop(part);
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        // Published while no lock was held?
        if let Some(outcome) = self.shards[shard].cells.take_outcome(waiter) {
            drop(lane);
            return self.cancel_published(part, shard, outcome, timed_out);
        }
        let (core, mut ids) = part.split_ids(&self.ids);
        let cancelled = core.cancel(Some(&mut lane.core), waiter, &mut ids);
        debug_assert!(
            matches!(cancelled, Ok(Ok(()))),
            "only a waiter's owner removes it"
        );
        self.sync_offer(&mut part);
        part.timed_out += u64::from(timed_out);
        part.take_waker(waiter, &mut after);
        let unref = self.let_go(shard, &part);
        self.finish_lane_op(lane, Some(part), after);
        unref
    }

    /// Cancels a key waiter whose outcome was handed off to it (see
    /// [`handoff`](super::handoff)) and taken out of its cell under `part`
    /// (the lock of `shard`): a lease goes on or back as a release would
    /// pass it, counted as the core counts a granted waiter's cancel. True
    /// if the shard gave up its count (see [`release_slow`](Self::release_slow)).
    #[cold]
    /// The end of an any-key waiter that gives up after its releaser
    /// published its outcome (it is no longer known to the lane): its
    /// lease goes on as [`cancel_published`](Self::cancel_published) says,
    /// under the lane's lock (held) and its shard's; its key is dropped
    /// after unlocking.
    fn cancel_published_any(
        &self,
        mut lane: LaneGuard<'_>,
        outcome: Outcome<K>,
        timed_out: bool,
    ) -> bool {
        lane.timed_out += u64::from(timed_out);
        let Ok(lease) = outcome else {
            return false; // closed: nothing to give back
        };
        let shard = lease.shard();
        let (lease, key) = lease.into_unkeyed();
        let mut after = After::new();
        after.push_key(key);
        let mut part = self.lock_shard(shard);
        let (core, mut ids) = part.split_ids(&self.ids);
        let given = core.cancel_unkeyed(Some(&mut lane.core), lease, &mut ids);
        debug_assert!(given.is_ok(), "a call with the lane needs no lane");
        self.sync_offer(&mut part);
        let unref = self.let_go(shard, &part);
        self.finish_lane_op(lane, Some(part), after);
        unref
    }

    fn cancel_published(
        &self,
        mut part: ShardGuard<'_, K>,
        shard: usize,
        outcome: Outcome<()>,
        timed_out: bool,
    ) -> bool {
        part.timed_out += u64::from(timed_out);
        let Ok(lease) = outcome else {
            return false; // closed: nothing to give back
        };
        let (core, mut ids) = part.split_ids(&self.ids);
        let Err(NeedsLane(lease)) = core.cancel_unkeyed(None, lease, &mut ids) else {
            let unref = self.let_go(shard, &part);
            self.finish(None, Some(part), After::new());
            return unref;
        };
        drop(part);
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        let (core, mut ids) = part.split_ids(&self.ids);
        let given = core.cancel_unkeyed(Some(&mut lane.core), lease, &mut ids);
        debug_assert!(given.is_ok(), "a call with the lane needs no lane");
        let unref = self.let_go(shard, &part);
        self.finish_lane_op(lane, Some(part), After::new());
        unref
    }
}
