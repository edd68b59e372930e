//! The values the core hands out: leases, waiter handles, claims and counts.

use core::fmt;

use crate::identity::PoolId;

/// What a pool did since it was made, counted so that at every moment
/// `granted - released == active` while every lease holds one unit
/// (releases are not counted here; the caller who drops leases can count
/// them). `granted` counts leases, whatever their units, and a lease split
/// off another ([`Pool::split`](crate::Pool::split)) as one more; `active`
/// counts units. With weighted leases, `granted` minus the leases released
/// or merged away is the number of live leases (those handed to waiters
/// included).
///
/// - `granted`: leases out, at once or handed to a waiter. A lease handed
///   to a waiter that then gave up (its future dropped before it took the
///   lease) never reached a caller: it is taken back out of `granted` when
///   it passes on, so that is the one moment a total goes down (by the one
///   lease it had counted). Leases handed to waiters that have not yet
///   taken them are in `granted` and in `active`, as they are in `counts`.
/// - `waited`: acquisitions that had to queue (served or not).
/// - `cancelled`: queued acquisitions that ended without a lease (a dropped
///   future, a timeout), counted once each, whether or not a lease had
///   been handed to them before they gave up.
/// - `timed_out`: those of `cancelled` that a timeout or deadline ended.
///   The core knows no clock and leaves it 0; `workpool-std` counts its
///   `_timeout` and `_deadline` calls.
///
/// So `waited - cancelled` queued acquisitions were served or still wait.
///
/// # Examples
///
/// ```
/// let mut pool = workpool_core::Pool::new();
/// pool.set("a", 1);
/// let lease = pool.try_acquire().unwrap();
/// let waiter = pool.enqueue_key(&"a").unwrap();
/// pool.cancel(waiter).unwrap();
/// let stats = pool.stats();
/// assert_eq!((stats.granted, stats.waited, stats.cancelled), (1, 1, 1));
/// # pool.release(lease).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stats {
    /// Leases granted.
    pub granted: u64,
    /// Acquisitions that had to queue.
    pub waited: u64,
    /// Queued acquisitions that gave up without a lease.
    pub cancelled: u64,
    /// Of those, the ones a timeout or deadline ended.
    pub timed_out: u64,
}

impl core::ops::Add for Stats {
    type Output = Self;

    /// Adds two parts' totals.
    fn add(self, other: Self) -> Self {
        Self {
            granted: self.granted + other.granted,
            waited: self.waited + other.waited,
            cancelled: self.cancelled + other.cancelled,
            timed_out: self.timed_out + other.timed_out,
        }
    }
}

/// The visible state of one key: its target and how many leases are live.
///
/// A key the pool does not track reads as `Counts { target: 0, active: 0 }`.
/// `active` may exceed `target` after the target was lowered: lowering a
/// target never revokes a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counts {
    /// How many leases the key should have at most.
    pub target: u64,
    /// How many leases of the key are live.
    pub active: u64,
}

/// A lease granted by a [`Pool`](crate::Pool): one unit of a key's
/// capacity, or `n` units for a weighted acquisition
/// ([`Pool::try_acquire_key_many`](crate::Pool::try_acquire_key_many)).
///
/// Give it back with [`Pool::release`](crate::Pool::release). It is not
/// `Clone`, so a lease can be released at most once; the core has no `Drop`
/// logic, so a lease that is simply dropped keeps its capacity taken forever.
/// Adapters (such as `workpool-std`) wrap it in an RAII guard.
#[must_use = "a lease holds its capacity until it is given to `Pool::release`"]
pub struct Lease<K> {
    pub(crate) pool: PoolId,
    pub(crate) grant: Grant,
    pub(crate) key: K,
}

/// A granted unit of capacity, before the key is attached: what a waiter
/// holds between the grant and its claim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    pub(crate) shard: u32,
    pub(crate) group: u32,
    pub(crate) generation: u32,
    /// How many units of the key the grant holds, at most
    /// [`Lease::MAX_UNITS`]: a `u32` fits the 4 bytes the other fields
    /// leave as padding, so a lease is no larger than a one-unit one was.
    pub(crate) units: u32,
    pub(crate) id: u64,
}

