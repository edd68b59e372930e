//! Registering key waiters: [`Shard::enqueue_key`],
//! [`Shard::enqueue_key_many`], and [`Shard::try_or_enqueue_key_many`],
//! which grants at once or queues with one look-up of the key.

use alloc::borrow::ToOwned;

use hashbrown::Equivalent;

use crate::error::{Closed, TryAcquireError};
use crate::groups::short_hash;
use crate::lane::Lane;
use crate::lease::{Lease, WaiterId};
use crate::parts::{LeaseIds, NeedsLane};
use crate::waiters::State;

use super::Shard;

/// What [`Shard::try_or_enqueue_key_many`] did: granted at once, or
/// queued a waiter.
///
/// # Examples
///
/// ```
/// use workpool_core::parts::{Entered, Lane, Shard};
/// let lane = Lane::new();
/// let mut shard = Shard::new(0, &lane);
/// let mut ids = 1u64;
/// // A key nobody set has no room: the acquisition waits for it.
/// let entered = shard.try_or_enqueue_key_many(7, &"new", lane.arrivals(), 1, &mut ids);
/// assert!(matches!(entered, Ok(Ok(Entered::Queued(_)))));
/// ```
#[derive(Debug)]
pub enum Entered<K> {
    /// The units fit at once: the lease.
    Leased(Lease<K>),
    /// The waiter, queued behind the key's others.
    Queued(WaiterId),
}

