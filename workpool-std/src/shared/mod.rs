//! The state every handle shares: the core's parts behind their own
//! mutexes, one waker slot per waiter, and every path that grants, hands
//! off or wakes.
//!
//! # Layout
//!
//! The core's [parts](workpool_core::parts): one [`Lane`] (any-key waiters,
//! the ready ring) and a power of two of [`Shard`]s (keys spread by hash),
//! each behind its own mutex on its own cache line, with its own waker
//! slots. Operations on one key lock only its shard, as long as the core
//! says the shard suffices (its group is linked in the ring, which proves
//! that no any-key waiter exists); otherwise they lock the lane, then the
//! shard, and run again. Any-key operations hold the lane and lock the
//! shards of the groups they look at, one at a time. Lock order: lane, then
//! one shard; never two shards (except [`Shared::set_all`], which holds the
//! lane while it does, see its docs). Two atomics are shared by every key:
//! the lease-id counter (one `fetch_add` per grant) and the lane's arrival
//! count (written under the lane's lock, only read by key waiters).
//!
//! # Files
//!
//! Every file adds methods to [`Shared`], one protocol each:
//!
//! - this one: [`Shared`] and its constructor, each part with its waker
//!   slots ([`Part`]) behind its lock and how to take it, what a request
//!   wants ([`Want`], [`KeyQuery`]), lease ids ([`Ids`]).
//! - [`waiting`]: the waiting protocol, for futures and threads: try,
//!   register, claim, cancel.
//! - [`handoff`]: the cells where a releaser leaves a waiter's outcome,
//!   taken by the waiter without the lock.
//! - [`wake`]: waking and deferred drops (no user code under a lock), and
//!   the waker slots of each part.
//! - [`lane`]: what holds the lane: the pool-wide limit, close, `set_all`,
//!   the lane's loop that hands out the pool's room, and reads over every
//!   part.
//! - [`shard`]: operations on one key in its shard: set, close, release,
//!   the `surplus()` and `drained()` watchers.
//! - [`handles`]: the count of `Pool` handles, and the close on the last.
//! - [`words`]: a key's room lent to an atomic word of its shard, so that
//!   its grants and releases take no lock; `lock_settled` for everything
//!   else.
//! - [`stock`]: under contention, any-key grants from every key's lent
//!   word, found through a bitmap of the words with units.
//! - `tests`: the hand-off protocol driven by hand.

use std::hash::Hash;
use std::ops::Deref;
use std::sync::atomic::AtomicPtr as StdAtomicPtr;
use std::task::Waker;

use workpool_core::parts::{Lane, LeaseIds, Shard};
use workpool_core::Equivalent;

use crate::sync::{
    Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, PoisonError,
};
use crate::watch::Watches;
use words::{LentMask, Meta, Words, MORE, WORDS};

mod any;
mod budgets;
mod cancelling;
mod handles;
#[allow(unsafe_code)]
mod handoff;
#[allow(unsafe_code)]
mod keepalive;
mod lane;
mod shard;
mod stock;
#[cfg(all(test, not(loom)))]
mod tests;
mod waiting;
mod wake;
#[allow(unsafe_code)]
mod words;

pub(crate) use any::Look;
use handoff::Cells;
pub(crate) use keepalive::unref;
use lane::{LaneHints, Offers};
pub(crate) use shard::Watching;
pub(crate) use waiting::Wait;
pub(crate) use wake::After;

/// Which capacity a request may be served from: any key, or the key equal
/// to a `Q` (a borrowed form of `K`, such as `str` for `String`); one unit,
/// or (`KeyMany`) that many units of the key.
pub(crate) enum Want<'a, Q: ?Sized> {
    Any,
    Key(&'a Q),
    KeyMany(&'a Q, u64),
}

impl<Q: ?Sized> Clone for Want<'_, Q> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Q: ?Sized> Copy for Want<'_, Q> {}

impl<Q: ?Sized> Want<'_, Q> {
    /// One unit of a key asked for as `KeyMany` is an ordinary key
    /// acquisition (which may take the key's lock-free word): the tower
    /// layer's requests of weight 1 lose nothing to weights.
    #[inline]
    fn normal(self) -> Self {
        match self {
            Self::KeyMany(key, 1) => Self::Key(key),
            want => want,
        }
    }
}

/// The bounds a `Q` needs to stand for a key: found by hash and
/// equivalence, and turned into an owned key when a waiter is the first to
/// ask for it.
pub(crate) trait KeyQuery<K>: Hash + Equivalent<K> + ToOwned<Owned = K> {}

impl<K, Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>> KeyQuery<K> for Q {}

