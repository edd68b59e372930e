//! Weighted acquisitions: `n` units of one key in one lease, as tokio's
//! `acquire_many`.
//!
//! A key's target counts units; an ordinary lease holds one. The queue of
//! a key is strictly first come, first served: a waiter for `n` units at
//! its head is served before any later waiter of the key, even one that
//! asks for fewer units, so a large request is never starved, and a large
//! request at the head holds back the smaller ones behind it until its
//! units are free (while a pool-wide limit binds, it holds back later
//! waiters of every key the same way). `try_` never barges past it.
//!
//! `n == 0` is granted at once, even while others wait, with a lease of no
//! units (unless the pool is closed). `n` above the key's current target
//! waits (the target may be raised); `try_` answers `NoCapacity`. One lease
//! holds at most [`MAX_UNITS`](workpool_core::Lease::MAX_UNITS) (`u32::MAX`)
//! units: `try_` answers `NoCapacity` for more, and the waiting forms fail
//! at once with `Closed`, since no wait could ever serve them.

use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use super::Pool;
use crate::error::{AcquireTimeoutError, Closed, TryAcquireError};
use crate::futures::{AcquireKeyMany, AcquireKeyManyOwned};
use crate::lease::Lease;
use crate::shared::{KeyQuery, Want};
use crate::sync::Arc;
use crate::Equivalent;

