//! Interval-tree span arithmetic exhaustively at 8 bits and at the top of the
//! `u64` range: for fixed sets of ranges, every query window `[start, last]` of
//! the universe gets exactly the used spans and holes (adjacent ranges merged) and
//! the same first overlapping range as a brute-force sweep over the points.

use itree::{double_spans, DoubleSpan, IntervalTree, Span};

/// Maps the 8-bit universe to a base (0 or the top 256 values of u64).
fn universe(base: u64, ranges: &[(u8, u8)]) -> (IntervalTree<()>, Vec<(u64, u64)>) {
    let mut t = IntervalTree::new();
    let mut v = Vec::new();
    for &(s, l) in ranges {
        let (s, l) = (base + u64::from(s), base + u64::from(l));
        t.insert(s, l, ());
        v.push((s, l));
    }
    (t, v)
}

/// Spans of `[start, last]` by a sweep over its points.
fn brute(used: &[(u64, u64)], start: u64, last: u64) -> Vec<(bool, u64, u64)> {
    let mut out: Vec<(bool, u64, u64)> = Vec::new();
    let mut p = start;
    loop {
        let is_used = used.iter().any(|&(s, l)| s <= p && p <= l);
        match out.last_mut() {
            Some(x) if x.0 == is_used => x.2 = p,
            _ => out.push((is_used, p, p)),
        }
        if p == last {
            return out;
        }
        p += 1;
    }
}

const SETS: [&[(u8, u8)]; 6] = [
    &[],
    &[(0, 255)],
    &[(0, 0), (255, 255)],
    &[(10, 20), (21, 30), (25, 40), (100, 100), (250, 255)],
    &[(5, 9), (7, 8), (11, 11), (200, 254)],
    &[(1, 1), (3, 3), (5, 5), (128, 200), (130, 140)],
];

#[test]
fn spans_and_overlaps_are_exact_at_8_bits_and_u64_edges() {
    for base in [0u64, u64::MAX - 255] {
        for set in SETS {
            let (t, used) = universe(base, set);
            for s in 0u64..=255 {
                for l in s..=255 {
                    let (start, last) = (base + s, base + l);
                    let got: Vec<(bool, u64, u64)> = t
                        .spans(start, last)
                        .map(|sp| match sp {
                            Span::Used { start, last } => (true, start, last),
                            Span::Hole { start, last } => (false, start, last),
                        })
                        .collect();
                    assert_eq!(
                        got,
                        brute(&used, start, last),
                        "set {set:?} base {base:#x} [{s}, {l}]"
                    );
                    let first = t.first_overlapping(start, last).map(|(_, a, b, _)| (a, b));
                    let want = used
                        .iter()
                        .filter(|&&(a, b)| a <= last && start <= b)
                        .min_by_key(|&&(a, _)| a)
                        .map(|&(a, _)| a);
                    assert_eq!(
                        first.map(|f| f.0),
                        want,
                        "first overlapping, set {set:?} [{s}, {l}]"
                    );
                }
            }
        }
    }
}

#[test]
fn double_span_holes_are_exact_at_8_bits_and_u64_edges() {
    for base in [0u64, u64::MAX - 255] {
        for (i, a) in SETS.iter().enumerate() {
            let b = SETS[(i + 3) % SETS.len()];
            let (ta, ua) = universe(base, a);
            let (tb, ub) = universe(
                base,
                &b.iter()
                    .map(|&(s, l)| (s / 2, l / 2 + 1))
                    .collect::<Vec<_>>(),
            );
            let both: Vec<(u64, u64)> = ua.iter().chain(&ub).copied().collect();
            for s in (0u64..=255).step_by(3) {
                for l in s..=255 {
                    let (start, last) = (base + s, base + l);
                    let holes: Vec<(u64, u64)> = double_spans(&ta, &tb, start, last)
                        .filter_map(|sp| match sp {
                            DoubleSpan::Hole { start, last } => Some((start, last)),
                            _ => None,
                        })
                        .collect();
                    let want: Vec<(u64, u64)> = brute(&both, start, last)
                        .into_iter()
                        .filter(|x| !x.0)
                        .map(|x| (x.1, x.2))
                        .collect();
                    assert_eq!(holes, want, "a {a:?} b {b:?} base {base:#x} [{s}, {l}]");
                }
            }
        }
    }
}
