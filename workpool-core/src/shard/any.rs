//! Any-key grants from one shard alone: for an adapter that rotates over
//! the listed shards without the lane's lock.

use super::*;

impl<K> Shard<K> {
    /// An any-key lease from this shard alone, without the lane: from the
    /// first group with room from the shard's cursor on (full groups before
    /// it leave the shard's ring), and the cursor moves past it, as
    /// [`Lane::try_take`] would do in this shard.
    ///
    /// It grants only while the shard is *listed* in the lane's rotation:
    /// a listed shard proves that no any-key waiter waits (the lane unlists
    /// every shard before one queues, and lists a shard again only once no
    /// any-key waiter is left), and a group with room has no key waiter, so
    /// the grant takes room from nobody older. An adapter may therefore
    /// rotate over the shards it believes listed (see
    /// [`offers_any`](Self::offers_any)) with their locks alone, and fall
    /// back to the lane ([`Lane::next_shard`]) when none gives a lease.
    ///
    /// `None` when the shard is not listed, is closed, has no group with
    /// room (it stays listed then: unlisting needs the lane, which does it
    /// when its cursor reaches the shard), or while the pool has a limit
    /// ([`is_limited`](Self::is_limited): the lane counts the pool's
    /// leases, so any-key grants go through it) unless the shard holds a
    /// budget of the limit ([`lend_budget`](Self::lend_budget)): then the
    /// grant takes one unit of it, as a key grant without the lane does
    /// (a budget is lent only while nobody waits for the pool's room).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// shard.set(Some(&mut lane), 2, "b", 1, &mut ids).unwrap();
    /// let a = shard.try_take_any(&mut ids).unwrap();
    /// let b = shard.try_take_any(&mut ids).unwrap();
    /// assert_eq!((*a.key(), *b.key()), ("a", "b"));
    /// assert!(shard.try_take_any(&mut ids).is_none());
    /// // No room: still listed until the lane looks, which unlists it.
    /// assert!(shard.is_listed());
    /// assert!(lane.try_take(&mut shard, &mut ids).is_none());
    /// assert!(!shard.is_listed());
    /// ```
    #[inline]
    pub fn try_take_any<I: LeaseIds>(&mut self, ids: &mut I) -> Option<Lease<K>>
    where
        K: Clone,
    {
        self.turn_ended = false;
        if !self.may_grant_any() || self.closed || !self.is_listed() {
            return None;
        }
        let g = match self.room_in_turn(None) {
            Turn::Room(g) => g,
            Turn::Over => {
                self.turn_ended = true;
                return None;
            }
            Turn::Empty => return None,
        };
        // `K::clone` may panic here: the budget's unit is taken after.
        let lease = self.lease_from(g, ids);
        if let Some(budget) = self.budget.filter(|_| self.limited) {
            self.budget = Some(budget - 1);
        }
        self.turn_ended = self.advance_turn();
        Some(lease)
    }

    /// True when the last [`try_take_any`](Self::try_take_any) ended the
    /// shard's *turn* in the any-key rotation: an adapter rotating over
    /// shards stays on a shard until its turn ends, then moves to the next
    /// one. A turn grants once from each key that had room when it began,
    /// in the shard's round-robin order, so the two levels make one
    /// round-robin over all keys. A turn also ends without a grant when its
    /// last key turns out full (then `try_take_any` returned `None`, and
    /// the shard may still have room for the next turn).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 2, &mut ids).unwrap();
    /// shard.set(Some(&mut lane), 2, "b", 2, &mut ids).unwrap();
    /// let a = shard.try_take_any(&mut ids).unwrap();
    /// assert!(!shard.turn_ended()); // "b" is still to come in this turn
    /// let b = shard.try_take_any(&mut ids).unwrap();
    /// assert!(shard.turn_ended());
    /// assert_eq!((*a.key(), *b.key()), ("a", "b"));
    /// ```
    #[inline]
    pub fn turn_ended(&self) -> bool {
        self.turn_ended
    }

