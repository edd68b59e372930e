//! Heap memory comes back after a burst: 100,000 waiting acquisitions or
//! 100,000 keys leave next to nothing behind once they are gone, measured
//! in live heap bytes by a counting `#[global_allocator]`.
//!
//! Its own test binary, so the allocator counts nothing else; it counts per
//! thread, and each test allocates and frees on its own thread.
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use workpool_std::Pool;

/// The system allocator, keeping the current thread's live heap bytes.
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn add(bytes: i64) {
    // `try_with`: the slot may be gone while the thread shuts down.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

fn size(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches only a const-initialised
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(size(layout.size()));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(size(layout.size()));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(size(new_size) - size(layout.size()));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-size(layout.size()));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes allocated by this thread.
fn live() -> i64 {
    LIVE.with(Cell::get)
}

/// Waiters or keys in a burst.
const BURST: usize = 100_000;
/// What a burst may leave behind: the slabs', the waker slots' and the
/// tables' minimum sizes, well under 4 KiB for the lane and 1.25 KiB for
/// each shard the burst touched (a shard keeps a small table and slab once
/// it was used, so that one key coming and going allocates nothing).
fn slack(pool: &Pool<u64>) -> i64 {
    4 * 1024 + 1280 * pool.shard_count() as i64
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs `burst` and returns the live bytes it took at its peak and the ones
/// it left behind, both above what was live before.
fn measure(burst: impl FnOnce(&mut dyn FnMut())) -> (i64, i64) {
    let before = live();
    let mut peak = 0;
    burst(&mut || peak = peak.max(live() - before));
    (peak, live() - before)
}

#[track_caller]
fn assert_comes_back(what: &str, pool: &Pool<u64>, (peak, left): (i64, i64)) {
    println!("{what}: {peak} bytes at the peak, {left} left behind");
    assert!(
        peak > size(BURST) * 16,
        "{what}: the burst took {peak} bytes"
    );
    assert!(
        left <= slack(pool),
        "{what}: {left} bytes left behind (peak {peak})"
    );
}

#[test]
fn cancelled_waiters_give_their_memory_back() {
    let pool: Pool<u64> = Pool::new();
    pool.set(1, 1);
    let _held = pool.try_acquire().unwrap();
    let memory = measure(|peak| {
        let mut waiting: Vec<_> = (0..BURST).map(|_| pool.acquire()).collect();
        for fut in &mut waiting {
            assert!(poll_once(fut).is_pending());
        }
        peak();
        drop(waiting);
    });
    assert_comes_back("cancelled waiters", &pool, memory);
    assert_eq!(pool.waiters(), 0);
}

#[test]
fn served_waiters_give_their_memory_back() {
    let pool: Pool<u64> = Pool::new();
    let memory = measure(|peak| {
        let mut waiting: Vec<_> = (0..BURST).map(|_| pool.acquire_key(&7)).collect();
        for fut in &mut waiting {
            assert!(poll_once(fut).is_pending());
        }
        peak();
        pool.set(7, BURST as u64);
        let leases: Vec<_> = waiting
            .iter_mut()
            .map(|fut| match poll_once(fut) {
                Poll::Ready(Ok(lease)) => lease,
                _ => panic!("a waiter was not served"),
            })
            .collect();
        drop(waiting);
        drop(leases);
        pool.set(7, 0);
    });
    assert_comes_back("served waiters", &pool, memory);
    assert!(pool.is_empty());
}

#[test]
fn forgotten_keys_give_their_memory_back() {
    let pool: Pool<u64> = Pool::new();
    let memory = measure(|peak| {
        for key in 0..BURST as u64 {
            pool.set(key, 1);
        }
        peak();
        for key in 0..BURST as u64 {
            pool.set(key, 0);
        }
    });
    assert_comes_back("forgotten keys", &pool, memory);
    assert!(pool.is_empty());
}
