//! Handles: [`Shared`] counts the `Pool` handles beside its `Arc`. Leases,
//! streams, owned futures and `PollPool`s hold the `Arc` but not a handle:
//! none of them can change a target, so once the last handle is gone
//! nothing could ever serve a waiter again, and the last handle's drop
//! closes the pool. A handle is only made from a live one, so the count
//! never comes back from zero.

use super::Shared;
use crate::sync::Ordering;

impl<K, S> Shared<K, S> {
    pub(crate) fn add_handle(&self) {
        // Relaxed, as in `Arc::clone`: the caller holds a handle, so the
        // count cannot reach zero meanwhile. It cannot overflow either: each
        // handle also holds an `Arc`, whose count aborts first.
        let old = self.handles.fetch_add(1, Ordering::Relaxed);
        debug_assert!(old > 0, "a handle was made from a dropped one");
    }

    pub(crate) fn drop_handle(&self) {
        // Whoever takes the count to zero closes; every other effect of the
        // handles is ordered by the mutexes that `close` takes.
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }
}
