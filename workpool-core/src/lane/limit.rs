//! The pool-wide limit in the lane: its count of the units taken, the
//! budgets lent to shards, and the loop that hands out the pool's room to
//! the oldest waiter it can serve, whatever its key.

use super::*;

impl Lane {
    /// The pool-wide limit, if one is set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(workpool_core::parts::Lane::new().limit(), None);
    /// ```
    #[inline]
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Live leases over all keys, while a limit is set and no shard holds
    /// a budget (the lane counts them only then: otherwise, sum
    /// [`Shard::active`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(workpool_core::parts::Lane::new().active(), None);
    /// ```
    pub fn active(&self) -> Option<u64> {
        self.limit.filter(|_| self.budgets == 0).map(|_| self.total)
    }

    /// The units of the limit that neither a lease nor a shard's budget
    /// holds; `None` without a limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// assert_eq!(lane.unclaimed(), None);
    /// lane.set_limit(Some(3));
    /// assert_eq!(lane.unclaimed(), Some(3));
    /// ```
    pub fn unclaimed(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.total))
    }

    /// True while some shard holds a budget of the limit (see
    /// [`Shard::lend_budget`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!workpool_core::parts::Lane::new().has_budgets());
    /// ```
    #[inline]
    pub fn has_budgets(&self) -> bool {
        self.budgets > 0
    }

    /// True when a shard holds a budget while a waiter waits for the
    /// pool's room (an any-key waiter, or a key waiter the limit holds
    /// back): then the adapter returns every budget
    /// ([`Shard::return_budget`]) and runs the
    /// [`distribute_next`](Self::distribute_next) loop, before it lets the
    /// lane go.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!workpool_core::parts::Lane::new().needs_budgets_back());
    /// ```
    #[inline]
    pub fn needs_budgets_back(&self) -> bool {
        self.budgets > 0 && (!self.blocked.is_empty() || self.any_queue != List::EMPTY)
    }

    /// Sets or removes the pool-wide limit. First the adapter returns every
    /// shard's budget ([`Shard::return_budget`]). Then, holding the
    /// lane throughout: if a limit is set, calls [`Shard::enter_limit`] on
    /// every shard (which adds its leases to the lane's count); runs the
    /// [`distribute_next`](Self::distribute_next) loop (a raised or removed
    /// limit may serve waiters); and, if the limit was removed, calls
    /// [`Shard::leave_limit`] on every shard.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::<&str>::new(0, &lane);
    /// lane.set_limit(Some(3));
    /// shard.enter_limit(&mut lane);
    /// assert_eq!((lane.limit(), lane.active()), (Some(3), Some(0)));
    /// ```
    pub fn set_limit(&mut self, limit: Option<u64>) {
        debug_assert_eq!(self.budgets, 0, "the limit changed while budgets are lent");
        if self.limit.is_none() && limit.is_some() {
            // Counted again as the shards enter the limit.
            self.total = 0;
            // Waiters that queued without a limit took the count they saw;
            // from now on every waiter takes a count of its own, above them.
            self.next_arrival += 1;
        }
        self.limit = limit;
    }

    /// True when the pool holds more live leases than its limit (then
    /// every live lease is surplus, see
    /// [`Pool::is_surplus`](crate::Pool::is_surplus)).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!workpool_core::parts::Lane::new().over_limit());
    /// ```
    #[inline]
    pub fn over_limit(&self) -> bool {
        self.limit.is_some_and(|l| self.total > l)
    }

    /// True when the pool may grant one more unit: no limit, or fewer live
    /// units than it.
    #[inline]
    pub(crate) fn pool_room(&self) -> bool {
        self.limit.is_none_or(|l| self.total < l)
    }

    /// True when the pool may grant `units` more units.
    #[inline]
    pub(crate) fn pool_room_for(&self, units: u64) -> bool {
        self.limit
            .is_none_or(|l| l.saturating_sub(self.total) >= units)
    }

    /// True when a newcomer (who is younger than every waiter) may take
    /// `units` of the pool's room: the pool has them, and no waiter the
    /// limit holds back is owed them first. A held-back waiter exists
    /// beside room only when it asks for more units than are free (with one
    /// unit per waiter the heap is empty whenever the pool has room).
    #[inline]
    pub(crate) fn newcomer_room(&self, units: u64) -> bool {
        self.pool_room_for(units) && self.blocked.is_empty()
    }

    /// Counts a grant of `units` against the limit (if any).
    #[inline]
    pub(crate) fn count_grant(&mut self, units: u64) {
        if self.limit.is_some() {
            self.total += units;
        }
    }

    /// Counts `units` given back (if a limit is set).
    #[inline]
    pub(crate) fn count_return(&mut self, units: u64) {
        if self.limit.is_some() {
            self.total -= units;
        }
    }

    /// Adds a shard's leases to the count, as it enters the limit.
    pub(crate) fn add_active(&mut self, n: u64) {
        self.total += n;
    }

    /// An arrival order for a key waiter while a limit is set: even, and a
    /// count of its own, so that waiters of different keys compare.
    pub(crate) fn bump_key_arrival(&mut self) -> u64 {
        let order = 2 * self.next_arrival;
        self.next_arrival += 1;
        order
    }

    /// The shard whose lock the next step of handing out the pool's room
    /// needs, or `None` when there is nothing (more) to hand out: the pool
    /// has no room, or no waiter it could serve. While a limit is set (or
    /// was just removed), an adapter runs this loop, holding the lane, after
    /// every operation that takes the lane: `while let Some(s) =
    /// lane.distribute_next() { lock shard s; lane.distribute_step(shard) }`.
    /// Without a limit it returns `None` at once.
    ///
    /// It picks the oldest of the waiters the pool's room can serve: the
    /// oldest waiter of the groups the limit held back, or the oldest
    /// any-key waiter if a shard is listed (its step grants from the
    /// shard's ring, or unlists the shard if no group in it has room).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(workpool_core::parts::Lane::new().distribute_next(), None);
    /// ```
    pub fn distribute_next(&self) -> Option<usize> {
        match self.next_to_serve()? {
            Next::Any(shard, _) | Next::Blocked(shard, _) => Some(shard as usize),
        }
    }

    /// Who the pool's room goes to next: the oldest any-key waiter, from
    /// the group under the cursor, if it is older than every held-back
    /// waiter; otherwise the oldest held-back waiter. Strictly in that
    /// order: if the pool lacks the units the oldest one asks for, nobody
    /// younger is served (head-of-line, across keys).
    fn next_to_serve(&self) -> Option<Next> {
        let any = self.head_order();
        let top = self.blocked.top();
        match (any, top, self.shards.cursor()) {
            (Some(a), top, Some(shard)) if top.is_none_or(|(_, _, (o, _, _))| a < o) => {
                self.pool_room().then_some(Next::Any(shard, a))
            }
            (_, Some((shard, g, _)), _) => {
                let units = self.blocked.top_units()?;
                self.pool_room_for(units).then_some(Next::Blocked(shard, g))
            }
            _ => None,
        }
    }

    /// One step of [`distribute_next`](Self::distribute_next)'s loop, with
    /// the shard it named.
    ///
    /// # Panics
    ///
    /// If `shard` is not the one [`distribute_next`](Self::distribute_next)
    /// named.
    ///
    /// # Examples
    ///
    /// See [`distribute_next`](Self::distribute_next).
    pub fn distribute_step<K, I: LeaseIds>(&mut self, shard: &mut Shard<K>, ids: &mut I) {
        match self.next_to_serve() {
            Some(Next::Any(s, a)) => {
                assert_eq!(s, shard.index(), "a step with another shard");
                // A key waiter older than the any-key one keeps its group's
                // room for itself (it asks for more units than are free).
                match shard.room_in_turn(Some(a)) {
                    Turn::Room(g) => {
                        let grant = shard.grant(g, 1, ids);
                        self.count_grant(1);
                        if shard.advance_turn() {
                            self.next_turn();
                        }
                        self.grant_head(grant);
                        // The group may have lost its room: its own waiters'
                        // place among the held back changes.
                        shard.rebalance(self, g);
                    }
                    Turn::Over => self.next_turn(),
                    Turn::Empty => shard.unlist(self),
                }
            }
            Some(Next::Blocked(s, g)) => {
                assert_eq!(s, shard.index(), "a step with another shard");
                shard.serve_blocked(self, g, ids);
            }
            None => {}
        }
    }
}

/// Who [`Lane::next_to_serve`] picked: an any-key waiter (of this arrival
/// order) from the shard under the cursor, or the head of a held-back group
/// (shard, slot).
enum Next {
    Any(u32, u64),
    Blocked(u32, u32),
}
