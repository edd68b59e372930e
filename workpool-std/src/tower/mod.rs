//! A keyed concurrency limit per request for [`tower`] services (feature
//! `tower`).
//!
//! [`KeyedLimitLayer`] wraps a service in a [`KeyedLimit`]: every request is
//! given a key by a function of the request (a tenant, a client, an
//! upstream host), waits for a lease of that key from a [`Pool`], and is
//! passed to the inner service while the lease is held. The targets are the
//! pool's: [`Pool::set`] changes them at any time, [`Pool::set_limit`] caps
//! all keys together, and [`Pool::snapshot`] shows who is in flight and who
//! waits.
//!
//! - A request waits in its key's fair queue (FIFO, no barging), as
//!   [`Pool::acquire_key_owned`] does, then for a clone of the inner service
//!   to be ready (as `tower::util::Oneshot` does), then for the response. The
//!   lease is held until the response future completes or is dropped.
//! - [`KeyedLimit::poll_ready`](tower_service::Service::poll_ready) is always
//!   ready: the key is known only once a request is there, and one full key
//!   must not hold back the others. Readiness of the inner service is
//!   awaited per request, inside the response future.
//! - [`KeyedLimitLayer::shed`]: a request whose key has no room at once fails
//!   with [`Overloaded`] instead of waiting.
//! - [`KeyedLimitLayer::with_default_target`]: a key nobody set gets a
//!   target on first sight, and gives it back when it is idle, so the pool
//!   remembers only live keys. Without it, a key nobody [`set`](Pool::set)
//!   has target 0, and its requests wait (or are shed) until it is set.
//!
//! Errors are [`BoxError`]s that downcast to [`Closed`] (the
//! pool was closed, or [`Pool::close_key`] was called for the request's key
//! while it waited), to [`Overloaded`], or to the inner service's error.
//!
//! The layer and its services hold a [`Pool`] handle, so they keep the pool
//! open; [`Pool::close`] closes it while they live.
//!
//! [`tower`]: https://docs.rs/tower
//!
//! # Examples
//!
//! ```
//! # futures_lite::future::block_on(async {
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use workpool_std::tower::KeyedLimitLayer;
//! use workpool_std::Pool;
//!
//! struct Request {
//!     tenant: String,
//!     body: u32,
//! }
//!
//! let pool: Pool<String> = Pool::new();
//! pool.set("tenant-a".to_owned(), 4); // at most 4 requests of tenant-a at once
//! pool.set_limit(Some(100)); // and at most 100 in all
//!
//! let layer = KeyedLimitLayer::new(pool.clone(), |req: &Request| req.tenant.clone());
//! let mut service = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|req: Request| async move {
//!         Ok::<_, std::convert::Infallible>(req.body * 2)
//!     }));
//!
//! let request = Request { tenant: "tenant-a".to_owned(), body: 21 };
//! assert_eq!(service.ready().await?.call(request).await?, 42);
//! # Ok::<(), tower::BoxError>(())
//! # }).unwrap();
//! ```

mod defaults;
mod future;
mod weight;

use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use self::defaults::Defaults;
pub use self::future::ResponseFuture;
pub use self::weight::{OneUnit, Weight};
use crate::{Closed, DefaultHashBuilder, Pool, TryAcquireError};

