//! A measured experiment, not the pool: how fast can contended any-key
//! grants be, and what does the pool's locked shape cost against it?
//!
//! It models `compare`'s row "S3 contended, any of 16 keys vs one semaphore
//! of 64" (64 tasks on a two-thread tokio runtime, acquire, `yield_now`,
//! release; 16 keys of target 4, so nobody ever has to wait) with three
//! small stand-ins for the limiter, timed in interleaved rounds against
//! tokio's `Semaphore` of 64 in the same process:
//!
//! - `locked`: the shape of the pool today, reduced to its bones: 8 shards
//!   behind mutexes, each with its keys' active counts and a cursor, a
//!   pool-wide bitmap of shards with room and a rotation over it. A grant
//!   locks a shard; a release locks it again and marks the shard.
//! - `locked-boxed`: the same with the active counts in an allocation of
//!   their own, off the lock's line, as the pool's group slots are.
//! - `words-shared`: every key's spare units in a word of its own line, a
//!   pool-wide bitmap of keys whose word holds units, and a pool-wide
//!   rotation cursor (a load and a store per grant). A grant is a
//!   compare-exchange on the word (and clears the key's bit when it took
//!   the last unit); a release is one `fetch_add` (and sets the bit when
//!   the word was empty). No lock anywhere.
//! - `words-local`: the same with a per-thread cursor, so the rotation
//!   writes nothing shared.
//!
//! Each acquisition that finds no room yields and tries again (counted; it
//! is rare, since tasks never outnumber units). After every round the
//! stand-ins are checked to have every unit back. `docs/ARCHITECTURE.md`
//! ("Measured: any-key grants from words") gives the figures and what
//! they mean for the pool.
//!
//! ```text
//! cargo run --release -p workpool-tests --bin experiment_any_words -- [seconds per round] [rounds]
//! ```

#[path = "../experiment.rs"]
mod experiment;
use experiment::CYCLES_PER_TASK;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const KEYS: usize = 16;
const TARGET: u64 = 4;
const SHARDS: usize = 8;

/// A value alone on its own pair of cache lines.
#[repr(align(128))]
struct Line<T>(T);

/// What a grant hands out: the key and an id, as a lease carries.
struct Grant {
    key: usize,
    id: u64,
}

/// A key's word: its spare units, and the ids its grants draw from (on the
/// line the grant's compare-exchange has just pulled in).
#[repr(align(128))]
struct Word {
    spare: AtomicU64,
    ids: AtomicU64,
}

struct Words {
    words: Vec<Word>,
    /// Bit `k`: key `k`'s word may hold units (a hint, checked by the CAS).
    ready: Line<AtomicU64>,
    /// Where the shared rotation goes on from.
    next: Line<AtomicUsize>,
}

thread_local! {
    static CURSOR: Cell<usize> = const { Cell::new(0) };
}

impl Words {
    fn new() -> Self {
        Self {
            words: (0..KEYS)
                .map(|_| Word {
                    spare: AtomicU64::new(TARGET),
                    ids: AtomicU64::new(1),
                })
                .collect(),
            ready: Line(AtomicU64::new((1 << KEYS) - 1)),
            next: Line(AtomicUsize::new(0)),
        }
    }

    /// Round-robin over the keys whose bit is set, from the cursor.
    fn try_any(&self, shared_cursor: bool) -> Option<Grant> {
        loop {
            let ready = self.ready.0.load(Ordering::Acquire);
            if ready == 0 {
                return None;
            }
            let from = if shared_cursor {
                self.next.0.load(Ordering::Relaxed)
            } else {
                CURSOR.with(Cell::get)
            } % KEYS;
            let key = (ready.rotate_right(from as u32).trailing_zeros() as usize + from) % 64;
            let word = &self.words[key];
            let taken = word
                .spare
                .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| s.checked_sub(1));
            match taken {
                Ok(before) => {
                    if before == 1 {
                        self.unmark(key);
                    }
                    if shared_cursor {
                        self.next.0.store(key + 1, Ordering::Relaxed);
                    } else {
                        CURSOR.with(|c| c.set(key + 1));
                    }
                    let id = word.ids.fetch_add(1, Ordering::Relaxed);
                    return Some(Grant { key, id });
                }
                // A stale bit: clear it and look again.
                Err(_) => self.unmark(key),
            }
        }
    }

    /// Clears a key's bit, and sets it again if a release raced in.
    fn unmark(&self, key: usize) {
        self.ready.0.fetch_and(!(1 << key), Ordering::AcqRel);
        if self.words[key].spare.load(Ordering::Acquire) != 0 {
            self.ready.0.fetch_or(1 << key, Ordering::AcqRel);
        }
    }

    fn release(&self, grant: Grant) {
        if self.words[grant.key].spare.fetch_add(1, Ordering::AcqRel) == 0 {
            self.ready.0.fetch_or(1 << grant.key, Ordering::AcqRel);
        }
    }

    fn all_back(&self) -> bool {
        self.words
            .iter()
            .all(|w| w.spare.load(Ordering::Relaxed) == TARGET)
    }
}

struct ShardState {
    /// The keys' active counts, on the lock's line...
    inline: [u64; KEYS / SHARDS],
    /// ... or in an allocation of their own, as the pool's group slots are.
    boxed: Option<Box<[u64; KEYS / SHARDS]>>,
    cursor: usize,
    ids: u64,
}

