//! Error types returned by the core.

use core::fmt;

/// The pool was closed: no lease will be granted from it again.
///
/// Returned by requests made after [`Pool::close`](crate::Pool::close), and
/// reported to every waiter that was still waiting when it was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pool closed")
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
            Self::Closed => "pool closed",
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

/// Why [`Pool::release`](crate::Pool::release) rejected a lease.
///
/// A rejected lease changes nothing: counts and waiters are as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseError {
    /// The lease was granted by a different pool.
    ForeignPool,
    /// The lease does not match any live lease of this pool.
    Stale,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ForeignPool => "lease belongs to another pool",
            Self::Stale => "lease is not live in this pool",
        })
    }
}

impl core::error::Error for ReleaseError {}

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
