//! One conformance suite, instantiated for every format and configuration.
//!
//! Kernel: `drivers/iommu/generic_pt/kunit_iommu_pt.h` and `kunit_generic_pt.h`
//! (the generic_pt kunit suite run against every format), with a brute-force
//! reference model in the style of rangemap's oracle tests.
//!
//! - `random_ops_match_reference`: proptest sequences of map / map_range / unmap /
//!   DMA touch / dirty read, each followed by a full comparison of the table's
//!   leaves with a `BTreeMap` reference, reader-path checks (`iova_to_phys`,
//!   `translate`) and the structural invariant check. `PT_CONFORMANCE_CASES`
//!   raises the number of cases (default 24 per configuration).
//! - fixed tests: large-leaf promotion, the partial-unmap rule, address-width
//!   limits, dirty read-and-clear, table freeing, EEXIST, permissions, races.
//! - `known_values`: PTE encodings written from the vendor specifications.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use pt::fmt::{
    AmdV1, AmdV1Config, ArmV8, ArmV8Config, Granule, Mock, MockConfig, Stage, VtdSs, VtdSsConfig,
    X86_64Config, X86_64,
};
use pt::{Errno, Format, LeafEntry, PageTable, PartialUnmap, Prot};

const RW: Prot = Prot::READ.union(Prot::WRITE);
/// Output addresses used by the tests start here (1 GiB aligned, below 2^40).
const PA_BASE: u64 = 1 << 33;

// ---------------------------------------------------------------------------
// The brute-force reference.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RefLeaf {
    size: u64,
    pa: u64,
    prot: Prot,
    dirty: bool,
}

/// Leaves keyed by their first IOVA; every operation is the obvious loop.
struct Reference {
    leaves: BTreeMap<u64, RefLeaf>,
    policy: PartialUnmap,
    items_lg2: u32,
}

impl Reference {
    fn new<F: Format>(pt: &PageTable<F>) -> Self {
        Reference {
            leaves: BTreeMap::new(),
            policy: F::PARTIAL_UNMAP,
            items_lg2: pt.geometry().items_lg2,
        }
    }

    fn containing(&self, iova: u64) -> Option<(u64, RefLeaf)> {
        let (&start, &leaf) = self.leaves.range(..=iova).next_back()?;
        (iova - start < leaf.size).then_some((start, leaf))
    }

    fn overlaps(&self, start: u64, size: u64) -> bool {
        self.containing(start).is_some()
            || self
                .leaves
                .range(start..=start + (size - 1))
                .next()
                .is_some()
    }

    fn map_pages(
        &mut self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        count: u64,
        prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        for i in 0..count {
            let page = iova + i * pgsize;
            if self.overlaps(page, pgsize) {
                return Err((i * pgsize, Errno::EXIST));
            }
            self.leaves.insert(
                page,
                RefLeaf {
                    size: pgsize,
                    pa: pa + i * pgsize,
                    prot,
                    dirty: false,
                },
            );
        }
        Ok(count * pgsize)
    }

    /// Greedy largest-leaf plan, all or nothing.
    fn map_range(
        &mut self,
        iova: u64,
        pa: u64,
        len: u64,
        prot: Prot,
        sizes: u64,
    ) -> Result<(), Errno> {
        let mut plan = Vec::new();
        let mut done = 0;
        while done < len {
            let (va, oa) = (iova + done, pa + done);
            let size = (0..64)
                .rev()
                .map(|lg2| 1u64 << lg2)
                .find(|&s| sizes & s != 0 && (va | oa) % s == 0 && s <= len - done)
                .expect("granule always fits");
            if self.overlaps(va, size) {
                return Err(Errno::EXIST);
            }
            plan.push((
                va,
                RefLeaf {
                    size,
                    pa: oa,
                    prot,
                    dirty: false,
                },
            ));
            done += size;
        }
        self.leaves.extend(plan);
        Ok(())
    }

    fn unmap(&mut self, iova: u64, len: u64) -> u64 {
        let last = iova + (len - 1);
        let mut va = iova;
        let mut unmapped = 0;
        while va <= last {
            let Some((start, leaf)) = self.containing(va) else {
                break;
            };
            let leaf_last = start + (leaf.size - 1);
            if start == va && leaf_last <= last {
                self.leaves.remove(&start);
                unmapped += leaf.size;
                if leaf_last == u64::MAX {
                    break;
                }
                va = leaf_last + 1;
                continue;
            }
            match self.policy {
                PartialUnmap::WholeLeaf if start == va => {
                    self.leaves.remove(&start);
                    unmapped += leaf.size;
                    break;
                }
                PartialUnmap::WholeLeaf => break,
                PartialUnmap::Split => {
                    let child = leaf.size >> self.items_lg2;
                    self.leaves.remove(&start);
                    for k in 0..(leaf.size / child) {
                        self.leaves.insert(
                            start + k * child,
                            RefLeaf {
                                size: child,
                                pa: leaf.pa + k * child,
                                ..leaf
                            },
                        );
                    }
                }
            }
        }
        unmapped
    }

