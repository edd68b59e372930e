//! Test support for the workpool workspace.
//!
//! - [`Runner`]: one interface over the executors the scenario tests run on
//!   (tokio current-thread and multi-thread, an `async-executor` in the smol
//!   style, `futures_lite::future::block_on` with a thread per task, and
//!   plain threads using the blocking calls), so each scenario is written
//!   once.
//! - [`Probe`]: a future polled by hand with its own counting waker, to pin
//!   down who is woken, how often, and in which order.
//! - [`with_hang_guard`] and [`wait_until`]: a test that would hang fails
//!   instead, and a test waits for a condition, never for a fixed time.
//! - [`Tracked`]: a key whose copies can be counted, so a test can tell
//!   that the pool's state and every key in it were freed.
//! - [`chaos`]: a seeded generator, a future wrapper that is cancelled at
//!   random points, and quiet deliberate panics, for the stress tests.
#![forbid(unsafe_code)]

pub mod chaos;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use workpool_std::{AcquireTimeoutError, Closed, Lease, Pool};

/// How long a scenario may run before it is declared hung. Only a guard:
/// no test asserts on time, and a passing scenario takes milliseconds.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Stack size for the threads the thread-based runners start per task.
const TASK_STACK: usize = 256 * 1024;

/// What the tests need of a key type.
///
/// No `'static` bound on purpose: with one, rustc cannot prove the
/// scenarios' futures `Send` for `K = &'static str` (its auto-trait check
/// erases lifetimes and then asks for `&'x str: 'static` for every `'x`).
pub trait Key: Hash + Eq + Clone + fmt::Debug + Send + Sync {}

impl<T: Hash + Eq + Clone + fmt::Debug + Send + Sync> Key for T {}

/// The result of an acquisition, as every runner reports it.
pub type Acquired<K> = Result<Lease<K>, Closed>;

/// An executor (or the lack of one) that a scenario runs on.
///
/// Scenarios are `async fn`s generic over the runner. Thread-based runners
/// run every task on its own OS thread under `futures_lite`'s `block_on`, so
/// a blocking call inside a task blocks only that task.
pub trait Runner: Clone + Send + Sync + 'static {
    /// Short name, for messages.
    const NAME: &'static str;

    /// Runs `scenario` to completion on a fresh executor of this kind and
    /// propagates its panic; fails if it takes longer than [`HANG_GUARD`].
    fn run<F, Fut>(scenario: F)
    where
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static;

    /// Starts `task` concurrently; awaiting the handle gives its output (and
    /// re-raises its panic).
    fn spawn<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> Task<T>;

    /// Lets other tasks make progress (used while polling a condition).
    fn pause(&self) -> impl Future<Output = ()> + Send;

    /// One fixed unit of work done while holding a lease: a fixed number of
    /// yields on executors, a short sleep on thread-based runners.
    fn work(&self) -> impl Future<Output = ()> + Send;

    /// A lease from any key, the way this runner acquires one.
    fn acquire<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a;

    /// A lease from `key`, the way this runner acquires one.
    fn acquire_key<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
        key: &'a K,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a;
}

/// A handle to a spawned task: a future of its output.
#[must_use = "a task handle should be awaited so that its panics surface"]
pub struct Task<T> {
    inner: Pin<Box<dyn Future<Output = T> + Send>>,
}

impl<T> Task<T> {
    fn new(inner: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").finish_non_exhaustive()
    }
}

/// Runs `body` on its own thread and returns its result; panics with the
/// body's own panic, or with a "hung" message after `limit`.
///
/// # Panics
///
/// If `body` panics or does not finish within `limit` (the stuck thread is
/// left behind; the test fails rather than hangs).
pub fn with_hang_guard<T: Send + 'static>(
    name: &str,
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(format!("scenario-{name}"))
        .spawn(move || {
            let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(body)));
        })
        .expect("spawn the scenario thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("{name}: hung for {limit:?} (hang guard)"),
    }
}

/// Waits, letting other tasks run, until `cond` holds.
///
/// # Panics
///
/// If `cond` is still false after [`HANG_GUARD`]; `what` names the wait.
pub async fn wait_until<R: Runner>(rt: &R, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < HANG_GUARD,
            "{}: gave up waiting for {what}",
            R::NAME
        );
        rt.pause().await;
    }
}

/// Awaits every task in order and collects the outputs.
pub async fn join_all<T>(tasks: impl IntoIterator<Item = Task<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await);
    }
    out
}

// ------------------------------------------------------------------ tokio

/// tokio: `WORKERS == 0` is the current-thread runtime, otherwise a
/// multi-thread runtime with that many workers.
#[derive(Clone, Debug)]
pub struct Tokio<const WORKERS: usize> {
    handle: tokio::runtime::Handle,
}

/// tokio's current-thread runtime.
pub type TokioCurrent = Tokio<0>;
/// tokio's multi-thread runtime with two workers.
pub type TokioMulti = Tokio<2>;

