#!/bin/sh
# test_header.sh: the public header client/credbroker.h compiles on its own as C99 and
# C11 (and C++), and a program built against the INSTALLED library through its
# pkg-config file links and runs. Run by make check (CB_BUILDDIR, CB_SRCDIR set).
set -u
top=${CB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${CB_BUILDDIR:-$(pwd)}
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cbhdr.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0

say() { echo "test_header: $*"; }

# 1. The header alone, strict, in each standard (and twice: include guard).
printf '#include "credbroker.h"\n#include "credbroker.h"\nint cb_hdr_dummy;\n' > "$tmp/alone.c"
for std in c99 c11; do
	if $cc -std=$std -pedantic-errors -Wall -Wextra -Werror -Wstrict-prototypes \
	    -I"$top/client" -c "$tmp/alone.c" -o "$tmp/alone-$std.o"; then
		say "ok: header compiles alone as $std"
	else
		say "FAIL: header does not compile alone as $std"
		fail=1
	fi
done
if command -v c++ >/dev/null 2>&1; then
	cp "$tmp/alone.c" "$tmp/alone.cc"
	if c++ -std=c++11 -pedantic-errors -Wall -Wextra -Werror -I"$top/client" \
	    -c "$tmp/alone.cc" -o "$tmp/alone-cxx.o"; then
		say "ok: header compiles as C++11"
	else
		say "FAIL: header does not compile as C++11"
		fail=1
	fi
fi

# 2. Install the library, header and pkg-config file into a staging root.
dest="$tmp/root"
if ! ${MAKE:-make} -s -C "$build" DESTDIR="$dest" install-libLTLIBRARIES \
    install-includeHEADERS install-pkgconfigDATA >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	say "FAIL: make install of the library"
	exit 1
fi
pc=$(find "$dest" -name libcredbroker.pc | head -n 1)
if [ -z "$pc" ]; then
	say "FAIL: libcredbroker.pc not installed"
	exit 1
fi
[ -f "$(find "$dest" -name credbroker.h | head -n 1)" ] || { say "FAIL: header not installed"; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
if ! flags=$(pkg-config --cflags --libs libcredbroker); then
	say "FAIL: pkg-config does not know libcredbroker"
	exit 1
fi
say "pkg-config: $flags"

# 3. Only the documented API is exported (internals are hidden).
lib=$(find "$dest" -name 'libcredbroker.so.*' -type f | head -n 1)
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | sort)
bad=$(echo "$exported" | grep -v -E '^cbc_(new|free|strerror|errmsg|http_status|error_code|grant_mint|grant_free|grant_show|grant_revoke|sandbox_revoke|resolve|resolved_free|resolve_connect|resolve_fd|resolve_start|resolve_step|resolve_retryable|resolve_finish|resolve_abort|secret_put|secret_get|secret_delete|key_rotate|audit_get|audit_verify|health)$' || true)
if [ -n "$bad" ]; then
	say "FAIL: unexpected exported symbols: $bad"
	fail=1
elif [ "$(echo "$exported" | wc -l)" -ne 27 ]; then
	say "FAIL: not every API function is exported: $exported"
	fail=1
else
	say "ok: exports $(echo "$exported" | wc -l) cbc_* functions only"
fi

# 4. A program against the installed library: links and runs.
cat > "$tmp/prog.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <credbroker.h>

int
main(void)
{
	struct cbc_opts o;
	cbc_t *c = NULL;
	int rc;

	memset(&o, 0, sizeof(o));
	o.url = "https://127.0.0.1:1";
	o.cert = "/nonexistent/c.pem";
	o.key = "/nonexistent/c.key";
	o.cacert = "/nonexistent/ca.pem";
	o.timeout_ms = 2000;
	if (strcmp(cbc_strerror(CBC_E_REFUSED), "refused by the broker") != 0)
		return 1;
	if (cbc_new(&o, &c) != 0 || c == NULL)
		return 2;
	rc = cbc_health(c);
	if (rc != CBC_E_CONNECT && rc != CBC_E_IO)
		return 3;
	if (*cbc_errmsg(c) == '\0' || cbc_http_status(c) != 0)
		return 4;
	cbc_free(c);
	puts("installed libcredbroker works");
	return 0;
}
EOF
extra=
if grep -q '^#define CB_SANITIZERS 1' "$build/config.h" 2>/dev/null; then
	extra="-fsanitize=address,undefined"	# the library was built with them
fi
# shellcheck disable=SC2086
if ! $cc -std=c99 -Wall -Wextra -Werror $extra -o "$tmp/prog" "$tmp/prog.c" $flags; then
	say "FAIL: a program does not build against the installed library"
	exit 1
fi
libdir=$(dirname "$lib")
if out=$(LD_LIBRARY_PATH="$libdir" "$tmp/prog") && [ "$out" = "installed libcredbroker works" ]; then
	say "ok: a program built with pkg-config links and runs"
else
	say "FAIL: the program against the installed library failed (exit $?): $out"
	fail=1
fi
# It really used the installed copy, not the build tree's.
if ! LD_LIBRARY_PATH="$libdir" ldd "$tmp/prog" | grep -q "$libdir/libcredbroker.so"; then
	say "FAIL: the program did not load the installed library"
	fail=1
fi
exit $fail
