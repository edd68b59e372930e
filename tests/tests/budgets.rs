//! A pool-wide limit with budgets: while the limit does not bind, shards
//! hold part of its free room and their keys grant and release without the
//! lane. The limit must stay exact whatever the budgets hold: a grant that
//! fits the pool succeeds wherever the free room sits, no grant goes past
//! the limit, and a waiter held back by the limit gets the first unit any
//! shard frees.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use workpool_std::{Pool, TryAcquireError};
use workpool_tests::{with_hang_guard, Probe, HANG_GUARD};

/// `n` keys that live in `n` different shards of `pool`.
fn keys_in_distinct_shards(pool: &Pool<u64>, n: usize) -> Vec<u64> {
    assert!(pool.shard_count() >= n, "the test needs {n} shards");
    let mut keys: Vec<u64> = Vec::new();
    for key in 0.. {
        if keys.len() == n {
            break;
        }
        if keys.iter().all(|k| pool.shard_of(k) != pool.shard_of(&key)) {
            keys.push(key);
        }
    }
    keys
}

/// Pools under test: the default lending, and one that lends a shard all
/// of the free room at once (so every grant meets a budget's edge).
fn pools() -> Vec<(&'static str, Pool<u64>)> {
    let eager = Pool::new();
    eager.set_budget_share(1);
    vec![("default", Pool::new()), ("eager", eager)]
}

#[test]
fn the_limit_caps_grants_across_shards_exactly() {
    for (name, pool) in pools() {
        let keys = keys_in_distinct_shards(&pool, 4);
        for &key in &keys {
            pool.set(key, 100);
        }
        pool.set_limit(Some(50));
        // Round-robin over the keys until the pool refuses: exactly the
        // limit is granted, whichever shards hold its room.
        let mut held = Vec::new();
        'fill: loop {
            for key in &keys {
                match pool.try_acquire_key(key) {
                    Ok(lease) => held.push(lease),
                    Err(TryAcquireError::NoCapacity) => break 'fill,
                    Err(err) => panic!("{name}: {err}"),
                }
            }
        }
        assert_eq!(held.len(), 50, "{name}");
        assert_eq!(pool.active(), 50, "{name}");
        for key in &keys {
            assert!(pool.try_acquire_key(key).is_err(), "{name}: past the limit");
        }
        // A unit freed in one shard is room for a key of any other.
        let freed = held.iter().position(|l| *l.key() == keys[0]).unwrap();
        drop(held.swap_remove(freed));
        held.push(pool.try_acquire_key(&keys[3]).unwrap());
        assert_eq!(pool.active(), 50, "{name}");
        drop(held);
        assert_eq!(pool.active(), 0, "{name}");
    }
}

#[test]
fn a_waiter_held_back_by_the_limit_gets_a_unit_freed_in_another_shard() {
    for (name, pool) in pools() {
        let keys = keys_in_distinct_shards(&pool, 2);
        let (a, b) = (keys[0], keys[1]);
        pool.set(a, 100);
        pool.set(b, 100);
        pool.set_limit(Some(40));
        let mut held: Vec<_> = (0..40).map(|_| pool.try_acquire_key(&a).unwrap()).collect();
        let mut waiter = Probe::new(pool.acquire_key(&b));
        waiter.pending();
        // A newcomer of `a` may not take the room the waiter is owed.
        drop(held.pop());
        assert!(waiter.wakes() > 0, "{name}: the release served the waiter");
        assert!(
            pool.try_acquire_key(&a).is_err(),
            "{name}: a newcomer barged"
        );
        let lease = waiter.ready().unwrap();
        assert_eq!((*lease.key(), pool.active()), (b, 40), "{name}");
        drop(held);
        drop(lease);
        assert_eq!(pool.active(), 0, "{name}");
    }
}

#[test]
fn an_any_key_waiter_under_a_limit_is_served_by_a_keyed_release() {
    for (name, pool) in pools() {
        let keys = keys_in_distinct_shards(&pool, 2);
        pool.set(keys[0], 100);
        pool.set(keys[1], 100);
        pool.set_limit(Some(30));
        let mut held: Vec<_> = (0..30)
            .map(|i| pool.try_acquire_key(&keys[i % 2]).unwrap())
            .collect();
        let mut any = Probe::new(pool.acquire());
        any.pending();
        drop(held.pop());
        assert!(
            any.wakes() > 0,
            "{name}: the release served the any-key waiter"
        );
        assert!(
            pool.try_acquire_key(&keys[0]).is_err(),
            "{name}: a newcomer barged"
        );
        let lease = any.ready().unwrap();
        assert!(keys.contains(lease.key()), "{name}");
        assert_eq!(pool.active(), 30, "{name}");
    }
}

