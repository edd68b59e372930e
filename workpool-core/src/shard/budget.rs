//! Budgets: room of the pool-wide limit lent to a shard, so that keys
//! under a limit that does not bind grant and release without the lane.
//!
//! While a limit is set, the lane counts every unit the pool grants
//! against it, so every grant and release needs the lane: keys of
//! different shards would contend on it even when the limit is far away.
//! The lane may instead lend a shard part of the limit's free room
//! ([`Shard::lend_budget`]), counted by the lane as taken. Then:
//!
//! - a key grant without the lane takes its units from the budget, when
//!   the key has room for a newcomer and the budget has the units (the
//!   key's room is decided exactly as with the lane);
//! - a release without the lane puts its units back in the budget, when
//!   nobody waits for the key (waiters are served with the lane);
//! - the lane takes the budget back ([`Shard::return_budget`]) before it
//!   decides that the pool has no room.
//!
//! So the lane's count is the units of the limit taken (leases and
//! budgets), and a shard's leases plus its budget only change with the
//! lane. The lane lends only while no waiter waits for the pool's room
//! (no any-key waiter, no key waiter the limit holds back): a budget never
//! holds room that an older waiter is owed. Should one come to wait while
//! budgets are out, [`Lane::needs_budgets_back`] says so, and the adapter
//! takes them all back before it lets the lane go.

use super::*;

impl<K> Shard<K> {
    /// Lends this shard `units` of the limit's free room (see
    /// [`Lane::unclaimed`]), on top of any budget it holds; returns false,
    /// lending nothing, unless a limit is set, the shard is under it
    /// ([`enter_limit`](Self::enter_limit)) and open, the lane has that
    /// much free room and no waiter waits for the pool's room (any-key
    /// waiters, key waiters the limit holds back).
    ///
    /// From then on, and until [`return_budget`](Self::return_budget), the
    /// shard's key grants and releases that nobody waits for need no lane:
    /// [`try_acquire_key`](Self::try_acquire_key) and
    /// [`release`](Self::release) take and return units of the budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 5, &mut ids).unwrap();
    /// lane.set_limit(Some(10));
    /// shard.enter_limit(&mut lane);
    /// assert!(shard.try_acquire_key(None, 1, &"a", &mut ids).is_err()); // needs the lane
    /// assert!(shard.lend_budget(&mut lane, 2));
    /// assert_eq!(lane.unclaimed(), Some(8));
    /// let lease = shard.try_acquire_key(None, 1, &"a", &mut ids).unwrap().unwrap();
    /// assert_eq!(shard.budget(), Some(1));
    /// shard.release(None, lease, &mut ids).ok().unwrap().unwrap();
    /// assert_eq!(shard.budget(), Some(2));
    /// shard.return_budget(&mut lane);
    /// assert_eq!((shard.budget(), lane.unclaimed()), (None, Some(10)));
    /// ```
    pub fn lend_budget(&mut self, lane: &mut Lane, units: u64) -> bool {
        debug_assert_eq!(
            self.pool,
            lane.pool_id(),
            "a budget from another pool's lane"
        );
        let fits = lane.unclaimed().is_some_and(|free| free >= units);
        if !fits
            || units == 0
            || !self.limited
            || self.closed
            || !lane.blocked.is_empty()
            || lane.any_queue != List::EMPTY
        {
            return false;
        }
        lane.count_grant(units);
        if self.budget.is_none() {
            lane.budgets += 1;
        }
        self.budget = Some(self.budget.unwrap_or(0) + units);
        true
    }

    /// Gives the shard's budget back to the lane, if it holds one: the
    /// room counts as free again, and grants and releases need the lane
    /// again (until the next [`lend_budget`](Self::lend_budget)). Take
    /// back what the shard lent out of it first ([`unlend`](Self::unlend)):
    /// units lent then stay counted as the key's.
    ///
    /// # Examples
    ///
    /// See [`lend_budget`](Self::lend_budget).
    pub fn return_budget(&mut self, lane: &mut Lane) {
        debug_assert_eq!(self.pool, lane.pool_id(), "a budget to another pool's lane");
        if let Some(units) = self.budget.take() {
            lane.count_return(units);
            lane.budgets -= 1;
        }
    }

