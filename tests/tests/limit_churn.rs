//! Keys re-targeted to 0 and back while a limit and the budget share
//! move: a unit a word's grant takes back after its word was collected,
//! and a stress run of keyed, timed and any-key acquires and `counts` from
//! several threads (every lease goes back, nothing is left at the end).

use std::cell::RefCell;
use std::hash::{Hash, Hasher};

use workpool_std::Pool;

/// A key whose `eq` runs a hook once, armed per thread, and then answers
/// "not equal": a grant from the key's word that compares keys after
/// taking a unit gives the unit back, after the hook changed the pool.
#[derive(Debug, Clone, Eq)]
struct Key(u32);

type Hook = Box<dyn FnOnce()>;

thread_local! {
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        if let Some(hook) = HOOK.with(|h| h.borrow_mut().take()) {
            hook();
            return false;
        }
        self.0 == other.0
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// A grant from `a`'s word takes a unit, then (in the hook, between the
/// take and the key check) its word is collected and the unit counted as
/// the key's, and the pool changes so that the shard alone may not take
/// the unit back: `change` sets a limit (no budget), or queues an any-key
/// waiter (the shard is unlisted). The unit must go back through the lane
/// ("a collected word's key needs no lane" panicked in `Untake::drop`).
fn untake_after(change: fn(&Pool<Key>)) {
    let pool: Pool<Key> = Pool::new();
    let a = Key(1);
    pool.set(a.clone(), 2);
    // The locked grant lends the rest of `a`'s room to a word.
    let first = pool.try_acquire_key(&a).unwrap();
    let hooked = pool.clone();
    HOOK.with(|h| *h.borrow_mut() = Some(Box::new(move || change(&hooked))));
    let second = pool.try_acquire_key(&a);
    assert!(HOOK.with(|h| h.borrow().is_none()), "the hook ran");
    drop(second);
    drop(first);
    pool.set_limit(None);
    assert_eq!(pool.counts(&a).active, 0, "the unit went back");
    assert_eq!(pool.active(), 0);
    pool.set(a.clone(), 1);
    assert!(pool.try_acquire_key(&a).is_ok());
}

#[test]
fn a_unit_taken_back_under_a_limit_without_a_budget_goes_through_the_lane() {
    untake_after(|pool| pool.set_limit(Some(10)));
}

#[test]
fn a_unit_taken_back_in_an_unlisted_shard_goes_through_the_lane() {
    untake_after(|pool| {
        // Fill `a` and queue an any-key waiter: the shard is unlisted.
        let full = pool.try_acquire_key(&Key(1));
        assert!(pool.try_acquire().is_err());
        let timed = pool.acquire_timeout(std::time::Duration::from_millis(1));
        drop((full, timed));
    });
}

/// Keys of one shard set to 0 and back while their leases go back through
/// the lane under a moving limit and budget share (waiters held back by
/// it), new keys take forgotten keys' slots, and keyed, timed and any-key
/// acquisitions and `counts` run on three threads. In debug builds it
/// tripped "room off the ring" (a key's room left unlinked after the lane
/// served a held-back waiter) and "a collected word's key needs no lane"
/// (a word's unit taken back under a limit); a stale word trips
/// `lend_slot`'s assertion, or its lease's release is rejected.
/// `WORKPOOL_STRESS_SECS` (default 2) sets the length.
#[test]
fn keys_forgotten_under_a_limit_leave_no_word_to_their_slots() {
    use std::time::{Duration, Instant};
    let end = Instant::now() + workpool_tests::chaos::stress_duration(Duration::from_secs(2));
    let pool: Pool<u64> = Pool::new();
    let hot: Vec<u64> = (1..).filter(|k| pool.shard_of(k) == 0).take(6).collect();
    let cold: Vec<u64> = (1..).filter(|k| pool.shard_of(k) == 1).take(2).collect();
    let all: Vec<u64> = hot.iter().chain(&cold).copied().collect();
    for &k in &cold {
        pool.set(k, 2);
    }
    std::thread::scope(|s| {
        // Re-targeter: hot keys to 0 and back, a limit now and then.
        s.spawn(|| {
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            while Instant::now() < end {
                let k = hot[(next() % hot.len() as u64) as usize];
                pool.set(k, next() % 3);
                if next() % 16 == 0 {
                    pool.set_budget_share(1 + next() % 18);
                    pool.set_limit(match next() % 4 {
                        0 => None,
                        _ => Some(1 + next() % 4),
                    });
                }
            }
            pool.set_limit(None);
        });
        for t in 0..3u64 {
            let (pool, all) = (&pool, &all);
            s.spawn(move || {
                let mut x = 0x2545_F491_4F6C_DD1Du64 + t;
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let mut held = Vec::new();
                while Instant::now() < end {
                    let k = all[(next() % all.len() as u64) as usize];
                    match next() % 6 {
                        0 | 1 => {
                            if let Ok(l) = pool.try_acquire_key(&k) {
                                held.push(l);
                            }
                        }
                        2 => {
                            if let Ok(l) = pool.acquire_key_timeout(&k, Duration::from_micros(200))
                            {
                                held.push(l);
                            }
                        }
                        3 => {
                            if let Ok(l) = pool.try_acquire() {
                                held.push(l);
                            }
                        }
                        4 => {
                            let _ = pool.counts(&k);
                        }
                        _ => {}
                    }
                    if (held.len() > 2 || next() % 2 == 0) && !held.is_empty() {
                        let i = (next() % held.len() as u64) as usize;
                        drop(held.swap_remove(i));
                    }
                }
            });
        }
    });
    for k in hot {
        pool.set(k, 0);
    }
    for k in cold {
        pool.set(k, 0);
    }
    assert_eq!(pool.active(), 0);
    assert_eq!(pool.len(), 0);
}
