//! Hand-offs without the key: an adapter's releaser claims a decided key
//! waiter's outcome on the waiter's behalf, without running `K::clone`
//! (user code) on its own thread; the waiter attaches its own copy of the
//! key once it takes the lease.

use crate::error::UnknownWaiter;
use crate::lane::Lane;
use crate::lease::{Claim, Lease, WaiterId};
use crate::parts::{LeaseIds, NeedsLane};
use crate::waiters::State;

use super::Shard;

impl<K> Shard<K> {
    /// Claims a key waiter's outcome as [`claim`](Self::claim) does, but
    /// without cloning the key: a granted lease comes as a `Lease<()>`,
    /// which becomes the waiter's with [`Lease::with_key`] (or goes back
    /// with [`cancel_unkeyed`](Self::cancel_unkeyed)). Nothing of `K` runs,
    /// so it cannot panic half-way. Like `claim`, a final answer removes
    /// the waiter.
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` is not a registered waiter of this
    /// shard.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// use workpool_core::Claim;
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let held = shard.try_acquire_key(Some(&mut lane), 1, &"a", &mut ids).unwrap().unwrap();
    /// let arrivals = lane.arrivals();
    /// let w = shard.enqueue_key(Some(&mut lane), 1, &"a", arrivals, &mut ids).unwrap().unwrap();
    /// assert!(matches!(shard.claim_unkeyed(w), Ok(Claim::Waiting)));
    /// let _ = shard.release(Some(&mut lane), held, &mut ids);
    /// assert_eq!(shard.poll_wake(), Some(w));
    /// let Ok(Claim::Granted(lease)) = shard.claim_unkeyed(w) else { panic!() };
    /// let lease = lease.with_key("a");
    /// assert_eq!((lease.id(), *lease.key()), (2, "a"));
    /// ```
    pub fn claim_unkeyed(&mut self, waiter: WaiterId) -> Result<Claim<()>, UnknownWaiter> {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        if matches!(w.state(), State::Waiting) {
            return Ok(Claim::Waiting);
        }
        Ok(match self.finish(waiter.index) {
            State::Granted(grant) => Claim::Granted(Lease {
                pool: self.pool,
                grant,
                key: (),
            }),
            _ => Claim::Closed,
        })
    }

    /// [`poll_wake`](Self::poll_wake) and, if `take` says so of the waiter
    /// it names, [`claim_unkeyed`](Self::claim_unkeyed) of that waiter, in
    /// one step: the waiter and its final outcome (the waiter removed), or
    /// the waiter and `None` (its outcome stays for its own claim). `None`
    /// when no waiter is decided. What a releaser that hands the outcome
    /// over at once does, without the second look-up of the waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// use workpool_core::Claim;
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let held = shard.try_acquire_key(Some(&mut lane), 1, &"a", &mut ids).unwrap().unwrap();
    /// let arrivals = lane.arrivals();
    /// let w = shard.enqueue_key(Some(&mut lane), 1, &"a", arrivals, &mut ids).unwrap().unwrap();
    /// assert!(shard.poll_wake_unkeyed(|_| true).is_none(), "nothing decided");
    /// let _ = shard.release(Some(&mut lane), held, &mut ids);
    /// let (woken, claim) = shard.poll_wake_unkeyed(|waiter| waiter == w).unwrap();
    /// let Some(Claim::Granted(lease)) = claim else { panic!() };
    /// assert_eq!((woken, lease.with_key("a").id()), (w, 2));
    /// assert!(shard.claim(w).is_err(), "claimed already");
    /// ```
    #[must_use = "every waiter it names must be woken"]
    #[inline]
    pub fn poll_wake_unkeyed(
        &mut self,
        take: impl FnOnce(WaiterId) -> bool,
    ) -> Option<(WaiterId, Option<Claim<()>>)> {
        let waiter = self.waiters.pop_wake(&mut self.wake)?;
        if !take(waiter) {
            return Some((waiter, None));
        }
        let claim = match self.waiters.remove(waiter.index) {
            State::Granted(grant) => Claim::Granted(Lease {
                pool: self.pool,
                grant,
                key: (),
            }),
            State::Closed => Claim::Closed,
            State::Waiting | State::Vacant => unreachable!("a woken waiter is decided"),
        };
        Some((waiter, Some(claim)))
    }

    /// Gives back a lease from [`claim_unkeyed`](Self::claim_unkeyed) that
    /// never reached its waiter (it gave up before it took the lease): as
    /// [`cancel`](Self::cancel) of a granted waiter, it goes to the next
    /// eligible waiter or back to its key, and counts as cancelled, not as
    /// granted.
    ///
    /// # Errors
    ///
    /// `NeedsLane`, handing the lease back and changing nothing, when
    /// called without the lane and the give-back needs it.
    ///
    /// # Panics
    ///
    /// If the lease is not of this shard.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// use workpool_core::{Claim, Counts};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let arrivals = lane.arrivals();
    /// let w = shard.enqueue_key(Some(&mut lane), 1, &"a", arrivals, &mut ids).unwrap().unwrap();
    /// let Ok(Claim::Granted(lease)) = shard.claim_unkeyed(w) else { panic!() };
    /// shard.cancel_unkeyed(Some(&mut lane), lease, &mut ids).unwrap();
    /// assert_eq!(shard.counts(1, &"a"), Counts { target: 1, active: 0 });
    /// assert_eq!((shard.stats().granted, shard.stats().cancelled), (0, 1));
    /// ```
    pub fn cancel_unkeyed<I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        lease: Lease<()>,
        ids: &mut I,
    ) -> Result<(), NeedsLane<Lease<()>>> {
        assert!(
            lease.pool == self.pool && lease.grant.shard == self.index,
            "a lease given back to another shard"
        );
        let g = lease.grant.group;
        debug_assert!(self
            .groups
            .get_checked(g, lease.grant.generation)
            .is_some_and(|group| group.active > 0));
        let units = lease.grant.units();
        if lane.is_none() && (self.limited || self.give_back_needs_lane()) {
            return Err(NeedsLane(lease));
        }
        // The grant reached nobody: it was counted at the hand-off.
        self.stats.granted -= 1;
        self.stats.cancelled += 1;
        self.give_back_group(lane, g, units, ids);
        Ok(())
    }
}

impl Lease<()> {
    /// The lease of a [hand-off without the key](Shard::claim_unkeyed),
    /// with `key` attached: a key equal to the one the waiter asked for
    /// (its own copy, made on its own thread).
    ///
    /// # Examples
    ///
    /// See [`Shard::claim_unkeyed`].
    pub fn with_key<K>(self, key: K) -> Lease<K> {
        Lease {
            pool: self.pool,
            grant: self.grant,
            key,
        }
    }
}
