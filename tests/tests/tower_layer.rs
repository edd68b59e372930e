//! `workpool_std::tower` with a hand-made inner service (no HTTP): each
//! response future is polled by hand, so the tests pin down when a request
//! waits, when it holds a lease, what it fails with, and that dropping it
//! at any point gives everything back.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::{error::Error, fmt};

use futures_channel::oneshot;
use futures_lite::future::block_on;
use tower_layer::Layer;
use tower_service::Service;
use workpool_std::tower::{BoxError, KeyedLimit, KeyedLimitLayer, Overloaded, ResponseFuture};
use workpool_std::{Closed, Counts, Pool};
use workpool_tests::Probe;

/// What the inner service does with a request.
#[derive(Debug)]
enum Reply {
    /// Answers at once with this number.
    Now(u32),
    /// Fails with `MockError`.
    Fail,
    /// Answers with what arrives on the channel.
    Hold(oneshot::Receiver<u32>),
}

#[derive(Debug)]
struct Req {
    key: &'static str,
    reply: Reply,
}

fn now(key: &'static str) -> Req {
    Req {
        key,
        reply: Reply::Now(7),
    }
}

fn hold(key: &'static str) -> (Req, oneshot::Sender<u32>) {
    let (tx, rx) = oneshot::channel();
    let req = Req {
        key,
        reply: Reply::Hold(rx),
    };
    (req, tx)
}

/// The inner service's own error.
#[derive(Debug, PartialEq)]
struct MockError(&'static str);

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mock: {}", self.0)
    }
}

impl Error for MockError {}

/// Readiness of the inner service: open, closed (pending) or broken.
#[derive(Default)]
struct Gate {
    closed: bool,
    broken: bool,
    wakers: Vec<Waker>,
}

/// The inner service: its clones share the gate and the call count.
#[derive(Clone, Default)]
struct Mock {
    gate: Arc<Mutex<Gate>>,
    calls: Arc<AtomicUsize>,
}

impl Mock {
    fn close_gate(&self) {
        self.gate.lock().unwrap().closed = true;
    }

    fn open_gate(&self) {
        let wakers = {
            let mut gate = self.gate.lock().unwrap();
            gate.closed = false;
            std::mem::take(&mut gate.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    fn break_gate(&self) {
        self.gate.lock().unwrap().broken = true;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Req> for Mock {
    type Response = u32;
    type Error = MockError;
    type Future = BoxFuture<Result<u32, MockError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MockError>> {
        let mut gate = self.gate.lock().unwrap();
        if gate.broken {
            Poll::Ready(Err(MockError("broken")))
        } else if gate.closed {
            gate.wakers.push(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match req.reply {
                Reply::Now(n) => Ok(n),
                Reply::Fail => Err(MockError("failed")),
                Reply::Hold(rx) => rx.await.map_err(|_| MockError("sender dropped")),
            }
        })
    }
}

type KeyFn = fn(&Req) -> &'static str;
type Limited = KeyedLimit<Mock, KeyFn, &'static str>;
type Response = ResponseFuture<Mock, Req, &'static str>;

fn key_of(req: &Req) -> &'static str {
    req.key
}

fn layer(pool: &Pool<&'static str>) -> KeyedLimitLayer<KeyFn, &'static str> {
    KeyedLimitLayer::new(pool.clone(), key_of as KeyFn)
}

/// Calls the service after checking that it is ready, as tower requires.
fn call(service: &mut Limited, req: Req) -> Probe<Response> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    Probe::new(service.call(req))
}

#[track_caller]
fn error_of(output: Result<u32, BoxError>) -> BoxError {
    match output {
        Ok(n) => panic!("expected an error, got the response {n}"),
        Err(error) => error,
    }
}

fn counts(target: u64, active: u64) -> Counts {
    Counts { target, active }
}

mod waiting {
    use super::*;

    #[test]
    fn a_request_holds_a_lease_of_its_key_until_its_response() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mock = Mock::default();
        let mut service = layer(&pool).layer(mock.clone());

        let (req, reply) = hold("a");
        let mut first = call(&mut service, req);
        first.pending(); // leased, called, waiting for the reply
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        assert_eq!(mock.calls(), 1);

        let mut second = call(&mut service, now("a"));
        second.pending(); // waits for the lease
        assert_eq!(pool.waiting(&"a"), 1);
        assert_eq!(mock.calls(), 1);

        reply.send(5).unwrap();
        assert_eq!(first.ready().unwrap(), 5);
        assert!(second.wakes() > 0, "the freed lease woke the next request");
        assert_eq!(second.ready().unwrap(), 7);
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        assert_eq!(pool.active(), 0);
    }

    #[test]
    fn a_full_key_holds_back_neither_poll_ready_nor_other_keys() {
        let pool = Pool::new();
        pool.set("a", 1);
        pool.set("b", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let (req, _reply) = hold("a");
        let mut held = call(&mut service, req);
        held.pending();
        let mut queued = call(&mut service, now("a"));
        queued.pending();

        // `call` asserts that `poll_ready` is ready with "a" full.
        let mut other = call(&mut service, now("b"));
        assert_eq!(other.ready().unwrap(), 7);
    }

    #[test]
    fn requests_of_a_key_are_served_in_arrival_order() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let mut holders = Vec::new();
        let mut replies = Vec::new();
        for _ in 0..5 {
            let (req, reply) = hold("a");
            let mut probe = call(&mut service, req);
            probe.pending();
            holders.push(probe);
            replies.push(reply);
        }
        assert_eq!(pool.waiting(&"a"), 4);
        for (i, reply) in replies.into_iter().enumerate() {
            // Only the oldest has its lease (and so its reply channel read).
            for later in &mut holders[i + 1..] {
                later.pending();
            }
            reply.send(i as u32).unwrap();
            assert_eq!(holders[i].ready().unwrap(), i as u32);
        }
        assert_eq!(pool.active(), 0);
    }

    #[test]
    fn clones_of_the_service_share_the_targets() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut one = layer(&pool).layer(Mock::default());
        let mut two = one.clone();
        let (req, reply) = hold("a");
        let mut first = call(&mut one, req);
        first.pending();
        let mut second = call(&mut two, now("a"));
        second.pending();
        reply.send(1).unwrap();
        assert_eq!(first.ready().unwrap(), 1);
        assert_eq!(second.ready().unwrap(), 7);
    }

    #[test]
    fn a_raised_target_lets_the_next_requests_in() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let (req, _reply) = hold("a");
        let mut held = call(&mut service, req);
        held.pending();
        let mut queued = call(&mut service, now("a"));
        queued.pending();
        pool.set("a", 2);
        assert_eq!(queued.ready().unwrap(), 7);
    }

    #[test]
    fn a_key_nobody_set_waits_until_it_is_set() {
        let pool = Pool::new();
        let mut service = layer(&pool).layer(Mock::default());
        let mut waiting = call(&mut service, now("new"));
        waiting.pending();
        assert_eq!(pool.waiting(&"new"), 1);
        pool.set("new", 1);
        assert_eq!(waiting.ready().unwrap(), 7);
    }
}

mod errors {
    use super::*;

