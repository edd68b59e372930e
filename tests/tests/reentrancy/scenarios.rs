//! The scenarios (columns of the table), each written once against a
//! [`Row`] driver. They follow tokio's regression test for its issue 5429
//! (`release_permits_at_drop`): a waker the pool holds owns something whose
//! drop re-enters the pool, and the pool must drop (and wake) it only after
//! unlocking.
//!
//! Every scenario ends by checking the outcome of the subject and, where
//! the pool is still reachable, that no lease and no waiter is left.

use std::task::{Context, Poll, Waker};

use workpool_std::{Closed, Counts, Lease, PollPool, Pool};

use crate::rows::{neighbour, Blockers, Outcome, Row, Subject, K};
use crate::wakers::{pending, Hostile, OnWake, Payload, Plain};

/// Polls `subject` until the row's event made it ready: if `polled` (its
/// last poll with `waker`) is pending and nothing woke `waker` yet, fires
/// the event; then the waker must have been woken and the next poll ready.
fn settle(
    row: Row,
    what: &str,
    pool: &Pool<u32>,
    blockers: &mut Blockers,
    subject: &mut Subject<'_>,
    (waker, counter): (&Waker, &Plain),
    polled: Poll<Outcome>,
) -> Outcome {
    if let Poll::Ready(outcome) = polled {
        return outcome;
    }
    if counter.wakes() == 0 {
        assert!(
            !row.fires_without_handle(),
            "{what}: releasing the bait made the subject ready, but nothing woke it"
        );
        row.fire(pool, blockers);
    }
    assert!(counter.wakes() >= 1, "{what}: the ready subject was woken");
    match subject.poll(waker) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => panic!("{what}: still pending after its event"),
    }
}

/// Nothing is left: no live lease, no waiter.
fn assert_clean(pool: &Pool<u32>, what: &str) {
    assert_eq!(pool.active(), 0, "{what}: every lease came back");
    assert_eq!(pool.waiters(), 0, "{what}: no waiter is left");
}

/// (a) The subject is polled again with a new waker while the pool holds
/// the old one, whose only owner it is; the old waker owns `payload(bait)`,
/// where the bait is a lease of the subject's own key. The pool must store
/// the new waker and drop the old one after unlocking: its drop releases
/// the bait (for acquisitions and `Drained`, that release is what makes
/// the subject ready; for `Surplus` it changes nothing, and the row's
/// event comes after).
fn repoll_with(row: Row, what: &str, payload: fn(Lease<u32>) -> Payload) {
    let pool = Pool::new();
    let (watched, mut blockers) = row.arm(&pool);
    let bait = row.key_bait(&pool, &mut blockers);
    let bait_id = bait.id();
    let (hostile, probe) = Hostile::owning(payload(bait), OnWake::Nothing);
    let mut subject = row.subject(&pool, &watched);
    pending(&subject.poll(&hostile), what);
    drop(hostile);
    assert!(!probe.dropped(), "{what}: the pool holds the first waker");
    let (waker, plain) = Plain::new();
    let polled = subject.poll(&waker);
    assert!(
        probe.dropped(),
        "{what}: the replaced waker was dropped (and its lease released)"
    );
    assert_eq!(probe.wakes(), 0, "{what}: the replaced waker was not woken");
    let outcome = settle(
        row,
        what,
        &pool,
        &mut blockers,
        &mut subject,
        (&waker, &plain),
        polled,
    );
    row.check(&outcome, what);
    if let Outcome::Lease(lease) = &outcome {
        assert_ne!(lease.id(), bait_id, "{what}: a new lease");
    }
    drop((outcome, subject));
    drop((watched, blockers));
    assert_clean(&pool, what);
}

/// (a) with the old waker owning a lease of the subject's key.
pub(crate) fn a_repoll(row: Row, what: &str) {
    repoll_with(row, what, Payload::Lease);
}

/// (a) with the old waker owning a task that holds a lease of the
/// subject's key and waits for that lease's `surplus()`: dropping the
/// waker drops a watcher of the same key, then releases the lease, as
/// dropping an executor's task would.
pub(crate) fn a_repoll_task(row: Row, what: &str) {
    repoll_with(row, what, Payload::watching_task);
}

