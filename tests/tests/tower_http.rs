//! `workpool_std::tower::KeyedLimitLayer` in a real HTTP server (hyper,
//! HTTP/1, on a loopback port), driven by a real HTTP client (hyper's
//! connection-level client) from many concurrent tasks.
//!
//! The handler itself counts the requests in flight per tenant and in all,
//! and records a violation whenever a tenant has more than the highest
//! target it was ever given, or the server more than the pool-wide limit.
//! Requests to `/hang` wait on a gate (a semaphore with no permits) that
//! the test opens, so the tests wait for states, never for fixed times.
//! Every scenario runs under a time limit, so a bug fails instead of
//! hanging. Loopback only; bounded request counts.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower_layer::Layer;
use tower_service::Service;
use workpool_std::tower::{BoxError, KeyedLimitLayer, Overloaded};
use workpool_std::{Closed, Pool};

/// The longest a scenario may take before it is declared hung (a guard
/// only: each takes well under a second).
const HANG_GUARD: Duration = Duration::from_secs(30);

const TENANT: &str = "x-tenant";

/// What the handler sees: requests in flight per tenant and in all, the
/// most allowed, and the violations.
#[derive(Default)]
struct Meter {
    inner: Mutex<MeterState>,
}

#[derive(Default)]
struct MeterState {
    in_flight: HashMap<String, u64>,
    total: u64,
    /// The highest target each tenant was ever given (lowering a target
    /// revokes nothing, so that is the bound).
    allowed: HashMap<String, u64>,
    limit: u64,
    served: u64,
    violations: Vec<String>,
}

impl Meter {
    fn enter(&self, tenant: &str) {
        let mut m = self.inner.lock().unwrap();
        let now = {
            let n = m.in_flight.entry(tenant.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        m.total += 1;
        let allowed = m.allowed.get(tenant).copied().unwrap_or(0);
        if now > allowed {
            let v = format!("{tenant}: {now} in flight, target at most {allowed}");
            m.violations.push(v);
        }
        if m.total > m.limit {
            let v = format!("{} in flight, limit {}", m.total, m.limit);
            m.violations.push(v);
        }
    }

    fn leave(&self, tenant: &str) {
        let mut m = self.inner.lock().unwrap();
        *m.in_flight.get_mut(tenant).unwrap() -= 1;
        m.total -= 1;
        m.served += 1;
    }

    fn in_flight(&self, tenant: &str) -> u64 {
        let m = self.inner.lock().unwrap();
        m.in_flight.get(tenant).copied().unwrap_or(0)
    }

    fn served(&self) -> u64 {
        self.inner.lock().unwrap().served
    }

    fn allow(&self, tenant: &str, target: u64) {
        let mut m = self.inner.lock().unwrap();
        let allowed = m.allowed.entry(tenant.to_owned()).or_insert(0);
        *allowed = (*allowed).max(target);
    }

    #[track_caller]
    fn assert_clean(&self) {
        let m = self.inner.lock().unwrap();
        assert!(m.violations.is_empty(), "{:?}", m.violations);
        assert_eq!(m.total, 0, "requests still in flight");
    }
}

/// Leaves the meter when the handler ends or is dropped.
struct InFlight<'a> {
    meter: &'a Meter,
    tenant: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.meter.leave(&self.tenant);
    }
}

/// A running server: its address, pool, meter and gate.
struct Server {
    addr: SocketAddr,
    pool: Pool<String>,
    meter: Arc<Meter>,
    gate: Arc<Semaphore>,
    task: JoinHandle<()>,
}

