//! B4 `iova_alloc`: the DMA-API IOVA allocator of `iommu::iova`.
//!
//! Cases: cached alloc/free pairs of 1..32 pages (per-thread magazines), 1 and
//! 2 threads; the slow path (tree) with 300k live 1-page allocations under a
//! random free/alloc churn, mean and max per operation. Floors in the same run:
//! `Vec` push/pop (cached pairs) and `BTreeMap` insert/remove at the same
//! population (slow path).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use iommu::iova::IovaAllocator;

use crate::harness::{measure, per_iter_ns, time_ns, Config, Report, Rng, Target};

const NAME: &str = "B4 iova_alloc";
const LIMIT: u64 = (1 << 36) - 1;

/// The whole of B4.
pub fn run(cfg: &Config, rep: &mut Report) {
    let iters: u64 = cfg.pick(2_000_000, 300_000);
    let reps = cfg.reps();
    let alloc = IovaAllocator::new(1, LIMIT).expect("allocator");
    // Cached pairs, 1 thread.
    let mut vec: Vec<u64> = Vec::with_capacity(64);
    let vec_floor = |v: &mut Vec<u64>| {
        per_iter_ns(iters, |i| {
            v.push(black_box(i));
            black_box(v.pop());
        })
    };
    let mut cache = alloc.cache();
    let (ours, floor) = measure(
        reps,
        || vec_floor(&mut vec),
        || {
            per_iter_ns(iters, |i| {
                let size = 1 + (i & 31);
                let pfn = cache.alloc(size, LIMIT).expect("alloc");
                cache.free(black_box(pfn), size).expect("free");
            })
        },
    );
    drop(cache);
    rep.add(
        NAME,
        "cached pair 1..32 pages, 1 thread",
        ours,
        floor,
        "ns",
        Target::AbsAtMost(15.0),
        "floor=Vec push+pop; IovaCache handle",
    );
    let (ours, floor) = measure(
        reps,
        || vec_floor(&mut vec),
        || {
            per_iter_ns(iters, |i| {
                let size = 1 + (i & 31);
                let pfn = alloc.alloc_fast(size, LIMIT).expect("alloc");
                alloc.free_fast(black_box(pfn), size).expect("free");
            })
        },
    );
    rep.add(
        NAME,
        "cached pair, thread-local cache",
        ours,
        floor,
        "ns",
        Target::None,
        "floor=Vec push+pop; alloc_fast/free_fast",
    );
    // Cached pairs, 2 threads (per-thread time; scaling = 2 * t1 / t2).
    let two = |threads: usize| -> f64 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let a = alloc.clone();
                s.spawn(move || {
                    let mut c = a.cache();
                    for i in 0..iters {
                        let size = 1 + (i & 31);
                        let pfn = c.alloc(size, LIMIT).expect("alloc");
                        c.free(black_box(pfn), size).expect("free");
                    }
                });
            }
        });
        start.elapsed().as_nanos() as f64 / (iters as f64 * threads as f64)
    };
    let (ours2, floor2) = measure(reps, || vec_floor(&mut Vec::with_capacity(64)), || two(2));
    rep.add(
        NAME,
        "cached pair, 2 threads (ns/pair/thread-sum)",
        ours2,
        floor2,
        "ns",
        Target::AbsAtMost(15.0),
        "floor=Vec push+pop, 1 thread",
    );

    // Slow path: 300k live single pages, random free then alloc through the tree.
    let live_n: usize = cfg.pick(300_000, 100_000);
    let ops: usize = cfg.pick(200_000, 50_000);
    let tree = IovaAllocator::new(1, LIMIT).expect("allocator");
    let mut live: Vec<u64> = (0..live_n)
        .map(|_| tree.alloc(1, LIMIT).expect("alloc"))
        .collect();
    let mut rng = Rng::new(17);
    let mut bt: BTreeMap<u64, u64> = live.iter().map(|&p| (p, 1)).collect();
    let mut bt_live = live.clone();
    let mut bt_rng = Rng::new(17);
    let mut btree_floor = || {
        time_ns(|| {
            for _ in 0..ops {
                let i = bt_rng.below(bt_live.len() as u64) as usize;
                let p = bt_live[i];
                bt.remove(&p);
                let q = p ^ (1 << 35);
                bt.insert(q, 1);
                bt_live[i] = q;
            }
        }) / (2 * ops) as f64
    };
    let mut lat = Vec::with_capacity(2 * ops);
    let (mean, floor) = measure(reps, &mut btree_floor, || {
        let t = Instant::now();
        for _ in 0..ops {
            let i = rng.below(live.len() as u64) as usize;
            tree.free(live[i], 1).expect("free");
            live[i] = tree.alloc(1, LIMIT).expect("alloc");
        }
        t.elapsed().as_nanos() as f64 / (2 * ops) as f64
    });
    // Latency distribution (per-operation clocks), in a separate pass.
    for _ in 0..ops {
        let i = rng.below(live.len() as u64) as usize;
        let t = Instant::now();
        tree.free(live[i], 1).expect("free");
        lat.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        live[i] = tree.alloc(1, LIMIT).expect("alloc");
        lat.push(t.elapsed().as_nanos() as f64);
    }
    // Worst case: a single operation's clock on a shared VM mostly measures
    // whichever interrupt or preemption hit it. The allocator is
    // deterministic, so the same operation sequence is replayed from the
    // same state several times; an operation's cost is its minimum over the
    // replays, and the row reports the maximum of those (BTreeMap the same
    // way as the floor).
    let replay_ops = cfg.pick(20_000, 5_000);
    let max_ns = replay_max(reps, || {
        let tree = IovaAllocator::new(1, LIMIT).expect("allocator");
        let mut live: Vec<u64> = (0..live_n)
            .map(|_| tree.alloc(1, LIMIT).expect("alloc"))
            .collect();
        let mut rng = Rng::new(23);
        let mut lat = Vec::with_capacity(2 * replay_ops);
        for _ in 0..replay_ops {
            let i = rng.below(live.len() as u64) as usize;
            let t = Instant::now();
            tree.free(live[i], 1).expect("free");
            lat.push(t.elapsed().as_nanos() as f64);
            let t = Instant::now();
            live[i] = tree.alloc(1, LIMIT).expect("alloc");
            lat.push(t.elapsed().as_nanos() as f64);
        }
        lat
    });
    let bt_max_ns = replay_max(reps, || {
        let mut live: Vec<u64> = (0..live_n as u64).map(|i| i << 12).collect();
        let mut bt: BTreeMap<u64, u64> = live.iter().map(|&p| (p, 1)).collect();
        let mut rng = Rng::new(23);
        let mut lat = Vec::with_capacity(2 * replay_ops);
        for _ in 0..replay_ops {
            let i = rng.below(live.len() as u64) as usize;
            let p = live[i];
            let t = Instant::now();
            bt.remove(&p);
            lat.push(t.elapsed().as_nanos() as f64);
            let q = p ^ (1 << 35);
            let t = Instant::now();
            bt.insert(q, 1);
            lat.push(t.elapsed().as_nanos() as f64);
            live[i] = q;
        }
        lat
    });
    lat.sort_by(f64::total_cmp);
    let p999 = lat[lat.len() * 999 / 1000];
    rep.add(
        NAME,
        &format!("slow path mean, {}k live", live_n / 1000),
        mean,
        floor,
        "ns",
        Target::AbsAtMost(330.0),
        "floor=BTreeMap insert/remove",
    );
    rep.add(
        NAME,
        &format!("slow path p99.9, {}k live", live_n / 1000),
        p999,
        0.0,
        "ns",
        Target::None,
        "per-op clock",
    );
    rep.add(
        NAME,
        &format!("slow path max, {}k live", live_n / 1000),
        max_ns,
        bt_max_ns,
        "ns",
        Target::AbsAtMost(5000.0),
        "max over ops of each op's min over identical replays; floor=the same for BTreeMap",
    );
    let holes = tree.with_space(|fs| fs.holes());
    rep.add(
        NAME,
        "slow path free-space holes",
        holes as f64,
        0.0,
        "",
        Target::None,
        "structure size (not live count)",
    );
}

/// Runs `run` (which replays one fixed operation sequence from a fixed state
/// and returns each operation's latency) `reps` times; returns the maximum
/// over operations of each operation's minimum over the runs.
fn replay_max(reps: usize, mut run: impl FnMut() -> Vec<f64>) -> f64 {
    let mut min = run();
    for _ in 1..reps {
        for (m, l) in min.iter_mut().zip(run()) {
            *m = m.min(l);
        }
    }
    min.into_iter().fold(0.0, f64::max)
}
