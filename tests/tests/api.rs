//! The public surface: compile-time `Send`/`Sync`/`Clone`/`'static`
//! assertions for every type that should have them, and the errors'
//! `std::error::Error` impls and short lowercase messages.

use std::error::Error;
use std::fmt::{Debug, Display};
use std::hash::Hash;

use std::cell::Cell;
use std::future::Future;
use std::marker::{PhantomData, PhantomPinned};

use futures_core::future::FusedFuture;
use futures_core::stream::{FusedStream, Stream};
use workpool_std::futures::{
    Acquire, AcquireKey, AcquireKeyMany, AcquireKeyManyOwned, AcquireKeyOwned, AcquireOwned,
    Drained, Leases, Surplus,
};
use workpool_std::{
    AcquireTimeoutError, Closed, Counts, Lease, PollPool, Pool, Stats, TryAcquireError,
};

fn assert_send<T: Send>() {}
fn assert_fused_unit<T: FusedFuture<Output = ()>>() {}
fn assert_sync<T: Sync>() {}
fn assert_clone<T: Clone>() {}
fn assert_static<T: 'static>() {}
fn assert_debug<T: Debug>() {}
fn assert_unpin<T: Unpin>() {}
fn assert_error<T: Error + Display + Debug + Send + Sync + Copy + Eq + Hash + 'static>() {}
fn assert_error_carrying<T: Error + Display + Debug + Send + Sync + 'static>() {}
fn assert_lease_stream<K: Hash + Eq + Clone, S: Stream<Item = Lease<K>> + FusedStream>() {}
fn assert_lease_future<K, F: Future<Output = Result<Lease<K>, Closed>> + FusedFuture>() {}

/// The bounds every key type the tests name gets.
fn assert_surface<K: Hash + Eq + Clone + Debug + Send + Sync + 'static>() {
    assert_send::<Pool<K>>();
    assert_sync::<Pool<K>>();
    assert_clone::<Pool<K>>();
    assert_debug::<Pool<K>>();
    assert_static::<Pool<K>>();

    assert_send::<Lease<K>>();
    assert_sync::<Lease<K>>();
    assert_debug::<Lease<K>>();
    assert_static::<Lease<K>>();

    assert_send::<Acquire<'_, K>>();
    assert_send::<AcquireKey<'_, K>>();
    assert_send::<Leases<K>>();
    assert_static::<Leases<K>>();
    assert_unpin::<Acquire<'_, K>>();
    assert_unpin::<AcquireKey<'_, K>>();
    assert_unpin::<Leases<K>>();
    assert_debug::<Acquire<'_, K>>();
    assert_debug::<AcquireKey<'_, K>>();
    assert_debug::<Leases<K>>();
    assert_lease_stream::<K, Leases<K>>();

    assert_send::<Surplus<'_, K>>();
    assert_unpin::<Surplus<'_, K>>();
    assert_debug::<Surplus<'_, K>>();
    assert_fused_unit::<Surplus<'_, K>>();
    assert_send::<Drained<'_, K>>();
    assert_unpin::<Drained<'_, K>>();
    assert_debug::<Drained<'_, K>>();
    assert_fused_unit::<Drained<'_, K>>();
    assert_send::<Stats>();
    assert_sync::<Stats>();

    assert_send::<AcquireOwned<K>>();
    assert_sync::<AcquireOwned<K>>();
    assert_static::<AcquireOwned<K>>();
    assert_unpin::<AcquireOwned<K>>();
    assert_debug::<AcquireOwned<K>>();
    assert_lease_future::<K, AcquireOwned<K>>();
    assert_send::<AcquireKeyMany<'_, K>>();
    assert_unpin::<AcquireKeyMany<'_, K>>();
    assert_debug::<AcquireKeyMany<'_, K>>();
    assert_lease_future::<K, AcquireKeyMany<'_, K>>();
    assert_send::<AcquireKeyManyOwned<K>>();
    assert_sync::<AcquireKeyManyOwned<K>>();
    assert_static::<AcquireKeyManyOwned<K>>();
    assert_unpin::<AcquireKeyManyOwned<K>>();
    assert_debug::<AcquireKeyManyOwned<K>>();
    assert_lease_future::<K, AcquireKeyManyOwned<K>>();
    assert_send::<AcquireKeyOwned<K>>();
    assert_sync::<AcquireKeyOwned<K>>();
    assert_static::<AcquireKeyOwned<K>>();
    assert_unpin::<AcquireKeyOwned<K>>();
    assert_debug::<AcquireKeyOwned<K>>();
    assert_lease_future::<K, AcquireKeyOwned<K>>();
    assert_lease_future::<K, Acquire<'_, K>>();
    assert_lease_future::<K, AcquireKey<'_, K>>();

    assert_send::<PollPool<K>>();
    assert_sync::<PollPool<K>>();
    assert_clone::<PollPool<K>>();
    assert_static::<PollPool<K>>();
    assert_unpin::<PollPool<K>>();
    assert_debug::<PollPool<K>>();

    assert_send::<workpool_core::Pool<K>>();
    assert_sync::<workpool_core::Pool<K>>();
    assert_send::<workpool_core::Lease<K>>();
    assert_debug::<workpool_core::Lease<K>>();
}

