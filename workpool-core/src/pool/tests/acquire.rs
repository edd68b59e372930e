//! Targets, immediate acquisition, lease ids and the `iter` snapshot.

use super::*;

mod set_targets {
    use super::*;

    #[test]
    fn set_creates_and_updates_a_key() {
        let mut pool = P::new();
        pool.set("a", 3);
        assert_eq!(pool.counts(&"a"), counts(3, 0));
        assert_eq!(pool.len(), 1);
        pool.set("a", 1);
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        assert_eq!(pool.len(), 1);
        check(&pool);
    }

    #[test]
    fn unknown_keys_read_as_zero() {
        let mut pool = P::new();
        assert_eq!(pool.counts(&"a"), Counts::default());
        assert_eq!(pool.waiting(&"a"), 0);
        pool.set("a", 0);
        assert!(pool.is_empty());
        assert_eq!(pool.counts(&"a"), counts(0, 0));
        check(&pool);
    }

    #[test]
    fn lowering_revokes_nothing() {
        let mut pool = P::new();
        pool.set("a", 3);
        let mut leases: Vec<_> = (0..3)
            .map(|_| pool.try_acquire_key(&"a").unwrap())
            .collect();
        pool.set("a", 1);
        assert_eq!(pool.counts(&"a"), counts(1, 3));
        assert_eq!(
            pool.try_acquire_key(&"a").unwrap_err(),
            TryAcquireError::NoCapacity
        );
        check(&pool);
        pool.release(leases.pop().unwrap()).unwrap();
        pool.release(leases.pop().unwrap()).unwrap();
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        assert!(pool.try_acquire().is_err(), "still at the lower target");
        pool.release(leases.pop().unwrap()).unwrap();
        let lease = pool.try_acquire().unwrap();
        assert_eq!(*lease.key(), "a");
        check(&pool);
    }

    #[test]
    fn lowering_keeps_waiters_queued() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w = pool.enqueue_key(&"a").unwrap();
        pool.set("a", 0);
        pool.release(lease).unwrap();
        assert_eq!(drain(&mut pool), []);
        assert_eq!(pool.waiting(&"a"), 1);
        assert_eq!(pool.counts(&"a"), counts(0, 0));
        check(&pool);
        pool.set("a", 1);
        assert_eq!(drain(&mut pool), [w]);
        check(&pool);
    }

    #[test]
    fn raising_serves_waiters_oldest_first() {
        let mut pool = P::new();
        let w: Vec<_> = (0..3).map(|_| pool.enqueue_key(&"a").unwrap()).collect();
        assert_eq!(pool.counts(&"a"), counts(0, 0));
        pool.set("a", 2);
        assert_eq!(drain(&mut pool), [w[0], w[1]]);
        assert_eq!(pool.counts(&"a"), counts(2, 2));
        assert_eq!(pool.waiting(&"a"), 1);
        assert_waiting(&mut pool, w[2]);
        check(&pool);
    }

    #[test]
    fn raising_past_the_waiters_leaves_room_for_anyone() {
        let mut pool = P::new();
        let w = pool.enqueue().unwrap();
        pool.set("a", 3);
        assert_eq!(drain(&mut pool), [w]);
        let _one = pool.try_acquire().unwrap();
        let _two = pool.try_acquire_key(&"a").unwrap();
        assert!(pool.try_acquire().is_err());
        assert_eq!(pool.counts(&"a"), counts(3, 3));
        check(&pool);
    }

    #[test]
    fn set_works_after_close() {
        let mut pool = P::new();
        pool.set("a", 1);
        pool.close();
        pool.set("a", 5);
        pool.set("b", 2);
        assert_eq!(pool.counts(&"a"), counts(5, 0));
        assert_eq!(pool.counts(&"b"), counts(2, 0));
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
        pool.set("a", 0);
        assert_eq!(pool.len(), 1);
        check(&pool);
    }
}

