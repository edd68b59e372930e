//! Named futures and the lease stream.
//!
//! All of them are cancel-safe: dropping one at any moment leaks nothing. A
//! lease that had already been handed to a dropped future goes on to the next
//! eligible waiter, or back to its key.
//!
//! [`Acquire`] and [`AcquireKey`] borrow the pool (and the key); the owned
//! [`AcquireOwned`] and [`AcquireKeyOwned`] hold the pool's shared state (and
//! own the key), so they are `'static` and can be spawned or stored. Neither
//! the owned futures nor [`Leases`] keep the pool open: when its last
//! [`Pool`](crate::Pool) handle is dropped, they end with [`Closed`] (the
//! stream with `None`).

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedFuture, FusedStream, Stream};
use workpool_core::Equivalent;

use crate::error::Closed;
use crate::lease::Lease;
use crate::shared::{KeyQuery, Shared, Wait, Want, Watching};
use crate::sync::Arc;
use crate::DefaultHashBuilder;

mod many;

pub use many::{AcquireKeyMany, AcquireKeyManyOwned};

/// The future returned by [`Pool::acquire`](crate::Pool::acquire): a lease
/// from any key.
///
/// # Panics
///
/// Polling it again after it returned its output panics, as tokio's
/// futures do ([`FusedFuture::is_terminated`] says when).
///
/// # Cancel safety
///
/// Dropping it gives up its place in the queue; a lease already granted to it
/// is passed on.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, K, S = DefaultHashBuilder> {
    shared: &'a Arc<Shared<K, S>>,
    wait: Wait,
}

impl<'a, K, S> Acquire<'a, K, S> {
    pub(crate) fn new(shared: &'a Arc<Shared<K, S>>) -> Self {
        Self {
            shared,
            wait: Wait::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Future for Acquire<'_, K, S> {
    type Output = Result<Lease<K, S>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The first poll's common cases build the lease in place: from a
        // solo word, or from a shard's lock alone.
        if let Wait::Idle = this.wait {
            match this.shared.fast_any() {
                Ok(lease) => {
                    this.wait = Wait::Done;
                    return Poll::Ready(Ok(Lease::new(this.shared, lease)));
                }
                Err(Some(look)) => {
                    if let Some(lease) = this.shared.try_any_locked(look) {
                        this.wait = Wait::Done;
                        return Poll::Ready(Ok(Lease::new(this.shared, lease)));
                    }
                }
                Err(None) => {}
            }
        }
        this.shared
            .poll_acquire(&mut this.wait, Want::<K>::Any, cx)
            .map_ok(|lease| Lease::new(this.shared, lease))
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> FusedFuture for Acquire<'_, K, S> {
    /// True once the future returned its output; polling it again panics.
    fn is_terminated(&self) -> bool {
        self.wait.is_done()
    }
}

impl<K, S> Drop for Acquire<'_, K, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K, S> fmt::Debug for Acquire<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").field("wait", &self.wait).finish()
    }
}

/// The future returned by [`Pool::acquire_key`](crate::Pool::acquire_key): a
/// lease from one key.
///
/// It borrows the pool and the key, so it is `Send` only when `Q` is
/// `Sync`; [`AcquireKeyOwned`] owns its key instead, and can be spawned.
///
/// # Panics
///
/// Polling it again after it returned its output panics, as tokio's
/// futures do ([`FusedFuture::is_terminated`] says when).
///
/// # Cancel safety
///
/// Dropping it gives up its place in the queue; a lease already granted to it
/// is passed on.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireKey<'a, K, Q: ?Sized = K, S = DefaultHashBuilder> {
    shared: &'a Arc<Shared<K, S>>,
    key: &'a Q,
    wait: Wait,
}

impl<'a, K, Q: ?Sized, S> AcquireKey<'a, K, Q, S> {
    pub(crate) fn new(shared: &'a Arc<Shared<K, S>>, key: &'a Q) -> Self {
        Self {
            shared,
            key,
            wait: Wait::default(),
        }
    }
}