fn tenant_of(req: &Request<Incoming>) -> String {
    req.headers()
        .get(TENANT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned()
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// The error of the limited service as an HTTP answer.
fn error_response(error: &BoxError) -> Response<Full<Bytes>> {
    if error.is::<Overloaded>() {
        text(StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    } else if error.is::<Closed>() {
        text(StatusCode::SERVICE_UNAVAILABLE, "closed")
    } else {
        text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

/// The value of `name` in the query string.
fn query(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

impl Server {
    /// Starts a server: `targets` per tenant, `limit` in all; the layer
    /// sheds when `shed`, and gives unseen tenants `default` (0: none).
    async fn start(targets: &[(&str, u64)], limit: u64, shed: bool, default: u64) -> Self {
        let pool: Pool<String> = Pool::new();
        let meter = Arc::new(Meter::default());
        meter.inner.lock().unwrap().limit = limit;
        pool.set_limit(Some(limit));
        for &(tenant, target) in targets {
            pool.set(tenant.to_owned(), target);
            meter.allow(tenant, target);
        }
        let gate = Arc::new(Semaphore::new(0));

        // The handler behind the limit: counts itself in, checks, works.
        let handler = {
            let meter = Arc::clone(&meter);
            let gate = Arc::clone(&gate);
            tower::service_fn(move |req: Request<Incoming>| {
                let meter = Arc::clone(&meter);
                let gate = Arc::clone(&gate);
                async move {
                    let tenant = tenant_of(&req);
                    meter.enter(&tenant);
                    let _in_flight = InFlight {
                        meter: &meter,
                        tenant: tenant.clone(),
                    };
                    if req.uri().path() == "/hang" {
                        gate.acquire().await.unwrap().forget();
                    } else {
                        let ms = query(&req, "ms")
                            .and_then(|ms| ms.parse().ok())
                            .unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    Ok::<_, Infallible>(text(StatusCode::OK, tenant))
                }
            })
        };
        let mut layer = KeyedLimitLayer::new(pool.clone(), tenant_of);
        if shed {
            layer = layer.shed();
        }
        let limited = layer.with_default_target(default).layer(handler);

        // The front: `/admin` changes a target, the rest is limited.
        let front = {
            let pool = pool.clone();
            let meter = Arc::clone(&meter);
            tower::service_fn(move |req: Request<Incoming>| {
                let mut limited = limited.clone();
                let pool = pool.clone();
                let meter = Arc::clone(&meter);
                async move {
                    if req.uri().path() == "/admin/target" {
                        let tenant = query(&req, "tenant").unwrap_or_default();
                        let target = query(&req, "target").and_then(|t| t.parse().ok());
                        let Some(target) = target else {
                            return Ok(text(StatusCode::BAD_REQUEST, "target?"));
                        };
                        meter.allow(&tenant, target);
                        pool.set(tenant, target);
                        return Ok(text(StatusCode::OK, "set"));
                    }
                    // `KeyedLimit` is always ready. (The front's error type is
                    // `Infallible`: with `BoxError`, rustc cannot prove
                    // hyper's connection future `Send`.)
                    let ready = std::future::poll_fn(|cx| limited.poll_ready(cx)).await;
                    if let Err(error) = ready {
                        return Ok(error_response(&error));
                    }
                    match limited.call(req).await {
                        Ok(response) => Ok::<_, Infallible>(response),
                        Err(error) => Ok(error_response(&error)),
                    }
                }
            })
        };

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = TowerToHyperService::new(front.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            pool,
            meter,
            gate,
            task,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Sends one request on a connection of its own, in a task.
    fn spawn_request(&self, path: &str, tenant: &str) -> JoinHandle<(StatusCode, String)> {
        let (addr, path, tenant) = (self.addr, path.to_owned(), tenant.to_owned());
        tokio::spawn(async move { Client::connect(addr).await.get(&path, &tenant).await })
    }

    async fn set_target(&self, tenant: &str, target: u64) {
        let path = format!("/admin/target?tenant={tenant}&target={target}");
        let (status, _) = self.client().await.get(&path, "admin").await;
        assert_eq!(status, StatusCode::OK);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1 connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    connection: JoinHandle<()>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Self { sender, connection }
    }

    async fn get(&mut self, path: &str, tenant: &str) -> (StatusCode, String) {
        let req = Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .header(TENANT, tenant)
            .body(Empty::new())
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(req).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Closes the connection now, even with a request in flight.
        self.connection.abort();
    }
}

/// Runs `scenario` on a multi-thread runtime, failing after `HANG_GUARD`.
fn run<F: Future<Output = ()>>(scenario: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(HANG_GUARD, scenario)
                .await
                .expect("the scenario hung");
        });
}

/// Waits (yielding, then sleeping a little) until `cond` holds; fails after
/// `HANG_GUARD`.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn per_tenant_targets_and_the_pool_limit_hold_under_load() {
    run(async {
        let server = Server::start(&[("a", 3), ("b", 2), ("c", 1)], 5, false, 0).await;
        let mut clients = Vec::new();
        for i in 0..30 {
            let tenant = ["a", "b", "c"][i % 3];
            let mut client = server.client().await;
            clients.push(tokio::spawn(async move {
                for _ in 0..6 {
                    let (status, body) = client.get("/work?ms=2", tenant).await;
                    assert_eq!((status, body.as_str()), (StatusCode::OK, tenant));
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        assert_eq!(server.meter.served(), 180);
        server.meter.assert_clean();
        assert_eq!(server.pool.active(), 0);
        assert_eq!(server.pool.stats().granted, 180);
    });
}

#[test]
fn a_saturated_tenant_does_not_delay_another() {
    run(async {
        let server = Server::start(&[("slow", 2), ("fast", 1)], 10, false, 0).await;
        let stuck: Vec<_> = (0..8)
            .map(|_| server.spawn_request("/hang", "slow"))
            .collect();
        wait_until("slow is full and has a queue", || {
            server.meter.in_flight("slow") == 2 && server.pool.waiting("slow") == 6
        })
        .await;

        // Every request of `fast` completes while `slow` stays stuck.
        let mut client = server.client().await;
        for _ in 0..20 {
            assert_eq!(client.get("/work", "fast").await.0, StatusCode::OK);
        }
        assert_eq!(server.meter.in_flight("slow"), 2);
        assert_eq!(server.pool.waiting("slow"), 6);

        server.gate.add_permits(8);
        for request in stuck {
            assert_eq!(request.await.unwrap().0, StatusCode::OK);
        }
        server.meter.assert_clean();
        assert_eq!(server.pool.active(), 0);
    });
}

#[test]
fn a_target_changed_at_runtime_applies_to_the_next_requests() {
    run(async {
        let server = Server::start(&[("t", 1)], 10, false, 0).await;
        let first: Vec<_> = (0..4).map(|_| server.spawn_request("/hang", "t")).collect();
        wait_until("one in flight, three waiting", || {
            server.meter.in_flight("t") == 1 && server.pool.waiting("t") == 3
        })
        .await;

        // Raised: the waiting requests go in.
        server.set_target("t", 3).await;
        wait_until("three in flight", || server.meter.in_flight("t") == 3).await;
        assert_eq!(server.pool.waiting("t"), 1);

        // Lowered: nothing is revoked, but the next requests see it.
        server.set_target("t", 1).await;
        server.gate.add_permits(4);
        for request in first {
            assert_eq!(request.await.unwrap().0, StatusCode::OK);
        }
        let second: Vec<_> = (0..4).map(|_| server.spawn_request("/hang", "t")).collect();
        wait_until("three waiting", || server.pool.waiting("t") == 3).await;
        assert_eq!(server.meter.in_flight("t"), 1);
        server.gate.add_permits(4);
        for request in second {
            assert_eq!(request.await.unwrap().0, StatusCode::OK);
        }
        server.meter.assert_clean();
        assert_eq!(server.pool.active(), 0);
    });
}

#[test]
fn dropped_connections_return_their_leases() {
    run(async {
        let server = Server::start(&[("d", 2)], 10, false, 0).await;
        let requests: Vec<_> = (0..6).map(|_| server.spawn_request("/hang", "d")).collect();
        wait_until("two in flight, four waiting", || {
            server.meter.in_flight("d") == 2 && server.pool.waiting("d") == 4
        })
        .await;
        assert_eq!(server.pool.active(), 2);

        // The clients go away: their connections close mid-request.
        for request in &requests {
            request.abort();
        }
        for request in requests {
            assert!(request.await.unwrap_err().is_cancelled());
        }
        wait_until("every lease and place given back", || {
            server.pool.active() == 0 && server.pool.waiting("d") == 0
        })
        .await;
        wait_until("no handler left", || server.meter.in_flight("d") == 0).await;
        server.meter.assert_clean();

        // The tenant still works.
        let mut client = server.client().await;
        assert_eq!(client.get("/work", "d").await.0, StatusCode::OK);
    });
}

#[test]
fn shed_answers_at_once_with_overloaded_when_a_tenant_is_full() {
    run(async {
        let server = Server::start(&[("s", 1), ("other", 1)], 10, true, 0).await;
        let held = server.spawn_request("/hang", "s");
        wait_until("s is full", || server.meter.in_flight("s") == 1).await;

        // Answered while the request in flight is still stuck.
        let mut client = server.client().await;
        for _ in 0..5 {
            let (status, body) = client.get("/work", "s").await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
            );
        }
        assert_eq!(client.get("/work", "other").await.0, StatusCode::OK);
        // A tenant with no target has no room either.
        let (status, body) = client.get("/work", "nobody").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
        );
        assert_eq!(server.pool.waiters() + server.pool.waiting("s"), 0);

        server.gate.add_permits(1);
        assert_eq!(held.await.unwrap().0, StatusCode::OK);
        assert_eq!(client.get("/work", "s").await.0, StatusCode::OK);
        server.meter.assert_clean();
    });
}

#[test]
fn unseen_tenants_get_the_default_target_and_are_forgotten() {
    run(async {
        let server = Server::start(&[], 100, false, 2).await;
        for i in 0..20 {
            server.meter.allow(&format!("tenant-{i}"), 2);
        }
        let mut clients = Vec::new();
        for i in 0..40 {
            let mut client = server.client().await;
            clients.push(tokio::spawn(async move {
                let tenant = format!("tenant-{}", i % 20);
                for _ in 0..3 {
                    let (status, body) = client.get("/work?ms=1", &tenant).await;
                    assert_eq!((status, body), (StatusCode::OK, tenant.clone()));
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        server.meter.assert_clean();
        assert!(server.pool.is_empty(), "idle tenants are forgotten");
    });
}

#[test]
fn closing_the_pool_answers_closed() {
    run(async {
        let server = Server::start(&[("a", 1)], 10, false, 0).await;
        let held = server.spawn_request("/hang", "a");
        wait_until("a is full", || server.meter.in_flight("a") == 1).await;
        let waiting = server.spawn_request("/work", "a");
        wait_until("one waiting", || server.pool.waiting("a") == 1).await;
        server.pool.close();
        let (status, body) = waiting.await.unwrap();
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "closed")
        );
        server.gate.add_permits(1);
        assert_eq!(held.await.unwrap().0, StatusCode::OK);
        assert_eq!(server.pool.active(), 0);
    });
}
