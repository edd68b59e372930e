//! Releasing leases, closing the pool and forgetting idle keys.

use super::*;

mod release {
    use super::*;

    #[test]
    fn a_lease_of_another_pool_is_rejected() {
        let (mut a, mut b) = (P::new(), P::new());
        a.set("k", 2);
        b.set("k", 2);
        let _held = b.try_acquire().unwrap();
        let lease = a.try_acquire().unwrap();
        assert_eq!(b.release(lease), Err(ReleaseError::ForeignPool));
        assert_eq!(b.counts(&"k"), counts(2, 1));
        assert_eq!(a.counts(&"k"), counts(2, 1));
        check(&a);
        check(&b);
    }

    /// Issue 12: without pointer atomics every pool had id 0, so a lease of
    /// the first key of one pool was released into another.
    #[test]
    fn regression_a_lease_of_another_pool_is_rejected_without_atomics() {
        let (mut a, mut b) = (anchored(), anchored());
        a.set("k", 2);
        b.set("k", 2);
        let held = b.try_acquire().unwrap();
        let lease = a.try_acquire().unwrap();
        // Same slot, generation and lease id: only the pool tells them apart.
        assert_eq!(lease.grant.group, held.grant.group);
        assert_eq!(lease.grant.generation, held.grant.generation);
        assert_eq!(lease.id(), held.id());
        assert_eq!(b.release(lease), Err(ReleaseError::ForeignPool));
        assert_eq!(b.counts(&"k"), counts(2, 1));
        assert_eq!(a.counts(&"k"), counts(2, 1));
        check(&a);
        check(&b);
        b.release(held).unwrap();
        assert_eq!(b.counts(&"k"), counts(2, 0));
    }

    /// A heap address alone would be handed to the next pool once the first
    /// is dropped; a used pool keeps its address for good.
    #[test]
    fn regression_a_lease_outliving_its_pool_is_rejected_without_atomics() {
        let mut a = anchored();
        a.set("k", 1);
        let lease = a.try_acquire().unwrap();
        drop(a);
        let mut b = anchored();
        b.set("k", 1);
        let held = b.try_acquire().unwrap();
        assert!(crate::identity::tests::is_retired(lease.pool));
        assert_ne!(b.identity.id(), lease.pool);
        assert_eq!(b.release(lease), Err(ReleaseError::ForeignPool));
        assert_eq!(b.counts(&"k"), counts(1, 1));
        check(&b);
        b.release(held).unwrap();
    }

    /// A copy of `lease`, as a buggy adapter might forge one.
    fn forge(lease: &Lease<&'static str>) -> Lease<&'static str> {
        Lease {
            pool: lease.pool,
            grant: lease.grant,
            key: lease.key,
        }
    }

    #[test]
    fn a_lease_of_a_forgotten_key_is_stale() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let copy = forge(&lease);
        pool.set("a", 0);
        pool.release(lease).unwrap();
        assert!(pool.is_empty());
        // The slot is reused by another key, with a new generation.
        pool.set("b", 2);
        let _b = pool.try_acquire().unwrap();
        assert_eq!(pool.release(copy), Err(ReleaseError::Stale));
        assert_eq!(pool.counts(&"b"), counts(2, 1));
        check(&pool);
    }

    #[test]
    fn a_lease_with_no_live_unit_is_stale() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let copy = forge(&lease);
        let mut other_slot = forge(&lease);
        other_slot.grant.group = 7;
        let mut other_generation = forge(&lease);
        other_generation.grant.generation += 1;
        assert_eq!(pool.release(other_slot), Err(ReleaseError::Stale));
        assert_eq!(pool.release(other_generation), Err(ReleaseError::Stale));
        pool.release(lease).unwrap();
        pool.set("a", 5);
        assert_eq!(pool.release(copy), Err(ReleaseError::Stale));
        assert_eq!(pool.counts(&"a"), counts(5, 0));
        check(&pool);
    }

    #[test]
    fn release_serves_the_oldest_waiter_or_the_key() {
        let mut pool = P::new();
        pool.set("a", 2);
        let one = pool.try_acquire().unwrap();
        let two = pool.try_acquire().unwrap();
        let w = pool.enqueue().unwrap();
        pool.release(one).unwrap();
        assert_eq!(drain(&mut pool), [w]);
        pool.release(two).unwrap();
        assert_eq!(drain(&mut pool), []);
        assert_eq!(pool.counts(&"a"), counts(2, 1));
        check(&pool);
    }

    #[test]
    fn release_works_after_close() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        pool.close();
        pool.release(lease).unwrap();
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        check(&pool);
    }
}

