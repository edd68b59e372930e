//! The hand-off cells: where a releaser leaves a waiter's outcome, so that
//! the woken waiter takes it without locking its shard (or the lane) again.
//!
//! A waiting key acquisition takes two trips through its shard's lock, as
//! a waiting acquisition of tokio's semaphore does: the enqueue (step 1 of
//! the protocol in [`waiting`](super::waiting)), and the releaser's
//! hand-off. The releaser, under the lock where the core decides the
//! hand-off, claims the waiter's outcome from the core on its behalf (the
//! waiter leaves the core, and its lease exists from then on, without its
//! key) and publishes it in a cell that the waiter reads with an atomic
//! load, as tokio's waiter reads the state word of its node.
//!
//! # The cells
//!
//! Each shard has [`CELLS`] cells at fixed addresses (beside its lock, not
//! under it). The waiter with registration number `g`
//! ([`WaiterId::generation`]) uses cell `g % CELLS`, and a cell holding its
//! outcome is tagged `g + 1` (0 is vacant). Registration numbers are
//! consecutive in a shard and waiters are served oldest first, so the
//! outcomes handed off and not yet taken sit in different cells as long
//! as fewer than [`CELLS`] of them are in flight at once. A cell costs
//! nothing per waiting acquisition: a waiter only uses one between its
//! hand-off and its next poll.
//!
//! # The protocol
//!
//! 1. A cell's tag goes from vacant to `g + 1` only under the shard's lock,
//!    by a releaser that found it vacant ([`Cells::hand_off`]): it claims
//!    the outcome from the core without the key (`Shard::claim_unkeyed`:
//!    no user code runs, so nothing can panic half-way), writes it, and
//!    stores the tag with `Release`. It does not touch the cell after that
//!    store.
//! 2. From `g + 1` to vacant only by waiter `g` itself ([`Cells::take`]),
//!    with or without the lock: it loads the tag with `Acquire`, makes its
//!    own copy of the key (a lease's key; if that `K::clone` panics, the
//!    outcome stays in the cell for the next poll or the cancel), moves the
//!    outcome out, and stores vacant with `Release`. Registration numbers
//!    are never reused, so no other waiter ever sees its tag in the cell.
//! 3. A releaser that finds the waiter's cell taken (by an older outcome
//!    not yet collected) leaves the outcome in the core and only wakes the
//!    waiter, which then claims it under the lock as before the cells
//!    existed.
//! 4. Every path that looks for a waiter's outcome under the lock (a poll
//!    that found nothing published, a cancel) looks in its cell first: a
//!    waiter whose outcome was published is no longer known to the core. A
//!    cancel looks under the lock, never before it: a publication between
//!    a look and the lock would be stranded. A waiter dropped after its
//!    outcome was published gives the lease back
//!    with `Shard::cancel_unkeyed`, which passes it on as a release would
//!    and counts it as the core counts a granted waiter's cancel.
//!
//! # The lane's cells: any-key waiters
//!
//! The lane has cells too, for its any-key waiters, under the same
//! protocol with the lane's lock in the shard's place. An any-key waiter
//! does not know which key it will get, so its lease cannot wait for the
//! waiter's own copy of the key: the releaser attaches one. It has one
//! without running user code only when the waiter's unit comes from the
//! group of the lease it releases (the common case: a release serves the
//! oldest any-key waiter from the unit it frees), and then the released
//! lease's key *moves* into the waiter's lease
//! ([`Cells::hand_off_any`], with `Lane::poll_wake_unkeyed`). A waiter
//! served from another group, or a second waiter served by the same
//! release, is only woken and claims under the locks (step 3). A waiter
//! that gives up after its outcome was published takes it out of its cell
//! under the lane's lock and gives the lease back with
//! `Shard::cancel_unkeyed`, dropping the key after unlocking.
//!
//! So a cell's outcome is written only while the cell is vacant (nobody
//! reads a vacant cell) and by one releaser at a time (the lock), and read
//! only by its one waiter after the `Release`/`Acquire` pair of step 1; the
//! next write into the cell comes after that read by the `Release`/`Acquire`
//! pair of step 2. loom models it (`workpool-std/tests/loom/handoff.rs`: a take
//! racing the publication, a cell reused after its waiter took it, a
//! waiter dropped during its hand-off; the first and last for any-key
//! waiters too), and Miri runs the unit tests that
//! reach every `unsafe` block here (`shared/tests.rs`).

