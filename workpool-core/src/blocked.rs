//! The groups the pool-wide limit holds back: each has room and key waiters,
//! but the pool has none. A min-heap by the arrival order of each group's
//! oldest waiter, so that room coming back to the pool goes to the oldest
//! waiter it can serve in O(log groups). Nodes live in a slab owned by the
//! lane (a group's shard records its node in a side table,
//! `Shard::blocked_of`, that grows only while groups are held back), so
//! that sifting never writes to a group of another shard.

use alloc::vec::Vec;

use crate::bands::{self, Bands, Freed};
use crate::waiters::NIL;

/// One blocked group: which one, the order of its oldest waiter, and where
/// it sits in the heap (while free, `pos` links the free list).
struct Node {
    shard: u32,
    group: u32,
    /// The head waiter's arrival order, then its registration number in
    /// its shard: lower is older.
    key: (u64, u32, u64),
    /// The units the head waiter asks for.
    units: u64,
    pos: u32,
}

pub(crate) struct Blocked {
    nodes: Vec<Node>,
    free: Bands,
    /// Node indices, a binary min-heap by `key`.
    heap: Vec<u32>,
}

impl Blocked {
    pub(crate) const fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: Bands::new(),
            heap: Vec::new(),
        }
    }

    /// The oldest blocked group: (shard, group).
    #[inline]
    pub(crate) fn top(&self) -> Option<(u32, u32, (u64, u32, u64))> {
        let &node = self.heap.first()?;
        let n = &self.nodes[node as usize];
        Some((n.shard, n.group, n.key))
    }

    /// The units the oldest blocked group's head waiter asks for.
    #[inline]
    pub(crate) fn top_units(&self) -> Option<u64> {
        let &node = self.heap.first()?;
        Some(self.nodes[node as usize].units)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds a group whose head waiter's order key is `key` and who asks for
    /// `units`; returns its node.
    pub(crate) fn insert(
        &mut self,
        shard: u32,
        group: u32,
        key: (u64, u32, u64),
        units: u64,
    ) -> u32 {
        let nodes = &self.nodes;
        let index = match self.free.take(|i| nodes[i as usize].pos) {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("more than u32::MAX - 1 blocked groups");
                if self.nodes.len() == self.nodes.capacity() {
                    self.nodes.reserve_exact((self.nodes.len() / 8).max(8));
                }
                self.nodes.push(Node {
                    shard,
                    group,
                    key,
                    units,
                    pos: NIL,
                });
                self.free.pushed(index);
                index
            }
        };
        let pos = self.heap.len() as u32;
        self.nodes[index as usize] = Node {
            shard,
            group,
            key,
            units,
            pos,
        };
        self.heap.push(index);
        self.sift_up(pos);
        index
    }

    /// Changes a node's order key and units (its group's head changed).
    pub(crate) fn update(&mut self, node: u32, key: (u64, u32, u64), units: u64) {
        let n = &mut self.nodes[node as usize];
        n.units = units;
        let old = core::mem::replace(&mut n.key, key);
        let pos = n.pos;
        if key < old {
            self.sift_up(pos);
        } else {
            self.sift_down(pos);
        }
    }

    /// Takes a node out of the heap and frees it.
    pub(crate) fn remove(&mut self, node: u32) {
        let pos = self.nodes[node as usize].pos;
        let last = self.heap.pop().expect("a blocked node is in the heap");
        if last != node {
            self.heap[pos as usize] = last;
            self.nodes[last as usize].pos = pos;
            self.sift_down(pos);
            let pos = self.nodes[last as usize].pos;
            self.sift_up(pos);
        }
        match self.free.free(node, self.nodes.len()) {
            Freed::Linked(next) => self.nodes[node as usize].pos = next,
            Freed::Cut(len) => {
                self.nodes.truncate(len);
                bands::shrink(&mut self.nodes, len + len / 8);
            }
        }
        if self.heap.capacity() > bands::MIN_SLOTS && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
        }
    }

    fn key_at(&self, pos: u32) -> (u64, u32, u64) {
        self.nodes[self.heap[pos as usize] as usize].key
    }

    fn swap(&mut self, a: u32, b: u32) {
        self.heap.swap(a as usize, b as usize);
        let (na, nb) = (self.heap[a as usize], self.heap[b as usize]);
        self.nodes[na as usize].pos = a;
        self.nodes[nb as usize].pos = b;
    }

    fn sift_up(&mut self, mut pos: u32) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.key_at(pos) >= self.key_at(parent) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: u32) {
        let len = self.heap.len() as u32;
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < len && self.key_at(l) < self.key_at(least) {
                least = l;
            }
            if r < len && self.key_at(r) < self.key_at(least) {
                least = r;
            }
            if least == pos {
                break;
            }
            self.swap(pos, least);
            pos = least;
        }
    }

    /// Every blocked (shard, group), checking the heap order.
    #[cfg(test)]
    pub(crate) fn groups(&self) -> Vec<(u32, u32)> {
        for pos in 1..self.heap.len() as u32 {
            assert!(self.key_at((pos - 1) / 2) <= self.key_at(pos), "heap order");
        }
        self.heap
            .iter()
            .map(|&n| {
                let node = &self.nodes[n as usize];
                assert_eq!(self.heap[node.pos as usize], n, "heap position");
                (node.shard, node.group)
            })
            .collect()
    }
}