    fn dirty_in(&mut self, iova: u64, last: u64, no_clear: bool) -> Vec<(u64, u64)> {
        let first = self.containing(iova).map_or(iova, |(s, _)| s);
        let mut out = Vec::new();
        for (&start, leaf) in self.leaves.range_mut(first..=last) {
            if leaf.dirty {
                out.push((start, leaf.size));
                leaf.dirty = no_clear;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The random-operation harness.

#[derive(Clone, Copy, Debug)]
struct Pos {
    anchor: u8,
    mid: u8,
    low: u8,
}

#[derive(Clone, Debug)]
enum Op {
    Map {
        pos: Pos,
        size_sel: u8,
        count: u8,
        pa_slot: u16,
        write: bool,
    },
    MapRange {
        pos: Pos,
        len_sel: u8,
        len_x: u8,
        pa_skew: u8,
        write: bool,
        max_sel: u8,
    },
    Unmap {
        pos: Pos,
        size_sel: u8,
        count: u8,
    },
    Touch {
        pos: Pos,
        write: bool,
    },
    ReadDirty {
        pos: Pos,
        len_sel: u8,
        no_clear: bool,
    },
}

fn pos() -> impl Strategy<Value = Pos> {
    (0u8..4, 0u8..4, 0u8..64).prop_map(|(anchor, mid, low)| Pos { anchor, mid, low })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (pos(), any::<u8>(), any::<u8>(), any::<u16>(), any::<bool>())
            .prop_map(|(pos, size_sel, count, pa_slot, write)| Op::Map { pos, size_sel, count, pa_slot, write }),
        3 => (pos(), any::<u8>(), any::<u8>(), any::<u8>(), any::<bool>(), any::<u8>()).prop_map(
            |(pos, len_sel, len_x, pa_skew, write, max_sel)| Op::MapRange { pos, len_sel, len_x, pa_skew, write, max_sel }
        ),
        4 => (pos(), any::<u8>(), any::<u8>()).prop_map(|(pos, size_sel, count)| Op::Unmap { pos, size_sel, count }),
        2 => (pos(), any::<bool>()).prop_map(|(pos, write)| Op::Touch { pos, write }),
        1 => (pos(), any::<u8>(), any::<bool>()).prop_map(|(pos, len_sel, no_clear)| Op::ReadDirty { pos, len_sel, no_clear }),
    ]
}

/// Where in the address space the random operations land.
#[derive(Clone, Copy, Debug)]
enum Base {
    /// At IOVA 0.
    Low,
    /// Ending at the last valid IOVA.
    High,
}

struct Harness<F: Format> {
    pt: PageTable<F>,
    reference: Reference,
    sizes: Vec<u64>,
    granule: u64,
    base: u64,
    window_len: u64,
    anchor_step: u64,
    mid_step: u64,
    initial_table_bytes: u64,
}

impl<F: Format> Harness<F> {
    fn new(cfg: F::Config, base: Base) -> Self {
        let pt = PageTable::<F>::new(cfg).unwrap();
        let geo = pt.geometry();
        let granule = 1u64 << geo.granule_lg2;
        // Leaves up to 1 GiB keep the windows small enough to compare exhaustively.
        let sizes: Vec<u64> = (0..64)
            .map(|l| 1u64 << l)
            .filter(|s| pt.pgsize_bitmap() & s != 0 && *s <= 1 << 30)
            .collect();
        let space = pt.max_iova().saturating_add(1).max(pt.max_iova());
        let table_span = granule << geo.items_lg2;
        let mut anchor_step = (*sizes.last().unwrap()).max(table_span);
        let window_len = (4 * anchor_step).min(space);
        anchor_step = anchor_step.min(window_len);
        let mid_step = (anchor_step >> geo.items_lg2).max(granule);
        let base = match base {
            Base::Low => 0,
            Base::High => pt.max_iova() - (window_len - 1),
        };
        // Formats without dirty flags refuse; the harness then expects no dirt.
        let _ = pt.set_dirty_tracking(true);
        let reference = Reference::new(&pt);
        let initial_table_bytes = pt.table_bytes();
        Harness {
            pt,
            reference,
            sizes,
            granule,
            base,
            window_len,
            anchor_step,
            mid_step,
            initial_table_bytes,
        }
    }

    fn iova(&self, p: Pos, align: u64) -> u64 {
        let anchors = (self.window_len / self.anchor_step).max(1);
        let off = (p.anchor as u64 % anchors) * self.anchor_step
            + (p.mid as u64) * self.mid_step
            + (p.low as u64) * self.granule;
        self.base + (off % self.window_len) / align * align
    }

    fn window_end(&self) -> u64 {
        self.base + (self.window_len - 1)
    }

    /// Largest `n <= want` such that `n` items of `size` from `iova` fit in the window.
    fn clip(&self, iova: u64, size: u64, want: u64) -> u64 {
        want.min((self.window_end() - iova) / size + 1)
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Map {
                pos,
                size_sel,
                count,
                pa_slot,
                write,
            } => {
                let size = self.sizes[size_sel as usize % self.sizes.len()];
                let iova = self.iova(pos, size);
                let want = 1 + count as u64 % if size == self.granule { 64 } else { 3 };
                let count = self.clip(iova, size, want);
                let pa = PA_BASE + (pa_slot as u64 % 1024) * size;
                let prot = if write { RW } else { Prot::READ };
                let got = self.pt.map_pages(iova, pa, size, count, prot);
                let want = self.reference.map_pages(iova, pa, size, count, prot);
                check_eq(got, want, "map_pages")
            }
            Op::MapRange {
                pos,
                len_sel,
                len_x,
                pa_skew,
                write,
                max_sel,
            } => {
                let iova = self.iova(pos, self.granule);
                let x = len_x as u64;
                let len = match len_sel % 3 {
                    0 => (1 + x % 64) * self.granule,
                    1 => (1 + x % 3) * self.mid_step + (x % 5) * self.granule,
                    _ => self.anchor_step + (x % 3) * self.mid_step,
                };
                let len = self.clip(iova, self.granule, len / self.granule) * self.granule;
                // Skewed output addresses force granule leaves: keep those ranges short.
                let skew = if len_sel % 3 == 2 {
                    0
                } else {
                    pa_skew as u64 % 3
                };
                let pa = PA_BASE + (iova - self.base) + skew * self.granule;
                let max_leaf = self.sizes[max_sel as usize % self.sizes.len()];
                let prot = if write { RW } else { Prot::READ };
                let got = self.pt.map_range(iova, pa, len, prot, max_leaf);
                let allowed = self.pt.pgsize_bitmap() & (2 * max_leaf - 1);
                let want = self.reference.map_range(iova, pa, len, prot, allowed);
                check_eq(got, want, "map_range")
            }
            Op::Unmap {
                pos,
                size_sel,
                count,
            } => {
                let size = self.sizes[size_sel as usize % self.sizes.len()];
                let iova = self.iova(pos, size);
                let want = 1 + count as u64 % if size == self.granule { 64 } else { 3 };
                let count = self.clip(iova, size, want);
                let got = self.pt.unmap_pages(iova, size, count);
                let want = self.reference.unmap(iova, size * count);
                check_eq(got, want, "unmap_pages")
            }
            Op::Touch { pos, write } => {
                let iova = self.iova(pos, self.granule) + 8;
                let got = self.pt.translate(iova, write).map(|t| (t.pa, t.leaf_size));
                let want = match self.reference.containing(iova) {
                    None => Err(Errno::NOENT),
                    Some((_, leaf)) if write && !leaf.prot.contains(Prot::WRITE) => {
                        Err(Errno::PERM)
                    }
                    Some((start, leaf)) => {
                        if write && self.pt.dirty_tracking() {
                            self.reference.leaves.get_mut(&start).unwrap().dirty = true;
                        }
                        Ok((leaf.pa + (iova - start), leaf.size))
                    }
                };
                check_eq(got, want, "translate")
            }
            Op::ReadDirty {
                pos,
                len_sel,
                no_clear,
            } => {
                let iova = self.iova(pos, self.mid_step);
                let len = (1 + len_sel as u64 % 4) * self.mid_step;
                let len = self.clip(iova, self.granule, len / self.granule) * self.granule;
                let mut got = Vec::new();
                self.pt
                    .read_and_clear_dirty(iova, len, no_clear, &mut |a, s| got.push((a, s)));
                let want = self.reference.dirty_in(iova, iova + (len - 1), no_clear);
                check_eq(got, want, "read_and_clear_dirty")
            }
        }
    }

    /// Compares every leaf with the reference, then probes the lock-free readers.
    fn compare(&self) -> Result<(), String> {
        self.pt.check_invariants()?;
        let fmt = self.pt.format();
        let mut got = Vec::new();
        self.pt.for_each_leaf(&mut |l: LeafEntry| {
            got.push((
                l.iova,
                RefLeaf {
                    size: l.size,
                    pa: l.pa,
                    prot: l.prot & RW,
                    dirty: fmt.is_dirty(l.raw),
                },
            ));
        });
        let want: Vec<(u64, RefLeaf)> = self
            .reference
            .leaves
            .iter()
            .map(|(&a, &l)| (a, l))
            .collect();
        check_eq(got, want, "leaves")?;
        // The readers are probed on a sample of leaves; the full comparison above
        // already covers every leaf.
        let step = (self.reference.leaves.len() / 48).max(1);
        for (&start, leaf) in self.reference.leaves.iter().step_by(step) {
            let last = start + (leaf.size - self.granule);
            check_eq(
                self.pt.iova_to_phys(start),
                Some(leaf.pa),
                "iova_to_phys(first)",
            )?;
            check_eq(
                self.pt.iova_to_phys(last + 1),
                Some(leaf.pa + (last + 1 - start)),
                "iova_to_phys(last)",
            )?;
            let Some(after) = start.checked_add(leaf.size) else {
                continue;
            };
            if after <= self.window_end() {
                let want = self
                    .reference
                    .containing(after)
                    .map(|(s, l)| l.pa + (after - s));
                check_eq(self.pt.iova_to_phys(after), want, "iova_to_phys(after)")?;
            }
        }
        Ok(())
    }

    /// Unmaps every reference leaf and checks that all tables but the top are gone.
    fn teardown(&mut self) -> Result<(), String> {
        let leaves: Vec<(u64, u64)> = self
            .reference
            .leaves
            .iter()
            .map(|(&a, l)| (a, l.size))
            .collect();
        for (iova, size) in leaves {
            check_eq(self.pt.unmap_pages(iova, size, 1), size, "teardown unmap")?;
        }
        self.reference.leaves.clear();
        self.compare()?;
        check_eq(
            self.pt.table_bytes(),
            self.initial_table_bytes,
            "table_bytes after unmapping everything",
        )
    }
}

fn check_eq<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let (got, want) = (format!("{got:?}"), format!("{want:?}"));
    // Long values (leaf lists) are cut around the first difference.
    let at = got
        .bytes()
        .zip(want.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let from = at.saturating_sub(200);
    let cut = |s: &str| {
        s.get(from..(at + 300).min(s.len()))
            .unwrap_or(s)
            .to_string()
    };
    Err(format!(
        "{what}: got ...{}..., reference ...{}...",
        cut(&got),
        cut(&want)
    ))
}

fn cases() -> u32 {
    std::env::var("PT_CONFORMANCE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn run_random<F: Format>(cfg: F::Config, base: Base) {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 30_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op(), 1..48), |ops| {
        let mut h = Harness::<F>::new(cfg.clone(), base);
        for (step, op) in ops.iter().enumerate() {
            h.apply(op)
                .and_then(|()| h.compare())
                .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
        }
        h.teardown().map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{} {cfg:?}: {e}", F::NAME);
    }
}

// ---------------------------------------------------------------------------
// Fixed properties, generic over the format.

fn new_pt<F: Format>(cfg: F::Config) -> PageTable<F> {
    PageTable::new(cfg).unwrap()
}

fn sizes_of<F: Format>(pt: &PageTable<F>) -> Vec<u64> {
    (0..64)
        .map(|l| 1u64 << l)
        .filter(|s| pt.pgsize_bitmap() & s != 0)
        .collect()
}

/// The largest leaf size the format offers up to 1 GiB, and the granule.
fn big_and_granule<F: Format>(pt: &PageTable<F>) -> (u64, u64) {
    let sizes = sizes_of(pt);
    let big = *sizes.iter().rfind(|&&s| s <= 1 << 30).unwrap();
    (big, sizes[0])
}

fn largest_leaf_is_used_when_aligned<F: Format>(cfg: F::Config) {
    let pt = new_pt::<F>(cfg);
    let (big, granule) = big_and_granule(&pt);
    let iova = 2 * big;
    pt.map_range(iova, PA_BASE, 2 * big, RW, u64::MAX).unwrap();
    for probe in [iova, iova + big - granule, iova + big] {
        assert_eq!(pt.translate(probe, false).unwrap().leaf_size, big);
    }
    pt.unmap_pages(iova, big, 2);
    // Output address off by one granule: no larger leaf can be congruent.
    pt.map_range(iova, PA_BASE + granule, 2 * big, RW, u64::MAX)
        .unwrap();
    assert_eq!(pt.translate(iova + big, false).unwrap().leaf_size, granule);
    assert_eq!(pt.iova_to_phys(iova + big), Some(PA_BASE + granule + big));
    // max_leaf caps the leaf size.
    pt.unmap_pages(iova, granule, 2 * big / granule);
    pt.map_range(iova, PA_BASE, 2 * big, RW, granule).unwrap();
    assert_eq!(pt.translate(iova, false).unwrap().leaf_size, granule);
    pt.check_invariants().unwrap();
}

fn partial_unmap_follows_format_rule<F: Format>(cfg: F::Config) {
    let pt = new_pt::<F>(cfg.clone());
    let (big, granule) = big_and_granule(&pt);
    if big == granule {
        return;
    }
    let iova = big;
    pt.map_pages(iova, PA_BASE, big, 1, RW).unwrap();
    // A range starting inside the leaf.
    let mid = iova + big / 2;
    let got = pt.unmap_pages(mid, granule, 1);
    match F::PARTIAL_UNMAP {
        PartialUnmap::WholeLeaf => {
            assert_eq!(got, 0, "a range starting inside a leaf is refused");
            assert_eq!(pt.translate(mid, false).unwrap().leaf_size, big);
        }
        PartialUnmap::Split => {
            assert_eq!(got, granule, "the block is split and one granule unmapped");
            assert_eq!(pt.iova_to_phys(mid), None);
            assert_eq!(
                pt.iova_to_phys(mid - granule),
                Some(PA_BASE + big / 2 - granule)
            );
            assert_eq!(
                pt.iova_to_phys(mid + granule),
                Some(PA_BASE + big / 2 + granule)
            );
            assert_eq!(
                pt.translate(mid + granule, false).unwrap().leaf_size,
                granule
            );
            assert_eq!(
                pt.translate(iova, false).unwrap().leaf_size,
                big >> pt.geometry().items_lg2
            );
        }
    }
    pt.check_invariants().unwrap();
    // A range starting at the leaf and ending inside it.
    let mut fresh = new_pt::<F>(cfg);
    fresh.map_pages(iova, PA_BASE, big, 1, RW).unwrap();
    let got = fresh.unmap_pages(iova, granule, 1);
    match F::PARTIAL_UNMAP {
        PartialUnmap::WholeLeaf => {
            assert_eq!(got, big, "the whole leaf goes and its size is reported");
            assert_eq!(fresh.iova_to_phys(iova + granule), None);
        }
        PartialUnmap::Split => {
            assert_eq!(got, granule);
            assert_eq!(fresh.iova_to_phys(iova + granule), Some(PA_BASE + granule));
        }
    }
    fresh.check_invariants().unwrap();
    fresh.release_unused_memory();
}

fn last_iova_maps_and_one_past_fails<F: Format>(cfg: F::Config) {
    let pt = new_pt::<F>(cfg);
    let (_, granule) = big_and_granule(&pt);
    let last_page = pt.max_iova() - (granule - 1);
    assert_eq!(
        pt.map_pages(last_page, PA_BASE, granule, 1, RW),
        Ok(granule)
    );
    assert_eq!(pt.iova_to_phys(pt.max_iova()), Some(PA_BASE + granule - 1));
    assert_eq!(
        pt.translate(pt.max_iova(), true).unwrap().pa,
        PA_BASE + granule - 1
    );
    let past_end = pt.map_pages(last_page, PA_BASE, granule, 2, RW);
    assert!(
        matches!(past_end, Err((0, Errno::RANGE | Errno::OVERFLOW))),
        "{past_end:?}"
    );
    if let Some(one_past) = pt.max_iova().checked_add(1) {
        assert_eq!(
            pt.map_pages(one_past, PA_BASE, granule, 1, RW),
            Err((0, Errno::RANGE))
        );
        assert_eq!(pt.iova_to_phys(one_past), None);
        assert_eq!(pt.translate(one_past, false), Err(Errno::NOENT));
        assert_eq!(pt.unmap_pages(one_past, granule, 1), 0);
    }
    let max_oa = (1u64 << pt.geometry().oa_lg2) - 1;
    let last_frame = max_oa - (granule - 1);
    assert_eq!(pt.map_pages(0, last_frame, granule, 1, RW), Ok(granule));
    assert_eq!(pt.iova_to_phys(granule - 1), Some(max_oa));
    assert_eq!(
        pt.map_pages(granule, last_frame + granule, granule, 1, RW),
        Err((0, Errno::RANGE))
    );
    assert_eq!(pt.unmap_pages(last_page, granule, 1), granule);
    assert_eq!(pt.unmap_pages(0, granule, 1), granule);
    pt.check_invariants().unwrap();
}

fn dirty_read_and_clear<F: Format>(cfg: F::Config) {
    let pt = new_pt::<F>(cfg);
    let (big, granule) = big_and_granule(&pt);
    if !pt.format().supports_dirty() {
        assert_eq!(pt.set_dirty_tracking(true), Err(Errno::OPNOTSUPP));
        return;
    }
    pt.set_dirty_tracking(true).unwrap();
    let hi = (8 * granule).next_multiple_of(big);
    pt.map_pages(0, PA_BASE, granule, 4, RW).unwrap();
    pt.map_pages(hi, PA_BASE, big, 1, RW).unwrap();
    let read_all = |no_clear| {
        let mut v = Vec::new();
        pt.read_and_clear_dirty(0, hi + big, no_clear, &mut |a, s| v.push((a, s)));
        v
    };
    assert_eq!(read_all(false), vec![], "fresh mappings are clean");
    pt.translate(granule + 5, true).unwrap();
    pt.translate(2 * granule, false).unwrap();
    pt.translate(hi + big - 1, true).unwrap();
    assert_eq!(read_all(true), vec![(granule, granule), (hi, big)]);
    assert_eq!(
        read_all(false),
        vec![(granule, granule), (hi, big)],
        "no_clear kept them"
    );
    assert_eq!(read_all(false), vec![], "cleared");
    assert!(pt.mark_dirty(3 * granule));
    assert!(!pt.mark_dirty(hi + big));
    let mut v = Vec::new();
    pt.read_and_clear_dirty(3 * granule, granule, false, &mut |a, s| v.push((a, s)));
    assert_eq!(v, vec![(3 * granule, granule)]);
    pt.set_dirty_tracking(false).unwrap();
    pt.translate(granule, true).unwrap();
    assert_eq!(
        read_all(false),
        vec![],
        "writes are not tracked while tracking is off"
    );
}

fn empty_tables_are_freed<F: Format>(cfg: F::Config) {
    let mut pt = new_pt::<F>(cfg);
    let (big, granule) = big_and_granule(&pt);
    let initial = pt.table_bytes();
    let arena_initial = pt.arena_bytes();
    // Sparse pages far apart need many tables.
    let stride = (granule << pt.geometry().items_lg2).max(big);
    let n = 64.min(pt.max_iova() / stride).max(1);
    for i in 0..n {
        pt.map_pages(i * stride, PA_BASE, granule, 2, RW).unwrap();
    }
    if pt.geometry().levels > 1 {
        assert!(pt.table_bytes() > initial);
    }
    for i in 0..n {
        assert_eq!(pt.unmap_pages(i * stride, granule, 2), 2 * granule);
    }
    assert_eq!(
        pt.table_bytes(),
        initial,
        "every table but the top is freed"
    );
    pt.check_invariants().unwrap();
    pt.release_unused_memory();
    assert_eq!(pt.arena_bytes(), arena_initial, "arena memory is returned");
    pt.map_pages(0, PA_BASE, granule, 1, RW).unwrap();
    assert_eq!(pt.iova_to_phys(0), Some(PA_BASE));
}

fn map_over_existing_returns_eexist<F: Format>(cfg: F::Config) {
    let pt = new_pt::<F>(cfg);
    let (big, granule) = big_and_granule(&pt);
    pt.map_pages(2 * granule, PA_BASE, granule, 1, RW).unwrap();
    assert_eq!(
        pt.map_pages(2 * granule, PA_BASE, granule, 1, RW),
        Err((0, Errno::EXIST))
    );
    assert_eq!(
        pt.map_pages(0, PA_BASE, granule, 4, RW),
        Err((2 * granule, Errno::EXIST))
    );
    assert_eq!(
        pt.iova_to_phys(granule),
        Some(PA_BASE + granule),
        "pages before the conflict stay"
    );
    if big > granule {
        assert_eq!(
            pt.map_pages(0, PA_BASE, big, 1, RW),
            Err((0, Errno::EXIST)),
            "a large leaf over small ones"
        );
        pt.map_pages(big, PA_BASE, big, 1, RW).unwrap();
        assert_eq!(
            pt.map_pages(big + granule, 0, granule, 1, RW),
            Err((0, Errno::EXIST)),
            "a page inside a large leaf"
        );
    }
    assert_eq!(
        pt.map_pages(granule, PA_BASE, granule, 0, RW),
        Err((0, Errno::INVAL))
    );
    assert_eq!(
        pt.map_pages(granule / 2, PA_BASE, granule, 1, RW),
        Err((0, Errno::INVAL))
    );
    assert_eq!(
        pt.map_pages(8 * granule, PA_BASE, 3 * granule, 1, RW),
        Err((0, Errno::INVAL))
    );
    assert_eq!(
        pt.map_pages(8 * granule, PA_BASE, granule, 1, Prot::CACHE),
        Err((0, Errno::INVAL))
    );
    assert_eq!(
        pt.map_range(8 * granule, PA_BASE, 0, RW, u64::MAX),
        Err(Errno::INVAL)
    );
    pt.check_invariants().unwrap();
}

fn translate_enforces_permissions<F: Format>(cfg: F::Config) {
    let pt = new_pt::<F>(cfg);
    let (_, granule) = big_and_granule(&pt);
    pt.map_pages(0, PA_BASE, granule, 1, Prot::READ).unwrap();
    pt.map_pages(granule, PA_BASE, granule, 1, RW).unwrap();
    assert_eq!(pt.translate(0, true), Err(Errno::PERM));
    assert_eq!(pt.translate(0, false).map(|t| t.pa), Ok(PA_BASE));
    let t = pt.translate(granule + 1, true).unwrap();
    assert_eq!((t.pa, t.leaf_size), (PA_BASE + 1, granule));
    assert!(t.prot.contains(RW));
    assert_eq!(pt.translate(2 * granule, false), Err(Errno::NOENT));
    assert_eq!(
        pt.unmap_pages(0, granule, 3),
        2 * granule,
        "unmap stops at the first hole"
    );
    assert_eq!(pt.translate(0, false), Err(Errno::NOENT));
}

fn readers_race_writers_without_panic<F: Format>(cfg: F::Config) {
    let pt = new_pt::<F>(cfg);
    let (big, granule) = big_and_granule(&pt);
    let space = pt.max_iova().saturating_add(1).max(pt.max_iova());
    let race = big.max(granule << pt.geometry().items_lg2).min(space / 4);
    let stable = 2 * race;
    pt.map_pages(stable, PA_BASE, granule, 16, RW).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let i = n % 16;
                assert_eq!(
                    pt.iova_to_phys(stable + i * granule),
                    Some(PA_BASE + i * granule)
                );
                if let Ok(t) = pt.translate(race + i * granule, n.is_multiple_of(2)) {
                    assert_eq!(t.pa, PA_BASE + i * granule);
                }
                n += 1;
            }
        };
        s.spawn(reader);
        for round in 0..300 {
            if round % 2 == 0 || !race.is_multiple_of(big) {
                pt.map_pages(race, PA_BASE, granule, 16, RW).unwrap();
                pt.unmap_pages(race, granule, 16);
            } else {
                pt.map_pages(race, PA_BASE, big, 1, RW).unwrap();
                pt.unmap_pages(race, big, 1);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    pt.check_invariants().unwrap();
}

macro_rules! conformance {
    ($name:ident, $fmt:ty, $cfg:expr, $base:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn random_ops_match_reference() {
                run_random::<$fmt>($cfg, $base);
            }

            #[test]
            fn largest_leaf_is_used_when_aligned() {
                super::largest_leaf_is_used_when_aligned::<$fmt>($cfg);
            }

            #[test]
            fn partial_unmap_follows_format_rule() {
                super::partial_unmap_follows_format_rule::<$fmt>($cfg);
            }

            #[test]
            fn last_iova_maps_and_one_past_fails() {
                super::last_iova_maps_and_one_past_fails::<$fmt>($cfg);
            }

            #[test]
            fn dirty_read_and_clear() {
                super::dirty_read_and_clear::<$fmt>($cfg);
            }

            #[test]
            fn empty_tables_are_freed() {
                super::empty_tables_are_freed::<$fmt>($cfg);
            }

            #[test]
            fn map_over_existing_returns_eexist() {
                super::map_over_existing_returns_eexist::<$fmt>($cfg);
            }

            #[test]
            fn translate_enforces_permissions() {
                super::translate_enforces_permissions::<$fmt>($cfg);
            }

            #[test]
            fn readers_race_writers_without_panic() {
                super::readers_race_writers_without_panic::<$fmt>($cfg);
            }
        }
    };
}

conformance!(
    vtdss_3level,
    VtdSs,
    VtdSsConfig {
        va_lg2: 39,
        oa_lg2: 46,
        max_leaf_lg2: 21
    },
    Base::High
);
conformance!(vtdss_4level, VtdSs, VtdSsConfig::FOUR_LEVEL, Base::Low);
conformance!(vtdss_5level, VtdSs, VtdSsConfig::FIVE_LEVEL, Base::High);
conformance!(x86_64_4level, X86_64, X86_64Config::FOUR_LEVEL, Base::High);
conformance!(x86_64_5level, X86_64, X86_64Config::FIVE_LEVEL, Base::Low);
conformance!(
    amdv1_1level,
    AmdV1,
    AmdV1Config {
        levels: 1,
        va_lg2: None,
        oa_lg2: 52,
        max_leaf_lg2: 30
    },
    Base::Low
);
conformance!(amdv1_3level, AmdV1, AmdV1Config::THREE_LEVEL, Base::High);
conformance!(
    amdv1_4level_32bit,
    AmdV1,
    AmdV1Config {
        va_lg2: Some(32),
        ..AmdV1Config::FOUR_LEVEL
    },
    Base::High
);
conformance!(amdv1_6level, AmdV1, AmdV1Config::SIX_LEVEL, Base::High);
conformance!(armv8_s1_4k, ArmV8, ArmV8Config::S1_4K, Base::High);
conformance!(armv8_s2_4k_concat, ArmV8, ArmV8Config::S2_4K_40, Base::Low);
conformance!(armv8_s1_16k, ArmV8, ArmV8Config::S1_16K, Base::Low);
conformance!(
    armv8_s2_16k,
    ArmV8,
    ArmV8Config {
        granule: Granule::K16,
        stage: Stage::S2,
        va_lg2: 47,
        oa_lg2: 44,
        hw_dirty: true
    },
    Base::High
);
conformance!(
    armv8_s2_64k_no_dirty,
    ArmV8,
    ArmV8Config::S2_64K,
    Base::High
);
conformance!(
    armv8_s1_64k_42bit,
    ArmV8,
    ArmV8Config {
        granule: Granule::K64,
        stage: Stage::S1,
        va_lg2: 42,
        oa_lg2: 48,
        hw_dirty: true
    },
    Base::Low
);
conformance!(mock_selftest, Mock, MockConfig::SELFTEST, Base::High);
conformance!(
    mock_selftest_huge,
    Mock,
    MockConfig::SELFTEST_HUGE,
    Base::Low
);
conformance!(mock_wide, Mock, MockConfig::WIDE, Base::High);
conformance!(
    mock_no_dirty,
    Mock,
    MockConfig {
        dirty: false,
        ..MockConfig::SELFTEST_HUGE
    },
    Base::High
);

// ---------------------------------------------------------------------------
// PTE encodings written from the specifications (not from the implementation).

mod known_values {
    use super::*;

