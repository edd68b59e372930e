//! Weighted leases: one release serving several waiters, and a heavy head
//! cancelled during a release.

use super::*;

/// Weighted: one release of three units serves a one-unit and a two-unit
/// waiter, racing both waiters' polls on two threads: each served waiter
/// is woken by that release (no lost wake-up for the second one it
/// serves), both leases count from the release on, and nothing leaks.
#[test]
fn a_release_of_three_units_serves_a_one_and_a_two_unit_waiter() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 3);
        let held = pool.try_acquire_key_many(&"k", 3).unwrap();
        let mut one = Box::pin(pool.acquire_key_owned("k"));
        let mut two = Box::pin(pool.acquire_key_many_owned("k", 2));
        assert!(poll_once(&mut one).is_pending());
        assert!(poll_once(&mut two).is_pending());
        let releaser = thread::spawn(move || drop(held));
        let second = thread::spawn(move || block_on(two.as_mut()).map(|l| (l.units(), l)));
        let first = block_on(one.as_mut()).unwrap();
        releaser.join().unwrap();
        let (units, second) = second.join().unwrap().unwrap();
        assert_eq!((first.units(), units), (1, 2));
        assert!(first.id() < second.id(), "served in queue order");
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 3,
                active: 3
            }
        );
        drop((first, second));
        assert_eq!(pool.counts(&"k").active, 0);
    });
}

/// Weighted: the head waiter of a key asks for four units, more than the
/// target, and holds back two one-unit waiters behind it; it is cancelled
/// on one thread while a release runs on another. Whatever the order,
/// cancelling the head serves the waiters behind it at once (the release's
/// unit and the two that were free), and nothing leaks.
#[test]
fn a_heavy_head_cancelled_during_a_release_serves_the_waiters_behind_it() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 3);
        let held = pool.try_acquire_key(&"k").unwrap();
        let mut head = Box::pin(pool.acquire_key_many_owned("k", 4));
        let mut a = Box::pin(pool.acquire_key_owned("k"));
        let mut b = Box::pin(pool.acquire_key_owned("k"));
        assert!(poll_once(&mut head).is_pending());
        assert!(poll_once(&mut a).is_pending());
        assert!(poll_once(&mut b).is_pending());
        let canceller = thread::spawn(move || drop(head));
        let releaser = thread::spawn(move || drop(held));
        let a = block_on(a.as_mut()).unwrap();
        let b = block_on(b.as_mut()).unwrap();
        canceller.join().unwrap();
        releaser.join().unwrap();
        assert_eq!((a.units(), b.units()), (1, 1));
        assert!(pool.counts(&"k").active <= 3);
        drop((a, b));
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 3,
                active: 0
            }
        );
        let stats = pool.stats();
        assert_eq!(stats.cancelled, 1, "{stats:?}");
    });
}
