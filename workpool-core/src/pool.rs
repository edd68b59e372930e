//! The pool: groups, waiters and the rules that connect them.

use alloc::borrow::ToOwned;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use alloc::vec::Vec;

use hashbrown::{DefaultHashBuilder, Equivalent, HashTable};

use crate::error::{Closed, ReleaseError, TryAcquireError, UnknownWaiter};
use crate::identity::Identity;
use crate::lane::Lane;
use crate::lease::{Claim, Counts, Lease, Stats, WaiterId};
use crate::parts::NeedsLane;
use crate::shard::{Iter, Shard};

mod outputs;
mod queries;
mod weights;

/// The keyed counting state machine: a target and an active count per key,
/// round-robin any-key selection and a FIFO waiter queue.
///
/// The pool never blocks, never sleeps and knows no waker: it is told what
/// happened and answers who gets which lease. See the [crate docs](crate) for
/// the method groups and a complete walk-through.
///
/// # Fairness
///
/// Waiters are served strictly oldest first among those that capacity can
/// serve: capacity freed or added at key `k` goes to the oldest waiter that
/// asked for `k` or for any key. A `try_acquire*` call or a new waiter never
/// takes capacity an earlier waiter could use (no barging). Any-key grants
/// that find capacity at once rotate round-robin over the keys with room.
///
/// # Shrinking a target
///
/// [`set`](Self::set) with a lower target revokes nothing: live leases stay
/// valid and keep counting, and grants for that key resume only once
/// `active < target`. Waiters stay queued. With target 0 the key grants
/// nothing; it is forgotten once it has no live lease and no waiter, and a
/// key that is set again later still counts the leases it had.
///
/// A waiter for a key whose target is 0 does not fail: it waits until the
/// key is set again or the pool closes, which may be never. When a key goes
/// away for good, [`close_key`](Self::close_key) sets its target to 0 *and*
/// tells the waiters it has at that moment [`Closed`]; waiters that arrive
/// later wait as on any key with target 0.
///
/// # Identity
///
/// Leases and waiter handles name their pool, and every other pool rejects
/// them, even after the pool that issued them was dropped. Where the target
/// has atomic read-modify-write the name comes from a global counter. Where
/// it has not (`thumbv6m`, `riscv32imc`), it is the address of a one-byte
/// allocation the pool makes when created; dropping a pool that handed out a
/// lease or a waiter handle leaks that byte, so that no later pool gets the
/// same address.
///
/// # Memory
///
/// Memory follows what is live, not what ever was: the slabs of groups and
/// of waiters reuse their lowest free slots first and cut off their free
/// top, and they and the key table give capacity back once less than a
/// quarter of it is in use (amortised O(1); a pool that stays at one size
/// allocates nothing). After a burst of waiters or keys the pool returns to
/// about the size of what outlived the burst. A slot cannot move while it is
/// in use, so a long-lived waiter or key that took a high slot during the
/// burst holds the slots below it until it leaves. Forgotten keys hold their
/// slots until [`poll_forgotten`](Self::poll_forgotten) collects them.
///
/// # Parts
///
/// A pool is built from the [parts](crate::parts) that `workpool-std`
/// locks separately: a [`Lane`] and one [`Shard`]. Each call runs the same
/// two steps an adapter runs (the shard alone, then with the lane if the
/// shard says it needs it), so the property tests of this type check the
/// rules every adapter runs.
pub struct Pool<K, S = DefaultHashBuilder> {
    hasher: S,
    /// The any-key part; it holds the pool's identity.
    pub(crate) lane: Lane,
    /// The keyed part: every key.
    pub(crate) shard: Shard<K>,
    /// The next lease id.
    next_lease: u64,
}

impl<K: Hash + Eq + Clone> Pool<K> {
    /// Creates an empty, open pool with the default hasher.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::Pool::<&str>::new();
    /// assert!(pool.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_hasher(DefaultHashBuilder::default())
    }
}

