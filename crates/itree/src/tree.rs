//! Arena-backed AVL tree augmented with the subtree maximum of `last`.

use std::cmp::Ordering;
use std::fmt;

use crate::iter::{Iter, Overlapping};
use crate::span::{Span, Spans};

/// Link value meaning "no node".
pub(crate) const NIL: u32 = u32::MAX;

/// Upper bound on the height of the tree. An AVL tree of height `h` holds
/// at least `fib(h + 2) - 1` nodes, and `fib(48) - 1` exceeds `u32::MAX`,
/// so fewer than `u32::MAX` nodes are at most 45 high.
pub(crate) const MAX_HEIGHT: usize = 48;

/// Handle to one node of an [`IntervalTree`].
///
/// A handle stays valid until its node is removed (by
/// [`IntervalTree::remove`], [`IntervalTree::retain`] or
/// [`IntervalTree::clear`]). Afterwards every lookup with it returns `None`;
/// the underlying slot may be reused by a later insertion under a new handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NodeId {
    index: u32,
    generation: u32,
}

/// One stored interval plus its tree links and augmentation.
#[derive(Clone)]
pub(crate) struct Node<V> {
    pub(crate) start: u64,
    pub(crate) last: u64,
    /// Largest `last` in the subtree rooted at this node.
    pub(crate) max_last: u64,
    pub(crate) left: u32,
    pub(crate) right: u32,
    height: u8,
    pub(crate) value: V,
}

/// Arena slot; `generation` is bumped whenever the slot's node is removed.
#[derive(Clone)]
struct Slot<V> {
    generation: u32,
    node: Option<Node<V>>,
}

/// An interval tree over inclusive `[start, last]` ranges of `u64`.
///
/// Intervals may overlap and may be identical. See the crate documentation
/// for the complexity guarantees.
#[derive(Clone)]
pub struct IntervalTree<V> {
    slots: Vec<Slot<V>>,
    free: Vec<u32>,
    root: u32,
    len: usize,
    shrinks: u64,
}

impl<V> Default for IntervalTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for IntervalTree<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(_, start, last, v)| (start..=last, v)))
            .finish()
    }
}

