//! A shard: the keyed part of a pool.

use alloc::borrow::ToOwned;
use alloc::vec::Vec;
use core::fmt;

use hashbrown::{Equivalent, HashTable};

use crate::bands::MIN_SLOTS;
use crate::error::{ReleaseError, TryAcquireError, UnknownWaiter};
use crate::groups::{short_hash, table_hash, Group, Groups, ShortHash};
use crate::identity::PoolId;
use crate::lane::{Lane, Returned};
use crate::lease::{Claim, Counts, Grant, Lease, Stats, WaiterId};
use crate::parts::{LeaseIds, NeedsLane};
use crate::ring::Ring;
use crate::waiters::{List, State, Waiters, NIL};

mod any;
mod budget;
mod entering;
mod handoff;
mod helpers;
mod leaving;
mod lending;
mod queries;

pub use entering::Entered;
pub(crate) use helpers::Turn;
pub use lending::{Lent, Minter};

/// The keyed part of a pool: the groups of the keys that hash to it, their
/// table and their key waiters.
///
/// Every operation takes the key's full hash (from the pool's hasher) next
/// to the key, so that an adapter hashes once to pick the shard and the
/// shard does not hash again.
///
/// The shard keeps its own *ready ring*: the groups any-key grants rotate
/// over (every group with room, and full ones until the cursor reaches
/// them). Linking and unlinking a group need only the shard; the shard
/// itself is *listed* in the lane's rotation while it may have room for
/// any-key requests, and listing and unlisting need both.
///
/// Operations that may give a group room or serve an any-key waiter take
/// `lane: Option<&mut Lane>`. Called without the lane, they either finish
/// in the shard alone (the common case: the shard is listed, which proves
/// that no any-key waiter exists) or change nothing and return
/// [`NeedsLane`]; call again with the lane then. Both calls decide exactly
/// as one call with the lane would.
///
/// # Examples
///
/// ```
/// use workpool_core::parts::{Lane, NeedsLane, Shard};
/// let mut lane = Lane::new();
/// let mut shard = Shard::new(0, &lane);
/// let mut ids = 1u64;
/// // The first key lists the shard, which needs the lane.
/// let Err(NeedsLane(key)) = shard.set(None, 1, "a", 2, &mut ids) else { panic!() };
/// shard.set(Some(&mut lane), 1, key, 2, &mut ids).unwrap();
/// // From now on "a" needs only its shard.
/// let lease = shard.try_acquire_key(None, 1, &"a", &mut ids).unwrap().unwrap();
/// assert_eq!(shard.release(None, lease, &mut ids).ok().unwrap().unwrap(), "a");
/// ```
///
/// Laid out in this order (`repr(C)`), by how the lock's holders use the
/// fields: the counters every grant, wait and release writes first, on one
/// cache line; the waiter slab's hot words next; then what is read by
/// every operation and written almost never (ARCHITECTURE, "The shard's
/// cache lines").
#[repr(C)]
pub struct Shard<K> {
    /// Live leases over the shard's keys.
    total: u64,
    /// Key waiters whose outcome is decided and not yet reported.
    wake: List,
    /// Totals: grants from this shard's keys, and its key waiters'.
    stats: Stats,
    /// The ready ring: the shard's groups that any-key grants rotate over
    /// (every group with room, and full ones until the cursor reaches them).
    pub(crate) ring: Ring,
    /// Key waiters.
    pub(crate) waiters: Waiters,
    index: u32,
    /// True while the shard is linked in the lane's ring of listed shards.
    /// Changed only with the lane; while it is set and no limit is, no
    /// any-key waiter waits (see [`parts`](crate::parts)).
    pub(crate) listed: bool,
    /// True when the last any-key attempt on this shard alone
    /// ([`try_take_any`](Self::try_take_any)) ended the shard's turn (see
    /// [`turn_ended`](Self::turn_ended)).
    turn_ended: bool,
    closed: bool,
    /// True while the pool has a limit: then every operation that grants or
    /// gives back needs the lane, which counts the pool's leases, unless
    /// the shard holds a `budget`.
    limited: bool,
    pool: PoolId,
    /// Group slots, found by the key's cached hash.
    table: HashTable<u32>,
    /// Room of the pool-wide limit the lane lent this shard (see
    /// [`lend_budget`](Self::lend_budget)): counted by the lane as taken,
    /// so that the shard's key grants and releases that nobody waits for
    /// move units between it and the shard's leases without the lane.
    budget: Option<u64>,
    pub(crate) groups: Groups<K>,
    /// `blocked_of[g]`: group `g`'s node in the lane's heap of groups the
    /// pool-wide limit holds back (see [`crate::blocked`]), or `NIL`; no
    /// longer than the highest such group needs, so empty without a limit.
    pub(crate) blocked_of: Vec<u32>,
}

