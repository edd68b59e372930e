//! An HTTP server with a concurrency limit per tenant, and its own clients.
//!
//! Requests name their tenant in the `x-tenant` header. A
//! `KeyedLimitLayer` keyed by that header lets at most the tenant's target
//! of its requests into the handler at once (the others wait, in order);
//! `set_limit` caps all tenants together; tenants nobody configured get a
//! default target on first sight and are forgotten when idle. An admin
//! route, `/admin/target?tenant=T&target=N`, changes a target at runtime.
//!
//! The program starts the server on `127.0.0.1:0`, then drives it with its
//! own HTTP clients for `--seconds`: one connection per client, each
//! sending requests of one tenant in a loop. A third of the way through,
//! an operator raises `gamma` from 1 to 3 through the admin route; two
//! thirds through, it lowers `alpha` from 4 to 2. Each second it prints
//! the pool's live table (tenant, target, in flight, waiting) and what was
//! served. The handler checks, for every request, that its tenant has no
//! more requests in flight than the highest target it was given and the
//! pool no more than the limit; the program exits non-zero if one check
//! failed.
//!
//! ```sh
//! cargo run --release -p workpool-std --features tower --example tenant_server -- --seconds 2
//! ```
//!
//! Flags: `--seconds N` (5), `--clients N` (24), `--limit N` (8).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use workpool_std::tower::{KeyedLimitLayer, Overloaded};
use workpool_std::{Closed, Pool};

const USAGE: &str = "usage: tenant_server [--seconds N] [--clients N] [--limit N]";
const TENANT: &str = "x-tenant";
/// The configured tenants and their targets; the rest get `DEFAULT`.
const TENANTS: [(&str, u64); 3] = [("alpha", 4), ("beta", 2), ("gamma", 1)];
const DEFAULT: u64 = 1;

