//! Closing one key: its waiters fail, nothing else changes, and the pool
//! does not remember it.

use super::*;

#[test]
fn key_waiters_fail_oldest_first_and_the_key_is_forgotten() {
    let mut pool = P::new();
    let waiters: Vec<_> = (0..3).map(|_| pool.enqueue_key(&"a").unwrap()).collect();
    assert_eq!(pool.len(), 1);
    pool.close_key(&"a");
    assert_eq!(drain(&mut pool), waiters);
    for &w in &waiters {
        assert!(matches!(pool.claim(w), Ok(Claim::Closed)));
        assert_eq!(pool.claim(w).unwrap_err(), UnknownWaiter);
    }
    assert_eq!((pool.waiters(), pool.waiting(&"a")), (0, 0));
    assert!(pool.is_empty());
    assert_eq!(pool.poll_forgotten(), Some("a"));
    assert_eq!(pool.poll_forgotten(), None);
    assert!(!pool.is_closed());
    check(&pool);
}

#[test]
fn any_key_waiters_and_other_keys_are_unaffected() {
    let mut pool = P::new();
    pool.set("a", 1);
    pool.set("b", 1);
    let a = pool.try_acquire_key(&"a").unwrap();
    let b = pool.try_acquire_key(&"b").unwrap();
    let for_a = pool.enqueue_key(&"a").unwrap();
    let any = pool.enqueue().unwrap();
    let for_b = pool.enqueue_key(&"b").unwrap();

    pool.close_key(&"a");
    assert_eq!(drain(&mut pool), [for_a]);
    assert!(matches!(pool.claim(for_a), Ok(Claim::Closed)));
    assert_waiting(&mut pool, any);
    assert_waiting(&mut pool, for_b);
    assert_eq!((pool.waiters(), pool.waiting(&"b")), (2, 1));
    check(&pool);

    // "a" has target 0 now: its release serves nobody; "b"'s serves the
    // older waiter, the any-key one.
    pool.release(a).unwrap();
    assert_eq!(drain(&mut pool), []);
    assert_eq!(pool.poll_forgotten(), Some("a"));
    pool.release(b).unwrap();
    assert_eq!(drain(&mut pool), [any]);
    assert_eq!(*granted(&mut pool, any).key(), "b");
    assert_waiting(&mut pool, for_b);
    check(&pool);
}

#[test]
fn leases_stay_valid_and_keep_counting() {
    let mut pool = P::new();
    pool.set("a", 2);
    let one = pool.try_acquire().unwrap();
    let two = pool.try_acquire().unwrap();
    pool.close_key(&"a");
    assert_eq!(pool.counts(&"a"), counts(0, 2));
    assert_eq!(pool.len(), 1, "kept while it has leases");
    assert_eq!(pool.poll_forgotten(), None);
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    check(&pool);

    // Set again, the key still counts the leases it had.
    pool.set("a", 1);
    assert_eq!(pool.counts(&"a"), counts(1, 2));
    assert!(pool.try_acquire_key(&"a").is_err());
    assert_eq!(pool.release(one).unwrap(), "a");
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    assert!(pool.try_acquire_key(&"a").is_err());
    assert_eq!(pool.release(two).unwrap(), "a");
    assert_eq!(pool.counts(&"a"), counts(1, 0));
    let three = pool.try_acquire_key(&"a").unwrap();
    assert_eq!(three.id(), 3);

    // Closed again with a lease out, it is forgotten at the release.
    pool.close_key(&"a");
    pool.release(three).unwrap();
    assert!(pool.is_empty());
    assert_eq!(pool.poll_forgotten(), Some("a"));
    check(&pool);
}

#[test]
fn a_later_waiter_waits_and_is_served_when_the_key_comes_back() {
    let mut pool = P::new();
    pool.set("a", 1);
    let lease = pool.try_acquire().unwrap();
    let early = pool.enqueue_key(&"a").unwrap();
    pool.close_key(&"a");
    assert_eq!(drain(&mut pool), [early]);

    // No memory of the close: a newcomer waits, as on any target-0 key.
    let late = pool.enqueue_key(&"a").unwrap();
    assert_waiting(&mut pool, late);
    pool.release(lease).unwrap();
    assert_eq!(drain(&mut pool), []);
    assert_eq!(pool.counts(&"a"), counts(0, 0));
    assert_eq!(pool.len(), 1, "kept for its waiter");
    check(&pool);

    pool.set("a", 1);
    assert_eq!(drain(&mut pool), [late]);
    assert_eq!(granted(&mut pool, late).id(), 2);
    assert!(matches!(pool.claim(early), Ok(Claim::Closed)));
    check(&pool);
}