impl<K> Shard<K> {
    /// Creates shard number `index` of the pool whose lane is `lane`.
    ///
    /// # Panics
    ///
    /// If `index` is `u32::MAX` or more.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let lane = Lane::new();
    /// let shard = Shard::<u32>::new(3, &lane);
    /// assert_eq!(shard.index(), 3);
    /// ```
    #[must_use]
    pub fn new(index: usize, lane: &Lane) -> Self {
        let index = u32::try_from(index)
            .ok()
            .filter(|&i| i != NIL)
            .expect("shard index out of range");
        let pool = lane.pool_id();
        Self {
            index,
            pool,
            table: HashTable::new(),
            groups: Groups::new(),
            ring: Ring::new(),
            listed: false,
            blocked_of: Vec::new(),
            turn_ended: false,
            waiters: Waiters::new(pool, index),
            wake: List::EMPTY,
            closed: false,
            total: 0,
            budget: None,
            limited: false,
            stats: Stats {
                granted: 0,
                waited: 0,
                cancelled: 0,
                timed_out: 0,
            },
        }
    }

    /// The shard's number.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).index(), 0);
    /// ```
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    // ----------------------------------------------------------------- inputs

    /// Sets the target of the key, as [`Pool::set`](crate::Pool::set) does.
    ///
    /// # Errors
    ///
    /// [`NeedsLane`] with the key, changing nothing, when called without the
    /// lane and the change needs it: a new key, or raising a key, while the
    /// shard is not listed (or a limit is set).
    ///
    /// # Panics
    ///
    /// If a new key would make the shard track more than `u32::MAX - 1`
    /// keys, or if `K`'s `Eq` panics (then the shard is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// assert_eq!(shard.set(Some(&mut lane), 1, "a", 2, &mut ids), Ok(None));
    /// assert_eq!(shard.set(None, 1, "a", 3, &mut ids), Ok(Some("a")));
    /// ```
    pub fn set<I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: K,
        target: u64,
        ids: &mut I,
    ) -> Result<Option<K>, NeedsLane<K>>
    where
        K: Eq,
    {
        let mut key = Some(key);
        match self.set_in(lane, hash, &mut key, target, ids) {
            Ok(()) => Ok(key),
            Err(NeedsLane(())) => Err(NeedsLane(
                key.expect("a call that needs the lane keeps the key"),
            )),
        }
    }

    /// [`set`](Self::set) with the key in the caller's `key`: it is taken
    /// only when the shard stores it, and stays there otherwise, also when
    /// `K`'s `Eq` panics. So a caller that holds a lock can declare `key`
    /// before its guard and have the key dropped after unlocking on every
    /// path, unwinding included.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set), with the key left in `key`.
    ///
    /// # Panics
    ///
    /// If `key` is `None`, and as [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let mut key = Some("a");
    /// shard.set_in(Some(&mut lane), 1, &mut key, 2, &mut ids).unwrap();
    /// assert_eq!(key, None, "stored");
    /// let mut key = Some("a");
    /// shard.set_in(None, 1, &mut key, 3, &mut ids).unwrap();
    /// assert_eq!(key, Some("a"), "an equal key was tracked already");
    /// ```
    pub fn set_in<I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: &mut Option<K>,
        target: u64,
        ids: &mut I,
    ) -> Result<(), NeedsLane<()>>
    where
        K: Eq,
    {
        if lane.is_none() && self.limited {
            return Err(NeedsLane(()));
        }
        let hash = short_hash(hash);
        let found = self.find_hashed(hash, key.as_ref().expect("set_in needs a key"));
        let g = match found {
            Some(g) => {
                if lane.is_none() && target > self.groups.at(g).target && !self.is_listed() {
                    return Err(NeedsLane(()));
                }
                g
            }
            None if target == 0 => return Ok(()),
            None if lane.is_none() && !self.is_listed() => return Err(NeedsLane(())),
            None => {
                let key = key.take().expect("checked above");
                self.insert_group(key, hash)
            }
        };
        let group = self.groups.at_mut(g);
        let old = core::mem::replace(&mut group.target, target);
        if target > old {
            self.serve(lane, g, ids);
        } else {
            let mut lane = lane;
            if let Some(lane) = lane.as_deref_mut() {
                self.rebalance(lane, g);
            }
            self.forget_if_idle(lane, g);
        }
        Ok(())
    }

    /// Takes a lease from the key if it has room, as
    /// [`Pool::try_acquire_key`](crate::Pool::try_acquire_key) does. Needs
    /// the lane only while the pool has a limit: a key with room is linked,
    /// so its shard is listed and no any-key waiter could use the room.
    ///
    /// # Errors
    ///
    /// [`NeedsLane`], changing nothing, without the lane while the pool has
    /// a limit. Inside: [`TryAcquireError::Closed`] once the shard is
    /// closed, [`TryAcquireError::NoCapacity`] when the key (or, with a
    /// limit, the pool) has no room.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let lease = shard.try_acquire_key(None, 1, &"a", &mut ids).unwrap();
    /// assert_eq!(lease.unwrap().id(), 1);
    /// assert!(shard.try_acquire_key(None, 1, &"a", &mut ids).unwrap().is_err());
    /// ```
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    pub fn try_acquire_key<Q, I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
        ids: &mut I,
    ) -> Result<Result<Lease<K>, TryAcquireError>, NeedsLane<()>>
    where
        K: Clone,
        Q: ?Sized + Equivalent<K>,
    {
        self.try_acquire_units(lane, hash, key, 1, ids)
    }

    /// Takes a lease of `units` units of the key if they fit now, as
    /// [`Pool::try_acquire_key_many`](crate::Pool::try_acquire_key_many)
    /// does. A lease of 0 units needs no lane and is granted even while
    /// others wait (unless the shard is closed).
    ///
    /// # Errors
    ///
    /// As [`try_acquire_key`](Self::try_acquire_key);
    /// [`TryAcquireError::NoCapacity`] also for more than
    /// [`Lease::MAX_UNITS`] units.
    ///
    /// # Panics
    ///
    /// If `K`'s `Eq` or `Clone`, or `Q`'s `ToOwned`, panics (then the
    /// shard is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 3, &mut ids).unwrap();
    /// let lease = shard.try_acquire_key_many(None, 1, &"a", 3, &mut ids).unwrap().unwrap();
    /// assert_eq!(lease.units(), 3);
    /// assert!(shard.try_acquire_key_many(None, 1, &"a", 1, &mut ids).unwrap().is_err());
    /// assert_eq!(shard.try_acquire_key_many(None, 1, &"a", 0, &mut ids).unwrap().unwrap().units(), 0);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn try_acquire_key_many<Q, I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
        units: u64,
        ids: &mut I,
    ) -> Result<Result<Lease<K>, TryAcquireError>, NeedsLane<()>>
    where
        K: Clone,
        Q: ?Sized + Equivalent<K> + ToOwned<Owned = K>,
    {
        if units == 0 {
            return Ok(self.lease_of_nothing(key, ids));
        }
        self.try_acquire_units(lane, hash, key, units, ids)
    }

    /// [`try_acquire_key_many`](Self::try_acquire_key_many) of at least
    /// one unit.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn try_acquire_units<Q, I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
        units: u64,
        ids: &mut I,
    ) -> Result<Result<Lease<K>, TryAcquireError>, NeedsLane<()>>
    where
        K: Clone,
        Q: ?Sized + Equivalent<K>,
    {
        // Without the lane under a limit, only a budget may grant.
        if lane.is_none() && self.limited && self.budget.is_none() {
            return Err(NeedsLane(()));
        }
        if self.closed {
            return Ok(Err(TryAcquireError::Closed));
        }
        if units > Lease::<K>::MAX_UNITS {
            return Ok(Err(TryAcquireError::NoCapacity));
        }
        if let (None, true, Some(budget)) = (&lane, self.limited, self.budget) {
            return self.try_from_budget(hash, key, units, budget, ids);
        }
        let pool_room = lane.as_ref().is_none_or(|l| l.newcomer_room(units));
        Ok(match self.find(hash, key) {
            Some(g) if pool_room && self.has_room_for_newcomer(g, units) => {
                let lease = self.lease_from_units(g, units, ids);
                if let Some(lane) = lane {
                    lane.count_grant(units);
                }
                Ok(lease)
            }
            _ => Err(TryAcquireError::NoCapacity),
        })
    }

    /// A lease of no units: it counts nowhere and names no group, so it
    /// needs nothing but an open shard and a fresh id.
    fn lease_of_nothing<Q, I: LeaseIds>(
        &mut self,
        key: &Q,
        ids: &mut I,
    ) -> Result<Lease<K>, TryAcquireError>
    where
        Q: ?Sized + ToOwned<Owned = K>,
    {
        if self.closed {
            return Err(TryAcquireError::Closed);
        }
        let key = key.to_owned();
        self.stats.granted += 1;
        Ok(Lease {
            pool: self.pool,
            grant: Grant {
                shard: self.index,
                group: NIL,
                generation: 0,
                units: 0,
                id: ids.next_id(),
            },
            key,
        })
    }

    /// Splits `units` units off `lease` into a new lease of the same key,
    /// as [`Pool::split`](crate::Pool::split) does; the new lease comes
    /// without its key ([`Lease::with_key`] attaches it). Nothing is freed
    /// and no count changes; the new lease gets a fresh id from `ids`.
    ///
    /// Returns `None`, changing nothing, unless `0 < units <
    /// lease.units()` and the lease is live in this shard.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 3, &mut ids).unwrap();
    /// let mut lease = shard.try_acquire_key_many(None, 1, &"a", 3, &mut ids).unwrap().unwrap();
    /// let part = shard.split(&mut lease, 1, &mut ids).unwrap().with_key("a");
    /// assert_eq!((lease.units(), part.units()), (2, 1));
    /// assert!(part.id() > lease.id());
    /// ```
    pub fn split<I: LeaseIds>(
        &mut self,
        lease: &mut Lease<K>,
        units: u64,
        ids: &mut I,
    ) -> Option<Lease<()>> {
        let grant = lease.grant;
        if lease.pool != self.pool
            || grant.shard != self.index
            || units == 0
            || units >= grant.units()
        {
            return None;
        }
        self.groups.get_checked(grant.group, grant.generation)?;
        if !ids.issued(grant.id) {
            return None;
        }
        lease.grant.units -= units as u32;
        self.stats.granted += 1;
        Some(Lease {
            pool: self.pool,
            grant: Grant {
                units: units as u32,
                id: ids.next_id(),
                ..grant
            },
            key: (),
        })
    }

    /// Where a key waiter stands, as [`Pool::claim`](crate::Pool::claim)
    /// says.
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` is not a registered waiter of this
    /// shard.
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
    /// let w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids).unwrap().unwrap();
    /// assert!(matches!(shard.claim(w), Ok(Claim::Granted(_))));
    /// assert!(shard.claim(w).is_err());
    /// ```
    pub fn claim(&mut self, waiter: WaiterId) -> Result<Claim<K>, UnknownWaiter>
    where
        K: Clone,
    {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        let key = match &w.state() {
            State::Waiting => return Ok(Claim::Waiting),
            // Clone before removing: if `K::clone` panics the waiter keeps
            // its grant, and cancelling it later passes the grant on.
            State::Granted(grant) => Some(self.groups.at(grant.group).key.clone()),
            _ => None,
        };
        Ok(match (self.finish(waiter.index), key) {
            (State::Granted(grant), Some(key)) => Claim::Granted(Lease {
                pool: self.pool,
                grant,
                key,
            }),
            _ => Claim::Closed,
        })
    }
}

