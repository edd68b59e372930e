//! Odd and hostile input: unknown keys, extreme targets, calls after
//! `close`, keys whose `Hash` or `Eq` panic, and (in the core) leases and
//! waiter handles of another pool.

use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use workpool_core::{Claim, ReleaseError, UnknownWaiter};
use workpool_std::{AcquireTimeoutError, Closed, Counts, Pool, TryAcquireError};
use workpool_tests::{with_hang_guard, Probe, HANG_GUARD};

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

#[test]
fn unknown_keys_read_as_zero_and_are_not_tracked() {
    let pool: Pool<String> = Pool::new();
    assert_eq!(pool.counts(&"nobody".to_owned()), counts(0, 0));
    assert_eq!(pool.waiting(&"nobody".to_owned()), 0);
    pool.set("nobody".to_owned(), 0);
    assert!(
        pool.is_empty(),
        "setting 0 on an unknown key tracks nothing"
    );
    assert_eq!(
        pool.try_acquire_key(&"nobody".to_owned()).unwrap_err(),
        TryAcquireError::NoCapacity
    );
    assert_eq!(
        pool.acquire_key_timeout(&"nobody".to_owned(), Duration::ZERO)
            .unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert!(pool.is_empty(), "a timed-out waiter leaves no group behind");
    assert_eq!(pool.counts(&String::new()), counts(0, 0));
    assert!(pool.snapshot().is_empty());

    let mut core = workpool_core::Pool::<u8>::new();
    assert_eq!(core.counts(&7), counts(0, 0));
    core.set(7, 0);
    assert!(core.is_empty());
}

#[test]
fn u64_max_target() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", u64::MAX);
    let mut leases = Vec::new();
    for i in 0..1_000 {
        leases.push(match i % 3 {
            0 => pool.try_acquire().unwrap(),
            1 => pool.try_acquire_key(&"k").unwrap(),
            _ => futures_lite::future::block_on(pool.acquire_key(&"k")).unwrap(),
        });
    }
    assert_eq!(pool.counts(&"k"), counts(u64::MAX, 1_000));
    let ids: Vec<_> = leases.iter().map(|l| l.id()).collect();
    assert_eq!(ids, (1..=1_000).collect::<Vec<_>>());

    // Lowering revokes nothing; the key still counts its leases.
    pool.set("k", 1);
    assert_eq!(pool.counts(&"k"), counts(1, 1_000));
    leases.truncate(1);
    assert_eq!(pool.counts(&"k"), counts(1, 1));
    assert!(pool.try_acquire().is_err());
    pool.set("k", 0);
    pool.set("k", u64::MAX);
    assert_eq!(pool.counts(&"k"), counts(u64::MAX, 1));
    assert!(pool.try_acquire().is_ok());
    drop(leases);
    assert_eq!(pool.counts(&"k"), counts(u64::MAX, 0));
}

#[test]
fn set_counts_and_release_work_after_close() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let lease = pool.try_acquire().unwrap();
    pool.close();
    pool.close(); // twice is fine
    assert!(pool.is_closed());
    pool.set("k", 10);
    pool.set("new", 2);
    assert_eq!(pool.counts(&"k"), counts(10, 1));
    assert_eq!(pool.counts(&"new"), counts(2, 0));
    assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert_eq!(
        futures_lite::future::block_on(pool.acquire_key(&"untracked")).unwrap_err(),
        Closed
    );
    assert_eq!(pool.counts(&"untracked"), counts(0, 0));
    assert_eq!(
        pool.acquire_timeout(Duration::from_secs(30)).unwrap_err(),
        AcquireTimeoutError::Closed
    );
    assert_eq!(pool.acquire_blocking().unwrap_err(), Closed);
    drop(lease);
    assert_eq!(pool.counts(&"k"), counts(10, 0));
    pool.set("k", 0);
    pool.set("new", 0);
    assert!(pool.is_empty());
}

#[test]
fn memory_is_bounded_by_live_groups() {
    let pool: Pool<u32> = Pool::new();
    for key in 0..10_000 {
        pool.set(key, 1);
    }
    assert_eq!(pool.len(), 10_000);
    let held = pool.try_acquire_key(&5).unwrap();
    for key in 0..10_000 {
        pool.set(key, 0);
    }
    assert_eq!(pool.len(), 1, "only the key with a live lease");
    drop(held);
    assert!(pool.is_empty());
}

