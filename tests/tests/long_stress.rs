//! The long bounded stress run: threads with blocking calls and tasks on
//! tokio (multi-thread) and smol (`async-executor`) compete for leases on
//! 50 keys for a fixed time (`WORKPOOL_STRESS_SECS`, 8 s by default) under
//! random re-targeting (0 included), random cancellation and panics while
//! holding leases. At every grant it checks that no key ever has more
//! leases than the highest target in force since the lease was asked for,
//! and that ids never repeat; at the end, that nothing is held, waiting or
//! tracked. Nothing asserts on time (hang guard only). The figures are
//! printed: run with `--nocapture` to see them.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use workpool_std::{Closed, Counts, Lease, Pool};
use workpool_tests::chaos::{
    deliberate_panic, is_deliberate, quiet_deliberate_panics, Cancellable, Cancelled, Lever, Miss,
    Rng, Violations,
};
use workpool_tests::{with_hang_guard, HANG_GUARD};

/// Keys in the long run.
const MANY_KEYS: usize = 50;
/// Targets the re-targeter picks from: `0..=MAX_TARGET`.
const MAX_TARGET: u64 = 4;
/// The target of every key once the re-targeter has stopped.
const FIXED_TARGET: u64 = 2;
const STRESS_THREADS: u64 = 6;
const TOKIO_TASKS: u64 = 8;
const SMOL_TASKS: u64 = 8;
/// Every worker panics on one lease in this many.
const PANIC_EVERY: u64 = 50;

/// How long the long run lasts: `WORKPOOL_STRESS_SECS` (a number of
/// seconds), 8 by default.
fn stress_duration() -> Duration {
    workpool_tests::chaos::stress_duration(Duration::from_secs(8))
}

/// Every target each key was set to, in order, so that a worker can tell
/// the highest target in force at any time since a given moment.
///
/// Soundness: the re-targeter (one thread) appends a raise *before* it
/// applies it and a cut *after*, so between its calls the log's last entry
/// is at least the target in force, and at most one entry runs ahead of the
/// pool. A worker notes the key's `epoch` (the last index) before asking
/// for a lease; every target in force from then on is at most the maximum
/// of the log from that index on, read after the grant.
struct TargetLog {
    logs: Vec<Mutex<Vec<u64>>>,
}

impl TargetLog {
    fn new(pool: &Pool<u64>, initial: impl Fn(usize) -> u64) -> Self {
        let logs = (0..MANY_KEYS)
            .map(|k| {
                pool.set(k as u64, initial(k));
                Mutex::new(vec![initial(k)])
            })
            .collect();
        Self { logs }
    }

    fn log(&self, key: usize) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.logs[key].lock().unwrap()
    }

    fn set(&self, pool: &Pool<u64>, key: usize, target: u64) {
        let old = *self.log(key).last().unwrap();
        if target > old {
            self.log(key).push(target);
            pool.set(key as u64, target);
        } else {
            pool.set(key as u64, target);
            self.log(key).push(target);
        }
    }

    fn epoch(&self, key: usize) -> usize {
        self.log(key).len() - 1
    }

    fn epochs(&self) -> Vec<usize> {
        (0..MANY_KEYS).map(|k| self.epoch(k)).collect()
    }

    /// The highest target in force for `key` since `epoch`.
    fn max_since(&self, key: usize, epoch: usize) -> u64 {
        self.log(key)[epoch..].iter().copied().max().unwrap()
    }
}

/// Every pool-wide limit the re-targeter set, in order (`None`: no limit),
/// kept like [`TargetLog`]: a raise (or lifting the limit) is logged before
/// it is applied and a cut after, so every limit in force since a worker
/// noted the epoch is at most the highest logged since.
struct LimitLog {
    log: Mutex<Vec<Option<u64>>>,
}

impl LimitLog {
    fn new() -> Self {
        Self {
            log: Mutex::new(vec![None]),
        }
    }

