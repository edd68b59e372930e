//! Weighted leases (`*_many`, `split`, `merge`) beside one-unit and any-key
//! acquisitions, the watchers (`is_surplus`, `release_if_surplus`,
//! `surplus()`, `drained()`) and `close_key` / `close`, while a controller
//! moves targets (0..=6, 0 forgets keys; `set`, `set_all`, `replace_all`),
//! the pool-wide limit and the budget share. Each round has a fresh pool:
//! some stock from the start or from a moment mid-round, some put twelve
//! keys in one shard, some crowd two keys, some run without a limit or
//! watchers (words are lent only then), some pause the controller between
//! changes. A round ends open (room for every waiter, then nothing changes:
//! a waiter left waiting missed a wake, and the watchdog reports it) or by
//! a `close` that races the workers. The key's drop and `eq` yield the
//! thread now and then, to widen the windows between the pool's locks.
//!
//! Checked at every grant: the key's units held (by the workers' count and
//! by the pool's) never exceed the highest target in force since the
//! request, the pool's units never the highest limit since the request, a
//! lease has the units asked for, ids are unique and, per worker, grow
//! within a key (splits included); `Closed` comes only from a closed pool
//! or a key closed since the request; `counts` shows a target in force. A
//! lease the pool rejects panics at its release. The controller's probes:
//! a `surplus()` watcher is woken by the `set` or `set_limit` that makes
//! its lease surplus (and `release_if_surplus` then releases it); a
//! `drained()` watcher of a key set to 0 is woken by its last release. At
//! each round's end: nothing active, nobody waiting, every `drained()`
//! watcher registered before the end woken, every grant and split counted
//! once in `stats()`, and nothing tracked once all targets are 0.
//! `WORKPOOL_STRESS_SECS` (default 2) sets the length,
//! `WORKPOOL_STRESS_SEED` the first round's seed, `WORKPOOL_STRESS_THREADS`
//! the thread workers (3).

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use workpool_std::{Lease, Pool};
use workpool_tests::chaos::{Miss, Rng, Violations};
use workpool_tests::{with_hang_guard, HANG_GUARD};

/// The pool's key: a number whose drop (run by the pool after it lets
/// its locks go, in the windows between them) and comparison (under a
/// shard's lock) now and then yield the thread, to widen those windows.
#[derive(Debug, Clone)]
struct Key(u64);

thread_local! {
    static TICKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// True once in `n` calls on this thread.
fn tick(n: u32) -> bool {
    TICKS.with(|t| {
        let now = t.get().wrapping_add(1);
        t.set(now);
        now % n == 0
    })
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        if tick(61) {
            thread::yield_now();
        }
        self.0 == other.0
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if tick(7) {
            thread::yield_now();
        }
    }
}

const MAX_TARGET: u64 = 6;
/// Units a weighted request asks for: `0..=MAX_UNITS`, or up to
/// `MAX_TARGET` in one round in three (requests as large as a key's
/// highest target hold back the smaller ones behind them longer).
const MAX_UNITS: u64 = 4;
/// Thread workers: `WORKPOOL_STRESS_THREADS`, 3 by default.
fn threads() -> u64 {
    std::env::var("WORKPOOL_STRESS_THREADS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3)
}
const TASKS: u64 = 4;

fn stress_duration() -> Duration {
    workpool_tests::chaos::stress_duration(Duration::from_secs(2))
}

/// Every target each key had, in order: a change is logged before its
/// log's lock is let go (one controller), so the highest entry from an
/// epoch on, read after a call, bounds every target in force since the
/// epoch was read (see long_stress.rs).
struct TargetLog(Vec<Mutex<Vec<u64>>>);

impl TargetLog {
    fn log(&self, i: usize) -> MutexGuard<'_, Vec<u64>> {
        self.0[i].lock().unwrap()
    }
    fn epoch(&self, i: usize) -> usize {
        self.log(i).len() - 1
    }
    fn max_since(&self, i: usize, epoch: usize) -> u64 {
        self.log(i)[epoch..].iter().copied().max().unwrap()
    }
}

/// The same for the pool-wide limit (`None`: no limit).
struct LimitLog(Mutex<Vec<Option<u64>>>);

impl LimitLog {
    fn epoch(&self) -> usize {
        self.0.lock().unwrap().len() - 1
    }
    fn max_since(&self, epoch: usize) -> Option<u64> {
        self.0.lock().unwrap()[epoch..]
            .iter()
            .try_fold(0, |max, l| l.map(|l| max.max(l)))
    }
    fn last(&self) -> Option<u64> {
        *self.0.lock().unwrap().last().unwrap()
    }
}

