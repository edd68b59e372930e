//! Simulated reverse-tunnel agents: the use case Go's `workpool` was written
//! for (Teleport keeping N agents connected per proxy endpoint).
//!
//! A controller makes proxy endpoints appear, change their wanted agent count
//! and disappear ([`Pool::close_key`]: target 0, and every re-dial waiting
//! for that endpoint ends with `Closed`). A dispatcher takes leases from
//! [`Pool::leases`] and spawns one agent per lease. Agents "connect" for a
//! random time; some fail early, drop their lease and sometimes re-dial the
//! same endpoint with a plain `acquire_key`, which needs no timeout: it ends
//! with a lease, or with `Closed` when the endpoint goes away (or, at the
//! end, the pool closes).
//!
//! Each tick the controller runs a *discovery*: it computes the wanted
//! agents per endpoint and applies them in one step with
//! [`Pool::replace_all`] (endpoints not in the result get 0), then closes the
//! endpoints that went down. Agents await [`Lease::surplus`] beside their
//! work: when their endpoint shrank or went away, the surplus agents leave
//! at once ([`Lease::release_if_surplus`]) instead of running until they
//! happen to finish. For every endpoint that goes down, the time until
//! [`Pool::drained`] resolves is measured; the summary prints those times
//! and [`Pool::stats`]. `--surplus 0` turns the cooperative leaving off, to
//! compare drain times.
//!
//! Every agent checks, right after it got its lease, that the number of
//! agents it can see on its endpoint is within the highest target that was
//! in force since it started asking. The run ends with `close()`, waits for
//! every agent and exits non-zero if any check failed.
//!
//! ```sh
//! cargo run --release -p workpool-std --example agent_pool -- --seconds 2
//! ```
//!
//! Flags: `--seconds N` (10), `--endpoints N` (6), `--max-target N` (4),
//! `--seed N` (1), `--tick-ms N` (500), `--surplus 0|1` (1).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use workpool_std::{Closed, Lease, Pool};

/// Endpoints are keyed by their index; `name` makes them readable.
type Key = usize;