    /// Maps one leaf of `size` at IOVA `size` and returns the raw entry the walker wrote.
    fn written_leaf<F: Format>(cfg: F::Config, size: u64, pa: u64, prot: Prot) -> u64 {
        let pt = PageTable::<F>::new(cfg).unwrap();
        pt.map_pages(size, pa, size, 1, prot).unwrap();
        let mut raws = Vec::new();
        pt.for_each_leaf(&mut |l| raws.push(l.raw));
        assert_eq!(raws.len(), 1);
        raws[0]
    }

    #[test]
    fn vtdss_entries_match_spec_section_9_8() {
        let f = VtdSs::new(VtdSsConfig::FOUR_LEVEL).unwrap();
        // SS-PTE: R (bit 0) | W (bit 1) | ADDR.
        assert_eq!(f.encode_leaf(0, 0x1234_5000, RW).unwrap(), 0x1234_5003);
        // SS-PDE mapping 2 MiB: R | PS (bit 7).
        assert_eq!(
            f.encode_leaf(1, 0x4020_0000, Prot::READ).unwrap(),
            0x4020_0081
        );
        // SS-PDPE mapping 1 GiB with snoop: R | W | PS | SNP (bit 11).
        assert_eq!(
            f.encode_leaf(2, 0x1_4000_0000, RW | Prot::CACHE).unwrap(),
            0x1_4000_0883
        );
        // Non-leaf entries: R | W | address of the next table.
        assert_eq!(f.encode_table(3, 0x7000), 0x7003);
        assert_eq!(f.entry_kind(1, 0x7003), pt::EntryKind::Table);
        assert_eq!(f.entry_kind(1, 0x4020_0081), pt::EntryKind::Leaf);
        assert_eq!(
            f.entry_kind(0, 0x0000_0000_0000_0300),
            pt::EntryKind::Empty,
            "no R/W: not present"
        );
        assert_eq!(f.leaf_pa(1, 0x4020_0081), 0x4020_0000);
        assert_eq!(f.leaf_prot(0, 0x1234_5803), RW | Prot::CACHE);
        // D is bit 9, A is bit 8.
        assert!(f.is_dirty(0x1234_5203));
        assert_eq!(f.set_accessed(0x1234_5003), 0x1234_5103);
        assert_eq!(
            written_leaf::<VtdSs>(VtdSsConfig::FOUR_LEVEL, 1 << 21, 0x4020_0000, Prot::READ),
            0x4020_0081
        );
    }

