//! The software IOTLB behind `PageTable::translate`: no stale translation after
//! an unmap returns, correct permissions and offsets, dirty flags still set.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pt::fmt::{AmdV1, AmdV1Config, VtdSs, VtdSsConfig};
use pt::{Errno, PageTable, Prot};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const K4: u64 = 1 << 12;
const M2: u64 = 1 << 21;

fn vtd() -> PageTable<VtdSs> {
    PageTable::new(VtdSsConfig::FOUR_LEVEL).unwrap()
}

#[test]
fn translation_after_unmap_faults() {
    let pt = vtd();
    pt.map_pages(0x10_0000, 0x5000_0000, K4, 4, RW).unwrap();
    for _ in 0..3 {
        assert_eq!(pt.translate(0x10_1234, false).unwrap().pa, 0x5000_1234);
    }
    assert_eq!(pt.unmap_pages(0x10_0000, K4, 4), 4 * K4);
    assert_eq!(pt.translate(0x10_1234, false), Err(Errno::NOENT));
    assert_eq!(pt.translate(0x10_1234, true), Err(Errno::NOENT));
}

#[test]
fn remap_to_other_memory_is_seen_at_once() {
    let pt = vtd();
    for round in 0..100u64 {
        let pa = 0x1_0000_0000 + round * M2;
        pt.map_pages(0x40_0000, pa, K4, 1, RW).unwrap();
        assert_eq!(pt.translate(0x40_0008, true).unwrap().pa, pa + 8);
        assert_eq!(pt.translate(0x40_0010, false).unwrap().pa, pa + 0x10);
        pt.unmap_pages(0x40_0000, K4, 1);
    }
}

#[test]
fn cached_read_only_leaf_still_refuses_writes() {
    let pt = vtd();
    pt.map_pages(0x20_0000, 0x9000_0000, K4, 1, Prot::READ)
        .unwrap();
    assert!(pt.translate(0x20_0000, false).is_ok());
    assert_eq!(pt.translate(0x20_0000, true), Err(Errno::PERM));
    assert!(pt.translate(0x20_0000, false).is_ok());
}

#[test]
fn cached_large_leaf_translates_every_offset() {
    let pt = vtd();
    pt.map_pages(0x4000_0000, 0x8000_0000, M2, 2, RW).unwrap();
    let t = pt.translate(0x4000_0000, false).unwrap();
    assert_eq!(t.leaf_size, M2);
    for off in (0..2 * M2).step_by(0x1_2345) {
        let t = pt.translate(0x4000_0000 + off, false).unwrap();
        assert_eq!(t.pa, 0x8000_0000 + off);
        assert_eq!(t.leaf_size, M2);
    }
    // Unmapping only the second leaf keeps the first valid.
    pt.unmap_pages(0x4000_0000 + M2, M2, 1);
    assert_eq!(pt.translate(0x4000_0000 + M2 + 5, false), Err(Errno::NOENT));
    assert_eq!(pt.translate(0x4000_0005, false).unwrap().pa, 0x8000_0005);
}

#[test]
fn aliasing_slots_never_mix_translations() {
    let pt = vtd();
    // Many pages that share IOTLB slots (same low granule bits).
    let n = 4 * pt::IOTLB_SLOTS as u64;
    for i in 0..n {
        pt.map_pages(i * K4 * 4096, 0x10_0000_0000 + i * K4, K4, 1, RW)
            .unwrap();
    }
    for _ in 0..2 {
        for i in 0..n {
            let t = pt.translate(i * K4 * 4096 + 7, false).unwrap();
            assert_eq!(t.pa, 0x10_0000_0000 + i * K4 + 7);
        }
    }
}