#[test]
fn an_any_key_waiter_for_full_keys_under_a_distant_limit_gets_a_keyed_release() {
    for (name, pool) in pools() {
        let keys = keys_in_distinct_shards(&pool, 2);
        pool.set(keys[0], 2);
        pool.set(keys[1], 2);
        pool.set_limit(Some(1000));
        // Grants and releases that leave budgets in both shards.
        for _ in 0..3 {
            let warm: Vec<_> = (0..4)
                .map(|i| pool.try_acquire_key(&keys[i % 2]).unwrap())
                .collect();
            drop(warm);
        }
        let mut held: Vec<_> = (0..4)
            .map(|i| pool.try_acquire_key(&keys[i % 2]).unwrap())
            .collect();
        // The keys are full, the pool is not: the any-key waiter waits for
        // a key's room, which a release in either shard must hand it.
        let mut any = Probe::new(pool.acquire());
        any.pending();
        drop(held.remove(0));
        assert!(
            any.wakes() > 0,
            "{name}: the release kept its unit from the waiter"
        );
        let lease = any.ready().unwrap();
        assert_eq!(*lease.key(), keys[0], "{name}");
        drop(held.remove(0));
        assert_eq!(
            pool.try_acquire_key(&keys[1]).map(|l| *l.key()),
            Ok(keys[1]),
            "{name}"
        );
    }
}

#[test]
fn lowering_the_limit_below_what_is_held_makes_leases_surplus() {
    for (name, pool) in pools() {
        let keys = keys_in_distinct_shards(&pool, 3);
        for &key in &keys {
            pool.set(key, 100);
        }
        pool.set_limit(Some(90));
        let held: Vec<_> = (0..30)
            .map(|i| pool.try_acquire_key(&keys[i % 3]).unwrap())
            .collect();
        assert!(!held[0].is_surplus(), "{name}");
        pool.set_limit(Some(20));
        assert_eq!((pool.limit(), pool.active()), (Some(20), 30), "{name}");
        assert!(held[0].is_surplus(), "{name}");
        for key in &keys {
            assert!(
                pool.try_acquire_key(key).is_err(),
                "{name}: grant over the limit"
            );
        }
        drop(held);
        assert_eq!(pool.active(), 0, "{name}");
        assert!(pool.try_acquire_key(&keys[0]).is_ok(), "{name}");
    }
}

#[test]
fn lifting_the_limit_gives_the_keys_their_own_targets_back() {
    for (name, pool) in pools() {
        let keys = keys_in_distinct_shards(&pool, 2);
        pool.set(keys[0], 5);
        pool.set(keys[1], 5);
        pool.set_limit(Some(100));
        let first: Vec<_> = (0..4)
            .map(|_| pool.try_acquire_key(&keys[0]).unwrap())
            .collect();
        pool.set_limit(None);
        assert_eq!((pool.limit(), pool.active()), (None, 4), "{name}");
        let more = pool.try_acquire_key(&keys[0]).unwrap();
        assert!(
            pool.try_acquire_key(&keys[0]).is_err(),
            "{name}: over the target"
        );
        drop((first, more));
        assert_eq!(pool.active(), 0, "{name}");
    }
}

/// Threads on keys of different shards, under a limit that binds now and
/// then: the pool never holds more than the limit, and nothing is lost.
#[test]
fn threads_never_hold_more_than_the_limit() {
    for (name, pool) in pools() {
        with_hang_guard(name, HANG_GUARD, move || {
            const THREADS: usize = 4;
            const LIMIT: u64 = 24;
            let keys = keys_in_distinct_shards(&pool, THREADS);
            for &key in &keys {
                pool.set(key, 10);
            }
            pool.set_limit(Some(LIMIT));
            let held = Arc::new(AtomicU64::new(0));
            let most = Arc::new(AtomicU64::new(0));
            let start = Arc::new(Barrier::new(THREADS));
            let threads: Vec<_> = keys
                .iter()
                .map(|&key| {
                    let (pool, held, most, start) =
                        (pool.clone(), held.clone(), most.clone(), start.clone());
                    thread::spawn(move || {
                        start.wait();
                        let mut mine = Vec::new();
                        for round in 0..3_000u64 {
                            if round % 7 < 4 {
                                // Blocks only holding nothing: the others
                                // keep releasing, so someone makes room.
                                let lease = if round % 3 == 0 && mine.is_empty() {
                                    pool.acquire_key_blocking(&key).unwrap()
                                } else if let Ok(lease) = pool.try_acquire_key(&key) {
                                    lease
                                } else {
                                    continue;
                                };
                                let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                mine.push(lease);
                            } else if let Some(lease) = mine.pop() {
                                held.fetch_sub(1, Ordering::SeqCst);
                                drop(lease);
                            }
                        }
                        held.fetch_sub(mine.len() as u64, Ordering::SeqCst);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert!(
                most.load(Ordering::SeqCst) <= LIMIT,
                "{name}: over the limit"
            );
            assert_eq!(pool.active(), 0, "{name}: units lost");
            let leases: Vec<_> = (0..LIMIT)
                .map(|i| pool.try_acquire_key(&keys[i as usize % THREADS]).unwrap())
                .collect();
            assert_eq!(pool.active(), LIMIT, "{name}");
            drop(leases);
        });
    }
}
