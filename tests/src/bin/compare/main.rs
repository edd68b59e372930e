//! workpool against its peers, in one process and interleaved: tokio's and
//! async-lock's semaphores, alone and as the `Mutex<HashMap<K, Arc<Semaphore>>>`
//! users build by hand for keys.
//!
//! ```text
//! cargo run --release -p workpool-tests --bin compare              # about a minute and a half
//! cargo run --release -p workpool-tests --bin compare -- --quick   # smoke run, a few seconds
//! ```
//!
//! Cases (keys are `u64` for every contender):
//!
//! - S1, uncontended: one key (one semaphore) with room, acquire then
//!   release on one thread, through the `try_` path and the async path.
//! - S2, keyed: N keys of target 1 (N from 1 to 100,000), cycling through
//!   them in a scattered walk (`k = (k + 104,729) mod N`): workpool's one-key
//!   acquisition against lock, look-up, `Arc` clone, unlock and an owned
//!   permit from the hand-built map.
//! - S3, contended: 64 tasks on a two-thread tokio runtime, each doing
//!   acquire, `yield_now`, release; 1 key of target 4, and 16 keys of
//!   target 4 (task `i` uses key `i % 16`, or any key).
//! - S4, memory, with a counting global allocator: heap bytes per idle key
//!   and per waiting acquisition, allocations per uncontended cycle and per
//!   acquisition that has to wait, and the `size_of` the futures and leases.
//!
//! Every timed case runs its contenders in turn, round after round (the
//! order rotating each round), each for a fixed number of cycles calibrated
//! to take about one time slice; the table gives the median time per cycle
//! over the rounds with its min–max, and the ratio of the median to tokio's.
//! Async cases that never wait are polled once with a no-op waker around the
//! whole timed loop, the same for every contender.
//!
//! The Markdown report goes to stdout (and to `--out PATH`), a progress line
//! to stderr, and a plot of the keyed cycle against the key count to
//! `--svg PATH` (default `target/compare/keys.svg`). The target lines at the
//! end say PASS or MISS; they inform and never fail the run.
//!
//! Options: `--quick`, `--rounds N`, `--slice-ms MS`, `--svg PATH`,
//! `--out PATH`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::io::{IsTerminal, Write as _};
use std::mem::{size_of, size_of_val};
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use plotters::prelude::*;
use tokio::runtime::Runtime;
use workpool_std::futures::{Acquire, AcquireKey};
use workpool_std::{Lease, Pool};

/// Key counts of the keyed case; the table shows [`TABLE_KEYS`], the plot all.
const KEY_COUNTS: [u64; 6] = [1, 10, 100, 1_000, 10_000, 100_000];
/// Key counts the keyed rows of the table show.
const TABLE_KEYS: [u64; 3] = [1, 1_000, 100_000];
/// Step of the scattered key walk: a prime, coprime to every key count.
const STRIDE: u64 = 104_729;
/// Tasks in the contended case.
const TASKS: u64 = 64;
/// Target (permits) per key in the contended case.
const CONTENDED_TARGET: u64 = 4;
/// Key layouts of the contended case.
const CONTENDED_KEYS: [u64; 2] = [1, 16];
/// Idle keys created to measure bytes per key.
const IDLE_KEYS: u64 = 100_000;
/// Waiters queued at once to measure bytes per waiting acquisition.
const WAITERS: usize = 10_000;
/// Cycles counted for allocations per cycle.
const ALLOC_CYCLES: u64 = 10_000;
/// Progress steps: S1 try and async, S2 try and async per key count, S3 per
/// layout, S4.
const STEPS: usize = 2 + 2 * KEY_COUNTS.len() + CONTENDED_KEYS.len() + 1;

// ----------------------------------------------------------- the allocator

/// The system allocator, counting calls and bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments; the
// counters are plain atomics and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED.fetch_add(new_size as u64, Ordering::Relaxed);
        FREED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A reading of the allocator's counters.
#[derive(Clone, Copy)]
struct Heap {
    allocations: u64,
    live: i64,
}

impl Heap {
    fn now() -> Self {
        let freed = FREED.load(Ordering::Relaxed);
        Self {
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
            live: ALLOCATED.load(Ordering::Relaxed) as i64 - freed as i64,
        }
    }
}

// ------------------------------------------------------------------ config

struct Config {
    quick: bool,
    rounds: usize,
    slice: Duration,
    svg: PathBuf,
    out: Option<PathBuf>,
}

