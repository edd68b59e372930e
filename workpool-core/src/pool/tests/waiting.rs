//! Waiters: key and any-key queues, fairness, cancellation and wake-ups.

use super::*;

mod key_waiters {
    use super::*;

    #[test]
    fn granted_at_once_when_the_key_has_room() {
        let mut pool = P::new();
        pool.set("a", 1);
        let w = pool.enqueue_key(&"a").unwrap();
        assert_eq!(pool.waiters(), 0);
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        assert_eq!(drain(&mut pool), [], "an immediate grant is not reported");
        let lease = granted(&mut pool, w);
        assert_eq!((*lease.key(), lease.id()), ("a", 1));
        assert_eq!(pool.claim(w).unwrap_err(), UnknownWaiter);
        check(&pool);
    }

    #[test]
    fn key_waiters_are_served_in_arrival_order() {
        let mut pool = P::new();
        pool.set("a", 1);
        let mut lease = pool.try_acquire().unwrap();
        let w: Vec<_> = (0..3).map(|_| pool.enqueue_key(&"a").unwrap()).collect();
        assert_eq!(pool.waiting(&"a"), 3);
        assert_eq!(pool.waiters(), 3);
        check(&pool);
        for (i, &waiter) in w.iter().enumerate() {
            pool.release(lease).unwrap();
            assert_eq!(drain(&mut pool), [waiter]);
            assert_eq!(pool.waiting(&"a"), 2 - i);
            lease = granted(&mut pool, waiter);
            assert_eq!(pool.counts(&"a"), counts(1, 1));
            check(&pool);
        }
        pool.release(lease).unwrap();
        assert_eq!(drain(&mut pool), []);
        assert_eq!(pool.counts(&"a"), counts(1, 0));
    }

    #[test]
    fn only_its_own_key_serves_a_key_waiter() {
        let mut pool = P::new();
        let w = pool.enqueue_key(&"a").unwrap();
        pool.set("b", 2);
        assert_eq!(drain(&mut pool), []);
        // Capacity at "b" is free for anyone: the waiter cannot use it.
        assert_eq!(*pool.try_acquire().unwrap().key(), "b");
        let b = pool.enqueue().unwrap();
        assert!(matches!(pool.claim(b), Ok(Claim::Granted(_))));
        assert_waiting(&mut pool, w);
        pool.set("a", 1);
        assert_eq!(drain(&mut pool), [w]);
        assert_eq!(*granted(&mut pool, w).key(), "a");
        check(&pool);
    }

    #[test]
    fn an_untracked_key_is_tracked_while_waited_for() {
        let mut pool = P::new();
        let w = pool.enqueue_key(&"z").unwrap();
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.counts(&"z"), counts(0, 0));
        assert_eq!(pool.waiting(&"z"), 1);
        assert_eq!(pool.iter().collect::<Vec<_>>(), [(&"z", counts(0, 0))]);
        check(&pool);
        pool.cancel(w).unwrap();
        assert!(pool.is_empty());
        assert_eq!(pool.waiting(&"z"), 0);
        check(&pool);
    }

    #[test]
    fn claiming_a_waiting_waiter_keeps_it_queued() {
        let mut pool = P::new();
        let w = pool.enqueue_key(&"a").unwrap();
        for _ in 0..3 {
            assert_waiting(&mut pool, w);
        }
        assert_eq!(pool.waiting(&"a"), 1);
        pool.set("a", 1);
        assert_eq!(drain(&mut pool), [w]);
        assert_eq!(granted(&mut pool, w).id(), 1);
        check(&pool);
    }
}

mod any_waiters {
    use super::*;

    #[test]
    fn any_key_can_serve_an_any_key_waiter() {
        let mut pool = P::new();
        let w = pool.enqueue().unwrap();
        assert_eq!(pool.waiters(), 1);
        assert_eq!(pool.waiting(&"b"), 0, "any-key waiters wait for no key");
        pool.set("b", 1);
        assert_eq!(drain(&mut pool), [w]);
        assert_eq!(*granted(&mut pool, w).key(), "b");
        check(&pool);
    }

    #[test]
    fn the_oldest_eligible_waiter_is_served_first() {
        let mut pool = P::new();
        pool.set("a", 1);
        let mut lease = pool.try_acquire().unwrap();
        let w1 = pool.enqueue_key(&"a").unwrap();
        let w2 = pool.enqueue().unwrap();
        let w3 = pool.enqueue_key(&"a").unwrap();
        check(&pool);
        for w in [w1, w2, w3] {
            pool.release(lease).unwrap();
            assert_eq!(drain(&mut pool), [w]);
            lease = granted(&mut pool, w);
            check(&pool);
        }
    }

    #[test]
    fn new_room_serves_a_mixed_queue_in_arrival_order() {
        let mut pool = P::new();
        let w1 = pool.enqueue_key(&"a").unwrap();
        let w2 = pool.enqueue().unwrap();
        let w3 = pool.enqueue_key(&"b").unwrap();
        let w4 = pool.enqueue_key(&"a").unwrap();
        let w5 = pool.enqueue().unwrap();
        pool.set("a", 3);
        // Any-key waiters are reported first.
        assert_eq!(drain(&mut pool), [w2, w1, w4]);
        assert_eq!(pool.waiting(&"b"), 1);
        assert_eq!(pool.waiters(), 2);
        pool.set("b", 2);
        assert_eq!(drain(&mut pool), [w5, w3]);
        assert_eq!(*granted(&mut pool, w5).key(), "b");
        check(&pool);
    }