    /// True while the shard is listed in the lane's rotation of shards that
    /// any-key grants look at (see [`try_take_any`](Self::try_take_any)).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// assert!(!shard.is_listed());
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// assert!(shard.is_listed());
    /// ```
    #[inline]
    pub fn is_listed(&self) -> bool {
        self.listed
    }

    /// True when an any-key grant from this shard alone may succeed: it is
    /// listed, open, without a limit (or with a budget of it left), and a
    /// group is linked in its ring
    /// (which may still turn out full: the ring unlinks full groups
    /// lazily). An adapter can mirror it in an atomic, as a hint of where
    /// to look first; nothing relies on the hint being right.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// assert!(shard.offers_any());
    /// let _lease = shard.try_take_any(&mut ids).unwrap();
    /// assert!(shard.offers_any(), "full, but still linked");
    /// assert!(shard.try_take_any(&mut ids).is_none());
    /// assert!(!shard.offers_any());
    /// ```
    #[inline]
    pub fn offers_any(&self) -> bool {
        self.is_listed() && !self.closed && self.may_grant_any() && !self.ring.is_empty()
    }

    /// True unless the pool's limit forbids an any-key grant from this
    /// shard alone: without a limit, or under one with a budget of at
    /// least one unit (see [`lend_budget`](Self::lend_budget)).
    #[inline]
    fn may_grant_any(&self) -> bool {
        !self.limited || self.budget.is_some_and(|budget| budget > 0)
    }

    /// The slot of the key an any-key grant from this shard alone takes,
    /// when that grant changes nothing but the key's count: the shard
    /// [`offers_any`](Self::offers_any), tracks that one key, its ring
    /// links it and no turn is running. Such a grant begins and ends the
    /// shard's turn and leaves the cursor where it was, so an adapter may
    /// make it from room it lent the key ([`lend`](Self::lend)) as long as
    /// no other key is set, no turn starts and the shard stays listed
    /// meanwhile (each of which needs the lent room collected first).
    /// `None` otherwise.
    ///
    /// One key tracked, not merely one linked: in a shard of several keys,
    /// a release links a key that filled up and left the ring again, with
    /// no call an adapter could tell from any other release.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 2, &mut ids).unwrap();
    /// let a = shard.slot(1, &"a").unwrap();
    /// assert_eq!(shard.solo_slot(), Some(a));
    /// shard.set(Some(&mut lane), 2, "b", 1, &mut ids).unwrap();
    /// assert_eq!(shard.solo_slot(), None, "two keys take turns");
    /// ```
    #[inline]
    pub fn solo_slot(&self) -> Option<usize> {
        if !self.offers_any() || self.len() != 1 {
            return None;
        }
        self.ring.solo(&self.groups).map(|g| g as usize)
    }
}

#[cfg(test)]
mod tests {
    use crate::parts::{Lane, Shard};

