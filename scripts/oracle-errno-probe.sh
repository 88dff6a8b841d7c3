#!/usr/bin/env bash
# oracle-errno-probe.sh - runs crates/inproc/tests/bad_input/oracle_probe.c on the
# real Linux 6.12 kernel (shared/oracle, QEMU) and compares each case's errno
# with the expectation of the same-named case in the bad-input errno table.
# Needs the oracle built (~/.cache/iommufd-oracle: headers, kernel).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORACLE=${ORACLE:-$ROOT/../shared/oracle}
O=${ORACLE_DIR:-$HOME/.cache/iommufd-oracle}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
gcc -static -O1 -D_GNU_SOURCE -isystem "$O/headers/include" \
    -I "$O/src/linux-source-6.12/drivers/iommu/iommufd" \
    "$ROOT/crates/inproc/tests/bad_input/oracle_probe.c" -o "$TMP/probe"
"$ORACLE/run-in-vm.sh" -q -o "$TMP/out" "$TMP/probe" >/dev/null
(cd "$ROOT" && ERRNO_TABLE_DUMP="$TMP/table.txt" cargo test -q -p inproc --test bad_input errno_table >/dev/null)
python3 - "$TMP/table.txt" "$TMP/out/stdout.txt" <<'PY'
import sys
table = {}
for line in open(sys.argv[1]):
    name, e = line.rstrip("\n").rsplit("|", 1)
    table[name] = e.replace("ETOOBIG", "E2BIG")
agree, differ = 0, 0
for line in open(sys.argv[2]):
    if "|" not in line:
        continue
    name, e = line.rstrip("\n").rsplit("|", 1)
    want = table.get(name)
    if want == e:
        agree += 1
    else:
        differ += 1
        print(f"DIFF {name}: table {want}, kernel {e}")
print(f"{agree} passed, {differ} failed")
sys.exit(1 if differ else 0)
PY
