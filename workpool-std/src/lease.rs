//! The RAII lease guard.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::futures::Surplus;
use crate::shared::{unref, Shared};
use crate::sync::Arc;
use crate::DefaultHashBuilder;

/// One unit of a key's capacity (or, from
/// [`acquire_key_many`](crate::Pool::acquire_key_many) and its kin, `n`
/// units of it), held until dropped.
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
    /// The pool's shared state (`Arc::as_ptr` of its `Arc`), kept alive by
    /// the count its shard holds for its leases, not by one of the lease's
    /// own (see the `keepalive` module of `shared`).
    shared: NonNull<Shared<K, S>>,
    /// Always `Some` until dropped.
    inner: Option<workpool_core::Lease<K>>,
    /// Owns a share of the pool as an `Arc` would (for auto traits and drop
    /// check).
    _pool: PhantomData<Arc<Shared<K, S>>>,
}

// SAFETY: a lease is, to other threads, what an `Arc<Shared>` and a core
// lease are: the pointer is shared state that the shard's count keeps
// alive, reached only through `&Shared` (whose methods lock), so the bounds
// are those that make `Arc<Shared<K, S>>` and `K` (the lease's key) `Send`.
unsafe impl<K: Send, S: Send + Sync> Send for Lease<K, S> {}
// SAFETY: `&Lease` gives `&K` and `&Shared` only, as `&Arc<Shared>` and
// `&K` would.
unsafe impl<K: Send + Sync, S: Send + Sync> Sync for Lease<K, S> {}

impl<K, S> Lease<K, S> {
    /// A lease of the pool behind `shared`, made by a caller that holds
    /// `shared` (so its shard can take a count of it).
    #[inline]
    pub(crate) fn new(shared: &Arc<Shared<K, S>>, inner: workpool_core::Lease<K>) -> Self {
        debug_assert_ne!(
            inner.units(),
            0,
            "a lease of no units is made by `new_units`"
        );
        shared.hold(inner.shard());
        Self::held(shared, inner)
    }

    /// [`new`](Self::new) for a weighted acquisition, whose lease may hold
    /// no units (kept apart so that the one-unit paths stay small).
    pub(crate) fn new_units(shared: &Arc<Shared<K, S>>, inner: workpool_core::Lease<K>) -> Self {
        if inner.units() == 0 {
            hold_own(shared);
        } else {
            shared.hold(inner.shard());
        }
        Self::held(shared, inner)
    }

    /// The lease, once the pool's memory is held for it.
    #[inline]
    fn held(shared: &Arc<Shared<K, S>>, inner: workpool_core::Lease<K>) -> Self {
        Self {
            shared: NonNull::new(Arc::as_ptr(shared).cast_mut()).expect("an Arc is never null"),
            inner: Some(inner),
            _pool: PhantomData,
        }
    }

    pub(crate) fn inner(&self) -> &workpool_core::Lease<K> {
        self.inner.as_ref().expect("a lease is live until dropped")
    }

    pub(crate) fn shared(&self) -> &Shared<K, S> {
        // SAFETY: while this lease is live its shard holds a count of the
        // pool's `Arc` (see `keepalive`), so the pointer is valid.
        unsafe { self.shared.as_ref() }
    }

    /// The lease id: unique within its pool and never 0; strictly
    /// increasing in grant order **within a key**. Across keys ids are only
    /// unique: two keys' ids say nothing about which lease came first.
    ///
    /// (Each shard of keys numbers its own grants from blocks of ids it
    /// reserves from the pool, so that a key's grant writes no counter
    /// that other keys write; one pool-wide counter cost 10–25% of the
    /// contended keyed cases.) A lease handed to a waiting acquisition gets
    /// its id when it is handed over, so within a key ids follow the order
    /// of the hand-offs, which is the queue's order.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set(7u32, 2);
    /// pool.set(8u32, 1);
    /// let a = pool.try_acquire_key(&7).unwrap();
    /// let b = pool.try_acquire_key(&7).unwrap();
    /// assert!(a.id() < b.id()); // one key: grant order
    /// let c = pool.try_acquire_key(&8).unwrap();
    /// assert!(c.id() != a.id() && c.id() != b.id()); // another key: unique
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

    /// How many units of its key the lease holds: 1 for a lease of any
    /// one-unit acquisition, `n` for one of
    /// [`acquire_key_many`](crate::Pool::acquire_key_many) and its kin, 0
    /// for a lease of no units (which counts nowhere, is never surplus and
    /// frees nothing when dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("db", 5);
    /// assert_eq!(pool.try_acquire_key(&"db").unwrap().units(), 1);
    /// assert_eq!(pool.try_acquire_key_many(&"db", 4).unwrap().units(), 4);
    /// ```
    pub fn units(&self) -> u64 {
        self.inner().units()
    }

