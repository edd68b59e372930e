//! Lending words, under the shard's lock: after a locked grant or
//! release, a key's room goes to its word ([`Shared::lend_slot`]),
//! assigning it a free word first (one of the shard's first words, or one
//! of its block of [more words](super::more)); a word's ids come in chunks
//! ([`Shared::give_chunk`]); forgotten keys' words are freed
//! ([`Shared::free_dead_words`]). See the module docs of
//! [`words`](super) for the protocol.

use workpool_core::parts::Shard;

use super::more::More;
use super::{
    spare, tag, Assign, Meta, ASSIGN_UP_TO, CHUNK, INDEXED, MAX_SEQ, MAX_UNITS, MORE, MORE_UP_TO,
    READING, SEQ_MASK, SLOW, SPARE_SHIFT, STOCKED, WORDS,
};
use crate::shared::{After, IdBlock, Part, Shared, ID_BLOCK};
use crate::sync::Ordering;

impl<K, S> Shared<K, S> {
    /// After a locked grant or release of the key in core `slot`: lends its
    /// room to its word, when [`may_lend`](Self::may_lend) says so. A key
    /// without a word gets a free one if `assign` gives its hash and key
    /// (cloned into the word with `K::clone`).
    #[inline]
    pub(in crate::shared) fn lend_slot(
        &self,
        shard: usize,
        part: &mut Part<Shard<K>>,
        slot: usize,
        assign: Option<Assign<'_, K>>,
    ) {
        // The common case of a shard of many keys: no word to lend to, and
        // none to give out.
        let assigned = self.shards[shard]
            .words
            .dir
            .assigned
            .load(Ordering::Relaxed);
        if assigned == 0
            && (part.free_words == 0 || part.core.len() > ASSIGN_UP_TO)
            && !self.more_in_play(part)
        {
            return;
        }
        self.lend_slot_slow(shard, part, slot, assign);
    }

    /// Whether the shard's block of [more words](super::more) may hold a word of
    /// one of its keys, or give one out.
    #[inline]
    fn more_in_play(&self, part: &Part<Shard<K>>) -> bool {
        part.more_free < MORE || (part.more_free > 0 && self.more_allowed(part))
    }

    /// Whether a shard may give out and lend the words of its block of
    /// [more words](super::more) (and its first words to keys of a shard of many
    /// keys): until an any-key acquisition found some of them lent, and the shard
    /// tracks at most [`MORE_UP_TO`] keys (beyond, most of its keys would
    /// have no word, and would pay the look-ups for nothing).
    #[inline]
    fn more_allowed(&self, part: &Part<Shard<K>>) -> bool {
        part.core.len() <= MORE_UP_TO && !self.hints.any_used.load(Ordering::Relaxed)
    }

    /// A free word for the key in `slot` with hash `hash` (under the
    /// lock): one of the first words while the shard tracks few keys (or
    /// more words are allowed), else one of the block's whose tables have
    /// room for the key's entries (entered when it is assigned). `None` if
    /// there is none.
    fn free_word(
        &self,
        shard: usize,
        part: &mut Part<Shard<K>>,
        slot: usize,
        hash: u64,
    ) -> Option<usize> {
        let more_allowed = self.more_allowed(part);
        let words = &self.shards[shard].words;
        if part.free_words > 0 && (part.core.len() <= ASSIGN_UP_TO || more_allowed) {
            if words
                .more
                .get()
                .is_some_and(|more| !more.has_room(slot, hash))
            {
                return None;
            }
            return (0..WORDS).find(|&w| part.lent[w].minter.is_none() && !part.lent[w].retired);
        }
        if part.more_free == 0 || !more_allowed {
            return None;
        }
        let more = match words.more.get() {
            Some(more) => more,
            None => self.make_more(shard, part),
        };
        if !more.has_room(slot, hash) {
            return None;
        }
        let m = (0..MORE).find(|&m| {
            let meta = &part.lent_more[m];
            meta.minter.is_none() && !meta.retired
        })?;
        Some(WORDS + m)
    }