    /// The units of the limit this shard holds as a budget, if it holds
    /// one (see [`lend_budget`](Self::lend_budget)).
    ///
    /// # Examples
    ///
    /// See [`lend_budget`](Self::lend_budget).
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// [`try_acquire_key`](Self::try_acquire_key) without the lane while a
    /// limit is set and the shard holds `budget` (open, at most
    /// [`Lease::MAX_UNITS`] units: checked by the caller): from the budget
    /// if it has the units and the key has room for a newcomer; the lane
    /// if the budget falls short. A key without room answers as with the
    /// lane (the pool's room does not matter then).
    #[allow(clippy::type_complexity)]
    #[cold]
    pub(super) fn try_from_budget<Q, I: LeaseIds>(
        &mut self,
        hash: u64,
        key: &Q,
        units: u64,
        budget: u64,
        ids: &mut I,
    ) -> Result<Result<Lease<K>, TryAcquireError>, NeedsLane<()>>
    where
        K: Clone,
        Q: ?Sized + Equivalent<K>,
    {
        // While an operation with the lane runs elsewhere, a group of this
        // shard may have room beside a waiter the lane's loop is about to
        // serve (held back by the limit): a newcomer may not pass it.
        match self.find(hash, key) {
            Some(g) if self.has_room_for_newcomer(g, units) => {
                if budget < units {
                    return Err(NeedsLane(()));
                }
                // `K::clone` may panic here: the budget is taken after.
                let lease = self.lease_from_units(g, units, ids);
                self.budget = Some(budget - units);
                Ok(Ok(lease))
            }
            _ => Ok(Err(TryAcquireError::NoCapacity)),
        }
    }

    /// [`release`](Self::release) of a live lease without the lane, when
    /// the shard is under a limit or unlisted: into the budget if the
    /// shard holds one, is listed and nobody waits for the key; otherwise
    /// the lane is needed.
    #[allow(clippy::type_complexity)]
    #[cold]
    pub(super) fn release_to_budget(
        &mut self,
        lease: Lease<K>,
    ) -> Result<Result<K, ReleaseError<K>>, NeedsLane<Lease<K>>> {
        let g = lease.grant.group;
        if !self.budget_takes_back(g) {
            return Err(NeedsLane(lease));
        }
        self.give_back_to_budget(g, u64::from(lease.grant.units));
        Ok(Ok(lease.key))
    }

    /// True when units of group `g` may go back to the shard's budget
    /// without the lane: the shard is under a limit, holds a budget and is
    /// listed, and nobody waits for the key (waiters are served with the
    /// lane).
    #[inline]
    pub(super) fn budget_takes_back(&self, g: u32) -> bool {
        self.limited
            && self.budget.is_some()
            && self.is_listed()
            && self.groups.at(g).queue == List::EMPTY
    }

    /// Gives `units` of group `g` back to the shard's budget (see
    /// [`budget_takes_back`](Self::budget_takes_back)).
    pub(super) fn give_back_to_budget(&mut self, g: u32, units: u64) {
        let group = self.groups.at_mut(g);
        group.active -= units;
        self.total -= units;
        if let Some(budget) = self.budget.as_mut() {
            *budget += units;
        }
        self.link(None, g);
        self.forget_if_idle(None, g);
    }
}

#[cfg(test)]
mod tests {
    use crate::parts::{Lane, NeedsLane, Shard};
    use crate::{Claim, Lease, TryAcquireError, WaiterId};

    type Ids = u64;

    /// A lane with limit `limit` and one shard under it with key "a" of
    /// target `target` (hash 1).
    fn limited(limit: u64, target: u64) -> (Lane, Shard<&'static str>, Ids) {
        let mut lane = Lane::new();
        let mut shard = Shard::new(0, &lane);
        let mut ids = 1;
        shard
            .set(Some(&mut lane), 1, "a", target, &mut ids)
            .unwrap();
        lane.set_limit(Some(limit));
        shard.enter_limit(&mut lane);
        (lane, shard, ids)
    }

