//! Memory follows the live keys and waiters: the slabs and the table give
//! back what a burst took, and `close` walks only what is live.

use super::*;

/// A burst: 100,000 waiters or keys (fewer under Miri, which is slow, not
/// different).
const BURST: usize = if cfg!(miri) { 128 } else { 100_000 };
/// Live waiters or keys that keep sliding along through a burst.
const WINDOW: usize = if cfg!(miri) { 8 } else { 32 };

type U = Pool<u64>;

/// The waiter slab's slots and capacity, the group slab's, and the table's
/// buckets.
fn sizes<K, S>(pool: &Pool<K, S>) -> [usize; 5] {
    [
        pool.lane.waiters.len().max(pool.shard.waiters.len()),
        pool.lane
            .waiters
            .capacity()
            .max(pool.shard.waiters.capacity()),
        pool.shard.groups.slots(),
        pool.shard.groups.slot_capacity(),
        pool.shard.table_buckets(),
    ]
}

/// Nothing is left of a burst but the minimum sizes.
#[track_caller]
fn assert_small<K, S>(pool: &Pool<K, S>, live: usize) {
    let [waiters, waiter_capacity, groups, group_capacity, buckets] = sizes(pool);
    let bound = (4 * live).max(crate::bands::MIN_SLOTS);
    assert!(
        waiters <= bound && waiter_capacity <= 2 * bound,
        "waiter slab: {waiters} slots, capacity {waiter_capacity}, for {live} live"
    );
    assert!(
        groups <= bound && group_capacity <= 2 * bound,
        "group slab: {groups} slots, capacity {group_capacity}, for {live} live"
    );
    assert!(
        buckets <= 4 * bound,
        "table: {buckets} buckets for {live} live"
    );
}

/// 0, 7, 14, ... and around again: every index once, far from in order.
fn scrambled(n: usize) -> impl Iterator<Item = usize> {
    let stride = 7;
    (0..stride).flat_map(move |start| (start..n).step_by(stride))
}

#[test]
fn cancelled_waiters_give_their_slots_back() {
    let mut pool = U::new();
    let waiters: Vec<WaiterId> = (0..BURST).map(|_| pool.enqueue().unwrap()).collect();
    assert_eq!(pool.waiter_slots(), BURST);
    for i in scrambled(BURST) {
        pool.cancel(waiters[i]).unwrap();
    }
    assert_eq!(pool.waiters(), 0);
    assert_eq!(pool.waiter_slots(), 0);
    assert_small(&pool, 0);
    check(&pool);
}

#[test]
fn served_waiters_give_their_slots_back() {
    let mut pool = U::new();
    let waiters: Vec<WaiterId> = (0..BURST).map(|_| pool.enqueue_key(&7).unwrap()).collect();
    pool.set(7, BURST as u64);
    assert_eq!(drain(&mut pool).len(), BURST);
    let leases: Vec<_> = waiters.iter().map(|&w| granted(&mut pool, w)).collect();
    assert_eq!(pool.waiter_slots(), 0);
    assert_small(&pool, 1);
    for lease in leases {
        pool.release(lease).unwrap();
    }
    pool.set(7, 0);
    assert_eq!(pool.poll_forgotten(), Some(7));
    assert_small(&pool, 0);
    check(&pool);
}

#[test]
fn waiters_that_stay_low_do_not_pin_the_slab() {
    let mut pool = U::new();
    let waiters: Vec<WaiterId> = (0..BURST).map(|_| pool.enqueue().unwrap()).collect();
    for &w in &waiters[WINDOW..] {
        pool.cancel(w).unwrap();
    }
    // Cut by whole bands: the band of the last slot kept (WINDOW - 1) ends
    // below twice that.
    assert!(pool.waiter_slots() < 2 * WINDOW);
    assert_small(&pool, WINDOW);
    // They are still served, oldest first.
    pool.set(1, WINDOW as u64);
    assert_eq!(drain(&mut pool), waiters[..WINDOW]);
    check(&pool);
}

/// A window of waiters keeps sliding (the oldest leaves, a new one comes)
/// while a burst drains: reuse prefers low slots, so the window moves down
/// and the slab shrinks behind it. A LIFO free list would keep the window
/// where it started, on top of the burst.
#[test]
fn a_sliding_window_of_waiters_moves_down_after_a_burst() {
    let mut pool = U::new();
    let burst: Vec<WaiterId> = (0..BURST).map(|_| pool.enqueue().unwrap()).collect();
    let mut window: alloc::collections::VecDeque<WaiterId> =
        (0..WINDOW).map(|_| pool.enqueue_key(&1).unwrap()).collect();
    for (i, &w) in burst.iter().enumerate() {
        pool.cancel(w).unwrap();
        if i % 8 == 0 {
            pool.cancel(window.pop_front().unwrap()).unwrap();
            window.push_back(pool.enqueue_key(&1).unwrap());
        }
    }
    assert_eq!(pool.waiters(), WINDOW);
    assert_small(&pool, WINDOW);
    check(&pool);
    // The window is still one fair queue.
    pool.set(1, WINDOW as u64);
    assert_eq!(drain(&mut pool), Vec::from(window));
}