    #[test]
    fn close_key_fails_the_waiting_requests_with_closed() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let (req, reply) = hold("a");
        let mut held = call(&mut service, req);
        held.pending();
        let mut waiting = call(&mut service, now("a"));
        waiting.pending();

        pool.close_key(&"a");
        let error = error_of(waiting.ready());
        assert_eq!(error.downcast_ref::<Closed>(), Some(&Closed));
        // The request in flight keeps its lease and finishes.
        assert_eq!(pool.counts(&"a"), counts(0, 1));
        reply.send(3).unwrap();
        assert_eq!(held.ready().unwrap(), 3);
        assert!(pool.is_empty());
    }

    #[test]
    fn closing_the_pool_fails_waiting_and_new_requests_with_closed() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let mut shedding = layer(&pool).shed().layer(Mock::default());
        let (req, _reply) = hold("a");
        let mut held = call(&mut service, req);
        held.pending();
        let mut waiting = call(&mut service, now("a"));
        waiting.pending();

        pool.close();
        assert!(error_of(waiting.ready()).is::<Closed>());
        pool.set("b", 1);
        assert!(error_of(call(&mut service, now("b")).ready()).is::<Closed>());
        assert!(error_of(call(&mut shedding, now("b")).ready()).is::<Closed>());
        drop(held);
        assert_eq!(pool.active(), 0);
    }

    #[test]
    fn shed_fails_at_once_with_overloaded_when_the_key_is_full() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mock = Mock::default();
        let mut service = layer(&pool).shed().layer(mock.clone());
        let (req, reply) = hold("a");
        let mut held = call(&mut service, req);
        held.pending();

        let error = error_of(call(&mut service, now("a")).ready());
        assert_eq!(error.downcast_ref::<Overloaded>(), Some(&Overloaded::new()));
        assert_eq!(error.to_string(), "overloaded");
        // A key with no target is full too.
        assert!(error_of(call(&mut service, now("unset")).ready()).is::<Overloaded>());
        assert_eq!(mock.calls(), 1);
        assert!(!pool.is_empty() && pool.waiters() == 0 && pool.waiting(&"a") == 0);

        reply.send(1).unwrap();
        assert_eq!(held.ready().unwrap(), 1);
        assert_eq!(call(&mut service, now("a")).ready().unwrap(), 7);
    }

    #[test]
    fn shed_does_not_barge_past_a_waiting_request() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut waits = layer(&pool).layer(Mock::default());
        let mut sheds = layer(&pool).shed().layer(Mock::default());
        let (req, reply) = hold("a");
        let mut held = call(&mut waits, req);
        held.pending();
        let mut queued = call(&mut waits, now("a"));
        queued.pending();
        reply.send(0).unwrap();
        // The freed lease is the queued request's, even before it runs.
        assert!(error_of(call(&mut sheds, now("a")).ready()).is::<Overloaded>());
        assert_eq!(held.ready().unwrap(), 0);
        assert_eq!(queued.ready().unwrap(), 7);
    }

    #[test]
    fn the_inner_error_passes_through_and_the_lease_goes_back() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let req = Req {
            key: "a",
            reply: Reply::Fail,
        };
        let error = error_of(call(&mut service, req).ready());
        assert_eq!(
            error.downcast_ref::<MockError>(),
            Some(&MockError("failed"))
        );
        assert_eq!(pool.counts(&"a"), counts(1, 0));
    }

    #[test]
    fn an_inner_poll_ready_error_passes_through_and_the_lease_goes_back() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mock = Mock::default();
        let mut service = layer(&pool).layer(mock.clone());
        mock.break_gate();
        let error = error_of(call(&mut service, now("a")).ready());
        assert_eq!(
            error.downcast_ref::<MockError>(),
            Some(&MockError("broken"))
        );
        assert_eq!(mock.calls(), 0);
        assert_eq!(pool.counts(&"a"), counts(1, 0));
    }

    #[test]
    #[should_panic(expected = "polled after completion")]
    fn polling_after_completion_panics() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let mut done = call(&mut service, now("a"));
        assert_eq!(done.ready().unwrap(), 7);
        let _ = done.poll();
    }
}

