//! Soak run, outside CI: churns through millions of distinct keys and tens
//! of millions of leases, takes a burst of 100,000 waiters and one of
//! 1,000,000 keys on the way, and checks that memory comes back afterwards.
//!
//! ```text
//! cargo run --release -p workpool-tests --bin soak -- --seconds 60
//! ```
//!
//! A controller thread keeps a sliding window of live keys: it sets each new
//! key to a target of 1 to 4 and sets the oldest one to 0, one new key per
//! few leases granted, so the run sees a new key for every handful of
//! leases. Worker threads (blocking and timed calls, `try_*`) and tokio
//! tasks (async calls under timeouts, which cancel acquisitions) take leases
//! from random live keys or from any key, hold a few, and drop them.
//!
//! Right after a short warm-up, with all of that running, the main thread
//! adds two bursts: 100,000 acquisitions queued for one key at once (half of
//! them then served, the rest cancelled), and 1,000,000 keys set to 1 and
//! then back to 0 (workers take any-key leases from them meanwhile).
//!
//! Checked along the way: a lease's id is never 0 and grows on each worker within a key (contract item 5), its key is one
//! that was set, and a sampled key never has more live leases than the only
//! non-zero target it ever had. At the end every key is set to 0 and the
//! pool must be empty with no waiter.
//!
//! Memory is taken before the pool, the runtime or any thread exists, and
//! again at the end, once every thread is gone, every lease dropped and
//! every key set to 0 (the pool itself is still alive). The verdict judges
//! two figures, and fails (exit 1) if either did not come back, or on any
//! violation above:
//!
//! - **Live heap bytes**, from a counting global allocator: exact, and the
//!   same whatever the C allocator, so this is the primary judge. Every byte
//!   the pool holds (slabs, tables, waker slots, spare capacity included) is
//!   counted. The end may exceed the start by what a pool used a little and
//!   emptied keeps (its shards' minimum sizes and blocks of more words,
//!   measured at the start: about 30 KiB a shard, and a pool has four
//!   shards per core, 4 to 64) plus 256 KiB. The bursts peak near 100 MiB; the pool ends at its minimum.
//! - **Resident anonymous memory** (`RssAnon` in `/proc/self/status`: heap,
//!   arenas, mappings, thread stacks; not the pages of the binary and its
//!   libraries), after `malloc_trim`, at most 4 MiB above the start. It sees
//!   what the counter cannot: threads or mappings left behind, and whether
//!   the freed memory really went back to the system. Where there is no
//!   `/proc/self/status`, the heap is judged alone.
//!
//! For the second figure to follow what the process holds rather than what
//! glibc chooses to cache, the soak pins glibc's mmap and trim thresholds at
//! their 128 KiB defaults before anything else runs (see [`pin_allocator`]
//! for why: left dynamic, the thread arena holding the pool's tables keeps
//! 7 to 9 MiB of freed memory that `malloc_trim` never returns; `--pin 0`
//! shows it). Pinned, the C allocator keeps at most about 256 KiB free per
//! arena (the trim threshold and the top pad), one arena per thread here,
//! so under 2.5 MiB however the run went; measured, the end is 0.5 MiB
//! above the start, with the heap back within a few KiB. A pool that gives
//! nothing back ends near 80 MiB on both figures (`--keep 1000000`, or the
//! core with its shrinking disabled), and `--keep 100000` (8 MiB) fails both.
//!
//! Options: `--seconds N` (default 60), `--window W` live keys (default
//! 4096), `--threads T` worker threads (default 4), `--tasks N` tokio tasks
//! (default 4), `--every S` seconds between progress lines (default 5),
//! `--keep K` to also set the first `K` keys of the key burst in a second
//! pool that is kept to the end (a pool that does not give memory back: the
//! verdict must fail), `--pin 0` to leave glibc's thresholds dynamic.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use workpool_std::{Lease, Pool};

/// The system allocator, keeping the process's live heap bytes.
struct Counting;

static HEAP: AtomicI64 = AtomicI64::new(0);
/// The most live heap bytes there ever were.
static HEAP_PEAK: AtomicI64 = AtomicI64::new(0);