#[test]
fn core_rejects_a_lease_of_another_pool() {
    let mut a = workpool_core::Pool::new();
    let mut b = workpool_core::Pool::new();
    a.set("k", 1);
    b.set("k", 1);
    let from_a = a.try_acquire().unwrap();
    let from_b = b.try_acquire().unwrap();
    let waiter = b.enqueue_key(&"k").unwrap();

    let rejected = b.release(from_a).unwrap_err();
    assert!(
        matches!(rejected, ReleaseError::ForeignPool(_)),
        "{rejected:?}"
    );
    assert_eq!(b.counts(&"k"), counts(1, 1), "counts unchanged");
    // The rejected lease comes back and still releases into its own pool.
    assert_eq!(a.release(rejected.into_lease()).unwrap(), "k");
    assert_eq!(a.counts(&"k"), counts(1, 0));
    assert_eq!(b.poll_wake(), None, "nobody served");
    assert!(matches!(b.claim(waiter), Ok(Claim::Waiting)));

    b.release(from_b).unwrap();
    assert_eq!(b.poll_wake(), Some(waiter));
    let Ok(Claim::Granted(lease)) = b.claim(waiter) else {
        panic!("the waiter is granted")
    };
    assert_eq!(lease.id(), 2);
    b.release(lease).unwrap();
    assert_eq!(b.counts(&"k"), counts(1, 0));
}

#[test]
fn core_rejects_waiter_handles_of_another_pool_and_stale_ones() {
    let mut a = workpool_core::Pool::<&str>::new();
    let mut b = workpool_core::Pool::<&str>::new();
    let from_a = a.enqueue_key(&"k").unwrap();
    let from_b = b.enqueue_key(&"k").unwrap();
    // Same slot index in both pools, still told apart.
    assert_eq!(from_a.index(), from_b.index());
    assert_eq!(b.cancel(from_a), Err(UnknownWaiter));
    assert!(matches!(b.claim(from_a), Err(UnknownWaiter)));
    assert_eq!(b.waiting(&"k"), 1);

    b.cancel(from_b).unwrap();
    assert_eq!(b.cancel(from_b), Err(UnknownWaiter), "stale after cancel");
    assert!(b.is_empty());

    a.set("k", 1);
    assert_eq!(a.poll_wake(), Some(from_a));
    let Ok(Claim::Granted(lease)) = a.claim(from_a) else {
        panic!("granted")
    };
    assert!(
        matches!(a.claim(from_a), Err(UnknownWaiter)),
        "stale after claim"
    );
    // A reused slot does not revive the old handle.
    let again = a.enqueue_key(&"k").unwrap();
    assert_eq!(again.index(), from_a.index());
    assert_ne!(again, from_a);
    assert_eq!(a.cancel(from_a), Err(UnknownWaiter));
    a.cancel(again).unwrap();
    a.release(lease).unwrap();
    assert_eq!(a.counts(&"k"), counts(1, 0));
}

#[test]
fn zero_timeout_on_a_full_pool_queues_nothing() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let held = pool.try_acquire().unwrap();
    for _ in 0..100 {
        assert_eq!(
            pool.acquire_timeout(Duration::ZERO).unwrap_err(),
            AcquireTimeoutError::Timeout
        );
    }
    assert_eq!(pool.waiters(), 0);
    drop(held);
    assert_eq!(pool.try_acquire().unwrap().id(), 2);
}

#[test]
fn huge_timeout_does_not_overflow() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    assert!(pool.acquire_timeout(Duration::MAX).is_ok());
    pool.close();
    assert_eq!(
        pool.acquire_key_timeout(&"k", Duration::MAX).unwrap_err(),
        AcquireTimeoutError::Closed
    );
}

/// A key whose `Hash` or `Eq` panics while its switch is armed. Clones
/// share the switches, so the copy the pool stores is armed too; `Clone`
/// itself never panics.
#[derive(Debug, Clone)]
struct Touchy {
    id: u32,
    switches: Arc<Switches>,
}

#[derive(Debug, Default)]
struct Switches {
    hash: AtomicBool,
    eq: AtomicBool,
}

impl Touchy {
    fn new(id: u32) -> Self {
        Self {
            id,
            switches: Arc::default(),
        }
    }

    fn arm_hash(&self, on: bool) {
        self.switches.hash.store(on, Ordering::SeqCst);
    }

    fn arm_eq(&self, on: bool) {
        self.switches.eq.store(on, Ordering::SeqCst);
    }
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        assert!(
            !self.switches.hash.load(Ordering::SeqCst),
            "Touchy({}): hash armed",
            self.id
        );
        self.id.hash(state);
    }
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        let armed = |k: &Self| k.switches.eq.load(Ordering::SeqCst);
        assert!(
            !armed(self) && !armed(other),
            "Touchy({}): eq armed",
            self.id
        );
        self.id == other.id
    }
}

impl Eq for Touchy {}

