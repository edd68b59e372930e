//! A measured experiment, not the pool: what does the shape of the pool's
//! waiting path cost against tokio's intrusive waiters?
//!
//! It models `compare`'s rows "S3 contended, 1 key" (target 4, one unit per
//! acquisition) and "S3 weighted" (target 16, four units per acquisition):
//! 64 tasks on a two-thread tokio runtime, acquire, `yield_now`, release, so
//! most acquisitions wait. Stand-ins, timed in interleaved rounds against
//! tokio's `Semaphore` in the same process:
//!
//! - `slab`: the pool's shape. One mutex over the count, a FIFO of waiters
//!   in a slab (a `Vec` of entries linked by index, with a free list), the
//!   wakers in a `Vec` of their own indexed by slot, and hand-off cells
//!   beside the lock indexed by registration number: a release pops the
//!   head waiters it can serve, publishes each one's grant in its cell and
//!   wakes it after unlocking; the woken waiter reads its cell without the
//!   lock. Two lock trips per wait, as the pool's.
//! - `slab-one-line`: the same, with each slab entry and its waker on one
//!   64-byte line (the waker inside the entry).
//! - `slab-56`: the waker inside the entry, entries of 56 bytes, unaligned:
//!   what the pool's 40-byte waiter slot would be with its waker inside,
//!   within the 64 bytes per waiting acquisition the README promises.
//!
//! Futures here are never dropped before they complete (the tasks run to
//! the end), which the stand-ins assert instead of handling a cancel. After
//! every round each stand-in is checked to have every unit back.
//! `docs/ARCHITECTURE.md` ("Measured: the waiting path's shape") gives the
//! figures.
//!
//! ```text
//! cargo run --release -p workpool-tests --bin experiment_waiting -- [seconds per round] [rounds]
//! ```

#[path = "../experiment.rs"]
mod experiment;
use experiment::CYCLES_PER_TASK;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

const CELLS: usize = 16;
const NIL: u32 = u32::MAX;

/// A hand-off cell: 0, or the registration number + 1 of the waiter whose
/// grant it holds.
struct Cell {
    tag: AtomicU64,
}

/// A waiter's slab entry.
struct Entry {
    units: u64,
    next: u32,
    generation: u64,
    /// Served, but its cell was taken: it finds out under the lock.
    granted: bool,
    /// Used by `slab-one-line` only.
    waker: Option<Waker>,
}

impl Entry {
    fn blank() -> Self {
        Self {
            units: 0,
            next: NIL,
            generation: 0,
            granted: false,
            waker: None,
        }
    }
}

/// `Entry` alone on a line, for `slab-one-line`.
#[repr(align(64))]
struct Wide(Entry);

/// `Entry` with its waker and 16 bytes more: 56 bytes, unaligned, the size
/// the pool's waiter slot (40 bytes) would have with its waker inside, for
/// `slab-56`.
struct Packed {
    entry: Entry,
    _pad: [u64; 2],
}

struct Inner {
    available: u64,
    head: u32,
    tail: u32,
    /// The slab, one of the two layouts.
    narrow: Vec<Entry>,
    wide: Vec<Wide>,
    packed: Vec<Packed>,
    free: Vec<u32>,
    /// The wakers, by slot (`slab` only).
    wakers: Vec<Option<Waker>>,
    next_generation: u64,
}

/// Where a stand-in keeps a waiter's waker.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// In a `Vec` of its own, by slot (the pool's layout).
    Apart,
    /// In the entry, 64-byte aligned.
    OneLine,
    /// In the entry, 56 bytes, unaligned.
    Packed,
}

struct Slab {
    layout: Layout,
    total: u64,
    inner: Mutex<Inner>,
    cells: Box<[Cell]>,
}

impl Inner {
    fn entry(&mut self, layout: Layout, slot: u32) -> &mut Entry {
        match layout {
            Layout::Apart => &mut self.narrow[slot as usize],
            Layout::OneLine => &mut self.wide[slot as usize].0,
            Layout::Packed => &mut self.packed[slot as usize].entry,
        }
    }

    /// Grows the slab by one blank entry; its slot.
    fn grow(&mut self, layout: Layout) -> u32 {
        match layout {
            Layout::Apart => {
                self.narrow.push(Entry::blank());
                self.wakers.push(None);
                self.narrow.len() as u32 - 1
            }
            Layout::OneLine => {
                self.wide.push(Wide(Entry::blank()));
                self.wide.len() as u32 - 1
            }
            Layout::Packed => {
                self.packed.push(Packed {
                    entry: Entry::blank(),
                    _pad: [0; 2],
                });
                self.packed.len() as u32 - 1
            }
        }
    }

    /// The waker slot of a waiter.
    fn waker(&mut self, layout: Layout, slot: u32) -> &mut Option<Waker> {
        match layout {
            Layout::Apart => &mut self.wakers[slot as usize],
            _ => &mut self.entry(layout, slot).waker,
        }
    }
}