/// Keeps a value on cache lines of its own, so that two shards' locks never
/// share one (128 bytes: two lines, for the adjacent-line prefetcher).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) struct Shared<K, S> {
    hasher: S,
    lane: Padded<Mutex<Part<Lane>>>,
    /// Where releasers leave any-key waiters' outcomes (see [`handoff`]).
    lane_cells: Cells<K>,
    shards: Box<[ShardLock<K>]>,
    /// Set once [`close`](Self::close) starts.
    closed: AtomicBool,
    /// The first lease id no shard has reserved (see [`Ids`]).
    ids: Padded<AtomicU64>,
    /// What key operations read of the lane without its lock.
    hints: Padded<LaneHints>,
    /// Where any-key grants look without the lane's lock (see [`Offers`]).
    offers: Padded<Offers>,
    /// Words that may hold spare units for any-key grants (see [`stock`]).
    stock: Padded<stock::Stock>,
    /// How many `Pool` handles exist (see [`handles`]).
    handles: AtomicUsize,
    /// The pool's own `Arc`, as a pointer, for the shards' holds (see
    /// [`keepalive`]); set once, by [`new_arc`](Self::new_arc), before the
    /// `Arc` is shared.
    me: StdAtomicPtr<Self>,
}

/// One part of the core with the waker slots of its waiters.
///
/// In this order (`repr(C)`): the fields every grant or wait of the part
/// uses share the lock's cache line, then the core's own hot line follows
/// (ARCHITECTURE, "The shard's cache lines").
#[repr(C)]
struct Part<P> {
    /// A shard's lease-id block (unused by the lane).
    ids: IdBlock,
    /// `wakers[i]`: the waker of the part's waiter in slot `i`, once it
    /// registered one. Taken when the waiter is woken, claimed or cancelled.
    /// Never longer than the part's waiter slots once a waiter has left, so
    /// it shrinks with them after a burst.
    wakers: Vec<Option<Waker>>,
    /// A shard's bit in [`Offers`], as its lock last wrote it.
    offered: bool,
    /// How many solo lends in a row were collected unused, at most
    /// [`SOLO_BACKOFF`](words::SOLO_BACKOFF): the next skip is `2^solo_misses - 1` lends.
    solo_misses: u8,
    /// Locked any-key grants from a solo key that lend it no room (see
    /// `Shared::lend_solo`) before the next one does.
    solo_skip: u32,
    core: P,
    /// Bit `w` set while word `w` is lent (not slow).
    lent_mask: LentMask,
    /// The part's `surplus()` and `drained()` watchers (see [`Watches`]).
    watches: Watches,
    /// Acquisitions of this part that a timeout or deadline ended.
    timed_out: u64,
    /// A shard's words, as its lock keeps them (unused by the lane).
    lent: [Meta; WORDS],
    /// The same for the shard's block of more words, once it has one.
    lent_more: Vec<Meta>,
    /// Fast grants that gave their unit back (counted as minted).
    aborted: u64,
    /// First words neither assigned nor retired.
    free_words: usize,
    /// Words of the block of more words neither assigned nor retired.
    more_free: usize,
    /// The shard's rank in [`Offers`], from its first offer on.
    rank: Option<usize>,
    /// The lane's share of the limit's free room it lends a shard at once,
    /// as a divisor, if not the default (unused by the shards; see
    /// [`budgets`]).
    budget_share: Option<u64>,
}

/// How many lease ids a shard reserves at once from the pool's counter.
const ID_BLOCK: u64 = 1 << 16;

/// A shard's lease ids (contract item 5): the shard hands out the ids of a
/// block it reserved from the pool's counter, one after the other, and
/// reserves the next block when one runs out. So ids are unique in the
/// pool, never 0, and strictly increasing in grant order within a shard
/// (so within a key); across keys they are only unique. A grant writes the
/// shard's own counter (beside its lock), and the pool's counter once per
/// [`ID_BLOCK`] grants of a shard, so keys of different shards write no
/// common line for their ids.
struct Ids<'a> {
    /// The shard's block: in its part, under its lock.
    block: &'a mut IdBlock,
    /// The pool's counter: the first id no block holds.
    reserved: &'a AtomicU64,
}

/// A shard's next lease id and the end of its block (see [`Ids`]).
#[derive(Debug, Default)]
struct IdBlock {
    next: u64,
    end: u64,
}

impl LeaseIds for Ids<'_> {
    #[inline]
    fn next_id(&mut self) -> u64 {
        if self.block.next == self.block.end {
            // Relaxed: the counter orders nothing but itself.
            let start = self.reserved.fetch_add(ID_BLOCK, Ordering::Relaxed);
            *self.block = IdBlock {
                next: start,
                end: start + ID_BLOCK,
            };
        }
        let id = self.block.next;
        self.block.next += 1;
        id
    }

    #[inline]
    fn issued(&self, id: u64) -> bool {
        id != 0 && id < self.reserved.load(Ordering::Relaxed)
    }
}