struct Stress {
    pool: Pool<Key>,
    keys: Vec<u64>,
    targets: TargetLog,
    limits: LimitLog,
    /// Units the workers hold per key and in all: raised after a grant,
    /// lowered before a release.
    held: Vec<AtomicU64>,
    total: AtomicU64,
    /// Per key, twice the closes (`close_key`) done, plus one during one.
    key_closes: Vec<AtomicU64>,
    ids: Mutex<HashSet<u64>>,
    stop: AtomicBool,
    grants: AtomicU64,
    /// What each worker (threads, then tasks) is doing: `op * 100 + key`
    /// while it asks, `u64::MAX` once done; for the hang report.
    doing: Vec<AtomicU64>,
    /// Rounds without a limit or watchers in the tasks (the keys' words
    /// are lent only then).
    plain: bool,
    /// The most units a weighted request asks for.
    max_units: u64,
    /// How many keys the workers pick from (two of shard 0 in crowded
    /// rounds).
    spread: u64,
    violations: Violations,
}

/// What a worker noted before asking.
struct Asked {
    key: Option<usize>,
    epochs: Vec<usize>,
    limit_epoch: usize,
    closes: Vec<u64>,
    units: u64,
}

/// A lease a worker holds, with its key's index.
struct Held {
    lease: Lease<Key>,
    i: usize,
}

impl Stress {
    fn new(seed: u64) -> Self {
        let pool: Pool<Key> = Pool::new();
        // Six keys share shard 0 (slots are reused as keys are forgotten),
        // two shard 1, two anywhere.
        // One round in four puts twelve keys in shard 0: more than its
        // first words, so it gets a block of more.
        let hot = if seed % 4 == 3 { 12 } else { 6 };
        let mut keys: Vec<u64> = (1..)
            .filter(|&k| pool.shard_of(&Key(k)) == 0)
            .take(hot)
            .collect();
        keys.extend((1..).filter(|&k| pool.shard_of(&Key(k)) == 1).take(2));
        keys.extend([1_000_003, 2_000_029]);
        let mut rng = Rng::new(seed);
        let targets = keys
            .iter()
            .map(|&k| {
                let t = rng.below(MAX_TARGET + 1);
                pool.set(Key(k), t);
                Mutex::new(vec![t])
            })
            .collect();
        // Odd rounds stock: from the start, or (one in two of them) from
        // a moment the controller picks.
        if seed % 4 == 1 {
            pool.start_stocking();
        }
        let n = keys.len();
        Self {
            pool,
            keys,
            targets: TargetLog(targets),
            limits: LimitLog(Mutex::new(vec![None])),
            held: (0..n).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            key_closes: (0..n).map(|_| AtomicU64::new(0)).collect(),
            ids: Mutex::default(),
            stop: AtomicBool::new(false),
            grants: AtomicU64::new(0),
            doing: (0..threads() + TASKS).map(|_| AtomicU64::new(0)).collect(),
            plain: seed % 7 == 3,
            max_units: if seed % 3 == 0 { MAX_TARGET } else { MAX_UNITS },
            spread: if seed % 5 == 4 { 2 } else { n as u64 },
            violations: Violations::default(),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn violation(&self, what: String) {
        self.violations.push(what);
    }

    fn index(&self, key: u64) -> usize {
        self.keys
            .iter()
            .position(|&k| k == key)
            .expect("a known key")
    }

    // The controller's changes (one thread).

    // Each change holds the logs of its keys until it is logged, so that
    // a worker that reads a log after a call sees what was in force then.

    fn set(&self, i: usize, target: u64) {
        let mut log = self.targets.log(i);
        self.pool.set(Key(self.keys[i]), target);
        log.push(target);
    }

    fn set_many(&self, targets: &[(usize, u64)], replace: bool) {
        let mut all: Vec<(usize, u64)> = targets.to_vec();
        if replace {
            for i in 0..self.keys.len() {
                if !targets.iter().any(|&(j, _)| j == i) {
                    all.push((i, 0));
                }
            }
        }
        // In index order (workers hold one log at a time).
        all.sort_unstable();
        let mut logs: Vec<_> = all.iter().map(|&(i, _)| self.targets.log(i)).collect();
        let pairs = targets.iter().map(|&(i, t)| (Key(self.keys[i]), t));
        if replace {
            self.pool.replace_all(pairs);
        } else {
            self.pool.set_all(pairs);
        }
        for (log, &(_, t)) in logs.iter_mut().zip(&all) {
            log.push(t);
        }
    }

    fn close_key(&self, i: usize) {
        // Odd while the close is under way.
        self.key_closes[i].fetch_add(1, Ordering::SeqCst);
        let mut log = self.targets.log(i);
        self.pool.close_key(&Key(self.keys[i]));
        log.push(0);
        drop(log);
        self.key_closes[i].fetch_add(1, Ordering::SeqCst);
    }

    fn set_limit(&self, limit: Option<u64>) {
        let raise = match (self.limits.last(), limit) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(old), Some(new)) => new > old,
        };
        if raise {
            self.limits.0.lock().unwrap().push(limit);
            self.pool.set_limit(limit);
        } else {
            self.pool.set_limit(limit);
            self.limits.0.lock().unwrap().push(limit);
        }
    }

