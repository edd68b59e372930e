//! Wake counting ("no thundering herd"): each capacity change wakes exactly
//! the waiters it decides, oldest first, and `close` wakes every waiter once.

use workpool_std::{Closed, Counts, Pool};
use workpool_tests::{woken, Probe};

const WAITERS: usize = 1_000;

fn total<F: std::future::Future>(probes: &[Probe<F>]) -> usize {
    probes.iter().map(Probe::wakes).sum()
}

#[test]
fn one_release_one_wake_then_five_then_all() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let held = pool.try_acquire_key(&"k").unwrap();
    let mut probes: Vec<_> = (0..WAITERS)
        .map(|_| Probe::new(pool.acquire_key(&"k")))
        .collect();
    for p in &mut probes {
        p.pending();
    }
    assert_eq!(pool.waiting(&"k"), WAITERS);
    assert_eq!(total(&probes), 0);

    // One release: exactly the oldest waiter's waker fires.
    drop(held);
    assert_eq!(total(&probes), 1);
    assert_eq!(woken(&probes), [0]);
    let first = probes[0].ready().unwrap();
    assert_eq!(total(&probes), 1, "claiming wakes nobody");

    // Five more slots: exactly the next five.
    pool.set("k", 1 + 5);
    assert_eq!(total(&probes), 6);
    assert_eq!(woken(&probes), [0, 1, 2, 3, 4, 5]);
    assert_eq!(
        pool.counts(&"k"),
        Counts {
            target: 6,
            active: 6
        }
    );

    // Lowering the target and re-polling the rest wakes nobody.
    pool.set("k", 6);
    for p in &mut probes[6..] {
        p.pending();
    }
    assert_eq!(total(&probes), 6);

    // Close: every remaining waiter exactly once, nobody twice.
    pool.close();
    assert_eq!(total(&probes), WAITERS);
    assert!(probes.iter().all(|p| p.wakes() == 1));

    let mut leases = vec![first];
    for p in &mut probes[1..6] {
        leases.push(p.ready().unwrap());
    }
    for p in &mut probes[6..] {
        assert_eq!(p.ready().unwrap_err(), Closed);
    }
    let ids: Vec<_> = leases.iter().map(|l| l.id()).collect();
    assert_eq!(ids, [2, 3, 4, 5, 6, 7], "granted in queue order");
    assert_eq!(total(&probes), WAITERS);
    drop(leases);
    assert_eq!(
        pool.counts(&"k"),
        Counts {
            target: 6,
            active: 0
        }
    );
}

#[test]
fn any_key_waiters_are_woken_one_per_slot() {
    let pool: Pool<u32> = Pool::new();
    let mut probes: Vec<_> = (0..WAITERS).map(|_| Probe::new(pool.acquire())).collect();
    for p in &mut probes {
        p.pending();
    }
    // Capacity at three different keys: three wakes, oldest first.
    pool.set(7, 1);
    pool.set(8, 2);
    assert_eq!(woken(&probes), [0, 1, 2]);
    assert_eq!(total(&probes), 3);
    let keys: Vec<u32> = probes[..3]
        .iter_mut()
        .map(|p| *p.ready().unwrap().key())
        .collect();
    // The three leases were dropped at once by `map`: each served the next.
    assert_eq!(keys, [7, 8, 8]);
    assert_eq!(woken(&probes), [0, 1, 2, 3, 4, 5]);
    assert_eq!(total(&probes), 6);
    drop(probes);
    assert_eq!(pool.waiters(), 0);
    assert_eq!(
        pool.counts(&7),
        Counts {
            target: 1,
            active: 0
        }
    );
    assert_eq!(
        pool.counts(&8),
        Counts {
            target: 2,
            active: 0
        }
    );
}

#[test]
fn a_release_for_another_key_wakes_nobody() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    pool.set("b", 1);
    let a = pool.try_acquire_key(&"a").unwrap();
    let b = pool.try_acquire_key(&"b").unwrap();
    let mut probes: Vec<_> = (0..100)
        .map(|_| Probe::new(pool.acquire_key(&"a")))
        .collect();
    for p in &mut probes {
        p.pending();
    }
    drop(b);
    pool.set("c", 10);
    assert_eq!(total(&probes), 0);
    drop(a);
    assert_eq!(woken(&probes), [0]);
}

#[test]
fn lease_stream_is_woken_once_per_item() {
    use futures_lite::StreamExt;

    let pool: Pool<&'static str> = Pool::new();
    let mut stream = pool.leases();
    let mut probe = Probe::new(async move {
        let mut got = Vec::new();
        while let Some(lease) = stream.next().await {
            got.push(lease);
        }
        got
    });
    probe.pending();
    pool.set("k", 1);
    assert_eq!(probe.wakes(), 1);
    probe.pending(); // takes the lease and waits for the next
    pool.set("k", 3);
    assert_eq!(probe.wakes(), 2, "one wake for the one waiting place");
    // One poll takes the granted lease and then the free one, then waits.
    probe.pending();
    assert_eq!(
        pool.counts(&"k"),
        Counts {
            target: 3,
            active: 3
        }
    );
    assert_eq!(pool.waiters(), 1);
    pool.close();
    assert_eq!(probe.wakes(), 3);
    let got = probe.ready();
    assert_eq!(got.iter().map(|l| l.id()).collect::<Vec<_>>(), [1, 2, 3]);
}
