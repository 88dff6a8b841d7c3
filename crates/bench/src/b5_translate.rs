//! B5 `translate`: 1M IOVA translations through [`pt::PageTable::translate`]
//! (software IOTLB, then the lock-free walk) over a 1 GiB map of 4 KiB leaves, a
//! 1 GiB map of 2 MiB leaves and a sparse 64 GiB map, for every format.
//!
//! Floors in the same run: a naive radix walk over a table of the same shape
//! holding the same mappings ([`NaiveRadix`]). Comparators: vm-memory's `Iotlb`
//! (a range map, as rust-vmm's vhost-user IOMMU uses) and a `BTreeMap` mapping
//! table in the style of today's Rust virtio-iommu devices, at 100k areas.

use std::collections::BTreeMap;
use std::hint::black_box;

use pt::fmt::{AmdV1, AmdV1Config, ArmV8, ArmV8Config, VtdSs, VtdSsConfig};
use pt::{Format, PageTable, Prot};
use vm_memory::{GuestAddress, Iotlb, Permissions};

use crate::harness::{measure, time_ns, zipf_indices, Config, Report, Rng, Target};
use crate::naive::NaiveRadix;

const NAME: &str = "B5 translate";
const RW: Prot = Prot::READ.union(Prot::WRITE);
const GIB: u64 = 1 << 30;
const IOVA: u64 = 1 << 40;
const PA: u64 = 1 << 36;

/// Runs one format's cases.
pub type RunFn = fn(&Config, &mut Report);

/// The formats B5 runs on (one more entry adds a format).
pub fn formats() -> Vec<(&'static str, RunFn)> {
    vec![
        ("vtdss", |c, r| {
            run_format::<VtdSs>(c, r, VtdSsConfig::FOUR_LEVEL, true);
        }),
        ("amdv1", |c, r| {
            run_format::<AmdV1>(c, r, AmdV1Config::FOUR_LEVEL, false);
        }),
        ("armv8-4k", |c, r| {
            run_format::<ArmV8>(c, r, ArmV8Config::S1_4K, false);
        }),
    ]
}

/// The whole of B5.
pub fn run(cfg: &Config, rep: &mut Report) {
    for (_, f) in formats() {
        f(cfg, rep);
    }
}

fn ns_per<T>(iovas: &[u64], mut f: impl FnMut(u64) -> T) -> f64 {
    time_ns(|| {
        for &iova in iovas {
            black_box(f(iova));
        }
    }) / iovas.len() as f64
}

#[allow(clippy::too_many_arguments)]
fn row<F: Format>(
    cfg: &Config,
    rep: &mut Report,
    pt: &PageTable<F>,
    naive: &NaiveRadix,
    case: &str,
    iovas: &[u64],
    target: Target,
) -> (f64, f64) {
    let (ours, floor) = measure(
        cfg.reps(),
        || ns_per(iovas, |i| naive.translate(i)),
        || ns_per(iovas, |i| pt.translate(i, false).map(|t| t.pa).unwrap_or(0)),
    );
    rep.add(
        NAME,
        &format!("{} {case}", F::NAME),
        ours,
        floor,
        "ns",
        target,
        "floor=naive radix walk",
    );
    (ours, floor)
}