    #[test]
    fn try_acquire_does_not_barge_past_a_served_waiter() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w = pool.enqueue_key(&"a").unwrap();
        pool.release(lease).unwrap();
        // The freed unit is already the waiter's, claimed or not.
        assert_eq!(
            pool.try_acquire_key(&"a").unwrap_err(),
            TryAcquireError::NoCapacity
        );
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
        assert_eq!(drain(&mut pool), [w]);
        assert_eq!(*granted(&mut pool, w).key(), "a");
        check(&pool);
    }

    #[test]
    fn a_new_waiter_does_not_barge_either() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w1 = pool.enqueue().unwrap();
        pool.release(lease).unwrap();
        let w2 = pool.enqueue().unwrap();
        let w3 = pool.enqueue_key(&"a").unwrap();
        assert_eq!(drain(&mut pool), [w1]);
        assert_waiting(&mut pool, w2);
        assert_waiting(&mut pool, w3);
        let lease = granted(&mut pool, w1);
        pool.release(lease).unwrap();
        assert_eq!(drain(&mut pool), [w2]);
        check(&pool);
    }

    #[test]
    fn a_waiter_for_a_full_key_does_not_block_other_keys() {
        let mut pool = P::new();
        pool.set("a", 1);
        let _a = pool.try_acquire_key(&"a").unwrap();
        let _w = pool.enqueue_key(&"a").unwrap();
        pool.set("b", 1);
        assert_eq!(*pool.try_acquire().unwrap().key(), "b");
        check(&pool);
    }
}

mod cancel {
    use super::*;

    #[test]
    fn a_waiting_waiter_leaves_its_queue() {
        let mut pool = P::new();
        pool.set("a", 1);
        let _lease = pool.try_acquire().unwrap();
        let w = pool.enqueue_key(&"a").unwrap();
        pool.cancel(w).unwrap();
        assert_eq!(pool.waiting(&"a"), 0);
        assert_eq!(pool.waiters(), 0);
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        assert_eq!(pool.cancel(w).unwrap_err(), UnknownWaiter);
        assert_eq!(pool.claim(w).unwrap_err(), UnknownWaiter);
        check(&pool);
    }

    #[test]
    fn cancelling_in_the_middle_keeps_the_order() {
        let mut pool = P::new();
        let w: Vec<_> = (0..4).map(|_| pool.enqueue().unwrap()).collect();
        pool.cancel(w[1]).unwrap();
        pool.cancel(w[3]).unwrap();
        assert_eq!(pool.waiters(), 2);
        check(&pool);
        pool.set("a", 5);
        assert_eq!(drain(&mut pool), [w[0], w[2]]);
        assert_eq!(pool.counts(&"a"), counts(5, 2));
        check(&pool);
    }

    #[test]
    fn a_granted_lease_passes_to_the_next_waiter() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w1 = pool.enqueue_key(&"a").unwrap();
        let w2 = pool.enqueue().unwrap();
        pool.release(lease).unwrap();
        // w1 was granted but gives up before it is woken.
        pool.cancel(w1).unwrap();
        assert_eq!(drain(&mut pool), [w2], "a cancelled waiter is not reported");
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        let lease = granted(&mut pool, w2);
        assert_eq!((*lease.key(), lease.id()), ("a", 3));
        check(&pool);
    }

    #[test]
    fn a_reported_then_cancelled_grant_passes_on_too() {
        let mut pool = P::new();
        pool.set("a", 1);
        let lease = pool.try_acquire().unwrap();
        let w1 = pool.enqueue_key(&"a").unwrap();
        let w2 = pool.enqueue_key(&"a").unwrap();
        pool.release(lease).unwrap();
        assert_eq!(drain(&mut pool), [w1]);
        pool.cancel(w1).unwrap();
        assert_eq!(drain(&mut pool), [w2]);
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        check(&pool);
    }

    #[test]
    fn a_granted_lease_with_no_waiter_goes_back_to_its_key() {
        let mut pool = P::new();
        pool.set("a", 1);
        let w = pool.enqueue().unwrap();
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        pool.cancel(w).unwrap();
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        assert_eq!(drain(&mut pool), []);
        assert!(pool.try_acquire().is_ok());
        check(&pool);
    }

    #[test]
    fn cancelling_the_last_reference_forgets_the_key() {
        let mut pool = P::new();
        pool.set("a", 1);
        let w = pool.enqueue_key(&"a").unwrap();
        pool.set("a", 0);
        assert_eq!(pool.len(), 1, "the granted lease keeps the key");
        pool.cancel(w).unwrap();
        assert!(pool.is_empty());
        check(&pool);
    }

    #[test]
    fn cancelling_a_closed_waiter() {
        let mut pool = P::new();
        let w = pool.enqueue().unwrap();
        pool.close();
        pool.cancel(w).unwrap();
        assert_eq!(drain(&mut pool), []);
        assert_eq!(pool.cancel(w).unwrap_err(), UnknownWaiter);
        check(&pool);
    }
}

