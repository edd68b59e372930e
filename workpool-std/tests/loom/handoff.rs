//! The hand-off cells: a releaser publishes a waiter's outcome (a key
//! waiter's in its shard's cells, an any-key waiter's in the lane's), the
//! waiter takes it with an atomic load.

use std::pin::Pin;

use super::*;

type TestPool = Pool<&'static str, Fixed>;

/// A waiter of either kind, as the models below take it.
type Waiting =
    Pin<Box<dyn Future<Output = Result<workpool_std::Lease<&'static str, Fixed>, Closed>> + Send>>;

/// The hand-off cells (`shared/handoff.rs`): a key waiter takes the
/// outcome its releaser publishes with an atomic load, racing the
/// publication itself. The waiter always gets the lease (no lost wake-up),
/// and loom's cell checks fail the model if the releaser touches the cell
/// after publishing, or the waiter reads it before the publication.
#[test]
fn a_key_waiter_takes_its_hand_off_while_it_is_published() {
    takes_its_hand_off_while_it_is_published(|pool| Box::pin(pool.acquire_key_owned("k")));
}

/// The same race for an any-key waiter, whose outcome goes through the
/// lane's cells: the releaser (holding the lane and the shard) claims it
/// with the released lease's key and publishes it. The model fails if the
/// waiter's claim under the locks does not look in its cell first.
#[test]
fn an_any_key_waiter_takes_its_hand_off_while_it_is_published() {
    takes_its_hand_off_while_it_is_published(|pool| Box::pin(pool.acquire_owned()));
}

/// What the two models above race: one waiter of `acquire`'s kind, one
/// release of a lease of key `"k"` (target 1).
fn takes_its_hand_off_while_it_is_published(acquire: fn(&TestPool) -> Waiting) {
    loom::model(move || {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire_key(&"k").unwrap();
        let mut waiter = acquire(&pool);
        assert!(poll_once(&mut waiter).is_pending());
        let releaser = thread::spawn(move || drop(held));
        let lease = block_on(waiter.as_mut()).unwrap();
        assert_eq!((lease.id(), *lease.key()), (2, "k"));
        releaser.join().unwrap();
        drop(lease);
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 1,
                active: 0
            }
        );
    });
}

/// A hand-off cell is written again only after its waiter took what it
/// held: waiters 0 and 2 share a cell (two cells per shard under loom).
/// Waiter 0's outcome sits in the cell while, on another thread, waiter 1
/// takes its own and releases it, which hands off to waiter 2: the
/// releaser must find the cell taken (and leave waiter 2's lease in the
/// core) or wait for waiter 0 to have read it. loom fails the model if
/// waiter 0 lets the cell go before it is done reading it.
#[test]
fn a_hand_off_cell_is_reused_only_after_its_waiter_took_it() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let (h1, h2) = (
            pool.try_acquire_key(&"k").unwrap(),
            pool.try_acquire_key(&"k").unwrap(),
        );
        let mut w0 = Box::pin(pool.acquire_key_owned("k"));
        let mut w1 = Box::pin(pool.acquire_key_owned("k"));
        let mut w2 = Box::pin(pool.acquire_key_owned("k"));
        for w in [&mut w0, &mut w1, &mut w2] {
            assert!(poll_once(w).is_pending());
        }
        drop(h1); // published for w0, in cell 0
        drop(h2); // published for w1, in cell 1
        let other = thread::spawn(move || {
            let lease = block_on(w1.as_mut()).unwrap();
            assert_eq!(lease.id(), 4);
            drop(lease); // to w2, whose cell is w0's
        });
        let first = block_on(w0.as_mut()).unwrap();
        assert_eq!(first.id(), 3);
        other.join().unwrap();
        let last = block_on(w2.as_mut()).unwrap();
        assert_eq!(last.id(), 5);
        drop((first, last));
        assert_eq!(pool.counts(&"k").active, 0);
    });
}

/// A key waiter dropped while its outcome is handed off: dropped before
/// the hand-off, it cancels with the core and the lease goes straight to
/// the next waiter; dropped after it, it takes the published lease out of
/// its cell and gives it back, which serves the next waiter. Either way
/// nothing leaks, and the stats count one cancel.
#[test]
fn a_key_waiter_dropped_during_its_hand_off_gives_the_lease_back() {
    dropped_during_its_hand_off_gives_the_lease_back(|pool| Box::pin(pool.acquire_key_owned("k")));
}

/// The same for an any-key waiter: after the hand-off it takes the
/// published lease (with its key) out of the lane's cell and gives it
/// back. The model fails if the cancel does not look in the cell first.
#[test]
fn an_any_key_waiter_dropped_during_its_hand_off_gives_the_lease_back() {
    dropped_during_its_hand_off_gives_the_lease_back(|pool| Box::pin(pool.acquire_owned()));
}

/// What the two models above race: a release, the first of two waiters of
/// `acquire`'s kind dropped, the second served.
fn dropped_during_its_hand_off_gives_the_lease_back(acquire: fn(&TestPool) -> Waiting) {
    loom::model(move || {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire_key(&"k").unwrap();
        let mut first = acquire(&pool);
        let mut second = acquire(&pool);
        assert!(poll_once(&mut first).is_pending());
        assert!(poll_once(&mut second).is_pending());
        let releaser = thread::spawn(move || drop(held));
        let canceller = thread::spawn(move || drop(first));
        let lease = block_on(second.as_mut()).unwrap();
        releaser.join().unwrap();
        canceller.join().unwrap();
        assert!(matches!(lease.id(), 2 | 3), "{}", lease.id());
        drop(lease);
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 1,
                active: 0
            }
        );
        let stats = pool.stats();
        assert_eq!((stats.granted, stats.cancelled), (2, 1), "{stats:?}");
    });
}
