//! Free-slot bookkeeping for the group and waiter slabs: reuse prefers low
//! slots, so the top of a slab drains after a burst and can be cut off.
//!
//! Slot indices are handed out (in leases and in waiter handles, and
//! `workpool-std` indexes its waker slots by them), so a slab never moves a
//! live entry: the only memory it can give back is at its end. A LIFO free
//! list would defeat that, because after a burst every new entry would land
//! on whatever slot was freed last, anywhere in the slab, and the end would
//! never drain.
//!
//! So the slots are cut into power-of-two *bands* (band `b` holds indices
//! `2^b - 1 .. 2^(b+1) - 1`), each with its own free list, and a slot is
//! always taken from the lowest band that has a free one: one
//! `trailing_zeros` on a bit mask, O(1). A new entry goes into band `b` only
//! when every lower band is full, that is when at least `2^b - 1` slots are
//! in use. So while fewer than `n` entries are live, no new entry lands at an
//! index of `2n` or more, and the bands above drain as their old entries
//! leave. The free lists are not sorted within a band; a band is the unit
//! that is given back.
//!
//! When the top band has no slot in use any more, it is cut off whole, and
//! so is every empty band below it. Each cut slot was pushed once, so
//! cutting is O(1) amortised. The owner then truncates its `Vec` and gives
//! capacity back with [`shrink`] once less than a quarter of it is used.

use alloc::vec::Vec;

use crate::waiters::NIL;

/// One band per bit of a `u32` index: band 31 ends at `u32::MAX - 1`, the
/// largest index a slab hands out (`u32::MAX` is [`NIL`]).
const BANDS: usize = 32;

/// A slab never shrinks below this many slots, so that a small pool does
/// not allocate again and again as a few entries come and go.
pub(crate) const MIN_SLOTS: usize = 16;

/// The free lists of one slab, one per band, and the slots in use per band.
///
/// Laid out in this order (`repr(C)`) so that the mask and the low bands,
/// which a busy slab takes from and frees to, share the first cache line
/// with what precedes them in [`Waiters`](crate::waiters::Waiters) (see
/// ARCHITECTURE, "The shard's cache lines").
#[repr(C)]
pub(crate) struct Bands {
    /// Bit `b` is set while band `b` has a free slot.
    free_mask: u32,
    /// Band `b`'s free list and slots in use, side by side.
    bands: [Band; BANDS],
}

/// One band's bookkeeping: its head and its count on one line.
#[derive(Clone, Copy)]
#[repr(C)]
struct Band {
    /// The first free slot of the band, linked on through the slots.
    head: u32,
    /// Slots in use in the band (a retired group's slot counts as in use).
    used: u32,
}

/// What [`Bands::free`] decided for a slot given back.
pub(crate) enum Freed {
    /// The slot is on its band's free list: store this as its next link.
    Linked(u32),
    /// The top of the slab is free: truncate it to this many slots (the
    /// slot given back is among those cut off).
    Cut(usize),
}

impl Bands {
    /// Where band 0's bookkeeping ends, from the start of `Bands`.
    #[cfg(test)]
    pub(crate) const FIRST_BAND_END: usize =
        core::mem::offset_of!(Self, bands) + core::mem::size_of::<Band>();

    pub(crate) const fn new() -> Self {
        Self {
            free_mask: 0,
            bands: [Band { head: NIL, used: 0 }; BANDS],
        }
    }

    /// The band of slot `index`.
    #[inline]
    fn band(index: u32) -> usize {
        debug_assert_ne!(index, NIL);
        (u32::BITS - 1 - (index + 1).leading_zeros()) as usize
    }

    /// The first index of band `band`.
    #[inline]
    fn start(band: usize) -> usize {
        (1 << band) - 1
    }

