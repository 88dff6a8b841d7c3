//! B9 `sparse_pt_memory`: format-level map of one 4 KiB page every 2 MiB across
//! 64 GiB of IOVA (32768 leaf tables for 128 KiB of mappings), then unmap of
//! each of them, for every format; reported per map+unmap pair, and the table
//! memory left after everything is unmapped as a fraction of the peak.
//!
//! Each repetition starts from a new, empty table ("cold": every leaf table is
//! fresh memory from the allocator, as a first use in the kernel is) and then
//! runs the same pattern again on the same table ("warm": tables come from the
//! free list of the first pass).
//!
//! Floor in the same run: the naive allocate-and-walk radix table
//! ([`crate::naive::NaiveRadix`]): per page a top-down walk allocating missing
//! tables, and an entry store to unmap; it never frees, so its residual memory
//! is its peak.

use std::hint::black_box;

use pt::fmt::{AmdV1, AmdV1Config, ArmV8, ArmV8Config, VtdSs, VtdSsConfig, X86_64Config, X86_64};
use pt::{Format, PageTable, Prot};

use crate::harness::{median, time_ns, Config, Report, Target};
use crate::naive::NaiveRadix;

const NAME: &str = "B9 sparse_pt_memory";
const RW: Prot = Prot::READ.union(Prot::WRITE);
const BASE: u64 = 1 << 39;
const PA: u64 = 1 << 34;
const STRIDE: u64 = 2 << 20;
const PAGE: u64 = 4096;

/// One format's entry.
pub struct FormatEntry {
    /// Report name.
    pub name: &'static str,
    /// Runs B9 for the format over `pages` slots.
    pub run: fn(&Config, &mut Report, u64, &Floor),
}

/// The formats B9 runs on (those of [`crate::b3_pt_batch::formats`]).
pub fn formats() -> Vec<FormatEntry> {
    vec![
        FormatEntry {
            name: "vtdss",
            run: |c, r, n, f| run_format::<VtdSs>(c, r, VtdSsConfig::FOUR_LEVEL, n, f),
        },
        FormatEntry {
            name: "amdv1",
            run: |c, r, n, f| run_format::<AmdV1>(c, r, AmdV1Config::FOUR_LEVEL, n, f),
        },
        FormatEntry {
            name: "armv8-4k",
            run: |c, r, n, f| run_format::<ArmV8>(c, r, ArmV8Config::S1_4K, n, f),
        },
        FormatEntry {
            name: "x86_64",
            run: |c, r, n, f| run_format::<X86_64>(c, r, X86_64Config::FOUR_LEVEL, n, f),
        },
    ]
}

/// What the naive floor leaves behind.
pub struct Floor {
    /// Residual table bytes after unmapping all, as % of its peak.
    pub residual_pct: f64,
}

fn naive_pass(pages: u64) -> (f64, u64, u64) {
    let mut t = NaiveRadix::new();
    let map = time_ns(|| {
        for k in 0..pages {
            t.map(BASE + k * STRIDE, PA + k * PAGE);
        }
    });
    let peak = t.bytes();
    let unmap = time_ns(|| {
        for k in 0..pages {
            *t.entry(BASE + k * STRIDE) = 0;
        }
    });
    black_box(&t);
    ((map + unmap) / pages as f64, peak, t.bytes())
}

/// The whole of B9.
pub fn run(cfg: &Config, rep: &mut Report) {
    // 64 GiB / 2 MiB slots (quick: 16 GiB).
    let pages = cfg.pick(32768u64, 8192);
    let (_, peak, left) = naive_pass(pages);
    let floor = Floor {
        residual_pct: left as f64 * 100.0 / peak as f64,
    };
    for f in formats() {
        (f.run)(cfg, rep, pages, &floor);
    }
}

/// One pass: maps every slot, unmaps every slot; returns (ns per pair, peak
/// table bytes, table bytes left).
fn pass<F: Format>(pt: &PageTable<F>, pages: u64) -> (f64, u64, u64) {
    let map = time_ns(|| {
        for k in 0..pages {
            black_box(
                pt.map_pages(BASE + k * STRIDE, PA + k * PAGE, PAGE, 1, RW)
                    .expect("map"),
            );
        }
    });
    let peak = pt.table_bytes();
    let unmap = time_ns(|| {
        for k in 0..pages {
            black_box(pt.unmap_pages(BASE + k * STRIDE, PAGE, 1));
        }
    });
    ((map + unmap) / pages as f64, peak, pt.table_bytes())
}

fn run_format<F: Format>(
    cfg: &Config,
    rep: &mut Report,
    fcfg: F::Config,
    pages: u64,
    floor: &Floor,
) {
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut naive = Vec::new();
    let (mut peak, mut left, mut held_peak, mut held_left) = (0, 0, 0, 0);
    for _ in 0..cfg.reps() {
        // The floor right before and after, as `measure` does.
        let before = naive_pass(pages).0;
        let mut pt = PageTable::<F>::new(fcfg.clone()).expect("format config");
        let (c, p, l) = pass(&pt, pages);
        cold.push(c);
        held_peak = pt.arena_bytes();
        let (w, _, _) = pass(&pt, pages);
        warm.push(w);
        pt.release_unused_memory();
        held_left = pt.arena_bytes();
        (peak, left) = (p, l);
        drop(pt);
        naive.push((before + naive_pass(pages).0) / 2.0);
    }
    let naive = median(&mut naive);
    let name = F::NAME;
    rep.add(
        NAME,
        &format!("{name} map+unmap pair (cold)"),
        median(&mut cold),
        naive,
        "ns",
        Target::AbsAtMost(500.0),
        "floor=naive allocate-and-walk radix (never frees)",
    );
    rep.add(
        NAME,
        &format!("{name} map+unmap pair (warm)"),
        median(&mut warm),
        naive,
        "ns",
        Target::None,
        "floor=naive allocate-and-walk radix (never frees)",
    );
    rep.add(
        NAME,
        &format!("{name} live tables after unmap-all"),
        left as f64 * 100.0 / peak as f64,
        floor.residual_pct,
        "% of peak",
        Target::AbsAtMost(1.0),
        "floor=naive radix residual; ours: table_bytes() after / at peak",
    );
    rep.add(
        NAME,
        &format!("{name} arena held after release"),
        held_left as f64 * 100.0 / held_peak as f64,
        floor.residual_pct,
        "% of peak",
        Target::AbsAtMost(1.0),
        "arena_bytes() after release_unused_memory / at peak",
    );
}