/// Arms `row`, gives the neighbour key one unit and takes it as the bait
/// (the neighbour is in `K`'s shard, so releasing it takes `K`'s lock).
fn arm_with_neighbour_bait(
    row: Row,
    pool: &Pool<u32>,
) -> (Option<Lease<u32>>, Blockers, u32, Lease<u32>) {
    let (watched, blockers) = row.arm(pool);
    let m = neighbour(pool);
    pool.set(m, 1);
    let bait = pool.try_acquire_key(&m).unwrap();
    (watched, blockers, m, bait)
}

/// (b) The subject's waker is the last handle of a waker that owns a
/// lease; the row's event makes the pool wake it (by value: the pool
/// drops it with the wake), and that drop releases the lease. Neither
/// the wake nor the drop may find a lock of the pool held.
pub(crate) fn b_wake_by_value(row: Row, what: &str) {
    let pool = Pool::new();
    let (watched, mut blockers, m, bait) = arm_with_neighbour_bait(row, &pool);
    let (hostile, probe) = Hostile::owning(Payload::Lease(bait), OnWake::Nothing);
    let mut subject = row.subject(&pool, &watched);
    pending(&subject.poll(&hostile), what);
    drop(hostile);
    row.fire(&pool, &mut blockers);
    assert_eq!(probe.wakes(), 1, "{what}: woken once");
    assert!(probe.dropped(), "{what}: the woken waker was dropped");
    assert_eq!(
        pool.counts(&m).active,
        0,
        "{what}: the waker's lease came back"
    );
    let (waker, _) = Plain::new();
    let Poll::Ready(outcome) = subject.poll(&waker) else {
        panic!("{what}: ready after its event");
    };
    row.check(&outcome, what);
    drop((outcome, subject));
    drop((watched, blockers));
    assert_clean(&pool, what);
}

/// (c) The subject's waker acts when woken: `on_wake` runs while the
/// operation that woke it is still returning, and `effect` checks that it
/// ran. The test keeps a handle of the waker, so its drop does nothing.
fn wake_acts(
    row: Row,
    what: &str,
    on_wake: impl FnOnce(&Pool<u32>) -> OnWake,
    effect: impl FnOnce(&Pool<u32>, u32),
) {
    let pool = Pool::new();
    let (watched, mut blockers, m, bait) = arm_with_neighbour_bait(row, &pool);
    let (hostile, probe) = Hostile::owning(Payload::Lease(bait), on_wake(&pool));
    let mut subject = row.subject(&pool, &watched);
    pending(&subject.poll(&hostile), what);
    row.fire(&pool, &mut blockers);
    assert_eq!(probe.wakes(), 1, "{what}: woken once");
    effect(&pool, m);
    let Poll::Ready(outcome) = subject.poll(&hostile) else {
        panic!("{what}: ready after its event");
    };
    row.check(&outcome, what);
    drop((outcome, subject));
    drop((watched, blockers));
    assert!(!probe.dropped(), "{what}: the test still holds the waker");
    drop(hostile);
    assert!(probe.dropped());
    assert_clean(&pool, what);
}

/// (c) The waker's wake releases the lease it owns (of the neighbour key,
/// in the subject key's shard).
pub(crate) fn c_wake_releases(row: Row, what: &str) {
    wake_acts(
        row,
        what,
        |_| OnWake::Release,
        |pool, m| {
            let released = Counts {
                target: 1,
                active: 0,
            };
            assert_eq!(pool.counts(&m), released, "{what}: the wake released");
        },
    );
}

/// (c) The waker's wake reads the subject key's target and raises it.
pub(crate) fn c_wake_sets(row: Row, what: &str) {
    wake_acts(
        row,
        what,
        |pool| OnWake::RaiseTarget(pool.clone(), K),
        |pool, _| {
            assert_eq!(
                pool.counts(&K).target,
                row.target_after_fire() + 1,
                "{what}: the wake raised the target"
            );
        },
    );
}

/// A waiter of a key nobody gave a target, pending: it ends with `Closed`
/// when the pool closes, which is how a test sees the close once it has
/// no handle left.
fn observer(pool: &Pool<u32>, what: &str) -> PollPool<u32> {
    let mut observer = PollPool::new(pool);
    let cx = &mut Context::from_waker(Waker::noop());
    pending(&observer.poll_acquire_key(&u32::MAX, cx), what);
    observer
}

fn assert_closed(observer: &mut PollPool<u32>, what: &str) {
    let cx = &mut Context::from_waker(Waker::noop());
    assert!(
        matches!(
            observer.poll_acquire_key(&u32::MAX, cx),
            Poll::Ready(Err(Closed))
        ),
        "{what}: the pool closed"
    );
}

