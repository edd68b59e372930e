//! Rings: a round robin in O(1). Each shard has a *ready ring* over its
//! groups, and the lane has a ring over the shards that are *listed* (in
//! the any-key rotation).
//!
//! A ring is a circular doubly-linked list of nodes with a cursor; each
//! node names a group by shard and slot (the lane's names a shard, with
//! slot 0), and the group (or shard) records its node. Any-key grants take
//! the group under a shard's cursor and move it on, which is round-robin in
//! O(1). A shard's ring may hold groups that are full; they are unlinked
//! lazily, when the cursor reaches them (each removal pays for one earlier
//! insertion, so this stays O(1) amortised); the lane's ring likewise may
//! hold a shard whose ring is empty until the lane's cursor reaches it.
//! Nodes live in a slab owned by the ring's part, so that linking and
//! unlinking a group touch its shard alone.
//!
//! A shard's ring also keeps the shard's *turn* in the any-key rotation
//! over shards: a turn begins with an any-key grant when none is running
//! and notes the node before the cursor as the turn's last; it ends after
//! the grant from that node (or when that node turns out full and is
//! unlinked), so a turn grants once from each group that was linked with
//! room when it began. The rotation moves to the next shard only when a
//! shard's turn ends: that makes the two-level rotation one round-robin
//! over all groups (in shard order), as contract item 6 asks. Removing the
//! turn's last node makes the node before it the last.
//!
//! The slab reuses its lowest free node first and cuts off its free top, as
//! the other slabs do (see [`crate::bands`]).

use alloc::vec::Vec;

use crate::bands::{self, Bands, Freed};
use crate::waiters::NIL;

/// One node: the group it stands for and its neighbours (while free,
/// `next` links the free list).
struct Node {
    shard: u32,
    group: u32,
    prev: u32,
    next: u32,
}

pub(crate) struct Ring {
    nodes: Vec<Node>,
    free: Bands,
    /// The node the next any-key grant comes from.
    cursor: u32,
    /// The last node of the running turn, or `NIL` between turns.
    end: u32,
    len: usize,
}

impl Ring {
    pub(crate) const fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: Bands::new(),
            cursor: NIL,
            end: NIL,
            len: 0,
        }
    }

    /// The shard and group under the cursor.
    #[inline]
    pub(crate) fn cursor(&self) -> Option<(u32, u32)> {
        let node = self.nodes.get(self.cursor as usize)?;
        Some((node.shard, node.group))
    }

    /// The cursor's node.
    #[inline]
    pub(crate) fn cursor_node(&self) -> u32 {
        self.cursor
    }

    /// Moves the cursor past `node`, which it is on, after a grant.
    #[inline]
    pub(crate) fn advance_past(&mut self, node: u32) {
        debug_assert_eq!(self.cursor, node);
        self.cursor = self.nodes[node as usize].next;
    }

    /// True when the node under the cursor is the running turn's last.
    #[inline]
    pub(crate) fn cursor_ends_turn(&self) -> bool {
        self.end != NIL && self.end == self.cursor
    }

    /// Moves the cursor past the node under it after a grant from it,
    /// beginning a turn if none runs; true when that grant ended the turn.
    #[inline]
    pub(crate) fn advance_in_turn(&mut self) -> bool {
        let node = self.cursor;
        if self.end == NIL {
            self.end = self.nodes[node as usize].prev;
        }
        self.cursor = self.nodes[node as usize].next;
        let over = node == self.end;
        if over {
            self.end = NIL;
        }
        over
    }

    /// Links a node for `group` of `shard` just before the cursor, so it is
    /// served last in the current round, and returns the node.
    pub(crate) fn insert(&mut self, shard: u32, group: u32) -> u32 {
        self.len += 1;
        let nodes = &self.nodes;
        let index = match self.free.take(|i| nodes[i as usize].next) {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("more than u32::MAX - 1 groups in the ring");
                if self.nodes.len() == self.nodes.capacity() {
                    self.nodes.reserve_exact((self.nodes.len() / 8).max(8));
                }
                self.nodes.push(Node {
                    shard,
                    group,
                    prev: NIL,
                    next: NIL,
                });
                self.free.pushed(index);
                index
            }
        };
        let (prev, next) = if self.cursor == NIL {
            self.cursor = index;
            (index, index)
        } else {
            let next = self.cursor;
            let prev = self.nodes[next as usize].prev;
            self.nodes[prev as usize].next = index;
            self.nodes[next as usize].prev = index;
            (prev, next)
        };
        self.nodes[index as usize] = Node {
            shard,
            group,
            prev,
            next,
        };
        index
    }

    /// Unlinks `node` and frees it.
    pub(crate) fn remove(&mut self, node: u32) {
        self.len -= 1;
        let (prev, next) = {
            let n = &self.nodes[node as usize];
            (n.prev, n.next)
        };
        if next == node {
            self.cursor = NIL;
            self.end = NIL;
        } else {
            self.nodes[prev as usize].next = next;
            self.nodes[next as usize].prev = prev;
            if self.end == node {
                // The turn's last node leaves: the one before it is the
                // last, unless the turn had only that node left to visit.
                self.end = if self.cursor == node { NIL } else { prev };
            }
            if self.cursor == node {
                self.cursor = next;
            }
        }
        match self.free.free(node, self.nodes.len()) {
            Freed::Linked(free) => {
                let n = &mut self.nodes[node as usize];
                n.prev = NIL;
                n.next = free;
            }
            Freed::Cut(len) => {
                self.nodes.truncate(len);
                bands::shrink(&mut self.nodes, len + len / 8);
            }
        }
    }

    /// The group of the only node, while no turn is running.
    #[inline]
    pub(crate) fn solo(&self) -> Option<u32> {
        let node = self.nodes.get(self.cursor as usize)?;
        (node.next == self.cursor && self.end == NIL).then_some(node.group)
    }

    /// How many groups are linked.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when no group is linked.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.cursor == NIL
    }

    /// The linked groups as (shard, group), from the cursor on, checking the
    /// links both ways.
    #[cfg(test)]
    pub(crate) fn groups(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut n = self.cursor;
        while n != NIL {
            assert!(out.len() < self.len, "the ring does not close");
            let node = &self.nodes[n as usize];
            out.push((node.shard, node.group));
            assert_eq!(
                self.nodes[node.next as usize].prev, n,
                "ring links disagree"
            );
            n = if node.next == self.cursor {
                NIL
            } else {
                node.next
            };
        }
        assert_eq!(out.len(), self.len, "the ring's length is wrong");
        out
    }
}
