//! Cancellation: a future that was granted a lease and is dropped before it
//! is polled again passes the lease on (to the next eligible waiter, or back
//! to its key), a waiting future that is dropped leaves nothing behind, and
//! timeouts (blocking and async) leak no capacity, even when they race
//! releases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use futures_lite::StreamExt;
use workpool_std::{AcquireTimeoutError, Counts, PollPool, Pool};
use workpool_tests::{with_hang_guard, woken, Probe, HANG_GUARD};

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

#[test]
fn granted_then_dropped_passes_to_the_next_waiter() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut first = Probe::new(pool.acquire_key(&"a"));
    let mut second = Probe::new(pool.acquire_key(&"a"));
    first.pending();
    second.pending();

    drop(held);
    assert_eq!((first.wakes(), second.wakes()), (1, 0));
    drop(first); // granted, never polled again
    assert_eq!(second.wakes(), 1);
    assert_eq!(pool.counts(&"a"), counts(1, 1), "one lease, now second's");
    let lease = second.ready().unwrap();
    assert_eq!(*lease.key(), "a");
    assert!(lease.id() > 1);
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    assert_eq!(pool.waiters(), 0);
    drop(lease);
    assert_eq!(pool.counts(&"a"), counts(1, 0));
}

#[test]
fn granted_then_dropped_returns_to_the_key() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    pool.set("b", 1);
    let held_a = pool.try_acquire_key(&"a").unwrap();
    let _held_b = pool.try_acquire_key(&"b").unwrap();
    let mut for_a = Probe::new(pool.acquire_key(&"a"));
    let mut for_b = Probe::new(pool.acquire_key(&"b"));
    for_a.pending();
    for_b.pending();

    drop(held_a);
    assert_eq!((for_a.wakes(), for_b.wakes()), (1, 0));
    drop(for_a);
    assert_eq!(for_b.wakes(), 0, "a's capacity cannot serve a waiter for b");
    assert!(for_b.poll().is_pending());
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    let again = pool.try_acquire_key(&"a").expect("the capacity is back");
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    drop(again);
}

#[test]
fn granted_key_waiter_dropped_passes_to_an_any_key_waiter() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut key = Probe::new(pool.acquire_key(&"a"));
    let mut any = Probe::new(pool.acquire());
    key.pending();
    any.pending();
    drop(held);
    assert_eq!((key.wakes(), any.wakes()), (1, 0));
    drop(key);
    assert_eq!(any.wakes(), 1);
    assert_eq!(*any.ready().unwrap().key(), "a");
    assert_eq!(pool.counts(&"a"), counts(1, 0));
}

#[test]
fn granted_any_key_waiter_dropped_passes_on_by_age() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut probes: Vec<_> = (0..3).map(|_| Probe::new(pool.acquire())).collect();
    for p in &mut probes {
        p.pending();
    }
    drop(held);
    assert_eq!(woken(&probes), [0]);
    let granted = probes.remove(0);
    drop(granted);
    assert_eq!(woken(&probes), [0]);
    assert_eq!(probes[1].wakes(), 0);
    let granted = probes.remove(0);
    drop(granted);
    assert_eq!(woken(&probes), [0]);
    drop(probes);
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    assert_eq!(pool.waiters(), 0);
}

#[test]
fn dropped_while_waiting_leaves_nothing() {
    let pool: Pool<&'static str> = Pool::new();
    let mut key = Probe::new(pool.acquire_key(&"untracked"));
    let mut any = Probe::new(pool.acquire());
    key.pending();
    any.pending();
    assert_eq!(pool.waiters(), 2);
    assert_eq!(pool.len(), 1, "tracked while someone waits for it");
    drop(key);
    drop(any);
    assert_eq!(pool.waiters(), 0);
    assert!(pool.is_empty(), "the untracked key is forgotten again");

    // Nothing was left queued: new capacity goes to a newcomer at once.
    pool.set("untracked", 1);
    assert!(pool.try_acquire_key(&"untracked").is_ok());
}

#[test]
fn lease_stream_granted_then_dropped_passes_on() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut stream = pool.leases();
    let mut next = Probe::new(async move {
        let lease = stream.next().await;
        (lease, stream)
    });
    let mut after = Probe::new(pool.acquire());
    next.pending();
    after.pending();
    drop(held);
    assert_eq!((next.wakes(), after.wakes()), (1, 0));
    drop(next); // drops the stream with its granted place
    assert_eq!(after.wakes(), 1);
    drop(after.ready().unwrap()); // released at once
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    assert_eq!(pool.waiters(), 0);
}

