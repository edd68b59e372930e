//! The `#![no_std]` state machine behind **workpool**: keyed,
//! runtime-adjustable concurrency limits.
//!
//! A [`Pool`] maps keys to groups. Each group has a `target` (how many leases
//! the key should have) and an `active` count (how many are live). Leases are
//! granted from one key, or from whichever key has room, round-robin; targets
//! can change at any time; requests that cannot be granted at once wait in a
//! fair queue.
//!
//! This crate is *sans-IO*: it never blocks, sleeps or allocates per
//! operation once warm, and knows no clock, thread or waker. It is told what
//! happened and answers who gets which lease. `workpool-std` turns those
//! answers into wake-ups for any executor and for threads; an embedded or
//! custom executor can drive it directly (see `examples/manual_executor.rs`).
//!
//! # Method groups
//!
//! - **Queries**: [`Pool::counts`], [`Pool::waiting`], [`Pool::waiters`],
//!   [`Pool::len`], [`Pool::iter`], [`Pool::is_closed`],
//!   [`Pool::waiter_slots`], [`Pool::has_wakes`], [`Pool::has_forgotten`],
//!   [`Pool::limit`], [`Pool::active`], [`Pool::is_surplus`],
//!   [`Pool::stats`].
//! - **Inputs**: [`Pool::set`] (a target changed; [`Pool::set_all`] and
//!   [`Pool::replace_all`] for several), [`Pool::set_limit`] (the
//!   pool-wide limit), [`Pool::try_acquire`] /
//!   [`Pool::try_acquire_key`] (take a lease now or fail),
//!   [`Pool::enqueue`] / [`Pool::enqueue_key`] (a waiter arrived;
//!   [`Pool::try_acquire_key_many`] / [`Pool::enqueue_key_many`] for `n`
//!   units, [`Pool::split`] to split a lease),
//!   [`Pool::cancel`] (a waiter gave up), [`Pool::release`] (a lease came
//!   back), [`Pool::close`], [`Pool::close_key`] (a key went away: its
//!   waiters fail).
//! - **Outputs**: [`Pool::poll_wake`] names each waiter whose
//!   outcome was decided (granted or closed). It gains entries only during
//!   `set`, `release`, `cancel`, `close` and `close_key`; drain it after each
//!   of those and wake whoever it names. The woken party calls
//!   [`Pool::claim`] to collect its lease (or learn it was closed).
//! - **Parts**: the [`parts`] module has the [`parts::Lane`] and
//!   [`parts::Shard`] a `Pool` is built from, for adapters that lock them
//!   separately so that different keys do not contend (`workpool-std` does).
//!
//! # The contract
//!
//! - A lease is granted from a key only while `active < target`; lowering a
//!   target revokes nothing. A key whose target is 0 and that has no lease
//!   and no waiter is forgotten; leases granted before `set(k, 0)` still
//!   count if `k` is set again. A waiter for a key with target 0 waits
//!   until the key is set again; [`Pool::close_key`] fails the waiters a key
//!   has when it goes away for good.
//! - Lease ids are unique in a pool, strictly increasing, start at 1.
//! - Weighted leases ([`Pool::try_acquire_key_many`],
//!   [`Pool::enqueue_key_many`]) hold `n` units of a key: a grant needs
//!   `active + n <= target` (and `n` units of room under a pool-wide
//!   limit). A key's queue is strictly first come, first served: a waiter
//!   for more units than are free at its head holds back the waiters
//!   behind it (under a binding limit, of every key), so it is never
//!   starved; cancelling it serves them at once. Targets, `active`, the
//!   limit and surplus count units; a lease of 0 units is granted at once
//!   and counts nowhere. [`Pool::split`] and [`Lease::merge`] move units
//!   between leases of a key and free none.
//! - Freed or added capacity goes to the oldest waiter it can serve; nothing
//!   (not even `try_acquire*`) takes capacity an earlier waiter could use.
//!   After every call no waiter waits while a key it could use has room.
//! - A cancelled waiter that had been granted passes its lease on.
//! - Every operation but `close` is O(1) amortised in keys and waiters
//!   (`close_key` costs O(1) per waiter it fails, each at most once);
//!   `close` is O(live keys + waiters). Memory follows the live keys and
//!   waiters: after a burst it is given back.
//!
//! # Example
//!
//! ```
//! use workpool_core::{Claim, Counts, Pool};
//!
//! let mut pool = Pool::new();
//! pool.set("spam", 2);
//! pool.set("eggs", 1);
//!
//! // Three leases, round-robin over the keys with room.
//! let a = pool.try_acquire().unwrap();
//! let b = pool.try_acquire().unwrap();
//! let c = pool.try_acquire().unwrap();
//! assert!(pool.try_acquire().is_err());
//! assert_eq!(pool.counts(&"spam"), Counts { target: 2, active: 2 });
//!
//! // A waiter queues; a release serves it and reports it for waking.
//! let waiter = pool.enqueue_key(&"eggs").unwrap();
//! let eggs = [a, b, c].into_iter().find(|l| *l.key() == "eggs").unwrap();
//! pool.release(eggs).unwrap();
//! assert_eq!(pool.poll_wake(), Some(waiter));
//! let Ok(Claim::Granted(lease)) = pool.claim(waiter) else { unreachable!() };
//! assert_eq!(*lease.key(), "eggs");
//! # drop(lease);
//! ```
//!
//! # Features
//!
//! - `spin`: [`SharedPool`], a spin-locked pool usable through `&self`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

mod bands;
mod blocked;
mod error;
mod groups;
mod identity;
mod lane;
mod lease;
pub mod parts;
mod pool;
mod ring;
mod shard;
#[cfg(feature = "spin")]
mod spin_pool;
mod waiters;

pub use error::{Closed, ReleaseError, TryAcquireError, UnknownWaiter};
pub use hashbrown::{DefaultHashBuilder, Equivalent};
pub use lease::{Claim, Counts, Lease, Stats, WaiterId};
pub use pool::Pool;
pub use shard::Iter;
#[cfg(feature = "spin")]
pub use spin_pool::SharedPool;
