//! The Markdown report, the targets and the plot.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::harness::{Row, ASYNC_LOCK, COLUMNS, TOKIO, WP_ANY, WP_KEY};
use crate::memory::{Memory, IDLE_KEYS, WAITERS};
use crate::timing::TABLE_KEYS;
use crate::Config;

// ------------------------------------------------------------------ report

/// Everything one run measured.
pub(crate) struct Results {
    pub(crate) s1_try: Row,
    pub(crate) s1_async: Row,
    /// `(keys, try row, async row)`.
    pub(crate) keyed: Vec<(u64, Row, Row)>,
    pub(crate) contended: Vec<Row>,
    /// Any-key S3 against one semaphore with the same total permits.
    pub(crate) pooled: Row,
    /// S3 with 16 keys under a pool-wide limit that does not bind, and one
    /// that does.
    pub(crate) limited: Vec<Row>,
    /// S3 with one key and weighted leases of 4 units, against tokio's
    /// `acquire_many(4)` on one semaphore.
    pub(crate) weighted: Row,
    pub(crate) memory: Memory,
}

/// Where the numbers came from.
pub(crate) struct Machine {
    cpu: String,
    nproc: usize,
    rustc: String,
}

impl Machine {
    pub(crate) fn describe() -> Self {
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
pub(crate) fn keys_label(keys: u64) -> String {
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
    out.push(Target {
        pass: r.weighted.ratio(WP_KEY) <= 1.0,
        what: format!(
            "{}: time per cycle ≤ 1.0× tokio's `acquire_many(4)`, i.e. throughput ≥ 1.0×",
            r.weighted.case
        ),
        figures: ratios(&[r.weighted.ratio(WP_KEY)]),
    });
    out.push(Target {
        pass: r.pooled.ratio(WP_ANY) <= 1.25,
        what: format!("{}: any key ≤ 1.25× tokio", r.pooled.case),
        figures: ratios(&[r.pooled.ratio(WP_ANY)]),
    });
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
        pass: waits.iter().all(|v| *v == 0.0),
        what: "0 allocations per acquisition that has to wait, once warm (any / one key)".into(),
        figures: waits.map(count).join(" / "),
    });
    let bytes = [m.waiter[WP_ANY], m.waiter[WP_KEY]];
    out.push(Target {
        pass: bytes.iter().all(|v| *v <= 64.0),
        what: "≤ 64 heap bytes per waiting acquisition (any / one key)".into(),
        figures: bytes.map(|b| format!("{b:.1}")).join(" / "),
    });
    out.push(Target {
        pass: m.idle_key[0] <= 64.0,
        what: "≤ 64 heap bytes per idle key beyond the key".into(),
        figures: format!("{:.1}", m.idle_key[0]),
    });
    out
}

pub(crate) fn markdown(config: &Config, machine: &Machine, r: &Results) -> String {
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
         (std's `HashMap` and hasher; lock, look up, clone the `Arc`, unlock, take an owned \
         permit) and the keys are \
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
    rows.push(&r.pooled);
    rows.extend(&r.limited);
    rows.push(&r.weighted);
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

pub(crate) fn plot(
    path: &Path,
    machine: &Machine,
    keyed: &[(u64, Row, Row)],
) -> Result<(), Box<dyn Error>> {
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