mod wake {
    use super::*;

    #[test]
    fn decisions_are_reported_oldest_first_per_kind() {
        let mut pool = P::new();
        let w1 = pool.enqueue_key(&"b").unwrap();
        let w2 = pool.enqueue_key(&"a").unwrap();
        let w3 = pool.enqueue().unwrap();
        let w4 = pool.enqueue().unwrap();
        pool.set("a", 1); // w2
        pool.set("b", 3); // w1, then w3, then w4
        assert_eq!(drain(&mut pool), [w3, w4, w2, w1]);
        check(&pool);
    }

    #[test]
    fn a_waiter_claimed_before_it_is_reported_is_not_reported() {
        let mut pool = P::new();
        let w1 = pool.enqueue().unwrap();
        let w2 = pool.enqueue().unwrap();
        pool.set("a", 2);
        let _lease = granted(&mut pool, w1);
        assert_eq!(drain(&mut pool), [w2]);
        check(&pool);
    }
}

mod waiter_ids {
    use super::*;

    #[test]
    fn regression_a_handle_of_another_pool_is_unknown() {
        let (mut a, mut b) = (P::new(), P::new());
        a.set("k", 1);
        b.set("k", 1);
        let _held = b.try_acquire().unwrap();
        let wa = a.enqueue().unwrap();
        let wb = b.enqueue().unwrap();
        assert_eq!((wa.index(), wb.index()), (0, 0), "same slot in both pools");
        assert_eq!(b.claim(wa).unwrap_err(), UnknownWaiter);
        assert_eq!(b.cancel(wa).unwrap_err(), UnknownWaiter);
        assert_eq!(b.waiters(), 1, "b's own waiter is untouched");
        assert_waiting(&mut b, wb);
        assert_eq!(a.claim(wb).unwrap_err(), UnknownWaiter);
        assert_eq!(granted(&mut a, wa).id(), 1);
        check(&a);
        check(&b);
    }

    #[test]
    fn regression_a_handle_of_another_pool_is_unknown_without_atomics() {
        let (mut a, mut b) = (anchored(), anchored());
        let wa = a.enqueue_key(&"k").unwrap();
        let wb = b.enqueue_key(&"k").unwrap();
        assert_eq!((wa.index, wa.generation), (wb.index, wb.generation));
        assert_eq!(b.claim(wa).unwrap_err(), UnknownWaiter);
        assert_eq!(b.cancel(wa).unwrap_err(), UnknownWaiter);
        assert_eq!(b.waiting(&"k"), 1);
        // Nor does a handle of a dropped pool name the next pool's waiter.
        drop(a);
        let mut c = anchored();
        let wc = c.enqueue_key(&"k").unwrap();
        assert_eq!((wa.index, wa.generation), (wc.index, wc.generation));
        assert_eq!(c.cancel(wa).unwrap_err(), UnknownWaiter);
        assert_eq!(c.waiting(&"k"), 1);
        check(&b);
        check(&c);
    }

    /// Issue 12: a `u32` generation wrapped, and the LIFO free list reuses
    /// one slot over and over, so a stale handle matched again after 2^32
    /// waits. The generation is now the waiter's `u64` registration number.
    #[test]
    fn regression_a_stale_handle_never_matches_its_reused_slot() {
        let mut pool = P::new();
        let stale = pool.enqueue().unwrap();
        pool.cancel(stale).unwrap();
        // Skip 2^32 arrivals rather than make them: the next waiter gets
        // the same slot and a number equal to the stale one's in its low 32
        // bits, which is all a `u32` generation would have compared.
        pool.lane.waiters.skip_to(stale.generation + (1 << 32));
        let again = pool.enqueue().unwrap();
        assert_eq!(again.index, stale.index);
        assert_eq!(again.generation as u32, stale.generation as u32);
        assert_ne!(again, stale);
        assert_eq!(pool.claim(stale).unwrap_err(), UnknownWaiter);
        assert_eq!(pool.cancel(stale).unwrap_err(), UnknownWaiter);
        assert_waiting(&mut pool, again);
        assert_eq!(pool.waiters(), 1);
        check(&pool);
    }

    #[test]
    fn slots_are_dense_and_handles_go_stale() {
        let mut pool = P::new();
        let w: Vec<_> = (0..3).map(|_| pool.enqueue().unwrap()).collect();
        assert_eq!(w.iter().map(|w| w.index()).collect::<Vec<_>>(), [0, 1, 2]);
        pool.cancel(w[1]).unwrap();
        let again = pool.enqueue().unwrap();
        assert_eq!(again.index(), 1, "the freed slot is reused");
        assert_ne!(again, w[1]);
        assert_eq!(pool.claim(w[1]).unwrap_err(), UnknownWaiter);
        assert_waiting(&mut pool, again);
        check(&pool);
    }
}
