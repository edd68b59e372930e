//! loom models of the std adapter's locking, hand-off and wake-up protocol.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p workpool-std --test loom --release`
//! (set `LOOM_MAX_PREEMPTIONS` to bound the search). Under `cfg(loom)` the
//! crate's mutex and `Arc` and event-listener's internals are loom's, so every
//! interleaving of the pool's lock, the listeners' registration and their
//! notifications is explored.
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use loom::future::block_on;
use loom::thread;
use workpool_std::{Closed, Counts, PollPool, Pool};

/// A hasher that is the same in every run. loom replays a model many
/// times and needs every run to take the same locks: with the default
/// (randomly seeded) hasher a key would land in a different shard each run.
type Fixed = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// A pool whose keys land in the same shards in every run (see [`Fixed`]).
fn pool() -> Pool<&'static str, Fixed> {
    Pool::with_hasher(Fixed::default())
}

/// Polls `fut` once with a waker that does nothing; the future stays queued
/// and a later `block_on` re-polls it with a real waker.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx)
}

/// Polls a stream once, the same way.
fn poll_next_once<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    let mut cx = Context::from_waker(Waker::noop());
    std::pin::Pin::new(stream).poll_next(&mut cx)
}

/// A release racing a waiting thread: the waiter is always woken and served
/// (no lost wake-up), and never two leases at once.
#[test]
fn release_wakes_blocked_waiter() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire().unwrap();
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.acquire_blocking().unwrap();
                assert_eq!(pool.counts(&"k").active, 1);
                lease.id()
            })
        };
        let releaser = thread::spawn(move || drop(held));
        releaser.join().unwrap();
        assert_eq!(waiter.join().unwrap(), 2);
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 1,
                active: 0
            }
        );
    });
}

/// A release racing a newcomer's `try_acquire` while an older waiter is
/// queued: the newcomer never barges, the older waiter gets the lease.
#[test]
fn no_barging_past_a_queued_waiter() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire().unwrap();
        let mut queued = Box::pin(pool.acquire());
        assert!(poll_once(&mut queued).is_pending());

        let releaser = thread::spawn(move || drop(held));
        let newcomer = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire().is_err())
        };
        releaser.join().unwrap();
        assert!(
            newcomer.join().unwrap(),
            "a newcomer took a queued waiter's lease"
        );
        let lease = block_on(queued).unwrap();
        assert_eq!(lease.id(), 2);
    });
}

/// Cancelling a waiter races the grant of capacity to that same waiter: the
/// lease always passes on to the next waiter, nothing leaks.
#[test]
fn cancel_racing_grant_passes_the_lease_on() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire().unwrap();
        // An owned waiter (the lease stream) so another thread can drop it.
        let mut first = pool.leases();
        assert!(poll_next_once(&mut first).is_pending());
        let second = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_blocking().map(|l| l.id()))
        };
        let canceller = thread::spawn(move || drop(first));
        drop(held);
        canceller.join().unwrap();
        // Lease 2 went to `first`; if `second` queued in time it inherited
        // it, otherwise it came back to the key and `second` took lease 3.
        let second = second.join().unwrap();
        assert!(matches!(second, Ok(2 | 3)), "{second:?}");
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 1,
                active: 0
            }
        );
        assert_eq!(pool.waiters(), 0);
    });
}

/// `close` racing a blocked waiter and a release: the waiter always finishes,
/// with a lease or `Closed`, and every count returns to zero.
#[test]
fn close_racing_waiters_and_releases() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire().unwrap();
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_blocking().map(|l| l.id()))
        };
        let closer = {
            let pool = pool.clone();
            thread::spawn(move || pool.close())
        };
        drop(held);
        closer.join().unwrap();
        let outcome = waiter.join().unwrap();
        assert!(matches!(outcome, Ok(2) | Err(Closed)), "{outcome:?}");
        assert!(pool.try_acquire().is_err());
        assert_eq!(pool.counts(&"k").active, 0);
    });
}

/// `set` raising and lowering a target races acquisitions: no grant ever
/// exceeds the target in force when it was made.
#[test]
fn set_racing_acquires_respects_targets() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.set("k", 2);
                pool.set("k", 0);
            })
        };
        let taker = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut held = Vec::new();
                for _ in 0..2 {
                    if let Ok(lease) = pool.try_acquire_key(&"k") {
                        held.push(lease);
                    }
                }
                held.len()
            })
        };
        setter.join().unwrap();
        let taken = taker.join().unwrap();
        assert!(taken <= 2);
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 0,
                active: 0
            }
        );
        assert!(pool.is_empty());
    });
}

