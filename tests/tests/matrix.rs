//! The executor matrix: one scenario set (ports of the Go package's tests in
//! spirit), each written once and run on tokio current-thread, tokio
//! multi-thread, smol's executor, `futures_lite::future::block_on`, and plain
//! threads with the blocking and the timed calls.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_core::future::FusedFuture;
use futures_core::stream::FusedStream;
use futures_lite::future::poll_once;
use futures_lite::StreamExt;
use workpool_std::{Closed, Counts, PollPool, Pool, TryAcquireError};
use workpool_tests::{join_all, wait_until, Runner, Tracked};

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// 100 acquire/release cycles by one task (ids 1..=100 in order), then 100
/// more by four competing tasks (ids strictly increasing per task, unique
/// overall); counts are back to zero at the end.
async fn churn<R: Runner>(rt: R) {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 2);
    pool.set("b", 1);

    let mut last_ids = std::collections::HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for i in 1..=100u64 {
        let lease = match i % 3 {
            0 => rt.acquire(&pool).await,
            1 => rt.acquire_key(&pool, &"a").await,
            _ => rt.acquire_key(&pool, &"b").await,
        }
        .unwrap();
        // Ids grow in grant order within a key; across keys they are only
        // unique (contract item 5).
        let last = last_ids.entry(*lease.key()).or_insert(0);
        assert!(lease.id() > *last, "{}: ids come in grant order", R::NAME);
        *last = lease.id();
        assert!(seen.insert(lease.id()), "{}: ids are unique", R::NAME);
        let c = pool.counts(lease.key());
        assert_eq!(c.active, 1);
        drop(lease);
    }
    assert_eq!(pool.counts(&"a"), counts(2, 0));
    assert_eq!(pool.counts(&"b"), counts(1, 0));

    // Four tasks, three slots: somebody is always waiting.
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (pool, rt2) = (pool.clone(), rt.clone());
            rt.spawn(async move {
                let mut ids = Vec::new();
                for i in 0..25 {
                    let lease = match (t + i) % 3 {
                        0 => rt2.acquire(&pool).await,
                        1 => rt2.acquire_key(&pool, &"a").await,
                        _ => rt2.acquire_key(&pool, &"b").await,
                    }
                    .unwrap();
                    let c = pool.counts(lease.key());
                    assert!(1 <= c.active && c.active <= c.target, "{c:?}");
                    ids.push((*lease.key(), lease.id()));
                    rt2.pause().await;
                    drop(lease);
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::new();
    for ids in join_all(tasks).await {
        // A task's leases of one key come in its grant order, so their ids
        // grow (contract item 5; across keys ids are only unique).
        for key in ["a", "b"] {
            let of_key: Vec<u64> = ids
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|&(_, id)| id)
                .collect();
            assert!(
                of_key.windows(2).all(|w| w[0] < w[1]),
                "{}: ids of {key} strictly increase: {of_key:?}",
                R::NAME
            );
        }
        all.extend(ids.into_iter().map(|(_, id)| id));
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 100, "ids are unique");
    assert!(
        all.iter().all(|id| !seen.contains(id)),
        "no id of the first round again"
    );

    assert_eq!(pool.counts(&"a"), counts(2, 0));
    assert_eq!(pool.counts(&"b"), counts(1, 0));
    assert_eq!(pool.waiters(), 0);
    assert_eq!(pool.len(), 2);
}

/// `set(k, 0)` stops grants for `k` at once: neither a waiting acquisition
/// nor `try_acquire*` gets one, while the leases already out stay valid and
/// counted, also when `k` is set again.
async fn set_zero_stops_grants<R: Runner>(rt: R) {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 2);
    let a = rt.acquire_key(&pool, &"k").await.unwrap();
    let b = rt.acquire(&pool).await.unwrap();

    pool.set("k", 0);
    assert_eq!(pool.counts(&"k"), counts(0, 2));
    assert_eq!(
        pool.try_acquire_key(&"k").unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);

    let key_waiter = rt.spawn({
        let (pool, rt) = (pool.clone(), rt.clone());
        async move { rt.acquire_key(&pool, &"k").await }
    });
    wait_until(&rt, "the key waiter to queue", || pool.waiting(&"k") == 1).await;
    let any_waiter = rt.spawn({
        let (pool, rt) = (pool.clone(), rt.clone());
        async move { rt.acquire(&pool).await }
    });
    wait_until(&rt, "the any-key waiter to queue", || pool.waiters() == 2).await;

    // Releases return capacity, but target 0 grants none of it.
    drop(a);
    assert_eq!(pool.counts(&"k"), counts(0, 1));
    assert_eq!((pool.waiting(&"k"), pool.waiters()), (1, 2));
    assert_eq!((b.id(), *b.key()), (2, "k"), "a lease out stays valid");
    drop(b);
    assert_eq!(pool.counts(&"k"), counts(0, 0));
    assert_eq!(pool.waiters(), 2);
    assert_eq!(pool.len(), 1, "kept while someone waits for it");

    // One slot: the older waiter, the key waiter, gets it.
    pool.set("k", 1);
    let lease = key_waiter.await.unwrap();
    assert_eq!((lease.id(), *lease.key()), (3, "k"));
    assert_eq!(pool.waiters(), 1);
    pool.set("other", 1);
    let other = any_waiter.await.unwrap();
    // Another key: its id is only unique (contract item 5).
    assert_eq!(*other.key(), "other");
    assert!(![1, 2, 3].contains(&other.id()));

    // Leases granted before `set(k, 0)` still count when `k` comes back.
    pool.set("k", 0);
    pool.set("k", 1);
    assert_eq!(pool.counts(&"k"), counts(1, 1));
    assert!(pool.try_acquire_key(&"k").is_err());
    drop(lease);
    assert_eq!(pool.counts(&"k"), counts(1, 0));
    drop(other);
    pool.set("k", 0);
    pool.set("other", 0);
    assert!(pool.is_empty(), "idle keys with target 0 are forgotten");
}

