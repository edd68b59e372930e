//! Keys: borrowed lookups (`&str` for `String` keys) that allocate nothing,
//! a choice of hasher, and types that hold leases without repeating the
//! pool's bounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hash::{BuildHasherDefault, DefaultHasher, RandomState};
use std::time::Duration;

use workpool_std::{Counts, Lease, Pool};

/// Counts this thread's allocations, so other test threads do not disturb
/// the figures.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

#[test]
fn string_keys_are_looked_up_by_str_without_allocating() {
    let pool: Pool<String> = Pool::new();
    pool.set("proxy-a".to_string(), 2);
    let name = String::from("proxy-a");
    // Warm up whatever is lazily allocated (thread-locals, the table).
    let warm = pool.try_acquire_key("proxy-a").unwrap();
    drop(warm);

    let (seen, allocations) = allocations_in(|| {
        (
            pool.counts("proxy-a"),
            pool.counts(name.as_str()),
            pool.waiting("proxy-a"),
            pool.counts("proxy-b"),
        )
    });
    assert_eq!(seen, (counts(2, 0), counts(2, 0), 0, counts(0, 0)));
    assert_eq!(allocations, 0, "a lookup by &str allocates nothing");

    // The lease owns a clone of the stored key (that is its one allocation).
    let (lease, allocations) = allocations_in(|| pool.try_acquire_key("proxy-a").unwrap());
    assert_eq!(lease.key(), "proxy-a");
    assert!(allocations <= 1, "{allocations} allocations for one lease");
    // The `String` form works too, and the temporary lives long enough.
    let other = pool.try_acquire_key(&"proxy-a".to_string()).unwrap();
    assert_eq!(pool.counts("proxy-a"), counts(2, 2));
    drop((lease, other));
}

#[test]
fn waiting_for_an_untracked_string_key_creates_it_from_the_str() {
    let pool: Pool<String> = Pool::new();
    let setter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            while pool.waiting("late") == 0 {
                std::thread::yield_now();
            }
            pool.set("late".to_string(), 1);
        })
    };
    let lease = pool
        .acquire_key_timeout("late", Duration::from_secs(30))
        .unwrap();
    setter.join().unwrap();
    assert_eq!(lease.key(), "late");
    let lease2 = futures_lite::future::block_on(async {
        drop(lease);
        pool.acquire_key("late").await.unwrap()
    });
    assert_eq!(lease2.id(), 2);
    drop(lease2);
    pool.set("late".into(), 0);
    assert!(pool.is_empty());
}

#[test]
fn a_pool_can_use_any_hasher() {
    let pool: Pool<&'static str, RandomState> = Pool::with_hasher(RandomState::new());
    pool.set("spam", 2);
    let lease: Lease<&'static str, RandomState> = pool.try_acquire().unwrap();
    assert_eq!(pool.counts(&"spam"), counts(2, 1));
    drop(lease);

    let fixed: Pool<u64, BuildHasherDefault<DefaultHasher>> = Pool::default();
    fixed.set(7, 1);
    assert!(fixed.try_acquire_key(&7).is_ok());
    assert!(fixed.try_acquire_key(&8).is_err());
}

/// A user type holding a lease and a pool needs no bounds of its own.
struct Worker<K> {
    lease: Lease<K>,
    pool: Pool<K>,
}

/// Generic code over any key, without `Hash + Eq + Clone`.
fn lease_id<K>(worker: &Worker<K>) -> u64 {
    worker.lease.id()
}

fn is_closed<K>(worker: &Worker<K>) -> bool {
    worker.pool.is_closed()
}

#[test]
fn types_holding_leases_need_no_bounds() {
    let pool = Pool::new();
    pool.set("spam", 1);
    let worker = Worker {
        lease: pool.try_acquire().unwrap(),
        pool: pool.clone(),
    };
    assert_eq!(lease_id(&worker), 1);
    assert!(!is_closed(&worker));
    drop(worker);
    assert_eq!(pool.counts(&"spam"), counts(1, 0));
}
