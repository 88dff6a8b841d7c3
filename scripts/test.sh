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

step "layering: iommufd reaches drivers and page tables only through the iommu traits"
if cargo tree -p iommufd -e normal --prefix none | awk '{print $1}' | grep -qxE 'mock|pt|drivers|host|inproc'; then
    echo "iommufd depends on a driver, page-table or host crate:" >&2
    cargo tree -p iommufd -e normal >&2
    exit 1
fi

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
# The preload library (a cdylib) is built by `cargo build`, not `cargo test`;
# the `iommufd run` tests (cli/tests/run.rs) load it from target/debug.
cargo build --workspace --quiet
cargo test --workspace --quiet

step "fault injection (feature fault-inject): lints and unit tests"
FI=(--features fault/fault-inject,inproc/fault-inject,shim/fault-inject)
cargo clippy -p fault -p inproc -p shim --all-targets "${FI[@]}" -- -D warnings
cargo test -p fault -p shim --lib --features fault/fault-inject,shim/fault-inject --quiet

step "reliability suite, CI-bounded (fail-nth sweep, model, shuttle, stress, fuzz)"
./scripts/reliability.sh --quick

step "cargo build --release"
cargo build --release --quiet

step "benchmarks build and run (quick mode, no timing assertions)"
./target/release/iommufd bench --quick --json target/bench-quick.json

step "kernel selftest through iommufd run"
./selftest/run.sh
