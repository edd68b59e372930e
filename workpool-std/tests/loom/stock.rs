//! The any-key stock (`shared/stock.rs`): while the pool stocks, any-key
//! grants take units from keys' lent words through a bitmap of the words
//! with units.

use super::*;

/// A release that puts a unit into a stocked word races the any-key grant
/// that takes the word's last unit and clears its bit. The bit is never
/// left clear while the word holds the released unit: the stock alone
/// still grants it afterwards.
#[test]
fn a_stocked_release_racing_the_grant_that_empties_its_word() {
    loom::model(|| {
        let pool = pool();
        pool.start_stocking();
        pool.set("k", 2);
        // A locked any-key grant; the other unit is lent to the word and
        // stocked.
        let first = pool.try_acquire().unwrap();
        let grant = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire_stocked())
        };
        drop(first); // into the word, racing the grant
        let got = grant
            .join()
            .unwrap()
            .expect("the word held a unit throughout");
        let last = pool.try_acquire_stocked();
        assert!(last.is_some(), "the released unit stays stocked");
        assert_eq!(pool.counts(&"k").active, 2);
        drop((got, last));
        assert_eq!(pool.counts(&"k").active, 0);
        assert_eq!(pool.stats().granted, 3);
    });
}

/// While the pool stocks, a lease released into its key's word races an
/// any-key acquisition that finds no room and queues (its pass under the
/// lane takes every word's units back first). The unit is never left in
/// the word: the waiter is always served (loom reports a waiter left
/// waiting as a deadlock).
#[test]
fn a_stocked_release_racing_a_queuing_any_key_waiter_reaches_it() {
    loom::model(|| {
        let pool = pool();
        pool.start_stocking();
        pool.set("k", 1);
        // A locked any-key grant lends the key's word (no unit left).
        let held = pool.try_acquire().unwrap();
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || {
                let lease = pool.acquire_blocking().unwrap();
                *lease.key()
            })
        };
        let releaser = thread::spawn(move || drop(held));
        releaser.join().unwrap();
        assert_eq!(waiter.join().unwrap(), "k");
        assert_eq!(pool.counts(&"k").active, 0);
        assert_eq!(pool.stats().granted, 2);
    });
}
