//! Cooperative shrinking (`surplus`, `release_if_surplus`), `drained`,
//! `set_all` / `replace_all`, `stats` and `snapshot`'s waiting counts.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use futures_lite::future::block_on;
use workpool_std::{Counts, Pool, Stats};
use workpool_tests::{with_hang_guard, HANG_GUARD};

fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn exactly_the_surplus_leaves_when_holders_race() {
    with_hang_guard("release_if_surplus race", HANG_GUARD, || {
        for round in 0..50u64 {
            let pool: Pool<&str> = Pool::new();
            pool.set("k", 5);
            let leases: Vec<_> = (0..5)
                .map(|_| pool.try_acquire_key(&"k").unwrap())
                .collect();
            let target = round % 5;
            pool.set("k", target);
            let barrier = Arc::new(Barrier::new(5));
            let left = Arc::new(AtomicUsize::new(0));
            let kept: Vec<_> = leases
                .into_iter()
                .map(|lease| {
                    let (barrier, left) = (Arc::clone(&barrier), Arc::clone(&left));
                    thread::spawn(move || {
                        barrier.wait();
                        match lease.release_if_surplus() {
                            Ok(()) => {
                                left.fetch_add(1, Ordering::SeqCst);
                                None
                            }
                            Err(lease) => Some(lease),
                        }
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|t| t.join().unwrap())
                .collect();
            assert_eq!(left.load(Ordering::SeqCst) as u64, 5 - target);
            assert_eq!(kept.len() as u64, target);
            assert_eq!(
                pool.counts(&"k"),
                Counts {
                    target,
                    active: target
                }
            );
            assert!(kept.iter().all(|l| !l.is_surplus()));
        }
    });
}

#[test]
fn surplus_resolves_on_a_shrink_a_close_a_replace_and_a_lower_limit() {
    let pool: Pool<&str> = Pool::new();
    pool.set_all([("a", 2), ("b", 2), ("c", 2)]);
    let a = pool.try_acquire_key(&"a").unwrap();
    let b = pool.try_acquire_key(&"b").unwrap();
    let c = pool.try_acquire_key(&"c").unwrap();
    let c2 = pool.try_acquire_key(&"c").unwrap();
    let (mut sa, mut sb, mut sc) = (
        Box::pin(a.surplus()),
        Box::pin(b.surplus()),
        Box::pin(c.surplus()),
    );
    for s in [&mut sa, &mut sb, &mut sc] {
        assert!(poll_once(s).is_pending());
    }
    pool.set("a", 3); // raising makes nobody surplus
    assert!(poll_once(&mut sa).is_pending());
    pool.set("a", 0);
    assert!(poll_once(&mut sa).is_ready());
    pool.close_key(&"b");
    assert!(poll_once(&mut sb).is_ready());
    assert!(poll_once(&mut sc).is_pending());
    pool.set_limit(Some(2)); // 4 live leases
    assert!(poll_once(&mut sc).is_ready());
    pool.set_limit(None);
    assert!(!c.is_surplus());
    let mut sc2 = Box::pin(c2.surplus());
    assert!(poll_once(&mut sc2).is_pending());
    pool.replace_all([("c", 1)]);
    assert!(poll_once(&mut sc2).is_ready());
    drop((sa, sb, sc, sc2));
    assert!(a.release_if_surplus().is_ok());
    assert!(b.release_if_surplus().is_ok());
    assert!(c.release_if_surplus().is_ok());
    let kept = c2
        .release_if_surplus()
        .expect_err("c is back at its target");
    assert_eq!(
        pool.counts(&"c"),
        Counts {
            target: 1,
            active: 1
        }
    );
    drop(kept);
}

#[test]
fn a_surplus_that_came_and_went_before_the_poll_still_resolves() {
    let pool: Pool<&str> = Pool::new();
    pool.set("a", 1);
    let lease = pool.try_acquire().unwrap();
    let mut surplus = Box::pin(lease.surplus());
    assert!(poll_once(&mut surplus).is_pending());
    pool.set("a", 0);
    pool.set("a", 1);
    assert!(!lease.is_surplus());
    assert!(
        poll_once(&mut surplus).is_ready(),
        "it was surplus for a moment"
    );
}

#[test]
fn drained_resolves_at_once_or_when_the_last_lease_goes() {
    let pool: Pool<String> = Pool::new();
    block_on(pool.drained("untracked"));
    pool.set("k".to_owned(), 2);
    block_on(pool.drained("k")); // tracked, no lease
    let one = pool.try_acquire().unwrap();
    let two = pool.try_acquire().unwrap();
    let mut drained = Box::pin(pool.drained("k"));
    assert!(poll_once(&mut drained).is_pending());
    drop(one);
    assert!(poll_once(&mut drained).is_pending());
    drop(two);
    // Drained, then a new lease before the poll: it happened.
    let again = pool.try_acquire().unwrap();
    assert!(poll_once(&mut drained).is_ready());
    drop(drained);
    pool.set("k".to_owned(), 0);
    let waiter = thread::spawn({
        let pool = pool.clone();
        move || block_on(pool.drained("k"))
    });
    thread::sleep(Duration::from_millis(20));
    drop(again);
    waiter.join().unwrap();
    assert!(pool.is_empty());
}

#[test]
fn set_all_is_never_seen_half_applied() {
    with_hang_guard("set_all atomicity", HANG_GUARD, || {
        // The targets always add up to 1: two leases at once would mean an
        // acquisition saw one key's new target and the other's old one.
        let pool: Pool<u32> = Pool::new();
        let keys: Vec<u32> = (0..16).collect();
        pool.set(keys[0], 1);
        let held = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, held, stop) = (pool.clone(), Arc::clone(&held), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut taken = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        if let Ok(lease) = pool.try_acquire() {
                            assert_eq!(held.fetch_add(1, Ordering::SeqCst), 0, "two leases");
                            taken += 1;
                            thread::yield_now();
                            held.fetch_sub(1, Ordering::SeqCst);
                            drop(lease);
                        }
                    }
                    taken
                })
            })
            .collect();
        for round in 0..2_000usize {
            let on = keys[round % keys.len()];
            if round % 2 == 0 {
                // The new key first: applied one by one, two would be on.
                let mut targets: Vec<_> = keys.iter().map(|&k| (k, u64::from(k == on))).collect();
                targets.sort_by_key(|&(_, t)| std::cmp::Reverse(t));
                pool.set_all(targets);
            } else {
                pool.replace_all([(on, 1)]);
            }
        }
        stop.store(true, Ordering::SeqCst);
        let taken: u64 = takers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(taken > 0);
    });
}

