//! More words for shards of many keys: a block of [`MORE`] words beyond a
//! shard's first [`WORDS`](super::WORDS), allocated the first time the
//! shard gives out one of them, and found without the lock through two
//! small open-addressed tables.
//!
//! The first words are found by scanning the shard's directory, which is
//! cheap for 8 words and not for 128. So once a shard has its block, each
//! of its assigned words (the first ones too) has an entry in two tables:
//! by the key's hash (for a grant; [`HASH_TABLE`] positions) and by the
//! key's slot in the core (for a release; [`TABLE`] positions); look-ups
//! read the tables instead of scanning. A key's entry lies within
//! [`WINDOW`] positions of its home position, so a look-up reads at most
//! `WINDOW` entries, whatever the number of keys; a key whose window is
//! full gets no word and takes the locked paths, as every key beyond the
//! shard's words does.
//!
//! Entries are written only under the shard's lock, when a word is
//! assigned or freed (and for the first words' assignments when the block
//! is made), exactly as the first words' directory is, and both tables are
//! hints in the same way: a grant checks the key it finds in the word, and
//! a release checks the word's authoritative slot column, which stays
//! right while the lease's unit keeps its key tracked (module docs of
//! [`words`](super)). A look-up that misses (an entry not yet written)
//! takes the locked path, as a key without a word does.
//!
//! When a shard may use them: until an any-key acquisition finds some of
//! them lent (see `Shared::more_allowed`). An any-key acquisition collects
//! every lent word of each shard it looks at, and 128 of them would make
//! each such look cost a microsecond.

use super::Word;
use crate::shared::Padded;
use crate::sync::{AtomicU64, Ordering};

/// Words in a shard's block beyond its first ones.
#[cfg(not(loom))]
pub(in crate::shared) const MORE: usize = 120;
/// Words in a shard's block beyond its first ones (two under loom, with
/// small tables, so that its models stay small).
#[cfg(loom)]
pub(in crate::shared) const MORE: usize = 2;

/// Positions in each table: a power of two, at least twice [`MORE`].
#[cfg(not(loom))]
const TABLE: usize = 256;
#[cfg(loom)]
const TABLE: usize = 8;
/// Positions in the table by hash: four times [`TABLE`], so that a window
/// is all but never full. At a quarter of this, a shard's 128 keys left
/// one key in a few hundred without a word, for good (its window full):
/// 3 runs of the 1,000-key loop in 10 ran 60% slower for it.
const HASH_TABLE: usize = 4 * TABLE;
/// Positions a look-up reads from a home position on.
const WINDOW: usize = 8;
/// The low bits of an entry: 1 + the word's index in the shard (the
/// first words, then the block's).
const INDEX_BITS: u32 = 8;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// A position whose entry left: taken again by an entry, never by 0, so
/// that a look-up stops at the first 0 of a window (nothing lies beyond).
const GONE: u64 = !INDEX_MASK;

const _: () = assert!(TABLE.is_power_of_two() && TABLE >= 2 * MORE);
const _: () = assert!(HASH_TABLE.is_power_of_two());
const _: () = assert!(((super::WORDS + MORE) as u64) < INDEX_MASK);

/// A shard's block of more words.
pub(in crate::shared) struct More<K> {
    /// Entries `(hash & !INDEX_MASK) | (w + 1)`, or 0 (never used), or
    /// [`GONE`].
    by_hash: [AtomicU64; HASH_TABLE],
    /// Entries `((slot + 1) << INDEX_BITS) | (w + 1)`, or 0, or [`GONE`].
    by_slot: [AtomicU64; TABLE],
    /// `slots[m]`: 1 + the core slot of the key word `m` is assigned to,
    /// or 0.
    slots: [AtomicU64; MORE],
    words: [Padded<Word<K>>; MORE],
}

/// Where a word's two entries are, as the shard's lock keeps them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(in crate::shared) struct Entries {
    by_hash: u16,
    by_slot: u16,
}