use workpool_core::parts::{Lane, Shard};
use workpool_core::{Claim, Closed, WaiterId};

use crate::sync::{AtomicU64, Ordering, UnsafeCell};

/// How a waiting acquisition ended: its lease, or `Closed`.
pub(super) type Outcome<K> = Result<workpool_core::Lease<K>, Closed>;

/// Hand-off cells per shard (2 under loom, so that its models reach a
/// taken cell).
const CELLS: usize = if cfg!(loom) { 2 } else { 16 };

/// A cell's tag while it holds no outcome.
const VACANT: u64 = 0;

/// One part's hand-off cells (see the [module](self) docs): a shard's,
/// whose leases come without the key (`T = ()`, the key waiter attaches
/// its own), or the lane's, whose leases carry their key (`T = K`).
pub(super) struct Cells<T = ()> {
    cells: Box<[Cell<T>]>,
}

struct Cell<T> {
    /// [`VACANT`], or the registration number + 1 of the waiter whose
    /// outcome `outcome` holds.
    tag: AtomicU64,
    /// The outcome.
    outcome: UnsafeCell<Option<Outcome<T>>>,
}

// SAFETY: `outcome` is written and read by one thread at a time, as the
// protocol in the module docs orders it: the part's lock among writers,
// the tag's `Release`/`Acquire` pairs between a writer and the one reader;
// what it holds (a lease, with a key of type `T: Send` or none) is `Send`.
unsafe impl<T: Send> Sync for Cell<T> {}

impl<T> Cells<T> {
    pub(super) fn new() -> Self {
        Self {
            cells: (0..CELLS)
                .map(|_| Cell {
                    tag: AtomicU64::new(VACANT),
                    outcome: UnsafeCell::new(None),
                })
                .collect(),
        }
    }

    /// The cell of `waiter`, and the tag of its outcome there.
    #[inline]
    fn cell(&self, waiter: WaiterId) -> (&Cell<T>, u64) {
        let generation = waiter.generation();
        (
            &self.cells[(generation % CELLS as u64) as usize],
            generation + 1,
        )
    }

    /// Whether `waiter`'s cell is vacant, so that a releaser (under the
    /// part's lock) may publish its outcome there.
    #[inline]
    fn is_vacant(&self, waiter: WaiterId) -> bool {
        let (cell, _) = self.cell(waiter);
        // Acquire: a waiter that emptied the cell without the lock has
        // finished reading it before the write that follows.
        cell.tag.load(Ordering::Acquire) == VACANT
    }

    /// Publishes `waiter`'s outcome in its cell, found vacant under the
    /// part's lock, which the caller holds.
    #[inline]
    fn publish(&self, waiter: WaiterId, outcome: Outcome<T>) {
        let (cell, tag) = self.cell(waiter);
        let replaced = cell.outcome.with_mut(|slot| {
            // SAFETY: the cell is vacant, so no waiter reads it (only the
            // waiter whose tag it holds does), and every writer holds the
            // part's lock, as the caller does.
            unsafe { (*slot).replace(outcome) }
        });
        debug_assert!(replaced.is_none(), "a vacant cell held an outcome");
        // Release: the waiter that loads this tag sees the outcome. The
        // cell is the waiter's from here on: not touched again.
        cell.tag.store(tag, Ordering::Release);
    }

    /// Whether `waiter`'s outcome was published: then only the waiter
    /// touches its cell until it takes it.
    #[inline]
    pub(super) fn is_published(&self, waiter: WaiterId) -> bool {
        let (cell, tag) = self.cell(waiter);
        cell.tag.load(Ordering::Acquire) == tag
    }

    /// Step 2 as published: `waiter`'s outcome, if a releaser published
    /// it (in a shard's cells, a lease still without its key, for a waiter
    /// that gives up: see `Shard::cancel_unkeyed`; in the lane's, the
    /// any-key waiter's lease with its key).
    #[inline]
    pub(super) fn take_outcome(&self, waiter: WaiterId) -> Option<Outcome<T>> {
        self.take_with(waiter, Option::take)
    }

