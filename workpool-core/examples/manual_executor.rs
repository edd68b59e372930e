//! Drives the core by hand: no threads, no locks, no async runtime.
//!
//! A toy executor runs tasks that are plain structs with a state machine. A
//! fake clock ticks; on each tick every runnable task is polled once. A task
//! that gets a lease "works" for a few ticks, then releases it. A task that
//! cannot get one registers a waiter and parks; the pool's `poll_wake` says
//! whom to wake after each input, and the woken task claims its lease on its
//! next turn. One impatient task gives up (cancels) after waiting too long.
//! Targets change mid-run, and the pool is closed at the end.
//!
//! Every call that can grant is checked: a key whose `active` count went up
//! must still be within its target. Run with
//! `cargo run -p workpool-core --example manual_executor`.

use workpool_core::{Claim, Lease, Pool, WaiterId};

const KEYS: [&str; 2] = ["spam", "eggs"];

/// What a task is doing.
enum State {
    /// Wants a lease now.
    Ready,
    /// Registered a waiter and sleeps until woken.
    Parked {
        waiter: WaiterId,
        since: u64,
    },
    /// Woken: claims its waiter's outcome on its next turn.
    Woken(WaiterId),
    /// Holds a lease until the clock reaches `until`.
    Working {
        lease: Lease<&'static str>,
        until: u64,
    },
    Done,
}

struct Task {
    name: &'static str,
    /// The key it needs, or `None` for any key.
    wants: Option<&'static str>,
    /// Ticks of work per lease.
    work: u64,
    /// Leases it still wants.
    jobs: u32,
    /// Gives up after waiting this many ticks.
    patience: Option<u64>,
    state: State,
}

impl Task {
    fn new(name: &'static str, wants: Option<&'static str>, work: u64, jobs: u32) -> Self {
        Self {
            name,
            wants,
            work,
            jobs,
            patience: None,
            state: State::Ready,
        }
    }
}

struct Executor {
    pool: Pool<&'static str>,
    tasks: Vec<Task>,
    /// The task behind each waiter slot, indexed by `WaiterId::index`.
    parked: Vec<Option<usize>>,
    now: u64,
    /// Grants that took a key past its target (must stay 0).
    violations: u32,
    /// The most tasks ever working on each key at once, and the most the
    /// targets ever allowed.
    peak_working: [u64; 2],
    peak_target: [u64; 2],
}

impl Executor {
    fn new(tasks: Vec<Task>) -> Self {
        Self {
            pool: Pool::new(),
            tasks,
            parked: Vec::new(),
            now: 0,
            violations: 0,
            peak_working: [0; 2],
            peak_target: [0; 2],
        }
    }

