//! `PollPool`: acquisition as a `poll_*` method, for hand-written futures
//! and `tower::Service::poll_ready`.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::task::{Context, Poll};

use crate::error::Closed;
use crate::lease::Lease;
use crate::pool::Pool;
use crate::shared::{KeyQuery, Shared, Wait, Want};
use crate::sync::Arc;
use crate::{DefaultHashBuilder, Equivalent};

/// Acquisition as a `poll_*` method: [`poll_acquire`](Self::poll_acquire)
/// and [`poll_acquire_key`](Self::poll_acquire_key) take `&mut self` and a
/// [`Context`], so they fit where a future cannot be stored, such as
/// `tower::Service::poll_ready`. It is the pool's form of tokio-util's
/// `PollSemaphore`.
///
/// A `PollPool` is one waiter: it keeps its place in the queue from one poll
/// to the next, and after a lease comes out the next poll starts a new
/// wait. [`Clone`] gives another waiter of the same pool, starting idle.
/// It waits in the same fair queue as the futures, by the same rules.
///
/// It holds the pool's shared state but is not a handle: it cannot change a
/// target, so it does not keep the pool open. Once the last
/// [`Pool`] handle is dropped (or [`Pool::close`] is called) every poll
/// returns `Ready(Err(Closed))`. It is `'static` when `K` and `S` are, and
/// `Send` and `Sync` when `K` and `S` are.
///
/// # Cancel safety
///
/// Dropping it gives up a pending place in the queue; a lease already
/// granted to it is passed on. Switching keys gives up the place too (see
/// [`poll_acquire_key`](Self::poll_acquire_key)).
///
/// # Examples
///
/// A service that reserves a lease in `poll_ready` and spends it in `call`,
/// as `tower`'s concurrency limit does:
///
/// ```
/// use std::future::Future;
/// use std::task::{Context, Poll};
/// use workpool_std::{Closed, Lease, Pool, PollPool};
///
/// struct Limited {
///     pool: PollPool<&'static str>,
///     reserved: Option<Lease<&'static str>>,
/// }
///
/// impl Limited {
///     fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
///         if self.reserved.is_none() {
///             let lease = std::task::ready!(self.pool.poll_acquire_key(&"backend", cx))?;
///             self.reserved = Some(lease);
///         }
///         Poll::Ready(Ok(()))
///     }
///
///     fn call(&mut self, request: u32) -> impl Future<Output = u32> {
///         let lease = self.reserved.take().expect("poll_ready first");
///         async move {
///             let response = request * 2; // the work, while the lease is held
///             drop(lease);
///             response
///         }
///     }
/// }
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new();
/// pool.set("backend", 1);
/// let mut service = Limited { pool: PollPool::new(&pool), reserved: None };
/// std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
/// assert_eq!(service.call(21).await, 42);
/// # Ok::<(), Closed>(())
/// # }).unwrap();
/// ```
pub struct PollPool<K, S = DefaultHashBuilder> {
    shared: Arc<Shared<K, S>>,
    wait: Wait,
    /// What the pending wait asks for. `Some` only while `wait` is
    /// `Waiting` and the request is known; `None` there makes the next poll
    /// start over.
    asked: Option<Asked<K>>,
}

/// What a pending `PollPool` wait asks for.
enum Asked<K> {
    Any,
    Key(K),
}

impl<K, S> PollPool<K, S> {
    /// A new, idle waiter of `pool`'s pool. It does not keep the pool open
    /// (see the type docs).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use workpool_std::{Pool, PollPool};
    ///
    /// let pool = Pool::new();
    /// pool.set("spam", 1);
    /// let mut poller = PollPool::new(&pool);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let Poll::Ready(Ok(lease)) = poller.poll_acquire(&mut cx) else { panic!() };
    /// assert!(poller.poll_acquire(&mut cx).is_pending()); // waits for `lease`
    /// drop(lease);
    /// assert!(matches!(poller.poll_acquire(&mut cx), Poll::Ready(Ok(_))));
    /// ```
    #[must_use]
    pub fn new(pool: &Pool<K, S>) -> Self {
        Self {
            shared: Arc::clone(pool.shared()),
            wait: Wait::Idle,
            asked: None,
        }
    }

    /// True while a wait is pending: the last poll returned `Pending` and
    /// this `PollPool` holds a place in the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Waker};
    /// use workpool_std::{Pool, PollPool};
    ///
    /// let pool = Pool::<&str>::new();
    /// let mut poller = PollPool::new(&pool);
    /// assert!(!poller.is_waiting());
    /// let _ = poller.poll_acquire(&mut Context::from_waker(Waker::noop()));
    /// assert!(poller.is_waiting());
    /// assert_eq!(pool.waiters(), 1);
    /// ```
    pub fn is_waiting(&self) -> bool {
        matches!(self.wait, Wait::Waiting(_))
    }