impl<K, Q, S> Future for AcquireKey<'_, K, Q, S>
where
    K: Hash + Eq + Clone,
    Q: ?Sized + KeyQuery<K>,
    S: BuildHasher,
{
    type Output = Result<Lease<K, S>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The first poll tries the key's word inline and builds the lease
        // in place; the rest is a call away.
        let mut located = None;
        if let Wait::Idle = this.wait {
            let (hash, shard) = this.shared.locate(this.key);
            match this.shared.fast_take(hash, shard, this.key) {
                Ok(lease) => {
                    this.wait = Wait::Done;
                    return Poll::Ready(Ok(Lease::new(this.shared, lease)));
                }
                Err(()) => located = Some((hash, shard)),
            }
        }
        this.shared
            .poll_acquire_from(&mut this.wait, Want::Key(this.key), located, cx)
            .map_ok(|lease| Lease::new(this.shared, lease))
    }
}

impl<K, Q, S> FusedFuture for AcquireKey<'_, K, Q, S>
where
    K: Hash + Eq + Clone,
    Q: ?Sized + KeyQuery<K>,
    S: BuildHasher,
{
    /// True once the future returned its output; polling it again panics.
    fn is_terminated(&self) -> bool {
        self.wait.is_done()
    }
}

impl<K, Q: ?Sized, S> Drop for AcquireKey<'_, K, Q, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K, Q: ?Sized + fmt::Debug, S> fmt::Debug for AcquireKey<'_, K, Q, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireKey")
            .field("key", &self.key)
            .field("wait", &self.wait)
            .finish()
    }
}

/// The stream returned by [`Pool::leases`](crate::Pool::leases): leases from
/// any key, one per item, ending when the pool closes.
///
/// This is the Rust form of the Go package's lease channel: spawn a worker
/// for every item. The stream waits in the same fair queue as everyone else,
/// with one place at a time.
///
/// The stream does not keep the pool open: it ends when the last
/// [`Pool`](crate::Pool) handle is dropped, as Go's channel closes on
/// `Stop`.
///
/// # Cancel safety
///
/// Dropping the stream (or a pending `next()`) gives up its place in the
/// queue; a lease already granted to it is passed on.
#[must_use = "streams do nothing unless polled"]
pub struct Leases<K, S = DefaultHashBuilder> {
    shared: Arc<Shared<K, S>>,
    wait: Wait,
    done: bool,
}

