//! Unit tests for the pool, one sub-module per concern. They drive the core
//! by hand, with no threads, and check its inner structure after each step.

use alloc::vec::Vec;
use core::hash::{BuildHasher, Hash};

use super::Pool;
use crate::lease::{Claim, Counts, Lease, WaiterId};
use crate::waiters::{State, Waiters, NIL};
use crate::{Closed, ReleaseError, TryAcquireError, UnknownWaiter};

type P = Pool<&'static str>;

/// A pool with the identity targets without atomic read-modify-write use
/// (`thumbv6m`, `riscv32imc`): the address of a heap cell it owns.
fn anchored() -> P {
    Pool::with_identity(
        hashbrown::DefaultHashBuilder::default(),
        crate::identity::Identity::anchored(),
    )
}

/// Checks the pool's bookkeeping and the contract's invariants: every
/// group with room is linked in the ring (full ones may linger until the
/// cursor reaches them), no group is linked while an any-key waiter waits
/// (what lets key operations skip the lane), every queue is linked both
/// ways and counted right, no idle group lingers, and (while open) no waiter
/// waits while a group that could serve it has room.
fn check<K: Hash + Eq + Clone, S: BuildHasher>(pool: &Pool<K, S>) {
    let (lane, shard) = (&pool.lane, &pool.shard);
    let ring: Vec<u32> = shard.ring.nodes(&shard.groups);
    for &g in &ring {
        assert!(
            shard.groups.get(g).is_some(),
            "the ring holds a free slot {g}"
        );
    }
    let any = lane.waiters.list(lane.any_queue);
    let pool_room = lane.pool_room();
    // The groups that could give the oldest any-key waiter a unit: room,
    // and no older key waiter keeping it (for more units than are free).
    let any_head = any.first().map(|&i| lane.waiters.slot(i).order());
    let serves_any = |g: u32| {
        let group = shard.groups.at(g);
        let head = group.queue.head;
        group.has_room()
            && (head == NIL || any_head.is_none_or(|a| shard.waiters.slot(head).order() > a))
    };
    assert!(
        any.is_empty()
            || ring.is_empty()
            || !pool_room
            || (lane.limit().is_some() && !ring.iter().any(|&g| serves_any(g))),
        "a group is linked while an any-key waiter waits"
    );
    // The lane's rotation: the shard, exactly while it is listed; listed
    // whenever a group is linked, and never while an any-key waiter waits
    // (without a limit).
    let listed = lane.shards.nodes(&lane.shard_links);
    assert_eq!(listed.len(), usize::from(shard.is_listed()), "listing");
    assert!(
        ring.is_empty() || shard.is_listed(),
        "linked in a shard not listed"
    );
    assert!(
        any.is_empty() || !shard.is_listed() || lane.limit().is_some(),
        "a shard is listed while an any-key waiter waits"
    );
    // The groups the limit holds back: exactly those with room and key
    // waiters while a limit is set, and none while the pool has room.
    let blocked: Vec<u32> = lane
        .blocked
        .groups()
        .into_iter()
        .map(|(s, g)| {
            assert_eq!(s, 0, "the heap names another shard");
            g
        })
        .collect();
    if !pool.is_closed() {
        // Held back only while the oldest of them asks for more than the
        // pool has (one unit: while the pool has no room at all).
        let top = lane.blocked.top_units();
        assert!(
            top.is_none_or(|units| !lane.pool_room_for(units)),
            "held back while the pool has room"
        );
    }
    if let Some(total) = lane.active() {
        assert_eq!(total, pool.active(), "the lane's count");
    }
    let mut waiting = any.len();
    let mut tracked = 0;
    for g in 0..shard.groups.slots() as u32 {
        let Some(group) = shard.groups.get(g) else {
            continue;
        };
        let hash = pool.hasher.hash_one(&group.key);
        assert_eq!(
            group.in_ring(),
            ring.contains(&g),
            "group {g}'s node is wrong"
        );
        if group.is_idle() {
            // Retired: waiting for `poll_forgotten`, no longer tracked.
            assert_ne!(
                shard.slot_of(hash, &group.key),
                Some(g),
                "idle group {g} is still tracked"
            );
            assert!(!ring.contains(&g), "retired group {g} is in the ring");
            continue;
        }
        tracked += 1;
        assert_eq!(
            shard.slot_of(hash, &group.key),
            Some(g),
            "the table lost group {g}"
        );
        // What the head waiter asks for, if the key has room for it.
        let head_fits =
            group.queue.head != NIL && group.fits(shard.waiters.slot(group.queue.head).units());
        if !pool.is_closed() && group.has_room() && (group.queue.head == NIL || head_fits) {
            assert!(
                ring.contains(&g),
                "group {g} has room but is not in the ring"
            );
        }
        assert_eq!(
            shard.blocked_node(g) != NIL,
            blocked.contains(&g),
            "group {g}'s heap node is wrong"
        );
        if lane.limit().is_some() {
            assert_eq!(
                blocked.contains(&g),
                head_fits,
                "group {g} held back wrongly"
            );
        }
        let queue = shard.waiters.list(group.queue);
        assert_eq!(queue.len(), group.waiting as usize);
        assert_queue(&shard.waiters, &queue, g);
        waiting += queue.len();
        if !pool.is_closed() && blocked.is_empty() {
            assert!(queue.is_empty() || !head_fits, "key waiter left");
        }
    }
    assert_queue(&lane.waiters, &any, NIL);
    assert_eq!(tracked, pool.len());
    assert_eq!(pool.iter().count(), tracked);
    assert_eq!(shard.table_len(), tracked);
    assert_eq!(waiting, pool.waiters());
    let room = ring.iter().any(|&g| serves_any(g));
    assert!(any.is_empty() || !room || !pool_room, "any-key waiter left");
    if pool.is_closed() {
        assert_eq!(waiting, 0, "a waiter still waits after close");
    }
    for (waiters, wake) in [
        (&lane.waiters, lane.wake_list()),
        (&shard.waiters, shard.wake_list()),
    ] {
        for index in waiters.list(wake) {
            let w = waiters.slot(index);
            assert!(w.in_wake());
            assert!(matches!(w.state(), State::Granted(_) | State::Closed));
        }
    }
}