/// Target 200, 200 leases held, 200 more acquisitions waiting: each waiter
/// gets a lease only as one of the first 200 is released, never more than
/// 200 are active, and with 200 held nobody else gets one until the target
/// is raised to 201.
async fn holders_and_waiters<R: Runner>(rt: R) {
    const N: u64 = 200;
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", N);
    let mut held = Vec::new();
    for _ in 0..N {
        held.push(rt.acquire_key(&pool, &"k").await.unwrap());
    }
    assert_eq!(pool.counts(&"k"), counts(N, N));

    let waiters: Vec<_> = (0..N)
        .map(|i| {
            let (pool, rt2) = (pool.clone(), rt.clone());
            rt.spawn(async move {
                let lease = if i % 2 == 0 {
                    rt2.acquire_key(&pool, &"k").await
                } else {
                    rt2.acquire(&pool).await
                }
                .unwrap();
                let c = pool.counts(&"k");
                assert!(c.active <= N, "{c:?}");
                lease
            })
        })
        .collect();
    wait_until(&rt, "200 waiters", || pool.waiters() == N as usize).await;
    assert_eq!(pool.counts(&"k"), counts(N, N));

    // Each release hands its capacity straight to exactly one waiter.
    for (i, lease) in held.drain(..).enumerate() {
        drop(lease);
        assert_eq!(pool.counts(&"k"), counts(N, N));
        assert_eq!(pool.waiters(), N as usize - 1 - i);
    }
    let mut leases = join_all(waiters).await;
    let mut ids: Vec<_> = leases.iter().map(|l| l.id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (N + 1..=2 * N).collect::<Vec<_>>());
    assert_eq!(pool.counts(&"k"), counts(N, N));

    // With 200 held, no extra lease until the target is 201.
    assert!(pool.try_acquire().is_err());
    let extra = rt.spawn({
        let (pool, rt) = (pool.clone(), rt.clone());
        async move { rt.acquire_key(&pool, &"k").await }
    });
    wait_until(&rt, "the extra waiter", || pool.waiters() == 1).await;
    assert_eq!(pool.counts(&"k"), counts(N, N));
    pool.set("k", N + 1);
    let lease = extra.await.unwrap();
    assert_eq!(lease.id(), 2 * N + 1);
    assert_eq!(pool.counts(&"k"), counts(N + 1, N + 1));

    leases.push(lease);
    leases.clear();
    assert_eq!(pool.counts(&"k"), counts(N + 1, 0));
}

