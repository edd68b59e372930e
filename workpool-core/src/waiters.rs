//! The waiter slab and the intrusive FIFO lists threaded through it.
//!
//! Every registered waiter lives in one slot of a `Vec`. A waiting waiter is
//! linked into exactly one queue (the any-key queue or its group's queue); a
//! waiter whose outcome is decided but not yet reported is linked into the
//! wake list. Vacant slots are kept on free lists through `next`, by band, so
//! that reuse prefers low slots and the top of the slab drains and is cut off
//! after a burst (see [`crate::bands`]). All operations are O(1) amortised
//! and allocate only when the slab grows; it shrinks once less than a
//! quarter of it is in use.

use alloc::vec::Vec;

use crate::bands::{self, Bands, Freed};
use crate::identity::PoolId;
use crate::lease::{Grant, WaiterId};

/// The "no slot" link value.
pub(crate) const NIL: u32 = u32::MAX;

/// Head and tail of an intrusive doubly-linked FIFO of waiter slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
}

impl List {
    pub(crate) const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
    };
}

/// Where a waiter stands.
#[derive(Clone, Copy)]
pub(crate) enum State {
    Vacant,
    Waiting,
    /// Granted; the key is cloned into the lease only when it is claimed,
    /// so a hand-off never runs user code.
    Granted(Grant),
    Closed,
}

/// One waiter slot: 40 bytes. The [`State`] is stored flat (its kind in
/// the top bits of the registration number, beside the grant's fields) so
/// that no enum tag pads the slot: with the units of weighted waiters a
/// kind byte and a wake flag of their own made it 48.
pub(crate) struct Waiter {
    /// Bits 0..61: the registration number, unique in the slab, so it is
    /// the slot's generation: a handle names this waiter only while it
    /// matches (see [`Waiters::lookup`]), however often the slot is reused
    /// or cut off and grown again. Bits 61..63: the [`Kind`]. Bit 63: set
    /// while the waiter is in its part's wake list.
    tag: u64,
    /// While waiting: the arrival order (lower is older, comparable across
    /// the lane and every shard, see [`crate::lane::Lane::arrivals`]). Once
    /// granted: the lease id. One word serves both, since a granted waiter
    /// is in no queue.
    word: u64,
    /// The group slot's generation of a grant.
    grant_generation: u32,
    /// While waiting: the group slot a key waiter asks for, or `NIL` for an
    /// any-key waiter. Once granted: the group the grant is from.
    pub(crate) group: u32,
    /// Once granted: the shard of the group the grant is from.
    grant_shard: u32,
    /// While waiting: the units asked for (any-key waiters ask for 1).
    /// Once granted: the units of the grant.
    units: u32,
    prev: u32,
    next: u32,
}

/// The registration numbers a slab hands out: 2^61 of them, more than a
/// slab registers in centuries at a billion waiters a second.
const GENERATION_MASK: u64 = (1 << 61) - 1;
const KIND_SHIFT: u32 = 61;
const IN_WAKE: u64 = 1 << 63;

/// [`State`] without its grant.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vacant = 0,
    Waiting = 1,
    Granted = 2,
    Closed = 3,
}

impl Waiter {
    #[inline]
    fn kind(&self) -> Kind {
        match (self.tag >> KIND_SHIFT) & 3 {
            0 => Kind::Vacant,
            1 => Kind::Waiting,
            2 => Kind::Granted,
            _ => Kind::Closed,
        }
    }

    #[inline]
    fn set_kind(&mut self, kind: Kind) {
        self.tag = (self.tag & !(3 << KIND_SHIFT)) | ((kind as u64) << KIND_SHIFT);
    }

    /// True while the waiter is in its part's wake list.
    #[inline]
    pub(crate) fn in_wake(&self) -> bool {
        self.tag & IN_WAKE != 0
    }

    #[inline]
    pub(crate) fn set_in_wake(&mut self, in_wake: bool) {
        if in_wake {
            self.tag |= IN_WAKE;
        } else {
            self.tag &= !IN_WAKE;
        }
    }

    /// Where the waiter stands.
    #[inline]
    pub(crate) fn state(&self) -> State {
        match self.kind() {
            Kind::Vacant => State::Vacant,
            Kind::Waiting => State::Waiting,
            Kind::Granted => State::Granted(Grant {
                shard: self.grant_shard,
                group: self.group,
                generation: self.grant_generation,
                units: self.units,
                id: self.word,
            }),
            Kind::Closed => State::Closed,
        }
    }