impl<K, S> Pool<K, S> {
    /// Creates an empty, open pool that hashes keys with `hasher`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hashbrown::DefaultHashBuilder;
    /// let pool = workpool_core::Pool::<u32, _>::with_hasher(DefaultHashBuilder::default());
    /// assert!(!pool.is_closed());
    /// ```
    #[must_use]
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_identity(hasher, Identity::new())
    }

    /// The constructor behind [`with_hasher`](Self::with_hasher); unit tests
    /// pass an anchored identity to cover targets without atomics.
    fn with_identity(hasher: S, identity: Identity) -> Self {
        let lane = Lane::with_identity(identity);
        let shard = Shard::new(0, &lane);
        Self {
            hasher,
            lane,
            shard,
            next_lease: 1,
        }
    }

    // ----------------------------------------------------------------- inputs

    /// Sets the target of `key`, at once.
    ///
    /// Raising it serves waiters (oldest first) with the new room, then puts
    /// the rest of the room up for any-key grants. Lowering it revokes no
    /// lease. Setting 0 stops grants for the key and forgets it once it has
    /// no live lease and no waiter; waiters for the key keep waiting (until
    /// it is set again or the pool closes): use
    /// [`close_key`](Self::close_key) to fail them instead. `set` works after
    /// [`close`](Self::close) too. Any waiter it serves is reported by
    /// [`poll_wake`](Self::poll_wake).
    ///
    /// Returns `key` when the pool did not keep it (it already tracked an
    /// equal key, or the target is 0 for a key it does not track), so that
    /// the caller decides where the key is dropped; `None` when the pool
    /// stored it. A key the call forgets is handed out by
    /// [`poll_forgotten`](Self::poll_forgotten).
    ///
    /// # Panics
    ///
    /// If a new key would make the pool track more than `u32::MAX - 1` keys,
    /// or if `K`'s `Hash` or `Eq` panics (then the pool is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// assert_eq!(pool.set("a", 1), None); // stored
    /// let lease = pool.try_acquire().unwrap();
    /// assert_eq!(pool.set("a", 0), Some("a")); // the lease stays valid
    /// assert_eq!(pool.counts(&"a").active, 1);
    /// pool.release(lease).unwrap();
    /// assert!(pool.is_empty());
    /// assert_eq!(pool.poll_forgotten(), Some("a"));
    /// ```
    pub fn set(&mut self, key: K, target: u64) -> Option<K>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let mut key = Some(key);
        self.set_in(&mut key, target);
        key
    }

    /// [`set`](Self::set) with the key in the caller's `key`: it is taken
    /// only when the pool stores it and stays there otherwise, also when
    /// `K`'s `Hash` or `Eq` panics. A caller that holds a lock around the
    /// pool (as [`SharedPool`](crate::SharedPool) does) declares `key`
    /// before its guard, so the key is dropped after unlocking on every
    /// path, unwinding included.
    ///
    /// # Panics
    ///
    /// If `key` is `None`, and as [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let mut key = Some("a");
    /// pool.set_in(&mut key, 1);
    /// assert_eq!(key, None, "stored");
    /// let mut key = Some("a");
    /// pool.set_in(&mut key, 2);
    /// assert_eq!(key, Some("a"), "an equal key was tracked already");
    /// assert_eq!(pool.counts(&"a").target, 2);
    /// ```
    pub fn set_in(&mut self, key: &mut Option<K>, target: u64)
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        if self.set_quietly(key, target) {
            self.distribute();
        }
    }

    /// [`set_in`](Self::set_in) without handing out the pool's room
    /// afterwards; true when that is still to do. Several targets set
    /// together distribute once, after the last: lowering one target can
    /// free the pool's room for others (a held-back waiter of more units
    /// than the pool has no longer fits its key), and no waiter may be
    /// served from a half-applied set.
    fn set_quietly(&mut self, key: &mut Option<K>, target: u64) -> bool
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let hash = self
            .hasher
            .hash_one(key.as_ref().expect("set_in needs a key"));
        let ids = &mut self.next_lease;
        if self.shard.set_in(None, hash, key, target, ids).is_err() {
            self.shard
                .set_in(Some(&mut self.lane), hash, key, target, ids)
                .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
            return true;
        }
        false
    }

    /// Sets several targets in one call, as [`set`](Self::set) would one
    /// after the other; in `workpool-std` no acquisition sees some of them
    /// applied and others not. Returns the keys the pool did not keep (see
    /// [`set`](Self::set)) and the keys it forgot, for the caller to drop
    /// (so [`poll_forgotten`](Self::poll_forgotten) has none of them).
    ///
    /// # Panics
    ///
    /// As [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set_all([("a", 2), ("b", 1)]);
    /// assert_eq!((pool.counts(&"a").target, pool.counts(&"b").target), (2, 1));
    /// ```
    pub fn set_all<I>(&mut self, targets: I) -> Vec<K>
    where
        I: IntoIterator<Item = (K, u64)>,
        K: Hash + Eq,
        S: BuildHasher,
    {
        let mut unused = Vec::new();
        self.set_each(targets, &mut unused);
        self.distribute();
        unused
    }

    /// Sets each target without distributing (see
    /// [`set_quietly`](Self::set_quietly)), collecting the keys not kept.
    fn set_each<I>(&mut self, targets: I, unused: &mut Vec<K>)
    where
        I: IntoIterator<Item = (K, u64)>,
        K: Hash + Eq,
        S: BuildHasher,
    {
        for (key, target) in targets {
            let mut key = Some(key);
            self.set_quietly(&mut key, target);
            unused.extend(key);
            // Collected as they come: a later key could reuse the slot of
            // one forgotten here, and would drop it in the pool.
            unused.extend(core::iter::from_fn(|| self.poll_forgotten()));
        }
    }

    /// [`set_all`](Self::set_all), and every other tracked key gets target
    /// 0: the pool's targets become exactly `targets`, as from a discovery
    /// result. O(tracked keys + targets).
    ///
    /// # Panics
    ///
    /// As [`set`](Self::set), and if `K`'s `Clone` panics (a key set to 0 is
    /// cloned to name it); then some targets may be applied.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set_all([("a", 2), ("b", 1)]);
    /// pool.replace_all([("b", 3), ("c", 1)]);
    /// assert_eq!(pool.counts(&"a").target, 0);
    /// assert_eq!(pool.counts(&"b").target, 3);
    /// assert_eq!(pool.counts(&"c").target, 1);
    /// ```
    pub fn replace_all<I>(&mut self, targets: I) -> Vec<K>
    where
        I: IntoIterator<Item = (K, u64)>,
        K: Hash + Eq + Clone,
        S: BuildHasher,
    {
        let targets: Vec<(K, u64)> = targets.into_iter().collect();
        let mut listed = HashTable::new();
        for (i, (key, _)) in targets.iter().enumerate() {
            let hash = self.hasher.hash_one(key);
            listed.insert_unique(hash, i, |&j: &usize| self.hasher.hash_one(&targets[j].0));
        }
        let others: Vec<K> = self
            .iter()
            .filter(|(key, _)| {
                let hash = self.hasher.hash_one(*key);
                listed.find(hash, |&j| targets[j].0 == **key).is_none()
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut unused = Vec::new();
        self.set_each(targets, &mut unused);
        self.set_each(others.into_iter().map(|key| (key, 0)), &mut unused);
        self.distribute();
        unused
    }

    /// Sets the pool-wide limit: at most `limit` live leases over all keys
    /// (`None`, the default, for no limit). A grant then needs room in its
    /// key *and* in the pool.
    ///
    /// Lowering the limit revokes nothing: grants resume once the pool is
    /// below it. Raising or removing it serves waiters at once. While the
    /// limit is what holds waiters back, the pool's room goes to the oldest
    /// waiter it can serve, whatever its key (a release at one key may serve
    /// a waiter of another), and no newcomer takes it first.
    ///
    /// While a limit is set, releases and grants cost O(log keys) (the
    /// pool keeps the keys the limit holds back in a heap); without one they
    /// stay O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::Pool;
    /// let mut pool = Pool::new();
    /// pool.set("a", 2);
    /// pool.set("b", 2);
    /// pool.set_limit(Some(3));
    /// let leases: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
    /// assert!(pool.try_acquire().is_err()); // keys have room, the pool has none
    /// let waiter = pool.enqueue_key(&"b").unwrap();
    /// assert_eq!(pool.active(), 3);
    /// pool.set_limit(None);
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// # drop(leases);
    /// ```
    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.lane.set_limit(limit);
        self.shard.enter_limit(&mut self.lane);
        self.distribute();
        self.shard.leave_limit(&self.lane);
    }

    /// The pool-wide limit, if one is set.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<&str>::new();
    /// assert_eq!(pool.limit(), None);
    /// pool.set_limit(Some(8));
    /// assert_eq!(pool.limit(), Some(8));
    /// ```
    pub fn limit(&self) -> Option<u64> {
        self.lane.limit()
    }

    /// Live leases over all keys (granted and not released, including
    /// leases granted to waiters that have not claimed them yet).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 2);
    /// let _lease = pool.try_acquire().unwrap();
    /// assert_eq!(pool.active(), 1);
    /// ```
    pub fn active(&self) -> u64 {
        self.shard.active()
    }

    /// What the pool did since it was made (see [`Stats`]; the core knows
    /// no clock, so `timed_out` stays 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire().unwrap();
    /// let waiter = pool.enqueue().unwrap();
    /// pool.release(lease).unwrap(); // granted to the waiter
    /// let stats = pool.stats();
    /// assert_eq!((stats.granted, stats.waited, stats.cancelled), (2, 1, 0));
    /// # let _ = pool.claim(waiter);
    /// ```
    pub fn stats(&self) -> Stats {
        self.lane.stats() + self.shard.stats()
    }

    /// True when `lease` is *surplus*: its key has more live leases than its
    /// target, or the pool more than its limit. A worker that sees this can
    /// leave, so that the pool shrinks to its new size. False for a lease of
    /// another pool or one that is not live.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 2);
    /// let one = pool.try_acquire().unwrap();
    /// let two = pool.try_acquire().unwrap();
    /// assert!(!pool.is_surplus(&one));
    /// pool.set("a", 1);
    /// assert!(pool.is_surplus(&one) && pool.is_surplus(&two));
    /// pool.release(two).unwrap();
    /// assert!(!pool.is_surplus(&one));
    /// ```
    pub fn is_surplus(&self, lease: &Lease<K>) -> bool {
        self.shard
            .is_surplus(Some(&self.lane), lease)
            .unwrap_or(false)
    }

    /// Takes a lease from any key with room, round-robin over those keys.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] once the pool is closed;
    /// [`TryAcquireError::NoCapacity`] when no key has room (a key with room
    /// never has an eligible waiter, so this never barges).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Pool, TryAcquireError};
    /// let mut pool = Pool::new();
    /// pool.set("a", 1);
    /// pool.set("b", 1);
    /// let one = pool.try_acquire().unwrap();
    /// let two = pool.try_acquire().unwrap();
    /// assert_ne!(one.key(), two.key());
    /// assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    /// ```
    #[inline]
    pub fn try_acquire(&mut self) -> Result<Lease<K>, TryAcquireError>
    where
        K: Clone,
    {
        if self.lane.is_closed() {
            return Err(TryAcquireError::Closed);
        }
        while self.lane.next_shard().is_some() {
            if let Some(lease) = self.lane.try_take(&mut self.shard, &mut self.next_lease) {
                self.lane.mark_named();
                return Ok(lease);
            }
        }
        Err(TryAcquireError::NoCapacity)
    }

    /// Takes a lease from `key` if it has room.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] once the pool is closed;
    /// [`TryAcquireError::NoCapacity`] when `active >= target` for `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire_key(&"a").unwrap();
    /// assert!(pool.try_acquire_key(&"a").is_err());
    /// assert!(pool.try_acquire_key(&"b").is_err());
    /// # pool.release(lease).unwrap();
    /// ```
    #[inline]
    pub fn try_acquire_key<Q>(&mut self, key: &Q) -> Result<Lease<K>, TryAcquireError>
    where
        K: Clone,
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        let hash = self.hasher.hash_one(key);
        let ids = &mut self.next_lease;
        let lease = match self.shard.try_acquire_key(None, hash, key, ids) {
            Ok(taken) => taken,
            Err(NeedsLane(())) => self
                .shard
                .try_acquire_key(Some(&mut self.lane), hash, key, ids)
                .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane")),
        }?;
        self.lane.mark_named();
        Ok(lease)
    }

    /// Registers a waiter for a lease from any key.
    ///
    /// If a key has room the waiter is granted at once (its
    /// [`claim`](Self::claim) returns the lease; it is not reported by
    /// `poll_wake`); otherwise it joins the back of the queue.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the pool is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::new();
    /// let waiter = pool.enqueue().unwrap();
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Waiting)));
    /// pool.set("a", 1);
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Granted(_))));
    /// ```
    pub fn enqueue(&mut self) -> Result<WaiterId, Closed> {
        if self.lane.is_closed() {
            return Err(Closed);
        }
        self.lane.mark_named();
        while self.lane.next_shard().is_some() {
            if let Some(w) = self.lane.try_grant(&mut self.shard, &mut self.next_lease) {
                return Ok(w);
            }
        }
        self.lane.enqueue()
    }

    /// Registers a waiter for a lease from `key`.
    ///
    /// If `key` has room the waiter is granted at once; otherwise it joins
    /// the back of the key's queue (an untracked key starts being tracked,
    /// with target 0, while someone waits for it).
    ///
    /// # Errors
    ///
    /// [`Closed`] once the pool is closed.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash` or `Eq` panics (then the pool is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::new();
    /// let waiter = pool.enqueue_key(&"a").unwrap();
    /// pool.set("b", 1); // cannot serve a waiter for "a"
    /// assert_eq!(pool.poll_wake(), None);
    /// pool.set("a", 1);
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// ```
    pub fn enqueue_key<Q>(&mut self, key: &Q) -> Result<WaiterId, Closed>
    where
        K: Hash + Eq,
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
        S: BuildHasher,
    {
        let hash = self.hasher.hash_one(key);
        let arrivals = self.lane.arrivals();
        let ids = &mut self.next_lease;
        let w = match self.shard.enqueue_key(None, hash, key, arrivals, ids) {
            Ok(queued) => queued,
            Err(NeedsLane(())) => self
                .shard
                .enqueue_key(Some(&mut self.lane), hash, key, arrivals, ids)
                .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane")),
        }?;
        self.lane.mark_named();
        Ok(w)
    }

    /// Removes a waiter that gave up. If it had already been granted a lease,
    /// that lease is released: it goes to the next eligible waiter or back
    /// to its key. O(1).
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` was already claimed or cancelled, or
    /// belongs to another pool; nothing changes then.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// let first = pool.enqueue().unwrap(); // granted at once
    /// let second = pool.enqueue().unwrap(); // waits
    /// pool.cancel(first).unwrap(); // its lease passes on
    /// assert_eq!(pool.poll_wake(), Some(second));
    /// ```
    pub fn cancel(&mut self, waiter: WaiterId) -> Result<(), UnknownWaiter> {
        let ids = &mut self.next_lease;
        if waiter.shard().is_none() {
            if let Some(returned) = self.lane.cancel(waiter)? {
                self.shard.give_back(&mut self.lane, returned, ids);
                self.distribute();
            }
            return Ok(());
        }
        match self.shard.cancel(None, waiter, ids)? {
            Ok(()) => Ok(()),
            Err(NeedsLane(())) => {
                self.shard
                    .cancel(Some(&mut self.lane), waiter, ids)?
                    .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
                self.distribute();
                Ok(())
            }
        }
    }

    /// Gives a lease back. Its capacity goes at once to the oldest eligible
    /// waiter (reported by [`poll_wake`](Self::poll_wake)) or back to its key.
    /// Works after [`close`](Self::close) too.
    ///
    /// Returns the lease's key, so that the caller decides where it is
    /// dropped (`workpool-std` drops it after unlocking).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::ForeignPool`] for a lease of another pool,
    /// [`ReleaseError::Stale`] for one that is not live here. Nothing
    /// changes then, and the error hands the lease back
    /// ([`ReleaseError::into_lease`]), so a lease given to the wrong pool
    /// can still be released into its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Pool, ReleaseError};
    /// let (mut a, mut b) = (Pool::new(), Pool::new());
    /// a.set("k", 1);
    /// b.set("k", 1);
    /// let lease = a.try_acquire().unwrap();
    /// let err = b.release(lease).unwrap_err();
    /// assert!(matches!(err, ReleaseError::ForeignPool(_)));
    /// assert_eq!(b.counts(&"k").active, 0);
    /// assert_eq!(a.release(err.into_lease()).unwrap(), "k"); // the key back
    /// assert_eq!(a.counts(&"k").active, 0);
    /// ```
    #[inline]
    pub fn release(&mut self, lease: Lease<K>) -> Result<K, ReleaseError<K>> {
        let ids = &mut self.next_lease;
        match self.shard.release(None, lease, ids) {
            Ok(released) => released,
            Err(NeedsLane(lease)) => {
                let released = self
                    .shard
                    .release(Some(&mut self.lane), lease, ids)
                    .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
                self.distribute();
                released
            }
        }
    }

    /// Closes the pool: every waiting waiter is told [`Closed`] (reported by
    /// [`poll_wake`](Self::poll_wake), answered by [`claim`](Self::claim)),
    /// and later requests fail. `set`, queries and releases keep working;
    /// leases already out stay valid. Closing twice does nothing.
    ///
    /// Unlike every other input this is not O(1) but O(live keys +
    /// waiters), once: it walks the any-key queue and, if key waiters are
    /// left, the table of live keys (never the slots of keys forgotten
    /// long ago).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::<&str>::new();
    /// let waiter = pool.enqueue().unwrap();
    /// pool.close();
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Closed)));
    /// assert!(pool.enqueue().is_err());
    /// ```
    pub fn close(&mut self) {
        self.lane.close();
        self.shard.close(&mut self.lane);
    }

    /// Closes one key: its target becomes 0 and every waiter waiting for it
    /// right now is told [`Closed`] (reported by
    /// [`poll_wake`](Self::poll_wake), oldest first, and answered by
    /// [`claim`](Self::claim) with [`Claim::Closed`]). Then the key is
    /// forgotten if it has no live lease (collect it from
    /// [`poll_forgotten`](Self::poll_forgotten)).
    ///
    /// It is an event, not a state: the pool does not remember closed keys
    /// (that would cost memory for every key ever closed). A waiter that
    /// arrives later for the same key waits as on any key with target 0,
    /// until the key is set again. Any-key waiters are not affected, nor
    /// are waiters already granted a lease from the key (their
    /// [`claim`](Self::claim) hands it over). Leases out stay valid and keep
    /// counting until released, also if the key is set again. A key the
    /// pool does not track is left alone; on a closed pool only the target
    /// changes (its waiters were told at [`close`](Self::close)).
    ///
    /// O(1) plus O(1) per waiter it fails, which is the size of its output;
    /// a waiter is failed at most once, so this is O(1) amortised.
    ///
    /// # Panics
    ///
    /// If `Q`'s `Hash` or `Eq` panics (then the pool is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Counts, Pool};
    /// let mut pool = Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire_key(&"a").unwrap();
    /// let waiter = pool.enqueue_key(&"a").unwrap();
    /// let any = pool.enqueue().unwrap();
    ///
    /// pool.close_key(&"a");
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert_eq!(pool.poll_wake(), None); // the any-key waiter still waits
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Closed)));
    /// assert!(matches!(pool.claim(any), Ok(Claim::Waiting)));
    /// assert_eq!(pool.counts(&"a"), Counts { target: 0, active: 1 });
    ///
    /// // A later waiter waits, and is served once the key is back.
    /// let later = pool.enqueue_key(&"a").unwrap();
    /// pool.release(lease).unwrap();
    /// pool.set("a", 2); // the older waiter first
    /// assert_eq!(pool.poll_wake(), Some(any));
    /// assert_eq!(pool.poll_wake(), Some(later));
    /// ```
    pub fn close_key<Q>(&mut self, key: &Q)
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        let hash = self.hasher.hash_one(key);
        if self.shard.close_key(None, hash, key).is_err() {
            self.shard
                .close_key(Some(&mut self.lane), hash, key)
                .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane"));
            self.distribute();
        }
    }
}
impl<K: Hash + Eq + Clone> Default for Pool<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, S> fmt::Debug for Pool<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("keys", &self.len())
            .field("waiters", &self.waiters())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