    /// Moves `other`'s units into this lease, which keeps its id; `other`
    /// ends without freeing anything (a merge frees nothing and changes no
    /// count). Takes no lock.
    ///
    /// # Errors
    ///
    /// `other`, unchanged, if it is a lease of another pool or another key
    /// (or if the sum would exceed
    /// [`MAX_UNITS`](workpool_core::Lease::MAX_UNITS)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("db", 4);
    /// pool.set("web", 1);
    /// let mut lease = pool.try_acquire_key_many(&"db", 3).unwrap();
    /// lease.merge(pool.try_acquire_key(&"db").unwrap()).unwrap();
    /// assert_eq!(lease.units(), 4);
    /// let web = pool.try_acquire_key(&"web").unwrap();
    /// let web = lease.merge(web).unwrap_err(); // another key: back unchanged
    /// assert_eq!((*web.key(), web.units()), ("web", 1));
    /// ```
    pub fn merge(&mut self, mut other: Self) -> Result<(), Self>
    where
        K: PartialEq,
    {
        if self.shared != other.shared {
            return Err(other);
        }
        let theirs = other.inner.take().expect("a lease is live until dropped");
        let empty = self.units() == 0 || theirs.units() == 0;
        let ours = self.inner.as_mut().expect("a lease is live until dropped");
        match ours.merge(theirs) {
            Ok(()) => {
                if empty {
                    // One lease of no units' own count goes: a lease of no
                    // units that took in units no longer needs its count
                    // (its shard's keeps the pool), and one merged away
                    // took its count with it. Not the last count: the
                    // lease left holds one, or its shard does.
                    // SAFETY: the count is one a lease of no units took in
                    // `new`; no lock is held.
                    unsafe { unref(self.shared.as_ptr().cast_const()) };
                }
                Ok(())
            }
            Err(theirs) => {
                other.inner = Some(theirs);
                Err(other)
            }
        }
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

impl<K: std::hash::Hash + Eq + Clone, S: std::hash::BuildHasher> Lease<K, S> {
    /// Splits `n` units off this lease into a new lease of the same key,
    /// with a fresh id by the rule of [`id`](Self::id) (above every id of
    /// the key granted before). Nothing is freed and no count changes;
    /// dropping either part frees its units (and serves waiters then).
    ///
    /// Returns `None`, changing nothing, unless `0 < n < self.units()`.
    ///
    /// # Panics
    ///
    /// If `K`'s `Clone` or `Hash` panics (then nothing changed). The key
    /// is cloned before any lock is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("db", 4);
    /// let mut lease = pool.try_acquire_key_many(&"db", 4).unwrap();
    /// let part = lease.split(1).unwrap();
    /// assert_eq!((lease.units(), part.units()), (3, 1));
    /// drop(part); // frees its one unit
    /// assert_eq!(pool.counts(&"db").active, 3);
    /// assert!(lease.split(3).is_none()); // not fewer than it holds
    /// ```
    pub fn split(&mut self, n: u64) -> Option<Self> {
        if n == 0 || n >= self.units() {
            return None;
        }
        let key = self.key().clone();
        let ptr = self.shared;
        // SAFETY: as in `shared`: this lease's units keep its shard's
        // count of the pool, so the pointer is valid while `self` lives;
        // the reference does not outlive this call.
        let shared = unsafe { ptr.as_ref() };
        let inner = self.inner.as_mut().expect("a lease is live until dropped");
        let part = shared.split(inner, n)?;
        // The shard holds its count already (this lease's units are in it).
        shared.hold(part.shard());
        Some(Self {
            shared: ptr,
            inner: Some(part.with_key(key)),
            _pool: PhantomData,
        })
    }

    /// True when the lease is *surplus* now: its key has more live leases
    /// than its target (the target was lowered), or the pool more than its
    /// [limit](crate::Pool::set_limit). A worker that sees this should
    /// leave, so that the pool shrinks to its new size; see
    /// [`release_if_surplus`](Self::release_if_surplus).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("a", 2);
    /// let lease = pool.try_acquire().unwrap();
    /// assert!(!lease.is_surplus());
    /// pool.set("a", 0);
    /// assert!(lease.is_surplus());
    /// ```
    pub fn is_surplus(&self) -> bool {
        self.shared().is_surplus(self.inner())
    }

    /// Releases the lease only while it is surplus, deciding and releasing
    /// atomically: with 5 holders and the target lowered from 5 to 2,
    /// exactly 3 calls succeed, and the other 2 get their lease back
    /// (`Err`) and keep working.
    ///
    /// # Errors
    ///
    /// The lease itself, unchanged, when it is not surplus.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("a", 5);
    /// let leases: Vec<_> = (0..5).map(|_| pool.try_acquire().unwrap()).collect();
    /// pool.set("a", 2);
    /// let kept: Vec<_> = leases
    ///     .into_iter()
    ///     .filter_map(|lease| lease.release_if_surplus().err())
    ///     .collect();
    /// assert_eq!(kept.len(), 2);
    /// assert_eq!(pool.counts("a").active, 2);
    /// ```
    pub fn release_if_surplus(mut self) -> Result<(), Self> {
        let inner = self.inner.take().expect("a lease is live until dropped");
        let shared = self.shared.as_ptr().cast_const();
        match self.shared().release_if_surplus(inner) {
            Ok(unref_it) => {
                if unref_it {
                    // SAFETY: as in `drop`: the shard gave up its count, no
                    // lock is held, and `self` (its `inner` taken) drops
                    // without touching the pool.
                    unsafe { unref(shared) };
                }
                Ok(())
            }
            Err(inner) => {
                self.inner = Some(inner);
                Err(self)
            }
        }
    }

    /// A future that resolves once the lease is surplus (see
    /// [`is_surplus`](Self::is_surplus)), or became surplus at some moment
    /// since it was first polled: a worker awaits it beside its work and
    /// leaves when it resolves. Waking the holders of a key that shrank
    /// costs O(holders woken); nobody else pays for it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it only stops watching.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire().unwrap();
    /// let leave = lease.surplus();
    /// pool.set("a", 0);
    /// leave.await;
    /// lease.release_if_surplus().unwrap();
    /// # });
    /// ```
    pub fn surplus(&self) -> Surplus<'_, K, S> {
        Surplus::new(self)
    }
}

impl<K, S> Drop for Lease<K, S> {
    #[inline]
    fn drop(&mut self) {
        // The common case reads the lease where it is: moving it out first
        // copied it with loads wider than the stores that wrote it, which
        // stalled on store forwarding.
        if let Some(inner) = &self.inner {
            if self.shared().fast_release(inner) {
                // Its unit is back in its key's word; the key (a clone)
                // goes with the field, without touching the pool.
                return;
            }
        }
        self.release_slow();
    }
}

impl<K, S> Lease<K, S> {
    /// The rest of the drop, out of line so that the common case inlines
    /// into the caller: under the shard's lock.
    #[inline(never)]
    fn release_slow(&mut self) {
        if let Some(inner) = self.inner.take() {
            let shared = self.shared.as_ptr().cast_const();
            if inner.units() == 0 {
                // SAFETY: `shared` is this lease's pool, of which it holds
                // a count of its own (it has no units); no lock is held.
                unsafe { drop_nothing(inner, shared) };
                return;
            }
            if self.shared().release_slow(inner) {
                // SAFETY: the shard gave up its count for this release; no
                // lock is held, and nothing of the pool is used after.
                unsafe { unref(shared) };
            }
        }
    }
}

/// A lease of no units counts in no shard, so no shard's count keeps the
/// pool alive for it: it holds a count of its own, dropped with it (or once
/// a merge gives it units). Out of line: the one-unit paths stay small.
#[cold]
#[inline(never)]
fn hold_own<K, S>(shared: &Arc<Shared<K, S>>) {
    std::mem::forget(Arc::clone(shared));
}

/// Drops a lease of no units: it frees nothing, so it takes no lock; only
/// its own count of the pool goes.
///
/// # Safety
///
/// `shared` is the pool of `inner`, of which the caller (a lease of no
/// units being dropped) holds a count taken by [`hold_own`]; no lock of
/// the pool is held.
#[cold]
#[inline(never)]
unsafe fn drop_nothing<K, S>(inner: workpool_core::Lease<K>, shared: *const Shared<K, S>) {
    drop(inner);
    // SAFETY: as the caller promises; nothing of the pool is used after.
    unsafe { unref(shared) };
}

impl<K: fmt::Debug, S> fmt::Debug for Lease<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id())
            .field("key", self.key())
            .field("units", &self.units())
            .finish()
    }
}

