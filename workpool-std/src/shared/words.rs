//! Words: a key's room lent to an atomic, so that its grants and releases
//! skip the shard's lock.
//!
//! Each shard has [`WORDS`] *words*, each on cache lines of its own, and a
//! shard of many keys a block of [`MORE`] more, made when it first gives
//! one out and found through the block's tables instead of the directory's
//! scans (see [`more`]). A
//! word, once *assigned* to a key of the shard, can be *lent* the key's
//! room ([`Shard::lend`](workpool_core::parts::Shard::lend), which counts
//! it as active). While it is lent:
//!
//! - a grant ([`Shared::fast_take`]) finds the word by the key's hash in
//!   the shard's directory (a read-mostly line), takes a unit with one
//!   compare-exchange on the word, which also counts the grant and so fixes
//!   the lease's id, checks the key and mints the lease
//!   ([`Minter::mint`]): no lock, no line that other keys write;
//! - a release ([`Shared::fast_release`]) puts the unit back with one
//!   compare-exchange, as long as the word is not *slow*.
//!
//! Everything else takes the shard's lock and first *collects* the words
//! it could disturb ([`Shared::collect`]): it marks the word slow (from then
//! on grants and releases of that key take the lock) and gives the units
//! that no lease holds back to the core, with the number of leases minted.
//! So under the lock the core's counts are exact, every rule of the core
//! holds as before, and only the locked paths of a key's grant and release
//! lend again ([`Shared::lend_slot`]), when nobody waits for the key, its
//! group is linked in the ring (so no any-key acquisition waits: the core
//! unlinks every group before one queues), no limit is set, no watcher
//! watches the shard and the pool is open. An any-key acquisition collects
//! the words of each shard it looks at, so it sees every key's room
//! (unless the pool [stocks](super::stock): then the stock shows the
//! words' room, and only the pass under the lane collects them); and
//! once one collected words of a block, shards lend no more words of their
//! blocks (128 lent words would make each of those looks cost a
//! microsecond). A
//! key's `counts` collects that key's word alone.
//!
//! # The word
//!
//! One `u64`: bit 63 *slow*; bit 62 *reading* (below); bits 43..62 the
//! spare units; bit 42 *stocked* (the word's bit in the pool's
//! [stock](super::stock) is set, or about to be); bits 0..42 `seq`, which
//! counts grants and lends. A word's value never repeats: a
//! grant and a lend raise `seq`, a release raises the spare units, and a
//! collect sets *slow*, which only a lend (raising `seq`) clears. So a
//! compare-exchange that succeeds proves nothing happened to the word since
//! the value was read, and what was read beside it before (the id offset
//! and limit, written only while the word is slow, before the lend that
//! publishes them) belongs to that value: the lease's id is
//! `id_off + seq`. Only the holder of the shard's lock sets or clears
//! *slow*.
//!
//! # Why the key and minter may be read without the lock
//!
//! They are written only when the word is assigned, under the lock, while
//! it is slow and no unit is out (the key before had none live: a word is
//! freed only when its key is forgotten). A grant reads them only after its
//! compare-exchange took a unit from a value that a later lend published
//! (acquire, after the writes); while it holds that unit the key stays
//! tracked, so the word stays assigned. A grant that finds another key in
//! the word (a hash collision, or a word reassigned since it looked) gives
//! the unit back.
//!
//! # Lease ids
//!
//! A lend gives the word a chunk of the shard's block of ids (see `Ids`);
//! a collect gives the rest back when nothing was taken from the shard's
//! block since (the common case), so a key's ids stay consecutive. Ids stay
//! unique (each id of a chunk is handed out once: by the word's `seq`, or
//! by the shard after it came back) and increase within a key (a chunk
//! comes from above every id the key had, and what comes back is above the
//! word's).

use std::cell::UnsafeCell;
use std::hash::BuildHasher;
use std::hash::Hash;
use std::sync::OnceLock;

use workpool_core::parts::{Minter, Shard};

use super::{After, KeyQuery, Padded, Part, Shared};
use crate::sync::{AtomicU64, Ordering};

mod lending;
mod more;

pub(super) use more::MORE;
use more::{Entries, More};