#[test]
fn writes_through_cached_leaf_are_dirty_tracked() {
    let pt = PageTable::<AmdV1>::new(AmdV1Config::FOUR_LEVEL).unwrap();
    pt.map_pages(0x30_0000, 0x7000_0000, K4, 1, RW).unwrap();
    pt.set_dirty_tracking(true).unwrap();
    // Cache it with a write, clear dirty, write again through the cached slot.
    pt.translate(0x30_0000, true).unwrap();
    let mut dirty = Vec::new();
    pt.read_and_clear_dirty(0x30_0000, K4, false, &mut |i, l| dirty.push((i, l)));
    assert_eq!(dirty, vec![(0x30_0000, K4)]);
    pt.translate(0x30_0000, false).unwrap();
    pt.translate(0x30_0004, true).unwrap();
    dirty.clear();
    pt.read_and_clear_dirty(0x30_0000, K4, false, &mut |i, l| dirty.push((i, l)));
    assert_eq!(
        dirty,
        vec![(0x30_0000, K4)],
        "write after clear must re-dirty"
    );
}

/// A reader that translates while another thread remaps: once the reader knows
/// that the unmap of version `u` returned, it never sees version `u` or older.
#[test]
fn concurrent_unmap_never_leaves_stale_translations() {
    let pt = Arc::new(vtd());
    let unmapped = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    const IOVA: u64 = 0x7700_0000;
    const PA0: u64 = 0x100_0000_0000;
    let reader = {
        let (pt, unmapped, stop) = (pt.clone(), unmapped.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut hits = 0u64; // reported only
            while !stop.load(Ordering::Acquire) {
                let u = unmapped.load(Ordering::Acquire);
                if let Ok(t) = pt.translate(IOVA + 8, false) {
                    let version = (t.pa - 8 - PA0) / M2;
                    assert!(version > u, "stale: version {version} after unmap {u}");
                    hits += 1;
                }
            }
            hits
        })
    };
    for version in 1..=20_000u64 {
        pt.map_pages(IOVA, PA0 + version * M2, K4, 1, RW).unwrap();
        for _ in 0..4 {
            let _ = pt.translate(IOVA, false);
        }
        pt.unmap_pages(IOVA, K4, 1);
        unmapped.store(version, Ordering::Release);
    }
    stop.store(true, Ordering::Release);
    let hits = reader.join().unwrap();
    let _ = hits;
}

#[test]
fn tables_sharing_a_thread_cache_never_mix_translations() {
    let a = vtd();
    let b = vtd();
    for i in 0..64u64 {
        a.map_pages(0x100_0000 + i * K4, 0x1_0000_0000 + i * K4, K4, 1, RW)
            .unwrap();
        b.map_pages(0x100_0000 + i * K4, 0x2_0000_0000 + i * K4, K4, 1, RW)
            .unwrap();
    }
    for round in 0..3 {
        for i in 0..64u64 {
            let iova = 0x100_0000 + i * K4 + round;
            assert_eq!(
                a.translate(iova, false).unwrap().pa,
                0x1_0000_0000 + i * K4 + round
            );
            assert_eq!(
                b.translate(iova, false).unwrap().pa,
                0x2_0000_0000 + i * K4 + round
            );
        }
    }
}

#[test]
fn a_new_table_never_sees_a_dropped_tables_translations() {
    for round in 0..50u64 {
        let pt = vtd();
        let pa = 0x1_0000_0000 + round * M2;
        pt.map_pages(0x40_0000, pa, K4, 1, RW).unwrap();
        pt.map_pages(0x4000_0000, pa, M2, 1, RW).unwrap();
        assert_eq!(pt.translate(0x40_0010, false).unwrap().pa, pa + 0x10);
        assert_eq!(pt.translate(0x4000_1010, false).unwrap().pa, pa + 0x1010);
        drop(pt);
        let empty = vtd();
        assert_eq!(empty.translate(0x40_0010, false), Err(Errno::NOENT));
        assert_eq!(empty.translate(0x4000_1010, false), Err(Errno::NOENT));
    }
}

