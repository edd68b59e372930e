//! The steps `std_matches_core` plays on both pools, and their strategies.

use proptest::prelude::*;

/// Keys are `0..KEYS`: most forms use the first [`FEW_KEYS`], the forms
/// with many keys in one shard all of them.
pub(crate) const KEYS: u8 = 40;
/// The keys of most forms: a shard of this many gives each a word of its
/// first words.
const FEW_KEYS: u8 = 8;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Set(u8, u64),
    TryAcquire,
    TryAcquireKey(u8),
    /// Start an any-key acquisition (std: a future polled once; core:
    /// `enqueue`).
    Acquire,
    AcquireKey(u8),
    /// Poll one pending acquisition (core: `claim`).
    Poll(usize),
    /// Drop one pending acquisition (core: `cancel`).
    Drop(usize),
    /// Release one held lease.
    Release(usize),
    Close,
    CloseKey(u8),
    SetLimit(Option<u64>),
    /// Watch one held lease's `surplus()` (the watcher owns the lease until
    /// it resolves; releasing the lease drops the watcher).
    WatchSurplus(usize),
    /// Watch a key's `drained()`.
    WatchDrained(u8),
    /// Poll one watcher.
    PollWatch(usize),
    /// Drop one `drained()` watcher.
    DropDrained(usize),
    /// `try_acquire_key_many` (core: the same).
    TryAcquireKeyMany(u8, u64),
    /// Start `acquire_key_many` (core: `enqueue_key_many`).
    AcquireKeyMany(u8, u64),
    /// Split units off a held lease.
    Split(usize, u64),
    /// Merge one held lease into another.
    Merge(usize, usize),
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    op_of(FEW_KEYS)
}

/// Any step, over keys `0..keys`.
fn op_of(keys: u8) -> impl Strategy<Value = Op> {
    let target = prop_oneof![9 => 0..4u64, 3 => 4..9u64, 1 => Just(u64::MAX)];
    prop_oneof![
        12 => (0..keys, target).prop_map(|(k, t)| Op::Set(k, t)),
        6 => Just(Op::TryAcquire),
        6 => (0..keys).prop_map(Op::TryAcquireKey),
        8 => Just(Op::Acquire),
        10 => (0..keys).prop_map(Op::AcquireKey),
        10 => (0..32usize).prop_map(Op::Poll),
        5 => (0..32usize).prop_map(Op::Drop),
        14 => (0..32usize).prop_map(Op::Release),
        1 => Just(Op::Close),
        3 => (0..keys).prop_map(Op::CloseKey),
        4 => prop_oneof![1 => Just(None), 3 => (0..6u64).prop_map(Some)].prop_map(Op::SetLimit),
        4 => (0..32usize).prop_map(Op::WatchSurplus),
        3 => (0..keys).prop_map(Op::WatchDrained),
        4 => (0..32usize).prop_map(Op::PollWatch),
        1 => (0..32usize).prop_map(Op::DropDrained),
        4 => (0..keys, 0..=5u64).prop_map(|(k, n)| Op::TryAcquireKeyMany(k, n)),
        5 => (0..keys, 1..=5u64).prop_map(|(k, n)| Op::AcquireKeyMany(k, n)),
        3 => (0..32usize, 0..=5u64).prop_map(|(i, n)| Op::Split(i, n)),
        3 => (0..32usize, 0..32usize).prop_map(|(i, j)| Op::Merge(i, j)),
    ]
}

/// A step of keyed traffic alone (no any-key acquisition, which stops
/// shards from lending their more words), over keys `0..keys`.
fn keyed_op(keys: u8) -> impl Strategy<Value = Op> {
    let target = prop_oneof![6 => 1..4u64, 1 => 0..1u64, 1 => 4..9u64];
    prop_oneof![
        1 => (0..keys, target).prop_map(|(k, t)| Op::Set(k, t)),
        10 => (0..keys).prop_map(Op::TryAcquireKey),
        10 => (0..keys).prop_map(Op::AcquireKey),
        6 => (0..64usize).prop_map(Op::Poll),
        2 => (0..64usize).prop_map(Op::Drop),
        12 => (0..64usize).prop_map(Op::Release),
        1 => (0..keys).prop_map(Op::CloseKey),
        1 => prop_oneof![3 => Just(None), 1 => (4..40u64).prop_map(Some)].prop_map(Op::SetLimit),
        1 => (0..64usize).prop_map(Op::WatchSurplus),
        1 => (0..keys).prop_map(Op::WatchDrained),
        1 => (0..64usize).prop_map(Op::PollWatch),
        2 => (0..keys, 0..=3u64).prop_map(|(k, n)| Op::TryAcquireKeyMany(k, n)),
        2 => (0..keys, 1..=3u64).prop_map(|(k, n)| Op::AcquireKeyMany(k, n)),
        1 => (0..64usize, 0..=2u64).prop_map(|(i, n)| Op::Split(i, n)),
    ]
}

/// Every key set, keyed traffic over them (in one shard: it lends them
/// words of its block of more words), then any step.
pub(crate) fn many_keys_ops() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(1..4u64, KEYS as usize),
        prop::collection::vec(keyed_op(KEYS), 40..300),
        prop::collection::vec(op_of(KEYS), 0..60),
    )
        .prop_map(|(targets, keyed, rest)| {
            let set = (0..KEYS).zip(targets).map(|(k, t)| Op::Set(k, t));
            set.chain(keyed).chain(rest).collect()
        })
}