    #[test]
    fn x86_64_entries_match_sdm_section_4_5() {
        let f = X86_64::new(X86_64Config::FOUR_LEVEL).unwrap();
        // PTE: P | R/W | U/S | A.
        assert_eq!(f.encode_leaf(0, 0x1234_5000, RW).unwrap(), 0x1234_5027);
        // PDE mapping 2 MiB, read-only, supervisor, no-execute: P | A | PS | XD.
        assert_eq!(
            f.encode_leaf(1, 0x4020_0000, Prot::READ | Prot::PRIV | Prot::NOEXEC)
                .unwrap(),
            0x8000_0000_4020_00a1
        );
        // Non-leaf: P | R/W | U/S | A.
        assert_eq!(f.encode_table(2, 0x9000), 0x9027);
        assert_eq!(f.entry_kind(2, 0x9027), pt::EntryKind::Table);
        assert_eq!(
            f.entry_kind(0, 0x9027),
            pt::EntryKind::Leaf,
            "bit 7 of a PTE is PAT, not PS"
        );
        assert_eq!(f.entry_kind(3, 0x9026), pt::EntryKind::Empty);
        assert_eq!(
            f.leaf_prot(1, 0x8000_0000_4020_00a1),
            Prot::READ | Prot::PRIV | Prot::NOEXEC
        );
        assert!(f.is_dirty(0x1234_5067), "D is bit 6");
        assert_eq!(
            written_leaf::<X86_64>(X86_64Config::FIVE_LEVEL, 1 << 30, 0x4000_0000, RW),
            0x4000_00a7
        );
    }

