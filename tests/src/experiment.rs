//! What the two experiment binaries (`experiment_any_words`,
//! `experiment_waiting`) share: their arguments, their runtime, and how
//! they report interleaved rounds.

/// `[seconds per round] [rounds]` from the command line (0.3 s and 9 by
/// default).
pub(crate) fn args() -> (f64, usize) {
    let mut args = std::env::args().skip(1);
    let secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(0.3);
    let rounds = args.next().and_then(|s| s.parse().ok()).unwrap_or(9);
    (secs, usize::max(rounds, 1))
}

/// Whether the contender `name` runs: all of them, or only the one named
/// by `EXPERIMENT_ONLY` (to profile it alone).
pub(crate) fn selected(name: &str) -> bool {
    std::env::var("EXPERIMENT_ONLY").map_or(true, |only| only == name)
}

/// The two-thread runtime of `compare`'s S3 rows.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One line per contender: the median time per cycle, and the median of
/// the rounds' ratios to contender 0 (the baseline) measured in the same
/// round; then `extra` for that contender, if any.
pub(crate) fn report(names: &[&str], times: &[Vec<f64>], extra: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let ratios = times[i]
            .iter()
            .zip(&times[0])
            .map(|(t, base)| t / base)
            .collect();
        println!(
            "  {name:20} {:7.1} ns  {:.2}x  {}",
            median(times[i].clone()),
            median(ratios),
            extra.get(i).map_or("", String::as_str)
        );
    }
}

/// Tasks per round, as in `compare`'s S3 rows.
pub(crate) const TASKS: usize = 64;
/// Cycles each task runs per spawn.
pub(crate) const CYCLES_PER_TASK: usize = 200;

/// Spawns [`TASKS`] tasks made by `task` (each running [`CYCLES_PER_TASK`]
/// cycles) and waits for them, again and again for `secs`; nanoseconds per
/// cycle.
pub(crate) fn time_tasks<F, Fut>(rt: &tokio::runtime::Runtime, secs: f64, task: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = std::time::Instant::now();
    let mut cycles = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS).map(|_| tokio::spawn(task())).collect();
            for spawned in tasks {
                spawned.await.expect("a task of the experiment panicked");
            }
        });
        cycles += (TASKS * CYCLES_PER_TASK) as u64;
    }
    start.elapsed().as_nanos() as f64 / cycles as f64
}
