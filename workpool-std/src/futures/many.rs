//! The futures of weighted acquisitions: `n` units of one key in one lease.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::FusedFuture;

use crate::error::Closed;
use crate::lease::Lease;
use crate::shared::{KeyQuery, Shared, Wait, Want};
use crate::sync::Arc;
use crate::DefaultHashBuilder;

/// The future returned by
/// [`Pool::acquire_key_many`](crate::Pool::acquire_key_many): a lease of
/// `n` units of one key.
///
/// It waits in the key's queue like a one-unit acquisition, strictly first
/// come, first served: at the head of the queue it is served before any
/// later waiter of the key, even one that asks for fewer units, and holds
/// them back until its `n` units are free (the price of never starving a
/// large request). It borrows the pool and the key, so it is `Send` only
/// when `Q` is `Sync`; [`AcquireKeyManyOwned`] owns its key instead.
///
/// # Panics
///
/// Polling it again after it returned its output panics, as tokio's
/// futures do ([`FusedFuture::is_terminated`] says when).
///
/// # Cancel safety
///
/// Dropping it gives up its place in the queue; a lease already granted to
/// it is passed on, all its units. If it was the head of its key's queue,
/// the smaller waiters it held back are served at once.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireKeyMany<'a, K, Q: ?Sized = K, S = DefaultHashBuilder> {
    shared: &'a Arc<Shared<K, S>>,
    key: &'a Q,
    units: u64,
    wait: Wait,
}

impl<'a, K, Q: ?Sized, S> AcquireKeyMany<'a, K, Q, S> {
    pub(crate) fn new(shared: &'a Arc<Shared<K, S>>, key: &'a Q, units: u64) -> Self {
        Self {
            shared,
            key,
            units,
            wait: Wait::default(),
        }
    }
}

impl<K, Q, S> Future for AcquireKeyMany<'_, K, Q, S>
where
    K: Hash + Eq + Clone,
    Q: ?Sized + KeyQuery<K>,
    S: BuildHasher,
{
    type Output = Result<Lease<K, S>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared
            .poll_acquire(&mut this.wait, Want::KeyMany(this.key, this.units), cx)
            .map_ok(|lease| Lease::new_units(this.shared, lease))
    }
}

impl<K, Q, S> FusedFuture for AcquireKeyMany<'_, K, Q, S>
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

impl<K, Q: ?Sized, S> Drop for AcquireKeyMany<'_, K, Q, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K, Q: ?Sized + fmt::Debug, S> fmt::Debug for AcquireKeyMany<'_, K, Q, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireKeyMany")
            .field("key", &self.key)
            .field("units", &self.units)
            .field("wait", &self.wait)
            .finish()
    }
}

/// The future returned by
/// [`Pool::acquire_key_many_owned`](crate::Pool::acquire_key_many_owned):
/// a lease of `n` units of one key, in a future that owns the key and
/// borrows nothing.
///
/// It waits as [`AcquireKeyMany`] does. It holds the pool's shared state
/// but is not a handle: it does not keep the pool open, and fails with
/// [`Closed`] when the last [`Pool`](crate::Pool) handle is dropped while
/// it waits. It is `'static` when `K` and `S` are, `Send` when `K` and `S`
/// are `Send`, and `Unpin` whatever `K` is (the key is never pinned).
///
/// # Panics
///
/// Polling it again after it returned its output panics, as tokio's
/// futures do ([`FusedFuture::is_terminated`] says when).
///
/// # Cancel safety
///
/// As [`AcquireKeyMany`]'s: dropping it gives up its place in the queue; a
/// lease already granted to it is passed on.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// use workpool_std::Pool;
///
/// let pool: Pool<String> = Pool::new();
/// pool.set("gpu-host".to_owned(), 4);
/// let held = pool.try_acquire_key_many("gpu-host", 2).unwrap();
/// let waiting = { pool.acquire_key_many_owned(String::from("gpu-host"), 4) };
/// drop(held);
/// assert_eq!(waiting.await.unwrap().units(), 4);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AcquireKeyManyOwned<K, S = DefaultHashBuilder> {
    shared: Arc<Shared<K, S>>,
    key: K,
    units: u64,
    wait: Wait,
}

impl<K, S> AcquireKeyManyOwned<K, S> {
    pub(crate) fn new(shared: Arc<Shared<K, S>>, key: K, units: u64) -> Self {
        Self {
            shared,
            key,
            units,
            wait: Wait::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Future for AcquireKeyManyOwned<K, S> {
    type Output = Result<Lease<K, S>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared
            .poll_acquire(&mut this.wait, Want::KeyMany(&this.key, this.units), cx)
            .map_ok(|lease| Lease::new_units(&this.shared, lease))
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> FusedFuture for AcquireKeyManyOwned<K, S> {
    /// True once the future returned its output; polling it again panics.
    fn is_terminated(&self) -> bool {
        self.wait.is_done()
    }
}

// The key is only ever read through `&`, never pinned.
impl<K, S> Unpin for AcquireKeyManyOwned<K, S> {}

impl<K, S> Drop for AcquireKeyManyOwned<K, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K: fmt::Debug, S> fmt::Debug for AcquireKeyManyOwned<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireKeyManyOwned")
            .field("key", &self.key)
            .field("units", &self.units)
            .field("wait", &self.wait)
            .finish()
    }
}
