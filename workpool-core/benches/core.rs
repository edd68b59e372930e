//! Benchmarks of the core state machine: the cost of one acquire/release
//! cycle uncontended, with 1 to 100,000 keys, and beside 10,000 queued
//! waiters; and of a release that serves a waiter.
//!
//! Run with `cargo bench -p workpool-core --bench core`. Every operation is
//! meant to be O(1) in keys and waiters, so each group's rows should come out
//! close to one another.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use workpool_core::{Claim, Lease, Pool, WaiterId};

fn main() {
    let mut c = Criterion::default().configure_from_args();
    uncontended(&mut c);
    many_keys(&mut c);
    queued_waiters(&mut c);
    c.final_summary();
}

/// A pool with `keys` keys (0..keys) of target `target` each.
fn pool_with(keys: u64, target: u64) -> Pool<u64> {
    let mut pool = Pool::new();
    for key in 0..keys {
        pool.set(key, target);
    }
    pool
}

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended");
    group.throughput(Throughput::Elements(1));
    group.bench_function("any", |b| {
        let mut pool = pool_with(1, 1);
        b.iter(|| {
            let lease = pool.try_acquire().unwrap();
            pool.release(black_box(lease)).unwrap();
        });
    });
    group.bench_function("key", |b| {
        let mut pool = pool_with(1, 1);
        b.iter(|| {
            let lease = pool.try_acquire_key(black_box(&0)).unwrap();
            pool.release(black_box(lease)).unwrap();
        });
    });
    group.finish();
}

/// Target 1 per key, so every cycle moves to another key: any-key grants
/// walk the whole ring, keyed ones cycle through the keys in order (and so
/// through more memory than the caches hold at 100,000 keys); `key_hot`
/// takes one key of many, and `hashmap` is a plain map walked the same way,
/// for the cost of the memory traffic alone.
fn many_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    group.throughput(Throughput::Elements(1));
    for keys in [1u64, 1_000, 100_000] {
        group.bench_with_input(BenchmarkId::new("any", keys), &keys, |b, &keys| {
            let mut pool = pool_with(keys, 1);
            b.iter(|| {
                let lease = pool.try_acquire().unwrap();
                pool.release(black_box(lease)).unwrap();
            });
        });
        group.bench_with_input(BenchmarkId::new("key", keys), &keys, |b, &keys| {
            let mut pool = pool_with(keys, 1);
            let mut next = 0;
            b.iter(|| {
                let lease = pool.try_acquire_key(black_box(&next)).unwrap();
                pool.release(black_box(lease)).unwrap();
                next = if next + 1 == keys { 0 } else { next + 1 };
            });
        });
        // The floor for walking `keys` keys: a plain hash map doing the same
        // two lookups (count up, count down) per cycle.
        group.bench_with_input(BenchmarkId::new("hashmap", keys), &keys, |b, &keys| {
            let mut map: hashbrown::HashMap<u64, (u64, u64)> =
                (0..keys).map(|k| (k, (1, 0))).collect();
            let mut next = 0;
            b.iter(|| {
                map.get_mut(black_box(&next)).unwrap().1 += 1;
                map.get_mut(black_box(&next)).unwrap().1 -= 1;
                next = if next + 1 == keys { 0 } else { next + 1 };
            });
        });
        // One key of many, every time: the same lookup without the cache
        // misses of walking every key's state.
        group.bench_with_input(BenchmarkId::new("key_hot", keys), &keys, |b, &keys| {
            let mut pool = pool_with(keys, 1);
            let hot = keys / 2;
            b.iter(|| {
                let lease = pool.try_acquire_key(black_box(&hot)).unwrap();
                pool.release(black_box(lease)).unwrap();
            });
        });
    }
    group.finish();
}

/// A full key with `waiters` key waiters queued behind it, spread over 100
/// other full keys, plus one free key.
fn pool_with_waiters(waiters: u64) -> (Pool<u64>, Vec<Lease<u64>>) {
    let mut pool = Pool::new();
    let mut held = Vec::new();
    for key in 1..=100 {
        pool.set(key, 1);
        held.push(pool.try_acquire_key(&key).unwrap());
    }
    for i in 0..waiters {
        let _ = pool.enqueue_key(&(1 + i % 100)).unwrap();
    }
    pool.set(0, 1);
    (pool, held)
}

/// One release serves the head of key 0's queue, which is woken and
/// claims; a new waiter then joins the back, keeping the queue's length.
fn serve_cycle(pool: &mut Pool<u64>, lease: Lease<u64>) -> Lease<u64> {
    let _ = pool.enqueue_key(&0).unwrap();
    pool.release(lease).unwrap();
    let waiter: WaiterId = pool.poll_wake().unwrap();
    match pool.claim(waiter) {
        Ok(Claim::Granted(lease)) => lease,
        _ => unreachable!("the woken waiter holds a lease"),
    }
}

fn queued_waiters(c: &mut Criterion) {
    let mut group = c.benchmark_group("waiters");
    group.throughput(Throughput::Elements(1));
    for waiters in [0u64, 10_000] {
        group.bench_with_input(BenchmarkId::new("try_any", waiters), &waiters, |b, &w| {
            let (mut pool, _held) = pool_with_waiters(w);
            b.iter(|| {
                let lease = pool.try_acquire().unwrap();
                pool.release(black_box(lease)).unwrap();
            });
        });
        group.bench_with_input(BenchmarkId::new("try_key", waiters), &waiters, |b, &w| {
            let (mut pool, _held) = pool_with_waiters(w);
            b.iter(|| {
                let lease = pool.try_acquire_key(black_box(&0)).unwrap();
                pool.release(black_box(lease)).unwrap();
            });
        });
        // Key 0 itself has `waiters` waiters queued, and its one unit is
        // passed down the queue: release, serve, wake, claim, re-enqueue.
        group.bench_with_input(BenchmarkId::new("serve", waiters), &waiters, |b, &w| {
            let mut pool = Pool::new();
            pool.set(0u64, 1);
            let mut lease = Some(pool.try_acquire().unwrap());
            for _ in 0..w {
                let _ = pool.enqueue_key(&0).unwrap();
            }
            b.iter(|| {
                let next = serve_cycle(&mut pool, lease.take().unwrap());
                lease = Some(black_box(next));
            });
            assert_eq!(pool.waiting(&0), w as usize);
        });
    }
    group.finish();
}
