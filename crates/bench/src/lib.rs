//! The benchmark suite of `shared/BENCHMARKS.md`, run by
//! `iommufd bench [--quick] [--json FILE] [--filter NAME]`.
//!
//! Every benchmark measures its floor (the simplest code doing the same
//! unavoidable work) in the same process, right before and after the measured
//! code, and reports medians over at least 5 repetitions and the ratio
//! ours / floor (module [`harness`]). The result is one table, optionally also
//! written as JSON to compare commits. Timings are never asserted anywhere.
//!
//! Built: B1-B7, B9, B10; B8 waits for the daemon (see PERFORMANCE.md).
//!
//! Drivers and formats are lists ([`b3_pt_batch::formats`],
//! [`b1_map_bulk::drivers`]): wiring another one in is one more entry.

pub mod b10_shim_ioctl;
pub mod b1_map_bulk;
pub mod b2_map_unmap_small;
pub mod b3_pt_batch;
pub mod b4_iova_alloc;
pub mod b5_translate;
pub mod b6_dma_rw;
pub mod b7_dirty;
pub mod b9_sparse;
pub mod harness;
pub mod naive;

pub use harness::{Config, Report, Row, Target};

/// One benchmark of the suite.
pub struct Bench {
    /// Short name (`b1`, `ioas_map_bulk`, ... match `--filter`).
    pub name: &'static str,
    /// Runs it, adding rows.
    pub run: fn(&Config, &mut Report),
}

/// Every benchmark, in table order.
pub fn all() -> Vec<Bench> {
    vec![
        Bench {
            name: "b1_ioas_map_bulk",
            run: b1_map_bulk::run,
        },
        Bench {
            name: "b2_map_unmap_small",
            run: b2_map_unmap_small::run,
        },
        Bench {
            name: "b3_pt_batch",
            run: b3_pt_batch::run,
        },
        Bench {
            name: "b4_iova_alloc",
            run: b4_iova_alloc::run,
        },
        Bench {
            name: "b5_translate",
            run: b5_translate::run,
        },
        Bench {
            name: "b6_dma_rw",
            run: b6_dma_rw::run,
        },
        Bench {
            name: "b7_dirty_read_clear",
            run: b7_dirty::run,
        },
        Bench {
            name: "b9_sparse_pt_memory",
            run: b9_sparse::run,
        },
        Bench {
            name: "b10_shim_ioctl",
            run: b10_shim_ioctl::run,
        },
    ]
}

/// Runs the selected benchmarks and returns the report.
pub fn run(cfg: &Config) -> Report {
    let mut rep = Report::default();
    for b in all() {
        if let Some(f) = &cfg.filter {
            if !b.name.contains(f.as_str()) {
                continue;
            }
        }
        eprintln!("== {}", b.name);
        let start = std::time::Instant::now();
        (b.run)(cfg, &mut rep);
        eprintln!("   ({:.1} s)", start.elapsed().as_secs_f64());
    }
    rep
}

/// The `iommufd bench` command: runs, prints the table, writes JSON if asked.
///
/// # Errors
/// If the JSON file cannot be written.
pub fn main(
    quick: bool,
    json: Option<&std::path::Path>,
    filter: Option<String>,
) -> std::io::Result<()> {
    let cfg = Config { quick, filter };
    let rep = run(&cfg);
    println!("{}", rep.table());
    if let Some(path) = json {
        std::fs::write(path, rep.json())?;
    }
    Ok(())
}