/// The error type of [`KeyedLimit`], as `tower::BoxError`: downcast it to
/// [`Closed`], [`Overloaded`] or the inner service's error.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A [`Layer`] that limits how many requests of each key are in flight at
/// once, with the targets of a [`Pool`]: it wraps services in
/// [`KeyedLimit`].
///
/// `F` is the key function, `Fn(&Req) -> K`; it must be `Clone` for the
/// layer to make services (closures that capture nothing, or only `Clone`
/// values, are).
///
/// Clones of the layer, and the services made from them, share the pool
/// and the [default target](Self::with_default_target)'s bookkeeping. The
/// layer is `Send` and `Sync` when `K` and `F` are.
///
/// # Fairness
///
/// The pool's: requests of one key are served in arrival order, nobody
/// barges, and with a [pool-wide limit](Pool::set_limit) binding, the room
/// goes to the oldest request whose key has room. Lowering a target cancels
/// no request in flight; requests wait until the key is under its target
/// again.
///
/// # Examples
///
/// ```
/// use tower::{service_fn, ServiceBuilder};
/// use workpool_std::tower::KeyedLimitLayer;
/// use workpool_std::Pool;
///
/// let pool: Pool<String> = Pool::new();
/// let layer = KeyedLimitLayer::new(pool.clone(), |host: &String| host.clone())
///     .with_default_target(8) // 8 per host unless set otherwise
///     .shed(); // fail with `Overloaded` rather than wait
/// let service = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|host: String| async move {
///         Ok::<_, std::convert::Infallible>(host.len())
///     }));
/// # drop(service);
/// ```
pub struct KeyedLimitLayer<F, K, H = DefaultHashBuilder, W = OneUnit> {
    pool: Pool<K, H>,
    key_fn: F,
    weight: W,
    shed: bool,
    defaults: Option<Arc<Defaults<K, H>>>,
}

impl<F, K, H> KeyedLimitLayer<F, K, H> {
    /// A layer that gives each request the key `key_fn(&request)` and
    /// limits the requests of each key to its target in `pool`.
    /// (`Req`, the request type, only ties the key type to `key_fn`, so that
    /// `Pool::new()` needs no annotation.)
    ///
    /// A key's requests wait (in its fair queue) while it has no room; a key
    /// nobody [`set`](Pool::set) has target 0, so they wait until it is
    /// set, unless the layer [sheds](Self::shed) or has a
    /// [default target](Self::with_default_target).
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimitLayer;
    /// use workpool_std::Pool;
    ///
    /// struct Request { tenant: u32 }
    ///
    /// let pool = Pool::new();
    /// pool.set(7, 2);
    /// let layer = KeyedLimitLayer::new(pool, |req: &Request| req.tenant);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn new<Req>(pool: Pool<K, H>, key_fn: F) -> Self
    where
        F: Fn(&Req) -> K,
    {
        Self {
            pool,
            key_fn,
            weight: OneUnit,
            shed: false,
            defaults: None,
        }
    }
}

