//! The timed cases: S1 uncontended, S2 keyed, S3 contended.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::runtime::Runtime;
use workpool_std::Pool;

use crate::harness::{
    contender, timed, timed_async, Bench, Contender, Row, ASYNC_LOCK, TOKIO, WP_ANY, WP_KEY,
};
use crate::report::keys_label;

/// Key counts of the keyed case; the table shows [`TABLE_KEYS`], the plot all.
pub(crate) const KEY_COUNTS: [u64; 6] = [1, 10, 100, 1_000, 10_000, 100_000];
/// Key counts the keyed rows of the table show.
pub(crate) const TABLE_KEYS: [u64; 3] = [1, 1_000, 100_000];
/// Step of the scattered key walk: a prime, coprime to every key count.
const STRIDE: u64 = 104_729;
/// Tasks in the contended case.
const TASKS: u64 = 64;
/// Target (permits) per key in the contended case.
const CONTENDED_TARGET: u64 = 4;
/// Key layouts of the contended case.
pub(crate) const CONTENDED_KEYS: [u64; 2] = [1, 16];

// ------------------------------------------------------------ S1 uncontended

pub(crate) fn uncontended(bench: &mut Bench) -> (Row, Row) {
    let pool = Pool::new();
    pool.set(0u64, 1);
    let tokio_sem = tokio::sync::Semaphore::new(1);
    let async_lock_sem = async_lock::Semaphore::new(1);

    let sync = bench.measure(
        "S1 uncontended, `try_acquire`",
        1,
        vec![
            contender(WP_ANY, |n| {
                timed(n, || drop(black_box(pool.try_acquire().unwrap())))
            }),
            contender(WP_KEY, |n| {
                timed(n, || drop(black_box(pool.try_acquire_key(&0).unwrap())))
            }),
            contender(TOKIO, |n| {
                timed(n, || drop(black_box(tokio_sem.try_acquire().unwrap())))
            }),
            contender(ASYNC_LOCK, |n| {
                timed(n, || drop(black_box(async_lock_sem.try_acquire().unwrap())))
            }),
        ],
    );
    let async_ = bench.measure(
        "S1 uncontended, `acquire().await`",
        1,
        vec![
            contender(WP_ANY, |n| {
                timed_async!(n, drop(black_box(pool.acquire().await.unwrap())))
            }),
            contender(WP_KEY, |n| {
                timed_async!(n, drop(black_box(pool.acquire_key(&0).await.unwrap())))
            }),
            contender(TOKIO, |n| {
                timed_async!(n, drop(black_box(tokio_sem.acquire().await.unwrap())))
            }),
            contender(ASYNC_LOCK, |n| {
                timed_async!(n, drop(black_box(async_lock_sem.acquire().await)))
            }),
        ],
    );
    (sync, async_)
}

// ------------------------------------------------------------------ S2 keyed

/// The hand-built keyed limiter a workpool replaces.
pub(crate) struct SemaphoreMap<S> {
    map: Mutex<HashMap<u64, Arc<S>>>,
}

impl<S> SemaphoreMap<S> {
    pub(crate) fn new(keys: u64, make: impl Fn() -> S) -> Self {
        let mut map = HashMap::new();
        for k in 0..keys {
            map.insert(k, Arc::new(make()));
        }
        Self {
            map: Mutex::new(map),
        }
    }

    /// Lock, look up, clone the `Arc`, unlock.
    pub(crate) fn get(&self, key: &u64) -> Arc<S> {
        Arc::clone(&self.map.lock().unwrap()[key])
    }
}

pub(crate) fn keyed_pool(keys: u64, target: u64) -> Pool<u64> {
    let pool = Pool::new();
    for k in 0..keys {
        pool.set(k, target);
    }
    pool
}

/// The scattered walk over `0..keys`, starting at 0.
struct Walk {
    key: u64,
    step: u64,
    keys: u64,
}

impl Walk {
    fn new(keys: u64) -> Self {
        Self {
            key: 0,
            step: STRIDE % keys,
            keys,
        }
    }

    fn next(&mut self) -> u64 {
        self.key += self.step;
        if self.key >= self.keys {
            self.key -= self.keys;
        }
        self.key
    }
}