/// (d) The last `Pool` handle lives in the subject's waker, which only the
/// pool holds; re-polling the subject with a new waker makes the pool drop
/// it. Its drop closes the pool, which takes the pool's locks, so it must
/// run after unlocking. Acquisitions then end with `Closed`.
pub(crate) fn d_last_handle_repoll(row: Row, what: &str) {
    last_handle(row, what, false);
}

/// (d) As [`d_last_handle_repoll`], but the subject is dropped (cancelled)
/// instead, which takes the waker out of the pool and drops it.
pub(crate) fn d_last_handle_cancel(row: Row, what: &str) {
    last_handle(row, what, true);
}

fn last_handle(row: Row, what: &str, cancel: bool) {
    let pool = Pool::new();
    let (watched, blockers) = row.arm(&pool);
    let mut observer = observer(&pool, what);
    let mut subject = row
        .detached(&pool, &watched)
        .expect("a row that borrows no handle");
    let (hostile, probe) = Hostile::owning(Payload::Pool(pool), OnWake::Nothing);
    pending(&subject.poll(&hostile), what);
    drop(hostile); // the pool (or its dependency) holds the last handle now
    assert!(!probe.dropped(), "{what}: the pool holds the waker");
    if cancel {
        drop(subject);
        assert!(probe.dropped(), "{what}: cancelling dropped the waker");
        assert_closed(&mut observer, what);
    } else {
        let (waker, plain) = Plain::new();
        let polled = subject.poll(&waker);
        assert!(probe.dropped(), "{what}: the replaced waker was dropped");
        assert_closed(&mut observer, what);
        if row.acquires() {
            // The close woke the new waker, unless the poll already saw it.
            let outcome = match polled {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => {
                    assert!(plain.wakes() >= 1, "{what}: the close woke the subject");
                    let Poll::Ready(outcome) = subject.poll(&waker) else {
                        panic!("{what}: ready once closed");
                    };
                    outcome
                }
            };
            assert!(
                matches!(outcome, Outcome::Closed),
                "{what}: ended with Closed, got {outcome:?}"
            );
        } else {
            // No target can change once no handle is left: the lease is
            // not surplus, and polling the watch again must not get stuck.
            let _ = subject.poll(&waker);
            let lease = watched.as_ref().expect("a watched lease");
            assert!(!lease.is_surplus(), "{what}: no target changed");
        }
        drop(subject);
    }
    assert_eq!(probe.wakes(), 0, "{what}: dropped, not woken");
    drop((watched, blockers)); // releases still work once closed
}

/// (d) The last `Pool` handle lives in the subject's waker, and the row's
/// event, fired without a handle (the blocking lease is dropped), makes the
/// pool wake that waker by value and drop it: the drop closes the pool.
/// A subject that borrows a handle is forgotten (`mem::forget`: safe, it
/// only leaks) so that the handle it borrowed can be dropped first; the
/// forgotten future's place in the pool is what holds the waker.
pub(crate) fn d_last_handle_wake(row: Row, what: &str) {
    let pool = Pool::new();
    let (watched, mut blockers) = row.arm(&pool);
    let mut observer = observer(&pool, what);
    let (hostile, probe) = Hostile::owning(Payload::Pool(pool.clone()), OnWake::Nothing);
    let kept = match row.detached(&pool, &watched) {
        Some(mut subject) => {
            pending(&subject.poll(&hostile), what);
            Some(subject)
        }
        None => {
            let mut subject = row.subject(&pool, &watched);
            pending(&subject.poll(&hostile), what);
            std::mem::forget(subject);
            None
        }
    };
    drop(hostile);
    drop(pool); // the waker the pool holds has the last handle now
    assert!(
        row.fire_without_handle(&mut blockers),
        "{what}: a row whose event needs no handle"
    );
    assert_eq!(probe.wakes(), 1, "{what}: the event woke the waker");
    assert!(probe.dropped(), "{what}: and dropped it");
    assert_closed(&mut observer, what);
    if let Some(mut subject) = kept {
        // Granted before the close, or failed by it: either way, ready.
        let (waker, _) = Plain::new();
        let outcome = subject.poll(&waker);
        assert!(outcome.is_ready(), "{what}: ready, got {outcome:?}");
    }
}