#[test]
fn a_waiter_already_granted_keeps_its_lease() {
    let mut pool = P::new();
    pool.set("a", 1);
    let lease = pool.try_acquire().unwrap();
    let first = pool.enqueue_key(&"a").unwrap();
    let second = pool.enqueue_key(&"a").unwrap();
    pool.release(lease).unwrap(); // granted to `first`, not yet claimed
    pool.close_key(&"a");
    // The grant was decided first, the close second.
    assert_eq!(drain(&mut pool), [first, second]);
    let lease = granted(&mut pool, first);
    assert!(matches!(pool.claim(second), Ok(Claim::Closed)));
    assert_eq!(pool.counts(&"a"), counts(0, 1));
    pool.release(lease).unwrap();
    assert!(pool.is_empty());
    check(&pool);
}

#[test]
fn a_closed_waiter_can_be_cancelled_instead_of_claimed() {
    let mut pool = P::new();
    let w = pool.enqueue_key(&"a").unwrap();
    pool.close_key(&"a");
    assert_eq!(pool.cancel(w), Ok(()));
    assert_eq!(drain(&mut pool), [], "a cancelled waiter is not reported");
    assert_eq!(pool.claim(w).unwrap_err(), UnknownWaiter);
    check(&pool);
}

#[test]
fn the_key_leaves_the_any_key_rotation() {
    let mut pool = P::new();
    pool.set("a", 2);
    pool.set("b", 1);
    pool.close_key(&"a");
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.poll_forgotten(), Some("a"));
    let lease = pool.try_acquire().unwrap();
    assert_eq!(*lease.key(), "b");
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    check(&pool);
}

#[test]
fn an_untracked_key_is_left_alone() {
    let mut pool = P::new();
    pool.close_key(&"nobody");
    assert!(pool.is_empty());
    assert_eq!((pool.poll_wake(), pool.poll_forgotten()), (None, None));

    pool.set("a", 1);
    let any = pool.enqueue().unwrap();
    let lease = granted(&mut pool, any);
    let waiter = pool.enqueue().unwrap();
    pool.close_key(&"nobody");
    assert_eq!(drain(&mut pool), []);
    assert_waiting(&mut pool, waiter);
    assert_eq!(pool.counts(&"a"), counts(1, 1));
    assert_eq!(pool.len(), 1);
    pool.release(lease).unwrap();
    assert_eq!(drain(&mut pool), [waiter]);
    check(&pool);
}

#[test]
fn closing_a_key_twice_does_nothing_more() {
    let mut pool = P::new();
    pool.set("a", 1);
    let lease = pool.try_acquire().unwrap();
    let w = pool.enqueue_key(&"a").unwrap();
    pool.close_key(&"a");
    pool.close_key(&"a");
    assert_eq!(drain(&mut pool), [w]);
    pool.close_key(&"a");
    assert_eq!(drain(&mut pool), []);
    assert_eq!(pool.counts(&"a"), counts(0, 1));
    pool.release(lease).unwrap();
    check(&pool);
}

#[test]
fn on_a_closed_pool_only_the_target_changes() {
    let mut pool = P::new();
    pool.set("a", 3);
    let lease = pool.try_acquire().unwrap();
    let w = pool.enqueue_key(&"b").unwrap();
    pool.close();
    assert_eq!(drain(&mut pool), [w]);
    pool.close_key(&"a");
    pool.close_key(&"b");
    assert_eq!(drain(&mut pool), []);
    assert_eq!(pool.counts(&"a"), counts(0, 1));
    assert!(matches!(pool.claim(w), Ok(Claim::Closed)));
    pool.release(lease).unwrap();
    assert!(pool.is_empty());
    check(&pool);
}

#[test]
fn borrowed_lookups_find_owned_keys() {
    let mut pool = Pool::<alloc::string::String>::new();
    let w = pool.enqueue_key("a").unwrap();
    pool.close_key("a");
    assert_eq!(drain(&mut pool), [w]);
    assert!(matches!(pool.claim(w), Ok(Claim::Closed)));
    assert_eq!(pool.poll_forgotten().as_deref(), Some("a"));
    check(&pool);
}
