//! `with_default_target`: keys nobody set get the layer's default target,
//! and are forgotten when idle.

use super::*;

fn defaulted(pool: &Pool<&'static str>, target: u64) -> Limited {
    layer(pool)
        .with_default_target(target)
        .layer(Mock::default())
}

#[test]
fn a_key_nobody_set_gets_the_default_and_is_forgotten_when_idle() {
    let pool = Pool::new();
    let mut service = defaulted(&pool, 2);
    let (r1, reply1) = hold("new");
    let (r2, reply2) = hold("new");
    let mut one = call(&mut service, r1);
    let mut two = call(&mut service, r2);
    let mut three = call(&mut service, now("new"));
    one.pending();
    two.pending();
    three.pending();
    assert_eq!(pool.counts(&"new"), counts(2, 2));
    assert_eq!(pool.waiting(&"new"), 1);

    reply1.send(1).unwrap();
    assert_eq!(one.ready().unwrap(), 1);
    assert_eq!(three.ready().unwrap(), 7);
    assert_eq!(pool.counts(&"new"), counts(2, 1), "still live");
    reply2.send(2).unwrap();
    assert_eq!(two.ready().unwrap(), 2);
    assert!(pool.is_empty(), "idle: forgotten");
}

#[test]
fn a_target_set_by_hand_is_kept() {
    let pool = Pool::new();
    pool.set("a", 5);
    let mut service = defaulted(&pool, 2);
    let (req, reply) = hold("a");
    let mut request = call(&mut service, req);
    request.pending();
    assert_eq!(pool.counts(&"a"), counts(5, 1));
    reply.send(0).unwrap();
    request.ready().unwrap();
    assert_eq!(pool.counts(&"a"), counts(5, 0), "the pool keeps it");
}

#[test]
fn a_target_changed_while_in_flight_is_kept() {
    let pool = Pool::new();
    let mut service = defaulted(&pool, 2);
    let (req, reply) = hold("a");
    let mut request = call(&mut service, req);
    request.pending();
    pool.set("a", 3);
    reply.send(0).unwrap();
    request.ready().unwrap();
    assert_eq!(pool.counts(&"a"), counts(3, 0));
}

#[test]
fn set_to_zero_while_in_flight_holds_the_key_back() {
    let pool = Pool::new();
    let mut service = defaulted(&pool, 2);
    let (req, reply) = hold("a");
    let mut request = call(&mut service, req);
    request.pending();
    pool.set("a", 0); // the key is tracked: the default does not apply
    let mut waiting = call(&mut service, now("a"));
    waiting.pending();
    reply.send(0).unwrap();
    request.ready().unwrap();
    waiting.pending();
    assert_eq!(pool.counts(&"a"), counts(0, 0));
    assert_eq!(pool.waiting(&"a"), 1);
    pool.set("a", 1);
    assert_eq!(waiting.ready().unwrap(), 7);
}

#[test]
fn after_close_key_the_next_request_gets_the_default_again() {
    let pool = Pool::new();
    let mut service = defaulted(&pool, 1);
    let (req, reply) = hold("a");
    let mut held = call(&mut service, req);
    held.pending();
    let mut waiting = call(&mut service, now("a"));
    waiting.pending();

    pool.close_key(&"a");
    assert!(error_of(waiting.ready()).is::<Closed>());
    // While a request of "a" is in flight, the key is tracked at 0.
    let mut held_back = call(&mut service, now("a"));
    held_back.pending();
    reply.send(0).unwrap();
    held.ready().unwrap();
    held_back.pending();
    drop(held_back);
    assert!(pool.is_empty());
    // Idle and forgotten: a new request sees a new key.
    assert_eq!(call(&mut service, now("a")).ready().unwrap(), 7);
    assert!(pool.is_empty());
}

#[test]
fn memory_follows_live_keys() {
    let pool = Pool::new();
    let mut service = defaulted(&pool, 1);
    let keys: Vec<&'static str> = (0..1000)
        .map(|i| &*Box::leak(format!("tenant-{i}").into_boxed_str()))
        .collect();
    let mut live = Vec::new();
    for key in &keys {
        let (req, reply) = hold(key);
        let mut request = call(&mut service, req);
        request.pending();
        live.push((request, reply));
    }
    assert_eq!(pool.len(), 1000);
    assert_eq!(pool.active(), 1000);
    for (mut request, reply) in live {
        reply.send(1).unwrap();
        request.ready().unwrap();
    }
    assert!(pool.is_empty());
    for key in &keys {
        drop(call(&mut service, now(key))); // defaulted, then dropped unpolled
    }
    assert!(pool.is_empty());
}

