//! The table: every future and stream type of `workpool-std` (rows) against
//! every re-entrancy scenario (columns). Each run cell is its own test,
//! `table::<row>::<scenario>` (filter with `-- table::drained::`), under a
//! hang guard; a cell that cannot apply says why, and
//! `every_cell_runs_or_says_why` checks that none is silently left out.
//! `every_exported_future_has_a_row` reads the crate's source, so a future
//! type added later fails until it has a row here.

use std::collections::BTreeSet;
use std::time::Duration;

use workpool_tests::with_hang_guard;

use crate::rows::Row;
use crate::scenarios;

/// How long a cell may run before it is declared hung; a passing cell
/// takes milliseconds.
const GUARD: Duration = Duration::from_secs(10);

/// The columns, in order, with what each does.
const SCENARIOS: &[(&str, &str)] = &[
    (
        "a_repoll",
        "(a) re-poll with a new waker; the old one owns a lease of the key",
    ),
    (
        "a_repoll_task",
        "(a) the same, the old waker owns a task: a lease and its pending surplus()",
    ),
    (
        "b_wake_by_value",
        "(b) the event wakes by value the last waker, which owns a lease",
    ),
    ("c_wake_releases", "(c) the waker's wake releases a lease"),
    (
        "c_wake_sets",
        "(c) the waker's wake calls counts() and set()",
    ),
    (
        "d_last_handle_repoll",
        "(d) the waker owns the last Pool handle; re-poll drops it",
    ),
    (
        "d_last_handle_cancel",
        "(d) the waker owns the last Pool handle; cancelling drops it",
    ),
    (
        "d_last_handle_wake",
        "(d) the waker owns the last Pool handle; the event wakes and drops it",
    ),
];

/// Runs one cell under the hang guard.
fn run(row: Row, scenario: &str, cell: fn(Row, &str)) {
    let what = format!("{row} x {scenario}");
    with_hang_guard(&what.clone(), GUARD, move || cell(row, &what));
}

const BORROWS_POOL: &str = "the type borrows a `Pool` handle, so while it lives (and can be \
     re-polled or dropped) the waker's handle is never the last one; \
     d_last_handle_wake covers this type with the future forgotten";

const SURPLUS_NEEDS_HANDLE: &str = "only a target or limit change (`set`, `set_all`, \
     `set_limit`, `close_key`) makes a lease surplus, and each needs a `Pool` handle, \
     which the waker holds: with the last handle in the waker nothing can wake it";

/// The table. `run` lists the scenarios a row runs (one test each),
/// `not_applicable` the others, with the reason.
macro_rules! table {
    ($(
        $module:ident: $row:expr => {
            run: [$($run:ident),* $(,)?],
            not_applicable: [$($na:ident: $reason:expr),* $(,)?] $(,)?
        }
    ),* $(,)?) => {
        /// Every row: its driver, the scenarios it runs, and the ones that
        /// do not apply with the reason.
        const TABLE: &[(Row, &[&str], &[(&str, &str)])] = &[
            $(($row, &[$(stringify!($run)),*], &[$((stringify!($na), $reason)),*])),*
        ];
        $(
            mod $module {
                use super::{run, scenarios, Row};
                $(
                    #[test]
                    fn $run() {
                        run($row, stringify!($run), scenarios::$run);
                    }
                )*
            }
        )*
    };
}

table! {
    acquire: Row::Acquire => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_wake],
        not_applicable: [d_last_handle_repoll: BORROWS_POOL, d_last_handle_cancel: BORROWS_POOL],
    },
    acquire_key: Row::AcquireKey => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_wake],
        not_applicable: [d_last_handle_repoll: BORROWS_POOL, d_last_handle_cancel: BORROWS_POOL],
    },
    acquire_key_many: Row::AcquireKeyMany => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_wake],
        not_applicable: [d_last_handle_repoll: BORROWS_POOL, d_last_handle_cancel: BORROWS_POOL],
    },
    acquire_key_many_owned: Row::AcquireKeyManyOwned => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel, d_last_handle_wake],
        not_applicable: [],
    },
    acquire_owned: Row::AcquireOwned => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel, d_last_handle_wake],
        not_applicable: [],
    },
    acquire_key_owned: Row::AcquireKeyOwned => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel, d_last_handle_wake],
        not_applicable: [],
    },
    poll_any: Row::PollAny => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel, d_last_handle_wake],
        not_applicable: [],
    },
    poll_key: Row::PollKey => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel, d_last_handle_wake],
        not_applicable: [],
    },
    leases: Row::Leases => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel, d_last_handle_wake],
        not_applicable: [],
    },
    surplus_target: Row::SurplusTarget => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel],
        not_applicable: [d_last_handle_wake: SURPLUS_NEEDS_HANDLE],
    },
    surplus_limit: Row::SurplusLimit => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel],
        not_applicable: [d_last_handle_wake: SURPLUS_NEEDS_HANDLE],
    },
    drained: Row::Drained => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_wake],
        not_applicable: [d_last_handle_repoll: BORROWS_POOL, d_last_handle_cancel: BORROWS_POOL],
    },
    response: Row::Response => {
        run: [a_repoll, a_repoll_task, b_wake_by_value, c_wake_releases, c_wake_sets,
              d_last_handle_repoll, d_last_handle_cancel, d_last_handle_wake],
        not_applicable: [],
    },
}

