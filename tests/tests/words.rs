//! A key's room lent to its word (`workpool-std/src/shared/words.rs`): every
//! operation that is not the key's own grant or release sees the room the
//! word holds and the leases it made, as if nothing were lent. Each test
//! first makes a lease under the lock (which lends the rest of the key's
//! room) and a second from the word, then checks one operation.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use workpool_std::{Closed, Counts, Pool, TryAcquireError};

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A pool with key `k` of target `target` and two of its leases out: the
/// first made under the lock, the second from the word.
fn two_out(target: u64) -> (Pool<&'static str>, [workpool_std::Lease<&'static str>; 2]) {
    let pool = Pool::new();
    pool.set("k", target);
    let first = pool.try_acquire_key(&"k").unwrap();
    let second = pool.try_acquire_key(&"k").unwrap();
    (pool, [first, second])
}

#[test]
fn counts_and_stats_see_through_the_word() {
    let (pool, leases) = two_out(5);
    assert_eq!(
        pool.counts(&"k"),
        Counts {
            target: 5,
            active: 2
        }
    );
    assert_eq!(pool.active(), 2);
    assert_eq!(pool.stats().granted, 2);
    let third = pool.try_acquire_key(&"k").unwrap();
    assert_eq!(pool.stats().granted, 3);
    drop(leases);
    drop(third);
    assert_eq!(pool.counts(&"k").active, 0);
    assert_eq!(pool.stats().granted, 3);
}

#[test]
fn ids_stay_consecutive_within_a_key_across_lock_and_word() {
    let (pool, [a, b]) = two_out(3);
    assert_eq!((a.id(), b.id()), (1, 2));
    let c = pool.try_acquire_key(&"k").unwrap();
    assert_eq!(c.id(), 3);
    assert!(pool.try_acquire_key(&"k").is_err(), "full");
    drop(b);
    // `counts` takes the word's units back; the next grant is under the
    // lock and lends again.
    assert_eq!(pool.counts(&"k").active, 2);
    let d = pool.try_acquire_key(&"k").unwrap();
    assert_eq!(d.id(), 4);
    drop((a, c, d));
    let e = pool.try_acquire_key(&"k").unwrap();
    assert_eq!(e.id(), 5);
}

#[test]
fn an_any_key_acquisition_takes_room_the_word_holds() {
    let (pool, leases) = two_out(3);
    // The key's last unit sits in its word; `try_acquire` must find it.
    let any = pool.try_acquire().unwrap();
    assert_eq!(*any.key(), "k");
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    drop((leases, any));
    assert_eq!(pool.counts(&"k").active, 0);
}

#[test]
fn a_limit_counts_the_leases_the_word_made() {
    let (pool, leases) = two_out(4);
    pool.set_limit(Some(2));
    assert!(pool.try_acquire_key(&"k").is_err(), "the limit binds at 2");
    drop(leases);
    let again = pool.try_acquire_key(&"k").unwrap();
    assert_eq!(pool.active(), 1);
    pool.set_limit(None);
    drop(again);
    assert_eq!(pool.active(), 0);
}

#[test]
fn close_fails_grants_the_word_could_have_served() {
    let (pool, leases) = two_out(4);
    pool.close();
    assert_eq!(
        pool.try_acquire_key(&"k").unwrap_err(),
        TryAcquireError::Closed
    );
    assert_eq!(pool.acquire_key_blocking(&"k").unwrap_err(), Closed);
    drop(leases);
    assert_eq!(pool.counts(&"k").active, 0);
}

#[test]
fn a_waiter_is_served_by_a_release_of_a_lease_from_the_word() {
    let (pool, [first, second]) = two_out(2);
    let waker = Waker::from(Arc::new(Count::default()));
    let mut cx = Context::from_waker(&waker);
    let mut waiting = pin!(pool.acquire_key(&"k"));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    drop(second); // made by the word; the waiter took the word's units back
    let Poll::Ready(Ok(served)) = waiting.as_mut().poll(&mut cx) else {
        panic!("the release went past the waiter");
    };
    assert_eq!(served.id(), 3);
    drop((first, served));
    assert_eq!(pool.counts(&"k").active, 0);
}

#[test]
fn drained_and_surplus_fire_after_releases_of_leases_from_the_word() {
    let (pool, [first, second]) = two_out(3);
    let count = Arc::new(Count::default());
    let waker = Waker::from(Arc::clone(&count));
    let mut cx = Context::from_waker(&waker);
    {
        let mut surplus = pin!(second.surplus());
        assert!(surplus.as_mut().poll(&mut cx).is_pending());
        pool.set("k", 1);
        assert!(surplus.as_mut().poll(&mut cx).is_ready());
    }
    let mut drained = pin!(pool.drained(&"k"));
    assert!(drained.as_mut().poll(&mut cx).is_pending());
    drop(first);
    drop(second);
    assert!(count.0.load(Ordering::SeqCst) >= 2);
    assert!(drained.as_mut().poll(&mut cx).is_ready());
}

