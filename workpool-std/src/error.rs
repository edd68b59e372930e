//! Errors of the std adapter (the rest are re-exported from the core).

use std::fmt;

pub use workpool_core::{Closed, TryAcquireError};

/// Why a blocking acquisition with a time limit returned no lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcquireTimeoutError {
    /// The pool, or the key asked for, was closed before a lease could be
    /// granted (see [`Closed`]).
    Closed,
    /// The time limit passed first.
    Timeout,
}

impl fmt::Display for AcquireTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::Timeout => "timed out",
        })
    }
}

impl std::error::Error for AcquireTimeoutError {}

impl From<Closed> for AcquireTimeoutError {
    fn from(_: Closed) -> Self {
        Self::Closed
    }
}