/// An any-key waiter and an older one-key waiter compete for one freed unit:
/// the older one always gets it, the other is served by the next release.
#[test]
fn any_and_key_waiters_compete_oldest_first() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire().unwrap();
        let mut keyed = pin!(pool.acquire_key(&"k"));
        assert!(poll_once(&mut keyed).is_pending());
        let any = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_blocking().map(|l| l.id()))
        };
        let releaser = thread::spawn(move || drop(held));
        releaser.join().unwrap();
        let first = block_on(keyed.as_mut()).unwrap();
        assert_eq!(first.id(), 2, "the older key waiter is served first");
        drop(first);
        let second = any.join().unwrap();
        // The any-key waiter may have queued before or after the release,
        // but it is always served, and only once the key waiter is done.
        assert!(matches!(second, Ok(3)), "{second:?}");
    });
}

/// A waker that owns a lease: dropping the waker releases the lease.
struct LeaseWaker(
    #[allow(dead_code)] std::sync::Mutex<Option<workpool_std::Lease<&'static str, Fixed>>>,
);

impl std::task::Wake for LeaseWaker {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// A pending acquisition is re-polled with a new waker while another thread
/// releases: the replaced waker owned a lease, so dropping it releases that
/// lease into the same pool during the hand-off. Nothing deadlocks (loom
/// reports a deadlock as a failure), the waiter is served and every count
/// returns to zero.
#[test]
fn a_replaced_waker_releasing_a_lease_during_a_hand_off() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let first = pool.try_acquire().unwrap();
        let second = pool.try_acquire().unwrap();
        let mut waiting = Box::pin(pool.acquire_key(&"k"));
        let owning = Waker::from(std::sync::Arc::new(LeaseWaker(std::sync::Mutex::new(
            Some(second),
        ))));
        assert!(waiting
            .as_mut()
            .poll(&mut Context::from_waker(&owning))
            .is_pending());
        drop(owning); // the pool holds the only handle now
        let releaser = thread::spawn(move || drop(first));
        // Re-polling replaces (and drops) the owning waker; the lease it
        // releases may serve this very poll.
        let lease = match poll_once(&mut waiting) {
            Poll::Ready(outcome) => outcome.unwrap(),
            Poll::Pending => block_on(waiting.as_mut()).unwrap(),
        };
        releaser.join().unwrap();
        assert_eq!(pool.counts(&"k").active, 1);
        drop(lease);
        assert_eq!(
            pool.counts(&"k"),
            Counts {
                target: 2,
                active: 0
            }
        );
    });
}

/// The last `Pool` handle is dropped on one thread while an owned future
/// and a lease stream wait on two others: the future always ends with
/// `Closed` and the stream with `None` (a waiter left pending for ever is
/// a deadlock to loom), the lease out stays valid and can still be
/// released, and nothing leaks (loom fails a model that leaves an `Arc`
/// alive).
#[test]
fn dropping_the_last_handle_ends_owned_futures_and_streams() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire().unwrap();
        let owned = pool.acquire_key_owned("k");
        let mut leases = pool.leases();
        let waiter = thread::spawn(move || block_on(owned).map(|l| l.id()));
        let streamer = thread::spawn(move || {
            let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut leases).poll_next(cx));
            block_on(next).map(|l| l.id())
        });
        drop(pool);
        assert_eq!(waiter.join().unwrap(), Err(Closed));
        assert_eq!(streamer.join().unwrap(), None);
        assert_eq!((held.id(), *held.key()), (1, "k"));
        drop(held);
    });
}

/// Two handles are dropped at once on two threads while a `PollPool` waits
/// on the main thread: whichever drop is the last closes the pool, so the
/// poller always ends with `Closed`, and nothing leaks.
#[test]
fn racing_handle_drops_close_the_pool_once() {
    loom::model(|| {
        let pool = pool();
        let other = pool.clone();
        let mut poller = PollPool::new(&pool);
        assert!(poll_once(&mut std::future::poll_fn(|cx| poller.poll_acquire(cx))).is_pending());
        let first = thread::spawn(move || drop(pool));
        let second = thread::spawn(move || drop(other));
        let outcome = block_on(std::future::poll_fn(|cx| poller.poll_acquire(cx)));
        assert!(matches!(outcome, Err(Closed)), "{outcome:?}");
        first.join().unwrap();
        second.join().unwrap();
    });
}

