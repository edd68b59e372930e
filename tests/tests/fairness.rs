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

/// A hasher that puts key `k` (a `u32`) in shard `shards[k]`: the shard
/// bits of the hash (32 and up) name it, the low bits keep keys apart.
#[derive(Clone)]
struct Placed(Vec<u64>);

struct PlacedHasher {
    shards: Vec<u64>,
    key: u64,
}

impl std::hash::BuildHasher for Placed {
    type Hasher = PlacedHasher;

    fn build_hasher(&self) -> PlacedHasher {
        PlacedHasher {
            shards: self.0.clone(),
            key: 0,
        }
    }
}

impl std::hash::Hasher for PlacedHasher {
    fn finish(&self) -> u64 {
        (self.shards[self.key as usize] << 32) | (self.key.wrapping_mul(0x9E37_79B9) & 0xFFFF_FFFF)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().rev() {
            self.key = (self.key << 8) | u64::from(b);
        }
    }
}

/// Any-key grants are one round-robin over all keys with room, however the
/// keys fall into shards: a shard keeps the rotation for a turn, once per
/// key with room, before the next shard's turn.
#[test]
fn any_key_rounds_visit_every_key_whatever_the_shards() {
    let layouts: [&[u64]; 6] = [
        &[0, 0, 0],
        &[0, 1, 2],
        &[1, 0, 0],
        &[0, 1, 1],
        &[2, 2, 0, 1, 1, 1],
        &[3, 0, 3, 1, 0, 3, 2],
    ];
    // With a limit set, any-key grants go through the lane: the same rounds.
    for (layout, limit) in layouts.iter().flat_map(|&l| [(l, None), (l, Some(1_000))]) {
        let pool: Pool<u32, Placed> = Pool::with_hasher(Placed(layout.to_vec()));
        pool.set_limit(limit);
        assert!(pool.shard_count() >= 4, "the layouts need 4 shards");
        let keys = layout.len() as u32;
        let target = 3;
        for key in 0..keys {
            pool.set(key, target);
        }
        let leases: Vec<_> = (0..keys * target as u32)
            .map(|_| pool.try_acquire().unwrap())
            .collect();
        let order: Vec<u32> = leases.iter().map(|l| *l.key()).collect();
        for round in order.chunks(keys as usize) {
            let mut round = round.to_vec();
            round.sort_unstable();
            assert_eq!(
                round,
                (0..keys).collect::<Vec<_>>(),
                "layout {layout:?}, limit {limit:?}: each round visits every key once: {order:?}"
            );
        }
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    }
}

/// The rounds hold while leases come and go: with every key at its target
/// but one unit, each release of a unit lets one grant through, and over a
/// round of releases every key is granted again once.
#[test]
fn any_key_rounds_survive_releases() {
    let pool: Pool<u32, Placed> = Pool::with_hasher(Placed(vec![0, 0, 1, 2, 2]));
    for key in 0..5 {
        pool.set(key, 2);
    }
    let mut held: Vec<_> = (0..10).map(|_| pool.try_acquire().unwrap()).collect();
    // Give back one lease of each key, then take five: one per key.
    let mut back = Vec::new();
    for key in 0..5u32 {
        let i = held.iter().position(|l| *l.key() == key).unwrap();
        back.push(held.swap_remove(i));
    }
    drop(back);
    let mut again = Vec::new();
    for _ in 0..5 {
        let lease = pool.try_acquire().unwrap();
        again.push(*lease.key());
        held.push(lease);
    }
    again.sort_unstable();
    assert_eq!(again, [0, 1, 2, 3, 4]);
    assert!(pool.try_acquire().is_err());
}

/// Keys set one after another in different shards get their any-key grants
/// in the order they were set, whatever shards their hashes name (the
/// rotation visits shards in the order they first offered room).
#[test]
fn any_key_rounds_follow_the_order_keys_were_set() {
    let pool: Pool<u32, Placed> = Pool::with_hasher(Placed(vec![3, 1, 2, 0]));
    for key in 0..4 {
        pool.set(key, 2);
    }
    let order: Vec<u32> = (0..8).map(|_| *pool.try_acquire().unwrap().key()).collect();
    assert_eq!(order, [0, 1, 2, 3, 0, 1, 2, 3]);
}

/// The rounds hold when keys' room is lent to their words (a keyed grant
/// lends the rest of its key's room): a key alone in its shard serves its
/// shard's turn from its word, without the lock, and keys that share a
/// shard still take turns there.
#[test]
fn any_key_rounds_hold_beside_keyed_grants() {
    let pool: Pool<u32, Placed> = Pool::with_hasher(Placed(vec![0, 0, 1, 2]));
    for key in 0..4 {
        pool.set(key, 4);
    }
    // Each key's first lease under the lock; the rest of its room is lent.
    let held: Vec<_> = (0..4)
        .map(|key| pool.try_acquire_key(&key).unwrap())
        .collect();
    let order: Vec<u32> = (0..12)
        .map(|_| *pool.try_acquire().unwrap().key())
        .collect();
    for round in order.chunks(4) {
        let mut round = round.to_vec();
        round.sort_unstable();
        assert_eq!(
            round,
            [0, 1, 2, 3],
            "each round visits every key once: {order:?}"
        );
    }
    // Leases dropped at once went back (to the words); the rounds go on.
    let again: Vec<u32> = (0..4).map(|_| *pool.try_acquire().unwrap().key()).collect();
    let mut sorted = again.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3], "{again:?}");
    assert_eq!(pool.counts(&2).active, 1, "the leases taken were dropped");
    drop(held);
    assert!((0..4).all(|key| pool.counts(&key).active == 0));
}