mod try_acquire {
    use super::*;
    use alloc::collections::VecDeque;

    #[test]
    fn any_key_rotates_over_keys_with_room() {
        let mut pool = P::new();
        for key in ["a", "b", "c"] {
            pool.set(key, 1);
        }
        let mut keys: Vec<_> = (0..3).map(|_| *pool.try_acquire().unwrap().key()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
        check(&pool);
    }

    #[test]
    fn round_robin_even_when_leases_come_back() {
        let mut pool = P::new();
        pool.set("a", 10);
        pool.set("b", 10);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let lease = pool.try_acquire().unwrap();
            seen.push(*lease.key());
            pool.release(lease).unwrap();
        }
        assert_eq!(seen, ["a", "b", "a", "b", "a", "b"]);
        check(&pool);
    }

    #[test]
    fn a_new_key_joins_at_the_end_of_the_round() {
        let mut pool = P::new();
        pool.set("a", 10);
        pool.set("b", 10);
        let first = pool.try_acquire().unwrap();
        assert_eq!(*first.key(), "a");
        pool.set("c", 10);
        let next: Vec<_> = (0..6).map(|_| *pool.try_acquire().unwrap().key()).collect();
        assert_eq!(next, ["b", "a", "c", "b", "a", "c"]);
        check(&pool);
    }

    #[test]
    fn targets_set_the_proportion_under_steady_demand() {
        // Go's example: spam=2, eggs=1, every lease held equally long.
        let mut pool = P::new();
        pool.set("spam", 2);
        pool.set("eggs", 1);
        let mut held: VecDeque<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
        let (mut spam, mut eggs) = (0, 0);
        for _ in 0..300 {
            pool.release(held.pop_front().unwrap()).unwrap();
            let lease = pool.try_acquire().unwrap();
            match *lease.key() {
                "spam" => spam += 1,
                _ => eggs += 1,
            }
            held.push_back(lease);
        }
        assert_eq!((spam, eggs), (200, 100));
        check(&pool);
    }

    #[test]
    fn one_key_fails_without_room() {
        let mut pool = P::new();
        assert_eq!(
            pool.try_acquire_key(&"a").unwrap_err(),
            TryAcquireError::NoCapacity
        );
        assert!(pool.is_empty(), "a failed try does not track the key");
        pool.set("a", 1);
        pool.set("b", 1);
        let lease = pool.try_acquire_key(&"a").unwrap();
        assert_eq!(*lease.key(), "a");
        assert_eq!(
            pool.try_acquire_key(&"a").unwrap_err(),
            TryAcquireError::NoCapacity
        );
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        assert_eq!(*pool.try_acquire().unwrap().key(), "b");
        check(&pool);
    }

    #[test]
    fn empty_and_closed_pools() {
        let mut pool = P::new();
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
        pool.set("a", 1);
        pool.close();
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
        assert_eq!(
            pool.try_acquire_key(&"a").unwrap_err(),
            TryAcquireError::Closed
        );
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        check(&pool);
    }
}

mod retarget {
    use super::*;

    #[test]
    fn leases_from_before_set_zero_still_count() {
        let mut pool = P::new();
        pool.set("a", 2);
        let one = pool.try_acquire().unwrap();
        let two = pool.try_acquire().unwrap();
        pool.set("a", 0);
        pool.set("a", 1);
        assert_eq!(pool.counts(&"a"), counts(1, 2));
        assert!(pool.try_acquire_key(&"a").is_err());
        pool.release(one).unwrap();
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        assert!(pool.try_acquire_key(&"a").is_err());
        pool.release(two).unwrap();
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        assert!(pool.try_acquire_key(&"a").is_ok());
        check(&pool);
    }

