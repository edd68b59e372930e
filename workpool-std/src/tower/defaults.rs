//! `with_default_target`: the layer's count of its live requests per key,
//! which decides when a key gets the default target and when it gives it
//! back.
//!
//! The rules (the layer's docs state them for users):
//!
//! 1. A request arrives: if its key is *untracked* by the pool (target 0, no
//!    live lease, no waiter) and the pool is open, the key gets the default
//!    target. A key that is tracked keeps whatever target it has, 0
//!    included (someone set it, or `close_key` closed it while leases were
//!    out).
//! 2. The last live request of a key (through this layer) ends: if the key
//!    is idle (no live lease, no waiter) and its target is still the
//!    default, it is set back to 0, so the pool forgets it. A target
//!    someone changed is left alone.
//!
//! # No `Pool::set` under a stripe lock
//!
//! The live counts sit in striped maps behind mutexes. `Pool::set` runs
//! user code (it wakes the waiters it serves, an any-key waiter of another
//! task included, and drops wakers and the pool's copy of a forgotten
//! key); a dropped waker can own requests of this layer, whose tickets then
//! lock their stripes. So, as everywhere in the crate, we decide under the
//! stripe lock and call `set` after unlocking. Reading the pool
//! (`counts`, `waiting`, `is_closed`) under the stripe lock is fine: it
//! runs only `K`'s `Hash` and `Eq`, and the lock order is always stripe,
//! then the pool's own locks (the pool runs no user code under those).
//! Keys leave the map under the lock and are dropped after it.
//!
//! Deferring the `set` opens races between the layer's own requests of one
//! key: a request may arrive or depart between a decision and its `set`,
//! and two deferred `set`s of one key could land in the other order than
//! they were decided (a forget landing after the default a later arrival
//! asked for, leaving a live request waiting at target 0 forever). Hence:
//!
//! - **One settler per key.** Each live key's entry has a `busy` flag. The
//!   request that finds work to do (an arrival of an untracked key, the
//!   last departure) and finds the key not busy becomes its *settler*: it
//!   marks it busy and, with no lock held, applies the decision (step 1 or
//!   2), then locks again. Arrivals and departures that find the key busy
//!   only update the count, leave their decision (an arrival that found the
//!   key untracked sets `give`) and mark the entry `dirty`; the settler
//!   sees that when it locks again and settles again from the new count,
//!   until it finds nothing new. So the layer's `set`s of one key never
//!   overlap and land in the order decided, none is lost, and nobody waits
//!   for anyone (a settler re-entered by its own `set`, through a waker
//!   that drops a ticket of the same key, just marks the entry dirty).
//! - **Arrivals decide under the lock.** Whether a key is untracked is
//!   read when the request is counted, before it can queue in the pool, so
//!   the layer's own waiting requests never make a key look tracked (had
//!   the settler read `waiting` later, a request counted meanwhile and
//!   already queued would have kept the key at 0).
//! - **A forget in flight.** A settler that set the key to 0 (step 2) and
//!   then finds requests live again (they arrived between its decision and
//!   its `set`, when the key still looked tracked at the default) knows
//!   that a target of 0 is its own doing: it sets the default again, if
//!   the target is still 0. A target someone set by hand to another value
//!   in between stays; one set to 0 by hand in between is taken as set
//!   before the forget.
//!
//! What the layer does not control stays as before: a lease taken
//! directly from the pool, or a target set by hand, between a decision and
//! its `set` (the layer's docs say so). Memory: an entry lives while its
//! key has live requests here or a settler at work, so it follows live
//! keys. A panic in `K`'s `Hash` or `Eq` (or in the pool under them) while
//! settling clears the busy flag before it goes on, so a later request
//! settles the key again.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{Counts, Pool};

/// Stripes of the live-request count: different keys rarely share one.
const STRIPES: usize = 16;

/// A key's live requests through the layer, and its settler's state.
#[derive(Debug, Default)]
struct Entry {
    /// Live requests (tickets) of the key.
    live: usize,
    /// A settler is applying a decision for the key, with no lock held.
    busy: bool,
    /// Requests arrived or departed since the settler last looked.
    dirty: bool,
    /// An arrival found the key untracked: it should get the default.
    give: bool,
}

/// What a settler applies: the live count it saw, and whether an arrival
/// asked for the default.
#[derive(Debug, Clone, Copy)]
struct Step {
    live: usize,
    give: bool,
}

type Stripe<K> = Mutex<HashMap<K, Entry>>;