    // The workers' side.

    fn ask(&self, key: Option<usize>, units: u64) -> Asked {
        Asked {
            key,
            limit_epoch: self.limits.epoch(),
            epochs: (0..self.keys.len())
                .map(|i| self.targets.epoch(i))
                .collect(),
            closes: self
                .key_closes
                .iter()
                .map(|c| c.load(Ordering::SeqCst))
                .collect(),
            units,
        }
    }

    /// A miss is fine unless it is `Closed` from an open pool for a key
    /// nobody closed since the request.
    fn missed(&self, asked: &Asked, miss: &Miss) {
        if matches!(miss, Miss::Closed) && !self.pool.is_closed() {
            let closed_key = asked.key.is_some_and(|i| {
                asked.closes[i] % 2 == 1
                    || self.key_closes[i].load(Ordering::SeqCst) != asked.closes[i]
            });
            if !closed_key {
                self.violation(format!("Closed from an open pool ({:?})", asked.key));
            }
        }
    }

    /// Counts a fresh lease in and checks it.
    fn granted(&self, lease: Lease<Key>, asked: &Asked, last: &mut [u64]) -> Held {
        let i = self.index(lease.key().0);
        let units = lease.units();
        if let Some(want) = asked.key {
            if want != i {
                self.violation(format!("asked for key {want}, got {i}"));
            }
        }
        if units != asked.units {
            self.violation(format!("asked for {} units, got {units}", asked.units));
        }
        self.grants.fetch_add(1, Ordering::Relaxed);
        self.check_id(&lease, i, last);
        if units == 0 {
            return Held { lease, i };
        }
        let now = self.held[i].fetch_add(units, Ordering::SeqCst) + units;
        let total = self.total.fetch_add(units, Ordering::SeqCst) + units;
        let active = self.pool.counts(&Key(self.keys[i])).active;
        let pool_active = self.pool.active();
        let bound = self.targets.max_since(i, asked.epochs[i]);
        if now > bound || active > bound || active < units {
            self.violation(format!(
                "key {i}: {now} held by workers, {active} active after a grant of {units}, \
                 but the highest target since the request is {bound}"
            ));
        }
        if let Some(limit) = self.limits.max_since(asked.limit_epoch) {
            if total > limit || pool_active > limit {
                self.violation(format!(
                    "{total} held by workers, {pool_active} active, \
                     but the highest limit since the request is {limit}"
                ));
            }
        }
        Held { lease, i }
    }

    fn check_id(&self, lease: &Lease<Key>, i: usize, last: &mut [u64]) {
        let id = lease.id();
        if id == 0 || id <= last[i] {
            self.violation(format!("lease id {id} after {} of key {i}", last[i]));
        }
        last[i] = id;
        if !self.ids.lock().unwrap().insert(id) {
            self.violation(format!("lease id {id} seen twice"));
        }
    }

    fn release(&self, held: Held) {
        let units = held.lease.units();
        self.held[held.i].fetch_sub(units, Ordering::SeqCst);
        self.total.fetch_sub(units, Ordering::SeqCst);
        drop(held.lease);
    }

    /// `release_if_surplus`, counted out first (put back if it kept it).
    fn release_if_surplus(&self, held: Held) -> Option<Held> {
        let (units, i) = (held.lease.units(), held.i);
        self.held[i].fetch_sub(units, Ordering::SeqCst);
        self.total.fetch_sub(units, Ordering::SeqCst);
        match held.lease.release_if_surplus() {
            Ok(()) => {
                if units == 0 {
                    self.violation("a lease of no units was surplus".to_owned());
                }
                None
            }
            Err(lease) => {
                self.held[i].fetch_add(units, Ordering::SeqCst);
                self.total.fetch_add(units, Ordering::SeqCst);
                Some(Held { lease, i })
            }
        }
    }