/// Without [more words](more), a shard assigns words to its keys while it
/// tracks at most this many.
const ASSIGN_UP_TO: usize = 2 * WORDS;

/// A shard gives out [more words](more) while it tracks at most this many
/// keys.
const MORE_UP_TO: usize = 2 * (WORDS + MORE);

/// The most solo lends in a row that were collected unused before the
/// shard lends only once per `2^SOLO_BACKOFF` locked any-key grants from
/// its solo key (see `Shared::lend_solo`).
pub(super) const SOLO_BACKOFF: u8 = 10;

/// Words per shard.
#[cfg(not(loom))]
pub(super) const WORDS: usize = 8;
#[cfg(loom)]
pub(super) const WORDS: usize = 1;

/// The lent words of a shard, by bit: the first [`WORDS`], then the
/// block's.
pub(super) type LentMask = u128;
const _: () = assert!(WORDS + MORE <= LentMask::BITS as usize);

const SLOW: u64 = 1 << 63;
/// In the directory's `assigned` bits: look-ups go through the block of
/// [more words](more).
const INDEXED: u64 = 1 << 63;
const _: () = assert!(WORDS < 63 && WORDS.is_power_of_two());
/// Set while one grant reads the word's key: keys need only be `Send`, so
/// two threads never read one at once.
const READING: u64 = 1 << 62;
const SPARE_SHIFT: u32 = 43;
const ONE_SPARE: u64 = 1 << SPARE_SHIFT;
const SPARE_MASK: u64 = ((1 << 19) - 1) << SPARE_SHIFT;
/// Set by the release or lend that sets the word's bit in the pool's
/// [stock](super::stock) (so later ones need not write the stock's line),
/// cleared by the any-key grant that clears it.
pub(super) const STOCKED: u64 = 1 << 42;
const SEQ_MASK: u64 = STOCKED - 1;
/// The most units a word holds: a key with a larger target gets no word.
const MAX_UNITS: u64 = (1 << 19) - 1;
/// How often a grant finds another grant reading the key before it takes
/// the lock instead.
#[cfg(not(loom))]
const SPINS: u32 = 64;
#[cfg(loom)]
const SPINS: u32 = 0;
/// The highest `seq` a word reaches; a word there is never lent again.
const MAX_SEQ: u64 = SEQ_MASK - 1;
/// The ids a lend gives a word at most.
const CHUNK: u64 = 1 << 12;
#[cfg(all(test, not(loom)))]
pub(super) const CHUNK_FOR_TESTS: u64 = CHUNK;

/// Whether a word in `state` has units to give (not slow).
#[inline]
pub(super) fn has_spare(state: u64) -> bool {
    state & SLOW == 0 && state & SPARE_MASK != 0
}

fn spare(state: u64) -> u64 {
    (state & SPARE_MASK) >> SPARE_SHIFT
}

/// The directory tag of a key's full hash (never 0, which marks a free
/// word).
fn tag(hash: u64) -> u64 {
    hash | 1
}

/// A shard's words and their directory.
pub(super) struct Words<K> {
    /// Read by every fast grant and release of the shard; written only
    /// when a word is assigned or freed.
    dir: Padded<Dir>,
    words: [Padded<Word<K>>; WORDS],
    /// The words beyond the first, once the shard gave one out (see
    /// [`more`]).
    more: OnceLock<Box<More<K>>>,
}

struct Dir {
    /// Bit `w` set while word `w` is assigned (a hint for the scans), until
    /// the shard's block of more words exists: then [`INDEXED`] alone, and
    /// look-ups read the block's tables, which index every assigned word.
    assigned: AtomicU64,
    /// `tags[w]`: the tag of the key word `w` is assigned to, or 0.
    tags: [AtomicU64; WORDS],
    /// `slots[w]`: 1 + the core slot of that key, or 0.
    slots: [AtomicU64; WORDS],
    /// 1 + the word whose key an any-key grant from this shard may take
    /// without the lock ([`Shared::fast_take_any`]), or 0.
    solo: AtomicU64,
}

struct Word<K> {
    state: AtomicU64,
    id_off: AtomicU64,
    id_lim: AtomicU64,
    /// The key the word is assigned to (see the module docs for who may
    /// read it when).
    key: UnsafeCell<Option<K>>,
    minter: UnsafeCell<Option<Minter>>,
}

