//! S4: memory and allocations, from the counting allocator.

use std::future::Future;
use std::hint::black_box;
use std::mem::{size_of, size_of_val};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;

use workpool_std::futures::{Acquire, AcquireKey};
use workpool_std::Lease;

use crate::harness::{poll_once, ready, Bench, Heap};
use crate::timing::{keyed_pool, SemaphoreMap};

/// Idle keys created to measure bytes per key.
pub(crate) const IDLE_KEYS: u64 = 100_000;
/// Waiters queued at once to measure bytes per waiting acquisition.
pub(crate) const WAITERS: usize = 10_000;
/// Cycles counted for allocations per cycle.
const ALLOC_CYCLES: u64 = 10_000;

// ----------------------------------------------------------------- S4 memory

/// Workpool's figures as `[any key, one key]`, the peers' as one value.
pub(crate) struct Memory {
    /// Heap bytes per idle key beyond the key: workpool, tokio map,
    /// async-lock map.
    pub(crate) idle_key: [f64; 3],
    /// Heap bytes per queued waiter beyond its future, by column.
    pub(crate) waiter: [f64; 4],
    /// Allocations per uncontended `try_` cycle, by column.
    pub(crate) try_cycle: [f64; 4],
    /// Allocations per uncontended async cycle, by column.
    pub(crate) async_cycle: [f64; 4],
    /// Allocations per acquisition that waits and is handed a lease.
    pub(crate) waiting: [f64; 4],
    /// `size_of` the acquisition futures, by column.
    pub(crate) future_size: [usize; 4],
    /// `size_of` workpool's lease, tokio's permit and owned permit,
    /// async-lock's guard and `Arc` guard.
    pub(crate) lease_size: [usize; 5],
}

/// Heap bytes per key beyond the key, for what `build(n)` builds.
fn idle_key_bytes<T>(build: impl Fn(u64) -> T) -> f64 {
    drop(build(16));
    let before = Heap::now();
    let built = build(IDLE_KEYS);
    let after = Heap::now();
    drop(built);
    (after.live - before.live) as f64 / IDLE_KEYS as f64 - size_of::<u64>() as f64
}

/// Heap bytes per waiter beyond its (boxed) future, with [`WAITERS`] of
/// `make()` queued at once.
fn waiter_bytes<F: Future>(mut make: impl FnMut() -> F) -> f64 {
    let mut waiting: Vec<Pin<Box<F>>> = Vec::with_capacity(WAITERS);
    let before = Heap::now();
    for _ in 0..WAITERS {
        let mut fut = Box::pin(make());
        assert!(poll_once(fut.as_mut()).is_pending(), "a waiter got through");
        waiting.push(fut);
    }
    let after = Heap::now();
    drop(waiting);
    let boxes = (WAITERS * size_of::<F>()) as i64;
    (after.live - before.live - boxes) as f64 / WAITERS as f64
}

/// Allocations per call of `cycle`.
fn cycle_allocations(mut cycle: impl FnMut()) -> f64 {
    for _ in 0..16 {
        cycle();
    }
    let before = Heap::now();
    for _ in 0..ALLOC_CYCLES {
        cycle();
    }
    let after = Heap::now();
    (after.allocations - before.allocations) as f64 / ALLOC_CYCLES as f64
}

/// Allocations per acquisition that has to wait: with `held` the only
/// capacity, start `make()` (it must wait), release `held`, and the waiter
/// must then be ready with the next lease to hold.
fn waiting_allocations<L, F: Future<Output = L>>(held: L, mut make: impl FnMut() -> F) -> f64 {
    let mut step = |held: L| -> L {
        let mut fut = pin!(make());
        assert!(poll_once(fut.as_mut()).is_pending(), "a waiter got through");
        drop(held);
        match poll_once(fut) {
            Poll::Ready(lease) => lease,
            Poll::Pending => panic!("a released lease did not reach the waiter"),
        }
    };
    let mut held = held;
    for _ in 0..16 {
        held = step(held);
    }
    let before = Heap::now();
    for _ in 0..ALLOC_CYCLES {
        held = step(held);
    }
    let after = Heap::now();
    drop(held);
    (after.allocations - before.allocations) as f64 / ALLOC_CYCLES as f64
}

