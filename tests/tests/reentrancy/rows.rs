//! The rows of the table: one driver per future or stream type of
//! `workpool-std` (two for the types with two ways to wait). A driver says
//! how to build the type in a pending state and which event makes it ready.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use tower::util::ServiceFn;
use tower_layer::Layer;
use tower_service::Service;
use workpool_std::futures::{
    Acquire, AcquireKey, AcquireKeyMany, AcquireKeyManyOwned, AcquireKeyOwned, AcquireOwned,
    Drained, Leases, Surplus,
};
use workpool_std::tower::{KeyedLimitLayer, ResponseFuture};
use workpool_std::{Closed, Lease, PollPool, Pool};

/// The key every subject waits on (or watches).
pub(crate) const K: u32 = 1;

/// The units the weighted rows ask for.
pub(crate) const MANY: u64 = 2;

/// A key the pool keeps in the same shard as [`K`], so that a release or a
/// `set` on it takes the very lock that `K`'s operations take.
pub(crate) fn neighbour(pool: &Pool<u32>) -> u32 {
    (K + 1..10_000)
        .find(|m| pool.shard_of(m) == pool.shard_of(&K))
        .expect("a key in K's shard")
}

/// One driver: a type of the crate, and one way to wait with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Row {
    /// `pool.acquire()`.
    Acquire,
    /// `pool.acquire_key(&K)`.
    AcquireKey,
    /// `pool.acquire_owned()`.
    AcquireOwned,
    /// `pool.acquire_key_owned(K)`.
    AcquireKeyOwned,
    /// `pool.acquire_key_many(&K, MANY)`: the key's target is `MANY`, all
    /// of it held by one weighted lease.
    AcquireKeyMany,
    /// `pool.acquire_key_many_owned(K, MANY)`, armed as `AcquireKeyMany`.
    AcquireKeyManyOwned,
    /// `PollPool::poll_acquire`.
    PollAny,
    /// `PollPool::poll_acquire_key(&K)`.
    PollKey,
    /// `pool.leases()`, polled for its next item.
    Leases,
    /// `lease.surplus()`, made ready by lowering the key's target below
    /// its active count (`set(K, 0)`).
    SurplusTarget,
    /// `lease.surplus()`, made ready by a pool-wide limit below the active
    /// count (`set_limit(Some(0))`).
    SurplusLimit,
    /// `pool.drained(&K)`, made ready by dropping `K`'s last lease.
    Drained,
    /// The tower layer's `ResponseFuture`: a `KeyedLimit` (keyed by the
    /// request itself) around an inner service that answers at once, called
    /// with `K`; it waits for a lease of `K`. The service is dropped right
    /// after `call`: the future does not borrow it.
    Response,
}

/// The lease a `Surplus` subject watches (and borrows); `None` for the
/// other rows.
pub(crate) type Watched = Option<Lease<u32>>;

/// The leases that keep a subject pending.
pub(crate) type Blockers = Vec<Lease<u32>>;

impl Row {
    /// Every row; `every_cell_runs_or_says_why` checks each has a line in
    /// the table.
    pub(crate) const ALL: [Self; 13] = [
        Self::Acquire,
        Self::AcquireKey,
        Self::AcquireOwned,
        Self::AcquireKeyOwned,
        Self::AcquireKeyMany,
        Self::AcquireKeyManyOwned,
        Self::PollAny,
        Self::PollKey,
        Self::Leases,
        Self::SurplusTarget,
        Self::SurplusLimit,
        Self::Drained,
        Self::Response,
    ];

    /// Whether the type borrows a `Pool` handle (so a waker can never hold
    /// the last handle while the subject lives).
    pub(crate) const fn borrows_pool(self) -> bool {
        matches!(
            self,
            Self::Acquire | Self::AcquireKey | Self::AcquireKeyMany | Self::Drained
        )
    }

