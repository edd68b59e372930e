//! The reference model of `model.rs`: the contract written as plainly as
//! possible, every decision by a scan over the waiters in arrival order.

use std::collections::BTreeMap;

use workpool_core::{Counts, TryAcquireError};

use super::KEYS;

// ------------------------------------------------------------------ the model

/// Where a model waiter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Waiting,
    /// Granted the lease with this id from this key, of these units.
    Granted(u64, u8, u64),
    Closed,
}

/// A grant: lease id, key, units.
pub(super) type Taken = (u64, u8, u64);

#[derive(Debug)]
pub(super) struct Waiter {
    /// Arrival number: lower is older.
    pub(super) id: u64,
    /// `None` for an any-key waiter.
    pub(super) key: Option<u8>,
    /// Units asked for (1 for an any-key waiter).
    pub(super) units: u64,
    pub(super) state: State,
}

/// The contract, written as plainly as possible: every decision by a scan
/// over the waiters in arrival order.
///
/// Weights: a grant of `n` needs `active + n <= target` and, with a limit,
/// `n` units of room in the pool. Head-of-line: the oldest waiter a key can
/// serve (its oldest key waiter or an older any-key waiter) is served first
/// or nobody from that key is; under a limit the oldest waiter whose key
/// has room for it (the oldest "held back") is served first or nobody is.
#[derive(Debug)]
pub(super) struct Model {
    /// Tracked keys.
    pub(super) groups: BTreeMap<u8, Counts>,
    /// Every registered waiter, oldest first.
    pub(super) waiters: Vec<Waiter>,
    /// Decided and unreported waiters: (waiter, decision), oldest first.
    /// Waiters decided together (by `close`) share a decision number.
    pub(super) wake: Vec<(u64, u64)>,
    /// Keys an any-key request may look at, in rotation order.
    pub(super) ring: Vec<u8>,
    /// The key the next any-key request looks at first.
    pub(super) cursor: Option<u8>,
    pub(super) next_lease: u64,
    pub(super) next_waiter: u64,
    pub(super) decisions: u64,
    pub(super) closed: bool,
    pub(super) limit: Option<u64>,
}

impl Model {
    pub(super) fn new() -> Self {
        Self {
            groups: BTreeMap::new(),
            waiters: Vec::new(),
            wake: Vec::new(),
            ring: Vec::new(),
            cursor: None,
            next_lease: 1,
            next_waiter: 0,
            decisions: 0,
            closed: false,
            limit: None,
        }
    }

    pub(super) fn counts(&self, key: u8) -> Counts {
        self.groups.get(&key).copied().unwrap_or_default()
    }

    pub(super) fn room(&self, key: u8) -> bool {
        self.fits(key, 1)
    }

    pub(super) fn fits(&self, key: u8, units: u64) -> bool {
        let c = self.counts(key);
        c.target.saturating_sub(c.active) >= units
    }

    pub(super) fn total(&self) -> u64 {
        self.groups.values().map(|c| c.active).sum()
    }

    pub(super) fn pool_room(&self) -> bool {
        self.pool_room_for(1)
    }

    pub(super) fn pool_room_for(&self, units: u64) -> bool {
        self.limit
            .is_none_or(|l| l.saturating_sub(self.total()) >= units)
    }

    pub(super) fn can_serve(waiter: &Waiter, key: u8) -> bool {
        waiter.state == State::Waiting && waiter.key.is_none_or(|k| k == key)
    }

    /// The oldest waiter `key` could serve, of either kind.
    pub(super) fn oldest_for(&self, key: u8) -> Option<usize> {
        self.waiters.iter().position(|w| Self::can_serve(w, key))
    }

    /// The oldest key waiter of `key`.
    pub(super) fn head(&self, key: u8) -> Option<usize> {
        self.waiters
            .iter()
            .position(|w| w.state == State::Waiting && w.key == Some(key))
    }

    /// The oldest any-key waiter.
    pub(super) fn any_head(&self) -> Option<usize> {
        self.waiters
            .iter()
            .position(|w| w.key.is_none() && w.state == State::Waiting)
    }

    /// The oldest key waiter that is its key's head and whose key has room
    /// for it: (waiter, key, units). Under a limit, the pool's room is owed
    /// to it before anyone younger.
    pub(super) fn held_back(&self) -> Option<(u64, u8, u64)> {
        (0..KEYS)
            .filter_map(|k| self.head(k))
            .map(|i| &self.waiters[i])
            .filter(|w| self.fits(w.key.unwrap(), w.units))
            .min_by_key(|w| w.id)
            .map(|w| (w.id, w.key.unwrap(), w.units))
    }

    /// A newcomer may take `units` of the pool's room.
    pub(super) fn newcomer_room(&self, units: u64) -> bool {
        self.pool_room_for(units) && self.held_back().is_none()
    }

    pub(super) fn free_for_newcomer(&self, key: u8, units: u64) -> bool {
        self.fits(key, units) && self.newcomer_room(units) && self.oldest_for(key).is_none()
    }

    pub(super) fn waiting(&self, key: u8) -> usize {
        self.waiters
            .iter()
            .filter(|w| w.state == State::Waiting && w.key == Some(key))
            .count()
    }