    /// A lease of "a" without the lane (out of the budget).
    fn take(shard: &mut Shard<&'static str>, ids: &mut Ids) -> Lease<&'static str> {
        shard.try_acquire_key(None, 1, &"a", ids).unwrap().unwrap()
    }

    /// What a try of "a" without the lane answers, if not `NeedsLane`.
    fn refusal(shard: &mut Shard<&'static str>, ids: &mut Ids) -> TryAcquireError {
        shard
            .try_acquire_key(None, 1, &"a", ids)
            .unwrap()
            .unwrap_err()
    }

    /// Key "a" full (one lease out, target 1) and one waiter queued for it
    /// with the lane, in a shard that holds a budget of 3.
    fn full_with_a_waiter() -> (
        Lane,
        Shard<&'static str>,
        Ids,
        Lease<&'static str>,
        WaiterId,
    ) {
        let (mut lane, mut shard, mut ids) = limited(10, 1);
        assert!(shard.lend_budget(&mut lane, 3));
        let one = take(&mut shard, &mut ids);
        let arrivals = lane.arrivals();
        assert!(
            shard
                .enqueue_key(None, 1, &"a", arrivals, &mut ids)
                .is_err(),
            "no lane"
        );
        let w = shard
            .enqueue_key(Some(&mut lane), 1, &"a", arrivals, &mut ids)
            .unwrap()
            .unwrap();
        (lane, shard, ids, one, w)
    }

    /// The lane's loop, as an adapter runs it after an operation.
    fn run_loop(lane: &mut Lane, shard: &mut Shard<&'static str>, ids: &mut Ids) {
        while lane.distribute_next().is_some() {
            lane.distribute_step(shard, ids);
        }
    }

    #[test]
    fn a_budget_grants_until_it_runs_out_then_asks_for_the_lane() {
        let (mut lane, mut shard, mut ids) = limited(10, 5);
        assert!(shard.lend_budget(&mut lane, 2));
        assert_eq!((lane.unclaimed(), lane.active()), (Some(8), None));
        let one = take(&mut shard, &mut ids);
        let two = shard
            .try_acquire_key_many(None, 1, &"a", 1, &mut ids)
            .unwrap()
            .unwrap();
        assert_eq!(shard.budget(), Some(0));
        assert!(
            shard.try_acquire_key(None, 1, &"a", &mut ids).is_err(),
            "no lane"
        );
        // With the lane, the lane's free room serves.
        let three = shard
            .try_acquire_key(Some(&mut lane), 1, &"a", &mut ids)
            .unwrap()
            .unwrap();
        assert_eq!((shard.active(), lane.unclaimed()), (3, Some(7)));
        for lease in [one, two, three] {
            shard.release(None, lease, &mut ids).ok().unwrap().unwrap();
        }
        // All three came back to the budget, the lane's count unchanged.
        assert_eq!((shard.budget(), lane.unclaimed()), (Some(3), Some(7)));
        shard.return_budget(&mut lane);
        assert_eq!((lane.unclaimed(), lane.active()), (Some(10), Some(0)));
    }

    #[test]
    fn a_full_key_answers_without_the_lane() {
        let (mut lane, mut shard, mut ids) = limited(10, 1);
        assert!(shard.lend_budget(&mut lane, 3));
        let _one = take(&mut shard, &mut ids);
        assert_eq!(refusal(&mut shard, &mut ids), TryAcquireError::NoCapacity);
        assert_eq!(
            shard
                .try_acquire_key(None, 2, &"b", &mut ids)
                .unwrap()
                .unwrap_err(),
            TryAcquireError::NoCapacity,
            "an untracked key has no room"
        );
    }

    #[test]
    fn a_release_with_waiters_needs_the_lane() {
        let (mut lane, mut shard, mut ids, one, w) = full_with_a_waiter();
        let Err(NeedsLane(one)) = shard.release(None, one, &mut ids) else {
            panic!("a release that serves a waiter went without the lane");
        };
        shard
            .release(Some(&mut lane), one, &mut ids)
            .ok()
            .unwrap()
            .unwrap();
        // The freed unit is the pool's, for the waiter it now holds back:
        // the adapter takes the budget back and runs the lane's loop.
        assert!(lane.needs_budgets_back());
        assert_eq!(shard.budget(), Some(2));
        shard.return_budget(&mut lane);
        run_loop(&mut lane, &mut shard, &mut ids);
        assert!(matches!(shard.claim(w), Ok(Claim::Granted(_))));
        assert_eq!((lane.unclaimed(), lane.active()), (Some(9), Some(1)));
    }

    #[test]
    fn a_newcomer_from_the_budget_never_passes_a_waiter_the_loop_is_about_to_serve() {
        let (mut lane, mut shard, mut ids, one, w) = full_with_a_waiter();
        // The release gives the key room; the waiter is held back until the
        // lane's loop runs. Meanwhile a newcomer from the budget finds the
        // room taken by the waiter (the long stress run hit this window).
        shard
            .release(Some(&mut lane), one, &mut ids)
            .ok()
            .unwrap()
            .unwrap();
        assert_eq!(refusal(&mut shard, &mut ids), TryAcquireError::NoCapacity);
        run_loop(&mut lane, &mut shard, &mut ids);
        assert!(matches!(shard.claim(w), Ok(Claim::Granted(_))));
    }

    /// A raised target gives a key room beside a waiter the limit holds
    /// back while the shard still holds a budget (the adapter takes it
    /// back only after letting the shard go). An any-key grant from the
    /// shard alone meanwhile unlinks the key (its room is the waiter's);
    /// once the lane's loop serves the waiter, the room left must be
    /// linked again, or no any-key grant sees it (the std stress run hit
    /// "room off the ring" in a grant from a budget).
    #[test]
    fn room_left_after_serving_a_held_back_waiter_is_linked() {
        let (mut lane, mut shard, mut ids) = limited(4, 1);
        let one = shard
            .try_acquire_key(Some(&mut lane), 1, &"a", &mut ids)
            .unwrap()
            .unwrap();
        let arrivals = lane.arrivals();
        let w = shard
            .enqueue_key(Some(&mut lane), 1, &"a", arrivals, &mut ids)
            .unwrap()
            .unwrap();
        // The key is full, so its waiter is not held back: a budget is lent.
        assert!(shard.lend_budget(&mut lane, 3));
        assert_eq!(lane.unclaimed(), Some(0));
        // Three more units for "a": the waiter is held back by the limit.
        shard.set(Some(&mut lane), 1, "a", 4, &mut ids).unwrap();
        assert!(lane.needs_budgets_back());
        // The shard is let go: an any-key grant from its budget finds no
        // room for a newcomer (it is the waiter's) and unlinks "a".
        assert!(shard.try_take_any(&mut ids).is_none());
        // The adapter takes the budget back and runs the loop.
        shard.return_budget(&mut lane);
        run_loop(&mut lane, &mut shard, &mut ids);
        assert!(matches!(shard.claim(w), Ok(Claim::Granted(_))));
        assert_eq!(lane.unclaimed(), Some(2));
        // "a" has two units of room and nobody waits: a grant from a new
        // budget takes one (debug builds asserted "room off the ring")...
        assert!(shard.lend_budget(&mut lane, 1));
        let two = take(&mut shard, &mut ids);
        shard.return_budget(&mut lane);
        // ...and an any-key grant the other.
        let any = lane.try_take(&mut shard, &mut ids);
        assert!(any.is_some(), "room off the ring: no any-key grant");
        drop((one, two, any));
    }

    #[test]
    fn nothing_is_lent_while_someone_waits_for_the_pool() {
        let (mut lane, mut shard, mut ids) = limited(1, 1);
        let _one = shard
            .try_acquire_key(Some(&mut lane), 1, &"a", &mut ids)
            .unwrap()
            .unwrap();
        let any = lane.enqueue().unwrap();
        lane.set_limit(Some(5));
        assert!(
            !shard.lend_budget(&mut lane, 1),
            "lent beside an any-key waiter"
        );
        assert!(lane.cancel(any).unwrap().is_none());
        assert!(!shard.lend_budget(&mut lane, 5), "more than the free room");
        assert!(shard.lend_budget(&mut lane, 4));
        // A waiter the limit holds back while a budget is out: the adapter
        // takes the budgets back.
        assert!(!lane.needs_budgets_back());
        let _any = lane.enqueue().unwrap();
        assert!(lane.needs_budgets_back());
        shard.return_budget(&mut lane);
        assert!(!lane.needs_budgets_back() && !lane.has_budgets());
    }

    #[test]
    fn lent_units_go_back_to_the_budget() {
        let (mut lane, mut shard, mut ids) = limited(10, 4);
        assert!(shard.lend_budget(&mut lane, 3));
        let lent = shard.lend(0, u64::MAX).expect("a budget lends");
        assert_eq!((lent.units, shard.budget()), (3, Some(0)));
        let lease = lent.minter.mint("a", ids);
        ids += 1;
        shard.unlend(None, 0, 2, 1, &mut ids).unwrap();
        assert_eq!(shard.budget(), Some(2));
        shard.release(None, lease, &mut ids).ok().unwrap().unwrap();
        assert_eq!((shard.budget(), shard.active()), (Some(3), 0));
        shard.return_budget(&mut lane);
        assert_eq!(lane.unclaimed(), Some(10));
        assert!(
            shard.lend(0, u64::MAX).is_none(),
            "lent under a limit without a budget"
        );
    }
}
