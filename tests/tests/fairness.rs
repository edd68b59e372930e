//! Who is served first, pinned down by polling futures by hand, each with its
//! own counting waker: oldest eligible waiter first, any-key and key waiters
//! ordered by age, no barging by newcomers or `try_acquire*`, and capacity
//! at one key never held back by an older waiter for another key.

use workpool_std::{Counts, Pool, TryAcquireError};
use workpool_tests::{woken, Probe};

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// Freed capacity goes to the oldest waiter for its key, and wakes only it.
#[test]
fn oldest_eligible_waiter_first() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut probes: Vec<_> = (0..4).map(|_| Probe::new(pool.acquire_key(&"a"))).collect();
    for p in &mut probes {
        p.pending();
    }
    assert_eq!(pool.waiting(&"a"), 4);

    drop(held);
    assert_eq!(woken(&probes), [0]);
    let first = probes[0].ready().unwrap();
    assert_eq!(first.id(), 2);

    drop(first);
    assert_eq!(woken(&probes), [0, 1]);
    assert_eq!(probes[1].ready().unwrap().id(), 3);
    assert_eq!(
        woken(&probes),
        [0, 1, 2],
        "dropping lease 3 served the next"
    );
    assert_eq!(probes[1].wakes(), 1);
    assert_eq!(probes[3].wakes(), 0);
    assert_eq!(pool.waiting(&"a"), 1);
}

/// An any-key waiter that is older than a key waiter gets that key's
/// capacity first.
#[test]
fn older_any_key_waiter_beats_younger_key_waiter() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut any = Probe::new(pool.acquire());
    let mut key = Probe::new(pool.acquire_key(&"a"));
    any.pending();
    key.pending();

    drop(held);
    assert_eq!((any.wakes(), key.wakes()), (1, 0));
    let lease = any.ready().unwrap();
    assert_eq!(*lease.key(), "a");
    assert!(key.poll().is_pending());

    drop(lease);
    assert_eq!(key.wakes(), 1);
    assert_eq!(*key.ready().unwrap().key(), "a");
}

/// A newer any-key waiter cannot take capacity of a key that an older key
/// waiter wants; it gets capacity of another key.
#[test]
fn younger_any_key_waiter_does_not_take_an_older_key_waiters_capacity() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut key = Probe::new(pool.acquire_key(&"a"));
    let mut any = Probe::new(pool.acquire());
    key.pending();
    any.pending();

    drop(held);
    assert_eq!((key.wakes(), any.wakes()), (1, 0));
    assert!(any.poll().is_pending());
    let a = key.ready().unwrap();

    pool.set("b", 1);
    assert_eq!(any.wakes(), 1);
    let b = any.ready().unwrap();
    assert_eq!((*a.key(), *b.key()), ("a", "b"));
}

/// A waiter polled before capacity existed keeps its place against a
/// newcomer future that is polled first after the capacity appears.
#[test]
fn newcomer_future_does_not_barge() {
    let pool: Pool<&'static str> = Pool::new();
    let mut old = Probe::new(pool.acquire_key(&"a"));
    old.pending();
    let mut newcomer = Probe::new(pool.acquire_key(&"a"));
    pool.set("a", 1);
    // The newcomer is polled first for the first time: it must queue.
    newcomer.pending();
    assert_eq!(old.wakes(), 1);
    let lease = old.ready().unwrap();
    assert_eq!(lease.id(), 1);
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    drop(lease);
    assert_eq!(newcomer.wakes(), 1);
    assert_eq!(newcomer.ready().unwrap().id(), 2);
}

/// `try_acquire*` fail while an earlier eligible waiter waits, even once
/// the capacity is freed and before that waiter was polled again.
#[test]
fn try_acquire_does_not_barge() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    let held = pool.try_acquire().unwrap();
    let mut waiter = Probe::new(pool.acquire_key(&"a"));
    waiter.pending();

    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    drop(held);
    // The capacity is the waiter's now, although it has not run yet.
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    assert_eq!(
        pool.try_acquire_key(&"a").unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);

    // Same for capacity added by raising the target: an any-key waiter
    // queued behind is served before a `try_acquire`.
    let mut any = Probe::new(pool.acquire());
    any.pending();
    pool.set("a", 2);
    assert_eq!(any.wakes(), 1);
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    assert_eq!(pool.counts(&"a"), counts(2, 2));

    let first = waiter.ready().unwrap();
    let second = any.ready().unwrap();
    assert_eq!((first.id(), second.id()), (2, 3));
}