    /// Runs one pool call and checks the contract on its result: a key whose
    /// `active` count went up is within its target.
    fn checked<R>(&mut self, call: impl FnOnce(&mut Pool<&'static str>) -> R) -> R {
        let before = KEYS.map(|k| self.pool.counts(&k).active);
        let result = call(&mut self.pool);
        for (i, key) in KEYS.iter().enumerate() {
            let c = self.pool.counts(key);
            if c.active > before[i] && c.active > c.target {
                println!("t={:02} VIOLATION: {key} at {c:?}", self.now);
                self.violations += 1;
            }
            self.peak_target[i] = self.peak_target[i].max(c.target);
        }
        result
    }

    /// Wakes every task whose waiter the pool has decided.
    ///
    /// (`parked` is indexed by [`slot`].)
    fn wake(&mut self) {
        while let Some(waiter) = self.pool.poll_wake() {
            let Some(t) = self.parked.get_mut(slot(waiter)).and_then(Option::take) else {
                continue;
            };
            println!("t={:02}   wake {}", self.now, self.tasks[t].name);
            self.tasks[t].state = State::Woken(waiter);
        }
    }

    fn set(&mut self, key: &'static str, target: u64) {
        println!("t={:02} set {key} = {target}", self.now);
        self.checked(|p| p.set(key, target));
        self.wake();
    }

    fn start_work(&mut self, t: usize, lease: Lease<&'static str>) {
        let task = &mut self.tasks[t];
        println!(
            "t={:02}   {} works on {} (lease {}), {} job(s) left",
            self.now,
            task.name,
            lease.key(),
            lease.id(),
            task.jobs - 1
        );
        task.state = State::Working {
            lease,
            until: self.now + task.work,
        };
    }

    /// Polls task `t` once.
    fn poll(&mut self, t: usize) {
        let now = self.now;
        match std::mem::replace(&mut self.tasks[t].state, State::Done) {
            State::Ready => {
                let wants = self.tasks[t].wants;
                let waiter = self.checked(|p| match wants {
                    Some(key) => p.enqueue_key(&key),
                    None => p.enqueue(),
                });
                let Ok(waiter) = waiter else {
                    println!("t={now:02}   {} finds the pool closed", self.tasks[t].name);
                    return;
                };
                match self.pool.claim(waiter) {
                    Ok(Claim::Granted(lease)) => self.start_work(t, lease),
                    Ok(Claim::Waiting) => {
                        println!("t={now:02}   {} parks", self.tasks[t].name);
                        if self.parked.len() <= slot(waiter) {
                            self.parked.resize(slot(waiter) + 1, None);
                        }
                        self.parked[slot(waiter)] = Some(t);
                        self.tasks[t].state = State::Parked { waiter, since: now };
                    }
                    Ok(Claim::Closed) | Err(_) => unreachable!("a new waiter is open"),
                }
            }
            State::Parked { waiter, since } => {
                // Parked tasks are not woken, but the executor polls them for
                // their timeout.
                let task = &mut self.tasks[t];
                if task.patience.is_some_and(|p| now >= since + p) {
                    println!("t={now:02}   {} gives up waiting", task.name);
                    self.parked[slot(waiter)] = None;
                    self.checked(|p| p.cancel(waiter)).unwrap();
                    self.wake();
                } else {
                    task.state = State::Parked { waiter, since };
                }
            }
            State::Woken(waiter) => match self.pool.claim(waiter).unwrap() {
                Claim::Granted(lease) => self.start_work(t, lease),
                Claim::Closed => println!("t={now:02}   {} is told: closed", self.tasks[t].name),
                Claim::Waiting => unreachable!("woken waiters are decided"),
            },
            State::Working { lease, until } if now >= until => {
                println!(
                    "t={now:02}   {} releases lease {}",
                    self.tasks[t].name,
                    lease.id()
                );
                self.checked(|p| p.release(lease)).unwrap();
                self.wake();
                let task = &mut self.tasks[t];
                task.jobs -= 1;
                task.state = if task.jobs == 0 {
                    State::Done
                } else {
                    State::Ready
                };
            }
            working @ State::Working { .. } => self.tasks[t].state = working,
            State::Done => {}
        }
    }

    /// Counts, from the tasks' own state, how many work on each key.
    fn observe(&mut self) {
        for (i, key) in KEYS.iter().enumerate() {
            let working = self
                .tasks
                .iter()
                .filter(|t| matches!(&t.state, State::Working { lease, .. } if lease.key() == key))
                .count() as u64;
            self.peak_working[i] = self.peak_working[i].max(working);
            assert!(working <= self.pool.counts(key).active);
        }
    }

    fn all_done(&self) -> bool {
        self.tasks.iter().all(|t| matches!(t.state, State::Done))
    }

    /// Nothing will happen until a target changes: every task is done or
    /// parked without a timeout.
    fn quiet(&self) -> bool {
        self.tasks.iter().all(|t| match t.state {
            State::Done => true,
            State::Parked { .. } => t.patience.is_none(),
            _ => false,
        })
    }
}

fn main() {
    let mut tasks = vec![
        Task::new("any-1", None, 3, 3),
        Task::new("any-2", None, 2, 4),
        Task::new("any-3", None, 4, 2),
        Task::new("spam-1", Some("spam"), 2, 3),
        Task::new("spam-2", Some("spam"), 3, 2),
        Task::new("eggs-1", Some("eggs"), 2, 3),
        Task::new("ham-1", Some("ham"), 1, 1),
    ];
    let mut impatient = Task::new("impatient", None, 1, 1);
    impatient.patience = Some(2);
    tasks.push(impatient);

    let mut ex = Executor::new(tasks);
    ex.set("spam", 2);
    ex.set("eggs", 1);
    // Re-targeting mid-run: raising serves waiters at once; lowering to 0
    // revokes nothing (spam's live leases run to the end) but stops grants.
    let schedule = [(6, "eggs", 3), (10, "spam", 0), (16, "spam", 1)];
    while ex.now <= 16 || !ex.quiet() {
        for &(at, key, target) in &schedule {
            if at == ex.now {
                ex.set(key, target);
            }
        }
        for t in 0..ex.tasks.len() {
            ex.poll(t);
        }
        ex.observe();
        ex.now += 1;
    }
    // "ham" never gets a target: its task is still parked. Closing the pool
    // tells it so.
    println!("t={:02} close", ex.now);
    ex.checked(Pool::close);
    ex.wake();
    for t in 0..ex.tasks.len() {
        ex.poll(t);
    }

    println!();
    for (i, key) in KEYS.iter().enumerate() {
        println!(
            "{key}: at most {} working at once, highest target {}",
            ex.peak_working[i], ex.peak_target[i]
        );
        assert!(
            ex.peak_working[i] <= ex.peak_target[i],
            "{key} ran too many"
        );
    }
    assert_eq!(ex.violations, 0, "a key exceeded its target");
    assert!(
        ex.all_done(),
        "every task finished or was told the pool closed"
    );
    assert!(
        ex.pool.iter().all(|(_, c)| c.active == 0),
        "a lease is still out"
    );
    assert_eq!(ex.pool.waiters(), 0);
    println!("no key exceeded its target; every lease came back");
}

/// Where a waiter's task is parked: any-key and key waiters are numbered
/// separately (they live in different parts of the pool), so interleave the
/// two dense numberings in one `Vec`.
fn slot(waiter: WaiterId) -> usize {
    2 * waiter.index() + usize::from(waiter.shard().is_none())
}
