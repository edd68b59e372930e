//! Weighted leases through the std adapter: `n` units of a key in one
//! lease, head-of-line fairness in the key's queue, `split` and `merge`,
//! leases of no units, and the blocking and owned forms.

use std::thread;
use std::time::Duration;

use workpool_std::{AcquireTimeoutError, Counts, Pool, TryAcquireError};
use workpool_tests::{with_hang_guard, Probe, HANG_GUARD};

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

#[test]
fn more_units_than_the_target_wait_and_are_served_when_it_rises() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", 2);
    assert_eq!(
        pool.try_acquire_key_many(&"db", 3).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    let mut big = Probe::new(pool.acquire_key_many(&"db", 3));
    big.pending();
    assert_eq!(pool.waiting(&"db"), 1);
    pool.set("db", 3);
    assert!(big.wakes() > 0, "raising the target woke the waiter");
    let lease = big.ready().unwrap();
    assert_eq!((lease.units(), pool.counts(&"db")), (3, counts(3, 3)));
    drop(lease);
    assert_eq!(pool.counts(&"db"), counts(3, 0));
}

#[test]
fn try_never_barges_past_a_waiting_heavier_head() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", 4);
    let held = pool.try_acquire_key_many(&"db", 2).unwrap();
    let mut head = Probe::new(pool.acquire_key_many(&"db", 3));
    head.pending();
    // Two units are free, but the head asked for three first.
    assert_eq!(
        pool.try_acquire_key(&"db").unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(
        pool.try_acquire_key_many(&"db", 2).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    let mut small = Probe::new(pool.acquire_key(&"db"));
    small.pending();
    drop(held);
    assert_eq!(head.ready().unwrap().units(), 3);
    assert_eq!(small.ready().unwrap().units(), 1);
}

#[test]
fn a_release_of_three_units_serves_a_one_and_a_two_unit_waiter() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", 3);
    let held = pool.try_acquire_key_many(&"db", 3).unwrap();
    let mut one = Probe::new(pool.acquire_key(&"db"));
    let mut two = Probe::new(pool.acquire_key_many(&"db", 2));
    one.pending();
    two.pending();
    drop(held);
    // The one release woke both, and both leases counted from it on.
    assert!(one.wakes() > 0 && two.wakes() > 0, "both woken");
    assert_eq!(pool.counts(&"db"), counts(3, 3));
    let (one, two) = (one.ready().unwrap(), two.ready().unwrap());
    assert_eq!((one.units(), two.units()), (1, 2));
    assert!(one.id() < two.id(), "served in queue order");
}

#[test]
fn cancelling_a_four_unit_head_serves_the_one_unit_waiters_behind_it() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", 3);
    let held = pool.try_acquire_key(&"db").unwrap();
    let mut head = Probe::new(pool.acquire_key_many(&"db", 4));
    let mut a = Probe::new(pool.acquire_key(&"db"));
    let mut b = Probe::new(pool.acquire_key(&"db"));
    let mut c = Probe::new(pool.acquire_key(&"db"));
    head.pending();
    a.pending();
    b.pending();
    c.pending();
    drop(head);
    // Two units were free behind the head: the two oldest take them.
    let (a, b) = (a.ready().unwrap(), b.ready().unwrap());
    assert_eq!((a.units(), b.units()), (1, 1));
    c.pending();
    drop(held);
    assert_eq!(c.ready().unwrap().key(), &"db");
}

#[test]
fn split_then_drop_of_one_part_serves_a_waiter() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", 4);
    let mut lease = pool.try_acquire_key_many(&"db", 4).unwrap();
    let mut waiter = Probe::new(pool.acquire_key(&"db"));
    waiter.pending();
    let id = lease.id();
    let part = lease.split(1).expect("1 of 4 units");
    assert_eq!((lease.units(), part.units(), lease.id()), (3, 1, id));
    assert!(part.id() > id, "a fresh id, above the key's earlier ones");
    assert_eq!(pool.counts(&"db"), counts(4, 4), "a split frees nothing");
    assert!(lease.split(0).is_none());
    assert!(lease.split(3).is_none());
    waiter.pending();
    drop(part);
    let served = waiter.ready().unwrap();
    assert_eq!(pool.counts(&"db"), counts(4, 4));
    drop((lease, served));
    assert_eq!(pool.counts(&"db"), counts(4, 0));
}

