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

step "reliability suite, CI-bounded (model, shuttle, stress, fuzz)"
./scripts/reliability.sh --quick

step "cargo build --release"
cargo build --release --quiet

step "kernel selftest through iommufd run"
./selftest/run.sh
