//! `close()` in the middle of heavy contention: threads blocked in every
//! kind of blocking call and tasks on tokio and smol all come back with
//! `Closed` within the hang guard, and nothing is left active or waiting.
//! No timing assertion beyond the hang guard; the time from `close()` to the
//! last return is printed (`--nocapture`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use workpool_std::{AcquireTimeoutError, Closed, Counts, Pool, TryAcquireError};
use workpool_tests::chaos::Rng;
use workpool_tests::{with_hang_guard, HANG_GUARD};

/// Keys, each with target 1, in the close test.
const CLOSE_KEYS: u64 = 8;
/// The close test's hang guard: every waiter must be back within it.
const CLOSE_GUARD: Duration = Duration::from_secs(20);

/// How a contender of the close test ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// With `Closed` (or the lease stream's end), after this many leases.
    Closed(u64),
    /// A timed acquisition timed out: it should have been told `Closed`.
    TimedOut,
}

/// Takes and returns leases until the pool closes, holding each briefly.
fn close_thread(pool: &Pool<u64>, granted: &AtomicU64, t: u64) -> Ended {
    let mut rng = Rng::new(t);
    let mut leases = 0;
    loop {
        let key = rng.below(CLOSE_KEYS);
        let outcome = match t % 4 {
            0 => pool.acquire_key_blocking(&key).map_err(Into::into),
            1 => pool.acquire_blocking().map_err(Into::into),
            2 => pool.acquire_key_timeout(&key, HANG_GUARD),
            _ => pool.acquire_timeout(HANG_GUARD),
        };
        match outcome {
            Ok(lease) => {
                leases += 1;
                granted.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_micros(rng.below(300)));
                drop(lease);
            }
            Err(AcquireTimeoutError::Closed) => return Ended::Closed(leases),
            Err(AcquireTimeoutError::Timeout) => return Ended::TimedOut,
        }
    }
}

/// The same on an executor, with `acquire` and `acquire_key`.
async fn close_task(pool: Pool<u64>, granted: Arc<AtomicU64>, t: u64) -> Ended {
    let mut rng = Rng::new(t);
    let mut leases = 0;
    loop {
        let key = rng.below(CLOSE_KEYS);
        let outcome = if t % 2 == 0 {
            pool.acquire().await
        } else {
            pool.acquire_key(&key).await
        };
        match outcome {
            Ok(lease) => {
                leases += 1;
                granted.fetch_add(1, Ordering::SeqCst);
                for _ in 0..1 + rng.below(8) {
                    futures_lite::future::yield_now().await;
                }
                drop(lease);
            }
            Err(Closed) => return Ended::Closed(leases),
        }
    }
}

/// A lease stream consumer, until the stream ends.
async fn close_stream(pool: Pool<u64>, granted: Arc<AtomicU64>) -> Ended {
    use futures_lite::StreamExt;
    let mut leases = pool.leases();
    let mut n = 0;
    while let Some(lease) = leases.next().await {
        n += 1;
        granted.fetch_add(1, Ordering::SeqCst);
        futures_lite::future::yield_now().await;
        drop(lease);
    }
    Ended::Closed(n)
}

/// `close()` in the middle of heavy contention: threads blocked in
/// `acquire_blocking`, `acquire_key_blocking` and the timed calls (with a
/// limit far beyond the guard), and tasks on tokio and smol in `acquire`,
/// `acquire_key` and a lease stream, keep taking and returning leases on 8
/// keys of target 1, with many of them queued, when the pool is closed.
/// Every one of them must come back with `Closed` (or the stream's end)
/// within the hang guard, none with a timeout, and nothing may be left
/// active or waiting.
#[test]
fn close_under_heavy_contention() {
    with_hang_guard("close under contention", CLOSE_GUARD, || {
        let pool: Pool<u64> = Pool::new();
        for key in 0..CLOSE_KEYS {
            pool.set(key, 1);
        }
        let granted = Arc::new(AtomicU64::new(0));
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let smol = async_executor::Executor::new();
        let mut tokio_tasks: Vec<_> = (0..6)
            .map(|t| tokio_rt.spawn(close_task(pool.clone(), Arc::clone(&granted), t)))
            .collect();
        tokio_tasks.push(tokio_rt.spawn(close_stream(pool.clone(), Arc::clone(&granted))));
        let smol_tasks: Vec<_> = (0..6)
            .map(|t| smol.spawn(close_task(pool.clone(), Arc::clone(&granted), 10 + t)))
            .collect();

        let (ended, closed_for) = thread::scope(|s| {
            let smol_runner = s.spawn(|| {
                futures_lite::future::block_on(smol.run(async {
                    let mut ended = Vec::new();
                    for task in smol_tasks {
                        ended.push(task.await);
                    }
                    ended
                }))
            });
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let (pool, granted) = (&pool, &granted);
                    s.spawn(move || close_thread(pool, granted, 20 + t))
                })
                .collect();

            // Heavy contention: leases flowing and many acquisitions queued.
            while granted.load(Ordering::SeqCst) < 500 || pool.waiters() < 8 {
                thread::sleep(Duration::from_micros(200));
            }
            let waiting = pool.waiters();
            pool.close();
            let closed_at = Instant::now();
            println!(
                "close under contention: closed with {waiting} waiting after {} leases",
                granted.load(Ordering::SeqCst)
            );

            let mut ended: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            ended.extend(tokio_rt.block_on(async {
                let mut ended = Vec::new();
                for task in tokio_tasks {
                    ended.push(task.await.unwrap());
                }
                ended
            }));
            ended.extend(smol_runner.join().unwrap());
            (ended, closed_at.elapsed())
        });
        println!(
            "  all {} contenders returned {:.1} ms after close, {} leases in all",
            ended.len(),
            closed_for.as_secs_f64() * 1e3,
            granted.load(Ordering::SeqCst)
        );

        assert_eq!(ended.len(), 8 + 7 + 6);
        for end in &ended {
            assert!(matches!(end, Ended::Closed(_)), "{end:?}");
        }
        assert!(pool.is_closed());
        assert_eq!(pool.waiters(), 0);
        assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
        for key in 0..CLOSE_KEYS {
            assert_eq!(
                pool.counts(&key),
                Counts {
                    target: 1,
                    active: 0
                }
            );
            pool.set(key, 0);
        }
        assert!(pool.is_empty());
    });
}
