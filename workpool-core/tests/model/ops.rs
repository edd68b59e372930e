//! The inputs of `model.rs`: the ops and the strategies that draw them.

use proptest::prelude::*;

use super::KEYS;

/// One input to the pool. A `usize` picks among what exists, modulo its
/// count; an op with nothing to pick from does nothing.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Set(u8, u64),
    TryAcquire,
    TryAcquireKey(u8),
    /// `try_acquire_key_many` of 0..=5 units.
    TryAcquireKeyMany(u8, u64),
    Enqueue,
    EnqueueKey(u8),
    /// `enqueue_key_many` of 0..=5 units.
    EnqueueKeyMany(u8, u64),
    /// Split units off one of the leases the test holds.
    Split(usize, u64),
    /// Merge one held lease into another.
    Merge(usize, usize),
    /// Cancel one of the registered waiters.
    Cancel(usize),
    /// Claim one of the registered waiters.
    Claim(usize),
    /// Release one of the leases the test holds.
    Release(usize),
    /// Use a dead waiter handle, a handle and a lease of another pool.
    Foreign(usize),
    Close,
    /// Close one key (target 0, its waiters fail).
    CloseKey(u8),
    /// Drain `poll_wake`.
    PollWake,
    /// Set or remove the pool-wide limit.
    SetLimit(Option<u64>),
    /// Several targets at once.
    SetAll(Vec<(u8, u64)>),
    /// Several targets at once, every other key to 0.
    ReplaceAll(Vec<(u8, u64)>),
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    let target = prop_oneof![6 => 0..4u64, 3 => 4..9u64, 1 => Just(u64::MAX)];
    prop_oneof![
        12 => (0..KEYS, target).prop_map(|(k, t)| Op::Set(k, t)),
        6 => Just(Op::TryAcquire),
        6 => (0..KEYS).prop_map(Op::TryAcquireKey),
        4 => (0..KEYS, 0..=5u64).prop_map(|(k, n)| Op::TryAcquireKeyMany(k, n)),
        8 => Just(Op::Enqueue),
        10 => (0..KEYS).prop_map(Op::EnqueueKey),
        6 => (0..KEYS, 0..=5u64).prop_map(|(k, n)| Op::EnqueueKeyMany(k, n)),
        3 => (0..32usize, 0..=5u64).prop_map(|(i, n)| Op::Split(i, n)),
        3 => (0..32usize, 0..32usize).prop_map(|(i, j)| Op::Merge(i, j)),
        6 => (0..32usize).prop_map(Op::Cancel),
        10 => (0..32usize).prop_map(Op::Claim),
        14 => (0..32usize).prop_map(Op::Release),
        2 => (0..32usize).prop_map(Op::Foreign),
        1 => Just(Op::Close),
        3 => (0..=KEYS).prop_map(Op::CloseKey),
        8 => Just(Op::PollWake),
        3 => prop_oneof![1 => Just(None), 3 => (0..9u64).prop_map(Some)].prop_map(Op::SetLimit),
        2 => targets().prop_map(Op::SetAll),
        1 => targets().prop_map(Op::ReplaceAll),
    ]
}

/// Targets for `set_all` / `replace_all`, each key at most once (a key
/// listed twice may be tracked and forgotten within one call, which the
/// harness's count of forgotten keys cannot tell from not being tracked).
pub(super) fn targets() -> impl Strategy<Value = Vec<(u8, u64)>> {
    prop::collection::btree_map(0..KEYS, 0..7u64, 0..4).prop_map(|m| m.into_iter().collect())
}

/// A case that sets a limit first and keeps one most of the time: a
/// quarter of the cases, so that the limit binds for long stretches.
pub(super) fn limited_ops() -> impl Strategy<Value = Vec<Op>> {
    // Shorter under Miri: the model's scans (who is held back, with
    // weights) make a long case slow there, not different.
    let most = if cfg!(miri) { 60 } else { 200 };
    (1..8u64, prop::collection::vec(op(), 1..most)).prop_map(|(limit, mut ops)| {
        ops.insert(0, Op::SetLimit(Some(limit)));
        for op in &mut ops {
            if let Op::SetLimit(None) = op {
                *op = Op::SetLimit(Some(limit));
            }
        }
        ops
    })
}
