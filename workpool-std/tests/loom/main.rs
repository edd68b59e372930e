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

/// A release on key `a` (whose group is linked, so its shard alone would
/// do) races an any-key waiter that finds every key full and queues. The
/// waiter is never stranded beside room: either its scan found the room, or
/// its scan unlinked `a` first and the release went through the lane and
/// served it.
#[test]
fn a_release_racing_an_any_key_enqueue_strands_no_waiter() {
    loom::model(|| {
        let pool = pool();
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        pool.set(b, 1);
        let held_a = pool.try_acquire_key(&a).unwrap();
        let _held_b = pool.try_acquire_key(&b).unwrap();
        let any = {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.acquire_blocking().unwrap();
                *lease.key()
            })
        };
        let releaser = thread::spawn(move || drop(held_a));
        releaser.join().unwrap();
        assert_eq!(any.join().unwrap(), a, "only a's unit was free");
        assert_eq!(pool.counts(&a).active, 0);
        assert_eq!(pool.waiters(), 0);
    });
}

/// The same race with a newcomer: a queued any-key waiter is older than a
/// `try_acquire_key` on `a` that races the release of `a`'s lease, so the
/// newcomer never gets it (no barging through the shard-only path).
#[test]
fn a_key_newcomer_never_barges_past_a_queued_any_key_waiter() {
    loom::model(|| {
        let pool = pool();
        let (a, _) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        let held = pool.try_acquire_key(&a).unwrap();
        let mut queued = Box::pin(pool.acquire());
        assert!(poll_once(&mut queued).is_pending());
        let newcomer = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire_key(&a).is_err())
        };
        let releaser = thread::spawn(move || drop(held));
        releaser.join().unwrap();
        assert!(
            newcomer.join().unwrap(),
            "a newcomer took the waiter's unit"
        );
        let lease = block_on(queued).unwrap();
        assert_eq!((lease.id(), *lease.key()), (2, a));
    });
}

/// Any-key grants without the lane (`shared/lane.rs`, `Offers`): an
/// any-key newcomer looks at the shards whose bit says they offer room,
/// with their locks alone, while a release in a full shard (listed, so its
/// lock alone links the group again and sets the bit) races it, and an
/// any-key grant in the other shard empties that one. Whatever the bits
/// said when the newcomer looked (they are hints), it never takes more
/// than the free units, and the room is never stranded: a later
/// `try_acquire` finds it (through the lane if the bits are stale).
#[test]
fn a_lane_free_any_key_grant_racing_a_release_strands_no_room() {
    loom::model(|| {
        let pool = pool();
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        pool.set(b, 1);
        // `a` full: its shard's ring unlinks it when an any-key grant looks.
        let held_a = pool.try_acquire_key(&a).unwrap();
        let held_b = pool.try_acquire().unwrap();
        assert_eq!(*held_b.key(), b);
        let newcomer = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire().ok().map(|l| *l.key()))
        };
        let releaser = thread::spawn(move || drop(held_a));
        releaser.join().unwrap();
        let got = newcomer.join().unwrap();
        match got {
            Some(key) => assert_eq!(key, a, "only a's unit was free"),
            None => {
                let lease = pool.try_acquire().expect("a's unit is stranded");
                assert_eq!(*lease.key(), a);
            }
        }
        assert_eq!(pool.counts(&a).active, 0);
        drop(held_b);
        assert_eq!(pool.counts(&b).active, 0);
    });
}

/// A release in an unlisted shard (every shard was unlisted by an any-key
/// waiter's scan) races that waiter and a lane-free any-key newcomer: the
/// release takes the lane and serves the waiter, and the newcomer, whose
/// shard-only path finds no listed shard, never barges past it.
#[test]
fn a_lane_free_any_key_newcomer_never_barges_past_an_any_key_waiter() {
    loom::model(|| {
        let pool = pool();
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        pool.set(b, 1);
        let held_a = pool.try_acquire_key(&a).unwrap();
        let _held_b = pool.try_acquire_key(&b).unwrap();
        let mut queued = Box::pin(pool.acquire());
        assert!(poll_once(&mut queued).is_pending());
        let newcomer = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire().is_err())
        };
        let releaser = thread::spawn(move || drop(held_a));
        releaser.join().unwrap();
        assert!(
            newcomer.join().unwrap(),
            "an any-key newcomer took the waiter's unit"
        );
        let lease = block_on(queued).unwrap();
        assert_eq!(*lease.key(), a);
    });
}

