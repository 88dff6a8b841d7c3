//! Edge-case unit tests plus a structural-invariant property test.

use proptest::prelude::*;

use crate::{double_spans, DoubleSpan, IntervalTree, NodeId, Span};

const MAX: u64 = u64::MAX;

fn hole(start: u64, last: u64) -> Span {
    Span::Hole { start, last }
}

fn used(start: u64, last: u64) -> Span {
    Span::Used { start, last }
}

fn tree_of(ranges: &[(u64, u64)]) -> IntervalTree<usize> {
    let mut t = IntervalTree::new();
    for (i, &(s, l)) in ranges.iter().enumerate() {
        t.insert(s, l, i);
    }
    t.check_invariants();
    t
}

fn spans(t: &IntervalTree<usize>, s: u64, l: u64) -> Vec<Span> {
    t.spans(s, l).collect()
}

fn ranges<V>(it: impl Iterator<Item = (NodeId, u64, u64, V)>) -> Vec<(u64, u64)> {
    it.map(|(_, s, l, _)| (s, l)).collect()
}

#[test]
fn empty_tree() {
    let t: IntervalTree<()> = IntervalTree::default();
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert_eq!(t.iter().count(), 0);
    assert!(t.first_overlapping(0, MAX).is_none());
    assert_eq!(t.spans(0, MAX).collect::<Vec<_>>(), [hole(0, MAX)]);
    assert_eq!(t.spans(7, 7).collect::<Vec<_>>(), [hole(7, 7)]);
    assert_eq!(t.holes(MAX, MAX).collect::<Vec<_>>(), [(MAX, MAX)]);
    assert_eq!(format!("{t:?}"), "{}");
}

#[test]
fn u64_max_bounds() {
    let t = tree_of(&[(MAX - 10, MAX), (0, 0)]);
    assert_eq!(
        spans(&t, 0, MAX),
        [used(0, 0), hole(1, MAX - 11), used(MAX - 10, MAX)]
    );
    assert_eq!(spans(&t, MAX, MAX), [used(MAX, MAX)]);
    assert_eq!(spans(&t, MAX - 11, MAX - 11), [hole(MAX - 11, MAX - 11)]);
    assert_eq!(ranges(t.iter_overlapping(MAX, MAX)), [(MAX - 10, MAX)]);
    assert_eq!(
        ranges(t.iter_overlapping(0, MAX)),
        [(0, 0), (MAX - 10, MAX)]
    );
    let full = tree_of(&[(0, MAX)]);
    assert_eq!(spans(&full, 0, MAX), [used(0, MAX)]);
    assert_eq!(spans(&full, 5, 9), [used(5, 9)]);
    assert_eq!(full.holes(0, MAX).count(), 0);
}

#[test]
fn adjacency_merges_but_gaps_do_not() {
    let t = tree_of(&[(10, 19), (20, 29), (31, 40)]);
    assert_eq!(
        spans(&t, 0, 50),
        [
            hole(0, 9),
            used(10, 29),
            hole(30, 30),
            used(31, 40),
            hole(41, 50)
        ]
    );
    assert_eq!(
        spans(&t, 15, 35),
        [used(15, 29), hole(30, 30), used(31, 35)]
    );
    assert_eq!(
        t.holes(0, MAX).collect::<Vec<_>>(),
        [(0, 9), (30, 30), (41, MAX)]
    );
}

#[test]
fn long_adjacent_chain_is_one_span() {
    let mut t = IntervalTree::new();
    for i in (0..1000u64).rev() {
        t.insert(i * 2, i * 2 + 1, i);
    }
    t.check_invariants();
    assert_eq!(
        t.spans(0, MAX).collect::<Vec<_>>(),
        [used(0, 1999), hole(2000, MAX)]
    );
}

#[test]
fn duplicates_and_identical_intervals() {
    let mut t = IntervalTree::new();
    let a = t.insert(5, 9, 'a');
    let b = t.insert(5, 9, 'b');
    let c = t.insert(5, 9, 'c');
    t.check_invariants();
    assert_ne!(a, b);
    assert_eq!(t.iter_overlapping(9, 9).count(), 3);
    assert_eq!(
        t.spans(0, 20).collect::<Vec<_>>(),
        [hole(0, 4), used(5, 9), hole(10, 20)]
    );
    assert_eq!(t.remove(b), Some((5, 9, 'b')));
    t.check_invariants();
    let mut left: Vec<char> = t.iter().map(|(_, _, _, v)| *v).collect();
    left.sort_unstable();
    assert_eq!(left, ['a', 'c']);
    assert_eq!(t.get(a), Some((5, 9, &'a')));
    assert_eq!(t.get(c), Some((5, 9, &'c')));
}

#[test]
fn overlapping_reserved_ranges() {
    let t = tree_of(&[(100, 200), (150, 160), (50, 120), (190, 300), (400, 400)]);
    assert_eq!(
        spans(&t, 0, 500),
        [
            hole(0, 49),
            used(50, 300),
            hole(301, 399),
            used(400, 400),
            hole(401, 500)
        ]
    );
    assert_eq!(
        ranges(t.iter_overlapping(155, 195)),
        [(100, 200), (150, 160), (190, 300)]
    );
    assert_eq!(ranges(t.iter_overlapping(301, 399)), []);
    let first = t.first_overlapping(121, 1000).map(|(_, s, l, _)| (s, l));
    assert_eq!(first, Some((100, 200)));
    // A long interval hidden in a left subtree must still be found.
    let t = tree_of(&[(0, 1000), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)]);
    assert_eq!(ranges(t.iter_overlapping(500, 600)), [(0, 1000)]);
}