/// The paging-structure cache remembers the level-0 table of a 2 MiB block:
/// after the block's small pages are unmapped (freeing that table) and the
/// block is mapped again, as one large leaf or as other small pages, no
/// translation goes through the stale table.
#[test]
fn cached_tables_are_forgotten_when_their_block_is_unmapped() {
    let pt = vtd();
    let base = 0x8000_0000u64;
    for round in 0..20u64 {
        let pa = 0x10_0000_0000 + round * 4 * M2;
        pt.map_pages(base, pa, K4, 512, RW).unwrap();
        for i in (0..512u64).step_by(37) {
            assert_eq!(
                pt.translate(base + i * K4 + 3, false).unwrap().pa,
                pa + i * K4 + 3
            );
        }
        assert_eq!(pt.unmap_pages(base, K4, 512), M2);
        for i in (0..512u64).step_by(37) {
            assert_eq!(pt.translate(base + i * K4, false), Err(Errno::NOENT));
        }
        // Other pages of another table, then a large leaf, at the same IOVAs.
        pt.map_pages(base + 5 * K4, pa + M2, K4, 1, RW).unwrap();
        assert_eq!(
            pt.translate(base + 5 * K4 + 1, false).unwrap().pa,
            pa + M2 + 1
        );
        assert_eq!(pt.translate(base + 6 * K4, false), Err(Errno::NOENT));
        pt.unmap_pages(base + 5 * K4, K4, 1);
        pt.map_pages(base, pa + 2 * M2, M2, 1, RW).unwrap();
        let t = pt.translate(base + 7 * K4 + 9, false).unwrap();
        assert_eq!((t.pa, t.leaf_size), (pa + 2 * M2 + 7 * K4 + 9, M2));
        pt.unmap_pages(base, M2, 1);
    }
}

#[test]
fn writes_through_a_cached_table_are_dirty_tracked() {
    let pt = PageTable::<AmdV1>::new(AmdV1Config::FOUR_LEVEL).unwrap();
    pt.map_pages(0x20_0000, 0x7000_0000, K4, 512, RW).unwrap();
    // Fill the paging-structure cache for the block, then track and write.
    pt.translate(0x20_0000, false).unwrap();
    pt.set_dirty_tracking(true).unwrap();
    pt.translate(0x20_0000 + 9 * K4, true).unwrap();
    let mut dirty = Vec::new();
    pt.read_and_clear_dirty(0x20_0000, M2, false, &mut |i, l| dirty.push((i, l)));
    assert_eq!(dirty, vec![(0x20_0000 + 9 * K4, K4)]);
}

#[test]
fn threads_that_exit_release_their_caches() {
    let pt = Arc::new(vtd());
    pt.map_pages(0x40_0000, 0x9000_0000, K4, 16, RW).unwrap();
    for _ in 0..64 {
        let pt = pt.clone();
        std::thread::spawn(move || {
            for i in 0..16u64 {
                assert_eq!(
                    pt.translate(0x40_0000 + i * K4, false).unwrap().pa,
                    0x9000_0000 + i * K4
                );
            }
        })
        .join()
        .unwrap();
    }
}

/// The IOTLB caches in chunks of the format's smallest granule and level-1
/// block (4 KiB and 2 MiB for ARM), whatever the configured granule: every
/// offset of 16 KiB and 64 KiB leaves, of their blocks, and of the mock's
/// 2 KiB leaves translates as the walk does, and faults after the unmap.
fn translate_matches_walk<F: pt::Format>(cfg: F::Config) {
    let pt = PageTable::<F>::new(cfg).unwrap();
    let g = 1u64 << pt.geometry().granule_lg2;
    let block = g << pt.geometry().items_lg2;
    let (small, large) = (0x40 * block + 3 * g, 0x80 * block);
    pt.map_pages(small, 0x3_0000_0000 + g, g, 3, RW).unwrap();
    pt.map_pages(large, 0x4_0000_0000, block, 1, Prot::READ)
        .unwrap();
    for round in 0..2 {
        for iova in (small..small + 3 * g)
            .step_by(0x3f1)
            .chain((large..large + block).step_by(0x1_0001))
        {
            let t = pt.translate(iova, false).unwrap();
            assert_eq!(
                Some(t.pa),
                pt.iova_to_phys(iova),
                "round {round} iova {iova:#x}"
            );
            assert_eq!(t.leaf_size, if iova >= large { block } else { g });
        }
        assert_eq!(pt.translate(large + 8, true), Err(Errno::PERM));
        assert_eq!(pt.translate(small + 3 * g, false), Err(Errno::NOENT));
    }
    pt.unmap_pages(small + g, g, 1);
    pt.unmap_pages(large, block, 1);
    assert_eq!(pt.translate(small + g + 8, false), Err(Errno::NOENT));
    assert_eq!(pt.translate(large + block / 2, false), Err(Errno::NOENT));
    assert_eq!(
        pt.translate(small + 2 * g + 8, false).unwrap().pa,
        0x3_0000_0000 + 3 * g + 8
    );
}

