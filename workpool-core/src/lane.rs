//! The lane: any-key waiters, the rotation over listed shards and the
//! arrival counter.

use core::fmt;

use crate::blocked::Blocked;
use crate::error::{Closed, UnknownWaiter};
use crate::identity::{Identity, PoolId};
use crate::lease::{Claim, Grant, Lease, Stats, WaiterId};
use crate::parts::LeaseIds;
use crate::ring::{Ring, ShardLinks};
use crate::shard::{close_queue, decide, Shard, Turn};
use crate::waiters::{List, State, Waiters, NIL};

mod handoff;
mod limit;

/// The any-key part of a pool: the any-key waiters and their queue, the
/// rotation over the listed shards that any-key grants take (each shard
/// then rotates over its own ready ring), the arrival counter that orders
/// waiters of every part, and the pool's identity.
///
/// A pool is one `Lane` and one or more [`Shard`]s. Operations on one key
/// need only the key's shard, as long as the shard is listed in the lane's
/// rotation (which tells the shard that no any-key waiter exists); any-key
/// operations need the lane, then the shard of each shard they look at
/// (or, without a waiter to queue, a listed shard alone: see
/// [`Shard::try_take_any`]). An adapter that locks the parts separately
/// must lock the lane before a shard. See the [`parts`](crate::parts)
/// module for the protocol.
///
/// # Examples
///
/// ```
/// use workpool_core::parts::{Lane, Shard};
/// let mut lane = Lane::new();
/// let mut shard = Shard::<&str>::new(0, &lane);
/// let mut ids = 1u64; // the next lease id
/// let hash = 7; // the key's hash, from the caller's hasher
/// shard.set(Some(&mut lane), hash, "a", 1, &mut ids).unwrap();
/// assert_eq!(lane.next_shard(), Some(0));
/// let lease = lane.try_take(&mut shard, &mut ids).unwrap();
/// assert_eq!(*lease.key(), "a");
/// ```
///
/// Laid out in this order (`repr(C)`): the queue's ends and the counters
/// every any-key wait or grant writes share one cache line, the waiter
/// slab's hot words the next (ARCHITECTURE, "The shard's cache lines").
#[repr(C)]
pub struct Lane {
    /// Any-key waiters, oldest first.
    pub(crate) any_queue: List,
    /// Any-key waiters whose outcome is decided and not yet reported.
    wake: List,
    /// Any-key waiters registered so far (and, with a limit, key waiters).
    next_arrival: u64,
    /// Units of the limit taken, counted while a limit is set: live
    /// leases over all keys, plus the budgets lent to shards.
    total: u64,
    /// Any-key waiters that queued, and that gave up.
    waited: u64,
    cancelled: u64,
    /// The pool-wide limit on live leases, if any.
    limit: Option<u64>,
    pub(crate) waiters: Waiters,
    identity: Identity,
    closed: bool,
    /// Shards that hold a budget (see [`Shard::lend_budget`]).
    pub(crate) budgets: usize,
    /// The listed shards: the rotation any-key grants take under the lane
    /// (each listed shard then rotates over its own ready ring).
    pub(crate) shards: Ring,
    /// The links of [`shards`](Self::shards), by shard index.
    pub(crate) shard_links: ShardLinks,
    /// The groups the limit holds back.
    pub(crate) blocked: Blocked,
}