impl Grant {
    /// The units as the public API counts them.
    #[inline]
    pub(crate) fn units(&self) -> u64 {
        u64::from(self.units)
    }
}

impl<K> Lease<K> {
    /// The most units one lease can hold: `u32::MAX`. The units live in
    /// what would otherwise be padding, so that a lease is as small as a
    /// one-unit one; an acquisition of more units is refused with
    /// [`TryAcquireError::NoCapacity`](crate::TryAcquireError::NoCapacity),
    /// since no lease could ever carry it.
    pub const MAX_UNITS: u64 = u32::MAX as u64;

    /// How many units of its key the lease holds: 1 for a lease of any
    /// one-unit acquisition, `n` for one of `n` units, 0 for a lease of no
    /// units (which counts nowhere).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 5);
    /// assert_eq!(pool.try_acquire_key(&"a").unwrap().units(), 1);
    /// assert_eq!(pool.try_acquire_key_many(&"a", 3).unwrap().units(), 3);
    /// ```
    #[inline]
    pub fn units(&self) -> u64 {
        self.grant.units()
    }

    /// Moves `other`'s units into this lease, which keeps its id; `other`
    /// ends. Nothing is freed and no count changes, so the pool need not
    /// be told.
    ///
    /// # Errors
    ///
    /// `other`, unchanged, if it is of another pool or another key, or if
    /// the sum would exceed [`MAX_UNITS`](Self::MAX_UNITS).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 4);
    /// pool.set("b", 1);
    /// let mut a = pool.try_acquire_key_many(&"a", 3).unwrap();
    /// a.merge(pool.try_acquire_key(&"a").unwrap()).unwrap();
    /// assert_eq!(a.units(), 4);
    /// let b = pool.try_acquire_key(&"b").unwrap();
    /// let b = a.merge(b).unwrap_err(); // another key: back unchanged
    /// assert_eq!((*b.key(), b.units()), ("b", 1));
    /// ```
    pub fn merge(&mut self, other: Self) -> Result<(), Self>
    where
        K: PartialEq,
    {
        let (a, b) = (self.grant, other.grant);
        if self.pool != other.pool || a.shard != b.shard {
            return Err(other);
        }
        let same_group =
            a.group != crate::waiters::NIL && a.group == b.group && a.generation == b.generation;
        // A lease of no units names no group: its key tells.
        let same_key = same_group || ((a.units == 0 || b.units == 0) && self.key == other.key);
        let Some(units) = a.units.checked_add(b.units).filter(|_| same_key) else {
            return Err(other);
        };
        if a.units == 0 {
            self.grant.group = b.group;
            self.grant.generation = b.generation;
        }
        self.grant.units = units;
        Ok(())
    }

    /// The lease id: unique within its pool, strictly increasing in grant
    /// order, starting at 1 and never 0. A lease split off another
    /// ([`Pool::split`](crate::Pool::split)) gets a fresh id, as a grant
    /// does.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 2);
    /// let first = pool.try_acquire().unwrap();
    /// let second = pool.try_acquire().unwrap();
    /// assert_eq!((first.id(), second.id()), (1, 2));
    /// ```
    pub fn id(&self) -> u64 {
        self.grant.id
    }

    /// The key whose capacity this lease holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// assert_eq!(*pool.try_acquire().unwrap().key(), "a");
    /// ```
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The shard of the pool's [parts](crate::parts) that holds the lease's
    /// key; 0 for every lease of a [`Pool`](crate::Pool), which has one.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// assert_eq!(pool.try_acquire().unwrap().shard(), 0);
    /// ```
    pub fn shard(&self) -> usize {
        self.grant.shard as usize
    }

    /// The slot of the lease's key's group in its [shard](Self::shard): the
    /// same index [`Shard::slot`](crate::parts::Shard::slot) gives for the
    /// key while it is tracked (and a live lease keeps it tracked). For
    /// adapters that keep per-key data beside the core.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// assert_eq!(pool.try_acquire().unwrap().slot(), 0);
    /// ```
    pub fn slot(&self) -> usize {
        self.grant.group as usize
    }
}

