//! The `'static` acquire futures, which own what they need (the key too)
//! so that they can be spawned or stored.

use std::hash::{BuildHasher, Hash};

use super::Pool;
use crate::futures::{AcquireKeyOwned, AcquireOwned};
use crate::sync::Arc;

impl<K: Hash + Eq + Clone, S: BuildHasher> Pool<K, S> {
    /// Waits for a lease from any key with room, in a future that owns what
    /// it needs: it is `'static` (when `K` and `S` are), so it can be
    /// spawned as a task or stored in a struct.
    ///
    /// It behaves as [`acquire`](Self::acquire) in every other way, and
    /// waits in the same fair queue. It does not keep the pool open: if the
    /// last `Pool` handle is dropped while it waits, it fails with
    /// [`Closed`](crate::Closed).
    ///
    /// # Errors
    ///
    /// [`Closed`](crate::Closed) if the pool is or becomes closed first, also by dropping
    /// its last handle.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in the queue and
    /// passes on a lease that was already granted to it.
    ///
    /// # Panics
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// let held = pool.try_acquire().unwrap();
    /// let task = tokio::spawn(pool.acquire_owned()); // borrows nothing
    /// drop(held);
    /// let lease = task.await.unwrap().unwrap();
    /// assert_eq!((lease.id(), *lease.key()), (2, "spam"));
    /// # });
    /// ```
    pub fn acquire_owned(&self) -> AcquireOwned<K, S> {
        AcquireOwned::new(Arc::clone(&self.shared))
    }

    /// Waits for a lease from `key`, in a future that owns `key` and what
    /// else it needs: it is `'static` (when `K` and `S` are), so it can be
    /// spawned as a task or stored in a struct, and it is `Send` when `K`
    /// is (the borrowed [`acquire_key`](Self::acquire_key) needs `K: Sync`
    /// for that, and a key that lives at least as long as the future).
    ///
    /// It behaves as `acquire_key` in every other way, and waits in the same
    /// fair queue. It does not keep the pool open: if the last `Pool` handle
    /// is dropped while it waits, it fails with [`Closed`](crate::Closed).
    ///
    /// # Errors
    ///
    /// [`Closed`](crate::Closed) if the pool is or becomes closed first, also by dropping
    /// its last handle.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in the queue and
    /// passes on a lease that was already granted to it.
    ///
    /// # Panics
    ///
    /// As [`acquire_key`](Self::acquire_key).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool: workpool_std::Pool<String> = workpool_std::Pool::new();
    /// let name = 7;
    /// pool.set(format!("proxy-{name}"), 1);
    /// // A temporary key: the future owns it.
    /// let lease = pool.acquire_key_owned(format!("proxy-{name}")).await.unwrap();
    /// assert_eq!(lease.key(), "proxy-7");
    /// # });
    /// ```
    pub fn acquire_key_owned(&self, key: K) -> AcquireKeyOwned<K, S> {
        AcquireKeyOwned::new(Arc::clone(&self.shared), key)
    }
}
