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

/// Three keys of one shard, for the solo-word models.
fn keys_in_one_shard(pool: &Pool<&'static str, Fixed>) -> [&'static str; 3] {
    let candidates = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let shard = pool.shard_of(&candidates[0]);
    let mut same = candidates
        .iter()
        .copied()
        .filter(|k| pool.shard_of(k) == shard);
    let mut next = || same.next().expect("ten keys over two shards");
    [next(), next(), next()]
}

/// Solo words (`Shared::fast_take_any`): an any-key grant from the word of
/// a key its shard's ring links alone races the key being forgotten and
/// its word given to a key `b` that shares the ring with `c`, linked
/// before it. A locked any-key grant after that takes `c`, under the
/// cursor; one from the word (the stale solo mark) would take `b`.
#[test]
fn a_stale_solo_mark_gives_no_any_key_grant() {
    loom::model(|| {
        let pool = pool();
        let [a, b, c] = keys_in_one_shard(&pool);
        pool.set(a, 1);
        // A locked grant, then a release into the word: `a` is solo.
        drop(pool.try_acquire_key(&a).unwrap());
        let any = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire().ok())
        };
        let setter = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.set(a, 0); // forgotten if idle: its word is freed
                pool.set(c, 1);
                pool.set(b, 3);
                // A locked grant of `b`: the word goes to `b`, not solo.
                pool.try_acquire_key(&b).ok()
            })
        };
        let got = any.join().unwrap();
        let held = setter.join().unwrap();
        if let Some(lease) = &got {
            assert_ne!(*lease.key(), b, "the cursor was on a or c");
        }
        drop((got, held));
        assert_eq!(pool.counts(&b).active, 0);
        assert_eq!(pool.counts(&c).active, 0);
    });
}

/// More words (`shared/words/more.rs`): a key whose word is one of its
/// shard's block (the shard's one first word went to another key), found
/// through the block's tables, grants from it and puts the unit back while
/// its counts collect the word. The counts are exact when read, never over
/// the target, and come back to 0.
#[test]
fn a_block_words_grant_and_release_race_its_collect() {
    loom::model(|| {
        let pool = pool();
        let [a, b, _] = keys_in_one_shard(&pool);
        pool.set(a, 1);
        pool.set(b, 2);
        // `a` takes the shard's first word; `b` a word of the block, with
        // one unit lent to it.
        drop(pool.try_acquire_key(&a).unwrap());
        let first = pool.try_acquire_key(&b).unwrap();
        let grant = {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.try_acquire_key(&b).ok();
                let id = lease.as_ref().map(|l| l.id());
                drop(lease);
                id
            })
        };
        let counts = {
            let pool = pool.clone();
            thread::spawn(move || pool.counts(&b))
        };
        let id = grant.join().unwrap();
        let seen = counts.join().unwrap();
        assert!((1..=2).contains(&seen.active), "{seen:?}");
        assert!(id.is_some(), "the lent unit, or the one collected");
        assert!(id > Some(first.id()), "ids grow within a key");
        assert_eq!(pool.counts(&b).active, 1);
        assert_eq!(pool.stats().granted, 3);
        drop(first);
        assert_eq!(pool.counts(&b).active, 0);
    });
}
