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
