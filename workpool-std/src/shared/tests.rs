//! The hand-off protocol driven by hand: poll once, release, check which
//! waker fired. Small enough to run under Miri.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use std::future::Future;

use workpool_core::{Closed, Counts};

use super::wake::MIN_WAKERS;
use super::*;
use crate::error::AcquireTimeoutError;

mod stock;

impl<K, S> Shared<K, S> {
    /// What a lease's drop does with its core lease: into its key's word,
    /// or under the locks. True if the shard gave up its count.
    fn release(&self, lease: workpool_core::Lease<K>) -> bool {
        !self.fast_release(&lease) && self.release_slow(lease)
    }
}

impl<K: std::hash::Hash + Eq + Clone, S: std::hash::BuildHasher> Shared<K, S> {
    /// What `Pool::try_acquire` and `Pool::try_acquire_key` do, without
    /// the `Pool`.
    fn try_acquire<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
    ) -> Result<workpool_core::Lease<K>, crate::TryAcquireError> {
        match want {
            Want::Any => match self.try_any_unlaned() {
                Some(lease) => Ok(lease),
                None => self.try_any_laned(),
            },
            Want::Key(key) => {
                let (hash, shard) = self.locate(key);
                match self.fast_take(hash, shard, key) {
                    Ok(lease) => Ok(lease),
                    Err(()) => self.try_key_locked(hash, shard, key),
                }
            }
            Want::KeyMany(key, units) => {
                let (hash, shard) = self.locate(key);
                self.try_key_many_locked(hash, shard, key, units)
            }
        }
    }
}

/// A waker that counts how often it was woken.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: StdArc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> (StdArc<Counter>, Waker) {
    let counter = StdArc::new(Counter::default());
    (StdArc::clone(&counter), Waker::from(counter))
}

fn new_shared<K>() -> Shared<K, crate::DefaultHashBuilder> {
    Shared::with_hasher(crate::DefaultHashBuilder::default())
}

fn woken(counter: &Counter) -> usize {
    counter.0.load(Ordering::SeqCst)
}

#[test]
fn release_wakes_exactly_the_served_waiter() {
    let shared = new_shared();
    shared.set("k", 1);
    let held = shared.try_acquire(Want::<&str>::Any).unwrap();
    let (first, first_waker) = counter();
    let (second, second_waker) = counter();
    let mut a = Wait::default();
    let mut b = Wait::default();
    let mut cx_a = Context::from_waker(&first_waker);
    let mut cx_b = Context::from_waker(&second_waker);
    assert!(shared
        .poll_acquire(&mut a, Want::<&str>::Any, &mut cx_a)
        .is_pending());
    assert!(shared
        .poll_acquire(&mut b, Want::Key(&"k"), &mut cx_b)
        .is_pending());

    assert!(!shared.release(held), "a bare pool holds no count");
    assert_eq!((woken(&first), woken(&second)), (1, 0));
    let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut a, Want::<&str>::Any, &mut cx_a) else {
        panic!("the woken waiter holds the lease");
    };
    assert!(shared
        .poll_acquire(&mut b, Want::Key(&"k"), &mut cx_b)
        .is_pending());

    assert!(!shared.release(lease), "a bare pool holds no count");
    assert_eq!(woken(&second), 1);
    assert!(shared
        .poll_acquire(&mut b, Want::Key(&"k"), &mut cx_b)
        .is_ready());
}

#[test]
fn cancel_after_grant_passes_the_lease_on() {
    let shared = new_shared();
    shared.set(1u8, 1);
    let held = shared.try_acquire(Want::<u8>::Any).unwrap();
    let (_, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut first = Wait::default();
    let mut second = Wait::default();
    assert!(shared
        .poll_acquire(&mut first, Want::<u8>::Any, &mut cx)
        .is_pending());
    assert!(shared
        .poll_acquire(&mut second, Want::<u8>::Any, &mut cx)
        .is_pending());
    assert!(!shared.release(held), "a bare pool holds no count"); // granted to `first`, which never collects it
    shared.cancel(&mut first);
    let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut second, Want::<u8>::Any, &mut cx) else {
        panic!("the cancelled waiter's lease passes on");
    };
    // Lease 2 went back with the cancel; its capacity became lease 3.
    assert_eq!(lease.id(), 3);
    assert_eq!(shared.counts(&1).active, 1);
    assert!(!shared.release(lease), "a bare pool holds no count");
    assert_eq!(
        shared.counts(&1),
        Counts {
            target: 1,
            active: 0
        }
    );
}

