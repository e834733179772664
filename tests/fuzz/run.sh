#!/bin/sh
# run.sh: builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time. Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS   per target (default: $FUZZ_SECONDS, else 60)
#   TARGET    the NAME of a tests/fuzz/fuzz_NAME.c (default: every one)
# A target names the sources it needs besides src/{err,log,util,crypto}.c on a line
# "/* fuzz-sources: FILE... */" (paths from the top of the tree) near its top, and may
# set libFuzzer's -max_len with "/* fuzz-maxlen: N */"; tests/fuzz/NAME.dict, if there,
# is passed as its dictionary.
# Environment: FUZZ_WORKDIR (build and scratch directory; default a fresh temporary one,
# removed at the end unless a target failed), CLANG (default clang).
# The checked-in seeds in tests/fuzz/corpus/NAME are read, never written: new inputs go
# to the scratch corpus. The exit status is non-zero when any target crashed, leaked,
# timed out or failed to build; the input that did it is kept in WORKDIR/crashes/ and
# joins tests/fuzz/corpus/NAME with the fix.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
secs=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then
	targets=$*
else
	targets=$(cd "$top/tests/fuzz" && ls fuzz_*.c 2>/dev/null | sed 's/^fuzz_//; s/\.c$//')
fi
cc=${CLANG:-clang}

case $secs in
''|*[!0-9]*) echo "run.sh: SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;;
esac
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "run.sh: $cc not found (Debian: apt-get install clang)" >&2
	exit 2
fi
pkgs="jansson libjwt openssl"
if ! deps_cflags=$(pkg-config --cflags $pkgs) || ! deps_libs=$(pkg-config --libs $pkgs); then
	echo "run.sh: pkg-config cannot find $pkgs (run scripts/install-deps)" >&2
	exit 2
fi

if [ -n "${FUZZ_WORKDIR:-}" ]; then
	work=$FUZZ_WORKDIR
	keep=1
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/credbroker-fuzz.XXXXXX") || exit 1
	keep=0
fi
mkdir -p "$work/bin" "$work/crashes" || exit 1

# The sources include "config.h"; a clean checkout has none, so write the little they need.
cat > "$work/config.h" <<'EOH'
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define PACKAGE "credbroker"
#define PACKAGE_NAME "credbroker"
#define PACKAGE_VERSION "fuzz"
#define VERSION "fuzz"
EOH

common="src/err.c src/log.c src/util.c src/crypto.c"
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-parameter"

status=0
for t in $targets; do
	src=$top/tests/fuzz/fuzz_$t.c
	if [ ! -f "$src" ]; then
		echo "run.sh: unknown target '$t' (no $src)" >&2
		status=1
		continue
	fi
	srcs=$(head -n 20 "$src" | sed -n 's|^/\* fuzz-sources: \(.*\) \*/$|\1|p' | head -n 1)
	maxlen=$(head -n 20 "$src" | sed -n 's|^/\* fuzz-maxlen: \([0-9]*\) \*/$|\1|p' | head -n 1)
	maxlen=${maxlen:-16384}
	files=""
	for f in $common $srcs; do
		files="$files $top/$f"
	done
	bin=$work/bin/fuzz_$t
	echo "fuzz_$t: building"
	# shellcheck disable=SC2086
	if ! $cc $cflags -I"$work" -I"$top/src" -I"$top/client" $deps_cflags -o "$bin" \
	    $files "$src" $deps_libs -lpthread >"$work/build_$t.log" 2>&1; then
		cat "$work/build_$t.log" >&2
		echo "fuzz_$t: BUILD FAILED" >&2
		status=1
		continue
	fi
	mkdir -p "$work/corpus/$t"
	seeds=$top/tests/fuzz/corpus/$t
	[ -d "$seeds" ] || seeds=""
	dict=""
	[ -f "$top/tests/fuzz/$t.dict" ] && dict="-dict=$top/tests/fuzz/$t.dict"
	echo "fuzz_$t: running for ${secs}s"
	# Scratch corpus first (written), checked-in seeds second (read only).
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$work/crashes/$t-" $dict \
	    "$work/corpus/$t" $seeds >"$work/run_$t.log" 2>&1
	rc=$?
	grep -E '^stat::(number_of_executed_units|new_units_added)' "$work/run_$t.log" |
	    sed "s/^/fuzz_$t: /"
	if [ "$rc" -ne 0 ]; then
		tail -n 60 "$work/run_$t.log" >&2
		echo "fuzz_$t: FAILED (exit $rc); the input is in $work/crashes/" >&2
		ls -l "$work/crashes" >&2
		status=1
	else
		echo "fuzz_$t: ok"
	fi
done

if [ "$status" -ne 0 ]; then
	echo "run.sh: failures; work directory kept: $work" >&2
elif [ "$keep" -eq 0 ]; then
	rm -rf "$work"
fi
exit $status
