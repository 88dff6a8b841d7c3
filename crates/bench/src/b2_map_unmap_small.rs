//! B2 `map_unmap_small`: automatic-IOVA `IOMMU_IOAS_MAP` of 1, 8 and 256 pages
//! and their `IOMMU_IOAS_UNMAP`, through the library's ioctl entry
//! (`IommufdFile::ioctl`, what the preload library calls), into an IOAS with
//! one attached mock HWPT, so every map pins and fills a domain; 1 and 2
//! threads (each thread its own IOAS in one context, as a VMM's vCPU threads).
//!
//! Floor in the same run: a real syscall round trip (`getppid`). Rows: map and
//! unmap per page (batches of maps, then of unmaps), a map+unmap pair per
//! syscall, 2-thread throughput over 1-thread, and the pair's p99.9 over its
//! median (per-pair clock).

use std::sync::Barrier;

use crate::b1_map_bulk::Client;
use crate::harness::{measure, median, per_iter_ns, time_ns, Config, Report, Target};

const NAME: &str = "B2 map_unmap_small";
const PAGE: u64 = 4096;

/// Nanoseconds per real syscall (`getppid`), over `iters` calls.
pub fn syscall_ns(iters: u64) -> f64 {
    per_iter_ns(iters, |_| {
        std::hint::black_box(std::os::unix::process::parent_id());
    })
}

/// One thread's workload: an IOAS with a mock domain and a buffer.
struct Lane {
    ioas: u32,
    mem: host::sys::Mmap,
}

impl Lane {
    fn new(c: &Client, pages: u64) -> Lane {
        let ioas = c.ioas();
        c.mock_domain(ioas, 0).expect("mock domain");
        let mem = host::sys::Mmap::anon(
            (pages * PAGE) as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        )
        .expect("mmap");
        Lane { ioas, mem }
    }

    fn pair(&self, c: &Client, len: u64) {
        let iova = c.map(self.ioas, self.mem.addr(), len, None).expect("map");
        c.unmap(self.ioas, iova, len).expect("unmap");
    }
}

/// The whole of B2.
pub fn run(cfg: &Config, rep: &mut Report) {
    let c = Client::open();
    let batch: usize = cfg.pick(4096, 1024);
    let syscall_iters = cfg.pick(200_000, 50_000);
    for pages in [1u64, 8, 256] {
        let len = pages * PAGE;
        let lane = Lane::new(&c, pages);
        // The mock's aperture is 2 GiB: at most 1 GiB mapped at once.
        let batch = batch.min(((1u64 << 30) / len) as usize);
        let mut unmap_ns = Vec::new();
        let mut iovas = Vec::with_capacity(batch);
        let (map_ns, sys) = measure(
            cfg.reps(),
            || syscall_ns(syscall_iters),
            || {
                let m = time_ns(|| {
                    for _ in 0..batch {
                        iovas.push(c.map(lane.ioas, lane.mem.addr(), len, None).expect("map"));
                    }
                });
                let u = time_ns(|| {
                    for iova in iovas.drain(..) {
                        c.unmap(lane.ioas, iova, len).expect("unmap");
                    }
                });
                unmap_ns.push(u / (batch as u64 * pages) as f64);
                m / (batch as u64 * pages) as f64
            },
        );
        let unmap = median(&mut unmap_ns);
        rep.add(
            NAME,
            &format!("map {pages}p, per page"),
            map_ns,
            sys,
            "ns",
            Target::AbsAtMost(60.0),
            "floor=syscall (getppid); target is per page",
        );
        rep.add(
            NAME,
            &format!("unmap {pages}p, per page"),
            unmap,
            sys,
            "ns",
            Target::AbsAtMost(80.0),
            "floor=syscall (getppid); target is per page",
        );

        // Pairs, per-pair clock: median, p99.9, and the pair per syscall.
        let pairs = cfg.pick(200_000, 20_000);
        let mut lat = Vec::with_capacity(pairs);
        let (pair, sys) = measure(
            cfg.reps(),
            || syscall_ns(syscall_iters),
            || {
                lat.clear();
                let t = time_ns(|| {
                    for _ in 0..pairs {
                        let t0 = std::time::Instant::now();
                        lane.pair(&c, len);
                        lat.push(t0.elapsed().as_nanos() as f64);
                    }
                });
                t / pairs as f64
            },
        );
        rep.add(
            NAME,
            &format!("map+unmap pair {pages}p"),
            pair,
            sys,
            "ns",
            if pages == 1 {
                Target::RatioAtMost(1.5)
            } else {
                Target::None
            },
            "floor=syscall (getppid)",
        );
        lat.sort_by(f64::total_cmp);
        let p999 = lat[(lat.len() * 999 / 1000).min(lat.len() - 1)];
        let med = lat[lat.len() / 2];
        rep.add(
            NAME,
            &format!("pair {pages}p p99.9 / median"),
            p999,
            med,
            "ns",
            Target::RatioAtMost(10.0),
            "last repetition, per-pair clock",
        );
        c.destroy(lane.ioas).ok();
    }

    // Scaling: 2 threads, each its own IOAS in one context, against 1 thread.
    let pairs = cfg.pick(100_000, 10_000) as u64;
    let lanes: Vec<Lane> = (0..2).map(|_| Lane::new(&c, 1)).collect();
    let one = |lane: &Lane| per_iter_ns(pairs, |_| lane.pair(&c, PAGE));
    let two = || {
        let barrier = Barrier::new(2);
        let t = time_ns(|| {
            std::thread::scope(|s| {
                for lane in &lanes {
                    let barrier = &barrier;
                    let c = &c;
                    s.spawn(move || {
                        barrier.wait();
                        for _ in 0..pairs {
                            lane.pair(c, PAGE);
                        }
                    });
                }
            });
        });
        // Throughput: pairs per ns over both threads.
        (2 * pairs) as f64 / t
    };
    let (thr2, thr1) = measure(cfg.reps(), || 1.0 / one(&lanes[0]), two);
    rep.add(
        NAME,
        "2 threads vs 1 (throughput, 1 page)",
        thr2 * 1e3,
        thr1 * 1e3,
        "pairs/us",
        Target::RatioAtLeast(1.7),
        "floor=the same pairs on 1 thread",
    );
    for lane in lanes {
        c.destroy(lane.ioas).ok();
    }
}
