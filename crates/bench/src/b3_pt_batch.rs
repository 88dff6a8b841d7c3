//! B3 `pt_batch`: format-level map and unmap of 256 x 4 KiB, 2 MiB and 1 GiB
//! leaves for every format.
//!
//! Floors in the same run: a memset of 256 x 8 bytes (the PTE bytes) and a naive
//! per-PTE radix walk ([`crate::naive::NaiveRadix`]) doing the same 256 writes.
//! Each repetition maps `K` batches at distinct 2 MiB-aligned IOVAs (so every
//! batch allocates its leaf table, and unmap frees it again) and then unmaps them.

use std::hint::black_box;

use pt::fmt::{AmdV1, AmdV1Config, ArmV8, ArmV8Config, VtdSs, VtdSsConfig, X86_64Config, X86_64};
use pt::{Format, PageTable, Prot};

use crate::harness::{measure, measure_many, time_ns, Config, Report, Target};
use crate::naive::NaiveRadix;

const NAME: &str = "B3 pt_batch";
const RW: Prot = Prot::READ.union(Prot::WRITE);
const BASE: u64 = 1 << 39;
const PA: u64 = 1 << 34;

/// One format's entry in the list (a format is one more line in [`formats`]).
pub struct FormatEntry {
    /// Report name.
    pub name: &'static str,
    /// Runs B3 for the format, returning (map, unmap) ns per 256 x 4K batch.
    pub run: fn(&Config, &mut Report, f64, f64) -> (f64, f64),
}

/// The formats B3 runs on.
pub fn formats() -> Vec<FormatEntry> {
    vec![
        FormatEntry {
            name: "vtdss",
            run: |c, r, m, u| run_format::<VtdSs>(c, r, VtdSsConfig::FOUR_LEVEL, m, u),
        },
        FormatEntry {
            name: "amdv1",
            run: |c, r, m, u| run_format::<AmdV1>(c, r, AmdV1Config::FOUR_LEVEL, m, u),
        },
        FormatEntry {
            name: "armv8-4k",
            run: |c, r, m, u| run_format::<ArmV8>(c, r, ArmV8Config::S1_4K, m, u),
        },
        FormatEntry {
            name: "x86_64",
            run: |c, r, m, u| run_format::<X86_64>(c, r, X86_64Config::FOUR_LEVEL, m, u),
        },
    ]
}

/// Runs the naive floors once: (map ns, unmap ns) per 256-PTE batch over `k` batches.
fn naive_floor(k: u64) -> (f64, f64) {
    let mut t = NaiveRadix::new();
    let map = time_ns(|| {
        for b in 0..k {
            let iova = BASE + (b << 21);
            for i in 0..256u64 {
                t.map(iova + (i << 12), PA + (i << 12));
            }
        }
    });
    let unmap = time_ns(|| {
        for b in 0..k {
            let iova = BASE + (b << 21);
            for i in 0..256u64 {
                *t.entry(iova + (i << 12)) = 0;
            }
        }
    });
    black_box(&t);
    (map / k as f64, unmap / k as f64)
}

fn memset_floor(k: u64) -> f64 {
    let mut ptes = vec![0u64; 256];
    time_ns(|| {
        for b in 0..k {
            black_box(&mut ptes).fill(black_box(PA | b | 3));
        }
    }) / k as f64
}