#[test]
fn owned_futures_granted_then_dropped_pass_on() {
    let pool: Pool<String> = Pool::new();
    pool.set("a".to_owned(), 1);
    let held = pool.try_acquire().unwrap();
    let mut key = Probe::new(pool.acquire_key_owned("a".to_owned()));
    let mut any = Probe::new(pool.acquire_owned());
    let mut last = Probe::new(pool.acquire_key_owned("a".to_owned()));
    key.pending();
    any.pending();
    last.pending();

    drop(held);
    assert_eq!((key.wakes(), any.wakes(), last.wakes()), (1, 0, 0));
    drop(key); // granted, never polled again
    assert_eq!((any.wakes(), last.wakes()), (1, 0), "the next oldest");
    drop(any);
    assert_eq!(last.wakes(), 1);
    let lease = last.ready().unwrap();
    // Each cancel gave its lease back and the capacity became a new lease.
    assert_eq!(lease.id(), 4);
    assert_eq!(pool.counts("a"), counts(1, 1));
    assert_eq!(pool.waiters(), 0);
    drop(lease);
    assert_eq!(pool.counts("a"), counts(1, 0));

    // Dropped while waiting, for a key nobody tracks: nothing is left.
    let mut untracked = Probe::new(pool.acquire_key_owned("b".to_owned()));
    untracked.pending();
    assert_eq!(pool.len(), 2);
    drop(untracked);
    assert_eq!((pool.len(), pool.waiters()), (1, 0));
}

#[test]
fn poll_pool_switching_keys_passes_a_granted_lease_on() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut poller = PollPool::new(&pool);
    assert!(poller.poll_acquire_key(&"a", &mut cx).is_pending());
    let mut next = Probe::new(pool.acquire_key(&"a"));
    next.pending();

    drop(held); // granted to the poller, which is not polled for it
    assert_eq!(next.wakes(), 0);
    assert!(poller.poll_acquire_key(&"b", &mut cx).is_pending());
    assert_eq!(next.wakes(), 1, "the switch passed the lease on");
    assert_eq!((pool.waiting(&"a"), pool.waiting(&"b")), (0, 1));
    let lease = next.ready().unwrap();
    assert_eq!(lease.id(), 3);

    // Switching to any key starts over too, at the back of the queue.
    let mut older = Probe::new(pool.acquire());
    older.pending();
    assert!(poller.poll_acquire(&mut cx).is_pending());
    assert_eq!((pool.waiting(&"b"), pool.waiters()), (0, 2));
    drop(lease);
    assert_eq!(older.wakes(), 1, "the older waiter first");
    let lease = older.ready().unwrap();
    // Polling for any key again keeps the place: the next release serves it.
    assert!(poller.poll_acquire(&mut cx).is_pending());
    drop(lease);
    let Poll::Ready(Ok(lease)) = poller.poll_acquire(&mut cx) else {
        panic!("the poller was next");
    };
    assert_eq!(lease.id(), 5);
    assert!(!poller.is_waiting());
    drop(lease);
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    assert_eq!(pool.waiters(), 0);
    assert_eq!(pool.len(), 1, "\"b\" is forgotten once nobody waits for it");
}

#[test]
fn poll_pool_clones_are_fresh_waiters_and_drop_gives_up() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut first = PollPool::new(&pool);
    assert!(first.poll_acquire_key(&"a", &mut cx).is_pending());
    let mut second = first.clone();
    assert!(!second.is_waiting(), "a clone does not share the place");
    assert!(second.poll_acquire_key(&"a", &mut cx).is_pending());
    assert_eq!(pool.waiting(&"a"), 2);

    drop(held); // granted to `first`
    drop(first);
    let Poll::Ready(Ok(lease)) = second.poll_acquire_key(&"a", &mut cx) else {
        panic!("the dropped poller's lease passed on");
    };
    assert_eq!(lease.id(), 3);
    drop(lease);
    drop(second);
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    assert_eq!(pool.waiters(), 0);
}

