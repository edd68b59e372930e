//! Pool identities: what leases and waiter handles carry so that any other
//! pool rejects them.
//!
//! # The rule
//!
//! No two pools share an identity while a lease or a waiter handle naming
//! either of them can still exist. A dropped pool counts: its leases may
//! outlive it, and waiter handles are `Copy`, so the pool can never learn
//! that the last one is gone. Checking an identity is one word compared, so
//! [`Pool::release`](crate::Pool::release) stays O(1) and a lease grows by
//! one word only.
//!
//! # Where atomic read-modify-write exists
//!
//! A global counter, bumped with `fetch_add`, hands out the ids. They never
//! repeat on 64-bit targets; on 32-bit ones they repeat only after 2^32 pools
//! were made.
//!
//! # Where it does not (`thumbv6m`, `riscv32imc`, ...)
//!
//! There, a counter can only be loaded and stored: an interrupt that makes a
//! pool between the load and the store loses an increment, and two pools get
//! one id. The one shared state that is synchronised on every target is the
//! global allocator (`GlobalAlloc` must be `Sync`), and it promises that
//! live allocations have distinct addresses. So the identity is the address
//! of a one-byte heap cell the pool owns: distinct among live pools, with no
//! atomics and no lock.
//!
//! An address alone can be handed out again once the cell is freed, and a
//! later pool at that address would accept the leases of the dropped one.
//! Pairing the address with anything the pool itself holds does not help:
//! nothing of a pool survives its drop for its successor at the same address
//! to look at. So the cell is freed only if the pool never handed out a
//! lease or a waiter handle (nothing can name it then); otherwise it is
//! leaked, and its address is never reused while the program runs.
//!
//! The price, on these targets only: pools allocate one byte when made, and
//! dropping a pool that was used leaks that byte (plus allocator overhead).
//! Such targets usually make their pools once. The other sound choice,
//! `portable-atomic` with its `critical-section` feature, would make every
//! binary for them link a `critical-section` implementation (or set
//! `portable_atomic_unsafe_assume_single_core`), a burden on all users to
//! save a few bytes per dropped pool.

#[cfg(any(test, not(target_has_atomic = "ptr")))]
use alloc::boxed::Box;
use core::num::NonZeroUsize;

/// A pool's identity, as leases and waiter handles carry it. Never zero, so
/// `Option<WaiterId>` costs nothing extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PoolId(NonZeroUsize);

/// Owns a pool's [`PoolId`], and what keeps it unique (see the module docs).
pub(crate) struct Identity {
    id: PoolId,
    /// Anchored identities: the heap cell whose address is `id`.
    #[cfg(any(test, not(target_has_atomic = "ptr")))]
    cell: Option<Box<u8>>,
    /// Anchored identities: set once a lease or waiter handle carried `id`,
    /// from when on the cell must never be freed.
    #[cfg(any(test, not(target_has_atomic = "ptr")))]
    named: bool,
}

impl Identity {
    /// A fresh identity, of the kind the target supports.
    pub(crate) fn new() -> Self {
        #[cfg(target_has_atomic = "ptr")]
        {
            Self::counted()
        }
        #[cfg(not(target_has_atomic = "ptr"))]
        {
            Self::anchored()
        }
    }

    /// An identity from the global counter.
    #[cfg(target_has_atomic = "ptr")]
    fn counted() -> Self {
        use core::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let id = loop {
            // Only a 32-bit counter that wrapped yields 0; skip it.
            if let Some(id) = NonZeroUsize::new(NEXT.fetch_add(1, Ordering::Relaxed)) {
                break id;
            }
        };
        Self {
            id: PoolId(id),
            #[cfg(test)]
            cell: None,
            #[cfg(test)]
            named: false,
        }
    }

    /// An identity anchored at a fresh heap cell: the path for targets
    /// without atomic read-modify-write. Unit tests on the host call it
    /// directly to cover that path.
    #[cfg(any(test, not(target_has_atomic = "ptr")))]
    pub(crate) fn anchored() -> Self {
        let cell = Box::new(0u8);
        let address = core::ptr::from_ref::<u8>(&cell).addr();
        Self {
            id: PoolId(NonZeroUsize::new(address).expect("a heap address is never null")),
            cell: Some(cell),
            named: false,
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> PoolId {
        self.id
    }

    /// Records that a lease or a waiter handle carries the id: from now on
    /// something outside the pool may name it. A no-op for counted ids.
    #[inline]
    pub(crate) fn mark_named(&mut self) {
        #[cfg(any(test, not(target_has_atomic = "ptr")))]
        {
            self.named = true;
        }
    }
}

#[cfg(any(test, not(target_has_atomic = "ptr")))]
impl Drop for Identity {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            if self.named {
                retire(cell);
            }
            // Otherwise nothing names the address: the cell is freed.
        }
    }
}

/// Keeps `cell` allocated for the rest of the program, so its address is
/// never handed to another pool.
#[cfg(any(test, not(target_has_atomic = "ptr")))]
fn retire(cell: Box<u8>) {
    #[cfg(not(test))]
    {
        let _: &'static mut u8 = Box::leak(cell);
    }
    #[cfg(test)]
    tests::RETIRED.lock().unwrap().push(cell);
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use std::sync::Mutex;

    use super::{Identity, PoolId};

    /// Cells retired by unit tests. Kept reachable from a static rather
    /// than leaked: tests can see what was retired, and Miri's leak check
    /// (which ignores memory reachable from statics) stays meaningful.
    #[expect(
        clippy::vec_box,
        reason = "each cell is its own allocation: its address is what is kept"
    )]
    pub(crate) static RETIRED: Mutex<Vec<Box<u8>>> = Mutex::new(Vec::new());

    /// True if the cell of anchored identity `id` was retired.
    pub(crate) fn is_retired(id: PoolId) -> bool {
        RETIRED
            .lock()
            .unwrap()
            .iter()
            .any(|cell| address(cell) == id.0.get())
    }

    fn address(cell: &u8) -> usize {
        core::ptr::from_ref(cell).addr()
    }

    #[test]
    fn anchored_ids_are_distinct_while_live() {
        let (a, b) = (Identity::anchored(), Identity::anchored());
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn a_named_cell_is_retired_and_its_address_not_reused() {
        let mut a = Identity::anchored();
        a.mark_named();
        let old = a.id();
        drop(a);
        assert!(is_retired(old));
        // The allocator would hand the freed cell straight back; it cannot.
        let b = Identity::anchored();
        assert_ne!(b.id(), old);
    }

    #[test]
    fn a_cell_nothing_named_is_freed() {
        let a = Identity::anchored();
        let old = a.id();
        // Hold the lock, so that no other test can reuse the freed address
        // and retire it before we look.
        let retired = RETIRED.lock().unwrap();
        drop(a);
        assert!(!retired.iter().any(|cell| address(cell) == old.0.get()));
    }

    #[test]
    fn counted_ids_are_distinct() {
        assert_ne!(Identity::new().id(), Identity::new().id());
    }
}
