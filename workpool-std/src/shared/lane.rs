//! The lane and the pool as a whole: operations that hold the lane's lock
//! and lock the shards one at a time (the pool-wide limit, close,
//! `set_all`, and the lane's loop that hands out the pool's room to waiters
//! of any shard), what the lane publishes for key operations to read
//! without its lock ([`LaneHints`]), and the reads summed over every part.

use std::hash::{BuildHasher, Hash};

use workpool_core::{Counts, Stats};

use super::{After, LaneGuard, Part, ShardGuard, Shared};
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// What the lane publishes for key operations, which read it without the
/// lane's lock. Written only by any-key traffic (under the lane's lock, but
/// for `any_used`, written once), so a pool without any-key acquisitions
/// never writes this line.
pub(super) struct LaneHints {
    /// The lane's arrival count (see
    /// [`Lane::arrivals`](workpool_core::parts::Lane::arrivals)).
    pub(super) arrivals: AtomicU64,
    /// True while any-key waiters may be queued: then a release is likely
    /// to need the lane, and takes it first instead of asking its shard
    /// (which still decides: the hint only picks the order of attempts).
    pub(super) any_waiting: AtomicBool,
    /// Set by the first any-key acquisition that collects words of a
    /// shard's block of [more words](super::words), and never cleared: from
    /// then on shards lend none of them (an any-key acquisition collects
    /// every lent word of the shards it looks at).
    pub(super) any_used: AtomicBool,
    /// Set once any-key grants found shards' locks held
    /// [`STOCK_AFTER`](super::stock::STOCK_AFTER) times, and never
    /// cleared: from then on the pool [stocks](super::stock).
    pub(super) any_contended: AtomicBool,
    /// How many times any-key grants found a shard's lock held, until the
    /// pool stocks.
    pub(super) any_meets: AtomicU64,
}

/// Where any-key grants look first, without the lane's lock: one bit per
/// shard that offers any-key room, and the rotation's cursor. Any-key
/// traffic writes this line (its one logical queue); key operations write
/// it only when their shard's offer changes (a group of a listed shard
/// linked again, or the shard unlisted by the lane).
///
/// The rotation visits shards by *rank*: the order in which they first
/// offered room (a shard's rank is fixed then, for the pool's life). So
/// keys set one after another in different shards get their any-key
/// grants in that order, as they would with one shard, not in the order
/// their hashes happened to give.
///
/// The bits are hints, nothing relies on them: the bit of rank `r` mirrors
/// [`Shard::offers_any`](workpool_core::parts::Shard::offers_any) of the
/// shard of that rank as the shard's lock last wrote it
/// ([`Shared::sync_offer`]). An any-key grant takes the first set bit from
/// the cursor on, locks that shard alone and asks it ([`Shard::try_take_any`], which grants only
/// while the shard is listed, which proves that no any-key waiter waits);
/// when no shard gives a lease it goes through the lane, which is exact
/// (listing and unlisting need the lane) and syncs every shard it visits.
///
/// [`Shard::try_take_any`]: workpool_core::parts::Shard::try_take_any
pub(super) struct Offers {
    /// Bit `r` set while the shard of rank `r` offers any-key room (at
    /// most 64 shards).
    pub(super) mask: AtomicU64,
    /// The rank the next any-key grant looks at first.
    pub(super) next: AtomicUsize,
    /// How many shards have a rank.
    pub(super) ranked: AtomicUsize,
    /// `by_rank[r]`: the shard of rank `r` (published before its bit).
    pub(super) by_rank: [AtomicUsize; 64],
}

/// The first set bit of `mask` at or after `from` (wrapping), if any.
#[inline]
pub(super) fn next_offer(mask: u64, from: usize) -> Option<usize> {
    if mask == 0 {
        return None;
    }
    let from = from % 64;
    let above = mask & (u64::MAX << from);
    Some(if above != 0 {
        above.trailing_zeros() as usize
    } else {
        mask.trailing_zeros() as usize
    })
}

