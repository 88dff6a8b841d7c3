#!/usr/bin/env bash
# run.sh [--update] [SUITE...] - run the kernel's iommufd selftests through
# `iommufd run` and compare the passing cases with selftest/expected-pass.txt.
#
# SUITE is iommufd and/or iommufd_fail_nth (default: both). Builds the
# selftest if needed (build.sh) and uses target/release/iommufd unless
# IOMMUFD=path is set. TAP output goes to selftest/build/SUITE.tap.
#
# iommufd_fail_nth drives the kernel's fault injection (per-task fail-nth files,
# debugfs knobs), which only the fault-injection build of the preload library
# serves: it is built with `--features fault-inject` into target/fault-inject
# (or taken from IOMMUFD_FAULT_PRELOAD=path) and used for that suite only. The
# failures it injects are logged to selftest/build/iommufd_fail_nth.faults and
# counted; a run in which none fired fails.
#
# Exit status 1 if a case listed in expected-pass.txt did not pass (a
# regression). Cases that pass but are not listed are reported; --update
# rewrites the list with the current passes (commit it with the change that
# made them pass).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${SELFTEST_OUT:-$HERE/build}
EXPECTED=$HERE/expected-pass.txt
IOMMUFD=${IOMMUFD:-$ROOT/target/release/iommufd}
TIMEOUT=${SELFTEST_TIMEOUT:-900}
update=0
suites=()
for a in "$@"; do
	case $a in
	--update) update=1 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) suites+=("$a") ;;
	esac
done
[ ${#suites[@]} -gt 0 ] || suites=(iommufd iommufd_fail_nth)
[ -x "$IOMMUFD" ] || { echo "no $IOMMUFD; run cargo build --release" >&2; exit 2; }

"$HERE/build.sh" "$OUT"

# Hugetlb-backed cases need reserved huge pages, as the kernel's selftest setup
# expects; reserve some when we may.
if [ -w /proc/sys/vm/nr_hugepages ] && [ "$(cat /proc/sys/vm/nr_hugepages)" -lt 64 ]; then
	echo 64 >/proc/sys/vm/nr_hugepages || true
fi

# global_options sets IOMMU_OPTION_RLIMIT_MODE, which needs CAP_SYS_RESOURCE
# (the test says "This requires root"). Where the host's capability bounding set
# lacks it even for root, the emulated program is granted it explicitly, as if
# run with that privilege; the kernel's EPERM without it is covered by a Rust test.
CAPS=()
capeff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
if (( (0x$capeff >> 24 & 1) == 0 )); then
	CAPS=(--cap +sys_resource)
	echo "note: this host lacks CAP_SYS_RESOURCE; running with --cap +sys_resource"
fi

# The fault-injection build of the preload library, for iommufd_fail_nth.
fault_preload() {
	if [ -n "${IOMMUFD_FAULT_PRELOAD:-}" ]; then
		echo "$IOMMUFD_FAULT_PRELOAD"
		return
	fi
	command -v cargo >/dev/null || { echo "no cargo to build the fault-injection preload library; set IOMMUFD_FAULT_PRELOAD" >&2; exit 2; }
	(cd "$ROOT" && cargo build --release --quiet -p shim --features fault-inject --target-dir "$ROOT/target/fault-inject") >&2
	echo "$ROOT/target/fault-inject/release/libiommufd_preload.so"
}

fault_lib=
for s in "${suites[@]}"; do
	if [ "$s" = iommufd_fail_nth ]; then fault_lib=$(fault_preload); fi
done

passes=$(mktemp)
trap 'rm -f "$passes"' EXIT
status=0
for s in "${suites[@]}"; do
	tap=$OUT/$s.tap
	envs=()
	if [ "$s" = iommufd_fail_nth ]; then
		faults=$OUT/$s.faults
		rm -f "$faults"
		envs=(IOMMUFD_PRELOAD="$fault_lib" IOMMUFD_FAULT_LOG="$faults")
	fi
	start=$(date +%s.%N)
	set +e
	env "${envs[@]}" timeout -k 10 "$TIMEOUT" "$IOMMUFD" run "${CAPS[@]}" -- "$OUT/$s" >"$tap" 2>&1
	rc=$?
	set -e
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	pass=$(grep -cE '^ok [0-9]+ [^ ]+$' "$tap" || true)
	skip=$(grep -cE '^ok [0-9]+ [^ ]+ # SKIP' "$tap" || true)
	fail=$(grep -cE '^not ok [0-9]+ ' "$tap" || true)
	total=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$tap" | head -1)
	printf '%-18s pass %3d  fail %3d  skip %3d  of %s  exit %d  %ss\n' \
		"$s" "$pass" "$fail" "$skip" "${total:-?}" "$rc" "$secs"
	sed -nE 's/^ok [0-9]+ ([^ ]+)$/\1/p' "$tap" >>"$passes"
	if [ "$s" = iommufd_fail_nth ]; then
		fired=$(wc -l <"$faults" 2>/dev/null || echo 0)
		echo "  injected failures: $fired ($(awk '{print $2}' "$faults" 2>/dev/null | sort | uniq -c | awk '{printf "%s%s %s", sep, $2, $1; sep=", "}'))"
		if [ "$pass" -gt 0 ] && [ "$fired" -eq 0 ]; then
			echo "  $s passed without any injected failure: fault injection is not working" >&2
			status=1
		fi
	fi
	if [ "$rc" = 124 ]; then
		echo "  $s timed out after ${TIMEOUT}s" >&2
		status=1
	fi
done

sort -o "$passes" "$passes"

# The suite a case belongs to: the fail_nth fixture is basic_fail_nth.
suite_of() { case $1 in basic_fail_nth.*) echo iommufd_fail_nth ;; *) echo iommufd ;; esac; }
ran() { local s; for s in "${suites[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
expected_ran=$(mktemp)
trap 'rm -f "$passes" "$expected_ran"' EXIT
while read -r c; do
	if [ -n "$c" ] && ran "$(suite_of "$c")"; then echo "$c"; fi
done <"$EXPECTED" | sort -u >"$expected_ran"

if [ "$update" = 1 ]; then
	# keep the expectations of suites not run this time
	{ while read -r c; do if [ -n "$c" ] && ! ran "$(suite_of "$c")"; then echo "$c"; fi; done <"$EXPECTED"
	  cat "$passes"; } | sort -u >"$EXPECTED.tmp"
	mv "$EXPECTED.tmp" "$EXPECTED"
	echo "updated $EXPECTED ($(wc -l <"$EXPECTED") cases)"
	cp "$EXPECTED" "$expected_ran"
fi

new=$(comm -13 "$expected_ran" "$passes")
missing=$(comm -23 "$expected_ran" "$passes")
echo "expected passes: $(wc -l <"$expected_ran"), passed: $(wc -l <"$passes")"
if [ -n "$new" ]; then
	echo "passing but not in expected-pass.txt (add them with --update):"
	echo "$new" | sed 's/^/  /'
fi
if [ -n "$missing" ]; then
	echo "REGRESSION: expected to pass but did not:"
	echo "$missing" | sed 's/^/  /'
	status=1
fi
exit $status
