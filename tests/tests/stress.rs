//! A bounded stress run: threads (blocking, timed and `try_*` calls) and
//! tokio tasks (with timeouts that cancel acquisitions at arbitrary points)
//! compete for leases on a few keys while a controller keeps re-targeting
//! them. Checks what must hold whatever the interleaving: ids are unique,
//! a held lease is counted, nothing leaks, every waiter is eventually served
//! and idle keys are forgotten.
//!
//! The long run (50 keys, smol too, random cancellation and panics, a fixed
//! time) is in `long_stress.rs`; `close()` under heavy contention is in
//! `close_contention.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use workpool_std::{Counts, Lease, Pool};
use workpool_tests::{with_hang_guard, HANG_GUARD};

const KEYS: u64 = 4;
const ROUNDS: u64 = 500;

/// A small deterministic generator (xorshift), so no dependency is needed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Checks a freshly granted lease and records its id.
fn check(pool: &Pool<u64>, lease: &Lease<u64>, ids: &Mutex<Vec<u64>>) {
    assert!(*lease.key() < KEYS);
    assert!(pool.counts(lease.key()).active >= 1, "a held lease counts");
    ids.lock().unwrap().push(lease.id());
}

#[test]
fn threads_and_tasks_under_retargeting() {
    with_hang_guard("stress", HANG_GUARD, || {
        let pool: Pool<u64> = Pool::new();
        for key in 0..KEYS {
            pool.set(key, 1);
        }
        let ids = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();

        let tasks: Vec<_> = (0..4u64)
            .map(|t| {
                let (pool, ids, done) = (pool.clone(), Arc::clone(&ids), Arc::clone(&done));
                runtime.spawn(async move {
                    let mut rng = Rng(0x9e37_79b9 + t);
                    for _ in 0..ROUNDS {
                        let key = rng.below(KEYS);
                        let limit = Duration::from_micros(rng.below(200));
                        let lease = if rng.below(2) == 0 {
                            tokio::time::timeout(limit, pool.acquire()).await
                        } else {
                            tokio::time::timeout(limit, pool.acquire_key(&key)).await
                        };
                        if let Ok(lease) = lease {
                            let lease = lease.unwrap();
                            check(&pool, &lease, &ids);
                            for _ in 0..3 {
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();

        thread::scope(|s| {
            for t in 0..4u64 {
                let (pool, ids, done) = (&pool, &ids, &done);
                s.spawn(move || {
                    let mut rng = Rng(0x51_7cc1_b727 + t);
                    for _ in 0..ROUNDS {
                        let key = rng.below(KEYS);
                        let lease = match rng.below(4) {
                            0 => pool.acquire_key_blocking(&key).ok(),
                            1 => pool
                                .acquire_timeout(Duration::from_micros(rng.below(200)))
                                .ok(),
                            2 => pool.try_acquire_key(&key).ok(),
                            _ => pool.try_acquire().ok(),
                        };
                        if let Some(lease) = lease {
                            check(pool, &lease, ids);
                            thread::sleep(Duration::from_micros(10));
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
            // The controller: re-target at random while anyone works (a
            // blocking waiter behind target 0 is freed by a later set), then
            // leave every key with room.
            s.spawn(|| {
                let mut rng = Rng(0xdead_beef);
                while done.load(Ordering::SeqCst) < 8 {
                    pool.set(rng.below(KEYS), rng.below(4));
                    thread::sleep(Duration::from_micros(20));
                }
                for key in 0..KEYS {
                    pool.set(key, 2);
                }
            });
        });
        runtime.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
        drop(runtime);

        for key in 0..KEYS {
            assert_eq!(
                pool.counts(&key),
                Counts {
                    target: 2,
                    active: 0
                }
            );
        }
        assert_eq!(pool.waiters(), 0);
        let ids = ids.lock().unwrap();
        assert!(!ids.is_empty());
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "lease ids are unique");
        assert!(ids.iter().all(|&id| id >= 1));

        // Everything is still usable, and idle keys are forgotten.
        let leases: Vec<_> = (0..2 * KEYS).map(|_| pool.try_acquire().unwrap()).collect();
        assert!(pool.try_acquire().is_err());
        drop(leases);
        for key in 0..KEYS {
            pool.set(key, 0);
        }
        assert!(pool.is_empty());
    });
}

/// Holders that leave on `surplus()`: eight of them (tokio tasks and
/// threads) hold a key; a controller lowers its target at random, and the
/// surplus holders race `release_if_surplus`. In every round exactly the
/// surplus leaves (never more: the holders that do not get their lease
/// back), then the target goes back up and they acquire again.
#[test]
fn holders_leave_on_surplus() {
    const HOLDERS: u64 = 8;
    const ROUNDS: u64 = 60;
    with_hang_guard("surplus stress", HANG_GUARD, || {
        let pool: Pool<u64> = Pool::new();
        pool.set(0, HOLDERS);
        let left = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let holder = |pool: Pool<u64>,
                      left: Arc<AtomicUsize>,
                      stop: Arc<std::sync::atomic::AtomicBool>| async move {
            while !stop.load(Ordering::SeqCst) {
                let Ok(mut lease) = pool.acquire_key(&0).await else {
                    return;
                };
                loop {
                    lease.surplus().await;
                    match lease.release_if_surplus() {
                        Ok(()) => {
                            left.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Err(kept) => lease = kept,
                    }
                }
            }
        };
        let tasks: Vec<_> = (0..HOLDERS / 2)
            .map(|_| runtime.spawn(holder(pool.clone(), Arc::clone(&left), Arc::clone(&stop))))
            .collect();
        let threads: Vec<_> = (0..HOLDERS / 2)
            .map(|_| {
                let future = holder(pool.clone(), Arc::clone(&left), Arc::clone(&stop));
                thread::spawn(move || futures_lite::future::block_on(future))
            })
            .collect();
        let mut rng = Rng(0x5eed);
        let settle = |what: &str, done: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            while !done() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "stuck waiting for {what}"
                );
                thread::yield_now();
            }
        };
        for _ in 0..ROUNDS {
            settle("every holder", &|| pool.counts(&0).active == HOLDERS);
            let target = rng.below(HOLDERS);
            let before = left.load(Ordering::SeqCst) as u64;
            pool.set(0, target);
            settle("the surplus to leave", &|| pool.counts(&0).active == target);
            // Let late wake-ups run: nobody else may leave.
            thread::sleep(Duration::from_millis(2));
            assert_eq!(
                left.load(Ordering::SeqCst) as u64 - before,
                HOLDERS - target
            );
            assert_eq!(pool.counts(&0).active, target);
            pool.set(0, HOLDERS);
        }
        stop.store(true, Ordering::SeqCst);
        pool.close();
        pool.set(0, 0); // every holder is surplus: they leave
        for thread in threads {
            thread.join().unwrap();
        }
        runtime.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert_eq!(pool.counts(&0).active, 0);
    });
}
