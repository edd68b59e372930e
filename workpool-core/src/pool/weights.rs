//! Weighted leases: `n` units of a key in one lease.

use super::*;

impl<K, S> Pool<K, S> {
    /// Takes a lease of `n` units of `key` if they fit now: `active + n <=
    /// target`, with a pool-wide limit `n` units of room in the pool, and
    /// no earlier waiter that the units could serve first (no barging, not
    /// even past a waiter of more units at the head of the key's queue).
    ///
    /// `n == 0` is granted at once, even while others wait: a lease of no
    /// units, which counts nowhere and frees nothing when released.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] once the pool is closed;
    /// [`TryAcquireError::NoCapacity`] when the units do not fit now,
    /// including `n` above the target and above [`Lease::MAX_UNITS`].
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash`, `Eq` or `Clone`, or `Q`'s `ToOwned`, panics (then
    /// the pool is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Counts, Pool, TryAcquireError};
    /// let mut pool = Pool::new();
    /// pool.set("db", 5);
    /// let lease = pool.try_acquire_key_many(&"db", 4).unwrap();
    /// assert_eq!(lease.units(), 4);
    /// assert_eq!(pool.counts(&"db"), Counts { target: 5, active: 4 });
    /// let err = pool.try_acquire_key_many(&"db", 2).unwrap_err();
    /// assert_eq!(err, TryAcquireError::NoCapacity);
    /// # pool.release(lease).unwrap();
    /// ```
    pub fn try_acquire_key_many<Q>(&mut self, key: &Q, n: u64) -> Result<Lease<K>, TryAcquireError>
    where
        K: Clone,
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
        S: BuildHasher,
    {
        let hash = self.hasher.hash_one(key);
        let ids = &mut self.next_lease;
        let lease = match self.shard.try_acquire_key_many(None, hash, key, n, ids) {
            Ok(taken) => taken,
            Err(NeedsLane(())) => self
                .shard
                .try_acquire_key_many(Some(&mut self.lane), hash, key, n, ids)
                .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane")),
        }?;
        self.lane.mark_named();
        Ok(lease)
    }

    /// Registers a waiter for `n` units of `key`: granted at once if they
    /// fit (as [`try_acquire_key_many`](Self::try_acquire_key_many)
    /// decides), otherwise at the back of the key's queue.
    ///
    /// The queue is strictly first come, first served: a waiter for more
    /// units than are free at its head holds back every later waiter of
    /// the key, even ones that ask for fewer (and, while a pool-wide limit
    /// binds, later waiters of every key), so that a large request is never
    /// starved. Cancelling it serves those behind it at once.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] once the pool is closed;
    /// [`TryAcquireError::NoCapacity`] for `n == 0` (which never waits:
    /// take it with [`try_acquire_key_many`](Self::try_acquire_key_many))
    /// and for `n` above [`Lease::MAX_UNITS`] (no lease can hold it).
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
    /// pool.set("db", 4);
    /// let held = pool.try_acquire_key_many(&"db", 3).unwrap();
    /// let big = pool.enqueue_key_many(&"db", 4).unwrap(); // waits for all 4
    /// let small = pool.enqueue_key(&"db").unwrap(); // behind it, though 1 is free
    /// assert!(matches!(pool.claim(small), Ok(Claim::Waiting)));
    /// pool.release(held).unwrap();
    /// assert_eq!(pool.poll_wake(), Some(big));
    /// let Ok(Claim::Granted(lease)) = pool.claim(big) else { unreachable!() };
    /// assert_eq!(lease.units(), 4);
    /// # pool.cancel(small).unwrap();
    /// # pool.release(lease).unwrap();
    /// ```
    pub fn enqueue_key_many<Q>(&mut self, key: &Q, n: u64) -> Result<WaiterId, TryAcquireError>
    where
        K: Hash + Eq,
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
        S: BuildHasher,
    {
        let hash = self.hasher.hash_one(key);
        let arrivals = self.lane.arrivals();
        let ids = &mut self.next_lease;
        let w = match self
            .shard
            .enqueue_key_many(None, hash, key, arrivals, n, ids)
        {
            Ok(queued) => queued,
            Err(NeedsLane(())) => self
                .shard
                .enqueue_key_many(Some(&mut self.lane), hash, key, arrivals, n, ids)
                .unwrap_or_else(|_| unreachable!("a call with the lane needs no lane")),
        }?;
        self.lane.mark_named();
        Ok(w)
    }

    /// Splits `n` units off `lease` into a new lease of the same key, with
    /// a fresh id (above every id granted before, as a grant's). Nothing is
    /// freed and no count changes; releasing either part frees its units.
    /// [`Stats::granted`] counts the new lease.
    ///
    /// Returns `None`, changing nothing, unless `0 < n < lease.units()`
    /// and the lease is live in this pool.
    ///
    /// # Panics
    ///
    /// If `K`'s `Clone` panics (then nothing changed).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("db", 4);
    /// let mut lease = pool.try_acquire_key_many(&"db", 4).unwrap();
    /// let part = pool.split(&mut lease, 1).unwrap();
    /// assert_eq!((lease.units(), part.units()), (3, 1));
    /// assert!(pool.split(&mut lease, 3).is_none()); // not fewer than it has
    /// pool.release(part).unwrap();
    /// assert_eq!(pool.counts(&"db").active, 3);
    /// # pool.release(lease).unwrap();
    /// ```
    pub fn split(&mut self, lease: &mut Lease<K>, n: u64) -> Option<Lease<K>>
    where
        K: Clone,
    {
        if n == 0 || n >= lease.units() {
            return None;
        }
        let key = lease.key.clone();
        let part = self.shard.split(lease, n, &mut self.next_lease)?;
        Some(part.with_key(key))
    }
}