/// Two keys in different shards, each cycled by its own thread with a
/// waiter queued behind it: neither grant ever exceeds its key's target and
/// both waiters are served.
#[test]
fn two_keys_in_two_shards_cycle_independently() {
    loom::model(|| {
        let pool = pool();
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        pool.set(b, 1);
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|key| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let first = pool.try_acquire_key(&key).unwrap();
                    let waiter = {
                        let pool = pool.clone();
                        thread::spawn(move || {
                            let lease = pool.acquire_key_blocking(&key).unwrap();
                            assert_eq!(pool.counts(&key).active, 1);
                            lease.id()
                        })
                    };
                    drop(first);
                    waiter.join().unwrap()
                })
            })
            .collect();
        let mut ids: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 2, "lease ids are unique across shards");
        for key in [a, b] {
            assert_eq!(
                pool.counts(&key),
                Counts {
                    target: 1,
                    active: 0
                }
            );
        }
    });
}

/// `set` raising a key (a new one, so through the lane) while an any-key
/// waiter queues: whichever goes first, the waiter is served from the key.
/// A full key in the same shard makes the waiter's scan lock that shard
/// while it holds the lane, so `set` must take the lane before the shard.
#[test]
fn set_raising_a_key_while_an_any_key_waiter_queues() {
    loom::model(|| {
        let pool = pool();
        let k = "k";
        let full = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .into_iter()
            .find(|j| pool.shard_of(j) == pool.shard_of(&k))
            .expect("eight keys over two shards");
        pool.set(full, 1);
        let _held = pool.try_acquire_key(&full).unwrap();
        let any = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_blocking().map(|l| *l.key()))
        };
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || pool.set(k, 1))
        };
        setter.join().unwrap();
        assert_eq!(any.join().unwrap(), Ok(k));
        assert_eq!(
            pool.counts(&k),
            Counts {
                target: 1,
                active: 0
            }
        );
    });
}

/// `close` with an any-key waiter and a key waiter queued, and nothing else
/// happening: both are woken with `Closed` by the close itself.
#[test]
fn close_wakes_queued_any_key_and_key_waiters() {
    loom::model(|| {
        let pool = pool();
        let (_, b) = keys_in_two_shards(&pool);
        let any = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_blocking().map(|l| l.id()))
        };
        let keyed = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_key_blocking(&b).map(|l| l.id()))
        };
        pool.close();
        assert_eq!(any.join().unwrap(), Err(Closed));
        assert_eq!(keyed.join().unwrap(), Err(Closed));
        assert_eq!(pool.waiters(), 0);
    });
}

/// `close` racing an any-key waiter's enqueue and a release on another
/// shard's key: the waiter ends with a lease or `Closed`, never hangs, and
/// every count returns to zero.
#[test]
fn close_racing_an_any_key_enqueue_and_a_release() {
    loom::model(|| {
        let pool = pool();
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        let held = pool.try_acquire_key(&a).unwrap();
        let any = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_blocking().map(|l| *l.key()))
        };
        let closer = {
            let pool = pool.clone();
            thread::spawn(move || pool.close())
        };
        drop(held);
        closer.join().unwrap();
        let outcome = any.join().unwrap();
        assert!(outcome == Ok(a) || outcome == Err(Closed), "{outcome:?}");
        assert!(pool.acquire_key_blocking(&b).is_err());
        assert_eq!(pool.counts(&a).active, 0);
        assert_eq!(pool.waiters(), 0);
    });
}

/// An any-key waiter (the lane) is granted a unit of key `a` (a shard) and
/// cancelled while a key waiter of `a` queues: the cancelled grant goes
/// back through the lane to `a`'s shard and serves the key waiter.
#[test]
fn a_cancel_racing_a_hand_off_across_lane_and_shard() {
    loom::model(|| {
        let pool = pool();
        pool.set("a", 1);
        let held = pool.try_acquire_key(&"a").unwrap();
        let mut any = pool.leases();
        assert!(poll_next_once(&mut any).is_pending());
        let keyed = {
            let pool = pool.clone();
            thread::spawn(move || pool.acquire_key_blocking(&"a").map(|l| l.id()))
        };
        let canceller = thread::spawn(move || drop(any));
        drop(held); // lease 2 goes to the any-key waiter
        canceller.join().unwrap();
        let outcome = keyed.join().unwrap();
        assert!(matches!(outcome, Ok(2 | 3)), "{outcome:?}");
        assert_eq!(
            pool.counts(&"a"),
            Counts {
                target: 1,
                active: 0
            }
        );
        assert_eq!(pool.waiters(), 0);
    });
}

/// The pool-wide limit: a release at key `a` races a waiter of key `b` (in
/// another shard) that only the limit holds back (`b` has room). Whether the
/// waiter queued before or after the release, it is served, and the pool
/// never has more live leases than the limit.
#[test]
fn a_release_racing_a_waiter_the_limit_holds_back() {
    loom::model(|| {
        let pool = pool();
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 1);
        pool.set(b, 1);
        pool.set_limit(Some(1));
        let held = pool.try_acquire_key(&a).unwrap();
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.acquire_key_blocking(&b).unwrap();
                assert_eq!(pool.active(), 1, "past the limit");
                *lease.key()
            })
        };
        let releaser = thread::spawn(move || drop(held));
        releaser.join().unwrap();
        assert_eq!(waiter.join().unwrap(), b);
        assert_eq!(pool.active(), 0);
        assert_eq!(pool.waiters(), 0);
    });
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

