//! Process-wide per-page pin counts: the model of `struct page` pin
//! refcounts (`FOLL_PIN`) for the userspace iommufd.
//!
//! [`PinTable`] keeps `[start_page, end_page) -> count` segments in a
//! `BTreeMap`, splitting at range boundaries and merging equal neighbours, so
//! pinning 1 GiB (262144 pages) costs a few segment operations, not one per
//! page. The free functions ([`pin`], [`unpin`], [`count`], [`total`]) act on
//! the single process-wide table.
//!
//! Addresses are page-aligned virtual addresses (4096-byte pages).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Granule of the pin counts.
pub const PAGE_SIZE: u64 = 4096;

/// Pin counts of a set of pages, as merged segments.
#[derive(Debug, Default)]
pub struct PinTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `start_page -> (end_page, count)`; disjoint, counts non-zero, no two
    /// touching segments with equal counts.
    segs: BTreeMap<u64, (u64, u32)>,
    /// Sum of count × pages.
    total: u64,
}

impl Inner {
    /// Makes `p` a segment boundary (splits the segment strictly containing it).
    fn split(&mut self, p: u64) {
        if let Some((&s, &(e, c))) = self.segs.range(..p).next_back() {
            if e > p {
                self.segs.insert(s, (p, c));
                self.segs.insert(p, (e, c));
            }
        }
    }

    /// Merges touching equal segments whose starts lie in `[lo, hi]`, plus
    /// the segment just before `lo`. (No allocation: the table's mutex is
    /// held, and every map and unmap of pinned memory takes it.)
    fn merge(&mut self, lo: u64, hi: u64) {
        let mut prev = self
            .segs
            .range(..lo)
            .next_back()
            .map(|(&k, &(e, c))| (k, e, c));
        let mut from = lo;
        while from <= hi {
            let Some((&k, &(e, c))) = self.segs.range(from..=hi).next() else {
                break;
            };
            match prev {
                Some((pk, pe, pc)) if pe == k && pc == c => {
                    self.segs.remove(&k);
                    self.segs.insert(pk, (e, c));
                    prev = Some((pk, e, c));
                }
                _ => prev = Some((k, e, c)),
            }
            let Some(next) = k.checked_add(1) else {
                break;
            };
            from = next;
        }
    }

    /// Adds one pin to (or, with `!up`, removes one from) every page in
    /// `[s, e)`. Returns whether an unpin found unpinned pages (saturated).
    fn apply(&mut self, s: u64, e: u64, up: bool) -> bool {
        if s >= e {
            return false;
        }
        self.split(s);
        self.split(e);
        let mut underflow = false;
        let mut cursor = s;
        while cursor < e {
            // The next segment inside `[cursor, e)` (segments end at `e` at
            // the latest after the splits), and the gap before it.
            let next = self
                .segs
                .range(cursor..e)
                .next()
                .map(|(&a, &(b, c))| (a, b, c));
            let gap_end = next.map_or(e, |(a, _, _)| a);
            if cursor < gap_end {
                if up {
                    self.segs.insert(cursor, (gap_end, 1));
                    self.total += gap_end - cursor;
                } else {
                    underflow = true;
                }
            }
            let Some((a, b, c)) = next else {
                break;
            };
            if up {
                debug_assert!(c < u32::MAX, "pin count overflow");
                let n = c.saturating_add(1);
                self.total += (b - a) * u64::from(n - c);
                self.segs.insert(a, (b, n));
            } else if c == 1 {
                self.segs.remove(&a);
                self.total -= b - a;
            } else {
                self.segs.insert(a, (b, c - 1));
                self.total -= b - a;
            }
            cursor = b;
        }
        self.merge(s, e);
        underflow
    }

    fn count(&self, page: u64) -> u32 {
        match self.segs.range(..=page).next_back() {
            Some((_, &(e, c))) if e > page => c,
            _ => 0,
        }
    }
}

/// `[first_page, end_page)` of `npages` pages from `va` (saturating).
fn pages(va: u64, npages: u64) -> (u64, u64) {
    debug_assert!(
        va.is_multiple_of(PAGE_SIZE),
        "unaligned pin address {va:#x}"
    );
    let s = va / PAGE_SIZE;
    (s, s.saturating_add(npages))
}

