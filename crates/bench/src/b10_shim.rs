//! TODO
use crate::harness::{Config, Report};

/// Runs the benchmark.
pub fn run(_cfg: &Config, _rep: &mut Report) {}