#[test]
fn merge_of_another_key_or_pool_comes_back_unchanged() {
    let pool: Pool<&'static str> = Pool::new();
    let other: Pool<&'static str> = Pool::new();
    pool.set("db", 3);
    pool.set("web", 1);
    other.set("db", 1);
    let mut lease = pool.try_acquire_key_many(&"db", 2).unwrap();
    let web = pool.try_acquire_key(&"web").unwrap();
    let web_id = web.id();
    let web = lease.merge(web).unwrap_err();
    assert_eq!((*web.key(), web.id(), web.units()), ("web", web_id, 1));
    let foreign = other.try_acquire_key(&"db").unwrap();
    let foreign = lease.merge(foreign).unwrap_err();
    assert_eq!(foreign.units(), 1);
    assert_eq!(other.counts(&"db"), counts(1, 1), "still live in its pool");
    drop(foreign);
    assert_eq!(other.counts(&"db"), counts(1, 0));
    // The same key: the units join, nothing is freed.
    lease.merge(pool.try_acquire_key(&"db").unwrap()).unwrap();
    assert_eq!(lease.units(), 3);
    assert_eq!(pool.counts(&"db"), counts(3, 3));
    drop(lease);
    assert_eq!(pool.counts(&"db"), counts(3, 0));
    drop(web);
    assert_eq!(pool.counts(&"web"), counts(1, 0));
}

#[test]
fn merged_fast_path_leases_go_back_whole() {
    // One-unit leases of a key with room may come from its lock-free
    // word; merged, they must go back under the lock, both units.
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 4);
    let mut first = pool.try_acquire_key(&"k").unwrap();
    for _ in 0..3 {
        first.merge(pool.try_acquire_key(&"k").unwrap()).unwrap();
    }
    assert_eq!((first.units(), pool.counts(&"k")), (4, counts(4, 4)));
    let part = first.split(2).unwrap();
    drop(first);
    assert_eq!(pool.counts(&"k"), counts(4, 2));
    drop(part);
    assert_eq!(pool.counts(&"k"), counts(4, 0));
    // And every unit can be taken again, one at a time.
    let all: Vec<_> = (0..4)
        .map(|_| pool.try_acquire_key(&"k").unwrap())
        .collect();
    assert!(pool.try_acquire_key(&"k").is_err());
    drop(all);
}

#[test]
fn no_units_are_granted_at_once_and_count_nowhere() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", 1);
    let held = pool.try_acquire_key(&"db").unwrap();
    let mut waiter = Probe::new(pool.acquire_key(&"db"));
    waiter.pending();
    // Granted while a waiter waits, by every form.
    let none = pool.try_acquire_key_many(&"db", 0).unwrap();
    let mut future = Probe::new(pool.acquire_key_many(&"db", 0));
    let awaited = future.ready().unwrap();
    let blocking = pool.acquire_key_many_blocking(&"untracked", 0).unwrap();
    assert_eq!((none.units(), awaited.units(), blocking.units()), (0, 0, 0));
    assert_eq!(pool.counts(&"db"), counts(1, 1));
    assert_eq!(pool.counts(&"untracked"), counts(0, 0));
    assert!(!none.is_surplus());
    let stats = pool.stats();
    assert_eq!(stats.granted, 4, "leases of no units count as leases");
    // Dropped, they free nothing; the waiter still waits.
    drop((none, awaited, blocking));
    waiter.pending();
    assert_eq!(pool.counts(&"db"), counts(1, 1));
    drop(held);
    drop(waiter.ready().unwrap());
    // After close: `Closed`, for no units too.
    pool.close();
    assert_eq!(
        pool.try_acquire_key_many(&"db", 0).unwrap_err(),
        TryAcquireError::Closed
    );
    assert!(Probe::new(pool.acquire_key_many(&"db", 0)).ready().is_err());
}

#[test]
fn a_lease_of_no_units_outlives_its_pool() {
    let pool: Pool<String> = Pool::new();
    let none = pool.try_acquire_key_many("gone", 0).unwrap();
    let mut other = pool.try_acquire_key_many("gone", 0).unwrap();
    drop(pool);
    assert_eq!(none.key(), "gone");
    assert!(!none.is_surplus());
    other.merge(none).unwrap();
    assert_eq!(other.units(), 0);
    drop(other);
}

