//! The shard's internal steps: serving waiters, giving units back,
//! linking, forgetting, growing and shrinking its tables.

use super::*;

/// Where an any-key grant stands in a shard's turn (see [`crate::ring`]).
pub(crate) enum Turn {
    /// This group, under the ring's cursor, has room.
    Room(u32),
    /// The shard's turn ended without a grant: its last group was full.
    Over,
    /// No group is linked.
    Empty,
}

impl<K> Shard<K> {
    #[inline]
    pub(super) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find_hashed(short_hash(hash), key)
    }

    #[inline]
    pub(super) fn find_hashed<Q>(&self, hash: ShortHash, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Equivalent<K>,
    {
        let groups = &self.groups;
        self.table
            .find(table_hash(hash), |&g| {
                let group = groups.at(g);
                group.hash == hash && key.equivalent(&group.key)
            })
            .copied()
    }

    /// The slot of a tracked key, for tests.
    #[cfg(test)]
    pub(crate) fn slot_of<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find(hash, key)
    }

    pub(super) fn insert_group(&mut self, key: K, hash: ShortHash) -> u32 {
        let g = self.groups.insert(key, hash);
        let groups = &self.groups;
        self.table
            .insert_unique(table_hash(hash), g, |&i| table_hash(groups.at(i).hash));
        g
    }

    /// True when giving units back to a group of this shard needs the
    /// lane: the shard is not listed (an any-key waiter may be older than
    /// the group's waiters, and leftover room must list the shard).
    #[inline(always)]
    pub(super) fn give_back_needs_lane(&self) -> bool {
        !self.is_listed()
    }

    /// Counts a grant of `units` (at most [`Lease::MAX_UNITS`]) from group
    /// `g`, which must have room for them. Runs no user code, so it cannot
    /// panic half-way.
    #[inline]
    pub(crate) fn grant<I: LeaseIds>(&mut self, g: u32, units: u64, ids: &mut I) -> Grant {
        let generation = self.groups.generation(g);
        let group = self.groups.at_mut(g);
        debug_assert!(units > 0 && group.fits(units));
        group.active += units;
        self.total += units;
        self.stats.granted += 1;
        Grant {
            shard: self.index,
            group: g,
            generation,
            units: units as u32,
            id: ids.next_id(),
        }
    }

    /// A lease of one unit from group `g`, with its key cloned *before*
    /// the grant is counted so that a panicking `K::clone` leaves the shard
    /// untouched.
    #[inline]
    pub(crate) fn lease_from<I: LeaseIds>(&mut self, g: u32, ids: &mut I) -> Lease<K>
    where
        K: Clone,
    {
        self.lease_from_units(g, 1, ids)
    }

    /// [`lease_from`](Self::lease_from) of `units` units.
    #[inline(always)]
    pub(crate) fn lease_from_units<I: LeaseIds>(
        &mut self,
        g: u32,
        units: u64,
        ids: &mut I,
    ) -> Lease<K>
    where
        K: Clone,
    {
        let key = self.groups.at(g).key.clone();
        Lease {
            pool: self.pool,
            grant: self.grant(g, units, ids),
            key,
        }
    }

    /// True when a newcomer may take `units` of group `g` (the pool's room
    /// is the caller's to check): they fit and no waiter of the key is
    /// older. A waiter left behind room asks for more units than are free.
    #[inline]
    pub(super) fn has_room_for_newcomer(&self, g: u32, units: u64) -> bool {
        let group = self.groups.at(g);
        // Room beside a waiter only while the limit holds the group back
        // (the lane's loop serves it before the lane is let go; a shard
        // with a budget may look meanwhile).
        debug_assert!(
            group.queue == List::EMPTY
                || self.blocked_node(g) != NIL
                || !group.fits(self.waiters.slot(group.queue.head).units()),
            "waiter left behind room"
        );
        debug_assert!(
            !group.has_room() || group.in_ring() || group.queue != List::EMPTY,
            "room off the ring"
        );
        group.queue == List::EMPTY && group.fits(units)
    }

    /// Links group `g` into the shard's ring, if it is not linked, and
    /// lists the shard in the lane's rotation if it is not listed (which
    /// needs the lane: without it, the shard must be listed already).
    #[inline]
    pub(super) fn link(&mut self, lane: Option<&mut Lane>, g: u32) {
        if !self.groups.at(g).in_ring() {
            self.ring.insert(&mut self.groups, g);
        }
        match lane {
            Some(lane) => self.list(lane),
            None => debug_assert!(self.is_listed(), "linked in a shard not listed"),
        }
    }

    /// Unlinks group `g` from the shard's ring, if it is linked.
    pub(crate) fn unlink(&mut self, g: u32) {
        if self.groups.at(g).in_ring() {
            self.ring.remove(&mut self.groups, g);
        }
    }

    /// Group `g`'s node in the lane's heap of held-back groups, or `NIL`.
    #[inline]
    pub(crate) fn blocked_node(&self, g: u32) -> u32 {
        self.blocked_of.get(g as usize).copied().unwrap_or(NIL)
    }

    /// Records group `g`'s node in the lane's heap of held-back groups.
    pub(crate) fn set_blocked_node(&mut self, g: u32, node: u32) {
        set_blocked(&mut self.blocked_of, g, node);
    }

    /// Puts the shard in the lane's rotation, if it is not there.
    pub(crate) fn list(&mut self, lane: &mut Lane) {
        if !self.listed {
            self.listed = true;
            lane.shards.insert(&mut lane.shard_links, self.index);
        }
    }

    /// Takes the shard out of the lane's rotation (its ring is empty).
    pub(crate) fn unlist(&mut self, lane: &mut Lane) {
        debug_assert!(self.ring.is_empty(), "a shard with linked groups unlisted");
        if core::mem::replace(&mut self.listed, false) {
            lane.shards.remove(&mut lane.shard_links, self.index);
        }
    }

    /// True when group `g` has room that an any-key acquisition may take:
    /// a newcomer (`any_order` `None`) only when no key waiter waits (a
    /// head waiter that asks for more units than are free keeps the room
    /// for itself, head-of-line); an any-key waiter of arrival order `a`
    /// unless the key's head waiter is older.
    #[inline]
    fn any_room(&self, g: u32, any_order: Option<u64>) -> bool {
        let group = self.groups.at(g);
        if !group.has_room() {
            return false;
        }
        let head = group.queue.head;
        head == NIL || any_order.is_some_and(|a| self.waiters.slot(head).order() > a)
    }

    /// The group under the ring's cursor if it has room for an any-key
    /// acquisition (see `any_room`), after unlinking the ones without
    /// that the cursor meets on the way (each paid for by its linking):
    /// [`Turn::Room`]. [`Turn::Over`] when the shard's running turn ends
    /// on the way (its last group had no room), [`Turn::Empty`] once the
    /// ring is empty.
    pub(crate) fn room_in_turn(&mut self, any_order: Option<u64>) -> Turn {
        while let Some(g) = self.ring.cursor() {
            if self.any_room(g, any_order) {
                return Turn::Room(g);
            }
            let ends_turn = self.ring.cursor_ends_turn();
            self.unlink(g);
            if ends_turn {
                return Turn::Over;
            }
        }
        Turn::Empty
    }

    /// Moves the ring's cursor past the group under it, after an any-key
    /// grant from it; true when the grant ended the shard's turn (the
    /// rotation over shards moves on).
    #[inline]
    pub(crate) fn advance_turn(&mut self) -> bool {
        self.ring.advance_in_turn(&self.groups)
    }

    /// Returns `units` of capacity to group `g` and passes them on: to as
    /// many waiters as they serve, each in O(1).
    #[inline]
    pub(super) fn give_back_group<I: LeaseIds>(
        &mut self,
        mut lane: Option<&mut Lane>,
        g: u32,
        units: u64,
        ids: &mut I,
    ) {
        let group = self.groups.at_mut(g);
        group.active -= units;
        self.total -= units;
        if let Some(lane) = lane.as_deref_mut() {
            if lane.limit().is_some() {
                // The units come back to the pool as well as to the key: the
                // lane hands the pool's room to the oldest waiter it can
                // serve, whatever its key ([`Lane::distribute_next`]).
                lane.count_return(units);
                self.link(Some(&mut *lane), g);
                self.rebalance(lane, g);
                self.forget_if_idle(Some(lane), g);
                return;
            }
        }
        let any_waiting = lane.as_ref().is_some_and(|l| l.any_queue != List::EMPTY);
        if group.queue == List::EMPTY && !any_waiting {
            // Nobody to serve: the common, uncontended case. Without the
            // lane the shard is listed (so no any-key waiter waits).
            self.link(lane.as_deref_mut(), g);
        } else {
            self.serve(lane.as_deref_mut(), g, ids);
        }
        self.forget_if_idle(lane, g);
    }

    /// Hands group `g`'s room to waiters, oldest eligible first; then, if
    /// no any-key waiter is left (always so without the lane: the shard is
    /// listed), links the group in the ring.
    pub(super) fn serve<I: LeaseIds>(&mut self, mut lane: Option<&mut Lane>, g: u32, ids: &mut I) {
        debug_assert!(
            lane.is_some() || self.is_listed(),
            "served without the lane in a shard not listed"
        );
        if lane.is_none() {
            return self.serve_alone(g, ids);
        }
        loop {
            let group = self.groups.at(g);
            if !group.has_room() || lane.as_ref().is_some_and(|l| !l.pool_room()) {
                break;
            }
            let key_head = group.queue.head;
            let any = lane.as_ref().and_then(|l| l.head_order());
            let from_key = match (key_head, any) {
                (NIL, None) => break,
                (_, None) => true,
                (NIL, Some(_)) => false,
                (k, Some(any)) => self.waiters.slot(k).order() < any,
            };
            // Head-of-line: the oldest waiter this group can serve is served
            // first or nobody is; an any-key waiter asks for one unit.
            let (order, units) = if from_key {
                let head = self.waiters.slot(key_head);
                ((head.order(), self.index, head.generation()), head.units())
            } else {
                // Odd, so never equal to a key waiter's order.
                ((any.unwrap_or(0), 0, 0), 1)
            };
            if !group.fits(units) {
                break;
            }
            if let Some(lane) = lane.as_deref() {
                if !lane.pool_room_for(units) || self.owed_first(lane, g, order) {
                    break;
                }
            }
            let grant = self.grant(g, units, ids);
            if let Some(lane) = lane.as_deref_mut() {
                lane.count_grant(units);
            }
            if from_key {
                self.grant_to_key_waiter(key_head, g, grant);
                if let Some(lane) = lane.as_deref_mut() {
                    // The group's place among the held-back ones follows its
                    // new head at once: `owed_first` looks at the heap's top,
                    // which must not be this group's served waiter when
                    // the next candidate is an any-key waiter.
                    self.rebalance(lane, g);
                }
            } else if let Some(lane) = lane.as_deref_mut() {
                lane.grant_head(grant);
            }
        }
        match lane {
            Some(lane) => {
                // Linked when no any-key waiter is left, and, under a limit,
                // whenever it has room. (Without a limit, room left beside
                // an any-key waiter is held for an older key waiter of more
                // units: linking would list the shard while an any-key
                // waiter waits.)
                let has_room = self.groups.at(g).has_room();
                if lane.any_queue == List::EMPTY || (has_room && lane.limit().is_some()) {
                    self.link(Some(&mut *lane), g);
                }
                self.rebalance(lane, g);
            }
            None => self.link(None, g),
        }
    }

    /// [`serve`](Self::serve) without the lane (the shard listed, so no
    /// any-key waiter waits, and no limit): the key's waiters in order, as
    /// long as the head's units fit; then the group is linked.
    fn serve_alone<I: LeaseIds>(&mut self, g: u32, ids: &mut I) {
        loop {
            let group = self.groups.at(g);
            let head = group.queue.head;
            if head == NIL {
                break;
            }
            // Head-of-line: nobody behind a head that does not fit.
            let units = self.waiters.slot(head).units();
            if !group.fits(units) {
                break;
            }
            let grant = self.grant(g, units, ids);
            self.grant_to_key_waiter(head, g, grant);
        }
        self.link(None, g);
    }

    /// Keeps group `g`'s place among the groups the pool-wide limit holds
    /// back: there exactly while it has room and key waiters and a limit is
    /// set, ordered by its oldest waiter.
    pub(crate) fn rebalance(&mut self, lane: &mut Lane, g: u32) {
        let group = self.groups.at(g);
        let node = self.blocked_node(g);
        // Without a limit no group is held back, but one that was stays in
        // the heap until the lane has served it (after the limit is lifted).
        let held = (lane.limit().is_some() || node != NIL)
            && group.queue.head != NIL
            && group.fits(self.waiters.slot(group.queue.head).units());
        match (held, node != NIL) {
            (true, _) => {
                let head = self.waiters.slot(group.queue.head);
                let key = (head.order(), self.index, head.generation());
                let units = head.units();
                if node == NIL {
                    let node = lane.blocked.insert(self.index, g, key, units);
                    self.set_blocked_node(g, node);
                } else {
                    lane.blocked.update(node, key, units);
                }
            }
            (false, true) => {
                self.set_blocked_node(g, NIL);
                lane.blocked.remove(node);
            }
            (false, false) => {}
        }
    }

    /// Serves one unit of the pool's room to the oldest waiter of group
    /// `g`, which the limit held back (the top of the lane's heap).
    pub(crate) fn serve_blocked<I: LeaseIds>(&mut self, lane: &mut Lane, g: u32, ids: &mut I) {
        let head = self.groups.at(g).queue.head;
        let units = self.waiters.slot(head).units();
        debug_assert!(head != NIL && self.groups.at(g).fits(units));
        let grant = self.grant(g, units, ids);
        lane.count_grant(units);
        self.grant_to_key_waiter(head, g, grant);
        // Room left is linked, as `serve` links it under a limit: an
        // any-key grant from the shard alone (out of a budget) may have
        // unlinked the group while its room was this waiter's.
        if self.groups.at(g).has_room() {
            self.link(Some(&mut *lane), g);
        }
        self.rebalance(lane, g);
    }

    /// True when a waiter of arrival `order` (as the heap orders), served from group `g`, would
    /// take pool room that an older waiter the limit holds back (of
    /// another group) is owed: it asks for more units than are free, and
    /// nobody younger may pass it. With one unit per waiter the heap is
    /// empty whenever the pool has room, so this never holds then.
    #[inline]
    fn owed_first(&self, lane: &Lane, g: u32, order: (u64, u32, u64)) -> bool {
        lane.blocked
            .top()
            .is_some_and(|(s, tg, key)| (s, tg) != (self.index, g) && key < order)
    }

    /// Puts the shard under the lane's limit (while the lane has one):
    /// from now on its grants and give-backs need the lane, which counts
    /// them. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 2, &mut ids).unwrap();
    /// lane.set_limit(Some(1));
    /// shard.enter_limit(&mut lane);
    /// assert!(shard.is_limited());
    /// lane.set_limit(None);
    /// shard.leave_limit(&lane);
    /// assert!(!shard.is_limited());
    /// ```
    pub fn enter_limit(&mut self, lane: &mut Lane) {
        if lane.limit().is_some() && !self.limited {
            self.limited = true;
            lane.add_active(self.total);
        }
    }

    /// Takes the shard from under the limit once the lane has none (after
    /// [`Lane::distribute_next`] found nothing left to serve). Idempotent.
    ///
    /// # Examples
    ///
    /// See [`enter_limit`](Self::enter_limit).
    pub fn leave_limit(&mut self, lane: &Lane) {
        debug_assert!(
            self.budget.is_none(),
            "a shard left the limit with a budget"
        );
        if lane.limit().is_none() {
            self.limited = false;
        }
    }

    /// Hands `grant` to key waiter `index` of group `g`: out of the group's
    /// queue, decided, queued to be woken.
    #[inline(always)]
    fn grant_to_key_waiter(&mut self, index: u32, g: u32, grant: Grant) {
        self.unlink_waiting(index, g);
        decide(
            &mut self.waiters,
            &mut self.wake,
            index,
            State::Granted(grant),
        );
    }

    /// Takes a waiting key waiter out of its group's queue.
    #[inline(always)]
    pub(super) fn unlink_waiting(&mut self, index: u32, g: u32) {
        self.waiters.waiting -= 1;
        let group = self.groups.at_mut(g);
        let mut queue = group.queue;
        group.waiting -= 1;
        self.waiters.unlink(&mut queue, index);
        self.groups.at_mut(g).queue = queue;
    }

    /// Forgets group `g` if nothing refers to it any more.
    #[inline]
    pub(super) fn forget_if_idle(&mut self, lane: Option<&mut Lane>, g: u32) {
        if self.groups.at(g).is_idle() {
            self.forget(lane, g);
        }
    }

    #[cold]
    pub(super) fn forget(&mut self, lane: Option<&mut Lane>, g: u32) {
        debug_assert_eq!(self.blocked_node(g), NIL, "a held-back group is idle");
        let _ = lane;
        self.unlink(g);
        let group = self.groups.at(g);
        if let Ok(entry) = self.table.find_entry(table_hash(group.hash), |&i| i == g) {
            entry.remove();
        }
        self.groups.retire(g);
        self.shrink_table();
    }

    /// Gives the table's spare buckets back once less than a quarter of its
    /// capacity (7/8 of its buckets) is used, keeping room for twice its
    /// length: each shrink is paid for by the removals since the table was
    /// last resized, so this is O(1) amortised, and growing and shrinking
    /// never alternate on neighbouring operations.
    #[inline]
    pub(super) fn shrink_table(&mut self) {
        let (len, buckets) = (self.table.len(), self.table.num_buckets());
        if buckets > MIN_BUCKETS && len * 32 < buckets * 7 {
            self.shrink_table_to(2 * len);
        }
    }

    #[cold]
    pub(super) fn shrink_table_to(&mut self, len: usize) {
        let groups = &self.groups;
        self.table
            .shrink_to(len.max(MIN_SLOTS), |&i| table_hash(groups.at(i).hash));
    }

    /// Removes a decided waiter (granted or closed) and returns its state.
    pub(super) fn finish(&mut self, index: u32) -> State {
        self.waiters.finish(&mut self.wake, index)
    }

    #[cfg(test)]
    pub(crate) fn wake_list(&self) -> List {
        self.wake
    }

    #[cfg(test)]
    pub(crate) fn table_len(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    pub(crate) fn table_buckets(&self) -> usize {
        self.table.num_buckets()
    }
}