/// Every waiter of `queue` waits for `group`, in arrival order.
fn assert_queue(waiters: &Waiters, queue: &[u32], group: u32) {
    let mut last = None;
    for &index in queue {
        let w = waiters.slot(index);
        assert!(matches!(w.state(), State::Waiting));
        assert!(!w.in_wake());
        assert_eq!(w.group, group);
        assert!(last <= Some(w.order()), "queue out of arrival order");
        last = Some(w.order());
    }
}

/// Everything `poll_wake` reports right now.
fn drain<K: Hash + Eq + Clone, S: BuildHasher>(pool: &mut Pool<K, S>) -> Vec<WaiterId> {
    core::iter::from_fn(|| pool.poll_wake()).collect()
}

/// The lease `waiter` was granted.
#[track_caller]
fn granted<K: Hash + Eq + Clone, S: BuildHasher>(
    pool: &mut Pool<K, S>,
    waiter: WaiterId,
) -> Lease<K> {
    match pool.claim(waiter) {
        Ok(Claim::Granted(lease)) => lease,
        other => panic!(
            "expected a grant, got {:?}",
            other.map(|c| matches!(c, Claim::Waiting))
        ),
    }
}

#[track_caller]
fn assert_waiting(pool: &mut P, waiter: WaiterId) {
    assert!(matches!(pool.claim(waiter), Ok(Claim::Waiting)));
}

fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// Every public type a thread-safe adapter moves between threads is `Send`
/// and `Sync` when its key is.
#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pool<&str>>();
    assert_send_sync::<super::Iter<'_, &str>>();
    assert_send_sync::<Lease<&str>>();
    assert_send_sync::<Claim<&str>>();
    assert_send_sync::<WaiterId>();
    assert_send_sync::<crate::Counts>();
    assert_send_sync::<Closed>();
    assert_send_sync::<TryAcquireError>();
    assert_send_sync::<ReleaseError<u8>>();
    assert_send_sync::<UnknownWaiter>();
    #[cfg(feature = "spin")]
    assert_send_sync::<crate::SharedPool<&str>>();
}

mod acquire;
mod close_key;
mod lifecycle;
mod limit;
mod memory;
mod waiting;
mod weights;
