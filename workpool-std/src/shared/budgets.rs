//! Budgets: keys under a pool-wide limit that does not bind grant and
//! release with their shard's lock alone.
//!
//! While a limit is set the lane counts every unit the pool grants, so
//! without more every key grant and release would take the lane's lock:
//! keys of different shards would contend on it although the limit is far
//! away, which the concurrency rules only allow while the limit binds.
//! The core lets the lane lend a shard part of the limit's free room
//! ([`Shard::lend_budget`](workpool_core::parts::Shard::lend_budget), its
//! module docs give the rules); here the pool decides when:
//!
//! - **Lend.** A key grant or release that needed the lane lends its
//!   shard `1 / (2 (shards + 1))` of the free room, if that is at least
//!   [`MIN_BUDGET`] units (a limit close to binding lends nothing: every
//!   grant needs the lane then anyway). The shard's next grants and
//!   releases that nobody waits for use it without the lane.
//! - **Take back before saying "no room".** An operation with the lane
//!   that would find the pool's free room short while budgets are out
//!   takes them all back first ([`Shared::reclaim_if_short`]), locking
//!   the shards one at a time with no other shard held: the decision is
//!   then made on the pool's exact room, as without budgets.
//! - **Take back before anyone waits for the pool.** An operation that
//!   leaves a waiter for the pool's room (an any-key waiter, a key waiter
//!   the limit holds back) once the lane's loop has handed out the free
//!   room, while budgets are out, takes them back and hands out what they
//!   held before it lets the lane go
//!   ([`Lane::needs_budgets_back`](workpool_core::parts::Lane::needs_budgets_back)).
//!   Grants from a budget that run meanwhile in other shards are ordered
//!   before that operation, which has not returned yet. (A key waiter that
//!   a release gives key room is held back only until the loop serves it
//!   from the free room: that takes no budget back.)
//! - Changing the limit takes every budget back first.

use super::{LaneGuard, ShardGuard, Shared};

/// The fewest units worth lending a shard: below it, every grant would go
/// back to the lane for more.
const MIN_BUDGET: u64 = 2;

impl<K, S> Shared<K, S> {
    /// Takes every shard's budget back (the lane held, no shard).
    pub(super) fn reclaim_budgets(&self, lane: &mut LaneGuard<'_>) {
        for shard in 0..self.shards.len() {
            if !lane.core.has_budgets() {
                break;
            }
            // Settled: what its words hold goes back to the budget first.
            let mut part = self.lock_settled(shard);
            part.core.return_budget(&mut lane.core);
            self.sync_offer(&mut part);
        }
        self.publish(lane);
    }

    /// Takes every budget back if the limit's free room is short of
    /// `units` while budgets are out (the lane held, no shard): before an
    /// operation that could otherwise find no room in the pool.
    #[inline]
    pub(super) fn reclaim_if_short(&self, lane: &mut LaneGuard<'_>, units: u64) {
        if lane.core.has_budgets() && lane.core.unclaimed().is_some_and(|free| free < units) {
            self.reclaim_budgets(lane);
        }
    }

    /// Lends the shard of `part` its share of the limit's free room, if a
    /// limit is set and the core allows (the lane and the shard held).
    pub(super) fn lend_budget(&self, lane: &mut LaneGuard<'_>, part: &mut ShardGuard<'_, K>) {
        let Some(free) = lane.core.unclaimed() else {
            return;
        };
        let (divisor, least) = match lane.budget_share {
            Some(divisor) => (divisor, 1),
            None => (2 * (self.shards.len() as u64 + 1), MIN_BUDGET),
        };
        let share = free / divisor;
        if share >= least && part.core.lend_budget(&mut lane.core, share) {
            // The shard may now grant any key without the lane.
            self.sync_offer(part);
            self.publish(lane);
        }
    }

    /// Makes the lane lend `1 / divisor` of the limit's free room at once,
    /// however little that is (for tests that drive budgets hard).
    pub(crate) fn set_budget_share(&self, divisor: u64) {
        self.lock_lane().budget_share = Some(divisor.max(1));
    }
}
