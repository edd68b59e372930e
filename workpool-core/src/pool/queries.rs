//! What a pool answers without changing: counts, lengths, limits.

use super::*;

impl<K, S> Pool<K, S> {
    /// The target and active count of `key`; `Counts::default()` for a key
    /// the pool does not track.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Counts, Pool};
    /// let mut pool = Pool::new();
    /// pool.set("a", 2);
    /// let _lease = pool.try_acquire_key(&"a").unwrap();
    /// assert_eq!(pool.counts(&"a"), Counts { target: 2, active: 1 });
    /// assert_eq!(pool.counts(&"b"), Counts { target: 0, active: 0 });
    /// ```
    #[inline]
    pub fn counts<Q>(&self, key: &Q) -> Counts
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        self.shard.counts(self.hasher.hash_one(key), key)
    }

    /// How many waiters are waiting for `key` specifically (any-key waiters
    /// are not counted; see [`waiters`](Self::waiters)).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let _w = pool.enqueue_key(&"a").unwrap();
    /// assert_eq!(pool.waiting(&"a"), 1);
    /// ```
    pub fn waiting<Q>(&self, key: &Q) -> usize
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        self.shard.waiting(self.hasher.hash_one(key), key)
    }

    /// How many waiters of either kind are still waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<&str>::new();
    /// let _w = pool.enqueue().unwrap();
    /// assert_eq!(pool.waiters(), 1);
    /// ```
    pub fn waiters(&self) -> usize {
        self.lane.waiters() + self.shard.waiters()
    }

    /// How many keys the pool tracks: keys with a non-zero target, a live
    /// lease or a waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// pool.set("b", 0);
    /// assert_eq!(pool.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.shard.len()
    }

    /// True when the pool tracks no key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(workpool_core::Pool::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shard.is_empty()
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<u8>::new();
    /// pool.close();
    /// assert!(pool.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.lane.is_closed()
    }

    /// A snapshot of every tracked key with its counts, in no particular
    /// order. It borrows the pool, so the pool cannot change while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// pool.set("b", 2);
    /// let mut all: Vec<_> = pool.iter().map(|(k, c)| (*k, c.target)).collect();
    /// all.sort();
    /// assert_eq!(all, [("a", 1), ("b", 2)]);
    /// ```
    pub fn iter(&self) -> Iter<'_, K> {
        self.shard.iter()
    }

    /// How many waiter slots the pool has: every registered waiter's
    /// [`WaiterId::index`] is below it. It follows the number of waiters
    /// registered at once, up after a burst and down again once the burst
    /// is gone (slots are reused lowest first, and the pool gives back the
    /// free slots at the top). An adapter that keeps per-waiter data in a
    /// `Vec` indexed by slot can truncate it to this length after a waiter
    /// leaves, so that it shrinks too.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<&str>::new();
    /// let waiters: Vec<_> = (0..100).map(|_| pool.enqueue().unwrap()).collect();
    /// assert_eq!(pool.waiter_slots(), 100);
    /// for w in waiters {
    ///     pool.cancel(w).unwrap();
    /// }
    /// assert_eq!(pool.waiter_slots(), 0);
    /// ```
    pub fn waiter_slots(&self) -> usize {
        self.lane.waiter_slots().max(self.shard.waiter_slots())
    }
}