impl<K, S> Leases<K, S> {
    pub(crate) fn new(shared: Arc<Shared<K, S>>) -> Self {
        Self {
            shared,
            wait: Wait::default(),
            done: false,
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Stream for Leases<K, S> {
    type Item = Lease<K, S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.shared.poll_acquire(&mut this.wait, Want::<K>::Any, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(lease)) => {
                this.wait = Wait::Idle; // ready for the next item
                Poll::Ready(Some(Lease::new(&this.shared, lease)))
            }
            Poll::Ready(Err(Closed)) => {
                this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> FusedStream for Leases<K, S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<K, S> Drop for Leases<K, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K, S> fmt::Debug for Leases<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leases")
            .field("wait", &self.wait)
            .field("done", &self.done)
            .finish()
    }
}

/// The future returned by [`Pool::acquire_owned`](crate::Pool::acquire_owned):
/// a lease from any key, in a future that borrows nothing.
///
/// It holds the pool's shared state but is not a handle: it does not keep
/// the pool open, and fails with [`Closed`] when the last
/// [`Pool`](crate::Pool) handle is dropped while it waits. It is `'static`
/// when `K` and `S` are, and `Send` when `K` and `S` are `Send`.
///
/// # Panics
///
/// Polling it again after it returned its output panics, as tokio's
/// futures do ([`FusedFuture::is_terminated`] says when).
///
/// # Cancel safety
///
/// Dropping it gives up its place in the queue; a lease already granted to it
/// is passed on.
///
/// # Examples
///
/// ```
/// use workpool_std::{futures::AcquireOwned, Pool};
///
/// // Stored in a struct, with no lifetime to carry.
/// struct Worker {
///     next: AcquireOwned<&'static str>,
/// }
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new();
/// pool.set("spam", 1);
/// let worker = Worker { next: pool.acquire_owned() };
/// let lease = worker.next.await.unwrap();
/// assert_eq!(*lease.key(), "spam");
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned<K, S = DefaultHashBuilder> {
    shared: Arc<Shared<K, S>>,
    wait: Wait,
}

impl<K, S> AcquireOwned<K, S> {
    pub(crate) fn new(shared: Arc<Shared<K, S>>) -> Self {
        Self {
            shared,
            wait: Wait::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Future for AcquireOwned<K, S> {
    type Output = Result<Lease<K, S>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The first poll's common cases build the lease in place: from a
        // solo word, or from a shard's lock alone.
        if let Wait::Idle = this.wait {
            match this.shared.fast_any() {
                Ok(lease) => {
                    this.wait = Wait::Done;
                    return Poll::Ready(Ok(Lease::new(&this.shared, lease)));
                }
                Err(Some(look)) => {
                    if let Some(lease) = this.shared.try_any_locked(look) {
                        this.wait = Wait::Done;
                        return Poll::Ready(Ok(Lease::new(&this.shared, lease)));
                    }
                }
                Err(None) => {}
            }
        }
        this.shared
            .poll_acquire(&mut this.wait, Want::<K>::Any, cx)
            .map_ok(|lease| Lease::new(&this.shared, lease))
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> FusedFuture for AcquireOwned<K, S> {
    /// True once the future returned its output; polling it again panics.
    fn is_terminated(&self) -> bool {
        self.wait.is_done()
    }
}

impl<K, S> Drop for AcquireOwned<K, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K, S> fmt::Debug for AcquireOwned<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("wait", &self.wait)
            .finish()
    }
}

/// The future returned by
/// [`Pool::acquire_key_owned`](crate::Pool::acquire_key_owned): a lease from
/// one key, in a future that owns the key and borrows nothing.
///
/// It holds the pool's shared state but is not a handle: it does not keep
/// the pool open, and fails with [`Closed`] when the last
/// [`Pool`](crate::Pool) handle is dropped while it waits. It is `'static`
/// when `K` and `S` are, `Send` when `K` and `S` are `Send`, and `Unpin`
/// whatever `K` is (the key is never pinned).
///
/// # Panics
///
/// Polling it again after it returned its output panics, as tokio's
/// futures do ([`FusedFuture::is_terminated`] says when).
///
/// # Cancel safety
///
/// Dropping it gives up its place in the queue; a lease already granted to it
/// is passed on.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// use workpool_std::Pool;
///
/// let pool: Pool<String> = Pool::new();
/// pool.set("proxy-a".to_owned(), 1);
/// let held = pool.try_acquire().unwrap();
/// // A key made on the spot, and a future that outlives this scope.
/// let waiting = { pool.acquire_key_owned(String::from("proxy-a")) };
/// drop(held);
/// assert_eq!(waiting.await.unwrap().key(), "proxy-a");
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AcquireKeyOwned<K, S = DefaultHashBuilder> {
    shared: Arc<Shared<K, S>>,
    key: K,
    wait: Wait,
}

impl<K, S> AcquireKeyOwned<K, S> {
    pub(crate) fn new(shared: Arc<Shared<K, S>>, key: K) -> Self {
        Self {
            shared,
            key,
            wait: Wait::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Future for AcquireKeyOwned<K, S> {
    type Output = Result<Lease<K, S>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // As `AcquireKey`'s.
        let mut located = None;
        if let Wait::Idle = this.wait {
            let (hash, shard) = this.shared.locate(&this.key);
            match this.shared.fast_take(hash, shard, &this.key) {
                Ok(lease) => {
                    this.wait = Wait::Done;
                    return Poll::Ready(Ok(Lease::new(&this.shared, lease)));
                }
                Err(()) => located = Some((hash, shard)),
            }
        }
        this.shared
            .poll_acquire_from(&mut this.wait, Want::Key(&this.key), located, cx)
            .map_ok(|lease| Lease::new(&this.shared, lease))
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> FusedFuture for AcquireKeyOwned<K, S> {
    /// True once the future returned its output; polling it again panics.
    fn is_terminated(&self) -> bool {
        self.wait.is_done()
    }
}

// The key is only ever read through `&`, never pinned.
impl<K, S> Unpin for AcquireKeyOwned<K, S> {}

impl<K, S> Drop for AcquireKeyOwned<K, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K: fmt::Debug, S> fmt::Debug for AcquireKeyOwned<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireKeyOwned")
            .field("key", &self.key)
            .field("wait", &self.wait)
            .finish()
    }
}

/// The future returned by [`Lease::surplus`]: resolves once the lease is
/// surplus (its key has more live leases than its target, or the pool more
/// than its limit), or became surplus since the future was first polled.
///
/// # Cancel safety
///
/// Cancel-safe: dropping it only stops watching; the lease is untouched.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// let pool = workpool_std::Pool::new();
/// pool.set("a", 1);
/// let lease = pool.try_acquire().unwrap();
/// let surplus = lease.surplus();
/// pool.set("a", 0); // shrink: this worker should leave
/// surplus.await;
/// assert!(lease.release_if_surplus().is_ok());
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Surplus<'a, K, S = DefaultHashBuilder> {
    lease: &'a Lease<K, S>,
    watching: Watching,
    done: bool,
}

impl<'a, K, S> Surplus<'a, K, S> {
    pub(crate) fn new(lease: &'a Lease<K, S>) -> Self {
        Self {
            lease,
            watching: Watching::default(),
            done: false,
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Future for Surplus<'_, K, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        assert!(!this.done, "a surplus future was polled after it completed");
        if this.lease.units() == 0 {
            // A lease of no units counts nowhere: it is never surplus.
            return Poll::Pending;
        }
        let (shared, inner) = (this.lease.shared(), this.lease.inner());
        if shared.poll_surplus(inner, &mut this.watching, cx.waker()) {
            this.done = true;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> FusedFuture for Surplus<'_, K, S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<K, S> Drop for Surplus<'_, K, S> {
    fn drop(&mut self) {
        self.lease.shared().unwatch(&mut self.watching);
    }
}

impl<K, S> fmt::Debug for Surplus<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Surplus")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Pool::drained`](crate::Pool::drained): resolves
/// once the key has no live lease (at once if it has none), or had none at
/// some moment since the future was first polled.
///
/// # Cancel safety
///
/// Cancel-safe: dropping it only stops watching.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// let pool = workpool_std::Pool::<&str>::new();
/// pool.drained(&"never-used").await; // at once
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Drained<'a, K, Q: ?Sized = K, S = DefaultHashBuilder> {
    shared: &'a Shared<K, S>,
    key: &'a Q,
    watching: Watching,
    done: bool,
}

impl<'a, K, Q: ?Sized, S> Drained<'a, K, Q, S> {
    pub(crate) fn new(shared: &'a Arc<Shared<K, S>>, key: &'a Q) -> Self {
        Self {
            shared,
            key,
            watching: Watching::default(),
            done: false,
        }
    }
}

impl<K, Q, S> Future for Drained<'_, K, Q, S>
where
    K: Hash + Eq + Clone,
    Q: ?Sized + Hash + Equivalent<K>,
    S: BuildHasher,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        assert!(!this.done, "a drained future was polled after it completed");
        if this
            .shared
            .poll_drained(this.key, &mut this.watching, cx.waker())
        {
            this.done = true;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<K, Q, S> FusedFuture for Drained<'_, K, Q, S>
where
    K: Hash + Eq + Clone,
    Q: ?Sized + Hash + Equivalent<K>,
    S: BuildHasher,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<K, Q: ?Sized, S> Drop for Drained<'_, K, Q, S> {
    fn drop(&mut self) {
        self.shared.unwatch(&mut self.watching);
    }
}

impl<K, Q: ?Sized + fmt::Debug, S> fmt::Debug for Drained<'_, K, Q, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drained")
            .field("key", &self.key)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
