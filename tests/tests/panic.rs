//! Panics: a worker that panics while holding a lease gives it back during
//! unwinding (threads and tasks), a waiter that unwinds leaves the queue, and
//! a key whose `Clone` panics leaves the pool consistent and usable.

use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use workpool_std::{Counts, Pool};
use workpool_tests::{with_hang_guard, Probe, HANG_GUARD};

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// Polls `cond` until it holds; a guard, not a timing assumption.
fn spin_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "gave up waiting for {what}");
        thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn thread_panicking_with_a_lease_gives_it_back() {
    with_hang_guard("thread panic", HANG_GUARD, || {
        let pool: Pool<&'static str> = Pool::new();
        pool.set("k", 1);
        let (holding_tx, holding_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let worker = thread::spawn({
            let pool = pool.clone();
            move || {
                let lease = pool.acquire_key_blocking(&"k").unwrap();
                holding_tx.send(lease.id()).unwrap();
                go_rx.recv().unwrap();
                panic!("worker {} fails while holding its lease", lease.id());
            }
        });
        assert_eq!(holding_rx.recv().unwrap(), 1);
        let waiter = thread::spawn({
            let pool = pool.clone();
            move || pool.acquire_key_blocking(&"k").map(|lease| lease.id())
        });
        spin_until("the waiter to queue", || pool.waiting(&"k") == 1);
        assert_eq!(pool.counts(&"k"), counts(1, 1));

        go_tx.send(()).unwrap();
        assert!(worker.join().is_err(), "the worker panicked");
        assert_eq!(waiter.join().unwrap(), Ok(2), "the waiter was served");
        assert_eq!(pool.counts(&"k"), counts(1, 0));
        assert_eq!(pool.waiters(), 0);
    });
}

#[test]
fn task_panicking_with_a_lease_gives_it_back() {
    with_hang_guard("task panic", HANG_GUARD, || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool: Pool<&'static str> = Pool::new();
            pool.set("k", 1);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let lease = pool.acquire().await.unwrap();
            let worker = tokio::spawn(async move {
                rx.await.unwrap();
                panic!("task fails while holding lease {}", lease.id());
            });
            let waiter = tokio::spawn({
                let pool = pool.clone();
                async move { pool.acquire_key(&"k").await.map(|l| l.id()) }
            });
            while pool.waiters() == 0 {
                tokio::task::yield_now().await;
            }
            tx.send(()).unwrap();
            assert!(worker.await.unwrap_err().is_panic());
            assert_eq!(waiter.await.unwrap(), Ok(2));
            assert_eq!(pool.counts(&"k"), counts(1, 0));
        });
    });
}

#[test]
fn waiter_unwinding_leaves_the_queue() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let held = pool.try_acquire().unwrap();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut probe = Probe::new(pool.acquire_key(&"k"));
        probe.pending();
        assert_eq!(pool.waiters(), 1);
        panic!("the waiting code fails");
    }));
    assert!(result.is_err());
    assert_eq!(pool.waiters(), 0);
    drop(held);
    assert_eq!(pool.counts(&"k"), counts(1, 0));
    assert!(pool.try_acquire().is_ok(), "nobody holds the capacity");
}

/// A key whose `Clone` panics while `armed` is set. `Hash` and `Eq` look
/// at the name only.
#[derive(Debug)]
struct Fragile {
    name: &'static str,
    armed: Arc<AtomicBool>,
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        assert!(
            !self.armed.load(Ordering::SeqCst),
            "clone of {} fails",
            self.name
        );
        Self {
            name: self.name,
            armed: Arc::clone(&self.armed),
        }
    }
}

impl Fragile {
    /// A copy made without `Clone`, so it works while armed.
    fn clone_unarmed(&self) -> Self {
        Self {
            name: self.name,
            armed: Arc::clone(&self.armed),
        }
    }
}

