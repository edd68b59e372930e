//! No user code under a lock of the pool: wakers (their wake and their
//! drop), leases and keys may re-enter the pool, and nothing deadlocks.
//!
//! The scenarios follow tokio's regression test for its issue 5429
//! (`release_permits_at_drop`): a waker that owns a lease is replaced or
//! consumed by the pool, and dropping it releases that lease. Each one runs
//! under a hang guard, so a regression fails in seconds instead of hanging.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use futures_core::Stream;
use workpool_std::{Counts, Lease, Pool};
use workpool_tests::with_hang_guard;

const GUARD: Duration = Duration::from_secs(10);

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// What a [`Hostile`] waker does when it is woken.
enum OnWake {
    Nothing,
    /// Drops the lease it holds.
    Release,
    /// Calls `set(key, target)` on the pool.
    Set(Pool<&'static str>, &'static str, u64),
}

/// A waker that owns a lease (dropped with the waker) and may act on the
/// pool when woken.
struct Hostile {
    lease: Mutex<Option<Lease<&'static str>>>,
    on_wake: Mutex<OnWake>,
    wakes: AtomicUsize,
}

impl Hostile {
    /// A waker owning `lease`; the returned `Waker` is its only handle, so
    /// whoever drops the last clone drops the lease.
    fn owning(lease: Lease<&'static str>, on_wake: OnWake) -> Waker {
        Waker::from(Arc::new(Self {
            lease: Mutex::new(Some(lease)),
            on_wake: Mutex::new(on_wake),
            wakes: AtomicUsize::new(0),
        }))
    }
}

impl Wake for Hostile {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        match &*self.on_wake.lock().unwrap() {
            OnWake::Nothing => {}
            OnWake::Release => drop(self.lease.lock().unwrap().take()),
            OnWake::Set(pool, key, target) => pool.set(key, *target),
        }
    }
}

/// A waker that counts its wakes and does nothing else.
#[derive(Default)]
struct Plain(AtomicUsize);

impl Wake for Plain {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// How a scenario waits: the three async ways to ask for a lease.
#[derive(Clone, Copy, Debug)]
enum Way {
    Key,
    Any,
    Stream,
}

const WAYS: [Way; 3] = [Way::Key, Way::Any, Way::Stream];

/// A pending acquisition of one of the three kinds, polled by hand.
enum Pending<'a> {
    Key(Pin<Box<workpool_std::futures::AcquireKey<'a, &'static str>>>),
    Any(Pin<Box<workpool_std::futures::Acquire<'a, &'static str>>>),
    Stream(Pin<Box<workpool_std::futures::Leases<&'static str>>>),
}

impl<'a> Pending<'a> {
    fn new(pool: &'a Pool<&'static str>, way: Way) -> Self {
        match way {
            Way::Key => Self::Key(Box::pin(pool.acquire_key(&"k"))),
            Way::Any => Self::Any(Box::pin(pool.acquire())),
            Way::Stream => Self::Stream(Box::pin(pool.leases())),
        }
    }

    fn poll(&mut self, waker: &Waker) -> Poll<Option<Lease<&'static str>>> {
        let mut cx = Context::from_waker(waker);
        match self {
            Self::Key(f) => f.as_mut().poll(&mut cx).map(Result::ok),
            Self::Any(f) => f.as_mut().poll(&mut cx).map(Result::ok),
            Self::Stream(s) => s.as_mut().poll_next(&mut cx),
        }
    }
}

/// Scenario 1 of tokio 5429: a pending acquisition is polled again with a
/// new waker; the replaced waker owned the last handle of a lease of the
/// same key, so dropping it releases that lease, which serves this very
/// acquisition.
#[test]
fn a_replaced_waker_that_owns_a_lease_is_dropped_outside_the_lock() {
    for way in WAYS {
        with_hang_guard(&format!("re-poll {way:?}"), GUARD, move || {
            let pool = Pool::new();
            pool.set("k", 1);
            let held = pool.try_acquire_key(&"k").unwrap();
            let mut pending = Pending::new(&pool, way);
            let first = Hostile::owning(held, OnWake::Nothing);
            assert!(pending.poll(&first).is_pending());
            drop(first); // the pool now holds the only handle
            let plain = Arc::new(Plain::default());
            let second = Waker::from(Arc::clone(&plain));
            // Replacing the waker drops `first`, which releases `held`,
            // which grants the capacity to this acquisition and wakes it.
            let polled = pending.poll(&second);
            assert!(
                polled.is_pending(),
                "{way:?}: the grant comes with the next poll"
            );
            assert_eq!(plain.0.load(Ordering::SeqCst), 1, "{way:?}: woken once");
            let Poll::Ready(Some(lease)) = pending.poll(&second) else {
                panic!("{way:?}: the released capacity went to this waiter");
            };
            assert_eq!(lease.id(), 2);
            assert_eq!(pool.counts(&"k"), counts(1, 1));
            drop(lease);
            drop(pending);
            assert_eq!(pool.counts(&"k"), counts(1, 0));
        });
    }
}