/// The whole of B3.
pub fn run(cfg: &Config, rep: &mut Report) {
    let k: u64 = cfg.pick(2000, 500);
    let reps = cfg.reps();
    // The naive floors, measured around themselves for a stable figure.
    let mut naive_map = Vec::new();
    let mut naive_unmap = Vec::new();
    let (_, memset) = measure(
        reps,
        || memset_floor(k),
        || {
            let (m, u) = naive_floor(k);
            naive_map.push(m);
            naive_unmap.push(u);
            0.0
        },
    );
    let nm = crate::harness::median(&mut naive_map);
    let nu = crate::harness::median(&mut naive_unmap);
    rep.add(
        NAME,
        "floor: naive map 256x4K",
        nm,
        memset,
        "ns",
        Target::None,
        "floor=memset 256x8B",
    );
    rep.add(
        NAME,
        "floor: naive unmap 256x4K",
        nu,
        memset,
        "ns",
        Target::None,
        "floor=memset 256x8B",
    );
    let mut per_format = Vec::new();
    for f in formats() {
        let (m, u) = (f.run)(cfg, rep, nm, nu);
        if f.name != "x86_64" {
            per_format.push((f.name, m, u));
        }
    }
    if per_format.len() > 1 {
        for (what, idx) in [("map", 1), ("unmap", 2)] {
            let vals: Vec<f64> = per_format
                .iter()
                .map(|p| if idx == 1 { p.1 } else { p.2 })
                .collect();
            let max = vals.iter().cloned().fold(f64::MIN, f64::max);
            let min = vals.iter().cloned().fold(f64::MAX, f64::min);
            rep.add(
                NAME,
                &format!("format spread {what} 256x4K"),
                max,
                min,
                "ns",
                Target::RatioAtMost(1.3),
                "slowest vs fastest of vtdss/amdv1/armv8-4k",
            );
        }
    }
}

fn run_format<F: Format>(
    cfg: &Config,
    rep: &mut Report,
    fcfg: F::Config,
    naive_map: f64,
    naive_unmap: f64,
) -> (f64, f64) {
    let pt = PageTable::<F>::new(fcfg).expect("format config");
    let empty_bytes = pt.table_bytes();
    let sizes = pt.pgsize_bitmap();
    let reps = cfg.reps();
    let mut result = (0.0, 0.0);
    let cases: [(&str, u64, u64, u32); 3] = [
        ("256x4K", 1 << 12, 256, 21),
        ("2M", 1 << 21, 1, 21),
        ("1G", 1 << 30, 1, 30),
    ];
    for (case, pgsize, count, stride_lg2) in cases {
        if sizes & pgsize == 0 {
            continue;
        }
        let k: u64 = if pgsize == 1 << 30 {
            cfg.pick(256, 64)
        } else {
            cfg.pick(2000, 500)
        };
        let k_floor: u64 = cfg.pick(2000, 500);
        let map_ns = || {
            time_ns(|| {
                for b in 0..k {
                    let iova = BASE + (b << stride_lg2);
                    black_box(pt.map_pages(iova, PA, pgsize, count, RW).expect("map"));
                }
            }) / k as f64
        };
        let mut unmaps = Vec::new();
        let mut map_and_unmap = || {
            let m = map_ns();
            let u = time_ns(|| {
                for b in 0..k {
                    let iova = BASE + (b << stride_lg2);
                    black_box(pt.unmap_pages(iova, pgsize, count));
                }
            }) / k as f64;
            unmaps.push(u);
            m
        };
        let (maps, memset) =
            measure_many(reps, || memset_floor(k_floor), &mut [&mut map_and_unmap]);
        let map = maps[0];
        let unmap = crate::harness::median(&mut unmaps);
        assert_eq!(pt.table_bytes(), empty_bytes, "B3 left tables behind");
        let name = F::NAME;
        if case == "256x4K" {
            result = (map, unmap);
            rep.add(
                NAME,
                &format!("{name} map {case}"),
                map,
                memset,
                "ns",
                Target::AbsAtMost(450.0),
                "floor=memset 256x8B",
            );
            rep.add(
                NAME,
                &format!("{name} unmap {case}"),
                unmap,
                memset,
                "ns",
                Target::AbsAtMost(400.0),
                "floor=memset 256x8B",
            );
            rep.add(
                NAME,
                &format!("{name} map {case} vs naive"),
                map,
                naive_map,
                "ns",
                Target::RatioAtMost(2.0),
                "floor=naive per-PTE walk",
            );
            rep.add(
                NAME,
                &format!("{name} unmap {case} vs naive"),
                unmap,
                naive_unmap,
                "ns",
                Target::RatioAtMost(2.0),
                "floor=naive per-PTE walk",
            );
        } else {
            rep.add(
                NAME,
                &format!("{name} map {case}"),
                map,
                memset,
                "ns",
                Target::None,
                "floor=memset 256x8B",
            );
            rep.add(
                NAME,
                &format!("{name} unmap {case}"),
                unmap,
                memset,
                "ns",
                Target::None,
                "floor=memset 256x8B",
            );
        }
    }
    result
}
