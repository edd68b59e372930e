//! A warm pool allocates nothing in steady state: acquire/release cycles,
//! waiter cycles and key churn run 10,000 times each with zero calls to the
//! allocator, counted by a wrapping `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use workpool_core::{Claim, Lease, Pool};

/// The system allocator, counting allocations made by the current thread
/// (the test harness allocates on its own threads meanwhile).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may be gone while the thread shuts down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches only a const-initialised
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Cycles per check (fewer under Miri, which is slow, not different).
const CYCLES: u64 = if cfg!(miri) { 100 } else { 10_000 };

/// How many times `f` called the allocator (alloc, alloc_zeroed, realloc).
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// A pool with a few keys, some full with waiters queued behind them, so
/// that the cycles run beside a realistic amount of state.
fn busy_pool() -> (Pool<u64>, Vec<Lease<u64>>) {
    let mut pool = Pool::new();
    let mut held = Vec::new();
    for key in 0..8 {
        pool.set(key, 4);
    }
    // Keys 100.. are full, with key waiters behind them.
    for key in 100..104 {
        pool.set(key, 1);
        held.push(pool.try_acquire_key(&key).unwrap());
        for _ in 0..50 {
            let _ = pool.enqueue_key(&key).unwrap();
        }
    }
    (pool, held)
}