    /// True when no band has a free slot: a new entry must be pushed.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.free_mask == 0
    }

    /// Takes the first free slot of the lowest band that has one; `next`
    /// reads a free slot's link. `None` when every slot is in use.
    #[inline]
    pub(crate) fn take(&mut self, next: impl FnOnce(u32) -> u32) -> Option<u32> {
        if self.free_mask == 0 {
            return None;
        }
        let band = self.free_mask.trailing_zeros() as usize;
        let index = self.bands[band].head;
        let after = next(index);
        self.bands[band].head = after;
        if after == NIL {
            self.free_mask &= !(1 << band);
        }
        self.bands[band].used += 1;
        Some(index)
    }

    /// Counts slot `index`, just pushed at the end of the slab, as in use.
    #[inline]
    pub(crate) fn pushed(&mut self, index: u32) {
        self.bands[Self::band(index)].used += 1;
    }

    /// Takes back slot `index` of a slab of `len` slots.
    #[inline]
    pub(crate) fn free(&mut self, index: u32, len: usize) -> Freed {
        let band = Self::band(index);
        self.bands[band].used -= 1;
        if self.bands[band].used == 0 && Self::band(len as u32 - 1) == band {
            // The top band (the last slot's) is all free now.
            self.clear(band);
            let mut len = Self::start(band);
            while len > 0 {
                let below = Self::band(len as u32 - 1);
                if self.bands[below].used != 0 {
                    break;
                }
                self.clear(below);
                len = Self::start(below);
            }
            return Freed::Cut(len);
        }
        let next = self.bands[band].head;
        self.bands[band].head = index;
        self.free_mask |= 1 << band;
        Freed::Linked(next)
    }

    /// Forgets band `band`'s free list: its slots are being cut off.
    fn clear(&mut self, band: usize) {
        self.bands[band].head = NIL;
        self.free_mask &= !(1 << band);
    }
}

/// Gives a slab's spare capacity back once less than a quarter of it is in
/// use, keeping `keep` slots (and at least [`MIN_SLOTS`]). With growth
/// geometric and `keep` at least a little above the length, growing and
/// shrinking never alternate on neighbouring operations.
pub(crate) fn shrink<T>(slots: &mut Vec<T>, keep: usize) {
    if slots.capacity() > MIN_SLOTS && slots.len() < slots.capacity() / 4 {
        slots.shrink_to(keep.max(MIN_SLOTS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_double() {
        let bands: Vec<usize> = (0..8).map(Bands::band).collect();
        assert_eq!(bands, [0, 1, 1, 2, 2, 2, 2, 3]);
        assert_eq!(Bands::band(NIL - 1), 31);
        assert_eq!(Bands::start(31), (NIL - 1) as usize / 2);
    }

    /// Pushes `n` slots onto an empty slab.
    fn grown(n: u32) -> Bands {
        let mut bands = Bands::new();
        for i in 0..n {
            bands.pushed(i);
        }
        bands
    }

    #[test]
    fn reuse_prefers_the_lowest_band() {
        let mut bands = grown(8);
        let mut links = [NIL; 8];
        for i in [6, 1, 5] {
            match bands.free(i, 8) {
                Freed::Linked(next) => links[i as usize] = next,
                Freed::Cut(_) => panic!("slot 7 is in use"),
            }
        }
        let order: Vec<u32> = core::iter::from_fn(|| bands.take(|i| links[i as usize])).collect();
        assert_eq!(order, [1, 5, 6]);
        assert!(bands.is_full());
    }

    #[test]
    fn an_empty_top_is_cut_down_to_the_highest_band_in_use() {
        let mut bands = grown(12);
        // Slots 1 and 2 (band 1) are freed first, then all of band 3 (7..12
        // so far) and band 2 (3..7): everything above slot 0 goes.
        for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] {
            assert!(matches!(bands.free(i, 12), Freed::Linked(_)));
        }
        assert!(matches!(bands.free(11, 12), Freed::Cut(1)));
        assert!(bands.is_full(), "the cut bands' free lists are gone");
        assert!(matches!(bands.free(0, 1), Freed::Cut(0)));
    }
}
