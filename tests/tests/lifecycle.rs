//! Cooperative shrinking (`surplus`, `release_if_surplus`), `drained`,
//! `set_all` / `replace_all`, `stats` and `snapshot`'s waiting counts. That
//! `set_all` is never seen half-applied is a loom model
//! (`workpool-std/tests/loom/`): threads cannot hit the window reliably.

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
    // passes on (back to the key), and it counts as cancelled, not as
    // granted: it never reached a caller.
    let mut late = Box::pin(pool.acquire_key(&"a"));
    assert!(poll_once(&mut late).is_pending());
    drop(lease);
    drop(late);
    assert_eq!(
        pool.stats(),
        Stats {
            granted: 2,
            waited: 4,
            cancelled: 3,
            timed_out: 1,
        }
    );
    assert_eq!(pool.counts(&"a").active, 0);
}