// SAFETY: the cells are written only under the shard's lock while no other
// thread can read them, and read by one grant at a time otherwise (the
// `READING` bit, module docs): as a mutex's value, the key only moves
// between threads (`K: Send`), it is never shared.
unsafe impl<K: Send> Sync for Word<K> {}

/// A key to assign a free word to: its full hash, the key, and how to
/// clone it (`K::clone`: the word keeps its own copy).
pub(super) type Assign<'a, K> = (u64, &'a K, fn(&K) -> K);

/// What the shard's lock keeps about a word.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Meta {
    /// The minter of the key the word is assigned to (`None`: free).
    minter: Option<Minter>,
    /// `seq` when the word was last lent (grants since are minted leases).
    seq_base: u64,
    /// True once `seq` ran out: never lent again.
    retired: bool,
    /// Where the word's entries in the tables of the shard's block of more
    /// words are, once it has both a key and an entry.
    entries: Option<Entries>,
}

impl Meta {
    /// The core slot of the key the word is assigned to, if any.
    pub(super) fn slot(&self) -> Option<usize> {
        self.minter.map(|minter| minter.slot())
    }
}

impl<K> Word<K> {
    fn new() -> Self {
        Self {
            state: AtomicU64::new(SLOW),
            id_off: AtomicU64::new(0),
            id_lim: AtomicU64::new(0),
            key: UnsafeCell::new(None),
            minter: UnsafeCell::new(None),
        }
    }
}

impl<K> Words<K> {
    pub(super) fn new() -> Self {
        Self {
            dir: Padded(Dir {
                assigned: AtomicU64::new(0),
                tags: std::array::from_fn(|_| AtomicU64::new(0)),
                slots: std::array::from_fn(|_| AtomicU64::new(0)),
                solo: AtomicU64::new(0),
            }),
            words: std::array::from_fn(|_| Padded(Word::new())),
            more: OnceLock::new(),
        }
    }

    /// Word `w`: one of the first [`WORDS`], or of the block of more
    /// words, which exists once a word of it was assigned.
    #[inline]
    fn word(&self, w: usize) -> &Word<K> {
        match self.words.get(w) {
            Some(word) => word,
            None => self.more_word(w),
        }
    }

    /// Word `w` of the block of more words.
    fn more_word(&self, w: usize) -> &Word<K> {
        self.more
            .get()
            .expect("a word beyond the first is assigned from the block")
            .word(w - WORDS)
    }

    /// The word assigned to the key with this hash, if any (a hint: the
    /// grant checks the key).
    #[cfg(all(test, not(loom)))]
    pub(super) fn find(&self, hash: u64) -> Option<usize> {
        let assigned = self.dir.assigned.load(Ordering::Relaxed);
        match scan(assigned, &self.dir.tags, tag(hash)) {
            Some(w) => Some(w),
            // Once the block exists, the first words are found through its
            // table too (their bits are cleared).
            None if assigned & INDEXED != 0 => self.find_indexed(hash),
            None => None,
        }
    }

    /// The word assigned to the key with this hash through the block's
    /// table, if any (a hint: the grant checks the key).
    #[inline]
    fn find_indexed(&self, hash: u64) -> Option<usize> {
        self.more.get()?.find_hash(hash)
    }

    /// [`find_indexed`](Self::find_indexed), with the word.
    #[inline(never)]
    fn find_word_indexed(&self, hash: u64) -> Option<(usize, &Word<K>)> {
        let w = self.find_indexed(hash)?;
        Some((w, self.word(w)))
    }

    /// Puts a unit of the key in core slot `slot` back into its word, found
    /// through the block's table; false if it has none or it is slow.
    #[inline(never)]
    fn release_indexed(&self, slot: usize) -> bool {
        match self.find_slot_indexed(slot) {
            Some(w) => put_back(self.word(w)),
            None => false,
        }
    }

    /// The shard's solo mark (1 + a word, or 0), for tests.
    #[cfg(all(test, not(loom)))]
    pub(super) fn solo_mark(&self) -> u64 {
        self.dir.solo.load(Ordering::Relaxed)
    }