    #[test]
    fn amdv1_entries_match_spec_section_2_2_3() {
        let f = AmdV1::new(AmdV1Config::FOUR_LEVEL).unwrap();
        // PTE: PR | IR (61) | IW (62), NextLevel 0.
        assert_eq!(
            f.encode_leaf(0, 0x1234_5000, RW).unwrap(),
            0x6000_0000_1234_5001
        );
        // 2 MiB default-size page (AMD level 2, NextLevel 0), read-only, FC (60).
        assert_eq!(
            f.encode_leaf(1, 0x4020_0000, Prot::READ | Prot::CACHE)
                .unwrap(),
            0x3000_0000_4020_0001
        );
        // PDE at AMD level 2 points to a level-1 table: NextLevel = 1.
        assert_eq!(f.encode_table(1, 0x5000), 0x6000_0000_0000_5201);
        // PDE at AMD level 3: NextLevel = 2.
        assert_eq!(f.encode_table(2, 0x5000), 0x6000_0000_0000_5401);
        assert_eq!(f.entry_kind(1, 0x6000_0000_0000_5201), pt::EntryKind::Table);
        assert_eq!(f.entry_kind(1, 0x3000_0000_4020_0001), pt::EntryKind::Leaf);
        assert_eq!(
            f.entry_kind(1, 0x6000_0000_4020_0e01),
            pt::EntryKind::Leaf,
            "NextLevel 7: encoded size"
        );
        assert_eq!(
            f.entry_kind(1, 0x6000_0000_0000_5200),
            pt::EntryKind::Empty,
            "PR clear"
        );
        assert_eq!(f.table_pa(0x6000_0000_0000_5201), 0x5000);
        assert!(f.is_dirty(0x6000_0000_1234_5041), "D is bit 6");
        assert_eq!(
            f.set_accessed(0x6000_0000_1234_5001),
            0x6000_0000_1234_5021,
            "A is bit 5"
        );
        // Table 15: the 6-level top table covers bits 63:57 with 128 entries.
        let six = AmdV1::new(AmdV1Config::SIX_LEVEL).unwrap().geometry();
        assert_eq!((six.levels, six.top_items_lg2), (6, 7));
        assert_eq!(
            written_leaf::<AmdV1>(AmdV1Config::THREE_LEVEL, 1 << 30, 0x4000_0000, RW),
            0x6000_0000_4000_0001
        );
    }

