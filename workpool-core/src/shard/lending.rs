//! Lending a key's room to an adapter's lock-free counter.
//!
//! An adapter that wants a key's grants and releases to skip the shard's
//! lock can ask the shard to *lend* it the key's room: the shard counts the
//! lent units as active (so every other operation sees the key full) and
//! the adapter hands them out and takes them back on its own, minting a
//! lease for each unit it hands out ([`Minter::mint`]). Before anything
//! else touches the key under the lock (a waiter queuing, a target
//! changing, a watcher, a limit, close), the adapter takes the units that
//! no lease holds back ([`Shard::unlend`]), together with the number of
//! leases it minted, so the shard's counts are exact again. A lease minted
//! from lent units is an ordinary lease: it is released with
//! [`Shard::release`] (or given back to the adapter's counter while the
//! room is lent).

use super::*;

/// Lending a key's room: an adapter that wants a key's grants and releases
/// to skip the shard's lock asks the shard to *lend* it the key's room
/// ([`Shard::lend`], which counts it as active, so every other operation
/// sees the key full), hands the units out and takes them back on its own,
/// and mints a lease for each unit it hands out. Before anything else
/// touches the key under the lock, it takes the units no lease holds back
/// ([`Shard::unlend`]), with the number of leases it minted.
///
/// What a lease of a lent unit carries: made by [`Shard::lend`], it mints
/// the leases of the units it lent ([`mint`](Self::mint)). Valid while
/// the key stays tracked (a key with lent units or live leases stays).
///
/// # Examples
///
/// ```
/// use workpool_core::parts::{Lane, Shard};
/// let mut lane = Lane::new();
/// let mut shard = Shard::new(0, &lane);
/// let mut ids = 1u64;
/// shard.set(Some(&mut lane), 1, "a", 3, &mut ids).unwrap();
/// let slot = shard.slot(1, &"a").unwrap();
/// let lent = shard.lend(slot, u64::MAX).unwrap();
/// assert_eq!(lent.units, 3);
/// // Hand one unit out without the shard:
/// let lease = lent.minter.mint("a", 7);
/// assert_eq!((lease.id(), *lease.key()), (7, "a"));
/// // Take back the two units nobody holds, and count the one lease.
/// shard.unlend(None, slot, 2, 1, &mut ids).unwrap();
/// assert_eq!(shard.counts(1, &"a").active, 1);
/// assert_eq!(shard.stats().granted, 1);
/// shard.release(None, lease, &mut 8u64).unwrap().unwrap();
/// assert_eq!(shard.counts(1, &"a").active, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minter {
    pool: PoolId,
    shard: u32,
    group: u32,
    generation: u32,
}

impl Minter {
    /// A lease of one lent unit, with lease id `id` (from the pool's
    /// [`LeaseIds`], so that the shard's `issued` check accepts it) and
    /// the key it was lent for. Mint exactly one lease per unit handed
    /// out: the shard counts the units, not the leases.
    ///
    /// # Examples
    ///
    /// See [`Minter`].
    #[inline]
    pub fn mint<K>(&self, key: K, id: u64) -> Lease<K> {
        Lease {
            pool: self.pool,
            grant: Grant {
                shard: self.shard,
                group: self.group,
                generation: self.generation,
                units: 1,
                id,
            },
            key,
        }
    }

    /// The slot of the key the units were lent from (as
    /// [`Shard::slot`] names it).
    ///
    /// # Examples
    ///
    /// See [`Minter`].
    #[inline]
    pub fn slot(&self) -> usize {
        self.group as usize
    }
}

/// Units a shard lent (see [`Shard::lend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lent {
    /// How many units: all of the key's room, at most what was asked for.
    pub units: u64,
    /// Mints the leases of those units.
    pub minter: Minter,
}