impl<K> fmt::Debug for Shard<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("index", &self.index)
            .field("keys", &self.groups.len())
            .field("waiters", &self.waiters.waiting)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// The table never shrinks below this many buckets.
pub(crate) const MIN_BUCKETS: usize = 32;

/// Records a waiter's outcome and queues it on `wake` for `poll_wake`.
#[inline]
pub(crate) fn decide(waiters: &mut Waiters, wake: &mut List, index: u32, state: State) {
    let w = waiters.slot_mut(index);
    w.set_state(state);
    w.set_in_wake(true);
    waiters.push_back(wake, index);
}

/// Tells every waiter of `queue` that it was closed, emptying it.
pub(crate) fn close_queue(waiters: &mut Waiters, wake: &mut List, queue: &mut List) {
    while let Some(index) = waiters.pop_front(queue) {
        waiters.waiting -= 1;
        decide(waiters, wake, index, State::Closed);
    }
}

/// The iterator returned by [`Pool::iter`](crate::Pool::iter) and
/// [`Shard::iter`]: every tracked key with its counts.
pub struct Iter<'a, K> {
    /// The live keys' slots.
    table: hashbrown::hash_table::Iter<'a, u32>,
    groups: &'a Groups<K>,
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = (&'a K, Counts);

    fn next(&mut self) -> Option<Self::Item> {
        self.table.next().map(|&g| {
            let Group {
                key,
                target,
                active,
                ..
            } = self.groups.at(g);
            (
                key,
                Counts {
                    target: *target,
                    active: *active,
                },
            )
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.table.size_hint()
    }
}

impl<K> ExactSizeIterator for Iter<'_, K> {}

impl<K> fmt::Debug for Iter<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    /// ARCHITECTURE, "The shard's cache lines": what every grant, wait and
    /// release writes fills the first 64 bytes, the waiter slab starts the
    /// next line, and what is read by all and written almost never comes
    /// after it.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_written_fields_come_first() {
        type S = Shard<u64>;
        let ends = [
            offset_of!(S, total) + size_of::<u64>(),
            offset_of!(S, wake) + size_of::<List>(),
            offset_of!(S, stats) + size_of::<Stats>(),
            offset_of!(S, ring) + size_of::<Ring>(),
        ];
        assert!(ends.iter().all(|&end| end <= 64), "{ends:?}");
        assert_eq!(offset_of!(S, waiters), 64);
        for read_mostly in [
            offset_of!(S, index),
            offset_of!(S, pool),
            offset_of!(S, table),
        ] {
            assert!(read_mostly >= 64 + size_of::<Waiters>());
        }
    }
}