#[test]
fn a_closed_pool_gets_no_default() {
    let pool = Pool::new();
    let mut service = defaulted(&pool, 1);
    pool.close();
    assert!(error_of(call(&mut service, now("a")).ready()).is::<Closed>());
    assert!(pool.is_empty());
}

#[test]
fn shed_with_a_default_target() {
    let pool = Pool::new();
    let mut service = layer(&pool)
        .with_default_target(1)
        .shed()
        .layer(Mock::default());
    let (req, reply) = hold("a");
    let mut held = call(&mut service, req);
    held.pending();
    assert!(error_of(call(&mut service, now("a")).ready()).is::<Overloaded>());
    assert_eq!(call(&mut service, now("b")).ready().unwrap(), 7);
    reply.send(0).unwrap();
    held.ready().unwrap();
    assert!(pool.is_empty());
}

#[test]
fn zero_means_no_default() {
    let pool: Pool<&'static str> = Pool::new();
    let layer = layer(&pool).with_default_target(0);
    assert_eq!(layer.default_target(), None);
    let mut service = layer.layer(Mock::default());
    call(&mut service, now("a")).pending();
}

#[test]
fn many_threads_many_keys_leave_nothing_behind() {
    let pool: Pool<&'static str> = Pool::new();
    pool.set_limit(Some(6));
    let service = defaulted(&pool, 2);
    let keys = ["k0", "k1", "k2", "k3"];
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let mut service = service.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let key = keys[(t + i) % keys.len()];
                    let mut cx = Context::from_waker(Waker::noop());
                    assert!(service.poll_ready(&mut cx).is_ready());
                    assert_eq!(block_on(service.call(now(key))).unwrap(), 7);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(pool.is_empty());
    assert_eq!(pool.active(), 0);
}

/// Requests of one defaulted key arrive and depart on several threads
/// at once, so its last departure's forget races new arrivals (the
/// layer decides under its stripe lock and calls `Pool::set` after
/// unlocking). Some requests complete, some are dropped before they
/// asked the pool, some while they wait. The key's target is only ever
/// the default or 0, it never has more leases than the default, no
/// request is left waiting at 0 (the hang guard), and the key is
/// forgotten at the end.
#[test]
fn one_key_churning_keeps_the_default_and_is_forgotten() {
    const DEFAULT: u64 = 2;
    const THREADS: usize = 4;
    const ROUNDS: usize = 20_000;
    workpool_tests::with_hang_guard("one key churning", workpool_tests::HANG_GUARD, || {
        let pool: Pool<&'static str> = Pool::new();
        let seen = pool.clone();
        let inner = tower::service_fn(move |key: &'static str| {
            let counts = seen.counts(&key);
            // While this request holds its lease: a forget may have
            // landed just before its settler set the default again.
            assert!(
                (1..=DEFAULT).contains(&counts.active)
                    && (counts.target == DEFAULT || counts.target == 0),
                "{counts:?}"
            );
            std::future::ready(Ok::<_, std::convert::Infallible>(key.len()))
        });
        let service = KeyedLimitLayer::new(pool.clone(), |key: &&'static str| *key)
            .with_default_target(DEFAULT)
            .layer(inner);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let pool = pool.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut samples = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    let counts = pool.counts(&"hot");
                    assert!(counts.target == DEFAULT || counts.target == 0, "{counts:?}");
                    assert!(counts.active <= DEFAULT, "{counts:?}");
                    samples += 1;
                    std::thread::yield_now();
                }
                samples
            })
        };
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut service = service.clone();
                std::thread::spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    for i in 0..ROUNDS {
                        assert!(service.poll_ready(&mut cx).is_ready());
                        let mut request = Box::pin(service.call("hot"));
                        match (t + i) % 5 {
                            // Dropped before it asked the pool.
                            0 => drop(request),
                            // Dropped while it waits, or after it
                            // completed at once.
                            1 => drop(request.as_mut().poll(&mut cx)),
                            _ => assert_eq!(block_on(request).unwrap(), 3),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(sampler.join().unwrap() > 0);
        assert!(pool.is_empty(), "forgotten: {:?}", pool.snapshot());
        assert_eq!(pool.waiters(), 0);
        // And the next request sees a new key again.
        let mut service = service;
        let mut cx = Context::from_waker(Waker::noop());
        assert!(service.poll_ready(&mut cx).is_ready());
        assert_eq!(block_on(service.call("hot")).unwrap(), 3);
        assert!(pool.is_empty());
    });
}