impl<const WORKERS: usize> Runner for Tokio<WORKERS> {
    const NAME: &'static str = if WORKERS == 0 {
        "tokio-current-thread"
    } else {
        "tokio-multi-thread"
    };

    fn run<F, Fut>(scenario: F)
    where
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        with_hang_guard(Self::NAME, HANG_GUARD, move || {
            let runtime = if WORKERS == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(WORKERS)
                    .enable_all()
                    .build()
            }
            .expect("build a tokio runtime");
            let rt = Self {
                handle: runtime.handle().clone(),
            };
            runtime.block_on(scenario(rt));
        });
    }

    fn spawn<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> Task<T> {
        let handle = self.handle.spawn(task);
        Task::new(async move {
            match handle.await {
                Ok(value) => value,
                Err(err) if err.is_panic() => panic::resume_unwind(err.into_panic()),
                Err(err) => panic!("task failed: {err}"),
            }
        })
    }

    fn pause(&self) -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }

    async fn work(&self) {
        for _ in 0..WORK_YIELDS {
            tokio::task::yield_now().await;
        }
    }

    fn acquire<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        pool.acquire()
    }

    fn acquire_key<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
        key: &'a K,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        pool.acquire_key(key)
    }
}

/// How many yields one unit of [`Runner::work`] is on an executor.
const WORK_YIELDS: usize = 8;

// ------------------------------------------------------------------- smol

/// smol's executor (`async-executor`), run on the test's thread by
/// `futures_lite`'s `block_on`, as `smol::block_on(ex.run(..))` does.
#[derive(Clone, Debug)]
pub struct Smol {
    ex: Arc<async_executor::Executor<'static>>,
}

impl Runner for Smol {
    const NAME: &'static str = "smol";

    fn run<F, Fut>(scenario: F)
    where
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        with_hang_guard(Self::NAME, HANG_GUARD, move || {
            let ex = Arc::new(async_executor::Executor::new());
            let rt = Self {
                ex: Arc::clone(&ex),
            };
            futures_lite::future::block_on(ex.run(scenario(rt)));
        });
    }

    fn spawn<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task::new(self.ex.spawn(task))
    }

    fn pause(&self) -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }

    async fn work(&self) {
        for _ in 0..WORK_YIELDS {
            futures_lite::future::yield_now().await;
        }
    }

    fn acquire<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        pool.acquire()
    }

    fn acquire_key<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
        key: &'a K,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        pool.acquire_key(key)
    }
}

// ------------------------------------------------- thread-based runners

/// Runs `task` on a new thread under `futures_lite`'s `block_on`.
fn spawn_thread<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> Task<T> {
    type Outcome<T> = Result<T, Box<dyn Any + Send>>;
    let (tx, rx) = futures_channel::oneshot::channel::<Outcome<T>>();
    thread::Builder::new()
        .stack_size(TASK_STACK)
        .spawn(move || {
            let outcome =
                panic::catch_unwind(AssertUnwindSafe(|| futures_lite::future::block_on(task)));
            let _ = tx.send(outcome);
        })
        .expect("spawn a task thread");
    Task::new(async move {
        match rx.await.expect("the task thread reports") {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    })
}

/// Lets other threads run while a condition is polled.
async fn pause_thread() {
    thread::sleep(Duration::from_micros(200));
}

/// The work unit of the thread-based runners.
async fn work_thread() {
    thread::sleep(Duration::from_millis(1));
}

/// `futures_lite::future::block_on` as the only executor: every task gets
/// its own thread and its own `block_on`; acquisitions are the async ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockOn;

impl Runner for BlockOn {
    const NAME: &'static str = "futures-lite-block-on";

    fn run<F, Fut>(scenario: F)
    where
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        with_hang_guard(Self::NAME, HANG_GUARD, move || {
            futures_lite::future::block_on(scenario(Self));
        });
    }

    fn spawn<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> Task<T> {
        spawn_thread(task)
    }

    fn pause(&self) -> impl Future<Output = ()> + Send {
        pause_thread()
    }

    fn work(&self) -> impl Future<Output = ()> + Send {
        work_thread()
    }

    fn acquire<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        pool.acquire()
    }

    fn acquire_key<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
        key: &'a K,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        pool.acquire_key(key)
    }
}

/// Plain threads and the blocking calls: `acquire_blocking` and
/// `acquire_key_blocking` when `TIMEOUT` is false, `acquire_timeout` and
/// `acquire_key_timeout` (with [`HANG_GUARD`] as the limit) when it is true.
///
/// The scenario's own async code runs under `block_on`, so the same
/// scenario text drives it; every acquisition blocks its thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Threads<const TIMEOUT: bool>;

/// Threads with `acquire_blocking` / `acquire_key_blocking`.
pub type ThreadsBlocking = Threads<false>;
/// Threads with `acquire_timeout` / `acquire_key_timeout`.
pub type ThreadsTimeout = Threads<true>;

