//! `PollPool` in a `tower`-style service: a hand-written `Service` trait
//! with tower's contract (`poll_ready` reserves, `call` spends the
//! reservation), and two middlewares built on it:
//!
//! - [`KeyLimit`]: a concurrency limit per key, as `tower::limit::
//!   ConcurrencyLimit` per backend: `poll_ready` reserves a lease of its key,
//!   `call` moves it into the response future, which releases it when done.
//! - [`Balance`]: a balancer that reserves a lease from any key with room and
//!   routes the request to the backend the lease names.
//!
//! Each runs on tokio current-thread and multi-thread, smol, and
//! `futures_lite::future::block_on` with a thread per client.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use futures_lite::future::poll_once;
use workpool_std::{Closed, Counts, Lease, PollPool, Pool};
use workpool_tests::{join_all, Runner};

/// The backends. (An enum rather than `&'static str`: rustc cannot prove
/// the boxed futures `Send` for a borrowed key type in the generic impls.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    A,
    B,
}

use Key::{A, B};
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// tower's `Service`, trimmed: `call` may only follow a `poll_ready` that
/// returned `Ready(Ok(()))`, and each such `poll_ready` allows one `call`.
trait Service<Request> {
    type Response;
    type Error;
    type Future: Future<Output = Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>>;

    fn call(&mut self, request: Request) -> Self::Future;
}

/// `ServiceExt::ready`: waits until the service can take a request.
async fn ready<S: Service<R>, R>(service: &mut S) -> Result<(), S::Error> {
    poll_fn(|cx| service.poll_ready(cx)).await
}

/// In-flight requests per backend, and the most seen at once.
#[derive(Clone, Default)]
struct Meter {
    inner: Arc<Mutex<HashMap<Key, (u64, u64)>>>,
}

impl Meter {
    fn enter(&self, backend: Key) {
        let mut map = self.inner.lock().unwrap();
        let (now, max) = map.entry(backend).or_default();
        *now += 1;
        *max = (*max).max(*now);
    }

    fn leave(&self, backend: Key) {
        self.inner.lock().unwrap().get_mut(&backend).unwrap().0 -= 1;
    }

    /// (in flight now, most at once) for `backend`.
    fn get(&self, backend: Key) -> (u64, u64) {
        self.inner
            .lock()
            .unwrap()
            .get(&backend)
            .copied()
            .unwrap_or_default()
    }
}

/// The innermost service: backends that double the request after one unit
/// of the runner's work. Always ready, unlimited.
#[derive(Clone)]
struct Backends<R> {
    rt: R,
    meter: Meter,
}

impl<R: Runner> Service<(Key, u32)> for Backends<R> {
    type Response = (Key, u32);
    type Error = Closed;
    type Future = BoxFuture<Result<(Key, u32), Closed>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (backend, request): (Key, u32)) -> Self::Future {
        let (rt, meter) = (self.rt.clone(), self.meter.clone());
        Box::pin(async move {
            meter.enter(backend);
            rt.work().await;
            meter.leave(backend);
            Ok((backend, request * 2))
        })
    }
}

/// At most `target(key)` requests in flight to `key`, over every clone.
/// A clone is a new waiter (tower's `ConcurrencyLimit` clones the same way).
struct KeyLimit<S> {
    key: Key,
    pool: PollPool<Key>,
    reserved: Option<Lease<Key>>,
    inner: S,
}

impl<S> KeyLimit<S> {
    fn new(pool: &Pool<Key>, key: Key, inner: S) -> Self {
        Self {
            key,
            pool: PollPool::new(pool),
            reserved: None,
            inner,
        }
    }
}

impl<S: Clone> Clone for KeyLimit<S> {
    fn clone(&self) -> Self {
        Self {
            key: self.key,
            pool: self.pool.clone(),
            reserved: None, // a reservation is never shared
            inner: self.inner.clone(),
        }
    }
}

impl<S> Service<u32> for KeyLimit<S>
where
    S: Service<(Key, u32), Error = Closed>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = Closed;
    type Future = BoxFuture<Result<S::Response, Closed>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        if self.reserved.is_none() {
            self.reserved = Some(ready!(self.pool.poll_acquire_key(&self.key, cx))?);
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: u32) -> Self::Future {
        let lease = self.reserved.take().expect("call after poll_ready");
        let response = self.inner.call((self.key, request));
        Box::pin(async move {
            let out = response.await;
            drop(lease); // held until the response is done
            out
        })
    }
}

/// A balancer: reserves a lease from whichever backend has room and routes
/// the request to it, so each backend gets at most its target in flight and
/// the load follows the targets.
struct Balance<S> {
    pool: PollPool<Key>,
    reserved: Option<Lease<Key>>,
    inner: S,
}

impl<S: Clone> Clone for Balance<S> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            reserved: None,
            inner: self.inner.clone(),
        }
    }
}

impl<S> Service<u32> for Balance<S>
where
    S: Service<(Key, u32), Error = Closed>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = Closed;
    type Future = BoxFuture<Result<S::Response, Closed>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        if self.reserved.is_none() {
            self.reserved = Some(ready!(self.pool.poll_acquire(cx))?);
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: u32) -> Self::Future {
        let lease = self.reserved.take().expect("call after poll_ready");
        let response = self.inner.call((*lease.key(), request));
        Box::pin(async move {
            let out = response.await;
            drop(lease);
            out
        })
    }
}

const fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

/// Sends `requests` requests through `service`, one after another, and
/// checks every response.
async fn client<S>(mut service: S, requests: u32) -> Vec<Key>
where
    S: Service<u32, Response = (Key, u32), Error = Closed>,
{
    let mut backends = Vec::new();
    for request in 0..requests {
        ready(&mut service).await.unwrap();
        let (backend, response) = service.call(request).await.unwrap();
        assert_eq!(response, request * 2);
        backends.push(backend);
    }
    backends
}

/// Four clients on `A` (target 2) and three on `B` (target 1), each with its
/// own clone of the limited service: never more in flight than the target,
/// every request answered, and in the end no lease left and no waiter.
async fn key_limit<R: Runner>(rt: R) {
    const REQUESTS: u32 = 15;
    let pool: Pool<Key> = Pool::new();
    pool.set(A, 2);
    pool.set(B, 1);
    let backends = Backends {
        rt: rt.clone(),
        meter: Meter::default(),
    };
    let a = KeyLimit::new(&pool, A, backends.clone());
    let b = KeyLimit::new(&pool, B, backends.clone());
    let clients: Vec<_> = (0..7)
        .map(|i| {
            if i % 2 == 0 {
                rt.spawn(client(a.clone(), REQUESTS))
            } else {
                rt.spawn(client(b.clone(), REQUESTS))
            }
        })
        .collect();
    let answered: usize = join_all(clients).await.iter().map(Vec::len).sum();
    assert_eq!(answered, 7 * REQUESTS as usize);
    let meter = &backends.meter;
    assert_eq!(meter.get(A).0, 0);
    assert!(
        (1..=2).contains(&meter.get(A).1),
        "{}: {:?}",
        R::NAME,
        meter.get(A)
    );
    assert_eq!(meter.get(B), (0, 1), "{}", R::NAME);
    assert_eq!(pool.counts(&A), counts(2, 0));
    assert_eq!(pool.counts(&B), counts(1, 0));
    assert_eq!(pool.waiters(), 0);

    // A ready service holds its reservation until it is called or dropped.
    let mut one = KeyLimit::new(&pool, B, backends.clone());
    ready(&mut one).await.unwrap();
    assert_eq!(pool.counts(&B), counts(1, 1));
    let mut two = one.clone();
    assert!(poll_once(ready(&mut two)).await.is_none());
    assert_eq!(pool.waiting(&B), 1, "the clone waits for the reservation");
    drop(one);
    ready(&mut two).await.unwrap();
    assert_eq!(two.call(4).await.unwrap(), (B, 8));
    assert_eq!(pool.counts(&B), counts(1, 0));

    // Without a `Pool` handle nothing can change a target: the service fails.
    drop(pool);
    assert_eq!(ready(&mut two).await.unwrap_err(), Closed);
}

/// Clients behind a balancer over `A` (target 2) and `B` (target 1): each
/// backend stays within its target, both are used, nothing is left over.
async fn balance<R: Runner>(rt: R) {
    const REQUESTS: u32 = 20;
    let pool: Pool<Key> = Pool::new();
    pool.set(A, 2);
    pool.set(B, 1);
    let backends = Backends {
        rt: rt.clone(),
        meter: Meter::default(),
    };
    let balance = Balance {
        pool: PollPool::new(&pool),
        reserved: None,
        inner: backends.clone(),
    };
    let clients: Vec<_> = (0..5)
        .map(|_| rt.spawn(client(balance.clone(), REQUESTS)))
        .collect();
    let mut per_backend: HashMap<Key, usize> = HashMap::new();
    for backend in join_all(clients).await.into_iter().flatten() {
        *per_backend.entry(backend).or_default() += 1;
    }
    assert_eq!(per_backend.values().sum::<usize>(), 5 * REQUESTS as usize);
    assert!(
        per_backend[&A] > 0 && per_backend[&B] > 0,
        "{per_backend:?}"
    );
    let meter = &backends.meter;
    assert!(meter.get(A).1 <= 2, "{}: {:?}", R::NAME, meter.get(A));
    assert!(meter.get(B).1 <= 1, "{}: {:?}", R::NAME, meter.get(B));
    assert_eq!(pool.counts(&A), counts(2, 0));
    assert_eq!(pool.counts(&B), counts(1, 0));
    assert_eq!(pool.waiters(), 0);
    drop(balance);
}

macro_rules! scenarios {
    ($runner:ty) => {
        type Rt = $runner;

        #[test]
        fn key_limit() {
            Rt::run(super::key_limit::<Rt>);
        }

        #[test]
        fn balance() {
            Rt::run(super::balance::<Rt>);
        }
    };
}

mod tokio_current_thread {
    use workpool_tests::Runner;
    scenarios!(workpool_tests::TokioCurrent);
}

mod tokio_multi_thread {
    use workpool_tests::Runner;
    scenarios!(workpool_tests::TokioMulti);
}

mod smol {
    use workpool_tests::Runner;
    scenarios!(workpool_tests::Smol);
}

mod futures_lite_block_on {
    use workpool_tests::Runner;
    scenarios!(workpool_tests::BlockOn);
}
