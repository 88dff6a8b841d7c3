//! Property state-machine test: random sequences of up to 64 ops over three
//! contexts run on the implementation and on the reference model, compared after
//! every op (errno, outputs, pins on every page, charged pages), and checked for
//! leaks after closing everything. The arena's placement relative to a 2 MiB
//! boundary (which automatic IOVAs follow) is part of each case, so every case
//! replays exactly. Shrinking is on; failing seeds are kept in
//! `state_machine.proptest-regressions`.
//!
//! `MODEL_CASES` sets the number of cases (default 256; the full reliability
//! run uses 10,000), `MODEL_STEPS` the longest sequence (default 64) and
//! `MODEL_MIN_STEPS` the shortest (default 1, so that shrinking can drop ops;
//! the full run uses 64).

use model::{ops, run_at};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn implementation_matches_model() {
    let cases = env("MODEL_CASES", 256);
    let steps = env("MODEL_STEPS", 64) as usize;
    let min_steps = env("MODEL_MIN_STEPS", 1) as usize;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        max_shrink_iters: 4096,
        source_file: Some(file!()),
        ..Config::default()
    });
    let result = runner.run(&(0u16..512, ops(min_steps, steps)), |(pages, ops)| {
        run_at(Some(pages), &ops).map_err(TestCaseError::fail)
    });
    if std::env::var_os("MODEL_STATS").is_some() {
        for (k, v) in model::exec::STATS.lock().unwrap().iter() {
            eprintln!("{v:8} {k}");
        }
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
