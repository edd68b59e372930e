//! `workpool-std` against its peers, measured in the same run: tokio's and
//! async-lock's semaphores, alone and as the hand-built
//! `Mutex<HashMap<K, Arc<Semaphore>>>` a keyed pool replaces.
//!
//! - `uncontended/try`, `uncontended/async`: one key (one semaphore) with
//!   room, acquire then release, on one thread.
//! - `keyed/try/N`, `keyed/async/N`: N keys of target 1, cycling through
//!   them in a scattered order.
//! - `contended/1key`, `contended/16keys`: 64 tasks on a two-thread tokio
//!   runtime, each doing acquire, `yield_now`, release, `ROUNDS` times.
//!
//! Async cases that never wait are driven by `futures_lite::future::block_on`
//! around the whole timed loop, the same for every contender.
//!
//! ```sh
//! cargo bench -p workpool-std --bench std -- --warm-up-time 1 --measurement-time 2
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use futures_lite::future::block_on;
use workpool_std::Pool;

/// Tasks in the contended cases.
const TASKS: u64 = 64;
/// Acquire/release cycles per task in the contended cases.
const ROUNDS: u64 = 100;
/// Target (permits) per key in the contended cases.
const CONTENDED_TARGET: u64 = 4;
/// Key counts of the keyed cases.
const KEY_COUNTS: [u64; 3] = [1, 1_000, 100_000];
/// A prime coprime to every key count, so key order jumps around memory.
const STRIDE: u64 = 40_503;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    uncontended(&mut c);
    keyed(&mut c);
    contended(&mut c);
    c.final_summary();
}

// --------------------------------------------------------------- uncontended

fn uncontended(c: &mut Criterion) {
    let pool = Pool::new();
    pool.set(0u64, 1);
    let tokio_sem = tokio::sync::Semaphore::new(1);
    let async_lock_sem = async_lock::Semaphore::new(1);

    let mut group = c.benchmark_group("uncontended/try");
    group.bench_function("workpool", |b| {
        b.iter(|| drop(black_box(pool.try_acquire().unwrap())));
    });
    group.bench_function("tokio", |b| {
        b.iter(|| drop(black_box(tokio_sem.try_acquire().unwrap())));
    });
    group.bench_function("async-lock", |b| {
        b.iter(|| drop(black_box(async_lock_sem.try_acquire().unwrap())));
    });
    group.finish();

    let mut group = c.benchmark_group("uncontended/async");
    group.bench_function("workpool", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(pool.acquire().await.unwrap()));
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(tokio_sem.acquire().await.unwrap()));
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("async-lock", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(async_lock_sem.acquire().await));
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

// --------------------------------------------------------------------- keyed

/// The hand-built keyed limiter a workpool replaces.
struct SemaphoreMap<S> {
    map: Mutex<HashMap<u64, Arc<S>>>,
}

impl<S> SemaphoreMap<S> {
    fn new(keys: u64, make: impl Fn() -> S) -> Self {
        Self {
            map: Mutex::new((0..keys).map(|k| (k, Arc::new(make()))).collect()),
        }
    }

    /// Lock, look up, clone the `Arc`, unlock.
    fn get(&self, key: &u64) -> Arc<S> {
        Arc::clone(&self.map.lock().unwrap()[key])
    }
}

/// The next key of the scattered cycle over `0..keys`.
fn next_key(key: u64, keys: u64) -> u64 {
    (key + STRIDE) % keys
}