fn heap_add(bytes: usize, sign: i64) {
    let delta = sign * bytes as i64;
    let now = HEAP.fetch_add(delta, Ordering::Relaxed) + delta;
    // A plain load first: the peak rarely moves, so this stays a read.
    if delta > 0 && now > HEAP_PEAK.load(Ordering::Relaxed) {
        HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter is a plain atomic that never touches
// the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        heap_add(layout.size(), 1);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        heap_add(layout.size(), 1);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        heap_add(new_size, 1);
        heap_add(layout.size(), -1);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        heap_add(layout.size(), -1);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes, in KiB.
fn heap_kib() -> i64 {
    HEAP.load(Ordering::Relaxed) / 1024
}

/// The most live heap bytes there ever were, in KiB.
fn heap_peak_kib() -> i64 {
    HEAP_PEAK.load(Ordering::Relaxed) / 1024
}

/// One new key per this many leases granted.
const LEASES_PER_KEY: u64 = 6;
/// Leases each worker holds at most at a time.
const HOLD: usize = 4;
/// Every this many leases a worker checks its key's counts.
const CHECK_EVERY: u64 = 32;
/// Allowed growth of the live heap from the start to the end, beyond what
/// an emptied pool keeps.
const HEAP_SLACK_KIB: i64 = 256;
/// Allowed growth of the resident anonymous memory from the start to the
/// end, once the C allocator's cache is trimmed: above what a pinned glibc
/// may keep (about 256 KiB per arena, one per thread), below what any kept
/// burst structure holds (the waiter burst alone takes 10 MiB).
const RSS_SLACK_KIB: u64 = 4 * 1024;
/// Acquisitions queued at once in the waiter burst, for one key.
const BURST_WAITERS: usize = 100_000;
/// Keys set to 1 and back to 0 in the key burst.
const BURST_KEYS: u64 = 1_000_000;
/// The waiter burst's key, and the first of the key burst's: far above the
/// controller's keys, and exempt from the checks that tie a key to its
/// window.
const WAITER_KEY: u64 = u64::MAX;
const BURST_BASE: u64 = 1 << 48;

struct Config {
    seconds: u64,
    window: u64,
    threads: usize,
    tasks: usize,
    every: u64,
    keep: u64,
    pin: bool,
}

impl Config {
    fn parse() -> Result<Self, String> {
        let mut config = Self {
            seconds: 60,
            window: 4096,
            threads: 4,
            tasks: 4,
            every: 5,
            keep: 0,
            pin: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number: u64 = value
                .parse()
                .map_err(|_| format!("{flag}: not a number: {value}"))?;
            match flag.as_str() {
                "--seconds" => config.seconds = number,
                "--window" => config.window = number.max(1),
                "--threads" => config.threads = number as usize,
                "--tasks" => config.tasks = number as usize,
                "--every" => config.every = number.max(1),
                "--keep" => config.keep = number.min(BURST_KEYS),
                "--pin" => config.pin = number != 0,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(config)
    }
}

/// The only non-zero target `key` is ever set to.
fn target_of(key: u64) -> u64 {
    1 + key % 4
}

/// A small xorshift generator: no dependency needed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Counters shared by everyone.
#[derive(Default)]
struct Stats {
    granted: AtomicU64,
    timeouts: AtomicU64,
    no_capacity: AtomicU64,
    cancelled: AtomicU64,
    violations: AtomicU64,
    /// Keys `[retired, born)` have their target set; keys below `retired`
    /// are set to 0.
    born: AtomicU64,
    retired: AtomicU64,
    stop: AtomicBool,
}

impl Stats {
    fn live_range(&self) -> (u64, u64) {
        let lo = self.retired.load(Ordering::Acquire);
        let hi = self.born.load(Ordering::Acquire);
        (lo, hi.max(lo + 1))
    }

    fn violation(&self, what: &str) {
        if self.violations.fetch_add(1, Ordering::Relaxed) < 10 {
            eprintln!("VIOLATION: {what}");
        }
    }
}

/// The id of a worker's last lease of each live key: ids grow in grant
/// order within a key (contract item 5; across keys they are only unique),
/// so a worker's leases of one key come with growing ids. Keys that left
/// the window are pruned now and then, so the map stays about the window's
/// size.
#[derive(Default)]
struct LastIds(std::collections::HashMap<u64, u64>);

/// Checks a lease just granted to a worker, whose earlier leases `last`
/// remembers.
fn check(pool: &Pool<u64>, stats: &Stats, lease: &Lease<u64>, last: &mut LastIds, n: u64) {
    let (id, key) = (lease.id(), *lease.key());
    if id == 0 {
        stats.violation("lease id 0");
    }
    if key >= BURST_BASE {
        // A burst key: any-key acquisitions take them too.
        return;
    }
    let before = last.0.insert(key, id).unwrap_or(0);
    if id <= before {
        stats.violation(&format!("lease id {id} after {before} of key {key}"));
    }
    if n % 4096 == 0 {
        let retired = stats.retired.load(Ordering::Acquire);
        last.0.retain(|&k, _| k >= retired);
    }
    if key >= stats.born.load(Ordering::Acquire) {
        stats.violation(&format!("lease for key {key} that was never set"));
    }
    if n % CHECK_EVERY == 0 {
        let counts = pool.counts(&key);
        if counts.active == 0 || counts.active > target_of(key) {
            stats.violation(&format!("key {key}: {counts:?} with a lease held"));
        }
    }
}

/// Resident anonymous memory in KiB (`RssAnon` in `/proc/self/status`: the
/// heap, the allocator's arenas and mappings, thread stacks; not the pages of
/// the binary and its libraries, which the kernel can drop and read again),
/// or `None` where there is no such file.
fn read_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    // Kernels before 4.5 have no `RssAnon`: count every resident page then.
    field("RssAnon:").or_else(|| field("VmRSS:"))
}

/// [`read_rss_kib`], or 0 where it cannot be read.
fn rss_kib() -> u64 {
    read_rss_kib().unwrap_or(0)
}

/// The anonymous mappings that hold the most resident memory, largest
/// first, as (KiB, address range and name), from `/proc/self/smaps`.
fn largest_anonymous(n: usize) -> Vec<(u64, String)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut rows = Vec::new();
    let mut mapping = String::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, perms, offset, device, inode, name.
            let name = words.nth(4).unwrap_or("(anonymous)");
            mapping = format!("{first} {name}");
        } else if first == "Anonymous:" {
            let kib = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            if kib > 0 {
                rows.push((kib, mapping.clone()));
            }
        }
    }
    rows.sort_unstable_by(|a, b| b.cmp(a));
    rows.truncate(n);
    rows
}

