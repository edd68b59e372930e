//! Keyed, runtime-adjustable concurrency limits for any executor and for
//! plain threads.
//!
//! A [`Pool`] is a collection of semaphores, one per key, whose sizes (the
//! *targets*) can be raised or lowered at any time, plus one front door that
//! hands out a [`Lease`] from whichever key has room. It is the Rust form of
//! Go's `workpool`, written to keep N reverse-tunnel agents per proxy
//! endpoint: say "3 workers for `proxy-a`, 1 for `proxy-b`", spawn a worker
//! for every lease that comes out, and let each worker drop its lease when it
//! is done.
//!
//! - Async, on any executor: [`Pool::acquire`], [`Pool::acquire_key`],
//!   [`Pool::leases`] (wakers are plain `std::task::Waker`s, so tokio, smol,
//!   `futures` executors and hand-written ones all work).
//! - Spawnable: [`Pool::acquire_owned`] and [`Pool::acquire_key_owned`]
//!   return `'static` futures; [`PollPool`] acquires from `poll_*` methods
//!   (a `tower` service's `poll_ready`).
//! - Threads: [`Pool::acquire_blocking`], [`Pool::acquire_timeout`],
//!   [`Pool::acquire_deadline`] and their `_key` forms.
//! - Now or never: [`Pool::try_acquire`], [`Pool::try_acquire_key`].
//! - Control: [`Pool::set`], [`Pool::set_all`], [`Pool::replace_all`],
//!   [`Pool::counts`], [`Pool::snapshot`], [`Pool::stats`], [`Pool::close`],
//!   [`Pool::close_key`]. Dropping the last `Pool` handle closes the pool
//!   too.
//! - A pool-wide limit on top of the per-key targets: [`Pool::set_limit`],
//!   [`Pool::active`] ("8 per host and 100 in all").
//! - Cooperative shrinking: [`Lease::surplus`], [`Lease::is_surplus`],
//!   [`Lease::release_if_surplus`] tell the workers a lowered target (or
//!   limit) made too many, and [`Pool::drained`] waits until a key's
//!   workers are gone.
//! - With the `tower` feature, a keyed limit per request in a `tower`
//!   stack: `tower::KeyedLimitLayer` (requests of each tenant, client or
//!   host wait for a lease of their key; or are shed).
//!
//! Fairness is strict FIFO among the waiters that capacity can serve, with no
//! barging; any-key grants rotate round-robin over keys with room; lowering a
//! target never revokes a lease. The counting rules live in the `no_std`
//! crate `workpool-core`; this crate adds the locks (keys are spread over
//! independently locked shards, so different keys do not contend), the
//! wake-ups and the RAII leases.
//!
//! # Example
//!
//! Go's example: `spam` gets two workers, `eggs` one. With the same amount
//! of work per lease, `spam` gets about twice as many leases.
//!
//! ```
//! use std::collections::HashMap;
//! use std::thread;
//! use std::time::Duration;
//! use workpool_std::Pool;
//!
//! let pool: Pool<&'static str> = Pool::new();
//! pool.set("spam", 2);
//! pool.set("eggs", 1);
//!
//! let mut workers = Vec::new();
//! for _ in 0..60 {
//!     let lease = pool.acquire_blocking()?; // from whichever key has room
//!     workers.push(thread::spawn(move || {
//!         thread::sleep(Duration::from_millis(2)); // the work
//!         *lease.key() // the lease is dropped here, freeing its slot
//!     }));
//! }
//! let mut per_key = HashMap::new();
//! for worker in workers {
//!     *per_key.entry(worker.join().unwrap()).or_insert(0) += 1;
//! }
//! assert!(per_key["spam"] > per_key["eggs"]);
//! # Ok::<(), workpool_std::Closed>(())
//! ```
//!
//! The same with async tasks, on any executor:
//!
//! ```
//! # futures_lite::future::block_on(async {
//! use workpool_std::Pool;
//!
//! let pool = Pool::new();
//! pool.set("spam", 2);
//! let lease = pool.acquire_key(&"spam").await?;
//! assert_eq!(pool.counts(&"spam").active, 1);
//! drop(lease);
//! # Ok::<(), workpool_std::Closed>(())
//! # }).unwrap();
//! ```
// `unsafe` is denied everywhere but in the modules that allow it by name (the
// lease's hold on the pool's memory in `lease` and `shared::keepalive`, the
// hand-off cells, the words, and the locks in `lock`), each block with its
// `// SAFETY:` argument.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod error;
pub mod futures;
#[allow(unsafe_code)]
mod lease;
#[allow(unsafe_code)]
// Under loom only its own models use it; the pool takes loom's mutex.
#[cfg_attr(loom, allow(dead_code))]
mod lock;
mod poll;
mod pool;
mod shared;
mod sync;
#[cfg(feature = "tower")]
pub mod tower;
mod watch;

pub use error::{AcquireTimeoutError, Closed, TryAcquireError};
pub use lease::Lease;
pub use poll::PollPool;
pub use pool::Pool;
pub use workpool_core::{Counts, DefaultHashBuilder, Equivalent, Stats};

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
