//! Temporary driver (not committed): uncontended try + release loops.
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000_000);
    let mode = args.get(2).cloned().unwrap_or_else(|| "key".into());
    let keys: u64 = std::env::var("KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(1);
    let pool = workpool_std::Pool::new();
    for k in 0..keys {
        pool.set(k, 1);
    }
    let mut key = 0u64;
    let step = 7919 % keys.max(1);
    let sem = tokio::sync::Semaphore::new(1);
    if mode == "slices" {
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..n {
                drop(black_box(pool.try_acquire().unwrap()));
            }
            let a = t.elapsed().as_nanos() as f64 / 1e6;
            let t = Instant::now();
            for _ in 0..1_000_000 {
                drop(black_box(pool.try_acquire_key(&0).unwrap()));
            }
            let k = t.elapsed().as_nanos() as f64 / 1e6;
            println!("any {a:.1} key {k:.1}");
        }
        return;
    }
    for round in 0..3 {
        if mode == "mixed" {
            for _ in 0..1000 {
                drop(black_box(pool.try_acquire().unwrap()));
            }
        }
        let t = Instant::now();
        match mode.as_str() {
            "any" => {
                for _ in 0..n {
                    drop(black_box(pool.try_acquire().unwrap()));
                }
            }
            "tokio" => {
                for _ in 0..n {
                    drop(black_box(sem.try_acquire().unwrap()));
                }
            }
            _ => {
                for _ in 0..n {
                    key += step;
                    if key >= keys {
                        key -= keys;
                    }
                    drop(black_box(pool.try_acquire_key(&key).unwrap()));
                }
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            drop(black_box(sem.try_acquire().unwrap()));
        }
        let tk = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "round {round} {mode}: {ns:.1} ns, tokio {tk:.1} ns, ratio {:.2}",
            ns / tk
        );
    }
}