/// Glibc's mmap threshold and trim threshold, pinned at their documented
/// defaults by [`pin_allocator`].
const MALLOC_THRESHOLD: std::ffi::c_int = 128 * 1024;

/// Makes glibc's malloc hand big blocks back when they are freed, as its
/// defaults say it does, instead of learning to keep them.
///
/// Glibc serves blocks of at least `M_MMAP_THRESHOLD` (128 KiB) with a
/// mapping of their own, unmapped on `free`, and gives the top of a heap back
/// once more than `M_TRIM_THRESHOLD` (128 KiB) is free there. Both thresholds
/// are dynamic though: each time a mapped block is freed, the first rises to
/// that block's size (up to 32 MiB) and the second to twice that. After the
/// bursts' slabs and tables are freed, blocks of up to 32 MiB come from the
/// arenas instead, and a thread's arena keeps up to 64 MiB free at its top.
/// `malloc_trim` does not help there: it gives back the free pages inside
/// every arena but the top of the main arena's heap only, never the top of a
/// thread's arena. A slab stays in the arena of the thread that allocated it
/// first (`realloc` keeps a block in its arena) and a table moves to the
/// arena of the thread that resizes it. Here the controller sets every
/// shard's first keys and keeps setting keys through the bursts, so its
/// arena took most of them, and its top held 7 to 9 MiB at the end of a run
/// (with 7 KiB in use in that arena): the verdict failed on memory the pool
/// had freed. Pinning the thresholds (setting either turns the adjustment
/// off) keeps the allocator's cache small and fixed, so that resident memory
/// follows what the process holds.
///
/// Elsewhere this does nothing, and returns false.
fn pin_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: `mallopt` has no preconditions; it only sets a parameter
        // of the allocator, and returns 0 if it refuses the value.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD) == 1
                && mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Asks glibc's malloc to hand the free pages it still caches back to the
