//! B3 `pt_batch`: format-level map and unmap of 256 x 4 KiB, one 2 MiB and one
//! 1 GiB leaf for every format, against two floors measured in the same run: a
//! memset of 256 x 8 bytes and a naive per-PTE radix walk.
//!
//! Targets (shared/BENCHMARKS.md B3): <= 450 ns map and <= 400 ns unmap per
//! 256 x 4K; <= 2x the naive floor; formats within 1.3x of each other.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pt::fmt::{
    AmdV1, AmdV1Config, ArmV8, ArmV8Config, Mock, MockConfig, VtdSs, VtdSsConfig, X86_64Config,
    X86_64,
};
use pt::{Format, PageTable, Prot};

const RW: Prot = Prot::READ.union(Prot::WRITE);
const IOVA: u64 = 1 << 31;
const PA: u64 = 1 << 34;

/// Times `op` only, running `after` untimed after each call.
fn timed(iters: u64, mut op: impl FnMut(), mut after: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        op();
        total += start.elapsed();
        after();
    }
    total
}

fn bench_format<F: Format>(c: &mut Criterion, cfg: F::Config) {
    let pt = PageTable::<F>::new(cfg).unwrap();
    let granule = pt.pgsize_bitmap() & pt.pgsize_bitmap().wrapping_neg();
    // 256 x 4 KiB worth of the smallest page (512 x 2 KiB for the mock).
    let small = (4096 / granule).max(1) * 256;
    let mut cases = vec![("256x4K", granule, small)];
    for size in [1u64 << 21, 1 << 30] {
        if pt.pgsize_bitmap() & size != 0 {
            cases.push((if size == 1 << 21 { "2M" } else { "1G" }, size, 1));
        }
    }
    let mut group = c.benchmark_group(format!("pt_batch/{}", F::NAME));
    for (name, pgsize, count) in cases {
        // Warm the tables once, so that steady state reuses freed tables.
        pt.map_pages(IOVA, PA, pgsize, count, RW).unwrap();
        pt.unmap_pages(IOVA, pgsize, count);
        group.bench_function(BenchmarkId::new("map", name), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || {
                        black_box(pt.map_pages(IOVA, PA, pgsize, count, RW).unwrap());
                    },
                    || {
                        pt.unmap_pages(IOVA, pgsize, count);
                    },
                )
            });
        });
        group.bench_function(BenchmarkId::new("unmap", name), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || {
                        black_box(pt.unmap_pages(IOVA, pgsize, count));
                    },
                    || {
                        pt.map_pages(IOVA, PA, pgsize, count, RW).unwrap();
                    },
                )
            });
        });
        // The last untimed `after` of the unmap benchmark left the range mapped.
        pt.unmap_pages(IOVA, pgsize, count);
        group.bench_function(BenchmarkId::new("map+unmap", name), |b| {
            b.iter(|| {
                black_box(pt.map_pages(IOVA, PA, pgsize, count, RW).unwrap());
                black_box(pt.unmap_pages(IOVA, pgsize, count));
            });
        });
    }
    group.finish();
}

/// A naive 4-level radix table: every PTE is written by its own walk from the top.
struct NaiveRadix {
    tables: Vec<Box<[u64; 512]>>,
}

impl NaiveRadix {
    fn new() -> Self {
        NaiveRadix {
            tables: vec![Box::new([0; 512])],
        }
    }

    fn entry(&mut self, iova: u64) -> &mut u64 {
        let mut table = 0usize;
        for level in (1..4).rev() {
            let idx = ((iova >> (12 + 9 * level)) & 511) as usize;
            let next = self.tables[table][idx];
            table = if next == 0 {
                self.tables.push(Box::new([0; 512]));
                let new = self.tables.len() - 1;
                self.tables[table][idx] = (new as u64) << 12 | 3;
                new
            } else {
                (next >> 12) as usize
            };
        }
        &mut self.tables[table][((iova >> 12) & 511) as usize]
    }
}

fn bench_floors(c: &mut Criterion) {
    let mut group = c.benchmark_group("pt_batch/floor");
    let mut ptes = vec![0u64; 256];
    group.bench_function("memset_256x8B", |b| {
        b.iter(|| {
            black_box(&mut ptes).fill(black_box(PA | 3));
        });
    });
    let mut naive = NaiveRadix::new();
    group.bench_function(BenchmarkId::new("naive_walk_map", "256x4K"), |b| {
        b.iter(|| {
            for i in 0..256u64 {
                *naive.entry(IOVA + (i << 12)) = (PA + (i << 12)) | 3;
            }
            black_box(&naive.tables[0]);
        });
    });
    group.bench_function(BenchmarkId::new("naive_walk_unmap", "256x4K"), |b| {
        b.iter(|| {
            for i in 0..256u64 {
                *naive.entry(IOVA + (i << 12)) = 0;
            }
            black_box(&naive.tables[0]);
        });
    });
    group.finish();
}

fn bench_all(c: &mut Criterion) {
    bench_floors(c);
    bench_format::<VtdSs>(c, VtdSsConfig::FOUR_LEVEL);
    bench_format::<X86_64>(c, X86_64Config::FOUR_LEVEL);
    bench_format::<AmdV1>(c, AmdV1Config::FOUR_LEVEL);
    bench_format::<ArmV8>(c, ArmV8Config::S1_4K);
    bench_format::<Mock>(c, MockConfig::WIDE);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = bench_all
}
criterion_main!(benches);