#[test]
fn the_counter_counts() {
    let n = allocations(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert_eq!(n, 1);
}

#[test]
fn try_acquire_and_release_any_key() {
    let (mut pool, _held) = busy_pool();
    let cycle = |pool: &mut Pool<u64>| {
        let lease = pool.try_acquire().unwrap();
        pool.release(lease).unwrap();
    };
    for _ in 0..100 {
        cycle(&mut pool);
    }
    let n = allocations(|| {
        for _ in 0..CYCLES {
            cycle(&mut pool);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {CYCLES} any-key cycles");
}

#[test]
fn try_acquire_and_release_one_key() {
    let (mut pool, _held) = busy_pool();
    let cycle = |pool: &mut Pool<u64>, i: u64| {
        let lease = pool.try_acquire_key(&(i % 8)).unwrap();
        pool.release(lease).unwrap();
    };
    for i in 0..100 {
        cycle(&mut pool, i);
    }
    let n = allocations(|| {
        for i in 0..CYCLES {
            cycle(&mut pool, i);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {CYCLES} one-key cycles");
}

#[test]
fn many_leases_out_at_once() {
    let (mut pool, _held) = busy_pool();
    let mut leases = Vec::with_capacity(32);
    let cycle = |pool: &mut Pool<u64>, leases: &mut Vec<Lease<u64>>| {
        while let Ok(lease) = pool.try_acquire() {
            leases.push(lease);
        }
        for lease in leases.drain(..) {
            pool.release(lease).unwrap();
        }
    };
    cycle(&mut pool, &mut leases);
    let n = allocations(|| {
        for _ in 0..CYCLES / 10 {
            cycle(&mut pool, &mut leases);
        }
    });
    assert_eq!(n, 0, "{n} allocations filling and emptying the pool");
}

/// enqueue, then a release serves the waiter, `poll_wake` names it and it
/// claims its lease, which the next round releases.
fn waiter_cycles(any_key: bool) -> u64 {
    let (mut pool, _held) = busy_pool();
    // Only key 0 has room, one unit, which the cycles pass around.
    for key in 1..8 {
        pool.set(key, 0);
    }
    pool.set(0, 1);
    let mut lease = pool.try_acquire_key(&0).unwrap();
    let cycle = |pool: &mut Pool<u64>, lease: Lease<u64>| {
        let waiter = if any_key {
            pool.enqueue().unwrap()
        } else {
            pool.enqueue_key(&0).unwrap()
        };
        pool.release(lease).unwrap();
        assert_eq!(pool.poll_wake(), Some(waiter));
        match pool.claim(waiter) {
            Ok(Claim::Granted(lease)) => lease,
            _ => panic!("the waiter was not granted"),
        }
    };
    for _ in 0..100 {
        lease = cycle(&mut pool, lease);
    }
    let n = allocations(|| {
        for _ in 0..CYCLES {
            lease = cycle(&mut pool, lease);
        }
    });
    assert_eq!(pool.counts(&0).active, 1);
    n
}

#[test]
fn key_waiter_served_by_release() {
    let n = waiter_cycles(false);
    assert_eq!(n, 0, "{n} allocations in {CYCLES} key-waiter cycles");
}

#[test]
fn any_key_waiter_served_by_release() {
    let n = waiter_cycles(true);
    assert_eq!(n, 0, "{n} allocations in {CYCLES} any-key waiter cycles");
}

#[test]
fn cancel_passes_a_grant_on() {
    let mut pool = Pool::new();
    pool.set(0u64, 1);
    let mut lease = pool.try_acquire().unwrap();
    let cycle = |pool: &mut Pool<u64>, lease: Lease<u64>| {
        let first = pool.enqueue_key(&0).unwrap();
        let second = pool.enqueue().unwrap();
        pool.release(lease).unwrap();
        pool.cancel(first).unwrap();
        assert_eq!(pool.poll_wake(), Some(second));
        match pool.claim(second) {
            Ok(Claim::Granted(lease)) => lease,
            _ => panic!("the second waiter was not granted"),
        }
    };
    for _ in 0..100 {
        lease = cycle(&mut pool, lease);
    }
    let n = allocations(|| {
        for _ in 0..CYCLES {
            lease = cycle(&mut pool, lease);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {CYCLES} cancel cycles");
}

#[test]
fn keys_forgotten_and_set_again() {
    let mut pool = Pool::new();
    pool.set(u64::MAX, 3);
    let cycle = |pool: &mut Pool<u64>, key: u64| {
        pool.set(key, 2);
        let lease = pool.try_acquire_key(&key).unwrap();
        pool.set(key, 0);
        pool.release(lease).unwrap();
        assert_eq!(pool.len(), 1);
    };
    for key in 0..100 {
        cycle(&mut pool, key);
    }
    // A fresh key every cycle: the forgotten group's slot and table entry
    // are reused.
    let n = allocations(|| {
        for key in 1_000..1_000 + CYCLES {
            cycle(&mut pool, key);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {CYCLES} key churn cycles");
}

/// After bursts of waiters and of keys the pool shrinks back; then a waiter
/// and a key coming and going right at the edge where it was cut (a slot
/// past the end, cut off again each time) allocate nothing: shrinking has
/// hysteresis, so it never alternates with growing.
#[test]
fn churn_at_the_edge_of_a_shrunk_pool() {
    let burst = if cfg!(miri) { 64 } else { 100_000 };
    let mut pool = Pool::new();
    let waiters: Vec<_> = (0..burst)
        .map(|_| pool.enqueue_key(&u64::MAX).unwrap())
        .collect();
    for &w in &waiters[15..] {
        pool.cancel(w).unwrap();
    }
    assert_eq!(pool.waiter_slots(), 15);
    // u64::MAX is tracked for its waiters; 14 more keys stay.
    for key in 0..burst {
        pool.set(key, 1);
    }
    for key in 14..burst {
        pool.set(key, 0);
    }
    while pool.poll_forgotten().is_some() {}
    assert_eq!(pool.len(), 15);
    let cycle = |pool: &mut Pool<u64>, key: u64| {
        let waiter = pool.enqueue_key(&u64::MAX).unwrap();
        assert_eq!(waiter.index(), 15);
        pool.cancel(waiter).unwrap();
        assert_eq!(pool.waiter_slots(), 15);
        pool.set(key, 1);
        pool.set(key, 0);
        assert_eq!(pool.poll_forgotten(), Some(key));
    };
    for key in burst..burst + 16 {
        cycle(&mut pool, key);
    }
    let n = allocations(|| {
        for key in 0..CYCLES {
            cycle(&mut pool, burst + 1_000 + key);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {CYCLES} cycles at the edge");
}

/// Weighted cycles: a heavy waiter at the head of a key's queue, lighter
/// ones behind it, a release of several units that serves several of them,
/// a split and a merge: nothing allocates once warm.
#[test]
fn weighted_waiters_served_by_one_release() {
    let (mut pool, _held) = busy_pool();
    pool.set(7, 4);
    let cycle = |pool: &mut Pool<u64>| {
        let mut lease = pool.try_acquire_key_many(&7, 4).unwrap();
        let big = pool.enqueue_key_many(&7, 3).unwrap();
        let one = pool.enqueue_key(&7).unwrap();
        let part = pool.split(&mut lease, 1).unwrap();
        lease.merge(part).unwrap();
        pool.release(lease).unwrap();
        let mut served = 0;
        while pool.poll_wake().is_some() {
            served += 1;
        }
        assert_eq!(served, 2, "one release served both");
        for w in [big, one] {
            let Ok(Claim::Granted(lease)) = pool.claim(w) else {
                panic!("not granted");
            };
            pool.release(lease).unwrap();
        }
    };
    for _ in 0..100 {
        cycle(&mut pool);
    }
    let n = allocations(|| {
        for _ in 0..CYCLES {
            cycle(&mut pool);
        }
    });
    assert_eq!(n, 0, "{n} allocations in {CYCLES} weighted cycles");
}