#[test]
fn close_wakes_every_waiter() {
    let shared = new_shared::<u8>();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut waits: Vec<Wait> = (0..3).map(|_| Wait::default()).collect();
    for wait in &mut waits {
        assert!(shared
            .poll_acquire(wait, Want::<u8>::Any, &mut cx)
            .is_pending());
    }
    shared.close();
    assert_eq!(woken(&count), 3);
    for wait in &mut waits {
        assert!(matches!(
            shared.poll_acquire(wait, Want::<u8>::Any, &mut cx),
            Poll::Ready(Err(Closed))
        ));
    }
}

#[test]
fn waker_slots_shrink_with_the_waiters() {
    let shared = new_shared::<u8>();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let n = if cfg!(miri) { 100 } else { 10_000 };
    let mut waits: Vec<Wait> = (0..n).map(|_| Wait::default()).collect();
    for wait in &mut waits {
        assert!(shared
            .poll_acquire(wait, Want::<u8>::Any, &mut cx)
            .is_pending());
    }
    assert_eq!(shared.lock_lane().wakers.len(), n);
    // The oldest stays, in slot 0; the slots above it go.
    for wait in &mut waits[1..] {
        shared.cancel(wait);
    }
    {
        let lane = shared.lock_lane();
        assert_eq!((lane.core.waiter_slots(), lane.wakers.len()), (1, 1));
        assert!(lane.wakers.capacity() <= MIN_WAKERS);
    }
    shared.set(1, 1);
    assert_eq!(woken(&count), 1, "its waker survived the trimming");
    let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut waits[0], Want::<u8>::Any, &mut cx)
    else {
        panic!("the woken waiter holds the lease");
    };
    assert_eq!(shared.lock_lane().wakers.len(), 0);
    assert!(!shared.release(lease), "a bare pool holds no count");
}

#[test]
fn blocking_waiter_is_served_by_another_thread() {
    let shared = StdArc::new(new_shared());
    shared.set("k", 1);
    let held = shared.try_acquire(Want::Key(&"k")).unwrap();
    let waiter = {
        let shared = StdArc::clone(&shared);
        std::thread::spawn(move || {
            let lease = shared.acquire_blocking(Want::Key(&"k"), None).unwrap();
            let id = lease.id();
            assert!(!shared.release(lease), "a bare pool holds no count");
            id
        })
    };
    // Wait until the thread is queued, so the hand-off is what serves it.
    while shared.waiters() == 0 {
        std::thread::yield_now();
    }
    assert!(!shared.release(held), "a bare pool holds no count");
    assert_eq!(waiter.join().unwrap(), 2);
    assert_eq!(shared.counts(&"k").active, 0);
}

#[test]
fn blocking_deadline_in_the_past_times_out_cleanly() {
    let shared = new_shared::<u8>();
    let outcome = shared.acquire_blocking(Want::Key(&3), Some(Instant::now()));
    assert!(matches!(outcome, Err(AcquireTimeoutError::Timeout)));
    assert_eq!((shared.waiters(), shared.len()), (0, 0));
}

#[test]
fn a_pinned_future_can_be_polled_through_the_public_api() {
    // Ties the protocol to the public futures: one poll registers.
    let pool = crate::Pool::new();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(pool.acquire_key(&"k"));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    pool.set("k", 1);
    assert_eq!(woken(&count), 1);
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
}

// The shards' hold on the pool's memory (`keepalive`): Miri runs these, so
// a lease that outlives every handle, a count taken twice or dropped twice,
// or a pool never freed, fails here.

#[test]
fn leases_outlive_every_handle_and_the_last_one_frees_the_pool() {
    let pool = crate::Pool::new();
    for key in 0..8u32 {
        pool.set(key, 2);
    }
    let leases: Vec<_> = (0..8u32)
        .flat_map(|k| {
            [
                pool.try_acquire_key(&k).unwrap(),
                pool.try_acquire_key(&k).unwrap(),
            ]
        })
        .collect();
    let weak = crate::sync::Arc::downgrade(pool.shared());
    drop(pool);
    assert!(weak.upgrade().is_some(), "the leases keep the memory");
    let counts: Vec<_> = leases.iter().map(|l| (*l.key(), l.is_surplus())).collect();
    assert!(counts.iter().all(|&(_, surplus)| !surplus));
    drop(leases);
    assert!(weak.upgrade().is_none(), "the last lease freed the pool");
}