impl<F, K, H, W> KeyedLimitLayer<F, K, H, W> {
    /// Makes each request hold `weight(&request)` units of its key instead
    /// of one (its body's size, say), with a weighted lease
    /// ([`Pool::acquire_key_many`]); see [`Weight`] for the rules.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    /// use workpool_std::tower::KeyedLimitLayer;
    /// use workpool_std::Pool;
    ///
    /// struct Job { tenant: u32, slots: u64 }
    ///
    /// let pool = Pool::new();
    /// pool.set(7, 4);
    /// let layer = KeyedLimitLayer::new(pool.clone(), |job: &Job| job.tenant)
    ///     .with_weight(|job: &Job| job.slots);
    /// let check = pool.clone();
    /// let mut service = layer.layer(service_fn(move |job: Job| {
    ///     let active = check.counts(&job.tenant).active;
    ///     async move { Ok::<_, std::convert::Infallible>(active) }
    /// }));
    /// let job = Job { tenant: 7, slots: 3 };
    /// assert_eq!(service.ready().await?.call(job).await?, 3); // held 3 units
    /// assert_eq!(pool.counts(&7).active, 0);
    /// # Ok::<(), tower::BoxError>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn with_weight<G>(self, weight: G) -> KeyedLimitLayer<F, K, H, G> {
        KeyedLimitLayer {
            pool: self.pool,
            key_fn: self.key_fn,
            weight,
            shed: self.shed,
            defaults: self.defaults,
        }
    }

    /// Makes a request whose key has no room at once fail with
    /// [`Overloaded`] instead of waiting (as `tower::load_shed` does for a
    /// whole service; turning it into a 503 is one `map_err` away).
    ///
    /// "No room" is as for [`Pool::try_acquire_key`]: the key is at its
    /// target, the pool at its limit, or earlier requests of the key are
    /// waiting (for another layer over the same pool, say). A request that
    /// got its lease still waits for the inner service to be ready.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// use tower::{service_fn, Service, ServiceExt};
    /// use tower::Layer;
    /// use workpool_std::tower::{KeyedLimitLayer, Overloaded};
    /// use workpool_std::Pool;
    ///
    /// let pool = Pool::new();
    /// pool.set("busy", 1);
    /// let _held = pool.try_acquire_key(&"busy").unwrap(); // "busy" is full
    /// let layer = KeyedLimitLayer::new(pool, |key: &&'static str| *key).shed();
    /// let mut service = layer.layer(service_fn(|key: &'static str| async move {
    ///     Ok::<_, std::convert::Infallible>(key)
    /// }));
    /// let error = service.ready().await.unwrap().call("busy").await.unwrap_err();
    /// assert!(error.is::<Overloaded>());
    /// # });
    /// ```
    #[must_use]
    pub fn shed(mut self) -> Self {
        self.shed = true;
        self
    }

    /// Gives `target` to the keys that nobody set, on first sight, and
    /// takes it back when they are idle, so the pool only remembers live
    /// keys. `target == 0` turns the default off.
    ///
    /// The rules, for a key `k` of a request:
    ///
    /// - When a request of `k` arrives (in `call`) and the pool does not
    ///   track `k` (target 0, no live lease, no waiter), and the pool is
    ///   open, `k` is [`set`](Pool::set) to `target`. A key that the pool
    ///   tracks keeps its target, even 0: a target set by hand, and
    ///   `set(k, 0)` while `k` has requests in flight or waiting, hold.
    /// - When the last request of `k` through this layer (its clones and
    ///   services included) ends, and `k` is idle (no live lease, no
    ///   waiter) with its target still `target`, `k` is set back to 0 and
    ///   the pool forgets it. A target someone changed to another value is
    ///   left alone, and the pool keeps it as usual.
    ///
    /// So `set(k, n)` overrides the default for as long as it stands;
    /// [`close_key`](Pool::close_key) fails the requests of `k` that wait
    /// at that moment, and once `k` is idle and forgotten, its next request
    /// gets the default again. To turn a key away for good, do it before
    /// this layer (or give it a target of 0 and keep a request of it
    /// waiting). Memory follows the keys with requests in flight or waiting,
    /// here and in the pool.
    ///
    /// Cost: the layer counts each key's live requests in a striped map,
    /// and a request of a key with no other request live sets the key and,
    /// when it ends, forgets it again (several times the cost of a request
    /// of a key set by hand; see the `tower` bench).
    ///
    /// The bookkeeping assumes the keys it defaults are acquired only
    /// through this layer: a lease taken directly from the pool in the
    /// instant the layer hands a key's default back can leave that key at
    /// target 0 until someone sets it (and a target set by hand in that
    /// instant can be overwritten by the 0). Requests of the layer itself
    /// that race the hand-back are accounted for: they get the default
    /// again.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    /// use workpool_std::tower::KeyedLimitLayer;
    /// use workpool_std::{Counts, Pool};
    ///
    /// let pool: Pool<String> = Pool::new();
    /// let layer = KeyedLimitLayer::new(pool.clone(), |tenant: &String| tenant.clone())
    ///     .with_default_target(2);
    /// let seen = pool.clone();
    /// let mut service = layer.layer(service_fn(move |tenant: String| {
    ///     let counts = seen.counts(&tenant); // while the request holds its lease
    ///     async move { Ok::<_, std::convert::Infallible>(counts) }
    /// }));
    /// let counts = service.ready().await?.call("new-tenant".to_owned()).await?;
    /// assert_eq!(counts, Counts { target: 2, active: 1 });
    /// assert!(pool.is_empty()); // idle again: forgotten
    /// # Ok::<(), tower::BoxError>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn with_default_target(mut self, target: u64) -> Self {
        self.defaults = (target > 0).then(|| Arc::new(Defaults::new(self.pool.clone(), target)));
        self
    }

    /// The pool whose targets the layer applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimitLayer;
    /// use workpool_std::Pool;
    ///
    /// let layer = KeyedLimitLayer::new(Pool::new(), |key: &u32| *key);
    /// layer.pool().set(1, 4);
    /// ```
    pub fn pool(&self) -> &Pool<K, H> {
        &self.pool
    }

    /// The default target, if [`with_default_target`](Self::with_default_target)
    /// gave one.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimitLayer;
    /// use workpool_std::Pool;
    ///
    /// let layer = KeyedLimitLayer::new(Pool::new(), |key: &u32| *key);
    /// assert_eq!(layer.with_default_target(3).default_target(), Some(3));
    /// ```
    pub fn default_target(&self) -> Option<u64> {
        self.defaults.as_ref().map(|defaults| defaults.target())
    }

    /// Whether the layer [sheds](Self::shed) rather than waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimitLayer;
    /// use workpool_std::Pool;
    ///
    /// let layer = KeyedLimitLayer::new(Pool::new(), |key: &u32| *key);
    /// assert!(!layer.is_shedding());
    /// assert!(layer.shed().is_shedding());
    /// ```
    pub fn is_shedding(&self) -> bool {
        self.shed
    }
}