impl<K: fmt::Debug> fmt::Debug for Lease<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.grant.id)
            .field("key", &self.key)
            .field("units", &self.grant.units)
            .finish_non_exhaustive()
    }
}

/// A handle to a waiter registered with [`Pool::enqueue`](crate::Pool::enqueue)
/// or [`Pool::enqueue_key`](crate::Pool::enqueue_key).
///
/// Handles are only meaningful to the pool that issued them; any other pool
/// rejects them with [`UnknownWaiter`](crate::UnknownWaiter). A handle goes
/// stale once [`Pool::claim`](crate::Pool::claim) returned a final answer or
/// [`Pool::cancel`](crate::Pool::cancel) removed the waiter; using it later
/// returns [`UnknownWaiter`](crate::UnknownWaiter).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaiterId {
    /// The issuing pool's id, so that a handle of another pool is rejected.
    pub(crate) pool: PoolId,
    /// The shard whose slab holds the waiter, or `NIL` for the lane.
    pub(crate) part: u32,
    pub(crate) index: u32,
    /// The waiter's registration number in its slab, which is the slot's
    /// generation: never reused (a `u64` does not wrap), so a stale handle
    /// never names a later waiter of the same slot.
    pub(crate) generation: u64,
}

impl WaiterId {
    /// The waiter's slot: a dense index, smaller than the largest number of
    /// waiters registered at once. Any-key waiters and the key waiters of
    /// each [shard](Self::shard) are numbered separately, so an adapter
    /// keeps per-waiter data (a wake-up handle, say) in a plain `Vec` per
    /// part, or interleaves them. Two waiters of the same part that are
    /// registered at the same time never share a slot.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<&str>::new();
    /// let w = pool.enqueue().unwrap();
    /// assert_eq!(w.index(), 0);
    /// ```
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The shard whose waiter slab holds the waiter, or `None` for an
    /// any-key waiter, which the [lane](crate::parts::Lane) holds. A
    /// [`Pool`](crate::Pool) has one shard, 0. Slot
    /// [`index`](Self::index)es are dense per shard and in the lane.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// assert_eq!(pool.enqueue_key(&"a").unwrap().shard(), Some(0));
    /// assert_eq!(pool.enqueue().unwrap().shard(), None);
    /// ```
    pub fn shard(self) -> Option<usize> {
        (self.part != crate::waiters::NIL).then_some(self.part as usize)
    }

    /// The waiter's registration number in its part (the lane, or its
    /// [shard](Self::shard)): 0 for the part's first waiter, then one more
    /// for each waiter registered after it. Unlike the slot
    /// [`index`](Self::index) it is never reused, so an adapter can tell
    /// this waiter apart from any later one of the same slot (a `u64` does
    /// not wrap).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let a = pool.enqueue_key(&"a").unwrap();
    /// pool.cancel(a).unwrap();
    /// let b = pool.enqueue_key(&"a").unwrap();
    /// assert_eq!((a.index(), b.index()), (0, 0));
    /// assert_eq!((a.generation(), b.generation()), (0, 1));
    /// ```
    pub fn generation(self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for WaiterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shard() {
            Some(shard) => write!(f, "WaiterId({shard}:{}v{})", self.index, self.generation),
            None => write!(f, "WaiterId(any:{}v{})", self.index, self.generation),
        }
    }
}

/// What [`Pool::claim`](crate::Pool::claim) found for a waiter.
#[must_use = "a granted lease must be released or its capacity stays taken"]
pub enum Claim<K> {
    /// The pool, or the waiter's key, was closed while the waiter waited;
    /// the waiter is removed.
    Closed,
    /// The waiter was granted this lease; the waiter is removed.
    Granted(Lease<K>),
    /// The waiter is still waiting; its handle stays valid.
    Waiting,
}

impl<K: fmt::Debug> fmt::Debug for Claim<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("Closed"),
            Self::Granted(lease) => f.debug_tuple("Granted").field(lease).finish(),
            Self::Waiting => f.write_str("Waiting"),
        }
    }
}
