//! The any-key stock: under contention, any-key grants take units from
//! every key's lent word without a lock.
//!
//! Any-key grants follow the core's rotation exactly (shard by shard, in
//! turns; see `Pool::acquire`) until they keep meeting at shards' locks:
//! the [`STOCK_AFTER`]th any-key grant that finds a shard's lock held (in
//! [`Shared::try_any_locked`]) makes the pool *stock*, for the rest of its
//! life (`LaneHints::any_contended`):
//!
//! - a locked any-key grant lends the room left to its key's word (as a
//!   key's own locked grant does), and no longer collects the shard's
//!   words first: the stock shows their room;
//! - words with units are marked in the [`Stock`]'s bits, one per first
//!   word of each shard. A word's own [`STOCKED`] bit says that its bit is
//!   set (or about to be): the release or lend that puts units into a word
//!   without it sets both, with the word's own compare-exchange and then a
//!   `fetch_or` on the stock's line; later releases find the mark and
//!   write nothing else, so a key's own traffic leaves the stock's line
//!   alone;
//! - an any-key grant takes a unit from the first stocked word from its
//!   thread's cursor on, with the word's compare-exchange (the one a key's
//!   own fast grant uses), and moves the cursor past it. The grant that
//!   takes a word's last unit clears its mark in the same compare-exchange,
//!   then its bit, and sets the bit again if a release marked the word
//!   meanwhile; a grant that finds a word empty (a key's own grants took
//!   its units) or slow clears the mark and the bit the same way. So a
//!   marked word's bit is never left clear. When the cursor comes round, the grant
//!   first lets the shards whose cores hold room (their bits in
//!   [`Offers`](super::lane::Offers)) grant, under their locks, so that
//!   keys whose room is not lent still get their turn each round.
//!
//! Why a stocked grant may take any key's unit: a lent word holds units
//! only while nobody waits who could use them (module docs of
//! [`words`](super::words)): no waiter of its key, no any-key waiter (an
//! any-key waiter's pass under the lane collects every word first, and the
//! grant reads `LaneHints::any_waiting` before it looks), no limit unless
//! the units come out of the shard's budget, and an open pool (close
//! collects). So a grant from it is one the shard's lock could make too;
//! what changes is only which key it takes: the rotation becomes one round
//! per thread over the words with units, in the order of their bits.
//!
//! A word whose chunk of ids ran out keeps its units and its bit; the
//! grant that finds it so lends it again under the shard's lock, with a
//! new chunk (`renew_spent`).
//!
//! Why it is worth it: at capacity, one unit turns over at a time, and a
//! thread that releases a unit takes it again from the same word, on a line
//! its own core just wrote. The locked pass wrote a shard's lock, its
//! `Offers` bit and its group's slot on every grant and every release
//! (ARCHITECTURE, "The any-key stock").

use std::hash::{BuildHasher, Hash};

use super::words::{has_spare, STOCKED, WORDS};
use super::Shared;
use crate::sync::{AtomicU64, Ordering};

/// How many times any-key grants find a shard's lock held before the pool
/// stocks: sustained contention, not one overlap (a race between two
/// grants keeps the core's rotation, which the loom models of solo words
/// check).
pub(super) const STOCK_AFTER: u64 = 64;

/// The most shards a pool has.
const MAX_SHARDS: usize = 64;

/// Words of the stock's bits (one bit per first word of each shard).
const CHUNKS: usize = (MAX_SHARDS * WORDS).div_ceil(64);

/// Bit `shard * WORDS + w` (bit `% 64` of word `/ 64`) set while word `w`
/// of `shard` may hold spare units: set after units go in, cleared by a
/// grant that finds the word empty (see the module docs).
pub(super) struct Stock {
    bits: [AtomicU64; CHUNKS],
}

