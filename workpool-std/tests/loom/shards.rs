//! The sharded layout: key operations in one shard alone racing any-key
//! traffic, the lane and the pool-wide limit across shards.

use super::*;

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

/// Two lane-free any-key grants at once: a grant that finds the other's
/// shard locked passes over it to the next shard that offers room, and
/// waits for it if it is the last one offering (with room in both shards,
/// and with room in one). Both always get a lease, never more than the
/// free units, and each key's count comes back.
#[test]
fn two_lane_free_any_key_grants_pass_over_a_busy_shard() {
    for (target_a, target_b) in [(1, 1), (2, 0)] {
        loom::model(move || {
            let pool = pool();
            let (a, b) = keys_in_two_shards(&pool);
            pool.set(a, target_a);
            pool.set(b, target_b);
            let other = {
                let pool = pool.clone();
                thread::spawn(move || pool.try_acquire().map(|l| *l.key()))
            };
            let mine = pool.try_acquire().map(|l| *l.key());
            let theirs = other.join().unwrap();
            // Each took a unit (dropped at once), so both found one.
            assert!(mine.is_ok() && theirs.is_ok(), "{mine:?} {theirs:?}");
            let both = [pool.try_acquire().unwrap(), pool.try_acquire().unwrap()];
            assert!(pool.try_acquire().is_err(), "more than the free units");
            drop(both);
            assert_eq!(pool.counts(&a).active + pool.counts(&b).active, 0);
        });
    }
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
