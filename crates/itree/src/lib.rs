//! Augmented interval tree over inclusive `u64` ranges, with span iteration over the gaps and runs it covers.
//!
//! Kernel: include/linux/interval_tree.h, lib/interval_tree.c, drivers/iommu/iommufd/double_span.h (v6.12)
//!
//! Intervals are inclusive `[start, last]` pairs so that a range may end at
//! `u64::MAX`. Intervals may overlap and may be duplicated; each inserted
//! interval gets its own [`NodeId`]. The tree is an arena-backed AVL tree
//! ordered by `(start, last)` and augmented with the largest `last` of every
//! subtree, so insertion, removal and each step of an overlap or span query
//! cost `O(log n)`.
//!
//! [`IntervalTree::spans`] mirrors the kernel's `interval_tree_span_iter`:
//! it partitions a query range into alternating [`Span::Used`] runs (the
//! union of the nodes, with overlapping or adjacent nodes merged) and
//! [`Span::Hole`] gaps. [`double_spans`] mirrors
//! `interval_tree_double_span_iter`, where the first tree wins.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod iter;
mod span;
mod tree;

pub use iter::{Iter, Overlapping};
pub use span::{double_spans, DoubleSpan, DoubleSpans, Span, Spans};
pub use tree::{IntervalTree, NodeId};

#[cfg(test)]
mod tests;