    /// Splits some units off, or merges two leases, or tries a merge
    /// across keys; nothing is freed.
    fn reshape(&self, held: &mut Vec<Held>, rng: &mut Rng, last: &mut [u64]) {
        if held.is_empty() {
            return;
        }
        let a = rng.below(held.len() as u64) as usize;
        let units = held[a].lease.units();
        match rng.below(3) {
            0 => {
                let n = rng.below(units + 1);
                let (id, key) = (held[a].lease.id(), held[a].lease.key().0);
                match held[a].lease.split(n) {
                    Some(part) => {
                        let ok = n > 0
                            && n < units
                            && part.units() == n
                            && held[a].lease.units() == units - n
                            && part.key().0 == key
                            && held[a].lease.id() == id;
                        if !ok {
                            self.violation(format!("split {n} of {units} went wrong"));
                        }
                        let i = held[a].i;
                        self.check_id(&part, i, last);
                        self.grants.fetch_add(1, Ordering::Relaxed);
                        held.push(Held { lease: part, i });
                    }
                    None => {
                        if n > 0 && n < units {
                            self.violation(format!("split {n} of {units} refused"));
                        }
                    }
                }
            }
            _ => {
                let b = rng.below(held.len() as u64) as usize;
                if a == b {
                    return;
                }
                let other = held.swap_remove(b);
                let a = if a == held.len() { b } else { a };
                let (ours, theirs) = (held[a].lease.units(), other.lease.units());
                let (id, their_id) = (held[a].lease.id(), other.lease.id());
                let same = held[a].i == other.i;
                match held[a].lease.merge(other.lease) {
                    Ok(()) => {
                        if !same || held[a].lease.units() != ours + theirs {
                            self.violation(format!("merge of {ours} and {theirs} went wrong"));
                        }
                        if held[a].lease.id() != id {
                            self.violation("a merge changed the id".to_owned());
                        }
                    }
                    Err(lease) => {
                        if same || lease.units() != theirs || lease.id() != their_id {
                            self.violation(format!("merge of {ours} and {theirs} refused"));
                        }
                        held.push(Held { lease, i: other.i });
                    }
                }
            }
        }
    }
}

/// A thread worker: `try_*`, timed and blocking acquisitions (weighted,
/// one unit, any key), splits and merges, the watchers.
fn worker(stress: &Stress, me: usize, seed: u64, blocking: bool) {
    let mut rng = Rng::new(seed);
    let mut held: Vec<Held> = Vec::new();
    let mut last = vec![0u64; stress.keys.len()];
    let pool = &stress.pool;
    while !stress.stopped() {
        let i = rng.below(stress.spread) as usize;
        let key = Key(stress.keys[i]);
        let n = rng.below(stress.max_units + 1);
        let wait = Duration::from_micros(rng.below(500));
        let op = rng.below(16);
        stress.doing[me].store(op * 100 + i as u64, Ordering::Relaxed);
        // A wait without a time limit: the worker holds nothing then (the
        // open ending serves every waiter only so).
        let block = blocking && rng.one_in(3);
        if block && (3..=7).contains(&op) {
            for h in held.drain(..) {
                stress.release(h);
            }
        }
        let outcome: Option<(Asked, Result<Lease<Key>, Miss>)> = match op {
            0..=2 => {
                let asked = stress.ask(Some(i), n);
                Some((
                    asked,
                    pool.try_acquire_key_many(&key, n).map_err(Into::into),
                ))
            }
            3 | 4 => {
                let asked = stress.ask(Some(i), n);
                let got = if block {
                    pool.acquire_key_many_blocking(&key, n).map_err(Into::into)
                } else {
                    pool.acquire_key_many_timeout(&key, n, wait)
                        .map_err(Into::into)
                };
                Some((asked, got))
            }
            5 => {
                let asked = stress.ask(Some(i), 1);
                let got = if block {
                    pool.acquire_key_blocking(&key).map_err(Into::into)
                } else if rng.one_in(2) {
                    pool.acquire_key_timeout(&key, wait).map_err(Into::into)
                } else {
                    pool.try_acquire_key(&key).map_err(Into::into)
                };
                Some((asked, got))
            }
            6 | 7 => {
                let asked = stress.ask(None, 1);
                let got = match rng.below(4) {
                    0 if block => pool.acquire_blocking().map_err(Into::into),
                    1 => pool.acquire_timeout(wait).map_err(Into::into),
                    2 => pool.try_acquire_stocked().ok_or(Miss::NoCapacity),
                    _ => pool.try_acquire().map_err(Into::into),
                };
                Some((asked, got))
            }
            8 | 9 => {
                stress.reshape(&mut held, &mut rng, &mut last);
                None
            }
            10 => {
                if !held.is_empty() {
                    let j = rng.below(held.len() as u64) as usize;
                    let h = held.swap_remove(j);
                    let _ = h.lease.is_surplus();
                    if let Some(h) = stress.release_if_surplus(h) {
                        held.push(h);
                    }
                }
                None
            }
            11 => {
                // The target seen is one in force during the call.
                let from = stress.targets.epoch(i);
                let target = pool.counts(&key).target;
                let log = stress.targets.log(i);
                if !log[from..].contains(&target) {
                    let seen = log[from..].to_vec();
                    drop(log);
                    stress.violation(format!("key {i}: target {target}, but {seen:?} in force"));
                }
                let _ = pool.waiting(&key);
                if rng.one_in(8) {
                    let _ = pool.snapshot();
                }
                None
            }
            _ => None,
        };
        if let Some((asked, got)) = outcome {
            match got {
                Ok(lease) => held.push(stress.granted(lease, &asked, &mut last)),
                Err(miss) => stress.missed(&asked, &miss),
            }
        }
        while held.len() > 4 || (!held.is_empty() && rng.one_in(3)) {
            let j = rng.below(held.len() as u64) as usize;
            stress.release(held.swap_remove(j));
        }
    }
    for h in held {
        stress.release(h);
    }
    stress.doing[me].store(u64::MAX, Ordering::Relaxed);
}