/// The keyed rows, `(keys, try row, async row)`.
pub(crate) fn keyed(bench: &mut Bench) -> Vec<(u64, Row, Row)> {
    let mut rows = Vec::new();
    for keys in KEY_COUNTS {
        let pool = keyed_pool(keys, 1);
        let tokio_map = SemaphoreMap::new(keys, || tokio::sync::Semaphore::new(1));
        let async_lock_map = SemaphoreMap::new(keys, || async_lock::Semaphore::new(1));
        let (mut w1, mut w2, mut w3) = (Walk::new(keys), Walk::new(keys), Walk::new(keys));
        let sync = bench.measure(
            &format!("S2 keyed `try`, {}", keys_label(keys)),
            1,
            vec![
                contender(WP_KEY, |n| {
                    timed(n, || {
                        drop(black_box(pool.try_acquire_key(&w1.next()).unwrap()));
                    })
                }),
                contender(TOKIO, |n| {
                    timed(n, || {
                        let sem = tokio_map.get(&w2.next());
                        drop(black_box(sem.try_acquire_owned().unwrap()));
                    })
                }),
                contender(ASYNC_LOCK, |n| {
                    timed(n, || {
                        let sem = async_lock_map.get(&w3.next());
                        drop(black_box(sem.try_acquire_arc().unwrap()));
                    })
                }),
            ],
        );
        let (mut w1, mut w2, mut w3) = (Walk::new(keys), Walk::new(keys), Walk::new(keys));
        let async_ = bench.measure(
            &format!("S2 keyed async, {}", keys_label(keys)),
            1,
            vec![
                contender(WP_KEY, |n| {
                    timed_async!(n, {
                        let key = w1.next();
                        drop(black_box(pool.acquire_key(&key).await.unwrap()));
                    })
                }),
                contender(TOKIO, |n| {
                    timed_async!(n, {
                        let sem = tokio_map.get(&w2.next());
                        drop(black_box(sem.acquire_owned().await.unwrap()));
                    })
                }),
                contender(ASYNC_LOCK, |n| {
                    timed_async!(n, {
                        let sem = async_lock_map.get(&w3.next());
                        drop(black_box(sem.acquire_arc().await));
                    })
                }),
            ],
        );
        rows.push((keys, sync, async_));
    }
    rows
}

// -------------------------------------------------------------- S3 contended

/// A contender that spawns [`TASKS`] tasks, task `i` running `task(i, n)`
/// (`n` cycles), and waits for all of them.
pub(crate) fn tasks<'a, F, Fut>(rt: &'a Runtime, column: usize, task: F) -> Contender<'a>
where
    F: Fn(u64, u64) -> Fut + 'a,
    Fut: Future<Output = ()> + Send + 'static,
{
    contender(column, move |n| {
        let start = Instant::now();
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS).map(|i| tokio::spawn(task(i, n))).collect();
            for handle in handles {
                handle.await.unwrap();
            }
        });
        start.elapsed()
    })
}

pub(crate) fn contended(bench: &mut Bench) -> Vec<Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for keys in CONTENDED_KEYS {
        let pool = keyed_pool(keys, CONTENDED_TARGET);
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
        let case = format!("S3 contended, {}", keys_label(keys));
        rows.push(bench.measure(
            &case,
            TASKS,
            vec![
                tasks(&rt, WP_ANY, |_, n| {
                    let pool = pool.clone();
                    async move {
                        for _ in 0..n {
                            let lease = pool.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(lease);
                        }
                    }
                }),
                tasks(&rt, WP_KEY, |i, n| {
                    let pool = pool.clone();
                    async move {
                        let key = i % keys;
                        for _ in 0..n {
                            let lease = pool.acquire_key(&key).await.unwrap();
                            tokio::task::yield_now().await;
                            drop(lease);
                        }
                    }
                }),
                tasks(&rt, TOKIO, |i, n| {
                    let sems = Arc::clone(&tokio_sems);
                    async move {
                        let sem = &sems[(i % keys) as usize];
                        for _ in 0..n {
                            let permit = sem.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(permit);
                        }
                    }
                }),
                tasks(&rt, ASYNC_LOCK, |i, n| {
                    let sems = Arc::clone(&async_lock_sems);
                    async move {
                        let sem = &sems[(i % keys) as usize];
                        for _ in 0..n {
                            let guard = sem.acquire().await;
                            tokio::task::yield_now().await;
                            drop(guard);
                        }
                    }
                }),
            ],
        ));
    }
    rows
}

/// S3 again with 16 keys, but the peers as one semaphore holding the same
/// total (16 x 4 = 64 permits): what any-key traffic costs against the
/// simplest structure that offers the same capacity.
pub(crate) fn pooled(bench: &mut Bench) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let keys = 16;
    let total = (keys * CONTENDED_TARGET) as usize;
    let pool = keyed_pool(keys, CONTENDED_TARGET);
    let tokio_sem = Arc::new(tokio::sync::Semaphore::new(total));
    let async_lock_sem = Arc::new(async_lock::Semaphore::new(total));
    bench.measure(
        &format!("S3 contended, any of {keys} keys vs one semaphore of {total}"),
        TASKS,
        vec![
            tasks(&rt, WP_ANY, |_, n| {
                let pool = pool.clone();
                async move {
                    for _ in 0..n {
                        let lease = pool.acquire().await.unwrap();
                        tokio::task::yield_now().await;
                        drop(lease);
                    }
                }
            }),
            tasks(&rt, TOKIO, |_, n| {
                let sem = Arc::clone(&tokio_sem);
                async move {
                    for _ in 0..n {
                        let permit = sem.acquire().await.unwrap();
                        tokio::task::yield_now().await;
                        drop(permit);
                    }
                }
            }),
            tasks(&rt, ASYNC_LOCK, |_, n| {
                let sem = Arc::clone(&async_lock_sem);
                async move {
                    for _ in 0..n {
                        let guard = sem.acquire().await;
                        tokio::task::yield_now().await;
                        drop(guard);
                    }
                }
            }),
        ],
    )
}

