//! A key whose `Hash`, `Eq` or `Clone` panics while the pool holds a lock
//! is dropped only after the lock is released: each key here re-enters the
//! pool from its `Drop`, which deadlocks (and trips the hang guard) if it
//! runs under a lock of the pool.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use workpool_core::SharedPool;
use workpool_std::{Counts, Pool};
use workpool_tests::{with_hang_guard, HANG_GUARD};

/// What a [`Key`] does wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Boom {
    None,
    Hash,
    Eq,
    Clone,
}

/// A key that hashes to one value (so every key shares a shard and `Eq`
/// runs), may panic in one of its traits, and re-enters this thread's pool
/// from its `Drop`.
#[derive(Debug)]
struct Key {
    id: u32,
    boom: Boom,
    drops: Arc<AtomicUsize>,
    /// Whether its drop re-enters the pool (lookup keys do not).
    reenter: bool,
}

thread_local! {
    static STD_POOL: RefCell<Option<Pool<Key>>> = const { RefCell::new(None) };
    static CORE_POOL: RefCell<Option<Arc<SharedPool<Key>>>> = const { RefCell::new(None) };
}

impl Key {
    fn new(id: u32, boom: Boom, drops: &Arc<AtomicUsize>) -> Self {
        Self {
            id,
            boom,
            drops: Arc::clone(drops),
            reenter: true,
        }
    }

    /// A key for lookups only: its drop does not re-enter.
    fn probe(id: u32) -> Self {
        let mut key = Self::new(id, Boom::None, &Arc::new(AtomicUsize::new(0)));
        key.reenter = false;
        key
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        assert!(self.boom != Boom::Hash, "Hash of key {} panics", self.id);
        0u8.hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        assert!(
            self.boom != Boom::Eq && other.boom != Boom::Eq,
            "Eq of key {} panics",
            self.id
        );
        self.id == other.id
    }
}

impl Eq for Key {}

impl Clone for Key {
    fn clone(&self) -> Self {
        assert!(self.boom != Boom::Clone, "Clone of key {} panics", self.id);
        Self::new(self.id, self.boom, &self.drops)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if !self.reenter {
            return;
        }
        // Re-enter whichever pool this thread set up.
        let std_pool = STD_POOL.with(|p| p.borrow().clone());
        if let Some(pool) = std_pool {
            let _ = pool.counts(&Self::probe(u32::MAX));
        }
        let core_pool = CORE_POOL.with(|p| p.borrow().clone());
        if let Some(pool) = core_pool {
            let _ = pool.counts(&Self::probe(u32::MAX));
        }
    }
}

fn std_pool() -> Pool<Key> {
    let pool = Pool::new();
    STD_POOL.with(|p| *p.borrow_mut() = Some(pool.clone()));
    pool
}

fn forget_std_pool() {
    STD_POOL.with(|p| p.borrow_mut().take());
}

#[test]
fn a_key_whose_eq_panics_in_set_is_dropped_after_unlocking() {
    with_hang_guard("set eq panic", HANG_GUARD, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let pool = std_pool();
        pool.set(Key::new(1, Boom::None, &drops), 2);
        let bad = Key::new(2, Boom::Eq, &drops);
        let before = drops.load(Ordering::SeqCst);
        let set = panic::catch_unwind(AssertUnwindSafe(|| pool.set(bad, 1)));
        assert!(set.is_err(), "Eq panicked");
        assert!(drops.load(Ordering::SeqCst) > before, "the key was dropped");
        // The pool is still usable and unchanged.
        assert_eq!(
            pool.counts(&Key::probe(1)),
            Counts {
                target: 2,
                active: 0
            }
        );
        assert_eq!(pool.counts(&Key::probe(2)), Counts::default());
        let lease = pool.try_acquire_key(&Key::probe(1)).unwrap();
        drop(lease);
        forget_std_pool();
    });
}

#[test]
fn replace_all_with_a_panicking_clone_drops_its_keys_after_unlocking() {
    with_hang_guard("replace_all clone panic", HANG_GUARD, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let pool = std_pool();
        // Tracked keys: clones of the first ones are collected before the
        // third one's `Clone` panics.
        pool.set(Key::new(1, Boom::None, &drops), 1);
        pool.set(Key::new(2, Boom::None, &drops), 1);
        pool.set(Key::new(3, Boom::Clone, &drops), 1);
        let targets = [
            (Key::new(10, Boom::None, &drops), 1),
            (Key::new(11, Boom::None, &drops), 1),
        ];
        let before = drops.load(Ordering::SeqCst);
        let replaced = panic::catch_unwind(AssertUnwindSafe(|| pool.replace_all(targets)));
        assert!(replaced.is_err(), "Clone panicked");
        // The named keys (not applied) and the clones were dropped.
        assert!(drops.load(Ordering::SeqCst) >= before + 2);
        // Nothing was applied: no acquisition sees a half-applied set.
        for id in [1, 2, 3] {
            assert_eq!(pool.counts(&Key::probe(id)).target, 1, "key {id}");
        }
        assert_eq!(pool.counts(&Key::probe(10)), Counts::default());
        pool.set_all([(Key::new(10, Boom::None, &drops), 1)]);
        assert_eq!(pool.counts(&Key::probe(10)).target, 1);
        forget_std_pool();
    });
}

#[test]
fn set_all_with_a_panicking_eq_drops_the_rest_after_unlocking() {
    with_hang_guard("set_all eq panic", HANG_GUARD, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let pool = std_pool();
        pool.set(Key::new(1, Boom::None, &drops), 1);
        let targets = vec![
            (Key::new(5, Boom::None, &drops), 1),
            (Key::new(6, Boom::Eq, &drops), 1),
            (Key::new(7, Boom::None, &drops), 1),
        ];
        let set = panic::catch_unwind(AssertUnwindSafe(|| pool.set_all(targets)));
        assert!(set.is_err(), "Eq panicked");
        assert_eq!(pool.counts(&Key::probe(1)).target, 1);
        assert_eq!(
            pool.counts(&Key::probe(7)),
            Counts::default(),
            "not applied"
        );
        let lease = pool.try_acquire_key(&Key::probe(1)).unwrap();
        drop(lease);
        forget_std_pool();
    });
}

#[test]
fn a_key_whose_hash_panics_in_the_shared_core_pool_is_dropped_after_unlocking() {
    with_hang_guard("core set hash panic", HANG_GUARD, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(SharedPool::<Key>::new());
        CORE_POOL.with(|p| *p.borrow_mut() = Some(Arc::clone(&pool)));
        pool.set(Key::new(1, Boom::None, &drops), 1);
        let before = drops.load(Ordering::SeqCst);
        let set = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.set(Key::new(2, Boom::Hash, &drops), 1);
        }));
        assert!(set.is_err(), "Hash panicked");
        assert!(drops.load(Ordering::SeqCst) > before, "the key was dropped");
        let eq = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.set(Key::new(3, Boom::Eq, &drops), 1);
        }));
        assert!(eq.is_err(), "Eq panicked");
        assert_eq!(pool.counts(&Key::probe(1)).target, 1);
        assert_eq!(pool.counts(&Key::probe(3)), Counts::default());
        CORE_POOL.with(|p| p.borrow_mut().take());
    });
}