// ------------------------------------------------- the sharded layout's protocol
//
// Under loom the pool has two shards. A key whose group is linked in the
// ready ring is served in its shard alone; the models below race that fast
// path against the any-key traffic that unlinks groups, and check that no
// waiter is stranded, nobody barges and every count comes back.

/// Two keys that live in different shards (so they share no lock).
fn keys_in_two_shards(pool: &Pool<&'static str, Fixed>) -> (&'static str, &'static str) {
    let candidates = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let a = candidates[0];
    let b = candidates
        .iter()
        .copied()
        .find(|k| pool.shard_of(k) != pool.shard_of(&a))
        .expect("ten keys over two shards");
    (a, b)
}
/// `set_all` moves a key's capacity to a key of another shard, the new key
/// listed first. An observer that got a lease from the new key has seen the
/// new targets, so the old key has no room for it either: applied one by
/// one, there is a moment when both have room.
#[test]
fn set_all_is_never_seen_half_applied() {
    loom::model(|| {
        let pool = pool();
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || pool.set_all([(b, 1), (a, 0)]))
        };
        if let Ok(lease) = pool.try_acquire_key(&b) {
            assert!(
                pool.try_acquire_key(&a).is_err(),
                "a had room after b got it"
            );
            drop(lease);
        }
        setter.join().unwrap();
        assert_eq!(pool.counts(&a).target + pool.counts(&b).target, 1);
    });
}

/// Holders race `release_if_surplus` while `set` lowers their key's target:
/// the number that leave never exceeds the surplus, and once the target is
/// down every surplus holder that tries leaves.
#[test]
fn release_if_surplus_races_set_and_another_holder() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let one = pool.try_acquire_key(&"k").unwrap();
        let two = pool.try_acquire_key(&"k").unwrap();
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || pool.set("k", 1))
        };
        let other = thread::spawn(move || two.release_if_surplus().err());
        let mine = one.release_if_surplus().err();
        setter.join().unwrap();
        let theirs = other.join().unwrap();
        let kept = usize::from(mine.is_some()) + usize::from(theirs.is_some());
        // At most one leaves (the surplus is 1 once the target is 1, and 0
        // before); whoever tried after the cut found it.
        assert!(kept >= 1, "both left: the surplus was 1 at most");
        assert_eq!(pool.counts(&"k").active, kept as u64);
        drop((mine, theirs));
    });
}

/// `surplus()` waiting on one thread while `set` shrinks the key on
/// another, and `drained()` waiting while the last lease goes: the watcher
/// registers its listener and looks again before it sleeps, so neither
/// wake-up is lost (loom reports a lost one as a deadlock).
#[test]
fn surplus_and_drained_wake_ups_are_not_lost() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let lease = pool.try_acquire_key(&"k").unwrap();
        let holder = {
            let pool = pool.clone();
            thread::spawn(move || {
                block_on(lease.surplus());
                assert!(lease.release_if_surplus().is_ok());
                drop(pool);
            })
        };
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || pool.set("k", 0))
        };
        block_on(pool.drained(&"k"));
        setter.join().unwrap();
        holder.join().unwrap();
        assert!(pool.is_empty());
    });
}

/// The shards' hold on the pool's memory (`shared/keepalive.rs`): leases of
/// one shard released on two threads while the last handle goes. The pool
/// is freed exactly once, after the last lease (loom reports a leaked or
/// twice-freed `Arc`), and each lease can still reach the pool on its drop.
#[test]
fn the_last_leases_and_the_last_handle_race() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let a = pool.try_acquire_key(&"k").unwrap();
        let b = pool.try_acquire_key(&"k").unwrap();
        let one = thread::spawn(move || drop(a));
        let two = thread::spawn(move || {
            assert_eq!(*b.key(), "k");
            drop(b);
        });
        drop(pool);
        one.join().unwrap();
        two.join().unwrap();
    });
}

/// A lease made by a hand-off (the waiter takes the shard's count) races
/// the release of the shard's other lease (which may give the count up)
/// and the last handle's drop: the count is taken and given up in pairs.
#[test]
fn a_hand_off_lease_and_a_release_keep_the_pool_alive() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire_key(&"k").unwrap();
        let waiter = {
            let fut = pool.acquire_key_owned("k");
            thread::spawn(move || {
                if let Ok(lease) = block_on(fut) {
                    assert_eq!(*lease.key(), "k");
                }
            })
        };
        let releaser = thread::spawn(move || drop(held));
        releaser.join().unwrap();
        drop(pool);
        waiter.join().unwrap();
    });
}

mod budgets;
mod handoff;
mod shards;
mod stock;
mod weights;
mod words;
