//! A shard: the keyed part of a pool.

use alloc::borrow::ToOwned;
use core::fmt;

use hashbrown::{Equivalent, HashTable};

use crate::bands::MIN_SLOTS;
use crate::error::{Closed, ReleaseError, TryAcquireError, UnknownWaiter};
use crate::groups::{short_hash, table_hash, Group, Groups, ShortHash};
use crate::identity::PoolId;
use crate::lane::{Lane, Returned};
use crate::lease::{Claim, Counts, Grant, Lease, Stats, WaiterId};
use crate::parts::{LeaseIds, NeedsLane};
use crate::waiters::{List, State, Waiters, NIL};

/// The keyed part of a pool: the groups of the keys that hash to it, their
/// table and their key waiters.
///
/// Every operation takes the key's full hash (from the pool's hasher) next
/// to the key, so that an adapter hashes once to pick the shard and the
/// shard does not hash again.
///
/// Operations that may change the ready ring or serve an any-key waiter
/// take `lane: Option<&mut Lane>`. Called without the lane, they either
/// finish in the shard alone (the common case: the key's group is linked in
/// the ring, which proves that no any-key waiter exists) or change nothing
/// and return [`NeedsLane`]; call again with the lane then. Both calls
/// decide exactly as one call with the lane would.
///
/// # Examples
///
/// ```
/// use workpool_core::parts::{Lane, NeedsLane, Shard};
/// let mut lane = Lane::new();
/// let mut shard = Shard::new(0, &lane);
/// let mut ids = 1u64;
/// // A new key joins the ring, which needs the lane.
/// let Err(NeedsLane(key)) = shard.set(None, 1, "a", 2, &mut ids) else { panic!() };
/// shard.set(Some(&mut lane), 1, key, 2, &mut ids).unwrap();
/// // From now on "a" needs only its shard.
/// let lease = shard.try_acquire_key(None, 1, &"a", &mut ids).unwrap().unwrap();
/// assert_eq!(shard.release(None, lease, &mut ids).ok().unwrap().unwrap(), "a");
/// ```
pub struct Shard<K> {
    index: u32,
    pool: PoolId,
    /// Group slots, found by the key's cached hash.
    table: HashTable<u32>,
    pub(crate) groups: Groups<K>,
    /// Key waiters.
    pub(crate) waiters: Waiters,
    /// Key waiters whose outcome is decided and not yet reported.
    wake: List,
    closed: bool,
    /// Live leases over the shard's keys.
    total: u64,
    /// True while the pool has a limit: then every operation that grants or
    /// gives back needs the lane, which counts the pool's leases.
    limited: bool,
    /// Totals: grants from this shard's keys, and its key waiters'.
    stats: Stats,
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
            waiters: Waiters::new(pool, index),
            wake: List::EMPTY,
            closed: false,
            total: 0,
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

    // ---------------------------------------------------------------- queries