impl Config {
    fn parse() -> Result<Self, String> {
        let mut quick = false;
        let mut rounds = None;
        let mut slice_ms = None;
        let mut svg = PathBuf::from("target/compare/keys.svg");
        let mut out = None;
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--quick" => quick = true,
                "--rounds" => rounds = Some(number(&flag, &value()?)?.max(1) as usize),
                "--slice-ms" => slice_ms = Some(number(&flag, &value()?)?.max(1)),
                "--svg" => svg = PathBuf::from(value()?),
                "--out" => out = Some(PathBuf::from(value()?)),
                "-h" | "--help" => {
                    return Err(
                        "options: --quick, --rounds N, --slice-ms MS, --svg PATH, --out PATH"
                            .to_string(),
                    )
                }
                _ => return Err(format!("unknown option {flag} (try --help)")),
            }
        }
        let (default_rounds, default_slice) = if quick { (5, 10) } else { (15, 80) };
        Ok(Self {
            quick,
            rounds: rounds.unwrap_or(default_rounds),
            slice: Duration::from_millis(slice_ms.unwrap_or(default_slice)),
            svg,
            out,
        })
    }
}

fn number(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value}"))
}

// ----------------------------------------------------------------- harness

/// Columns of the timing table.
const WP_ANY: usize = 0;
const WP_KEY: usize = 1;
const TOKIO: usize = 2;
const ASYNC_LOCK: usize = 3;
const COLUMNS: [&str; 4] = [
    "workpool, any key",
    "workpool, one key",
    "tokio",
    "async-lock",
];

/// Nanoseconds per cycle over the rounds.
#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Self {
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }
}

/// One line of the timing table.
struct Row {
    case: String,
    cells: [Option<Stats>; 4],
}

impl Row {
    fn median(&self, column: usize) -> f64 {
        self.cells[column].map_or(f64::NAN, |s| s.median)
    }

    /// The median of `column` over tokio's.
    fn ratio(&self, column: usize) -> f64 {
        self.median(column) / self.median(TOKIO)
    }
}

/// Something to time: `run(n)` does `n` iterations and returns how long
/// they took.
struct Contender<'a> {
    column: usize,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

fn contender<'a>(column: usize, run: impl FnMut(u64) -> Duration + 'a) -> Contender<'a> {
    Contender {
        column,
        run: Box::new(run),
    }
}

/// The progress line on stderr.
struct Progress {
    step: usize,
    tty: bool,
    start: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            step: 0,
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
        }
    }

    fn begin(&mut self, what: &str) {
        self.step += 1;
        if !self.tty {
            eprintln!("[{:>2}/{STEPS}] {what}", self.step);
        }
        self.show(what, "");
    }

    fn show(&self, what: &str, detail: &str) {
        if self.tty {
            let seconds = self.start.elapsed().as_secs();
            eprint!(
                "\r\x1b[K[{:>2}/{STEPS}, {seconds:>3} s] {what} {detail}",
                self.step
            );
        }
    }

    fn finish(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("done in {:.1} s", self.start.elapsed().as_secs_f64());
    }
}

struct Bench {
    config: Config,
    progress: Progress,
}

impl Bench {
    /// Times the contenders interleaved and returns their row; `ops` is how
    /// many cycles one iteration does.
    fn measure(&mut self, case: &str, ops: u64, contenders: Vec<Contender<'_>>) -> Row {
        self.progress.begin(case);
        let mut contenders = contenders;
        self.progress.show(case, "calibrating");
        let iterations: Vec<u64> = contenders
            .iter_mut()
            .map(|c| calibrate(&mut c.run, self.config.slice))
            .collect();
        let mut samples = vec![Vec::new(); contenders.len()];
        let rounds = self.config.rounds;
        for round in 0..rounds {
            self.progress
                .show(case, &format!("round {}/{rounds}", round + 1));
            for j in 0..contenders.len() {
                let i = (round + j) % contenders.len();
                let elapsed = (contenders[i].run)(iterations[i]);
                samples[i].push(elapsed.as_nanos() as f64 / (iterations[i] * ops) as f64);
            }
        }
        let mut cells = [None; 4];
        for (c, s) in contenders.iter().zip(samples) {
            cells[c.column] = Some(Stats::of(s));
        }
        Row {
            case: case.to_string(),
            cells,
        }
    }
}

/// How many iterations take about one `slice`.
fn calibrate(run: &mut dyn FnMut(u64) -> Duration, slice: Duration) -> u64 {
    let mut n = 1u64;
    loop {
        let took = run(n);
        if took >= slice / 4 || n >= 1 << 40 {
            let per = took.as_secs_f64().max(1e-12) / n as f64;
            return ((slice.as_secs_f64() / per).ceil() as u64).clamp(1, 1 << 40);
        }
        n *= if took < slice / 64 { 8 } else { 2 };
    }
}