fn main() -> ExitCode {
    let config = match Config::parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("agent_pool: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(run(config));
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ------------------------------------------------------------------ config

const USAGE: &str = "usage: agent_pool [--seconds N] [--endpoints N] [--max-target N] \
                     [--seed N] [--tick-ms N] [--surplus 0|1]";

#[derive(Debug, Clone, Copy)]
struct Config {
    seconds: u64,
    endpoints: usize,
    max_target: u64,
    seed: u64,
    tick_ms: u64,
    /// Agents leave as soon as they are surplus.
    surplus: bool,
}

impl Config {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut config = Self {
            seconds: 10,
            endpoints: 6,
            max_target: 4,
            seed: 1,
            tick_ms: 500,
            surplus: true,
        };
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number: u64 = value
                .parse()
                .map_err(|_| format!("{flag}: not a number: {value:?}"))?;
            match flag.as_str() {
                "--seconds" => config.seconds = number,
                "--endpoints" => config.endpoints = number as usize,
                "--max-target" => config.max_target = number,
                "--seed" => config.seed = number,
                "--tick-ms" => config.tick_ms = number,
                "--surplus" => config.surplus = number != 0,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if !(1..=26).contains(&config.endpoints) {
            return Err("--endpoints must be 1..=26".into());
        }
        if config.max_target == 0 || config.tick_ms == 0 {
            return Err("--max-target and --tick-ms must be positive".into());
        }
        Ok(config)
    }
}

fn name(key: Key) -> String {
    format!("proxy-{}", char::from(b'a' + key as u8))
}

// --------------------------------------------------------------------- rng

/// xorshift64*: small, seeded, good enough to pick durations.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that 0 and nearby seeds are fine.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

// ----------------------------------------------------- target log + checks

/// Every `set` the controller made, in order, so an agent can tell the
/// highest target that was in force during its acquisition.
///
/// The controller calls `pool.set` while holding this lock, so a target in
/// force at any moment after an agent read `now()` is in the log after that
/// point.
#[derive(Debug)]
struct Targets {
    log: Mutex<TargetLog>,
}

#[derive(Debug)]
struct TargetLog {
    seq: u64,
    /// Per key: `(seq, target)` of each `set`, oldest first.
    history: Vec<Vec<(u64, u64)>>,
}

impl Targets {
    fn new(keys: usize) -> Self {
        Self {
            log: Mutex::new(TargetLog {
                seq: 0,
                history: vec![Vec::new(); keys],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TargetLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, pool: &Pool<Key>, key: Key, target: u64) {
        let mut log = self.lock();
        log.seq += 1;
        let seq = log.seq;
        pool.set(key, target);
        log.history[key].push((seq, target));
    }

    /// A discovery result: every endpoint's wanted agents at once
    /// (`replace_all`: endpoints not listed get 0).
    fn replace_all(&self, pool: &Pool<Key>, wanted: &[(Key, u64)]) {
        let mut log = self.lock();
        log.seq += 1;
        let seq = log.seq;
        pool.replace_all(wanted.iter().copied());
        for key in 0..log.history.len() {
            let target = wanted
                .iter()
                .find(|&&(k, _)| k == key)
                .map_or(0, |&(_, t)| t);
            log.history[key].push((seq, target));
        }
    }

    /// The endpoint went away: `close_key` sets its target to 0 and fails
    /// the re-dials waiting for it.
    fn close(&self, pool: &Pool<Key>, key: Key) {
        let mut log = self.lock();
        log.seq += 1;
        let seq = log.seq;
        pool.close_key(&key);
        log.history[key].push((seq, 0));
    }

    fn now(&self) -> u64 {
        self.lock().seq
    }

    /// The highest target of `key` in force at any time since `since`.
    fn max_since(&self, key: Key, since: u64) -> u64 {
        let log = self.lock();
        let history = &log.history[key];
        let first_later = history.partition_point(|&(seq, _)| seq <= since);
        let in_force = first_later.checked_sub(1).map_or(0, |i| history[i].1);
        history[first_later..]
            .iter()
            .map(|&(_, target)| target)
            .fold(in_force, u64::max)
    }

    fn max_ever(&self, key: Key) -> u64 {
        self.lock().history[key]
            .iter()
            .map(|&(_, t)| t)
            .max()
            .unwrap_or(0)
    }
}

/// What the agents of one endpoint saw, counted by the agents themselves.
#[derive(Debug, Default)]
struct EndpointStats {
    /// Agents holding a lease right now (incremented after the grant,
    /// decremented before the lease is dropped).
    active: AtomicU64,
    max_active: AtomicU64,
    granted: AtomicU64,
    failures: AtomicU64,
    redials: AtomicU64,
    /// Re-dials that ended with `Closed` (the endpoint went down, or the
    /// pool closed at the end of the run).
    closed: AtomicU64,
    /// Agents that left because they were surplus.
    left_surplus: AtomicU64,
    violations: AtomicU64,
}

#[derive(Debug)]
struct World {
    pool: Pool<Key>,
    targets: Targets,
    stats: Vec<EndpointStats>,
    seed: u64,
    surplus: bool,
    /// How long each endpoint that went down took to drain.
    drains: Mutex<Vec<Duration>>,
}

/// A connected agent: it holds the lease and is counted in its endpoint's
/// `active` for exactly as long as it lives.
struct Session {
    world: Arc<World>,
    lease: Option<Lease<Key>>,
}

impl Session {
    /// Counts a freshly granted lease and checks it against the highest
    /// target in force since the acquisition started (`since`).
    fn start(world: &Arc<World>, lease: Lease<Key>, since: u64) -> Self {
        let key = *lease.key();
        let stats = &world.stats[key];
        stats.granted.fetch_add(1, Ordering::Relaxed);
        let seen = stats.active.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_active.fetch_max(seen, Ordering::Relaxed);
        let allowed = world.targets.max_since(key, since);
        if seen > allowed {
            stats.violations.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "VIOLATION: {} has {seen} agents after lease {}, target was at most {allowed}",
                name(key),
                lease.id()
            );
        }
        Self {
            world: Arc::clone(world),
            lease: Some(lease),
        }
    }

    fn key(&self) -> Key {
        *self.lease.as_ref().expect("live session").key()
    }

    fn id(&self) -> u64 {
        self.lease.as_ref().expect("live session").id()
    }

    fn lease(&self) -> &Lease<Key> {
        self.lease.as_ref().expect("live session")
    }

    /// Hangs up if the agent is surplus (deciding and releasing atomically);
    /// gives the session back otherwise.
    fn leave_if_surplus(mut self) -> Result<(), Self> {
        let key = self.key();
        let stats = &self.world.stats[key];
        // Uncount first, as a hang-up does; count again if it stays.
        stats.active.fetch_sub(1, Ordering::SeqCst);
        match self
            .lease
            .take()
            .expect("live session")
            .release_if_surplus()
        {
            Ok(()) => {
                stats.left_surplus.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(lease) => {
                stats.active.fetch_add(1, Ordering::SeqCst);
                self.lease = Some(lease);
                Err(self)
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            // Uncount first, then give the lease back.
            self.world.stats[*lease.key()]
                .active
                .fetch_sub(1, Ordering::SeqCst);
            drop(lease);
        }
    }
}

// -------------------------------------------------------------------- run

async fn run(config: Config) -> Report {
    let world = Arc::new(World {
        pool: Pool::new(),
        targets: Targets::new(config.endpoints),
        stats: (0..config.endpoints)
            .map(|_| EndpointStats::default())
            .collect(),
        seed: config.seed,
        surplus: config.surplus,
        drains: Mutex::new(Vec::new()),
    });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut rng = Rng::new(config.seed);

    // Half of the endpoints are up from the start.
    let mut wanted: Vec<(Key, u64)> = (0..config.endpoints.div_ceil(2))
        .map(|key| (key, rng.range(1, config.max_target)))
        .collect();
    world.targets.replace_all(&world.pool, &wanted);
    println!(
        "agent_pool: {} endpoints, targets 1..={}, seed {}, tick {} ms, {} s",
        config.endpoints, config.max_target, config.seed, config.tick_ms, config.seconds
    );

    let dispatcher = tokio::spawn(dispatch(Arc::clone(&world), shutdown.clone()));

    let start = Instant::now();
    let tick = Duration::from_millis(config.tick_ms);
    let ticks = (config.seconds * 1000).div_ceil(config.tick_ms).max(1);
    let mut interval = tokio::time::interval(tick);
    interval.tick().await;
    for n in 1..=ticks {
        interval.tick().await;
        let events = discover(&world, &mut rng, &config, &mut wanted);
        print_table(&world, n, start.elapsed(), &events);
    }

    // Shut down: no new leases, waiters fail with `Closed`, agents hang up.
    world.pool.close();
    let _ = shutdown_tx.send(true);
    let sessions = dispatcher.await.expect("the dispatcher does not panic");
    let remaining: u64 = world.pool.snapshot().iter().map(|(_, c, _)| c.active).sum();
    for key in 0..config.endpoints {
        world.targets.set(&world.pool, key, 0);
    }
    let report = Report::new(&world, sessions, remaining);
    report.print(&world);
    report
}

/// One controller step: a discovery in which endpoints appear, are
/// re-targeted or disappear, applied with one `replace_all`; the endpoints
/// that went down are then closed (their waiting re-dials end) and timed
/// until drained.
fn discover(
    world: &Arc<World>,
    rng: &mut Rng,
    config: &Config,
    wanted: &mut Vec<(Key, u64)>,
) -> String {
    let mut events = Vec::new();
    let mut down = Vec::new();
    for _ in 0..rng.range(1, 2) {
        let key = rng.range(0, config.endpoints as u64 - 1) as usize;
        let old = wanted
            .iter()
            .find(|&&(k, _)| k == key)
            .map_or(0, |&(_, t)| t);
        let new = if old == 0 {
            rng.range(1, config.max_target)
        } else if rng.chance(35) {
            0
        } else {
            rng.range(1, config.max_target)
        };
        if new == old {
            continue;
        }
        wanted.retain(|&(k, _)| k != key);
        if new == 0 {
            down.push(key);
        } else {
            wanted.push((key, new));
        }
        let what = match (old, new) {
            (0, _) => "up",
            (_, 0) => "down (closed)",
            _ => "retarget",
        };
        events.push(format!("{} {what} {old}->{new}", name(key)));
    }
    world.targets.replace_all(&world.pool, wanted);
    for key in down {
        world.targets.close(&world.pool, key);
        let world = Arc::clone(world);
        let went_down = Instant::now();
        tokio::spawn(async move {
            world.pool.drained(&key).await;
            if world.pool.is_closed() {
                return; // the run ended, and every agent hung up
            }
            world
                .drains
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(went_down.elapsed());
        });
    }
    events.join(", ")
}

/// Takes leases from the stream, one agent per lease, until the pool closes;
/// then waits for every agent. Returns how many sessions the agents ran.
async fn dispatch(world: Arc<World>, shutdown: watch::Receiver<bool>) -> u64 {
    let mut leases = world.pool.leases();
    let mut agents = JoinSet::new();
    let mut sessions = 0;
    loop {
        let since = world.targets.now();
        let Some(lease) = leases.next().await else {
            break;
        };
        let session = Session::start(&world, lease, since);
        agents.spawn(agent(session, shutdown.clone()));
        while let Some(done) = agents.try_join_next() {
            sessions += done.expect("agents do not panic");
        }
    }
    while let Some(done) = agents.join_next().await {
        sessions += done.expect("agents do not panic");
    }
    sessions
}

/// One agent: stays connected for a while, may fail early, and after a
/// failure may re-dial the same endpoint. Returns how many sessions it ran.
async fn agent(mut session: Session, mut shutdown: watch::Receiver<bool>) -> u64 {
    let world = Arc::clone(&session.world);
    let mut rng = Rng::new(world.seed ^ session.id().wrapping_mul(0x9e37_79b9));
    let mut sessions = 1;
    loop {
        let key = session.key();
        let fails = rng.chance(20);
        let connected = if fails {
            rng.millis(20, 300)
        } else {
            rng.millis(150, 1500)
        };
        let deadline = tokio::time::Instant::now() + connected;
        loop {
            let surplus = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => false,
                _ = shutdown.changed() => return sessions,
                _ = session.lease().surplus(), if world.surplus => true,
            };
            if !surplus {
                break;
            }
            // The endpoint shrank or went away: leave now if still surplus.
            match session.leave_if_surplus() {
                Ok(()) => return sessions,
                Err(kept) => session = kept,
            }
        }
        if !fails {
            return sessions; // a clean hang-up; the dispatcher will replace it
        }
        world.stats[key].failures.fetch_add(1, Ordering::Relaxed);
        drop(session); // the lease goes back at once
        if !rng.chance(50) {
            return sessions;
        }
        // Back off, then re-dial the same endpoint. No timeout: if the
        // endpoint goes down meanwhile, `close_key` ends the wait.
        tokio::time::sleep(rng.millis(10, 100)).await;
        world.stats[key].redials.fetch_add(1, Ordering::Relaxed);
        let since = world.targets.now();
        session = match world.pool.acquire_key(&key).await {
            Ok(lease) => Session::start(&world, lease, since),
            Err(Closed) => {
                world.stats[key].closed.fetch_add(1, Ordering::Relaxed);
                return sessions;
            }
        };
        sessions += 1;
    }
}

// ----------------------------------------------------------------- output

fn print_table(world: &World, tick: u64, elapsed: Duration, events: &str) {
    let agents: u64 = world
        .stats
        .iter()
        .map(|s| s.active.load(Ordering::Relaxed))
        .sum();
    let failures: u64 = world
        .stats
        .iter()
        .map(|s| s.failures.load(Ordering::Relaxed))
        .sum();
    println!(
        "\n[tick {tick:>3} {:>6.2}s] agents {agents:>3}  failures {failures:>4}  waiters {}  {events}",
        elapsed.as_secs_f64(),
        world.pool.waiters()
    );
    println!(
        "  {:<8} {:>6} {:>6} {:>7} {:>7}",
        "key", "target", "active", "waiting", "granted"
    );
    for (key, stats) in world.stats.iter().enumerate() {
        let counts = world.pool.counts(&key);
        let waiting = world.pool.waiting(&key);
        let granted = stats.granted.load(Ordering::Relaxed);
        if counts.target == 0 && counts.active == 0 && waiting == 0 && granted == 0 {
            continue;
        }
        let flag = if counts.active > counts.target {
            "  (draining)"
        } else {
            ""
        };
        println!(
            "  {:<8} {:>6} {:>6} {:>7} {:>7}{flag}",
            name(key),
            counts.target,
            counts.active,
            waiting,
            granted
        );
    }
}

#[derive(Debug)]
struct Report {
    granted: u64,
    sessions: u64,
    remaining: u64,
    still_counted: u64,
    violations: u64,
    pool_empty: bool,
}

impl Report {
    fn new(world: &World, sessions: u64, remaining: u64) -> Self {
        let sum = |f: fn(&EndpointStats) -> &AtomicU64| -> u64 {
            world
                .stats
                .iter()
                .map(|s| f(s).load(Ordering::SeqCst))
                .sum()
        };
        Self {
            granted: sum(|s| &s.granted),
            sessions,
            remaining,
            still_counted: sum(|s| &s.active),
            violations: sum(|s| &s.violations),
            pool_empty: world.pool.is_empty(),
        }
    }

    fn ok(&self) -> bool {
        self.violations == 0
            && self.remaining == 0
            && self.still_counted == 0
            && self.pool_empty
            && self.sessions == self.granted
    }

    fn print(&self, world: &World) {
        println!("\n== summary ==");
        println!(
            "  {:<8} {:>7} {:>8} {:>7} {:>6} {:>10} {:>10} {:>10}",
            "key",
            "granted",
            "failures",
            "redials",
            "closed",
            "max active",
            "max target",
            "violations"
        );
        for (key, s) in world.stats.iter().enumerate() {
            println!(
                "  {:<8} {:>7} {:>8} {:>7} {:>6} {:>10} {:>10} {:>10}",
                name(key),
                s.granted.load(Ordering::Relaxed),
                s.failures.load(Ordering::Relaxed),
                s.redials.load(Ordering::Relaxed),
                s.closed.load(Ordering::Relaxed),
                s.max_active.load(Ordering::Relaxed),
                world.targets.max_ever(key),
                s.violations.load(Ordering::Relaxed),
            );
        }
        let failures: u64 = world
            .stats
            .iter()
            .map(|s| s.failures.load(Ordering::Relaxed))
            .sum();
        println!(
            "  leases granted {}, agent sessions finished {}, failures {failures}",
            self.granted, self.sessions
        );
        println!(
            "  after close: live leases {}, agents still counted {}, pool empty {}",
            self.remaining, self.still_counted, self.pool_empty
        );
        let left: u64 = world
            .stats
            .iter()
            .map(|s| s.left_surplus.load(Ordering::Relaxed))
            .sum();
        let mut drains = world
            .drains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        drains.sort_unstable();
        let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        println!(
            "  endpoints down {}: set(k, 0) to drained(k) median {:.2} ms, max {:.2} ms \
             (agents leave when surplus: {}; {left} left so)",
            drains.len(),
            ms(drains.get(drains.len() / 2)),
            ms(drains.last()),
            if world.surplus { "yes" } else { "no" },
        );
        let stats = world.pool.stats();
        println!(
            "  stats: granted {}, waited {}, cancelled {}, timed out {}",
            stats.granted, stats.waited, stats.cancelled, stats.timed_out
        );
        if self.ok() {
            println!("OK: no endpoint ever had more agents than its target at grant time");
        } else {
            println!("FAILED: {} violation(s); {self:?}", self.violations);
        }
    }
}