#[test]
fn an_open_pools_shard_keeps_its_count_and_close_gives_it_up() {
    let pool = crate::Pool::new();
    pool.set("a", 1);
    let shared = crate::sync::Arc::clone(pool.shared());
    let base = crate::sync::Arc::strong_count(&shared);
    for _ in 0..3 {
        let lease = pool.try_acquire_key(&"a").unwrap();
        assert_eq!(
            crate::sync::Arc::strong_count(&shared),
            base + 1,
            "one count"
        );
        drop(lease);
        assert_eq!(crate::sync::Arc::strong_count(&shared), base + 1, "kept");
    }
    pool.close();
    assert_eq!(crate::sync::Arc::strong_count(&shared), base, "given up");
    let other = crate::Pool::new();
    other.set("a", 1);
    let shared = crate::sync::Arc::clone(other.shared());
    let lease = other.try_acquire_key(&"a").unwrap();
    other.close();
    assert_eq!(
        crate::sync::Arc::strong_count(&shared),
        base + 1,
        "a lease is out"
    );
    other.set("a", 0);
    assert!(lease.release_if_surplus().is_ok());
    assert_eq!(crate::sync::Arc::strong_count(&shared), base, "given up");
}

#[test]
fn a_cancelled_hand_off_takes_the_last_unit_back() {
    let pool = crate::Pool::new();
    pool.set("a", 1);
    let shared = crate::sync::Arc::clone(pool.shared());
    let base = crate::sync::Arc::strong_count(&shared);
    let held = pool.try_acquire_key(&"a").unwrap();
    let (counter, waker) = counter();
    let mut key_waiter = Box::pin(pool.acquire_key_owned("a"));
    let mut any_waiter = Box::pin(pool.acquire_owned());
    let mut cx = Context::from_waker(&waker);
    assert!(key_waiter.as_mut().poll(&mut cx).is_pending());
    assert!(any_waiter.as_mut().poll(&mut cx).is_pending());
    drop(held); // handed to the key waiter, which never takes it
    assert_eq!(woken(&counter), 1);
    drop(key_waiter); // passes on to the any-key waiter
    drop(any_waiter); // back to the key: the shard's last unit
    assert_eq!(pool.counts(&"a").active, 0);
    assert_eq!(
        crate::sync::Arc::strong_count(&shared),
        base + 1,
        "kept: open"
    );
    pool.close();
    assert_eq!(crate::sync::Arc::strong_count(&shared), base, "given up");
}

/// A key whose `Eq` panics while `PANIC` is set (for the words' give-back).
#[derive(Clone, Debug)]
struct Touchy(u32);

impl std::hash::Hash for Touchy {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

static PANIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        assert!(!PANIC.load(Ordering::SeqCst), "Touchy::eq");
        self.0 == other.0
    }
}

impl Eq for Touchy {}

/// The words' unsafe paths, small enough for Miri: a lend, grants and
/// releases through the word, a collect by `counts`, a give-back when
/// `K::eq` panics after the grant took its unit, and the word freed with
/// its key.
#[test]
fn words_lend_grant_collect_give_back_and_free() {
    let shared = new_shared();
    shared.set(Touchy(1), 3);
    let (_, shard) = shared.locate(&Touchy(1));
    let first = shared.try_acquire(Want::Key(&Touchy(1))).unwrap(); // locked
    let second = shared.try_acquire(Want::Key(&Touchy(1))).unwrap(); // word
    assert_eq!((first.id(), second.id()), (1, 2));
    assert!(shared.shards[shard]
        .words
        .find(shared.locate(&Touchy(1)).0)
        .is_some());
    assert!(!shared.release(second)); // back into the word
    assert_eq!(shared.counts(&Touchy(1)).active, 1, "collected and exact");
    // A grant from the word whose key check panics gives its unit back.
    let third = shared.try_acquire(Want::Key(&Touchy(1))).unwrap(); // relends
    PANIC.store(true, Ordering::SeqCst);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = shared.try_acquire(Want::Key(&Touchy(1)));
    }));
    PANIC.store(false, Ordering::SeqCst);
    assert!(panicked.is_err());
    assert_eq!(shared.counts(&Touchy(1)).active, 2);
    assert_eq!(shared.stats().granted, 3, "the unit given back is no grant");
    let fourth = shared.try_acquire(Want::Key(&Touchy(1))).unwrap();
    assert!(fourth.id() > third.id());
    assert!(!shared.release(first));
    assert!(!shared.release(third));
    assert!(!shared.release(fourth));
    shared.set(Touchy(1), 0);
    assert_eq!(shared.len(), 0);
    assert!(
        shared.shards[shard]
            .words
            .find(shared.locate(&Touchy(1)).0)
            .is_none(),
        "the word was freed with its key"
    );
}

