//! The any-key stock under contention: a pool that stocks (any-key grants
//! from every key's lent word, see `docs/ARCHITECTURE.md`, "The any-key
//! stock") never lets a key hold more than its target, hands out unique
//! ids, loses no unit and leaves nobody waiting, while threads mix any-key
//! and keyed grants, `counts` collects the words, a limit that does not
//! bind comes and goes, and tokio tasks wait for any key.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use workpool_std::{Counts, Lease, Pool};
use workpool_tests::chaos::Rng;
use workpool_tests::{with_hang_guard, HANG_GUARD};

const KEYS: u64 = 16;
const TARGET: u64 = 2;
const ROUNDS: u64 = 20_000;

/// Holders of each key right now, as the test counts them.
struct Holders([AtomicU64; KEYS as usize]);

impl Holders {
    fn new() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    /// Counts `lease` in, checks its key stays within its target, and
    /// records its id.
    fn enter(&self, lease: &Lease<u64>, ids: &Mutex<Vec<u64>>) {
        let key = *lease.key();
        assert!(key < KEYS);
        let now = self.0[key as usize].fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            now <= TARGET,
            "key {key} has {now} holders, target {TARGET}"
        );
        ids.lock().unwrap().push(lease.id());
    }

    fn leave(&self, lease: Lease<u64>) {
        self.0[*lease.key() as usize].fetch_sub(1, Ordering::SeqCst);
        drop(lease);
    }
}

/// What must hold once everything is back: every key at `TARGET` with
/// nothing held, nobody waiting, each grant counted once, ids unique.
fn check_the_end(pool: &Pool<u64>, granted: &AtomicUsize, ids: &Mutex<Vec<u64>>) {
    for key in 0..KEYS {
        assert_eq!(
            pool.counts(&key),
            Counts {
                target: TARGET,
                active: 0
            },
            "key {key}"
        );
    }
    assert_eq!(pool.waiters(), 0);
    let granted = granted.load(Ordering::SeqCst) as u64;
    assert_eq!(pool.stats().granted, granted, "every grant counted once");
    let ids = ids.lock().unwrap();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "lease ids are unique");
}

#[test]
fn stocked_grants_keep_targets_ids_and_units() {
    with_hang_guard("stock", HANG_GUARD, || {
        let pool: Pool<u64> = Pool::new();
        for key in 0..KEYS {
            pool.set(key, TARGET);
        }
        pool.start_stocking();
        let holders = Arc::new(Holders::new());
        let ids = Arc::new(Mutex::new(Vec::new()));
        let granted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));

        // Tokio tasks wait for any key (so the lane's pass collects the
        // words now and then) while the threads below take and release.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let (pool, holders, ids, granted) = (
                    pool.clone(),
                    Arc::clone(&holders),
                    Arc::clone(&ids),
                    Arc::clone(&granted),
                );
                runtime.spawn(async move {
                    for _ in 0..ROUNDS / 20 {
                        let lease = pool.acquire().await.unwrap();
                        holders.enter(&lease, &ids);
                        granted.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        holders.leave(lease);
                    }
                })
            })
            .collect();

        thread::scope(|s| {
            for t in 0..3u64 {
                let (pool, holders, ids, granted) = (&pool, &holders, &ids, &granted);
                s.spawn(move || {
                    let mut rng = Rng::new(0x5eed_0000 + t);
                    let mut held = Vec::new();
                    for _ in 0..ROUNDS {
                        let lease = match rng.below(8) {
                            0 => pool.try_acquire_key(&rng.below(KEYS)).ok(),
                            _ => pool.try_acquire().ok(),
                        };
                        if let Some(lease) = lease {
                            holders.enter(&lease, ids);
                            granted.fetch_add(1, Ordering::SeqCst);
                            held.push(lease);
                        }
                        // Hold up to three at once, releasing in a mixed
                        // order.
                        if held.len() > 3 || (!held.is_empty() && rng.below(2) == 0) {
                            let at = rng.below(held.len() as u64) as usize;
                            holders.leave(held.swap_remove(at));
                        }
                    }
                    for lease in held {
                        holders.leave(lease);
                    }
                });
            }
            // Collects words (`counts`) and makes a limit that does not
            // bind come and go (lends out of budgets), while others work.
            s.spawn(|| {
                let mut rng = Rng::new(0xc0ffee);
                while !stop.load(Ordering::SeqCst) {
                    let counts = pool.counts(&rng.below(KEYS));
                    assert!(counts.active <= TARGET, "{counts:?}");
                    match rng.below(16) {
                        0 => pool.set_limit(Some(KEYS * TARGET * 4)),
                        1 => pool.set_limit(None),
                        _ => {}
                    }
                    thread::yield_now();
                }
                pool.set_limit(None);
            });
            runtime.block_on(async {
                for task in tasks {
                    task.await.unwrap();
                }
            });
            stop.store(true, Ordering::SeqCst);
        });
        drop(runtime);
        check_the_end(&pool, &granted, &ids);
    });
}

/// A stocking pool while a controller re-targets keys at random, 0
/// included (keys are forgotten and set again, their words freed and
/// reassigned), and moves a limit and the budgets' share: every lease
/// still goes back without an error, ids stay unique, and at the end
/// nothing is held or waiting.
#[test]
fn stocked_grants_survive_retargeting_to_zero_and_back() {
    with_hang_guard("stock retargeting", HANG_GUARD, || {
        let pool: Pool<u64> = Pool::new();
        for key in 0..KEYS {
            pool.set(key, TARGET);
        }
        pool.start_stocking();
        let ids = Mutex::new(Vec::new());
        let granted = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let workers: Vec<_> = (0..3u64)
                .map(|t| {
                    let (pool, ids, granted) = (&pool, &ids, &granted);
                    s.spawn(move || {
                        let mut rng = Rng::new(0xab5e_0000 + t);
                        let mut held: Vec<Lease<u64>> = Vec::new();
                        for _ in 0..ROUNDS {
                            let lease = match rng.below(8) {
                                0 => pool.try_acquire_key(&rng.below(KEYS)).ok(),
                                _ => pool.try_acquire().ok(),
                            };
                            if let Some(lease) = lease {
                                ids.lock().unwrap().push(lease.id());
                                granted.fetch_add(1, Ordering::SeqCst);
                                held.push(lease);
                            }
                            if held.len() > 3 || (!held.is_empty() && rng.below(2) == 0) {
                                let at = rng.below(held.len() as u64) as usize;
                                drop(held.swap_remove(at));
                            }
                        }
                    })
                })
                .collect();
            s.spawn(|| {
                let mut rng = Rng::new(0x7a26_e7ed);
                while !stop.load(Ordering::SeqCst) {
                    pool.set(rng.below(KEYS), rng.below(TARGET + 2));
                    match rng.below(32) {
                        0 => pool.set_limit(Some(KEYS * 2)),
                        1 => pool.set_limit(None),
                        2 => pool.set_budget_share(if rng.below(2) == 0 { 1 } else { 18 }),
                        _ => {}
                    }
                    thread::yield_now();
                }
                pool.set_limit(None);
                for key in 0..KEYS {
                    pool.set(key, TARGET);
                }
            });
            for worker in workers {
                worker.join().unwrap();
            }
            stop.store(true, Ordering::SeqCst);
        });
        check_the_end(&pool, &granted, &ids);
    });
}
