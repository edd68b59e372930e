//! The group slab.
//!
//! A group is one key's state. Groups live in a slab of slots (a freed slot
//! is reused, with its generation bumped so old leases can be told apart).
//! Reuse prefers low slots and the free top of the slab is cut off (see
//! [`crate::bands`]), so the slab shrinks again after a burst of keys; a slot
//! that is cut off and grown again starts at a generation above any it had,
//! so a lease of its old occupants never matches, and a slot whose
//! generation would wrap is retired for good instead.
//!
//! A group may be linked into its shard's ready ring (see [`crate::ring`]):
//! it is its own node there, and holds the ring's links.
//!
//! A forgotten group is *retired* before its slot is freed: it leaves the
//! table and the ring and its generation moves on at once, but its key stays
//! in the slot, on the retired list, until the owner of the pool collects it
//! ([`Groups::reap`]). So the pool never drops a key in the middle of an
//! operation, and an adapter can drop keys after unlocking. A slot that holds
//! an idle group (target, active and waiting all 0) is always a retired one.

use alloc::vec::Vec;
use core::num::NonZeroU32;

use crate::bands::{self, Bands, Freed};
use crate::ring::Links;
use crate::waiters::{List, NIL};

/// A key's hash as the slab keeps it: 31 bits, top bit set. Being non-zero
/// it gives `Option<Group>` a niche, so a slot needs no separate tag.
pub(crate) type ShortHash = NonZeroU32;

/// Folds a full hash into a [`ShortHash`].
#[inline]
pub(crate) fn short_hash(full: u64) -> ShortHash {
    let folded = (full ^ (full >> 32)) as u32;
    NonZeroU32::new(folded | 0x8000_0000).unwrap_or(NonZeroU32::MAX)
}

