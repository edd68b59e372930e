//! Words: a key's grants and releases on an atomic of its own, racing the
//! locked paths that collect it.

use super::*;

/// Two threads make the first leases of one shard at once: exactly one of
/// them takes the shard's count (the flag's compare-exchange), and the
/// last release gives it up.
#[test]
fn two_first_leases_of_a_shard_take_one_count() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let spawn = |pool: &Pool<&'static str, Fixed>| {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.try_acquire_key(&"k").unwrap();
                drop(pool);
                drop(lease);
            })
        };
        let (one, two) = (spawn(&pool), spawn(&pool));
        drop(pool);
        one.join().unwrap();
        two.join().unwrap();
    });
}

/// Words (`shared/words.rs`): two grants race for the one unit a key's
/// word holds. Exactly one gets it, with an id of its own; the other finds
/// the key full, and the counts come back to 0.
#[test]
fn two_fast_grants_race_for_one_lent_unit() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        // Granted under the lock; the other unit is lent to the word.
        let first = pool.try_acquire_key(&"k").unwrap();
        let spawn = |pool: Pool<&'static str, Fixed>| {
            thread::spawn(move || pool.try_acquire_key(&"k").ok())
        };
        let one = spawn(pool.clone());
        let two = spawn(pool.clone());
        let (one, two) = (one.join().unwrap(), two.join().unwrap());
        let won: Vec<_> = one.into_iter().chain(two).collect();
        assert_eq!(won.len(), 1, "one unit, one grant");
        assert!(won[0].id() > first.id(), "ids grow within a key");
        assert_eq!(pool.counts(&"k").active, 2);
        drop(won);
        drop(first);
        assert_eq!(pool.counts(&"k").active, 0);
    });
}

/// Words: a lease released into its key's word races a waiter that queues
/// for the key (and takes the word's units back first). The unit is never
/// lost in the word: the waiter is always served (loom reports a waiter
/// left waiting as a deadlock).
#[test]
fn a_fast_release_racing_a_queuing_waiter_reaches_it() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 2);
        let first = pool.try_acquire_key(&"k").unwrap();
        let second = pool.try_acquire_key(&"k").unwrap(); // from the word
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.acquire_key_blocking(&"k").unwrap();
                lease.id()
            })
        };
        let releaser = thread::spawn(move || drop(second));
        releaser.join().unwrap();
        let id = waiter.join().unwrap();
        assert!(id > first.id());
        drop(first);
        assert_eq!(pool.counts(&"k").active, 0);
        assert_eq!(pool.stats().granted, 3);
    });
}

/// Words: a grant from the word races a `set` (which takes the word's
/// units back, marks it slow, and a later grant lends again). Every lease
/// has its own id, no more than the target are out, and every grant is
/// counted once.
#[test]
fn a_fast_grant_racing_a_set_keeps_ids_and_counts() {
    loom::model(|| {
        let pool = pool();
        pool.set("k", 3);
        let first = pool.try_acquire_key(&"k").unwrap();
        let grant = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire_key(&"k").ok())
        };
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.set("k", 3);
                pool.try_acquire_key(&"k").ok()
            })
        };
        let a = grant.join().unwrap().expect("room for it");
        let b = setter.join().unwrap().expect("room for it");
        let ids = [first.id(), a.id(), b.id()];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert_eq!(pool.counts(&"k").active, 3);
        assert_eq!(pool.stats().granted, 3);
        drop((first, a, b));
        assert_eq!(pool.counts(&"k").active, 0);
    });
}
