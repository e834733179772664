#!/bin/sh
# test_hardening.sh: every program and library this tree builds is linked with full RELRO
# and immediate binding (-z relro -z now), the programs as PIE. Immediate binding is also
# a wipe: a lazily bound call runs the dynamic linker's resolver, which saves the vector
# registers (and whatever data they held: a token being copied, say) onto the stack, where
# a credproxy worker's stack once kept a resolve request (docs/architecture.md). Run by make
# check (CB_BUILDDIR set); readelf comes with binutils.
set -u
build=${CB_BUILDDIR:-$(pwd)}
fail=0
say() { echo "test_hardening: $*"; }

if ! command -v readelf >/dev/null 2>&1; then
	say "FAIL: readelf not found (binutils)"
	exit 1
fi
# The real ELF files (libtool leaves wrapper scripts in the build directory).
elf() {
	if [ -f "$build/.libs/$1" ]; then echo "$build/.libs/$1"; else echo "$build/$1"; fi
}
check() {
	f=$1
	kind=$2
	if [ ! -f "$f" ]; then
		say "FAIL: $f not built"
		fail=1
		return
	fi
	if readelf -lW "$f" | grep -q GNU_RELRO; then
		say "ok: $f has a RELRO segment"
	else
		say "FAIL: $f has no RELRO segment"
		fail=1
	fi
	if readelf -dW "$f" | grep -Eq 'BIND_NOW|Flags:.* NOW'; then
		say "ok: $f binds every symbol at load (BIND_NOW)"
	else
		say "FAIL: $f binds lazily (no -z now)"
		fail=1
	fi
	if [ "$kind" = program ]; then
		if readelf -hW "$f" | grep -Eq 'Type:[[:space:]]+DYN'; then
			say "ok: $f is position independent"
		else
			say "FAIL: $f is not PIE"
			fail=1
		fi
	fi
}
check "$(elf credbrokerd)" program
check "$(elf credproxy)" program
check "$(elf credbroker)" program
lib=$(ls "$build"/client/.libs/libcredbroker.so.* 2>/dev/null | head -1)
check "${lib:-$build/client/.libs/libcredbroker.so.0}" library
exit $fail
