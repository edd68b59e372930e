//! What the pool tells its adapter: decided waiters, forgotten keys.

use super::*;

impl<K, S> Pool<K, S> {
    /// True when [`poll_wake`](Self::poll_wake) has a waiter to report: a
    /// cheap check an adapter can make before draining it.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let _waiter = pool.enqueue_key(&"a").unwrap();
    /// assert!(!pool.has_wakes());
    /// pool.set("a", 1);
    /// assert!(pool.has_wakes());
    /// ```
    #[inline]
    pub fn has_wakes(&self) -> bool {
        self.lane.has_wakes() || self.shard.has_wakes()
    }

    /// True when [`poll_forgotten`](Self::poll_forgotten) has a key to hand
    /// out: a cheap check an adapter can make before draining it.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// assert!(!pool.has_forgotten());
    /// pool.set("a", 0);
    /// assert!(pool.has_forgotten());
    /// ```
    #[inline]
    pub fn has_forgotten(&self) -> bool {
        self.shard.has_forgotten()
    }

    /// The next waiter whose outcome was decided (granted a lease, or told
    /// the pool or its key closed) since it last waited; `None` when there
    /// is nothing new. Any-key waiters are reported first, then key
    /// waiters, each kind in the order decided (the pool's
    /// [parts](crate::parts) keep one list each; the order of wake-ups does
    /// not change who was granted what).
    ///
    /// New entries appear only during [`set`](Self::set),
    /// [`release`](Self::release), [`cancel`](Self::cancel),
    /// [`close`](Self::close) and [`close_key`](Self::close_key); drain this
    /// after each of those and wake the waiters it names. A waiter that is claimed or cancelled before it is
    /// reported is not reported.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let waiter = pool.enqueue_key(&"a").unwrap();
    /// assert_eq!(pool.poll_wake(), None);
    /// pool.set("a", 1);
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert_eq!(pool.poll_wake(), None);
    /// ```
    #[must_use = "every waiter it names must be woken"]
    #[inline]
    pub fn poll_wake(&mut self) -> Option<WaiterId> {
        if !self.has_wakes() {
            return None; // the common case, kept inline
        }
        self.lane.poll_wake().or_else(|| self.shard.poll_wake())
    }

    /// The key of the next group the pool forgot (target 0, no live lease,
    /// no waiter), newest first; `None` when there is nothing to collect.
    ///
    /// The pool never drops a key in the middle of an operation: it keeps
    /// the keys it forgets until they are collected here, so that an adapter
    /// can drop them after unlocking (a key's `Drop` is user code). Drain it
    /// after [`set`](Self::set), [`release`](Self::release),
    /// [`cancel`](Self::cancel), [`close`](Self::close) and
    /// [`close_key`](Self::close_key). A key that is
    /// never collected is dropped when its slot is reused or the pool is
    /// dropped, so not draining costs memory (the slab cannot shrink past an
    /// uncollected key), never correctness.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set(String::from("a"), 1);
    /// pool.set(String::from("a"), 0);
    /// assert!(pool.is_empty());
    /// assert_eq!(pool.poll_forgotten().as_deref(), Some("a"));
    /// assert_eq!(pool.poll_forgotten(), None);
    /// ```
    #[must_use = "the key is dropped where the returned value is"]
    #[inline]
    pub fn poll_forgotten(&mut self) -> Option<K> {
        self.shard.poll_forgotten()
    }

    /// Asks where a waiter stands. [`Claim::Granted`] hands over its lease
    /// and [`Claim::Closed`] reports the close (of the pool or of the
    /// waiter's key); both remove the waiter, so
    /// its handle goes stale. [`Claim::Waiting`] leaves it queued.
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` was already claimed or cancelled, or
    /// belongs to another pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::new();
    /// pool.set("a", 1);
    /// let waiter = pool.enqueue().unwrap();
    /// let Ok(Claim::Granted(lease)) = pool.claim(waiter) else { panic!() };
    /// assert_eq!(lease.id(), 1);
    /// assert!(pool.claim(waiter).is_err());
    /// ```
    pub fn claim(&mut self, waiter: WaiterId) -> Result<Claim<K>, UnknownWaiter>
    where
        K: Clone,
    {
        self.claim_inner(waiter)
    }

    /// Hands the pool's room, while it has some, to the waiters the limit
    /// held back (the lane's loop, with this pool's one shard).
    pub(super) fn distribute(&mut self) {
        while self.lane.distribute_next().is_some() {
            self.lane
                .distribute_step(&mut self.shard, &mut self.next_lease);
        }
    }

    pub(super) fn claim_inner(&mut self, waiter: WaiterId) -> Result<Claim<K>, UnknownWaiter>
    where
        K: Clone,
    {
        match waiter.shard() {
            None => self.lane.claim(waiter, Some(&self.shard)),
            Some(_) => self.shard.claim(waiter),
        }
    }
}