#[test]
fn forgotten_keys_give_their_slots_and_buckets_back() {
    let mut pool = U::new();
    for key in 0..BURST as u64 {
        pool.set(key, 1);
    }
    assert!(pool.shard.groups.slots() == BURST && pool.shard.table_buckets() >= BURST);
    for key in scrambled(BURST) {
        pool.set(key as u64, 0);
    }
    assert!(pool.is_empty());
    // Retired slots count as used until their keys are collected.
    assert_eq!(pool.shard.groups.slots(), BURST);
    assert_eq!(core::iter::from_fn(|| pool.poll_forgotten()).count(), BURST);
    assert_eq!(pool.shard.groups.slots(), 0);
    assert_small(&pool, 0);
    check(&pool);
}

/// The soak's pattern: a window of live keys slides on (a new key is set,
/// the oldest set to 0) while a burst of keys is forgotten.
#[test]
fn a_sliding_window_of_keys_moves_down_after_a_burst() {
    let mut pool = U::new();
    let base = 1 << 40;
    for key in 0..BURST as u64 {
        pool.set(base + key, 1);
    }
    let (mut oldest, mut next) = (0, 0);
    while next < WINDOW as u64 {
        pool.set(next, 2);
        next += 1;
    }
    for key in 0..BURST as u64 {
        pool.set(base + key, 0);
        if key % 4 == 0 {
            pool.set(oldest, 0);
            oldest += 1;
            pool.set(next, 2);
            next += 1;
        }
        while pool.poll_forgotten().is_some() {}
    }
    assert_eq!(pool.len(), WINDOW);
    assert_small(&pool, WINDOW);
    check(&pool);
    let mut live: Vec<u64> = pool.iter().map(|(&k, _)| k).collect();
    live.sort_unstable();
    assert_eq!(live, (oldest..next).collect::<Vec<_>>());
}

/// After a burst of 1,000,000 keys, all forgotten, `close` finds the few
/// key waiters left by walking a table sized for the few live keys, not a
/// slot per key ever seen.
#[test]
fn close_after_a_burst_walks_only_what_is_live() {
    let burst = if cfg!(miri) { 128 } else { 1_000_000 };
    let mut pool = U::new();
    for key in 0..burst {
        pool.set(key, 1);
    }
    let held = pool.try_acquire_key(&(burst - 1)).unwrap();
    let first = pool.enqueue_key(&(burst - 1)).unwrap();
    for key in 0..burst {
        pool.set(key, 0);
    }
    while pool.poll_forgotten().is_some() {}
    let waiters = [
        first,
        pool.enqueue_key(&u64::MAX).unwrap(),
        pool.enqueue().unwrap(),
    ];
    // Live: the held key, with its waiter, and the waited-for one.
    assert_eq!(pool.len(), 2);
    let buckets = pool.shard.table_buckets();
    assert!(
        buckets <= 4 * crate::shard::MIN_BUCKETS,
        "{buckets} buckets to walk"
    );
    pool.close();
    let mut woken = drain(&mut pool);
    woken.sort_by_key(|w| (w.shard().is_none(), w.index()));
    assert_eq!(woken, waiters);
    for w in waiters {
        assert!(matches!(pool.claim(w), Ok(Claim::Closed)));
    }
    assert_eq!(pool.len(), 1, "u64::MAX was tracked only for its waiter");
    assert_eq!(pool.poll_forgotten(), Some(u64::MAX));
    pool.release(held).unwrap();
    assert!(pool.is_empty());
    check(&pool);
}

/// A slot that is cut off and grown again starts at a generation none of
/// its old handles has.
#[test]
fn a_cut_slot_grown_again_rejects_old_handles() {
    let mut pool = P::new();
    pool.set("a", 1);
    let lease = pool.try_acquire().unwrap();
    let copy = Lease {
        pool: lease.pool,
        grant: lease.grant,
        key: lease.key,
    };
    pool.set("a", 0);
    pool.release(lease).unwrap();
    assert_eq!(pool.poll_forgotten(), Some("a"));
    assert_eq!(pool.shard.groups.slots(), 0, "the slot was cut off");
    pool.set("b", 1);
    assert_eq!(
        copy.grant.group,
        pool.shard.slot_of(pool.hasher.hash_one("b"), &"b").unwrap(),
        "the same slot"
    );
    assert!(pool.release(copy).unwrap_err().is_stale());
    assert_eq!(pool.counts(&"b"), counts(1, 0));

    let old = pool.enqueue_key(&"c").unwrap();
    pool.cancel(old).unwrap();
    assert_eq!(pool.waiter_slots(), 0, "the slot was cut off");
    let new = pool.enqueue_key(&"c").unwrap();
    assert_eq!((old.index(), pool.waiters()), (new.index(), 1));
    assert_eq!(pool.cancel(old), Err(UnknownWaiter));
    assert_eq!(pool.waiting(&"c"), 1);
    check(&pool);
}

/// Shrinking has hysteresis: one entry coming and going at the edge of a
/// band (where the slab is cut each time) keeps its capacity.
#[test]
fn coming_and_going_at_a_band_edge_keeps_the_capacity() {
    let mut pool = U::new();
    let burst: Vec<WaiterId> = (0..BURST).map(|_| pool.enqueue().unwrap()).collect();
    for w in burst.into_iter().skip(15) {
        pool.cancel(w).unwrap();
    }
    for key in 0..15 {
        pool.set(key, 1);
    }
    let before = sizes(&pool);
    for key in 100..200 {
        let w = pool.enqueue().unwrap();
        assert_eq!(w.index(), 15);
        pool.cancel(w).unwrap();
        pool.set(key, 1);
        pool.set(key, 0);
        assert_eq!(pool.poll_forgotten(), Some(key));
        assert_eq!(sizes(&pool), before);
    }
    check(&pool);
}