/// The lease's hold on the pool's memory with weights, under Miri in CI: a
/// lease of no units holds a count of its own, a merge gives it up, a
/// split-off lease rides on its shard's count.
#[cfg(test)]
mod tests {
    use crate::Pool;

    #[test]
    fn leases_of_no_units_outlive_their_pool() {
        let pool: Pool<String> = Pool::new();
        let a = pool.try_acquire_key_many("k", 0).unwrap();
        let mut b = pool.try_acquire_key_many("k", 0).unwrap();
        drop(pool);
        b.merge(a).unwrap();
        assert_eq!((b.units(), b.key().as_str()), (0, "k"));
        assert!(!b.is_surplus());
    }

    #[test]
    fn a_lease_of_no_units_takes_in_units_and_outlives_the_pool() {
        let pool: Pool<String> = Pool::new();
        pool.set("k".to_owned(), 3);
        let mut empty = pool.try_acquire_key_many("k", 0).unwrap();
        let mut full = pool.try_acquire_key_many("k", 3).unwrap();
        let part = full.split(1).unwrap();
        empty.merge(full).unwrap();
        assert_eq!(empty.units(), 2);
        pool.close();
        drop(pool);
        drop(part);
        drop(empty);
    }

    #[test]
    fn a_merge_of_a_lease_of_no_units_into_a_real_one() {
        let pool: Pool<String> = Pool::new();
        pool.set("k".to_owned(), 1);
        let mut one = pool.try_acquire_key("k").unwrap();
        one.merge(pool.try_acquire_key_many("k", 0).unwrap())
            .unwrap();
        assert_eq!(one.units(), 1);
        drop(pool);
        drop(one);
    }
}