/// Go's example: `spam` = 2, `eggs` = 1, equal work per lease, a producer
/// that starts a worker for every lease from any key. `spam` gets about
/// twice the leases (asserted in a generous band).
async fn spam_and_eggs<R: Runner>(rt: R) {
    const LEASES: usize = 300;
    let pool: Pool<&'static str> = Pool::new();
    pool.set("spam", 2);
    pool.set("eggs", 1);
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    let mut workers = Vec::with_capacity(LEASES);
    for _ in 0..LEASES {
        let lease = rt.acquire(&pool).await.unwrap();
        *per_key.entry(*lease.key()).or_default() += 1;
        let rt2 = rt.clone();
        workers.push(rt.spawn(async move {
            rt2.work().await;
            drop(lease);
        }));
    }
    join_all(workers).await;
    let (spam, eggs) = (per_key["spam"], per_key["eggs"]);
    assert_eq!(spam + eggs, LEASES);
    let ratio = spam as f64 / eggs as f64;
    assert!(
        // About 2:1; the band is wide because "equal work" is a number of
        // yields, and on a loaded two-core machine one worker thread can
        // stall while the other keeps cycling.
        spam > eggs && (1.3..=4.0).contains(&ratio),
        "{}: spam {spam}, eggs {eggs}",
        R::NAME
    );
    assert_eq!(pool.counts(&"spam"), counts(2, 0));
    assert_eq!(pool.counts(&"eggs"), counts(1, 0));
}

/// `close()` while acquisitions wait: every one of them returns `Closed`,
/// new ones fail, the lease out stays valid, and `set`, `counts` and
/// releases keep working.
async fn close_while_waiting<R: Runner>(rt: R) {
    const N: usize = 24;
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let held = rt.acquire(&pool).await.unwrap();
    let waiters: Vec<_> = (0..N)
        .map(|i| {
            let (pool, rt2) = (pool.clone(), rt.clone());
            rt.spawn(async move {
                match i % 3 {
                    0 => rt2.acquire(&pool).await,
                    1 => rt2.acquire_key(&pool, &"k").await,
                    _ => rt2.acquire_key(&pool, &"untracked").await,
                }
            })
        })
        .collect();
    wait_until(&rt, "all waiters", || pool.waiters() == N).await;
    assert_eq!(pool.len(), 2);

    pool.close();
    assert!(pool.is_closed());
    for outcome in join_all(waiters).await {
        assert_eq!(outcome.unwrap_err(), Closed);
    }
    assert_eq!(pool.waiters(), 0);
    assert_eq!(pool.len(), 1, "the untracked key is forgotten again");

    assert_eq!(rt.acquire(&pool).await.unwrap_err(), Closed);
    assert_eq!(rt.acquire_key(&pool, &"k").await.unwrap_err(), Closed);
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert_eq!(
        pool.try_acquire_key(&"k").unwrap_err(),
        TryAcquireError::Closed
    );
    assert!(pool.leases().next().await.is_none());

    assert_eq!((held.id(), *held.key()), (1, "k"));
    assert_eq!(pool.counts(&"k"), counts(1, 1));
    pool.set("k", 5);
    pool.set("new", 3);
    assert_eq!(pool.counts(&"k"), counts(5, 1));
    assert_eq!(pool.counts(&"new"), counts(3, 0));
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
    drop(held);
    assert_eq!(pool.counts(&"k"), counts(5, 0));
}