/// True if `f` panicked.
fn panics<T>(f: impl FnOnce() -> T) -> bool {
    panic::catch_unwind(AssertUnwindSafe(f)).is_err()
}

/// Every tracked key's id and counts, read without hashing or comparing
/// keys (so it works while a key is armed).
fn state(pool: &Pool<Touchy>) -> (Vec<(u32, Counts)>, usize) {
    let mut keys: Vec<_> = pool
        .snapshot()
        .into_iter()
        .map(|(k, c, _)| (k.id, c))
        .collect();
    keys.sort_by_key(|&(id, _)| id);
    (keys, pool.waiters())
}

/// Every call that looks `key` up, each of which must panic to its caller
/// while `key`'s `Hash` (or, for a tracked key, `Eq`) panics. After each,
/// the pool must be exactly as before.
fn every_lookup_panics(pool: &Pool<Touchy>, key: &Touchy) {
    let before = state(pool);
    let far = Duration::from_secs(30);
    let calls: [(&str, &dyn Fn()); 12] = [
        ("set raise", &|| pool.set(key.clone(), 100)),
        ("set zero", &|| pool.set(key.clone(), 0)),
        ("counts", &|| {
            pool.counts(key);
        }),
        ("waiting", &|| {
            pool.waiting(key);
        }),
        ("try_acquire_key", &|| {
            let _ = pool.try_acquire_key(key);
        }),
        ("acquire_key under block_on", &|| {
            let _ = futures_lite::future::block_on(pool.acquire_key(key));
        }),
        ("acquire_key polled once", &|| {
            let _ = Probe::new(pool.acquire_key(key)).poll();
        }),
        ("acquire_key_blocking", &|| {
            let _ = pool.acquire_key_blocking(key);
        }),
        ("acquire_key_timeout", &|| {
            let _ = pool.acquire_key_timeout(key, far);
        }),
        ("acquire_key_timeout zero", &|| {
            let _ = pool.acquire_key_timeout(key, Duration::ZERO);
        }),
        ("acquire_key_deadline", &|| {
            let _ = pool.acquire_key_deadline(key, Instant::now() + far);
        }),
        ("acquire_key on tokio", &|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let _ = runtime.block_on(pool.acquire_key(key));
        }),
    ];
    for (what, call) in calls {
        assert!(panics(call), "{what} panics to its caller");
        assert_eq!(state(pool), before, "{what} left the pool unchanged");
    }
}

/// A key whose `Hash` panics: every call that must find the key (`set`,
/// `counts`, `waiting`, `try_acquire_key`, `acquire_key` on any executor,
/// `acquire_key_blocking` / `_timeout` / `_deadline`) panics to its caller
/// *before* anything changes, because the key is hashed first, under the
/// lock. The pool's `std::sync::Mutex` is then poisoned; the pool tolerates
/// that by design (the core is never left half-changed), so every later
/// call works as before.
///
/// What never hashes keeps working even while the key is armed: any-key
/// acquisitions, releases (a lease finds its group by slot, not by key),
/// hand-offs to a waiter that queued earlier, `snapshot`, `len`, `close`.
/// A thread blocked on another key is unaffected by the poisoning. Once
/// disarmed, the same key works again with its counts intact.
#[test]
fn panicking_hash_reaches_the_caller_and_the_pool_stays_usable() {
    with_hang_guard("panicking hash", HANG_GUARD, || {
        let pool: Pool<Touchy> = Pool::new();
        let (good, bad) = (Touchy::new(1), Touchy::new(2));
        pool.set(good.clone(), 1);
        pool.set(bad.clone(), 2);
        let held_good = pool.try_acquire_key(&good).unwrap();
        let held_bad = pool.try_acquire_key(&bad).unwrap();
        let kept_bad = pool.try_acquire_key(&bad).unwrap();
        let mut queued = Probe::new(pool.acquire_key(&bad));
        queued.pending();
        // A thread blocked on the other key all along.
        let blocked = thread::spawn({
            let (pool, good) = (pool.clone(), good.clone());
            move || pool.acquire_key_blocking(&good).map(|l| l.id())
        });
        while pool.waiters() < 2 {
            thread::yield_now();
        }

        bad.arm_hash(true);
        every_lookup_panics(&pool, &bad);
        // A key the pool has never seen panics the same way.
        let stranger = Touchy::new(3);
        stranger.arm_hash(true);
        every_lookup_panics(&pool, &stranger);
        assert_eq!(pool.len(), 2, "the stranger was not tracked");

        // Calls that never hash the armed key still work.
        assert_eq!(pool.counts(&good), counts(1, 1));
        assert_eq!(
            pool.try_acquire_key(&good).unwrap_err(),
            TryAcquireError::NoCapacity
        );
        let fresh = Touchy::new(4);
        pool.set(fresh.clone(), 1);
        let any = pool.try_acquire().unwrap();
        assert_eq!(any.key().id, 4, "any-key grants skip no key they may use");
        drop(any);
        // A release of the armed key serves its older waiter: no hashing.
        drop(held_bad);
        assert_eq!(queued.wakes(), 1);
        let handed = queued.ready().unwrap();
        assert_eq!(handed.key().id, 2);
        drop((handed, queued));
        // The blocked thread on the other key is served as usual.
        drop(held_good);
        assert!(blocked.join().unwrap().is_ok());
        assert_eq!(pool.waiters(), 0);

        // Disarmed, the same key works again and counted everything.
        bad.arm_hash(false);
        assert_eq!(pool.counts(&bad), counts(2, 1), "kept_bad still counts");
        let again = pool.try_acquire_key(&bad).unwrap();
        assert_eq!(pool.counts(&bad), counts(2, 2));
        pool.set(bad.clone(), 3);
        let third = futures_lite::future::block_on(pool.acquire_key(&bad)).unwrap();
        assert!(third.id() > again.id());
        assert_eq!(
            pool.acquire_key_timeout(&bad, Duration::ZERO).unwrap_err(),
            AcquireTimeoutError::Timeout
        );
        drop((kept_bad, again, third));
        assert_eq!(pool.counts(&bad), counts(3, 0));
        for key in [good, bad, fresh] {
            pool.set(key, 0);
        }
        assert!(pool.is_empty());
        assert_eq!(pool.waiters(), 0);
    });
}

