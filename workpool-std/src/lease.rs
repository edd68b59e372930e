//! The RAII lease guard.

use std::fmt;

use crate::shared::Shared;
use crate::sync::Arc;
use crate::DefaultHashBuilder;

/// One unit of a key's capacity, held until dropped.
///
/// Dropping the lease (or calling [`release`](Self::release)) gives the
/// capacity back at once: the oldest waiter that can use it is granted it and
/// woken. A worker that panics while holding a lease gives it back during
/// unwinding. The lease owns a reference to its pool's shared state, so it is
/// `'static` and can move into a spawned task; it is `Send` and `Sync` when
/// `K` is. It is not a [`Pool`](crate::Pool) handle: it does not keep the
/// pool open, and stays valid (and can be dropped as usual) after the last
/// handle is gone.
///
/// # Examples
///
/// ```
/// use workpool_std::Pool;
///
/// let pool = Pool::new();
/// pool.set("spam", 1);
/// let lease = pool.try_acquire().unwrap();
/// assert_eq!((lease.id(), *lease.key()), (1, "spam"));
/// let worker = std::thread::spawn(move || {
///     // ... work while holding the lease ...
///     drop(lease);
/// });
/// worker.join().unwrap();
/// assert_eq!(pool.counts(&"spam").active, 0);
/// ```
#[must_use = "dropping a lease releases it at once"]
#[clippy::has_significant_drop]
pub struct Lease<K, S = DefaultHashBuilder> {
    shared: Arc<Shared<K, S>>,
    /// Always `Some` until dropped.
    inner: Option<workpool_core::Lease<K>>,
}

impl<K, S> Lease<K, S> {
    pub(crate) fn new(shared: Arc<Shared<K, S>>, inner: workpool_core::Lease<K>) -> Self {
        Self {
            shared,
            inner: Some(inner),
        }
    }

    fn inner(&self) -> &workpool_core::Lease<K> {
        self.inner.as_ref().expect("a lease is live until dropped")
    }

    /// The lease id: unique within its pool, strictly increasing in grant
    /// order, starting at 1 and never 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set(7u32, 2);
    /// let a = pool.try_acquire().unwrap();
    /// let b = pool.try_acquire().unwrap();
    /// assert!(a.id() < b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.inner().id()
    }

    /// The key whose capacity this lease holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("eggs", 1);
    /// assert_eq!(*pool.try_acquire().unwrap().key(), "eggs");
    /// ```
    pub fn key(&self) -> &K {
        self.inner().key()
    }

    /// Gives the capacity back now; the same as dropping the lease.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("eggs", 1);
    /// let lease = pool.try_acquire().unwrap();
    /// lease.release();
    /// assert!(pool.try_acquire().is_ok());
    /// ```
    pub fn release(self) {
        drop(self);
    }
}

impl<K, S> Drop for Lease<K, S> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            self.shared.release(inner);
        }
    }
}

impl<K: fmt::Debug, S> fmt::Debug for Lease<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id())
            .field("key", self.key())
            .finish()
    }
}
