//! Odd and hostile input: unknown keys, extreme targets, calls after
//! `close`, and (in the core) leases and waiter handles of another pool.

use std::time::Duration;

use workpool_core::{Claim, ReleaseError, UnknownWaiter};
use workpool_std::{AcquireTimeoutError, Closed, Counts, Pool, TryAcquireError};

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

#[test]
fn unknown_keys_read_as_zero_and_are_not_tracked() {
    let pool: Pool<String> = Pool::new();
    assert_eq!(pool.counts(&"nobody".to_owned()), counts(0, 0));
    assert_eq!(pool.waiting(&"nobody".to_owned()), 0);
    pool.set("nobody".to_owned(), 0);
    assert!(
        pool.is_empty(),
        "setting 0 on an unknown key tracks nothing"
    );
    assert_eq!(
        pool.try_acquire_key(&"nobody".to_owned()).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(
        pool.acquire_key_timeout(&"nobody".to_owned(), Duration::ZERO)
            .unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert!(pool.is_empty(), "a timed-out waiter leaves no group behind");
    assert_eq!(pool.counts(&String::new()), counts(0, 0));
    assert!(pool.snapshot().is_empty());

    let mut core = workpool_core::Pool::<u8>::new();
    assert_eq!(core.counts(&7), counts(0, 0));
    core.set(7, 0);
    assert!(core.is_empty());
}

#[test]
fn u64_max_target() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", u64::MAX);
    let mut leases = Vec::new();
    for i in 0..1_000 {
        leases.push(match i % 3 {
            0 => pool.try_acquire().unwrap(),
            1 => pool.try_acquire_key(&"k").unwrap(),
            _ => futures_lite::future::block_on(pool.acquire_key(&"k")).unwrap(),
        });
    }
    assert_eq!(pool.counts(&"k"), counts(u64::MAX, 1_000));
    let ids: Vec<_> = leases.iter().map(|l| l.id()).collect();
    assert_eq!(ids, (1..=1_000).collect::<Vec<_>>());

    // Lowering revokes nothing; the key still counts its leases.
    pool.set("k", 1);
    assert_eq!(pool.counts(&"k"), counts(1, 1_000));
    leases.truncate(1);
    assert_eq!(pool.counts(&"k"), counts(1, 1));
    assert!(pool.try_acquire().is_err());
    pool.set("k", 0);
    pool.set("k", u64::MAX);
    assert_eq!(pool.counts(&"k"), counts(u64::MAX, 1));
    assert!(pool.try_acquire().is_ok());
    drop(leases);
    assert_eq!(pool.counts(&"k"), counts(u64::MAX, 0));
}

#[test]
fn set_counts_and_release_work_after_close() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let lease = pool.try_acquire().unwrap();
    pool.close();
    pool.close(); // twice is fine
    assert!(pool.is_closed());
    pool.set("k", 10);
    pool.set("new", 2);
    assert_eq!(pool.counts(&"k"), counts(10, 1));
    assert_eq!(pool.counts(&"new"), counts(2, 0));
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert_eq!(
        futures_lite::future::block_on(pool.acquire_key(&"untracked")).unwrap_err(),
        Closed
    );
    assert_eq!(pool.counts(&"untracked"), counts(0, 0));
    assert_eq!(
        pool.acquire_timeout(Duration::from_secs(30)).unwrap_err(),
        AcquireTimeoutError::Closed
    );
    assert_eq!(pool.acquire_blocking().unwrap_err(), Closed);
    drop(lease);
    assert_eq!(pool.counts(&"k"), counts(10, 0));
    pool.set("k", 0);
    pool.set("new", 0);
    assert!(pool.is_empty());
}

#[test]
fn memory_is_bounded_by_live_groups() {
    let pool: Pool<u32> = Pool::new();
    for key in 0..10_000 {
        pool.set(key, 1);
    }
    assert_eq!(pool.len(), 10_000);
    let held = pool.try_acquire_key(&5).unwrap();
    for key in 0..10_000 {
        pool.set(key, 0);
    }
    assert_eq!(pool.len(), 1, "only the key with a live lease");
    drop(held);
    assert!(pool.is_empty());
}

#[test]
fn core_rejects_a_lease_of_another_pool() {
    let mut a = workpool_core::Pool::new();
    let mut b = workpool_core::Pool::new();
    a.set("k", 1);
    b.set("k", 1);
    let from_a = a.try_acquire().unwrap();
    let from_b = b.try_acquire().unwrap();
    let waiter = b.enqueue_key(&"k").unwrap();

    assert_eq!(b.release(from_a), Err(ReleaseError::ForeignPool));
    assert_eq!(b.counts(&"k"), counts(1, 1), "counts unchanged");
    assert_eq!(b.poll_wake(), None, "nobody served");
    assert!(matches!(b.claim(waiter), Ok(Claim::Waiting)));

    b.release(from_b).unwrap();
    assert_eq!(b.poll_wake(), Some(waiter));
    let Ok(Claim::Granted(lease)) = b.claim(waiter) else {
        panic!("the waiter is granted")
    };
    assert_eq!(lease.id(), 2);
    b.release(lease).unwrap();
    assert_eq!(b.counts(&"k"), counts(1, 0));
}

#[test]
fn core_rejects_waiter_handles_of_another_pool_and_stale_ones() {
    let mut a = workpool_core::Pool::<&str>::new();
    let mut b = workpool_core::Pool::<&str>::new();
    let from_a = a.enqueue_key(&"k").unwrap();
    let from_b = b.enqueue_key(&"k").unwrap();
    // Same slot index in both pools, still told apart.
    assert_eq!(from_a.index(), from_b.index());
    assert_eq!(b.cancel(from_a), Err(UnknownWaiter));
    assert!(matches!(b.claim(from_a), Err(UnknownWaiter)));
    assert_eq!(b.waiting(&"k"), 1);

    b.cancel(from_b).unwrap();
    assert_eq!(b.cancel(from_b), Err(UnknownWaiter), "stale after cancel");
    assert!(b.is_empty());

    a.set("k", 1);
    assert_eq!(a.poll_wake(), Some(from_a));
    let Ok(Claim::Granted(lease)) = a.claim(from_a) else {
        panic!("granted")
    };
    assert!(
        matches!(a.claim(from_a), Err(UnknownWaiter)),
        "stale after claim"
    );
    // A reused slot does not revive the old handle.
    let again = a.enqueue_key(&"k").unwrap();
    assert_eq!(again.index(), from_a.index());
    assert_ne!(again, from_a);
    assert_eq!(a.cancel(from_a), Err(UnknownWaiter));
    a.cancel(again).unwrap();
    a.release(lease).unwrap();
    assert_eq!(a.counts(&"k"), counts(1, 0));
}

#[test]
fn zero_timeout_on_a_full_pool_queues_nothing() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let held = pool.try_acquire().unwrap();
    for _ in 0..100 {
        assert_eq!(
            pool.acquire_timeout(Duration::ZERO).unwrap_err(),
            AcquireTimeoutError::Timeout
        );
    }
    assert_eq!(pool.waiters(), 0);
    drop(held);
    assert_eq!(pool.try_acquire().unwrap().id(), 2);
}

#[test]
fn huge_timeout_does_not_overflow() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    assert!(pool.acquire_timeout(Duration::MAX).is_ok());
    pool.close();
    assert_eq!(
        pool.acquire_key_timeout(&"k", Duration::MAX).unwrap_err(),
        AcquireTimeoutError::Closed
    );
}
