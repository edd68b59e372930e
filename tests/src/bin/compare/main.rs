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

mod harness;
mod memory;
mod report;
mod timing;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use harness::{Bench, Progress};
use report::{Machine, Results};

// ------------------------------------------------------------------ config

const USAGE: &str = "\
usage: compare [--quick] [--rounds N] [--slice-ms MS] [--svg PATH] [--out PATH]
  --quick       smoke run: 5 rounds of 10 ms (default: 15 rounds of 80 ms)
  --rounds N    rounds per case
  --slice-ms MS time per contender per round
  --svg PATH    the key-scaling plot (default target/compare/keys.svg)
  --out PATH    also write the Markdown report there";

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
                _ => return Err(format!("unknown option {flag}")),
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

// -------------------------------------------------------------------- main

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::parse() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("compare: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let machine = Machine::describe();
    let mut bench = Bench {
        config,
        progress: Progress::new(),
    };
    // Memory first, while no other thread allocates.
    let memory = memory::memory(&mut bench);
    let (s1_try, s1_async) = timing::uncontended(&mut bench);
    let keyed = timing::keyed(&mut bench);
    let contended = timing::contended(&mut bench);
    let pooled = timing::pooled(&mut bench);
    let limited = timing::limited(&mut bench);
    let weighted = timing::weighted(&mut bench);
    bench.progress.finish();
    let results = Results {
        s1_try,
        s1_async,
        keyed,
        contended,
        pooled,
        limited,
        weighted,
        memory,
    };

    let md = report::markdown(&bench.config, &machine, &results);
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
    match report::plot(&bench.config.svg, &machine, &results.keyed) {
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