    fn set(&self, pool: &Pool<u64>, limit: Option<u64>) {
        let old = *self.log.lock().unwrap().last().unwrap();
        let raise = match (old, limit) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(old), Some(new)) => new > old,
        };
        if raise {
            self.log.lock().unwrap().push(limit);
            pool.set_limit(limit);
        } else {
            pool.set_limit(limit);
            self.log.lock().unwrap().push(limit);
        }
    }

    fn epoch(&self) -> usize {
        self.log.lock().unwrap().len() - 1
    }

    /// The highest limit in force since `epoch`; `None` if there was a
    /// time without one.
    fn max_since(&self, epoch: usize) -> Option<u64> {
        self.log.lock().unwrap()[epoch..]
            .iter()
            .try_fold(0, |max, l| l.map(|l| max.max(l)))
    }
}

/// A set of lease ids: a shard's ids are dense (blocks of 65,536 reserved
/// from one counter, handed out in order), so a bitmap, sharded to keep
/// contention down, stays small however long the run is.
#[derive(Default)]
struct IdSet {
    shards: [Mutex<Vec<u64>>; 16],
    len: AtomicU64,
}

impl IdSet {
    /// Adds `id`; false if it was already there.
    fn insert(&self, id: u64) -> bool {
        let (shard, bit) = ((id % 16) as usize, id / 16);
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let mut bits = self.shards[shard].lock().unwrap();
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let fresh = bits[word] & mask == 0;
        bits[word] |= mask;
        if fresh {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        fresh
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }
}

/// What a worker noted before asking for a lease.
struct Asked {
    want: Want,
    /// The limit log's epoch.
    limit_epoch: usize,
}

enum Want {
    /// This key, at this epoch.
    Key(usize, usize),
    /// Any key, at these epochs.
    Any(Vec<usize>),
}

#[derive(Default)]
struct Figures {
    granted_threads: AtomicU64,
    granted_tokio: AtomicU64,
    granted_smol: AtomicU64,
    /// Grants asked for after the targets were fixed.
    granted_fixed: AtomicU64,
    killed: AtomicU64,
    out_of_polls: AtomicU64,
    panics: AtomicU64,
    timeouts: AtomicU64,
    no_capacity: AtomicU64,
    retargets: AtomicU64,
    /// Grants made while a limit was in force since they were asked for.
    granted_limited: AtomicU64,
}

/// Everything the long run's workers share.
struct Stress {
    pool: Pool<u64>,
    targets: TargetLog,
    limits: LimitLog,
    /// Per key, the leases workers hold: raised after a grant, lowered
    /// before the release, so it never exceeds the pool's own count.
    live: Vec<AtomicU64>,
    /// Every lease id seen.
    ids: IdSet,
    figures: Figures,
    /// Set once the targets are fixed; holds the epoch they were fixed at.
    fixed_at: Mutex<Option<Vec<usize>>>,
    stop: AtomicBool,
    violations: Violations,
}

impl Stress {
    fn new() -> Self {
        let pool = Pool::new();
        let targets = TargetLog::new(&pool, |k| 1 + k as u64 % MAX_TARGET);
        Self {
            pool,
            targets,
            limits: LimitLog::new(),
            live: (0..MANY_KEYS).map(|_| AtomicU64::new(0)).collect(),
            ids: IdSet::default(),
            figures: Figures::default(),
            fixed_at: Mutex::new(None),
            stop: AtomicBool::new(false),
            violations: Violations::default(),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn violation(&self, what: String) {
        self.violations.push(what);
    }

    fn ask(&self, key: Option<usize>) -> Asked {
        let limit_epoch = self.limits.epoch();
        let want = match key {
            Some(key) => Want::Key(key, self.targets.epoch(key)),
            None => Want::Any(self.targets.epochs()),
        };
        Asked { want, limit_epoch }
    }

    /// Takes charge of a fresh lease and checks it; `last[k]` is the id of
    /// the worker's previous lease of key `k` (ids grow in grant order
    /// within a key; across keys they are only unique).
    fn granted(
        self: &Arc<Self>,
        lease: Lease<u64>,
        asked: &Asked,
        last: &mut Vec<u64>,
        counter: &AtomicU64,
    ) -> Held {
        let (id, key) = (lease.id(), *lease.key() as usize);
        let epoch = match &asked.want {
            Want::Key(asked, epoch) => {
                if *asked != key {
                    self.violation(format!("asked for key {asked}, got {key}"));
                }
                *epoch
            }
            Want::Any(epochs) => epochs[key],
        };
        let held = Held::new(self, key, lease);
        // The pool's count first, then the log: a limit lifted before the
        // count was read was logged before it was lifted, so the log shows
        // it (see `LimitLog`), and then nothing is checked. (The workers'
        // own counts cannot be summed over the keys at one instant, so they
        // are not checked against the limit.)
        let active = self.pool.active();
        if let Some(limit) = self.limits.max_since(asked.limit_epoch) {
            // A limit was in force all along: the pool's count stays within
            // the highest one.
            if active > limit {
                self.violation(format!(
                    "{active} active, but the highest limit since the request is {limit}"
                ));
            }
            self.figures.granted_limited.fetch_add(1, Ordering::Relaxed);
        }
        let live = self.live[key].load(Ordering::SeqCst);
        let active = self.pool.counts(&(key as u64)).active;
        let bound = self.targets.max_since(key, epoch);
        if live == 0 || live > bound || active == 0 || active > bound {
            self.violation(format!(
                "key {key}: {live} held by workers, {active} active, \
                 but the highest target since the request is {bound}"
            ));
        }
        if last.len() <= key {
            last.resize(key + 1, 0);
        }
        if id == 0 || id <= last[key] {
            let before = last[key];
            self.violation(format!(
                "lease id {id} after {before} of key {key} on one worker"
            ));
        }
        last[key] = id;
        if !self.ids.insert(id) {
            self.violation(format!("lease id {id} seen twice"));
        }
        let fixed = self.fixed_at.lock().unwrap();
        if fixed.as_ref().is_some_and(|at| epoch >= at[key]) {
            self.figures.granted_fixed.fetch_add(1, Ordering::Relaxed);
        }
        counter.fetch_add(1, Ordering::Relaxed);
        held
    }
}

/// A lease a worker holds, counted in [`Stress::live`] while it lives.
struct Held {
    stress: Arc<Stress>,
    key: usize,
    _lease: Lease<u64>,
}

impl Held {
    fn new(stress: &Arc<Stress>, key: usize, lease: Lease<u64>) -> Self {
        stress.live[key].fetch_add(1, Ordering::SeqCst);
        Self {
            stress: Arc::clone(stress),
            key,
            _lease: lease,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Before the lease field is dropped, so before the release.
        self.stress.live[self.key].fetch_sub(1, Ordering::SeqCst);
    }
}

/// A thread worker: blocking, timed and `try_*` calls on random keys.
fn stress_thread(stress: &Arc<Stress>, seed: u64) {
    let mut rng = Rng::new(seed);
    let (mut last, mut n) = (Vec::new(), 0u64);
    let (pool, figures) = (&stress.pool, &stress.figures);
    while !stress.stopped() {
        let key = rng.below(MANY_KEYS as u64);
        let op = rng.below(6);
        let asked = stress.ask((op % 2 == 0).then_some(key as usize));
        let limit = Duration::from_micros(rng.below(2_000));
        let outcome: Result<_, Miss> = match op {
            0 => pool.acquire_key_blocking(&key).map_err(Into::into),
            1 => pool.acquire_blocking().map_err(Into::into),
            2 => pool.acquire_key_timeout(&key, limit).map_err(Into::into),
            3 => pool.acquire_timeout(limit).map_err(Into::into),
            4 => pool.try_acquire_key(&key).map_err(Into::into),
            _ => pool.try_acquire().map_err(Into::into),
        };
        let lease = match outcome {
            Ok(lease) => lease,
            Err(Miss::Timeout) => {
                figures.timeouts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(Miss::NoCapacity) => {
                figures.no_capacity.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(Miss::Closed) => {
                stress.violation("Closed from an open pool".to_owned());
                continue;
            }
        };
        let held = stress.granted(lease, &asked, &mut last, &figures.granted_threads);
        n += 1;
        if n % PANIC_EVERY == 7 {
            let caught = panic::catch_unwind(AssertUnwindSafe(move || {
                let _held = held;
                deliberate_panic();
            }));
            match caught {
                Err(payload) if is_deliberate(&*payload) => {
                    figures.panics.fetch_add(1, Ordering::Relaxed);
                }
                Err(payload) => panic::resume_unwind(payload),
                Ok(()) => stress.violation("a deliberate panic did not surface".to_owned()),
            }
        } else {
            if rng.one_in(4) {
                thread::sleep(Duration::from_micros(rng.below(200)));
            } else {
                thread::yield_now();
            }
            drop(held);
        }
    }
}

/// Which executor a task runs on, for its panicking workers.
#[derive(Clone)]
enum Exec {
    Tokio(tokio::runtime::Handle),
    Smol,
}

/// A task worker: `acquire` / `acquire_key` wrapped in [`Cancellable`],
/// which its lever or its poll budget drops at random points.
async fn stress_task(stress: Arc<Stress>, lever: Arc<Lever>, exec: Exec, seed: u64) {
    let mut rng = Rng::new(seed);
    let (mut last, mut n) = (Vec::new(), 0u64);
    let figures = &stress.figures;
    let granted = match exec {
        Exec::Tokio(_) => &figures.granted_tokio,
        Exec::Smol => &figures.granted_smol,
    };
    while !stress.stopped() {
        let key = rng.below(MANY_KEYS as u64);
        let any = rng.one_in(2);
        let asked = stress.ask((!any).then_some(key as usize));
        let polls = 1 + rng.below(6) as u32;
        let outcome = if any {
            Cancellable::new(stress.pool.acquire(), polls, &lever).await
        } else {
            Cancellable::new(stress.pool.acquire_key(&key), polls, &lever).await
        };
        let lease = match outcome {
            Ok(Ok(lease)) => lease,
            Ok(Err(Closed)) => {
                stress.violation("Closed from an open pool".to_owned());
                continue;
            }
            Err(Cancelled::Killed) => {
                figures.killed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(Cancelled::OutOfPolls) => {
                figures.out_of_polls.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let held = stress.granted(lease, &asked, &mut last, granted);
        n += 1;
        if n % PANIC_EVERY == 7 {
            let panicked = match &exec {
                // A spawned task panics holding the lease: a join error.
                Exec::Tokio(handle) => match handle
                    .spawn(async move {
                        let _held = held;
                        futures_lite::future::yield_now().await;
                        deliberate_panic();
                    })
                    .await
                {
                    Err(err) if err.is_panic() => {
                        let payload = err.into_panic();
                        if !is_deliberate(&*payload) {
                            panic::resume_unwind(payload);
                        }
                        true
                    }
                    _ => false,
                },
                // The task's own code panics holding it, caught in place.
                Exec::Smol => {
                    let work = AssertUnwindSafe(async move {
                        let _held = held;
                        futures_lite::future::yield_now().await;
                        deliberate_panic();
                    });
                    match work.catch_unwind().await {
                        Err(payload) if is_deliberate(&*payload) => true,
                        Err(payload) => panic::resume_unwind(payload),
                        Ok(()) => false,
                    }
                }
            };
            if !panicked {
                stress.violation("a deliberate panic did not surface".to_owned());
            }
            figures.panics.fetch_add(1, Ordering::Relaxed);
        } else {
            for _ in 0..rng.below(4) {
                futures_lite::future::yield_now().await;
            }
            drop(held);
        }
    }
}

/// Threads with blocking calls and tasks on tokio (multi-thread) and smol
/// (`async-executor`, two threads) compete for leases on 50 keys for a
/// fixed time (`WORKPOOL_STRESS_SECS`, 8 s by default) while a re-targeter
/// sets random keys to random targets (0 included) and a canceller pokes
/// the tasks' acquisitions: spurious wakes that use up their poll budget,
/// or an outright drop at the next poll, both of which land while waiting
/// or after a grant was decided. One lease in fifty is held by a worker
/// that panics (caught, or a tokio join error). For the last 30 % of the
/// run the targets are fixed.
///
/// Now and then the re-targeter sets or lifts a pool-wide limit (tight
/// enough to bind); it is lifted when the targets are fixed.
///
/// Checked at every grant: the workers' own count of live leases for the
/// key, and the pool's, never exceed the highest target in force since the
/// lease was asked for, and while a limit was in force all along, the live
/// leases over all keys never exceed the highest limit since then (see [`TargetLog`] for why this is sound; once the
/// targets are fixed, that is the fixed target); ids are never 0, never
/// repeat and grow on each worker. At the end: every worker and waiter has
/// finished, nothing is held or waiting, and every key is forgotten once
/// set to 0. The figures are printed (`--nocapture` shows them).
#[test]
fn long_run_under_retargeting_cancellation_and_panics() {
    let duration = stress_duration();
    with_hang_guard("long stress", duration + HANG_GUARD, move || {
        quiet_deliberate_panics();
        let started = Instant::now();
        let stress = Arc::new(Stress::new());
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let smol = Arc::new(async_executor::Executor::new());
        let levers: Vec<Arc<Lever>> = (0..TOKIO_TASKS + SMOL_TASKS)
            .map(|_| Arc::default())
            .collect();

        let tokio_tasks: Vec<_> = (0..TOKIO_TASKS)
            .map(|t| {
                let exec = Exec::Tokio(tokio_rt.handle().clone());
                let task = stress_task(
                    Arc::clone(&stress),
                    Arc::clone(&levers[t as usize]),
                    exec,
                    100 + t,
                );
                tokio_rt.spawn(task)
            })
            .collect();
        let smol_tasks: Vec<_> = (0..SMOL_TASKS)
            .map(|t| {
                let lever = Arc::clone(&levers[(TOKIO_TASKS + t) as usize]);
                smol.spawn(stress_task(Arc::clone(&stress), lever, Exec::Smol, 200 + t))
            })
            .collect();
        let tasks_done = AtomicBool::new(false);
        let retargeting = AtomicBool::new(true);

        thread::scope(|s| {
            // smol's executor on two threads; the second runs until the
            // first has collected every task.
            let (smol_done, smol_done_rx) = futures_channel::oneshot::channel::<()>();
            let smol_helper = {
                let smol = Arc::clone(&smol);
                s.spawn(move || futures_lite::future::block_on(smol.run(smol_done_rx)))
            };
            let smol_main = {
                let smol = Arc::clone(&smol);
                s.spawn(move || {
                    futures_lite::future::block_on(smol.run(async {
                        for task in smol_tasks {
                            task.await;
                        }
                    }));
                    let _ = smol_done.send(());
                })
            };
            let threads: Vec<_> = (0..STRESS_THREADS)
                .map(|t| {
                    let stress = &stress;
                    s.spawn(move || stress_thread(stress, 300 + t))
                })
                .collect();
            // The re-targeter.
            let retargeter = s.spawn(|| {
                let mut rng = Rng::new(1);
                while retargeting.load(Ordering::SeqCst) {
                    let key = rng.below(MANY_KEYS as u64) as usize;
                    let target = rng.below(MAX_TARGET + 1);
                    stress.targets.set(&stress.pool, key, target);
                    stress.figures.retargets.fetch_add(1, Ordering::Relaxed);
                    if rng.one_in(32) {
                        // The pool-wide limit too: mostly tight enough to
                        // bind, sometimes loose (shards then hold budgets of
                        // it), and budgets lent eagerly or by the default
                        // share, so that they are taken back under load.
                        let limit = match rng.below(8) {
                            0 | 1 => None,
                            2 => Some(40 + rng.below(200)),
                            _ => Some(1 + rng.below(12)),
                        };
                        stress
                            .pool
                            .set_budget_share(if rng.one_in(2) { 1 } else { 18 });
                        stress.limits.set(&stress.pool, limit);
                    }
                    if rng.one_in(8) {
                        thread::sleep(Duration::from_micros(rng.below(300)));
                    } else {
                        thread::yield_now();
                    }
                }
            });
            // The canceller.
            s.spawn(|| {
                let mut rng = Rng::new(2);
                while !tasks_done.load(Ordering::SeqCst) {
                    let lever = &levers[rng.below(levers.len() as u64) as usize];
                    lever.poke(rng.one_in(3));
                    thread::sleep(Duration::from_micros(rng.below(100)));
                }
            });

            thread::sleep(duration.mul_f64(0.7));
            retargeting.store(false, Ordering::SeqCst);
            retargeter.join().unwrap();
            stress.limits.set(&stress.pool, None);
            for key in 0..MANY_KEYS {
                stress.targets.set(&stress.pool, key, FIXED_TARGET);
            }
            *stress.fixed_at.lock().unwrap() = Some(stress.targets.epochs());
            thread::sleep(duration.mul_f64(0.3));

            stress.stop.store(true, Ordering::SeqCst);
            for thread in threads {
                thread.join().unwrap();
            }
            tokio_rt.block_on(async {
                for task in tokio_tasks {
                    task.await.unwrap();
                }
            });
            smol_main.join().unwrap();
            smol_helper.join().unwrap().expect("signalled");
            tasks_done.store(true, Ordering::SeqCst);
        });
        drop(tokio_rt);
        let elapsed = started.elapsed();

        let f = &stress.figures;
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let granted = load(&f.granted_threads) + load(&f.granted_tokio) + load(&f.granted_smol);
        println!(
            "long stress: {:.1} s, {MANY_KEYS} keys",
            elapsed.as_secs_f64()
        );
        println!(
            "  leases granted: {granted} (threads {}, tokio {}, smol {}; {} asked for \
             after the targets were fixed)",
            load(&f.granted_threads),
            load(&f.granted_tokio),
            load(&f.granted_smol),
            load(&f.granted_fixed)
        );
        println!(
            "  cancellations: {} (killed {}, out of polls {})",
            load(&f.killed) + load(&f.out_of_polls),
            load(&f.killed),
            load(&f.out_of_polls)
        );
        println!("  panics while holding a lease: {}", load(&f.panics));
        println!(
            "  timeouts: {}; try_* without capacity: {}",
            load(&f.timeouts),
            load(&f.no_capacity)
        );
        println!(
            "  re-targets: {}; grants under a limit all along: {}",
            load(&f.retargets),
            load(&f.granted_limited)
        );

        stress.violations.assert_none("violations");
        assert_eq!(stress.ids.len(), granted, "one distinct id per grant");
        for who in [&f.granted_threads, &f.granted_tokio, &f.granted_smol] {
            assert!(load(who) > 0, "every kind of worker got leases");
        }
        assert!(load(&f.panics) > 0);
        assert!(load(&f.granted_fixed) > 0, "grants under fixed targets");
        for key in 0..MANY_KEYS {
            assert_eq!(stress.live[key].load(Ordering::SeqCst), 0);
            assert_eq!(
                stress.pool.counts(&(key as u64)),
                Counts {
                    target: FIXED_TARGET,
                    active: 0
                }
            );
        }
        assert_eq!(stress.pool.waiters(), 0);
        for key in 0..MANY_KEYS {
            stress.pool.set(key as u64, 0);
        }
        assert!(stress.pool.is_empty());
        assert_eq!(stress.pool.waiters(), 0);
    });
}
