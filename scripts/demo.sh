#!/usr/bin/env bash
# demo.sh - build the project and run the shipped example program, an ordinary
# C program that uses /dev/iommu, through `iommufd run`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
cargo build --release --quiet
mkdir -p target/examples
gcc -O2 -Wall examples/iommufd-demo.c -o target/examples/iommufd-demo
exec ./target/release/iommufd run -- target/examples/iommufd-demo