impl<V> IntervalTree<V> {
    /// Creates an empty tree.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            root: NIL,
            len: 0,
            shrinks: 0,
        }
    }

    /// How many times an interval left the tree ([`Self::remove`],
    /// [`Self::retain`], [`Self::clear`]): while it is unchanged, the union of
    /// the intervals has only grown, so no hole appeared (callers cache facts
    /// about holes against it).
    pub fn shrinks(&self) -> u64 {
        self.shrinks
    }

    /// Number of intervals stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no intervals.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts the interval `[start, last]` carrying `value`. `O(log n)`.
    ///
    /// # Panics
    ///
    /// Panics if `start > last` (a caller bug), or if the tree already holds
    /// `u32::MAX - 1` slots.
    pub fn insert(&mut self, start: u64, last: u64, value: V) -> NodeId {
        assert!(
            start <= last,
            "interval start {start:#x} is after its last {last:#x}"
        );
        let id = self.alloc(Node {
            start,
            last,
            max_last: last,
            left: NIL,
            right: NIL,
            height: 1,
            value,
        });
        self.root = self.link(self.root, id.index);
        self.len += 1;
        id
    }

    /// Removes the node `id`, returning its interval and value, or `None` if
    /// `id` is stale. `O(log n)`.
    pub fn remove(&mut self, id: NodeId) -> Option<(u64, u64, V)> {
        self.live(id)?;
        self.root = self.unlink(self.root, id.index);
        let slot = &mut self.slots[id.index as usize];
        let node = slot.node.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        self.shrinks += 1;
        Some((node.start, node.last, node.value))
    }

    /// The interval and value of node `id`, or `None` if `id` is stale.
    pub fn get(&self, id: NodeId) -> Option<(u64, u64, &V)> {
        self.live(id).map(|n| (n.start, n.last, &n.value))
    }

    /// Mutable access to the value of node `id`, or `None` if `id` is stale.
    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut V> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.node.as_mut().map(|n| &mut n.value)
    }

    /// All nodes intersecting `[start, last]`, ascending by start (ties by
    /// last, then by an internal slot order). An empty range (`start > last`)
    /// yields nothing. `O(log n)` per step.
    pub fn iter_overlapping(&self, start: u64, last: u64) -> Overlapping<'_, V> {
        Overlapping::new(self, start, last)
    }

    /// The first node [`iter_overlapping`](Self::iter_overlapping) would
    /// yield, found in `O(log n)` without allocating.
    pub fn first_overlapping(&self, start: u64, last: u64) -> Option<(NodeId, u64, u64, &V)> {
        if start > last {
            return None;
        }
        let mut i = self.root;
        while i != NIL {
            let n = self.node(i);
            if self.max_last(n.left).is_some_and(|m| m >= start) {
                i = n.left;
                continue;
            }
            if n.start > last {
                return None;
            }
            if n.last >= start {
                return Some(self.entry(i));
            }
            i = n.right;
        }
        None
    }

    /// Every node, ascending by start (same order as
    /// [`iter_overlapping`](Self::iter_overlapping)).
    pub fn iter(&self) -> Iter<'_, V> {
        Iter::new(self)
    }

    /// Removes every node for which `f(start, last, &value)` returns false.
    /// `f` is called once per node, in ascending order.
    pub fn retain(&mut self, mut f: impl FnMut(u64, u64, &V) -> bool) {
        let doomed: Vec<NodeId> = self
            .iter()
            .filter(|&(_, start, last, v)| !f(start, last, v))
            .map(|(id, ..)| id)
            .collect();
        for id in doomed {
            self.remove(id);
        }
    }

    /// Removes every node; all outstanding [`NodeId`]s become stale.
    pub fn clear(&mut self) {
        self.shrinks += 1;
        for (slot, index) in self.slots.iter_mut().zip(0u32..) {
            if slot.node.take().is_some() {
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(index);
            }
        }
        self.root = NIL;
        self.len = 0;
    }

    /// Partitions `[start, last]` into alternating [`Span::Used`] and
    /// [`Span::Hole`] spans, ascending and clipped to the query. Overlapping
    /// or adjacent nodes merge into one used span. `O(log n)` per hole and
    /// per node merged into a used span.
    ///
    /// # Panics
    ///
    /// Panics if `start > last` (a caller bug).
    pub fn spans(&self, start: u64, last: u64) -> Spans<'_, V> {
        Spans::new(self, start, last)
    }

    /// The holes of [`spans`](Self::spans) as `(start, last)` pairs.
    ///
    /// # Panics
    ///
    /// Panics if `start > last` (a caller bug).
    pub fn holes(&self, start: u64, last: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.spans(start, last).filter_map(|span| match span {
            Span::Hole { start, last } => Some((start, last)),
            Span::Used { .. } => None,
        })
    }

    /// Largest `last` among nodes whose start is `<= pos`. `O(log n)`.
    pub(crate) fn reach_from(&self, pos: u64) -> Option<u64> {
        let mut best = None;
        let mut i = self.root;
        while i != NIL {
            let n = self.node(i);
            if n.start <= pos {
                best = best.max(Some(n.last)).max(self.max_last(n.left));
                i = n.right;
            } else {
                i = n.left;
            }
        }
        best
    }

    /// Smallest start strictly greater than `pos`. `O(log n)`.
    pub(crate) fn next_start_after(&self, pos: u64) -> Option<u64> {
        let mut best = None;
        let mut i = self.root;
        while i != NIL {
            let n = self.node(i);
            if n.start > pos {
                best = Some(n.start);
                i = n.left;
            } else {
                i = n.right;
            }
        }
        best
    }

    pub(crate) fn root(&self) -> u32 {
        self.root
    }

    /// The live node linked at index `i`.
    pub(crate) fn node(&self, i: u32) -> &Node<V> {
        self.slots[i as usize]
            .node
            .as_ref()
            .expect("itree: tree link points at a free slot")
    }

    /// Public view of the live node linked at index `i`.
    pub(crate) fn entry(&self, i: u32) -> (NodeId, u64, u64, &V) {
        let slot = &self.slots[i as usize];
        let n = self.node(i);
        let id = NodeId {
            index: i,
            generation: slot.generation,
        };
        (id, n.start, n.last, &n.value)
    }

    /// `max_last` of the subtree at `i`, `None` for an empty subtree.
    pub(crate) fn max_last(&self, i: u32) -> Option<u64> {
        (i != NIL).then(|| self.node(i).max_last)
    }

    fn live(&self, id: NodeId) -> Option<&Node<V>> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.node.as_ref()
    }

    fn alloc(&mut self, node: Node<V>) -> NodeId {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.node = Some(node);
            return NodeId {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("itree: node capacity exhausted");
        self.slots.push(Slot {
            generation: 0,
            node: Some(node),
        });
        NodeId {
            index,
            generation: 0,
        }
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<V> {
        self.slots[i as usize]
            .node
            .as_mut()
            .expect("itree: tree link points at a free slot")
    }

    /// Total order on linked nodes: `(start, last, slot index)`.
    fn cmp_nodes(&self, a: u32, b: u32) -> Ordering {
        let (x, y) = (self.node(a), self.node(b));
        (x.start, x.last, a).cmp(&(y.start, y.last, b))
    }

    fn height(&self, i: u32) -> u8 {
        if i == NIL {
            0
        } else {
            self.node(i).height
        }
    }

    /// Links the detached node `new` into the subtree at `root`; returns the
    /// new subtree root.
    fn link(&mut self, root: u32, new: u32) -> u32 {
        if root == NIL {
            return new;
        }
        if self.cmp_nodes(new, root).is_lt() {
            let left = self.link(self.node(root).left, new);
            self.node_mut(root).left = left;
        } else {
            let right = self.link(self.node(root).right, new);
            self.node_mut(root).right = right;
        }
        self.rebalance(root)
    }

    /// Unlinks `target` from the subtree at `root`; returns the new subtree
    /// root. `target` must be linked below `root`.
    fn unlink(&mut self, root: u32, target: u32) -> u32 {
        assert!(root != NIL, "itree: unlinking a node that is not linked");
        match self.cmp_nodes(target, root) {
            Ordering::Less => {
                let left = self.unlink(self.node(root).left, target);
                self.node_mut(root).left = left;
            }
            Ordering::Greater => {
                let right = self.unlink(self.node(root).right, target);
                self.node_mut(root).right = right;
            }
            Ordering::Equal => return self.splice_out(root),
        }
        self.rebalance(root)
    }

    /// Replaces node `i` by its in-order successor (or its only child).
    fn splice_out(&mut self, i: u32) -> u32 {
        let (left, right) = (self.node(i).left, self.node(i).right);
        if left == NIL {
            return right;
        }
        if right == NIL {
            return left;
        }
        let (right, succ) = self.take_min(right);
        let s = self.node_mut(succ);
        s.left = left;
        s.right = right;
        self.rebalance(succ)
    }

    /// Detaches the leftmost node of the subtree at `i`; returns the new
    /// subtree root and the detached node.
    fn take_min(&mut self, i: u32) -> (u32, u32) {
        let left = self.node(i).left;
        if left == NIL {
            return (self.node(i).right, i);
        }
        let (left, min) = self.take_min(left);
        self.node_mut(i).left = left;
        (self.rebalance(i), min)
    }

    /// Recomputes height and `max_last` of `i` from its children.
    fn update(&mut self, i: u32) {
        let (left, right) = (self.node(i).left, self.node(i).right);
        let height = 1 + self.height(left).max(self.height(right));
        let max_last = Some(self.node(i).last)
            .max(self.max_last(left))
            .max(self.max_last(right))
            .unwrap_or_default();
        let n = self.node_mut(i);
        n.height = height;
        n.max_last = max_last;
    }

    /// Restores the AVL property at `i` (children already balanced); returns
    /// the new subtree root.
    fn rebalance(&mut self, i: u32) -> u32 {
        self.update(i);
        let (left, right) = (self.node(i).left, self.node(i).right);
        let (hl, hr) = (self.height(left), self.height(right));
        if hl > hr + 1 {
            if self.height(self.node(left).right) > self.height(self.node(left).left) {
                let left = self.rotate_left(left);
                self.node_mut(i).left = left;
            }
            self.rotate_right(i)
        } else if hr > hl + 1 {
            if self.height(self.node(right).left) > self.height(self.node(right).right) {
                let right = self.rotate_right(right);
                self.node_mut(i).right = right;
            }
            self.rotate_left(i)
        } else {
            i
        }
    }

    fn rotate_right(&mut self, i: u32) -> u32 {
        let l = self.node(i).left;
        self.node_mut(i).left = self.node(l).right;
        self.node_mut(l).right = i;
        self.update(i);
        self.update(l);
        l
    }

    fn rotate_left(&mut self, i: u32) -> u32 {
        let r = self.node(i).right;
        self.node_mut(i).right = self.node(r).left;
        self.node_mut(r).left = i;
        self.update(i);
        self.update(r);
        r
    }

    /// Checks AVL balance, ordering, augmentation and the free list.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let count = self.check_subtree(self.root, None, None).0;
        assert_eq!(count, self.len);
        let live = self.slots.iter().filter(|s| s.node.is_some()).count();
        assert_eq!(live, self.len);
        assert_eq!(self.free.len() + self.len, self.slots.len());
    }

    /// Returns (node count, height) of the subtree at `i`.
    #[cfg(test)]
    fn check_subtree(&self, i: u32, lo: Option<u32>, hi: Option<u32>) -> (usize, u8) {
        if i == NIL {
            return (0, 0);
        }
        let n = self.node(i);
        assert!(n.start <= n.last);
        assert!(lo.is_none_or(|lo| self.cmp_nodes(lo, i).is_lt()));
        assert!(hi.is_none_or(|hi| self.cmp_nodes(i, hi).is_lt()));
        let (cl, hl) = self.check_subtree(n.left, lo, Some(i));
        let (cr, hr) = self.check_subtree(n.right, Some(i), hi);
        assert!(hl.abs_diff(hr) <= 1, "unbalanced");
        assert_eq!(n.height, 1 + hl.max(hr));
        let expect = Some(n.last)
            .max(self.max_last(n.left))
            .max(self.max_last(n.right));
        assert_eq!(Some(n.max_last), expect);
        (cl + cr + 1, n.height)
    }
}