    /// The target and active count of the key with full hash `hash`.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let shard = Shard::<&str>::new(0, &Lane::new());
    /// assert_eq!(shard.counts(1, &"a").target, 0);
    /// ```
    #[inline]
    pub fn counts<Q>(&self, hash: u64, key: &Q) -> Counts
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find(hash, key).map_or_else(Counts::default, |g| {
            let g = self.groups.at(g);
            Counts {
                target: g.target,
                active: g.active,
            }
        })
    }

    /// How many waiters wait for the key with full hash `hash`.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let _w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids).unwrap().unwrap();
    /// assert_eq!(shard.waiting(1, &"a"), 1);
    /// ```
    pub fn waiting<Q>(&self, hash: u64, key: &Q) -> usize
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find(hash, key)
            .map_or(0, |g| self.groups.at(g).waiting as usize)
    }

    /// Live leases over the shard's keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).active(), 0);
    /// ```
    pub fn active(&self) -> u64 {
        self.total
    }

    /// What the shard did since it was made: grants from its keys, and its
    /// key waiters that queued and that gave up (see [`Stats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).stats().granted, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether `lease` is surplus (see
    /// [`Pool::is_surplus`](crate::Pool::is_surplus)): its key has more live
    /// leases than its target, or the pool more than its limit.
    ///
    /// # Errors
    ///
    /// [`NeedsLane`] without the lane while a limit is set and the key
    /// itself is not over its target (the lane counts the pool's leases).
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
    /// assert_eq!(shard.is_surplus(None, &lease), Ok(false));
    /// shard.set(None, 1, "a", 0, &mut ids).unwrap();
    /// assert_eq!(shard.is_surplus(None, &lease), Ok(true));
    /// ```
    pub fn is_surplus(&self, lane: Option<&Lane>, lease: &Lease<K>) -> Result<bool, NeedsLane<()>> {
        let Grant {
            shard,
            group,
            generation,
            ..
        } = lease.grant;
        if lease.pool != self.pool || shard != self.index {
            return Ok(false);
        }
        let Some(g) = self.groups.get_checked(group, generation) else {
            return Ok(false);
        };
        if g.active > g.target {
            return Ok(true);
        }
        match lane {
            Some(lane) => Ok(lane.over_limit()),
            None if self.limited => Err(NeedsLane(())),
            None => Ok(false),
        }
    }

    /// The slot of the group of the key with full hash `hash`, if the shard
    /// tracks it: an index below the shard's group slots, stable while the
    /// key is tracked, for adapters that keep per-key data beside the shard
    /// (as [`Lease::slot`] names a lease's).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// assert_eq!(shard.slot(1, &"a"), Some(0));
    /// assert_eq!(shard.slot(2, &"b"), None);
    /// ```
    pub fn slot<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find(hash, key).map(|g| g as usize)
    }

    /// The counts of the group in `slot`, if a tracked key holds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// assert_eq!(shard.slot_counts(0).map(|c| c.target), Some(1));
    /// ```
    pub fn slot_counts(&self, slot: usize) -> Option<Counts> {
        let g = self.groups.get(u32::try_from(slot).ok()?)?;
        (!g.is_idle()).then_some(Counts {
            target: g.target,
            active: g.active,
        })
    }

    /// How many key waiters of this shard are waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.waiting
    }

    /// How many keys the shard tracks.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when the shard tracks no key.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert!(Shard::<u8>::new(0, &Lane::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.groups.len() == 0
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::<u8>::new(0, &lane);
    /// shard.close(&mut lane);
    /// assert!(shard.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Every key the shard tracks with its counts, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).iter().count(), 0);
    /// ```
    pub fn iter(&self) -> Iter<'_, K> {
        Iter {
            table: self.table.iter(),
            groups: &self.groups,
        }
    }

    /// Every key the shard tracks with its counts and how many waiters wait
    /// for it, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let _w = shard.enqueue_key(None, 1, &"a", 0, &mut ids).unwrap().unwrap();
    /// let all: Vec<_> = shard.entries().map(|(k, c, w)| (*k, c.target, w)).collect();
    /// assert_eq!(all, [("a", 0, 1)]);
    /// ```
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&K, Counts, usize)> + '_ {
        let groups = &self.groups;
        self.table.iter().map(move |&g| {
            let group = groups.at(g);
            (
                &group.key,
                Counts {
                    target: group.target,
                    active: group.active,
                },
                group.waiting as usize,
            )
        })
    }

    /// How many key-waiter slots the shard has (see
    /// [`Pool::waiter_slots`](crate::Pool::waiter_slots)).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).waiter_slots(), 0);
    /// ```
    pub fn waiter_slots(&self) -> usize {
        self.waiters.len()
    }

    /// True when [`poll_wake`](Self::poll_wake) has a waiter to report.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert!(!Shard::<u8>::new(0, &Lane::new()).has_wakes());
    /// ```
    #[inline]
    pub fn has_wakes(&self) -> bool {
        self.wake != List::EMPTY
    }

    /// True when [`poll_forgotten`](Self::poll_forgotten) has a key.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert!(!Shard::<u8>::new(0, &Lane::new()).has_forgotten());
    /// ```
    #[inline]
    pub fn has_forgotten(&self) -> bool {
        self.groups.has_retired()
    }

    /// The next key waiter whose outcome was decided, as
    /// [`Pool::poll_wake`](crate::Pool::poll_wake) says.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).poll_wake(), None);
    /// ```
    #[must_use = "every waiter it names must be woken"]
    #[inline]
    pub fn poll_wake(&mut self) -> Option<WaiterId> {
        if self.wake == List::EMPTY {
            return None;
        }
        let index = self.waiters.pop_front(&mut self.wake)?;
        self.waiters.slot_mut(index).in_wake = false;
        Some(self.waiters.id(index))
    }

    /// The key of the next group the shard forgot, as
    /// [`Pool::poll_forgotten`](crate::Pool::poll_forgotten) says.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).poll_forgotten(), None);
    /// ```
    #[must_use = "the key is dropped where the returned value is"]
    #[inline]
    pub fn poll_forgotten(&mut self) -> Option<K> {
        self.groups.reap()
    }

    // ----------------------------------------------------------------- inputs

    /// Sets the target of the key, as [`Pool::set`](crate::Pool::set) does.
    ///
    /// # Errors
    ///
    /// [`NeedsLane`] with the key, changing nothing, when called without the
    /// lane and the change needs it: a new key, raising a key that is not
    /// linked in the ring, or forgetting one that is.
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
                if lane.is_none() {
                    let group = self.groups.at(g);
                    let needs_lane = if target > group.target {
                        !group.in_ring()
                    } else {
                        group.in_ring() && target == 0 && group.active == 0 && group.waiting == 0
                    };
                    if needs_lane {
                        return Err(NeedsLane(()));
                    }
                }
                g
            }
            None if target == 0 => return Ok(()),
            None if lane.is_none() => return Err(NeedsLane(())),
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
    /// so no any-key waiter could use the room.
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
        if lane.is_none() && self.limited {
            return Err(NeedsLane(()));
        }
        if self.closed {
            return Ok(Err(TryAcquireError::Closed));
        }
        let pool_room = lane.as_ref().is_none_or(|l| l.pool_room());
        Ok(match self.find(hash, key) {
            Some(g) if pool_room && self.has_room_for_newcomer(g) => {
                let lease = self.lease_from(g, ids);
                if let Some(lane) = lane {
                    lane.count_grant();
                }
                Ok(lease)
            }
            _ => Err(TryAcquireError::NoCapacity),
        })
    }

    /// Registers a waiter for the key, as
    /// [`Pool::enqueue_key`](crate::Pool::enqueue_key) does. `arrivals` is
    /// the lane's [`arrivals`](Lane::arrivals) count as the waiter arrives
    /// (read without the lane's lock if need be: any value the count had
    /// since the waiter started to arrive will do).
    ///
    /// # Errors
    ///
    /// [`NeedsLane`], changing nothing, without the lane while the pool has
    /// a limit. Inside: [`Closed`] once the shard is closed.
    ///
    /// # Panics
    ///
    /// If `K`'s `Eq` panics (then the shard is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// use workpool_core::Claim;
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids);
    /// let w = w.unwrap().unwrap();
    /// assert!(matches!(shard.claim(w), Ok(Claim::Waiting)));
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn enqueue_key<Q, I: LeaseIds>(
        &mut self,
        mut lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
        arrivals: u64,
        ids: &mut I,
    ) -> Result<Result<WaiterId, Closed>, NeedsLane<()>>
    where
        Q: ?Sized + Equivalent<K> + ToOwned<Owned = K>,
    {
        if lane.is_none() && self.limited {
            return Err(NeedsLane(()));
        }
        if self.closed {
            return Ok(Err(Closed));
        }
        let hash = short_hash(hash);
        let g = match self.find_hashed(hash, key) {
            Some(g) => g,
            None => self.insert_group(key.to_owned(), hash),
        };
        // Even, so that it is older than the any-key waiter that takes the
        // same count (stored odd). With a limit, waiters of different keys
        // compete, so each takes a count of its own from the lane.
        let order = match lane.as_deref_mut() {
            Some(lane) if lane.limit().is_some() => lane.bump_key_arrival(),
            _ => 2 * arrivals,
        };
        let pool_room = lane.as_ref().is_none_or(|l| l.pool_room());
        Ok(Ok(if pool_room && self.has_room_for_newcomer(g) {
            let grant = self.grant(g, ids);
            if let Some(lane) = lane {
                lane.count_grant();
            }
            self.waiters.insert(g, order, State::Granted(grant))
        } else {
            self.stats.waited += 1;
            let w = self.waiters.insert(g, order, State::Waiting);
            let group = self.groups.at_mut(g);
            let mut queue = group.queue;
            group.waiting += 1;
            self.waiters.push_back(&mut queue, w.index);
            self.groups.at_mut(g).queue = queue;
            if let Some(lane) = lane {
                self.rebalance(lane, g);
            }
            w
        }))
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
            if lane.is_none() {
                let group = self.groups.at(g);
                if group.in_ring() && group.target == 0 && group.active == 0 && group.waiting == 1 {
                    return Ok(Err(NeedsLane(())));
                }
            }
            self.unlink_waiting(index, g);
            self.waiters.remove(index);
            self.stats.cancelled += 1;
            if let Some(lane) = lane.as_deref_mut() {
                self.rebalance(lane, g);
            }
            self.forget_if_idle(lane, g);
        } else if let State::Granted(grant) = w.state() {
            if lane.is_none() && self.give_back_needs_lane(grant.group) {
                return Ok(Err(NeedsLane(())));
            }
            self.finish(index);
            // The grant reached nobody: it was counted at the hand-off.
            self.stats.granted -= 1;
            self.stats.cancelled += 1;
            self.give_back_group(lane, grant.group, ids);
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
    /// called without the lane and the release needs it: the key's group is
    /// not linked in the ring (an any-key waiter may be older than the key's
    /// waiters), or the release forgets a linked group. The inner `Err` is
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
    #[inline]
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
            id,
        } = lease.grant;
        let live = shard == self.index
            && matches!(self.groups.get_checked(group, generation),
                Some(g) if g.active > 0 && ids.issued(id));
        if !live {
            return Ok(Err(ReleaseError::Stale(lease)));
        }
        if lane.is_none() && (self.limited || self.give_back_needs_lane(group)) {
            return Err(NeedsLane(lease));
        }
        self.give_back_group(lane, group, ids);
        Ok(Ok(lease.key))
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
        self.give_back_group(Some(lane), grant.group, ids);
    }

    /// Closes the shard: every waiting key waiter is told [`Closed`] and
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
            waiters,
            wake,
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
            let blocked = core::mem::replace(&mut group.blocked, NIL);
            if blocked != NIL {
                lane.blocked.remove(blocked);
            }
            if !group.is_idle() {
                return true;
            }
            // Forgotten, as `forget` does; `retain` unlinks it.
            let node = core::mem::replace(&mut group.node, NIL);
            if node != NIL {
                lane.ring.remove(node);
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
    /// [`NeedsLane`], changing nothing, when called without the lane and the
    /// key's group is linked and would be forgotten.
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
        if lane.is_none() && (self.limited || (group.in_ring() && group.active == 0)) {
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

    // ---------------------------------------------------------------- helpers

    #[inline]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find_hashed(short_hash(hash), key)
    }

    #[inline]
    fn find_hashed<Q>(&self, hash: ShortHash, key: &Q) -> Option<u32>
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

    fn insert_group(&mut self, key: K, hash: ShortHash) -> u32 {
        let g = self.groups.insert(key, hash);
        let groups = &self.groups;
        self.table
            .insert_unique(table_hash(hash), g, |&i| table_hash(groups.at(i).hash));
        g
    }

    /// True when giving a unit back to group `g` needs the lane: the group
    /// is not linked (an any-key waiter may be older than its waiters, and
    /// leftover room must link it), or it is linked and would be forgotten.
    #[inline]
    fn give_back_needs_lane(&self, g: u32) -> bool {
        let group = self.groups.at(g);
        !group.in_ring() || (group.target == 0 && group.active == 1 && group.waiting == 0)
    }

    /// Counts one grant from group `g`, which must have room. Runs no user
    /// code, so it cannot panic half-way.
    #[inline]
    pub(crate) fn grant<I: LeaseIds>(&mut self, g: u32, ids: &mut I) -> Grant {
        let generation = self.groups.generation(g);
        let group = self.groups.at_mut(g);
        debug_assert!(group.has_room());
        group.active += 1;
        self.total += 1;
        self.stats.granted += 1;
        Grant {
            shard: self.index,
            group: g,
            generation,
            id: ids.next_id(),
        }
    }

    /// A lease from group `g`, with its key cloned *before* the grant is
    /// counted so that a panicking `K::clone` leaves the shard untouched.
    #[inline]
    pub(crate) fn lease_from<I: LeaseIds>(&mut self, g: u32, ids: &mut I) -> Lease<K>
    where
        K: Clone,
    {
        let key = self.groups.at(g).key.clone();
        Lease {
            pool: self.pool,
            grant: self.grant(g, ids),
            key,
        }
    }

    #[inline]
    fn has_room_for_newcomer(&self, g: u32) -> bool {
        let group = self.groups.at(g);
        debug_assert!(
            !group.has_room() || group.queue == List::EMPTY,
            "waiter left behind room"
        );
        debug_assert!(!group.has_room() || group.in_ring(), "room off the ring");
        group.has_room()
    }

    /// Links group `g` into the lane's ring, if it is not linked.
    fn link(&mut self, lane: &mut Lane, g: u32) {
        let group = self.groups.at_mut(g);
        if group.node == NIL {
            group.node = lane.ring.insert(self.index, g);
        }
    }

    /// Unlinks group `g` from the lane's ring, if it is linked.
    pub(crate) fn unlink(&mut self, lane: &mut Lane, g: u32) {
        let group = self.groups.at_mut(g);
        let node = core::mem::replace(&mut group.node, NIL);
        if node != NIL {
            lane.ring.remove(node);
        }
    }

    /// Returns one unit of capacity to group `g` and passes it on.
    #[inline]
    fn give_back_group<I: LeaseIds>(&mut self, mut lane: Option<&mut Lane>, g: u32, ids: &mut I) {
        let group = self.groups.at_mut(g);
        group.active -= 1;
        self.total -= 1;
        if let Some(lane) = lane.as_deref_mut() {
            if lane.limit().is_some() {
                // The unit comes back to the pool as well as to the key: the
                // lane hands the pool's room to the oldest waiter it can
                // serve, whatever its key ([`Lane::distribute_next`]).
                lane.count_return();
                self.link(lane, g);
                self.rebalance(lane, g);
                self.forget_if_idle(Some(lane), g);
                return;
            }
        }
        let any_waiting = lane.as_ref().is_some_and(|l| l.any_queue != List::EMPTY);
        if group.queue == List::EMPTY && !any_waiting {
            // Nobody to serve: the common, uncontended case.
            if let Some(lane) = lane.as_deref_mut() {
                self.link(lane, g);
            }
        } else {
            self.serve(lane.as_deref_mut(), g, ids);
        }
        self.forget_if_idle(lane, g);
    }

    /// Hands group `g`'s room to waiters, oldest eligible first; then, with
    /// the lane and no any-key waiter left, links the group in the ring.
    fn serve<I: LeaseIds>(&mut self, mut lane: Option<&mut Lane>, g: u32, ids: &mut I) {
        debug_assert!(
            lane.is_some() || self.groups.at(g).in_ring(),
            "served without the lane off the ring"
        );
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
            let grant = self.grant(g, ids);
            if let Some(lane) = lane.as_deref_mut() {
                lane.count_grant();
            }
            if from_key {
                self.unlink_waiting(key_head, g);
                decide(
                    &mut self.waiters,
                    &mut self.wake,
                    key_head,
                    State::Granted(grant),
                );
            } else if let Some(lane) = lane.as_deref_mut() {
                lane.grant_head(grant);
            }
        }
        if let Some(lane) = lane {
            // Linked when no any-key waiter is left, and whenever it has
            // room (which, without a limit, implies the former).
            if lane.any_queue == List::EMPTY || self.groups.at(g).has_room() {
                self.link(lane, g);
            }
            self.rebalance(lane, g);
        }
    }

    /// Keeps group `g`'s place among the groups the pool-wide limit holds
    /// back: there exactly while it has room and key waiters and a limit is
    /// set, ordered by its oldest waiter.
    pub(crate) fn rebalance(&mut self, lane: &mut Lane, g: u32) {
        let group = self.groups.at(g);
        let node = group.blocked;
        // Without a limit no group is held back, but one that was stays in
        // the heap until the lane has served it (after the limit is lifted).
        let held =
            (lane.limit().is_some() || node != NIL) && group.has_room() && group.queue.head != NIL;
        match (held, node != NIL) {
            (true, _) => {
                let head = self.waiters.slot(group.queue.head);
                let key = (head.order(), self.index, head.generation());
                if node == NIL {
                    self.groups.at_mut(g).blocked = lane.blocked.insert(self.index, g, key);
                } else {
                    lane.blocked.update(node, key);
                }
            }
            (false, true) => {
                self.groups.at_mut(g).blocked = NIL;
                lane.blocked.remove(node);
            }
            (false, false) => {}
        }
    }

    /// Serves one unit of the pool's room to the oldest waiter of group
    /// `g`, which the limit held back (the top of the lane's heap).
    pub(crate) fn serve_blocked<I: LeaseIds>(&mut self, lane: &mut Lane, g: u32, ids: &mut I) {
        let head = self.groups.at(g).queue.head;
        debug_assert!(head != NIL && self.groups.at(g).has_room());
        let grant = self.grant(g, ids);
        lane.count_grant();
        self.unlink_waiting(head, g);
        decide(
            &mut self.waiters,
            &mut self.wake,
            head,
            State::Granted(grant),
        );
        self.rebalance(lane, g);
    }

    /// Puts the shard under the lane's limit (while the lane has one):
    /// from now on its grants and give-backs need the lane, which counts
    /// them. Idempotent.
    pub fn enter_limit(&mut self, lane: &mut Lane) {
        if lane.limit().is_some() && !self.limited {
            self.limited = true;
            lane.add_active(self.total);
        }
    }

    /// Takes the shard from under the limit once the lane has none (after
    /// [`Lane::distribute_next`] found nothing left to serve). Idempotent.
    pub fn leave_limit(&mut self, lane: &Lane) {
        if lane.limit().is_none() {
            self.limited = false;
        }
    }

    /// Takes a waiting key waiter out of its group's queue.
    fn unlink_waiting(&mut self, index: u32, g: u32) {
        self.waiters.waiting -= 1;
        let group = self.groups.at_mut(g);
        let mut queue = group.queue;
        group.waiting -= 1;
        self.waiters.unlink(&mut queue, index);
        self.groups.at_mut(g).queue = queue;
    }

    /// Forgets group `g` if nothing refers to it any more.
    #[inline]
    fn forget_if_idle(&mut self, lane: Option<&mut Lane>, g: u32) {
        if self.groups.at(g).is_idle() {
            self.forget(lane, g);
        }
    }

    #[cold]
    fn forget(&mut self, lane: Option<&mut Lane>, g: u32) {
        debug_assert_eq!(self.groups.at(g).blocked, NIL, "a held-back group is idle");
        if self.groups.at(g).in_ring() {
            let lane = lane.expect("a linked group is forgotten with the lane");
            self.unlink(lane, g);
        }
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
    fn shrink_table(&mut self) {
        let (len, buckets) = (self.table.len(), self.table.num_buckets());
        if buckets > MIN_BUCKETS && len * 32 < buckets * 7 {
            self.shrink_table_to(2 * len);
        }
    }

    #[cold]
    fn shrink_table_to(&mut self, len: usize) {
        let groups = &self.groups;
        self.table
            .shrink_to(len.max(MIN_SLOTS), |&i| table_hash(groups.at(i).hash));
    }

    /// Removes a decided waiter (granted or closed) and returns its state.
    fn finish(&mut self, index: u32) -> State {
        if self.waiters.slot(index).in_wake {
            self.waiters.unlink(&mut self.wake, index);
            self.waiters.slot_mut(index).in_wake = false;
        }
        self.waiters.remove(index)
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
    w.in_wake = true;
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
