//! Any-key grants before the lane: from a shard's *solo word* without a
//! lock ([`Shared::fast_any`]), then from the shards that offer room under
//! their own locks ([`Shared::try_any_locked`]), and last under the lane
//! ([`Shared::try_any_laned`]), which is exact. See `docs/ARCHITECTURE.md`,
//! "Any-key grants without the lane" and "Solo words".

use std::hash::{BuildHasher, Hash};

use workpool_core::TryAcquireError;

use super::{LaneGuard, Shared};
use crate::sync::Ordering;

/// Where an any-key grant that found no solo word goes on (see
/// [`Shared::fast_any`]): the offers it read and the rank it looked at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    mask: u64,
    start: usize,
    first: usize,
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// An any-key lease under the lane, after
    /// [`try_any_unlaned`](Self::try_any_unlaned) found none.
    pub(crate) fn try_any_laned(&self) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        self.try_any(&mut self.lock_lane())
    }

    /// An any-key lease without the lane's lock, when nobody waits for one
    /// and no limit is set (or the shard holds a budget of the limit, see
    /// [`budgets`](super::budgets)): from the first shard that offers room from the
    /// rotation's cursor on (see [`Offers`](super::lane::Offers)), with that
    /// shard's lock alone; the shard's own ring picks the group. `None`
    /// when no shard gave one (then [`try_any`](Self::try_any) decides,
    /// under the lane).
    ///
    /// A shard whose lock another thread holds is passed over while other
    /// shards offer room (it is most likely granting to a concurrent
    /// any-key acquisition: two threads that follow one cursor would
    /// otherwise queue on one lock); the last one offering is waited for.
    /// Between concurrent grants no order is observable, so the rotation
    /// keeps its order for grants that do not overlap; and whatever this
    /// pass misses, the lane's pass finds.
    ///
    ///
    /// It begins with the solo word of the shard under the cursor
    /// ([`fast_any`](Self::fast_any)); callers that inline that step call
    /// [`try_any_locked`](Self::try_any_locked) for the rest.
    #[inline]
    pub(crate) fn try_any_unlaned(&self) -> Option<workpool_core::Lease<K>> {
        match self.fast_any() {
            Ok(lease) => Some(lease),
            Err(Some(look)) => self.try_any_locked(look),
            Err(None) => None,
        }
    }

    /// [`try_any_unlaned`](Self::try_any_unlaned) after
    /// [`fast_any`](Self::fast_any) found no solo word to take from at
    /// `look`: the shards that offer room, from the cursor on, under their
    /// locks (and the solo words of the shards after the first).
    #[inline]
    pub(crate) fn try_any_locked(&self, look: Look) -> Option<workpool_core::Lease<K>> {
        let offers = &self.offers;
        let Look {
            mut mask,
            start,
            first,
        } = look;
        let mut from = start;
        while let Some(rank) = super::lane::next_offer(mask, from) {
            let shard = offers.by_rank[rank].load(Ordering::Relaxed);
            if rank == first {
                // `fast_any` looked at its solo word.
            } else if let Ok(lease) = self.fast_take_any(shard) {
                // A solo key's grant ends the shard's turn.
                if start != rank + 1 {
                    offers.next.store(rank + 1, Ordering::Relaxed);
                }
                return Some(lease);
            }
            let mut part = match super::try_lock(&self.shards[shard].lock) {
                Some(part) => part,
                None => {
                    // Two any-key grants met here: counted, so that the pool
                    // stocks once they keep meeting.
                    if !self.stocking() {
                        self.count_meet();
                    }
                    if mask & !(1 << rank) != 0 {
                        mask &= !(1 << rank);
                        continue;
                    }
                    self.lock_shard(shard)
                }
            };
            // Lent room is room too: the shard's words give it back first,
            // unless the pool stocks (then the stock shows it).
            if !self.stocking() {
                self.collect_for_any(shard, &mut part);
            }
            let (core, mut ids) = part.split_ids(&self.ids);
            let taken = core.try_take_any(&mut ids);
            // The rotation stays on a shard for its whole turn: once per
            // key with room (see `Shard::turn_ended`).
            let turn_ended = core.turn_ended();
            self.sync_offer(&mut part);
            let next = if turn_ended { rank + 1 } else { rank };
            if let Some(lease) = taken {
                if part.core.solo_slot() == Some(lease.slot()) {
                    self.lend_solo(shard, &mut part, &lease);
                } else if self.stocking() {
                    self.lend_to_stock(shard, &mut part, &lease);
                }
                drop(part);
                offers.next.store(next, Ordering::Relaxed);
                return Some(lease);
            }
            if turn_ended {
                // Its last key was full; it may have room for a new turn,
                // after the other shards'.
                offers.next.store(next, Ordering::Relaxed);
            } else {
                mask &= !(1 << rank);
            }
            from = next;
        }
        // The shards' cores gave nothing: what the stock holds, last.
        self.take_stocked_last()
    }

    /// The common any-key grant, inlined into the caller so that the lease
    /// is built where the caller keeps it: from the solo word
    /// ([`fast_take_any`](Self::fast_take_any)) of the shard under the
    /// rotation's cursor, when nobody waits and the pool is open. `Err`
    /// otherwise: with where [`try_any_locked`](Self::try_any_locked) goes
    /// on, or `None` when no shard alone may grant (an any-key waiter
    /// waits, the pool is closed, or no shard offers room).
    #[inline(always)]
    pub(crate) fn fast_any(&self) -> Result<workpool_core::Lease<K>, Option<Look>> {
        if self.hints.any_waiting.load(Ordering::Relaxed) || self.is_closed() {
            return Err(None);
        }
        if let Some(lease) = self.take_stocked() {
            return Ok(lease);
        }
        let offers = &self.offers;
        // Acquire: the shard of each set bit's rank is published.
        let mask = offers.mask.load(Ordering::Acquire);
        let start = offers.next.load(Ordering::Relaxed);
        let first = super::lane::next_offer(mask, start).ok_or(None)?;
        let look = Look { mask, start, first };
        let shard = offers.by_rank[first].load(Ordering::Relaxed);
        let lease = self.fast_take_any(shard).map_err(|()| Some(look))?;
        // A solo key's grant ends the shard's turn.
        if start != first + 1 {
            offers.next.store(first + 1, Ordering::Relaxed);
        }
        Ok(lease)
    }

    /// Collects every word of `shard` for an any-key acquisition (under
    /// the shard's lock). The first that finds words of the shard's block
    /// of [more words](super::words) lent makes the shards lend them no
    /// more (see `LaneHints::any_used`).
    #[inline]
    fn collect_for_any(
        &self,
        shard: usize,
        part: &mut super::Part<workpool_core::parts::Shard<K>>,
    ) {
        if part.lent_mask >> super::words::WORDS != 0 {
            self.hints.any_used.store(true, Ordering::Relaxed);
        }
        self.collect_all(shard, part);
    }

    /// After a locked any-key grant from the one key its shard tracks (so
    /// its ring links it alone): lends the key's room to its word
    /// (assigning one if need be, which hashes the key), so that the next
    /// any-key grants that come to this shard take it without the lock
    /// ([`fast_take_any`](Self::fast_take_any)).
    ///
    /// Only a shard of one key has a solo key
    /// ([`Shard::solo_slot`](workpool_core::parts::Shard::solo_slot)). A
    /// back-off keeps the lends from costing more than they give: a solo
    /// lend that is collected without a grant from it (the key filled up,
    /// and the next grant that came collected it) makes the shard skip the
    /// next `2^n - 1` solo lends, `n` counting such lends in a row (at most
    /// [`SOLO_BACKOFF`](super::words::SOLO_BACKOFF)). Contended over 16
    /// keys (S3, any key), lending on every grant cost a lend and a collect
    /// in half the cycles and 40% of the row's time.
    #[cold]
    #[inline(never)]
    fn lend_solo(
        &self,
        shard: usize,
        part: &mut super::Part<workpool_core::parts::Shard<K>>,
        lease: &workpool_core::Lease<K>,
    ) {
        if part.solo_skip > 0 {
            part.solo_skip -= 1;
            return;
        }
        self.lend_to_stock(shard, part, lease);
    }

    /// After a locked any-key grant (while the pool
    /// [stocks](super::stock), or from a solo key): lends the room left to
    /// the key's word (assigning one if need be, which hashes the key),
    /// where the stock or the solo mark shows it.
    #[cold]
    #[inline(never)]
    fn lend_to_stock(
        &self,
        shard: usize,
        part: &mut super::Part<workpool_core::parts::Shard<K>>,
        lease: &workpool_core::Lease<K>,
    ) {
        let hash = self.hasher.hash_one(lease.key());
        self.lend_slot(
            shard,
            part,
            lease.slot(),
            Some((hash, lease.key(), K::clone)),
        );
    }

    /// An any-key lease, round-robin over the listed shards and within each
    /// over its keys with room, under the lane: looks at the shard under
    /// the lane's cursor, unlisting shards without room.
    pub(super) fn try_any(
        &self,
        lane: &mut LaneGuard<'_>,
    ) -> Result<workpool_core::Lease<K>, TryAcquireError> {
        if lane.core.is_closed() {
            return Err(TryAcquireError::Closed);
        }
        self.reclaim_if_short(lane, 1);
        while let Some(shard) = lane.core.next_shard() {
            // Lent room is room too: the shard's words give it back first.
            let mut part = self.lock_shard(shard);
            self.collect_for_any(shard, &mut part);
            let (core, mut ids) = part.split_ids(&self.ids);
            let taken = lane.core.try_take(core, &mut ids);
            self.sync_offer(&mut part);
            if let Some(lease) = taken {
                return Ok(lease);
            }
        }
        Err(TryAcquireError::NoCapacity)
    }
}
