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
//! Both steps run under the lock of the key's stripe here, so the
//! layer's own requests cannot interleave them: a request counted live in
//! step 1 keeps step 2 from taking the target away before it has even
//! asked the pool for a lease. At those two points the key has no waiter
//! and no lease, so `Pool::set` grants nothing to a task of this key (it
//! may grant to an any-key waiter, whose waker is then woken; the pool
//! wakes it after its own locks, and waking only schedules a task on
//! every executor we know of).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Counts, Pool};

/// Stripes of the live-request count: different keys rarely share one.
const STRIPES: usize = 16;

/// The default target and the live requests per key, shared by a layer,
/// its clones and every service made from them.
pub(crate) struct Defaults<K, H> {
    pool: Pool<K, H>,
    target: u64,
    hasher: RandomState,
    stripes: Box<[Mutex<HashMap<K, usize>>]>,
}

impl<K, H> Defaults<K, H> {
    pub(crate) fn new(pool: Pool<K, H>, target: u64) -> Self {
        Self {
            pool,
            target,
            hasher: RandomState::new(),
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }

    pub(crate) fn target(&self) -> u64 {
        self.target
    }
}

impl<K: Hash + Eq + Clone, H: BuildHasher> Defaults<K, H> {
    fn stripe(&self, key: &K) -> &Mutex<HashMap<K, usize>> {
        // The modulo keeps the index in range whatever the hash is.
        let index = (self.hasher.hash_one(key) % STRIPES as u64) as usize;
        &self.stripes[index]
    }

    /// Step 1: counts a request of `key` live and gives an untracked key the
    /// default target. The returned ticket runs step 2 when dropped.
    pub(crate) fn arrive(self: &Arc<Self>, key: &K) -> Ticket<K, H> {
        let mut live = self
            .stripe(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *live.entry(key.clone()).or_insert(0) += 1;
        let untracked = self.pool.counts(key) == Counts::default() && self.pool.waiting(key) == 0;
        if untracked && !self.pool.is_closed() {
            self.pool.set(key.clone(), self.target);
        }
        drop(live);
        Ticket {
            defaults: Arc::clone(self),
            key: key.clone(),
        }
    }

    /// Step 2: the request of `key` ended; the last one hands an idle key's
    /// default target back.
    fn depart(&self, key: &K) {
        let mut live = self
            .stripe(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(count) = live.get_mut(key) else {
            return; // only after a panic in `K`'s `Hash` or `Eq`
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        live.remove(key);
        let idle = Counts {
            target: self.target,
            active: 0,
        };
        if self.pool.counts(key) == idle && self.pool.waiting(key) == 0 {
            self.pool.set(key.clone(), 0);
        }
        drop(live);
    }

    /// Live requests of `key` through the layer (for tests).
    #[cfg(test)]
    pub(crate) fn live(&self, key: &K) -> usize {
        let live = self
            .stripe(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        live.get(key).copied().unwrap_or(0)
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

    #[test]
    fn live_requests_keep_the_default_and_the_last_one_hands_it_back() {
        let pool: Pool<&'static str> = Pool::new();
        let defaults = Arc::new(Defaults::new(pool.clone(), 3));
        let one = defaults.arrive(&"a");
        assert_eq!(
            pool.counts(&"a"),
            Counts {
                target: 3,
                active: 0
            }
        );
        let two = defaults.arrive(&"a");
        assert_eq!(defaults.live(&"a"), 2);
        drop(one);
        assert_eq!(defaults.live(&"a"), 1);
        assert_eq!(pool.counts(&"a").target, 3, "still live");
        drop(two);
        assert_eq!(defaults.live(&"a"), 0);
        assert!(pool.is_empty());
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
    }
}