/// Solo words, small enough for Miri: a locked any-key grant from a key
/// its shard links alone lends the key's room to a word (assigned then)
/// and marks it; the next any-key grants take from it without the lock,
/// clone the key out of it, and stop when it runs dry; a second key in the
/// shard collects it.
#[test]
fn solo_words_serve_any_key_grants_without_the_lock() {
    let shared = new_shared();
    shared.set(Touchy(1), 3);
    let (_, shard) = shared.locate(&Touchy(1));
    let first = shared.try_acquire(Want::<Touchy>::Any).unwrap(); // locked, lends
    assert_ne!(shared.shards[shard].words.solo_mark(), 0, "marked solo");
    let second = shared.fast_take_any(shard).expect("from the word");
    let third = shared.try_acquire(Want::<Touchy>::Any).unwrap(); // the word's last
    assert!(shared.fast_take_any(shard).is_err(), "the word is dry");
    assert_eq!(
        (second.id(), third.id()),
        (first.id() + 1, first.id() + 2),
        "the word's ids follow the lock's"
    );
    assert_eq!(*second.key(), Touchy(1));
    assert!(!shared.release(second)); // back into the word
                                      // Another key of the shard: `set` collects the word.
    let other = (2..)
        .map(Touchy)
        .find(|k| shared.locate(k).1 == shard)
        .unwrap();
    shared.set(other, 1);
    assert!(shared.fast_take_any(shard).is_err(), "collected");
    assert_eq!(shared.counts(&Touchy(1)).active, 2);
    assert!(!shared.release(first));
    assert!(!shared.release(third));
}

/// Solo lends back off when they serve nothing: a lend collected before
/// any grant from it makes the shard skip the next `2^n - 1` solo lends;
/// one that served a grant ends the back-off.
#[test]
fn solo_lends_back_off_when_collected_unused() {
    let shared = new_shared();
    shared.set(Touchy(1), 3);
    let (_, shard) = shared.locate(&Touchy(1));
    let mark = || shared.shards[shard].words.solo_mark();
    let misses = || shared.lock_shard(shard).solo_misses;
    let first = shared.try_acquire(Want::<Touchy>::Any).unwrap(); // lends 2
    assert_ne!(mark(), 0);
    // Collected unused (by `counts`): the mark goes, one lend is skipped.
    assert_eq!(shared.counts(&Touchy(1)).active, 1);
    assert_eq!((mark(), misses()), (0, 1));
    let second = shared.try_acquire(Want::<Touchy>::Any).unwrap(); // skipped
    assert_eq!(mark(), 0, "this lend was skipped");
    assert!(!shared.release(second));
    let third = shared.try_acquire(Want::<Touchy>::Any).unwrap(); // lends 1
    assert_ne!(mark(), 0);
    let fourth = shared.fast_take_any(shard).expect("from the word");
    assert!(!shared.release(fourth)); // back into the word
    assert_eq!(
        shared.counts(&Touchy(1)).active,
        2,
        "collected after a grant"
    );
    assert_eq!(misses(), 0, "a lend that served a grant ends the back-off");
    assert!(!shared.release(first));
    assert!(!shared.release(third));
}

