//! The any-key stock (`shared/stock.rs`), driven by hand; small enough for
//! Miri.

use super::*;
use crate::shared::words::WORDS;

/// The stock's bit of `key`'s word, once it has one.
fn stock_bit<K: Hash + Eq + Clone, S: std::hash::BuildHasher>(
    shared: &Shared<K, S>,
    key: &K,
) -> Option<usize> {
    let (hash, shard) = shared.locate(key);
    let w = shared.shards[shard].words.find(hash)?;
    Some(shard * WORDS + w)
}

/// While the pool stocks, a locked any-key grant lends the key's room to
/// its word and sets the word's bit; grants from the stock take the
/// word's units without a lock (ids following the lock's) and clear the
/// bit with the last; a release into the empty word sets it again; a
/// collect leaves a stale bit that the next look clears.
#[test]
fn stocked_words_serve_any_key_grants_without_the_lock() {
    let shared = new_shared();
    shared.start_stocking();
    assert!(shared.stocking());
    shared.set(Touchy(1), 3);
    let first = shared.try_acquire(Want::<Touchy>::Any).unwrap(); // locked, lends 2
    let bit = stock_bit(&shared, &Touchy(1)).expect("a word was assigned");
    assert!(shared.stock.is_stocked(bit));
    let second = shared.take_stocked_last().expect("from the word");
    let third = shared.take_stocked_last().expect("the word's last");
    assert_eq!(*third.key(), Touchy(1));
    assert_eq!(
        (second.id(), third.id()),
        (first.id() + 1, first.id() + 2),
        "the word's ids follow the lock's"
    );
    assert!(!shared.stock.is_stocked(bit), "the last unit cleared it");
    assert!(shared.take_stocked_last().is_none());
    assert!(!shared.release(second)); // back into the word
    assert!(shared.stock.is_stocked(bit), "a unit came back");
    // `counts` collects the word: its bit is stale until a grant looks.
    assert_eq!(shared.counts(&Touchy(1)).active, 2);
    assert!(shared.stock.is_stocked(bit));
    assert!(shared.take_stocked_last().is_none(), "the word is slow");
    assert!(!shared.stock.is_stocked(bit), "the stale bit is cleared");
    assert!(!shared.release(first));
    assert!(!shared.release(third));
    assert_eq!(shared.counts(&Touchy(1)).active, 0);
    assert_eq!(shared.stats().granted, 3);
}

/// Two keys in different shards, `a` set first.
fn keys_in_two_shards(shared: &Shared<u32, crate::DefaultHashBuilder>) -> (u32, u32) {
    let a = 0;
    let b = (1..)
        .find(|k| shared.shard_of(k) != shared.shard_of(&a))
        .unwrap();
    (a, b)
}

/// Any-key grants that keep finding a shard's lock held make the pool
/// stock: not the first [`STOCK_AFTER`] - 1 of them, the next one. Each
/// passes over the held shard and takes from the next that offers room.
#[test]
fn any_key_grants_that_keep_meeting_at_a_lock_start_the_stock() {
    use crate::shared::stock::STOCK_AFTER;
    let shared = new_shared();
    let (a, b) = keys_in_two_shards(&shared);
    shared.set(a, 1);
    shared.set(b, 1);
    for meet in 1..=STOCK_AFTER {
        assert!(!shared.stocking(), "stocking before meet {meet}");
        let held = shared.lock_shard(shared.shard_of(&a));
        // The rotation looks at `a`'s shard first.
        let rank = held.rank.expect("a's shard offered room");
        shared.offers.next.store(rank, Ordering::Relaxed);
        let lease =
            std::thread::scope(|scope| scope.spawn(|| shared.try_any_unlaned()).join().unwrap());
        drop(held);
        let lease = lease.expect("from b's shard");
        assert_eq!(*lease.key(), b, "passed over the held shard");
        assert!(!shared.release(lease));
    }
    assert!(shared.stocking());
}

/// While the pool stocks, keys whose room their shard keeps (no word lent)
/// still get their turn: when a thread's round over the stocked words
/// ends, its next grant comes from the shards that offer room. Every unit
/// is granted once, and then none.
#[test]
fn keys_without_a_lent_word_get_a_turn_each_round() {
    let shared = new_shared();
    shared.start_stocking();
    let (a, b) = keys_in_two_shards(&shared);
    shared.set(a, 4);
    shared.set(b, 4);
    let mut leases = Vec::new();
    let mut grant = || {
        let lease = shared.try_acquire(Want::<u32>::Any).unwrap();
        let key = *lease.key();
        leases.push(lease);
        key
    };
    // Locked (lends `a` its room), from the stock, then the round ends and
    // `b`'s shard grants under its lock.
    let keys: Vec<u32> = (0..3).map(|_| grant()).collect();
    assert_eq!(keys, [a, a, b]);
    let rest: Vec<u32> = (0..5).map(|_| grant()).collect();
    assert_eq!(rest.iter().filter(|&&k| k == a).count(), 2);
    assert_eq!(rest.iter().filter(|&&k| k == b).count(), 3);
    assert!(shared.try_acquire(Want::<u32>::Any).is_err(), "all 8 out");
    for lease in leases {
        assert!(!shared.release(lease));
    }
    assert_eq!(shared.counts(&a).active + shared.counts(&b).active, 0);
}

/// A stocked word whose chunk of ids runs out is lent again by the grant
/// that finds it so: stocked grants go on past the chunk's end, with ids
/// that keep growing, and every unit comes back.
#[test]
#[cfg_attr(miri, ignore = "thousands of grants; the paths run in the tests above")]
fn a_stocked_word_whose_ids_run_out_is_lent_again() {
    let shared = new_shared();
    shared.start_stocking();
    shared.set(7u32, 2);
    let first = shared.try_acquire(Want::<u32>::Any).unwrap(); // locked, lends 1
    let mut last = first.id();
    for _ in 0..2 * super::super::words::CHUNK_FOR_TESTS {
        let lease = shared
            .take_stocked_last()
            .expect("the stock keeps its unit");
        assert!(lease.id() > last, "ids grow within a key");
        last = lease.id();
        assert!(!shared.release(lease));
    }
    assert!(!shared.release(first));
    assert_eq!(shared.counts(&7).active, 0);
}
