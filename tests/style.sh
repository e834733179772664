#!/bin/sh
# style.sh: the project's style checks (STYLE.md), run by make check.
# Fails on banned functions, memset on anything that looks like key material,
# and trailing whitespace in C sources.
set -u
top=${CB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top" || exit 1
fail=0
files=$(ls src/*.c src/*.h client/*.c client/*.h tests/*.c 2>/dev/null)
if grep -nE '(^|[^_a-zA-Z0-9])(sprintf|vsprintf|strcpy|strcat|strtok|gets|atoi|atol|rand|srand)[[:space:]]*\(' $files; then
	echo "style: banned function (STYLE.md 8; use snprintf, bounded copies, strtoll, RAND_bytes)"
	fail=1
fi
if grep -nE 'memset[[:space:]]*\([^,]*(key|secret|kek|dek|token|plain|pt)[^,]*,[[:space:]]*0' $files; then
	echo "style: wipe key material with explicit_bzero, never memset (STYLE.md 4)"
	fail=1
fi
if grep -nE '[[:space:]]+$' $files; then
	echo "style: trailing whitespace"
	fail=1
fi
if [ "$fail" -eq 0 ]; then
	echo "style: ok ($(echo $files | wc -w) files)"
fi
exit $fail