    /// Whether first word `w` is lent with units but no id left to give
    /// them with (its chunk ran out: only a new lend gives it more).
    pub(super) fn is_spent(&self, w: usize) -> bool {
        let word = &self.words[w & (WORDS - 1)];
        let state = word.state.load(Ordering::Acquire);
        has_spare(state) && state & SEQ_MASK >= word.id_lim.load(Ordering::Acquire)
    }

    /// The word assigned to the key in core slot `slot`, if any.
    #[inline]
    fn find_slot(&self, slot: usize) -> Option<usize> {
        let assigned = self.dir.assigned.load(Ordering::Relaxed);
        match scan(assigned, &self.dir.slots, slot as u64 + 1) {
            Some(w) => Some(w),
            None if assigned & INDEXED != 0 => self.find_slot_indexed(slot),
            None => None,
        }
    }

    /// [`find_slot`](Self::find_slot) through the block's table.
    #[inline]
    fn find_slot_indexed(&self, slot: usize) -> Option<usize> {
        let more = self.more.get()?;
        let w = more.find_slot(slot)?;
        let column = match w.checked_sub(WORDS) {
            None => &self.dir.slots[w],
            Some(m) => more.slot_of(m),
        };
        (column.load(Ordering::Relaxed) == slot as u64 + 1).then_some(w)
    }

    /// Puts a unit back into word `w` unless it is slow; false if it is.
    #[inline]
    fn put_back(&self, w: usize) -> bool {
        put_back(self.word(w))
    }
}

/// Puts a unit back into `word` unless it is slow; false if it is.
#[inline(always)]
fn put_back<K>(word: &Word<K>) -> bool {
    put_back_state(word, 0).is_some()
}

/// [`put_back`], setting `mark` (0 or [`STOCKED`]) too, with the word's
/// state before (`None`: slow).
#[inline(always)]
fn put_back_state<K>(word: &Word<K>, mark: u64) -> Option<u64> {
    let mut state = word.state.load(Ordering::Relaxed);
    loop {
        if state & SLOW != 0 {
            return None;
        }
        // Release: the lease's uses of the unit come before the next
        // grant of it.
        match word.state.compare_exchange_weak(
            state,
            (state + ONE_SPARE) | mark,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(old) => return Some(old),
            Err(now) => state = now,
        }
    }
}

impl<P> Part<P> {
    /// What the lock keeps about word `w` (one of the first words, or of
    /// the block of more words).
    #[inline]
    pub(super) fn meta(&self, w: usize) -> &Meta {
        match w.checked_sub(WORDS) {
            None => &self.lent[w],
            Some(m) => &self.lent_more[m],
        }
    }

    #[inline]
    fn meta_mut(&mut self, w: usize) -> &mut Meta {
        match w.checked_sub(WORDS) {
            None => &mut self.lent[w],
            Some(m) => &mut self.lent_more[m],
        }
    }

    /// Counts word `w` out of the free ones (assigned or retired).
    fn leave_free(&mut self, w: usize) {
        if w < WORDS {
            self.free_words -= 1;
        } else {
            self.more_free -= 1;
        }
    }

    /// Counts word `w` back among the free ones.
    fn join_free(&mut self, w: usize) {
        if w < WORDS {
            self.free_words += 1;
        } else {
            self.more_free += 1;
        }
    }
}

/// The word among those `assigned` (the directory's bits) whose entry in
/// `column` is `wanted`.
#[inline]
fn scan(assigned: u64, column: &[AtomicU64; WORDS], wanted: u64) -> Option<usize> {
    // The first words' bits alone: a word found is below `WORDS`.
    let mut assigned = assigned & ((1 << WORDS) - 1);
    while assigned != 0 {
        let w = assigned.trailing_zeros() as usize;
        assigned &= assigned - 1;
        if column[w].load(Ordering::Relaxed) == wanted {
            return Some(w);
        }
    }
    None
}

/// Clears `READING` once a grant is done with the word's key.
struct Reading<'a>(&'a AtomicU64);

impl Drop for Reading<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: this grant's reads of the key come before the next
        // one's.
        self.0.fetch_and(!READING, Ordering::Release);
    }
}