/// A key whose `Eq` panics: keys are compared only when their full hashes
/// match (the pool caches each key's hash), so the panic happens only for a
/// key the pool tracks, on every call that looks it up, before anything
/// changes. The same key untracked is never compared and works. Afterwards
/// the pool (with its poisoned mutex) works as before, and once disarmed
/// the key does too, counts intact.
#[test]
fn panicking_eq_reaches_the_caller_and_the_pool_stays_usable() {
    with_hang_guard("panicking eq", HANG_GUARD, || {
        let pool: Pool<Touchy> = Pool::new();
        let (good, bad) = (Touchy::new(1), Touchy::new(2));
        pool.set(good.clone(), 1);
        pool.set(bad.clone(), 1);
        let held = pool.try_acquire_key(&bad).unwrap();
        let mut queued = Probe::new(pool.acquire_key(&bad));
        queued.pending();

        bad.arm_eq(true);
        every_lookup_panics(&pool, &bad);
        // An untracked key with an armed `Eq` is never compared.
        let loner = Touchy::new(3);
        loner.arm_eq(true);
        assert_eq!(pool.counts(&loner), counts(0, 0));
        assert_eq!(
            pool.try_acquire_key(&loner).unwrap_err(),
            TryAcquireError::NoCapacity
        );
        pool.set(loner.clone(), 1);
        assert_eq!(pool.len(), 3, "inserted without a comparison");
        assert!(panics(|| pool.counts(&loner)), "now tracked: compared");
        loner.arm_eq(false);
        assert_eq!(pool.counts(&loner), counts(1, 0));
        pool.set(loner, 0);

        // The other key and the hand-off path still work.
        assert_eq!(pool.try_acquire_key(&good).unwrap().key().id, 1);
        drop(held);
        let handed = queued.ready().unwrap();
        assert_eq!(handed.key().id, 2);
        drop(queued);

        bad.arm_eq(false);
        assert_eq!(pool.counts(&bad), counts(1, 1));
        drop(handed);
        assert!(pool.try_acquire_key(&bad).is_ok());
        pool.set(bad, 0);
        pool.set(good, 0);
        assert!(pool.is_empty());
        assert_eq!(pool.waiters(), 0);
    });
}

/// After a key's `Hash` panicked under the lock, the pool still works (see
/// above), and its `Debug` output should show the pool, not claim the lock
/// is held: nobody holds it.
///
/// (Regression: `Debug` once mapped a poisoned lock to `Shared(<locked>)`.)
#[test]
fn debug_after_a_panicking_hash_shows_the_pool() {
    let pool: Pool<Touchy> = Pool::new();
    let key = Touchy::new(1);
    pool.set(key.clone(), 1);
    let healthy = format!("{pool:?}");
    assert!(healthy.contains("keys: 1"), "{healthy}");
    key.arm_hash(true);
    assert!(panics(|| pool.counts(&key)));
    key.arm_hash(false);
    assert_eq!(pool.counts(&key), counts(1, 0), "the pool works");
    assert_eq!(format!("{pool:?}"), healthy);
}
