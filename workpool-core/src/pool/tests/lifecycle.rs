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
        assert!(matches!(
            b.release(lease),
            Err(ReleaseError::ForeignPool(_))
        ));
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
        assert!(matches!(
            b.release(lease),
            Err(ReleaseError::ForeignPool(_))
        ));
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
        assert_ne!(b.lane.pool_id(), lease.pool);
        assert!(matches!(
            b.release(lease),
            Err(ReleaseError::ForeignPool(_))
        ));
        assert_eq!(b.counts(&"k"), counts(1, 1));
        check(&b);
        b.release(held).unwrap();
    }

    /// A copy of `lease`, as a buggy adapter might forge one.
    pub(super) fn forge(lease: &Lease<&'static str>) -> Lease<&'static str> {
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
        assert!(matches!(pool.release(copy), Err(ReleaseError::Stale(_))));
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
        assert!(matches!(
            pool.release(other_slot),
            Err(ReleaseError::Stale(_))
        ));
        assert!(matches!(
            pool.release(other_generation),
            Err(ReleaseError::Stale(_))
        ));
        pool.release(lease).unwrap();
        pool.set("a", 5);
        assert!(matches!(pool.release(copy), Err(ReleaseError::Stale(_))));
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
        woken.sort_by_key(|w| (w.shard(), w.index()));
        assert_eq!(woken, [w2, w1, w3]);
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
        assert_eq!(pool.shard.groups.slots(), 1);
        for key in 0..100 {
            let w = pool.enqueue_key(&key).unwrap();
            pool.cancel(w).unwrap();
        }
        assert_eq!(pool.shard.groups.slots(), 1);
        check(&pool);
    }
}

mod key_drops {
    //! The pool drops no key in the middle of an operation: forgotten keys
    //! wait for `poll_forgotten`, keys it does not keep are handed back.
    use super::*;
    use alloc::rc::Rc;
    use core::cell::Cell;

    /// A key that counts its drops.
    #[derive(Clone)]
    struct Counted(u8, Rc<Cell<usize>>);

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Counted {}
    impl Hash for Counted {
        fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }

    #[test]
    fn forgotten_keys_wait_to_be_collected() {
        let drops = Rc::new(Cell::new(0));
        let key = |k| Counted(k, Rc::clone(&drops));
        let mut pool = Pool::new();
        assert!(pool.set(key(1), 1).is_none(), "a new key is stored");
        let lease = pool.try_acquire().unwrap();
        let unused = pool.set(key(1), 0).expect("an equal key is handed back");
        assert_eq!(unused.0, 1);
        drop(unused);
        assert_eq!(drops.get(), 1);
        let released = pool.release(lease).unwrap();
        assert_eq!(released.0, 1);
        drop(released);
        assert_eq!(drops.get(), 2);
        check(&pool);
        assert!(pool.is_empty());
        // The group is forgotten, but its key was not dropped yet.
        assert_eq!(drops.get(), 2);
        let forgotten = pool.poll_forgotten().expect("the stored key");
        assert_eq!(drops.get(), 2);
        drop(forgotten);
        assert_eq!(drops.get(), 3);
        assert!(pool.poll_forgotten().is_none());
    }

    #[test]
    fn cancel_and_close_defer_their_key_drops() {
        let drops = Rc::new(Cell::new(0));
        let key = |k| Counted(k, Rc::clone(&drops));
        let mut pool = Pool::new();
        let w1 = pool.enqueue_key(&key(1)).unwrap();
        let _w2 = pool.enqueue_key(&key(2)).unwrap();
        let _w3 = pool.enqueue_key(&key(3)).unwrap();
        let before = drops.get();
        pool.cancel(w1).unwrap();
        pool.close();
        check(&pool);
        assert!(pool.is_empty());
        assert_eq!(drops.get(), before, "no key dropped inside cancel or close");
        let mut keys: Vec<u8> = core::iter::from_fn(|| pool.poll_forgotten())
            .map(|k| k.0)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, [1, 2, 3]);
        assert_eq!(drops.get(), before + 3);
    }

    #[test]
    fn an_uncollected_slot_is_reused_instead_of_growing() {
        let mut pool = P::new();
        pool.set("a", 1);
        pool.set("a", 0);
        let capacity = pool.shard.groups.slots();
        pool.set("b", 1); // reuses a's retired slot, dropping "a" there
        assert_eq!(pool.shard.groups.slots(), capacity);
        assert!(pool.poll_forgotten().is_none());
        assert_eq!(pool.counts(&"b").target, 1);
        check(&pool);
    }

    #[test]
    fn a_forgotten_group_rejects_its_old_leases_at_once() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let copy = super::release::forge(&lease);
        pool.set("a", 0);
        pool.release(lease).unwrap();
        // Not collected yet: the slot still holds the key, but it is retired.
        assert!(pool.release(copy).unwrap_err().is_stale());
        check(&pool);
    }
}
