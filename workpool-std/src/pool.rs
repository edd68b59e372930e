//! The `Pool` handle.

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::error::{AcquireTimeoutError, Closed, TryAcquireError};
use crate::futures::{Acquire, AcquireKey, Leases};
use crate::lease::Lease;
use crate::shared::{Shared, Want};
use crate::sync::Arc;
use crate::Counts;

/// A keyed, runtime-adjustable concurrency limiter: one semaphore per key
/// whose size (the *target*) can change at any time, plus a front door that
/// hands out a lease from whichever key has room.
///
/// `Pool` is a cheap handle: clones share the same pool. It is `Send` and
/// `Sync` when `K` is `Send`.
///
/// # Fairness
///
/// Waiters are served oldest first among those that freed or added capacity
/// can serve: capacity at key `k` goes to the oldest waiter that asked for
/// `k` or for any key. Nobody barges: a new acquisition, including
/// `try_acquire*`, never takes capacity an earlier waiter could use. When
/// several keys have room, any-key grants rotate round-robin over them, so
/// with demand everywhere leases come out in proportion to the targets.
///
/// # Shrinking a target
///
/// Lowering a target revokes no lease: live leases stay valid and keep
/// counting, queued waiters stay queued, and grants resume once
/// `active < target`. With target 0 a key grants nothing and is forgotten
/// once it has no live lease and no waiter; a key that is set again later
/// still counts the leases it had.
///
/// # Memory use
///
/// Memory follows the keys and waiters that are live, not the most there
/// ever were: after a burst of waiting acquisitions or of keys the pool
/// gives the memory back once they are gone. Slots cannot move while in
/// use, so a waiter or key that outlives a burst in one of its last slots
/// holds the slots below it until it leaves (new ones take the lowest free
/// slots, so that happens only to entries from during the burst).
///
/// # Memory ordering
///
/// All state sits behind one mutex: everything a task did before releasing a
/// lease happens-before whatever the task that receives that capacity does
/// after its acquisition completes, as with a mutex hand-off.
///
/// # Examples
///
/// ```
/// use workpool_std::Pool;
///
/// # futures_lite::future::block_on(async {
/// let pool: Pool<&'static str> = Pool::new();
/// pool.set("spam", 2);
/// pool.set("eggs", 1);
/// let lease = pool.acquire().await?;
/// println!("worker {} for {}", lease.id(), lease.key());
/// drop(lease);
/// # Ok::<(), workpool_std::Closed>(())
/// # }).unwrap();
/// ```
pub struct Pool<K: Hash + Eq + Clone> {
    shared: Arc<Shared<K>>,
}

