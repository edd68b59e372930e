//! Weighted leases: `n` units of a key in one lease, head-of-line fairness,
//! split and merge, leases of no units.

use super::*;

#[test]
fn a_lease_is_no_larger_than_before_weights() {
    // PoolId + Grant { shard, group, generation, units, id } + key: the
    // units sit in what was the grant's padding.
    assert_eq!(core::mem::size_of::<Lease<&str>>(), 48);
    assert_eq!(core::mem::size_of::<crate::lease::Grant>(), 24);
}

#[test]
fn units_count_in_active_and_a_release_frees_them_all() {
    let mut pool = P::new();
    pool.set("a", 5);
    let four = pool.try_acquire_key_many(&"a", 4).unwrap();
    assert_eq!(four.units(), 4);
    assert_eq!(pool.counts(&"a"), counts(5, 4));
    assert_eq!(pool.active(), 4);
    let one = pool.try_acquire_key(&"a").unwrap();
    assert_eq!(one.units(), 1);
    assert_eq!(
        pool.try_acquire_key_many(&"a", 1).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    check(&pool);
    pool.release(four).unwrap();
    assert_eq!(pool.counts(&"a"), counts(5, 1));
    pool.release(one).unwrap();
    assert_eq!(pool.counts(&"a"), counts(5, 0));
    check(&pool);
}

#[test]
fn more_units_than_the_target_wait_and_are_served_when_it_rises() {
    let mut pool = P::new();
    pool.set("a", 2);
    assert_eq!(
        pool.try_acquire_key_many(&"a", 3).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    let w = pool.enqueue_key_many(&"a", 3).unwrap();
    assert_waiting(&mut pool, w);
    check(&pool);
    pool.set("a", 3);
    assert_eq!(drain(&mut pool), [w]);
    let lease = granted(&mut pool, w);
    assert_eq!((lease.units(), pool.counts(&"a")), (3, counts(3, 3)));
    check(&pool);
}

#[test]
fn try_never_barges_past_a_heavier_head() {
    let mut pool = P::new();
    pool.set("a", 4);
    let held = pool.try_acquire_key_many(&"a", 2).unwrap();
    // Two units are free; the head wants three.
    let head = pool.enqueue_key_many(&"a", 3).unwrap();
    assert_eq!(
        pool.try_acquire_key(&"a").unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(
        pool.try_acquire_key_many(&"a", 2).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    // Not through the any-key door either.
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    let small = pool.enqueue_key(&"a").unwrap();
    assert_waiting(&mut pool, small);
    check(&pool);
    pool.release(held).unwrap();
    // Four free: the head's three, then the small one's one.
    assert_eq!(drain(&mut pool), [head, small]);
    assert_eq!(granted(&mut pool, head).units(), 3);
    assert_eq!(granted(&mut pool, small).units(), 1);
    assert_eq!(pool.counts(&"a"), counts(4, 4));
    check(&pool);
}

#[test]
fn a_release_of_three_units_serves_a_one_and_a_two_unit_waiter() {
    let mut pool = P::new();
    pool.set("a", 3);
    let held = pool.try_acquire_key_many(&"a", 3).unwrap();
    let one = pool.enqueue_key(&"a").unwrap();
    let two = pool.enqueue_key_many(&"a", 2).unwrap();
    pool.release(held).unwrap();
    assert_eq!(drain(&mut pool), [one, two]);
    assert_eq!(granted(&mut pool, one).units(), 1);
    assert_eq!(granted(&mut pool, two).units(), 2);
    assert_eq!(pool.counts(&"a"), counts(3, 3));
    check(&pool);
}

#[test]
fn cancelling_a_heavy_head_serves_the_waiters_behind_it() {
    let mut pool = P::new();
    pool.set("a", 3);
    let held = pool.try_acquire_key(&"a").unwrap();
    let big = pool.enqueue_key_many(&"a", 4).unwrap();
    let one = pool.enqueue_key(&"a").unwrap();
    let any = pool.enqueue().unwrap();
    let two = pool.enqueue_key(&"a").unwrap();
    check(&pool);
    assert_eq!(drain(&mut pool), []);
    pool.cancel(big).unwrap();
    // Two units were free behind the head: oldest first, whatever kind.
    assert_eq!(drain(&mut pool), [any, one]);
    assert_eq!(pool.counts(&"a"), counts(3, 3));
    assert_waiting(&mut pool, two);
    check(&pool);
    pool.release(held).unwrap();
    assert_eq!(drain(&mut pool), [two]);
    check(&pool);
}

#[test]
fn an_any_key_waiter_older_than_a_heavy_head_takes_the_free_unit() {
    let mut pool = P::new();
    pool.set("a", 2);
    let held = pool.try_acquire_key_many(&"a", 2).unwrap();
    let any = pool.enqueue().unwrap();
    let big = pool.enqueue_key_many(&"a", 2).unwrap();
    let mut part = held;
    let one = pool.split(&mut part, 1).unwrap();
    pool.release(one).unwrap();
    assert_eq!(drain(&mut pool), [any]);
    assert_waiting(&mut pool, big);
    check(&pool);
}

#[test]
fn split_then_release_of_one_part_serves_a_waiter() {
    let mut pool = P::new();
    pool.set("a", 4);
    let mut lease = pool.try_acquire_key_many(&"a", 4).unwrap();
    let w = pool.enqueue_key(&"a").unwrap();
    let id = lease.id();
    let part = pool.split(&mut lease, 1).unwrap();
    assert_eq!((lease.units(), part.units()), (3, 1));
    assert_eq!((lease.id(), *part.key()), (id, "a"));
    assert!(part.id() > id, "a fresh id, above every earlier one");
    assert_eq!(pool.counts(&"a"), counts(4, 4), "a split frees nothing");
    assert_eq!(pool.stats().granted, 2, "the part counts as a lease");
    // Out of range: nothing changes.
    assert!(pool.split(&mut lease, 0).is_none());
    assert!(pool.split(&mut lease, 3).is_none());
    assert_eq!(lease.units(), 3);
    pool.release(part).unwrap();
    assert_eq!(drain(&mut pool), [w]);
    let served = granted(&mut pool, w);
    assert_eq!(pool.counts(&"a"), counts(4, 4));
    check(&pool);
    pool.release(lease).unwrap();
    pool.release(served).unwrap();
    assert_eq!(pool.counts(&"a"), counts(4, 0));
}

#[test]
fn merge_of_another_key_or_pool_comes_back_unchanged() {
    let mut pool = P::new();
    let mut other = P::new();
    pool.set("a", 3);
    pool.set("b", 1);
    other.set("a", 1);
    let mut a = pool.try_acquire_key_many(&"a", 2).unwrap();
    let b = pool.try_acquire_key(&"b").unwrap();
    let (b_id, a_id) = (b.id(), a.id());
    let b = a.merge(b).unwrap_err();
    assert_eq!((*b.key(), b.id(), b.units()), ("b", b_id, 1));
    let foreign = other.try_acquire_key(&"a").unwrap();
    let foreign = a.merge(foreign).unwrap_err();
    assert_eq!(foreign.units(), 1);
    other.release(foreign).unwrap();
    // The same key: units join, the id stays.
    a.merge(pool.try_acquire_key(&"a").unwrap()).unwrap();
    assert_eq!((a.id(), a.units()), (a_id, 3));
    assert_eq!(pool.counts(&"a"), counts(3, 3));
    pool.release(a).unwrap();
    pool.release(b).unwrap();
    assert_eq!(pool.active(), 0);
}

#[test]
fn no_units_are_granted_at_once_and_count_nowhere() {
    let mut pool = P::new();
    pool.set("a", 1);
    let held = pool.try_acquire_key(&"a").unwrap();
    let w = pool.enqueue_key(&"a").unwrap();
    // Granted even while a waiter waits, and for an untracked key.
    let none = pool.try_acquire_key_many(&"a", 0).unwrap();
    let elsewhere = pool.try_acquire_key_many(&"z", 0).unwrap();
    assert_eq!((none.units(), *elsewhere.key()), (0, "z"));
    assert_ne!(none.id(), 0);
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    assert_eq!(pool.counts(&"z"), counts(0, 0));
    assert_eq!(pool.len(), 1, "a lease of no units tracks no key");
    assert!(!pool.is_surplus(&none));
    assert_eq!(pool.stats().granted, 3);
    // It never waits.
    assert_eq!(
        pool.enqueue_key_many(&"a", 0).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    // Released, it frees nothing.
    assert_eq!(pool.release(none).unwrap(), "a");
    assert_eq!(drain(&mut pool), []);
    assert_waiting(&mut pool, w);
    // Merged into a lease of its key, it adds nothing.
    let mut held = held;
    held.merge(pool.try_acquire_key_many(&"a", 0).unwrap())
        .unwrap();
    assert_eq!(held.units(), 1);
    // A lease of no units takes in a real one of its key.
    let mut empty = pool.try_acquire_key_many(&"a", 0).unwrap();
    empty.merge(held).unwrap();
    assert_eq!(empty.units(), 1);
    pool.release(empty).unwrap();
    assert_eq!(drain(&mut pool), [w]);
    pool.close();
    assert_eq!(
        pool.try_acquire_key_many(&"a", 0).unwrap_err(),
        TryAcquireError::Closed
    );
    assert_eq!(pool.release(elsewhere).unwrap(), "z");
}

#[test]
fn more_units_than_a_lease_holds_are_refused() {
    let mut pool = P::new();
    pool.set("a", u64::MAX);
    let too_many = Lease::<&str>::MAX_UNITS + 1;
    assert_eq!(
        pool.try_acquire_key_many(&"a", too_many).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(
        pool.enqueue_key_many(&"a", u64::MAX).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(pool.counts(&"a"), counts(u64::MAX, 0));
    // The largest lease is fine, and so is a wait for units above the target.
    let big = pool
        .try_acquire_key_many(&"a", Lease::<&str>::MAX_UNITS)
        .unwrap();
    assert_eq!(big.units(), Lease::<&str>::MAX_UNITS);
    pool.set("b", 1);
    let w = pool
        .enqueue_key_many(&"b", Lease::<&str>::MAX_UNITS)
        .unwrap();
    assert_waiting(&mut pool, w);
    check(&pool);
    pool.release(big).unwrap();
    pool.cancel(w).unwrap();
}

#[test]
fn under_a_limit_a_heavy_held_back_waiter_goes_first_across_keys() {
    let mut pool = P::new();
    pool.set("a", 4);
    pool.set("b", 4);
    pool.set_limit(Some(4));
    let held = pool.try_acquire_key_many(&"b", 3).unwrap();
    // "a" has room for three, the pool for one: held back.
    let big = pool.enqueue_key_many(&"a", 3).unwrap();
    // Younger: neither a newcomer of another key nor one of any key
    // takes the pool's last unit.
    assert_eq!(
        pool.try_acquire_key(&"b").unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    let small = pool.enqueue_key(&"b").unwrap();
    assert_waiting(&mut pool, small);
    check(&pool);
    let mut held = held;
    let one = pool.split(&mut held, 1).unwrap();
    pool.release(one).unwrap();
    // Two free in the pool: still not three.
    assert_eq!(drain(&mut pool), []);
    check(&pool);
    pool.cancel(big).unwrap();
    assert_eq!(drain(&mut pool), [small]);
    check(&pool);
    let small = granted(&mut pool, small);
    pool.release(small).unwrap();
    pool.release(held).unwrap();
    assert_eq!(pool.active(), 0);
}

#[test]
fn under_a_limit_a_release_serves_a_heavy_held_back_waiter() {
    let mut pool = P::new();
    pool.set("a", 4);
    pool.set("b", 4);
    pool.set_limit(Some(4));
    let held = pool.try_acquire_key_many(&"b", 4).unwrap();
    let big = pool.enqueue_key_many(&"a", 3).unwrap();
    let small = pool.enqueue_key(&"a").unwrap();
    pool.release(held).unwrap();
    assert_eq!(drain(&mut pool), [big, small]);
    assert_eq!(pool.active(), 4);
    check(&pool);
}