    #[test]
    fn mock_entries_hold_2k_frame_numbers() {
        let f = Mock::new(MockConfig::SELFTEST_HUGE).unwrap();
        // ADDR (51:12) holds address >> 11.
        assert_eq!(f.encode_leaf(0, 0x800, RW).unwrap(), 0x6000_0000_0000_1001);
        assert_eq!(
            f.encode_leaf(1, 0x10_0000, Prot::READ).unwrap(),
            0x2000_0000_0020_0001
        );
        assert_eq!(f.encode_table(1, 0x3000), 0x6000_0000_0000_6201);
        assert_eq!(f.table_pa(0x6000_0000_0000_6201), 0x3000);
        assert_eq!(f.leaf_pa(0, 0x6000_0000_0000_1001), 0x800);
        let geo = f.geometry();
        assert_eq!((geo.granule_lg2, geo.levels, geo.va_lg2), (11, 3, 31));
        let pt = PageTable::<Mock>::new(MockConfig::SELFTEST_HUGE).unwrap();
        assert_eq!(pt.pgsize_bitmap(), 2048 | (1 << 20));
        let no_huge = PageTable::<Mock>::new(MockConfig::SELFTEST).unwrap();
        assert_eq!(no_huge.pgsize_bitmap(), 2048);
        assert_eq!(no_huge.max_iova(), 0x7fff_ffff);
        assert_eq!(
            written_leaf::<Mock>(MockConfig::SELFTEST, 2048, 0x1800, RW),
            0x6000_0000_0000_3001
        );
    }

