//! Leaving: waiters that give up, leases that come back, keys and the
//! shard that close.

use super::*;

impl<K> Shard<K> {
    /// Removes a key waiter that gave up, as
    /// [`Pool::cancel`](crate::Pool::cancel) does.
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` is not a registered waiter of this
    /// shard; `Ok(Err(NeedsLane))`, changing nothing, when called without
    /// the lane and the cancel needs it.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids).unwrap().unwrap();
    /// assert_eq!(shard.cancel(None, w, &mut ids), Ok(Ok(())));
    /// assert!(shard.is_empty());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn cancel<I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        waiter: WaiterId,
        ids: &mut I,
    ) -> Result<Result<(), NeedsLane<()>>, UnknownWaiter> {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        let (index, g) = (waiter.index, w.group);
        if lane.is_none() && self.limited && !w.is_closed() {
            return Ok(Err(NeedsLane(())));
        }
        let mut lane = lane;
        if w.is_waiting() {
            let group = self.groups.at(g);
            // A head waiter that asked for more units than were free held
            // room back from the waiters behind it: they are served now.
            // (With one unit per waiter, room and a queue never meet
            // without a limit, and a limit's room goes through the lane.)
            // Leftover room may serve an any-key waiter unless the shard is
            // listed.
            let frees = group.queue.head == index && group.has_room();
            if lane.is_none() && frees && self.give_back_needs_lane() {
                return Ok(Err(NeedsLane(())));
            }
            self.unlink_waiting(index, g);
            self.waiters.remove(index);
            self.stats.cancelled += 1;
            match lane.as_deref_mut() {
                Some(lane) if lane.limit().is_some() => {
                    if frees {
                        self.link(Some(&mut *lane), g);
                    }
                    self.rebalance(lane, g);
                }
                lane if frees => self.serve(lane, g, ids),
                Some(lane) => self.rebalance(lane, g),
                None => {}
            }
            self.forget_if_idle(lane, g);
        } else if let State::Granted(grant) = w.state() {
            if lane.is_none() && self.give_back_needs_lane() {
                return Ok(Err(NeedsLane(())));
            }
            self.finish(index);
            // The grant reached nobody: it was counted at the hand-off.
            self.stats.granted -= 1;
            self.stats.cancelled += 1;
            self.give_back_group(lane, grant.group, grant.units(), ids);
        } else {
            self.finish(index);
        }
        Ok(Ok(()))
    }

    /// Gives a lease back, as [`Pool::release`](crate::Pool::release) does.
    ///
    /// # Errors
    ///
    /// The outer `Err` ([`NeedsLane`] with the lease, nothing changed) when
    /// called without the lane and the release needs it: the shard is not
    /// listed (an any-key waiter may be older than the key's waiters), or a
    /// limit is set. The inner `Err` is
    /// [`Pool::release`](crate::Pool::release)'s.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let lease = shard.try_acquire_key(None, 1, &"a", &mut ids).unwrap().unwrap();
    /// assert_eq!(shard.release(None, lease, &mut ids).ok().unwrap().unwrap(), "a");
    /// ```
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    pub fn release<I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        lease: Lease<K>,
        ids: &mut I,
    ) -> Result<Result<K, ReleaseError<K>>, NeedsLane<Lease<K>>> {
        if lease.pool != self.pool {
            return Ok(Err(ReleaseError::ForeignPool(lease)));
        }
        let Grant {
            shard,
            group,
            generation,
            units,
            id,
        } = lease.grant;
        let units = u64::from(units);
        let live = shard == self.index
            && matches!(self.groups.get_checked(group, generation),
                Some(g) if g.active >= units && ids.issued(id));
        if !live {
            return Ok(self.release_dead(lease, ids));
        }
        if lane.is_none() && (self.limited || self.give_back_needs_lane()) {
            return self.release_to_budget(lease);
        }
        self.give_back_group(lane, group, units, ids);
        Ok(Ok(lease.key))
    }

    /// [`release`](Self::release) of a lease that holds no live units of
    /// this shard: a lease of no units (which names no group and frees
    /// nothing) comes back as its key; anything else is stale. Out of line,
    /// so that the release of a live lease stays small.
    #[cold]
    #[inline(never)]
    fn release_dead<I: LeaseIds>(&self, lease: Lease<K>, ids: &I) -> Result<K, ReleaseError<K>> {
        let grant = lease.grant;
        if grant.units == 0
            && grant.group == NIL
            && grant.shard == self.index
            && ids.issued(grant.id)
        {
            return Ok(lease.key);
        }
        Err(ReleaseError::Stale(lease))
    }

    /// Gives back the grant of a cancelled any-key waiter
    /// ([`Lane::cancel`]): it goes to the next eligible waiter or back to
    /// its key.
    ///
    /// # Panics
    ///
    /// If the grant is not from this shard.
    ///
    /// # Examples
    ///
    /// See [`Returned`].
    pub fn give_back<I: LeaseIds>(&mut self, lane: &mut Lane, returned: Returned, ids: &mut I) {
        let grant = returned.0;
        assert_eq!(
            grant.shard, self.index,
            "a grant given back to another shard"
        );
        debug_assert!(self
            .groups
            .get_checked(grant.group, grant.generation)
            .is_some());
        // The grant reached nobody (the lane counted the cancel): it was
        // counted here at the hand-off.
        self.stats.granted -= 1;
        self.give_back_group(Some(lane), grant.group, grant.units(), ids);
    }

    /// Closes the shard: every waiting key waiter is told [`Closed`](crate::Closed) and
    /// later key requests fail. Close the lane first. O(live keys +
    /// waiters), once.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids).unwrap().unwrap();
    /// lane.close();
    /// shard.close(&mut lane);
    /// assert_eq!(shard.poll_wake(), Some(w));
    /// ```
    pub fn close(&mut self, lane: &mut Lane) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.waiters.waiting == 0 {
            return;
        }
        let Self {
            table,
            groups,
            ring,
            waiters,
            wake,
            blocked_of,
            ..
        } = self;
        // Every key waiter waits for a live key, and the table holds exactly
        // the live keys, in at most 32 buckets or about 4.6 per key (see
        // `shrink_table`).
        table.retain(|&mut g| {
            let group = groups.at_mut(g);
            if group.waiting == 0 {
                return true;
            }
            group.waiting = 0;
            close_queue(waiters, wake, &mut group.queue);
            let idle = group.is_idle();
            let blocked = blocked_of.get(g as usize).copied().unwrap_or(NIL);
            if blocked != NIL {
                super::helpers::set_blocked(blocked_of, g, NIL);
                lane.blocked.remove(blocked);
            }
            if !idle {
                return true;
            }
            // Forgotten, as `forget` does; `retain` unlinks it.
            if groups.at(g).in_ring() {
                ring.remove(groups, g);
            }
            groups.retire(g);
            false
        });
        self.shrink_table();
    }

    /// Closes one key, as [`Pool::close_key`](crate::Pool::close_key) does.
    ///
    /// # Errors
    ///
    /// [`NeedsLane`], changing nothing, when called without the lane while
    /// a limit is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids).unwrap().unwrap();
    /// shard.close_key(None, 1, &"a").unwrap();
    /// assert_eq!(shard.poll_wake(), Some(w));
    /// ```
    pub fn close_key<Q>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
    ) -> Result<(), NeedsLane<()>>
    where
        Q: ?Sized + Equivalent<K>,
    {
        let Some(g) = self.find(hash, key) else {
            return Ok(());
        };
        let group = self.groups.at_mut(g);
        if lane.is_none() && self.limited {
            return Err(NeedsLane(()));
        }
        group.target = 0;
        let mut queue = core::mem::replace(&mut group.queue, List::EMPTY);
        group.waiting = 0;
        close_queue(&mut self.waiters, &mut self.wake, &mut queue);
        let mut lane = lane;
        if let Some(lane) = lane.as_deref_mut() {
            self.rebalance(lane, g);
        }
        self.forget_if_idle(lane, g);
        Ok(())
    }
}