    #[test]
    fn waiters_are_served_only_below_the_new_target() {
        let mut pool = P::new();
        pool.set("a", 3);
        let mut leases: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
        let w = pool.enqueue_key(&"a").unwrap();
        pool.set("a", 0);
        pool.set("a", 2);
        pool.release(leases.pop().unwrap()).unwrap();
        assert_eq!(drain(&mut pool), [], "active 2 is not below 2");
        pool.release(leases.pop().unwrap()).unwrap();
        assert_eq!(drain(&mut pool), [w]);
        assert_eq!(pool.counts(&"a"), counts(2, 2));
        check(&pool);
    }
}

mod lease_ids {
    use super::*;

    #[test]
    fn ids_start_at_one_and_increase_in_grant_order() {
        let mut pool = P::new();
        pool.set("a", 1);
        pool.set("b", 1);
        let one = pool.try_acquire().unwrap();
        let two = pool.try_acquire_key(&"b").unwrap();
        let w1 = pool.enqueue_key(&"a").unwrap();
        let w2 = pool.enqueue().unwrap();
        pool.release(two).unwrap(); // grants 3 to w2
        pool.release(one).unwrap(); // grants 4 to w1
        let w3 = pool.enqueue().unwrap();
        pool.set("c", 1); // grants 5 to w3
        let first = granted(&mut pool, w1);
        let second = granted(&mut pool, w2);
        let third = granted(&mut pool, w3);
        assert_eq!([first.id(), second.id(), third.id()], [4, 3, 5]);
        pool.release(third).unwrap();
        let next = pool.try_acquire().unwrap();
        assert_eq!(next.id(), 6, "ids are never reused");
        check(&pool);
    }
}

mod big_targets {
    use super::*;

    #[test]
    fn u64_max_target_works() {
        let mut pool = P::new();
        pool.set("a", u64::MAX);
        let leases: Vec<_> = (0..1000).map(|_| pool.try_acquire().unwrap()).collect();
        assert_eq!(pool.counts(&"a"), counts(u64::MAX, 1000));
        let w = pool.enqueue_key(&"a").unwrap();
        let extra = granted(&mut pool, w);
        pool.set("a", 1);
        assert_eq!(pool.counts(&"a"), counts(1, 1001));
        let waiters: Vec<_> = (0..100).map(|_| pool.enqueue().unwrap()).collect();
        pool.set("a", u64::MAX);
        assert_eq!(drain(&mut pool), waiters);
        assert_eq!(pool.counts(&"a"), counts(u64::MAX, 1101));
        for lease in leases {
            pool.release(lease).unwrap();
        }
        pool.release(extra).unwrap();
        assert_eq!(pool.counts(&"a"), counts(u64::MAX, 100));
        pool.set("a", u64::MAX - 1);
        pool.set("b", u64::MAX);
        let keys: Vec<_> = (0..4).map(|_| *pool.try_acquire().unwrap().key()).collect();
        assert_eq!(keys, ["a", "b", "a", "b"]);
        assert_eq!(pool.counts(&"a"), counts(u64::MAX - 1, 102));
        check(&pool);
    }
}

mod iter {
    use super::*;

    #[test]
    fn the_snapshot_lists_every_tracked_key() {
        let mut pool = P::new();
        pool.set("a", 2);
        pool.set("b", 1);
        let lease = pool.try_acquire_key(&"b").unwrap();
        pool.set("b", 0);
        let _w = pool.enqueue_key(&"c").unwrap();
        pool.set("d", 3);
        pool.set("d", 0);
        let mut all: Vec<_> = pool.iter().collect();
        all.sort_unstable_by_key(|&(k, _)| *k);
        assert_eq!(
            all,
            [
                (&"a", counts(2, 0)),
                (&"b", counts(0, 1)),
                (&"c", counts(0, 0))
            ]
        );
        assert_eq!(all.len(), pool.len());
        for (key, c) in pool.iter() {
            assert_eq!(pool.counts(key), c);
        }
        pool.release(lease).unwrap();
        assert_eq!(pool.iter().count(), 2);
        check(&pool);
    }
}
