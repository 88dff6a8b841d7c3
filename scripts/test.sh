#!/usr/bin/env bash
# test.sh - every test of the project: formatting, lints, the Rust test suites,
# and the kernel's own iommufd selftest run through `iommufd run` against the
# list of expected passes (selftest/expected-pass.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace --quiet

step "cargo build --release"
cargo build --release --quiet

step "benchmarks build and run (quick mode, no timing assertions)"
./target/release/iommufd bench --quick --json target/bench-quick.json

step "kernel selftest through iommufd run"
./selftest/run.sh