#[test]
fn types_have_the_auto_traits_users_rely_on() {
    assert_surface::<&'static str>();
    assert_surface::<String>();
    assert_surface::<u64>();

    assert_send::<Counts>();
    assert_sync::<Counts>();
    assert_clone::<Counts>();
    assert_error::<Closed>();
    assert_error::<TryAcquireError>();
    assert_error::<AcquireTimeoutError>();
    // It carries the rejected lease, so it is neither `Copy` nor `Eq`.
    assert_error_carrying::<workpool_core::ReleaseError<u64>>();
    assert_error::<workpool_core::UnknownWaiter>();
}

/// A key that is `Send` but not `Sync`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SendOnly(u32, PhantomData<Cell<()>>);

/// A key that is not `Unpin`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Unmovable(u32, PhantomPinned);

#[test]
fn owned_futures_are_send_when_the_key_is() {
    // The borrowed `AcquireKey` holds `&K`, so it needs `K: Sync` to be
    // `Send`; the owned futures, the stream and the lease need only `Send`.
    assert_send::<AcquireKeyOwned<SendOnly>>();
    assert_send::<AcquireOwned<SendOnly>>();
    assert_send::<Leases<SendOnly>>();
    assert_send::<Lease<SendOnly>>();
    assert_send::<PollPool<SendOnly>>();
    assert_send::<Pool<SendOnly>>();
    assert_sync::<Pool<SendOnly>>();
    // The key is never pinned: the owned future is `Unpin` whatever `K` is.
    assert_unpin::<AcquireKeyOwned<Unmovable>>();
    assert_static::<AcquireKeyOwned<Unmovable>>();
}

#[test]
fn an_owned_future_takes_a_temporary_key_and_moves_into_a_thread() {
    let pool: Pool<String> = Pool::new();
    let name = 3;
    pool.set(format!("proxy-{name}"), 1);
    let held = pool.try_acquire().unwrap();
    let waiting = pool.acquire_key_owned(format!("proxy-{name}"));
    let waiter = std::thread::spawn(move || futures_lite::future::block_on(waiting));
    while pool.waiters() == 0 {
        std::thread::yield_now();
    }
    drop(held);
    let lease = waiter.join().unwrap().unwrap();
    assert_eq!((lease.id(), lease.key().as_str()), (2, "proxy-3"));
}

#[test]
fn std_reexports_the_core_types_it_hands_out() {
    // Same types, so a std user never needs to import the core.
    let counts: workpool_core::Counts = Counts::default();
    assert_eq!(
        counts,
        Counts {
            target: 0,
            active: 0
        }
    );
    let closed: workpool_core::Closed = Closed;
    let try_err: workpool_core::TryAcquireError = TryAcquireError::NoCapacity;
    assert_eq!(closed, Closed);
    assert_eq!(try_err, TryAcquireError::NoCapacity);
}

#[test]
fn a_lease_is_static_and_moves_into_a_thread() {
    let pool: Pool<String> = Pool::new();
    pool.set("k".to_owned(), 1);
    let lease = pool.try_acquire().unwrap();
    let key = std::thread::spawn(move || lease.key().clone())
        .join()
        .unwrap();
    assert_eq!(key, "k");
    assert_eq!(pool.counts(&key).active, 0);
}

fn check_message(err: &dyn Error) {
    let msg = err.to_string();
    let first = msg.chars().next().expect("a message");
    assert!(first.is_lowercase(), "lowercase: {msg:?}");
    assert!(!msg.ends_with('.'), "no trailing period: {msg:?}");
    assert!(msg.len() < 60, "short: {msg:?}");
    assert!(err.source().is_none());
}

#[test]
fn errors_have_short_lowercase_messages() {
    let mut a = workpool_core::Pool::new();
    let mut b = workpool_core::Pool::new();
    a.set(1u8, 2);
    let foreign = b.release(a.try_acquire().unwrap()).unwrap_err();
    // (A stale lease cannot be made through the public API; the core's
    // unit tests check that message.)
    let errors: [&dyn Error; 8] = [
        &Closed,
        &TryAcquireError::Closed,
        &TryAcquireError::NoCapacity,
        &AcquireTimeoutError::Closed,
        &AcquireTimeoutError::Timeout,
        &foreign,
        &workpool_core::UnknownWaiter,
        &workpool_core::Closed,
    ];
    for err in errors {
        check_message(err);
    }
    assert_ne!(
        TryAcquireError::NoCapacity.to_string(),
        TryAcquireError::Closed.to_string()
    );
    assert_ne!(
        AcquireTimeoutError::Timeout.to_string(),
        AcquireTimeoutError::Closed.to_string()
    );
}

#[test]
fn closed_converts_into_the_wider_errors() {
    assert_eq!(TryAcquireError::from(Closed), TryAcquireError::Closed);
    assert_eq!(
        AcquireTimeoutError::from(Closed),
        AcquireTimeoutError::Closed
    );

    // `?` works into boxed errors, which need `Send + Sync + 'static`.
    fn fails() -> Result<(), Box<dyn Error + Send + Sync>> {
        let pool: Pool<&'static str> = Pool::new();
        pool.close();
        let _lease = pool.try_acquire()?;
        Ok(())
    }
    assert_eq!(fails().unwrap_err().to_string(), Closed.to_string());
}

#[test]
fn debug_output_names_the_lease() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set("spam", 1);
    let lease = pool.try_acquire().unwrap();
    let text = format!("{lease:?}");
    assert!(text.contains("spam") && text.contains('1'), "{text}");
    assert!(!format!("{pool:?}").is_empty());
}
