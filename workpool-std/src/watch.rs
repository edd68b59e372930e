//! Watches: where `surplus()` and `drained()` futures wait, one table per
//! shard, under that shard's lock.
//!
//! # Why not `event-listener`
//!
//! `event-listener` replaces, drops and wakes a listener's waker under its
//! own lock, and a waker is user code (it may own a lease, whose drop
//! re-enters the pool). So the watchers' wakers live here, in slots of
//! ours: a re-poll swaps the waker under the shard's lock and the old one is
//! dropped after unlocking; a watcher whose condition comes true has its
//! waker taken under the lock and woken after unlocking (through
//! [`After`](crate::shared::After)).
//!
//! # No stale state
//!
//! Each watcher is its own entry, registered at a moment when its condition
//! did not hold. Every operation that can make a key surplus or drained
//! re-checks, under the key's shard lock, the watched keys of that shard
//! ([`Watches::check`]); a watcher whose condition holds then is *fired*:
//! it stays fired until its future looks, even if the condition stops
//! holding (another lease taken, the limit lifted) before that. So an edge
//! is always a comparison against what that watcher saw when it registered,
//! never against a flag shared with older watchers.
//!
//! # Cost
//!
//! Registering, re-polling and leaving are O(1) (entries are a slab with a
//! free list; an entry knows its place in its key's list). A check visits
//! the shard's watched keys (those with at least one watcher still
//! waiting), and a firing is paid once per watcher. A shard nobody watches
//! holds two empty vectors and is never checked.

use std::mem;
use std::task::Waker;

use workpool_core::Counts;

/// What a watcher waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Its lease's key has more live leases than its target, or the pool
    /// more than its limit.
    Surplus,
    /// Its key has no live lease.
    Drained,
}

/// Where one watcher stands.
#[derive(Debug)]
enum State {
    /// A free entry; the next free one (or `NONE`).
    Free(usize),
    /// Waiting on the key in group slot `slot`, at `pos` in that key's list
    /// for `condition`.
    Waiting {
        slot: usize,
        condition: Condition,
        pos: usize,
    },
    /// Its condition held at a check since it registered.
    Fired,
}

#[derive(Debug)]
struct Entry {
    state: State,
    waker: Option<Waker>,
}

/// One watched key: the entries still waiting on it.
#[derive(Debug)]
struct KeyWatch {
    slot: usize,
    surplus: Vec<usize>,
    drained: Vec<usize>,
}

impl KeyWatch {
    fn list(&mut self, condition: Condition) -> &mut Vec<usize> {
        match condition {
            Condition::Surplus => &mut self.surplus,
            Condition::Drained => &mut self.drained,
        }
    }

    fn is_empty(&self) -> bool {
        self.surplus.is_empty() && self.drained.is_empty()
    }
}

const NONE: usize = usize::MAX;

/// The watchers of one shard.
#[derive(Debug)]
pub(crate) struct Watches {
    /// Keys with at least one watcher still waiting (few: a linear search).
    keys: Vec<KeyWatch>,
    entries: Vec<Entry>,
    free: usize,
    live: usize,
}

impl Default for Watches {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            entries: Vec::new(),
            free: NONE,
            live: 0,
        }
    }
}

/// What a check found of one key.
pub(crate) struct Seen {
    pub(crate) surplus: bool,
    pub(crate) drained: bool,
}

impl Seen {
    /// What `counts` (`None`: the key is not tracked) says, with the pool
    /// over its limit or not.
    pub(crate) fn of(counts: Option<Counts>, over_limit: bool) -> Self {
        Self {
            surplus: counts.is_some_and(|c| c.active > c.target || (over_limit && c.active > 0)),
            drained: counts.is_none_or(|c| c.active == 0),
        }
    }
}