    fn take_with<R>(
        &self,
        waiter: WaiterId,
        take: impl FnOnce(&mut Option<Outcome<T>>) -> Option<R>,
    ) -> Option<R> {
        let (cell, tag) = self.cell(waiter);
        // Acquire: pairs with the releaser's `Release` store of the tag.
        if cell.tag.load(Ordering::Acquire) != tag {
            return None;
        }
        let outcome = cell.outcome.with_mut(|slot| {
            // SAFETY: the tag is this waiter's: its releaser published the
            // outcome and does not touch the cell again, and no releaser
            // writes a cell that is not vacant; only this waiter, the caller,
            // reads it (registration numbers are never reused).
            take(unsafe { &mut *slot })
        });
        debug_assert!(outcome.is_some(), "a tagged cell held no outcome");
        // Release: the next releaser to find the cell vacant writes after
        // this read.
        cell.tag.store(VACANT, Ordering::Release);
        outcome
    }
}

impl Cells {
    /// Step 1, under the shard's lock, for a key waiter whose outcome the
    /// core just decided: if the waiter's cell is vacant, claims the outcome
    /// and publishes it; otherwise (step 3) leaves it in the core.
    #[inline]
    pub(super) fn hand_off<K>(&self, core: &mut Shard<K>, waiter: WaiterId) {
        if !self.is_vacant(waiter) {
            return;
        }
        match core.claim_unkeyed(waiter) {
            Ok(Claim::Granted(lease)) => self.publish(waiter, Ok(lease)),
            Ok(Claim::Closed) => self.publish(waiter, Err(Closed)),
            // Not decided: nothing to hand off (the waiter claims it).
            Ok(Claim::Waiting) | Err(_) => {}
        }
    }

    /// Step 1 for the next decided waiter of the shard, in one core call
    /// ([`Shard::poll_wake_unkeyed`]); the waiter, to be woken.
    #[inline]
    pub(super) fn hand_off_next<K>(&self, core: &mut Shard<K>) -> Option<WaiterId> {
        let (waiter, claim) = core.poll_wake_unkeyed(|waiter| self.is_vacant(waiter))?;
        match claim {
            Some(Claim::Granted(lease)) => self.publish(waiter, Ok(lease)),
            Some(Claim::Closed) => self.publish(waiter, Err(Closed)),
            Some(Claim::Waiting) | None => {}
        }
        Some(waiter)
    }

    /// Step 2: `waiter`'s outcome if a releaser published it, with `key()`
    /// attached to a lease, taken out of its cell, which is vacant again.
    /// If `key` panics, the outcome stays. Only the owner of `waiter` (the
    /// future or thread that waits) calls it, with or without the lock;
    /// with the shard's lock held, `None` is final: the core still knows
    /// the waiter.
    #[inline]
    pub(super) fn take<K>(&self, waiter: WaiterId, key: impl FnOnce() -> K) -> Option<Outcome<K>> {
        self.take_with(waiter, |slot| {
            // The copy first: the lease stays in the cell if it panics.
            let key = matches!(slot, Some(Ok(_))).then(key);
            slot.take()
                .map(|outcome| outcome.map(|lease| lease.with_key(key.expect("a key for a lease"))))
        })
    }
}

impl<K> Cells<K> {
    /// Step 1 for the lane's next decided any-key waiter, under the lane's
    /// lock and the lock of shard `shard`, by a release whose lease was of
    /// group `slot` there and whose key is `key`: if the waiter's cell is
    /// vacant and it was granted from that group (or told `Closed`), claims
    /// its outcome ([`Lane::poll_wake_unkeyed`]), attaches `key` to a
    /// lease, and publishes it. Returns the waiter, to be woken, and `key`
    /// if it was not used. No user code runs: the key moves.
    #[inline]
    pub(super) fn hand_off_any(
        &self,
        lane: &mut Lane,
        shard: usize,
        slot: usize,
        key: K,
    ) -> (Option<WaiterId>, Option<K>) {
        let decided = lane.poll_wake_unkeyed(|waiter, from| {
            self.is_vacant(waiter) && from.is_none_or(|from| from == (shard, slot))
        });
        let Some((waiter, claim)) = decided else {
            return (None, Some(key));
        };
        let key = match claim {
            Some(Claim::Granted(lease)) => {
                self.publish(waiter, Ok(lease.with_key(key)));
                None
            }
            Some(Claim::Closed) => {
                self.publish(waiter, Err(Closed));
                Some(key)
            }
            Some(Claim::Waiting) | None => Some(key),
        };
        (Some(waiter), key)
    }
}
