//! The pool: groups, waiters and the rules that connect them.

use alloc::borrow::ToOwned;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, Equivalent, HashTable};

use crate::bands::MIN_SLOTS;
use crate::error::{Closed, ReleaseError, TryAcquireError, UnknownWaiter};
use crate::groups::{short_hash, table_hash, Group, Groups, ShortHash};
use crate::identity::Identity;
use crate::lease::{Claim, Counts, Grant, Lease, WaiterId};
use crate::waiters::{List, State, Waiters, NIL};

/// The keyed counting state machine: a target and an active count per key,
/// round-robin any-key selection and a FIFO waiter queue.
///
/// The pool never blocks, never sleeps and knows no waker: it is told what
/// happened and answers who gets which lease. See the [crate docs](crate) for
/// the method groups and a complete walk-through.
///
/// # Fairness
///
/// Waiters are served strictly oldest first among those that capacity can
/// serve: capacity freed or added at key `k` goes to the oldest waiter that
/// asked for `k` or for any key. A `try_acquire*` call or a new waiter never
/// takes capacity an earlier waiter could use (no barging). Any-key grants
/// that find capacity at once rotate round-robin over the keys with room.
///
/// # Shrinking a target
///
/// [`set`](Self::set) with a lower target revokes nothing: live leases stay
/// valid and keep counting, and grants for that key resume only once
/// `active < target`. Waiters stay queued. With target 0 the key grants
/// nothing; it is forgotten once it has no live lease and no waiter, and a
/// key that is set again later still counts the leases it had.
///
/// A waiter for a key whose target is 0 does not fail: it waits until the
/// key is set again or the pool closes, which may be never. When a key goes
/// away for good, [`close_key`](Self::close_key) sets its target to 0 *and*
/// tells the waiters it has at that moment [`Closed`]; waiters that arrive
/// later wait as on any key with target 0.
///
/// # Identity
///
/// Leases and waiter handles name their pool, and every other pool rejects
/// them, even after the pool that issued them was dropped. Where the target
/// has atomic read-modify-write the name comes from a global counter. Where
/// it has not (`thumbv6m`, `riscv32imc`), it is the address of a one-byte
/// allocation the pool makes when created; dropping a pool that handed out a
/// lease or a waiter handle leaks that byte, so that no later pool gets the
/// same address.
///
/// # Memory
///
/// Memory follows what is live, not what ever was: the slabs of groups and
/// of waiters reuse their lowest free slots first and cut off their free
/// top, and they and the key table give capacity back once less than a
/// quarter of it is in use (amortised O(1); a pool that stays at one size
/// allocates nothing). After a burst of waiters or keys the pool returns to
/// about the size of what outlived the burst. A slot cannot move while it is
/// in use, so a long-lived waiter or key that took a high slot during the
/// burst holds the slots below it until it leaves. Forgotten keys hold their
/// slots until [`poll_forgotten`](Self::poll_forgotten) collects them.
pub struct Pool<K, S = DefaultHashBuilder> {
    /// Told apart from every other pool's, see [`Identity`].
    identity: Identity,
    hasher: S,
    /// Group slots, found by the key's cached hash.
    table: HashTable<u32>,
    groups: Groups<K>,
    waiters: Waiters,
    /// Any-key waiters, oldest first.
    any_queue: List,
    /// Waiters whose outcome is decided and not yet reported by `poll_wake`.
    wake: List,
    next_lease: u64,
    next_seq: u64,
    closed: bool,
}

impl<K: Hash + Eq + Clone> Pool<K> {
    /// Creates an empty, open pool with the default hasher.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_core::Pool::<&str>::new();
    /// assert!(pool.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_hasher(DefaultHashBuilder::default())
    }
}