impl PartialEq for Fragile {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Fragile {}

impl Hash for Fragile {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// A panicking `Clone` on the paths that grant without anyone waiting:
/// the panic reaches the caller and the pool is as before.
#[test]
fn panicking_clone_on_a_direct_grant_changes_nothing() {
    let armed = Arc::new(AtomicBool::new(false));
    let key = Fragile {
        name: "k",
        armed: Arc::clone(&armed),
    };
    let pool: Pool<Fragile> = Pool::new();
    pool.set(key.clone(), 2);
    armed.store(true, Ordering::SeqCst);
    assert!(panic::catch_unwind(AssertUnwindSafe(|| pool.try_acquire_key(&key))).is_err());
    assert!(panic::catch_unwind(AssertUnwindSafe(|| pool.try_acquire())).is_err());
    armed.store(false, Ordering::SeqCst);

    assert_eq!(pool.counts(&key), counts(2, 0));
    let a = pool.try_acquire().unwrap();
    let b = pool.try_acquire_key(&key).unwrap();
    assert_eq!(
        (a.id(), b.id()),
        (1, 2),
        "no id was used up by the failures"
    );
    assert!(pool.try_acquire().is_err());
}

/// A panicking `Clone` while a release hands its capacity to a waiter.
///
/// The hand-off itself runs no user code (the core clones the key only when
/// the waiter claims its lease), so the release completes and the waiter is
/// granted. The clone then panics inside the waiter's poll; the waiter keeps
/// its grant, and the next poll collects it. Contract point 8 holds
/// throughout: nobody waits behind room.
#[test]
fn panicking_clone_during_a_hand_off_keeps_the_grant() {
    let armed = Arc::new(AtomicBool::new(false));
    let key = Fragile {
        name: "k",
        armed: Arc::clone(&armed),
    };
    let pool: Pool<Fragile> = Pool::new();
    pool.set(key.clone(), 1);
    let lease = pool.try_acquire_key(&key).unwrap();
    let mut waiter = Probe::new(pool.acquire_key(&key));
    waiter.pending();

    armed.store(true, Ordering::SeqCst);
    drop(lease); // the hand-off clones nothing
    assert_eq!(pool.counts(&key), counts(1, 1), "granted to the waiter");
    assert_eq!(pool.waiting(&key), 0);
    let polled = panic::catch_unwind(AssertUnwindSafe(|| waiter.poll().is_ready()));
    assert!(
        polled.is_err(),
        "the clone panicked inside the waiter's poll"
    );
    armed.store(false, Ordering::SeqCst);

    // Nothing was lost or doubled, and no newcomer can barge in.
    assert_eq!(pool.counts(&key), counts(1, 1));
    assert!(pool.try_acquire_key(&key).is_err());
    let lease = waiter.ready().unwrap();
    assert_eq!(lease.id(), 2);
    drop(lease);
    assert_eq!(pool.counts(&key), counts(1, 0));
}

/// The same through `set`: raising a target serves the waiter without
/// running user code; a waiter whose claim panics and is then dropped passes
/// its grant on, so nothing leaks.
#[test]
fn panicking_clone_while_raising_a_target_leaks_nothing() {
    let armed = Arc::new(AtomicBool::new(false));
    let key = Fragile {
        name: "k",
        armed: Arc::clone(&armed),
    };
    let pool: Pool<Fragile> = Pool::new();
    let mut waiter = Probe::new(pool.acquire_key(&key));
    waiter.pending();

    pool.set(key.clone_unarmed(), 1);
    assert_eq!(pool.counts(&key), counts(1, 1), "granted to the waiter");
    armed.store(true, Ordering::SeqCst);
    let polled = panic::catch_unwind(AssertUnwindSafe(|| waiter.poll().is_ready()));
    armed.store(false, Ordering::SeqCst);
    assert!(
        polled.is_err(),
        "the clone panicked inside the waiter's poll"
    );

    drop(waiter); // gives the grant back
    assert_eq!(pool.counts(&key), counts(1, 0));
    assert!(pool.try_acquire_key(&key).is_ok());
}

/// A blocking acquisition whose claim panics in `K::clone` (issue 12, bug
/// 2): the waiter had been granted a lease by the hand-off; the unwinding
/// thread cancels it, so the grant passes on instead of leaking for ever.
#[test]
fn panicking_clone_in_a_blocking_claim_leaks_nothing() {
    with_hang_guard("blocking clone panic", HANG_GUARD, || {
        for timed in [false, true] {
            let armed = Arc::new(AtomicBool::new(false));
            let key = Fragile {
                name: "k",
                armed: Arc::clone(&armed),
            };
            let pool: Pool<Fragile> = Pool::new();
            pool.set(key.clone(), 1);
            let held = pool.try_acquire_key(&key).unwrap();
            let waiter = thread::spawn({
                let pool = pool.clone();
                let key = key.clone_unarmed();
                move || {
                    panic::catch_unwind(AssertUnwindSafe(|| {
                        if timed {
                            drop(pool.acquire_key_timeout(&key, HANG_GUARD));
                        } else {
                            drop(pool.acquire_key_blocking(&key));
                        }
                    }))
                    .is_err()
                }
            });
            spin_until("the thread to queue", || pool.waiting(&key) == 1);
            armed.store(true, Ordering::SeqCst);
            drop(held); // granted to the thread, whose claim then panics
            assert!(
                waiter.join().unwrap(),
                "the claim panicked (timed: {timed})"
            );
            armed.store(false, Ordering::SeqCst);
            assert_eq!(pool.counts(&key), counts(1, 0), "timed: {timed}");
            assert_eq!(pool.waiters(), 0);
            assert!(pool.try_acquire_key(&key).is_ok(), "timed: {timed}");
        }
    });
}

/// Polling an acquire future again after it completed panics, as tokio's
/// do, instead of handing out a second lease (issue 12, bug 1).
#[test]
fn polling_a_finished_acquire_future_panics() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 2);
    let mut any = Probe::new(pool.acquire());
    let first = any.ready().unwrap();
    assert!(panic::catch_unwind(AssertUnwindSafe(|| any.poll().is_ready())).is_err());
    let mut keyed = Probe::new(pool.acquire_key(&"k"));
    let second = keyed.ready().unwrap();
    assert!(panic::catch_unwind(AssertUnwindSafe(|| keyed.poll().is_ready())).is_err());
    assert_eq!((first.id(), second.id()), (1, 2));
    assert_eq!(
        pool.counts(&"k"),
        counts(2, 2),
        "no extra lease was granted"
    );
    drop((any, keyed));
    // The same after the pool closed: `Closed` once, then a panic.
    pool.close();
    let mut closed = Probe::new(pool.acquire());
    assert!(closed.ready().is_err());
    assert!(panic::catch_unwind(AssertUnwindSafe(|| closed.poll().is_ready())).is_err());
}

/// The owned futures panic the same way.
#[test]
fn polling_a_finished_owned_future_panics() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 2);
    let mut any = Probe::new(pool.acquire_owned());
    let first = any.ready().unwrap();
    assert!(panic::catch_unwind(AssertUnwindSafe(|| any.poll().is_ready())).is_err());
    let mut keyed = Probe::new(pool.acquire_key_owned("k"));
    let second = keyed.ready().unwrap();
    assert!(panic::catch_unwind(AssertUnwindSafe(|| keyed.poll().is_ready())).is_err());
    assert_eq!((first.id(), second.id()), (1, 2));
    assert_eq!(
        pool.counts(&"k"),
        counts(2, 2),
        "no extra lease was granted"
    );
    drop((any, keyed));
    pool.close();
    let mut closed = Probe::new(pool.acquire_key_owned("k"));
    assert!(closed.ready().is_err());
    assert!(panic::catch_unwind(AssertUnwindSafe(|| closed.poll().is_ready())).is_err());
}