#[test]
fn granules_other_than_the_cache_chunk_translate_every_offset() {
    use pt::fmt::{ArmV8, ArmV8Config, Mock, MockConfig};
    translate_matches_walk::<ArmV8>(ArmV8Config::S1_4K);
    translate_matches_walk::<ArmV8>(ArmV8Config::S1_16K);
    translate_matches_walk::<ArmV8>(ArmV8Config::S2_64K);
    translate_matches_walk::<Mock>(MockConfig::WIDE);
    translate_matches_walk::<VtdSs>(VtdSsConfig::FOUR_LEVEL);
}

/// `translate_run` answers for the contiguous leaves a DMA reaches into, and
/// stops where `translate` would answer differently: a hole, a permission
/// the DMA lacks, a discontiguity, a larger leaf, the end of the leaf table.
#[test]
fn translate_run_covers_contiguous_leaves_and_stops_where_they_end() {
    let pt = vtd();
    let base = 0x4000_0000u64; // a 2 MiB block: one leaf table
    let pa = 0x9_0000_0000u64;
    pt.map_pages(base, pa, K4, 8, RW).unwrap();
    pt.map_pages(base + 8 * K4, pa + 8 * K4, K4, 2, Prot::READ)
        .unwrap();
    pt.map_pages(base + 12 * K4, pa + 40 * K4, K4, 1, RW)
        .unwrap();
    pt.map_pages(base + 13 * K4, pa + 50 * K4, K4, 2, RW)
        .unwrap();
    pt.map_pages(base + 511 * K4, pa + 600 * K4, K4, 1, RW)
        .unwrap();
    pt.map_pages(base + M2, pa + 601 * K4, K4, 1, RW).unwrap();
    for round in 0..2 {
        // From an offset inside the first leaf, within the request only.
        // (The request reaches 0x10 bytes into the fourth leaf: whole leaves.)
        let r = pt.translate_run(base + 0x10, 3 * K4, true).unwrap();
        assert_eq!((r.pa, r.len), (pa + 0x10, 4 * K4 - 0x10), "round {round}");
        // Writes stop at the read-only leaves; reads go on to the hole.
        assert_eq!(pt.translate_run(base, 64 * K4, true).unwrap().len, 8 * K4);
        assert_eq!(pt.translate_run(base, 64 * K4, false).unwrap().len, 10 * K4);
        // A discontiguous leaf starts a new run.
        assert_eq!(
            pt.translate_run(base + 12 * K4, 8 * K4, false).unwrap().len,
            K4
        );
        assert_eq!(
            pt.translate_run(base + 13 * K4, 8 * K4, false).unwrap().len,
            2 * K4
        );
        // The run ends with the leaf table, even where the next one continues.
        assert_eq!(
            pt.translate_run(base + 511 * K4, 2 * K4, false)
                .unwrap()
                .len,
            K4
        );
        // The first leaf decides the errno.
        assert_eq!(
            pt.translate_run(base + 10 * K4, K4, false),
            Err(Errno::NOENT)
        );
        assert_eq!(pt.translate_run(base + 8 * K4, K4, true), Err(Errno::PERM));
    }
    // Large leaves: one at a time, the rest of the leaf from the IOVA.
    pt.map_pages(0x8000_0000, 0xa_0000_0000, M2, 2, RW).unwrap();
    let r = pt.translate_run(0x8000_0000 + K4, 3 * M2, false).unwrap();
    assert_eq!((r.pa, r.len), (0xa_0000_0000 + K4, M2 - K4));
    // Nothing stale after an unmap.
    pt.unmap_pages(base + 4 * K4, K4, 1);
    assert_eq!(pt.translate_run(base, 8 * K4, false).unwrap().len, 4 * K4);
}

