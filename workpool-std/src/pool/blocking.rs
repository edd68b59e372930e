//! Blocking acquisition for threads: wait, wait with a timeout, wait
//! until a deadline; for any key or one key.

use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use super::Pool;
use crate::error::{AcquireTimeoutError, Closed};
use crate::lease::Lease;
use crate::shared::Want;
use crate::Equivalent;

impl<K: Hash + Eq + Clone, S: BuildHasher> Pool<K, S> {
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
    /// # Panics
    ///
    /// If `K`'s `Clone` panics; a lease already granted to this call passes on.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// let lease = pool.acquire_blocking().unwrap();
    /// assert_eq!(lease.id(), 1);
    /// ```
    pub fn acquire_blocking(&self) -> Result<Lease<K, S>, Closed> {
        self.blocking(Want::<K>::Any, None).map_err(|_| Closed)
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
    /// # Panics
    ///
    /// If `K`'s `Hash`, `Eq` or `Clone`, or `Q`'s `to_owned`, panics; a lease already granted to this call passes on.
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
    pub fn acquire_key_blocking<Q>(&self, key: &Q) -> Result<Lease<K, S>, Closed>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
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
    /// # Panics
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
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
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Lease<K, S>, AcquireTimeoutError> {
        self.blocking(Want::<K>::Any, Instant::now().checked_add(timeout))
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
    /// # Panics
    ///
    /// As [`acquire_key_blocking`](Self::acquire_key_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// assert!(pool.acquire_key_timeout(&"spam", Duration::from_secs(1)).is_ok());
    /// ```
    pub fn acquire_key_timeout<Q>(
        &self,
        key: &Q,
        timeout: Duration,
    ) -> Result<Lease<K, S>, AcquireTimeoutError>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
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
    /// # Panics
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = workpool_std::Pool::<u8>::new();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(pool.acquire_deadline(deadline).is_err());
    /// ```
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<Lease<K, S>, AcquireTimeoutError> {
        self.blocking(Want::<K>::Any, Some(deadline))
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
    /// # Panics
    ///
    /// As [`acquire_key_blocking`](Self::acquire_key_blocking).
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
    pub fn acquire_key_deadline<Q>(
        &self,
        key: &Q,
        deadline: Instant,
    ) -> Result<Lease<K, S>, AcquireTimeoutError>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        self.blocking(Want::Key(key), Some(deadline))
    }
}
