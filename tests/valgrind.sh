#!/bin/sh
# tests/valgrind.sh BUILDDIR: every unit test under valgrind memcheck (zero errors, zero
# definite leaks), then the integration tests with the daemons under valgrind
# (CB_VALGRIND=1 makes tests/integration/cbtest.py wrap credbrokerd and credproxy, and
# write `seccomp no` into both configurations: valgrind cannot run seccomp filters, and
# the daemons refuse to start when the filter they are configured for cannot be installed;
# test_priv's seccomp cases skip themselves under valgrind).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
b=$(cd "${1:-_build}" && pwd)
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no"
fail=0
for t in "$b"/tests/test_*; do
	case "$t" in *.log|*.trs|*.o|*.c) continue ;; esac
	[ -x "$t" ] || continue
	name=$(basename "$t")
	if (cd "$b" && CB_BUILDDIR="$b" CB_SRCDIR="$top" CMOCKA_MESSAGE_OUTPUT=stdout \
	    "$b/libtool" --mode=execute $vg "$t" >"$b/tests/$name.vg.log" 2>&1); then
		echo "valgrind: $name ok"
	else
		echo "valgrind: $name FAILED (see $b/tests/$name.vg.log)"
		tail -30 "$b/tests/$name.vg.log"
		fail=1
	fi
done
if [ -d "$top/tests/integration" ]; then
	for t in "$top"/tests/integration/test_*.py; do
		[ -f "$t" ] || continue
		name=$(basename "$t")
		if CB_VALGRIND=1 CB_BUILDDIR="$b" CB_SRCDIR="$top" PYTHONDONTWRITEBYTECODE=1 \
		    python3 "$t" >"$b/tests/$name.vg.log" 2>&1; then
			echo "valgrind: $name ok"
		else
			echo "valgrind: $name FAILED (see $b/tests/$name.vg.log)"
			tail -30 "$b/tests/$name.vg.log"
			fail=1
		fi
	done
fi
exit $fail
