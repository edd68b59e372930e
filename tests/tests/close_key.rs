//! `close_key`: the key's target becomes 0 and the acquisitions waiting for
//! it at that moment fail with `Closed`, of every kind (future, blocking
//! thread, timeout, deadline); any-key waiters, lease streams and leases out
//! are untouched; and the pool does not remember the close, so a later
//! acquisition waits as on any target-0 key and is served once the key is
//! set again.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use workpool_std::{AcquireTimeoutError, Closed, Counts, Pool};
use workpool_tests::{with_hang_guard, Probe, HANG_GUARD};

const GUARD: Duration = Duration::from_secs(20);

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// Spins (yielding) until `cond` holds; panics after [`GUARD`].
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "gave up waiting for {what}");
        thread::yield_now();
    }
}

#[test]
fn key_waiters_of_every_kind_fail() {
    with_hang_guard("every kind", GUARD, || {
        let pool: Pool<&'static str> = Pool::new();
        pool.set("k", 1);
        let held = pool.try_acquire_key(&"k").unwrap();
        let mut future = Probe::new(pool.acquire_key(&"k"));
        future.pending();
        let threads = [
            thread::spawn({
                let pool = pool.clone();
                move || {
                    pool.acquire_key_blocking(&"k")
                        .map(drop)
                        .map_err(|_| "closed")
                }
            }),
            thread::spawn({
                let pool = pool.clone();
                move || match pool.acquire_key_timeout(&"k", HANG_GUARD) {
                    Err(AcquireTimeoutError::Closed) => Err("closed"),
                    other => other.map(drop).map_err(|_| "timeout"),
                }
            }),
            thread::spawn({
                let pool = pool.clone();
                move || match pool.acquire_key_deadline(&"k", Instant::now() + HANG_GUARD) {
                    Err(AcquireTimeoutError::Closed) => Err("closed"),
                    other => other.map(drop).map_err(|_| "timeout"),
                }
            }),
        ];
        wait_for("four waiters", || pool.waiting(&"k") == 4);

        pool.close_key(&"k");
        assert_eq!(future.wakes(), 1);
        assert_eq!(future.ready().unwrap_err(), Closed);
        for t in threads {
            assert_eq!(t.join().unwrap(), Err("closed"));
        }
        assert_eq!(pool.waiters(), 0);
        assert!(!pool.is_closed(), "only the key was closed");
        assert_eq!(pool.counts(&"k"), counts(0, 1));
        drop(held);
        assert!(pool.is_empty());
    });
}

#[test]
fn any_key_waiters_and_lease_streams_stay() {
    with_hang_guard("any-key waiters", GUARD, || {
        let pool: Pool<&'static str> = Pool::new();
        pool.set("a", 1);
        pool.set("b", 1);
        let a = pool.try_acquire_key(&"a").unwrap();
        let b = pool.try_acquire_key(&"b").unwrap();

        let mut for_a = Probe::new(pool.acquire_key(&"a"));
        for_a.pending();
        let mut any = Probe::new(pool.acquire());
        any.pending();
        let mut stream = pool.leases();
        let mut next = Probe::new(async move {
            let lease = stream.next().await;
            (lease, stream)
        });
        next.pending();
        let thread = thread::spawn({
            let pool = pool.clone();
            move || pool.acquire_blocking().map(|l| *l.key())
        });
        wait_for("four waiters", || pool.waiters() == 4);

        pool.close_key(&"a");
        assert_eq!(for_a.wakes(), 1);
        assert_eq!(for_a.ready().unwrap_err(), Closed);
        assert_eq!((any.wakes(), next.wakes()), (0, 0));
        any.pending();
        next.pending();
        assert_eq!(pool.waiters(), 3);
        assert_eq!(pool.counts(&"a"), counts(0, 1));

        // "a" is at target 0: its release serves nobody.
        drop(a);
        assert_eq!((any.wakes(), next.wakes()), (0, 0));
        assert_eq!(pool.waiters(), 3);
        assert_eq!(pool.len(), 1, "`a` is forgotten");
        // "b"'s release serves the oldest any-key waiter.
        drop(b);
        assert_eq!(any.wakes(), 1);
        let lease = any.ready().unwrap();
        assert_eq!(*lease.key(), "b");

        // The stream and the thread are served by a new key.
        pool.set("c", 2);
        let Poll::Ready((Some(from_stream), stream)) = next.poll() else {
            panic!("the stream goes on after close_key");
        };
        assert_eq!(*from_stream.key(), "c");
        assert_eq!(thread.join().unwrap(), Ok("c"));
        drop((lease, from_stream, stream));
        assert_eq!(pool.counts(&"c"), counts(2, 0));
    });
}

#[test]
fn leases_stay_valid_and_keep_counting() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 2);
    let one = pool.try_acquire_key(&"k").unwrap();
    let two = pool.try_acquire().unwrap();
    pool.close_key(&"k");
    assert_eq!(pool.counts(&"k"), counts(0, 2));
    assert_eq!((one.id(), *one.key()), (1, "k"));
    assert_eq!((two.id(), *two.key()), (2, "k"));
    assert!(pool.try_acquire_key(&"k").is_err());
    assert_eq!(pool.snapshot(), [("k", counts(0, 2), 0)]);

    // Set again, the key still counts them.
    pool.set("k", 1);
    assert_eq!(pool.counts(&"k"), counts(1, 2));
    drop(one);
    assert_eq!(pool.counts(&"k"), counts(1, 1));
    assert!(pool.try_acquire_key(&"k").is_err());
    drop(two);
    assert_eq!(pool.counts(&"k"), counts(1, 0));
    assert_eq!(pool.try_acquire_key(&"k").unwrap().id(), 3);
}