/// Every row runs every scenario or says why it cannot, every driver has
/// a row, and the N/A reasons agree with what the drivers can do.
#[test]
fn every_cell_runs_or_says_why() {
    let scenarios: Vec<&str> = SCENARIOS.iter().map(|(name, _)| *name).collect();
    let mut rows = Vec::new();
    for &(row, run, not_applicable) in TABLE {
        let mut seen = BTreeSet::new();
        for name in run.iter().chain(not_applicable.iter().map(|(n, _)| n)) {
            assert!(scenarios.contains(name), "{row}: unknown scenario {name}");
            assert!(seen.insert(*name), "{row}: {name} listed twice");
        }
        for name in &scenarios {
            assert!(
                seen.contains(name),
                "{row}: scenario {name} neither runs nor says why not: add it to the row's \
                 `run` list in tests/tests/reentrancy/table.rs, or to `not_applicable` with a reason"
            );
        }
        for (name, reason) in not_applicable {
            assert!(reason.len() > 20, "{row} x {name}: give a reason");
        }
        // The reasons hold: the last-handle re-poll and cancel cells run
        // exactly for the types that borrow no handle, the last-handle wake
        // cell exactly for the rows whose event needs no handle.
        for name in ["d_last_handle_repoll", "d_last_handle_cancel"] {
            assert_eq!(run.contains(&name), !row.borrows_pool(), "{row} x {name}");
        }
        assert_eq!(
            run.contains(&"d_last_handle_wake"),
            row.fires_without_handle(),
            "{row} x d_last_handle_wake"
        );
        rows.push(row);
    }
    for row in Row::ALL {
        assert_eq!(
            rows.iter().filter(|r| **r == row).count(),
            1,
            "{row}: one row in TABLE"
        );
    }
    print_table();
}

/// Prints the table (shown with `--nocapture`).
fn print_table() {
    let mut out = format!("{:<16}", "");
    for (i, _) in SCENARIOS.iter().enumerate() {
        out += &format!(" {:>4}", format!("s{i}"));
    }
    out.push('\n');
    for &(row, run, _) in TABLE {
        out += &format!("{:<16}", row.to_string());
        for (name, _) in SCENARIOS {
            out += &format!(" {:>4}", if run.contains(name) { "run" } else { "n/a" });
        }
        out.push('\n');
    }
    for (i, (name, what)) in SCENARIOS.iter().enumerate() {
        out += &format!("s{i} = {name}: {what}\n");
    }
    for &(row, _, not_applicable) in TABLE {
        for (name, reason) in not_applicable {
            out += &format!("n/a {row} x {name}: {reason}\n");
        }
    }
    println!("{out}");
}

