//! The parts a [`Pool`](crate::Pool) is built from, for adapters that lock
//! them separately so that operations on different keys do not contend.
//!
//! A pool is one [`Lane`] and any number of [`Shard`]s. Keys are spread over
//! the shards by hash (the adapter picks the shard; the core only needs each
//! key to go to the same shard every time). The shard holds the key's group
//! (target, active, key waiters) and its *ready ring* (the shard's groups
//! that any-key grants rotate over); the lane holds the any-key waiters, the
//! rotation over the *listed* shards and the arrival counter.
//!
//! # The protocol
//!
//! - **Lock order**: the lane, then a shard. Never two shards at once.
//! - **Key operations** ([`Shard::try_acquire_key`],
//!   [`Shard::enqueue_key`], [`Shard::claim`]) need the shard alone.
//! - **Operations that give capacity back or change a target**
//!   ([`Shard::release`], [`Shard::set`], [`Shard::cancel`],
//!   [`Shard::close_key`]) take `Option<&mut Lane>`. Call them with `None`
//!   under the shard's lock; if they return [`NeedsLane`] (nothing changed),
//!   unlock, lock the lane and then the shard, and call again with the lane.
//!   The shard alone suffices exactly when the shard is *listed* in the
//!   lane's rotation ([`Shard::is_listed`]): *while an any-key waiter waits,
//!   no shard is listed* (an any-key request queues only after the lane
//!   unlisted every shard without room, and a shard is listed again only
//!   with the lane, once no any-key waiter is left), so a listed shard
//!   proves that no any-key waiter could be older than its keys' waiters,
//!   and its groups may join its ready ring under its lock alone. Every
//!   linked group's shard is listed; a listed shard may have an empty ring
//!   (the lane unlists it when its cursor reaches it).
//! - **Any-key grants without the lane**: an adapter may lock a shard it
//!   believes listed (say, from an atomic mirror of
//!   [`Shard::offers_any`]) and call [`Shard::try_take_any`], which grants
//!   from the shard's ring only while the shard is listed. The adapter
//!   picks which shard to look at (its own rotation); the shard picks the
//!   group (round-robin over its ring).
//! - **Any-key operations with the lane** hold it throughout: while
//!   [`Lane::next_shard`] names a shard, lock it and call
//!   [`Lane::try_take`] (or [`Lane::try_grant`] for a waiter), which grants
//!   or unlists the shard; when no shard is left, [`Lane::enqueue`] the
//!   waiter. A waiter's claim needs the lane and, once granted, the shard
//!   [`Lane::claim_shard`] names; a cancelled waiter's grant goes back with
//!   [`Shard::give_back`].
//! - **Arrival order** across parts: a key waiter takes the lane's
//!   [`Lane::arrivals`] count (the adapter may publish it in an atomic and
//!   read it without the lane's lock); it is older than any any-key waiter
//!   that arrives after it, and younger than those before.
//! - **Lease ids** come from a [`LeaseIds`] the adapter shares between the
//!   parts (a `u64` counter for one thread, an atomic for many).
//! - **Close**: [`Lane::close`], then [`Shard::close`] on every shard with
//!   the lane held.
//!
//! Wakes are reported per part ([`Lane::poll_wake`], [`Shard::poll_wake`]),
//! and each part numbers its waiter slots on its own
//! ([`WaiterId::shard`](crate::WaiterId::shard) says which part).

pub use crate::lane::{Lane, Returned};
pub use crate::shard::{Entered, Lent, Minter, Shard};

/// Where the parts of a pool take lease ids from: one source per pool,
/// shared by all its parts.
///
/// A `u64` is such a source by itself: the next id to hand out (start it at
/// 1). An adapter with parts under separate locks implements it over an
/// atomic counter.
///
/// # Examples
///
/// ```
/// use workpool_core::parts::LeaseIds;
/// let mut ids = 1u64;
/// assert_eq!(ids.next_id(), 1);
/// assert!(ids.issued(1));
/// assert!(!ids.issued(2));
/// ```
pub trait LeaseIds {
    /// The next id: above every id handed out before, and never 0.
    fn next_id(&mut self) -> u64;

    /// True when `id` was handed out (by [`next_id`](Self::next_id)).
    fn issued(&self, id: u64) -> bool;
}

impl LeaseIds for u64 {
    #[inline]
    fn next_id(&mut self) -> u64 {
        let id = *self;
        *self += 1;
        id
    }

    #[inline]
    fn issued(&self, id: u64) -> bool {
        id != 0 && id < *self
    }
}

/// The answer of a shard operation called without the lane that needs the
/// lane: nothing changed, and the value it was given comes back. Call again
/// with the lane.
///
/// # Examples
///
/// ```
/// use workpool_core::parts::{Lane, NeedsLane, Shard};
/// let mut shard = Shard::new(0, &Lane::new());
/// let mut ids = 1u64;
/// assert_eq!(shard.set(None, 1, "new", 1, &mut ids), Err(NeedsLane("new")));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsLane<T>(pub T);