mod readiness {
    use super::*;

    #[test]
    fn the_inner_service_is_called_only_once_ready_and_with_the_lease_held() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mock = Mock::default();
        let mut service = layer(&pool).layer(mock.clone());
        mock.close_gate();

        let mut request = call(&mut service, now("a"));
        request.pending();
        request.pending();
        assert_eq!(mock.calls(), 0, "not called before it is ready");
        assert_eq!(
            pool.counts(&"a"),
            counts(1, 1),
            "the lease is held meanwhile"
        );

        mock.open_gate();
        assert!(request.wakes() > 0);
        assert_eq!(request.ready().unwrap(), 7);
        assert_eq!(mock.calls(), 1);
        assert_eq!(pool.active(), 0);
    }

    #[test]
    fn a_request_waits_for_its_lease_before_it_looks_at_the_service() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mock = Mock::default();
        let mut service = layer(&pool).layer(mock.clone());
        let (req, reply) = hold("a");
        let mut held = call(&mut service, req);
        held.pending();
        mock.close_gate();
        let mut waiting = call(&mut service, now("a"));
        waiting.pending();
        assert!(mock.gate.lock().unwrap().wakers.is_empty());
        reply.send(0).unwrap();
        assert_eq!(held.ready().unwrap(), 0);
        waiting.pending(); // now waits for the service, holding the lease
        assert_eq!(pool.counts(&"a"), counts(1, 1));
        mock.open_gate();
        assert_eq!(waiting.ready().unwrap(), 7);
    }
}

mod cancel {
    use super::*;

    #[test]
    fn dropping_a_request_that_waits_for_its_lease_gives_up_its_place() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let (req, reply) = hold("a");
        let mut held = call(&mut service, req);
        held.pending();
        let mut dropped = call(&mut service, now("a"));
        dropped.pending();
        let mut next = call(&mut service, now("a"));
        next.pending();
        drop(dropped);
        assert_eq!(pool.waiting(&"a"), 1);
        reply.send(0).unwrap();
        assert_eq!(held.ready().unwrap(), 0);
        assert_eq!(next.ready().unwrap(), 7);
        assert_eq!(pool.active(), 0);
    }

    #[test]
    fn dropping_a_request_that_waits_for_the_service_returns_its_lease() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mock = Mock::default();
        let mut service = layer(&pool).layer(mock.clone());
        mock.close_gate();
        let mut request = call(&mut service, now("a"));
        request.pending();
        assert_eq!(pool.active(), 1);
        drop(request);
        assert_eq!(pool.counts(&"a"), counts(1, 0));
        assert_eq!(mock.calls(), 0);
    }

    #[test]
    fn dropping_a_request_in_flight_returns_its_lease() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).layer(Mock::default());
        let (req, _reply) = hold("a");
        let mut request = call(&mut service, req);
        request.pending();
        let mut next = call(&mut service, now("a"));
        next.pending();
        drop(request);
        assert!(next.wakes() > 0);
        assert_eq!(next.ready().unwrap(), 7);
        assert_eq!(pool.active(), 0);
    }

    #[test]
    fn dropping_a_request_never_polled_leaks_nothing() {
        let pool = Pool::new();
        pool.set("a", 1);
        let mut service = layer(&pool).with_default_target(2).layer(Mock::default());
        let mut shedding = layer(&pool).shed().layer(Mock::default());
        drop(call(&mut service, now("a")));
        drop(call(&mut service, now("fresh")));
        drop(call(&mut shedding, now("a"))); // holds a lease from `call` on
        assert_eq!(pool.active(), 0);
        assert_eq!(pool.waiters(), 0);
        assert_eq!(pool.len(), 1, "only the key set by hand is left");
    }
}