/// The table hash of a [`ShortHash`]: its 31 bits spread over 64, so the
/// table's bucket bits and tag bits both vary.
#[inline]
pub(crate) fn table_hash(short: ShortHash) -> u64 {
    u64::from(short.get() & 0x7FFF_FFFF).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

pub(crate) struct Group<K> {
    pub(crate) key: K,
    pub(crate) target: u64,
    pub(crate) active: u64,
    /// Key waiters of this group, oldest first.
    pub(crate) queue: List,
    /// Length of `queue`.
    pub(crate) waiting: u32,
    /// The key's hash, cached so that rehashing and forgetting never call
    /// user code.
    pub(crate) hash: ShortHash,
    /// The group's neighbours in its shard's ready ring, both `NIL` while
    /// it is not linked (see [`crate::ring`]).
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

impl<K> Group<K> {
    pub(crate) fn has_room(&self) -> bool {
        self.active < self.target
    }

    /// True when `units` more units fit: `active + units <= target`,
    /// without overflow.
    #[inline]
    pub(crate) fn fits(&self, units: u64) -> bool {
        self.target.saturating_sub(self.active) >= units
    }

    pub(crate) fn in_ring(&self) -> bool {
        self.next != NIL
    }

    /// True when nothing refers to the group any more: it may be forgotten.
    pub(crate) fn is_idle(&self) -> bool {
        self.target == 0 && self.active == 0 && self.waiting == 0
    }
}

/// One slab slot: 56 bytes for a `u64` key (the `Option` costs nothing).
struct Slot<K> {
    generation: u32,
    /// The next vacant slot, while this one is vacant.
    next_free: u32,
    group: Option<Group<K>>,
}

/// The slab's pointer and length first (`repr(C)`): read by every
/// operation, written only when a key comes or goes.
#[repr(C)]
pub(crate) struct Groups<K> {
    slots: Vec<Slot<K>>,
    len: usize,
    /// The free slots, lowest band first.
    free: Bands,
    /// The generation a slot pushed at the end starts with: at least the
    /// generation of every slot ever cut off, so a slot grown again never
    /// repeats a generation it had.
    epoch: u32,
    /// Retired groups whose keys are not collected yet, linked through
    /// `next_free`, newest first.
    retired: u32,
}

impl<K> Groups<K> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Bands::new(),
            epoch: 0,
            retired: NIL,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores a new group with target 0 and returns its slot.
    pub(crate) fn insert(&mut self, key: K, hash: ShortHash) -> u32 {
        let group = Group {
            key,
            hash,
            target: 0,
            active: 0,
            queue: List::EMPTY,
            waiting: 0,
            prev: NIL,
            next: NIL,
        };
        self.len += 1;
        if self.free.is_full() && self.retired != NIL {
            // Nobody collected the retired keys: reuse a retired slot rather
            // than grow. Its key is dropped here, after the slot is free.
            drop(self.reap());
        }
        let slots = &self.slots;
        if let Some(index) = self.free.take(|i| slots[i as usize].next_free) {
            self.slots[index as usize].group = Some(group);
            return index;
        }
        let index = u32::try_from(self.slots.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("more than u32::MAX - 1 groups at once");
        if self.slots.len() == self.slots.capacity() {
            // Grow by an eighth, not double: idle keys cost less memory (at
            // most 12.5% slack), and growth stays geometric, so O(1)
            // amortised.
            self.slots.reserve_exact((self.slots.len() / 8).max(8));
        }
        self.slots.push(Slot {
            generation: self.epoch,
            next_free: NIL,
            group: Some(group),
        });
        self.free.pushed(index);
        index
    }

    /// Retires an idle group (it must be out of the ring): it stops being
    /// tracked and its slot's generation moves on, but its key stays put
    /// until [`reap`](Self::reap) collects it.
    ///
    /// A slot's generations never repeat: generation `u32::MAX` is never
    /// handed out, and a slot that reaches it stays vacant for good once
    /// reaped instead of wrapping to 0, so a lease naming an earlier
    /// occupant never matches a later one. A lease still held keeps its
    /// group alive, so only a forged lease or another pool's could be stale,
    /// and pool identities already reject the latter; retiring keeps this
    /// check sound on its own, for one idle slot per 2^32 - 1 reuses.
    pub(crate) fn retire(&mut self, index: u32) {
        let retired = self.retired;
        let slot = &mut self.slots[index as usize];
        debug_assert!(matches!(&slot.group, Some(g) if !g.in_ring() && g.is_idle()));
        slot.generation = slot.generation.saturating_add(1);
        slot.next_free = retired;
        self.retired = index;
        self.len -= 1;
    }

    /// True when a retired group waits for [`reap`](Self::reap).
    #[inline]
    pub(crate) fn has_retired(&self) -> bool {
        self.retired != NIL
    }

    /// Frees the slot of the newest retired group and returns its key, or
    /// `None` when no retired group is left.
    ///
    /// This is where slots are freed, so this is where the slab shrinks:
    /// when the top of the slab is free it is cut off, and capacity goes
    /// back once less than a quarter of it is used.
    #[inline]
    pub(crate) fn reap(&mut self) -> Option<K> {
        let index = self.retired;
        let slot = self.slots.get_mut(index as usize)?;
        self.retired = slot.next_free;
        let key = slot.group.take().map(|g| g.key);
        if slot.generation == u32::MAX {
            // Generations used up: the slot stays vacant (and counted as
            // used) for good.
            slot.next_free = NIL;
            return key;
        }
        match self.free.free(index, self.slots.len()) {
            Freed::Linked(next) => self.slots[index as usize].next_free = next,
            Freed::Cut(len) => self.cut(len),
        }
        key
    }

    /// Truncates the slab to its first `len` slots, all free beyond.
    #[cold]
    fn cut(&mut self, len: usize) {
        for slot in &self.slots[len..] {
            debug_assert!(slot.group.is_none(), "a cut slot is in use");
            self.epoch = self.epoch.max(slot.generation);
        }
        self.slots.truncate(len);
        // Keep the same eighth of slack that growth leaves.
        bands::shrink(&mut self.slots, len + len / 8);
    }

    /// The group in slot `index`, if that slot is occupied.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&Group<K>> {
        self.slots.get(index as usize)?.group.as_ref()
    }

    /// The group in slot `index` if it is occupied with `generation`.
    #[inline]
    pub(crate) fn get_checked(&self, index: u32, generation: u32) -> Option<&Group<K>> {
        let slot = self.slots.get(index as usize)?;
        if slot.generation == generation {
            slot.group.as_ref()
        } else {
            None
        }
    }

    #[inline]
    pub(crate) fn generation(&self, index: u32) -> u32 {
        self.slots[index as usize].generation
    }

    /// The occupied group in slot `index`.
    ///
    /// # Panics
    ///
    /// If the slot is vacant: the pool's own bookkeeping is broken.
    #[inline]
    pub(crate) fn at(&self, index: u32) -> &Group<K> {
        self.get(index).expect("group slot is occupied")
    }

    /// Mutable access to the occupied group in slot `index`.
    #[inline]
    pub(crate) fn at_mut(&mut self, index: u32) -> &mut Group<K> {
        self.slots[index as usize]
            .group
            .as_mut()
            .expect("group slot is occupied")
    }

    /// How many slots the slab has (occupied or not): every group's slot is
    /// below it.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// How many slots the slab has room for before it must reallocate.
    #[cfg(test)]
    pub(crate) fn slot_capacity(&self) -> usize {
        self.slots.capacity()
    }
}

/// A shard's ready ring links its groups through their own fields.
impl<K> Links for Groups<K> {
    #[inline]
    fn prev(&self, n: u32) -> u32 {
        self.at(n).prev
    }

    #[inline]
    fn next(&self, n: u32) -> u32 {
        self.at(n).next
    }

    #[inline]
    fn set_prev(&mut self, n: u32, prev: u32) {
        self.at_mut(n).prev = prev;
    }

    #[inline]
    fn set_next(&mut self, n: u32, next: u32) {
        self.at_mut(n).next = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_needs_no_tag() {
        // Key + target + active + queue + waiting + hash + the ring's two
        // links, plus generation and free link: the `Option` rides on the
        // hash's niche.
        assert_eq!(core::mem::size_of::<Slot<u64>>(), 56);
        assert_eq!(
            core::mem::size_of::<Slot<u64>>(),
            core::mem::size_of::<Group<u64>>() + 8
        );
    }

    #[test]
    fn a_slot_is_retired_rather_than_wrap_its_generation() {
        let mut groups = Groups::new();
        let g = groups.insert(1u64, short_hash(1));
        // As if the slot had been reused u32::MAX - 1 times: its last
        // generation is in use.
        groups.slots[g as usize].generation = u32::MAX - 1;
        groups.retire(g);
        assert_eq!(groups.reap(), Some(1));
        assert_eq!(groups.len(), 0);
        // No generation of the retired slot names a group, now or later.
        assert!(groups.get(g).is_none());
        assert!(groups.get_checked(g, u32::MAX).is_none());
        assert!(groups.get_checked(g, 0).is_none());
        let h = groups.insert(2u64, short_hash(2));
        assert_ne!(h, g, "a retired slot is never reused");
        assert!(groups.get_checked(g, 0).is_none());
        // Ordinary slots are still reused, with the next generation.
        groups.retire(h);
        assert_eq!(groups.reap(), Some(2));
        assert_eq!(groups.insert(3u64, short_hash(3)), h);
        assert_eq!(groups.generation(h), 1);
    }

    #[test]
    fn short_hashes_are_stable_and_spread() {
        let a = short_hash(0x1234_5678_9abc_def0);
        assert_eq!(a, short_hash(0x1234_5678_9abc_def0));
        assert!(a.get() & 0x8000_0000 != 0);
        // Nearby short hashes land in different buckets and tag bits.
        let (x, y) = (table_hash(a), table_hash(short_hash(0x1234_5678_9abc_def1)));
        assert_ne!(x & 0xffff, y & 0xffff);
        assert_ne!(x >> 57, y >> 57);
    }
}