/// A tokio task: weighted and any-key waits (some without a time limit),
/// a lease held until it is surplus or a moment passed, `drained` waits.
async fn task(stress: Arc<Stress>, me: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut last = vec![0u64; stress.keys.len()];
    let pool = &stress.pool;
    while !stress.stopped() {
        let i = rng.below(stress.spread) as usize;
        let key = Key(stress.keys[i]);
        let wait = Duration::from_micros(rng.below(1_000));
        let op = rng.below(8);
        stress.doing[me].store(op * 100 + i as u64, Ordering::Relaxed);
        let (asked, got) = match op {
            0..=2 => {
                let n = rng.below(stress.max_units + 1);
                let asked = stress.ask(Some(i), n);
                let got = if rng.one_in(3) {
                    pool.acquire_key_many(&key, n).await.map_err(Miss::from)
                } else if rng.one_in(2) {
                    pool.acquire_key_many_owned(key.clone(), n)
                        .await
                        .map_err(Miss::from)
                } else {
                    match tokio::time::timeout(wait, pool.acquire_key_many(&key, n)).await {
                        Ok(got) => got.map_err(Miss::from),
                        Err(_) => Err(Miss::Timeout),
                    }
                };
                (asked, got)
            }
            3 | 4 => {
                let asked = stress.ask(None, 1);
                let got = if rng.one_in(3) {
                    pool.acquire().await.map_err(Miss::from)
                } else {
                    match tokio::time::timeout(wait, pool.acquire()).await {
                        Ok(got) => got.map_err(Miss::from),
                        Err(_) => Err(Miss::Timeout),
                    }
                };
                (asked, got)
            }
            5 if !stress.plain => {
                let _ = tokio::time::timeout(wait, pool.drained(&key)).await;
                continue;
            }
            _ => {
                let asked = stress.ask(Some(i), 1);
                let got = match tokio::time::timeout(wait, pool.acquire_key(&key)).await {
                    Ok(got) => got.map_err(Miss::from),
                    Err(_) => Err(Miss::Timeout),
                };
                (asked, got)
            }
        };
        let held = match got {
            Ok(lease) => stress.granted(lease, &asked, &mut last),
            Err(miss) => {
                stress.missed(&asked, &miss);
                tokio::task::yield_now().await;
                continue;
            }
        };
        let hold = Duration::from_micros(rng.below(300));
        let surplus = if stress.plain {
            tokio::time::sleep(hold).await;
            false
        } else {
            tokio::time::timeout(hold, held.lease.surplus())
                .await
                .is_ok()
        };
        let held = if surplus || rng.one_in(2) {
            stress.release_if_surplus(held)
        } else {
            Some(held)
        };
        if let Some(h) = held {
            stress.release(h);
        }
    }
    stress.doing[me].store(u64::MAX, Ordering::Relaxed);
}

