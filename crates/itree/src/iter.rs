//! In-order and overlap iterators.

use std::iter::FusedIterator;

use crate::tree::{IntervalTree, NodeId, MAX_HEIGHT, NIL};

/// Iterator over the nodes intersecting a range, from
/// [`IntervalTree::iter_overlapping`].
///
/// Yields `(id, start, last, &value)` ascending by start.
pub struct Overlapping<'a, V> {
    tree: &'a IntervalTree<V>,
    /// Nodes still to visit, each together with its right subtree; the top
    /// (`stack[depth - 1]`) is the next in order. They all lie on one
    /// root-to-leaf path, so the tree height bounds the depth.
    stack: [u32; MAX_HEIGHT],
    depth: usize,
    start: u64,
    last: u64,
}

impl<V> Clone for Overlapping<'_, V> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree,
            stack: self.stack,
            depth: self.depth,
            start: self.start,
            last: self.last,
        }
    }
}

impl<'a, V> Overlapping<'a, V> {
    pub(crate) fn new(tree: &'a IntervalTree<V>, start: u64, last: u64) -> Self {
        let mut it = Self {
            tree,
            stack: [NIL; MAX_HEIGHT],
            depth: 0,
            start,
            last,
        };
        if start <= last {
            it.descend(tree.root());
        }
        it
    }

    /// Pushes the left spine of the subtree at `i`, skipping subtrees that
    /// end before the query starts.
    fn descend(&mut self, mut i: u32) {
        while i != NIL {
            let n = self.tree.node(i);
            if n.max_last < self.start {
                break;
            }
            self.stack[self.depth] = i;
            self.depth += 1;
            i = n.left;
        }
    }
}

impl<'a, V> Iterator for Overlapping<'a, V> {
    type Item = (NodeId, u64, u64, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        while self.depth > 0 {
            self.depth -= 1;
            let i = self.stack[self.depth];
            let n = self.tree.node(i);
            if n.start > self.last {
                // Everything still pending starts at or after this node.
                self.depth = 0;
                return None;
            }
            self.descend(n.right);
            if n.last >= self.start {
                return Some(self.tree.entry(i));
            }
        }
        None
    }
}

impl<V> FusedIterator for Overlapping<'_, V> {}

/// Iterator over every node ascending by start, from [`IntervalTree::iter`].
///
/// Yields `(id, start, last, &value)`.
pub struct Iter<'a, V> {
    inner: Overlapping<'a, V>,
    remaining: usize,
}

impl<V> Clone for Iter<'_, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            remaining: self.remaining,
        }
    }
}

impl<'a, V> Iter<'a, V> {
    pub(crate) fn new(tree: &'a IntervalTree<V>) -> Self {
        Self {
            inner: Overlapping::new(tree, 0, u64::MAX),
            remaining: tree.len(),
        }
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (NodeId, u64, u64, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        self.remaining -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<V> FusedIterator for Iter<'_, V> {}

impl<'a, V> IntoIterator for &'a IntervalTree<V> {
    type Item = (NodeId, u64, u64, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