impl<S, F: Clone, K, H, W: Clone> Layer<S> for KeyedLimitLayer<F, K, H, W> {
    type Service = KeyedLimit<S, F, K, H, W>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedLimit {
            inner,
            pool: self.pool.clone(),
            key_fn: self.key_fn.clone(),
            weight: self.weight.clone(),
            shed: self.shed,
            defaults: self.defaults.clone(),
        }
    }
}

impl<F: Clone, K, H, W: Clone> Clone for KeyedLimitLayer<F, K, H, W> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            key_fn: self.key_fn.clone(),
            weight: self.weight.clone(),
            shed: self.shed,
            defaults: self.defaults.clone(),
        }
    }
}

impl<F, K, H, W> fmt::Debug for KeyedLimitLayer<F, K, H, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimitLayer")
            .field("pool", &self.pool)
            .field("shed", &self.shed)
            .field("default_target", &self.default_target())
            .finish_non_exhaustive()
    }
}

/// A [`Service`] that limits how many requests of each key are in flight in
/// the inner service `S`, with the targets of a [`Pool`]; made by
/// [`KeyedLimitLayer`] (or [`KeyedLimit::new`]).
///
/// Each request gets its key from `F` (`Fn(&Req) -> K`), waits for a lease
/// of that key, then goes to a ready clone of `S` (so `S` must be `Clone`,
/// as for `tower::buffer` or `tower::steer`). The lease is held until the
/// [response future](ResponseFuture) completes or is dropped.
/// [`poll_ready`](Service::poll_ready) is always ready, so one full key
/// never holds back the requests of the others.
///
/// It is `Send` and `Sync` when `S`, `F` and `K` are.
///
/// # Errors
///
/// See [`ResponseFuture`]: [`Closed`], [`Overloaded`] or the inner
/// service's error, boxed.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// use tower::{service_fn, Service, ServiceExt};
/// use workpool_std::tower::KeyedLimit;
/// use workpool_std::{Closed, Pool};
///
/// let pool = Pool::new();
/// pool.set("a", 1);
/// let inner = service_fn(|key: &'static str| async move {
///     Ok::<_, std::convert::Infallible>(key.len())
/// });
/// let mut service = KeyedLimit::new(inner, pool.clone(), |key: &&'static str| *key);
/// assert_eq!(service.ready().await?.call("a").await?, 1);
///
/// pool.close();
/// let error = service.ready().await?.call("a").await.unwrap_err();
/// assert!(error.is::<Closed>());
/// # Ok::<(), tower::BoxError>(())
/// # }).unwrap();
/// ```
pub struct KeyedLimit<S, F, K, H = DefaultHashBuilder, W = OneUnit> {
    inner: S,
    pool: Pool<K, H>,
    key_fn: F,
    /// How many units of its key a request holds.
    weight: W,
    shed: bool,
    defaults: Option<Arc<Defaults<K, H>>>,
}

