//! The counting allocator and the interleaved measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::io::IsTerminal;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::timing::{CONTENDED_KEYS, KEY_COUNTS};
use crate::Config;

/// Progress steps: S1 try and async, S2 try and async per key count, S3 per
/// key count, S3 any key against one semaphore, S3 under two limits, S4.
const STEPS: usize = 2 + 2 * KEY_COUNTS.len() + CONTENDED_KEYS.len() + 1 + 2 + 1 + 1;

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
pub(crate) struct Heap {
    pub(crate) allocations: u64,
    pub(crate) live: i64,
}

impl Heap {
    pub(crate) fn now() -> Self {
        let freed = FREED.load(Ordering::Relaxed);
        Self {
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
            live: ALLOCATED.load(Ordering::Relaxed) as i64 - freed as i64,
        }
    }
}

// ------------------------------------------------------------- measurement

/// Columns of the timing table.
pub(crate) const WP_ANY: usize = 0;
pub(crate) const WP_KEY: usize = 1;
pub(crate) const TOKIO: usize = 2;
pub(crate) const ASYNC_LOCK: usize = 3;
pub(crate) const COLUMNS: [&str; 4] = [
    "workpool, any key",
    "workpool, one key",
    "tokio",
    "async-lock",
];

/// Nanoseconds per cycle over the rounds.
#[derive(Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
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
pub(crate) struct Row {
    pub(crate) case: String,
    pub(crate) cells: [Option<Stats>; 4],
}

impl Row {
    pub(crate) fn median(&self, column: usize) -> f64 {
        self.cells[column].map_or(f64::NAN, |s| s.median)
    }

    /// The median of `column` over tokio's.
    pub(crate) fn ratio(&self, column: usize) -> f64 {
        self.median(column) / self.median(TOKIO)
    }
}

/// Something to time: `run(n)` does `n` iterations and returns how long
/// they took.
pub(crate) struct Contender<'a> {
    column: usize,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

pub(crate) fn contender<'a>(column: usize, run: impl FnMut(u64) -> Duration + 'a) -> Contender<'a> {
    Contender {
        column,
        run: Box::new(run),
    }
}

/// The progress line on stderr.
pub(crate) struct Progress {
    step: usize,
    tty: bool,
    start: Instant,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            step: 0,
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
        }
    }

    pub(crate) fn begin(&mut self, what: &str) {
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

    pub(crate) fn finish(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("done in {:.1} s", self.start.elapsed().as_secs_f64());
    }
}

pub(crate) struct Bench {
    pub(crate) config: Config,
    pub(crate) progress: Progress,
}

impl Bench {
    /// Times the contenders interleaved and returns their row; `ops` is how
    /// many cycles one iteration does.
    pub(crate) fn measure(&mut self, case: &str, ops: u64, contenders: Vec<Contender<'_>>) -> Row {
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
pub(crate) fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// The output of a future that must not wait.
pub(crate) fn ready<F: Future>(fut: F) -> F::Output {
    match poll_once(pin!(fut)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an uncontended acquisition had to wait"),
    }
}

/// Times `n` calls of `cycle`.
pub(crate) fn timed(n: u64, mut cycle: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        cycle();
    }
    start.elapsed()
}

/// Times `n` turns of an async loop over `body`, polled once with a no-op
/// waker around the whole loop: nothing in it may wait.
macro_rules! timed_async {
    ($n:expr, $body:expr) => {
        $crate::harness::ready(async {
            let start = std::time::Instant::now();
            for _ in 0..$n {
                $body;
            }
            start.elapsed()
        })
    };
}
pub(crate) use timed_async;
