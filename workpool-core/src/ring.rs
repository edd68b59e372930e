//! Rings: a round robin in O(1). Each shard has a *ready ring* over its
//! groups, and the lane has a ring over the shards that are *listed* (in
//! the any-key rotation).
//!
//! A ring is a circular doubly-linked list with a cursor. Its links live
//! where its nodes do ([`Links`]): a shard's ring links its groups through
//! fields of the groups themselves (a group is its own node, named by its
//! slot), and the lane's ring links shards through a small table indexed
//! by shard. So linking and unlinking a group touch its shard alone, and a
//! linked group costs no memory beyond its two links. Any-key grants take
//! the group under a shard's cursor and move it on, which is round-robin in
//! O(1). A shard's ring may hold groups that are full; they are unlinked
//! lazily, when the cursor reaches them (each removal pays for one earlier
//! insertion, so this stays O(1) amortised); the lane's ring likewise may
//! hold a shard whose ring is empty until the lane's cursor reaches it.
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

#[cfg(test)]
use alloc::vec::Vec;

use crate::waiters::NIL;

/// Where a ring's links live: node `n`'s neighbours, `NIL` while `n` is
/// not linked.
pub(crate) trait Links {
    fn prev(&self, n: u32) -> u32;
    fn next(&self, n: u32) -> u32;
    fn set_prev(&mut self, n: u32, prev: u32);
    fn set_next(&mut self, n: u32, next: u32);
}

/// A ring's cursor, the end of its running turn and its length; the links
/// are the caller's ([`Links`]).
pub(crate) struct Ring {
    /// The node the next any-key grant comes from.
    cursor: u32,
    /// The last node of the running turn, or `NIL` between turns.
    end: u32,
    len: usize,
}

impl Ring {
    pub(crate) const fn new() -> Self {
        Self {
            cursor: NIL,
            end: NIL,
            len: 0,
        }
    }

    /// The node under the cursor.
    #[inline]
    pub(crate) fn cursor(&self) -> Option<u32> {
        (self.cursor != NIL).then_some(self.cursor)
    }

    /// Moves the cursor past `node`, which it is on, after a grant.
    #[inline]
    pub(crate) fn advance_past(&mut self, links: &impl Links, node: u32) {
        debug_assert_eq!(self.cursor, node);
        self.cursor = links.next(node);
    }

    /// True when the node under the cursor is the running turn's last.
    #[inline]
    pub(crate) fn cursor_ends_turn(&self) -> bool {
        self.end != NIL && self.end == self.cursor
    }

    /// Moves the cursor past the node under it after a grant from it,
    /// beginning a turn if none runs; true when that grant ended the turn.
    #[inline]
    pub(crate) fn advance_in_turn(&mut self, links: &impl Links) -> bool {
        let node = self.cursor;
        if self.end == NIL {
            self.end = links.prev(node);
        }
        self.cursor = links.next(node);
        let over = node == self.end;
        if over {
            self.end = NIL;
        }
        over
    }

    /// Links `node` (not linked) just before the cursor, so it is served
    /// last in the current round.
    pub(crate) fn insert(&mut self, links: &mut impl Links, node: u32) {
        debug_assert_eq!(links.next(node), NIL, "node {node} is linked already");
        self.len += 1;
        if self.cursor == NIL {
            self.cursor = node;
            links.set_prev(node, node);
            links.set_next(node, node);
        } else {
            let next = self.cursor;
            let prev = links.prev(next);
            links.set_next(prev, node);
            links.set_prev(next, node);
            links.set_prev(node, prev);
            links.set_next(node, next);
        }
    }

    /// Unlinks `node`, which is linked.
    pub(crate) fn remove(&mut self, links: &mut impl Links, node: u32) {
        self.len -= 1;
        let (prev, next) = (links.prev(node), links.next(node));
        if next == node {
            self.cursor = NIL;
            self.end = NIL;
        } else {
            links.set_next(prev, next);
            links.set_prev(next, prev);
            if self.end == node {
                // The turn's last node leaves: the one before it is the
                // last, unless the turn had only that node left to visit.
                self.end = if self.cursor == node { NIL } else { prev };
            }
            if self.cursor == node {
                self.cursor = next;
            }
        }
        links.set_prev(node, NIL);
        links.set_next(node, NIL);
    }

    /// How many nodes are linked.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when no node is linked.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.cursor == NIL
    }

    /// The only node, while no turn is running.
    #[inline]
    pub(crate) fn solo(&self, links: &impl Links) -> Option<u32> {
        let node = self.cursor()?;
        (links.next(node) == node && self.end == NIL).then_some(node)
    }

    /// The linked nodes, from the cursor on, checking the links both ways.
    #[cfg(test)]
    pub(crate) fn nodes(&self, links: &impl Links) -> Vec<u32> {
        let mut out = Vec::new();
        let mut n = self.cursor;
        while n != NIL {
            assert!(out.len() < self.len, "the ring does not close");
            out.push(n);
            let next = links.next(n);
            assert_eq!(links.prev(next), n, "ring links disagree");
            n = if next == self.cursor { NIL } else { next };
        }
        assert_eq!(out.len(), self.len, "the ring's length is wrong");
        out
    }
}

/// The lane's ring's links: two per shard, by shard index, grown as shards
/// are listed.
#[derive(Default)]
pub(crate) struct ShardLinks(alloc::vec::Vec<[u32; 2]>);

impl ShardLinks {
    fn at(&mut self, n: u32) -> &mut [u32; 2] {
        let i = n as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, [NIL, NIL]);
        }
        &mut self.0[i]
    }
}

impl Links for ShardLinks {
    fn prev(&self, n: u32) -> u32 {
        self.0.get(n as usize).map_or(NIL, |l| l[0])
    }

    fn next(&self, n: u32) -> u32 {
        self.0.get(n as usize).map_or(NIL, |l| l[1])
    }

    fn set_prev(&mut self, n: u32, prev: u32) {
        self.at(n)[0] = prev;
    }

    fn set_next(&mut self, n: u32, next: u32) {
        self.at(n)[1] = next;
    }
}
