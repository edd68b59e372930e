//! `close` forgets keys tracked only for their waiters. Until the shard is
//! locked again to collect them, a key set meanwhile (here by a waker that
//! `close` runs) could take a forgotten key's slot: the core then drops
//! the forgotten key to reuse the slot, under the shard's lock.

use std::cell::RefCell;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use workpool_std::Pool;

/// Set when a key was dropped while this thread held one of the pool's
/// locks (the pool's `Debug` could not take them all).
static DROPPED_UNDER_A_LOCK: AtomicBool = AtomicBool::new(false);

thread_local! {
    static POOL: RefCell<Option<Pool<Probe>>> = const { RefCell::new(None) };
}

/// A key whose `Drop` checks that no lock of the pool is held.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe(u32);

impl Hash for Probe {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let pool = POOL.with(|p| p.borrow().clone());
        if let Some(pool) = pool {
            if format!("{pool:?}").contains("complete: false") {
                DROPPED_UNDER_A_LOCK.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Sets a key when woken.
struct SetOnWake(Pool<Probe>, u32);

impl Wake for SetOnWake {
    fn wake(self: Arc<Self>) {
        self.0.set(Probe(self.1), 1);
    }
}

#[test]
fn a_key_set_while_close_runs_drops_no_forgotten_key_under_a_lock() {
    let pool: Pool<Probe> = Pool::new();
    POOL.with(|p| *p.borrow_mut() = Some(pool.clone()));
    let shard = pool.shard_of(&Probe(1));
    let new = (2..).find(|&k| pool.shard_of(&Probe(k)) == shard).unwrap();

    // A waiter of the untracked key 1: its shard's only group, forgotten
    // by `close`.
    let noop = Waker::noop();
    let key = Probe(1);
    let mut keyed = Box::pin(pool.acquire_key(&key));
    assert!(keyed
        .as_mut()
        .poll(&mut Context::from_waker(noop))
        .is_pending());
    // An any-key waiter whose waker (run by `close`, after it let the
    // shards go) sets a new key in that shard.
    let waker = Waker::from(Arc::new(SetOnWake(pool.clone(), new)));
    let mut any = Box::pin(pool.acquire());
    assert!(any
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());

    pool.close();
    assert_eq!(pool.counts(&Probe(new)).target, 1, "the waker ran");
    drop((keyed, any));
    drop(key);
    POOL.with(|p| p.borrow_mut().take());
    assert!(
        !DROPPED_UNDER_A_LOCK.load(Ordering::SeqCst),
        "a forgotten key was dropped under a lock"
    );
}