/// Scenario 2 of tokio 5429: a release wakes a waiter whose waker holds
/// the last handle of another lease; waking consumes the waker, dropping
/// it releases that lease, and the release must not find the pool locked.
#[test]
fn a_woken_waker_that_owns_a_lease_is_dropped_outside_the_lock() {
    for way in WAYS {
        with_hang_guard(&format!("wake by value {way:?}"), GUARD, move || {
            let pool = Pool::new();
            pool.set("k", 1);
            pool.set("m", 1);
            let held = pool.try_acquire_key(&"k").unwrap();
            let other = pool.try_acquire_key(&"m").unwrap();
            let mut pending = Pending::new(&pool, way);
            let hostile = Hostile::owning(other, OnWake::Nothing);
            assert!(pending.poll(&hostile).is_pending());
            drop(hostile);
            drop(held); // serves the waiter, wakes (and drops) its waker
            assert_eq!(
                pool.counts(&"m"),
                counts(1, 0),
                "{way:?}: the waker's lease came back"
            );
            let plain = Waker::from(Arc::new(Plain::default()));
            let Poll::Ready(Some(lease)) = pending.poll(&plain) else {
                panic!("{way:?}: the waiter was served");
            };
            assert!(matches!(*lease.key(), "k" | "m"));
            drop(lease);
            drop(pending);
            assert_eq!(pool.counts(&"k").active + pool.counts(&"m").active, 0);
        });
    }
}

/// A waker whose `wake` (not its drop) releases a lease, or calls `set`,
/// re-enters the pool while the release that woke it is still returning.
#[test]
fn a_waker_that_releases_or_sets_when_woken_does_not_deadlock() {
    for way in WAYS {
        for sets in [false, true] {
            let name = format!("wake acts {way:?} sets={sets}");
            with_hang_guard(&name.clone(), GUARD, move || {
                let pool = Pool::new();
                pool.set("k", 1);
                pool.set("m", 1);
                let held = pool.try_acquire_key(&"k").unwrap();
                let other = pool.try_acquire_key(&"m").unwrap();
                let on_wake = if sets {
                    OnWake::Set(pool.clone(), "m", 3)
                } else {
                    OnWake::Release
                };
                let hostile = Hostile::owning(other, on_wake);
                let mut pending = Pending::new(&pool, way);
                assert!(pending.poll(&hostile).is_pending());
                drop(held);
                let expected = if sets { counts(3, 1) } else { counts(1, 0) };
                assert_eq!(pool.counts(&"m"), expected, "{name}: the wake ran");
                let Poll::Ready(Some(lease)) = pending.poll(&hostile) else {
                    panic!("{name}: the waiter was served");
                };
                drop(lease);
                drop(pending);
                drop(hostile);
                assert_eq!(pool.counts(&"k"), counts(1, 0));
                assert_eq!(pool.counts(&"m").active, 0);
            });
        }
    }
}

/// `close` wakes every waiter; each waker owns a lease and releases it when
/// woken, and again when dropped, all while close is still returning.
#[test]
fn close_wakes_re_entering_wakers_outside_the_lock() {
    with_hang_guard("close", GUARD, || {
        let pool = Pool::new();
        pool.set("m", 40);
        let mut pendings: Vec<Pending<'_>> = Vec::new();
        // 40 waiters, more than one wake batch, while no key has room.
        let leases: Vec<_> = (0..40)
            .map(|_| pool.try_acquire_key(&"m").unwrap())
            .collect();
        for (i, lease) in leases.into_iter().enumerate() {
            let on_wake = if i % 2 == 0 {
                OnWake::Release
            } else {
                OnWake::Nothing
            };
            let hostile = Hostile::owning(lease, on_wake);
            let mut pending = Pending::new(&pool, WAYS[i % 3]);
            assert!(pending.poll(&hostile).is_pending());
            pendings.push(pending);
        }
        // The wakers are held by the pool only; closing wakes and drops them.
        pool.close();
        assert_eq!(pool.counts(&"m"), counts(40, 0));
        let plain = Waker::from(Arc::new(Plain::default()));
        for mut pending in pendings {
            assert!(matches!(pending.poll(&plain), Poll::Ready(None)));
        }
    });
}

