//! Model-based property test: random operation sequences on two trees are
//! checked after every step against a dense brute-force model.
//!
//! The model works in a universe of 256 points `0..=255`, mapped into the
//! tree's coordinates as `base + point`. `base` is 0, `u64::MAX - 255` or
//! random, so both ends of the `u64` space are exercised; queries may also
//! extend to the real `0` or `u64::MAX`, beyond the universe.

use itree::{double_spans, DoubleSpan, IntervalTree, NodeId, Span};
use proptest::prelude::*;

const MAX: u64 = u64::MAX;
const TOP: u64 = MAX - 255;

/// Which of the two trees an operation acts on.
#[derive(Debug, Clone, Copy)]
enum Which {
    A,
    B,
}

#[derive(Debug, Clone)]
enum Action {
    Insert(Which, u8, u8),
    Remove(Which, usize),
    RemoveStale(Which, usize),
    Bump(Which, usize),
    Retain(Which, u32),
    Clear(Which),
    Nothing,
}

/// A query endpoint: a universe point or the real edge of `u64`.
#[derive(Debug, Clone, Copy)]
enum End {
    Point(u8),
    Edge,
}

#[derive(Debug, Clone)]
struct Step {
    action: Action,
    query: (End, End),
}

/// One tree plus its model: live nodes as `(id, start, last, value)` in
/// universe coordinates, and handles that have been removed.
#[derive(Default)]
struct Pair {
    tree: IntervalTree<u32>,
    live: Vec<(NodeId, u8, u8, u32)>,
    dead: Vec<NodeId>,
}

impl Pair {
    fn covers(&self, x: u8) -> bool {
        self.live.iter().any(|&(_, s, l, _)| s <= x && x <= l)
    }
}

struct World {
    base: u64,
    a: Pair,
    b: Pair,
    next_value: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Hole,
    A,
    B,
}

impl World {
    fn pair(&mut self, which: Which) -> &mut Pair {
        match which {
            Which::A => &mut self.a,
            Which::B => &mut self.b,
        }
    }

    fn real(&self, x: u8) -> u64 {
        self.base + u64::from(x)
    }

    fn apply(&mut self, action: &Action) -> Result<(), TestCaseError> {
        let base = self.base;
        match *action {
            Action::Insert(w, s, len) => {
                let l = s.saturating_add(len);
                let v = self.next_value;
                self.next_value += 1;
                let p = self.pair(w);
                let id = p.tree.insert(base + u64::from(s), base + u64::from(l), v);
                p.live.push((id, s, l, v));
            }
            Action::Remove(w, k) => {
                let p = self.pair(w);
                if !p.live.is_empty() {
                    let (id, s, l, v) = p.live.swap_remove(k % p.live.len());
                    let got = p.tree.remove(id);
                    prop_assert_eq!(got, Some((base + u64::from(s), base + u64::from(l), v)));
                    p.dead.push(id);
                }
            }
            Action::RemoveStale(w, k) => {
                let p = self.pair(w);
                if !p.dead.is_empty() {
                    let id = p.dead[k % p.dead.len()];
                    prop_assert_eq!(p.tree.get(id), None);
                    prop_assert_eq!(p.tree.get_mut(id), None);
                    prop_assert_eq!(p.tree.remove(id), None);
                }
            }
            Action::Bump(w, k) => {
                let p = self.pair(w);
                if !p.live.is_empty() {
                    let n = p.live.len();
                    let entry = &mut p.live[k % n];
                    entry.3 += 1_000_000;
                    let v = p.tree.get_mut(entry.0);
                    prop_assert!(v.is_some());
                    if let Some(v) = v {
                        *v += 1_000_000;
                    }
                }
            }
            Action::Retain(w, m) => {
                let p = self.pair(w);
                p.tree.retain(|_, _, v| v % m != 0);
                let (keep, drop): (Vec<_>, Vec<_>) = p.live.drain(..).partition(|e| e.3 % m != 0);
                p.dead.extend(drop.into_iter().map(|e| e.0));
                p.live = keep;
            }
            Action::Clear(w) => {
                let p = self.pair(w);
                p.tree.clear();
                p.dead.extend(p.live.drain(..).map(|e| e.0));
            }
            Action::Nothing => {}
        }
        Ok(())
    }

    /// Run-length encodes `class` over `[qs, ql]`; points outside the
    /// universe are `outside`.
    fn runs<K: Copy + PartialEq>(
        &self,
        qs: u64,
        ql: u64,
        outside: K,
        class: impl Fn(u8) -> K,
    ) -> Vec<(u64, u64, K)> {
        let top = self.real(255);
        let mut pieces = Vec::new();
        if qs < self.base {
            pieces.push((qs, ql.min(self.base - 1), outside));
        }
        for x in 0..=255u8 {
            let p = self.real(x);
            if qs <= p && p <= ql {
                pieces.push((p, p, class(x)));
            }
        }
        if ql > top {
            pieces.push((qs.max(top + 1), ql, outside));
        }
        let mut merged: Vec<(u64, u64, K)> = Vec::new();
        for (s, l, k) in pieces {
            match merged.last_mut() {
                Some(prev) if prev.2 == k => prev.1 = l,
                _ => merged.push((s, l, k)),
            }
        }
        merged
    }

    fn check(&self, qs: u64, ql: u64) -> Result<(), TestCaseError> {
        for p in [&self.a, &self.b] {
            self.check_pair(p, qs, ql)?;
        }
        self.check_double(qs, ql)
    }