#[path = "tower_layer/default_target.rs"]
mod default_target;

#[test]
fn types_are_send_sync_and_clone_where_they_should_be() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    fn clone<T: Clone>() {}
    send_sync::<KeyedLimitLayer<KeyFn, String>>();
    send_sync::<Limited>();
    send::<Response>();
    send_sync::<Overloaded>();
    clone::<KeyedLimitLayer<KeyFn, String>>();
    clone::<Limited>();
    // Debug on all of them.
    let pool = Pool::new();
    let layer = layer(&pool).with_default_target(3);
    assert!(format!("{layer:?}").contains("default_target: Some(3)"));
    let mut service = layer.shed().layer(Mock::default());
    let response = service.call(now("a"));
    assert!(format!("{response:?}").contains("ResponseFuture"));
}

/// `with_weight`: a request holds as many units of its key as its weight
/// says (here, its key's length), in the key's fair queue.
mod weighted {
    use super::*;
    use workpool_std::tower::Weight;

    type WeightFn = fn(&Req) -> u64;

    fn by_length(req: &Req) -> u64 {
        req.key.len() as u64
    }

    fn weighted(
        pool: &Pool<&'static str>,
    ) -> KeyedLimitLayer<KeyFn, &'static str, workpool_std::DefaultHashBuilder, WeightFn> {
        layer(pool).with_weight(by_length as WeightFn)
    }

    fn call_weighted(
        service: &mut KeyedLimit<
            Mock,
            KeyFn,
            &'static str,
            workpool_std::DefaultHashBuilder,
            WeightFn,
        >,
        req: Req,
    ) -> Probe<Response> {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        Probe::new(service.call(req))
    }

    #[test]
    fn a_request_holds_its_weight_until_its_response() {
        let pool = Pool::new();
        pool.set("aaa", 4);
        let mock = Mock::default();
        let mut service = weighted(&pool).layer(mock.clone());

        let (req, reply) = hold("aaa");
        let mut first = call_weighted(&mut service, req);
        first.pending();
        assert_eq!(pool.counts(&"aaa"), counts(4, 3), "three units held");

        // One unit is free; the next request weighs three: it waits.
        let mut second = call_weighted(&mut service, now("aaa"));
        second.pending();
        assert_eq!(pool.waiting(&"aaa"), 1);
        assert_eq!(mock.calls(), 1);

        reply.send(5).unwrap();
        assert_eq!(first.ready().unwrap(), 5);
        assert_eq!(second.ready().unwrap(), 7);
        assert_eq!(pool.counts(&"aaa"), counts(4, 0));
    }

    #[test]
    fn a_shedding_layer_turns_away_a_request_heavier_than_the_room() {
        let pool = Pool::new();
        pool.set("aa", 3);
        let mut service = weighted(&pool).shed().layer(Mock::default());
        let (req, _reply) = hold("aa");
        let mut first = call_weighted(&mut service, req);
        first.pending();
        let error = error_of(call_weighted(&mut service, now("aa")).ready());
        assert!(error.is::<Overloaded>(), "{error}");
        assert_eq!(pool.counts(&"aa"), counts(3, 2));
    }

    #[test]
    fn a_request_of_no_weight_never_waits() {
        let pool = Pool::new();
        let mock = Mock::default();
        // The key "" weighs 0 and has no target at all.
        let mut service = weighted(&pool).layer(mock.clone());
        assert_eq!(call_weighted(&mut service, now("")).ready().unwrap(), 7);
        assert_eq!(pool.counts(&""), counts(0, 0));
        assert_eq!(by_length.weight(&now("abcd")), 4);
    }

    #[test]
    fn without_a_weight_a_request_holds_one_unit() {
        let pool = Pool::new();
        pool.set("aaa", 3);
        let mut service = layer(&pool).layer(Mock::default());
        let (req, _reply) = hold("aaa");
        let mut first = call(&mut service, req);
        first.pending();
        assert_eq!(pool.counts(&"aaa"), counts(3, 1));
    }
}