/// The controller: targets (0..=MAX_TARGET), `set_all`, `replace_all`,
/// `close_key`, the limit and the budget share, stocking from a moment of
/// its own, and the watchers' probes, until `end`.
fn control(stress: &Stress, seed: u64, end: Instant) {
    let mut rng = Rng::new(seed);
    let n = stress.keys.len() as u64;
    let mut last = vec![0u64; stress.keys.len()];
    let calm = seed / 100 % 5 == 0;
    while Instant::now() < end {
        let i = rng.below(n) as usize;
        match rng.below(64) {
            // One round in six closes keys eight times as often.
            0 => stress.close_key(i),
            10..=16 if seed / 100 % 6 == 5 => stress.close_key(i),
            9 if seed / 100 % 4 == 3 && rng.one_in(8) => stress.pool.start_stocking(),
            7 if !stress.plain => probe_surplus(stress, i, &mut rng, &mut last),
            8 if !stress.plain && rng.one_in(4) => probe_drained(stress, i),
            1 | 2 => {
                let pairs: Vec<(usize, u64)> = (0..1 + rng.below(3))
                    .map(|_| (rng.below(n) as usize, rng.below(MAX_TARGET + 1)))
                    .collect();
                // Duplicate keys: the last one counts; keep them distinct.
                let mut seen = HashSet::new();
                let pairs: Vec<_> = pairs.into_iter().filter(|p| seen.insert(p.0)).collect();
                stress.set_many(&pairs, rng.one_in(4));
            }
            3..=6 if !stress.plain => {
                stress.pool.set_budget_share(1 + rng.below(18));
                stress.set_limit(match rng.below(4) {
                    0 => None,
                    _ => Some(rng.below(9)),
                });
            }
            _ => stress.set(i, rng.below(MAX_TARGET + 1)),
        }
        if calm {
            // Some rounds let the fast paths (words, budgets, the stock)
            // live longer between changes.
            thread::sleep(Duration::from_micros(rng.below(100)));
        } else if rng.one_in(4) {
            thread::yield_now();
        }
    }
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// The controller sets key `i` to 0 and watches it with `drained()`: the
/// workers' leases of it go back (none can be granted), and the last
/// release must wake the watcher.
fn probe_drained(stress: &Stress, i: usize) {
    let key = Key(stress.keys[i]);
    stress.set(i, 0);
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut watch = pin!(stress.pool.drained(&key));
    if watch.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    DRAINS.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    while flag.0.load(Ordering::SeqCst) == 0 {
        if start.elapsed() > Duration::from_secs(10) {
            let counts = stress.pool.counts(&key);
            let held = stress.held[i].load(Ordering::SeqCst);
            stress.violation(format!(
                "drained() of key {i} not woken in 10 s: {counts:?}, {held} held by workers"
            ));
            return;
        }
        thread::sleep(Duration::from_micros(50));
    }
    if watch.as_mut().poll(&mut cx).is_pending() {
        stress.violation(format!("a woken drained() of key {i} is pending"));
    }
}

/// Drained probes that waited (for the figures).
static DRAINS: AtomicU64 = AtomicU64::new(0);

/// Surplus probes that watched (for the figures).
static PROBES: AtomicU64 = AtomicU64::new(0);

/// A waker that counts its wakes.
#[derive(Default)]
struct Flag(AtomicU64);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The controller takes a lease of key `i` and watches it with
/// `surplus()`, then makes it surplus (the key's target or the limit to
/// 0): the watcher must have been woken by the time that call returns, and
/// `release_if_surplus` must release it (only the controller raises them).
fn probe_surplus(stress: &Stress, i: usize, rng: &mut Rng, last: &mut [u64]) {
    let n = 1 + rng.below(2);
    let asked = stress.ask(Some(i), n);
    let lease = match stress.pool.try_acquire_key_many(&Key(stress.keys[i]), n) {
        Ok(lease) => lease,
        Err(miss) => return stress.missed(&asked, &miss.into()),
    };
    let held = stress.granted(lease, &asked, last);
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    {
        let mut watch = pin!(held.lease.surplus());
        if watch.as_mut().poll(&mut cx).is_pending() {
            PROBES.fetch_add(1, Ordering::Relaxed);
            let by_limit = rng.one_in(2);
            if by_limit {
                stress.set_limit(Some(0));
            } else {
                stress.set(i, 0);
            }
            if flag.0.load(Ordering::SeqCst) == 0 {
                stress.violation(format!(
                    "a surplus() watcher of key {i} was not woken (by_limit {by_limit})"
                ));
            }
            if watch.as_mut().poll(&mut cx).is_pending() {
                stress.violation(format!("a surplus() watcher of key {i} is pending"));
            }
        }
    }
    if let Some(held) = stress.release_if_surplus(held) {
        stress.violation(format!(
            "a lease of key {i} that is surplus was kept (is_surplus {})",
            held.lease.is_surplus()
        ));
        stress.release(held);
    }
}

/// One round of a fresh pool for `length`; it ends by a racing `close`
/// when `close` is set, else open with every waiter served.
fn round(seed: u64, length: Duration, close: bool) -> u64 {
    let stress = Arc::new(Stress::new(seed));
    let end = Instant::now() + length;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let stress = Arc::clone(&stress);
        thread::spawn(move || {
            if watched
                .recv_timeout(length + Duration::from_secs(20))
                .is_err()
            {
                // A report for the hang guard's failure.
                let doing: Vec<u64> = stress
                    .doing
                    .iter()
                    .map(|d| d.load(Ordering::Relaxed))
                    .collect();
                eprintln!("seed {seed} hangs: workers doing {doing:?} (op * 100 + key)");
                let pool = &stress.pool;
                eprintln!(
                    "closed {}, limit {:?}, active {}, waiters {}, held {:?}",
                    pool.is_closed(),
                    pool.limit(),
                    pool.active(),
                    pool.waiters(),
                    stress.held,
                );
                eprintln!("keys {:?}", stress.keys);
                eprintln!("snapshot {:?}", pool.snapshot());
            }
        })
    };
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            rt.spawn(task(
                Arc::clone(&stress),
                (threads() + t) as usize,
                seed * 100 + 50 + t,
            ))
        })
        .collect();
    let keyed: Vec<Key> = stress.keys.iter().map(|&k| Key(k)).collect();
    let mut drains = Vec::new();
    thread::scope(|s| {
        for t in 0..threads() {
            let stress = &stress;
            s.spawn(move || worker(stress, t as usize, seed * 100 + t, t == 0));
        }
        control(&stress, seed * 100 + 99, end);
        // Every key is drained once the workers are done: a watcher that
        // waits now must be woken by then.
        for (i, key) in keyed.iter().enumerate() {
            let flag = Arc::new(Flag::default());
            let mut watch = Box::pin(stress.pool.drained(key));
            let waker = Waker::from(Arc::clone(&flag));
            if watch
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
            {
                drains.push((i, flag, watch));
            }
        }
        if close {
            stress.pool.close();
            thread::sleep(Duration::from_millis(2));
            stress.stop.store(true, Ordering::SeqCst);
        } else {
            // Room for every waiter (each asks for at most MAX_TARGET)
            // while the workers still run; then nothing changes any more,
            // so a waiter left waiting once the others stop missed a wake
            // (the watchdog reports it).
            stress.set_limit(None);
            for i in 0..stress.keys.len() {
                stress.set(i, MAX_TARGET);
            }
            thread::sleep(Duration::from_millis(5));
            stress.stop.store(true, Ordering::SeqCst);
        }
    });
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt);
    let _ = done.send(());
    watchdog.join().unwrap();
    for (i, flag, mut watch) in drains {
        let wakes = flag.0.load(Ordering::SeqCst);
        let waker = Waker::from(Arc::new(Noop));
        let ready = watch
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        assert!(
            wakes > 0 && ready,
            "seed {seed}: a drained() watcher of key {i}: {wakes} wakes, ready {ready}"
        );
    }
    stress.violations.assert_none(&format!("seed {seed}"));
    let pool = &stress.pool;
    assert_eq!(pool.is_closed(), close);
    assert_eq!(stress.total.load(Ordering::SeqCst), 0);
    assert_eq!(pool.active(), 0, "seed {seed}: units left");
    assert_eq!(pool.waiters(), 0, "seed {seed}: waiters left");
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    for (i, key) in keyed.iter().enumerate() {
        let counts = pool.counts(key);
        assert_eq!(counts.active, 0, "seed {seed}: key {i}");
        assert_eq!(pool.waiting(key), 0, "seed {seed}: key {i}");
        let drained = pin!(pool.drained(key));
        assert!(
            matches!(drained.poll(&mut cx), Poll::Ready(_)),
            "seed {seed}: key {i} is not drained"
        );
    }
    if !close {
        // Every key has room for a full weighted lease again.
        for key in &keyed {
            let lease = pool.try_acquire_key_many(key, MAX_TARGET).unwrap();
            assert_eq!(pool.active(), MAX_TARGET);
            drop(lease);
        }
    }
    for key in &keyed {
        pool.set(key.clone(), 0);
    }
    assert_eq!(pool.len(), 0, "seed {seed}: keys still tracked");
    // Every grant and split counted once (the words' at their collects).
    let grants = stress.grants.load(Ordering::Relaxed);
    let counted = pool.stats().granted;
    let extra = if close { 0 } else { stress.keys.len() as u64 };
    assert_eq!(counted, grants + extra, "seed {seed}: stats().granted");
    assert_eq!(pool.active(), 0);
    stress.grants.load(Ordering::Relaxed)
}

