//! What a request costs through `KeyedLimit`, next to
//! `tower::limit::ConcurrencyLimit` (one semaphore for everyone), the keyed
//! limit people build by hand today (a `Mutex<HashMap<K, Arc<Semaphore>>>`
//! and an owned tokio permit held by a boxed response future) and the bare
//! inner service, uncontended on one thread: `poll_ready`, `call`, and
//! one poll of the response future, which completes at once (the inner
//! service answers at once and every key has room).
//!
//! The cases run interleaved, in rounds, in this one process, and the
//! report gives each case's median over the rounds and its ratio to
//! `ConcurrencyLimit` from the same run: the machine is noisy, so compare
//! only figures from one run.
//!
//! ```sh
//! cargo bench -p workpool-std --features tower --bench tower
//! cargo bench -p workpool-std --features tower --bench tower -- --quick
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::sync::Semaphore;

use tower::limit::ConcurrencyLimit;
use tower::Service;
use workpool_std::tower::KeyedLimitLayer;
use workpool_std::Pool;

/// The inner service: answers at once.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u32> for Echo {
    type Response = u32;
    type Error = Infallible;
    type Future = Ready<Result<u32, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        ready(Ok(req))
    }
}

/// The hand-built keyed limit: one semaphore per key in a locked map.
#[derive(Clone)]
struct HandBuilt {
    semaphores: Arc<Mutex<HashMap<u32, Arc<Semaphore>>>>,
}

impl HandBuilt {
    fn new(keys: u32) -> Self {
        let map = (0..keys).map(|key| (key, Arc::new(Semaphore::new(1_000))));
        Self {
            semaphores: Arc::new(Mutex::new(map.collect())),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<u32> for HandBuilt {
    type Response = u32;
    type Error = tokio::sync::AcquireError;
    type Future = BoxFuture<Result<u32, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        let semaphore = {
            let mut map = self.semaphores.lock().unwrap();
            let semaphore = map
                .entry(req)
                .or_insert_with(|| Arc::new(Semaphore::new(1_000)));
            Arc::clone(semaphore)
        };
        Box::pin(async move {
            let _permit = semaphore.acquire_owned().await?;
            Ok(Echo.call(req).await.unwrap_or_else(|never| match never {}))
        })
    }
}

/// One request: ready, call, and the response future polled once.
#[inline]
fn request<S: Service<u32>>(service: &mut S, req: u32, cx: &mut Context<'_>) {
    assert!(service.poll_ready(cx).is_ready());
    let future = pin!(service.call(req));
    match future.poll(cx) {
        Poll::Ready(Ok(response)) => {
            black_box(response);
        }
        _ => panic!("every request is answered at once"),
    }
}

/// A case: a name and a function that makes `n` requests.
struct Case {
    name: &'static str,
    run: Box<dyn FnMut(u32)>,
}

fn case<S: Service<u32> + 'static>(name: &'static str, mut service: S, keys: u32) -> Case {
    Case {
        name,
        run: Box::new(move |n| {
            let mut cx = Context::from_waker(Waker::noop());
            for i in 0..n {
                request(&mut service, black_box(i % keys), &mut cx);
            }
        }),
    }
}

fn keyed(keys: u32) -> Pool<u32> {
    let pool = Pool::new();
    for key in 0..keys {
        pool.set(key, 1_000);
    }
    pool
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, per_round) = if quick { (5, 20_000) } else { (31, 200_000) };
    let key_of = |req: &u32| *req;

    let mut cases = vec![
        case("inner service alone", Echo, 1),
        case(
            "tower ConcurrencyLimit",
            ConcurrencyLimit::new(Echo, 1_000),
            1,
        ),
        case("hand-built map of semaphores, 1 key", HandBuilt::new(1), 1),
        case(
            "hand-built map of semaphores, 1,000 keys",
            HandBuilt::new(1_000),
            1_000,
        ),
        case(
            "KeyedLimit, 1 key",
            tower::Layer::layer(&KeyedLimitLayer::new(keyed(1), key_of), Echo),
            1,
        ),
        case(
            "KeyedLimit, 1,000 keys",
            tower::Layer::layer(&KeyedLimitLayer::new(keyed(1_000), key_of), Echo),
            1_000,
        ),
        case(
            "KeyedLimit shed, 1 key",
            tower::Layer::layer(&KeyedLimitLayer::new(keyed(1), key_of).shed(), Echo),
            1,
        ),
        case(
            "KeyedLimit default target, 1,000 keys",
            tower::Layer::layer(
                &KeyedLimitLayer::new(Pool::new(), key_of).with_default_target(1_000),
                Echo,
            ),
            1_000,
        ),
    ];

    // Warm-up, then rounds: every case once per round, in turn.
    for case in &mut cases {
        (case.run)(per_round / 10);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (case, samples) in cases.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            (case.run)(per_round);
            samples.push(start.elapsed().as_nanos() as f64 / f64::from(per_round));
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect();
    let baseline = medians[1];
    println!("{rounds} interleaved rounds of {per_round} requests per case; medians");
    println!(
        "{:<40} {:>12} {:>22}",
        "case", "ns/request", "x ConcurrencyLimit"
    );
    for (case, median) in cases.iter().zip(&medians) {
        println!(
            "{:<40} {:>12.1} {:>22.2}",
            case.name,
            median,
            median / baseline
        );
    }
}
