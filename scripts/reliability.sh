#!/usr/bin/env bash
# reliability.sh [--quick|--full] - the reliability suite (RELIABILITY.md):
#
#   * the fail-nth sweep: every fault point of every scenario (feature fault-inject)
#   * property state-machine test against the reference model (crates/model)
#   * model checking of the real code's concurrency protocols with shuttle
#   * the unmap retry / EDEADLOCK protocol and replayed divergences
#   * multi-thread stress with invariant checks
#   * fuzzing op sequences against the model (fuzz/, cargo-fuzz + libFuzzer, ASan)
#   * --full only: the whole test suite under AddressSanitizer
#
# --quick (the default, run by scripts/test.sh) is bounded to a few minutes;
# --full runs the figures RELIABILITY.md reports (about an hour on 2 cores).
# Sizes can be overridden: MODEL_CASES, MODEL_STEPS, SHUTTLE_ITERS, STRESS_OPS,
# STRESS_THREADS, FUZZ_SECONDS, MODEL_MIN_STEPS. The bad-input errno table, isolation and overflow
# tests are part of `cargo test --workspace` and run there.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODE=${1:---quick}
case "$MODE" in
--quick)
    : "${MODEL_CASES:=400}" "${SHUTTLE_ITERS:=100}" "${STRESS_OPS:=2000}" "${FUZZ_SECONDS:=120}"
    ;;
--full)
    : "${MODEL_CASES:=10000}" "${MODEL_MIN_STEPS:=64}" "${SHUTTLE_ITERS:=5000}" "${STRESS_OPS:=1000000}" "${FUZZ_SECONDS:=600}"
    ;;
*)
    echo "usage: $0 [--quick|--full]" >&2
    exit 2
    ;;
esac
: "${MODEL_STEPS:=64}" "${MODEL_MIN_STEPS:=1}" "${STRESS_THREADS:=16}"
export MODEL_CASES MODEL_STEPS MODEL_MIN_STEPS SHUTTLE_ITERS STRESS_OPS STRESS_THREADS
SUMMARY=()
step() { printf '\n==> %s\n' "$*"; }
timed() {
    local name=$1
    shift
    local t0=$SECONDS
    "$@"
    SUMMARY+=("$(printf '%-34s %5ds' "$name" $((SECONDS - t0)))")
}

step "fail-nth sweep: every scenario through every N until the injected failure stops firing"
sweep() {
    local report
    report=$(mktemp)
    FAIL_NTH_REPORT=$report cargo test -q -p inproc --test fail_nth --test leak_regressions \
        --features fault-inject
    sort "$report" | sed 's/^/  /'
    SWEEP=$(awk '{n++; p+=$2} END {printf "%d scenarios, %d fault points swept", n, p}' "$report")
    echo "  $SWEEP"
    rm -f "$report"
}
timed "fail-nth sweep" sweep

step "state machine vs reference model: $MODEL_CASES cases x $MODEL_MIN_STEPS-$MODEL_STEPS steps, 3 contexts"
timed "state machine" cargo test -q -p model --test state_machine --test regressions --test unmap_retry

step "stress: $STRESS_THREADS threads x $STRESS_OPS ops with invariants"
timed "stress" cargo test -q -p model --test stress -- --nocapture

step "shuttle model checks of the real code: $SHUTTLE_ITERS iterations x 2 schedulers x 8 protocols"
timed "shuttle" env RUSTFLAGS="--cfg shuttle" CARGO_TARGET_DIR="$ROOT/target/shuttle" \
    cargo test -q -p model --test shuttle

step "fuzzing op sequences against the model for ${FUZZ_SECONDS}s (libFuzzer, AddressSanitizer)"
fuzz() {
    local corpus=$ROOT/fuzz/corpus/ops work
    export RUSTC_BOOTSTRAP=1
    if [ "$MODE" = --quick ]; then
        # New inputs go to a scratch directory; the committed corpus seeds it.
        work=$(mktemp -d)
    else
        work=$corpus
    fi
    local bin
    if command -v cargo-fuzz >/dev/null 2>&1; then
        (cd fuzz && cargo fuzz build -O ops)
        bin=$ROOT/fuzz/target/x86_64-unknown-linux-gnu/release/ops
    else
        # What `cargo fuzz build -O` does, without cargo-fuzz installed.
        (cd fuzz && RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Zsanitizer=address -Cdebug-assertions" \
            cargo build --release --bin ops --target x86_64-unknown-linux-gnu)
        bin=$ROOT/fuzz/target/x86_64-unknown-linux-gnu/release/ops
    fi
    local log
    log=$(mktemp)
    "$bin" "$work" "$corpus" -max_total_time="$FUZZ_SECONDS" -max_len=512 \
        -artifact_prefix="$ROOT/fuzz/artifacts/" -print_final_stats=1 2>"$log" || {
        tail -50 "$log"
        rm -f "$log"
        return 1
    }
    FUZZ_RUNS=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $FUZZ_RUNS executions, no crash, no model mismatch"
    rm -f "$log"
    if [ "$work" != "$corpus" ]; then rm -rf "$work"; fi
}
mkdir -p fuzz/artifacts
timed "fuzz" fuzz

if [ "$MODE" = --full ]; then
    step "the whole test suite under AddressSanitizer"
    # ASan must not take SIGSEGV/SIGBUS: the host crate's fault-fixup handler
    # (EFAULT for bad user pointers) and its chaining tests need them.
    timed "asan" env ASAN_OPTIONS=handle_segv=0:handle_sigbus=0 RUSTC_BOOTSTRAP=1 \
        RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
        CARGO_TARGET_DIR="$ROOT/target/asan" \
        cargo test -q --workspace --target x86_64-unknown-linux-gnu
fi

step "summary ($MODE)"
printf '%s\n' "${SUMMARY[@]}"
echo "fuzz executions: ${FUZZ_RUNS:-?}"
echo "fail-nth sweep: ${SWEEP:-?}"
