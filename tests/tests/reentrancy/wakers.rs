//! The wakers the scenarios hand to the pool: a hostile one that owns
//! something whose drop re-enters the pool (a lease, a task, the last
//! `Pool` handle) and may act on the pool when woken, and a plain counting
//! one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use workpool_std::{Lease, Pool};

/// A task, as an executor's waker would own it: dropping the waker's last
/// handle drops the task and everything it holds.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a [`Hostile`] waker owns; dropped with the waker.
#[allow(dead_code, reason = "held only to be dropped")]
pub(crate) enum Payload {
    /// A lease: dropping it releases a unit, which re-enters the pool.
    Lease(Lease<u32>),
    /// A task that holds a lease and is parked on that lease's `surplus()`:
    /// dropping it unregisters a watcher, then releases the lease.
    Task(Task),
    /// A `Pool` handle: dropping the last one closes the pool.
    Pool(Pool<u32>),
}

impl Payload {
    /// A task that owns `lease` and waits for it to become surplus, polled
    /// once so that its watcher is registered with the pool.
    pub(crate) fn watching_task(lease: Lease<u32>) -> Self {
        let mut task: Task = Box::pin(async move {
            lease.surplus().await;
            drop(lease);
        });
        let polled = task
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()));
        assert!(polled.is_pending(), "the task's lease is not surplus yet");
        Self::Task(task)
    }
}

/// What a [`Hostile`] waker does when woken (by value or by reference).
pub(crate) enum OnWake {
    Nothing,
    /// Drops its payload (releasing the lease it owns).
    Release,
    /// Reads `key`'s target and raises it by one: two calls into the pool,
    /// on the key the woken future waits on.
    RaiseTarget(Pool<u32>, u32),
}

/// What the test can see of a [`Hostile`] waker after the pool took it.
#[derive(Default)]
pub(crate) struct Probe {
    wakes: AtomicUsize,
    dropped: AtomicBool,
}

impl Probe {
    pub(crate) fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }

    /// True once the waker's last handle was dropped (and with it its
    /// payload).
    pub(crate) fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// A waker that owns a [`Payload`] and acts on the pool when woken.
pub(crate) struct Hostile {
    payload: Mutex<Option<Payload>>,
    on_wake: OnWake,
    probe: Arc<Probe>,
}

impl Hostile {
    /// The waker (whose handles are the only owners of `payload`) and its
    /// probe.
    pub(crate) fn owning(payload: Payload, on_wake: OnWake) -> (Waker, Arc<Probe>) {
        let probe = Arc::new(Probe::default());
        let waker = Waker::from(Arc::new(Self {
            payload: Mutex::new(Some(payload)),
            on_wake,
            probe: Arc::clone(&probe),
        }));
        (waker, probe)
    }
}

impl Wake for Hostile {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.probe.wakes.fetch_add(1, Ordering::SeqCst);
        match &self.on_wake {
            OnWake::Nothing => {}
            OnWake::Release => {
                let payload = self.payload.lock().unwrap().take();
                drop(payload);
            }
            OnWake::RaiseTarget(pool, key) => {
                let target = pool.counts(key).target;
                pool.set(*key, target + 1);
            }
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.probe.dropped.store(true, Ordering::SeqCst);
        // The payload is dropped right after, with the fields.
    }
}

/// A waker that only counts its wakes.
#[derive(Default)]
pub(crate) struct Plain(AtomicUsize);

impl Plain {
    /// A counting waker and its counter.
    pub(crate) fn new() -> (Waker, Arc<Self>) {
        let plain = Arc::new(Self::default());
        (Waker::from(Arc::clone(&plain)), plain)
    }

    pub(crate) fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Plain {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `Poll::is_pending`, with the value shown when it is not.
pub(crate) fn pending<T: std::fmt::Debug>(polled: &Poll<T>, what: &str) {
    assert!(
        polled.is_pending(),
        "{what}: expected Pending, got {polled:?}"
    );
}
