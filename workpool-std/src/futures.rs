//! Named futures and the lease stream.
//!
//! All of them are cancel-safe: dropping one at any moment leaks nothing. A
//! lease that had already been handed to a dropped future goes on to the next
//! eligible waiter, or back to its key.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedFuture, FusedStream, Stream};

use crate::error::Closed;
use crate::lease::Lease;
use crate::shared::{KeyQuery, Shared, Wait, Want};
use crate::sync::Arc;
use crate::DefaultHashBuilder;

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
        this.shared
            .poll_acquire(&mut this.wait, Want::<K>::Any, cx)
            .map_ok(|lease| Lease::new(Arc::clone(this.shared), lease))
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
        this.shared
            .poll_acquire(&mut this.wait, Want::Key(this.key), cx)
            .map_ok(|lease| Lease::new(Arc::clone(this.shared), lease))
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
                Poll::Ready(Some(Lease::new(Arc::clone(&this.shared), lease)))
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
