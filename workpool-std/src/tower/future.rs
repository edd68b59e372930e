//! The response future of `KeyedLimit`: wait for the lease, then for the
//! inner service's readiness, then for its response, holding the lease.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::defaults::Ticket;
use super::BoxError;
use crate::futures::AcquireKeyManyOwned;
use crate::{Closed, DefaultHashBuilder, Lease};

pin_project! {
    /// The response future of [`KeyedLimit`](super::KeyedLimit): it waits
    /// for a lease of the request's key (in the pool's fair queue), then
    /// for a clone of the inner service to be ready, calls it and waits for
    /// its response. The lease is held until this future completes or is
    /// dropped.
    ///
    /// It is `Send` when the inner service, its future, the request and the
    /// key are, and `'static` when they are.
    ///
    /// # Errors
    ///
    /// A [`BoxError`] that downcasts to [`Closed`] (the pool was closed, or
    /// [`close_key`](crate::Pool::close_key) was called for the key while
    /// the request waited), to [`Overloaded`](super::Overloaded) (a
    /// [shedding](super::KeyedLimitLayer::shed) layer found no room), or to
    /// the inner service's error.
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any point gives the lease back, or its place in the
    /// queue (a lease already granted to it passes on), and drops the
    /// request and the service clone.
    ///
    /// # Panics
    ///
    /// Polling it again after it returned its output panics, as the pool's
    /// other futures do.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, Req, K, H = DefaultHashBuilder>
    where
        S: Service<Req>,
        K: Hash,
        K: Eq,
        K: Clone,
        H: BuildHasher,
    {
        #[pin]
        state: State<S, Req, K, H>,
        // Declared after `state`, so dropped after the lease in it: the
        // default target is handed back only once the key is idle.
        ticket: Option<Ticket<K, H>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, K, H>
    where
        S: Service<Req>,
    {
        // Waiting for the lease (`acquire`), then for the service
        // (`lease`).
        Waiting {
            acquire: Option<AcquireKeyManyOwned<K, H>>,
            lease: Option<Lease<K, H>>,
            service: S,
            request: Option<Req>,
        },
        Calling {
            #[pin]
            future: S::Future,
            lease: Option<Lease<K, H>>,
        },
        Failed {
            error: Option<BoxError>,
        },
        Done,
    }
}

impl<S, Req, K, H> ResponseFuture<S, Req, K, H>
where
    S: Service<Req>,
    K: Hash + Eq + Clone,
    H: BuildHasher,
{
    /// Waits for a lease from `acquire`, then calls `service`.
    pub(super) fn waiting(
        acquire: AcquireKeyManyOwned<K, H>,
        service: S,
        request: Req,
        ticket: Option<Ticket<K, H>>,
    ) -> Self {
        Self::with(
            State::Waiting {
                acquire: Some(acquire),
                lease: None,
                service,
                request: Some(request),
            },
            ticket,
        )
    }

    /// Has `lease` already; waits for `service`, then calls it.
    pub(super) fn leased(
        lease: Lease<K, H>,
        service: S,
        request: Req,
        ticket: Option<Ticket<K, H>>,
    ) -> Self {
        Self::with(
            State::Waiting {
                acquire: None,
                lease: Some(lease),
                service,
                request: Some(request),
            },
            ticket,
        )
    }

    /// Fails with `error` when polled.
    pub(super) fn failed(error: BoxError, ticket: Option<Ticket<K, H>>) -> Self {
        Self::with(State::Failed { error: Some(error) }, ticket)
    }

    fn with(state: State<S, Req, K, H>, ticket: Option<Ticket<K, H>>) -> Self {
        Self { state, ticket }
    }
}

impl<S, Req, K, H> Future for ResponseFuture<S, Req, K, H>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone,
    H: BuildHasher,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting {
                    acquire,
                    lease,
                    service,
                    request,
                } => {
                    if let Some(waiting) = acquire {
                        match ready!(Pin::new(waiting).poll(cx)) {
                            Ok(granted) => *lease = Some(granted),
                            Err(Closed) => {
                                this.state.set(State::Done);
                                *this.ticket = None;
                                return Poll::Ready(Err(Closed.into()));
                            }
                        }
                        *acquire = None;
                    }
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        // Gives the lease back at once.
                        this.state.set(State::Done);
                        *this.ticket = None;
                        return Poll::Ready(Err(error.into()));
                    }
                    let request = request.take().expect("a waiting state holds its request");
                    let future = service.call(request);
                    let lease = lease.take();
                    this.state.set(State::Calling { future, lease });
                }
                StateProj::Calling { future, .. } => {
                    let output = ready!(future.poll(cx));
                    // The lease goes back before the caller sees the response,
                    // and before the ticket looks at the key.
                    this.state.set(State::Done);
                    *this.ticket = None;
                    return Poll::Ready(output.map_err(Into::into));
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect("a failed state holds its error");
                    this.state.set(State::Done);
                    *this.ticket = None;
                    return Poll::Ready(Err(error));
                }
                StateProj::Done => panic!("`ResponseFuture` polled after completion"),
            }
        }
    }
}

impl<S, Req, K, H> fmt::Debug for ResponseFuture<S, Req, K, H>
where
    S: Service<Req>,
    K: Hash + Eq + Clone + fmt::Debug,
    H: BuildHasher,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting {
                acquire: Some(_), ..
            } => "waiting for a lease",
            State::Waiting { .. } => "waiting for the service",
            State::Calling { .. } => "calling",
            State::Failed { .. } => "failed",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("ticket", &self.ticket)
            .finish()
    }
}
