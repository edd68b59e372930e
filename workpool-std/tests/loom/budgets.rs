//! Budgets: keys under a pool-wide limit that does not bind grant and
//! release with their shard's lock alone, out of room the lane lent the
//! shard; the lane takes it back before it finds the pool full.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;

use workpool_std::Lease;

use super::*;

type TestLease = Lease<&'static str, Fixed>;

/// A grant out of shard `a`'s budget races a waiter of key `b` (another
/// shard, no budget) that the limit holds back unless it takes the budget
/// back. Never more live leases than the limit, and the waiter is served
/// once a lease goes, whoever won the race.
#[test]
fn a_budget_grant_racing_a_waiter_the_limit_holds_back() {
    budget_grant_racing_a_waiter_the_limit_holds_back(|pool, a| pool.try_acquire_key(&a).ok());
}

/// The same race with an any-key grant, which takes shard `a`'s budget
/// with `a`'s lock alone. The model fails (a deadlock) when the any-key
/// grant does not take its unit out of the budget.
#[test]
fn an_any_key_budget_grant_racing_a_waiter_the_limit_holds_back() {
    budget_grant_racing_a_waiter_the_limit_holds_back(|pool, _| pool.try_acquire().ok());
}

/// What the two models above race: `grant` (given key `a`) against a
/// blocking waiter of `b`, under a limit of 2 with one lease of `a` out.
fn budget_grant_racing_a_waiter_the_limit_holds_back(
    grant: fn(&Pool<&'static str, Fixed>, &'static str) -> Option<TestLease>,
) {
    loom::model(move || {
        let pool = pool();
        pool.set_budget_share(1);
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 2);
        pool.set(b, 1);
        pool.set_limit(Some(2));
        // Through the lane, which lends shard `a` the other unit.
        let held = pool.try_acquire_key(&a).unwrap();
        let live = Arc::new(AtomicUsize::new(1));
        let waiter = {
            let (pool, live) = (pool.clone(), live.clone());
            thread::spawn(move || {
                let lease = pool.acquire_key_blocking(&b).unwrap();
                assert!(live.fetch_add(1, Ordering::SeqCst) < 2, "past the limit");
                live.fetch_sub(1, Ordering::SeqCst);
                *lease.key()
            })
        };
        let second = grant(&pool, a);
        if second.is_some() {
            assert!(live.fetch_add(1, Ordering::SeqCst) < 2, "past the limit");
        }
        live.fetch_sub(1, Ordering::SeqCst);
        drop(held);
        if second.is_some() {
            live.fetch_sub(1, Ordering::SeqCst);
        }
        drop(second);
        assert_eq!(waiter.join().unwrap(), b);
        assert_eq!(pool.active(), 0);
        assert_eq!(pool.waiters(), 0);
    });
}

/// Key `a`'s word holds units lent out of its shard's budget; a grant from
/// the word races a grant of key `b` (another shard) that finds the limit's
/// free room short and takes the budgets back, words included. The pool has
/// room for both, so both succeed, and every unit is accounted for after.
#[test]
fn a_word_grant_under_a_limit_racing_a_take_back() {
    loom::model(|| {
        let pool = pool();
        pool.set_budget_share(1);
        let (a, b) = keys_in_two_shards(&pool);
        pool.set(a, 3);
        pool.set(b, 1);
        pool.set_limit(Some(3));
        // Through the lane (lends shard `a` the 2 units left), then out of
        // the budget (lends `a`'s word the last unit), then back into the
        // word: it holds 2 units, the budget none, the lane's room is taken.
        let held = pool.try_acquire_key(&a).unwrap();
        drop(pool.try_acquire_key(&a).unwrap());
        let other = {
            let pool = pool.clone();
            thread::spawn(move || pool.try_acquire_key(&b).map(|l| *l.key()))
        };
        let mine = pool.try_acquire_key(&a).map(|l| *l.key());
        assert_eq!(mine, Ok(a), "the word's unit was lost");
        assert_eq!(other.join().unwrap(), Ok(b), "the pool had room for b");
        drop(held);
        assert_eq!(pool.active(), 0);
        let all: Vec<_> = [a, a, b]
            .iter()
            .map(|k| pool.try_acquire_key(k).unwrap())
            .collect();
        assert_eq!(pool.active(), 3);
        assert!(pool.try_acquire_key(&a).is_err(), "past the limit");
        drop(all);
    });
}