impl ShardState {
    fn active(&mut self) -> &mut [u64; KEYS / SHARDS] {
        match &mut self.boxed {
            Some(boxed) => boxed,
            None => &mut self.inline,
        }
    }
}

struct Locked {
    shards: Vec<Line<Mutex<ShardState>>>,
    /// Bit `s`: shard `s` may have room.
    offers: Line<AtomicU64>,
    next: Line<AtomicUsize>,
}

impl Locked {
    fn new(boxed: bool) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Line(Mutex::new(ShardState {
                        inline: [0; KEYS / SHARDS],
                        boxed: boxed.then(|| Box::new([0; KEYS / SHARDS])),
                        cursor: 0,
                        ids: 1,
                    }))
                })
                .collect(),
            offers: Line(AtomicU64::new((1 << SHARDS) - 1)),
            next: Line(AtomicUsize::new(0)),
        }
    }

    fn try_any(&self) -> Option<Grant> {
        let per = KEYS / SHARDS;
        loop {
            let offers = self.offers.0.load(Ordering::Acquire);
            if offers == 0 {
                return None;
            }
            let from = self.next.0.load(Ordering::Relaxed) % SHARDS;
            let shard = (offers.rotate_right(from as u32).trailing_zeros() as usize + from) % 64;
            let mut state = self.shards[shard].0.lock().unwrap();
            let cursor = state.cursor;
            let room = (0..per)
                .map(|i| (cursor + i) % per)
                .find(|&g| state.active()[g] < TARGET);
            if let Some(g) = room {
                state.active()[g] += 1;
                state.cursor = g + 1;
                let id = state.ids;
                state.ids += 1;
                if state.active().iter().all(|&a| a >= TARGET) {
                    self.offers.0.fetch_and(!(1 << shard), Ordering::Relaxed);
                }
                self.next.0.store(shard + 1, Ordering::Relaxed);
                return Some(Grant {
                    key: shard * per + g,
                    id,
                });
            }
            self.offers.0.fetch_and(!(1 << shard), Ordering::Relaxed);
        }
    }

    fn release(&self, grant: Grant) {
        let per = KEYS / SHARDS;
        let shard = grant.key / per;
        let mut state = self.shards[shard].0.lock().unwrap();
        state.active()[grant.key % per] -= 1;
        if self.offers.0.load(Ordering::Relaxed) & (1 << shard) == 0 {
            self.offers.0.fetch_or(1 << shard, Ordering::Relaxed);
        }
    }

    fn all_back(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.0.lock().unwrap().active().iter().all(|&a| a == 0))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Tokio,
    WordsShared,
    WordsLocal,
    Locked,
    LockedBoxed,
}

const MODES: [(Mode, &str); 5] = [
    (Mode::Tokio, "tokio Semaphore(64)"),
    (Mode::WordsShared, "words-shared"),
    (Mode::WordsLocal, "words-local"),
    (Mode::Locked, "locked"),
    (Mode::LockedBoxed, "locked-boxed"),
];

/// One round of one contender: nanoseconds per cycle, and the
/// acquisitions that found no room.
fn round(rt: &tokio::runtime::Runtime, mode: Mode, secs: f64) -> (f64, u64) {
    let sem = Arc::new(tokio::sync::Semaphore::new(KEYS * TARGET as usize));
    let words = Arc::new(Words::new());
    let locked = Arc::new(Locked::new(mode == Mode::LockedBoxed));
    let misses = Arc::new(AtomicU64::new(0));
    let ns = experiment::time_tasks(rt, secs, || {
        let (sem, words, locked) = (sem.clone(), words.clone(), locked.clone());
        let misses = misses.clone();
        async move {
            for _ in 0..CYCLES_PER_TASK {
                if mode == Mode::Tokio {
                    let permit = sem.acquire().await.unwrap();
                    tokio::task::yield_now().await;
                    drop(permit);
                    continue;
                }
                let grant = loop {
                    let got = match mode {
                        Mode::Locked | Mode::LockedBoxed => locked.try_any(),
                        _ => words.try_any(mode == Mode::WordsShared),
                    };
                    if let Some(grant) = got {
                        break grant;
                    }
                    misses.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                };
                std::hint::black_box(grant.id);
                tokio::task::yield_now().await;
                match mode {
                    Mode::Locked | Mode::LockedBoxed => locked.release(grant),
                    _ => words.release(grant),
                }
            }
        }
    });
    assert!(words.all_back(), "a word lost or gained a unit");
    assert!(locked.all_back(), "a shard lost or gained a unit");
    assert_eq!(sem.available_permits(), KEYS * TARGET as usize);
    (ns, misses.load(Ordering::Relaxed))
}

fn main() {
    let (secs, rounds) = experiment::args();
    let rt = experiment::runtime();
    let mut times = vec![Vec::new(); MODES.len()];
    let mut misses = vec![0u64; MODES.len()];
    for _ in 0..rounds {
        for (i, (mode, name)) in MODES.iter().enumerate() {
            if !experiment::selected(name) {
                times[i].push(f64::NAN);
                continue;
            }
            let (ns, missed) = round(&rt, *mode, secs);
            times[i].push(ns);
            misses[i] += missed;
        }
    }
    println!("{rounds} interleaved rounds of {secs} s; ns per cycle (median), ratio to tokio (median of the rounds' ratios)");
    let names: Vec<&str> = MODES.iter().map(|(_, name)| *name).collect();
    let misses: Vec<String> = misses
        .iter()
        .map(|m| format!("{m} found no room"))
        .collect();
    experiment::report(&names, &times, &misses);
}