    #[test]
    fn armv8_stage1_entries_match_arm_arm_d8() {
        let f = ArmV8::new(ArmV8Config::S1_4K).unwrap();
        // Page: type 0b11 | AttrIndx 1 | AP[1] | AP[2]+DBM (writable-clean) | SH=IS | AF | nG.
        assert_eq!(
            f.encode_leaf(0, 0x4000_0000, RW | Prot::CACHE).unwrap(),
            0x0008_0000_4000_0fc7
        );
        // Block: type 0b01 | AP[1] | AP[2] | SH=OS | AF | nG, AttrIndx 0.
        assert_eq!(
            f.encode_leaf(1, 0x4020_0000, Prot::READ).unwrap(),
            0x4020_0ec1
        );
        // Device memory, privileged, execute-never: AttrIndx 2, AP[1] clear, UXN|PXN.
        assert_eq!(
            f.encode_leaf(0, 0x1000, RW | Prot::MMIO | Prot::PRIV | Prot::NOEXEC)
                .unwrap(),
            0x0068_0000_0000_1e8b
        );
        assert_eq!(f.encode_table(2, 0x4_3000), 0x4_3003);
        assert_eq!(f.entry_kind(2, 0x4_3003), pt::EntryKind::Table);
        assert_eq!(
            f.entry_kind(0, 0x4_3003),
            pt::EntryKind::Leaf,
            "0b11 at lookup level 3 is a page"
        );
        assert_eq!(
            f.entry_kind(0, 0x4_3001),
            pt::EntryKind::Empty,
            "0b01 at lookup level 3 is reserved"
        );
        assert!(!f.is_dirty(0x0008_0000_4000_0fc7));
        assert_eq!(
            f.make_dirty(0x0008_0000_4000_0fc7),
            0x0008_0000_4000_0f47,
            "a write clears AP[2]"
        );
        assert_eq!(f.leaf_prot(0, 0x4020_0ec1), Prot::READ);
        let s1_16k = ArmV8::new(ArmV8Config::S1_16K).unwrap().geometry();
        assert_eq!((s1_16k.levels, s1_16k.top_items_lg2), (4, 1));
    }