/// Two threads make the first leases of one shard at once: exactly one of
/// them takes the shard's count (the flag's compare-exchange), and the
/// last release gives it up.
#[test]
fn two_first_leases_of_a_shard_take_one_count() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let spawn = |pool: &Pool<&'static str, Fixed>| {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.try_acquire_key(&"k").unwrap();
                drop(pool);
                drop(lease);
            })
        };
        let (one, two) = (spawn(&pool), spawn(&pool));
        drop(pool);
        one.join().unwrap();
        two.join().unwrap();
    });
}

/// Words (`shared/words.rs`): two grants race for the one unit a key's
/// word holds. Exactly one gets it, with an id of its own; the other finds
/// the key full, and the counts come back to 0.
#[test]
fn two_fast_grants_race_for_one_lent_unit() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        // Granted under the lock; the other unit is lent to the word.
        let first = pool.try_acquire_key(&"k").unwrap();
        let spawn = |pool: Pool<&'static str, Fixed>| {
            thread::spawn(move || pool.try_acquire_key(&"k").ok())
        };
        let one = spawn(pool.clone());
        let two = spawn(pool.clone());
        let (one, two) = (one.join().unwrap(), two.join().unwrap());
        let won: Vec<_> = one.into_iter().chain(two).collect();
        assert_eq!(won.len(), 1, "one unit, one grant");
        assert!(won[0].id() > first.id(), "ids grow within a key");
        assert_eq!(pool.counts(&"k").active, 2);
        drop(won);
        drop(first);
        assert_eq!(pool.counts(&"k").active, 0);
    });
}

/// Words: a lease released into its key's word races a waiter that queues
/// for the key (and takes the word's units back first). The unit is never
/// lost in the word: the waiter is always served (loom reports a waiter
/// left waiting as a deadlock).
#[test]
fn a_fast_release_racing_a_queuing_waiter_reaches_it() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let first = pool.try_acquire_key(&"k").unwrap();
        let second = pool.try_acquire_key(&"k").unwrap(); // from the word
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.acquire_key_blocking(&"k").unwrap();
                lease.id()
            })
        };
        let releaser = thread::spawn(move || drop(second));
        releaser.join().unwrap();
        let id = waiter.join().unwrap();
        assert!(id > first.id());
        drop(first);
        assert_eq!(pool.counts(&"k").active, 0);
        assert_eq!(pool.stats().granted, 3);
    });
}

/// Words: a grant from the word races a `set` (which takes the word's
/// units back, marks it slow, and a later grant lends again). Every lease
/// has its own id, no more than the target are out, and every grant is
/// counted once.
#[test]
fn a_fast_grant_racing_a_set_keeps_ids_and_counts() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 3);
        let first = pool.try_acquire_key(&"k").unwrap();
        let grant = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire_key(&"k").ok())
        };
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.set("k", 3);
                pool.try_acquire_key(&"k").ok()
            })
        };
        let a = grant.join().unwrap().expect("room for it");
        let b = setter.join().unwrap().expect("room for it");
        let ids = [first.id(), a.id(), b.id()];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert_eq!(pool.counts(&"k").active, 3);
        assert_eq!(pool.stats().granted, 3);
        drop((first, a, b));
        assert_eq!(pool.counts(&"k").active, 0);
    });
}

/// The hand-off cells (`shared/handoff.rs`): a key waiter takes the
/// outcome its releaser publishes with an atomic load, racing the
/// publication itself. The waiter always gets the lease (no lost wake-up),
/// and loom's cell checks fail the model if the releaser touches the cell
/// after publishing, or the waiter reads it before the publication.
#[test]
fn a_key_waiter_takes_its_hand_off_while_it_is_published() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire_key(&"k").unwrap();
        let mut waiter = Box::pin(pool.acquire_key_owned("k"));
        assert!(poll_once(&mut waiter).is_pending());
        let releaser = thread::spawn(move || drop(held));
        let lease = block_on(waiter.as_mut()).unwrap();
        assert_eq!(lease.id(), 2);
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
    loom::model(|| {
        let pool = pool();
        pool.set("k", 1);
        let held = pool.try_acquire_key(&"k").unwrap();
        let mut first = Box::pin(pool.acquire_key_owned("k"));
        let mut second = Box::pin(pool.acquire_key_owned("k"));
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

mod budgets;
