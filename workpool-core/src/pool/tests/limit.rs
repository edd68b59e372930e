//! The pool-wide limit: grants need room in the key and in the pool, and the
//! pool's room goes to the oldest waiter it can serve, whatever its key.

use super::*;

#[test]
fn a_release_at_one_key_serves_an_older_waiter_of_another() {
    let mut pool = P::new();
    pool.set("a", 2);
    pool.set("b", 2);
    pool.set_limit(Some(2));
    let a1 = pool.try_acquire_key(&"a").unwrap();
    let _a2 = pool.try_acquire_key(&"a").unwrap();
    // "b" has room, the pool has none: the waiter is held back.
    let wb = pool.enqueue_key(&"b").unwrap();
    let wa = pool.enqueue_key(&"a").unwrap();
    check(&pool);
    assert_eq!(pool.active(), 2);
    pool.release(a1).unwrap();
    // The older waiter is b's, and "b" has room: it gets the pool's unit.
    assert_eq!(drain(&mut pool), [wb]);
    assert_eq!(*granted(&mut pool, wb).key(), "b");
    assert_waiting(&mut pool, wa);
    check(&pool);
}

#[test]
fn newcomers_never_barge_past_held_back_waiters() {
    let mut pool = P::new();
    pool.set("a", 1);
    pool.set("b", 1);
    pool.set_limit(Some(1));
    let held = pool.try_acquire_key(&"a").unwrap();
    let wb = pool.enqueue_key(&"b").unwrap();
    assert_eq!(
        pool.try_acquire_key(&"b").unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    pool.release(held).unwrap();
    assert_eq!(drain(&mut pool), [wb]);
    // The pool is full again: "a" has room, and nobody may take it.
    assert!(pool.try_acquire_key(&"a").is_err());
    check(&pool);
}

#[test]
fn lowering_the_limit_revokes_nothing_and_grants_resume_below_it() {
    let mut pool = P::new();
    pool.set("a", 4);
    let leases: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
    pool.set_limit(Some(1));
    assert_eq!((pool.active(), pool.limit()), (3, Some(1)));
    let w = pool.enqueue_key(&"a").unwrap();
    let mut leases = leases.into_iter();
    pool.release(leases.next().unwrap()).unwrap();
    pool.release(leases.next().unwrap()).unwrap();
    assert_eq!(drain(&mut pool), [], "still at the limit");
    pool.release(leases.next().unwrap()).unwrap();
    assert_eq!(drain(&mut pool), [w]);
    assert_eq!(pool.active(), 1);
    check(&pool);
}

#[test]
fn raising_or_removing_the_limit_serves_waiters_oldest_first() {
    let mut pool = P::new();
    pool.set("a", 3);
    pool.set("b", 3);
    pool.set_limit(Some(0));
    let w1 = pool.enqueue_key(&"b").unwrap();
    let w2 = pool.enqueue().unwrap();
    let w3 = pool.enqueue_key(&"a").unwrap();
    let w4 = pool.enqueue_key(&"b").unwrap();
    check(&pool);
    pool.set_limit(Some(2));
    let mut woken = drain(&mut pool);
    woken.sort_by_key(|w| (w.shard(), w.index()));
    assert_eq!(woken, [w2, w1], "the two oldest");
    check(&pool);
    pool.set_limit(None);
    let mut woken = drain(&mut pool);
    woken.sort_by_key(|w| (w.shard(), w.index()));
    assert_eq!(woken, [w3, w4]);
    assert_eq!(pool.active(), 4);
    check(&pool);
}

#[test]
fn an_any_key_waiter_takes_the_pools_room_from_a_key_with_room() {
    let mut pool = P::new();
    pool.set("a", 1);
    pool.set("b", 2);
    pool.set_limit(Some(1));
    let held = pool.try_acquire_key(&"a").unwrap();
    let any = pool.enqueue().unwrap();
    let keyed = pool.enqueue_key(&"b").unwrap();
    pool.release(held).unwrap();
    assert_eq!(drain(&mut pool), [any], "the older waiter");
    let lease = granted(&mut pool, any);
    pool.release(lease).unwrap();
    assert_eq!(drain(&mut pool), [keyed]);
    check(&pool);
}

#[test]
fn close_fails_held_back_waiters() {
    let mut pool = P::new();
    pool.set("a", 1);
    pool.set_limit(Some(0));
    let w = pool.enqueue_key(&"a").unwrap();
    pool.close();
    assert_eq!(drain(&mut pool), [w]);
    assert!(matches!(pool.claim(w), Ok(Claim::Closed)));
    check(&pool);
}

#[test]
fn replace_all_under_a_limit_forgets_what_it_zeroes() {
    let mut pool = Pool::<u8>::new();
    pool.set_limit(Some(1));
    let _w = pool.enqueue_key(&1).unwrap();
    pool.set(0, 1);
    let unused = pool.replace_all([(0, 0), (2, 1)]);
    check(&pool);
    assert_eq!(pool.counts(&0), counts(0, 0));
    assert_eq!(pool.len(), 2);
    assert!(unused.contains(&0), "the forgotten key is handed back");
    assert_eq!(pool.poll_forgotten(), None);
}
