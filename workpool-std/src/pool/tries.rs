//! `try_acquire` and `try_acquire_key`: a lease now or why not, shaped so
//! that the common case builds the lease where the caller keeps it (see
//! `docs/ARCHITECTURE.md`, "Where a lease is built").

use std::hash::{BuildHasher, Hash};

use workpool_core::Equivalent;

use super::Pool;
use crate::error::TryAcquireError;
use crate::lease::Lease;
use crate::shared::Look;

impl<K: Hash + Eq + Clone, S: BuildHasher> Pool<K, S> {
    /// Takes a lease from any key with room, without waiting. The key is
    /// picked as for [`acquire`](Self::acquire) (see "Which key" there).
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] if the pool is closed;
    /// [`TryAcquireError::NoCapacity`] if no key has room for a newcomer
    /// (capacity that an earlier waiter can use is never taken).
    ///
    /// # Panics
    ///
    /// If `K`'s `Clone` panics; nothing is granted then.
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
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Lease<K, S>, TryAcquireError> {
        // As `try_acquire_key`: the common case builds the lease in place,
        // the locks are a call away.
        match self.shared.fast_any() {
            Ok(lease) => Ok(Lease::new(&self.shared, lease)),
            Err(look) => self.try_acquire_locked(look),
        }
    }

    /// [`try_acquire`](Self::try_acquire) under the locks: shards' alone,
    /// then the lane's.
    #[inline(never)]
    fn try_acquire_locked(&self, look: Option<Look>) -> Result<Lease<K, S>, TryAcquireError> {
        match look.and_then(|look| self.shared.try_any_locked(look)) {
            Some(lease) => Ok(Lease::new(&self.shared, lease)),
            None => self.lease(self.shared.try_any_laned()),
        }
    }

    /// An any-key lease from the words the pool stocks alone (no lock, no
    /// core), if one holds a unit and nobody waits for any key. For tests
    /// that check that a unit stays visible there; not a stable API.
    #[doc(hidden)]
    pub fn try_acquire_stocked(&self) -> Option<Lease<K, S>> {
        let lease = self.shared.try_stocked_alone()?;
        Some(Lease::new(&self.shared, lease))
    }

    /// Takes a lease from `key` if it has room, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] if the pool is closed;
    /// [`TryAcquireError::NoCapacity`] if `key` has no room for a newcomer.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash`, `Eq` or `Clone` panics; nothing is granted then.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// assert!(pool.try_acquire_key(&"spam").is_ok());
    /// assert!(pool.try_acquire_key(&"eggs").is_err());
    /// ```
    #[inline(always)]
    pub fn try_acquire_key<Q>(&self, key: &Q) -> Result<Lease<K, S>, TryAcquireError>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        // The key's word, inlined into the caller, builds the lease where
        // the caller keeps it; the locks are a call away, so that the two
        // paths' leases are not merged through copies on the stack (which
        // stalled on store forwarding: 24 ns against 14 per cycle).
        let (hash, shard) = self.shared.locate(key);
        match self.shared.fast_take(hash, shard, key) {
            Ok(lease) => Ok(Lease::new(&self.shared, lease)),
            Err(()) => self.try_acquire_key_locked(hash, shard, key),
        }
    }

    /// [`try_acquire_key`](Self::try_acquire_key) under the locks.
    #[inline(never)]
    fn try_acquire_key_locked<Q>(
        &self,
        hash: u64,
        shard: usize,
        key: &Q,
    ) -> Result<Lease<K, S>, TryAcquireError>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        self.lease(self.shared.try_key_locked(hash, shard, key))
    }
}