impl<S, F, K, H> KeyedLimit<S, F, K, H> {
    /// Wraps `inner`: the same as
    /// `KeyedLimitLayer::new(pool, key_fn).layer(inner)`; the layer's
    /// methods set the other options.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::service_fn;
    /// use workpool_std::tower::KeyedLimit;
    /// use workpool_std::Pool;
    ///
    /// let inner = service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
    /// let service = KeyedLimit::new(inner, Pool::new(), |n: &u32| n % 10);
    /// # drop(service);
    /// ```
    #[must_use]
    pub fn new<Req>(inner: S, pool: Pool<K, H>, key_fn: F) -> Self
    where
        F: Fn(&Req) -> K,
    {
        Self {
            inner,
            pool,
            key_fn,
            weight: OneUnit,
            shed: false,
            defaults: None,
        }
    }
}

impl<S, F, K, H, W> KeyedLimit<S, F, K, H, W> {
    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimit;
    /// use workpool_std::Pool;
    ///
    /// let service = KeyedLimit::new("inner", Pool::<u32>::new(), |n: &u32| *n);
    /// assert_eq!(*service.inner(), "inner");
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimit;
    /// use workpool_std::Pool;
    ///
    /// let mut service = KeyedLimit::new(1, Pool::<u32>::new(), |n: &u32| *n);
    /// *service.inner_mut() += 1;
    /// assert_eq!(*service.inner(), 2);
    /// ```
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimit;
    /// use workpool_std::Pool;
    ///
    /// let service = KeyedLimit::new("inner", Pool::<u32>::new(), |n: &u32| *n);
    /// assert_eq!(service.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The pool whose targets the service applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use workpool_std::tower::KeyedLimit;
    /// use workpool_std::Pool;
    ///
    /// let service = KeyedLimit::new((), Pool::new(), |n: &u32| *n);
    /// service.pool().set(3, 1);
    /// assert_eq!(service.pool().counts(&3).target, 1);
    /// ```
    pub fn pool(&self) -> &Pool<K, H> {
        &self.pool
    }
}

impl<S, F, K, H, W, Req> Service<Req> for KeyedLimit<S, F, K, H, W>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    F: Fn(&Req) -> K,
    K: Hash + Eq + Clone,
    H: BuildHasher,
    W: Weight<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, K, H>;

    /// Always ready: the inner service's readiness is awaited per request,
    /// once the request has its lease.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key_fn)(&request);
        let units = self.weight.weight(&request);
        let ticket = self.defaults.as_ref().map(|defaults| defaults.arrive(&key));
        let service = self.inner.clone();
        if self.shed {
            match self.pool.try_acquire_key_many(&key, units) {
                Ok(lease) => ResponseFuture::leased(lease, service, request, ticket),
                Err(TryAcquireError::Closed) => ResponseFuture::failed(Closed.into(), ticket),
                Err(TryAcquireError::NoCapacity) => {
                    ResponseFuture::failed(Overloaded::new().into(), ticket)
                }
            }
        } else {
            let acquire = self.pool.acquire_key_many_owned(key, units);
            ResponseFuture::waiting(acquire, service, request, ticket)
        }
    }
}

impl<S: Clone, F: Clone, K, H, W: Clone> Clone for KeyedLimit<S, F, K, H, W> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            pool: self.pool.clone(),
            key_fn: self.key_fn.clone(),
            weight: self.weight.clone(),
            shed: self.shed,
            defaults: self.defaults.clone(),
        }
    }
}

impl<S: fmt::Debug, F, K, H, W> fmt::Debug for KeyedLimit<S, F, K, H, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("inner", &self.inner)
            .field("pool", &self.pool)
            .field("shed", &self.shed)
            .field(
                "default_target",
                &self.defaults.as_ref().map(|defaults| defaults.target()),
            )
            .finish_non_exhaustive()
    }
}

/// The error of a request that a [shedding](KeyedLimitLayer::shed)
/// [`KeyedLimit`] turned away because its key had no room.
///
/// # Examples
///
/// ```
/// use workpool_std::tower::{BoxError, Overloaded};
///
/// let error: BoxError = Overloaded::new().into();
/// assert!(error.is::<Overloaded>());
/// assert_eq!(error.to_string(), "overloaded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct Overloaded;

impl Overloaded {
    /// The error value.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(workpool_std::tower::Overloaded::new().to_string(), "overloaded");
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("overloaded")
    }
}

impl Error for Overloaded {}