fn run_format<F: Format>(cfg: &Config, rep: &mut Report, fcfg: F::Config, extra: bool) {
    let n: usize = cfg.pick(1 << 20, 1 << 18);
    let pages = GIB >> 12;
    let mut rng = Rng::new(5);
    // 1 GiB of 4 KiB leaves.
    let pt = PageTable::<F>::new(fcfg.clone()).expect("format");
    pt.map_pages(IOVA, PA, 1 << 12, pages, RW).expect("map 4K");
    let mut naive = NaiveRadix::new();
    for i in 0..pages {
        naive.map(IOVA + (i << 12), PA + (i << 12));
    }
    let hot: Vec<u64> = (0..n as u64)
        .map(|i| IOVA + ((i % 64) << 12) + ((i * 64) & 0xfc0))
        .collect();
    row(
        cfg,
        rep,
        &pt,
        &naive,
        "4K hit (64 hot pages)",
        &hot,
        Target::AbsAtMost(2.0),
    );
    let seq: Vec<u64> = (0..n as u64).map(|i| IOVA + ((i * 512) % GIB)).collect();
    row(
        cfg,
        rep,
        &pt,
        &naive,
        "4K sequential (512 B steps)",
        &seq,
        Target::None,
    );
    let random: Vec<u64> = (0..n).map(|_| IOVA + (rng.below(GIB) & !7)).collect();
    row(
        cfg,
        rep,
        &pt,
        &naive,
        "4K random (miss)",
        &random,
        Target::RatioAtMost(1.3),
    );
    let (o, f) = measure(
        cfg.reps(),
        || ns_per(&random, |i| naive.translate(i)),
        || {
            ns_per(&random, |i| {
                pt.translate_uncached(i, false).map(|t| t.pa).unwrap_or(0)
            })
        },
    );
    rep.add(
        NAME,
        &format!("{} 4K random uncached walk", F::NAME),
        o,
        f,
        "ns",
        Target::None,
        "floor=naive radix walk",
    );
    let zipf: Vec<u64> = zipf_indices(pages, n, 9)
        .into_iter()
        .map(|p| IOVA + (p << 12) + 64)
        .collect();
    row(cfg, rep, &pt, &naive, "4K zipf", &zipf, Target::None);
    drop(pt);
    drop(naive);

    // 1 GiB of 2 MiB leaves.
    let pt = PageTable::<F>::new(fcfg.clone()).expect("format");
    pt.map_pages(IOVA, PA, 1 << 21, GIB >> 21, RW)
        .expect("map 2M");
    let mut naive = NaiveRadix::new();
    for i in 0..GIB >> 21 {
        naive.map_2m(IOVA + (i << 21), PA + (i << 21));
    }
    row(cfg, rep, &pt, &naive, "2M random", &random, Target::None);
    drop(pt);
    drop(naive);

    if !extra {
        return;
    }
    // Sparse: one 4 KiB page every 2 MiB across 64 GiB.
    let pt = PageTable::<F>::new(fcfg).expect("format");
    let mut naive = NaiveRadix::new();
    let sparse_pages = (64 * GIB) >> 21;
    for i in 0..sparse_pages {
        pt.map_pages(IOVA + (i << 21), PA + (i << 12), 1 << 12, 1, RW)
            .expect("map sparse");
        naive.map(IOVA + (i << 21), PA + (i << 12));
    }
    let sparse: Vec<u64> = (0..n)
        .map(|_| IOVA + (rng.below(sparse_pages) << 21) + 8)
        .collect();
    row(
        cfg,
        rep,
        &pt,
        &naive,
        "sparse 64G random",
        &sparse,
        Target::None,
    );
    drop(pt);
    drop(naive);

    range_maps::<F>(cfg, rep, n);
}

/// 100k scattered 4 KiB areas: ours vs a BTreeMap mapping table and vm-memory's
/// `Iotlb`, zipf-distributed and uniform accesses.
fn range_maps<F: Format>(cfg: &Config, rep: &mut Report, n: usize) {
    let areas: u64 = 100_000;
    let geo_cfg = VtdSsConfig::FOUR_LEVEL;
    let pt = PageTable::<VtdSs>::new(geo_cfg).expect("format");
    let mut btree: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut iotlb = Iotlb::new();
    let mut rng = Rng::new(11);
    for i in 0..areas {
        let iova = IOVA + (i << 16);
        let pa = PA + (rng.below(1 << 22) << 12);
        pt.map_pages(iova, pa, 1 << 12, 1, RW).expect("map area");
        btree.insert(iova, (1 << 12, pa));
        iotlb
            .set_mapping(
                GuestAddress(iova),
                GuestAddress(pa),
                4096,
                Permissions::ReadWrite,
            )
            .expect("iotlb");
    }
    let btree_lookup = |iova: u64| -> u64 {
        match btree.range(..=iova).next_back() {
            Some((&start, &(len, pa))) if iova - start < len => pa + (iova - start),
            _ => 0,
        }
    };
    let vmm_lookup = |iova: u64| -> u64 {
        match Iotlb::lookup(&iotlb, GuestAddress(iova), 8, Permissions::Read) {
            Ok(mut it) => it.next().map_or(0, |r| r.base.0),
            Err(_) => 0,
        }
    };
    let ours = |iova: u64| pt.translate(iova, false).map(|t| t.pa).unwrap_or(0);
    // Sanity: all three agree.
    for i in (0..areas).step_by(997) {
        let iova = IOVA + (i << 16) + 24;
        assert_eq!(ours(iova), btree_lookup(iova));
        assert_eq!(ours(iova), vmm_lookup(iova));
    }
    let zipf: Vec<u64> = zipf_indices(areas, n, 3)
        .into_iter()
        .map(|a| IOVA + (a << 16) + 128)
        .collect();
    let uniform: Vec<u64> = (0..n)
        .map(|_| IOVA + (rng.below(areas) << 16) + 128)
        .collect();
    for (case, iovas) in [("zipf", &zipf), ("uniform", &uniform)] {
        let (o, f) = measure(
            cfg.reps(),
            || ns_per(iovas, btree_lookup),
            || ns_per(iovas, ours),
        );
        let target = if case == "zipf" {
            Target::RatioAtMost(0.1)
        } else {
            Target::None
        };
        rep.add(
            NAME,
            &format!("100k areas {case} vs BTreeMap"),
            o,
            f,
            "ns",
            target,
            "floor=BTreeMap range lookup (virtio-iommu style)",
        );
        let (o, f) = measure(
            cfg.reps(),
            || ns_per(iovas, vmm_lookup),
            || ns_per(iovas, ours),
        );
        rep.add(
            NAME,
            &format!("100k areas {case} vs vm-memory"),
            o,
            f,
            "ns",
            Target::None,
            "floor=vm-memory Iotlb::lookup",
        );
    }
    let _ = std::marker::PhantomData::<F>;
}
