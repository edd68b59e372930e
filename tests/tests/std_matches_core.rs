//! Property test: the std pool, driven on one thread, decides exactly as the
//! core's single-threaded `Pool` does for the same operations.
//!
//! The std pool runs the core's parts (a lane and several shards) under
//! separate locks, taking the shard-only path whenever the core allows it;
//! the core's `Pool` (checked against a naive model in
//! `workpool-core/tests/model.rs`) runs the same parts with one shard. Each
//! case applies a random sequence of operations to both: every lease's key
//! (and ids by contract item 5: unique, growing within a key), every `try_*`
//! outcome, every count and every waiter's state must
//! agree, and a std waiter must be woken exactly when the core reports its
//! outcome decided.
//!
//! Two forms: with a hasher that puts every key in one of std's shards,
//! every decision must match, any-key grants included (std's any-key
//! rotation over one shard is the core's). With the default hasher the keys
//! spread over std's shards, whose any-key rotation goes shard by shard
//! (documented on `Pool::acquire`): there every key operation must match,
//! an any-key `try_acquire` must grant exactly when the core can, from a
//! key the core could grant from, and no any-key waiter queues (which key
//! serves one under a raised limit depends on that rotation).
//!
//! Along the way, `surplus()` and `drained()` watchers are registered on
//! held leases and keys: after every step, every watcher whose condition
//! holds (by the core's counts) must have been woken, and a woken watcher
//! must resolve when polled. `stats()` must equal the core's, and
//! `granted - released == active` must hold after every step.
//!
//! Weighted leases too: `try_acquire_key_many` of 0..=5 units and
//! `acquire_key_many` of 1..=5, `split` and `merge` of held leases (whose
//! ids must keep the rule within a key, and whose units must agree).
//!
//! The case count is 256 by default; `WORKPOOL_PROPTEST_CASES` (or
//! proptest's own `PROPTEST_CASES`) raises it.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use proptest::prelude::*;
use workpool_core::{Claim, WaiterId};
use workpool_std::{Closed, DefaultHashBuilder, Lease, Pool, TryAcquireError};

#[path = "std_matches_core/ops.rs"]
mod ops;

use ops::{many_keys_ops, op, Op, KEYS};

fn config() -> ProptestConfig {
    let cases = ["WORKPOOL_PROPTEST_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn std_decides_as_the_core_does(ops in prop::collection::vec(op(), 1..120)) {
        play(Run::new(OneShard::default(), true), &ops);
    }

    #[test]
    fn std_decides_as_the_core_does_across_shards(ops in prop::collection::vec(op(), 1..120)) {
        play(Run::new(DefaultHashBuilder::default(), false), &ops);
    }

    /// Both forms again, with the pool lending shards all of a limit's
    /// free room at once (budgets), so that grants and releases under a
    /// limit go without the lane and budgets are taken back whenever the
    /// pool's room runs short or someone waits for it.
    #[test]
    fn std_decides_as_the_core_does_with_budgets(ops in prop::collection::vec(op(), 1..120)) {
        let run = Run::new(OneShard::default(), true);
        run.pool.set_budget_share(1);
        play(run, &ops);
    }

    #[test]
    fn std_decides_as_the_core_does_across_shards_with_budgets(
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let run = Run::new(DefaultHashBuilder::default(), false);
        run.pool.set_budget_share(2);
        play(run, &ops);
    }

    /// Both forms again, reading the pool's counts (which collect the
    /// words) only every fifth step: words lent by a grant or release
    /// serve the steps after it, any-key grants from solo words included.
    #[test]
    fn std_decides_as_the_core_does_with_words_kept(ops in prop::collection::vec(op(), 1..120)) {
        let mut run = Run::new(OneShard::default(), true);
        run.settle_every = 5;
        play(run, &ops);
    }

    #[test]
    fn std_decides_as_the_core_does_across_shards_with_words_kept(
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut run = Run::new(DefaultHashBuilder::default(), false);
        run.settle_every = 5;
        play(run, &ops);
    }

    /// Many keys in one shard (more than its first words), words kept
    /// across steps: keys beyond the first words get words of the shard's
    /// block of more words, found through its tables; then any-key steps
    /// stop the lending of those words.
    #[test]
    fn std_decides_as_the_core_does_with_many_keys_and_words_kept(ops in many_keys_ops()) {
        let mut run = Run::new(OneShard::default(), true);
        run.settle_every = 13;
        play(run, &ops);
    }

    /// The same under a limit's budgets (the words lend out of them).
    #[test]
    fn std_decides_as_the_core_does_with_many_keys_and_budgets(ops in many_keys_ops()) {
        let mut run = Run::new(OneShard::default(), true);
        run.pool.set_budget_share(1);
        run.settle_every = 13;
        play(run, &ops);
    }

    /// The same across shards.
    #[test]
    fn std_decides_as_the_core_does_across_shards_with_many_keys(ops in many_keys_ops()) {
        let mut run = Run::new(DefaultHashBuilder::default(), false);
        run.settle_every = 11;
        play(run, &ops);
    }

    /// Words kept across steps under a limit's budgets: both at once.
    #[test]
    fn std_decides_as_the_core_does_with_words_kept_and_budgets(
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut run = Run::new(OneShard::default(), true);
        run.pool.set_budget_share(1);
        run.settle_every = 5;
        play(run, &ops);
    }
}