/// `close_key(k)` while acquisitions wait: those for `k` return `Closed`,
/// any-key ones keep waiting, the lease out stays valid and counted, and an
/// acquisition for `k` that starts later waits and is served (after the
/// older any-key waiters) once `k` is set again.
async fn close_key_while_waiting<R: Runner>(rt: R) {
    const KEY_WAITERS: usize = 12;
    const ANY_WAITERS: usize = 2;
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let held = rt.acquire(&pool).await.unwrap();
    let key_waiters: Vec<_> = (0..KEY_WAITERS)
        .map(|_| {
            let (pool, rt2) = (pool.clone(), rt.clone());
            rt.spawn(async move { rt2.acquire_key(&pool, &"k").await })
        })
        .collect();
    wait_until(&rt, "the key waiters", || pool.waiting(&"k") == KEY_WAITERS).await;
    let any_waiters: Vec<_> = (0..ANY_WAITERS)
        .map(|_| {
            let (pool, rt2) = (pool.clone(), rt.clone());
            rt.spawn(async move { rt2.acquire(&pool).await })
        })
        .collect();
    wait_until(&rt, "all waiters", || {
        pool.waiters() == KEY_WAITERS + ANY_WAITERS
    })
    .await;

    pool.close_key(&"k");
    for outcome in join_all(key_waiters).await {
        assert_eq!(outcome.unwrap_err(), Closed, "{}", R::NAME);
    }
    assert_eq!(pool.waiters(), ANY_WAITERS);
    assert!(!pool.is_closed());
    assert_eq!(pool.counts(&"k"), counts(0, 1));
    assert_eq!((held.id(), *held.key()), (1, "k"));
    pool.close_key(&"untracked");
    assert_eq!(pool.len(), 1);

    // No memory of the close: a later acquisition for `k` waits.
    let late = rt.spawn({
        let (pool, rt) = (pool.clone(), rt.clone());
        async move { rt.acquire_key(&pool, &"k").await }
    });
    wait_until(&rt, "the late waiter", || pool.waiting(&"k") == 1).await;
    drop(held);
    assert_eq!(pool.counts(&"k"), counts(0, 0));
    assert_eq!(pool.waiters(), ANY_WAITERS + 1);

    pool.set("k", 3);
    let mut ids: Vec<_> = join_all(any_waiters)
        .await
        .into_iter()
        .map(|lease| lease.unwrap().id())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [2, 3], "{}: the any-key waiters are older", R::NAME);
    let lease = late.await.unwrap();
    assert_eq!((lease.id(), *lease.key()), (4, "k"));
    drop(lease);
    assert_eq!(pool.counts(&"k"), counts(3, 0));
    assert_eq!(pool.waiters(), 0);
}

/// `leases()` yields leases in the same fair queue as everyone else and
/// ends (`None`, then terminated) when the pool closes.
async fn lease_stream<R: Runner>(rt: R) {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 2);
    let mut leases = pool.leases();
    let a = leases.next().await.unwrap();
    let b = leases.next().await.unwrap();
    assert_eq!((a.id(), b.id()), (1, 2));
    assert!(!leases.is_terminated());

    let received = Arc::new(AtomicUsize::new(0));
    let consumer = rt.spawn({
        let received = Arc::clone(&received);
        async move {
            let mut got = Vec::new();
            while let Some(lease) = leases.next().await {
                got.push(lease);
                received.fetch_add(1, Ordering::SeqCst);
            }
            assert!(leases.is_terminated());
            assert!(leases.next().await.is_none(), "stays ended");
            got
        }
    });
    wait_until(&rt, "the stream to wait", || pool.waiters() == 1).await;
    drop(a);
    wait_until(&rt, "the first item", || {
        received.load(Ordering::SeqCst) == 1 && pool.waiters() == 1
    })
    .await;
    assert_eq!(pool.counts(&"k"), counts(2, 2));
    drop(b);
    wait_until(&rt, "the second item", || {
        received.load(Ordering::SeqCst) == 2 && pool.waiters() == 1
    })
    .await;

    pool.close();
    let got = consumer.await;
    let ids: Vec<_> = got.iter().map(|l| l.id()).collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(pool.counts(&"k"), counts(2, 2), "leases out stay valid");
    drop(got);
    assert_eq!(pool.counts(&"k"), counts(2, 0));
}

/// The owned futures are spawned as tasks of their own, which the borrowed
/// ones cannot be, with keys made on the spot: they wait in the same fair
/// queue (served oldest first, one per release), and a dropped one gives
/// up its place.
async fn owned_futures<R: Runner>(rt: R) {
    const N: usize = 12;
    let pool: Pool<String> = Pool::new();
    pool.set("k".to_owned(), 1);
    let held = pool.try_acquire().unwrap();

    // Queued, then dropped: it leaves nothing behind.
    let mut dropped = Box::pin(pool.acquire_key_owned(format!("{}", 'k')));
    assert!(poll_once(&mut dropped).await.is_none());
    assert_eq!(pool.waiting("k"), 1);
    drop(dropped);
    assert_eq!(pool.waiters(), 0);

    let mut tasks = Vec::new();
    for i in 0..N {
        tasks.push(if i % 2 == 0 {
            rt.spawn(pool.acquire_key_owned(String::from("k")))
        } else {
            rt.spawn(pool.acquire_owned())
        });
        // One at a time, so the queue order is the spawn order.
        wait_until(&rt, "the task to queue", || pool.waiters() == i + 1).await;
    }
    drop(held);
    for (i, task) in tasks.into_iter().enumerate() {
        let lease = task.await.unwrap();
        assert_eq!(lease.id(), i as u64 + 2, "{}: oldest first", R::NAME);
        assert_eq!(pool.counts("k"), counts(1, 1));
        drop(lease); // serves the next task
    }
    assert_eq!(pool.counts("k"), counts(1, 0));
    assert_eq!(pool.waiters(), 0);

    // A completed owned future says so.
    let mut done = pool.acquire_owned();
    assert!(!done.is_terminated());
    let lease = (&mut done).await.unwrap();
    assert!(done.is_terminated());
    drop(lease);
}

