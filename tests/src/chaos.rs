//! Tools for the stress tests: a seeded generator, a future wrapper that a
//! canceller drops at random points, and deliberate panics that the panic
//! hook keeps quiet.

use std::fmt;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::task::{Context, Poll, Waker};

/// A small deterministic generator (xorshift64), so no dependency is needed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, including 0).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    /// True about once in `n` calls.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// The remote control of one task's [`Cancellable`] futures: a canceller
/// [`poke`](Self::poke)s it to wake the task (a spurious wake, which costs
/// the future one of its polls) or to make it drop its inner future.
#[derive(Default)]
pub struct Lever {
    waker: Mutex<Option<Waker>>,
    kill: AtomicBool,
}

impl Lever {
    /// Wakes the future waiting on this lever, if any; with `kill`, its next
    /// poll drops the inner future instead of polling it.
    pub fn poke(&self, kill: bool) {
        if kill {
            self.kill.store(true, Ordering::SeqCst);
        }
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }
}

impl fmt::Debug for Lever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lever")
            .field("kill", &self.kill.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

/// Why a [`Cancellable`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// Its lever was pulled.
    Killed,
    /// It was polled as often as it was allowed to be.
    OutOfPolls,
}

/// Polls an inner future at most `polls` times, then drops it at the next
/// poll; a pulled [`Lever`] drops it at the next poll too. Either way the
/// drop can land anywhere: while the inner future waits, or after its
/// result was decided but before it was collected.
pub struct Cancellable<'a, F> {
    inner: Option<F>,
    polls_left: u32,
    lever: &'a Lever,
}

impl<'a, F: Future + Unpin> Cancellable<'a, F> {
    /// Wraps `inner`; `polls` is how many polls it gets (at least one).
    pub fn new(inner: F, polls: u32, lever: &'a Lever) -> Self {
        lever.kill.store(false, Ordering::SeqCst);
        Self {
            inner: Some(inner),
            polls_left: polls.max(1),
            lever,
        }
    }
}

impl<F: Future + Unpin> Future for Cancellable<'_, F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(inner) = &mut this.inner else {
            panic!("Cancellable polled after completion");
        };
        let why = if this.lever.kill.swap(false, Ordering::SeqCst) {
            Some(Cancelled::Killed)
        } else if this.polls_left == 0 {
            Some(Cancelled::OutOfPolls)
        } else {
            None
        };
        if let Some(why) = why {
            this.inner = None;
            return Poll::Ready(Err(why));
        }
        this.polls_left -= 1;
        this.lever.register(cx.waker());
        match Pin::new(inner).poll(cx) {
            Poll::Ready(output) => {
                this.inner = None;
                Poll::Ready(Ok(output))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for Cancellable<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellable")
            .field("done", &self.inner.is_none())
            .field("polls_left", &self.polls_left)
            .finish_non_exhaustive()
    }
}

/// The payload of [`deliberate_panic`].
#[derive(Debug)]
pub struct Deliberate;

/// Panics with [`Deliberate`] as the payload. After [`quiet_deliberate_panics`]
/// the panic hook prints nothing for it (and captures no backtrace).
pub fn deliberate_panic() -> ! {
    panic::panic_any(Deliberate)
}

/// True if a caught panic's payload is [`Deliberate`].
pub fn is_deliberate(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<Deliberate>()
}

/// Installs, once per process, a panic hook that stays silent for
/// [`Deliberate`] panics and hands every other panic to the previous hook.
pub fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Deliberate>() {
                previous(info);
            }
        }));
    });
}

/// How a stress worker's acquisition came back empty: the three errors of
/// the pool's `try_*`, `*_timeout` and async calls in one type, so that a
/// worker can match on one outcome whatever call it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The pool (or the key) is closed.
    Closed,
    /// A `try_*` call found no room.
    NoCapacity,
    /// A timed call ran out of time.
    Timeout,
}

impl From<workpool_std::Closed> for Miss {
    fn from(_: workpool_std::Closed) -> Self {
        Self::Closed
    }
}

impl From<workpool_std::AcquireTimeoutError> for Miss {
    fn from(err: workpool_std::AcquireTimeoutError) -> Self {
        match err {
            workpool_std::AcquireTimeoutError::Closed => Self::Closed,
            workpool_std::AcquireTimeoutError::Timeout => Self::Timeout,
        }
    }
}

impl From<workpool_std::TryAcquireError> for Miss {
    fn from(err: workpool_std::TryAcquireError) -> Self {
        match err {
            workpool_std::TryAcquireError::Closed => Self::Closed,
            workpool_std::TryAcquireError::NoCapacity => Self::NoCapacity,
        }
    }
}

/// What a stress run saw go wrong, kept for the end of the run: the first
/// [`Violations::KEPT`] of them (one broken invariant tends to repeat), so
/// that a failing run reports the first cases instead of flooding.
#[derive(Debug, Default)]
pub struct Violations(Mutex<Vec<String>>);

impl Violations {
    /// How many violations are kept.
    pub const KEPT: usize = 20;

    /// Records one, unless [`KEPT`](Self::KEPT) are kept already.
    pub fn push(&self, what: String) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() < Self::KEPT {
            all.push(what);
        }
    }

    /// Panics with every kept violation, and `context`, if there is any.
    pub fn assert_none(&self, context: &str) {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(all.is_empty(), "{context}: {all:#?}");
    }
}

/// How long a stress run lasts: `WORKPOOL_STRESS_SECS` (a positive number
/// of seconds, fractions allowed), `default` otherwise.
pub fn stress_duration(default: std::time::Duration) -> std::time::Duration {
    std::env::var("WORKPOOL_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(default, std::time::Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::Violations;

    #[test]
    fn violations_keep_the_first_ones() {
        let seen = Violations::default();
        seen.assert_none("nothing yet");
        for i in 0..Violations::KEPT + 5 {
            seen.push(format!("v{i}"));
        }
        let kept = seen.0.lock().unwrap().clone();
        assert_eq!(kept.len(), Violations::KEPT);
        assert_eq!(kept[0], "v0");
        let report = std::panic::catch_unwind(|| seen.assert_none("run 7"))
            .expect_err("violations were kept");
        let text = report
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(text.starts_with("run 7: ") && text.contains("\"v19\""));
    }
}