/// Every leaf of a run is accessed, and dirty when written while tracking;
/// leaves past the DMA's end are neither.
#[test]
fn translate_run_sets_flags_on_exactly_the_leaves_of_the_dma() {
    use pt::fmt::vtdss::{A, D};
    let pt = vtd();
    pt.set_dirty_tracking(true).unwrap();
    pt.map_pages(0x10_0000, 0x5000_0000, K4, 16, RW).unwrap();
    let r = pt.translate_run(0x10_0000 + 0x800, 5 * K4, true).unwrap();
    assert_eq!(r.len, 6 * K4 - 0x800);
    for i in 0..16u64 {
        let raw = pt.lookup(0x10_0000 + i * K4).unwrap().raw;
        let touched = i <= 5; // [0x800, 0x800 + 5 pages) reaches into page 5
        let want = if touched { A | D } else { 0 };
        assert_eq!(raw & (A | D), want, "leaf {i}");
    }
}

/// `translate_run_cached` answers exactly as `translate_run` wherever it
/// answers (leaves of every size, runs across leaves, DMAs inside a page
/// and DMAs reaching its end, reads and writes), declines where a walk,
/// a locked update or an errno is needed, and answers once the IOTLB holds
/// the leaf or its table.
fn translate_run_cached_agrees<F: pt::Format>(cfg: F::Config) {
    let pt = PageTable::<F>::new(cfg).unwrap();
    let g = 1u64 << pt.geometry().granule_lg2;
    let block = g << pt.geometry().items_lg2;
    let (small, large) = (0x10 * block, 0x20 * block);
    let pa = 0x7_0000_0000u64;
    pt.map_pages(small, pa, g, 6, RW).unwrap();
    pt.map_pages(small + 6 * g, pa + 6 * g, g, 2, Prot::READ)
        .unwrap();
    pt.map_pages(small + 9 * g, pa + 20 * g, g, 1, RW).unwrap();
    pt.map_pages(large, pa + 0x40 * block, block, 2, RW)
        .unwrap();
    let mut dmas = Vec::new();
    for base in [small, large] {
        for off in [0, 8, g / 2, g - 0x40, g, 3 * g + 0x100, block / 2] {
            for len in [1, 0x40, g / 2, g, 2 * g + 8, 9 * g, block] {
                dmas.push((base + off, len));
            }
        }
    }
    // A leaf never accessed, a hole, a read-only leaf: never answered.
    assert_eq!(pt.translate_run_cached(small + 3 * g, 8, false), None);
    assert_eq!(pt.translate_run_cached(small + 8 * g, 8, false), None);
    for round in 0..3 {
        let mut answered = 0;
        for &(iova, len) in &dmas {
            for write in [false, true] {
                let want = pt.translate_run(iova, len, write);
                match pt.translate_run_cached(iova, len, write) {
                    Some(run) => {
                        answered += 1;
                        assert_eq!(Ok(run), want, "round {round} {iova:#x}+{len:#x} w={write}");
                    }
                    None => assert!(
                        round == 0 || want.is_err(),
                        "round {round}: {iova:#x}+{len:#x} w={write} declined"
                    ),
                }
            }
        }
        if round > 0 {
            assert!(answered > dmas.len(), "round {round}: {answered} answered");
        }
    }
    // Writes while tracking dirty pages need the locked update of the slow path.
    if pt.set_dirty_tracking(true).is_ok() {
        assert_eq!(pt.translate_run_cached(small, 8, true), None);
        assert!(pt.translate_run_cached(small, 8, false).is_some());
    }
    // Nothing survives an unmap.
    pt.unmap_pages(small, g, 6);
    assert_eq!(pt.translate_run_cached(small + 8, 8, false), None);
    assert_eq!(pt.translate_run(small + 8, 8, false), Err(Errno::NOENT));
}

#[test]
fn translate_run_cached_answers_as_translate_run_or_declines() {
    use pt::fmt::{ArmV8, ArmV8Config};
    translate_run_cached_agrees::<VtdSs>(VtdSsConfig::FOUR_LEVEL);
    translate_run_cached_agrees::<AmdV1>(AmdV1Config::FOUR_LEVEL);
    translate_run_cached_agrees::<ArmV8>(ArmV8Config::S1_4K);
    translate_run_cached_agrees::<ArmV8>(ArmV8Config::S1_16K);
    translate_run_cached_agrees::<ArmV8>(ArmV8Config::S2_64K);
}