/// Gives a unit taken by a fast grant back if the grant does not finish
/// (another key in the word, or a panicking `K::eq` or `K::clone`).
struct Untake<'a, K, S> {
    shared: &'a Shared<K, S>,
    shard: usize,
    w: usize,
}

impl<K, S> Drop for Untake<'_, K, S> {
    #[cold]
    fn drop(&mut self) {
        let mut part = self.shared.lock_shard(self.shard);
        part.aborted += 1;
        if self.shared.shards[self.shard].words.put_back(self.w) {
            return;
        }
        // Slow: the word's units went back to the core, this one with
        // them as active; give it back there.
        let slot = part
            .meta(self.w)
            .minter
            .expect("a word with a unit out stays assigned")
            .slot();
        let (core, mut ids) = part.split_ids(&self.shared.ids);
        if core.unlend(None, slot, 1, 0, &mut ids).is_ok() {
            return self.shared.finish(None, Some(part), After::new());
        }
        // The pool changed since the collect: the lane takes it back.
        drop(part);
        self.shared.unlend_with_lane(self.shard, slot);
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// A lease of `key` (hash `hash`, in `shard`) from its word, without
    /// the lock; `Err` when the key has no word (that this thread saw), or
    /// the word has nothing to give, is slow or holds another key.
    #[inline(always)]
    pub(crate) fn fast_take<Q: ?Sized + KeyQuery<K>>(
        &self,
        hash: u64,
        shard: usize,
        key: &Q,
    ) -> Result<workpool_core::Lease<K>, ()> {
        let words = &self.shards[shard].words;
        let assigned = words.dir.assigned.load(Ordering::Relaxed);
        let (w, word) = match scan(assigned, &words.dir.tags, tag(hash)) {
            // `scan` finds first words only: the mask keeps it in range.
            Some(w) => (w, &*words.words[w & (WORDS - 1)]),
            // Once the shard has its block, every word is found through
            // the block's table (a call away: a shard of few keys inlines
            // only the scan).
            None if assigned & INDEXED != 0 => words.find_word_indexed(hash).ok_or(())?,
            None => return Err(()),
        };
        self.take_unit(shard, w, word, None, None, |stored| key.equivalent(stored))
    }

    /// An any-key lease from `shard`'s *solo* word without the lock: the
    /// shard tracks that word's key alone, linked, so the grant the shard's
    /// lock would make is this one, and it leaves the ring as it was (see
    /// [`Shard::solo_slot`]). `Err` when the shard has no solo word, or it
    /// has nothing to give or is slow.
    ///
    /// The solo mark is read again after each read of the word: a word
    /// reassigned to a key that is not alone in its shard loses the mark
    /// before the lend that publishes it, so a grant that saw that lend
    /// sees the mark gone.
    #[inline(always)]
    pub(crate) fn fast_take_any(&self, shard: usize) -> Result<workpool_core::Lease<K>, ()> {
        let words = &self.shards[shard].words;
        let solo = words.dir.solo.load(Ordering::Relaxed);
        // Only a first word is ever marked solo.
        let w = (solo as usize).wrapping_sub(1);
        let word = words.words.get(w).ok_or(())?;
        self.take_unit(shard, w, word, Some(solo), None, |_| true)
    }

    /// An any-key lease from word `w` of `shard` (one of its first words)
    /// for the [stock](super::stock), with whether it took the word's
    /// last unit and cleared [`STOCKED`] with it, and the word's state.
    #[inline(always)]
    pub(super) fn take_word(
        &self,
        shard: usize,
        w: usize,
    ) -> (Option<workpool_core::Lease<K>>, bool, &AtomicU64) {
        let word = &*self.shards[shard].words.words[w & (WORDS - 1)];
        let mut emptied = false;
        let lease = self
            .take_unit(shard, w, word, None, Some(&mut emptied), |_| true)
            .ok();
        (lease, emptied, &word.state)
    }

    /// A lease from word `w` of `shard`, if `fits` accepts its key; with
    /// `solo`, only while the shard's solo mark stays that. With `emptied`,
    /// a grant of the word's last unit clears [`STOCKED`] too, and says so
    /// there.
    #[inline(always)]
    fn take_unit(
        &self,
        shard: usize,
        w: usize,
        word: &Word<K>,
        solo: Option<u64>,
        mut emptied: Option<&mut bool>,
        fits: impl FnOnce(&K) -> bool,
    ) -> Result<workpool_core::Lease<K>, ()> {
        let words = &self.shards[shard].words;
        let mut state = word.state.load(Ordering::Acquire);
        let mut spins = 0;
        let id = loop {
            if state & SLOW != 0 || state & SPARE_MASK == 0 {
                return Err(());
            }
            if state & READING != 0 {
                spins += 1;
                if spins > SPINS {
                    return Err(());
                }
                std::hint::spin_loop();
                state = word.state.load(Ordering::Acquire);
                continue;
            }
            // After the acquire read of the word: a lend that cleared the
            // mark did so before publishing the value read.
            if solo.is_some_and(|solo| words.dir.solo.load(Ordering::Relaxed) != solo) {
                return Err(());
            }
            // Acquire: the offset and limit of a later lend are read only
            // with the slow mark that came before them, which fails the
            // compare-exchange below.
            let off = word.id_off.load(Ordering::Acquire);
            let lim = word.id_lim.load(Ordering::Acquire);
            let seq = state & SEQ_MASK;
            if seq >= lim {
                return Err(());
            }
            let mut next = (state - ONE_SPARE + 1) | READING;
            let last = emptied.is_some() && next & SPARE_MASK == 0;
            if last {
                next &= !STOCKED;
            }
            match word.state.compare_exchange_weak(
                state,
                next,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Some(emptied) = emptied.as_deref_mut() {
                        *emptied = last;
                    }
                    break off.wrapping_add(seq);
                }
                Err(now) => state = now,
            }
        };
        // Dropped in reverse: `reading` first (the key is let go), then
        // `untake` (the unit goes back), unless forgotten.
        let untake = Untake {
            shared: self,
            shard,
            w,
        };
        let reading = Reading(&word.state);
        // SAFETY: this thread holds a unit taken from a value published by
        // a lend (acquire), which came after the key and minter were
        // written; while the unit is out the word stays assigned, so they
        // are not written again; and it set `READING`, so no other grant
        // reads them until it clears it (module docs).
        let (stored, minter) = unsafe { (&*word.key.get(), &*word.minter.get()) };
        let (Some(stored), Some(minter)) = (stored, minter) else {
            return Err(()); // `untake` gives the unit back
        };
        if !fits(stored) {
            return Err(());
        }
        let lease = minter.mint(stored.clone(), id);
        drop(reading);
        std::mem::forget(untake);
        Ok(lease)
    }
}