/// The hand-off cells (`handoff.rs`): a woken key waiter takes its lease
/// without its shard's lock (here held by the test while it polls).
#[test]
fn a_key_hand_off_is_taken_without_the_lock() {
    let shared = new_shared();
    shared.set("k", 1);
    let held = shared.try_acquire(Want::Key(&"k")).unwrap();
    let (count, waker) = counter();
    let mut wait = Wait::default();
    let mut cx = Context::from_waker(&waker);
    assert!(shared
        .poll_acquire(&mut wait, Want::Key(&"k"), &mut cx)
        .is_pending());
    assert!(!shared.release(held), "a bare pool holds no count");
    assert_eq!(woken(&count), 1);
    let guard = shared.lock_shard(shared.shard_of(&"k"));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut cx = Context::from_waker(&waker);
            let polled = shared.poll_acquire(&mut wait, Want::Key(&"k"), &mut cx);
            sender.send(polled.map(|l| l.map(|l| l.id()))).unwrap();
        });
        let polled = receiver.recv_timeout(std::time::Duration::from_secs(5));
        drop(guard);
        assert_eq!(
            polled.expect("the poll waited for the shard's lock"),
            Poll::Ready(Ok(2))
        );
    });
    assert_eq!(shared.counts(&"k").active, 1);
}

/// A key waiter dropped after its lease was published gives it back: it
/// goes on to the next waiter, and counts as a cancel, not a grant.
#[test]
fn a_key_waiter_dropped_after_its_hand_off_gives_the_lease_back() {
    dropped_after_its_hand_off_gives_the_lease_back(Want::Key(&"k"));
}

/// The same for an any-key waiter, whose lease (with the released
/// lease's key) sits in the lane's cell: its key is dropped after
/// unlocking.
#[test]
fn an_any_key_waiter_dropped_after_its_hand_off_gives_the_lease_back() {
    dropped_after_its_hand_off_gives_the_lease_back(Want::Any);
}

/// What the two tests above drive: two waiters that `want` the pool's one
/// unit of `"k"`, a release, the first dropped, the second served.
fn dropped_after_its_hand_off_gives_the_lease_back(want: Want<'_, &str>) {
    let shared = new_shared();
    shared.set("k", 1);
    let held = shared.try_acquire(Want::Key(&"k")).unwrap();
    let (_, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let (mut first, mut second) = (Wait::default(), Wait::default());
    for wait in [&mut first, &mut second] {
        assert!(shared.poll_acquire(wait, want, &mut cx).is_pending());
    }
    assert!(!shared.release(held), "a bare pool holds no count"); // published for `first`
    let Wait::Waiting(waiter) = first else {
        panic!("first waits")
    };
    let published = match waiter.shard() {
        Some(shard) => shared.shards[shard].cells.is_published(waiter),
        None => shared.lane_cells.is_published(waiter),
    };
    assert!(published);
    shared.cancel(&mut first);
    let Poll::Ready(Ok(lease)) = shared.poll_acquire(&mut second, want, &mut cx) else {
        panic!("the cancelled waiter's lease passes on");
    };
    assert_eq!((lease.id(), *lease.key()), (3, "k"));
    let stats = shared.stats();
    assert_eq!((stats.granted, stats.waited, stats.cancelled), (2, 2, 1));
    assert!(!shared.release(lease), "a bare pool holds no count");
    assert_eq!(shared.counts(&"k").active, 0);
}

/// More hand-offs in flight than a shard has cells: the one whose cell
/// still holds an older waiter's lease stays in the core, and its waiter
/// claims it under the lock.
#[test]
fn a_hand_off_whose_cell_is_taken_stays_in_the_core() {
    const N: usize = 17; // one more than the cells of a shard
    let shared = new_shared();
    shared.set("k", N as u64);
    let held: Vec<_> = (0..N)
        .map(|_| shared.try_acquire(Want::Key(&"k")).unwrap())
        .collect();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut waits: Vec<Wait> = (0..N).map(|_| Wait::default()).collect();
    for wait in &mut waits {
        assert!(shared
            .poll_acquire(wait, Want::Key(&"k"), &mut cx)
            .is_pending());
    }
    for lease in held {
        assert!(!shared.release(lease), "a bare pool holds no count");
    }
    assert_eq!(woken(&count), N);
    let ids: Vec<u64> = waits
        .iter_mut()
        .map(
            |wait| match shared.poll_acquire(wait, Want::Key(&"k"), &mut cx) {
                Poll::Ready(Ok(lease)) => {
                    let id = lease.id();
                    assert!(!shared.release(lease), "a bare pool holds no count");
                    id
                }
                _ => panic!("every waiter was served"),
            },
        )
        .collect();
    let expected: Vec<u64> = (N as u64 + 1..=2 * N as u64).collect();
    assert_eq!(ids, expected, "served oldest first");
    assert_eq!(shared.counts(&"k").active, 0);
}

/// The lane's hand-off cells: a woken any-key waiter takes its lease (with
/// the released lease's key) without the lane's lock or its shard's (both
/// held by the test while it polls).
#[test]
fn an_any_key_hand_off_is_taken_without_the_locks() {
    let shared = new_shared();
    shared.set("k", 1);
    let held = shared.try_acquire(Want::<&str>::Any).unwrap();
    let (count, waker) = counter();
    let mut wait = Wait::default();
    let mut cx = Context::from_waker(&waker);
    assert!(shared
        .poll_acquire(&mut wait, Want::<&str>::Any, &mut cx)
        .is_pending());
    assert!(!shared.release(held), "a bare pool holds no count");
    assert_eq!(woken(&count), 1);
    let lane = shared.lock_lane();
    let part = shared.lock_shard(shared.shard_of(&"k"));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut cx = Context::from_waker(&waker);
            let polled = shared.poll_acquire(&mut wait, Want::<&str>::Any, &mut cx);
            sender
                .send(polled.map(|l| l.map(|l| (l.id(), *l.key()))))
                .unwrap();
        });
        let polled = receiver.recv_timeout(std::time::Duration::from_secs(5));
        drop((part, lane));
        assert_eq!(
            polled.expect("the poll waited for a lock"),
            Poll::Ready(Ok((2, "k")))
        );
    });
    assert_eq!(shared.counts(&"k").active, 1);
}