/// The default target and the live requests per key, shared by a layer,
/// its clones and every service made from them.
pub(crate) struct Defaults<K, H> {
    pool: Pool<K, H>,
    target: u64,
    hasher: RandomState,
    stripes: Box<[Stripe<K>]>,
    /// Run once, just before the next deferred `set` (tests make races
    /// happen there).
    #[cfg(test)]
    before_set: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl<K, H> Defaults<K, H> {
    pub(crate) fn new(pool: Pool<K, H>, target: u64) -> Self {
        Self {
            pool,
            target,
            hasher: RandomState::new(),
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            #[cfg(test)]
            before_set: Mutex::new(None),
        }
    }

    pub(crate) fn target(&self) -> u64 {
        self.target
    }
}

impl<K: Hash + Eq + Clone, H: BuildHasher> Defaults<K, H> {
    fn lock(&self, key: &K) -> MutexGuard<'_, HashMap<K, Entry>> {
        // The modulo keeps the index in range whatever the hash is.
        let index = (self.hasher.hash_one(key) % STRIPES as u64) as usize;
        self.stripes[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the pool does not track `key` at all.
    fn untracked(&self, key: &K) -> bool {
        self.pool.counts(key) == Counts::default() && self.pool.waiting(key) == 0
    }

    /// Step 1: counts a request of `key` live and gives an untracked key the
    /// default target (now, or through the key's settler). The returned
    /// ticket runs step 2 when dropped.
    pub(crate) fn arrive(self: &Arc<Self>, key: &K) -> Ticket<K, H> {
        // Cloned first: a panic in `K`'s `Clone`, `Hash` or `Eq` below
        // leaves nothing counted.
        let ticket_key = key.clone();
        let mut live = self.lock(key);
        // Read before the request can queue: its own waiting must not make
        // the key look tracked.
        let give = self.untracked(key) && !self.pool.is_closed();
        if !live.contains_key(key) {
            // Not `entry(key.clone())`, which would drop the clone under
            // the lock when the key is there.
            live.insert(key.clone(), Entry::default());
        }
        let Some(entry) = live.get_mut(key) else {
            unreachable!("inserted above");
        };
        entry.live += 1;
        let step = if entry.busy {
            entry.give |= give;
            entry.dirty = true;
            None
        } else if give {
            entry.busy = true;
            Some(Step {
                live: entry.live,
                give,
            })
        } else {
            None
        };
        drop(live);
        let ticket = Ticket {
            defaults: Arc::clone(self),
            key: ticket_key,
        };
        if let Some(step) = step {
            self.settle(key, step);
        }
        ticket
    }

    /// Step 2: the request of `key` ended; the last one hands an idle key's
    /// default target back (now, or through the key's settler).
    fn depart(&self, key: &K) {
        let mut live = self.lock(key);
        let Some(entry) = live.get_mut(key) else {
            return; // only after a panic in `K`'s `Hash` or `Eq`
        };
        entry.live -= 1;
        if entry.busy {
            entry.dirty = true;
            return;
        }
        if entry.live > 0 {
            return;
        }
        entry.busy = true;
        drop(live);
        self.settle(
            key,
            Step {
                live: 0,
                give: false,
            },
        );
    }

    /// Applies `step` for `key`, whose settler the caller became, with no
    /// lock held, and again for what arrived or departed meanwhile; then
    /// clears the busy flag (and removes the entry of a key with no live
    /// request). On a panic, clears the flag and goes on panicking.
    fn settle(&self, key: &K, step: Step) {
        let settled = panic::catch_unwind(AssertUnwindSafe(|| self.settle_loop(key, step)));
        if let Err(payload) = settled {
            let mut live = self.lock(key);
            let removed = match live.get_mut(key) {
                Some(entry) if entry.live == 0 => live.remove_entry(key),
                Some(entry) => {
                    entry.busy = false;
                    entry.dirty = false;
                    entry.give = false;
                    None
                }
                None => None,
            };
            drop(live);
            drop(removed);
            panic::resume_unwind(payload);
        }
    }

    fn settle_loop(&self, key: &K, mut step: Step) {
        // This settler set the key to 0 in its last step, so a target of 0
        // is its own doing (see the module docs, "a forget in flight").
        let mut forgot = false;
        loop {
            if step.live > 0 {
                let give = step.give || (forgot && self.pool.counts(key).target == 0);
                forgot = false;
                if give && !self.pool.is_closed() {
                    self.set(key, self.target);
                }
            } else {
                let idle = Counts {
                    target: self.target,
                    active: 0,
                };
                forgot = self.pool.counts(key) == idle && self.pool.waiting(key) == 0;
                if forgot {
                    self.set(key, 0);
                }
            }
            let mut live = self.lock(key);
            let Some(entry) = live.get_mut(key) else {
                return; // only after a panic in `K`'s `Hash` or `Eq`
            };
            if entry.dirty {
                entry.dirty = false;
                step = Step {
                    live: entry.live,
                    give: std::mem::take(&mut entry.give),
                };
                continue;
            }
            entry.busy = false;
            entry.give = false;
            let removed = if entry.live == 0 {
                live.remove_entry(key)
            } else {
                None
            };
            drop(live);
            drop(removed); // the map's copy of the key, after unlocking
            return;
        }
    }

    /// The deferred `Pool::set`, with no lock of ours held.
    fn set(&self, key: &K, target: u64) {
        #[cfg(test)]
        {
            let hook = self
                .before_set
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(hook) = hook {
                hook();
            }
        }
        self.pool.set(key.clone(), target);
    }

    /// Live requests of `key` through the layer (for tests).
    #[cfg(test)]
    pub(crate) fn live(&self, key: &K) -> usize {
        self.lock(key).get(key).map_or(0, |entry| entry.live)
    }

    /// Entries in the map (for tests).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.stripes
            .iter()
            .map(|stripe| stripe.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

impl<K, H> fmt::Debug for Defaults<K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Defaults")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// One live request of a key, for a layer with a default target; dropping
/// it runs step 2. Must be dropped after the request's lease.
pub(crate) struct Ticket<K: Hash + Eq + Clone, H: BuildHasher> {
    defaults: Arc<Defaults<K, H>>,
    key: K,
}

impl<K: Hash + Eq + Clone, H: BuildHasher> Drop for Ticket<K, H> {
    fn drop(&mut self) {
        self.defaults.depart(&self.key);
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug, H: BuildHasher> fmt::Debug for Ticket<K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket").field("key", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Shared = Arc<Defaults<&'static str, crate::DefaultHashBuilder>>;

    fn counts(target: u64, active: u64) -> Counts {
        Counts { target, active }
    }

    /// Runs `hook` just before the next deferred `Pool::set`.
    fn before_next_set(defaults: &Shared, hook: impl FnOnce() + Send + 'static) {
        *defaults.before_set.lock().unwrap() = Some(Box::new(hook));
    }

    #[test]
    fn live_requests_keep_the_default_and_the_last_one_hands_it_back() {
        let pool: Pool<&'static str> = Pool::new();
        let defaults = Arc::new(Defaults::new(pool.clone(), 3));
        let one = defaults.arrive(&"a");
        assert_eq!(pool.counts(&"a"), counts(3, 0));
        let two = defaults.arrive(&"a");
        assert_eq!(defaults.live(&"a"), 2);
        drop(one);
        assert_eq!(defaults.live(&"a"), 1);
        assert_eq!(pool.counts(&"a").target, 3, "still live");
        drop(two);
        assert_eq!(defaults.live(&"a"), 0);
        assert!(pool.is_empty());
        assert_eq!(defaults.entries(), 0);
    }

    #[test]
    fn a_target_set_by_hand_stays() {
        let pool: Pool<&'static str> = Pool::new();
        pool.set("a", 5);
        let defaults = Arc::new(Defaults::new(pool.clone(), 3));
        drop(defaults.arrive(&"a"));
        assert_eq!(pool.counts(&"a").target, 5);
        // Set to the default by hand: handed back like a default.
        pool.set("a", 3);
        drop(defaults.arrive(&"a"));
        assert!(pool.is_empty());
        assert_eq!(defaults.entries(), 0);
    }

    /// A request arrives between the last departure's decision to forget
    /// and its `set(key, 0)`: it saw the key tracked at the default, so it
    /// asked for nothing; the settler, finding it live after its forget,
    /// sets the default again.
    #[test]
    fn an_arrival_during_a_forget_gets_the_default_back() {
        let pool: Pool<&'static str> = Pool::new();
        let defaults: Shared = Arc::new(Defaults::new(pool.clone(), 3));
        let first = defaults.arrive(&"a");
        let raced = Arc::new(Mutex::new(None));
        {
            let defaults = Arc::clone(&defaults);
            let raced = Arc::clone(&raced);
            let pool = pool.clone();
            before_next_set(&defaults.clone(), move || {
                assert_eq!(pool.counts(&"a"), counts(3, 0), "not forgotten yet");
                *raced.lock().unwrap() = Some(defaults.arrive(&"a"));
            });
        }
        drop(first);
        assert_eq!(defaults.live(&"a"), 1);
        assert_eq!(pool.counts(&"a"), counts(3, 0), "the default is back");
        let lease = pool.try_acquire_key(&"a").unwrap();
        drop(lease);
        drop(raced.lock().unwrap().take());
        assert!(pool.is_empty());
        assert_eq!(defaults.entries(), 0);
    }

    /// Arrivals and departures that find a settler at work leave their
    /// decision to it: an arrival of an untracked key during the settler's
    /// `set` and the departure of every request before the settler looks
    /// again end with the key forgotten.
    #[test]
    fn a_busy_key_is_settled_by_its_settler() {
        let pool: Pool<&'static str> = Pool::new();
        let defaults: Shared = Arc::new(Defaults::new(pool.clone(), 2));
        {
            let defaults = Arc::clone(&defaults);
            before_next_set(&defaults.clone(), move || {
                let second = defaults.arrive(&"a"); // the key is busy
                assert_eq!(defaults.live(&"a"), 2);
                drop(second);
            });
        }
        let first = defaults.arrive(&"a");
        assert_eq!(pool.counts(&"a"), counts(2, 0));
        assert_eq!(defaults.live(&"a"), 1);
        drop(first);
        assert!(pool.is_empty());
        assert_eq!(defaults.entries(), 0);
    }
}