impl Slab {
    fn new(total: u64, layout: Layout) -> Self {
        Self {
            layout,
            total,
            inner: Mutex::new(Inner {
                available: total,
                head: NIL,
                tail: NIL,
                narrow: Vec::new(),
                wide: Vec::new(),
                packed: Vec::new(),
                free: Vec::new(),
                wakers: Vec::new(),
                next_generation: 0,
            }),
            cells: (0..CELLS)
                .map(|_| Cell {
                    tag: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    fn acquire(&self, units: u64) -> Acquire<'_> {
        Acquire {
            slab: self,
            units,
            state: State::Start,
        }
    }

    fn release(&self, units: u64) {
        let mut wake: Vec<Waker> = Vec::new();
        let mut inner = self.inner.lock().unwrap();
        inner.available += units;
        while inner.head != NIL {
            let head = inner.head;
            let layout = self.layout;
            let available = inner.available;
            let entry = inner.entry(layout, head);
            if entry.units > available {
                break;
            }
            let (units, next, generation) = (entry.units, entry.next, entry.generation);
            let waker = inner.waker(layout, head).take();
            inner.available -= units;
            inner.head = next;
            if next == NIL {
                inner.tail = NIL;
            }
            let cell = &self.cells[(generation % CELLS as u64) as usize];
            if cell.tag.load(Ordering::Relaxed) == 0 {
                cell.tag.store(generation + 1, Ordering::Release);
                inner.free.push(head);
            } else {
                inner.entry(layout, head).granted = true;
            }
            wake.extend(waker);
        }
        drop(inner);
        for waker in wake {
            waker.wake();
        }
    }

    fn all_back(&self) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.available == self.total && inner.head == NIL
    }
}

enum State {
    Start,
    Waiting { slot: u32, generation: u64 },
    Done,
}

struct Acquire<'a> {
    slab: &'a Slab,
    units: u64,
    state: State,
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let slab = self.slab;
        let layout = slab.layout;
        match self.state {
            State::Start => {
                let mut inner = slab.inner.lock().unwrap();
                if inner.head == NIL && inner.available >= self.units {
                    inner.available -= self.units;
                    self.state = State::Done;
                    return Poll::Ready(());
                }
                let generation = inner.next_generation;
                inner.next_generation += 1;
                let entry = Entry {
                    units: self.units,
                    next: NIL,
                    generation,
                    granted: false,
                    waker: None,
                };
                let slot = match inner.free.pop() {
                    Some(slot) => slot,
                    None => inner.grow(layout),
                };
                *inner.entry(layout, slot) = entry;
                *inner.waker(layout, slot) = Some(cx.waker().clone());
                match inner.tail {
                    NIL => inner.head = slot,
                    tail => inner.entry(layout, tail).next = slot,
                }
                inner.tail = slot;
                self.state = State::Waiting { slot, generation };
                Poll::Pending
            }
            State::Waiting { slot, generation } => {
                let cell = &slab.cells[(generation % CELLS as u64) as usize];
                if cell.tag.load(Ordering::Acquire) == generation + 1 {
                    cell.tag.store(0, Ordering::Release);
                    self.state = State::Done;
                    return Poll::Ready(());
                }
                let mut inner = slab.inner.lock().unwrap();
                if inner.entry(layout, slot).granted {
                    inner.entry(layout, slot).granted = false;
                    inner.free.push(slot);
                    self.state = State::Done;
                    return Poll::Ready(());
                }
                let stored = inner.waker(layout, slot);
                if !stored.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *stored = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Done => panic!("polled after completion"),
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        assert!(
            !matches!(self.state, State::Waiting { .. }),
            "the experiment never cancels a waiting acquisition"
        );
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Tokio,
    Slab(Layout),
}

const MODES: [(Mode, &str); 4] = [
    (Mode::Tokio, "tokio Semaphore"),
    (Mode::Slab(Layout::Apart), "slab"),
    (Mode::Slab(Layout::OneLine), "slab-one-line"),
    (Mode::Slab(Layout::Packed), "slab-56"),
];

/// One round: nanoseconds per cycle.
fn round(rt: &tokio::runtime::Runtime, mode: Mode, units: u64, secs: f64) -> f64 {
    let total = 4 * units;
    let sem = Arc::new(tokio::sync::Semaphore::new(total as usize));
    let layout = match mode {
        Mode::Slab(layout) => layout,
        Mode::Tokio => Layout::Apart,
    };
    let slab = Arc::new(Slab::new(total, layout));
    let ns = experiment::time_tasks(rt, secs, || {
        let (sem, slab) = (sem.clone(), slab.clone());
        async move {
            for _ in 0..CYCLES_PER_TASK {
                if mode == Mode::Tokio {
                    let permit = sem.acquire_many(units as u32).await.unwrap();
                    tokio::task::yield_now().await;
                    drop(permit);
                } else {
                    slab.acquire(units).await;
                    tokio::task::yield_now().await;
                    slab.release(units);
                }
            }
        }
    });
    assert!(slab.all_back(), "the slab lost or gained a unit");
    assert_eq!(sem.available_permits(), total as usize);
    ns
}

fn main() {
    let (secs, rounds) = experiment::args();
    let rt = experiment::runtime();
    // For profiling one stand-in alone: `EXPERIMENT_ONLY=slab`, and
    // `EXPERIMENT_UNITS=4`.
    let unit_counts: Vec<u64> = match std::env::var("EXPERIMENT_UNITS") {
        Ok(units) => vec![units.parse().expect("EXPERIMENT_UNITS: a number")],
        Err(_) => vec![1, 4],
    };
    for units in unit_counts {
        let mut times = vec![Vec::new(); MODES.len()];
        for _ in 0..rounds {
            for (i, (mode, name)) in MODES.iter().enumerate() {
                if !experiment::selected(name) {
                    times[i].push(f64::NAN);
                    continue;
                }
                times[i].push(round(&rt, *mode, units, secs));
            }
        }
        println!(
            "{units} unit(s) per acquisition, target {}: {rounds} interleaved rounds of {secs} s; ns per cycle (median), ratio to tokio (median of the rounds' ratios)",
            4 * units
        );
        let names: Vec<&str> = MODES.iter().map(|(_, name)| *name).collect();
        experiment::report(&names, &times, &[]);
    }
}