    /// The arrival order of a waiting waiter: lower is older.
    #[inline]
    pub(crate) fn order(&self) -> u64 {
        debug_assert!(self.is_waiting());
        self.word
    }

    /// The units a waiting waiter asks for.
    #[inline]
    pub(crate) fn units(&self) -> u64 {
        u64::from(self.units)
    }

    /// The waiter's registration number in its slab.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.tag & GENERATION_MASK
    }

    /// True once the waiter was told its pool or key closed.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.kind() == Kind::Closed
    }

    /// True while the waiter waits in a queue.
    #[inline]
    pub(crate) fn is_waiting(&self) -> bool {
        self.kind() == Kind::Waiting
    }

    /// Records where the waiter stands. A grant's group replaces the group
    /// asked for, which is no longer needed once the waiter left its queue.
    #[inline]
    pub(crate) fn set_state(&mut self, state: State) {
        let kind = match state {
            State::Vacant => Kind::Vacant,
            State::Waiting => Kind::Waiting,
            State::Granted(grant) => {
                self.group = grant.group;
                self.grant_shard = grant.shard;
                self.grant_generation = grant.generation;
                self.units = grant.units;
                self.word = grant.id;
                Kind::Granted
            }
            State::Closed => Kind::Closed,
        };
        self.set_kind(kind);
    }
}

/// In this order (`repr(C)`): what every registration and every exit
/// writes (the generation, the count, the free mask and the low bands)
/// fills one cache line with the slab's pointer and the stamps.
#[repr(C)]
pub(crate) struct Waiters {
    /// The generation the next registered waiter gets.
    next_generation: u64,
    /// Waiters in the `Waiting` state.
    pub(crate) waiting: usize,
    slots: Vec<Waiter>,
    /// The owning pool's id, stamped on every handle.
    pool: PoolId,
    /// The part of the pool the slab belongs to (a shard's index, or
    /// [`NIL`] for the lane), stamped on every handle.
    part: u32,
    /// The vacant slots, lowest band first.
    free: Bands,
}

impl Waiters {
    pub(crate) const fn new(pool: PoolId, part: u32) -> Self {
        Self {
            pool,
            part,
            next_generation: 0,
            slots: Vec::new(),
            free: Bands::new(),
            waiting: 0,
        }
    }