/// Capacity freed at key `b` goes to a younger waiter for `b` while an
/// older waiter for `a` keeps waiting, untouched.
#[test]
fn capacity_at_another_key_is_not_held_back() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    pool.set("b", 1);
    let a = pool.try_acquire_key(&"a").unwrap();
    let b = pool.try_acquire_key(&"b").unwrap();
    let mut for_a = Probe::new(pool.acquire_key(&"a"));
    let mut for_b = Probe::new(pool.acquire_key(&"b"));
    for_a.pending();
    for_b.pending();

    drop(b);
    assert_eq!((for_a.wakes(), for_b.wakes()), (0, 1));
    assert_eq!(*for_b.ready().unwrap().key(), "b");
    assert!(for_a.poll().is_pending());
    assert_eq!(pool.waiting(&"a"), 1);

    drop(a);
    assert_eq!(for_a.wakes(), 1);
    assert_eq!(*for_a.ready().unwrap().key(), "a");
}

/// With waiters of both kinds on several keys, the order of service follows
/// age among the waiters each release can serve.
#[test]
fn mixed_queue_is_served_by_age() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("a", 1);
    pool.set("b", 1);
    let a = pool.try_acquire_key(&"a").unwrap();
    let b = pool.try_acquire_key(&"b").unwrap();
    // Oldest first: key a, any, key b, any, key a.
    let mut w0 = Probe::new(pool.acquire_key(&"a"));
    let mut w1 = Probe::new(pool.acquire());
    let mut w2 = Probe::new(pool.acquire_key(&"b"));
    let mut w3 = Probe::new(pool.acquire());
    let mut w4 = Probe::new(pool.acquire_key(&"a"));
    w0.pending();
    w1.pending();
    w2.pending();
    w3.pending();
    w4.pending();

    // b's slot: the oldest waiter that can use b is w1 (any key).
    drop(b);
    assert_eq!(
        [w0.wakes(), w1.wakes(), w2.wakes(), w3.wakes(), w4.wakes()],
        [0, 1, 0, 0, 0]
    );
    let l1 = w1.ready().unwrap();
    assert_eq!(*l1.key(), "b");
    // a's slot: w0.
    drop(a);
    assert_eq!(w0.wakes(), 1);
    let l0 = w0.ready().unwrap();
    // b again: w2 (key b) is older than w3 (any).
    drop(l1);
    assert_eq!((w2.wakes(), w3.wakes()), (1, 0));
    let l2 = w2.ready().unwrap();
    // a again: w3 (any) is older than w4 (key a).
    drop(l0);
    assert_eq!((w3.wakes(), w4.wakes()), (1, 0));
    let l3 = w3.ready().unwrap();
    assert_eq!(*l3.key(), "a");
    drop(l3);
    assert_eq!(w4.wakes(), 1);
    let l4 = w4.ready().unwrap();
    assert_eq!(*l4.key(), "a");
    assert_eq!(pool.waiters(), 0);
    drop((l2, l4));
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    assert_eq!(pool.counts(&"b"), counts(1, 0));
}

/// Any-key grants that find room at once rotate round-robin over the keys
/// with room.
#[test]
fn any_key_grants_rotate() {
    let pool: Pool<u32> = Pool::new();
    for key in 0..3 {
        pool.set(key, 2);
    }
    let leases: Vec<_> = (0..6).map(|_| pool.try_acquire().unwrap()).collect();
    let keys: Vec<u32> = leases.iter().map(|l| *l.key()).collect();
    for round in keys.chunks(3) {
        let mut round = round.to_vec();
        round.sort_unstable();
        assert_eq!(round, [0, 1, 2], "each round visits every key: {keys:?}");
    }
    assert!(pool.try_acquire().is_err());
}