/// Maps a timed acquisition's result to the untimed one's; a timeout is a
/// hang, so it fails the test.
fn untimed<K: Key>(result: Result<Lease<K>, AcquireTimeoutError>) -> Acquired<K> {
    match result {
        Ok(lease) => Ok(lease),
        Err(AcquireTimeoutError::Closed) => Err(Closed),
        Err(AcquireTimeoutError::Timeout) => panic!("acquisition timed out (hang guard)"),
    }
}

/// The blocking (or timed) acquisition of [`Threads`], from `key` or any key.
async fn acquire_blocking<const TIMEOUT: bool, K: Key>(
    pool: &Pool<K>,
    key: Option<&K>,
) -> Acquired<K> {
    match (TIMEOUT, key) {
        (false, None) => pool.acquire_blocking(),
        (false, Some(key)) => pool.acquire_key_blocking(key),
        (true, None) => untimed(pool.acquire_timeout(HANG_GUARD)),
        (true, Some(key)) => untimed(pool.acquire_key_timeout(key, HANG_GUARD)),
    }
}

impl<const TIMEOUT: bool> Runner for Threads<TIMEOUT> {
    const NAME: &'static str = if TIMEOUT {
        "threads-timeout"
    } else {
        "threads-blocking"
    };

    fn run<F, Fut>(scenario: F)
    where
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        with_hang_guard(Self::NAME, HANG_GUARD, move || {
            futures_lite::future::block_on(scenario(Self));
        });
    }

    fn spawn<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> Task<T> {
        spawn_thread(task)
    }

    fn pause(&self) -> impl Future<Output = ()> + Send {
        pause_thread()
    }

    fn work(&self) -> impl Future<Output = ()> + Send {
        work_thread()
    }

    fn acquire<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        acquire_blocking::<TIMEOUT, K>(pool, None)
    }

    fn acquire_key<'a, K: Key>(
        &self,
        pool: &'a Pool<K>,
        key: &'a K,
    ) -> impl Future<Output = Acquired<K>> + Send + 'a {
        acquire_blocking::<TIMEOUT, K>(pool, Some(key))
    }
}

// ------------------------------------------------------------------- keys

/// A key that carries a clone of a token: once every copy of the key (in
/// the pool's state, in leases, in futures) is dropped, the token's count is
/// back to one. Keys compare and hash by `name` alone.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// What the key compares and hashes by.
    pub name: &'static str,
    /// Only counted, never read.
    _token: Arc<()>,
}

impl Tracked {
    /// A key named `name`, counted by `token`.
    pub fn new(name: &'static str, token: &Arc<()>) -> Self {
        Self {
            name,
            _token: Arc::clone(token),
        }
    }

    /// How many keys counted by `token` are alive.
    pub fn alive(token: &Arc<()>) -> usize {
        Arc::strong_count(token) - 1
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Tracked {}

impl Hash for Tracked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

// ------------------------------------------------------------------ probes

/// A waker that counts how often it was woken.
#[derive(Debug, Default)]
pub struct CountingWaker {
    wakes: AtomicUsize,
}

impl CountingWaker {
    /// How many times it was woken so far.
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future polled by hand, always with its own [`CountingWaker`].
pub struct Probe<F: Future> {
    future: Pin<Box<F>>,
    counter: Arc<CountingWaker>,
    waker: Waker,
}

impl<F: Future> Probe<F> {
    /// Wraps `future`; nothing is polled yet.
    pub fn new(future: F) -> Self {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        Self {
            future: Box::pin(future),
            counter,
            waker,
        }
    }

    /// Polls the future once with this probe's waker.
    pub fn poll(&mut self) -> Poll<F::Output> {
        let mut cx = Context::from_waker(&self.waker);
        self.future.as_mut().poll(&mut cx)
    }

    /// Polls once and expects `Pending`.
    ///
    /// # Panics
    ///
    /// If the future completes.
    #[track_caller]
    pub fn pending(&mut self) {
        assert!(self.poll().is_pending(), "expected the probe to be pending");
    }

    /// Polls once and expects completion.
    ///
    /// # Panics
    ///
    /// If the future is still pending.
    #[track_caller]
    pub fn ready(&mut self) -> F::Output {
        match self.poll() {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("expected the probe to be ready"),
        }
    }

    /// How many times this probe's waker was woken so far.
    pub fn wakes(&self) -> usize {
        self.counter.wakes()
    }
}

impl<F: Future> fmt::Debug for Probe<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("wakes", &self.wakes())
            .finish_non_exhaustive()
    }
}

/// The indices of the probes whose wakers fired at least once.
pub fn woken<F: Future>(probes: &[Probe<F>]) -> Vec<usize> {
    probes
        .iter()
        .enumerate()
        .filter(|(_, p)| p.wakes() > 0)
        .map(|(i, _)| i)
        .collect()
}