impl PinTable {
    /// An empty table.
    pub const fn new() -> Self {
        PinTable {
            inner: Mutex::new(Inner {
                segs: BTreeMap::new(),
                total: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a pin to each of the `npages` pages starting at `va`.
    pub fn pin(&self, va: u64, npages: u64) {
        let (s, e) = pages(va, npages);
        self.lock().apply(s, e, true);
    }

    /// Drops a pin from each of the `npages` pages starting at `va`.
    /// Unpinning an unpinned page is a caller bug: it saturates at 0 (and
    /// panics in debug builds, after the table is updated).
    pub fn unpin(&self, va: u64, npages: u64) {
        let (s, e) = pages(va, npages);
        let underflow = self.lock().apply(s, e, false);
        debug_assert!(
            !underflow,
            "unpin of unpinned pages in [{va:#x}, +{npages} pages)"
        );
    }

    /// Pin count of the page containing `va`.
    pub fn count(&self, va: u64) -> u32 {
        self.lock().count(va / PAGE_SIZE)
    }

    /// Sum of the pin counts of all pages.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Number of segments (for tests and diagnostics).
    pub fn segments(&self) -> usize {
        self.lock().segs.len()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let g = self.lock();
        let mut prev: Option<(u64, u32)> = None;
        let mut sum = 0;
        for (&s, &(e, c)) in &g.segs {
            assert!(s < e && c > 0, "bad segment {s}..{e} x{c}");
            if let Some((pe, pc)) = prev {
                assert!(pe <= s, "overlap");
                assert!(!(pe == s && pc == c), "unmerged neighbours at {s}");
            }
            sum += (e - s) * u64::from(c);
            prev = Some((e, c));
        }
        assert_eq!(sum, g.total);
    }
}

static GLOBAL: PinTable = PinTable::new();

/// Adds a pin to each of the `npages` pages at `va` (page-aligned).
pub fn pin(va: u64, npages: u64) {
    GLOBAL.pin(va, npages);
}

/// Drops a pin from each of the `npages` pages at `va` (see [`PinTable::unpin`]).
pub fn unpin(va: u64, npages: u64) {
    GLOBAL.unpin(va, npages);
}

/// Pin count of the page containing `va`.
pub fn count(va: u64) -> u32 {
    GLOBAL.count(va)
}

/// Sum of all pins in the process (for leak checks).
pub fn total() -> u64 {
    GLOBAL.total()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: u64 = PAGE_SIZE;

    #[test]
    fn basic_split_merge() {
        let t = PinTable::new();
        t.pin(10 * P, 10);
        assert_eq!(t.segments(), 1);
        t.pin(12 * P, 3);
        assert_eq!(t.segments(), 3);
        assert_eq!(
            (
                t.count(11 * P),
                t.count(12 * P + 5),
                t.count(14 * P),
                t.count(15 * P)
            ),
            (1, 2, 2, 1)
        );
        assert_eq!(t.count(20 * P), 0);
        assert_eq!(t.total(), 13);
        t.unpin(12 * P, 3);
        assert_eq!(t.segments(), 1);
        t.pin(20 * P, 5); // touching, equal count: merges
        assert_eq!(t.segments(), 1);
        t.unpin(10 * P, 15);
        assert_eq!((t.segments(), t.total()), (0, 0));
        t.pin(0, 0);
        assert_eq!(t.segments(), 0);
        t.check_invariants();
    }

    #[test]
    fn huge_ranges_are_cheap() {
        let t = PinTable::new();
        let gib = 262_144;
        for i in 0..1000u64 {
            t.pin(0x4000_0000 + i * P, gib);
        }
        assert!(t.segments() <= 2000);
        assert_eq!(t.total(), 1000 * gib);
        assert_eq!(t.count(0x4000_0000 + 999 * P), 1000);
        for i in 0..1000u64 {
            t.unpin(0x4000_0000 + i * P, gib);
        }
        assert_eq!((t.segments(), t.total()), (0, 0));
    }

    #[test]
    fn global_functions() {
        let va = 0x7000_0000_0000;
        pin(va, 3);
        assert_eq!(count(va + 2 * P + 17), 1);
        assert!(total() >= 3);
        unpin(va, 3);
        assert_eq!(count(va), 0);
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "unpin of unpinned"))]
    fn unpin_unpinned_saturates() {
        let t = PinTable::new();
        t.pin(P, 1);
        t.unpin(0, 3);
        assert_eq!((t.count(0), t.count(P), t.total()), (0, 0, 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Pin(u64, u64),
        Unpin(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..64, 0u64..20).prop_map(|(s, n)| Op::Pin(s, n)),
            (0u64..64, 0u64..20).prop_map(|(s, n)| Op::Unpin(s, n)),
        ]
    }

    proptest! {
        #[test]
        fn matches_dense_model(ops in proptest::collection::vec(op(), 1..60)) {
            let t = PinTable::new();
            let mut model = [0u32; 96];
            for op in ops {
                match op {
                    Op::Pin(s, n) => {
                        t.pin(s * P, n);
                        for m in &mut model[s as usize..(s + n) as usize] { *m += 1; }
                    }
                    Op::Unpin(s, n) => {
                        // Only legal unpins (the model skips the others).
                        if model[s as usize..(s + n) as usize].iter().all(|&c| c > 0) {
                            t.unpin(s * P, n);
                            for m in &mut model[s as usize..(s + n) as usize] { *m -= 1; }
                        }
                    }
                }
                t.check_invariants();
                for (i, &m) in model.iter().enumerate() {
                    prop_assert_eq!(t.count(i as u64 * P + 123), m, "page {}", i);
                }
                prop_assert_eq!(t.total(), model.iter().map(|&c| u64::from(c)).sum::<u64>());
            }
        }
    }
}
