//! The synchronisation types the crate uses, in one place, so that the loom
//! model checker can swap them (`RUSTFLAGS="--cfg loom"`).

#[cfg(not(loom))]
pub(crate) use crate::lock::{Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread_local;
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize};
/// The `Arc` that `std::task::Wake` needs, whatever the model.
pub(crate) use std::sync::Arc as StdArc;
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
pub(crate) use std::sync::PoisonError;
#[cfg(not(loom))]
pub(crate) use std::thread_local;

/// `std::cell::UnsafeCell` with loom's closure-scoped access, so that loom
/// can check every access of the hand-off cells in its models.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer to the value; the caller makes sure that
    /// nothing else accesses it meanwhile.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