#[test]
fn blocking_timeout_leaks_nothing() {
    let pool: Pool<&'static str> = Pool::new();
    let short = Duration::from_millis(5);
    assert_eq!(
        pool.acquire_timeout(short).unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert_eq!(
        pool.acquire_key_timeout(&"a", short).unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert_eq!(pool.waiters(), 0);
    assert!(pool.is_empty());

    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    assert_eq!(
        pool.acquire_key_timeout(&"a", short).unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    assert_eq!(pool.waiters(), 0);
    drop(held);
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    assert!(pool.try_acquire().is_ok());

    // A deadline in the past still grants what is free, and a closed pool
    // says so rather than timing out.
    assert!(pool.acquire_timeout(Duration::ZERO).is_ok());
    pool.close();
    assert_eq!(
        pool.acquire_timeout(short).unwrap_err(),
        AcquireTimeoutError::Closed
    );
}

/// Timed acquisitions with tiny limits race a thread that keeps taking and
/// returning the single lease. Whatever wins each race, at most one lease
/// is out at a time, and nothing is left taken or queued at the end.
#[test]
fn blocking_timeouts_racing_releases_leak_nothing() {
    with_hang_guard("timeouts racing releases", HANG_GUARD, || {
        let pool: Pool<&'static str> = Pool::new();
        pool.set("a", 1);
        let holding = Arc::new(AtomicUsize::new(0));
        let granted = Arc::new(AtomicUsize::new(0));
        let hold = |pool: &Pool<&'static str>, lease: workpool_std::Lease<&'static str>| {
            assert_eq!(holding.fetch_add(1, Ordering::SeqCst), 0, "one at a time");
            assert_eq!(pool.counts(&"a"), counts(1, 1));
            thread::yield_now();
            holding.fetch_sub(1, Ordering::SeqCst);
            granted.fetch_add(1, Ordering::SeqCst);
            drop(lease);
        };
        thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..300 {
                    hold(&pool, pool.acquire_key_blocking(&"a").unwrap());
                }
            });
            for t in 0..2u64 {
                let (pool, hold) = (&pool, &hold);
                s.spawn(move || {
                    for i in 0..300u64 {
                        let limit = Duration::from_micros((i * 7 + t * 13) % 50);
                        let result = if i % 2 == 0 {
                            pool.acquire_timeout(limit)
                        } else {
                            pool.acquire_key_timeout(&"a", limit)
                        };
                        match result {
                            Ok(lease) => hold(pool, lease),
                            Err(e) => assert_eq!(e, AcquireTimeoutError::Timeout),
                        }
                    }
                });
            }
        });
        assert!(granted.load(Ordering::SeqCst) >= 300);
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        assert_eq!(pool.waiters(), 0);
        assert!(pool.try_acquire().is_ok());
    });
}

/// The async form: `tokio::time::timeout` drops acquisition futures at
/// arbitrary points (waiting, or already granted) on a multi-thread
/// runtime while other tasks take and return leases.
#[test]
fn async_timeouts_racing_releases_leak_nothing() {
    with_hang_guard("async timeouts", HANG_GUARD, || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool: Pool<&'static str> = Pool::new();
            pool.set("a", 2);
            let holding = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for t in 0..6u64 {
                let (pool, holding) = (pool.clone(), Arc::clone(&holding));
                tasks.push(tokio::spawn(async move {
                    let mut got = 0;
                    for i in 0..150u64 {
                        let limit = Duration::from_micros((i * 11 + t * 5) % 40);
                        let acquisition = async {
                            if (i + t) % 2 == 0 {
                                pool.acquire().await
                            } else {
                                pool.acquire_key(&"a").await
                            }
                        };
                        if let Ok(lease) = tokio::time::timeout(limit, acquisition).await {
                            let lease = lease.unwrap();
                            assert!(holding.fetch_add(1, Ordering::SeqCst) < 2);
                            tokio::task::yield_now().await;
                            holding.fetch_sub(1, Ordering::SeqCst);
                            drop(lease);
                            got += 1;
                        }
                    }
                    got
                }));
            }
            let mut total = 0;
            for task in tasks {
                total += task.await.unwrap();
            }
            assert!(total > 0);
            assert_eq!(pool.counts(&"a"), counts(2, 0));
            assert_eq!(pool.waiters(), 0);
            let a = pool.try_acquire().unwrap();
            let b = pool.try_acquire().unwrap();
            assert!(pool.try_acquire().is_err());
            drop((a, b));
        });
    });
}