impl<K, S> Shared<K, S> {
    /// Mirrors whether the shard of `part` offers any-key room in the
    /// pool's [`Offers`] (under that shard's lock); writes the shared line
    /// only when the offer changed.
    #[inline]
    pub(super) fn sync_offer(&self, part: &mut Part<workpool_core::parts::Shard<K>>) {
        let now = part.core.offers_any();
        if part.offered != now {
            part.offered = now;
            let rank = match part.rank {
                Some(rank) => rank,
                None => {
                    // The shard's first offer: it takes the next rank.
                    let rank = self.offers.ranked.fetch_add(1, Ordering::Relaxed);
                    self.offers.by_rank[rank].store(part.core.index() as usize, Ordering::Relaxed);
                    part.rank = Some(rank);
                    rank
                }
            };
            let bit = 1u64 << rank;
            if now {
                // Release: a grant that sees the bit sees the rank's shard.
                let before = self.offers.mask.fetch_or(bit, Ordering::Release);
                if before == 0 {
                    // The first shard to offer room is where the rotation
                    // starts: the first key given room gets the first
                    // any-key grant, as with one shard.
                    self.offers.next.store(rank, Ordering::Relaxed);
                }
            } else {
                self.offers.mask.fetch_and(!bit, Ordering::Relaxed);
            }
        }
    }

