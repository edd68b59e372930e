//! How leases keep the pool's memory alive without a pool-wide count.
//!
//! A [`Lease`](crate::Lease) does not own an `Arc` of [`Shared`]: cloning
//! and dropping one per lease wrote the `Arc`'s count, a line that every key
//! of the pool writes, twice per cycle. Instead a lease holds a plain
//! pointer, and each *shard* holds one strong count for all of its leases:
//! taken when a lease of the shard is made while the shard holds none
//! ([`Shared::hold`]), kept while the pool is open (its handles keep the
//! memory anyway), and given up once the pool is closed (the last handle's
//! drop closes it) by whichever comes last under the shard's lock: `close`
//! finding the shard idle, or the release or cancel that takes the shard's
//! last unit back ([`Shared::let_go`]). So a grant and a release touch
//! neither the count nor anything outside the shard's lines, even on one
//! thread where each cycle takes the shard's only unit.
//!
//! # Why it is sound
//!
//! The invariant: *while a lease of shard `s` exists, `s` holds a count*.
//!
//! - A lease is made by a thread that is running a method of the pool, so
//!   it owns a count of its own (a handle, an owned future, a stream, a
//!   `PollPool`) or borrows something that does. [`Shared::hold`] runs
//!   before it lets go of that, and the flag's compare-exchange makes
//!   exactly one of racing makers take the shard's count.
//! - The core counts a unit as active from its grant (even before the
//!   waiter it was handed to claims it) until it is released or given back,
//!   and a lease is made only from a granted unit. So while a lease exists
//!   the shard's active count is not 0, and [`Shared::let_go`], which gives
//!   the count up only at 0 and only under the shard's lock, cannot run.
//!   The lock also orders a give-up before any later grant, so a later
//!   maker sees the flag clear and takes a new count.
//! - `close` sets the pool's `closed` flag before it locks any shard, and
//!   both it and `let_go` decide under the shard's lock, so exactly one of
//!   them gives the count up: a release before `close`'s visit leaves the
//!   count for the visit; one after it sees the flag.
//! - The count a shard gives up is dropped after every lock is released:
//!   by the lease's own drop, once nothing of the pool is used any more
//!   (it may be the last count: then the pool's memory goes with it), or
//!   by a cancelled acquisition or by `close`, whose callers still hold a
//!   count of their own, so that drop is never the last.
//!
//! Loom models it (`workpool-std/tests/loom/`, "keepalive"), and Miri runs
//! the unit tests that drop the last handle before the last lease.

use std::sync::atomic::Ordering as StdOrdering;

use super::{ShardGuard, Shared};
use crate::sync::{Arc, Ordering};

impl<K, S> Shared<K, S> {
    /// Makes sure `shard` holds a count of the pool for its leases; call it
    /// whenever a lease of `shard` is made, while the caller still holds a
    /// count of its own.
    #[inline]
    pub(crate) fn hold(&self, shard: usize) {
        let holds = &self.shards[shard].holds;
        if holds.load(Ordering::Relaxed) {
            return;
        }
        if holds
            .compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let me = self.me.load(StdOrdering::Relaxed);
            assert!(!me.is_null(), "a pool's shared state outside its Arc");
            // SAFETY: `me` is `Arc::as_ptr` of the `Arc` that owns `self`
            // (set by `new_arc` before the `Arc` was shared), and that `Arc`
            // is alive: the caller holds a count of its own.
            unsafe { Arc::increment_strong_count(me.cast_const()) };
        }
    }

    /// Under `shard`'s lock, after an operation that may have taken the
    /// shard's last unit back: true if the shard gave up its count, which
    /// the caller must then drop once no lock is held (a lease's drop with
    /// [`unref`]; a cancel with [`unref_own`](Self::unref_own)). A shard of
    /// an open pool keeps its count (the handles keep the memory anyway),
    /// so a busy key's grant and release never write the `Arc`'s count;
    /// [`close`](Self::close) gives up the counts of idle shards, and after
    /// it the release of a shard's last unit does.
    #[inline]
    pub(super) fn let_go(&self, shard: usize, part: &ShardGuard<'_, K>) -> bool {
        let holds = &self.shards[shard].holds;
        if self.is_closed() && part.core.active() == 0 && holds.load(Ordering::Relaxed) {
            holds.store(false, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Drops a count a shard gave up, on a path whose caller holds a count
    /// of its own (a cancelled acquisition), so that this is never the
    /// last one. Call it with no lock held.
    pub(super) fn unref_own(&self) {
        let me = self.me.load(StdOrdering::Relaxed);
        // SAFETY: a shard gave this count up (`let_go` returned true), so it
        // is one that `hold` took on this `Arc`; the caller holds another,
        // so `self` outlives the call.
        unsafe { Arc::decrement_strong_count(me.cast_const()) };
    }
}

/// Drops a count a shard gave up at a lease's release: possibly the last
/// one, so it takes the pointer, not a reference, and the caller must not
/// use the pool afterwards.
///
/// # Safety
///
/// `shared` is the pool's `Arc::as_ptr`, and a shard's `let_go` returned
/// true for this call; no lock of the pool is held and no reference to it
/// is live.
pub(crate) unsafe fn unref<K, S>(shared: *const Shared<K, S>) {
    // SAFETY: as the caller promises; the count was taken by `hold`.
    unsafe { Arc::decrement_strong_count(shared) };
}