#[derive(Debug, Clone, Copy)]
struct Config {
    seconds: u64,
    clients: u64,
    limit: u64,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut c = Config {
        seconds: 5,
        clients: 24,
        limit: 8,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value:?}"))?;
        match flag.as_str() {
            "--seconds" => c.seconds = n,
            "--clients" => c.clients = n,
            "--limit" => c.limit = n,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if c.clients == 0 || c.clients > 1000 || c.limit == 0 {
        return Err("--clients must be 1..=1000 and --limit positive".into());
    }
    Ok(c)
}

/// What the handler saw: requests in flight and served per tenant, the
/// highest target each tenant was given, and the checks that failed.
#[derive(Default)]
struct Books {
    in_flight: HashMap<String, u64>,
    served: BTreeMap<String, u64>,
    allowed: HashMap<String, u64>,
    violations: u64,
}

type Shared = Arc<Mutex<Books>>;

fn books(shared: &Shared) -> std::sync::MutexGuard<'_, Books> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tenant_of<B>(req: &Request<B>) -> String {
    req.headers()
        .get(TENANT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned()
}

fn query(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// The work behind the limit: checks the limits, then "works" for `?ms=`.
async fn handle(
    req: Request<Incoming>,
    pool: Pool<String>,
    shared: Shared,
) -> Response<Full<Bytes>> {
    let tenant = tenant_of(&req);
    {
        let mut b = books(&shared);
        let now = *b
            .in_flight
            .entry(tenant.clone())
            .and_modify(|n| *n += 1)
            .or_insert(1);
        let allowed = b.allowed.get(&tenant).copied().unwrap_or(DEFAULT);
        let total = pool.active();
        if now > allowed || pool.limit().is_some_and(|limit| total > limit) {
            b.violations += 1;
            eprintln!("VIOLATION: {tenant} has {now} of {allowed}, the pool {total}");
        }
    }
    let ms = query(&req, "ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(10);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let mut b = books(&shared);
    *b.in_flight.entry(tenant.clone()).or_default() -= 1;
    *b.served.entry(tenant.clone()).or_default() += 1;
    text(StatusCode::OK, tenant)
}

/// The admin route: sets a tenant's target, at once.
fn admin(req: &Request<Incoming>, pool: &Pool<String>, shared: &Shared) -> Response<Full<Bytes>> {
    let tenant = query(req, "tenant");
    let target = query(req, "target").and_then(|t| t.parse::<u64>().ok());
    let (Some(tenant), Some(target)) = (tenant, target) else {
        return text(
            StatusCode::BAD_REQUEST,
            "usage: /admin/target?tenant=T&target=N",
        );
    };
    let mut b = books(shared);
    let allowed = b.allowed.entry(tenant.clone()).or_insert(DEFAULT);
    *allowed = (*allowed).max(target); // lowering revokes nothing
    drop(b);
    pool.set(tenant, target);
    text(StatusCode::OK, "set")
}

/// Binds `127.0.0.1:0` and serves: `/admin/target` directly, everything
/// else through the per-tenant limit.
async fn serve(pool: Pool<String>, shared: Shared) -> std::io::Result<SocketAddr> {
    let handler = {
        let (pool, shared) = (pool.clone(), Arc::clone(&shared));
        service_fn(move |req| {
            let response = handle(req, pool.clone(), Arc::clone(&shared));
            async move { Ok::<_, Infallible>(response.await) }
        })
    };
    let limited = ServiceBuilder::new()
        .layer(
            KeyedLimitLayer::new(pool.clone(), tenant_of::<Incoming>).with_default_target(DEFAULT),
        )
        .service(handler);
    let front = service_fn(move |req: Request<Incoming>| {
        let limited = limited.clone();
        let (pool, shared) = (pool.clone(), Arc::clone(&shared));
        async move {
            if req.uri().path() == "/admin/target" {
                return Ok::<_, Infallible>(admin(&req, &pool, &shared));
            }
            Ok(match limited.oneshot(req).await {
                Ok(response) => response,
                Err(e) if e.is::<Overloaded>() => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "overloaded")
                }
                Err(e) if e.is::<Closed>() => text(StatusCode::SERVICE_UNAVAILABLE, "closed"),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            })
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(front.clone());
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new();
                let _ = connection
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// One client connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Self, Box<dyn std::error::Error>> {
        let stream = TcpStream::connect(addr).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    async fn get(&mut self, path: &str, tenant: &str) -> hyper::Result<StatusCode> {
        let req = Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .header(TENANT, tenant)
            .body(Empty::new())
            .expect("a valid request");
        self.sender.ready().await?;
        let response = self.sender.send_request(req).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

fn print_table(pool: &Pool<String>, shared: &Shared, elapsed: Duration) {
    let mut rows = pool.snapshot();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    println!(
        "{:>5.1} s  pool {}/{}",
        elapsed.as_secs_f64(),
        pool.active(),
        pool.limit().map_or_else(|| "-".into(), |l| l.to_string())
    );
    println!(
        "  {:<10} {:>6} {:>9} {:>7} {:>7}",
        "tenant", "target", "in flight", "waiting", "served"
    );
    let b = books(shared);
    for (tenant, counts, waiting) in rows {
        let served = b.served.get(&tenant).copied().unwrap_or(0);
        println!(
            "  {tenant:<10} {:>6} {:>9} {waiting:>7} {served:>7}",
            counts.target, counts.active
        );
    }
}

async fn run(c: Config) -> Result<bool, Box<dyn std::error::Error>> {
    let pool: Pool<String> = Pool::new();
    let shared = Shared::default();
    for (tenant, target) in TENANTS {
        pool.set(tenant.to_owned(), target);
        books(&shared).allowed.insert(tenant.to_owned(), target);
    }
    pool.set_limit(Some(c.limit));
    let addr = serve(pool.clone(), Arc::clone(&shared)).await?;
    println!(
        "serving on http://{addr} for {} s: alpha 4, beta 2, gamma 1, others {DEFAULT}, {} in all",
        c.seconds, c.limit
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs(c.seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..c.clients {
        // Mostly the configured tenants, and a few walk-ins.
        let tenant = match i % 8 {
            0..=2 => "alpha".to_owned(),
            3 | 4 => "beta".to_owned(),
            5 | 6 => "gamma".to_owned(),
            _ => format!("walk-in-{}", i % 3),
        };
        let mut client = Client::connect(addr).await?;
        let errors = Arc::clone(&errors);
        clients.spawn(async move {
            let mut n = i;
            while Instant::now() < deadline {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let path = format!("/work?ms={}", 5 + (n >> 33) % 25);
                match client.get(&path, &tenant).await {
                    Ok(StatusCode::OK) => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    // The operator: two target changes through the admin route, and the
    // table every second.
    let mut operator = Client::connect(addr).await?;
    let mut changes = vec![
        (2 * c.seconds * 1000 / 3, "alpha", 2),
        (c.seconds * 1000 / 3, "gamma", 3),
    ];
    let mut next_table = Duration::from_secs(1);
    while Instant::now() < deadline {
        let elapsed = started.elapsed();
        if let Some(&(at, tenant, target)) = changes.last() {
            if elapsed >= Duration::from_millis(at) {
                changes.pop();
                let path = format!("/admin/target?tenant={tenant}&target={target}");
                let status = operator.get(&path, "operator").await?;
                println!("  admin: {tenant} -> {target} ({status})");
            }
        }
        if elapsed >= next_table {
            print_table(&pool, &shared, elapsed);
            next_table += Duration::from_secs(1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Some(client) = clients.join_next().await {
        client?;
    }
    print_table(&pool, &shared, started.elapsed());

    let b = books(&shared);
    let served: u64 = b.served.values().sum();
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "served {served} requests in {:.1} s; {errors} failed; {} violation(s); {} lease(s) out",
        started.elapsed().as_secs_f64(),
        b.violations,
        pool.active()
    );
    Ok(b.violations == 0 && errors == 0 && pool.active() == 0)
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("tenant_server: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(config)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("tenant_server: {error}");
            ExitCode::FAILURE
        }
    }
}
