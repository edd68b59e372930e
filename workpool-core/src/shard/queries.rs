//! What a shard answers without changing: counts, slots, lookups.

use super::*;

impl<K> Shard<K> {
    /// The target and active count of the key with full hash `hash`.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let shard = Shard::<&str>::new(0, &Lane::new());
    /// assert_eq!(shard.counts(1, &"a").target, 0);
    /// ```
    #[inline]
    pub fn counts<Q>(&self, hash: u64, key: &Q) -> Counts
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find(hash, key).map_or_else(Counts::default, |g| {
            let g = self.groups.at(g);
            Counts {
                target: g.target,
                active: g.active,
            }
        })
    }

    /// How many waiters wait for the key with full hash `hash`.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let _w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids).unwrap().unwrap();
    /// assert_eq!(shard.waiting(1, &"a"), 1);
    /// ```
    pub fn waiting<Q>(&self, hash: u64, key: &Q) -> usize
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find(hash, key)
            .map_or(0, |g| self.groups.at(g).waiting as usize)
    }

    /// Live leases over the shard's keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).active(), 0);
    /// ```
    pub fn active(&self) -> u64 {
        self.total
    }

    /// What the shard did since it was made: grants from its keys, and its
    /// key waiters that queued and that gave up (see [`Stats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).stats().granted, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether `lease` is surplus (see
    /// [`Pool::is_surplus`](crate::Pool::is_surplus)): its key has more live
    /// leases than its target, or the pool more than its limit.
    ///
    /// # Errors
    ///
    /// [`NeedsLane`] without the lane while a limit is set and the key
    /// itself is not over its target (the lane counts the pool's leases).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// let lease = shard.try_acquire_key(None, 1, &"a", &mut ids).unwrap().unwrap();
    /// assert_eq!(shard.is_surplus(None, &lease), Ok(false));
    /// shard.set(None, 1, "a", 0, &mut ids).unwrap();
    /// assert_eq!(shard.is_surplus(None, &lease), Ok(true));
    /// ```
    pub fn is_surplus(&self, lane: Option<&Lane>, lease: &Lease<K>) -> Result<bool, NeedsLane<()>> {
        let Grant {
            shard,
            group,
            generation,
            ..
        } = lease.grant;
        if lease.pool != self.pool || shard != self.index {
            return Ok(false);
        }
        let Some(g) = self.groups.get_checked(group, generation) else {
            return Ok(false);
        };
        if g.active > g.target {
            return Ok(true);
        }
        match lane {
            Some(lane) => Ok(lane.over_limit()),
            None if self.limited => Err(NeedsLane(())),
            None => Ok(false),
        }
    }

    /// The slot of the group of the key with full hash `hash`, if the shard
    /// tracks it: an index below the shard's group slots, stable while the
    /// key is tracked, for adapters that keep per-key data beside the shard
    /// (as [`Lease::slot`] names a lease's).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// assert_eq!(shard.slot(1, &"a"), Some(0));
    /// assert_eq!(shard.slot(2, &"b"), None);
    /// ```
    pub fn slot<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        Q: ?Sized + Equivalent<K>,
    {
        self.find(hash, key).map(|g| g as usize)
    }

    /// The counts of the group in `slot`, if a tracked key holds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 1, &mut ids).unwrap();
    /// assert_eq!(shard.slot_counts(0).map(|c| c.target), Some(1));
    /// ```
    pub fn slot_counts(&self, slot: usize) -> Option<Counts> {
        let g = self.groups.get(u32::try_from(slot).ok()?)?;
        (!g.is_idle()).then_some(Counts {
            target: g.target,
            active: g.active,
        })
    }

    /// How many key waiters of this shard are waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.waiting
    }

    /// How many keys the shard tracks.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when the shard tracks no key.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert!(Shard::<u8>::new(0, &Lane::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.groups.len() == 0
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::<u8>::new(0, &lane);
    /// shard.close(&mut lane);
    /// assert!(shard.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Every key the shard tracks with its counts, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).iter().count(), 0);
    /// ```
    pub fn iter(&self) -> Iter<'_, K> {
        Iter {
            table: self.table.iter(),
            groups: &self.groups,
        }
    }

    /// Every key the shard tracks with its counts and how many waiters wait
    /// for it, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let _w = shard.enqueue_key(None, 1, &"a", 0, &mut ids).unwrap().unwrap();
    /// let all: Vec<_> = shard.entries().map(|(k, c, w)| (*k, c.target, w)).collect();
    /// assert_eq!(all, [("a", 0, 1)]);
    /// ```
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&K, Counts, usize)> + '_ {
        let groups = &self.groups;
        self.table.iter().map(move |&g| {
            let group = groups.at(g);
            (
                &group.key,
                Counts {
                    target: group.target,
                    active: group.active,
                },
                group.waiting as usize,
            )
        })
    }

    /// How many key-waiter slots the shard has (see
    /// [`Pool::waiter_slots`](crate::Pool::waiter_slots)).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).waiter_slots(), 0);
    /// ```
    pub fn waiter_slots(&self) -> usize {
        self.waiters.len()
    }

    /// True when [`poll_wake`](Self::poll_wake) has a waiter to report.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert!(!Shard::<u8>::new(0, &Lane::new()).has_wakes());
    /// ```
    #[inline]
    pub fn has_wakes(&self) -> bool {
        self.wake != List::EMPTY
    }

    /// True when [`poll_forgotten`](Self::poll_forgotten) has a key.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert!(!Shard::<u8>::new(0, &Lane::new()).has_forgotten());
    /// ```
    #[inline]
    pub fn has_forgotten(&self) -> bool {
        self.groups.has_retired()
    }

    /// The next key waiter whose outcome was decided, as
    /// [`Pool::poll_wake`](crate::Pool::poll_wake) says.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).poll_wake(), None);
    /// ```
    #[must_use = "every waiter it names must be woken"]
    #[inline]
    pub fn poll_wake(&mut self) -> Option<WaiterId> {
        self.waiters.pop_wake(&mut self.wake)
    }

    /// The key of the next group the shard forgot, as
    /// [`Pool::poll_forgotten`](crate::Pool::poll_forgotten) says.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// assert_eq!(Shard::<u8>::new(0, &Lane::new()).poll_forgotten(), None);
    /// ```
    #[must_use = "the key is dropped where the returned value is"]
    #[inline]
    pub fn poll_forgotten(&mut self) -> Option<K> {
        self.groups.reap()
    }
}
