//! `surplus()` and `drained()` never miss an edge, and `stats()` counts
//! what callers saw. Each case was a lost wake-up or a wrong count on the
//! code before the watches got per-watcher state; single thread, no timing.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use workpool_std::{Pool, Stats};

/// A waker that counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (Arc::clone(&count), Waker::from(count))
}

fn wakes(count: &Count) -> usize {
    count.0.load(Ordering::SeqCst)
}

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

#[test]
fn drained_sees_a_second_drain() {
    let pool: Pool<u32> = Pool::new();
    pool.set(1, 2);
    let a = pool.try_acquire_key(&1).unwrap();
    let (_, w0) = counting();
    let mut d0 = pin!(pool.drained(&1));
    assert!(poll_once(d0.as_mut(), &w0).is_pending());
    drop(a); // drained once
    let b = pool.try_acquire_key(&1).unwrap();
    let (count, w1) = counting();
    let mut d1 = pin!(pool.drained(&1));
    assert!(poll_once(d1.as_mut(), &w1).is_pending());
    drop(b);
    assert_eq!(pool.counts(&1).active, 0);
    assert_eq!(wakes(&count), 1, "the second drain woke the new watcher");
    assert!(poll_once(d1.as_mut(), &w1).is_ready());
    assert!(
        poll_once(d0.as_mut(), &w0).is_ready(),
        "the first one fired too"
    );
}

#[test]
fn surplus_after_the_limit_was_lifted_wakes() {
    let pool: Pool<u32> = Pool::new();
    pool.set(1, 5);
    let a = pool.try_acquire_key(&1).unwrap();
    let _b = pool.try_acquire_key(&1).unwrap();
    let (_, wd) = counting();
    let mut d = pin!(pool.drained(&1));
    assert!(poll_once(d.as_mut(), &wd).is_pending());
    pool.set_limit(Some(1));
    pool.set_limit(None);
    let (count, w) = counting();
    let mut s = pin!(a.surplus());
    assert!(poll_once(s.as_mut(), &w).is_pending());
    pool.set_limit(Some(1));
    assert!(a.is_surplus());
    assert_eq!(wakes(&count), 1, "the lowered limit woke the watcher");
    assert!(poll_once(s.as_mut(), &w).is_ready());
}

#[test]
fn a_fired_surplus_watcher_resolves_even_after_the_surplus_is_gone() {
    let pool: Pool<u32> = Pool::new();
    pool.set(1, 2);
    let a = pool.try_acquire_key(&1).unwrap();
    let b = pool.try_acquire_key(&1).unwrap();
    let (count, w) = counting();
    let mut s = pin!(a.surplus());
    assert!(poll_once(s.as_mut(), &w).is_pending());
    pool.set(1, 1); // surplus: fired
    pool.set(1, 2); // and not any more
    assert_eq!(wakes(&count), 1);
    assert!(poll_once(s.as_mut(), &w).is_ready(), "it became surplus");
    drop(b);
}

#[test]
fn a_re_poll_with_another_waker_wakes_the_new_one_only() {
    let pool: Pool<u32> = Pool::new();
    pool.set(1, 1);
    let a = pool.try_acquire_key(&1).unwrap();
    let (old, w_old) = counting();
    let (new, w_new) = counting();
    let mut d = pin!(pool.drained(&1));
    assert!(poll_once(d.as_mut(), &w_old).is_pending());
    assert!(poll_once(d.as_mut(), &w_new).is_pending());
    drop(a);
    assert_eq!((wakes(&old), wakes(&new)), (0, 1));
    assert!(poll_once(d.as_mut(), &w_new).is_ready());
}

#[test]
fn a_dropped_watcher_is_not_woken_and_leaves_nothing_behind() {
    let pool: Pool<u32> = Pool::new();
    pool.set(1, 1);
    let a = pool.try_acquire_key(&1).unwrap();
    let (count, w) = counting();
    {
        let mut d = pin!(pool.drained(&1));
        assert!(poll_once(d.as_mut(), &w).is_pending());
    }
    drop(a);
    assert_eq!(wakes(&count), 0);
    assert_eq!(Arc::strong_count(&count), 2, "the pool let its waker go");
}

#[test]
fn granted_counts_leases_that_reached_a_caller() {
    let pool: Pool<u32> = Pool::new();
    pool.set(1, 1);
    let held = pool.try_acquire().unwrap();
    let (_, w) = counting();
    let mut f1 = Box::pin(pool.acquire());
    let mut f2 = Box::pin(pool.acquire());
    assert!(poll_once(f1.as_mut(), &w).is_pending());
    assert!(poll_once(f2.as_mut(), &w).is_pending());
    drop(held); // handed to f1
    drop(f1); // which gave it up: on to f2
    let Poll::Ready(Ok(lease)) = poll_once(f2.as_mut(), &w) else {
        panic!("f2 was served");
    };
    assert_eq!(
        pool.stats(),
        Stats {
            granted: 2,
            waited: 2,
            cancelled: 1,
            timed_out: 0
        }
    );
    drop(lease);
}

#[test]
fn granted_counts_leases_that_reached_a_caller_by_key() {
    let pool: Pool<u32> = Pool::new();
    pool.set(1, 1);
    let held = pool.try_acquire_key(&1).unwrap();
    let (_, w) = counting();
    let mut f1 = Box::pin(pool.acquire_key(&1));
    assert!(poll_once(f1.as_mut(), &w).is_pending());
    drop(held); // handed to f1
    drop(f1); // given back to the key
    let stats = pool.stats();
    assert_eq!((stats.granted, stats.waited, stats.cancelled), (1, 1, 1));
    assert_eq!(pool.counts(&1).active, 0);
}