/// Dropping the last `Pool` handle closes the pool: spawned owned futures,
/// a lease stream and a `PollPool` that wait end with `Closed` (`None`),
/// while a clone kept the pool open until then. The lease out stays valid,
/// and in the end every key and the pool's state are freed.
async fn last_handle_closes<R: Runner>(rt: R) {
    let token = Arc::new(());
    let key = Tracked::new("k", &token);
    let pool: Pool<Tracked> = Pool::new();
    pool.set(key.clone(), 1);
    let held = pool.try_acquire().unwrap();

    let key_task = rt.spawn(pool.acquire_key_owned(key.clone()));
    wait_until(&rt, "the key future", || pool.waiters() == 1).await;
    let any_task = rt.spawn(pool.acquire_owned());
    wait_until(&rt, "the any-key future", || pool.waiters() == 2).await;
    let stream_task = rt.spawn({
        let mut leases = pool.leases();
        async move {
            let mut items = 0;
            while let Some(lease) = leases.next().await {
                items += 1;
                drop(lease);
            }
            items
        }
    });
    wait_until(&rt, "the stream", || pool.waiters() == 3).await;
    let poll_task = rt.spawn({
        let mut poller = PollPool::new(&pool);
        let key = key.clone();
        async move { poll_fn(|cx| poller.poll_acquire_key(&key, cx)).await }
    });
    wait_until(&rt, "the poller", || pool.waiters() == 4).await;

    // A clone keeps the pool open, and it can still serve the waiters.
    let other = pool.clone();
    drop(pool);
    assert!(!other.is_closed());
    other.set(key.clone(), 2);
    let served = key_task.await.unwrap();
    assert_eq!(served.id(), 2, "{}: the oldest waiter", R::NAME);
    assert_eq!(other.waiters(), 3);

    drop(other); // the last handle
    assert_eq!(any_task.await.unwrap_err(), Closed);
    assert_eq!(stream_task.await, 0);
    assert_eq!(poll_task.await.unwrap_err(), Closed);

    // Leases stay valid, and releasing them after the last handle works.
    assert_eq!((held.id(), served.id()), (1, 2));
    assert_eq!(held.key().name, "k");
    drop(held);
    drop(served);
    drop(key);
    wait_until(&rt, "every key to be freed", || Tracked::alive(&token) == 0).await;
}

/// A pool-wide limit that binds: four keys of target 3 (room for 12) and a
/// limit of 5, with 40 acquisitions, half any-key and half per key. No grant
/// ever sees more than 5 live leases or a key past 3, and everyone is
/// served. Then, with the pool full, a waiter whose key has room is held
/// back by the limit alone and served by a release at another key.
async fn binding_limit<R: Runner>(rt: R) {
    const KEYS: [&str; 4] = ["a", "b", "c", "d"];
    let pool: Pool<&'static str> = Pool::new();
    for key in KEYS {
        pool.set(key, 3);
    }
    pool.set_limit(Some(5));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (pool, rt2) = (pool.clone(), rt.clone());
            rt.spawn(async move {
                let lease = if i % 2 == 0 {
                    rt2.acquire(&pool).await
                } else {
                    rt2.acquire_key(&pool, &KEYS[i % 4]).await
                }
                .unwrap();
                let active = pool.active();
                assert!(active <= 5, "{active} live leases under a limit of 5");
                let c = pool.counts(lease.key());
                assert!(c.active <= 3, "{c:?}");
                rt2.work().await;
                drop(lease);
            })
        })
        .collect();
    join_all(tasks).await;
    assert_eq!(pool.active(), 0);

    let mut held: Vec<_> = (0..5).map(|_| pool.try_acquire_key(&"a").ok()).collect();
    held.truncate(3); // "a" holds 3, its target
    let mut held: Vec<_> = held.into_iter().flatten().collect();
    held.push(pool.try_acquire_key(&"b").unwrap());
    held.push(pool.try_acquire_key(&"b").unwrap());
    assert_eq!(pool.active(), 5);
    assert!(
        pool.try_acquire_key(&"c").is_err(),
        "c has room, the pool has none"
    );
    let waiter = rt.spawn({
        let (pool, rt) = (pool.clone(), rt.clone());
        async move { rt.acquire_key(&pool, &"c").await.map(|l| *l.key()) }
    });
    wait_until(&rt, "the held-back waiter", || pool.waiters() == 1).await;
    drop(held.remove(0)); // a release at "a" serves the waiter of "c"
    assert_eq!(waiter.await.unwrap(), "c");
    drop(held);
    assert_eq!(pool.active(), 0);
    pool.set_limit(None);
    assert_eq!(pool.limit(), None);
}