/// Polls `fut` once with a no-op waker.
fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// The output of a future that must not wait.
fn ready<F: Future>(fut: F) -> F::Output {
    match poll_once(pin!(fut)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an uncontended acquisition had to wait"),
    }
}

/// Times `n` calls of `cycle`.
fn timed(n: u64, mut cycle: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        cycle();
    }
    start.elapsed()
}

// ------------------------------------------------------------ S1 uncontended

fn uncontended(bench: &mut Bench) -> (Row, Row) {
    let pool = Pool::new();
    pool.set(0u64, 1);
    let tokio_sem = tokio::sync::Semaphore::new(1);
    let async_lock_sem = async_lock::Semaphore::new(1);

    let sync = bench.measure(
        "S1 uncontended, `try_acquire`",
        1,
        vec![
            contender(WP_ANY, |n| {
                timed(n, || drop(black_box(pool.try_acquire().unwrap())))
            }),
            contender(WP_KEY, |n| {
                timed(n, || drop(black_box(pool.try_acquire_key(&0).unwrap())))
            }),
            contender(TOKIO, |n| {
                timed(n, || drop(black_box(tokio_sem.try_acquire().unwrap())))
            }),
            contender(ASYNC_LOCK, |n| {
                timed(n, || drop(black_box(async_lock_sem.try_acquire().unwrap())))
            }),
        ],
    );
    let async_ = bench.measure(
        "S1 uncontended, `acquire().await`",
        1,
        vec![
            contender(WP_ANY, |n| {
                ready(async {
                    let start = Instant::now();
                    for _ in 0..n {
                        drop(black_box(pool.acquire().await.unwrap()));
                    }
                    start.elapsed()
                })
            }),
            contender(WP_KEY, |n| {
                ready(async {
                    let start = Instant::now();
                    for _ in 0..n {
                        drop(black_box(pool.acquire_key(&0).await.unwrap()));
                    }
                    start.elapsed()
                })
            }),
            contender(TOKIO, |n| {
                ready(async {
                    let start = Instant::now();
                    for _ in 0..n {
                        drop(black_box(tokio_sem.acquire().await.unwrap()));
                    }
                    start.elapsed()
                })
            }),
            contender(ASYNC_LOCK, |n| {
                ready(async {
                    let start = Instant::now();
                    for _ in 0..n {
                        drop(black_box(async_lock_sem.acquire().await));
                    }
                    start.elapsed()
                })
            }),
        ],
    );
    (sync, async_)
}

// ------------------------------------------------------------------ S2 keyed

/// The hand-built keyed limiter a workpool replaces.
struct SemaphoreMap<S> {
    map: Mutex<HashMap<u64, Arc<S>>>,
}

impl<S> SemaphoreMap<S> {
    fn new(keys: u64, make: impl Fn() -> S) -> Self {
        let mut map = HashMap::new();
        for k in 0..keys {
            map.insert(k, Arc::new(make()));
        }
        Self {
            map: Mutex::new(map),
        }
    }

    /// Lock, look up, clone the `Arc`, unlock.
    fn get(&self, key: &u64) -> Arc<S> {
        Arc::clone(&self.map.lock().unwrap()[key])
    }
}

fn keyed_pool(keys: u64, target: u64) -> Pool<u64> {
    let pool = Pool::new();
    for k in 0..keys {
        pool.set(k, target);
    }
    pool
}

/// The scattered walk over `0..keys`, starting at 0.
struct Walk {
    key: u64,
    step: u64,
    keys: u64,
}

impl Walk {
    fn new(keys: u64) -> Self {
        Self {
            key: 0,
            step: STRIDE % keys,
            keys,
        }
    }

    fn next(&mut self) -> u64 {
        self.key += self.step;
        if self.key >= self.keys {
            self.key -= self.keys;
        }
        self.key
    }
}