/// A release that serves two any-key waiters (a lease of two units) hands
/// its key to the first; the second, granted from the same group, claims
/// its lease under the locks, with a copy of the group's key.
#[test]
fn a_release_hands_its_key_to_one_any_key_waiter() {
    let shared = new_shared();
    shared.set("k", 2);
    let held = shared.try_acquire(Want::KeyMany(&"k", 2)).unwrap();
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let (mut first, mut second) = (Wait::default(), Wait::default());
    for wait in [&mut first, &mut second] {
        assert!(shared
            .poll_acquire(wait, Want::<&str>::Any, &mut cx)
            .is_pending());
    }
    assert!(!shared.release(held), "a bare pool holds no count");
    assert_eq!(woken(&count), 2);
    let published: Vec<bool> = [&first, &second]
        .iter()
        .map(|wait| match **wait {
            Wait::Waiting(waiter) => shared.lane_cells.is_published(waiter),
            _ => panic!("both wait"),
        })
        .collect();
    assert_eq!(published, [true, false]);
    let leases: Vec<_> = [&mut first, &mut second]
        .into_iter()
        .map(
            |wait| match shared.poll_acquire(wait, Want::<&str>::Any, &mut cx) {
                Poll::Ready(Ok(lease)) => lease,
                _ => panic!("both were served"),
            },
        )
        .collect();
    let got: Vec<(u64, &str)> = leases.iter().map(|l| (l.id(), *l.key())).collect();
    assert_eq!(got, [(2, "k"), (3, "k")]);
    for lease in leases {
        assert!(!shared.release(lease), "a bare pool holds no count");
    }
    assert_eq!(shared.counts(&"k").active, 0);
}

/// Under a limit that does not bind, a shard that holds a budget of it
/// serves any-key grants with its own lock alone (the lane's lock is held
/// by the test meanwhile), taking one unit of the budget each; a release
/// puts it back. (The budget is read settled: the key's word lends out of
/// it.)
#[test]
fn a_budget_serves_any_key_grants_without_the_lane() {
    let shared = new_shared();
    shared.set("k", 4);
    shared.set_limit(Some(100));
    // A release that needs the lane lends its shard a budget.
    let held = shared.try_acquire(Want::Key(&"k")).unwrap();
    assert!(!shared.release(held), "a bare pool holds no count");
    let shard = shared.shard_of(&"k");
    let budget = shared.lock_settled(shard).core.budget();
    assert!(budget.is_some_and(|b| b >= 2), "{budget:?}");
    let lane = shared.lock_lane();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let lease = shared.try_any_unlaned();
            sender.send(lease.map(|l| (*l.key(), l))).unwrap();
        });
        let got = receiver.recv_timeout(std::time::Duration::from_secs(5));
        drop(lane);
        let (key, lease) = got
            .expect("the grant waited for the lane's lock")
            .expect("a grant from the budget");
        assert_eq!(key, "k");
        assert_eq!(
            shared.lock_settled(shard).core.budget(),
            budget.map(|b| b - 1)
        );
        assert!(!shared.release(lease), "a bare pool holds no count");
        assert_eq!(shared.lock_settled(shard).core.budget(), budget);
    });
    assert_eq!(shared.counts(&"k").active, 0);
    assert_eq!(shared.stats().granted, 2);
}