    /// Finishes an operation that held the lane (and maybe a shard): while
    /// a limit is set (or was just lifted) the pool's room may now serve
    /// waiters of other shards, so the lane's loop hands it out, locking
    /// those shards one at a time; each shard's wakes are left queued in it
    /// and woken once no lock is held.
    pub(super) fn finish_lane_op<'a>(
        &'a self,
        mut lane: LaneGuard<'a>,
        part: Option<ShardGuard<'a, K>>,
        after: After<K>,
    ) {
        if lane.core.distribute_next().is_none() && !lane.core.needs_budgets_back() {
            return self.finish(Some(lane), part, after);
        }
        let mut after = after;
        let mut touched = 0u64;
        if let Some(mut part) = part {
            // Checked before the shard is let go: a key this operation
            // drained could be forgotten, and its slot reused, before the
            // shard is locked again to wake.
            if part.watches.is_waiting() {
                part.check_watches(lane.core.over_limit(), &mut after);
            }
            // And the keys it forgot, before a key set meanwhile could
            // take one's slot (see `collect_forgotten`).
            self.collect_forgotten(&mut part, &mut after);
            touched |= 1 << part.core.index();
            drop(part);
        }
        touched |= self.distribute(&mut lane);
        if lane.core.needs_budgets_back() {
            // Someone still waits for the pool's room once the free room
            // is handed out: no shard may hold any.
            self.reclaim_budgets(&mut lane);
            touched |= self.distribute(&mut lane);
        }
        self.finish(Some(lane), None, after);
        self.wake_shards(touched);
    }

    /// Gives back a unit a word's grant took and could not use (see
    /// `Untake`), when the shard alone no longer may: the pool changed
    /// since the word was collected (a limit without a budget that takes
    /// the unit, waiters for the key, or the shard unlisted). The unit goes
    /// back as a release would, with the lane; still counted as active
    /// meanwhile, it keeps its key (and `slot`) tracked.
    pub(super) fn unlend_with_lane(&self, shard: usize, slot: usize) {
        let mut lane = self.lock_lane();
        let mut part = self.lock_shard(shard);
        let (core, mut ids) = part.split_ids(&self.ids);
        let taken = core.unlend(Some(&mut lane.core), slot, 1, 0, &mut ids);
        debug_assert!(taken.is_ok(), "a call with the lane needs no lane");
        self.sync_offer(&mut part);
        self.finish_lane_op(lane, Some(part), After::new());
    }

    /// The lane's loop that hands out the pool's room; returns the shards
    /// it served waiters in, as a bit mask (at most 64 shards).
    fn distribute(&self, lane: &mut LaneGuard<'_>) -> u64 {
        let mut touched = 0u64;
        while let Some(shard) = lane.core.distribute_next() {
            let mut part = self.lock_shard(shard);
            let (core, mut ids) = part.split_ids(&self.ids);
            lane.core.distribute_step(core, &mut ids);
            self.sync_offer(&mut part);
            touched |= 1 << shard;
        }
        touched
    }

    /// Wakes the waiters the shards in `mask` decided, shard by shard.
    fn wake_shards(&self, mut mask: u64) {
        while mask != 0 {
            let shard = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.finish(None, Some(self.lock_shard(shard)), After::new());
        }
    }

    /// Sets or removes the pool-wide limit (see the lane's `set_limit` for
    /// the steps), then wakes whoever a raised or lifted limit served.
    pub(crate) fn set_limit(&self, limit: Option<u64>) {
        let mut lane = self.lock_lane();
        self.reclaim_budgets(&mut lane);
        lane.core.set_limit(limit);
        if limit.is_some() {
            for shard in 0..self.shards.len() {
                let mut part = self.lock_settled(shard);
                part.core.enter_limit(&mut lane.core);
                self.sync_offer(&mut part);
            }
        }
        let touched = self.distribute(&mut lane);
        if limit.is_none() {
            for shard in 0..self.shards.len() {
                let mut part = self.lock_shard(shard);
                part.core.leave_limit(&lane.core);
                self.sync_offer(&mut part);
            }
        }
        // A lowered limit makes every lease surplus at once.
        let mut after = After::new();
        if lane.core.over_limit() {
            for shard in 0..self.shards.len() {
                let mut part = self.lock_shard(shard);
                if part.watches.is_waiting() {
                    part.check_watches(true, &mut after);
                }
            }
        }
        self.finish(Some(lane), None, after);
        self.wake_shards(touched);
    }

    pub(crate) fn limit(&self) -> Option<u64> {
        self.lock_lane().core.limit()
    }

    /// Live leases over all keys: the lane's count while a limit is set
    /// and no shard holds a budget, otherwise the shards' counts summed one
    /// by one. Under a limit the lane stays held meanwhile: a shard's
    /// leases plus its budget change only with the lane, so the sum never
    /// exceeds the limit, though leases move between shards as it runs.
    pub(crate) fn active(&self) -> u64 {
        let lane = self.lock_lane();
        if let Some(active) = lane.core.active() {
            return active;
        }
        let held = lane.core.limit().is_some().then_some(lane);
        let active = (0..self.shards.len())
            .map(|s| self.lock_settled(s).core.active())
            .sum();
        drop(held);
        active
    }

    /// Publishes whether any-key waiters are queued or a limit is set (then
    /// releases go through the lane), under the lane's lock.
    #[inline]
    pub(super) fn publish(&self, lane: &LaneGuard<'_>) {
        let arrivals = lane.core.arrivals();
        if self.hints.arrivals.load(Ordering::Relaxed) != arrivals {
            self.hints.arrivals.store(arrivals, Ordering::Relaxed);
        }
        // Under a limit a release needs the lane, unless its shard holds a
        // budget (see `budgets`).
        let any =
            lane.core.waiters() > 0 || (lane.core.limit().is_some() && !lane.core.has_budgets());
        if self.hints.any_waiting.load(Ordering::Relaxed) != any {
            self.hints.any_waiting.store(any, Ordering::Relaxed);
        }
    }

    /// Closes every part before it wakes anyone: a woken waiter's waker may
    /// release a lease (user code), and a key waiter of a shard not yet
    /// closed would be served by it instead of failing with `Closed`.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut lane = self.lock_lane();
        lane.core.close();
        let mut after = After::new();
        for shard in 0..self.shards.len() {
            let mut part = self.lock_settled(shard);
            part.core.close(&mut lane.core);
            // The keys it forgot (tracked only for their waiters), before
            // a key set meanwhile (by a waker run below, say) could take
            // one's slot (see `collect_forgotten`).
            self.collect_forgotten(&mut part, &mut after);
            self.sync_offer(&mut part);
        }
        self.finish(Some(lane), None, after);
        for shard in 0..self.shards.len() {
            let part = self.lock_shard(shard);
            // A closed pool's idle shard needs its count no more (see
            // `keepalive`); the caller holds a count of its own.
            let unref = self.let_go(shard, &part);
            self.finish(None, Some(part), After::new());
            if unref {
                self.unref_own();
            }
        }
    }

    /// How many keys are tracked, summed shard by shard.
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|s| self.lock_shard(s).core.len())
            .sum()
    }

    /// How many waiters wait, in the lane and shard by shard.
    pub(crate) fn waiters(&self) -> usize {
        let any = self.lock_lane().core.waiters();
        any + (0..self.shards.len())
            .map(|s| self.lock_shard(s).core.waiters())
            .sum::<usize>()
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Shared<K, S> {
    /// Every tracked key with its counts and waiters, shard by shard.
    pub(crate) fn snapshot(&self) -> Vec<(K, Counts, usize)> {
        // Declared before the guards: should a `K::clone` panic, the keys
        // cloned so far are dropped after the lock is released.
        let mut all = Vec::new();
        for shard in 0..self.shards.len() {
            let part = self.lock_settled(shard);
            all.reserve(part.core.len());
            all.extend(part.core.entries().map(|(k, c, w)| (k.clone(), c, w)));
            drop(part);
        }
        all
    }

    /// Sets several targets under the lane's lock and the locks of every
    /// shard they touch (every shard for `replace`, which sets every other
    /// tracked key to 0), so that no acquisition sees some applied and
    /// others not. A lane holder may lock shards in any order: nobody else
    /// holds the lane, and a thread that holds one shard waits for nothing
    /// while it does.
    pub(crate) fn set_all(&self, targets: impl IntoIterator<Item = (K, u64)>, replace: bool) {
        // Hashed before locking; `Hash` of `K` may still run under the
        // locks (for `replace`), as the rules allow.
        let targets: Vec<(u64, usize, K, u64)> = targets
            .into_iter()
            .map(|(key, target)| {
                let (hash, shard) = self.locate(&key);
                (hash, shard, key, target)
            })
            .collect();
        // Everything that holds keys is declared before the guards, so that
        // a panicking `K::clone` or `K::eq` under the locks drops its keys
        // (the targets not applied yet, the clones found for `replace`, the
        // key being set) only after unlocking.
        let mut targets = targets.into_iter();
        // For `replace`: every tracked key not named, found before the
        // targets are applied (they only touch named keys).
        let mut others: Vec<(usize, u64, K)> = Vec::new();
        let mut key: Option<K>;
        let mut after = After::new();
        let mut lane = self.lock_lane();
        let mut parts: Vec<Option<ShardGuard<'_, K>>> =
            (0..self.shards.len()).map(|_| None).collect();
        let mut touched = 0u64;
        if replace {
            let named = targets.as_slice();
            let mut by_hash: Vec<(u64, usize)> =
                named.iter().enumerate().map(|(i, t)| (t.0, i)).collect();
            by_hash.sort_unstable();
            for (shard, slot) in parts.iter_mut().enumerate() {
                let part = slot.insert(self.lock_settled(shard));
                touched |= 1 << shard;
                for (tracked, _, _) in part.core.entries() {
                    let hash = self.hasher.hash_one(tracked);
                    let start = by_hash.partition_point(|&(h, _)| h < hash);
                    let is_named = by_hash[start..]
                        .iter()
                        .take_while(|&&(h, _)| h == hash)
                        .any(|&(_, i)| named[i].2 == *tracked);
                    if !is_named {
                        others.push((shard, hash, tracked.clone()));
                    }
                }
            }
        }
        loop {
            let (hash, shard, target) = if let Some((hash, shard, k, target)) = targets.next() {
                key = Some(k);
                (hash, shard, target)
            } else if let Some((shard, hash, k)) = others.pop() {
                key = Some(k);
                (hash, shard, 0)
            } else {
                break;
            };
            let part = parts[shard].get_or_insert_with(|| self.lock_settled(shard));
            touched |= 1 << shard;
            let (core, mut ids) = part.split_ids(&self.ids);
            let set = core.set_in(Some(&mut lane.core), hash, &mut key, target, &mut ids);
            debug_assert!(set.is_ok(), "a call with the lane needs no lane");
            if let Some(unused) = key.take() {
                after.push_key(unused);
            }
            // Collected as they come: a later key could reuse the slot of one
            // forgotten here (see `collect_forgotten`).
            self.collect_forgotten(part, &mut after);
        }
        while let Some(shard) = lane.core.distribute_next() {
            let part = parts[shard].get_or_insert_with(|| self.lock_shard(shard));
            let (core, mut ids) = part.split_ids(&self.ids);
            lane.core.distribute_step(core, &mut ids);
            touched |= 1 << shard;
        }
        let over_limit = lane.core.over_limit();
        for part in parts.iter_mut().flatten() {
            self.sync_offer(part);
            if part.watches.is_waiting() {
                part.check_watches(over_limit, &mut after);
            }
        }
        drop(parts);
        self.finish(Some(lane), None, after);
        self.wake_shards(touched);
    }

    /// What the pool did since it was made, part by part.
    pub(crate) fn stats(&self) -> Stats {
        let lane = self.lock_lane();
        let mut stats = lane.core.stats();
        stats.timed_out += lane.timed_out;
        drop(lane);
        for shard in 0..self.shards.len() {
            let part = self.lock_settled(shard);
            stats = stats + part.core.stats();
            stats.granted -= part.aborted;
            stats.timed_out += part.timed_out;
        }
        stats
    }
}