/// The keyed rows, `(keys, try row, async row)`.
fn keyed(bench: &mut Bench) -> Vec<(u64, Row, Row)> {
    let mut rows = Vec::new();
    for keys in KEY_COUNTS {
        let pool = keyed_pool(keys, 1);
        let tokio_map = SemaphoreMap::new(keys, || tokio::sync::Semaphore::new(1));
        let async_lock_map = SemaphoreMap::new(keys, || async_lock::Semaphore::new(1));
        let (mut w1, mut w2, mut w3) = (Walk::new(keys), Walk::new(keys), Walk::new(keys));
        let sync = bench.measure(
            &format!("S2 keyed `try`, {}", keys_label(keys)),
            1,
            vec![
                contender(WP_KEY, |n| {
                    timed(n, || {
                        drop(black_box(pool.try_acquire_key(&w1.next()).unwrap()));
                    })
                }),
                contender(TOKIO, |n| {
                    timed(n, || {
                        let sem = tokio_map.get(&w2.next());
                        drop(black_box(sem.try_acquire_owned().unwrap()));
                    })
                }),
                contender(ASYNC_LOCK, |n| {
                    timed(n, || {
                        let sem = async_lock_map.get(&w3.next());
                        drop(black_box(sem.try_acquire_arc().unwrap()));
                    })
                }),
            ],
        );
        let (mut w1, mut w2, mut w3) = (Walk::new(keys), Walk::new(keys), Walk::new(keys));
        let async_ = bench.measure(
            &format!("S2 keyed async, {}", keys_label(keys)),
            1,
            vec![
                contender(WP_KEY, |n| {
                    ready(async {
                        let start = Instant::now();
                        for _ in 0..n {
                            let key = w1.next();
                            drop(black_box(pool.acquire_key(&key).await.unwrap()));
                        }
                        start.elapsed()
                    })
                }),
                contender(TOKIO, |n| {
                    ready(async {
                        let start = Instant::now();
                        for _ in 0..n {
                            let sem = tokio_map.get(&w2.next());
                            drop(black_box(sem.acquire_owned().await.unwrap()));
                        }
                        start.elapsed()
                    })
                }),
                contender(ASYNC_LOCK, |n| {
                    ready(async {
                        let start = Instant::now();
                        for _ in 0..n {
                            let sem = async_lock_map.get(&w3.next());
                            drop(black_box(sem.acquire_arc().await));
                        }
                        start.elapsed()
                    })
                }),
            ],
        );
        rows.push((keys, sync, async_));
    }
    rows
}

// -------------------------------------------------------------- S3 contended

/// A contender that spawns [`TASKS`] tasks, task `i` running `task(i, n)`
/// (`n` cycles), and waits for all of them.
fn tasks<'a, F, Fut>(rt: &'a Runtime, column: usize, task: F) -> Contender<'a>
where
    F: Fn(u64, u64) -> Fut + 'a,
    Fut: Future<Output = ()> + Send + 'static,
{
    contender(column, move |n| {
        let start = Instant::now();
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS).map(|i| tokio::spawn(task(i, n))).collect();
            for handle in handles {
                handle.await.unwrap();
            }
        });
        start.elapsed()
    })
}

fn contended(bench: &mut Bench) -> Vec<Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for keys in CONTENDED_KEYS {
        let pool = keyed_pool(keys, CONTENDED_TARGET);
        let tokio_sems: Arc<Vec<_>> = Arc::new(
            (0..keys)
                .map(|_| tokio::sync::Semaphore::new(CONTENDED_TARGET as usize))
                .collect(),
        );
        let async_lock_sems: Arc<Vec<_>> = Arc::new(
            (0..keys)
                .map(|_| async_lock::Semaphore::new(CONTENDED_TARGET as usize))
                .collect(),
        );
        let case = format!("S3 contended, {}", keys_label(keys));
        rows.push(bench.measure(
            &case,
            TASKS,
            vec![
                tasks(&rt, WP_ANY, |_, n| {
                    let pool = pool.clone();
                    async move {
                        for _ in 0..n {
                            let lease = pool.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(lease);
                        }
                    }
                }),
                tasks(&rt, WP_KEY, |i, n| {
                    let pool = pool.clone();
                    async move {
                        let key = i % keys;
                        for _ in 0..n {
                            let lease = pool.acquire_key(&key).await.unwrap();
                            tokio::task::yield_now().await;
                            drop(lease);
                        }
                    }
                }),
                tasks(&rt, TOKIO, |i, n| {
                    let sems = Arc::clone(&tokio_sems);
                    async move {
                        let sem = &sems[(i % keys) as usize];
                        for _ in 0..n {
                            let permit = sem.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(permit);
                        }
                    }
                }),
                tasks(&rt, ASYNC_LOCK, |i, n| {
                    let sems = Arc::clone(&async_lock_sems);
                    async move {
                        let sem = &sems[(i % keys) as usize];
                        for _ in 0..n {
                            let guard = sem.acquire().await;
                            tokio::task::yield_now().await;
                            drop(guard);
                        }
                    }
                }),
            ],
        ));
    }
    rows
}

// ----------------------------------------------------------------- S4 memory

