//! A spin-locked pool for no_std code shared between contexts.

use core::fmt;
use core::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, Equivalent};

use crate::error::{ReleaseError, TryAcquireError};
use crate::lease::{Counts, Lease};
use crate::pool::Pool;

/// A [`Pool`] behind a spin lock, usable through `&self` from several
/// contexts (threads, interrupt handlers with care, executors without std).
///
/// Access is closure-scoped ([`with`](Self::with)), so no guard can be held
/// across an `.await`; the lock is released by a drop guard, so a panic inside
/// the closure still unlocks it. Spinning burns the CPU the lock holder may
/// need: on an OS with threads, prefer `workpool-std`, which uses a real mutex.
///
/// # Examples
///
/// ```
/// use workpool_core::SharedPool;
/// let pool = SharedPool::new();
/// pool.set("a", 1);
/// let lease = pool.try_acquire().unwrap();
/// assert_eq!(pool.counts(&"a").active, 1);
/// pool.release(lease).unwrap();
/// ```
pub struct SharedPool<K, S = DefaultHashBuilder> {
    inner: spin::Mutex<Pool<K, S>>,
}

impl<K: Hash + Eq + Clone> SharedPool<K> {
    /// Creates an empty, open shared pool with the default hasher.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::<u32>::new();
    /// assert!(!pool.is_closed());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::from_pool(Pool::new())
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> SharedPool<K, S> {
    /// Wraps an existing pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Pool, SharedPool};
    /// let mut pool = Pool::new();
    /// pool.set(1u8, 2);
    /// let shared = SharedPool::from_pool(pool);
    /// assert_eq!(shared.counts(&1).target, 2);
    /// ```
    #[must_use]
    pub fn from_pool(pool: Pool<K, S>) -> Self {
        Self {
            inner: spin::Mutex::new(pool),
        }
    }

    /// Runs `f` with exclusive access to the pool and returns its result.
    /// Every [`Pool`] operation is available inside; the lock is held only
    /// for the call.
    ///
    /// # Panics
    ///
    /// Only if `f` panics; the lock is released all the same.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::new();
    /// let waiter = pool.with(|p| {
    ///     p.set("a", 1);
    ///     p.enqueue().unwrap()
    /// });
    /// assert!(matches!(pool.with(|p| p.claim(waiter)), Ok(workpool_core::Claim::Granted(_))));
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut Pool<K, S>) -> R) -> R {
        let mut guard = self.inner.lock();
        f(&mut guard)
    }

    /// [`Pool::set`] under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::new();
    /// pool.set("a", 3);
    /// assert_eq!(pool.counts(&"a").target, 3);
    /// ```
    ///
    /// A key the pool does not keep, or forgets, is dropped after the lock
    /// is released.
    pub fn set(&self, key: K, target: u64) {
        // Declared before the lock's guard: an unused key, and the key
        // when its `Hash` or `Eq` panics, is dropped after unlocking.
        let mut key = Some(key);
        self.with(|p| p.set_in(&mut key, target));
        drop(key);
        self.drop_forgotten();
    }

    /// [`Pool::counts`] under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::<&str>::new();
    /// assert_eq!(pool.counts(&"a"), workpool_core::Counts::default());
    /// ```
    pub fn counts(&self, key: &K) -> Counts {
        self.with(|p| p.counts(key))
    }

    /// [`Pool::try_acquire`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Pool::try_acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::<&str>::new();
    /// assert!(pool.try_acquire().is_err());
    /// ```
    pub fn try_acquire(&self) -> Result<Lease<K>, TryAcquireError> {
        self.with(Pool::try_acquire)
    }

    /// [`Pool::try_acquire_key`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Pool::try_acquire_key`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::new();
    /// pool.set("a", 1);
    /// assert!(pool.try_acquire_key(&"a").is_ok());
    /// ```
    pub fn try_acquire_key(&self, key: &K) -> Result<Lease<K>, TryAcquireError> {
        self.with(|p| p.try_acquire_key(key))
    }

    /// [`Pool::try_acquire_key_many`] under the lock: a lease of `n` units
    /// of `key`.
    ///
    /// # Errors
    ///
    /// As [`Pool::try_acquire_key_many`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::new();
    /// pool.set("a", 4);
    /// assert_eq!(pool.try_acquire_key_many(&"a", 3).unwrap().units(), 3);
    /// assert!(pool.try_acquire_key_many(&"a", 2).is_err());
    /// ```
    pub fn try_acquire_key_many(&self, key: &K, n: u64) -> Result<Lease<K>, TryAcquireError> {
        self.with(|p| p.try_acquire_key_many(key, n))
    }

    /// [`Pool::split`] under the lock: `n` units of `lease` into a new
    /// lease of its key (the key is cloned under the lock).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::new();
    /// pool.set("a", 4);
    /// let mut lease = pool.try_acquire_key_many(&"a", 4).unwrap();
    /// let part = pool.split(&mut lease, 1).unwrap();
    /// assert_eq!((lease.units(), part.units()), (3, 1));
    /// ```
    #[must_use]
    pub fn split(&self, lease: &mut Lease<K>, n: u64) -> Option<Lease<K>> {
        self.with(|p| p.split(lease, n))
    }

    /// [`Pool::release`] under the lock. Waiters it serves are reported by
    /// [`Pool::poll_wake`] (reach it through [`with`](Self::with)). The
    /// lease's key, and any key the pool forgets, are dropped after the lock
    /// is released.
    ///
    /// # Errors
    ///
    /// As [`Pool::release`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire().unwrap();
    /// pool.release(lease).unwrap();
    /// assert_eq!(pool.counts(&"a").active, 0);
    /// ```
    pub fn release(&self, lease: Lease<K>) -> Result<(), ReleaseError<K>> {
        let key = self.with(|p| p.release(lease))?;
        drop(key);
        self.drop_forgotten();
        Ok(())
    }

    /// [`Pool::close`] under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::<u8>::new();
    /// pool.close();
    /// assert!(pool.is_closed());
    /// ```
    pub fn close(&self) {
        self.with(Pool::close);
        self.drop_forgotten();
    }

    /// [`Pool::set_limit`] under the lock. Waiters it serves are reported
    /// by [`Pool::poll_wake`] (reach it through [`with`](Self::with)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::<&str>::new();
    /// pool.set_limit(Some(2));
    /// assert_eq!(pool.limit(), Some(2));
    /// ```
    pub fn set_limit(&self, limit: Option<u64>) {
        self.with(|p| p.set_limit(limit));
    }

    /// [`Pool::limit`] under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(workpool_core::SharedPool::<u8>::new().limit(), None);
    /// ```
    pub fn limit(&self) -> Option<u64> {
        self.with(|p| p.limit())
    }

    /// [`Pool::active`] under the lock: live leases over all keys.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::SharedPool::new();
    /// pool.set("a", 1);
    /// let lease = pool.with(|p| p.try_acquire()).unwrap();
    /// assert_eq!(pool.active(), 1);
    /// # pool.release(lease).unwrap();
    /// ```
    pub fn active(&self) -> u64 {
        self.with(|p| p.active())
    }

    /// [`Pool::close_key`] under the lock. The waiters it fails are reported
    /// by [`Pool::poll_wake`] (reach it through [`with`](Self::with)); a key
    /// the pool forgets is dropped after the lock is released.
    ///
    /// # Panics
    ///
    /// If `Q`'s `Hash` or `Eq` panics (the lock is released and the pool
    /// is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, SharedPool};
    /// let pool = SharedPool::<&str>::new();
    /// let waiter = pool.with(|p| p.enqueue_key(&"a")).unwrap();
    /// pool.close_key(&"a");
    /// assert_eq!(pool.with(|p| p.poll_wake()), Some(waiter));
    /// assert!(matches!(pool.with(|p| p.claim(waiter)), Ok(Claim::Closed)));
    /// assert!(pool.with(|p| p.is_empty()));
    /// ```
    pub fn close_key<Q>(&self, key: &Q)
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        self.with(|p| p.close_key(key));
        self.drop_forgotten();
    }

    /// [`Pool::is_closed`] under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!workpool_core::SharedPool::<u8>::new().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.with(|p| p.is_closed())
    }

    /// Collects the keys the pool forgot and drops each one outside the
    /// lock, so a key's `Drop` never runs while the lock is held.
    fn drop_forgotten(&self) {
        while let Some(key) = self.with(Pool::poll_forgotten) {
            drop(key);
        }
    }
}