/// The sources of `workpool-std`, by file name. A module that is not in
/// this list fails `every_exported_future_has_a_row`.
const SOURCES: &[(&str, &str)] = &[
    ("lib.rs", include_str!("../../../workpool-std/src/lib.rs")),
    (
        "error.rs",
        include_str!("../../../workpool-std/src/error.rs"),
    ),
    (
        "futures.rs",
        include_str!("../../../workpool-std/src/futures.rs"),
    ),
    (
        "futures/many.rs",
        include_str!("../../../workpool-std/src/futures/many.rs"),
    ),
    (
        "lease.rs",
        include_str!("../../../workpool-std/src/lease.rs"),
    ),
    ("lock.rs", include_str!("../../../workpool-std/src/lock.rs")),
    ("poll.rs", include_str!("../../../workpool-std/src/poll.rs")),
    ("pool.rs", include_str!("../../../workpool-std/src/pool.rs")),
    (
        "shared/mod.rs",
        include_str!("../../../workpool-std/src/shared/mod.rs"),
    ),
    (
        "shared/handles.rs",
        include_str!("../../../workpool-std/src/shared/handles.rs"),
    ),
    (
        "shared/lane.rs",
        include_str!("../../../workpool-std/src/shared/lane.rs"),
    ),
    (
        "shared/shard.rs",
        include_str!("../../../workpool-std/src/shared/shard.rs"),
    ),
    (
        "shared/tests.rs",
        include_str!("../../../workpool-std/src/shared/tests.rs"),
    ),
    (
        "shared/waiting.rs",
        include_str!("../../../workpool-std/src/shared/waiting.rs"),
    ),
    (
        "shared/wake.rs",
        include_str!("../../../workpool-std/src/shared/wake.rs"),
    ),
    ("sync.rs", include_str!("../../../workpool-std/src/sync.rs")),
    (
        "tower/mod.rs",
        include_str!("../../../workpool-std/src/tower/mod.rs"),
    ),
    (
        "tower/defaults.rs",
        include_str!("../../../workpool-std/src/tower/defaults.rs"),
    ),
    (
        "tower/future.rs",
        include_str!("../../../workpool-std/src/tower/future.rs"),
    ),
    (
        "watch.rs",
        include_str!("../../../workpool-std/src/watch.rs"),
    ),
];

/// The files whose every `pub struct` is a future, stream or poller.
const FUTURE_FILES: &[&str] = &["futures.rs", "futures/many.rs", "poll.rs"];

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The modules `lib.rs` declares (`mod x;`, `pub mod x;`, ...).
fn declared_modules(lib: &str) -> Vec<&str> {
    lib.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && l.ends_with(';'))
        .filter_map(|l| l.split("mod ").nth(1).filter(|_| l.contains("mod ")))
        .map(ident)
        .collect()
}

/// Every type the sources name as a future, stream or poller: each
/// `pub struct` of [`FUTURE_FILES`], and each type with an `impl Future`
/// or `impl Stream` anywhere.
fn future_types() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (file, source) in SOURCES {
        for line in source.lines().map(str::trim) {
            if FUTURE_FILES.contains(file) {
                if let Some(rest) = line.strip_prefix("pub struct ") {
                    found.insert(ident(rest).to_owned());
                }
            }
            if line.starts_with("impl") {
                let tokens: Vec<&str> = line.split_whitespace().collect();
                if let Some(at) = tokens.iter().position(|t| *t == "for") {
                    let is_future = at > 0 && {
                        let t = tokens[at - 1];
                        ["Future", "Stream"]
                            .iter()
                            .any(|f| t == *f || t.ends_with(&format!("::{f}")))
                    };
                    if is_future {
                        if let Some(ty) = tokens.get(at + 1) {
                            found.insert(ident(ty).to_owned());
                        }
                    }
                }
            }
        }
    }
    found
}

/// The covered types are exactly the crate's future, stream and poller
/// types, read from its source: a new one fails here until it has a row.
#[test]
fn every_exported_future_has_a_row() {
    let lib = SOURCES[0].1;
    let modules = declared_modules(lib);
    assert!(
        modules.contains(&"futures") && modules.contains(&"poll"),
        "the scan of lib.rs works: {modules:?}"
    );
    for module in modules {
        assert!(
            SOURCES
                .iter()
                .any(|(file, _)| *file == format!("{module}.rs")
                    || file.starts_with(&format!("{module}/"))),
            "workpool-std declares `mod {module}`, which this check does not read: add \
             `(\"{module}.rs\", include_str!(...))` to SOURCES in tests/tests/reentrancy/table.rs \
             (and any future type it has to the table)"
        );
    }
    let found = future_types();
    let covered: BTreeSet<String> = Row::ALL.iter().map(|r| r.covers().to_owned()).collect();
    for name in &found {
        assert!(
            covered.contains(name),
            "`{name}` is a future/stream type of workpool-std that the re-entrancy table does \
             not cover: add a `Row` for it in tests/tests/reentrancy/rows.rs (how to make it \
             pending, what makes it ready), give it a line in `table!` in \
             tests/tests/reentrancy/table.rs, and run every scenario against it (or say why one \
             cannot apply)"
        );
    }
    for name in &covered {
        assert!(
            found.contains(name),
            "the re-entrancy table covers `{name}`, which workpool-std no longer has: remove \
             or rename its row"
        );
    }
    // The scan itself works: it found the types known today.
    for known in ["Acquire", "Leases", "PollPool", "Surplus", "Drained"] {
        assert!(found.contains(known), "the scan missed {known}: {found:?}");
    }
}
