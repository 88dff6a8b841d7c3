//! The word-at-a-time dirty walk (`read_and_clear_dirty_bits`) against a model
//! of the dirty leaves: granule leaves 64 at a time, large leaves whole, only
//! the range's leaves cleared, `no_clear` clearing nothing, and leaves dirtied
//! by a DMA write (accessed and dirty) and by `mark_dirty` (dirty only) both
//! cleared.

use std::collections::BTreeSet;

use pt::fmt::{AmdV1, AmdV1Config, ArmV8, ArmV8Config, VtdSs, VtdSsConfig, X86_64Config, X86_64};
use pt::{DirtySink, Format, PageTable, Prot};

const K4: u64 = 1 << 12;
const M2: u64 = 1 << 21;
const RW: Prot = Prot::READ.union(Prot::WRITE);

/// Collects reported leaves, checking the sink contract on the way.
#[derive(Default)]
struct Leaves(Vec<(u64, u64)>);

impl DirtySink for Leaves {
    fn range(&mut self, iova: u64, len: u64) {
        assert!(len > K4 && iova.is_multiple_of(len));
        self.0.push((iova, len));
    }
    fn bits(&mut self, iova: u64, lg2: u32, bits: u64) {
        assert_ne!(bits, 0);
        assert!(iova.is_multiple_of(64 << lg2), "group not aligned");
        for i in 0..64 {
            if bits & (1 << i) != 0 {
                self.0.push((iova + (i << lg2), 1 << lg2));
            }
        }
    }
}

/// xorshift, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn check<F: Format>(cfg: F::Config, seed: u64) {
    let pt = PageTable::<F>::new(cfg).unwrap();
    pt.set_dirty_tracking(true).unwrap();
    let mut rng = Rng(seed);
    // 8 MiB of 4K leaves at 1 GiB, then 8 x 2M leaves, with holes.
    let base = 1u64 << 30;
    let mut leaves = Vec::new();
    for i in 0..2048u64 {
        if !rng.next().is_multiple_of(7) {
            pt.map_pages(base + i * K4, i * K4, K4, 1, RW).unwrap();
            leaves.push((base + i * K4, K4));
        }
    }
    for j in 0..8u64 {
        if j != 3 {
            let iova = base + 8 * M2 + j * M2;
            pt.map_pages(iova, (1 << 32) | (j * M2), M2, 1, RW).unwrap();
            leaves.push((iova, M2));
        }
    }
    for round in 0..20 {
        let mut dirty = BTreeSet::new();
        for &(iova, size) in &leaves {
            match rng.next() % 4 {
                0 => {
                    pt.translate(iova + rng.next() % size, true).unwrap();
                    dirty.insert((iova, size));
                }
                1 => {
                    assert!(pt.mark_dirty(iova + rng.next() % size));
                    dirty.insert((iova, size));
                }
                _ => {}
            }
        }
        let end = base + 16 * M2;
        let a = base + (rng.next() % (end - base)) / 512 * 512;
        let len = (rng.next() % (end - a)).max(1);
        let no_clear = round % 3 == 0;
        let mut got = Leaves::default();
        pt.read_and_clear_dirty_bits(a, len, no_clear, &mut got);
        let hit = |&&(iova, size): &&(u64, u64)| iova < a + len && iova + size > a;
        let want: Vec<_> = dirty.iter().filter(hit).copied().collect();
        assert_eq!(got.0, want, "{} round {round}", F::NAME);
        // Everything left dirty, over the whole table, without clearing.
        let mut rest = Leaves::default();
        pt.read_and_clear_dirty_bits(0, u64::MAX, true, &mut rest);
        let left: Vec<_> = if no_clear {
            dirty.iter().copied().collect()
        } else {
            dirty.iter().filter(|l| !hit(l)).copied().collect()
        };
        assert_eq!(rest.0, left, "{} round {round}: left dirty", F::NAME);
        // The per-leaf API reports the same, then everything is clean.
        let mut per_leaf = Vec::new();
        pt.read_and_clear_dirty(0, u64::MAX, false, &mut |i, l| per_leaf.push((i, l)));
        assert_eq!(per_leaf, left);
        let mut none = Leaves::default();
        pt.read_and_clear_dirty_bits(0, u64::MAX, true, &mut none);
        assert!(none.0.is_empty());
    }
}

#[test]
fn word_walk_reports_and_clears_exactly_the_dirty_leaves() {
    for seed in 1..6 {
        check::<VtdSs>(VtdSsConfig::FOUR_LEVEL, seed);
        check::<AmdV1>(AmdV1Config::FOUR_LEVEL, seed);
        check::<X86_64>(X86_64Config::FOUR_LEVEL, seed);
        check::<ArmV8>(ArmV8Config::S1_4K, seed);
    }
}

/// Every leaf of whole 64-leaf groups dirty (some by DMA writes, accessed and
/// dirty; some by `mark_dirty`, dirty only): the range's leaves are reported
/// and cleared, those outside it stay dirty.
fn check_all_dirty<F: Format>(cfg: F::Config) {
    let pt = PageTable::<F>::new(cfg).unwrap();
    pt.set_dirty_tracking(true).unwrap();
    let base = 1u64 << 30;
    let n = 512u64;
    pt.map_pages(base, 0, K4, n, RW).unwrap();
    for i in 0..n {
        if i % 5 == 0 {
            assert!(pt.mark_dirty(base + i * K4));
        } else {
            pt.translate(base + i * K4 + 8, true).unwrap();
        }
    }
    // Groups 1-6 whole, and parts of groups 0 and 7.
    let (a, len) = (base + 40 * K4, 440 * K4);
    let mut got = Leaves::default();
    pt.read_and_clear_dirty_bits(a, len, false, &mut got);
    let want: Vec<_> = (40..480).map(|i| (base + i * K4, K4)).collect();
    assert_eq!(got.0, want, "{}", F::NAME);
    let mut rest = Leaves::default();
    pt.read_and_clear_dirty_bits(0, u64::MAX, true, &mut rest);
    let left: Vec<_> = (0..40).chain(480..n).map(|i| (base + i * K4, K4)).collect();
    assert_eq!(rest.0, left, "{}: left dirty", F::NAME);
}

#[test]
fn whole_dirty_groups_are_reported_and_cleared() {
    check_all_dirty::<VtdSs>(VtdSsConfig::FOUR_LEVEL);
    check_all_dirty::<AmdV1>(AmdV1Config::FOUR_LEVEL);
    check_all_dirty::<X86_64>(X86_64Config::FOUR_LEVEL);
    check_all_dirty::<ArmV8>(ArmV8Config::S1_4K);
}