fn keyed(c: &mut Criterion) {
    for keys in KEY_COUNTS {
        let pool = Pool::new();
        for k in 0..keys {
            pool.set(k, 1);
        }
        let tokio_map = SemaphoreMap::new(keys, || tokio::sync::Semaphore::new(1));
        let async_lock_map = SemaphoreMap::new(keys, || async_lock::Semaphore::new(1));

        let mut group = c.benchmark_group("keyed/try");
        group.bench_with_input(BenchmarkId::new("workpool", keys), &keys, |b, &n| {
            let mut k = 0;
            b.iter(|| {
                k = next_key(k, n);
                drop(black_box(pool.try_acquire_key(&k).unwrap()));
            });
        });
        group.bench_with_input(BenchmarkId::new("tokio-map", keys), &keys, |b, &n| {
            let mut k = 0;
            b.iter(|| {
                k = next_key(k, n);
                drop(black_box(tokio_map.get(&k).try_acquire_owned().unwrap()));
            });
        });
        group.bench_with_input(BenchmarkId::new("async-lock-map", keys), &keys, |b, &n| {
            let mut k = 0;
            b.iter(|| {
                k = next_key(k, n);
                drop(black_box(async_lock_map.get(&k).try_acquire_arc().unwrap()));
            });
        });
        group.finish();

        let mut group = c.benchmark_group("keyed/async");
        group.bench_with_input(BenchmarkId::new("workpool", keys), &keys, |b, &n| {
            let mut k = 0;
            b.iter_custom(|iters| {
                block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        k = next_key(k, n);
                        drop(black_box(pool.acquire_key(&k).await.unwrap()));
                    }
                    start.elapsed()
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("tokio-map", keys), &keys, |b, &n| {
            let mut k = 0;
            b.iter_custom(|iters| {
                block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        k = next_key(k, n);
                        let sem = tokio_map.get(&k);
                        drop(black_box(sem.acquire_owned().await.unwrap()));
                    }
                    start.elapsed()
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("async-lock-map", keys), &keys, |b, &n| {
            let mut k = 0;
            b.iter_custom(|iters| {
                block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        k = next_key(k, n);
                        let sem = async_lock_map.get(&k);
                        drop(black_box(sem.acquire_arc().await));
                    }
                    start.elapsed()
                })
            });
        });
        group.finish();
    }
}

// ----------------------------------------------------------------- contended

/// Spawns `TASKS` tasks, task `i` running `work(i)`, and waits for all.
fn run_tasks<F, Fut>(rt: &tokio::runtime::Runtime, work: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS).map(|i| tokio::spawn(work(i))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    start.elapsed()
}

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for keys in [1u64, 16] {
        let name = if keys == 1 {
            "contended/1key"
        } else {
            "contended/16keys"
        };
        let pool = Pool::new();
        for k in 0..keys {
            pool.set(k, CONTENDED_TARGET);
        }
        let tokio_sems: Arc<Vec<_>> = Arc::new(
            (0..keys)
                .map(|_| tokio::sync::Semaphore::new(CONTENDED_TARGET as usize))
                .collect(),
        );
        let async_lock_sems: Arc<Vec<_>> = Arc::new(
            (0..keys)
                .map(|_| async_lock::Semaphore::new(CONTENDED_TARGET as usize))
                .collect(),
        );

        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(TASKS * ROUNDS));
        group.sample_size(20);
        group.bench_function("workpool-any", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run_tasks(&rt, |_| {
                            let pool = pool.clone();
                            async move {
                                for _ in 0..ROUNDS {
                                    let lease = pool.acquire().await.unwrap();
                                    tokio::task::yield_now().await;
                                    drop(lease);
                                }
                            }
                        })
                    })
                    .sum()
            });
        });
        group.bench_function("workpool-key", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run_tasks(&rt, |i| {
                            let pool = pool.clone();
                            async move {
                                let key = i % keys;
                                for _ in 0..ROUNDS {
                                    let lease = pool.acquire_key(&key).await.unwrap();
                                    tokio::task::yield_now().await;
                                    drop(lease);
                                }
                            }
                        })
                    })
                    .sum()
            });
        });
        group.bench_function("tokio", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run_tasks(&rt, |i| {
                            let sems = Arc::clone(&tokio_sems);
                            async move {
                                let sem = &sems[(i % keys) as usize];
                                for _ in 0..ROUNDS {
                                    let permit = sem.acquire().await.unwrap();
                                    tokio::task::yield_now().await;
                                    drop(permit);
                                }
                            }
                        })
                    })
                    .sum()
            });
        });
        group.bench_function("async-lock", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run_tasks(&rt, |i| {
                            let sems = Arc::clone(&async_lock_sems);
                            async move {
                                let sem = &sems[(i % keys) as usize];
                                for _ in 0..ROUNDS {
                                    let guard = sem.acquire().await;
                                    tokio::task::yield_now().await;
                                    drop(guard);
                                }
                            }
                        })
                    })
                    .sum()
            });
        });
        group.finish();
    }
}
