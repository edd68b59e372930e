//! No user code under a lock of the pool: wakers (their wake and their
//! drop), leases and keys may re-enter the pool, and nothing deadlocks.
//!
//! The core is a table (`table.rs`): every future and stream type of
//! `workpool-std` (`rows.rs`: a driver per type saying how to make it
//! pending and what makes it ready) against every scenario (`scenarios.rs`,
//! after tokio's regression test for its issue 5429): a re-poll that
//! replaces a waker owning a lease (or a task), a wake by value that drops
//! the last waker owning a lease, a waker whose wake releases a lease or
//! calls `set`, and a waker that holds the last `Pool` handle. Each cell is
//! a test of its own under a hang guard, so a deadlock fails in seconds;
//! `table::<row>::<scenario>` runs one (`-- table::drained::`).
//!
//! Also here: the two deadlocks of issue 16 step by step (`issue16.rs`),
//! and the blocking paths, keys dropped outside the lock, a `close` that
//! wakes many re-entering wakers and `snapshot`'s clones on a panic
//! (`locks.rs`).

#[path = "reentrancy/issue16.rs"]
mod issue16;
#[path = "reentrancy/locks.rs"]
mod locks;
#[path = "reentrancy/rows.rs"]
mod rows;
#[path = "reentrancy/scenarios.rs"]
mod scenarios;
#[path = "reentrancy/table.rs"]
mod table;
#[path = "reentrancy/wakers.rs"]
mod wakers;