    fn check_pair(&self, p: &Pair, qs: u64, ql: u64) -> Result<(), TestCaseError> {
        let to_real = |&(id, s, l, v): &(NodeId, u8, u8, u32)| (id, self.real(s), self.real(l), v);
        let mut want: Vec<_> = p.live.iter().map(to_real).collect();
        want.sort_unstable_by_key(|e| (e.1, e.2, e.3));

        prop_assert_eq!(p.tree.len(), want.len());
        prop_assert_eq!(p.tree.is_empty(), want.is_empty());
        for &(id, s, l, v) in &want {
            prop_assert_eq!(p.tree.get(id), Some((s, l, &v)));
        }
        check_listing(p.tree.iter(), &want)?;

        let hits: Vec<_> = want
            .iter()
            .copied()
            .filter(|e| e.1 <= ql && e.2 >= qs)
            .collect();
        check_listing(p.tree.iter_overlapping(qs, ql), &hits)?;
        let first = p
            .tree
            .first_overlapping(qs, ql)
            .map(|e| (e.0, e.1, e.2, *e.3));
        let first_iter = p
            .tree
            .iter_overlapping(qs, ql)
            .next()
            .map(|e| (e.0, e.1, e.2, *e.3));
        prop_assert_eq!(first, first_iter);
        prop_assert_eq!(first.map(|e| e.1), hits.first().map(|e| e.1));

        let spans: Vec<Span> = self
            .runs(qs, ql, false, |x| p.covers(x))
            .into_iter()
            .map(|(start, last, used)| {
                if used {
                    Span::Used { start, last }
                } else {
                    Span::Hole { start, last }
                }
            })
            .collect();
        prop_assert_eq!(p.tree.spans(qs, ql).collect::<Vec<_>>(), spans.clone());
        let holes: Vec<(u64, u64)> = spans
            .iter()
            .filter(|s| s.is_hole())
            .map(|s| (s.start(), s.last()))
            .collect();
        prop_assert_eq!(p.tree.holes(qs, ql).collect::<Vec<_>>(), holes);
        Ok(())
    }

    fn check_double(&self, qs: u64, ql: u64) -> Result<(), TestCaseError> {
        let class = |x| {
            if self.a.covers(x) {
                Class::A
            } else if self.b.covers(x) {
                Class::B
            } else {
                Class::Hole
            }
        };
        let want: Vec<DoubleSpan> = self
            .runs(qs, ql, Class::Hole, class)
            .into_iter()
            .map(|(start, last, k)| match k {
                Class::Hole => DoubleSpan::Hole { start, last },
                Class::A => DoubleSpan::UsedA { start, last },
                Class::B => DoubleSpan::UsedB { start, last },
            })
            .collect();
        let got: Vec<DoubleSpan> = double_spans(&self.a.tree, &self.b.tree, qs, ql).collect();
        prop_assert_eq!(got, want);
        Ok(())
    }

    fn query(&self, (s, l): (End, End)) -> (u64, u64) {
        let qs = match s {
            End::Point(x) => self.real(x),
            End::Edge => 0,
        };
        let ql = match l {
            End::Point(x) => self.real(x),
            End::Edge => MAX,
        };
        (qs.min(ql), qs.max(ql))
    }
}

/// Checks an ascending listing against the expected multiset of nodes.
fn check_listing<'a>(
    it: impl Iterator<Item = (NodeId, u64, u64, &'a u32)>,
    want: &[(NodeId, u64, u64, u32)],
) -> Result<(), TestCaseError> {
    let got: Vec<_> = it.map(|(id, s, l, v)| (id, s, l, *v)).collect();
    prop_assert!(
        got.windows(2).all(|w| w[0].1 <= w[1].1),
        "not ascending: {:?}",
        got
    );
    let mut sorted = got;
    sorted.sort_unstable_by_key(|e| (e.1, e.2, e.3));
    prop_assert_eq!(sorted, want.to_vec());
    Ok(())
}

fn which() -> impl Strategy<Value = Which> {
    prop_oneof![Just(Which::A), Just(Which::B)]
}

fn action() -> impl Strategy<Value = Action> {
    let len = prop_oneof![6 => 0u8..8, 1 => any::<u8>()];
    prop_oneof![
        12 => (which(), any::<u8>(), len).prop_map(|(w, s, n)| Action::Insert(w, s, n)),
        6 => (which(), any::<usize>()).prop_map(|(w, k)| Action::Remove(w, k)),
        2 => (which(), any::<usize>()).prop_map(|(w, k)| Action::RemoveStale(w, k)),
        1 => (which(), any::<usize>()).prop_map(|(w, k)| Action::Bump(w, k)),
        1 => (which(), 2u32..5).prop_map(|(w, m)| Action::Retain(w, m)),
        1 => which().prop_map(Action::Clear),
        2 => Just(Action::Nothing),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![8 => any::<u8>().prop_map(End::Point), 1 => Just(End::Edge)]
}

fn step() -> impl Strategy<Value = Step> {
    (action(), end(), end()).prop_map(|(action, s, l)| Step {
        action,
        query: (s, l),
    })
}

fn base() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(TOP), 0..=TOP]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn matches_dense_model(base in base(), steps in prop::collection::vec(step(), 1..80)) {
        let mut world = World { base, a: Pair::default(), b: Pair::default(), next_value: 0 };
        for step in &steps {
            world.apply(&step.action)?;
            let (qs, ql) = world.query(step.query);
            world.check(qs, ql)?;
            world.check(world.real(0), world.real(255))?;
            world.check(0, MAX)?;
        }
    }
}