/// Cooperative shrinking: five holders await `surplus()` beside their
/// work. Lowering the target from 5 to 2 makes exactly three of them leave
/// (`release_if_surplus`), the others keep their leases; `set(k, 0)` then
/// sends the rest home, and `drained` resolves once they are gone.
async fn cooperative_shrink<R: Runner>(rt: R) {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 5);
    let left = Arc::new(AtomicUsize::new(0));
    let holders: Vec<_> = (0..5)
        .map(|_| {
            let (pool, rt2, left) = (pool.clone(), rt.clone(), Arc::clone(&left));
            rt.spawn(async move {
                let mut lease = rt2.acquire_key(&pool, &"k").await.unwrap();
                loop {
                    lease.surplus().await;
                    match lease.release_if_surplus() {
                        Ok(()) => {
                            left.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Err(kept) => lease = kept,
                    }
                    rt2.pause().await;
                }
            })
        })
        .collect();
    wait_until(&rt, "five holders", || pool.counts(&"k").active == 5).await;
    pool.set("k", 2);
    wait_until(&rt, "three to leave", || left.load(Ordering::SeqCst) == 3).await;
    assert_eq!(pool.counts(&"k"), counts(2, 2), "exactly the surplus left");
    pool.set("k", 0);
    pool.drained(&"k").await;
    assert!(pool.is_empty());
    join_all(holders).await;
    assert_eq!(left.load(Ordering::SeqCst), 5);
}

macro_rules! scenarios {
    ($runner:ty) => {
        use super::*;
        type Rt = $runner;

        #[test]
        fn churn() {
            Rt::run(super::churn::<Rt>);
        }

        #[test]
        fn set_zero_stops_grants() {
            Rt::run(super::set_zero_stops_grants::<Rt>);
        }

        #[test]
        fn holders_and_waiters() {
            Rt::run(super::holders_and_waiters::<Rt>);
        }

        #[test]
        fn spam_and_eggs() {
            Rt::run(super::spam_and_eggs::<Rt>);
        }

        #[test]
        fn close_while_waiting() {
            Rt::run(super::close_while_waiting::<Rt>);
        }

        #[test]
        fn close_key_while_waiting() {
            Rt::run(super::close_key_while_waiting::<Rt>);
        }

        #[test]
        fn lease_stream() {
            Rt::run(super::lease_stream::<Rt>);
        }

        #[test]
        fn owned_futures() {
            Rt::run(super::owned_futures::<Rt>);
        }

        #[test]
        fn last_handle_closes() {
            Rt::run(super::last_handle_closes::<Rt>);
        }

        #[test]
        fn binding_limit() {
            Rt::run(super::binding_limit::<Rt>);
        }

        #[test]
        fn cooperative_shrink() {
            Rt::run(super::cooperative_shrink::<Rt>);
        }
    };
}

mod tokio_current_thread {
    scenarios!(workpool_tests::TokioCurrent);
}

mod tokio_multi_thread {
    scenarios!(workpool_tests::TokioMulti);
}

mod smol {
    scenarios!(workpool_tests::Smol);
}

mod futures_lite_block_on {
    scenarios!(workpool_tests::BlockOn);
}

mod threads_blocking {
    scenarios!(workpool_tests::ThreadsBlocking);
}

mod threads_timeout {
    scenarios!(workpool_tests::ThreadsTimeout);
}