impl<K> Shard<K> {
    /// Lends the room of the key in `slot` (at most `most` units) to the
    /// caller, counting it as active; see [`Minter`]. Lends nothing
    /// (`None`) unless the shard is open, without a pool-wide limit (or
    /// holding a [budget](Self::lend_budget), which the units then come
    /// out of) and [listed](Self::is_listed) (so no any-key waiter
    /// waits), and the key
    /// is tracked, linked in its ring and has no waiter. A key without room
    /// lends 0 units: the [`Minter`] still serves for leases given back to
    /// the caller's counter and handed out again.
    ///
    /// # Examples
    ///
    /// See [`Minter`].
    pub fn lend(&mut self, slot: usize, most: u64) -> Option<Lent> {
        // A listed shard proves that no any-key waiter waits: room lent
        // while one waited would be room it could not see. Under a limit,
        // the room comes out of the shard's budget (none: nothing lent).
        if self.closed || !self.is_listed() || (self.limited && self.budget.is_none()) {
            return None;
        }
        let g = u32::try_from(slot).ok()?;
        self.groups.get(g)?;
        let generation = self.groups.generation(g);
        let group = self.groups.at_mut(g);
        if !group.in_ring() || group.waiting != 0 || group.is_idle() {
            return None;
        }
        let mut units = group.target.saturating_sub(group.active).min(most);
        if let Some(budget) = self.budget.as_mut() {
            units = units.min(*budget);
            *budget -= units;
        }
        group.active += units;
        self.total += units;
        Some(Lent {
            units,
            minter: Minter {
                pool: self.pool,
                shard: self.index,
                group: g,
                generation,
            },
        })
    }

    /// Takes back `units` units lent from the key in `slot` that no lease
    /// holds, and counts `minted` leases made from lent units as grants
    /// (see [`Stats`]). The room goes to the key's waiters as a release's
    /// would.
    ///
    /// # Errors
    ///
    /// [`NeedsLane`], changing nothing, without the lane when taking the
    /// units back needs it (as [`release`](Self::release) would).
    ///
    /// # Panics
    ///
    /// If the key in `slot` does not have `units` units active.
    ///
    /// # Examples
    ///
    /// See [`Minter`].
    pub fn unlend<I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        slot: usize,
        units: u64,
        minted: u64,
        ids: &mut I,
    ) -> Result<(), NeedsLane<()>> {
        self.stats.granted += minted;
        if units == 0 {
            return Ok(());
        }
        let g = u32::try_from(slot).expect("a slot of this shard");
        let group = self.groups.at(g);
        assert!(group.active >= units, "more units taken back than lent");
        let needs_lane = self.limited || self.give_back_needs_lane();
        if lane.is_none() && needs_lane {
            // Under a limit, units lent from the budget go back to it.
            if self.budget_takes_back(g) {
                self.give_back_to_budget(g, units);
                return Ok(());
            }
            self.stats.granted -= minted;
            return Err(NeedsLane(()));
        }
        // As a release of that many units: it serves waiters, links and
        // forgets as a release does (the lane counted the lent units when
        // the shard entered a limit, and counts them back).
        self.give_back_group(lane, g, units, ids);
        Ok(())
    }

    /// True while the pool has a limit (see
    /// [`enter_limit`](Self::enter_limit)): then only a shard that holds a
    /// budget lends, out of it (see [`lend_budget`](Self::lend_budget)).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert!(!Shard::<u8>::new(0, &Lane::new()).is_limited());
    /// ```
    #[inline]
    pub fn is_limited(&self) -> bool {
        self.limited
    }
}

impl<K> Shard<K> {
    /// True while the key that `minter` lent for is still tracked by the
    /// same group (not forgotten): the adapter's per-key data for it is
    /// still that key's.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let slot = shard.slot(1, &"a").unwrap();
    /// let lent = shard.lend(slot, 1).unwrap();
    /// shard.unlend(None, slot, 1, 0, &mut ids).unwrap();
    /// assert!(shard.is_live(&lent.minter));
    /// shard.set(Some(&mut lane), 1, "a", 0, &mut ids).unwrap();
    /// assert!(!shard.is_live(&lent.minter));
    /// ```
    pub fn is_live(&self, minter: &Minter) -> bool {
        minter.pool == self.pool
            && minter.shard == self.index
            && self
                .groups
                .get_checked(minter.group, minter.generation)
                .is_some_and(|g| !g.is_idle())
    }
}