/// Workpool's figures as `[any key, one key]`, the peers' as one value.
struct Memory {
    /// Heap bytes per idle key beyond the key: workpool, tokio map,
    /// async-lock map.
    idle_key: [f64; 3],
    /// Heap bytes per queued waiter beyond its future, by column.
    waiter: [f64; 4],
    /// Allocations per uncontended `try_` cycle, by column.
    try_cycle: [f64; 4],
    /// Allocations per uncontended async cycle, by column.
    async_cycle: [f64; 4],
    /// Allocations per acquisition that waits and is handed a lease.
    waiting: [f64; 4],
    /// `size_of` the acquisition futures, by column.
    future_size: [usize; 4],
    /// `size_of` workpool's lease, tokio's permit and owned permit,
    /// async-lock's guard and `Arc` guard.
    lease_size: [usize; 5],
}

/// Heap bytes per key beyond the key, for what `build(n)` builds.
fn idle_key_bytes<T>(build: impl Fn(u64) -> T) -> f64 {
    drop(build(16));
    let before = Heap::now();
    let built = build(IDLE_KEYS);
    let after = Heap::now();
    drop(built);
    (after.live - before.live) as f64 / IDLE_KEYS as f64 - size_of::<u64>() as f64
}

/// Heap bytes per waiter beyond its (boxed) future, with [`WAITERS`] of
/// `make()` queued at once.
fn waiter_bytes<F: Future>(mut make: impl FnMut() -> F) -> f64 {
    let mut waiting: Vec<Pin<Box<F>>> = Vec::with_capacity(WAITERS);
    let before = Heap::now();
    for _ in 0..WAITERS {
        let mut fut = Box::pin(make());
        assert!(poll_once(fut.as_mut()).is_pending(), "a waiter got through");
        waiting.push(fut);
    }
    let after = Heap::now();
    drop(waiting);
    let boxes = (WAITERS * size_of::<F>()) as i64;
    (after.live - before.live - boxes) as f64 / WAITERS as f64
}

/// Allocations per call of `cycle`.
fn cycle_allocations(mut cycle: impl FnMut()) -> f64 {
    for _ in 0..16 {
        cycle();
    }
    let before = Heap::now();
    for _ in 0..ALLOC_CYCLES {
        cycle();
    }
    let after = Heap::now();
    (after.allocations - before.allocations) as f64 / ALLOC_CYCLES as f64
}

/// Allocations per acquisition that has to wait: with `held` the only
/// capacity, start `make()` (it must wait), release `held`, and the waiter
/// must then be ready with the next lease to hold.
fn waiting_allocations<L, F: Future<Output = L>>(held: L, mut make: impl FnMut() -> F) -> f64 {
    let mut step = |held: L| -> L {
        let mut fut = pin!(make());
        assert!(poll_once(fut.as_mut()).is_pending(), "a waiter got through");
        drop(held);
        match poll_once(fut) {
            Poll::Ready(lease) => lease,
            Poll::Pending => panic!("a released lease did not reach the waiter"),
        }
    };
    let mut held = held;
    for _ in 0..16 {
        held = step(held);
    }
    let before = Heap::now();
    for _ in 0..ALLOC_CYCLES {
        held = step(held);
    }
    let after = Heap::now();
    drop(held);
    (after.allocations - before.allocations) as f64 / ALLOC_CYCLES as f64
}