pub(crate) fn memory(bench: &mut Bench) -> Memory {
    bench.progress.begin("S4 memory");
    let idle_key = [
        idle_key_bytes(|n| keyed_pool(n, 1)),
        idle_key_bytes(|n| SemaphoreMap::new(n, || tokio::sync::Semaphore::new(1))),
        idle_key_bytes(|n| SemaphoreMap::new(n, || async_lock::Semaphore::new(1))),
    ];

    let pool = keyed_pool(1, 1);
    let tokio_sem = tokio::sync::Semaphore::new(1);
    let async_lock_sem = async_lock::Semaphore::new(1);
    let try_cycle = [
        cycle_allocations(|| drop(black_box(pool.try_acquire().unwrap()))),
        cycle_allocations(|| drop(black_box(pool.try_acquire_key(&0).unwrap()))),
        cycle_allocations(|| drop(black_box(tokio_sem.try_acquire().unwrap()))),
        cycle_allocations(|| drop(black_box(async_lock_sem.try_acquire().unwrap()))),
    ];
    let async_cycle = [
        cycle_allocations(|| drop(black_box(ready(pool.acquire()).unwrap()))),
        cycle_allocations(|| drop(black_box(ready(pool.acquire_key(&0)).unwrap()))),
        cycle_allocations(|| drop(black_box(ready(tokio_sem.acquire()).unwrap()))),
        cycle_allocations(|| drop(black_box(ready(async_lock_sem.acquire())))),
    ];
    let waiting = [
        waiting_allocations(pool.try_acquire().unwrap(), || async {
            pool.acquire().await.unwrap()
        }),
        waiting_allocations(pool.try_acquire().unwrap(), || async {
            pool.acquire_key(&0).await.unwrap()
        }),
        waiting_allocations(tokio_sem.try_acquire().unwrap(), || async {
            tokio_sem.acquire().await.unwrap()
        }),
        waiting_allocations(async_lock_sem.try_acquire().unwrap(), || {
            async_lock_sem.acquire()
        }),
    ];

    // Fresh pools and semaphores, so no queue capacity is left over from
    // earlier runs: waiters queue behind the one lease or permit held here.
    let waiter = {
        let (any_pool, key_pool) = (keyed_pool(1, 1), keyed_pool(1, 1));
        let tokio_sem = tokio::sync::Semaphore::new(0);
        let async_lock_sem = async_lock::Semaphore::new(0);
        let _held = (any_pool.try_acquire(), key_pool.try_acquire());
        [
            waiter_bytes(|| any_pool.acquire()),
            waiter_bytes(|| key_pool.acquire_key(&0)),
            waiter_bytes(|| tokio_sem.acquire()),
            waiter_bytes(|| async_lock_sem.acquire()),
        ]
    };

    let tokio_arc = Arc::new(tokio::sync::Semaphore::new(1));
    let async_lock_arc = Arc::new(async_lock::Semaphore::new(1));
    let future_size = [
        size_of::<Acquire<'_, u64>>(),
        size_of::<AcquireKey<'_, u64>>(),
        size_of_val(&tokio_sem.acquire()),
        size_of_val(&async_lock_sem.acquire()),
    ];
    let lease_size = [
        size_of::<Lease<u64>>(),
        size_of_val(&tokio_sem.try_acquire().unwrap()),
        size_of_val(&tokio_arc.try_acquire_owned().unwrap()),
        size_of_val(&async_lock_sem.try_acquire().unwrap()),
        size_of_val(&async_lock_arc.try_acquire_arc().unwrap()),
    ];
    Memory {
        idle_key,
        waiter,
        try_cycle,
        async_cycle,
        waiting,
        future_size,
        lease_size,
    }
}