impl<K> Shard<K> {
    /// Registers a waiter for the key, as
    /// [`Pool::enqueue_key`](crate::Pool::enqueue_key) does. `arrivals` is
    /// the lane's [`arrivals`](Lane::arrivals) count as the waiter arrives
    /// (read without the lane's lock if need be: any value the count had
    /// since the waiter started to arrive will do).
    ///
    /// # Errors
    ///
    /// [`NeedsLane`], changing nothing, without the lane while the pool has
    /// a limit. Inside: [`Closed`] once the shard is closed.
    ///
    /// # Panics
    ///
    /// If `K`'s `Eq` panics (then the shard is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Lane, Shard};
    /// use workpool_core::Claim;
    /// let lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// let w = shard.enqueue_key(None, 1, &"a", lane.arrivals(), &mut ids);
    /// let w = w.unwrap().unwrap();
    /// assert!(matches!(shard.claim(w), Ok(Claim::Waiting)));
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn enqueue_key<Q, I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
        arrivals: u64,
        ids: &mut I,
    ) -> Result<Result<WaiterId, Closed>, NeedsLane<()>>
    where
        Q: ?Sized + Equivalent<K> + ToOwned<Owned = K>,
    {
        // One unit: `Closed` is the only way it fails.
        self.enqueue_key_many(lane, hash, key, arrivals, 1, ids)
            .map(|queued| queued.map_err(|_| Closed))
    }

    /// Registers a waiter for `units` units of the key, as
    /// [`Pool::enqueue_key_many`](crate::Pool::enqueue_key_many) does.
    ///
    /// # Errors
    ///
    /// As [`enqueue_key`](Self::enqueue_key), with
    /// [`TryAcquireError::Closed`] for [`Closed`]. Inside also
    /// [`TryAcquireError::NoCapacity`] for `units == 0` (which never waits:
    /// [`try_acquire_key_many`](Self::try_acquire_key_many) grants it) and
    /// for more than [`Lease::MAX_UNITS`] units (which no lease can hold).
    ///
    /// # Panics
    ///
    /// If `K`'s `Eq` panics (then the shard is unchanged).
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
    /// let w = shard.enqueue_key_many(None, 1, &"a", lane.arrivals(), 2, &mut ids);
    /// let w = w.unwrap().unwrap();
    /// assert!(matches!(shard.claim(w), Ok(Claim::Waiting))); // 2 > target
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn enqueue_key_many<Q, I: LeaseIds>(
        &mut self,
        lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
        arrivals: u64,
        units: u64,
        ids: &mut I,
    ) -> Result<Result<WaiterId, TryAcquireError>, NeedsLane<()>>
    where
        Q: ?Sized + Equivalent<K> + ToOwned<Owned = K>,
    {
        if lane.is_none() && self.limited {
            return Err(NeedsLane(()));
        }
        if self.closed {
            return Ok(Err(TryAcquireError::Closed));
        }
        if units == 0 || units > Lease::<K>::MAX_UNITS {
            return Ok(Err(TryAcquireError::NoCapacity));
        }
        Ok(Ok(self.enqueue_units(lane, hash, key, arrivals, units, ids)))
    }

    /// [`enqueue_key_many`](Self::enqueue_key_many) once its checks
    /// passed: `units` is in `1..=MAX_UNITS`, the shard is open.
    fn enqueue_units<Q, I: LeaseIds>(
        &mut self,
        mut lane: Option<&mut Lane>,
        hash: u64,
        key: &Q,
        arrivals: u64,
        units: u64,
        ids: &mut I,
    ) -> WaiterId
    where
        Q: ?Sized + Equivalent<K> + ToOwned<Owned = K>,
    {
        let hash = short_hash(hash);
        let g = match self.find_hashed(hash, key) {
            Some(g) => g,
            None => self.insert_group(key.to_owned(), hash),
        };
        // Even, so that it is older than the any-key waiter that takes the
        // same count (stored odd). With a limit, waiters of different keys
        // compete, so each takes a count of its own from the lane.
        let order = match lane.as_deref_mut() {
            Some(lane) if lane.limit().is_some() => lane.bump_key_arrival(),
            _ => 2 * arrivals,
        };
        let pool_room = lane.as_ref().is_none_or(|l| l.newcomer_room(units));
        if pool_room && self.has_room_for_newcomer(g, units) {
            let grant = self.grant(g, units, ids);
            if let Some(lane) = lane {
                lane.count_grant(units);
            }
            self.waiters
                .insert(g, order, units as u32, State::Granted(grant))
        } else {
            self.queue_waiter(lane, g, order, units)
        }
    }

    /// Queues a waiter for `units` units of group `g`, arrived as `order`,
    /// behind the group's other waiters.
    #[inline]
    fn queue_waiter(
        &mut self,
        lane: Option<&mut Lane>,
        g: u32,
        order: u64,
        units: u64,
    ) -> WaiterId {
        self.stats.waited += 1;
        let w = self.waiters.insert(g, order, units as u32, State::Waiting);
        let group = self.groups.at_mut(g);
        let mut queue = group.queue;
        group.waiting += 1;
        self.waiters.push_back(&mut queue, w.index);
        self.groups.at_mut(g).queue = queue;
        if let Some(lane) = lane {
            self.rebalance(lane, g);
        }
        w
    }

    /// [`try_acquire_key_many`](Self::try_acquire_key_many) and, when that
    /// finds no room, [`enqueue_key_many`](Self::enqueue_key_many), with
    /// one look-up of the key: the first step of an acquisition that may
    /// wait, without the lane. The outcome is the one those two calls in a
    /// row give (`arrivals` as for `enqueue_key_many`).
    ///
    /// # Errors
    ///
    /// [`NeedsLane`] (nothing changed) while a limit is set, unless the
    /// shard's budget grants the units at once. Inside,
    /// [`TryAcquireError::Closed`] if the shard is closed, and
    /// [`TryAcquireError::NoCapacity`] for more than [`Lease::MAX_UNITS`]
    /// units (which no wait could serve). A lease of 0 units is granted at
    /// once, as `try_acquire_key_many` grants it.
    ///
    /// # Panics
    ///
    /// If `K`'s `Eq` or `Clone`, or `Q`'s `ToOwned`, panics (then the
    /// shard is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::parts::{Entered, Lane, Shard};
    /// use workpool_core::Claim;
    /// let mut lane = Lane::new();
    /// let mut shard = Shard::new(0, &lane);
    /// let mut ids = 1u64;
    /// shard.set(Some(&mut lane), 1, "a", 2, &mut ids).unwrap();
    /// let now = shard.try_or_enqueue_key_many(1, &"a", lane.arrivals(), 2, &mut ids);
    /// assert!(matches!(now, Ok(Ok(Entered::Leased(ref lease))) if lease.units() == 2));
    /// let later = shard.try_or_enqueue_key_many(1, &"a", lane.arrivals(), 1, &mut ids);
    /// let Ok(Ok(Entered::Queued(w))) = later else { panic!() };
    /// assert!(matches!(shard.claim(w), Ok(Claim::Waiting)));
    /// ```
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    pub fn try_or_enqueue_key_many<Q, I: LeaseIds>(
        &mut self,
        hash: u64,
        key: &Q,
        arrivals: u64,
        units: u64,
        ids: &mut I,
    ) -> Result<Result<Entered<K>, TryAcquireError>, NeedsLane<()>>
    where
        K: Clone,
        Q: ?Sized + Equivalent<K> + ToOwned<Owned = K>,
    {
        if self.limited || units == 0 || units > Lease::<K>::MAX_UNITS {
            // A budget's grant, or no wait at all: as the two calls.
            return match self.try_acquire_key_many(None, hash, key, units, ids)? {
                Ok(lease) => Ok(Ok(Entered::Leased(lease))),
                Err(TryAcquireError::NoCapacity) if self.limited && !self.closed => {
                    Err(NeedsLane(()))
                }
                Err(err) => Ok(Err(err)),
            };
        }
        if self.closed {
            return Ok(Err(TryAcquireError::Closed));
        }
        let short = short_hash(hash);
        let g = match self.find_hashed(short, key) {
            Some(g) if self.has_room_for_newcomer(g, units) => {
                return Ok(Ok(Entered::Leased(self.lease_from_units(g, units, ids))));
            }
            Some(g) => g,
            None => self.insert_group(key.to_owned(), short),
        };
        Ok(Ok(Entered::Queued(self.queue_waiter(
            None,
            g,
            2 * arrivals,
            units,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::string::String;

    use super::Entered;
    use crate::error::TryAcquireError;
    use crate::parts::{Lane, NeedsLane, Shard};

    /// One situation: a shard (and its lane) after some history, and the
    /// acquisition to make in it.
    struct Case {
        target: u64,
        held: u64,
        queued: u64,
        closed: bool,
        limit: Option<u64>,
        key: &'static str,
        units: u64,
    }

    fn build(case: &Case) -> (Lane, Shard<&'static str>, u64) {
        let mut lane = Lane::new();
        let mut shard = Shard::new(0, &lane);
        let mut ids = 1u64;
        shard
            .set(Some(&mut lane), 1, "a", case.target, &mut ids)
            .unwrap();
        for _ in 0..case.held {
            let lease = shard.try_acquire_key(Some(&mut lane), 1, &"a", &mut ids);
            let _held = lease.unwrap().unwrap();
        }
        for _ in 0..case.queued {
            let arrivals = lane.arrivals();
            shard
                .enqueue_key(Some(&mut lane), 1, &"a", arrivals, &mut ids)
                .unwrap()
                .unwrap();
        }
        if let Some(limit) = case.limit {
            lane.set_limit(Some(limit));
            shard.enter_limit(&mut lane);
        }
        if case.closed {
            shard.close(&mut lane);
        }
        (lane, shard, ids)
    }

    /// What a shard looks like from outside, to compare two of them.
    fn seen(shard: &Shard<&'static str>) -> String {
        format!(
            "{:?} {:?} waiters {} stats {:?}",
            shard.counts(1, &"a"),
            shard.counts(2, &"b"),
            shard.waiters(),
            shard.stats()
        )
    }

    /// `try_or_enqueue_key_many` does what `try_acquire_key_many` and then
    /// (on `NoCapacity`) `enqueue_key_many` do, in every situation: room,
    /// no room, waiters ahead, a key not tracked, no units, too many
    /// units, closed, a limit.
    #[test]
    fn try_or_enqueue_matches_the_two_calls() {
        let mut checked = 0;
        for target in [0, 1, 3] {
            for held in 0..=target.min(2) {
                for queued in [0, 1] {
                    for closed in [false, true] {
                        for limit in [None, Some(8)] {
                            for key in ["a", "b"] {
                                for units in [0, 1, 2, u64::from(u32::MAX) + 1] {
                                    let case = Case {
                                        target,
                                        held,
                                        queued,
                                        closed,
                                        limit,
                                        key,
                                        units,
                                    };
                                    compare(&case);
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 300);
    }

    fn compare(case: &Case) {
        let hash = if case.key == "a" { 1 } else { 2 };
        let (lane, mut one, mut ids_one) = build(case);
        let arrivals = lane.arrivals();
        let combined =
            one.try_or_enqueue_key_many(hash, &case.key, arrivals, case.units, &mut ids_one);
        let (_lane, mut two, mut ids_two) = build(case);
        let tried = two.try_acquire_key_many(None, hash, &case.key, case.units, &mut ids_two);
        let expected = match tried {
            Err(NeedsLane(())) => "needs lane".into(),
            Ok(Ok(lease)) => format!("leased {} {}", lease.id(), lease.units()),
            Ok(Err(TryAcquireError::Closed)) => "closed".into(),
            Ok(Err(TryAcquireError::NoCapacity)) => {
                match two.enqueue_key_many(
                    None,
                    hash,
                    &case.key,
                    arrivals,
                    case.units,
                    &mut ids_two,
                ) {
                    Err(NeedsLane(())) => "needs lane".into(),
                    Ok(Ok(w)) => format!("queued {}", w.generation()),
                    Ok(Err(err)) => format!("{err:?}"),
                }
            }
        };
        let got: String = match combined {
            Err(NeedsLane(())) => "needs lane".into(),
            Ok(Ok(Entered::Leased(lease))) => format!("leased {} {}", lease.id(), lease.units()),
            Ok(Ok(Entered::Queued(w))) => format!("queued {}", w.generation()),
            Ok(Err(TryAcquireError::Closed)) => "closed".into(),
            Ok(Err(err)) => format!("{err:?}"),
        };
        let what = (case.target, case.held, case.queued, case.closed, case.limit);
        let what = format!("{what:?} key {} units {}", case.key, case.units);
        assert_eq!(got, expected, "{what}");
        assert_eq!(seen(&one), seen(&two), "{what}");
        assert_eq!(ids_one, ids_two, "{what}");
    }
}