/// A waker that owns a `Pool` handle: dropping the waker drops the handle.
struct HandleWaker(#[allow(dead_code)] Pool<&'static str>);

impl Wake for HandleWaker {
    fn wake(self: Arc<Self>) {}
}

/// The last `Pool` handle lives in a waker the pool holds. When the pool
/// replaces that waker (a re-poll) or drops it (a cancel), the handle's
/// drop closes the pool, which takes the lock: it must run after the
/// pool unlocked. The other waiters end with `Closed`.
#[test]
fn a_dropped_waker_that_owns_the_last_handle_closes_the_pool_outside_the_lock() {
    for cancel in [false, true] {
        with_hang_guard(&format!("last handle, cancel={cancel}"), GUARD, move || {
            let pool = Pool::new();
            pool.set("k", 1);
            let held = pool.try_acquire().unwrap();
            let mut owner = Box::pin(pool.acquire_key_owned("k"));
            let mut other = Box::pin(pool.acquire_owned());
            let mut leases = pool.leases();
            let plain = Arc::new(Plain::default());
            let plain_waker = Waker::from(Arc::clone(&plain));
            let mut cx = Context::from_waker(&plain_waker);
            assert!(other.as_mut().poll(&mut cx).is_pending());
            assert!(Pin::new(&mut leases).poll_next(&mut cx).is_pending());
            let owning = Waker::from(Arc::new(HandleWaker(pool)));
            assert!(owner
                .as_mut()
                .poll(&mut Context::from_waker(&owning))
                .is_pending());
            drop(owning); // the pool's waker slot holds the last handle now
            if cancel {
                drop(owner);
            } else {
                // The new waker is stored, then the old one is dropped
                // after unlocking, which closes the pool and wakes us.
                assert!(owner.as_mut().poll(&mut cx).is_pending());
                assert!(matches!(
                    owner.as_mut().poll(&mut cx),
                    Poll::Ready(Err(workpool_std::Closed))
                ));
            }
            assert!(plain.0.load(Ordering::SeqCst) >= 2, "close woke the others");
            assert!(matches!(
                other.as_mut().poll(&mut cx),
                Poll::Ready(Err(workpool_std::Closed))
            ));
            assert!(matches!(
                Pin::new(&mut leases).poll_next(&mut cx),
                Poll::Ready(None)
            ));
            assert_eq!((held.id(), *held.key()), (1, "k"));
            drop(held);
        });
    }
}

/// The blocking paths: a thread that times out while another thread drops
/// a lease, and a thread served by a release, never deadlock and keep the
/// counts exact.
#[test]
fn blocking_timeouts_racing_releases_keep_counts_exact() {
    with_hang_guard("blocking race", GUARD, || {
        let pool: Pool<&'static str> = Pool::new();
        pool.set("k", 1);
        for round in 0..200u64 {
            let held = pool.try_acquire_key(&"k").unwrap();
            let releaser = thread::spawn(move || {
                thread::sleep(Duration::from_micros(round % 7 * 50));
                drop(held);
            });
            let outcome = pool.acquire_key_timeout(&"k", Duration::from_micros(round % 5 * 60));
            releaser.join().unwrap();
            drop(outcome);
            assert_eq!(pool.counts(&"k"), counts(1, 0), "round {round}");
            assert_eq!(pool.waiters(), 0, "round {round}");
        }
    });
}

thread_local! {
    /// The pool a [`Reentrant`] key visits when it is dropped.
    static VISIT: std::cell::RefCell<Option<Pool<Reentrant>>> = const { std::cell::RefCell::new(None) };
}

static KEY_DROPS: AtomicUsize = AtomicUsize::new(0);

/// A key whose `Drop` uses the pool (reads counts and sets another key).
#[derive(Clone, Debug)]
struct Reentrant(u32);

impl PartialEq for Reentrant {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Reentrant {}

impl Hash for Reentrant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        KEY_DROPS.fetch_add(1, Ordering::SeqCst);
        if self.0 == u32::MAX {
            return; // the probe key below
        }
        let pool = VISIT.with(|v| v.borrow().clone());
        if let Some(pool) = pool {
            let _ = pool.counts(&Self(u32::MAX));
        }
    }
}