    /// Registers a waiter in `state` (linked into no list), arrived as
    /// `order`, asking for `units`, and returns its handle.
    #[inline]
    pub(crate) fn insert(&mut self, group: u32, order: u64, units: u32, state: State) -> WaiterId {
        let generation = self.next_generation;
        // Never reached in practice (see `GENERATION_MASK`); were it, a
        // wrapped number could name a stale handle's slot.
        assert!(
            generation < GENERATION_MASK,
            "waiter registrations exhausted"
        );
        self.next_generation += 1;
        if matches!(state, State::Waiting) {
            self.waiting += 1;
        }
        let slots = &self.slots;
        let index = match self.free.take(|i| slots[i as usize].next) {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("more than u32::MAX - 1 waiters at once");
                if self.slots.len() == self.slots.capacity() {
                    // Grow by an eighth, not double, as the group slab does:
                    // a queued waiter costs at most 12.5% slack, and growth
                    // stays geometric, so O(1) amortised.
                    self.slots.reserve_exact((self.slots.len() / 8).max(8));
                }
                self.slots.push(Waiter {
                    tag: 0,
                    word: order,
                    grant_generation: 0,
                    group,
                    grant_shard: NIL,
                    units,
                    prev: NIL,
                    next: NIL,
                });
                self.free.pushed(index);
                index
            }
        };
        let w = &mut self.slots[index as usize];
        w.group = group;
        w.word = order;
        w.units = units;
        // The new registration number, not in the wake list.
        w.tag = generation & GENERATION_MASK;
        w.set_state(state);
        w.prev = NIL;
        w.next = NIL;
        self.id(index)
    }

    /// Makes `generation` the next registration number, as if the ones
    /// before it had been used.
    #[cfg(test)]
    pub(crate) fn skip_to(&mut self, generation: u64) {
        self.next_generation = generation;
    }

    /// The handle of the waiter in slot `index`.
    pub(crate) fn id(&self, index: u32) -> WaiterId {
        WaiterId {
            pool: self.pool,
            part: self.part,
            index,
            generation: self.slots[index as usize].generation(),
        }
    }

    /// The slot named by `id`, if it is a registered waiter of this pool.
    pub(crate) fn lookup(&self, id: WaiterId) -> Option<&Waiter> {
        if id.pool != self.pool || id.part != self.part {
            return None;
        }
        self.slots
            .get(id.index as usize)
            .filter(|w| w.generation() == id.generation && w.kind() != Kind::Vacant)
    }

    pub(crate) fn slot(&self, index: u32) -> &Waiter {
        &self.slots[index as usize]
    }

    pub(crate) fn slot_mut(&mut self, index: u32) -> &mut Waiter {
        &mut self.slots[index as usize]
    }

    /// Frees a slot that is linked into no list and returns its state.
    ///
    /// When the top of the slab is free it is cut off, and capacity goes
    /// back once less than a quarter of it is used.
    #[inline]
    pub(crate) fn remove(&mut self, index: u32) -> State {
        let w = &mut self.slots[index as usize];
        debug_assert!(!w.in_wake());
        let state = w.state();
        w.set_kind(Kind::Vacant);
        match self.free.free(index, self.slots.len()) {
            Freed::Linked(next) => self.slots[index as usize].next = next,
            Freed::Cut(len) => self.cut(len),
        }
        state
    }

    /// Truncates the slab to its first `len` slots, all vacant beyond.
    #[cold]
    fn cut(&mut self, len: usize) {
        for w in &self.slots[len..] {
            debug_assert!(w.kind() == Kind::Vacant, "a cut slot is in use");
        }
        self.slots.truncate(len);
        // The same eighth of slack that growth leaves.
        bands::shrink(&mut self.slots, len + len / 8);
    }

    /// How many slots the slab has: every registered waiter's is below it.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// How many slots the slab has room for before it must reallocate.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Appends slot `index` to `list`.
    #[inline]
    pub(crate) fn push_back(&mut self, list: &mut List, index: u32) {
        let tail = list.tail;
        {
            let w = &mut self.slots[index as usize];
            w.prev = tail;
            w.next = NIL;
        }
        if tail == NIL {
            list.head = index;
        } else {
            self.slots[tail as usize].next = index;
        }
        list.tail = index;
    }

    /// Unlinks slot `index` from `list`, which must contain it.
    #[inline]
    pub(crate) fn unlink(&mut self, list: &mut List, index: u32) {
        let (prev, next) = {
            let w = &mut self.slots[index as usize];
            let links = (w.prev, w.next);
            w.prev = NIL;
            w.next = NIL;
            links
        };
        if prev == NIL {
            list.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    /// The slots of `list`, head first, checking its links both ways.
    #[cfg(test)]
    pub(crate) fn list(&self, list: List) -> Vec<u32> {
        let mut out = Vec::new();
        let (mut prev, mut index) = (NIL, list.head);
        while index != NIL {
            assert!(out.len() < self.slots.len(), "the list does not end");
            let w = &self.slots[index as usize];
            assert_eq!(w.prev, prev, "list links disagree");
            out.push(index);
            (prev, index) = (index, w.next);
        }
        assert_eq!(list.tail, prev, "list tail is wrong");
        out
    }

    /// Removes and returns the first slot of `list`.
    #[inline]
    pub(crate) fn pop_front(&mut self, list: &mut List) -> Option<u32> {
        let head = list.head;
        if head == NIL {
            return None;
        }
        self.unlink(list, head);
        Some(head)
    }

    /// The next waiter a part's `wake` list names, taken off it (a part's
    /// `poll_wake`).
    #[inline]
    pub(crate) fn pop_wake(&mut self, wake: &mut List) -> Option<WaiterId> {
        if *wake == List::EMPTY {
            return None;
        }
        let index = self.pop_front(wake)?;
        self.slot_mut(index).set_in_wake(false);
        Some(self.id(index))
    }

    /// Removes a decided waiter, taking it off the part's `wake` list if
    /// it is still there, and returns its state.
    pub(crate) fn finish(&mut self, wake: &mut List, index: u32) -> State {
        if self.slot(index).in_wake() {
            self.unlink(wake, index);
            self.slot_mut(index).set_in_wake(false);
        }
        self.remove(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_slot_is_40_bytes() {
        // generation (with kind and in_wake), order or lease id, grant
        // generation, group, grant shard, units, links.
        assert_eq!(core::mem::size_of::<Waiter>(), 40);
    }

    /// What every registration and exit writes (generation, count, the
    /// free mask and the first band) fits one 64-byte line, ahead of the
    /// slab's pointer and stamps.
    #[test]
    fn the_slabs_written_words_share_a_line() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(Waiters, next_generation), 0);
        assert!(offset_of!(Waiters, waiting) < 64);
        assert!(offset_of!(Waiters, free) + Bands::FIRST_BAND_END <= 64);
    }
}