impl Stock {
    pub(super) fn new() -> Self {
        Self {
            bits: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Whether bit `at` is set, for tests.
    #[cfg(all(test, not(loom)))]
    pub(super) fn is_stocked(&self, at: usize) -> bool {
        self.bits[at / 64].load(Ordering::Relaxed) & (1 << (at % 64)) != 0
    }
}

/// The shard and word of bit `at`.
#[inline]
// Under loom a shard has one word.
#[allow(clippy::modulo_one)]
fn place(at: usize) -> (usize, usize) {
    (at / WORDS, at % WORDS)
}

#[cfg(not(loom))]
std::thread_local! {
    /// The bit this thread's next stocked grant looks at first (one
    /// cursor for all the pools a thread uses: only where a look starts).
    static CURSOR: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn cursor() -> usize {
    #[cfg(not(loom))]
    {
        CURSOR.with(std::cell::Cell::get)
    }
    // Loom's threads would need loom's own thread-locals: its models start
    // each grant at the first bit.
    #[cfg(loom)]
    {
        0
    }
}

#[inline]
fn set_cursor(at: usize) {
    #[cfg(not(loom))]
    CURSOR.with(|cursor| cursor.set(at));
    #[cfg(loom)]
    let _ = at;
}

impl<K, S> Shared<K, S> {
    /// Whether the pool stocks (see the module docs).
    #[inline]
    pub(super) fn stocking(&self) -> bool {
        self.hints.any_contended.load(Ordering::Relaxed)
    }

    /// Counts an any-key grant that found a shard's lock held, and makes
    /// the pool stock at the [`STOCK_AFTER`]th.
    #[cold]
    pub(super) fn count_meet(&self) {
        if self.hints.any_meets.fetch_add(1, Ordering::Relaxed) + 1 >= STOCK_AFTER {
            self.start_stocking();
        }
    }

    /// Makes the pool stock.
    #[cold]
    pub(super) fn start_stocking(&self) {
        self.hints.any_contended.store(true, Ordering::Relaxed);
    }

    /// [`start_stocking`](Self::start_stocking), for tests.
    pub(crate) fn start_stocking_now(&self) {
        self.start_stocking();
    }

    /// Sets the bit of word `w` of `shard` after units went into it.
    #[inline]
    pub(super) fn stock(&self, shard: usize, w: usize) {
        let at = shard * WORDS + w;
        // Release: a grant that reads the bit (acquire) then reads the
        // word's units, or later ones.
        self.stock.bits[at / 64].fetch_or(1 << (at % 64), Ordering::Release);
    }

    /// Clears bit `at` once its word's [`STOCKED`] mark was cleared (by
    /// the grant that took its last unit, or by
    /// [`clear_stale`](Self::clear_stale)), and sets it again if a release
    /// marked the word meanwhile. That release set the mark and then sets
    /// the bit: if it set the bit before this clear, the clear reads that
    /// write (acquire) and the load below sees the mark; if after, the bit
    /// stays set. So a marked word's bit is never left clear.
    #[cold]
    fn unstock(&self, at: usize, state: &AtomicU64) {
        let chunk = &self.stock.bits[at / 64];
        let bit = 1u64 << (at % 64);
        chunk.fetch_and(!bit, Ordering::Acquire);
        if state.load(Ordering::Acquire) & STOCKED != 0 {
            chunk.fetch_or(bit, Ordering::Release);
        }
    }

    /// After a grant found the word of bit `at` without units (a key's own
    /// grants took them, or it was collected): clears its mark while it
    /// still has none, then its bit.
    #[cold]
    fn clear_stale(&self, at: usize, state: &AtomicU64) {
        let mut now = state.load(Ordering::Relaxed);
        while now & STOCKED != 0 && !has_spare(now) {
            match state.compare_exchange_weak(
                now,
                now & !STOCKED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        if !has_spare(now) {
            self.unstock(at, state);
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// Lends word `w` of `shard` again after its chunk of ids ran out with
    /// units in it (under the shard's lock: collected, then lent with a new
    /// chunk and stocked), as a key's own locked grant does for its word.
    /// Without this, those units would wait in the word for the lane's
    /// pass, while the key's releases put more in.
    #[cold]
    #[inline(never)]
    fn renew_spent(&self, shard: usize, w: usize) {
        let mut part = self.lock_shard(shard);
        if let Some(slot) = part.meta(w).slot() {
            if self.shards[shard].words.is_spent(w) {
                self.collect(shard, &mut part, w);
                self.lend_slot(shard, &mut part, slot, None);
                self.sync_offer(&mut part);
            }
        }
        self.finish(None, Some(part), super::After::new());
    }

    /// An any-key lease from a stocked word, without a lock, while the
    /// pool stocks: from this thread's cursor to the last bit, then, unless
    /// a shard's core offers room (that shard's turn comes first, under
    /// its lock), from the first bit. The caller has checked that nobody
    /// waits for any key and the pool is open.
    #[inline]
    pub(super) fn take_stocked(&self) -> Option<workpool_core::Lease<K>> {
        if !self.stocking() {
            return None;
        }
        let end = self.shards.len() * WORDS;
        let from = cursor();
        let from = if from < end { from } else { 0 };
        if let Some(lease) = self.take_stocked_in(from, end) {
            return Some(lease);
        }
        // The round is over.
        set_cursor(0);
        if from == 0 || self.offers.mask.load(Ordering::Relaxed) != 0 {
            return None;
        }
        self.take_stocked_in(0, from)
    }

    /// A lease from the stock alone, when nobody waits for any key and the
    /// pool is open (for tests).
    pub(crate) fn try_stocked_alone(&self) -> Option<workpool_core::Lease<K>> {
        if self.hints.any_waiting.load(Ordering::Relaxed) || self.is_closed() {
            return None;
        }
        self.take_stocked_last()
    }

    /// [`take_stocked`](Self::take_stocked) over every bit, after the
    /// shards' cores gave nothing.
    #[inline]
    pub(super) fn take_stocked_last(&self) -> Option<workpool_core::Lease<K>> {
        if !self.stocking() {
            return None;
        }
        self.take_stocked_in(0, self.shards.len() * WORDS)
    }

    /// A lease from the word of bit `found`: with its last unit, the grant
    /// clears the word's mark and bit; a word found without units has both
    /// cleared; a spent word is lent again and tried once more.
    #[inline(always)]
    fn take_bit(&self, found: usize) -> Option<workpool_core::Lease<K>> {
        let (shard, w) = place(found);
        let mut renewed = false;
        loop {
            let (lease, emptied, state) = self.take_word(shard, w);
            if let Some(lease) = lease {
                if emptied {
                    self.unstock(found, state);
                }
                set_cursor(found + 1);
                return Some(lease);
            }
            if !has_spare(state.load(Ordering::Relaxed)) {
                self.clear_stale(found, state);
                return None;
            }
            // Units, but another grant was reading the word's key (the bit
            // stays), or no id left to give them with.
            if renewed || !self.shards[shard].words.is_spent(w) {
                return None;
            }
            self.renew_spent(shard, w);
            renewed = true;
        }
    }

    /// A lease from the first stocked word among bits `lo..hi`, clearing
    /// the bits of the words found without units.
    #[inline]
    fn take_stocked_in(&self, lo: usize, hi: usize) -> Option<workpool_core::Lease<K>> {
        let mut at = lo;
        while at < hi {
            let chunk = at / 64;
            let next = (chunk + 1) * 64;
            // Acquire: the units whose release set a bit.
            let mut bits = self.stock.bits[chunk].load(Ordering::Acquire) & (u64::MAX << (at % 64));
            if hi < next {
                bits &= (1 << (hi % 64)) - 1;
            }
            while bits != 0 {
                let found = chunk * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(lease) = self.take_bit(found) {
                    return Some(lease);
                }
            }
            at = next;
        }
        None
    }
}