impl<K: Hash + Eq + Clone, S: BuildHasher> Pool<K, S> {
    /// Waits for a lease of `n` units of `key` (see the weighted rules on
    /// [`AcquireKeyMany`]): `active + n <= target` for the key and, with a
    /// pool-wide limit, `n` units of room in the pool.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pool is or becomes closed first, or `key` is
    /// closed with [`close_key`](Self::close_key) while it waits; also, at
    /// once, for `n` above
    /// [`MAX_UNITS`](workpool_core::Lease::MAX_UNITS), which no lease can
    /// hold.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash`, `Eq` or `Clone` panics; nothing is granted then.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in the queue,
    /// and a lease already granted to it (all its units) is passed on.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("db", 4);
    /// let lease = pool.acquire_key_many(&"db", 4).await?;
    /// assert_eq!((lease.units(), pool.counts(&"db").active), (4, 4));
    /// # Ok::<(), workpool_std::Closed>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire_key_many<'a, Q>(&'a self, key: &'a Q, n: u64) -> AcquireKeyMany<'a, K, Q, S>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        AcquireKeyMany::new(&self.shared, key, n)
    }

    /// Takes a lease of `n` units of `key` if they fit now, without
    /// waiting and without passing any earlier waiter of the key (nor,
    /// while a limit binds, of any key). `n == 0` always succeeds on an
    /// open pool.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] if the pool is closed;
    /// [`TryAcquireError::NoCapacity`] if the units do not fit now
    /// (including `n` above the target, and above
    /// [`MAX_UNITS`](workpool_core::Lease::MAX_UNITS)).
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash`, `Eq` or `Clone` panics; nothing is granted then.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Pool, TryAcquireError};
    /// let pool = Pool::new();
    /// pool.set("db", 4);
    /// let three = pool.try_acquire_key_many(&"db", 3).unwrap();
    /// let err = pool.try_acquire_key_many(&"db", 2).unwrap_err();
    /// assert_eq!(err, TryAcquireError::NoCapacity);
    /// assert_eq!(pool.try_acquire_key_many(&"db", 0).unwrap().units(), 0);
    /// # drop(three);
    /// ```
    pub fn try_acquire_key_many<Q>(&self, key: &Q, n: u64) -> Result<Lease<K, S>, TryAcquireError>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        if n == 1 {
            // One unit is an ordinary key acquisition, word included.
            return self.try_acquire_key(key);
        }
        let (hash, shard) = self.shared.locate(key);
        self.lease_units(self.shared.try_key_many_locked(hash, shard, key, n))
    }

    /// Blocks this thread until a lease of `n` units of `key` is granted.
    ///
    /// Do not call it from async code: it blocks the executor's thread, and
    /// can deadlock if the lease it waits for must be released by a task
    /// of that thread.
    ///
    /// # Errors
    ///
    /// As [`acquire_key_many`](Self::acquire_key_many).
    ///
    /// # Panics
    ///
    /// As [`acquire_key_many`](Self::acquire_key_many).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("db", 4);
    /// let held = pool.try_acquire_key_many(&"db", 3).unwrap();
    /// let other = pool.clone();
    /// let waiter = std::thread::spawn(move || {
    ///     other.acquire_key_many_blocking(&"db", 2).map(|l| l.units())
    /// });
    /// drop(held); // frees 3 units: the waiting thread takes 2
    /// assert_eq!(waiter.join().unwrap(), Ok(2));
    /// ```
    pub fn acquire_key_many_blocking<Q>(&self, key: &Q, n: u64) -> Result<Lease<K, S>, Closed>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        self.blocking_units(Want::KeyMany(key, n), None)
            .map_err(|_| Closed)
    }

    /// Blocks this thread until a lease of `n` units of `key` is granted or
    /// `timeout` passes.
    ///
    /// Do not call it from async code (see
    /// [`acquire_key_many_blocking`](Self::acquire_key_many_blocking)).
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError::Closed`] as
    /// [`acquire_key_many`](Self::acquire_key_many) fails with `Closed`;
    /// [`AcquireTimeoutError::Timeout`] if the time runs out first.
    ///
    /// # Panics
    ///
    /// As [`acquire_key_many`](Self::acquire_key_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use workpool_std::{AcquireTimeoutError, Pool};
    /// let pool = Pool::new();
    /// pool.set("db", 2);
    /// let err = pool.acquire_key_many_timeout(&"db", 3, Duration::from_millis(5));
    /// assert_eq!(err.unwrap_err(), AcquireTimeoutError::Timeout); // 3 > target
    /// ```
    pub fn acquire_key_many_timeout<Q>(
        &self,
        key: &Q,
        n: u64,
        timeout: Duration,
    ) -> Result<Lease<K, S>, AcquireTimeoutError>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        self.blocking_units(Want::KeyMany(key, n), Instant::now().checked_add(timeout))
    }

    /// Blocks this thread until a lease of `n` units of `key` is granted or
    /// `deadline` passes.
    ///
    /// Do not call it from async code (see
    /// [`acquire_key_many_blocking`](Self::acquire_key_many_blocking)).
    ///
    /// # Errors
    ///
    /// As [`acquire_key_many_timeout`](Self::acquire_key_many_timeout).
    ///
    /// # Panics
    ///
    /// As [`acquire_key_many`](Self::acquire_key_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = workpool_std::Pool::new();
    /// pool.set("db", 4);
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(pool.acquire_key_many_deadline(&"db", 4, deadline).unwrap().units(), 4);
    /// ```
    pub fn acquire_key_many_deadline<Q>(
        &self,
        key: &Q,
        n: u64,
        deadline: Instant,
    ) -> Result<Lease<K, S>, AcquireTimeoutError>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        self.blocking_units(Want::KeyMany(key, n), Some(deadline))
    }

    /// A `'static` future for a lease of `n` units of `key`, which it owns:
    /// [`acquire_key_many`](Self::acquire_key_many) that can be spawned or
    /// stored. It does not keep the pool open.
    ///
    /// # Errors
    ///
    /// The future fails as [`acquire_key_many`](Self::acquire_key_many)
    /// does, and with [`Closed`] once the last handle is dropped.
    ///
    /// # Panics
    ///
    /// As [`acquire_key_many`](Self::acquire_key_many), when polled.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire_key_many`](Self::acquire_key_many)'s.
    ///
    /// # Examples
    ///
    /// See [`AcquireKeyManyOwned`].
    pub fn acquire_key_many_owned(&self, key: K, n: u64) -> AcquireKeyManyOwned<K, S> {
        AcquireKeyManyOwned::new(Arc::clone(&self.shared), key, n)
    }

    /// A weighted lease, which may hold no units (see `Lease::new_units`).
    fn lease_units<E>(
        &self,
        granted: Result<workpool_core::Lease<K>, E>,
    ) -> Result<Lease<K, S>, E> {
        granted.map(|lease| Lease::new_units(&self.shared, lease))
    }

    fn blocking_units<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
        deadline: Option<Instant>,
    ) -> Result<Lease<K, S>, AcquireTimeoutError> {
        self.lease_units(self.shared.acquire_blocking(want, deadline))
    }
}