/// Keys are dropped outside the lock: the duplicate key `set` does not
/// keep, the key of a released lease, keys forgotten by `set(k, 0)`, by a
/// release, by a cancel and by `close`.
#[test]
fn keys_are_dropped_outside_the_lock() {
    with_hang_guard("key drops", GUARD, || {
        let pool: Pool<Reentrant> = Pool::new();
        VISIT.with(|v| *v.borrow_mut() = Some(pool.clone()));
        let before = KEY_DROPS.load(Ordering::SeqCst);
        pool.set(Reentrant(1), 2);
        pool.set(Reentrant(1), 1); // the duplicate is dropped
        let lease = pool.try_acquire_key(&Reentrant(1)).unwrap();
        pool.set(Reentrant(1), 0);
        drop(lease); // the lease's key, then the forgotten group's key
        assert!(pool.is_empty());
        // A key waiter of an untracked key, cancelled: its group is forgotten.
        let plain = Waker::from(Arc::new(Plain::default()));
        let key = Reentrant(2);
        let mut waiting = Box::pin(pool.acquire_key(&key));
        assert!(waiting
            .as_mut()
            .poll(&mut Context::from_waker(&plain))
            .is_pending());
        drop(waiting);
        assert!(pool.is_empty());
        // Waiters of three untracked keys, closed.
        let keys = [Reentrant(3), Reentrant(4), Reentrant(5)];
        let mut futures: Vec<_> = keys.iter().map(|k| Box::pin(pool.acquire_key(k))).collect();
        for f in &mut futures {
            assert!(f
                .as_mut()
                .poll(&mut Context::from_waker(&plain))
                .is_pending());
        }
        pool.close();
        assert!(pool.is_empty());
        drop(futures);
        drop(keys);
        drop(key);
        VISIT.with(|v| v.borrow_mut().take());
        // Every key made above was dropped (the probe keys in `Drop` too).
        assert!(KEY_DROPS.load(Ordering::SeqCst) - before >= 10);
    });
}

thread_local! {
    /// Clones of [`Brittle`] left before one panics.
    static CLONES_LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(u32::MAX) };
    /// The pool a [`Brittle`] key reads when it is dropped.
    static BRITTLE_POOL: std::cell::RefCell<Option<Pool<Brittle>>> = const { std::cell::RefCell::new(None) };
}

/// A key whose `Clone` panics when told to, and whose `Drop` uses the pool.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Brittle(u32);

impl Clone for Brittle {
    fn clone(&self) -> Self {
        let left = CLONES_LEFT.with(std::cell::Cell::get);
        assert!(left > 0, "clone of {} fails", self.0);
        CLONES_LEFT.with(|c| c.set(left - 1));
        Self(self.0)
    }
}

impl Drop for Brittle {
    fn drop(&mut self) {
        let pool = BRITTLE_POOL.with(|p| p.borrow().clone());
        if let Some(pool) = pool {
            let _ = pool.len(); // takes the pool's lock
        }
    }
}

/// `snapshot` whose `K::clone` panics half-way: the keys it had cloned are
/// dropped after the lock is released, so their `Drop` can use the pool.
#[test]
fn a_snapshot_that_panics_drops_its_clones_outside_the_lock() {
    with_hang_guard("snapshot panic", GUARD, || {
        let pool: Pool<Brittle> = Pool::new();
        for k in 0..8 {
            pool.set(Brittle(k), 1);
        }
        BRITTLE_POOL.with(|p| *p.borrow_mut() = Some(pool.clone()));
        CLONES_LEFT.with(|c| c.set(3));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.snapshot()));
        assert!(caught.is_err(), "the fourth clone panicked");
        CLONES_LEFT.with(|c| c.set(u32::MAX));
        BRITTLE_POOL.with(|p| p.borrow_mut().take());
        // The pool is still usable and whole.
        assert_eq!(pool.snapshot().len(), 8);
        assert_eq!(pool.len(), 8);
    });
}