    /// `solo_slot` names a key only while an any-key grant from the shard
    /// alone would take it and change nothing else: one key linked, no
    /// turn running, listed, open, without a limit.
    #[test]
    fn solo_slot_only_while_a_grant_changes_nothing_else() {
        let mut lane = Lane::new();
        let mut shard = Shard::new(0, &lane);
        let mut ids = 1u64;
        assert_eq!(shard.solo_slot(), None, "nothing linked");
        shard.set(Some(&mut lane), 1, "a", 2, &mut ids).unwrap();
        let a = shard.slot(1, &"a").unwrap();
        assert_eq!(shard.solo_slot(), Some(a));
        // A grant from a solo key ends the turn and leaves it solo.
        let first = shard.try_take_any(&mut ids).unwrap();
        assert!(shard.turn_ended());
        assert_eq!(shard.solo_slot(), Some(a));
        // Two keys: a grant from `a` starts a turn that `b` ends.
        shard.set(Some(&mut lane), 2, "b", 1, &mut ids).unwrap();
        let b = shard.slot(2, &"b").unwrap();
        assert_eq!(shard.solo_slot(), None);
        let second = shard.try_take_any(&mut ids).unwrap();
        assert_eq!(*second.key(), "a");
        assert!(!shard.turn_ended(), "b is still to come");

        // `a` forgotten: `b` is linked alone, but the turn runs on.
        shard
            .release(Some(&mut lane), first, &mut ids)
            .unwrap()
            .unwrap();
        shard
            .release(Some(&mut lane), second, &mut ids)
            .unwrap()
            .unwrap();
        shard.set(Some(&mut lane), 1, "a", 0, &mut ids).unwrap();
        assert_eq!(shard.len(), 1);
        assert_eq!(shard.solo_slot(), None, "the turn runs on");
        let third = shard.try_take_any(&mut ids).unwrap();
        assert_eq!(*third.key(), "b");
        assert!(shard.turn_ended());
        assert_eq!(shard.solo_slot(), Some(b), "b alone, between turns");
        // A limit sends any-key grants through the lane.
        lane.set_limit(Some(10));
        shard.enter_limit(&mut lane);
        assert_eq!(shard.solo_slot(), None);
        drop(third);
    }

    /// Under a limit, a shard grants any key alone only from a budget of
    /// the limit: one unit of it per grant; none left, it offers nothing
    /// and grants nothing; a release puts the unit back.
    #[test]
    fn any_key_grants_under_a_limit_take_the_budget() {
        let mut lane = Lane::new();
        let mut shard = Shard::new(0, &lane);
        let mut ids = 1u64;
        shard.set(Some(&mut lane), 1, "a", 5, &mut ids).unwrap();
        lane.set_limit(Some(10));
        shard.enter_limit(&mut lane);
        assert!(!shard.offers_any(), "no budget yet");
        assert!(shard.try_take_any(&mut ids).is_none());
        assert!(shard.lend_budget(&mut lane, 2));
        assert!(shard.offers_any());
        let first = shard.try_take_any(&mut ids).unwrap();
        let second = shard.try_take_any(&mut ids).unwrap();
        assert_eq!((*first.key(), *second.key()), ("a", "a"));
        assert_eq!(shard.budget(), Some(0));
        assert!(!shard.offers_any(), "the budget is spent");
        assert!(shard.try_take_any(&mut ids).is_none());
        shard.release(None, first, &mut ids).ok().unwrap().unwrap();
        assert_eq!(shard.budget(), Some(1));
        assert!(shard.offers_any());
        shard.return_budget(&mut lane);
        assert_eq!(lane.unclaimed(), Some(9), "one lease out of the limit");
        drop(second);
    }

    /// A key linked alone beside a tracked key that filled up and left the
    /// ring is not solo: that key's release links it again.
    #[test]
    fn solo_slot_none_beside_a_tracked_key() {
        let mut lane = Lane::new();
        let mut shard = Shard::new(0, &lane);
        let mut ids = 1u64;
        shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
        shard.set(Some(&mut lane), 2, "b", 1, &mut ids).unwrap();
        let a = shard.try_take_any(&mut ids).unwrap();
        let b = shard.try_take_any(&mut ids).unwrap();
        assert_eq!((*a.key(), *b.key()), ("a", "b"));
        assert!(
            shard.try_take_any(&mut ids).is_none(),
            "both full, unlinked"
        );
        shard
            .release(Some(&mut lane), a, &mut ids)
            .unwrap()
            .unwrap();
        assert_eq!(shard.len(), 2);
        assert_eq!(shard.solo_slot(), None, "b is tracked");
        shard
            .release(Some(&mut lane), b, &mut ids)
            .unwrap()
            .unwrap();
        assert_eq!(shard.solo_slot(), None);
    }
}