impl<K: Hash + Eq + Clone> Pool<K> {
    /// Creates an empty, open pool. Every key starts with target 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::<String>::new();
    /// assert!(!pool.is_closed());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new()),
        }
    }

    /// Sets how many leases `key` should have, at once.
    ///
    /// Raising a target grants the new room to waiters (oldest first) and
    /// wakes only those. Lowering it revokes no lease; see the type docs.
    /// Works after [`close`](Self::close) too.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash` or `Eq` panics; the pool is unchanged then and stays
    /// usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Counts, Pool};
    /// let pool = Pool::new();
    /// pool.set("spam", 2);
    /// assert_eq!(pool.counts(&"spam"), Counts { target: 2, active: 0 });
    /// ```
    pub fn set(&self, key: K, target: u64) {
        self.shared.set(key, target);
    }

    /// The target and the number of live leases of `key`;
    /// `Counts { target: 0, active: 0 }` for a key the pool does not track.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Counts, Pool};
    /// let pool = Pool::new();
    /// pool.set("spam", 2);
    /// let _lease = pool.try_acquire_key(&"spam").unwrap();
    /// assert_eq!(pool.counts(&"spam"), Counts { target: 2, active: 1 });
    /// assert_eq!(pool.counts(&"ham"), Counts { target: 0, active: 0 });
    /// ```
    pub fn counts(&self, key: &K) -> Counts {
        self.shared.counts(key)
    }

    /// How many acquisitions are waiting for `key` specifically (any-key
    /// waiters are counted by [`waiters`](Self::waiters)).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// use std::pin::pin;
    /// use futures_lite::future::poll_once;
    /// let pool = workpool_std::Pool::new();
    /// let mut waiting = pin!(pool.acquire_key(&"spam"));
    /// assert!(poll_once(&mut waiting).await.is_none());
    /// assert_eq!(pool.waiting(&"spam"), 1);
    /// # });
    /// ```
    pub fn waiting(&self, key: &K) -> usize {
        self.shared.lock().core.waiting(key)
    }

    /// How many acquisitions of either kind are waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::<u8>::new();
    /// assert_eq!(pool.waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.shared.lock().core.waiters()
    }

    /// How many keys the pool tracks (a non-zero target, a live lease or a
    /// waiter).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// assert_eq!(pool.len(), 1);
    /// pool.set("spam", 0);
    /// assert!(pool.is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.shared.lock().core.len()
    }

    /// True when the pool tracks no key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(workpool_std::Pool::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of every tracked key with its counts, in no particular
    /// order.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 2);
    /// pool.set("eggs", 1);
    /// let mut all = pool.snapshot();
    /// all.sort_by_key(|(k, _)| *k);
    /// assert_eq!(all[0].0, "eggs");
    /// assert_eq!(all[1].1.target, 2);
    /// ```
    pub fn snapshot(&self) -> Vec<(K, Counts)> {
        let state = self.shared.lock();
        state.core.iter().map(|(k, c)| (k.clone(), c)).collect()
    }

    /// Closes the pool: every waiting acquisition fails with [`Closed`] and
    /// is woken; every new one fails at once. `set`, `counts` and releases
    /// keep working, and leases already out stay valid until dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Pool, TryAcquireError};
    /// let pool = Pool::new();
    /// pool.set("spam", 1);
    /// pool.close();
    /// assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// True once [`close`](Self::close) was called on any handle.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::<u8>::new();
    /// pool.clone().close();
    /// assert!(pool.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.lock().core.is_closed()
    }

    /// Waits for a lease from any key with room.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pool is or becomes closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in the queue and
    /// passes on a lease that was already granted to it.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// let lease = pool.acquire().await.unwrap();
    /// assert_eq!(*lease.key(), "spam");
    /// # });
    /// ```
    pub fn acquire(&self) -> Acquire<'_, K> {
        Acquire::new(&self.shared)
    }

    /// Waits for a lease from `key`.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pool is or becomes closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in the queue and
    /// passes on a lease that was already granted to it.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("eggs", 1);
    /// let lease = pool.acquire_key(&"eggs").await.unwrap();
    /// assert_eq!(pool.counts(&"eggs").active, 1);
    /// # drop(lease);
    /// # });
    /// ```
    pub fn acquire_key<'a>(&'a self, key: &'a K) -> AcquireKey<'a, K> {
        AcquireKey::new(&self.shared, key)
    }

    /// Takes a lease from any key with room, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] if the pool is closed;
    /// [`TryAcquireError::NoCapacity`] if no key has room for a newcomer
    /// (capacity that an earlier waiter can use is never taken).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Pool, TryAcquireError};
    /// let pool = Pool::new();
    /// pool.set("spam", 1);
    /// let lease = pool.try_acquire().unwrap();
    /// assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    /// # drop(lease);
    /// ```
    pub fn try_acquire(&self) -> Result<Lease<K>, TryAcquireError> {
        self.lease(self.shared.try_acquire(Want::Any))
    }

    /// Takes a lease from `key` if it has room, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] if the pool is closed;
    /// [`TryAcquireError::NoCapacity`] if `key` has no room for a newcomer.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// assert!(pool.try_acquire_key(&"spam").is_ok());
    /// assert!(pool.try_acquire_key(&"eggs").is_err());
    /// ```
    pub fn try_acquire_key(&self, key: &K) -> Result<Lease<K>, TryAcquireError> {
        self.lease(self.shared.try_acquire(Want::Key(key)))
    }

    /// Blocks this thread until a lease from any key is granted.
    ///
    /// Do not call it from async code: it blocks the executor's thread, and
    /// if the lease can only come back from a task on that thread it
    /// deadlocks. Use [`acquire`](Self::acquire) there.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pool is or becomes closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// let lease = pool.acquire_blocking().unwrap();
    /// assert_eq!(lease.id(), 1);
    /// ```
    pub fn acquire_blocking(&self) -> Result<Lease<K>, Closed> {
        self.blocking(Want::Any, None).map_err(|_| Closed)
    }

    /// Blocks this thread until a lease from `key` is granted.
    ///
    /// Do not call it from async code (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pool is or becomes closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// let held = pool.acquire_key_blocking(&"spam").unwrap();
    /// let other = pool.clone();
    /// let waiter = std::thread::spawn(move || other.acquire_key_blocking(&"spam").map(|l| l.id()));
    /// drop(held); // hands the capacity to the waiting thread
    /// assert_eq!(waiter.join().unwrap(), Ok(2));
    /// ```
    pub fn acquire_key_blocking(&self, key: &K) -> Result<Lease<K>, Closed> {
        self.blocking(Want::Key(key), None).map_err(|_| Closed)
    }

    /// Blocks this thread until a lease from any key is granted or `timeout`
    /// passes.
    ///
    /// Do not call it from async code (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError::Closed`] if the pool is or becomes closed first,
    /// [`AcquireTimeoutError::Timeout`] if the time runs out first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use workpool_std::{AcquireTimeoutError, Pool};
    /// let pool = Pool::<&str>::new();
    /// let err = pool.acquire_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, AcquireTimeoutError::Timeout);
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Lease<K>, AcquireTimeoutError> {
        self.blocking(Want::Any, Instant::now().checked_add(timeout))
    }

    /// Blocks this thread until a lease from `key` is granted or `timeout`
    /// passes.
    ///
    /// Do not call it from async code (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError::Closed`] if the pool is or becomes closed first,
    /// [`AcquireTimeoutError::Timeout`] if the time runs out first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// assert!(pool.acquire_key_timeout(&"spam", Duration::from_secs(1)).is_ok());
    /// ```
    pub fn acquire_key_timeout(
        &self,
        key: &K,
        timeout: Duration,
    ) -> Result<Lease<K>, AcquireTimeoutError> {
        self.blocking(Want::Key(key), Instant::now().checked_add(timeout))
    }

    /// Blocks this thread until a lease from any key is granted or
    /// `deadline` passes.
    ///
    /// Do not call it from async code (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = workpool_std::Pool::<u8>::new();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(pool.acquire_deadline(deadline).is_err());
    /// ```
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<Lease<K>, AcquireTimeoutError> {
        self.blocking(Want::Any, Some(deadline))
    }

    /// Blocks this thread until a lease from `key` is granted or `deadline`
    /// passes.
    ///
    /// Do not call it from async code (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Errors
    ///
    /// As [`acquire_key_timeout`](Self::acquire_key_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = workpool_std::Pool::new();
    /// pool.set(1u8, 1);
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// assert!(pool.acquire_key_deadline(&1, deadline).is_ok());
    /// ```
    pub fn acquire_key_deadline(
        &self,
        key: &K,
        deadline: Instant,
    ) -> Result<Lease<K>, AcquireTimeoutError> {
        self.blocking(Want::Key(key), Some(deadline))
    }

    /// A stream of leases from any key, ending when the pool closes: spawn a
    /// worker for each item (the Go package's lease channel, in Rust form).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::StreamExt;
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 2);
    /// let mut leases = pool.leases();
    /// let a = leases.next().await.unwrap();
    /// let b = leases.next().await.unwrap();
    /// pool.close();
    /// assert!(leases.next().await.is_none());
    /// assert_eq!((a.id(), b.id()), (1, 2));
    /// # });
    /// ```
    pub fn leases(&self) -> Leases<K> {
        Leases::new(Arc::clone(&self.shared))
    }

    fn lease<E>(&self, granted: Result<workpool_core::Lease<K>, E>) -> Result<Lease<K>, E> {
        granted.map(|lease| Lease::new(Arc::clone(&self.shared), lease))
    }

    fn blocking(
        &self,
        want: Want<'_, K>,
        deadline: Option<Instant>,
    ) -> Result<Lease<K>, AcquireTimeoutError> {
        self.lease(self.shared.acquire_blocking(want, deadline))
    }
}

impl<K: Hash + Eq + Clone> Clone for Pool<K> {
    /// Another handle to the same pool.
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K: Hash + Eq + Clone> Default for Pool<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone> fmt::Debug for Pool<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pool").field(&self.shared).finish()
    }
}