/// system (`malloc_trim`), and prints its arenas' statistics to stderr if
/// `stats`; elsewhere it does nothing.
fn trim_allocator(stats: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
            fn malloc_stats();
        }
        // SAFETY: `malloc_trim` has no preconditions; it only returns free
        // memory to the system. `malloc_stats` only writes to stderr.
        unsafe {
            malloc_trim(0);
            if stats {
                malloc_stats();
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = stats;
}

fn worker(pool: &Pool<u64>, stats: &Stats, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut held = VecDeque::with_capacity(HOLD + 1);
    let (mut last, mut n) = (LastIds::default(), 0u64);
    while !stats.stop.load(Ordering::Relaxed) {
        let (lo, hi) = stats.live_range();
        let key = lo + rng.below(hi - lo);
        let outcome = match rng.below(10) {
            0..=3 => pool.try_acquire_key(&key).map_err(|_| &stats.no_capacity),
            4 | 5 => pool.try_acquire().map_err(|_| &stats.no_capacity),
            6 | 7 => pool
                .acquire_key_timeout(&key, Duration::from_micros(200))
                .map_err(|_| &stats.timeouts),
            8 => pool
                .acquire_timeout(Duration::from_millis(5))
                .map_err(|_| &stats.timeouts),
            // Any key: with thousands of live keys there is always room.
            _ => pool.acquire_blocking().map_err(|_| &stats.timeouts),
        };
        match outcome {
            Ok(lease) => {
                n += 1;
                check(pool, stats, &lease, &mut last, n);
                stats.granted.fetch_add(1, Ordering::Relaxed);
                held.push_back(lease);
                if held.len() > 1 + rng.below(HOLD as u64) as usize {
                    held.pop_front();
                }
            }
            Err(counter) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn task(pool: Pool<u64>, stats: Arc<Stats>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut held = VecDeque::with_capacity(HOLD + 1);
    let (mut last, mut n) = (LastIds::default(), 0u64);
    while !stats.stop.load(Ordering::Relaxed) {
        let (lo, hi) = stats.live_range();
        let key = lo + rng.below(hi - lo);
        let limit = Duration::from_micros(50 + rng.below(200));
        let outcome = if rng.below(2) == 0 {
            tokio::time::timeout(limit, pool.acquire_key(&key)).await
        } else {
            tokio::time::timeout(limit, pool.acquire()).await
        };
        match outcome {
            Ok(Ok(lease)) => {
                n += 1;
                check(&pool, &stats, &lease, &mut last, n);
                stats.granted.fetch_add(1, Ordering::Relaxed);
                held.push_back(lease);
                if held.len() > 1 + rng.below(HOLD as u64) as usize {
                    held.pop_front();
                }
                if n % 8 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Ok(Err(closed)) => stats.violation(&format!("{closed} on an open pool")),
            Err(_) => {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Births one key per `LEASES_PER_KEY` leases granted and retires the
/// oldest beyond the window, until told to stop.
fn controller(pool: &Pool<u64>, stats: &Stats, window: u64) {
    let mut born = 0;
    let mut retired = 0;
    // The first window at once, so the workers have keys from the start.
    while born < window {
        pool.set(born, target_of(born));
        born += 1;
    }
    stats.born.store(born, Ordering::Release);
    while !stats.stop.load(Ordering::Relaxed) {
        let due = window + stats.granted.load(Ordering::Relaxed) / LEASES_PER_KEY;
        let batch = due.saturating_sub(born).min(1024);
        for _ in 0..batch {
            // Announce the key before setting it, so that no lease for it
            // can be seen before `born` covers it.
            stats.born.store(born + 1, Ordering::Release);
            pool.set(born, target_of(born));
            born += 1;
            if born - retired > window {
                // Publish the retirement first, so workers move on.
                stats.retired.store(retired + 1, Ordering::Release);
                pool.set(retired, 0);
                retired += 1;
            }
        }
        if batch == 0 {
            thread::sleep(Duration::from_micros(200));
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

/// Queues [`BURST_WAITERS`] acquisitions for [`WAITER_KEY`] at once, serves
/// about half of them (older any-key waiters of the workers may take some of
/// that room first) and cancels the rest. Returns how many were queued and
/// served, and the RSS with all of them queued.
fn waiter_burst(pool: &Pool<u64>) -> (usize, usize, u64) {
    let key = WAITER_KEY;
    let mut waiting: Vec<_> = (0..BURST_WAITERS).map(|_| pool.acquire_key(&key)).collect();
    let mut queued = 0;
    for fut in &mut waiting {
        queued += usize::from(poll_once(fut).is_pending());
    }
    let rss = rss_kib();
    pool.set(key, BURST_WAITERS as u64 / 2);
    let served: Vec<Lease<u64>> = waiting
        .iter_mut()
        .filter_map(|fut| match poll_once(fut) {
            Poll::Ready(Ok(lease)) => Some(lease),
            _ => None,
        })
        .collect();
    let count = served.len();
    drop(waiting);
    drop(served);
    pool.set(key, 0);
    (queued, count, rss)
}

/// Live heap bytes, in KiB, of a pool used a little and emptied again: 64
/// keys a shard, a lease, a key waiter and an any-key waiter each, then all
/// of it gone. Its shards keep their minimum slabs, tables and waker slots,
/// and the block of more words that 64 keys make each shard give out
/// (about 30 KiB a shard, and a pool has four shards per core, 4 to 64), so
/// this is the least the soak's pool can come back to. Too small a load to
/// hide memory kept after the bursts: a pool that kept all it ever had would
/// keep only what 64 keys a shard take here.
fn emptied_pool_kib() -> i64 {
    let before = HEAP.load(Ordering::Relaxed);
    let pool: Pool<u64> = Pool::new();
    let keys = 64 * pool.shard_count() as u64;
    for key in 0..keys {
        pool.set(key, 1);
    }
    let leases: Vec<_> = (0..keys)
        .filter_map(|key| pool.try_acquire_key(&key).ok())
        .collect();
    let mut waiting: Vec<_> = (0..keys).map(|key| pool.acquire_key_owned(key)).collect();
    let mut any: Vec<_> = (0..keys).map(|_| pool.acquire_owned()).collect();
    let pending = waiting
        .iter_mut()
        .map(poll_once)
        .filter(Poll::is_pending)
        .count()
        + any
            .iter_mut()
            .map(poll_once)
            .filter(Poll::is_pending)
            .count();
    assert_eq!(pending as u64, 2 * keys, "the calibration's waiters wait");
    drop((waiting, any, leases));
    for key in 0..keys {
        pool.set(key, 0);
    }
    let kib = (HEAP.load(Ordering::Relaxed) - before) / 1024;
    drop(pool);
    kib
}

/// Sets [`BURST_KEYS`] keys to 1, then all of them back to 0. Returns the
/// RSS with all of them set. The first `keep` of them are set in `kept`
/// too, if there is one, and stay set there.
fn key_burst(pool: &Pool<u64>, kept: Option<&Pool<u64>>, keep: u64) -> u64 {
    for key in BURST_BASE..BURST_BASE + BURST_KEYS {
        pool.set(key, 1);
        if let Some(kept) = kept.filter(|_| key - BURST_BASE < keep) {
            kept.set(key, 1);
        }
    }
    let rss = rss_kib();
    for key in BURST_BASE..BURST_BASE + BURST_KEYS {
        pool.set(key, 0);
    }
    rss
}

fn main() -> ExitCode {
    let config = match Config::parse() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("soak: {err}");
            eprintln!(
                "usage: soak [--seconds N] [--window W] [--threads T] [--tasks N] [--every S] \
                 [--keep K] [--pin 0|1]"
            );
            return ExitCode::from(2);
        }
    };
    let Config {
        seconds,
        window,
        threads,
        tasks,
        every,
        keep,
        pin,
    } = config;
    println!(
        "soak: {seconds} s, window {window} live keys, {threads} threads, {tasks} tokio tasks, \
         one new key per {LEASES_PER_KEY} leases"
    );
    let pinned = pin && pin_allocator();
    // The baseline: before the pool, the runtime or any thread exists.
    let (rss_boot, heap_boot) = (read_rss_kib(), heap_kib());
    let rss_boot_kib = rss_boot.unwrap_or(0);
    let pool_floor = emptied_pool_kib();
    let pool: Pool<u64> = Pool::new();
    // With `--keep`: a pool that keeps what the key burst put in it, to see
    // that the verdict fails when memory stays behind.
    let kept = (keep > 0).then(Pool::<u64>::new);
    let stats = Arc::new(Stats::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime");
    let start = Instant::now();
    let warm_up = Duration::from_secs((seconds / 20).clamp(1, 5));
    let run_for = Duration::from_secs(seconds);

    let (rss_start, peak_live, peak_rss) = thread::scope(|s| {
        s.spawn(|| controller(&pool, &stats, window));
        while stats.born.load(Ordering::Acquire) < window {
            thread::yield_now();
        }
        for t in 0..threads {
            let (pool, stats) = (&pool, &stats);
            thread::Builder::new()
                .name(format!("soak-worker-{t}"))
                .spawn_scoped(s, move || worker(pool, stats, t as u64 + 1))
                .expect("spawn a worker");
        }
        let handles: Vec<_> = (0..tasks)
            .map(|t| runtime.spawn(task(pool.clone(), Arc::clone(&stats), 1_000 + t as u64)))
            .collect();

        thread::sleep(warm_up);
        let rss_start = rss_kib();
        println!(
            "warm-up done after {:.1} s: rss {:.1} MiB, live keys {}, leases {}",
            start.elapsed().as_secs_f64(),
            mib(rss_start),
            pool.len(),
            stats.granted.load(Ordering::Relaxed)
        );

        let bursts = Instant::now();
        let (queued, served, rss_waiters) = waiter_burst(&pool);
        println!(
            "waiter burst: {queued} acquisitions queued at once (rss {:.1} MiB), {served} \
             served, the rest cancelled; now {} waiters, rss {:.1} MiB",
            mib(rss_waiters),
            pool.waiters(),
            mib(rss_kib())
        );
        let rss_keys = key_burst(&pool, kept.as_ref(), keep);
        println!(
            "key burst: {BURST_KEYS} keys set (rss {:.1} MiB) and set to 0; now {} live keys, \
             rss {:.1} MiB; both bursts took {:.1} s",
            mib(rss_keys),
            pool.len(),
            mib(rss_kib()),
            bursts.elapsed().as_secs_f64()
        );

        let (mut peak_live, mut peak_rss) = (0, rss_start.max(rss_waiters).max(rss_keys));
        let (mut last_time, mut last_granted) = (Instant::now(), 0);
        while start.elapsed() < run_for {
            let left = run_for.saturating_sub(start.elapsed());
            thread::sleep(left.min(Duration::from_secs(every)));
            let (live, waiters, rss) = (pool.len(), pool.waiters(), rss_kib());
            let granted = stats.granted.load(Ordering::Relaxed);
            let rate = (granted - last_granted) as f64 / last_time.elapsed().as_secs_f64();
            (last_time, last_granted) = (Instant::now(), granted);
            peak_live = peak_live.max(live);
            peak_rss = peak_rss.max(rss);
            println!(
                "t={:>5.1}s leases={granted} ({:.0}/s) keys={} live_keys={live} waiters={waiters} \
                 timeouts={} cancelled={} rss={:.1}MiB",
                start.elapsed().as_secs_f64(),
                rate,
                stats.born.load(Ordering::Relaxed),
                stats.timeouts.load(Ordering::Relaxed),
                stats.cancelled.load(Ordering::Relaxed),
                mib(rss)
            );
        }
        stats.stop.store(true, Ordering::SeqCst);
        runtime.block_on(async {
            for handle in handles {
                if let Err(err) = handle.await {
                    stats.violation(&format!("a task failed: {err}"));
                }
            }
        });
        (rss_start, peak_live, peak_rss)
    });
    drop(runtime);
    let elapsed = start.elapsed();

    // Every worker and task is done and its leases dropped: retire the rest.
    let (retired, born) = (
        stats.retired.load(Ordering::Acquire),
        stats.born.load(Ordering::Acquire),
    );
    let mut left_active = 0;
    for key in retired..born {
        left_active += pool.counts(&key).active;
        pool.set(key, 0);
    }
    let (len, waiters) = (pool.len(), pool.waiters());
    if left_active != 0 || len != 0 || waiters != 0 {
        stats.violation(&format!(
            "at the end: {left_active} leases still active, {len} keys tracked, {waiters} waiters"
        ));
    }
    // The end: every thread is gone, every lease dropped, every key set to
    // 0; only the pool (and `kept`, with `--keep`) is left.
    let (rss_cached, heap_end) = (rss_kib(), heap_kib());
    trim_allocator(false);
    let rss_end = rss_kib();
    let rss_limit = rss_boot_kib + RSS_SLACK_KIB;
    let heap_limit = heap_boot + pool_floor + HEAP_SLACK_KIB;
    let heap_ok = heap_end <= heap_limit;
    // Where there is no `/proc`, the heap is judged alone.
    let rss_ok = rss_boot.is_none() || rss_end <= rss_limit;

    let granted = stats.granted.load(Ordering::Relaxed);
    let violations = stats.violations.load(Ordering::Relaxed);
    println!("---- summary ----");
    println!("elapsed:        {:.1} s", elapsed.as_secs_f64());
    println!(
        "leases granted: {granted} ({:.0}/s)",
        granted as f64 / elapsed.as_secs_f64()
    );
    println!(
        "distinct keys:  {born} ({:.0}/s){}",
        born as f64 / elapsed.as_secs_f64(),
        if born >= 1_000_000 {
            ""
        } else {
            " (below 1,000,000)"
        }
    );
    println!("peak live keys: {peak_live}");
    println!(
        "timeouts:       {}; cancelled futures: {}; no capacity: {}",
        stats.timeouts.load(Ordering::Relaxed),
        stats.cancelled.load(Ordering::Relaxed),
        stats.no_capacity.load(Ordering::Relaxed)
    );
    println!("end state:      {len} keys tracked, {waiters} waiters");
    println!(
        "heap:           start {heap_boot} KiB, peak {:.1} MiB, end {heap_end} KiB \
         (limit {heap_limit} KiB = start + an emptied pool's {pool_floor} KiB + \
         {HEAP_SLACK_KIB} KiB){}",
        mib(heap_peak_kib().max(0) as u64),
        if heap_ok { "" } else { ": FAIL" }
    );
    if rss_boot.is_some() {
        println!(
            "rss (anon):     start {:.1} MiB, after warm-up {:.1} MiB, peak {:.1} MiB, end {:.1} \
             MiB (limit {:.1} MiB = start + {} MiB){}",
            mib(rss_boot_kib),
            mib(rss_start),
            mib(peak_rss),
            mib(rss_end),
            mib(rss_limit),
            RSS_SLACK_KIB / 1024,
            if rss_ok { "" } else { ": FAIL" }
        );
        println!(
            "                (end {:.1} MiB before malloc_trim; malloc's thresholds {})",
            mib(rss_cached),
            match (pinned, pin) {
                (true, _) => "pinned at 128 KiB",
                (false, true) => "not pinned (not glibc)",
                (false, false) => "left dynamic (--pin 0)",
            }
        );
    } else {
        println!("rss:            not measured here (no /proc/self/status): heap judged alone");
    }
    println!("violations:     {violations}");
    if !rss_ok {
        // Say where it is held: the largest anonymous mappings, and the
        // allocator's view of its arenas (on stderr).
        println!("largest anonymous mappings at the end:");
        for (kib, mapping) in largest_anonymous(6) {
            println!("  {kib:>8} KiB  {mapping}");
        }
        trim_allocator(true);
    }
    let memory_ok = heap_ok && rss_ok;
    drop(kept);
    if violations == 0 && memory_ok {
        println!("verdict: PASS");
        ExitCode::SUCCESS
    } else {
        println!(
            "verdict: FAIL ({})",
            if memory_ok {
                "invariant violations"
            } else {
                "memory did not come back"
            }
        );
        ExitCode::FAILURE
    }
}