#[test]
fn empty_query_range_yields_nothing() {
    let t = tree_of(&[(0, 100)]);
    assert_eq!(t.iter_overlapping(50, 40).count(), 0);
    assert!(t.first_overlapping(50, 40).is_none());
}

#[test]
#[should_panic(expected = "is after its last")]
fn insert_inverted_panics() {
    IntervalTree::new().insert(2, 1, ());
}

#[test]
#[should_panic(expected = "is after its last")]
fn spans_inverted_panics() {
    let _ = IntervalTree::<()>::new().spans(2, 1);
}

#[test]
#[should_panic(expected = "is after its last")]
fn double_spans_inverted_panics() {
    let t = IntervalTree::<()>::new();
    let _ = double_spans(&t, &t, 2, 1);
}

#[test]
fn stale_node_ids() {
    let mut t = IntervalTree::new();
    let a = t.insert(1, 2, 10);
    assert_eq!(t.remove(a), Some((1, 2, 10)));
    assert_eq!(t.remove(a), None);
    assert_eq!(t.get(a), None);
    assert_eq!(t.get_mut(a), None);
    // The slot is reused, but the old handle stays stale.
    let b = t.insert(3, 4, 20);
    assert_ne!(a, b);
    assert_eq!(t.get(a), None);
    assert_eq!(t.remove(a), None);
    assert_eq!(t.len(), 1);
    *t.get_mut(b).expect("live") += 1;
    assert_eq!(t.get(b), Some((3, 4, &21)));
    t.clear();
    assert!(t.is_empty());
    assert_eq!(t.get(b), None);
    assert_eq!(t.remove(b), None);
    let c = t.insert(5, 6, 30);
    assert_eq!(t.get(b), None);
    assert_eq!(t.get(c), Some((5, 6, &30)));
    t.check_invariants();
}

#[test]
fn retain_keeps_matching_nodes() {
    let mut t = IntervalTree::new();
    let ids: Vec<NodeId> = (0..100u64)
        .map(|i| t.insert(i * 10, i * 10 + 5, i))
        .collect();
    let mut seen = Vec::new();
    t.retain(|s, l, v| {
        seen.push(s);
        assert_eq!(l, s + 5);
        v % 3 == 0
    });
    t.check_invariants();
    assert_eq!(seen, (0..100).map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(t.len(), 34);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(t.get(*id).is_some(), i % 3 == 0);
    }
    t.retain(|_, _, _| false);
    assert!(t.is_empty());
    t.check_invariants();
}

#[test]
fn clone_and_debug() {
    let t = tree_of(&[(3, 4), (1, 2)]);
    let u = t.clone();
    assert_eq!(ranges(u.iter()), [(1, 2), (3, 4)]);
    assert_eq!(format!("{u:?}"), "{1..=2: 1, 3..=4: 0}");
    assert_eq!(t.iter().len(), 2);
}

#[test]
fn double_span_first_tree_wins() {
    let a = tree_of(&[(10, 19), (30, 39)]);
    let b = tree_of(&[(5, 12), (15, 34), (50, MAX)]);
    let got: Vec<DoubleSpan> = double_spans(&a, &b, 0, MAX).collect();
    assert_eq!(
        got,
        [
            DoubleSpan::Hole { start: 0, last: 4 },
            DoubleSpan::UsedB { start: 5, last: 9 },
            DoubleSpan::UsedA {
                start: 10,
                last: 19
            },
            DoubleSpan::UsedB {
                start: 20,
                last: 29
            },
            DoubleSpan::UsedA {
                start: 30,
                last: 39
            },
            DoubleSpan::Hole {
                start: 40,
                last: 49
            },
            DoubleSpan::UsedB {
                start: 50,
                last: MAX
            },
        ]
    );
    let clipped: Vec<DoubleSpan> = double_spans(&a, &b, 12, 31).collect();
    assert_eq!(
        clipped,
        [
            DoubleSpan::UsedA {
                start: 12,
                last: 19
            },
            DoubleSpan::UsedB {
                start: 20,
                last: 29
            },
            DoubleSpan::UsedA {
                start: 30,
                last: 31
            },
        ]
    );
    let empty = IntervalTree::<()>::new();
    let only_b: Vec<DoubleSpan> = double_spans(&empty, &b, MAX, MAX).collect();
    assert_eq!(
        only_b,
        [DoubleSpan::UsedB {
            start: MAX,
            last: MAX
        }]
    );
}

#[test]
fn large_tree_stays_balanced() {
    let mut t = IntervalTree::new();
    let ids: Vec<NodeId> = (0..5000u64)
        .map(|i| t.insert((i * 7919) % 5000 * 4, (i * 7919) % 5000 * 4 + 2, i))
        .collect();
    t.check_invariants();
    for id in ids.iter().step_by(2) {
        assert!(t.remove(*id).is_some());
    }
    t.check_invariants();
    assert_eq!(t.len(), 2500);
    assert_eq!(t.holes(0, 20_000).count(), 2501);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..64, 0u64..8).prop_map(|(s, n)| Op::Insert(s, s + n)),
        2 => any::<usize>().prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn structure_holds_after_every_op(ops in prop::collection::vec(op(), 1..120)) {
        let mut t = IntervalTree::new();
        let mut ids = Vec::new();
        for op in ops {
            match op {
                Op::Insert(s, l) => ids.push(t.insert(s, l, ())),
                Op::Remove(k) if !ids.is_empty() => {
                    let id = ids.swap_remove(k % ids.len());
                    prop_assert!(t.remove(id).is_some());
                }
                Op::Remove(_) => {}
            }
            t.check_invariants();
            let starts: Vec<u64> = t.iter().map(|(_, s, _, _)| s).collect();
            prop_assert!(starts.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