impl<K, S> Shared<K, S> {
    /// Gives `lease`'s unit back to its key's word, without the lock; false
    /// (the lease untouched) if the key has no word or it is slow.
    #[inline]
    pub(crate) fn fast_release(&self, lease: &workpool_core::Lease<K>) -> bool {
        if lease.units() != 1 {
            // A word counts single units: weighted leases (and leases of
            // no units) go back under the lock.
            return false;
        }
        let words = &self.shards[lease.shard()].words;
        let assigned = words.dir.assigned.load(Ordering::Relaxed);
        // The lease's unit keeps its key tracked, so a word found by the
        // key's slot is this key's (module docs).
        match scan(assigned, &words.dir.slots, lease.slot() as u64 + 1) {
            // `scan` finds first words only: the mask keeps it in range.
            Some(w) => {
                let w = w & (WORDS - 1);
                if !self.stocking() {
                    return put_back(&words.words[w]);
                }
                match put_back_state(&words.words[w], STOCKED) {
                    Some(old) => {
                        // The release that marks the word sets its bit.
                        if old & STOCKED == 0 {
                            self.stock(lease.shard(), w);
                        }
                        true
                    }
                    None => false,
                }
            }
            None if assigned & INDEXED != 0 => words.release_indexed(lease.slot()),
            None => false,
        }
    }

    /// Whether a shard's locked grant or release may lend its key's room.
    pub(super) fn may_lend(&self, part: &Part<Shard<K>>) -> bool {
        // Under a limit, a shard lends out of its budget (see `budgets`).
        !self.is_closed()
            && !part.watches.is_waiting()
            && (!part.core.is_limited() || part.core.budget().is_some())
    }