impl<K: Hash + Eq + Clone> Default for SharedPool<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, S> fmt::Debug for SharedPool<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_lock() {
            Some(pool) => f.debug_tuple("SharedPool").field(&*pool).finish(),
            None => f.write_str("SharedPool(<locked>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use alloc::format;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::SharedPool;
    use crate::{Claim, Counts};

    #[test]
    fn a_panic_inside_with_releases_the_lock() {
        let pool = SharedPool::new();
        pool.set("a", 2);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.with(|p| {
                p.set("a", 3);
                panic!("the closure panics");
            })
        }));
        assert!(caught.is_err());
        // The lock is free again and the change made before the panic stands.
        assert_eq!(
            pool.counts(&"a"),
            Counts {
                target: 3,
                active: 0
            }
        );
        let lease = pool.try_acquire_key(&"a").unwrap();
        pool.release(lease).unwrap();
    }

    #[test]
    fn debug_does_not_block_while_locked() {
        let pool = SharedPool::<&str>::new();
        let inside = pool.with(|_| format!("{pool:?}"));
        assert_eq!(inside, "SharedPool(<locked>)");
        assert!(format!("{pool:?}").starts_with("SharedPool(Pool {"));
    }

    #[test]
    fn waiters_work_through_with() {
        let pool = SharedPool::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let waiter = pool.with(|p| p.enqueue_key(&"a")).unwrap();
        pool.release(lease).unwrap();
        assert_eq!(pool.with(|p| p.poll_wake()), Some(waiter));
        assert!(matches!(
            pool.with(|p| p.claim(waiter)),
            Ok(Claim::Granted(_))
        ));
        pool.close();
        assert!(pool.is_closed());
        assert!(pool.try_acquire().is_err());
        assert_eq!(
            pool.counts(&"a"),
            Counts {
                target: 1,
                active: 1
            }
        );
    }
}
