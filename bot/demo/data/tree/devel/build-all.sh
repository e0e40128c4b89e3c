#!/bin/sh
# Generate the package and build it against every kernel in a directory,
# one ckmake-style report line per kernel.
#
#   devel/build-all.sh <upstream-src> <kernels-dir>
set -u

tree=$(cd "$(dirname "$0")/.." && pwd)
src=$1
kernels=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! python3 "$tree/gentree.py" "$src" "$work/pkg" > "$work/gentree.log" 2>&1; then
	cat "$work/gentree.log"
	exit 1
fi

n=0
for k in "$kernels"/*/; do
	k=${k%/}
	n=$((n + 1))
	rel=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"/\1/p' "$k/include/generated/utsrelease.h")
	mkdir "$work/build-$n"
	if make -C "$work/pkg" KLIB_BUILD="$k" O="$work/build-$n" \
		> "$work/build-$n.log" 2>&1; then
		status="  OK  "
	else
		status=" FAIL "
	fi
	printf '%-3s %-12s [%s]\n' "$n" "$rel" "$status"
done
