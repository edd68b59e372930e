//! The rest of the rule "no user code under a lock": the blocking paths,
//! keys dropped outside the lock (keys are user code too), a `close` that
//! wakes many re-entering wakers, and `snapshot`'s clones on a panic.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use workpool_std::{Counts, Pool};
use workpool_tests::with_hang_guard;

use crate::rows::{Outcome, Row, Subject, K};
use crate::wakers::{pending, Hostile, OnWake, Payload, Plain, Probe};

const GUARD: Duration = Duration::from_secs(10);

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// What [`close_with_re_entering_wakers`] leaves: the pool, each waiter's
/// row and outcome, and the probes of their wakers.
struct AfterClose {
    pool: Pool<u32>,
    outcomes: Vec<(Row, Outcome)>,
    probes: Vec<std::sync::Arc<Probe>>,
}

/// Waiters of every acquiring type whose wakers own leases of `lease_key`
/// (half of them release it when woken, every one when dropped), polled
/// pending; then `close`.
fn close_with_re_entering_wakers(lease_key: u32) -> AfterClose {
    let pool = Pool::new();
    pool.set(lease_key, 40);
    let leases: Vec<_> = (0..40)
        .map(|_| pool.try_acquire_key(&lease_key).unwrap())
        .collect();
    let rows: Vec<Row> = Row::ALL.into_iter().filter(|r| r.acquires()).collect();
    let mut waiting: Vec<(Row, Subject<'_>)> = Vec::new();
    let mut probes = Vec::new();
    for (i, lease) in leases.into_iter().enumerate() {
        let on_wake = if i % 2 == 0 {
            OnWake::Release
        } else {
            OnWake::Nothing
        };
        let (hostile, probe) = Hostile::owning(Payload::Lease(lease), on_wake);
        let row = rows[i % rows.len()];
        let mut subject = row.subject(&pool, &None);
        pending(&subject.poll(&hostile), "close");
        waiting.push((row, subject));
        probes.push(probe);
    }
    // The wakers are held by the pool only; closing wakes and drops them.
    pool.close();
    let (plain, _) = Plain::new();
    let outcomes = waiting
        .into_iter()
        .map(|(row, mut subject)| match subject.poll(&plain) {
            Poll::Ready(outcome) => (row, outcome),
            Poll::Pending => panic!("{row}: still pending after close"),
        })
        .collect();
    AfterClose {
        pool,
        outcomes,
        probes,
    }
}

/// `close` wakes every waiter of every acquiring type (any-key ones, and
/// key ones of `K`, which has no target); each waker owns a lease of
/// another key, half of them release it when woken, and every one is
/// dropped, all while `close` is still returning. 40 waiters: more than
/// one wake batch.
#[test]
fn close_wakes_re_entering_wakers_outside_the_lock() {
    with_hang_guard("close", GUARD, || {
        let other = K + 1;
        let AfterClose {
            pool,
            outcomes,
            probes,
        } = close_with_re_entering_wakers(other);
        assert!(probes.iter().all(|p| p.wakes() == 1 && p.dropped()));
        assert_eq!(pool.counts(&other), counts(40, 0));
        for (row, outcome) in outcomes {
            assert!(
                matches!(outcome, Outcome::Closed),
                "{row}: ended with Closed, got {outcome:?}"
            );
        }
    });
}

/// As above, but the wakers own leases of `K` itself, the key the key
/// waiters wait on: the units their drops give back during `close` must
/// not go to a waiter that was waiting when `close` was called (contract
/// 11: every waiting acquisition fails with `Closed`).
#[test]
fn close_fails_waiters_that_a_re_entrant_release_could_serve() {
    with_hang_guard("close, same key", GUARD, || {
        let AfterClose {
            pool,
            outcomes,
            probes,
        } = close_with_re_entering_wakers(K);
        assert!(probes.iter().all(|p| p.wakes() == 1 && p.dropped()));
        let served: Vec<String> = outcomes
            .iter()
            .filter(|(_, o)| !matches!(o, Outcome::Closed))
            .map(|(row, o)| format!("{row}: {o:?}"))
            .collect();
        assert!(served.is_empty(), "waiters served during close: {served:?}");
        drop(outcomes);
        assert_eq!(pool.counts(&K), counts(40, 0));
    });
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
        let plain = Waker::noop();
        let key = Reentrant(2);
        let mut waiting = Box::pin(pool.acquire_key(&key));
        assert!(waiting
            .as_mut()
            .poll(&mut Context::from_waker(plain))
            .is_pending());
        drop(waiting);
        assert!(pool.is_empty());
        // Waiters of three untracked keys, closed.
        let keys = [Reentrant(3), Reentrant(4), Reentrant(5)];
        let mut futures: Vec<_> = keys.iter().map(|k| Box::pin(pool.acquire_key(k))).collect();
        for f in &mut futures {
            assert!(f
                .as_mut()
                .poll(&mut Context::from_waker(plain))
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

/// A waker that owns requests of the tower layer (their tickets): its drop
/// drops them.
#[allow(dead_code, reason = "held only to be dropped")]
struct OwnsRequests(std::sync::Mutex<Vec<Box<dyn Send>>>);

impl std::task::Wake for OwnsRequests {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// `KeyedLimitLayer::with_default_target`: a request of an untracked key
/// gives the key its default target with `Pool::set`, which grants to an
/// any-key waiter and wakes it by value; if that waker owns requests of
/// the layer, dropping them ends their tickets, which take the layer's
/// per-key stripe locks. `Defaults` decides under the stripe lock and
/// calls `Pool::set` after unlocking, so a ticket of a key in the same
/// stripe (200 keys over 16 stripes: one shares the stripe all but
/// surely) does not deadlock.
#[test]
fn default_target_wakes_outside_the_stripe_lock() {
    use tower_layer::Layer;
    use tower_service::Service;
    use workpool_std::tower::KeyedLimitLayer;

    fn echo(request: u32) -> std::future::Ready<Result<u32, std::convert::Infallible>> {
        std::future::ready(Ok(request))
    }

    with_hang_guard("default target", GUARD, || {
        let pool: Pool<u32> = Pool::new();
        let layer = KeyedLimitLayer::new(pool.clone(), |r: &u32| *r).with_default_target(1);
        let mut service = layer.layer(tower::service_fn(echo as fn(u32) -> _));
        // 200 keys set and full by hand, each with a live request (and
        // ticket) of the layer that a waker owns.
        let mut held = Vec::new();
        let mut requests: Vec<Box<dyn Send>> = Vec::new();
        for key in 100..300_u32 {
            pool.set(key, 1);
            held.push(pool.try_acquire_key(&key).unwrap());
            requests.push(Box::new(service.call(key)));
        }
        let waker = Waker::from(std::sync::Arc::new(OwnsRequests(std::sync::Mutex::new(
            requests,
        ))));
        let mut any = Box::pin(pool.acquire_owned());
        pending(&any.as_mut().poll(&mut Context::from_waker(&waker)), "any");
        drop(waker); // the pool holds the last handle
                     // A request of the untracked key 1: its default target grants the
                     // any-key waiter, whose waker the pool wakes by value and drops.
        let request = service.call(1);
        assert_eq!(
            pool.counts(&1),
            counts(1, 1),
            "the any-key waiter got key 1"
        );
        let Poll::Ready(Ok(lease)) = any.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("the any-key waiter was granted");
        };
        assert_eq!(*lease.key(), 1);
        drop((lease, request, held));
    });
}