    pub(super) fn waiting_total(&self) -> usize {
        self.waiters
            .iter()
            .filter(|w| w.state == State::Waiting)
            .count()
    }

    pub(super) fn waiter(&self, id: u64) -> usize {
        self.waiters
            .iter()
            .position(|w| w.id == id)
            .expect("a registered waiter")
    }

    pub(super) fn grant(&mut self, key: u8, units: u64) -> Taken {
        assert!(self.pool_room_for(units), "grant past the pool's limit");
        assert!(self.fits(key, units), "grant without room");
        let group = self.groups.get_mut(&key).expect("a tracked key");
        group.active += units;
        let id = self.next_lease;
        self.next_lease += 1;
        (id, key, units)
    }

    /// A lease of no units: a fresh id, nothing counted.
    pub(super) fn nothing(&mut self, key: u8) -> Taken {
        let id = self.next_lease;
        self.next_lease += 1;
        (id, key, 0)
    }

    pub(super) fn decide(&mut self, i: usize, taken: Taken) {
        let (id, key, units) = taken;
        self.waiters[i].state = State::Granted(id, key, units);
        self.decisions += 1;
        self.wake.push((self.waiters[i].id, self.decisions));
    }

    /// Links `key` after serving it: when no any-key waiter waits, and,
    /// under a limit, whenever it has room.
    pub(super) fn link_ring(&mut self, key: u8) {
        let any_waiting = self.any_head().is_some();
        if any_waiting && !(self.room(key) && self.limit.is_some()) {
            return;
        }
        self.insert_ring(key);
    }

    pub(super) fn insert_ring(&mut self, key: u8) {
        if self.ring.contains(&key) {
            return;
        }
        match self.cursor {
            None => {
                self.ring.push(key);
                self.cursor = Some(key);
            }
            Some(cursor) => {
                let c = self.ring.iter().position(|&k| k == cursor).unwrap();
                self.ring.insert(c, key);
            }
        }
    }

    pub(super) fn unlink_ring(&mut self, key: u8) {
        let Some(i) = self.ring.iter().position(|&k| k == key) else {
            return;
        };
        if self.ring.len() == 1 {
            self.cursor = None;
        } else if self.cursor == Some(key) {
            self.cursor = Some(self.ring[(i + 1) % self.ring.len()]);
        }
        self.ring.remove(i);
    }

    pub(super) fn advance(&mut self, key: u8) {
        let i = self.ring.iter().position(|&k| k == key).unwrap();
        self.cursor = Some(self.ring[(i + 1) % self.ring.len()]);
    }

    pub(super) fn take_any(&mut self) -> Option<Taken> {
        if !self.newcomer_room(1) {
            return None;
        }
        let available: Vec<u8> = (0..KEYS)
            .filter(|&k| self.free_for_newcomer(k, 1))
            .collect();
        let key = loop {
            let Some(key) = self.cursor else {
                assert!(available.is_empty(), "the ring misses {available:?}");
                return None;
            };
            if self.room(key) && self.head(key).is_none() {
                break key;
            }
            self.unlink_ring(key);
        };
        assert!(available.contains(&key), "the ring offers {key}");
        self.advance(key);
        Some(self.grant(key, 1))
    }

    pub(super) fn take_key(&mut self, key: u8, units: u64) -> Option<Taken> {
        if !self.free_for_newcomer(key, units) {
            return None;
        }
        Some(self.grant(key, units))
    }

    pub(super) fn forget_idle(&mut self) {
        let idle: Vec<u8> = (0..KEYS)
            .filter(|&k| self.waiting(k) == 0 && self.counts(k) == Counts::default())
            .collect();
        for key in idle {
            self.unlink_ring(key);
            self.groups.remove(&key);
        }
    }

    /// Hands `key`'s room to the waiters it can serve, oldest first, until
    /// the oldest one does not fit (head-of-line).
    pub(super) fn serve(&mut self, key: u8) {
        while let Some(i) = self.oldest_for(key) {
            let (id, units) = (self.waiters[i].id, self.waiters[i].units);
            if !self.fits(key, units) || !self.pool_room_for(units) {
                break;
            }
            if self.limit.is_some() {
                // An older waiter of another key is owed the pool's room.
                if let Some((h, hk, _)) = self.held_back() {
                    if hk != key && h < id {
                        break;
                    }
                }
            }
            let taken = self.grant(key, units);
            self.decide(i, taken);
        }
        self.link_ring(key);
    }

    pub(super) fn set(&mut self, key: u8, target: u64) {
        self.set_quietly(key, target);
        self.distribute();
    }

    /// `set` as one of several set together: the pool's room is handed out
    /// once, after the last (no waiter served from a half-applied set).
    pub(super) fn set_quietly(&mut self, key: u8, target: u64) {
        if target == 0 && !self.groups.contains_key(&key) {
            return;
        }
        let group = self.groups.entry(key).or_default();
        let old = std::mem::replace(&mut group.target, target);
        if target > old {
            self.serve(key);
        }
    }