fn memory(bench: &mut Bench) -> Memory {
    bench.progress.begin("S4 memory");
    let idle_key = [
        idle_key_bytes(|n| keyed_pool(n, 1)),
        idle_key_bytes(|n| SemaphoreMap::new(n, || tokio::sync::Semaphore::new(1))),
        idle_key_bytes(|n| SemaphoreMap::new(n, || async_lock::Semaphore::new(1))),
    ];

    let pool = keyed_pool(1, 1);
    let tokio_sem = tokio::sync::Semaphore::new(1);
    let async_lock_sem = async_lock::Semaphore::new(1);
    let try_cycle = [
        cycle_allocations(|| drop(black_box(pool.try_acquire().unwrap()))),
        cycle_allocations(|| drop(black_box(pool.try_acquire_key(&0).unwrap()))),
        cycle_allocations(|| drop(black_box(tokio_sem.try_acquire().unwrap()))),
        cycle_allocations(|| drop(black_box(async_lock_sem.try_acquire().unwrap()))),
    ];
    let async_cycle = [
        cycle_allocations(|| drop(black_box(ready(pool.acquire()).unwrap()))),
        cycle_allocations(|| drop(black_box(ready(pool.acquire_key(&0)).unwrap()))),
        cycle_allocations(|| drop(black_box(ready(tokio_sem.acquire()).unwrap()))),
        cycle_allocations(|| drop(black_box(ready(async_lock_sem.acquire())))),
    ];
    let waiting = [
        waiting_allocations(pool.try_acquire().unwrap(), || async {
            pool.acquire().await.unwrap()
        }),
        waiting_allocations(pool.try_acquire().unwrap(), || async {
            pool.acquire_key(&0).await.unwrap()
        }),
        waiting_allocations(tokio_sem.try_acquire().unwrap(), || async {
            tokio_sem.acquire().await.unwrap()
        }),
        waiting_allocations(async_lock_sem.try_acquire().unwrap(), || {
            async_lock_sem.acquire()
        }),
    ];

    // Fresh pools and semaphores, so no queue capacity is left over from
    // earlier runs: waiters queue behind the one lease or permit held here.
    let waiter = {
        let (any_pool, key_pool) = (keyed_pool(1, 1), keyed_pool(1, 1));
        let tokio_sem = tokio::sync::Semaphore::new(0);
        let async_lock_sem = async_lock::Semaphore::new(0);
        let _held = (any_pool.try_acquire(), key_pool.try_acquire());
        [
            waiter_bytes(|| any_pool.acquire()),
            waiter_bytes(|| key_pool.acquire_key(&0)),
            waiter_bytes(|| tokio_sem.acquire()),
            waiter_bytes(|| async_lock_sem.acquire()),
        ]
    };

    let tokio_arc = Arc::new(tokio::sync::Semaphore::new(1));
    let async_lock_arc = Arc::new(async_lock::Semaphore::new(1));
    let future_size = [
        size_of::<Acquire<'_, u64>>(),
        size_of::<AcquireKey<'_, u64>>(),
        size_of_val(&tokio_sem.acquire()),
        size_of_val(&async_lock_sem.acquire()),
    ];
    let lease_size = [
        size_of::<Lease<u64>>(),
        size_of_val(&tokio_sem.try_acquire().unwrap()),
        size_of_val(&tokio_arc.try_acquire_owned().unwrap()),
        size_of_val(&async_lock_sem.try_acquire().unwrap()),
        size_of_val(&async_lock_arc.try_acquire_arc().unwrap()),
    ];
    Memory {
        idle_key,
        waiter,
        try_cycle,
        async_cycle,
        waiting,
        future_size,
        lease_size,
    }
}

// ------------------------------------------------------------------ report

struct Results {
    s1_try: Row,
    s1_async: Row,
    /// `(keys, try row, async row)`.
    keyed: Vec<(u64, Row, Row)>,
    contended: Vec<Row>,
    memory: Memory,
}

/// Where the numbers came from.
struct Machine {
    cpu: String,
    nproc: usize,
    rustc: String,
}