    /// Makes the shard's block of more words (under its lock), and enters
    /// its first words' keys in the block's tables, which look-ups read
    /// from now on instead of scanning.
    #[cold]
    fn make_more<'a>(&'a self, shard: usize, part: &mut Part<Shard<K>>) -> &'a More<K> {
        let words = &self.shards[shard].words;
        let more = words.more.get_or_init(More::new);
        part.lent_more = vec![Meta::default(); MORE];
        for w in 0..WORDS {
            if part.lent[w].minter.is_some() {
                let slot = words.dir.slots[w].load(Ordering::Relaxed) - 1;
                let tag = words.dir.tags[w].load(Ordering::Relaxed);
                let entries = more.enter(w, slot as usize, tag);
                // At most `WORDS` entries in empty tables: each fits its
                // window.
                assert!(entries.is_some(), "a first word fits the new tables");
                part.lent[w].entries = entries;
            }
        }
        // Look-ups read the tables from now on (one that reads the bit
        // before the entries misses, and takes the locked path); the
        // directory's scans find nothing more.
        words.dir.assigned.store(INDEXED, Ordering::Relaxed);
        more
    }

    #[inline(never)]
    fn lend_slot_slow(
        &self,
        shard: usize,
        part: &mut Part<Shard<K>>,
        slot: usize,
        assign: Option<Assign<'_, K>>,
    ) {
        let words = &self.shards[shard].words;
        let w = match words.find_slot(slot) {
            Some(w) if w >= WORDS && !self.more_allowed(part) => return,
            Some(w) => w,
            None => {
                // A shard of many keys gives out no more of its first
                // words, unless it may have more: most of its keys could
                // have none, and each would pay the scans.
                let Some((hash, _, _)) = assign else {
                    return;
                };
                if part.free_words == 0 && part.more_free == 0 {
                    return;
                }
                if !self.may_lend(part) {
                    return;
                }
                match self.free_word(shard, part, slot, hash) {
                    Some(w) => w,
                    None => return,
                }
            }
        };
        if !self.may_lend(part)
            || part
                .core
                .slot_counts(slot)
                .is_none_or(|c| c.target > MAX_UNITS || c.target == 0)
        {
            return;
        }
        let word = words.word(w);
        let state = word.state.load(Ordering::Relaxed);
        if state & SLOW == 0 {
            // Lent already: lend what room came back to it too.
            self.mark_solo(part, w, slot);
            self.top_up(part, w, slot, state);
            return;
        }
        let seq = (state & SEQ_MASK) + 1;
        if seq >= MAX_SEQ {
            let meta = part.meta(w);
            if !meta.retired && meta.minter.is_none() {
                part.leave_free(w);
            }
            part.meta_mut(w).retired = true;
            return;
        }
        if part.meta(w).minter.is_some_and(|m| !part.core.is_live(&m)) {
            // A word of a forgotten key still assigned, found through the
            // slot a new key took: lent, it would mint leases of the old
            // key, which the core rejects as stale at their release. Every
            // path that forgets a key frees its word before the shard is
            // let go (`collect_forgotten` and its callers), so this is a
            // guard, not a path: the word waits for the next forget's
            // clean-up, and the key takes the locked path meanwhile.
            debug_assert!(false, "a forgotten key's word found by its slot");
            return;
        }
        let Some(lent) = part.core.lend(slot, MAX_UNITS) else {
            return;
        };
        // A word keeps the minter of its assignment: it must be this key's
        // (a word of a forgotten key is freed before its slot serves
        // another), or its grants would mint leases the core rejects.
        debug_assert!(
            part.meta(w).minter.is_none_or(|m| m == lent.minter),
            "a word lent under another key's minter"
        );
        if part.meta(w).minter.is_none() {
            // Assign: the word is slow and free, no unit of it is out.
            let (hash, key, clone) = assign.expect("only an assignment finds a free word");
            let key = clone(key);
            // SAFETY: under the shard's lock, the word slow and unassigned:
            // no grant holds a unit of it, so no thread reads the cells
            // (module docs).
            let old = unsafe {
                *word.minter.get() = Some(lent.minter);
                (*word.key.get()).replace(key)
            };
            debug_assert!(old.is_none(), "a free word holds no key");
            part.meta_mut(w).minter = Some(lent.minter);
            part.leave_free(w);
            match w.checked_sub(WORDS) {
                Some(m) => {
                    let more = words.more.get().expect("a free word of the block exists");
                    more.slot_of(m).store(slot as u64 + 1, Ordering::Relaxed);
                }
                None => {
                    let dir = &words.dir;
                    dir.slots[w].store(slot as u64 + 1, Ordering::Relaxed);
                    dir.tags[w].store(tag(hash), Ordering::Relaxed);
                    if words.more.get().is_none() {
                        dir.assigned.fetch_or(1 << w, Ordering::Relaxed);
                    }
                }
            }
            if let Some(more) = words.more.get() {
                let entries = more.enter(w, slot, hash);
                debug_assert!(entries.is_some(), "the tables had room under this lock");
                part.meta_mut(w).entries = entries;
            }
        }
        self.mark_solo(part, w, slot);
        let stocked = lent.units > 0 && w < WORDS && self.stocking();
        self.give_chunk(part, w, seq, lent.units, stocked);
        if stocked {
            self.stock(shard, w);
        }
    }

    /// Marks word `w`, lent to the key in `slot`, as the shard's *solo*
    /// word when that key is the one an any-key grant from the shard alone
    /// would take with nothing else changing ([`Shard::solo_slot`]), and
    /// clears its mark otherwise. Called before the lend is published
    /// (release), so a fast grant that sees the lend sees the mark. The
    /// mark stays right while the word stays lent: setting another key,
    /// starting a turn, unlisting the shard, setting a limit and closing
    /// all collect every word of the shard first.
    fn mark_solo(&self, part: &Part<Shard<K>>, w: usize, slot: usize) {
        let solo = &self.shards[part.core.index() as usize].words.dir.solo;
        let mine = w as u64 + 1;
        let now = solo.load(Ordering::Relaxed);
        // Only the first words are marked (a shard of one key seldom keeps
        // a word of its block).
        if w < WORDS && part.core.solo_slot() == Some(slot) {
            if now != mine {
                solo.store(mine, Ordering::Relaxed);
            }
        } else if now == mine {
            solo.store(0, Ordering::Relaxed);
        }
    }

    /// Lends `units` more to word `w`, lent already.
    fn top_up(&self, part: &mut Part<Shard<K>>, w: usize, slot: usize, state: u64) {
        let most = MAX_UNITS - spare(state);
        if let Some(lent) = part.core.lend(slot, most).filter(|l| l.units > 0) {
            let word = self.shards[part.core.index() as usize].words.word(w);
            // Release, as a lease's release: the units' grants come after.
            word.state
                .fetch_add(lent.units << SPARE_SHIFT, Ordering::Release);
            if w < WORDS
                && self.stocking()
                && word.state.fetch_or(STOCKED, Ordering::Release) & STOCKED == 0
            {
                self.stock(part.core.index() as usize, w);
            }
        }
    }

    /// Gives word `w` (slow) its ids and `units`, and publishes it with
    /// `seq` (and [`STOCKED`] if `stocked`: the caller sets its bit next).
    fn give_chunk(&self, part: &mut Part<Shard<K>>, w: usize, seq: u64, units: u64, stocked: bool) {
        let word = self.shards[part.core.index() as usize].words.word(w);
        // A chunk of ids from the bottom of the shard's block.
        if part.ids.next == part.ids.end {
            let start = self.ids.fetch_add(ID_BLOCK, Ordering::Relaxed);
            part.ids = IdBlock {
                next: start,
                end: start + ID_BLOCK,
            };
        }
        let chunk = (part.ids.end - part.ids.next).min(CHUNK);
        let first = part.ids.next;
        part.ids.next += chunk;
        let lim = (seq + chunk).min(MAX_SEQ);
        word.id_off
            .store(first.wrapping_sub(seq), Ordering::Release);
        word.id_lim.store(lim, Ordering::Release);
        part.meta_mut(w).seq_base = seq;
        // Release: publishes the key, minter, offset and limit with the
        // units. A grant of the last lend may still be reading the key (it
        // holds a unit): its `READING` stays.
        // While the word is slow only that grant's clearing of `READING`
        // can change it, so the update runs at most twice.
        let lent = seq | (units << SPARE_SHIFT) | if stocked { STOCKED } else { 0 };
        let published = word
            .state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                debug_assert!(state & SLOW != 0, "only a slow word is lent");
                Some(lent | (state & READING))
            });
        debug_assert!(published.is_ok());
        part.lent_mask |= 1 << w;
    }

    /// Frees the words of keys the shard forgot (under its lock); their
    /// keys are dropped with `after`.
    pub(in crate::shared) fn free_dead_words(
        &self,
        part: &mut Part<Shard<K>>,
        after: &mut After<K>,
    ) {
        let words = &self.shards[part.core.index() as usize].words;
        for w in 0..WORDS + part.lent_more.len() {
            let Some(minter) = part.meta(w).minter else {
                continue;
            };
            if part.core.is_live(&minter) {
                continue;
            }
            let word = words.word(w);
            debug_assert!(
                word.state.load(Ordering::Relaxed) & SLOW != 0,
                "a lent word's key stays tracked"
            );
            if let Some(entries) = part.meta_mut(w).entries.take() {
                let more = words.more.get().expect("entries are in the block's tables");
                more.leave(w, entries);
            }
            match w.checked_sub(WORDS) {
                Some(m) => {
                    let more = words
                        .more
                        .get()
                        .expect("an assigned word of the block exists");
                    more.slot_of(m).store(0, Ordering::Relaxed);
                }
                None => {
                    words.dir.tags[w].store(0, Ordering::Relaxed);
                    words.dir.slots[w].store(0, Ordering::Relaxed);
                    words.dir.assigned.fetch_and(!(1 << w), Ordering::Relaxed);
                }
            }
            if words.dir.solo.load(Ordering::Relaxed) == w as u64 + 1 {
                words.dir.solo.store(0, Ordering::Relaxed);
            }
            part.meta_mut(w).minter = None;
            if !part.meta(w).retired {
                part.join_free(w);
            }
            // SAFETY: under the shard's lock, the word slow and its key
            // forgotten, so no unit of it is out and no thread reads the
            // cells (module docs).
            let key = unsafe {
                *word.minter.get() = None;
                (*word.key.get()).take()
            };
            if let Some(key) = key {
                after.push_key(key);
            }
        }
    }
}