    /// Collects the word of the key with hash `hash` (under its shard's
    /// lock, where the directory is exact: the fast path's view of it may
    /// be older), and any other word with the same tag.
    #[inline(always)]
    pub(super) fn collect_key(&self, shard: usize, part: &mut Part<Shard<K>>, hash: u64) {
        // Nothing lent: the common case of a contended key.
        if part.lent_mask != 0 {
            self.collect_lent_key(shard, part, hash);
        }
    }

    /// [`collect_key`](Self::collect_key) while some word is lent.
    fn collect_lent_key(&self, shard: usize, part: &mut Part<Shard<K>>, hash: u64) {
        let words = &self.shards[shard].words;
        if let Some(more) = words.more.get() {
            // Every assigned word has its entry once the block exists.
            self.collect_indexed(shard, part, more, hash);
            return;
        }
        let tag = tag(hash);
        let mut lent = part.lent_mask;
        while lent != 0 {
            let w = lent.trailing_zeros() as usize;
            lent &= lent - 1;
            if words.dir.tags[w].load(Ordering::Relaxed) == tag {
                self.collect(shard, part, w);
            }
        }
    }

    /// [`collect_key`](Self::collect_key) in a shard with a block of more
    /// words, through its table by hash.
    fn collect_indexed(&self, shard: usize, part: &mut Part<Shard<K>>, more: &More<K>, hash: u64) {
        let mut from = 0;
        while let Some((w, next)) = more.next_hash_match(hash, from) {
            self.collect(shard, part, w);
            from = next;
        }
    }

    /// Collects every word of `shard` (under its lock).
    #[inline]
    pub(super) fn collect_all(&self, shard: usize, part: &mut Part<Shard<K>>) {
        let mut lent = part.lent_mask;
        while lent != 0 {
            let w = lent.trailing_zeros() as usize;
            lent &= lent - 1;
            self.collect(shard, part, w);
        }
    }

    /// Collects word `w` of `shard` (see the module docs): marks it slow
    /// and gives its spare units and minted count to the core.
    pub(super) fn collect(&self, shard: usize, part: &mut Part<Shard<K>>, w: usize) {
        let Some(minter) = part.meta(w).minter else {
            return;
        };
        let word = self.shards[shard].words.word(w);
        let mut state = word.state.load(Ordering::Relaxed);
        loop {
            if state & SLOW != 0 {
                return;
            }
            let slow = SLOW | (state & (SEQ_MASK | READING));
            // Acquire: the releases of the units collected come before
            // their next grant under the lock.
            match word.state.compare_exchange_weak(
                state,
                slow,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        part.lent_mask &= !(1 << w);
        let seq = state & SEQ_MASK;
        let minted = seq - part.meta(w).seq_base;
        let solo = &self.shards[shard].words.dir.solo;
        if solo.load(Ordering::Relaxed) == w as u64 + 1 {
            // Slow now: fast any-key grants need not look at it.
            solo.store(0, Ordering::Relaxed);
            if minted == 0 {
                // Lent for nothing (the key filled up under contention,
                // say): the next solo lends wait longer.
                part.solo_misses = (part.solo_misses + 1).min(SOLO_BACKOFF);
                part.solo_skip = (1 << part.solo_misses) - 1;
            } else {
                part.solo_misses = 0;
            }
        }
        // The rest of the word's chunk goes back if nothing was taken from
        // the shard's block since the lend.
        let off = word.id_off.load(Ordering::Relaxed);
        let lim = word.id_lim.load(Ordering::Relaxed);
        let (next, end) = (off.wrapping_add(seq), off.wrapping_add(lim));
        if part.ids.next == end {
            part.ids.next = next;
        }
        let (core, mut ids) = part.split_ids(&self.ids);
        core.unlend(None, minter.slot(), spare(state), minted, &mut ids)
            .expect("a lent key needs no lane to take its units back");
    }
}

impl<K, S> Shared<K, S> {
    /// Locks `shard` and collects all its words: for every locked
    /// operation but a key's grant and release, which collect only their
    /// key's word.
    pub(super) fn lock_settled(&self, shard: usize) -> super::ShardGuard<'_, K> {
        let mut part = self.lock_shard(shard);
        self.collect_all(shard, &mut part);
        part
    }
}