    #[test]
    fn armv8_stage2_entries_match_arm_arm_d8() {
        let f = ArmV8::new(ArmV8Config::S2_4K_40).unwrap();
        // Page: type | MemAttr 0b1111 | S2AP read, write via DBM (writable-clean) | SH=IS | AF.
        assert_eq!(
            f.encode_leaf(0, 0x4000_0000, RW | Prot::CACHE).unwrap(),
            0x0008_0000_4000_077f
        );
        assert_eq!(
            f.make_dirty(0x0008_0000_4000_077f),
            0x0008_0000_4000_07ff,
            "a write sets S2AP[1]"
        );
        // 40-bit stage 2 with 4K granule: two level-1 tables concatenated (D8.2).
        let geo = f.geometry();
        assert_eq!((geo.levels, geo.top_items_lg2), (3, 10));
        let g64 = ArmV8::new(ArmV8Config::S2_64K).unwrap();
        // 512 MiB block, device memory, S2AP read+write, SH=OS, AF.
        assert_eq!(
            g64.encode_leaf(1, 0x2000_0000, RW | Prot::MMIO).unwrap(),
            0x2000_06c5
        );
        assert_eq!(g64.leaf_prot(1, 0x2000_06c5), RW | Prot::MMIO);
        assert!(!g64.supports_dirty());
        let geo64 = g64.geometry();
        assert_eq!((geo64.levels, geo64.top_items_lg2), (3, 6));
        assert_eq!(
            PageTable::<ArmV8>::new(ArmV8Config::S2_64K)
                .unwrap()
                .pgsize_bitmap(),
            (1 << 16) | (1 << 29)
        );
        assert_eq!(
            written_leaf::<ArmV8>(ArmV8Config::S2_64K, 1 << 29, 0x2000_0000, RW | Prot::MMIO),
            0x2000_06c5
        );
    }

    #[test]
    fn invalid_configurations_return_einval() {
        assert!(matches!(
            PageTable::<VtdSs>::new(VtdSsConfig {
                va_lg2: 58,
                ..VtdSsConfig::FOUR_LEVEL
            }),
            Err(Errno::INVAL)
        ));
        assert!(matches!(
            PageTable::<AmdV1>::new(AmdV1Config {
                levels: 7,
                ..AmdV1Config::FOUR_LEVEL
            }),
            Err(Errno::INVAL)
        ));
        assert!(matches!(
            PageTable::<ArmV8>::new(ArmV8Config {
                oa_lg2: 52,
                ..ArmV8Config::S1_4K
            }),
            Err(Errno::INVAL)
        ));
        assert!(matches!(
            PageTable::<Mock>::new(MockConfig {
                va_lg2: 57,
                ..MockConfig::WIDE
            }),
            Err(Errno::INVAL)
        ));
        assert!(matches!(
            PageTable::<X86_64>::new(X86_64Config {
                va_lg2: 30,
                ..X86_64Config::FOUR_LEVEL
            }),
            Err(Errno::INVAL)
        ));
    }
}
