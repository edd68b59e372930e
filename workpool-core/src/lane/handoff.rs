//! Hand-offs of any-key waiters: the releaser whose release decided an
//! any-key waiter claims the outcome on its behalf, without cloning a key
//! (an adapter attaches the key it already owns: the released lease's,
//! when the grant came from that lease's group).

use crate::lease::{Claim, Lease, WaiterId};
use crate::waiters::State;

use super::Lane;

impl Lane {
    /// [`poll_wake`](Self::poll_wake) and, if `take` says so of the waiter
    /// it names, that waiter's claim without its key, in one step: the
    /// waiter and its final outcome (the waiter removed; a granted lease
    /// comes as a `Lease<()>`, which becomes the waiter's with
    /// [`Lease::with_key`]), or the waiter and `None` (its outcome stays
    /// for its own [`claim`](Self::claim)). `None` when no waiter is
    /// decided.
    ///
    /// `take` gets the waiter and, for a granted one, the shard and group
    /// slot its grant is from ([`Lease::shard`], [`Lease::slot`]), so that
    /// a caller holding a key of that group can attach it.
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
    /// let held = lane.try_take(&mut shard, &mut ids).unwrap();
    /// assert!(lane.try_take(&mut shard, &mut ids).is_none(), "full");
    /// let w = lane.enqueue().unwrap();
    /// let (slot, key) = (held.slot(), *held.key());
    /// let _ = shard.release(Some(&mut lane), held, &mut ids);
    /// let (woken, claim) = lane
    ///     .poll_wake_unkeyed(|_, from| from == Some((0, slot)))
    ///     .unwrap();
    /// let Some(Claim::Granted(lease)) = claim else { panic!() };
    /// assert_eq!((woken, *lease.with_key(key).key()), (w, "a"));
    /// assert!(lane.claim::<&str>(w, None).is_err(), "claimed already");
    /// ```
    #[must_use = "every waiter it names must be woken"]
    #[inline]
    pub fn poll_wake_unkeyed(
        &mut self,
        take: impl FnOnce(WaiterId, Option<(usize, usize)>) -> bool,
    ) -> Option<(WaiterId, Option<Claim<()>>)> {
        let waiter = self.waiters.pop_wake(&mut self.wake)?;
        let from = match self.waiters.lookup(waiter).map(|w| w.state()) {
            Some(State::Granted(grant)) => Some((grant.shard as usize, grant.group as usize)),
            _ => None,
        };
        if !take(waiter, from) {
            return Some((waiter, None));
        }
        let claim = match self.waiters.remove(waiter.index) {
            State::Granted(grant) => Claim::Granted(Lease {
                pool: self.pool_id(),
                grant,
                key: (),
            }),
            State::Closed => Claim::Closed,
            State::Waiting | State::Vacant => unreachable!("a woken waiter is decided"),
        };
        Some((waiter, Some(claim)))
    }
}

impl<K> Lease<K> {
    /// The lease without its key, and the key: what an adapter gives back
    /// with [`Shard::cancel_unkeyed`](crate::parts::Shard::cancel_unkeyed)
    /// when the waiter it was handed to gave up before taking it (the key
    /// dropped where no lock is held).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire_key(&"a").unwrap();
    /// let id = lease.id();
    /// let (unkeyed, key) = lease.into_unkeyed();
    /// assert_eq!((unkeyed.id(), key), (id, "a"));
    /// let _ = pool.release(unkeyed.with_key(key));
    /// ```
    pub fn into_unkeyed(self) -> (Lease<()>, K) {
        (
            Lease {
                pool: self.pool,
                grant: self.grant,
                key: (),
            },
            self.key,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::lease::Claim;
    use crate::parts::{Lane, Shard};

    /// A waiter the caller does not take stays for its own claim (with its
    /// key cloned there); a closed one is taken without a key.
    #[test]
    fn a_waiter_not_taken_keeps_its_outcome_for_its_claim() {
        let mut lane = Lane::new();
        let mut shard = Shard::new(0, &lane);
        let mut ids = 1u64;
        shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
        let held = lane.try_take(&mut shard, &mut ids).unwrap();
        assert!(lane.try_take(&mut shard, &mut ids).is_none());
        let (first, second) = (lane.enqueue().unwrap(), lane.enqueue().unwrap());
        let slot = held.slot();
        let _ = shard.release(Some(&mut lane), held, &mut ids);
        let mut seen = None;
        let (woken, claim) = lane
            .poll_wake_unkeyed(|w, from| {
                seen = Some((w, from));
                false
            })
            .unwrap();
        assert_eq!((woken, seen), (first, Some((first, Some((0, slot))))));
        assert!(claim.is_none());
        let Ok(Claim::Granted(lease)) = lane.claim(first, Some(&shard)) else {
            panic!("still granted, for its own claim");
        };
        assert_eq!((lease.id(), *lease.key()), (2, "a"));
        lane.close();
        let (woken, claim) = lane.poll_wake_unkeyed(|_, from| from.is_none()).unwrap();
        assert_eq!(woken, second);
        assert!(matches!(claim, Some(Claim::Closed)));
        assert!(lane.claim::<&str>(second, None).is_err(), "removed");
        assert!(lane.poll_wake_unkeyed(|_, _| true).is_none());
    }
}