    /// Gives up a pending wait, if any, as dropping a future would: a lease
    /// already granted to it passes on. The next poll starts a new wait at
    /// the back of the queue.
    fn give_up(&mut self) {
        self.shared.cancel(&mut self.wait);
        self.wait = Wait::Idle;
        self.asked = None;
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher> PollPool<K, S> {
    /// Polls for a lease from any key.
    ///
    /// `Pending` keeps this waiter's place in the queue and wakes `cx`'s
    /// waker once a lease is granted or the pool closes; poll again then.
    /// After `Ready`, the next poll starts a new wait. A pending wait for a
    /// key (from [`poll_acquire_key`](Self::poll_acquire_key)) is given up
    /// and a new one starts at the back of the queue.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pool is closed, also by dropping its last handle;
    /// every later poll returns it too.
    ///
    /// # Panics
    ///
    /// If `K`'s `Clone` panics; the pool stays consistent, and a lease
    /// already granted passes on when the `PollPool` is dropped or polled
    /// again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use workpool_std::{Closed, Pool, PollPool};
    ///
    /// let pool = Pool::<&str>::new();
    /// let mut poller = PollPool::new(&pool);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(poller.poll_acquire(&mut cx).is_pending());
    /// drop(pool); // the last handle: the pool closes
    /// assert!(matches!(poller.poll_acquire(&mut cx), Poll::Ready(Err(Closed))));
    /// ```
    pub fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<Result<Lease<K, S>, Closed>> {
        if self.is_waiting() && !matches!(self.asked, Some(Asked::Any)) {
            self.give_up();
        }
        self.poll_want(Want::<K>::Any, cx)
    }

    /// Polls for a lease from `key`.
    ///
    /// `Pending` keeps this waiter's place in the queue and wakes `cx`'s
    /// waker once a lease is granted or the pool closes; poll again with the
    /// same key then. After `Ready`, the next poll starts a new wait.
    ///
    /// Polling with another key (or with [`poll_acquire`](Self::poll_acquire))
    /// while a wait is pending gives up the pending place, as dropping a
    /// future would (a lease already granted to it passes on), and starts a
    /// new wait at the back of the queue. Keys are compared with
    /// [`Equivalent`], outside the pool's lock.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pool is closed, also by dropping its last handle;
    /// every later poll returns it too.
    ///
    /// # Panics
    ///
    /// If `K`'s `Hash`, `Eq` or `Clone`, or `Q`'s `to_owned` or
    /// `equivalent`, panics; the pool stays consistent, and a lease already
    /// granted passes on when the `PollPool` is dropped or polled again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use workpool_std::{Pool, PollPool};
    ///
    /// let pool: Pool<String> = Pool::new();
    /// let mut poller = PollPool::new(&pool);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(poller.poll_acquire_key("a", &mut cx).is_pending());
    /// assert_eq!(pool.waiting("a"), 1);
    /// // Another key: the wait for "a" is given up.
    /// assert!(poller.poll_acquire_key("b", &mut cx).is_pending());
    /// assert_eq!((pool.waiting("a"), pool.waiting("b")), (0, 1));
    /// pool.set("b".to_owned(), 1);
    /// let Poll::Ready(Ok(lease)) = poller.poll_acquire_key("b", &mut cx) else { panic!() };
    /// assert_eq!(lease.key(), "b");
    /// ```
    pub fn poll_acquire_key<Q>(
        &mut self,
        key: &Q,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Lease<K, S>, Closed>>
    where
        Q: ?Sized + Hash + Equivalent<K> + ToOwned<Owned = K>,
    {
        if self.is_waiting() {
            let same = match &self.asked {
                Some(Asked::Key(asked)) => key.equivalent(asked),
                Some(Asked::Any) | None => false,
            };
            if !same {
                self.give_up();
            }
        }
        let was_idle = !self.is_waiting();
        let polled = self.poll_want(Want::Key(key), cx);
        if was_idle && self.is_waiting() {
            // Only a wait that stays pending needs its key: the usual
            // immediate grant does not pay for the copy.
            self.asked = Some(Asked::Key(key.to_owned()));
        }
        polled
    }

    fn poll_want<Q: ?Sized + KeyQuery<K>>(
        &mut self,
        want: Want<'_, Q>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Lease<K, S>, Closed>> {
        match self.shared.poll_acquire(&mut self.wait, want, cx) {
            Poll::Pending => {
                if matches!(want, Want::Any) {
                    self.asked = Some(Asked::Any);
                }
                Poll::Pending
            }
            Poll::Ready(outcome) => {
                // Ready for the next wait.
                self.wait = Wait::Idle;
                self.asked = None;
                Poll::Ready(outcome.map(|lease| Lease::new(&self.shared, lease)))
            }
        }
    }
}

impl<K, S> Clone for PollPool<K, S> {
    /// Another waiter of the same pool, starting idle: the clone does not
    /// share this one's place in the queue.
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            wait: Wait::Idle,
            asked: None,
        }
    }
}

// The key of a pending wait is only ever read through `&`, never pinned.
impl<K, S> Unpin for PollPool<K, S> {}

impl<K, S> Drop for PollPool<K, S> {
    fn drop(&mut self) {
        self.shared.cancel(&mut self.wait);
    }
}

impl<K, S> fmt::Debug for PollPool<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollPool")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}
