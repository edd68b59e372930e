//! The two deadlocks of issue 16, part 1, step by step as the issue
//! writes them: a waker that owns a lease is held by a `drained()` or a
//! `surplus()` future, and the pool (or `event-listener`, which the watch
//! futures used) drops or wakes it while a lock is held.
//!
//! Taken exactly as written, neither sequence deadlocked on the code the
//! issue was filed against (main at 15d85e9): `event-listener` does drop
//! the replaced waker under its list lock, but the lease that drop
//! releases neither drains the key nor makes a lease surplus, so the
//! release notifies no event and never reaches that lock again. What does
//! deadlock there is a re-entry that reaches the same key's event: the
//! table's `drained::a_repoll` (the dropped waker owns the key's *last*
//! lease, whose release drains the key) and `*::a_repoll_task` for
//! `Surplus` and `Drained` (the dropped waker owns a task parked on a
//! `surplus()` of the same key). These two tests keep the issue's steps
//! and check where they lead.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use workpool_std::{Counts, Pool};
use workpool_tests::with_hang_guard;

use crate::wakers::{pending, Hostile, OnWake, Payload, Plain};

const GUARD: Duration = Duration::from_secs(10);

/// `set(1, 3)`; two leases of key 1; a waker that owns one of them; poll
/// `drained(&1)` once with it and drop our copy of the waker; drop the
/// other lease. Then the future is dropped, which drops the waker and
/// with it the key's last lease.
#[test]
fn issue_16_drained_with_a_waker_that_owns_a_lease() {
    with_hang_guard("issue 16 drained", GUARD, || {
        let pool: Pool<u32> = Pool::new();
        pool.set(1, 3);
        let other = pool.try_acquire_key(&1).unwrap();
        let owned = pool.try_acquire_key(&1).unwrap();
        let (waker, probe) = Hostile::owning(Payload::Lease(owned), OnWake::Nothing);
        let mut drained = Box::pin(pool.drained(&1));
        pending(
            &drained.as_mut().poll(&mut Context::from_waker(&waker)),
            "drained",
        );
        drop(waker);
        drop(other);
        // The waker's lease is the key's last one: not drained.
        assert_eq!(
            pool.counts(&1),
            Counts {
                target: 3,
                active: 1
            }
        );
        assert!(!probe.dropped(), "the future still holds the waker");
        drop(drained);
        assert!(probe.dropped(), "dropping the future dropped the waker");
        assert_eq!(
            pool.counts(&1),
            Counts {
                target: 3,
                active: 0
            }
        );
    });
}

/// Two leases of key 1 (target 3), the second owned by a waker; poll
/// `watched.surplus()` once with that waker, drop our copy, poll again
/// with a fresh waker (the pool should drop the old one after unlocking),
/// then `pool.set(1, 0)`.
#[test]
fn issue_16_surplus_with_a_waker_that_owns_a_lease() {
    with_hang_guard("issue 16 surplus", GUARD, || {
        let pool: Pool<u32> = Pool::new();
        pool.set(1, 3);
        let watched = pool.try_acquire_key(&1).unwrap();
        let second = pool.try_acquire_key(&1).unwrap();
        let (waker, probe) = Hostile::owning(Payload::Lease(second), OnWake::Nothing);
        let mut surplus = pin!(watched.surplus());
        pending(
            &surplus.as_mut().poll(&mut Context::from_waker(&waker)),
            "surplus",
        );
        drop(waker);
        let (fresh, wakes) = Plain::new();
        pending(
            &surplus.as_mut().poll(&mut Context::from_waker(&fresh)),
            "surplus",
        );
        assert!(probe.dropped(), "the replaced waker was dropped");
        assert_eq!(
            pool.counts(&1),
            Counts {
                target: 3,
                active: 1
            }
        );
        pool.set(1, 0);
        assert_eq!(wakes.wakes(), 1, "the fresh waker was woken");
        assert_eq!(
            surplus.as_mut().poll(&mut Context::from_waker(&fresh)),
            Poll::Ready(())
        );
        assert!(watched.is_surplus());
    });
}