/// The number of shards of a new pool: four per core, a power of two,
/// between 4 and 64 (2 under loom, to keep its models small).
fn shard_count() -> usize {
    #[cfg(loom)]
    {
        2
    }
    #[cfg(not(loom))]
    {
        static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *COUNT.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            (4 * cores).next_power_of_two().clamp(4, 64)
        })
    }
}

/// A shard with its waker slots, behind its lock, with what the shard's
/// grants write beside the lock, all on the shard's own cache lines.
struct ShardCell<K> {
    lock: Mutex<Part<Shard<K>>>,
    /// True while the shard holds one strong count of the pool's `Arc` for
    /// its leases (see [`keepalive`]).
    holds: AtomicBool,
    /// The shard's words (see [`words`]).
    words: Words<K>,
    /// Where releasers leave key waiters' outcomes (see [`handoff`]).
    cells: Cells,
}

type ShardLock<K> = Padded<ShardCell<K>>;
type LaneGuard<'a> = MutexGuard<'a, Part<Lane>>;
type ShardGuard<'a, K> = MutexGuard<'a, Part<Shard<K>>>;

impl<K, S> Shared<K, S> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        let lane = Lane::new();
        let shards = (0..shard_count())
            .map(|i| {
                Padded(ShardCell {
                    lock: Mutex::new(Part::new(Shard::new(i, &lane))),
                    holds: AtomicBool::new(false),
                    words: Words::new(),
                    cells: Cells::new(),
                })
            })
            .collect();
        Self {
            hasher,
            lane: Padded(Mutex::new(Part::new(lane))),
            lane_cells: Cells::new(),
            shards,
            closed: AtomicBool::new(false),
            ids: Padded(AtomicU64::new(1)),
            hints: Padded(LaneHints {
                arrivals: AtomicU64::new(0),
                any_waiting: AtomicBool::new(false),
                any_used: AtomicBool::new(false),
                any_contended: AtomicBool::new(false),
                any_meets: AtomicU64::new(0),
            }),
            stock: Padded(stock::Stock::new()),
            offers: Padded(Offers {
                mask: AtomicU64::new(0),
                next: AtomicUsize::new(0),
                ranked: AtomicUsize::new(0),
                by_rank: std::array::from_fn(|_| AtomicUsize::new(0)),
            }),
            handles: AtomicUsize::new(1),
            me: StdAtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// A new pool's shared state in its `Arc`, which knows its own address
    /// (see [`keepalive`]).
    pub(crate) fn new_arc(hasher: S) -> Arc<Self> {
        let arc = Arc::new(Self::with_hasher(hasher));
        arc.me
            .store(Arc::as_ptr(&arc).cast_mut(), Ordering::Relaxed);
        arc
    }

    fn lock_lane(&self) -> LaneGuard<'_> {
        self.lane.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_shard(&self, shard: usize) -> ShardGuard<'_, K> {
        self.shards[shard]
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many shards the pool has.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl<P> Part<P> {
    fn new(core: P) -> Self {
        Self {
            core,
            wakers: Vec::new(),
            watches: Watches::default(),
            timed_out: 0,
            ids: IdBlock::default(),
            lent: [Meta::default(); WORDS],
            lent_more: Vec::new(),
            aborted: 0,
            free_words: WORDS,
            more_free: MORE,
            lent_mask: 0,
            offered: false,
            rank: None,
            solo_skip: 0,
            solo_misses: 0,
            budget_share: None,
        }
    }

    /// The part's core and its lease ids, borrowed apart, for a core call
    /// that may grant; `reserved` is the pool's id counter.
    #[inline]
    fn split_ids<'a>(&'a mut self, reserved: &'a AtomicU64) -> (&'a mut P, Ids<'a>) {
        let block = &mut self.ids;
        (&mut self.core, Ids { block, reserved })
    }
}

/// `mutex`'s guard unless another thread holds it (a poisoned lock is still
/// sound to use, see [`Shared::lock_lane`]).
fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

impl<K, S> std::fmt::Debug for Shared<K, S> {
    /// Counts what it can see without waiting: a part whose lock another
    /// thread holds is left out of the counts, and `complete` says so.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mut keys, mut waiters, mut complete) = (0, 0, true);
        match try_lock(&self.lane) {
            Some(lane) => waiters += lane.core.waiters(),
            None => complete = false,
        }
        for shard in self.shards.iter() {
            match try_lock(&shard.lock) {
                Some(part) => {
                    keys += part.core.len();
                    waiters += part.core.waiters();
                }
                None => complete = false,
            }
        }
        let mut out = f.debug_struct("Shared");
        out.field("keys", &keys)
            .field("waiters", &waiters)
            .field("closed", &self.is_closed())
            .field("shards", &self.shards.len());
        if !complete {
            out.field("complete", &false);
        }
        out.finish_non_exhaustive()
    }
}