fn hash_home(hash: u64) -> usize {
    // Bits 32.. pick the shard (the same for every key here), and a hasher
    // need not spread its low bits: mixed, the top bits of the product. The
    // index bits are left out, as in the entry (the directory's tag sets
    // bit 0).
    let hash = hash & !INDEX_MASK;
    let mixed = (hash ^ (hash >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (u64::BITS - HASH_TABLE.trailing_zeros())) as usize
}

fn slot_home(slot: usize) -> usize {
    // Slots are small and dense: consecutive ones, consecutive homes.
    slot % TABLE
}

fn hash_entry(hash: u64, w: usize) -> u64 {
    (hash & !INDEX_MASK) | (w as u64 + 1)
}

fn slot_entry(slot: usize, w: usize) -> u64 {
    ((slot as u64 + 1) << INDEX_BITS) | (w as u64 + 1)
}

/// The word of the first entry of the window from `home` in `table` whose
/// bits above the index are `wanted` (which has none in the index bits).
#[inline(always)]
fn probe<const N: usize>(table: &[AtomicU64; N], home: usize, wanted: u64) -> Option<usize> {
    let mut i = 0;
    while i < WINDOW {
        let entry = table[(home + i) & (N - 1)].load(Ordering::Relaxed);
        if entry == 0 {
            return None;
        }
        if entry & !INDEX_MASK == wanted && entry & INDEX_MASK != 0 {
            return Some((entry & INDEX_MASK) as usize - 1);
        }
        i += 1;
    }
    None
}

/// The first free position (never used, or [`GONE`]) of the window from
/// `home` in `table`.
fn free<const N: usize>(table: &[AtomicU64; N], home: usize) -> Option<usize> {
    (0..WINDOW)
        .map(|i| (home + i) % N)
        .find(|&at| index(table[at].load(Ordering::Relaxed)).is_none())
}

/// The word an entry names, if it is not empty.
fn index(entry: u64) -> Option<usize> {
    match entry & INDEX_MASK {
        0 => None,
        i => Some(i as usize - 1),
    }
}

impl<K> More<K> {
    pub(super) fn new() -> Box<Self> {
        Box::new(Self {
            by_hash: std::array::from_fn(|_| AtomicU64::new(0)),
            by_slot: std::array::from_fn(|_| AtomicU64::new(0)),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            words: std::array::from_fn(|_| Padded(Word::new())),
        })
    }

    /// Word `m` of the block.
    #[inline]
    pub(super) fn word(&self, m: usize) -> &Word<K> {
        &self.words[m]
    }

    /// The 1 + core slot of the key word `m` of the block is assigned
    /// to, or 0.
    #[inline]
    pub(super) fn slot_of(&self, m: usize) -> &AtomicU64 {
        &self.slots[m]
    }

    /// The word whose key may have this hash (a hint: the grant checks the
    /// key), the first one.
    #[inline]
    pub(super) fn find_hash(&self, hash: u64) -> Option<usize> {
        let wanted = hash & !INDEX_MASK;
        probe(&self.by_hash, hash_home(hash), wanted)
    }

    /// The next word after position `from` of the window whose entry
    /// matches `hash`, with its position (under the lock: exact).
    pub(super) fn next_hash_match(&self, hash: u64, from: usize) -> Option<(usize, usize)> {
        let home = hash_home(hash);
        for i in from..WINDOW {
            let entry = self.by_hash[(home + i) % HASH_TABLE].load(Ordering::Relaxed);
            if entry == 0 {
                return None;
            }
            if let Some(w) = index(entry) {
                if entry & !INDEX_MASK == hash & !INDEX_MASK {
                    return Some((w, i + 1));
                }
            }
        }
        None
    }

    /// The word whose entry names core slot `slot`, if any (the caller
    /// checks it against its slot column, which is exact while a lease of
    /// the key is live: a slot has at most one entry, written under the
    /// lock).
    #[inline]
    pub(super) fn find_slot(&self, slot: usize) -> Option<usize> {
        probe(
            &self.by_slot,
            slot_home(slot),
            (slot as u64 + 1) << INDEX_BITS,
        )
    }

    /// Whether both of a key's windows have a free position (under the
    /// shard's lock, so [`enter`](Self::enter) finds them).
    pub(super) fn has_room(&self, slot: usize, hash: u64) -> bool {
        free(&self.by_hash, hash_home(hash)).is_some()
            && free(&self.by_slot, slot_home(slot)).is_some()
    }

    /// Under the shard's lock: enters word `w` as the word of the key in
    /// `slot` with hash `hash` (the slot column is the caller's); `None`
    /// (nothing written) when one of the key's windows is full.
    pub(super) fn enter(&self, w: usize, slot: usize, hash: u64) -> Option<Entries> {
        let by_hash = free(&self.by_hash, hash_home(hash))?;
        let by_slot = free(&self.by_slot, slot_home(slot))?;
        self.by_hash[by_hash].store(hash_entry(hash, w), Ordering::Relaxed);
        self.by_slot[by_slot].store(slot_entry(slot, w), Ordering::Relaxed);
        Some(Entries {
            by_hash: by_hash as u16,
            by_slot: by_slot as u16,
        })
    }

    /// Under the shard's lock: removes word `w`'s entries (its key was
    /// forgotten; the slot column is the caller's).
    pub(super) fn leave(&self, w: usize, entries: Entries) {
        debug_assert_eq!(
            index(self.by_hash[entries.by_hash as usize].load(Ordering::Relaxed)),
            Some(w)
        );
        self.by_hash[entries.by_hash as usize].store(GONE, Ordering::Relaxed);
        self.by_slot[entries.by_slot as usize].store(GONE, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_within_their_window_and_leave_cleanly() {
        let more = More::<u64>::new();
        let slot = |s| more.find_slot(s).into_iter().collect::<Vec<_>>();
        let (same, _) = same_home(2);
        let hash = same[0];
        let a = more.enter(3, 17, hash).unwrap();
        assert_eq!(more.find_hash(hash), Some(3));
        assert_eq!(slot(17), [3]);
        assert_eq!(slot(18), []);
        // Another key with the same home fills the next position.
        let b = more.enter(4, 17 + TABLE, same[1]).unwrap();
        assert_eq!(slot(17 + TABLE), [4]);
        assert_eq!(more.find_hash(same[1]), Some(4));
        more.leave(3, a);
        assert_eq!((more.find_hash(hash), slot(17)), (None, vec![]));
        more.leave(4, b);
        fn left<const N: usize>(table: &[AtomicU64; N]) -> bool {
            table
                .iter()
                .all(|e| index(e.load(Ordering::Relaxed)).is_none())
        }
        assert!(left(&more.by_hash) && left(&more.by_slot));
        // A position left is taken again.
        assert_eq!(more.enter(6, 17, hash), Some(a));
        assert_eq!(slot(17), [6]);
    }

    /// A look-up goes past positions whose entries left, and stops at the
    /// first position never used.
    /// `n` hashes (with distinct entries) of one home, and one of another.
    fn same_home(n: usize) -> (Vec<u64>, u64) {
        let home = hash_home(1 << 20);
        let mut hashes = (1..).map(|i: u64| i << 20);
        let same = hashes
            .by_ref()
            .filter(|&h| hash_home(h) == home)
            .take(n)
            .collect();
        let other = (1..)
            .map(|i: u64| i << 20)
            .find(|&h| hash_home(h) != home)
            .unwrap();
        (same, other)
    }

    #[test]
    fn look_ups_pass_positions_left_and_stop_at_unused_ones() {
        let more = More::<u64>::new();
        let (hashes, other) = same_home(4);
        let entries: Vec<_> = (0..3)
            .map(|w| more.enter(w, w, hashes[w]).unwrap())
            .collect();
        more.leave(0, entries[0]);
        more.leave(1, entries[1]);
        assert_eq!(more.find_hash(hashes[2]), Some(2));
        assert_eq!(more.next_hash_match(hashes[2], 0), Some((2, 3)));
        assert_eq!(more.next_hash_match(hashes[2], 3), None);
        assert_eq!(more.find_hash(hashes[3]), None, "same home, no entry");
        assert_eq!(more.find_hash(other), None);
        // A hash whose high bits look like a position left is no entry.
        assert_eq!(more.find_hash(u64::MAX), None);
    }

    #[test]
    fn a_full_window_enters_nothing() {
        let more = More::<u64>::new();
        // WINDOW keys with the same hash home: the window is full.
        let (hashes, other) = same_home(WINDOW + 1);
        for (m, &hash) in hashes.iter().enumerate().take(WINDOW) {
            assert!(more.enter(m, m, hash).is_some());
        }
        assert!(!more.has_room(WINDOW, hashes[WINDOW]));
        assert!(more.enter(WINDOW, WINDOW, hashes[WINDOW]).is_none());
        assert_eq!(more.find_slot(WINDOW), None, "nothing written");
        assert!(more.has_room(WINDOW, other), "another home has room");
    }
}