/// Sets `table[g]` to `node`, growing the table only for a node and cutting
/// its trailing `NIL`s off, so that it stays as long as the highest group
/// held back needs (each cut pays for one earlier growth).
pub(crate) fn set_blocked(table: &mut Vec<u32>, g: u32, node: u32) {
    let i = g as usize;
    if i >= table.len() {
        if node == NIL {
            return;
        }
        table.resize(i + 1, NIL);
    }
    table[i] = node;
    while table.last() == Some(&NIL) {
        table.pop();
    }
    if table.capacity() > 64 && table.len() < table.capacity() / 4 {
        table.shrink_to(table.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::set_blocked;
    use crate::waiters::NIL;

    /// The side table of held-back groups grows only for a node and loses
    /// its trailing `NIL`s, so it is empty again once no group is held
    /// back.
    #[test]
    fn the_blocked_table_is_as_long_as_its_highest_node() {
        let mut table = alloc::vec::Vec::new();
        set_blocked(&mut table, 5, NIL);
        assert!(table.is_empty(), "no growth for NIL");
        set_blocked(&mut table, 3, 7);
        set_blocked(&mut table, 1, 9);
        assert_eq!(table, [NIL, 9, NIL, 7]);
        set_blocked(&mut table, 3, NIL);
        assert_eq!(table, [NIL, 9]);
        set_blocked(&mut table, 1, NIL);
        assert!(table.is_empty());
    }
}
