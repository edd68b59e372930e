//! Unit tests for the pool, one sub-module per concern. They drive the core
//! by hand, with no threads, and check its inner structure after each step.

use alloc::vec::Vec;
use core::hash::{BuildHasher, Hash};

use super::Pool;
use crate::lease::{Claim, Counts, Lease, WaiterId};
use crate::waiters::State;
use crate::{Closed, ReleaseError, TryAcquireError, UnknownWaiter};

type P = Pool<&'static str>;

/// Checks the pool's bookkeeping and the contract's invariants: the ready
/// ring holds exactly the groups with room, every queue is linked both ways
/// and counted right, no idle group lingers, and (while open) no waiter
/// waits while a group that could serve it has room.
fn check<K: Hash + Eq + Clone, S: BuildHasher>(pool: &Pool<K, S>) {
    let ring = pool.groups.ring();
    let any = pool.waiters.list(pool.any_queue);
    let mut waiting = any.len();
    let mut tracked = 0;
    for g in 0..pool.groups.capacity() as u32 {
        let Some(group) = pool.groups.get(g) else {
            continue;
        };
        tracked += 1;
        assert!(!group.is_idle(), "idle group {g} is still tracked");
        assert_eq!(pool.find(&group.key), Some(g), "the table lost group {g}");
        assert_eq!(ring.contains(&g), group.has_room(), "ring vs room, {g}");
        let queue = pool.waiters.list(group.queue);
        assert_eq!(queue.len(), group.waiting as usize);
        assert_queue(pool, &queue, g);
        waiting += queue.len();
        if !pool.closed {
            assert!(queue.is_empty() || !group.has_room(), "key waiter left");
        }
    }
    assert_queue(pool, &any, super::NIL);
    assert_eq!(tracked, pool.len());
    assert_eq!(pool.table.len(), tracked);
    assert_eq!(waiting, pool.waiters());
    assert!(any.is_empty() || ring.is_empty(), "any-key waiter left");
    if pool.closed {
        assert_eq!(waiting, 0, "a waiter still waits after close");
    }
    for index in pool.waiters.list(pool.wake) {
        let w = pool.waiters.slot(index);
        assert!(w.in_wake);
        assert!(matches!(w.state, State::Granted(_) | State::Closed));
    }
}

/// Every waiter of `queue` waits for `group`, in arrival order.
fn assert_queue<K: Hash + Eq + Clone, S: BuildHasher>(
    pool: &Pool<K, S>,
    queue: &[u32],
    group: u32,
) {
    let mut last = None;
    for &index in queue {
        let w = pool.waiters.slot(index);
        assert!(matches!(w.state, State::Waiting));
        assert!(!w.in_wake);
        assert_eq!(w.group, group);
        assert!(last < Some(w.seq), "queue out of arrival order");
        last = Some(w.seq);
    }
}

/// Everything `poll_wake` reports right now.
fn drain<K: Hash + Eq + Clone, S: BuildHasher>(pool: &mut Pool<K, S>) -> Vec<WaiterId> {
    core::iter::from_fn(|| pool.poll_wake()).collect()
}

/// The lease `waiter` was granted.
#[track_caller]
fn granted<K: Hash + Eq + Clone, S: BuildHasher>(
    pool: &mut Pool<K, S>,
    waiter: WaiterId,
) -> Lease<K> {
    match pool.claim(waiter) {
        Ok(Claim::Granted(lease)) => lease,
        other => panic!(
            "expected a grant, got {:?}",
            other.map(|c| matches!(c, Claim::Waiting))
        ),
    }
}

#[track_caller]
fn assert_waiting(pool: &mut P, waiter: WaiterId) {
    assert!(matches!(pool.claim(waiter), Ok(Claim::Waiting)));
}

fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

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
        assert_eq!(drain(&mut pool), [w1, w2, w4]);
        assert_eq!(pool.waiting(&"b"), 1);
        assert_eq!(pool.waiters(), 2);
        pool.set("b", 2);
        assert_eq!(drain(&mut pool), [w3, w5]);
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

    /// A copy of `lease`, as a buggy adapter might forge one.
    fn forge(lease: &Lease<&'static str>) -> Lease<&'static str> {
        Lease {
            key: lease.key,
            ..*lease
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
        let other_slot = Lease {
            group: 7,
            ..forge(&lease)
        };
        let other_generation = Lease {
            generation: lease.generation + 1,
            ..forge(&lease)
        };
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

mod wake {
    use super::*;

    #[test]
    fn decisions_are_reported_oldest_first() {
        let mut pool = P::new();
        let w1 = pool.enqueue_key(&"b").unwrap();
        let w2 = pool.enqueue_key(&"a").unwrap();
        let w3 = pool.enqueue().unwrap();
        pool.set("a", 1); // w2
        pool.set("b", 2); // w1, then w3
        assert_eq!(drain(&mut pool), [w2, w1, w3]);
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