#[test]
fn a_later_acquisition_waits_and_is_served_when_the_key_is_set_again() {
    with_hang_guard("later", GUARD, || {
        let pool: Pool<String> = Pool::new();
        pool.set("k".to_owned(), 1);
        let held = pool.try_acquire_key("k").unwrap();
        let mut early = Probe::new(pool.acquire_key("k"));
        early.pending();
        pool.close_key("k");
        assert_eq!(early.ready().unwrap_err(), Closed);

        // The close is not remembered: newcomers wait, of both kinds.
        let mut late = Probe::new(pool.acquire_key("k"));
        late.pending();
        let thread = thread::spawn({
            let pool = pool.clone();
            move || pool.acquire_key_blocking("k").map(|l| l.id())
        });
        wait_for("two waiters", || pool.waiting("k") == 2);
        drop(held);
        assert_eq!(late.wakes(), 0, "target 0 serves nobody");
        assert_eq!(pool.counts("k"), counts(0, 0));

        pool.set("k".to_owned(), 2);
        assert_eq!(late.wakes(), 1);
        assert_eq!(late.ready().unwrap().id(), 2);
        assert_eq!(thread.join().unwrap(), Ok(3));
        assert_eq!(pool.counts("k"), counts(2, 0));
    });
}

#[test]
fn a_later_timed_acquisition_times_out_as_on_any_target_zero_key() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    pool.close_key(&"k");
    assert!(pool.is_empty());
    let outcome = pool.acquire_key_timeout(&"k", Duration::from_millis(20));
    assert_eq!(outcome.unwrap_err(), AcquireTimeoutError::Timeout);
    assert!(pool.is_empty());
    assert_eq!(pool.waiters(), 0);
}

#[test]
fn an_acquisition_already_granted_keeps_its_lease() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 1);
    let held = pool.try_acquire_key(&"k").unwrap();
    let mut first = Probe::new(pool.acquire_key(&"k"));
    let mut second = Probe::new(pool.acquire_key(&"k"));
    first.pending();
    second.pending();
    drop(held); // granted to `first`, which has not claimed it yet
    pool.close_key(&"k");
    assert_eq!((first.wakes(), second.wakes()), (1, 1));
    assert_eq!(second.ready().unwrap_err(), Closed);
    let lease = first.ready().unwrap();
    assert_eq!(lease.id(), 2);
    assert_eq!(pool.counts(&"k"), counts(0, 1));
    drop(lease);
    assert!(pool.is_empty());
}

#[test]
fn closing_an_untracked_key_is_harmless() {
    let pool: Pool<String> = Pool::new();
    pool.close_key("nobody");
    assert!(pool.is_empty());

    pool.set("k".to_owned(), 1);
    let held = pool.try_acquire().unwrap();
    let mut key = Probe::new(pool.acquire_key("k"));
    let mut any = Probe::new(pool.acquire());
    key.pending();
    any.pending();
    pool.close_key("nobody");
    pool.close_key(&"nobody".to_owned());
    assert_eq!((key.wakes(), any.wakes()), (0, 0));
    assert_eq!((pool.len(), pool.waiters()), (1, 2));
    assert_eq!(pool.counts("k"), counts(1, 1));
    assert_eq!(pool.counts("nobody"), counts(0, 0));
    drop(held);
    assert_eq!(key.ready().unwrap().id(), 2); // and dropped: on to `any`
    assert_eq!(any.ready().unwrap().id(), 3);
}

#[test]
fn works_after_close() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("k", 2);
    let held = pool.try_acquire().unwrap();
    let mut waiting = Probe::new(pool.acquire_key(&"gone"));
    waiting.pending();
    pool.close();
    assert_eq!(waiting.ready().unwrap_err(), Closed);
    pool.close_key(&"k");
    pool.close_key(&"gone");
    assert_eq!(pool.counts(&"k"), counts(0, 1));
    drop(held);
    assert!(pool.is_empty());
}

/// A waker that re-enters the pool when woken: it closes the key again and
/// sets another key. `close_key` wakes after unlocking, in batches, so this
/// cannot deadlock.
struct ReEnter {
    pool: Pool<&'static str>,
    wakes: AtomicUsize,
}

impl Wake for ReEnter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.pool.close_key(&"k");
        self.pool.set("other", 1);
    }
}

#[test]
fn wakers_that_re_enter_are_woken_outside_the_lock() {
    with_hang_guard("re-entrant wakers", GUARD, || {
        const N: usize = 40; // more than one wake batch
        let pool: Pool<&'static str> = Pool::new();
        let waker = Arc::new(ReEnter {
            pool: pool.clone(),
            wakes: AtomicUsize::new(0),
        });
        let waker_handle = Waker::from(Arc::clone(&waker));
        let mut futures: Vec<_> = (0..N).map(|_| Box::pin(pool.acquire_key(&"k"))).collect();
        for f in &mut futures {
            let mut cx = std::task::Context::from_waker(&waker_handle);
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        pool.close_key(&"k");
        assert_eq!(waker.wakes.load(Ordering::SeqCst), N);
        for f in &mut futures {
            let mut cx = std::task::Context::from_waker(&waker_handle);
            assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Err(Closed))));
        }
        assert_eq!(pool.waiters(), 0);
        assert_eq!(pool.snapshot(), [("other", counts(1, 0), 0)]);
    });
}
