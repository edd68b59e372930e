//! A key forgotten by a release that goes through the lane under a limit
//! (`finish_lane_op`, which lets the shard go before the lane's loop and
//! locks it again only afterwards to collect forgotten keys): if another
//! key takes the forgotten key's slot in that window, the forgotten key's
//! word must not stay assigned to the slot, or the new key's room is lent
//! to a word that mints leases with the old key's (stale) generation.
//!
//! The window is opened deterministically: the released key's `Drop` (run
//! after the lane is unlocked and before the shard is locked again) sets
//! the new key.

use std::cell::RefCell;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use workpool_std::Pool;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(u32);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// The key whose next drop sets `HOOK_SETS` (0: none).
static ARMED: AtomicU32 = AtomicU32::new(0);
static HOOK_SETS: AtomicU32 = AtomicU32::new(0);

thread_local! {
    static POOL: RefCell<Option<Pool<Key>>> = const { RefCell::new(None) };
}

impl Drop for Key {
    fn drop(&mut self) {
        if self.0 != 0
            && ARMED
                .compare_exchange(self.0, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let pool = POOL.with(|p| p.borrow().clone()).expect("pool set");
            pool.set(Self(HOOK_SETS.load(Ordering::SeqCst)), 2);
        }
    }
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_slot_reused_while_the_lane_finishes_gets_no_stale_word() {
    let pool: Pool<Key> = Pool::new();
    POOL.with(|p| *p.borrow_mut() = Some(pool.clone()));
    let a = 1;
    let shard = pool.shard_of(&Key(a));
    let c = (2..).find(|&c| pool.shard_of(&Key(c)) == shard).unwrap();
    let b = (2..).find(|&b| pool.shard_of(&Key(b)) != shard).unwrap();

    // `a` gets a word (its locked grant lends the rest of its room), then
    // is set to 0 with one lease out: the word is collected (slow) and
    // stays assigned until `a` is forgotten.
    pool.set(Key(a), 2);
    let lease_a = pool.try_acquire_key(&Key(a)).unwrap();
    pool.set(Key(a), 0);

    // A limit that the pool is at, and a waiter of another shard held back
    // by it: `a`'s release then goes through the lane, and the lane's loop
    // (`finish_lane_op`) serves the waiter.
    pool.set(Key(b), 1);
    pool.set_limit(Some(1));
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let key_b = Key(b);
    let mut wait_b = pin!(pool.acquire_key(&key_b));
    assert!(wait_b.as_mut().poll(&mut cx).is_pending());

    // Dropping the lease forgets `a`; its key is dropped once the lane is
    // unlocked, before the shard is finished again: the hook sets `c`,
    // which takes `a`'s slot.
    HOOK_SETS.store(c, Ordering::SeqCst);
    ARMED.store(a, Ordering::SeqCst);
    drop(lease_a);
    assert_eq!(ARMED.load(Ordering::SeqCst), 0, "the hook ran");
    let Poll::Ready(Ok(lease_b)) = wait_b.as_mut().poll(&mut cx) else {
        panic!("b was served by the released unit");
    };
    pool.set_limit(None);
    drop(lease_b);

    // `c`'s locked grant lends the rest of its room to its word: it must
    // be a word of `c`'s, not `a`'s old one.
    let lease_c = pool.try_acquire_key(&Key(c)).unwrap();
    // A grant of `a` (untracked, target 0) must find no room anywhere.
    // (With the stale word, it gets one from that word, minted with `a`'s
    // old generation: once the word is collected, its release is rejected,
    // "a std lease was rejected".)
    if let Ok(stray) = pool.try_acquire_key(&Key(a)) {
        let _ = pool.counts(&Key(a));
        drop(stray);
        panic!("a forgotten key got a lease");
    }
    // `c`'s second unit is still there, and both leases go back.
    let lease_c2 = pool.try_acquire_key(&Key(c)).unwrap();
    assert_eq!(pool.counts(&Key(c)).active, 2);
    drop((lease_c, lease_c2));
    assert_eq!(pool.counts(&Key(c)).active, 0);
    assert_eq!(pool.active(), 0);
    POOL.with(|p| p.borrow_mut().take());
}