impl Lane {
    /// Creates the lane of a new, open pool, with a fresh identity.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = workpool_core::parts::Lane::new();
    /// assert!(!lane.is_closed());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_identity(Identity::new())
    }

    pub(crate) fn with_identity(identity: Identity) -> Self {
        let id = identity.id();
        Self {
            identity,
            waiters: Waiters::new(id, NIL),
            any_queue: List::EMPTY,
            wake: List::EMPTY,
            shards: Ring::new(),
            shard_links: ShardLinks::default(),
            next_arrival: 0,
            closed: false,
            limit: None,
            total: 0,
            budgets: 0,
            blocked: Blocked::new(),
            waited: 0,
            cancelled: 0,
        }
    }

    pub(crate) fn pool_id(&self) -> PoolId {
        self.identity.id()
    }

    /// Records that a lease or waiter handle naming the pool went out.
    pub(crate) fn mark_named(&mut self) {
        self.identity.mark_named();
    }

    /// How many any-key waiters have arrived so far. A key waiter that
    /// arrives when this reads `n` is younger than the first `n` any-key
    /// waiters and older than the rest; [`Shard::enqueue_key`] takes it.
    /// An adapter that lets key waiters queue without the lane's lock
    /// publishes this after every [`enqueue`](Self::enqueue) (the value
    /// only grows).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// assert_eq!(lane.arrivals(), 0);
    /// let _w = lane.enqueue().unwrap();
    /// assert_eq!(lane.arrivals(), 1);
    /// ```
    #[inline]
    pub fn arrivals(&self) -> u64 {
        self.next_arrival
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// lane.close();
    /// assert!(lane.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// How many any-key waiters are waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let _w = lane.enqueue().unwrap();
    /// assert_eq!(lane.waiters(), 1);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.waiting
    }

    /// How many waiter slots the lane has: every any-key waiter's
    /// [`WaiterId::index`] is below it (see
    /// [`Pool::waiter_slots`](crate::Pool::waiter_slots)).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let w = lane.enqueue().unwrap();
    /// assert_eq!(lane.waiter_slots(), 1);
    /// lane.cancel(w).unwrap();
    /// assert_eq!(lane.waiter_slots(), 0);
    /// ```
    pub fn waiter_slots(&self) -> usize {
        self.waiters.len()
    }

    /// The shard an any-key grant would look at next (the listed shard
    /// under the lane's cursor), or `None` when no shard is listed (then no
    /// key has room for an any-key request). Lock that shard and call
    /// [`try_take`](Self::try_take) or [`try_grant`](Self::try_grant) with
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(workpool_core::parts::Lane::new().next_shard(), None);
    /// ```
    #[inline]
    pub fn next_shard(&self) -> Option<usize> {
        if self.closed || !self.newcomer_room(1) {
            return None;
        }
        self.shards.cursor().map(|shard| shard as usize)
    }

    /// What the lane did since it was made: its any-key waiters that queued
    /// and that gave up (grants are counted by the shards; see [`Stats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let _w = lane.enqueue().unwrap();
    /// assert_eq!(lane.stats().waited, 1);
    /// ```
    pub fn stats(&self) -> Stats {
        Stats {
            granted: 0,
            waited: self.waited,
            cancelled: self.cancelled,
            timed_out: 0,
        }
    }

    /// One step of an any-key grant: if a group of `shard` (which must be
    /// the one [`next_shard`](Self::next_shard) names) has room, a lease
    /// from the first such group from the shard's cursor on (the full ones
    /// before it leave the shard's ring), and both cursors move on (the
    /// shard's past the group, the lane's past the shard); otherwise the
    /// shard leaves the lane's rotation and this returns `None` (look at
    /// [`next_shard`] again). Unlisting a shard without room is what lets
    /// later key operations in it know that they must go through the lane.
    /// Takes nothing once closed.
    ///
    /// # Panics
    ///
    /// If `shard` is not the shard [`next_shard`](Self::next_shard) names.
    ///
    /// [`next_shard`]: Self::next_shard
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// assert!(lane.try_take(&mut shard, &mut ids).is_some());
    /// assert!(lane.try_take(&mut shard, &mut ids).is_none()); // full: unlinked
    /// assert_eq!(lane.next_shard(), None);
    /// ```
    #[inline]
    pub fn try_take<K: Clone, I: LeaseIds>(
        &mut self,
        shard: &mut Shard<K>,
        ids: &mut I,
    ) -> Option<Lease<K>> {
        let g = self.room_under_cursor(shard)?;
        let lease = shard.lease_from(g, ids);
        self.count_grant(1);
        if shard.advance_turn() {
            self.next_turn();
        }
        Some(lease)
    }

    /// [`try_take`](Self::try_take) for a waiter: registers an any-key
    /// waiter already granted from the group under the cursor (its
    /// [`claim`](Self::claim) returns the lease), or unlinks that group and
    /// returns `None`.
    ///
    /// # Panics
    ///
    /// If `shard` is not the shard [`next_shard`](Self::next_shard) names.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// use workpool_core::Claim;
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let w = lane.try_grant(&mut shard, &mut ids).unwrap();
    /// assert_eq!(lane.claim_shard(w), Ok(Some(0)));
    /// assert!(matches!(lane.claim(w, Some(&shard)), Ok(Claim::Granted(_))));
    /// ```
    pub fn try_grant<K, I: LeaseIds>(
        &mut self,
        shard: &mut Shard<K>,
        ids: &mut I,
    ) -> Option<WaiterId> {
        let g = self.room_under_cursor(shard)?;
        let grant = shard.grant(g, 1, ids);
        self.count_grant(1);
        if shard.advance_turn() {
            self.next_turn();
        }
        let order = self.bump_arrival();
        Some(self.waiters.insert(NIL, order, 1, State::Granted(grant)))
    }

    /// The group of `shard` an any-key grant takes from, if it has one;
    /// otherwise unlists the shard.
    fn room_under_cursor<K>(&mut self, shard: &mut Shard<K>) -> Option<u32> {
        if self.closed || !self.newcomer_room(1) {
            return None;
        }
        let s = self.shards.cursor()?;
        assert_eq!(s, shard.index(), "the lane's cursor is in another shard");
        // A group whose head waiter asks for more units than are free keeps
        // its room for that waiter (head-of-line): no newcomer takes it.
        match shard.room_in_turn(None) {
            Turn::Room(g) => Some(g),
            // The caller loops: the next shard's turn.
            Turn::Over => {
                self.next_turn();
                None
            }
            Turn::Empty => {
                shard.unlist(self);
                None
            }
        }
    }

    /// Moves the rotation over shards on, after the turn of the shard
    /// under its cursor ended.
    #[inline]
    fn next_turn(&mut self) {
        if let Some(shard) = self.shards.cursor() {
            self.shards.advance_past(&self.shard_links, shard);
        }
    }

    /// An arrival number for a new any-key waiter: odd, so that a key
    /// waiter that read the same count (stored even) is older.
    fn bump_arrival(&mut self) -> u64 {
        let order = 2 * self.next_arrival + 1;
        self.next_arrival += 1;
        order
    }

    /// Queues an any-key waiter. Call it only once no shard is listed
    /// ([`next_shard`](Self::next_shard) is `None`, after
    /// [`try_grant`](Self::try_grant) steps unlisted the shards without
    /// room): a waiter never queues while a key has room.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the lane is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::Claim;
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let w = lane.enqueue().unwrap();
    /// assert!(matches!(lane.claim::<&str>(w, None), Ok(Claim::Waiting)));
    /// ```
    pub fn enqueue(&mut self) -> Result<WaiterId, Closed> {
        if self.closed {
            return Err(Closed);
        }
        debug_assert!(
            self.shards.is_empty() || !self.newcomer_room(1),
            "an any-key waiter queued beside room"
        );
        let order = self.bump_arrival();
        self.waited += 1;
        let w = self.waiters.insert(NIL, order, 1, State::Waiting);
        self.waiters.push_back(&mut self.any_queue, w.index);
        Ok(w)
    }

    /// Grants the oldest any-key waiter `grant` (its room was counted).
    pub(crate) fn grant_head(&mut self, grant: Grant) {
        let index = self.any_queue.head;
        self.waiters.waiting -= 1;
        self.waiters.unlink(&mut self.any_queue, index);
        decide(
            &mut self.waiters,
            &mut self.wake,
            index,
            State::Granted(grant),
        );
    }

    /// The arrival order of the oldest any-key waiter, if one waits.
    #[inline]
    pub(crate) fn head_order(&self) -> Option<u64> {
        let head = self.any_queue.head;
        (head != NIL).then(|| self.waiters.slot(head).order())
    }

    /// The shard whose lock [`claim`](Self::claim) needs for `waiter`:
    /// `Some` once it was granted (the lease's key lives in that shard).
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` is not a registered any-key waiter of
    /// this lane.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let w = lane.enqueue().unwrap();
    /// assert_eq!(lane.claim_shard(w), Ok(None));
    /// ```
    pub fn claim_shard(&self, waiter: WaiterId) -> Result<Option<usize>, UnknownWaiter> {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        Ok(match w.state() {
            State::Granted(grant) => Some(grant.shard as usize),
            _ => None,
        })
    }

    /// Where an any-key waiter stands, as [`Pool::claim`](crate::Pool::claim)
    /// says; a granted one needs the shard [`claim_shard`](Self::claim_shard)
    /// named, for its key.
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` is not a registered any-key waiter of
    /// this lane.
    ///
    /// # Panics
    ///
    /// If the waiter was granted and `shard` is not the one named by
    /// [`claim_shard`](Self::claim_shard).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::Claim;
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let w = lane.enqueue().unwrap();
    /// lane.close();
    /// assert!(matches!(lane.claim::<&str>(w, None), Ok(Claim::Closed)));
    /// ```
    pub fn claim<K: Clone>(
        &mut self,
        waiter: WaiterId,
        shard: Option<&Shard<K>>,
    ) -> Result<Claim<K>, UnknownWaiter> {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        let key = match w.state() {
            State::Waiting => return Ok(Claim::Waiting),
            State::Granted(grant) => {
                let shard = shard
                    .filter(|s| s.index() == grant.shard)
                    .expect("the claim of a granted waiter needs its grant's shard");
                Some(shard.groups.at(grant.group).key.clone())
            }
            _ => None,
        };
        Ok(match (self.finish(waiter.index), key) {
            (State::Granted(grant), Some(key)) => Claim::Granted(Lease {
                pool: self.pool_id(),
                grant,
                key,
            }),
            _ => Claim::Closed,
        })
    }

    /// Removes an any-key waiter that gave up. If it had been granted, the
    /// grant comes back to be given back to its shard with
    /// [`Shard::give_back`].
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` is not a registered any-key waiter of
    /// this lane; nothing changes then.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let w = lane.enqueue().unwrap();
    /// assert!(lane.cancel(w).unwrap().is_none());
    /// assert!(lane.cancel(w).is_err());
    /// ```
    pub fn cancel(&mut self, waiter: WaiterId) -> Result<Option<Returned>, UnknownWaiter> {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        if w.is_waiting() {
            self.waiters.waiting -= 1;
            self.waiters.unlink(&mut self.any_queue, waiter.index);
            self.waiters.remove(waiter.index);
            self.cancelled += 1;
            return Ok(None);
        }
        Ok(match self.finish(waiter.index) {
            State::Granted(grant) => {
                self.cancelled += 1;
                Some(Returned(grant))
            }
            _ => None,
        })
    }

    /// Closes the lane: every waiting any-key waiter is told [`Closed`] and
    /// later any-key requests fail. Close every shard too (lane first).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lane = workpool_core::parts::Lane::new();
    /// let w = lane.enqueue().unwrap();
    /// lane.close();
    /// assert_eq!(lane.poll_wake(), Some(w));
    /// ```
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            close_queue(&mut self.waiters, &mut self.wake, &mut self.any_queue);
        }
    }

    /// True when [`poll_wake`](Self::poll_wake) has a waiter to report.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!workpool_core::parts::Lane::new().has_wakes());
    /// ```
    #[inline]
    pub fn has_wakes(&self) -> bool {
        self.wake != List::EMPTY
    }

    /// The next any-key waiter whose outcome was decided, as
    /// [`Pool::poll_wake`](crate::Pool::poll_wake) says.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(workpool_core::parts::Lane::new().poll_wake(), None);
    /// ```
    #[must_use = "every waiter it names must be woken"]
    #[inline]
    pub fn poll_wake(&mut self) -> Option<WaiterId> {
        self.waiters.pop_wake(&mut self.wake)
    }

    /// Removes a decided waiter and returns its state.
    fn finish(&mut self, index: u32) -> State {
        self.waiters.finish(&mut self.wake, index)
    }

    #[cfg(test)]
    pub(crate) fn wake_list(&self) -> List {
        self.wake
    }
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("waiters", &self.waiters.waiting)
            .field("listed", &self.shards.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// A grant an any-key waiter had when it was cancelled: give it back to
/// the shard named by [`shard`](Self::shard) with [`Shard::give_back`].
#[must_use = "the grant holds capacity until it is given back"]
#[derive(Debug)]
pub struct Returned(pub(crate) Grant);

impl Returned {
    /// The shard the grant is from.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let w = lane.try_grant(&mut shard, &mut ids).unwrap();
    /// let returned = lane.cancel(w).unwrap().unwrap();
    /// assert_eq!(returned.shard(), 0);
    /// shard.give_back(&mut lane, returned, &mut ids);
    /// ```
    pub fn shard(&self) -> usize {
        self.0.shard as usize
    }
}
