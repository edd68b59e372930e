//! The `Pool` handle.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use crate::error::AcquireTimeoutError;
use crate::futures::{Acquire, AcquireKey, Drained, Leases};
use crate::lease::Lease;
use crate::shared::{KeyQuery, Shared, Want};
use crate::sync::Arc;
use crate::{Counts, DefaultHashBuilder, Equivalent, Stats};

mod blocking;
mod owned;
mod tries;
mod weights;

/// A keyed, runtime-adjustable concurrency limiter: one semaphore per key
/// whose size (the *target*) can change at any time, plus a front door that
/// hands out a lease from whichever key has room.
///
/// `Pool` is a cheap handle: clones share the same pool. It is `Send` and
/// `Sync` when `K` is `Send`.
///
/// # Fairness
///
/// Waiters are served oldest first among those that freed or added capacity
/// can serve: capacity at key `k` goes to the oldest waiter that asked for
/// `k` or for any key. Nobody barges: a new acquisition, including
/// `try_acquire*`, never takes capacity an earlier waiter could use. When
/// several keys have room, any-key grants rotate round-robin over them
/// (shard by shard, each shard's keys in a turn), so every key with room
/// is served once per round and with demand everywhere leases come out in
/// proportion to the targets (see [`acquire`](Pool::acquire) for the exact
/// rotation, and the looser one under contention).
///
/// A weighted acquisition ([`acquire_key_many`](Self::acquire_key_many))
/// keeps its place the same way: a large request at the head of its key's
/// queue holds back smaller ones behind it until its units are free (the
/// price of never starving a large request), and `try_` never passes it.
///
/// # Shrinking a target
///
/// Lowering a target revokes no lease: live leases stay valid and keep
/// counting, queued waiters stay queued, and grants resume once
/// `active < target`. With target 0 a key grants nothing and is forgotten
/// once it has no live lease and no waiter; a key that is set again later
/// still counts the leases it had.
///
/// An acquisition waiting for a key whose target is 0 does not fail: it
/// waits until the key is set again or the pool closes, which may be never.
/// When a key goes away for good (an endpoint disappeared), call
/// [`close_key`](Self::close_key) instead of `set(key, 0)`: the target
/// becomes 0 and the acquisitions waiting for that key fail with
/// [`Closed`](crate::Closed). Acquisitions from any key are not affected.
///
/// # Dropping the last handle
///
/// Dropping the last `Pool` handle [closes](Self::close) the pool: nobody
/// could change a target any more, so instead of leaving them pending for
/// ever, waiting acquisitions fail with [`Closed`](crate::Closed) and [`leases`](Self::leases)
/// streams end. Only `Pool` handles keep a pool open: leases, lease streams,
/// [owned futures](Self::acquire_owned) and [`PollPool`](crate::PollPool)s
/// do not. Leases stay valid after that, and dropping them still works.
///
/// ```
/// use futures_lite::{future::block_on, StreamExt};
/// use workpool_std::Pool;
///
/// let pool = Pool::new();
/// pool.set("spam", 1);
/// let lease = pool.try_acquire().unwrap();
/// let mut leases = pool.leases();
/// let waiting = pool.acquire_owned();
/// let other = pool.clone();
/// drop(pool); // `other` keeps the pool open
/// assert!(!other.is_closed());
/// drop(other); // the last handle: the pool closes
/// assert!(block_on(leases.next()).is_none());
/// assert!(block_on(waiting).is_err());
/// drop(lease); // leases out stay valid until dropped
/// ```
///
/// # Memory use
///
/// Memory follows the keys and waiters that are live, not the most there
/// ever were: after a burst of waiting acquisitions or of keys the pool
/// gives the memory back once they are gone. Slots cannot move while in
/// use, so a waiter or key that outlives a burst in one of its last slots
/// holds the slots below it until it leaves (new ones take the lowest free
/// slots, so that happens only to entries from during the burst).
///
/// # Memory ordering
///
/// Capacity passes from a release to the acquisition it serves through the
/// lock of the key's shard (and of the lane, for any-key waiters), so
/// everything a task did before releasing a lease happens-before whatever
/// the task that receives that capacity does after its acquisition
/// completes, as with a mutex hand-off.
///
/// # Scaling
///
/// Keys are spread over several shards, each with its own lock: work on
/// keys in different shards does not contend, as long as nothing cross-key
/// is going on (an any-key waiter makes the keys it could use go through
/// the one any-key lane until it is served). Any-key requests share that
/// lane, as one logical queue. See `docs/ARCHITECTURE.md` for the layout.
///
/// # Examples
///
/// ```
/// use workpool_std::Pool;
///
/// # futures_lite::future::block_on(async {
/// let pool: Pool<&'static str> = Pool::new();
/// pool.set("spam", 2);
/// pool.set("eggs", 1);
/// let lease = pool.acquire().await?;
/// println!("worker {} for {}", lease.id(), lease.key());
/// drop(lease);
/// # Ok::<(), workpool_std::Closed>(())
/// # }).unwrap();
/// ```
pub struct Pool<K, S = DefaultHashBuilder> {
    shared: Arc<Shared<K, S>>,
}