#[test]
fn too_many_units_for_one_lease_fail_at_once() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", u64::MAX);
    let too_many = u64::from(u32::MAX) + 1;
    assert_eq!(
        pool.try_acquire_key_many(&"db", too_many).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert!(Probe::new(pool.acquire_key_many(&"db", u64::MAX))
        .ready()
        .is_err());
    assert_eq!(
        pool.acquire_key_many_timeout(&"db", too_many, Duration::from_secs(5))
            .unwrap_err(),
        AcquireTimeoutError::Closed
    );
    assert_eq!(pool.counts(&"db"), counts(u64::MAX, 0));
    assert_eq!(pool.waiting(&"db"), 0);
    let all = pool
        .try_acquire_key_many(&"db", u64::from(u32::MAX))
        .unwrap();
    assert_eq!(all.units(), u64::from(u32::MAX));
}

#[test]
fn blocking_and_timeout_forms() {
    with_hang_guard("blocking_and_timeout_forms", HANG_GUARD, || {
        let pool: Pool<&'static str> = Pool::new();
        pool.set("db", 4);
        let held = pool.try_acquire_key_many(&"db", 3).unwrap();
        assert_eq!(
            pool.acquire_key_many_timeout(&"db", 2, Duration::from_millis(5))
                .unwrap_err(),
            AcquireTimeoutError::Timeout
        );
        assert_eq!(pool.stats().timed_out, 1);
        let other = pool.clone();
        let waiter = thread::spawn(move || {
            other
                .acquire_key_many_blocking(&"db", 4)
                .map(|lease| lease.units())
        });
        while pool.waiting(&"db") == 0 {
            thread::yield_now();
        }
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(4));
        assert_eq!(pool.counts(&"db"), counts(4, 0));
    });
}

#[test]
fn the_owned_future_can_be_spawned() {
    with_hang_guard("the_owned_future_can_be_spawned", HANG_GUARD, || {
        let pool: Pool<String> = Pool::new();
        pool.set("gpu".to_owned(), 4);
        let held = pool.try_acquire_key_many("gpu", 4).unwrap();
        let future = pool.acquire_key_many_owned("gpu".to_owned(), 3);
        let worker =
            thread::spawn(move || futures_lite::future::block_on(future).map(|l| l.units()));
        while pool.waiting("gpu") == 0 {
            thread::yield_now();
        }
        drop(held);
        assert_eq!(worker.join().unwrap(), Ok(3));
    });
}

#[test]
fn under_a_limit_a_heavy_head_goes_first_across_keys() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 4);
    pool.set("b", 4);
    pool.set_limit(Some(4));
    let mut held = pool.try_acquire_key_many(&"b", 3).unwrap();
    let mut big = Probe::new(pool.acquire_key_many(&"a", 3));
    big.pending();
    // One unit is free in the pool, owed to the older, heavier waiter.
    assert_eq!(
        pool.try_acquire_key(&"b").unwrap_err(),
        TryAcquireError::NoCapacity
    );
    let mut small = Probe::new(pool.acquire_key(&"b"));
    small.pending();
    drop(held.split(2).unwrap());
    // Three free: the heavy head's.
    let big = big.ready().unwrap();
    assert_eq!(big.units(), 3);
    small.pending();
    drop(held);
    let small = small.ready().unwrap();
    assert_eq!(*small.key(), "b");
    assert_eq!(pool.active(), 4);
    drop((big, small));
    assert_eq!(pool.active(), 0);
}

/// Room a key keeps for its heavier head waiter is no room for any-key
/// acquisitions either (on the path that locks one shard): they take
/// another key's, and an any-key waiter that queued behind the head gets
/// what the head leaves once it is served.
#[test]
fn any_key_grants_pass_over_room_kept_for_a_heavier_head() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("db", 4);
    pool.set("cache", 1);
    let held = pool.try_acquire_key_many(&"db", 2).unwrap();
    let mut head = Probe::new(pool.acquire_key_many(&"db", 3));
    head.pending();
    // "db" has two free units, kept for its head: the any-key grant comes
    // from "cache", and then there is nothing left for any key.
    let any = pool.try_acquire().unwrap();
    assert_eq!(*any.key(), "cache");
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    let mut waiter = Probe::new(pool.acquire());
    waiter.pending();
    drop(held);
    let served = head.ready().unwrap();
    assert_eq!(served.units(), 3);
    let last = waiter.ready().unwrap();
    assert_eq!((*last.key(), last.units()), ("db", 1));
    assert_eq!(pool.counts(&"db"), counts(4, 4));
    drop(any);
}