/// A shard of many keys gives the keys beyond its first words words of
/// its block of more words: their grants and releases then skip the lock
/// (found through the block's tables), until an any-key acquisition
/// collects them, after which the shard lends them no more; forgotten keys
/// leave the tables.
#[test]
fn more_words_serve_the_keys_of_a_shard_of_many_keys() {
    let shared = new_shared();
    let (_, shard) = shared.locate(&Touchy(0));
    let keys: Vec<Touchy> = (0..)
        .map(Touchy)
        .filter(|k| shared.locate(k).1 == shard)
        .take(WORDS + 4)
        .collect();
    for key in &keys {
        shared.set(key.clone(), 2);
    }
    // Each key's first grant locks and lends its room to a word.
    let held: Vec<_> = keys
        .iter()
        .map(|key| shared.try_acquire(Want::Key(key)).unwrap())
        .collect();
    let words = &shared.shards[shard].words;
    let found: Vec<usize> = keys
        .iter()
        .map(|key| words.find(shared.locate(key).0).expect("a word"))
        .collect();
    assert!(
        found.iter().any(|&w| w >= WORDS),
        "words of the block: {found:?}"
    );
    let last = keys.last().unwrap();
    let (hash, _) = shared.locate(last);
    let fast = shared
        .fast_take(hash, shard, last)
        .expect("from the block's word, without the lock");
    assert_eq!(*fast.key(), *last);
    assert!(shared.fast_release(&fast), "back into the word");
    assert_eq!(
        shared.counts(last),
        Counts {
            target: 2,
            active: 1
        }
    );

    // An any-key acquisition: shards lend their block's words no more.
    let any = shared.try_acquire(Want::<Touchy>::Any).unwrap();
    assert!(!shared.release(any));
    assert_eq!(shared.counts(last).active, 1, "collected");
    let locked = shared.try_acquire(Want::Key(last)).unwrap();
    assert!(
        shared.fast_take(hash, shard, last).is_err(),
        "not lent again"
    );
    assert!(!shared.release(locked));

    // Forgotten keys leave the tables.
    for (key, lease) in keys.iter().zip(held) {
        assert!(!shared.release(lease));
        shared.set(key.clone(), 0);
    }
    for key in &keys {
        assert_eq!(words.find(shared.locate(key).0), None);
    }
    assert_eq!(shared.lock_shard(shard).more_free, MORE);
}

/// The layout ARCHITECTURE's "The shard's cache lines" describes: the
/// part's id block, waker slots and offer flag on the shard's first 64-byte
/// line, the core's counters on the next, the waiter slab's hot words on
/// the one after; the lock's word after the part, off those lines ("The
/// shards' lock").
#[test]
fn a_shards_hot_fields_sit_on_the_lines_after_its_lock() {
    use std::mem::offset_of;
    let shared = new_shared::<u64>();
    let cell = &shared.shards[0];
    let lock = std::ptr::from_ref(&cell.lock).addr();
    let part = cell.lock.lock().unwrap();
    let line = |field: usize| (std::ptr::from_ref(&*part).addr() + field - lock) / 64;
    assert_eq!(lock % 64, 0, "the part starts a line");
    type P = Part<workpool_core::parts::Shard<u64>>;
    for field in [
        offset_of!(P, ids),
        offset_of!(P, wakers),
        offset_of!(P, offered),
    ] {
        assert_eq!(line(field), 0, "on the first line");
    }
    assert_eq!(
        line(offset_of!(P, core)),
        1,
        "the core's counters start the next line"
    );
    let word = cell.lock.word_addr();
    let end = std::ptr::from_ref(&*part).addr() + std::mem::size_of::<P>();
    assert!(word >= end, "the lock's word after the part");
}
