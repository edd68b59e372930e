//! A simulated crawler: at most `--per-host` connections to each host and
//! `--total` in all, the HTTP client's "max per host" plus "max total", in
//! one pool: `set(host, per_host)` for each host and `set_limit(total)`.
//!
//! Hosts appear and go away (`close_key`: fetches queued for a host that is
//! gone end with `Closed`). A fetcher task per queued URL waits for a
//! connection to its host, "downloads" for a random time and drops the lease.
//! Twice the limit is raised or lowered. Every tick prints a live table:
//! each host's connections against its limit, and the pool's against the
//! total.
//!
//! Every fetch checks, right after it got its lease, that neither limit
//! was exceeded: its host has at most `--per-host` live connections and the
//! pool at most the highest total in force since the fetch asked. The
//! program exits non-zero if a check failed.
//!
//! ```sh
//! cargo run --release -p workpool-std --example http_hosts -- --seconds 2
//! ```
//!
//! Flags: `--seconds N` (3), `--hosts N` (8), `--per-host N` (3),
//! `--total N` (10), `--seed N` (7).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use workpool_std::Pool;

const USAGE: &str =
    "usage: http_hosts [--seconds N] [--hosts N] [--per-host N] [--total N] [--seed N]";

#[derive(Debug, Clone, Copy)]
struct Config {
    seconds: u64,
    hosts: usize,
    per_host: u64,
    total: u64,
    seed: u64,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut c = Config {
        seconds: 3,
        hosts: 8,
        per_host: 3,
        total: 10,
        seed: 7,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value:?}"))?;
        match flag.as_str() {
            "--seconds" => c.seconds = n,
            "--hosts" => c.hosts = n as usize,
            "--per-host" => c.per_host = n,
            "--total" => c.total = n,
            "--seed" => c.seed = n,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !(1..=26).contains(&c.hosts) || c.per_host == 0 || c.total == 0 {
        return Err("--hosts must be 1..=26, --per-host and --total positive".into());
    }
    Ok(c)
}

fn host(i: usize) -> String {
    format!("{}.example", char::from(b'a' + i as u8))
}

/// xorshift64: small and seeded.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every total the crawler set, in order: a raise is logged before it is
/// applied and a cut after, so the highest entry since a fetch asked bounds
/// every total in force since then.
#[derive(Default)]
struct Totals(Mutex<Vec<u64>>);

impl Totals {
    fn set(&self, pool: &Pool<String>, total: u64) {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let raise = log.last().is_none_or(|&old| total > old);
        if raise {
            log.push(total);
            drop(log);
            pool.set_limit(Some(total));
        } else {
            drop(log);
            pool.set_limit(Some(total));
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(total);
        }
    }

    fn epoch(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len() - 1
    }

    fn max_since(&self, epoch: usize) -> u64 {
        let log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log[epoch..].iter().copied().max().unwrap_or(0)
    }
}

#[derive(Default)]
struct Figures {
    fetched: AtomicU64,
    gone: AtomicU64,
    violations: AtomicU64,
    peak_total: AtomicU64,
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("http_hosts: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    if runtime.block_on(crawl(config)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn crawl(c: Config) -> bool {
    let pool: Pool<String> = Pool::new();
    let totals = Arc::new(Totals::default());
    totals.set(&pool, c.total);
    let figures = Arc::new(Figures::default());
    let mut rng = Rng(c.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut up = vec![false; c.hosts];
    let mut fetches = JoinSet::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(c.seconds);
    let mut tick = 0u64;
    println!(
        "crawling {} hosts for {} s: at most {} per host, {} in all",
        c.hosts, c.seconds, c.per_host, c.total
    );
    while Instant::now() < deadline {
        tick += 1;
        // Hosts come and go.
        let i = rng.below(c.hosts as u64) as usize;
        if up[i] && rng.below(4) == 0 {
            up[i] = false;
            pool.close_key(&host(i));
        } else if !up[i] {
            up[i] = true;
            pool.set(host(i), c.per_host);
        }
        // The total changes twice.
        if tick == 20 {
            totals.set(&pool, c.total / 2 + 1);
        } else if tick == 40 {
            totals.set(&pool, c.total + c.total / 2);
        }
        // New URLs for the hosts that are up.
        for (i, _) in up.iter().enumerate().filter(|&(_, &up)| up) {
            for _ in 0..rng.below(6) {
                let (pool, totals, figures) =
                    (pool.clone(), Arc::clone(&totals), Arc::clone(&figures));
                let (per_host, work) = (c.per_host, Duration::from_millis(5 + rng.below(40)));
                fetches.spawn(fetch(pool, host(i), per_host, totals, figures, work));
            }
        }
        if tick % 10 == 0 {
            print_table(&pool, &up, &figures);
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // Let the queued fetches finish: a fetch that asked after its host went
    // away waits (going away is an event, not a state), so bring every host
    // back for the end.
    for (i, up) in up.iter_mut().enumerate() {
        *up = true;
        pool.set(host(i), c.per_host);
    }
    while fetches.join_next().await.is_some() {}
    print_table(&pool, &up, &figures);
    let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let violations = load(&figures.violations);
    println!(
        "fetched {} pages ({} dropped: host gone) in {:.1} s; at most {} connections \
         at once; {violations} violation(s)",
        load(&figures.fetched),
        load(&figures.gone),
        started.elapsed().as_secs_f64(),
        load(&figures.peak_total),
    );
    assert_eq!(pool.active(), 0, "every connection was given back");
    violations == 0
}

/// One page: wait for a connection to `host`, check both limits, download.
async fn fetch(
    pool: Pool<String>,
    host: String,
    per_host: u64,
    totals: Arc<Totals>,
    figures: Arc<Figures>,
    work: Duration,
) {
    let epoch = totals.epoch();
    let Ok(connection) = pool.acquire_key(&host).await else {
        figures.gone.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let on_host = pool.counts(&host).active;
    let total = pool.active();
    let bound = totals.max_since(epoch);
    figures.peak_total.fetch_max(total, Ordering::Relaxed);
    if on_host > per_host || total > bound {
        figures.violations.fetch_add(1, Ordering::Relaxed);
        eprintln!("VIOLATION: {host} has {on_host} of {per_host}, the pool {total} of {bound}");
    }
    tokio::time::sleep(work).await;
    figures.fetched.fetch_add(1, Ordering::Relaxed);
    drop(connection);
}

fn print_table(pool: &Pool<String>, up: &[bool], figures: &Figures) {
    let mut line = String::new();
    for (i, up) in up.iter().enumerate() {
        let c = pool.counts(&host(i));
        let mark = if *up { ' ' } else { '-' };
        line.push_str(&format!(
            "{mark}{}:{}/{}+{} ",
            char::from(b'a' + i as u8),
            c.active,
            c.target,
            pool.waiting(&host(i))
        ));
    }
    println!(
        "pool {:>2}/{:<2} | {line}| fetched {}",
        pool.active(),
        pool.limit().map_or_else(|| "-".into(), |l| l.to_string()),
        figures.fetched.load(Ordering::Relaxed)
    );
}
