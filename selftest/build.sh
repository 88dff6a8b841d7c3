#!/usr/bin/env bash
# build.sh [OUTDIR] - build the kernel's iommufd selftests, unmodified, as
# dynamically linked executables OUTDIR/iommufd and OUTDIR/iommufd_fail_nth
# (default OUTDIR: selftest/build). A preload library cannot interpose a
# static binary, so they are dynamic.
#
# Source: Debian's linux-source-6.12 package (installed with apt if missing;
# 6.12.117-1~deb12u1 when apt still offers it). Only the selftest files, the
# two uapi headers it needs newer than the system's (iommufd.h, vfio.h, with
# `__user` stripped as headers_install does) and iommufd_test.h are unpacked.
# Flags are the selftest Makefile's: -Wall -O2 -Wno-unused-function
# -D_GNU_SOURCE=, plus compat.h for the five post-6.12 names it uses.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/build}
PKG=linux-source-6.12
VERSION=${LINUX_SOURCE_VERSION:-6.12.117-1~deb12u1}
TARBALL=/usr/src/$PKG.tar.xz
log() { printf '[selftest/build] %s\n' "$*" >&2; }

if [ ! -f "$TARBALL" ]; then
	log "installing $PKG"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq >/dev/null
	if apt-cache madison "$PKG" | grep -qF "$VERSION"; then
		$SUDO apt-get install -y -qq --allow-downgrades "$PKG=$VERSION" >/dev/null
	else
		log "warning: $VERSION is no longer offered; using apt's candidate"
		$SUDO apt-get install -y -qq "$PKG" >/dev/null
	fi
fi

SRC=$OUT/src
STAMP=$SRC/stamp
want=$(stat -c '%s %Y' "$TARBALL")
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
	log "unpacking the selftest from $TARBALL"
	rm -rf "$SRC"
	mkdir -p "$SRC"
	tar -xJf "$TARBALL" -C "$SRC" --strip-components=1 \
		$PKG/tools/testing/selftests/iommu \
		$PKG/tools/testing/selftests/kselftest_harness.h \
		$PKG/tools/testing/selftests/kselftest.h \
		$PKG/drivers/iommu/iommufd/iommufd_test.h \
		$PKG/include/uapi/linux/iommufd.h \
		$PKG/include/uapi/linux/vfio.h
	mkdir -p "$SRC/usr/include/linux"
	for h in iommufd vfio; do
		sed -E 's/\b(__user|__force|__iomem)\b//g' "$SRC/include/uapi/linux/$h.h" \
			>"$SRC/usr/include/linux/$h.h"
	done
	echo "$want" >"$STAMP"
fi

CFLAGS=(-Wall -O2 -Wno-unused-function -isystem "$SRC/usr/include" -D_GNU_SOURCE=
	-include "$HERE/compat.h" -Din_data_type=out_data_type)
mkdir -p "$OUT"
# compiled from inside the selftest directory with relative names, as the
# kernel Makefile does, so __FILE__ in the harness messages matches a kernel run
cd "$SRC/tools/testing/selftests/iommu"
for t in iommufd iommufd_fail_nth; do
	if [ ! -x "$OUT/$t" ] || [ "$t.c" -nt "$OUT/$t" ] || [ "$HERE/compat.h" -nt "$OUT/$t" ]; then
		log "gcc ${CFLAGS[*]} $t.c"
		gcc "${CFLAGS[@]}" "$t.c" -o "$OUT/$t.tmp"
		mv "$OUT/$t.tmp" "$OUT/$t"
	fi
done
log "built $OUT/iommufd and $OUT/iommufd_fail_nth"