#[test]
fn weighted_leases_and_watchers_under_churn_and_close() {
    let total = stress_duration();
    with_hang_guard("weighted_churn", total + HANG_GUARD, move || {
        let end = Instant::now() + total;
        let mut seed = std::env::var("WORKPOOL_STRESS_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1);
        let (mut rounds, mut grants) = (0u64, 0u64);
        while rounds < 2 || Instant::now() < end {
            let length = Duration::from_millis(100 + seed % 4 * 50);
            grants += round(seed, length, seed % 3 == 2);
            seed += 1;
            rounds += 1;
        }
        let probes = PROBES.load(Ordering::Relaxed);
        let drains = DRAINS.load(Ordering::Relaxed);
        println!(
            "weighted_churn: {rounds} rounds, {grants} grants, \
             {probes} surplus probes, {drains} drained probes"
        );
    });
}

/// Leases outlive the pool: thread workers take weighted, one-unit,
/// any-key and empty leases, each drops its handle at a moment of its own
/// (the last drop closes the pool) and then splits, merges, watches and
/// releases what it holds, racing the others' grants and releases. Nothing
/// may be rejected, and every count must hold up (debug builds check the
/// pool's own assertions; a count of the pool's memory let go twice would
/// free it under the leases still out).
#[test]
fn leases_outlive_the_pool_under_churn() {
    let total = stress_duration() / 4;
    with_hang_guard("outlive", total + HANG_GUARD, move || {
        let end = Instant::now() + total;
        let mut round = 0u64;
        while round < 4 || Instant::now() < end {
            let t0 = Instant::now();
            outlive_round(round);
            if t0.elapsed() > Duration::from_millis(20) {
                println!("outlive round {round}: {:?}", t0.elapsed());
            }
            round += 1;
        }
        println!("outlive: {round} rounds");
    });
}

fn outlive_round(seed: u64) {
    let pool: Pool<Key> = Pool::new();
    let keys: Vec<u64> = (0..6).collect();
    for &k in &keys {
        pool.set(Key(k), 1 + k % MAX_TARGET);
    }
    if seed % 2 == 1 {
        pool.start_stocking();
    }
    if seed % 3 == 2 {
        pool.set_budget_share(2);
        pool.set_limit(Some(12));
    }
    let handles: Vec<_> = (0..3u64)
        .map(|t| {
            let pool = pool.clone();
            let keys = keys.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(seed * 10 + t);
                let mut pool = Some(pool);
                let mut held: Vec<Lease<Key>> = Vec::new();
                let waker = Waker::from(Arc::new(Noop));
                let mut cx = Context::from_waker(&waker);
                let drop_at = 50 + rng.below(300);
                for step in 0..400 {
                    if step == drop_at {
                        pool = None;
                    }
                    if let Some(pool) = &pool {
                        let key = Key(keys[rng.below(keys.len() as u64) as usize]);
                        let got = match rng.below(4) {
                            0 => pool.try_acquire().ok(),
                            1 => pool.try_acquire_key(&key).ok(),
                            _ => pool.try_acquire_key_many(&key, rng.below(4)).ok(),
                        };
                        held.extend(got);
                        if rng.one_in(16) {
                            let k = Key(keys[rng.below(keys.len() as u64) as usize]);
                            pool.set(k, rng.below(MAX_TARGET + 1));
                        }
                    }
                    if held.is_empty() {
                        continue;
                    }
                    let j = rng.below(held.len() as u64) as usize;
                    match rng.below(6) {
                        0 => {
                            let n = rng.below(held[j].units() + 1);
                            let part = held[j].split(n);
                            held.extend(part);
                        }
                        1 => {
                            let other = held.swap_remove(j);
                            if let Some(last) = held.last_mut() {
                                if let Err(other) = last.merge(other) {
                                    held.push(other);
                                }
                            } else {
                                held.push(other);
                            }
                        }
                        2 => {
                            let _ = held[j].is_surplus();
                            let mut watch = pin!(held[j].surplus());
                            let _ = watch.as_mut().poll(&mut cx);
                        }
                        3 => {
                            if let Err(lease) = held.swap_remove(j).release_if_surplus() {
                                held.push(lease);
                            }
                        }
                        _ => drop(held.swap_remove(j)),
                    }
                    if held.len() > 6 || (!held.is_empty() && pool.is_none() && rng.one_in(3)) {
                        drop(held.swap_remove(0));
                    }
                }
                drop(pool);
                drop(held);
            })
        })
        .collect();
    thread::sleep(Duration::from_micros(seed % 7 * 100));
    // One round in four keeps a handle to the end: every unit came back.
    let kept = (seed % 4 == 0).then(|| pool.clone());
    drop(pool);
    for h in handles {
        h.join().unwrap();
    }
    if let Some(pool) = kept {
        assert_eq!(pool.active(), 0, "round {seed}");
        assert_eq!(pool.waiters(), 0, "round {seed}");
        for &k in &keys {
            pool.set(Key(k), 0);
        }
        assert_eq!(pool.len(), 0, "round {seed}");
    }
}
