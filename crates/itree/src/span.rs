//! Span iteration over one tree (`interval_tree_span_iter`) and over two
//! trees (`interval_tree_double_span_iter`).

use std::iter::FusedIterator;

use crate::tree::IntervalTree;

/// One span of [`IntervalTree::spans`]; bounds are inclusive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Span {
    /// A range covered by no node.
    Hole {
        /// First address of the hole.
        start: u64,
        /// Last address of the hole (inclusive).
        last: u64,
    },
    /// A maximal range covered by the union of the nodes (clipped).
    Used {
        /// First address of the used range.
        start: u64,
        /// Last address of the used range (inclusive).
        last: u64,
    },
}

impl Span {
    /// First address of the span.
    pub fn start(&self) -> u64 {
        match *self {
            Span::Hole { start, .. } | Span::Used { start, .. } => start,
        }
    }

    /// Last address of the span (inclusive).
    pub fn last(&self) -> u64 {
        match *self {
            Span::Hole { last, .. } | Span::Used { last, .. } => last,
        }
    }

    /// Whether this is a [`Span::Hole`].
    pub fn is_hole(&self) -> bool {
        matches!(self, Span::Hole { .. })
    }
}

/// One span of [`double_spans`]; bounds are inclusive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DoubleSpan {
    /// A range covered by neither tree.
    Hole {
        /// First address of the hole.
        start: u64,
        /// Last address of the hole (inclusive).
        last: u64,
    },
    /// A maximal used range of the first tree (clipped).
    UsedA {
        /// First address of the range.
        start: u64,
        /// Last address of the range (inclusive).
        last: u64,
    },
    /// A used range of the second tree inside a hole of the first tree.
    UsedB {
        /// First address of the range.
        start: u64,
        /// Last address of the range (inclusive).
        last: u64,
    },
}

impl DoubleSpan {
    /// First address of the span.
    pub fn start(&self) -> u64 {
        match *self {
            DoubleSpan::Hole { start, .. }
            | DoubleSpan::UsedA { start, .. }
            | DoubleSpan::UsedB { start, .. } => start,
        }
    }

    /// Last address of the span (inclusive).
    pub fn last(&self) -> u64 {
        match *self {
            DoubleSpan::Hole { last, .. }
            | DoubleSpan::UsedA { last, .. }
            | DoubleSpan::UsedB { last, .. } => last,
        }
    }

    /// Whether this is a [`DoubleSpan::Hole`].
    pub fn is_hole(&self) -> bool {
        matches!(self, DoubleSpan::Hole { .. })
    }
}

/// The span of `tree` beginning at `pos`, clipped to `limit` (`pos <= limit`).
fn span_at<V>(tree: &IntervalTree<V>, pos: u64, limit: u64) -> Span {
    match tree.reach_from(pos) {
        Some(reach) if reach >= pos => Span::Used {
            start: pos,
            last: used_end(tree, reach, limit),
        },
        _ => Span::Hole {
            start: pos,
            last: hole_end(tree, pos, limit),
        },
    }
}

/// Extends a used run covering up to `end` across overlapping or adjacent
/// nodes, stopping at `limit`.
fn used_end<V>(tree: &IntervalTree<V>, mut end: u64, limit: u64) -> u64 {
    while end < limit {
        // `end < limit <= u64::MAX`, so `end + 1` cannot overflow.
        match tree.reach_from(end + 1) {
            Some(reach) if reach > end => end = reach,
            _ => break,
        }
    }
    end.min(limit)
}

/// End of the hole beginning at the uncovered address `pos`.
fn hole_end<V>(tree: &IntervalTree<V>, pos: u64, limit: u64) -> u64 {
    // The next start is `> pos`, so subtracting one cannot underflow.
    tree.next_start_after(pos)
        .map_or(limit, |next| (next - 1).min(limit))
}

/// Where the span after one ending at `end` begins, if still `<= limit`.
fn advance(end: u64, limit: u64) -> Option<u64> {
    (end < limit).then(|| end + 1)
}

/// Iterator over the spans of one tree, from [`IntervalTree::spans`].
pub struct Spans<'a, V> {
    tree: &'a IntervalTree<V>,
    next: Option<u64>,
    last: u64,
}

impl<V> Clone for Spans<'_, V> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree,
            next: self.next,
            last: self.last,
        }
    }
}

impl<'a, V> Spans<'a, V> {
    pub(crate) fn new(tree: &'a IntervalTree<V>, start: u64, last: u64) -> Self {
        assert!(
            start <= last,
            "span query start {start:#x} is after its last {last:#x}"
        );
        Self {
            tree,
            next: Some(start),
            last,
        }
    }
}

impl<V> Iterator for Spans<'_, V> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        let pos = self.next?;
        let span = span_at(self.tree, pos, self.last);
        self.next = advance(span.last(), self.last);
        Some(span)
    }
}

impl<V> FusedIterator for Spans<'_, V> {}

/// Iterator over the spans of two trees, from [`double_spans`].
pub struct DoubleSpans<'t, A, B> {
    a: &'t IntervalTree<A>,
    b: &'t IntervalTree<B>,
    next: Option<u64>,
    last: u64,
}

impl<A, B> Clone for DoubleSpans<'_, A, B> {
    fn clone(&self) -> Self {
        Self {
            a: self.a,
            b: self.b,
            next: self.next,
            last: self.last,
        }
    }
}

/// Spans over the union of two trees within `[start, last]`; where both
/// cover, tree `a` wins.
///
/// [`DoubleSpan::UsedA`] spans are the used spans of `a` exactly as
/// [`IntervalTree::spans`] reports them. Inside each hole of `a`, the used
/// spans of `b` are reported as [`DoubleSpan::UsedB`], clipped to that hole.
/// Adjacent `UsedA` and `UsedB` spans are not merged.
///
/// # Panics
///
/// Panics if `start > last` (a caller bug).
pub fn double_spans<'t, A, B>(
    a: &'t IntervalTree<A>,
    b: &'t IntervalTree<B>,
    start: u64,
    last: u64,
) -> DoubleSpans<'t, A, B> {
    assert!(
        start <= last,
        "span query start {start:#x} is after its last {last:#x}"
    );
    DoubleSpans {
        a,
        b,
        next: Some(start),
        last,
    }
}

impl<A, B> Iterator for DoubleSpans<'_, A, B> {
    type Item = DoubleSpan;

    fn next(&mut self) -> Option<DoubleSpan> {
        let pos = self.next?;
        let span = match span_at(self.a, pos, self.last) {
            Span::Used { start, last } => DoubleSpan::UsedA { start, last },
            Span::Hole { last: a_hole, .. } => match span_at(self.b, pos, a_hole) {
                Span::Used { start, last } => DoubleSpan::UsedB { start, last },
                Span::Hole { start, last } => DoubleSpan::Hole { start, last },
            },
        };
        self.next = advance(span.last(), self.last);
        Some(span)
    }
}

impl<A, B> FusedIterator for DoubleSpans<'_, A, B> {}
