//! Named futures and the lease stream.
//!
//! All of them are cancel-safe: dropping one at any moment leaks nothing. A
//! lease that had already been handed to a dropped future goes on to the next
//! eligible waiter, or back to its key.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedFuture, FusedStream, Stream};

use crate::error::Closed;
use crate::lease::Lease;
use crate::shared::{Shared, Wait, Want};
use crate::sync::Arc;

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
pub struct Acquire<'a, K: Hash + Eq + Clone> {
    shared: &'a Arc<Shared<K>>,
    wait: Wait,
}

impl<'a, K: Hash + Eq + Clone> Acquire<'a, K> {
    pub(crate) fn new(shared: &'a Arc<Shared<K>>) -> Self {
        Self {
            shared,
            wait: Wait::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Future for Acquire<'_, K> {
    type Output = Result<Lease<K>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared
            .poll_acquire(&mut this.wait, Want::Any, cx)
            .map_ok(|lease| Lease::new(Arc::clone(this.shared), lease))
    }
}

impl<K: Hash + Eq + Clone> FusedFuture for Acquire<'_, K> {
    /// True once the future returned its output; polling it again panics.
    fn is_terminated(&self) -> bool {
        self.wait.is_done()
    }
}

impl<K: Hash + Eq + Clone> Drop for Acquire<'_, K> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K: Hash + Eq + Clone> fmt::Debug for Acquire<'_, K> {
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
pub struct AcquireKey<'a, K: Hash + Eq + Clone> {
    shared: &'a Arc<Shared<K>>,
    key: &'a K,
    wait: Wait,
}

impl<'a, K: Hash + Eq + Clone> AcquireKey<'a, K> {
    pub(crate) fn new(shared: &'a Arc<Shared<K>>, key: &'a K) -> Self {
        Self {
            shared,
            key,
            wait: Wait::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Future for AcquireKey<'_, K> {
    type Output = Result<Lease<K>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared
            .poll_acquire(&mut this.wait, Want::Key(this.key), cx)
            .map_ok(|lease| Lease::new(Arc::clone(this.shared), lease))
    }
}

impl<K: Hash + Eq + Clone> FusedFuture for AcquireKey<'_, K> {
    /// True once the future returned its output; polling it again panics.
    fn is_terminated(&self) -> bool {
        self.wait.is_done()
    }
}

impl<K: Hash + Eq + Clone> Drop for AcquireKey<'_, K> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug> fmt::Debug for AcquireKey<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireKey")
            .field("key", self.key)
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
/// # Cancel safety
///
/// Dropping the stream (or a pending `next()`) gives up its place in the
/// queue; a lease already granted to it is passed on.
#[must_use = "streams do nothing unless polled"]
pub struct Leases<K: Hash + Eq + Clone> {
    shared: Arc<Shared<K>>,
    wait: Wait,
    done: bool,
}

impl<K: Hash + Eq + Clone> Leases<K> {
    pub(crate) fn new(shared: Arc<Shared<K>>) -> Self {
        Self {
            shared,
            wait: Wait::default(),
            done: false,
        }
    }
}

impl<K: Hash + Eq + Clone> Stream for Leases<K> {
    type Item = Lease<K>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.shared.poll_acquire(&mut this.wait, Want::Any, cx) {
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

impl<K: Hash + Eq + Clone> FusedStream for Leases<K> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<K: Hash + Eq + Clone> Drop for Leases<K> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K: Hash + Eq + Clone> fmt::Debug for Leases<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leases")
            .field("wait", &self.wait)
            .field("done", &self.done)
            .finish()
    }
}
