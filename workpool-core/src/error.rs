//! Error types returned by the core.

use core::fmt;

use crate::lease::Lease;

/// The pool was closed (no lease will be granted from it again), or the
/// key a waiter asked for was.
///
/// Returned by requests made after [`Pool::close`](crate::Pool::close), and
/// reported to every waiter that was still waiting when it was called; also
/// reported to every waiter of a key that was waiting when
/// [`Pool::close_key`](crate::Pool::close_key) was called for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("closed")
    }
}

impl core::error::Error for Closed {}

/// Why a `try_acquire*` call returned no lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryAcquireError {
    /// The pool is closed.
    Closed,
    /// No group that could serve the request has `active < target`, or an
    /// earlier waiter is entitled to the capacity that exists.
    NoCapacity,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::NoCapacity => "no capacity",
        })
    }
}

impl core::error::Error for TryAcquireError {}

impl From<Closed> for TryAcquireError {
    fn from(_: Closed) -> Self {
        Self::Closed
    }
}

/// Why [`Pool::release`](crate::Pool::release) rejected a lease; it holds
/// the lease, as [`TrySendError`] holds its message, so that a lease given
/// to the wrong pool is not lost to its own.
///
/// A rejected lease changes nothing: counts and waiters are as before.
///
/// [`TrySendError`]: https://doc.rust-lang.org/std/sync/mpsc/enum.TrySendError.html
///
/// # Examples
///
/// ```
/// use workpool_core::{Pool, ReleaseError};
/// let (mut a, mut b) = (Pool::new(), Pool::new());
/// a.set("k", 1);
/// let lease = a.try_acquire().unwrap();
/// let err = b.release(lease).unwrap_err();
/// assert!(err.is_foreign_pool());
/// assert_eq!(err.to_string(), "lease belongs to another pool");
/// a.release(err.into_lease()).unwrap();
/// ```
pub enum ReleaseError<K> {
    /// The lease was granted by a different pool.
    ForeignPool(Lease<K>),
    /// The lease does not match any live lease of this pool.
    Stale(Lease<K>),
}

impl<K> ReleaseError<K> {
    /// The rejected lease, unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = (workpool_core::Pool::new(), workpool_core::Pool::new());
    /// a.set(1u8, 1);
    /// let lease = a.try_acquire().unwrap();
    /// let id = lease.id();
    /// assert_eq!(b.release(lease).unwrap_err().into_lease().id(), id);
    /// ```
    #[must_use = "a rejected lease still holds capacity in its own pool"]
    pub fn into_lease(self) -> Lease<K> {
        match self {
            Self::ForeignPool(lease) | Self::Stale(lease) => lease,
        }
    }

    /// True for [`ForeignPool`](Self::ForeignPool).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = (workpool_core::Pool::new(), workpool_core::Pool::new());
    /// a.set(1u8, 1);
    /// let err = b.release(a.try_acquire().unwrap()).unwrap_err();
    /// assert!(err.is_foreign_pool() && !err.is_stale());
    /// # a.release(err.into_lease()).unwrap();
    /// ```
    pub fn is_foreign_pool(&self) -> bool {
        matches!(self, Self::ForeignPool(_))
    }

    /// True for [`Stale`](Self::Stale).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = (workpool_core::Pool::new(), workpool_core::Pool::new());
    /// a.set(1u8, 1);
    /// let err = b.release(a.try_acquire().unwrap()).unwrap_err();
    /// assert!(!err.is_stale());
    /// # a.release(err.into_lease()).unwrap();
    /// ```
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Stale(_))
    }
}

impl<K> fmt::Debug for ReleaseError<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, lease) = match self {
            Self::ForeignPool(lease) => ("ForeignPool", lease),
            Self::Stale(lease) => ("Stale", lease),
        };
        f.debug_struct(name)
            .field("id", &lease.id())
            .finish_non_exhaustive()
    }
}

impl<K> fmt::Display for ReleaseError<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ForeignPool(_) => "lease belongs to another pool",
            Self::Stale(_) => "lease is not live in this pool",
        })
    }
}

impl<K> core::error::Error for ReleaseError<K> {}

/// A [`WaiterId`](crate::WaiterId) that does not name a registered waiter of
/// this pool (it was already claimed or cancelled, or came from another pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UnknownWaiter;

impl fmt::Display for UnknownWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown waiter")
    }
}

impl core::error::Error for UnknownWaiter {}
