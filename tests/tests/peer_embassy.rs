//! embassy-sync's semaphore tests (the `#[cfg(test)]` module of
//! `embassy-sync/src/semaphore.rs` in `embassy-rs/embassy`), ported onto
//! one key of a [`Pool`].
//!
//! Our pool is fair (FIFO, head-of-line, no barging), so the tests of
//! embassy's `FairSemaphore` are the ones ported. The `GreedySemaphore`
//! tests `try_acquire`, `disarm`, `acquire`, `try_acquire_all`,
//! `acquire_all`, `release`, `set` and `contested` are the same scenarios
//! as the fair ones of the same names and are covered by them; the greedy
//! `greedy` test relies on a `try_acquire(1)` barging past a waiting
//! 3-permit acquisition, which DESIGN forbids, and is not ported.
//!
//! Mapping: the semaphore is the key `"sem"`; `new(n)` sets its target to
//! `n`; `acquire(n)` / `try_acquire(n)` are `acquire_key_many` /
//! `try_acquire_key_many`; `permits()` (available permits) is
//! `target - active`; a releaser's `permits()` is `Lease::units`,
//! `disarm()` is `mem::forget` of the lease; the semaphore's `release(n)`
//! raises the target by `n` and `set(n)` sets the target (the same as
//! embassy's "available permits" only while nothing is held, which is the
//! case in its test). `acquire_all(min)` / `try_acquire_all(min)` have no
//! counterpart and are emulated: wait for (or try) `min` units, then take
//! whatever else is free with `try_acquire_key_many` and `merge` it in.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::thread;

use futures_lite::future::block_on;
use workpool_std::{Closed, Lease, Pool, TryAcquireError};
use workpool_tests::{
    wait_until, with_hang_guard, BlockOn, Runner, Smol, TokioCurrent, TokioMulti, HANG_GUARD,
};

/// The one key every test uses as its semaphore.
const KEY: &str = "sem";

fn semaphore(permits: u64) -> Pool<&'static str> {
    let pool = Pool::new();
    pool.set(KEY, permits);
    pool
}

/// Available permits: units of the key nobody holds.
fn permits(pool: &Pool<&'static str>) -> u64 {
    let c = pool.counts(&KEY);
    c.target - c.active
}

/// embassy's `release(n)` of permits not tied to a releaser.
fn release(pool: &Pool<&'static str>, n: u64) {
    let target = pool.counts(&KEY).target;
    pool.set(KEY, target + n);
}