impl<K> Pool<K> {
    /// Creates an empty, open pool with the default hasher. Every key
    /// starts with target 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::<String>::new();
    /// assert!(!pool.is_closed());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_hasher(DefaultHashBuilder::default())
    }
}

impl<K, S> Pool<K, S> {
    /// Creates an empty, open pool that hashes keys with `hasher` (for
    /// example `std::hash::RandomState` for keys an attacker chooses).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::hash::RandomState;
    /// let pool = workpool_std::Pool::with_hasher(RandomState::new());
    /// pool.set("spam", 1);
    /// assert_eq!(pool.counts("spam").target, 1);
    /// ```
    #[must_use]
    pub fn with_hasher(hasher: S) -> Self {
        Self {
            shared: Shared::new_arc(hasher),
        }
    }

    /// How many acquisitions of either kind are waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::<u8>::new();
    /// assert_eq!(pool.waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.shared.waiters()
    }

    /// How many keys the pool tracks (a non-zero target, a live lease or a
    /// waiter).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// assert_eq!(pool.len(), 1);
    /// pool.set("spam", 0);
    /// assert!(pool.is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True when the pool tracks no key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(workpool_std::Pool::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the pool: every waiting acquisition fails with [`Closed`](crate::Closed) and
    /// is woken; every new one fails at once. `set`, `counts` and releases
    /// keep working, and leases already out stay valid until dropped.
    ///
    /// Unlike every other operation this is O(keys + waiters), once.
    ///
    /// Dropping the last `Pool` handle closes the pool too (see the type
    /// docs, "Dropping the last handle").
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Pool, TryAcquireError};
    /// let pool = Pool::new();
    /// pool.set("spam", 1);
    /// pool.close();
    /// assert_eq!(pool.try_acquire().unwrap_err(), TryAcquireError::Closed);
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// True once [`close`](Self::close) was called on any handle.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::<u8>::new();
    /// pool.clone().close();
    /// assert!(pool.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> Pool<K, S> {
    /// Sets how many leases `key` should have, at once.
    ///
    /// Raising a target grants the new room to waiters (oldest first) and
    /// wakes only those. Lowering it revokes no lease; see the type docs.
    /// Acquisitions waiting for a key set to 0 keep waiting, until it is set
    /// again or the pool closes; to make them fail with [`Closed`](crate::Closed) because
    /// the key is gone for good, use [`close_key`](Self::close_key). Works
    /// after [`close`](Self::close) too.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash` or `Eq` panics; the pool is unchanged then and stays
    /// usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Counts, Pool};
    /// let pool = Pool::new();
    /// pool.set("spam", 2);
    /// assert_eq!(pool.counts(&"spam"), Counts { target: 2, active: 0 });
    /// ```
    pub fn set(&self, key: K, target: u64) {
        self.shared.set(key, target);
    }

    /// The target and the number of live leases of `key`;
    /// `Counts { target: 0, active: 0 }` for a key the pool does not track.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash` or `Eq` panics (the pool stays usable).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::{Counts, Pool};
    /// let pool = Pool::new();
    /// pool.set("spam", 2);
    /// let _lease = pool.try_acquire_key(&"spam").unwrap();
    /// assert_eq!(pool.counts(&"spam"), Counts { target: 2, active: 1 });
    /// assert_eq!(pool.counts(&"ham"), Counts { target: 0, active: 0 });
    /// ```
    pub fn counts<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Counts {
        self.shared.counts(key)
    }

    /// Sets several targets at once: no acquisition sees some of them
    /// applied and others not (the pool holds the locks of every key it
    /// changes while it applies them). Each is applied as
    /// [`set`](Self::set) would.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set_all([("a", 2), ("b", 1)]);
    /// assert_eq!(pool.counts("a").target + pool.counts("b").target, 3);
    /// ```
    pub fn set_all<I: IntoIterator<Item = (K, u64)>>(&self, targets: I) {
        self.shared.set_all(targets, false);
    }

    /// [`set_all`](Self::set_all), and every other tracked key gets target
    /// 0, as in one step: the pool's targets become exactly `targets`, as
    /// from a discovery result. Keys that get 0 keep their live leases (use
    /// [`Lease::surplus`](crate::Lease::surplus) to have their holders
    /// leave) and are forgotten once idle. O(tracked keys + targets), under
    /// every shard's lock at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set_all([("a", 2), ("b", 1)]);
    /// pool.replace_all([("b", 3), ("c", 1)]);
    /// assert_eq!(pool.counts("a").target, 0);
    /// assert_eq!(pool.counts("b").target, 3);
    /// assert_eq!(pool.len(), 2);
    /// ```
    pub fn replace_all<I: IntoIterator<Item = (K, u64)>>(&self, targets: I) {
        self.shared.set_all(targets, true);
    }

    /// Totals since the pool was made, summed over the pool's parts one by
    /// one (see [`Stats`] for the exact definitions):
    ///
    /// - `granted`: leases that reached a caller (or were handed to a waiter
    ///   that has yet to take it), so that `granted` minus the leases
    ///   released equals [`active`](Self::active). A lease handed to a
    ///   waiter that gave it up before taking it is not counted.
    /// - `waited`: acquisitions that had to queue.
    /// - `cancelled`: queued acquisitions that ended without a lease (future
    ///   dropped, or timed out), once each.
    /// - `timed_out`: those of them ended by a `_timeout` or `_deadline`
    ///   call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = workpool_std::Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire().unwrap();
    /// assert!(pool.acquire_key_timeout(&"a", Duration::from_millis(1)).is_err());
    /// let stats = pool.stats();
    /// assert_eq!(
    ///     (stats.granted, stats.waited, stats.cancelled, stats.timed_out),
    ///     (1, 1, 1, 1)
    /// );
    /// # drop(lease);
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Resolves once `key` has no live lease: at once if it has none (or
    /// is not tracked), otherwise when its last lease is released, even if
    /// new leases come before the future is polled again. Pair it with
    /// [`set`](Self::set)`(key, 0)` or [`close_key`](Self::close_key) to wait
    /// until the workers of a key that went away are gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops watching.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("a", 1);
    /// let lease = pool.try_acquire().unwrap();
    /// pool.set("a", 0);
    /// let drained = pool.drained(&"a");
    /// drop(lease);
    /// drained.await;
    /// assert!(pool.is_empty());
    /// # });
    /// ```
    pub fn drained<'a, Q>(&'a self, key: &'a Q) -> Drained<'a, K, Q, S>
    where
        Q: ?Sized + Hash + Equivalent<K>,
    {
        Drained::new(&self.shared, key)
    }

    /// Sets the pool-wide limit: at most `limit` live leases over all keys
    /// at once (`None`, the default, for no limit), on top of each key's
    /// target. An HTTP client's "8 per host and 100 in all" is
    /// `set(host, 8)` for each host and `set_limit(Some(100))`.
    ///
    /// A grant then needs room in its key *and* in the pool. Lowering the
    /// limit revokes nothing: grants resume once the pool is below it.
    /// Raising or removing it serves waiters at once. Fairness is the usual
    /// rule: while the limit is what holds waiters back, the pool's room
    /// goes to the oldest waiter it can serve, whatever its key (a release
    /// at one key may serve a waiter of another), and no newcomer (not even
    /// `try_acquire*`) takes it first.
    ///
    /// # Cost
    ///
    /// While a limit is set every grant and release goes through the pool's
    /// any-key lane, which counts the leases (one shared lock, where keys
    /// otherwise share none), and the keys the limit holds back are kept in
    /// a heap (O(log keys)). Without a limit nothing changes. Waiters that
    /// were already queued when a limit is set are ordered by the any-key
    /// arrivals they saw: among key waiters of different keys that saw the
    /// same count, the pool's internal shard order decides.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::Pool;
    /// let pool = Pool::new();
    /// pool.set("a.example", 2);
    /// pool.set("b.example", 2);
    /// pool.set_limit(Some(3));
    /// let leases: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
    /// assert!(pool.try_acquire().is_err()); // keys have room, the pool has none
    /// assert_eq!(pool.active(), 3);
    /// drop(leases);
    /// assert_eq!(pool.active(), 0);
    /// ```
    pub fn set_limit(&self, limit: Option<u64>) {
        self.shared.set_limit(limit);
    }

    /// The pool-wide limit, if one is set (see [`set_limit`](Self::set_limit)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::<&str>::new();
    /// assert_eq!(pool.limit(), None);
    /// pool.set_limit(Some(100));
    /// assert_eq!(pool.limit(), Some(100));
    /// ```
    pub fn limit(&self) -> Option<u64> {
        self.shared.limit()
    }

    /// Live leases over all keys: granted and not yet released (a lease
    /// handed to a waiter that has not collected it yet counts too).
    ///
    /// Without a limit the pool adds up its shards one by one, so under
    /// concurrent change the sum is each shard's count at a slightly
    /// different moment; with a limit it is one exact count.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("a", 2);
    /// let lease = pool.try_acquire().unwrap();
    /// assert_eq!(pool.active(), 1);
    /// drop(lease);
    /// assert_eq!(pool.active(), 0);
    /// ```
    pub fn active(&self) -> u64 {
        self.shared.active()
    }

    /// For tests: makes the pool lend each shard `1 / divisor` of its
    /// limit's free room at once, however little, so that budgets (see
    /// `docs/ARCHITECTURE.md`) come and go under small limits. Not a
    /// stable API.
    #[doc(hidden)]
    pub fn set_budget_share(&self, divisor: u64) {
        self.shared.set_budget_share(divisor);
    }

    /// The shard `key` lives in: keys in different shards share no lock.
    /// For tests that want such keys; not a stable API.
    #[doc(hidden)]
    pub fn shard_of<Q: ?Sized + Hash>(&self, key: &Q) -> usize {
        self.shared.shard_of(key)
    }

    /// Makes the pool stock (see `Pool::acquire`, "Which key"), as any-key
    /// grants that keep meeting at shards' locks would. For tests; not a
    /// stable API.
    #[doc(hidden)]
    pub fn start_stocking(&self) {
        self.shared.start_stocking_now();
    }

    /// How many shards the pool spreads its keys over. For tests; not a
    /// stable API.
    #[doc(hidden)]
    pub fn shard_count(&self) -> usize {
        self.shared.shard_count()
    }

    /// How many acquisitions are waiting for `key` specifically (any-key
    /// waiters are counted by [`waiters`](Self::waiters)).
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash` or `Eq` panics (the pool stays usable).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// use std::pin::pin;
    /// use futures_lite::future::poll_once;
    /// let pool = workpool_std::Pool::new();
    /// let mut waiting = pin!(pool.acquire_key(&"spam"));
    /// assert!(poll_once(&mut waiting).await.is_none());
    /// assert_eq!(pool.waiting(&"spam"), 1);
    /// # });
    /// ```
    pub fn waiting<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> usize {
        self.shared.waiting(key)
    }

    /// A snapshot of every tracked key with its counts and how many
    /// acquisitions wait for it (any-key waiters are not counted: see
    /// [`waiters`](Self::waiters)), in no particular order. O(keys): it
    /// clones every key under the locks, so keep it off hot paths. The
    /// shards are visited one by one, so under concurrent change each
    /// shard's keys are from a slightly different moment.
    ///
    /// # Panics
    ///
    /// If `K`'s `Clone` panics (the pool stays usable).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 2);
    /// pool.set("eggs", 1);
    /// let mut all = pool.snapshot();
    /// all.sort_by_key(|(k, _, _)| *k);
    /// assert_eq!(all[0].0, "eggs");
    /// assert_eq!(all[1].1.target, 2);
    /// assert_eq!(all[1].2, 0); // nobody waits for spam
    /// ```
    pub fn snapshot(&self) -> Vec<(K, Counts, usize)> {
        self.shared.snapshot()
    }

    /// Waits for a lease from any key with room (see "Which key" below).
    ///
    /// # Errors
    ///
    /// [`Closed`](crate::Closed) if the pool is or becomes closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in the queue and
    /// passes on a lease that was already granted to it.
    ///
    /// # Which key
    ///
    /// Keys are spread over the pool's shards by hash
    /// ([`shard_count`](Self::shard_count) of them), and any-key grants
    /// are one round-robin over the keys with room, taken shard by shard:
    /// the rotation gives each shard with room a *turn*, in which it grants
    /// once from each of its keys that had room when the turn began (in
    /// the shard's own round-robin order; a key that gets room again joins
    /// the end of its shard's round), then moves to the next shard with
    /// room. While nobody waits for any key and no limit is set, the next
    /// shard is the next one with room in the order the shards first had
    /// room (so keys set one after another in different shards are served
    /// in that order); otherwise grants go through the pool's queue of
    /// any-key requests, which visits the shards with room in the order
    /// they got it. So every key with room is served once per round,
    /// and with demand everywhere leases come out in proportion to the
    /// targets (`spam` = 2, `eggs` = 1 with equal work: about 2:1). A waiting
    /// acquisition is served in arrival order by the first unit freed that
    /// it can use, whatever its key.
    ///
    /// Under contention the rotation is looser. Once any-key grants have
    /// met at shards' locks 64 times (two grants racing once do not count
    /// for much), the pool *stocks* for the rest of its life: a key's room is lent to a lock-free word of its shard (up to
    /// eight keys a shard), and while nobody waits an any-key grant takes a
    /// unit from the next word with units after the one this thread took
    /// from last (in the order of shards and words, not of the turns
    /// above). When a thread's round over the words ends, its next grant
    /// comes from the shards that still hold room of their own, in the
    /// order above, so keys without a word get a grant per round too. So
    /// every key with room is still served, round after round; waiting
    /// acquisitions are still served in arrival order; and a pool used from
    /// one thread at a time never stocks.
    ///
    /// # Panics
    ///
    /// If `K`'s `Clone` panics while the lease is made (a lease already granted passes on when the future is dropped), or if the future is polled again after it completed.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 1);
    /// let lease = pool.acquire().await.unwrap();
    /// assert_eq!(*lease.key(), "spam");
    /// # });
    /// ```
    pub fn acquire(&self) -> Acquire<'_, K, S> {
        Acquire::new(&self.shared)
    }

    /// Waits for a lease from `key`.
    ///
    /// # Errors
    ///
    /// [`Closed`](crate::Closed) if the pool is or becomes closed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives up its place in the queue and
    /// passes on a lease that was already granted to it.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash`, `Eq` or `Clone`, or `Q`'s `to_owned`, panics (a lease already granted passes on when the future is dropped), or if the future is polled again after it completed.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("eggs", 1);
    /// let lease = pool.acquire_key(&"eggs").await.unwrap();
    /// assert_eq!(pool.counts(&"eggs").active, 1);
    /// # drop(lease);
    /// # });
    /// ```
    pub fn acquire_key<'a, Q>(&'a self, key: &'a Q) -> AcquireKey<'a, K, Q, S>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        AcquireKey::new(&self.shared, key)
    }

    /// A stream of leases from any key, ending when the pool closes: spawn a
    /// worker for each item (the Go package's lease channel, in Rust form).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping a pending `next()` (in a `select!`, say) keeps
    /// the stream's place in the queue, and dropping the stream gives it up;
    /// a lease already granted to it is passed on, never lost.
    ///
    /// # Panics
    ///
    /// The stream's `poll_next` panics if `K`'s `Clone` does (a lease already granted passes on when the stream is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::StreamExt;
    /// # futures_lite::future::block_on(async {
    /// let pool = workpool_std::Pool::new();
    /// pool.set("spam", 2);
    /// let mut leases = pool.leases();
    /// let a = leases.next().await.unwrap();
    /// let b = leases.next().await.unwrap();
    /// pool.close();
    /// assert!(leases.next().await.is_none());
    /// assert_eq!((a.id(), b.id()), (1, 2));
    /// # });
    /// ```
    pub fn leases(&self) -> Leases<K, S> {
        Leases::new(Arc::clone(&self.shared))
    }

    /// Closes one key, for a key that is gone for good (an endpoint that
    /// disappeared): its target becomes 0, and every acquisition waiting for
    /// that key right now fails with [`Closed`](crate::Closed) and is woken (the `_timeout`
    /// and `_deadline` forms with [`AcquireTimeoutError::Closed`]).
    ///
    /// It is an event, not a state: the pool keeps no record of closed keys,
    /// so memory stays bounded by live keys. An acquisition for the key that
    /// starts later waits as for any key with target 0, until the key is set
    /// again (or the pool closes). Acquisitions from any key, including
    /// [`leases`](Self::leases) streams, are not affected, nor is an
    /// acquisition the key already handed a lease to. Leases out stay valid
    /// and keep counting until dropped, also if the key is set again. A key
    /// the pool does not track is left alone. Works after
    /// [`close`](Self::close) too (only the target changes then).
    ///
    /// O(1) plus O(1) per acquisition it fails.
    ///
    /// # Panics
    ///
    /// If `K`'s (or `Q`'s) `Hash` or `Eq` panics; the pool is unchanged then
    /// and stays usable.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// use std::pin::pin;
    /// use futures_lite::future::poll_once;
    /// use workpool_std::{Closed, Counts, Pool};
    ///
    /// let pool = Pool::new();
    /// pool.set("spam", 1);
    /// let lease = pool.acquire_key(&"spam").await?;
    /// let mut waiting = pin!(pool.acquire_key(&"spam"));
    /// assert!(poll_once(&mut waiting).await.is_none());
    ///
    /// pool.close_key(&"spam");
    /// assert_eq!(waiting.await.unwrap_err(), Closed);
    /// // The lease out stays valid and counted until it is dropped.
    /// assert_eq!(pool.counts(&"spam"), Counts { target: 0, active: 1 });
    /// drop(lease);
    /// assert!(pool.is_empty());
    /// # Ok::<(), Closed>(())
    /// # }).unwrap();
    /// ```
    pub fn close_key<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) {
        self.shared.close_key(key);
    }

    #[inline]
    fn lease<E>(&self, granted: Result<workpool_core::Lease<K>, E>) -> Result<Lease<K, S>, E> {
        granted.map(|lease| Lease::new(&self.shared, lease))
    }

    fn blocking<Q: ?Sized + KeyQuery<K>>(
        &self,
        want: Want<'_, Q>,
        deadline: Option<Instant>,
    ) -> Result<Lease<K, S>, AcquireTimeoutError> {
        self.lease(self.shared.acquire_blocking(want, deadline))
    }
}

impl<K, S> Pool<K, S> {
    /// The state this handle shares, for types that hold it without being
    /// a handle (`PollPool`).
    pub(crate) fn shared(&self) -> &Arc<Shared<K, S>> {
        &self.shared
    }
}

impl<K, S> Clone for Pool<K, S> {
    /// Another handle to the same pool; it keeps the pool open as the
    /// others do.
    fn clone(&self) -> Self {
        self.shared.add_handle();
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, S> Drop for Pool<K, S> {
    /// Drops this handle; dropping the last one closes the pool (see the
    /// type docs).
    fn drop(&mut self) {
        self.shared.drop_handle();
    }
}

impl<K, S: Default> Default for Pool<K, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, S> fmt::Debug for Pool<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pool").field(&self.shared).finish()
    }
}