/// Runs `ops` on both pools, comparing after each, then winds both down.
fn play<S: BuildHasher + Send + Sync + 'static>(mut run: Run<S>, ops: &[Op]) {
    for op in ops {
        run.step(op);
    }
    run.wind_down();
}

/// The default hasher with the bits std picks a shard by (32 and up, at
/// most 64 shards) cleared: every key lands in shard 0, and the rest of the
/// hash still spreads keys over the shard's table.
#[derive(Default, Clone)]
struct OneShard(DefaultHashBuilder);

struct OneShardHasher<H>(H);

impl BuildHasher for OneShard {
    type Hasher = OneShardHasher<<DefaultHashBuilder as BuildHasher>::Hasher>;

    fn build_hasher(&self) -> Self::Hasher {
        OneShardHasher(self.0.build_hasher())
    }
}

impl<H: Hasher> Hasher for OneShardHasher<H> {
    fn finish(&self) -> u64 {
        self.0.finish() & !(0x3f << 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

#[test]
fn one_shard_hasher_puts_every_key_in_one_shard() {
    let pool: Pool<u8, OneShard> = Pool::with_hasher(OneShard::default());
    assert!(pool.shard_count() > 1, "the test needs several shards");
    let build = OneShard::default();
    for key in 0..KEYS {
        assert_eq!(build.hash_one(key) >> 32 & 0x3f, 0);
    }
}

/// Counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

type Acquiring<S> = Pin<Box<dyn Future<Output = Result<Lease<u8, S>, Closed>>>>;

/// One acquisition, in both pools.
struct Waiting<S> {
    future: Acquiring<S>,
    counter: Arc<Counter>,
    waker: Waker,
    /// Wakes seen so far.
    seen: usize,
    waiter: WaiterId,
}

/// A `surplus()` or `drained()` watcher.
struct Watcher<T> {
    future: Pin<Box<dyn Future<Output = T>>>,
    counter: Arc<Counter>,
    waker: Waker,
}

impl<T> Watcher<T> {
    /// Polls a new watcher once: `Err` with its output if it is ready.
    fn start(future: Pin<Box<dyn Future<Output = T>>>) -> Result<Self, T> {
        let counter = Arc::new(Counter::default());
        let mut watcher = Self {
            future,
            waker: Waker::from(Arc::clone(&counter)),
            counter,
        };
        match watcher.poll() {
            Poll::Ready(out) => Err(out),
            Poll::Pending => Ok(watcher),
        }
    }

    fn poll(&mut self) -> Poll<T> {
        let waker = self.waker.clone();
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> bool {
        self.counter.0.load(Ordering::SeqCst) > 0
    }
}

/// A held std lease: plain, or owned by a `surplus()` watcher.
enum Held<S> {
    Plain(Lease<u8, S>),
    Watched(u8, Watcher<Lease<u8, S>>),
}

struct Run<S> {
    pool: Pool<u8, S>,
    /// Whether any-key decisions must match exactly (all keys in one std
    /// shard); otherwise no any-key waiter queues.
    exact_any: bool,
    core: workpool_core::Pool<u8>,
    /// Held leases: std's and the core's, with the same id.
    held: Vec<(Held<S>, workpool_core::Lease<u8>)>,
    waiting: Vec<Waiting<S>>,
    drains: Vec<(u8, Watcher<()>)>,
    /// Leases the callers released, or merged into another (they end too).
    released: u64,
    /// Steps compared so far, and how often the pool's counts are read
    /// ([`compare_counts`](Self::compare_counts)): every step, or every
    /// few, so that words lent by one step serve the next ones.
    steps: u32,
    settle_every: u32,
    /// Every std lease id granted, and every (std, core) id pair per key.
    ids: std::collections::HashSet<u64>,
    ids_of: [Vec<(u64, u64)>; KEYS as usize],
}

impl<S: BuildHasher + Send + Sync + 'static> Run<S> {
    fn new(hasher: S, exact_any: bool) -> Self {
        Self {
            pool: Pool::with_hasher(hasher),
            exact_any,
            core: workpool_core::Pool::new(),
            held: Vec::new(),
            waiting: Vec::new(),
            drains: Vec::new(),
            released: 0,
            steps: 0,
            settle_every: 1,
            ids: std::collections::HashSet::new(),
            ids_of: std::array::from_fn(|_| Vec::new()),
        }
    }

    /// Takes a lease granted by both pools. Ids follow contract item 5 in
    /// each: unique, and increasing in grant order within a key. std's
    /// shards number their grants apart, so std's ids are not the core's;
    /// within a key they must be ordered as the core's are (a lease handed
    /// to a waiter is numbered at the hand-off, not when it is claimed).
    fn hold(&mut self, lease: Lease<u8, S>, core: workpool_core::Lease<u8>) {
        assert_eq!(*lease.key(), *core.key());
        let of_key = &mut self.ids_of[usize::from(*lease.key())];
        for &(std_id, core_id) in of_key.iter() {
            assert_eq!(
                lease.id() > std_id,
                core.id() > core_id,
                "std ids ordered as the core's within a key"
            );
        }
        of_key.push((lease.id(), core.id()));
        assert!(self.ids.insert(lease.id()), "std ids are unique");
        self.held.push((Held::Plain(lease), core));
    }

    /// Whether a lease of `key` is surplus, by the core's counts.
    fn surplus(&self, key: u8) -> bool {
        let c = self.core.counts(&key);
        c.active > c.target || self.core.limit().is_some_and(|l| self.core.active() > l)
    }

    fn drained(&self, key: u8) -> bool {
        self.core.counts(&key).active == 0
    }

    /// Polls watcher `i` (the surplus ones first, then the drains): one that
    /// was woken must resolve, and one that resolves must have been woken
    /// or see its condition hold now.
    fn poll_watch(&mut self, i: usize) {
        let watched: Vec<usize> = (0..self.held.len())
            .filter(|&h| matches!(self.held[h].0, Held::Watched(..)))
            .collect();
        let all = watched.len() + self.drains.len();
        if all == 0 {
            return;
        }
        let i = i % all;
        if let Some(&h) = watched.get(i) {
            let Held::Watched(key, watcher) = &mut self.held[h].0 else {
                unreachable!()
            };
            let (key, woken) = (*key, watcher.woken());
            match watcher.poll() {
                Poll::Ready(lease) => {
                    assert!(woken || self.surplus(key), "surplus resolved unwoken");
                    self.held[h].0 = Held::Plain(lease);
                }
                Poll::Pending => assert!(!woken, "a woken surplus watcher stayed pending"),
            }
        } else {
            let d = i - watched.len();
            let (key, watcher) = &mut self.drains[d];
            let (key, woken) = (*key, watcher.woken());
            match watcher.poll() {
                Poll::Ready(()) => {
                    assert!(woken || self.drained(key), "drained resolved unwoken");
                    self.drains.swap_remove(d);
                }
                Poll::Pending => assert!(!woken, "a woken drained watcher stayed pending"),
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Set(key, target) => {
                self.pool.set(key, target);
                let _ = self.core.set(key, target);
            }
            Op::TryAcquire => {
                let got = self.pool.try_acquire();
                let want = match (&got, self.exact_any) {
                    // The core must be able to grant from the same key: it
                    // had room and no waiter came first.
                    (Ok(lease), false) => self.core.try_acquire_key(lease.key()),
                    _ => self.core.try_acquire(),
                };
                self.compare_try(got, want);
            }
            Op::TryAcquireKey(key) => {
                let got = self.pool.try_acquire_key(&key);
                let want = self.core.try_acquire_key(&key);
                self.compare_try(got, want);
            }
            Op::Acquire => {
                if !self.exact_any {
                    return self.compare();
                }
                let future: Acquiring<S> = Box::pin(self.pool.acquire_owned());
                let waiter = self.core.enqueue();
                self.start(future, waiter);
            }
            Op::AcquireKey(key) => {
                let future: Acquiring<S> = Box::pin(self.pool.acquire_key_owned(key));
                let waiter = self.core.enqueue_key(&key);
                self.start(future, waiter);
            }
            Op::Poll(i) => {
                if !self.waiting.is_empty() {
                    let i = i % self.waiting.len();
                    self.poll(i);
                }
            }
            Op::Drop(i) => {
                if !self.waiting.is_empty() {
                    let w = self.waiting.swap_remove(i % self.waiting.len());
                    drop(w.future);
                    self.core.cancel(w.waiter).unwrap();
                }
            }
            Op::Release(i) => {
                if !self.held.is_empty() {
                    let (lease, core) = self.held.swap_remove(i % self.held.len());
                    drop(lease);
                    self.core.release(core).unwrap();
                    self.released += 1;
                }
            }
            Op::WatchSurplus(i) => {
                if !self.held.is_empty() {
                    let h = i % self.held.len();
                    let key = *self.held[h].1.key();
                    // A lease of no units is never surplus.
                    let surplus = self.surplus(key) && self.held[h].1.units() > 0;
                    let (held, core) = self.held.swap_remove(h);
                    let Held::Plain(lease) = held else {
                        self.held.push((held, core));
                        return self.compare();
                    };
                    let future = Box::pin(async move {
                        lease.surplus().await;
                        lease
                    });
                    match Watcher::start(future) {
                        Ok(watcher) => {
                            assert!(!surplus, "a surplus lease's watcher waits");
                            self.held.push((Held::Watched(key, watcher), core));
                        }
                        Err(lease) => {
                            assert!(surplus, "a watcher resolved at once, not surplus");
                            self.held.push((Held::Plain(lease), core));
                        }
                    }
                }
            }
            Op::WatchDrained(key) => {
                let pool = self.pool.clone();
                let future = Box::pin(async move { pool.drained(&key).await });
                match Watcher::start(future) {
                    Ok(watcher) => {
                        assert!(!self.drained(key), "a drained key's watcher waits");
                        self.drains.push((key, watcher));
                    }
                    Err(()) => assert!(self.drained(key), "resolved at once, not drained"),
                }
            }
            Op::PollWatch(i) => self.poll_watch(i),
            Op::DropDrained(i) => {
                if !self.drains.is_empty() {
                    self.drains.swap_remove(i % self.drains.len());
                }
            }
            Op::Close => {
                self.pool.close();
                self.core.close();
            }
            Op::CloseKey(key) => {
                self.pool.close_key(&key);
                self.core.close_key(&key);
            }
            Op::TryAcquireKeyMany(key, n) => {
                let got = self.pool.try_acquire_key_many(&key, n);
                let want = self.core.try_acquire_key_many(&key, n);
                self.compare_try(got, want);
            }
            Op::AcquireKeyMany(key, n) => {
                let future: Acquiring<S> = Box::pin(self.pool.acquire_key_many_owned(key, n));
                let waiter = self
                    .core
                    .enqueue_key_many(&key, n)
                    .map_err(|_| workpool_core::Closed);
                self.start(future, waiter);
            }
            Op::Split(i, n) => {
                if self.held.is_empty() {
                    return self.compare();
                }
                let h = i % self.held.len();
                let (Held::Plain(lease), core) = &mut self.held[h] else {
                    return self.compare();
                };
                let (got, want) = (lease.split(n), self.core.split(core, n));
                assert_eq!(lease.units(), core.units(), "units after a split");
                match (got, want) {
                    (Some(part), Some(core_part)) => self.hold(part, core_part),
                    (None, None) => {}
                    (got, want) => panic!("split: std {got:?}, core {want:?}"),
                }
            }
            Op::Merge(i, j) => {
                let plain: Vec<usize> = (0..self.held.len())
                    .filter(|&h| matches!(self.held[h].0, Held::Plain(_)))
                    .collect();
                if plain.len() < 2 || i % plain.len() == j % plain.len() {
                    return self.compare();
                }
                let (a, b) = (plain[i % plain.len()], plain[j % plain.len()]);
                let (other, other_core) = self.held.remove(b);
                let a = if a > b { a - 1 } else { a };
                let Held::Plain(other) = other else {
                    unreachable!()
                };
                let (Held::Plain(lease), core) = &mut self.held[a] else {
                    unreachable!()
                };
                let got = lease.merge(other);
                let want = core.merge(other_core);
                assert_eq!(lease.units(), core.units(), "units after a merge");
                match (got, want) {
                    (Ok(()), Ok(())) => self.released += 1,
                    (Err(other), Err(back)) => self.held.push((Held::Plain(other), back)),
                    (got, want) => panic!("merge: std {got:?}, core {want:?}"),
                }
            }
            Op::SetLimit(limit) => {
                // Key waiters that queued without a limit are ordered by the
                // any-key arrivals they saw; two of different shards that saw
                // the same count are ordered by shard in std and by
                // registration in the core's one shard (documented on
                // `set_limit`). Setting a limit while key waiters wait would
                // compare exactly those, so this test does not.
                let key_waiters = (0..KEYS).any(|k| self.core.waiting(&k) > 0);
                if self.core.limit().is_none() && limit.is_some() && key_waiters {
                    return;
                }
                self.pool.set_limit(limit);
                self.core.set_limit(limit);
            }
        }
        self.compare();
    }

    fn compare_try(
        &mut self,
        got: Result<Lease<u8, S>, TryAcquireError>,
        want: Result<workpool_core::Lease<u8>, workpool_core::TryAcquireError>,
    ) {
        match (got, want) {
            (Ok(lease), Ok(core)) => self.hold(lease, core),
            (Err(got), Err(want)) => assert_eq!(got, want),
            (got, want) => panic!("std {got:?}, core {want:?}"),
        }
    }

    /// Polls a new std acquisition once; it must be ready exactly when the
    /// core granted (or refused) the waiter at once.
    fn start(&mut self, mut future: Acquiring<S>, waiter: Result<WaiterId, workpool_core::Closed>) {
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(Arc::clone(&counter));
        let polled = future.as_mut().poll(&mut Context::from_waker(&waker));
        let Ok(waiter) = waiter else {
            assert!(matches!(polled, Poll::Ready(Err(Closed))), "core: closed");
            return;
        };
        match (polled, self.core.claim(waiter).unwrap()) {
            (Poll::Ready(Ok(lease)), Claim::Granted(core)) => self.hold(lease, core),
            (Poll::Pending, Claim::Waiting) => self.waiting.push(Waiting {
                future,
                counter,
                waker,
                seen: 0,
                waiter,
            }),
            (polled, claim) => panic!(
                "std ready: {}, core: {claim:?}",
                matches!(polled, Poll::Ready(_))
            ),
        }
    }

    fn poll(&mut self, i: usize) {
        let w = &mut self.waiting[i];
        let polled = w.future.as_mut().poll(&mut Context::from_waker(&w.waker));
        let claim = self.core.claim(w.waiter).unwrap();
        match (polled, claim) {
            (Poll::Pending, Claim::Waiting) => {}
            (Poll::Ready(Ok(lease)), Claim::Granted(core)) => {
                self.waiting.swap_remove(i);
                self.hold(lease, core);
            }
            (Poll::Ready(Err(Closed)), Claim::Closed) => {
                self.waiting.swap_remove(i);
            }
            (polled, claim) => panic!(
                "std ready: {}, core: {claim:?}",
                matches!(polled, Poll::Ready(_))
            ),
        }
    }

    /// Counts, lengths and wakes agree.
    fn compare(&mut self) {
        self.steps += 1;
        if self.steps % self.settle_every == 0 {
            self.compare_counts();
        }
        self.compare_wakes();
    }

    /// Everything a caller can read of the pool matches the core. Each of
    /// these reads collects the words of the shards it looks at.
    fn compare_counts(&mut self) {
        for key in 0..KEYS {
            assert_eq!(self.pool.counts(&key), self.core.counts(&key), "key {key}");
            assert_eq!(
                self.pool.waiting(&key),
                self.core.waiting(&key),
                "key {key}"
            );
        }
        assert_eq!(self.pool.len(), self.core.len());
        assert_eq!(self.pool.limit(), self.core.limit());
        assert_eq!(self.pool.active(), self.core.active());
        assert_eq!(self.pool.waiters(), self.core.waiters());
        assert_eq!(self.pool.is_closed(), self.core.is_closed());
        // Stats agree (the core knows no timeouts) and count leases that
        // reached callers (or wait, handed over, in a waiter's slot).
        let stats = self.pool.stats();
        assert_eq!(stats, self.core.stats());
        // With weights `active` counts units; the leases held (and those
        // handed to waiters not yet polled) are what was granted and not
        // released or merged away.
        let held_units: u64 = self.held.iter().map(|(_, core)| core.units()).sum();
        assert!(held_units <= self.pool.active(), "{stats:?}");
        assert!(
            stats.granted - self.released >= self.held.len() as u64,
            "{stats:?}"
        );
        // Every watcher whose condition holds was woken.
        for (held, core) in &self.held {
            if let Held::Watched(key, watcher) = held {
                assert!(
                    watcher.woken() || !self.surplus(*key) || core.units() == 0,
                    "a surplus watcher of key {key} was not woken"
                );
            }
        }
        for (key, watcher) in &self.drains {
            assert!(
                watcher.woken() || !self.drained(*key),
                "a drained watcher of key {key} was not woken"
            );
        }
    }

    /// Every waiter the core decided was woken by std, and no other (reads
    /// nothing of the pool).
    fn compare_wakes(&mut self) {
        let mut decided = Vec::new();
        while let Some(w) = self.core.poll_wake() {
            decided.push(w);
        }
        for w in &mut self.waiting {
            let wakes = w.counter.0.load(Ordering::SeqCst);
            let woken = wakes > w.seen;
            w.seen = wakes;
            assert_eq!(
                woken,
                decided.contains(&w.waiter),
                "waiter {:?}: woken {woken}",
                w.waiter
            );
        }
    }

    /// Drops every acquisition and lease: both pools must end empty.
    fn wind_down(mut self) {
        for w in std::mem::take(&mut self.waiting) {
            drop(w.future);
            self.core.cancel(w.waiter).unwrap();
            self.compare();
        }
        for (lease, core) in std::mem::take(&mut self.held) {
            drop(lease);
            self.core.release(core).unwrap();
            self.released += 1;
            self.compare();
        }
        for (_, mut watcher) in std::mem::take(&mut self.drains) {
            assert!(watcher.woken(), "every key drained");
            assert!(watcher.poll().is_ready());
        }
        for key in 0..KEYS {
            self.pool.set(key, 0);
            let _ = self.core.set(key, 0);
        }
        self.compare();
        self.compare_counts();
        assert!(self.pool.is_empty() && self.core.is_empty());
        assert_eq!(self.pool.waiters(), 0);
    }
}