    /// Whether the row's event needs no `Pool` handle (dropping a lease).
    pub(crate) const fn fires_without_handle(self) -> bool {
        !matches!(self, Self::SurplusTarget | Self::SurplusLimit)
    }
    /// The type of `workpool-std` this row covers, as its source names it.
    pub(crate) const fn covers(self) -> &'static str {
        match self {
            Self::Acquire => "Acquire",
            Self::AcquireKey => "AcquireKey",
            Self::AcquireOwned => "AcquireOwned",
            Self::AcquireKeyOwned => "AcquireKeyOwned",
            Self::AcquireKeyMany => "AcquireKeyMany",
            Self::AcquireKeyManyOwned => "AcquireKeyManyOwned",
            Self::PollAny | Self::PollKey => "PollPool",
            Self::Leases => "Leases",
            Self::SurplusTarget | Self::SurplusLimit => "Surplus",
            Self::Drained => "Drained",
            Self::Response => "ResponseFuture",
        }
    }

    /// Whether the subject waits for a lease (and ends with `Closed` when
    /// the pool closes), rather than watching one.
    pub(crate) const fn acquires(self) -> bool {
        !matches!(
            self,
            Self::SurplusTarget | Self::SurplusLimit | Self::Drained
        )
    }

    /// Sets the targets and takes the leases that make the subject pending.
    pub(crate) fn arm(self, pool: &Pool<u32>) -> (Watched, Blockers) {
        match self {
            Self::SurplusTarget | Self::SurplusLimit => {
                pool.set(K, 3);
                (Some(pool.try_acquire_key(&K).unwrap()), Vec::new())
            }
            Self::Drained => {
                pool.set(K, 3);
                (None, vec![pool.try_acquire_key(&K).unwrap()])
            }
            Self::AcquireKeyMany | Self::AcquireKeyManyOwned => {
                // `K` is the only key with a target, all held by one lease.
                pool.set(K, MANY);
                (None, vec![pool.try_acquire_key_many(&K, MANY).unwrap()])
            }
            _ => {
                // `K` is the only key with a target, and it is full.
                pool.set(K, 1);
                (None, vec![pool.try_acquire_key(&K).unwrap()])
            }
        }
    }

    /// The subject, not polled yet.
    pub(crate) fn subject<'a>(self, pool: &'a Pool<u32>, watched: &'a Watched) -> Subject<'a> {
        match self {
            Self::Acquire => Subject::Acquire(Box::pin(pool.acquire())),
            Self::AcquireKey => Subject::AcquireKey(Box::pin(pool.acquire_key(&K))),
            Self::AcquireKeyMany => {
                Subject::AcquireKeyMany(Box::pin(pool.acquire_key_many(&K, MANY)))
            }
            Self::Drained => Subject::Drained(Box::pin(pool.drained(&K))),
            _ => self
                .detached(pool, watched)
                .expect("a row that borrows no pool"),
        }
    }

    /// The subject, for the rows whose type borrows no `Pool` handle (it
    /// may borrow the watched lease); `None` for the rows that borrow one.
    pub(crate) fn detached<'a>(
        self,
        pool: &Pool<u32>,
        watched: &'a Watched,
    ) -> Option<Subject<'a>> {
        Some(match self {
            Self::AcquireOwned => Subject::AcquireOwned(Box::pin(pool.acquire_owned())),
            Self::AcquireKeyOwned => Subject::AcquireKeyOwned(Box::pin(pool.acquire_key_owned(K))),
            Self::AcquireKeyManyOwned => {
                Subject::AcquireKeyManyOwned(Box::pin(pool.acquire_key_many_owned(K, MANY)))
            }
            Self::PollAny => Subject::PollAny(PollPool::new(pool)),
            Self::PollKey => Subject::PollKey(PollPool::new(pool)),
            Self::Leases => Subject::Leases(Box::pin(pool.leases())),
            Self::Response => Subject::Response(Box::pin(response(pool))),
            Self::SurplusTarget | Self::SurplusLimit => {
                let watched = watched.as_ref().expect("armed with a lease to watch");
                Subject::Surplus(Box::pin(watched.surplus()))
            }
            Self::Acquire | Self::AcquireKey | Self::AcquireKeyMany | Self::Drained => return None,
        })
    }

    /// The event that makes the subject ready.
    pub(crate) fn fire(self, pool: &Pool<u32>, blockers: &mut Blockers) {
        match self {
            Self::SurplusTarget => pool.set(K, 0),
            Self::SurplusLimit => pool.set_limit(Some(0)),
            _ => assert!(self.fire_without_handle(blockers), "{self}: fired"),
        }
    }

    /// The event that makes the subject ready when no `Pool` handle is at
    /// hand: dropping the leases that block it. False (and nothing done)
    /// for the rows whose event needs a handle (a target or a limit change).
    pub(crate) fn fire_without_handle(self, blockers: &mut Blockers) -> bool {
        if !self.fires_without_handle() {
            return false;
        }
        assert!(!blockers.is_empty(), "{self}: armed with blockers");
        blockers.clear();
        true
    }

    /// A lease of `K` whose release re-enters `K`'s part of the pool: for
    /// acquisitions and `Drained`, the blocker itself (so that releasing it
    /// is what makes the subject ready); for `Surplus`, a second lease of
    /// the watched key (releasing it makes nothing surplus).
    pub(crate) fn key_bait(self, pool: &Pool<u32>, blockers: &mut Blockers) -> Lease<u32> {
        match self {
            Self::SurplusTarget | Self::SurplusLimit => pool.try_acquire_key(&K).unwrap(),
            _ => blockers.pop().expect("armed with a blocker"),
        }
    }

    /// `K`'s target once [`fire`](Self::fire) ran.
    pub(crate) const fn target_after_fire(self) -> u64 {
        match self {
            Self::SurplusTarget => 0,
            Self::SurplusLimit | Self::Drained => 3,
            Self::AcquireKeyMany | Self::AcquireKeyManyOwned => MANY,
            _ => 1,
        }
    }

    /// Checks what a ready subject gave.
    pub(crate) fn check(self, outcome: &Outcome, what: &str) {
        if self == Self::Response {
            // The inner service answers with the request it was called
            // with, and is called only once the request holds its lease.
            assert!(
                matches!(outcome, Outcome::Response(K)),
                "{what}: the inner service's answer, got {outcome:?}"
            );
            return;
        }
        match (self.acquires(), outcome) {
            (true, Outcome::Lease(lease)) => {
                // Only `K` has a target; the neighbour key may have been
                // given one by a scenario, so any key is fine for the
                // any-key rows.
                if matches!(
                    self,
                    Self::AcquireKey | Self::AcquireKeyOwned | Self::PollKey
                ) {
                    assert_eq!(*lease.key(), K, "{what}: a lease of the key asked for");
                }
                if matches!(self, Self::AcquireKeyMany | Self::AcquireKeyManyOwned) {
                    assert_eq!(
                        (*lease.key(), lease.units()),
                        (K, MANY),
                        "{what}: a lease of the units asked for"
                    );
                }
            }
            (false, Outcome::Done) => {}
            _ => panic!("{what}: unexpected outcome {outcome:?}"),
        }
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a subject gave when ready.
#[derive(Debug)]
pub(crate) enum Outcome {
    Lease(Lease<u32>),
    /// `Err(Closed)`, or the end of the `Leases` stream.
    Closed,
    /// A watch resolved.
    Done,
    /// The inner service's response to a `KeyedLimit` request.
    Response(u32),
}

/// A subject of the table, polled by hand.
pub(crate) enum Subject<'a> {
    Acquire(Pin<Box<Acquire<'a, u32>>>),
    AcquireKey(Pin<Box<AcquireKey<'a, u32>>>),
    AcquireOwned(Pin<Box<AcquireOwned<u32>>>),
    AcquireKeyOwned(Pin<Box<AcquireKeyOwned<u32>>>),
    AcquireKeyMany(Pin<Box<AcquireKeyMany<'a, u32>>>),
    AcquireKeyManyOwned(Pin<Box<AcquireKeyManyOwned<u32>>>),
    PollAny(PollPool<u32>),
    PollKey(PollPool<u32>),
    Leases(Pin<Box<Leases<u32>>>),
    Surplus(Pin<Box<Surplus<'a, u32>>>),
    Drained(Pin<Box<Drained<'a, u32>>>),
    Response(Pin<Box<ResponseFuture<Inner, u32, u32>>>),
}

/// The service inside the `KeyedLimit` of the `Response` row: answers
/// every request with the request, at once.
pub(crate) type Inner = ServiceFn<fn(u32) -> Ready<Result<u32, Infallible>>>;

fn echo(request: u32) -> Ready<Result<u32, Infallible>> {
    ready(Ok(request))
}

/// A `KeyedLimit` request for `K`, not polled yet. The layer and the
/// service (and with them their `Pool` handles) are dropped before this
/// returns: the response future holds the pool only as the pool's own
/// futures do, so a waker can hold the last handle.
fn response(pool: &Pool<u32>) -> ResponseFuture<Inner, u32, u32> {
    let layer = KeyedLimitLayer::new(pool.clone(), |request: &u32| *request);
    let inner: Inner = tower::service_fn(echo as fn(u32) -> _);
    let mut service = layer.layer(inner);
    drop(layer);
    let cx = &mut Context::from_waker(Waker::noop());
    assert!(
        matches!(service.poll_ready(cx), Poll::Ready(Ok(()))),
        "KeyedLimit is always ready"
    );
    service.call(K)
}

/// What a `KeyedLimit` response future gave: its error downcasts to
/// `Closed`, and no other error can come (the inner service is
/// infallible and the layer does not shed).
fn responded(polled: Poll<Result<u32, workpool_std::tower::BoxError>>) -> Poll<Outcome> {
    polled.map(|r| match r {
        Ok(response) => Outcome::Response(response),
        Err(error) if error.is::<Closed>() => Outcome::Closed,
        Err(error) => panic!("a KeyedLimit request failed with {error}"),
    })
}

fn acquired(polled: Poll<Result<Lease<u32>, Closed>>) -> Poll<Outcome> {
    polled.map(|r| r.map_or(Outcome::Closed, Outcome::Lease))
}

impl Subject<'_> {
    pub(crate) fn poll(&mut self, waker: &Waker) -> Poll<Outcome> {
        let cx = &mut Context::from_waker(waker);
        match self {
            Self::Acquire(f) => acquired(f.as_mut().poll(cx)),
            Self::AcquireKey(f) => acquired(f.as_mut().poll(cx)),
            Self::AcquireOwned(f) => acquired(f.as_mut().poll(cx)),
            Self::AcquireKeyOwned(f) => acquired(f.as_mut().poll(cx)),
            Self::AcquireKeyMany(f) => acquired(f.as_mut().poll(cx)),
            Self::AcquireKeyManyOwned(f) => acquired(f.as_mut().poll(cx)),
            Self::PollAny(p) => acquired(p.poll_acquire(cx)),
            Self::PollKey(p) => acquired(p.poll_acquire_key(&K, cx)),
            Self::Leases(s) => s
                .as_mut()
                .poll_next(cx)
                .map(|item| item.map_or(Outcome::Closed, Outcome::Lease)),
            Self::Surplus(f) => f.as_mut().poll(cx).map(|()| Outcome::Done),
            Self::Drained(f) => f.as_mut().poll(cx).map(|()| Outcome::Done),
            Self::Response(f) => responded(f.as_mut().poll(cx)),
        }
    }
}