impl Machine {
    fn describe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "rustc (version unknown)".to_string());
        Self { cpu, nproc, rustc }
    }

    fn line(&self) -> String {
        format!("{}, nproc {}, {}", self.cpu, self.nproc, self.rustc)
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1 key", "1,000 keys".
fn keys_label(keys: u64) -> String {
    if keys == 1 {
        "1 key".to_string()
    } else {
        format!("{} keys", thousands(keys))
    }
}

fn ns(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn count(v: f64) -> String {
    if v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(row: &Row, column: usize) -> String {
    match row.cells[column] {
        None => "—".to_string(),
        Some(s) if column == TOKIO => format!("{} ({}–{})", ns(s.median), ns(s.min), ns(s.max)),
        Some(s) => format!(
            "{} ({}–{}) {:.2}×",
            ns(s.median),
            ns(s.min),
            ns(s.max),
            row.ratio(column)
        ),
    }
}

/// One target line: PASS or MISS, what, and the figures.
struct Target {
    pass: bool,
    what: String,
    figures: String,
}

fn ratios(values: &[f64]) -> String {
    let parts: Vec<_> = values.iter().map(|v| format!("{v:.2}×")).collect();
    parts.join(" / ")
}

fn targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let any_async = r.s1_async.ratio(WP_ANY);
    out.push(Target {
        pass: any_async <= 1.0,
        what: "any-key async cycle ≤ 1.0× tokio's `acquire().await`".into(),
        figures: ratios(&[any_async]),
    });
    let table: Vec<_> = r
        .keyed
        .iter()
        .filter(|(keys, _, _)| TABLE_KEYS.contains(keys))
        .collect();
    for (name, async_) in [("`try`", false), ("async", true)] {
        let values: Vec<f64> = table
            .iter()
            .map(|(_, t, a)| if async_ { a } else { t }.ratio(WP_KEY))
            .collect();
        out.push(Target {
            pass: values.iter().all(|v| *v <= 0.8),
            what: format!("keyed {name} cycle ≤ 0.8× the tokio map at 1 / 1,000 / 100,000 keys"),
            figures: ratios(&values),
        });
    }
    let (first, last) = (&r.keyed[0], &r.keyed[r.keyed.len() - 1]);
    let growth = [
        last.1.median(WP_KEY) / first.1.median(WP_KEY),
        last.2.median(WP_KEY) / first.2.median(WP_KEY),
    ];
    out.push(Target {
        pass: growth.iter().all(|v| *v <= 1.3),
        what: format!(
            "workpool at {} keys ≤ 1.3× workpool at 1 key (`try` / async)",
            thousands(last.0)
        ),
        figures: ratios(&growth),
    });
    for row in &r.contended {
        let values = [row.ratio(WP_ANY), row.ratio(WP_KEY)];
        out.push(Target {
            pass: values.iter().all(|v| *v <= 1.0),
            what: format!(
                "{}: time per cycle ≤ 1.0× tokio, i.e. throughput ≥ 1.0× (any key / one key)",
                row.case
            ),
            figures: ratios(&values),
        });
    }
    let m = &r.memory;
    let cycles = [
        m.try_cycle[WP_ANY],
        m.try_cycle[WP_KEY],
        m.async_cycle[WP_ANY],
        m.async_cycle[WP_KEY],
    ];
    out.push(Target {
        pass: cycles.iter().all(|v| *v == 0.0),
        what: "0 allocations per uncontended cycle (`try` any / one key, async any / one key)"
            .into(),
        figures: cycles.map(count).join(" / "),
    });
    let waits = [m.waiting[WP_ANY], m.waiting[WP_KEY]];
    out.push(Target {
        pass: waits.iter().all(|v| *v <= 1.0),
        what: "≤ 1 allocation per acquisition that has to wait (any / one key)".into(),
        figures: waits.map(count).join(" / "),
    });
    out.push(Target {
        pass: m.idle_key[0] <= 64.0,
        what: "≤ 64 heap bytes per idle key beyond the key".into(),
        figures: format!("{:.1}", m.idle_key[0]),
    });
    out
}

fn markdown(config: &Config, machine: &Machine, r: &Results) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(
        w,
        "Measured on {}; {} rounds of about {} ms per contender, interleaved{}.",
        machine.line(),
        config.rounds,
        config.slice.as_millis(),
        if config.quick {
            " (`--quick`: rough)"
        } else {
            ""
        }
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Nanoseconds per acquire + release cycle: median over the rounds (min–max), \
         then the median's ratio to tokio; lower is better. Keys are `u64`. In the S2 \
         rows tokio and async-lock are the hand-built `Mutex<HashMap<u64, Arc<Semaphore>>>` \
         (lock, look up, clone the `Arc`, unlock, take an owned permit) and the keys are \
         walked in a scattered order. S3 is 64 tasks on a two-thread tokio runtime doing \
         acquire, `yield_now`, release with target 4 per key, in wall-clock time per cycle."
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "| case | {} |", COLUMNS.join(" | "));
    let _ = writeln!(w, "| --- |{}", " ---: |".repeat(COLUMNS.len()));
    let mut rows: Vec<&Row> = vec![&r.s1_try, &r.s1_async];
    for (keys, t, a) in &r.keyed {
        if TABLE_KEYS.contains(keys) {
            rows.push(t);
            rows.push(a);
        }
    }
    rows.extend(&r.contended);
    for row in rows {
        let cells: Vec<_> = (0..COLUMNS.len()).map(|c| cell(row, c)).collect();
        let _ = writeln!(w, "| {} | {} |", row.case, cells.join(" | "));
    }
    let _ = writeln!(w);

    let m = &r.memory;
    let pair = |v: [f64; 4], f: fn(f64) -> String| {
        [format!("{} / {}", f(v[0]), f(v[1])), f(v[2]), f(v[3])]
    };
    let bytes = |v: f64| format!("{v:.1}");
    let memory_rows: [(String, [String; 3]); 7] = [
        (
            format!(
                "heap bytes per idle key beyond the key ({} keys of target 1; peers: the map)",
                thousands(IDLE_KEYS)
            ),
            m.idle_key.map(bytes),
        ),
        (
            format!(
                "heap bytes per waiting acquisition beyond its future ({} queued)",
                thousands(WAITERS as u64)
            ),
            pair(m.waiter, bytes),
        ),
        (
            "allocations per uncontended `try` cycle".into(),
            pair(m.try_cycle, count),
        ),
        (
            "allocations per uncontended async cycle".into(),
            pair(m.async_cycle, count),
        ),
        (
            "allocations per acquisition that has to wait (queued, then handed a lease)".into(),
            pair(m.waiting, count),
        ),
        (
            "`size_of` the acquire future".into(),
            pair(m.future_size.map(|s| s as f64), count),
        ),
        (
            "`size_of` the lease (peers: borrowed / owned permit)".into(),
            [
                m.lease_size[0].to_string(),
                format!("{} / {}", m.lease_size[1], m.lease_size[2]),
                format!("{} / {}", m.lease_size[3], m.lease_size[4]),
            ],
        ),
    ];
    let _ = writeln!(
        w,
        "S4, memory, from a counting allocator (workpool: any key / one key where they differ; \
         the peers as single semaphores):"
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "| | workpool | tokio | async-lock |");
    let _ = writeln!(w, "| --- | ---: | ---: | ---: |");
    for (what, cells) in memory_rows {
        let _ = writeln!(w, "| {what} | {} |", cells.join(" | "));
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "Targets (ratios from this run):");
    let _ = writeln!(w);
    for t in targets(r) {
        let verdict = if t.pass { "PASS" } else { "MISS" };
        let _ = writeln!(w, "- {verdict} {}: {}", t.what, t.figures);
    }
    md
}

// -------------------------------------------------------------------- plot

fn plot(path: &Path, machine: &Machine, keyed: &[(u64, Row, Row)]) -> Result<(), Box<dyn Error>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let top = keyed
        .iter()
        .flat_map(|(_, t, a)| [t, a])
        .flat_map(|row| row.cells.iter().flatten().map(|s| s.median))
        .fold(0.0, f64::max);
    let last = keyed.last().map_or(1, |k| k.0);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer) = root.split_vertically(510);
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(
            "Keyed acquire + release against key count (lower is better)",
            ("sans-serif", 20),
        )
        .margin(16)
        .margin_right(40)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((1u64..last).log_scale(), 0.0..top * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("keys (u64, scattered walk)")
        .y_desc("ns per cycle (median)")
        .x_label_formatter(&|v| thousands(*v))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let series = [
        (WP_KEY, "workpool", RGBColor(31, 119, 180)),
        (TOKIO, "tokio map", RGBColor(214, 39, 40)),
        (ASYNC_LOCK, "async-lock map", RGBColor(44, 160, 44)),
    ];
    for (column, name, color) in series {
        let points = |async_: bool| -> Vec<(u64, f64)> {
            keyed
                .iter()
                .map(|(keys, t, a)| (*keys, if async_ { a } else { t }.median(column)))
                .collect()
        };
        chart
            .draw_series(LineSeries::new(points(true), color.stroke_width(2)).point_size(3))?
            .label(format!("{name}, async"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(
                points(false),
                6,
                4,
                color.stroke_width(2),
            ))?
            .label(format!("{name}, try"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 8, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    footer.draw(&Text::new(
        format!("workpool-tests compare, {}", machine.line()),
        (16, 8),
        ("sans-serif", 13),
    ))?;
    root.present()?;
    Ok(())
}

// -------------------------------------------------------------------- main

fn main() -> ExitCode {
    let config = match Config::parse() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("compare: {message}");
            return ExitCode::from(2);
        }
    };
    let machine = Machine::describe();
    let mut bench = Bench {
        config,
        progress: Progress::new(),
    };
    // Memory first, while no other thread allocates.
    let memory = memory(&mut bench);
    let (s1_try, s1_async) = uncontended(&mut bench);
    let keyed = keyed(&mut bench);
    let contended = contended(&mut bench);
    bench.progress.finish();
    let results = Results {
        s1_try,
        s1_async,
        keyed,
        contended,
        memory,
    };

    let md = markdown(&bench.config, &machine, &results);
    print!("{md}");
    let _ = std::io::stdout().flush();
    let mut ok = true;
    if let Some(out) = &bench.config.out {
        let written = out
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(out, &md));
        match written {
            Ok(()) => eprintln!("wrote {}", out.display()),
            Err(e) => {
                eprintln!("compare: cannot write {}: {e}", out.display());
                ok = false;
            }
        }
    }
    match plot(&bench.config.svg, &machine, &results.keyed) {
        Ok(()) => eprintln!("wrote {}", bench.config.svg.display()),
        Err(e) => {
            eprintln!("compare: cannot write {}: {e}", bench.config.svg.display());
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