impl<K, S> Pool<K, S> {
    /// Creates an empty, open pool that hashes keys with `hasher`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hashbrown::DefaultHashBuilder;
    /// let pool = workpool_core::Pool::<u32, _>::with_hasher(DefaultHashBuilder::default());
    /// assert!(!pool.is_closed());
    /// ```
    #[must_use]
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_identity(hasher, Identity::new())
    }

    /// The constructor behind [`with_hasher`](Self::with_hasher); unit tests
    /// pass an anchored identity to cover targets without atomics.
    fn with_identity(hasher: S, identity: Identity) -> Self {
        let id = identity.id();
        Self {
            identity,
            hasher,
            table: HashTable::new(),
            groups: Groups::new(),
            waiters: Waiters::new(id),
            any_queue: List::EMPTY,
            wake: List::EMPTY,
            next_lease: 1,
            next_seq: 0,
            closed: false,
        }
    }

    // ---------------------------------------------------------------- queries

    /// The target and active count of `key`; `Counts::default()` for a key
    /// the pool does not track.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Counts, Pool};
    /// let mut pool = Pool::new();
    /// pool.set("a", 2);
    /// let _lease = pool.try_acquire_key(&"a").unwrap();
    /// assert_eq!(pool.counts(&"a"), Counts { target: 2, active: 1 });
    /// assert_eq!(pool.counts(&"b"), Counts { target: 0, active: 0 });
    /// ```
    #[inline]
    pub fn counts<Q>(&self, key: &Q) -> Counts
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        self.find(key).map_or_else(Counts::default, |g| {
            let g = self.groups.at(g);
            Counts {
                target: g.target,
                active: g.active,
            }
        })
    }

    /// How many waiters are waiting for `key` specifically (any-key waiters
    /// are not counted; see [`waiters`](Self::waiters)).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let _w = pool.enqueue_key(&"a").unwrap();
    /// assert_eq!(pool.waiting(&"a"), 1);
    /// ```
    pub fn waiting<Q>(&self, key: &Q) -> usize
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        self.find(key)
            .map_or(0, |g| self.groups.at(g).waiting as usize)
    }

    /// How many waiters of either kind are still waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<&str>::new();
    /// let _w = pool.enqueue().unwrap();
    /// assert_eq!(pool.waiters(), 1);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.waiting
    }

    /// How many keys the pool tracks: keys with a non-zero target, a live
    /// lease or a waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// pool.set("b", 0);
    /// assert_eq!(pool.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when the pool tracks no key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(workpool_core::Pool::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.groups.len() == 0
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<u8>::new();
    /// pool.close();
    /// assert!(pool.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// A snapshot of every tracked key with its counts, in no particular
    /// order. It borrows the pool, so the pool cannot change while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// pool.set("b", 2);
    /// let mut all: Vec<_> = pool.iter().map(|(k, c)| (*k, c.target)).collect();
    /// all.sort();
    /// assert_eq!(all, [("a", 1), ("b", 2)]);
    /// ```
    pub fn iter(&self) -> Iter<'_, K> {
        Iter {
            table: self.table.iter(),
            groups: &self.groups,
        }
    }

    /// How many waiter slots the pool has: every registered waiter's
    /// [`WaiterId::index`] is below it. It follows the number of waiters
    /// registered at once, up after a burst and down again once the burst
    /// is gone (slots are reused lowest first, and the pool gives back the
    /// free slots at the top). An adapter that keeps per-waiter data in a
    /// `Vec` indexed by slot can truncate it to this length after a waiter
    /// leaves, so that it shrinks too.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::<&str>::new();
    /// let waiters: Vec<_> = (0..100).map(|_| pool.enqueue().unwrap()).collect();
    /// assert_eq!(pool.waiter_slots(), 100);
    /// for w in waiters {
    ///     pool.cancel(w).unwrap();
    /// }
    /// assert_eq!(pool.waiter_slots(), 0);
    /// ```
    pub fn waiter_slots(&self) -> usize {
        self.waiters.len()
    }

    // ----------------------------------------------------------------- inputs

    /// Sets the target of `key`, at once.
    ///
    /// Raising it serves waiters (oldest first) with the new room, then puts
    /// the rest of the room up for any-key grants. Lowering it revokes no
    /// lease. Setting 0 stops grants for the key and forgets it once it has
    /// no live lease and no waiter; waiters for the key keep waiting (until
    /// it is set again or the pool closes): use
    /// [`close_key`](Self::close_key) to fail them instead. `set` works after
    /// [`close`](Self::close) too. Any waiter it serves is reported by
    /// [`poll_wake`](Self::poll_wake).
    ///
    /// Returns `key` when the pool did not keep it (it already tracked an
    /// equal key, or the target is 0 for a key it does not track), so that
    /// the caller decides where the key is dropped; `None` when the pool
    /// stored it. A key the call forgets is handed out by
    /// [`poll_forgotten`](Self::poll_forgotten).
    ///
    /// # Panics
    ///
    /// If a new key would make the pool track more than `u32::MAX - 1` keys,
    /// or if `K`'s `Hash` or `Eq` panics (then the pool is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// assert_eq!(pool.set("a", 1), None); // stored
    /// let lease = pool.try_acquire().unwrap();
    /// assert_eq!(pool.set("a", 0), Some("a")); // the lease stays valid
    /// assert_eq!(pool.counts(&"a").active, 1);
    /// pool.release(lease).unwrap();
    /// assert!(pool.is_empty());
    /// assert_eq!(pool.poll_forgotten(), Some("a"));
    /// ```
    pub fn set(&mut self, key: K, target: u64) -> Option<K>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let hash = short_hash(self.hasher.hash_one(&key));
        let (g, unused) = match self.find_hashed(hash, &key) {
            Some(g) => (g, Some(key)),
            None if target == 0 => return Some(key),
            None => (self.insert_group(key, hash), None),
        };
        let group = self.groups.at_mut(g);
        let old = core::mem::replace(&mut group.target, target);
        if target > old {
            self.serve(g);
        } else {
            self.forget_if_idle(g);
        }
        unused
    }

    /// Takes a lease from any key with room, round-robin over those keys.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] once the pool is closed;
    /// [`TryAcquireError::NoCapacity`] when no key has room (a key with room
    /// never has an eligible waiter, so this never barges).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Pool, TryAcquireError};
    /// let mut pool = Pool::new();
    /// pool.set("a", 1);
    /// pool.set("b", 1);
    /// let one = pool.try_acquire().unwrap();
    /// let two = pool.try_acquire().unwrap();
    /// assert_ne!(one.key(), two.key());
    /// assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::NoCapacity);
    /// ```
    #[inline]
    pub fn try_acquire(&mut self) -> Result<Lease<K>, TryAcquireError>
    where
        K: Clone,
    {
        if self.closed {
            return Err(TryAcquireError::Closed);
        }
        self.take_any(Self::lease_from)
            .ok_or(TryAcquireError::NoCapacity)
    }

    /// Takes a lease from `key` if it has room.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::Closed`] once the pool is closed;
    /// [`TryAcquireError::NoCapacity`] when `active >= target` for `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire_key(&"a").unwrap();
    /// assert!(pool.try_acquire_key(&"a").is_err());
    /// assert!(pool.try_acquire_key(&"b").is_err());
    /// # pool.release(lease).unwrap();
    /// ```
    #[inline]
    pub fn try_acquire_key<Q>(&mut self, key: &Q) -> Result<Lease<K>, TryAcquireError>
    where
        K: Clone,
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        if self.closed {
            return Err(TryAcquireError::Closed);
        }
        self.find(key)
            .and_then(|g| self.take_from(g, Self::lease_from))
            .ok_or(TryAcquireError::NoCapacity)
    }

    /// Registers a waiter for a lease from any key.
    ///
    /// If a key has room the waiter is granted at once (its
    /// [`claim`](Self::claim) returns the lease; it is not reported by
    /// `poll_wake`); otherwise it joins the back of the queue.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the pool is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::new();
    /// let waiter = pool.enqueue().unwrap();
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Waiting)));
    /// pool.set("a", 1);
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Granted(_))));
    /// ```
    pub fn enqueue(&mut self) -> Result<WaiterId, Closed> {
        if self.closed {
            return Err(Closed);
        }
        let seq = self.bump_seq();
        Ok(match self.take_any(Self::grant) {
            Some(grant) => self.waiters.insert(NIL, seq, State::Granted(grant)),
            None => {
                let w = self.waiters.insert(NIL, seq, State::Waiting);
                self.waiters.push_back(&mut self.any_queue, w.index);
                w
            }
        })
    }

    /// Registers a waiter for a lease from `key`.
    ///
    /// If `key` has room the waiter is granted at once; otherwise it joins
    /// the back of the key's queue (an untracked key starts being tracked,
    /// with target 0, while someone waits for it).
    ///
    /// # Errors
    ///
    /// [`Closed`] once the pool is closed.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash` or `Eq` panics (then the pool is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::new();
    /// let waiter = pool.enqueue_key(&"a").unwrap();
    /// pool.set("b", 1); // cannot serve a waiter for "a"
    /// assert_eq!(pool.poll_wake(), None);
    /// pool.set("a", 1);
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// ```
    pub fn enqueue_key<Q>(&mut self, key: &Q) -> Result<WaiterId, Closed>
    where
        K: Hash + Eq,
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
        S: BuildHasher,
    {
        if self.closed {
            return Err(Closed);
        }
        let hash = short_hash(self.hasher.hash_one(key));
        let g = match self.find_hashed(hash, key) {
            Some(g) => g,
            None => self.insert_group(key.to_owned(), hash),
        };
        let seq = self.bump_seq();
        Ok(match self.take_from(g, Self::grant) {
            Some(grant) => self.waiters.insert(g, seq, State::Granted(grant)),
            None => {
                let w = self.waiters.insert(g, seq, State::Waiting);
                let group = self.groups.at_mut(g);
                let mut queue = group.queue;
                group.waiting += 1;
                self.waiters.push_back(&mut queue, w.index);
                self.groups.at_mut(g).queue = queue;
                w
            }
        })
    }

    /// Removes a waiter that gave up. If it had already been granted a lease,
    /// that lease is released: it goes to the next eligible waiter or back
    /// to its key. O(1).
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` was already claimed or cancelled, or
    /// belongs to another pool; nothing changes then.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// let first = pool.enqueue().unwrap(); // granted at once
    /// let second = pool.enqueue().unwrap(); // waits
    /// pool.cancel(first).unwrap(); // its lease passes on
    /// assert_eq!(pool.poll_wake(), Some(second));
    /// ```
    pub fn cancel(&mut self, waiter: WaiterId) -> Result<(), UnknownWaiter> {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        let (index, group) = (waiter.index, w.group);
        if w.is_waiting() {
            self.unlink_waiting(index, group);
            self.waiters.remove(index);
            if group != NIL {
                self.forget_if_idle(group);
            }
        } else if let State::Granted(grant) = self.finish(index) {
            self.give_back(grant.group);
        }
        Ok(())
    }

    /// Gives a lease back. Its capacity goes at once to the oldest eligible
    /// waiter (reported by [`poll_wake`](Self::poll_wake)) or back to its key.
    /// Works after [`close`](Self::close) too.
    ///
    /// Returns the lease's key, so that the caller decides where it is
    /// dropped (`workpool-std` drops it after unlocking).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::ForeignPool`] for a lease of another pool,
    /// [`ReleaseError::Stale`] for one that is not live here. Nothing
    /// changes then, and the error hands the lease back
    /// ([`ReleaseError::into_lease`]), so a lease given to the wrong pool
    /// can still be released into its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Pool, ReleaseError};
    /// let (mut a, mut b) = (Pool::new(), Pool::new());
    /// a.set("k", 1);
    /// b.set("k", 1);
    /// let lease = a.try_acquire().unwrap();
    /// let err = b.release(lease).unwrap_err();
    /// assert!(matches!(err, ReleaseError::ForeignPool(_)));
    /// assert_eq!(b.counts(&"k").active, 0);
    /// assert_eq!(a.release(err.into_lease()).unwrap(), "k"); // the key back
    /// assert_eq!(a.counts(&"k").active, 0);
    /// ```
    #[inline]
    pub fn release(&mut self, lease: Lease<K>) -> Result<K, ReleaseError<K>> {
        if lease.pool != self.identity.id() {
            return Err(ReleaseError::ForeignPool(lease));
        }
        let Grant {
            group,
            generation,
            id,
        } = lease.grant;
        match self.groups.get_checked(group, generation) {
            Some(g) if g.active > 0 && id < self.next_lease => {
                self.give_back(group);
                Ok(lease.key)
            }
            _ => Err(ReleaseError::Stale(lease)),
        }
    }

    /// Closes the pool: every waiting waiter is told [`Closed`] (reported by
    /// [`poll_wake`](Self::poll_wake), answered by [`claim`](Self::claim)),
    /// and later requests fail. `set`, queries and releases keep working;
    /// leases already out stay valid. Closing twice does nothing.
    ///
    /// Unlike every other input this is not O(1) but O(live keys +
    /// waiters), once: it walks the any-key queue and, if key waiters are
    /// left, the table of live keys (never the slots of keys forgotten
    /// long ago).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::<&str>::new();
    /// let waiter = pool.enqueue().unwrap();
    /// pool.close();
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Closed)));
    /// assert!(pool.enqueue().is_err());
    /// ```
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let Self {
            table,
            groups,
            waiters,
            any_queue,
            wake,
            ..
        } = self;
        close_queue(waiters, wake, any_queue);
        if waiters.waiting == 0 {
            return;
        }
        // Every key waiter waits for a live key, and the table holds exactly
        // the live keys, in at most 32 buckets or about 4.6 per key (see
        // `shrink_table`).
        table.retain(|&mut g| {
            let group = groups.at_mut(g);
            if group.waiting == 0 {
                return true;
            }
            group.waiting = 0;
            close_queue(waiters, wake, &mut group.queue);
            if !group.is_idle() {
                return true;
            }
            // Forgotten, as `forget` does; `retain` unlinks it.
            groups.ring_remove(g);
            groups.retire(g);
            false
        });
        self.shrink_table();
    }

    /// Closes one key: its target becomes 0 and every waiter waiting for it
    /// right now is told [`Closed`] (reported by
    /// [`poll_wake`](Self::poll_wake), oldest first, and answered by
    /// [`claim`](Self::claim) with [`Claim::Closed`]). Then the key is
    /// forgotten if it has no live lease (collect it from
    /// [`poll_forgotten`](Self::poll_forgotten)).
    ///
    /// It is an event, not a state: the pool does not remember closed keys
    /// (that would cost memory for every key ever closed). A waiter that
    /// arrives later for the same key waits as on any key with target 0,
    /// until the key is set again. Any-key waiters are not affected, nor
    /// are waiters already granted a lease from the key (their
    /// [`claim`](Self::claim) hands it over). Leases out stay valid and keep
    /// counting until released, also if the key is set again. A key the
    /// pool does not track is left alone; on a closed pool only the target
    /// changes (its waiters were told at [`close`](Self::close)).
    ///
    /// O(1) plus O(1) per waiter it fails, which is the size of its output;
    /// a waiter is failed at most once, so this is O(1) amortised.
    ///
    /// # Panics
    ///
    /// If `Q`'s `Hash` or `Eq` panics (then the pool is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Counts, Pool};
    /// let mut pool = Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire_key(&"a").unwrap();
    /// let waiter = pool.enqueue_key(&"a").unwrap();
    /// let any = pool.enqueue().unwrap();
    ///
    /// pool.close_key(&"a");
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert_eq!(pool.poll_wake(), None); // the any-key waiter still waits
    /// assert!(matches!(pool.claim(waiter), Ok(Claim::Closed)));
    /// assert!(matches!(pool.claim(any), Ok(Claim::Waiting)));
    /// assert_eq!(pool.counts(&"a"), Counts { target: 0, active: 1 });
    ///
    /// // A later waiter waits, and is served once the key is back.
    /// let later = pool.enqueue_key(&"a").unwrap();
    /// pool.release(lease).unwrap();
    /// pool.set("a", 2); // the older waiter first
    /// assert_eq!(pool.poll_wake(), Some(any));
    /// assert_eq!(pool.poll_wake(), Some(later));
    /// ```
    pub fn close_key<Q>(&mut self, key: &Q)
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        if let Some(g) = self.find(key) {
            self.groups.at_mut(g).target = 0;
            self.close_group(g);
        }
    }

    // ---------------------------------------------------------------- outputs

    /// True when [`poll_wake`](Self::poll_wake) has a waiter to report: a
    /// cheap check an adapter can make before draining it.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let _waiter = pool.enqueue_key(&"a").unwrap();
    /// assert!(!pool.has_wakes());
    /// pool.set("a", 1);
    /// assert!(pool.has_wakes());
    /// ```
    #[inline]
    pub fn has_wakes(&self) -> bool {
        self.wake != List::EMPTY
    }

    /// True when [`poll_forgotten`](Self::poll_forgotten) has a key to hand
    /// out: a cheap check an adapter can make before draining it.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set("a", 1);
    /// assert!(!pool.has_forgotten());
    /// pool.set("a", 0);
    /// assert!(pool.has_forgotten());
    /// ```
    #[inline]
    pub fn has_forgotten(&self) -> bool {
        self.groups.has_retired()
    }

    /// The next waiter whose outcome was decided (granted a lease, or told
    /// the pool or its key closed) since it last waited, oldest decision first; `None`
    /// when there is nothing new.
    ///
    /// New entries appear only during [`set`](Self::set),
    /// [`release`](Self::release), [`cancel`](Self::cancel),
    /// [`close`](Self::close) and [`close_key`](Self::close_key); drain this
    /// after each of those and wake the waiters it names. A waiter that is claimed or cancelled before it is
    /// reported is not reported.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// let waiter = pool.enqueue_key(&"a").unwrap();
    /// assert_eq!(pool.poll_wake(), None);
    /// pool.set("a", 1);
    /// assert_eq!(pool.poll_wake(), Some(waiter));
    /// assert_eq!(pool.poll_wake(), None);
    /// ```
    #[must_use = "every waiter it names must be woken"]
    #[inline]
    pub fn poll_wake(&mut self) -> Option<WaiterId> {
        if self.wake == List::EMPTY {
            return None; // the common case, kept inline
        }
        let index = self.waiters.pop_front(&mut self.wake)?;
        self.waiters.slot_mut(index).in_wake = false;
        Some(self.waiters.id(index))
    }

    /// The key of the next group the pool forgot (target 0, no live lease,
    /// no waiter), newest first; `None` when there is nothing to collect.
    ///
    /// The pool never drops a key in the middle of an operation: it keeps
    /// the keys it forgets until they are collected here, so that an adapter
    /// can drop them after unlocking (a key's `Drop` is user code). Drain it
    /// after [`set`](Self::set), [`release`](Self::release),
    /// [`cancel`](Self::cancel), [`close`](Self::close) and
    /// [`close_key`](Self::close_key). A key that is
    /// never collected is dropped when its slot is reused or the pool is
    /// dropped, so not draining costs memory (the slab cannot shrink past an
    /// uncollected key), never correctness.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut pool = workpool_core::Pool::new();
    /// pool.set(String::from("a"), 1);
    /// pool.set(String::from("a"), 0);
    /// assert!(pool.is_empty());
    /// assert_eq!(pool.poll_forgotten().as_deref(), Some("a"));
    /// assert_eq!(pool.poll_forgotten(), None);
    /// ```
    #[must_use = "the key is dropped where the returned value is"]
    #[inline]
    pub fn poll_forgotten(&mut self) -> Option<K> {
        self.groups.reap()
    }

    /// Asks where a waiter stands. [`Claim::Granted`] hands over its lease
    /// and [`Claim::Closed`] reports the close (of the pool or of the
    /// waiter's key); both remove the waiter, so
    /// its handle goes stale. [`Claim::Waiting`] leaves it queued.
    ///
    /// # Errors
    ///
    /// [`UnknownWaiter`] if `waiter` was already claimed or cancelled, or
    /// belongs to another pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_core::{Claim, Pool};
    /// let mut pool = Pool::new();
    /// pool.set("a", 1);
    /// let waiter = pool.enqueue().unwrap();
    /// let Ok(Claim::Granted(lease)) = pool.claim(waiter) else { panic!() };
    /// assert_eq!(lease.id(), 1);
    /// assert!(pool.claim(waiter).is_err());
    /// ```
    pub fn claim(&mut self, waiter: WaiterId) -> Result<Claim<K>, UnknownWaiter>
    where
        K: Clone,
    {
        let w = self.waiters.lookup(waiter).ok_or(UnknownWaiter)?;
        let key = match &w.state() {
            State::Waiting => return Ok(Claim::Waiting),
            // Clone before removing: if `K::clone` panics the waiter keeps
            // its grant, and cancelling it later passes the grant on.
            State::Granted(grant) => Some(self.groups.at(grant.group).key.clone()),
            _ => None,
        };
        Ok(match (self.finish(waiter.index), key) {
            (State::Granted(grant), Some(key)) => Claim::Granted(Lease {
                pool: self.identity.id(),
                grant,
                key,
            }),
            _ => Claim::Closed,
        })
    }

    // ---------------------------------------------------------------- helpers

    /// A fresh arrival number for a waiter about to get a handle.
    fn bump_seq(&mut self) -> u64 {
        self.identity.mark_named();
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    #[inline]
    fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Hash + Equivalent<K>,
        S: BuildHasher,
    {
        self.find_hashed(short_hash(self.hasher.hash_one(key)), key)
    }

    #[inline]
    fn find_hashed<Q>(&self, hash: ShortHash, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Equivalent<K>,
    {
        let groups = &self.groups;
        self.table
            .find(table_hash(hash), |&g| {
                let group = groups.at(g);
                group.hash == hash && key.equivalent(&group.key)
            })
            .copied()
    }

    fn insert_group(&mut self, key: K, hash: ShortHash) -> u32 {
        let g = self.groups.insert(key, hash);
        let groups = &self.groups;
        self.table
            .insert_unique(table_hash(hash), g, |&i| table_hash(groups.at(i).hash));
        g
    }

    /// Forgets group `g` if nothing refers to it any more.
    #[inline]
    fn forget_if_idle(&mut self, g: u32) {
        if self.groups.at(g).is_idle() {
            self.forget(g);
        }
    }

    #[cold]
    fn forget(&mut self, g: u32) {
        let group = self.groups.at(g);
        if let Ok(entry) = self.table.find_entry(table_hash(group.hash), |&i| i == g) {
            entry.remove();
        }
        self.groups.ring_remove(g);
        self.groups.retire(g);
        self.shrink_table();
    }

    /// Gives the table's spare buckets back once less than a quarter of its
    /// capacity (7/8 of its buckets) is used, keeping room for twice its
    /// length: each shrink is paid for by the removals since the table was
    /// last resized, so this is O(1) amortised, and growing and shrinking
    /// never alternate on neighbouring operations.
    #[inline]
    fn shrink_table(&mut self) {
        let (len, buckets) = (self.table.len(), self.table.num_buckets());
        if buckets > MIN_BUCKETS && len * 32 < buckets * 7 {
            self.shrink_table_to(2 * len);
        }
    }

    #[cold]
    fn shrink_table_to(&mut self, len: usize) {
        let groups = &self.groups;
        self.table
            .shrink_to(len.max(MIN_SLOTS), |&i| table_hash(groups.at(i).hash));
    }

    /// Counts one grant from group `g`, which must have room. Runs no user
    /// code, so it cannot panic half-way.
    #[inline]
    fn grant(&mut self, g: u32) -> Grant {
        let generation = self.groups.generation(g);
        let group = self.groups.at_mut(g);
        debug_assert!(group.has_room());
        group.active += 1;
        // The lease made of this grant, now or at its claim, names the pool.
        self.identity.mark_named();
        let id = self.next_lease;
        self.next_lease += 1;
        Grant {
            group: g,
            generation,
            id,
        }
    }

    /// Attaches a clone of the group's key, cloned *before* the grant is
    /// counted so that a panicking `K::clone` leaves the pool untouched.
    #[inline]
    fn lease_from(&mut self, g: u32) -> Lease<K>
    where
        K: Clone,
    {
        let key = self.groups.at(g).key.clone();
        Lease {
            pool: self.identity.id(),
            grant: self.grant(g),
            key,
        }
    }

    /// Takes from the group under the ring's cursor with `take` (a lease
    /// or a bare grant), moving the cursor on.
    #[inline]
    fn take_any<T>(&mut self, take: impl FnOnce(&mut Self, u32) -> T) -> Option<T> {
        let g = self.any_with_room()?;
        let taken = take(self, g);
        self.groups.advance_past(g);
        Some(taken)
    }

    /// The group under the ring's cursor once full groups are skipped (and
    /// unlinked).
    fn any_with_room(&mut self) -> Option<u32> {
        loop {
            let g = self.groups.cursor();
            if g == NIL {
                return None;
            }
            if self.groups.at(g).has_room() {
                debug_assert_eq!(self.any_queue, List::EMPTY, "waiter left behind room");
                return Some(g);
            }
            self.groups.ring_remove(g);
        }
    }

    /// Takes from group `g` with `take` (a lease or a bare grant) if it has
    /// room.
    #[inline]
    fn take_from<T>(&mut self, g: u32, take: impl FnOnce(&mut Self, u32) -> T) -> Option<T> {
        self.has_room_for_newcomer(g).then(|| take(self, g))
    }

    #[inline]
    fn has_room_for_newcomer(&self, g: u32) -> bool {
        let group = self.groups.at(g);
        debug_assert!(
            !group.has_room() || group.queue == List::EMPTY,
            "waiter left behind room"
        );
        group.has_room()
    }

    /// Returns one unit of capacity to group `g` and passes it on.
    #[inline]
    fn give_back(&mut self, g: u32) {
        let group = self.groups.at_mut(g);
        group.active -= 1;
        if group.queue == List::EMPTY && self.any_queue == List::EMPTY {
            // Nobody to serve: the common, uncontended case.
            self.groups.ring_offer(g);
        } else {
            self.serve(g);
        }
        self.forget_if_idle(g);
    }

    /// Hands group `g`'s room to waiters, oldest eligible first, then leaves
    /// what is left for any-key grants.
    fn serve(&mut self, g: u32) {
        while self.groups.at(g).has_room() {
            let key_head = self.groups.at(g).queue.head;
            let any_head = self.any_queue.head;
            let from_key = match (key_head, any_head) {
                (NIL, NIL) => break,
                (_, NIL) => true,
                (NIL, _) => false,
                (k, a) => self.waiters.slot(k).seq < self.waiters.slot(a).seq,
            };
            let grant = self.grant(g);
            let (index, queue) = if from_key {
                (key_head, g)
            } else {
                (any_head, NIL)
            };
            self.unlink_waiting(index, queue);
            self.decide(index, State::Granted(grant));
        }
        self.groups.ring_offer(g);
    }

    /// Takes a waiting waiter out of its queue: group `group`'s, or the
    /// any-key queue for `NIL`.
    fn unlink_waiting(&mut self, index: u32, group: u32) {
        self.waiters.waiting -= 1;
        if group == NIL {
            self.waiters.unlink(&mut self.any_queue, index);
        } else {
            let g = self.groups.at_mut(group);
            let mut queue = g.queue;
            g.waiting -= 1;
            self.waiters.unlink(&mut queue, index);
            self.groups.at_mut(group).queue = queue;
        }
    }

    /// Records a waiter's outcome and queues it for `poll_wake`.
    #[inline]
    fn decide(&mut self, index: u32, state: State) {
        decide(&mut self.waiters, &mut self.wake, index, state);
    }

    /// Tells every key waiter of group `g` that it closed, then forgets the
    /// group if nothing else refers to it.
    fn close_group(&mut self, g: u32) {
        let group = self.groups.at_mut(g);
        let mut queue = core::mem::replace(&mut group.queue, List::EMPTY);
        group.waiting = 0;
        close_queue(&mut self.waiters, &mut self.wake, &mut queue);
        self.forget_if_idle(g);
    }

    /// Removes a decided waiter (granted or closed) and returns its state.
    fn finish(&mut self, index: u32) -> State {
        if self.waiters.slot(index).in_wake {
            self.waiters.unlink(&mut self.wake, index);
            self.waiters.slot_mut(index).in_wake = false;
        }
        self.waiters.remove(index)
    }
}

impl<K: Hash + Eq + Clone> Default for Pool<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, S> fmt::Debug for Pool<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("keys", &self.groups.len())
            .field("waiters", &self.waiters.waiting)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// The table never shrinks below this many buckets.
const MIN_BUCKETS: usize = 32;

/// Records a waiter's outcome and queues it on `wake` for `poll_wake`.
#[inline]
fn decide(waiters: &mut Waiters, wake: &mut List, index: u32, state: State) {
    let w = waiters.slot_mut(index);
    w.set_state(state);
    w.in_wake = true;
    waiters.push_back(wake, index);
}

/// Tells every waiter of `queue` that it was closed, emptying it.
fn close_queue(waiters: &mut Waiters, wake: &mut List, queue: &mut List) {
    while let Some(index) = waiters.pop_front(queue) {
        waiters.waiting -= 1;
        decide(waiters, wake, index, State::Closed);
    }
}

/// The iterator returned by [`Pool::iter`]: every tracked key with its counts.
pub struct Iter<'a, K> {
    /// The live keys' slots.
    table: hashbrown::hash_table::Iter<'a, u32>,
    groups: &'a Groups<K>,
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = (&'a K, Counts);

    fn next(&mut self) -> Option<Self::Item> {
        self.table.next().map(|&g| {
            let Group {
                key,
                target,
                active,
                ..
            } = self.groups.at(g);
            (
                key,
                Counts {
                    target: *target,
                    active: *active,
                },
            )
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.table.size_hint()
    }
}

impl<K> ExactSizeIterator for Iter<'_, K> {}

impl<K> fmt::Debug for Iter<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