    pub(super) fn try_acquire(&mut self) -> Result<Taken, TryAcquireError> {
        if self.closed {
            return Err(TryAcquireError::Closed);
        }
        self.take_any().ok_or(TryAcquireError::NoCapacity)
    }

    pub(super) fn try_acquire_key(
        &mut self,
        key: u8,
        units: u64,
    ) -> Result<Taken, TryAcquireError> {
        if self.closed {
            return Err(TryAcquireError::Closed);
        }
        if units == 0 {
            return Ok(self.nothing(key));
        }
        self.take_key(key, units).ok_or(TryAcquireError::NoCapacity)
    }

    pub(super) fn enqueue(&mut self, key: Option<u8>, units: u64) -> Result<u64, TryAcquireError> {
        if self.closed {
            return Err(TryAcquireError::Closed);
        }
        if units == 0 {
            return Err(TryAcquireError::NoCapacity);
        }
        let taken = match key {
            None => self.take_any(),
            Some(k) => {
                self.groups.entry(k).or_default();
                self.take_key(k, units)
            }
        };
        let id = self.next_waiter;
        self.next_waiter += 1;
        let state = taken.map_or(State::Waiting, |(l, k, u)| State::Granted(l, k, u));
        self.waiters.push(Waiter {
            id,
            key,
            units,
            state,
        });
        Ok(id)
    }

    pub(super) fn remove(&mut self, id: u64) -> State {
        let w = self.waiters.remove(self.waiter(id));
        self.wake.retain(|&(waiter, _)| waiter != id);
        w.state
    }

    pub(super) fn give_back(&mut self, key: u8, units: u64) {
        if units == 0 {
            // A lease of no units frees nothing.
            return;
        }
        let group = self.groups.get_mut(&key).expect("a lease's key is tracked");
        assert!(group.active >= units);
        group.active -= units;
        if self.limit.is_some() {
            // The units are the pool's as well as the key's: they go to the
            // oldest waiters the pool's room can serve, whatever their key.
            self.insert_ring(key);
            self.distribute();
        } else {
            self.serve(key);
        }
    }

    pub(super) fn distribute(&mut self) {
        loop {
            let any = self.any_head();
            let held = self.held_back();
            let any_first = match (any, held) {
                (Some(a), Some((h, _, _))) => self.waiters[a].id < h,
                (Some(_), None) => true,
                _ => false,
            };
            if any_first && self.cursor.is_some() {
                if !self.pool_room() {
                    break;
                }
                let key = self.cursor.unwrap();
                let a = any.unwrap();
                // A key waiter older than the any-key one keeps the room.
                let key_first = self
                    .head(key)
                    .is_some_and(|h| self.waiters[h].id < self.waiters[a].id);
                if self.room(key) && !key_first {
                    self.advance(key);
                    let taken = self.grant(key, 1);
                    self.decide(a, taken);
                } else {
                    self.unlink_ring(key);
                }
                continue;
            }
            let Some((h, key, units)) = held else {
                break;
            };
            if !self.pool_room_for(units) {
                break;
            }
            let i = self.waiter(h);
            let taken = self.grant(key, units);
            self.decide(i, taken);
        }
    }

    pub(super) fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
        self.distribute();
    }

    pub(super) fn cancel(&mut self, id: u64) {
        let i = self.waiter(id);
        let w = &self.waiters[i];
        // A head that asked for more than was free held room back from the
        // waiters behind it.
        let frees = match w.key {
            Some(k) if w.state == State::Waiting => self.head(k) == Some(i) && self.room(k),
            _ => false,
        };
        let key = w.key;
        if let State::Granted(_, key, units) = self.remove(id) {
            self.give_back(key, units);
        }
        if frees {
            let key = key.unwrap();
            if self.limit.is_some() {
                self.insert_ring(key);
            } else {
                self.serve(key);
            }
        }
        self.distribute();
    }

    pub(super) fn claim(&mut self, id: u64) -> Option<State> {
        let state = self.waiters[self.waiter(id)].state;
        if state == State::Waiting {
            return None;
        }
        Some(self.remove(id))
    }

    pub(super) fn release(&mut self, key: u8, units: u64) {
        self.give_back(key, units);
    }

    /// Splits `units` off a lease of `held` units: a fresh id, if `0 <
    /// units < held`.
    pub(super) fn split(&mut self, key: u8, held: u64, units: u64) -> Option<Taken> {
        if units == 0 || units >= held {
            return None;
        }
        let id = self.next_lease;
        self.next_lease += 1;
        Some((id, key, units))
    }

    pub(super) fn close_key(&mut self, key: u8) {
        let Some(group) = self.groups.get_mut(&key) else {
            return;
        };
        group.target = 0;
        for w in &mut self.waiters {
            if w.state == State::Waiting && w.key == Some(key) {
                w.state = State::Closed;
                self.decisions += 1;
                self.wake.push((w.id, self.decisions));
            }
        }
        // A held-back head of more units than the pool had may be gone.
        self.distribute();
    }

    pub(super) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.decisions += 1;
        for w in &mut self.waiters {
            if w.state == State::Waiting {
                w.state = State::Closed;
                self.wake.push((w.id, self.decisions));
            }
        }
    }
}