#[test]
fn a_forgotten_key_gives_its_word_to_another() {
    let pool = Pool::new();
    // More keys than a shard has words, each used and forgotten in turn:
    // every one is served, and the pool empties.
    for round in 0..3u64 {
        for key in 0..64u64 {
            pool.set(key, 2);
            let a = pool.try_acquire_key(&key).unwrap();
            let b = pool.try_acquire_key(&key).unwrap();
            assert!(b.id() > a.id(), "round {round} key {key}");
            drop((a, b));
            pool.set(key, 0);
        }
    }
    assert_eq!(pool.len(), 0);
    assert_eq!(pool.active(), 0);
    assert_eq!(pool.stats().granted, 3 * 64 * 2);
}

#[test]
fn a_key_with_a_huge_target_works_without_a_word() {
    let pool = Pool::new();
    pool.set("big", u64::MAX / 2);
    let leases: Vec<_> = (0..100)
        .map(|_| pool.try_acquire_key(&"big").unwrap())
        .collect();
    assert_eq!(pool.counts(&"big").active, 100);
    drop(leases);
    assert_eq!(pool.counts(&"big").active, 0);
}

#[test]
fn grants_from_the_word_on_many_threads_never_exceed_the_target() {
    let pool = Pool::new();
    pool.set(7u32, 3);
    let peak = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, peak, live) = (pool.clone(), Arc::clone(&peak), Arc::clone(&live));
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..20_000 {
                    if let Ok(lease) = pool.try_acquire_key(&7) {
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        assert!(lease.id() > last, "ids grow on each thread");
                        last = lease.id();
                        live.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(
        pool.counts(&7),
        Counts {
            target: 3,
            active: 0
        }
    );
}

/// Solo words under threads: any-key grants (from the word of the one key
/// in its shard, or under the locks) race keyed grants, releases and a
/// thread that moves the target (each `set` collects the word). Never more
/// leases than the target, never a lease of another key, and every unit
/// back at the end.
#[test]
fn solo_word_grants_on_many_threads_never_exceed_the_target() {
    let pool = Pool::new();
    pool.set(7u32, 3);
    let live = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let setter = {
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut target = 3;
            while !stop.load(Ordering::SeqCst) {
                target = if target == 3 { 2 } else { 3 };
                pool.set(7u32, target);
                std::thread::yield_now();
            }
            pool.set(7u32, 3);
        })
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (pool, live) = (pool.clone(), Arc::clone(&live));
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    let lease = if (i + t) % 4 == 0 {
                        pool.try_acquire_key(&7)
                    } else {
                        pool.try_acquire()
                    };
                    if let Ok(lease) = lease {
                        assert_eq!(*lease.key(), 7);
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 3, "{now} leases of a key of target 3 at most");
                        live.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    setter.join().unwrap();
    assert_eq!(
        pool.counts(&7),
        Counts {
            target: 3,
            active: 0
        }
    );
    let granted = pool.stats().granted;
    assert!(granted > 0);
    // The any-key rotation still works afterwards.
    let held: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    drop(held);
}

/// More words under threads: 400 keys (about 50 per shard, beyond each
/// shard's first words), keyed grants and releases from four threads with
/// leases held across steps, a thread that reads counts (each collects its
/// key's word) and moves targets, and, half-way, one any-key acquisition
/// (from then on the shards lend their blocks' words no more). Never more
/// leases of a key than its target, never a lease of another key, ids
/// unique, and every unit back at the end.
#[test]
fn more_words_on_many_threads_never_exceed_the_targets() {
    const KEYS: u32 = 400;
    let pool = Pool::new();
    for key in 0..KEYS {
        pool.set(key, 2);
    }
    let live: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut key = 0;
            while !stop.load(Ordering::SeqCst) {
                key = (key + 37) % KEYS;
                let counts = pool.counts(&key);
                assert!(counts.active <= 2, "{key}: {counts:?}");
                pool.set(key, 2);
                std::thread::yield_now();
            }
        })
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (pool, live) = (pool.clone(), Arc::clone(&live));
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                let mut held: Vec<workpool_std::Lease<u32>> = Vec::new();
                let mut key = t * 101;
                for step in 0..40_000u32 {
                    key = (key + 7919) % KEYS;
                    if t == 0 && step == 20_000 {
                        drop(pool.try_acquire());
                    }
                    if let Ok(lease) = pool.try_acquire_key(&key) {
                        assert_eq!(*lease.key(), key);
                        let now = live[key as usize].fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "key {key}: {now} leases");
                        ids.push(lease.id());
                        held.push(lease);
                    }
                    if held.len() > 3 || step % 5 == 0 {
                        if let Some(lease) = held.pop() {
                            live[*lease.key() as usize].fetch_sub(1, Ordering::SeqCst);
                            drop(lease);
                        }
                    }
                }
                for lease in held {
                    live[*lease.key() as usize].fetch_sub(1, Ordering::SeqCst);
                }
                ids
            })
        })
        .collect();
    let mut ids: Vec<u64> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let granted = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), granted, "lease ids are unique");
    assert!(granted > 10_000, "most tries found room: {granted}");
    for key in 0..KEYS {
        assert_eq!(
            pool.counts(&key),
            Counts {
                target: 2,
                active: 0
            }
        );
    }
}