/// S3 with 16 keys again, under a pool-wide limit: one that never binds
/// (1,000), and one that does (32, of the 64 the keys allow). The peers are
/// the per-key semaphores; for the binding limit with a global semaphore of
/// 32 taken first, what users build by hand today (it holds a global permit
/// while it waits for its key, which the pool never does).
pub(crate) fn limited(bench: &mut Bench) -> Vec<Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let keys = 16;
    let mut rows = Vec::new();
    for limit in [1_000, 32] {
        let binds = limit < keys * CONTENDED_TARGET;
        let pool = keyed_pool(keys, CONTENDED_TARGET);
        pool.set_limit(Some(limit));
        let tokio_sems: Arc<Vec<_>> = Arc::new(
            (0..keys)
                .map(|_| tokio::sync::Semaphore::new(CONTENDED_TARGET as usize))
                .collect(),
        );
        let tokio_global = Arc::new(tokio::sync::Semaphore::new(limit as usize));
        let async_lock_sems: Arc<Vec<_>> = Arc::new(
            (0..keys)
                .map(|_| async_lock::Semaphore::new(CONTENDED_TARGET as usize))
                .collect(),
        );
        let async_lock_global = Arc::new(async_lock::Semaphore::new(limit as usize));
        let case = if binds {
            format!("S3 contended, {keys} keys, a limit of {limit} that binds (peers: + a global semaphore)")
        } else {
            format!("S3 contended, {keys} keys, a limit of {limit} that does not bind")
        };
        rows.push(bench.measure(
            &case,
            TASKS,
            vec![
                tasks(&rt, WP_ANY, |_, n| {
                    let pool = pool.clone();
                    async move {
                        for _ in 0..n {
                            let lease = pool.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(lease);
                        }
                    }
                }),
                tasks(&rt, WP_KEY, |i, n| {
                    let pool = pool.clone();
                    async move {
                        let key = i % keys;
                        for _ in 0..n {
                            let lease = pool.acquire_key(&key).await.unwrap();
                            tokio::task::yield_now().await;
                            drop(lease);
                        }
                    }
                }),
                tasks(&rt, TOKIO, |i, n| {
                    let (sems, global) = (Arc::clone(&tokio_sems), Arc::clone(&tokio_global));
                    async move {
                        let sem = &sems[(i % keys) as usize];
                        for _ in 0..n {
                            let total = if binds {
                                Some(global.acquire().await.unwrap())
                            } else {
                                None
                            };
                            let permit = sem.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(permit);
                            drop(total);
                        }
                    }
                }),
                tasks(&rt, ASYNC_LOCK, |i, n| {
                    let (sems, global) =
                        (Arc::clone(&async_lock_sems), Arc::clone(&async_lock_global));
                    async move {
                        let sem = &sems[(i % keys) as usize];
                        for _ in 0..n {
                            let total = if binds {
                                Some(global.acquire().await)
                            } else {
                                None
                            };
                            let guard = sem.acquire().await;
                            tokio::task::yield_now().await;
                            drop(guard);
                            drop(total);
                        }
                    }
                }),
            ],
        ));
    }
    rows
}

// ------------------------------------------------------------ S3 weighted

/// Units per weighted lease in [`weighted`].
const WEIGHT: u64 = 4;

/// S3 with one key whose leases hold [`WEIGHT`] units each (target
/// `WEIGHT` x [`CONTENDED_TARGET`], so as many holders at once as in S3),
/// against tokio's `acquire_many` on one semaphore of the same size: what
/// the weighted path (always under the key's lock) costs.
pub(crate) fn weighted(bench: &mut Bench) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let target = WEIGHT * CONTENDED_TARGET;
    let pool = keyed_pool(1, target);
    let tokio_sem = Arc::new(tokio::sync::Semaphore::new(target as usize));
    bench.measure(
        &format!("S3 weighted, 1 key, `acquire_key_many({WEIGHT})` / `acquire_many({WEIGHT})`"),
        TASKS,
        vec![
            tasks(&rt, WP_KEY, |_, n| {
                let pool = pool.clone();
                async move {
                    for _ in 0..n {
                        let lease = pool.acquire_key_many(&0, WEIGHT).await.unwrap();
                        tokio::task::yield_now().await;
                        drop(lease);
                    }
                }
            }),
            tasks(&rt, TOKIO, |_, n| {
                let sem = Arc::clone(&tokio_sem);
                async move {
                    for _ in 0..n {
                        let permit = sem.acquire_many(WEIGHT as u32).await.unwrap();
                        tokio::task::yield_now().await;
                        drop(permit);
                    }
                }
            }),
        ],
    )
}