/// Emulated `try_acquire_all(min)`: every free unit, if at least `min`.
fn try_acquire_all(pool: &Pool<&'static str>, min: u64) -> Option<Lease<&'static str>> {
    let free = permits(pool);
    if free < min {
        return None;
    }
    pool.try_acquire_key_many(&KEY, free).ok()
}

/// Emulated `acquire_all(min)`: wait for `min` units, then take the rest
/// of what is free into the same lease.
async fn acquire_all(pool: &Pool<&'static str>, min: u64) -> Result<Lease<&'static str>, Closed> {
    let mut lease = pool.acquire_key_many(&KEY, min).await?;
    let free = permits(pool);
    if free > 0 {
        if let Ok(rest) = pool.try_acquire_key_many(&KEY, free) {
            lease.merge(rest).expect("same pool, same key");
        }
    }
    Ok(lease)
}

/// Polls `fut` once with a waker that does nothing, as `futures::poll!`
/// does inside a test that never needs the wake-up.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Fair `try_acquire`: one permit of three, two left, three again after
/// the drop.
#[test]
fn try_acquire() {
    let pool = semaphore(3);
    let a = pool.try_acquire_key_many(&KEY, 1).unwrap();
    assert_eq!(a.units(), 1);
    assert_eq!(permits(&pool), 2);
    drop(a);
    assert_eq!(permits(&pool), 3);
}

/// Fair `disarm`: a forgotten one-permit lease stays counted.
#[test]
fn disarm() {
    let pool = semaphore(3);
    let a = pool.try_acquire_key_many(&KEY, 1).unwrap();
    assert_eq!(a.units(), 1);
    std::mem::forget(a);
    assert_eq!(permits(&pool), 2);
}

/// Fair `acquire`: the async form, uncontended.
#[test]
fn acquire() {
    block_on(async {
        let pool = semaphore(3);
        let a = pool.acquire_key_many(&KEY, 1).await.unwrap();
        assert_eq!(a.units(), 1);
        assert_eq!(permits(&pool), 2);
        drop(a);
        assert_eq!(permits(&pool), 3);
    });
}

/// Fair `try_acquire_all` (emulated): with at least one free, all three
/// are taken in one lease.
#[test]
fn try_acquire_all_takes_every_free_permit() {
    let pool = semaphore(3);
    let a = try_acquire_all(&pool, 1).unwrap();
    assert_eq!(a.units(), 3);
    assert_eq!(permits(&pool), 0);
}

/// Fair `acquire_all` (emulated): the async form, uncontended.
#[test]
fn acquire_all_takes_every_free_permit() {
    block_on(async {
        let pool = semaphore(3);
        let a = acquire_all(&pool, 1).await.unwrap();
        assert_eq!(a.units(), 3);
        assert_eq!(permits(&pool), 0);
    });
}

/// Fair `release`: two more permits on top of three.
#[test]
fn release_adds_permits() {
    let pool = semaphore(3);
    assert_eq!(permits(&pool), 3);
    release(&pool, 2);
    assert_eq!(permits(&pool), 5);
}

/// Fair `set`: three permits reset to two.
#[test]
fn set() {
    let pool = semaphore(3);
    assert_eq!(permits(&pool), 3);
    pool.set(KEY, 2);
    assert_eq!(permits(&pool), 2);
}

/// Fair `contested`: three permits do not fit while one is held, and do
/// once it is dropped.
#[test]
fn contested() {
    let pool = semaphore(3);
    let a = pool.try_acquire_key_many(&KEY, 1).unwrap();
    assert_eq!(
        pool.try_acquire_key_many(&KEY, 3).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    drop(a);
    assert_eq!(pool.try_acquire_key_many(&KEY, 3).unwrap().units(), 3);
}

/// Fair `fairness`: a 3-permit waiter blocks a later `try_acquire(1)` and
/// a later 1-permit waiter even though a permit is free; after the
/// release the big one is served and the small one still waits until the
/// big lease goes.
///
/// Not carried over: embassy's queue holds two waiters, so its third
/// acquisition fails at once with `WaitQueueFull`. Our queue is unbounded,
/// so here the third acquisition is asserted to queue (pending, three
/// waiters) and is then dropped.
#[test]
fn fairness() {
    block_on(async {
        let pool = semaphore(3);
        let a = pool.try_acquire_key_many(&KEY, 1);
        assert!(a.is_ok());

        let mut b_fut = pin!(pool.acquire_key_many(&KEY, 3));
        assert!(poll_once(b_fut.as_mut()).is_pending());

        assert_eq!(
            pool.try_acquire_key_many(&KEY, 1).unwrap_err(),
            TryAcquireError::NoCapacity
        );

        let mut c_fut = pin!(pool.acquire_key_many(&KEY, 1));
        assert!(poll_once(c_fut.as_mut()).is_pending(), "c waits behind b");

        {
            let mut d_fut = pin!(pool.acquire_key_many(&KEY, 1));
            assert!(poll_once(d_fut.as_mut()).is_pending());
            assert_eq!(pool.waiting(&KEY), 3, "no queue bound: d queues");
        }
        assert_eq!(pool.waiting(&KEY), 2);

        drop(a);
        assert!(poll_once(c_fut.as_mut()).is_pending(), "c still behind b");
        let b = match poll_once(b_fut.as_mut()) {
            Poll::Ready(lease) => lease.unwrap(),
            Poll::Pending => panic!("b should have its three permits"),
        };
        assert_eq!(b.units(), 3);
        assert!(poll_once(c_fut.as_mut()).is_pending(), "b holds them all");
        drop(b);
        match poll_once(c_fut.as_mut()) {
            Poll::Ready(lease) => assert_eq!(lease.unwrap().units(), 1),
            Poll::Pending => panic!("c should have its permit"),
        }
    });
}

/// Fair `wakers`: on a multi-thread executor, a 2-permit task queued while
/// two of three permits are held, and a 1-permit task after it, are both
/// woken and served by the one release.
#[test]
fn wakers() {
    TokioMulti::run(|rt| async move { wakers_round(&rt).await });
}

/// One round of the peer's `wakers` scenario on `rt`.
async fn wakers_round<R: Runner>(rt: &R) {
    let pool = semaphore(3);
    let a = pool.try_acquire_key_many(&KEY, 2);
    assert!(a.is_ok());

    let b_task = rt.spawn(pool.acquire_key_many_owned(KEY, 2));
    wait_until(rt, "b to queue", || pool.waiting(&KEY) == 1).await;
    let c_task = rt.spawn(pool.acquire_key_many_owned(KEY, 1));

    drop(a);

    let b = b_task.await.unwrap();
    assert_eq!(b.units(), 2);
    let c = c_task.await.unwrap();
    assert_eq!(c.units(), 1);
    assert_eq!(permits(&pool), 0);
    drop((b, c));
    assert_eq!(permits(&pool), 3);
}

/// How often the repeated `wakers` runs go round.
const ROUNDS: usize = 100;

/// Fair `wakers`, repeated on every executor of the test matrix, to shake
/// out a lost wake-up that one run might miss.
#[test]
fn wakers_repeated_on_every_executor() {
    async fn rounds<R: Runner>(rt: R) {
        for _ in 0..ROUNDS {
            wakers_round(&rt).await;
        }
    }
    TokioCurrent::run(rounds);
    TokioMulti::run(rounds);
    Smol::run(rounds);
    BlockOn::run(|rt| async move {
        for _ in 0..ROUNDS / 10 {
            wakers_round(&rt).await;
        }
    });
}

/// Fair `wakers` with plain threads and the blocking weighted calls
/// (`acquire_key_many_blocking`), repeated.
#[test]
fn wakers_blocking() {
    with_hang_guard("wakers_blocking", HANG_GUARD, || {
        for _ in 0..ROUNDS / 4 {
            let pool = semaphore(3);
            let a = pool.try_acquire_key_many(&KEY, 2).unwrap();
            let b_pool = pool.clone();
            let b = thread::spawn(move || b_pool.acquire_key_many_blocking(&KEY, 2));
            while pool.waiting(&KEY) != 1 {
                thread::yield_now();
            }
            let c_pool = pool.clone();
            let c = thread::spawn(move || c_pool.acquire_key_many_blocking(&KEY, 1));
            drop(a);
            let b = b.join().unwrap().unwrap();
            let c = c.join().unwrap().unwrap();
            assert_eq!((b.units(), c.units(), permits(&pool)), (2, 1, 0));
        }
    });
}