#[test]
fn replace_all_zeroes_every_other_key_and_keeps_their_leases() {
    let pool: Pool<&str> = Pool::new();
    pool.set_all([("a", 1), ("b", 1), ("c", 1)]);
    let lease = pool.try_acquire_key(&"b").unwrap();
    pool.replace_all([("c", 2), ("d", 1)]);
    let mut all = pool.snapshot();
    all.sort_by_key(|(k, _, _)| *k);
    let all: Vec<_> = all.into_iter().map(|(k, c, _)| (k, c)).collect();
    assert_eq!(
        all,
        [
            (
                "b",
                Counts {
                    target: 0,
                    active: 1
                }
            ),
            (
                "c",
                Counts {
                    target: 2,
                    active: 0
                }
            ),
            (
                "d",
                Counts {
                    target: 1,
                    active: 0
                }
            ),
        ]
    );
    assert!(lease.is_surplus());
    drop(lease);
    assert_eq!(pool.len(), 2);
}

#[test]
fn snapshot_counts_the_waiters_of_each_key() {
    let pool: Pool<&str> = Pool::new();
    pool.set("a", 1);
    let _held = pool.try_acquire_key(&"a").unwrap();
    let mut w1 = pin!(pool.acquire_key(&"a"));
    let mut w2 = pin!(pool.acquire_key(&"b"));
    let mut any = pin!(pool.acquire());
    assert!(poll_once(&mut w1).is_pending());
    assert!(poll_once(&mut w2).is_pending());
    assert!(poll_once(&mut any).is_pending());
    let mut all = pool.snapshot();
    all.sort_by_key(|(k, _, _)| *k);
    let waiting: Vec<_> = all.iter().map(|(k, _, w)| (*k, *w)).collect();
    assert_eq!(waiting, [("a", 1), ("b", 1)]);
    assert_eq!(pool.waiters(), 3);
}

#[test]
fn stats_count_exactly() {
    let pool: Pool<&str> = Pool::new();
    assert_eq!(pool.stats(), Stats::default());
    pool.set("a", 1);
    let lease = pool.try_acquire().unwrap(); // granted 1
    assert!(pool.try_acquire().is_err()); // nothing counted
    {
        // Queued, then dropped without a lease: waited and cancelled.
        let mut fut = pin!(pool.acquire_key(&"a"));
        assert!(poll_once(&mut fut).is_pending());
    }
    // A timeout: waited, cancelled, timed out.
    assert!(pool.acquire_timeout(Duration::from_millis(5)).is_err());
    // Queued, then served: waited and granted.
    let mut served = Box::pin(pool.acquire());
    assert!(poll_once(&mut served).is_pending());
    drop(lease); // granted 2, to `served`
    let Poll::Ready(Ok(lease)) = poll_once(&mut served) else {
        panic!("served");
    };
    // Queued, handed a lease, dropped before collecting it: the lease
    // passes on (granted 3, to nobody: back to the key), and it counts as
    // cancelled.
    let mut late = Box::pin(pool.acquire_key(&"a"));
    assert!(poll_once(&mut late).is_pending());
    drop(lease);
    drop(late);
    assert_eq!(
        pool.stats(),
        Stats {
            granted: 3,
            waited: 4,
            cancelled: 3,
            timed_out: 1,
        }
    );
    assert_eq!(pool.counts(&"a").active, 0);
}