impl Watches {
    /// True while some watcher waits: operations on the shard must then
    /// [`check`](Self::check).
    #[inline]
    pub(crate) fn is_waiting(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Registers a watcher of group slot `slot` for `condition`, which does
    /// not hold now, with its waker; returns its entry.
    pub(crate) fn register(&mut self, slot: usize, condition: Condition, waker: &Waker) -> usize {
        let at = match self.keys.iter().position(|k| k.slot == slot) {
            Some(at) => at,
            None => {
                self.keys.push(KeyWatch {
                    slot,
                    surplus: Vec::new(),
                    drained: Vec::new(),
                });
                self.keys.len() - 1
            }
        };
        let entry = match self.free {
            NONE => {
                self.entries.push(Entry {
                    state: State::Free(NONE),
                    waker: None,
                });
                self.entries.len() - 1
            }
            free => {
                let State::Free(next) = self.entries[free].state else {
                    unreachable!("the free list names a used entry");
                };
                self.free = next;
                free
            }
        };
        let list = self.keys[at].list(condition);
        list.push(entry);
        self.entries[entry] = Entry {
            state: State::Waiting {
                slot,
                condition,
                pos: list.len() - 1,
            },
            waker: Some(waker.clone()),
        };
        self.live += 1;
        entry
    }

    /// The group slot a waiting entry watches; `None` once it fired.
    pub(crate) fn slot(&self, entry: usize) -> Option<usize> {
        match self.entries[entry].state {
            State::Waiting { slot, .. } => Some(slot),
            State::Fired => None,
            State::Free(_) => unreachable!("a watcher looked at a free entry"),
        }
    }

    /// Stores `waker` for a waiting entry unless the stored one wakes the
    /// same task; returns the replaced waker, to be dropped after
    /// unlocking.
    pub(crate) fn update(&mut self, entry: usize, waker: &Waker) -> Option<Waker> {
        let stored = &mut self.entries[entry].waker;
        match stored {
            Some(old) if old.will_wake(waker) => None,
            _ => stored.replace(waker.clone()),
        }
    }

    /// Removes an entry (its watcher completed or was dropped); returns its
    /// waker, to be dropped after unlocking.
    pub(crate) fn remove(&mut self, entry: usize) -> Option<Waker> {
        let removed = mem::replace(
            &mut self.entries[entry],
            Entry {
                state: State::Free(self.free),
                waker: None,
            },
        );
        self.free = entry;
        self.live -= 1;
        if let State::Waiting {
            slot,
            condition,
            pos,
        } = removed.state
        {
            let at = self
                .keys
                .iter()
                .position(|k| k.slot == slot)
                .expect("a waiting watcher's key is watched");
            let list = self.keys[at].list(condition);
            list.swap_remove(pos);
            if let Some(&moved) = list.get(pos) {
                if let State::Waiting { pos: p, .. } = &mut self.entries[moved].state {
                    *p = pos;
                }
            }
            if self.keys[at].is_empty() {
                self.keys.swap_remove(at);
            }
        }
        if self.live == 0 {
            // Nobody watches: give the memory back.
            *self = Self::default();
        }
        removed.waker
    }

    /// Re-checks every watched key: `seen(slot)` says what holds of it now.
    /// Fires the watchers whose condition holds, pushing their wakers into
    /// `wakes` (to be woken after unlocking).
    pub(crate) fn check(&mut self, seen: impl Fn(usize) -> Seen, wakes: &mut Vec<Waker>) {
        let mut at = 0;
        while at < self.keys.len() {
            let now = seen(self.keys[at].slot);
            let key = &mut self.keys[at];
            if now.surplus {
                Self::fire(&mut self.entries, &mut key.surplus, wakes);
            }
            if now.drained {
                Self::fire(&mut self.entries, &mut key.drained, wakes);
            }
            if key.is_empty() {
                self.keys.swap_remove(at);
            } else {
                at += 1;
            }
        }
    }

    fn fire(entries: &mut [Entry], list: &mut Vec<usize>, wakes: &mut Vec<Waker>) {
        for entry in list.drain(..) {
            let entry = &mut entries[entry];
            entry.state = State::Fired;
            wakes.extend(entry.waker.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    fn seen(surplus: bool, drained: bool) -> impl Fn(usize) -> Seen {
        move |_| Seen { surplus, drained }
    }

    #[test]
    fn a_fired_watcher_stays_fired_and_others_keep_waiting() {
        let mut watches = Watches::default();
        let (_, w) = waker();
        let s = watches.register(3, Condition::Surplus, &w);
        let d = watches.register(3, Condition::Drained, &w);
        let mut wakes = Vec::new();
        watches.check(seen(true, false), &mut wakes);
        assert_eq!(wakes.len(), 1);
        assert_eq!(watches.slot(s), None, "fired");
        assert_eq!(watches.slot(d), Some(3), "still waiting");
        watches.check(seen(false, false), &mut wakes);
        assert_eq!(watches.slot(s), None, "a fired watcher does not go back");
        assert!(watches.is_waiting());
        watches.check(seen(false, true), &mut wakes);
        assert_eq!(wakes.len(), 2);
        assert!(!watches.is_waiting(), "nobody waits any more");
        assert!(watches.remove(s).is_none(), "its waker was taken to wake");
        assert!(watches.remove(d).is_none());
        assert_eq!(watches.entries.capacity(), 0, "memory given back");
    }

    #[test]
    fn removal_keeps_the_other_positions_right() {
        let mut watches = Watches::default();
        let (count, w) = waker();
        let entries: Vec<usize> = (0..5)
            .map(|_| watches.register(1, Condition::Drained, &w))
            .collect();
        assert!(watches.remove(entries[1]).is_some());
        assert!(watches.remove(entries[4]).is_some());
        let again = watches.register(1, Condition::Drained, &w);
        assert_eq!(again, entries[4], "the free list is reused");
        let mut wakes = Vec::new();
        watches.check(seen(false, true), &mut wakes);
        assert_eq!(wakes.len(), 4);
        wakes.into_iter().for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::SeqCst), 4);
        for e in [entries[0], entries[2], entries[3], again] {
            assert_eq!(watches.slot(e), None);
            watches.remove(e);
        }
        assert_eq!(watches.live, 0);
    }

    #[test]
    fn a_re_poll_with_the_same_task_keeps_its_waker() {
        let mut watches = Watches::default();
        let (_, w) = waker();
        let e = watches.register(0, Condition::Surplus, &w);
        assert!(watches.update(e, &w.clone()).is_none());
        let (_, other) = waker();
        assert!(
            watches.update(e, &other).is_some(),
            "the old one comes back"
        );
    }
}