mod close {
    use super::*;

    #[test]
    fn waiters_and_new_requests_fail() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w1 = pool.enqueue_key(&"a").unwrap();
        let w2 = pool.enqueue().unwrap();
        let w3 = pool.enqueue_key(&"z").unwrap();
        pool.close();
        assert!(pool.is_closed());
        let mut woken = drain(&mut pool);
        woken.sort_by_key(|w| w.index());
        assert_eq!(woken, [w1, w2, w3]);
        for w in [w1, w2, w3] {
            assert!(matches!(pool.claim(w), Ok(Claim::Closed)));
            assert_eq!(pool.claim(w).unwrap_err(), UnknownWaiter);
        }
        assert_eq!(pool.waiters(), 0);
        assert_eq!(pool.waiting(&"a"), 0);
        assert_eq!(pool.enqueue().unwrap_err(), Closed);
        assert_eq!(pool.enqueue_key(&"a").unwrap_err(), Closed);
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
        // "z" was tracked only for its waiter.
        assert_eq!(pool.len(), 1);
        check(&pool);
        pool.release(lease).unwrap();
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        check(&pool);
    }

    #[test]
    fn a_grant_made_before_close_stands() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w = pool.enqueue().unwrap();
        pool.release(lease).unwrap();
        pool.close();
        assert_eq!(drain(&mut pool), [w]);
        let lease = granted(&mut pool, w);
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        pool.release(lease).unwrap();
        check(&pool);
    }

    #[test]
    fn closing_twice_does_nothing() {
        let mut pool = P::new();
        let w = pool.enqueue().unwrap();
        pool.close();
        pool.close();
        assert_eq!(drain(&mut pool), [w]);
        pool.close();
        assert_eq!(drain(&mut pool), []);
        assert!(pool.is_closed());
        check(&pool);
    }
}

mod forget {
    use super::*;

    #[test]
    fn a_key_with_nothing_left_is_forgotten() {
        let mut pool = P::new();
        pool.set("a", 1);
        pool.set("b", 1);
        assert_eq!(pool.len(), 2);
        pool.set("a", 0);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.counts(&"a"), counts(0, 0));
        assert_eq!(*pool.try_acquire().unwrap().key(), "b");
        check(&pool);
    }

    #[test]
    fn a_key_with_a_lease_is_kept_until_the_release() {
        let mut pool = P::new();
        pool.set("a", 2);
        let lease = pool.try_acquire().unwrap();
        pool.set("a", 0);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.counts(&"a"), counts(0, 1));
        assert!(pool.try_acquire().is_err());
        pool.release(lease).unwrap();
        assert_eq!(pool.len(), 0);
        assert!(pool.is_empty());
        check(&pool);
    }

    #[test]
    fn a_key_with_a_waiter_is_kept_until_the_waiter_leaves() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w = pool.enqueue_key(&"a").unwrap();
        pool.set("a", 0);
        pool.release(lease).unwrap();
        assert_eq!(pool.len(), 1, "the waiter keeps the key");
        pool.set("a", 1);
        assert_eq!(drain(&mut pool), [w]);
        pool.set("a", 0);
        let lease = granted(&mut pool, w);
        assert_eq!(pool.len(), 1, "the lease keeps the key");
        pool.release(lease).unwrap();
        assert!(pool.is_empty());
        check(&pool);
    }

    #[test]
    fn forgotten_slots_are_reused() {
        let mut pool = Pool::<u32>::new();
        for key in 0..1000 {
            pool.set(key, 1);
            let lease = pool.try_acquire_key(&key).unwrap();
            pool.set(key, 0);
            pool.release(lease).unwrap();
            assert!(pool.is_empty());
        }
        assert_eq!(pool.groups.capacity(), 1);
        for key in 0..100 {
            let w = pool.enqueue_key(&key).unwrap();
            pool.cancel(w).unwrap();
        }
        assert_eq!(pool.groups.capacity(), 1);
        check(&pool);
    }
}
