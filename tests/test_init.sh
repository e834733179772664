#!/bin/sh
# test_init.sh: `credbroker init DIR` makes the whole development deployment (the layout
# of docs/deployment.md), with the right modes and certificates, refuses a non-empty
# directory, never modifies an existing deployment, and cleans up after a failure.
# Run by make check (CB_BUILDDIR/CB_SRCDIR set); needs the openssl and sqlite3 commands.
set -u
top=${CB_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cli="$top/credbroker"
mkcert="$top/tests/mkcert"
fails=0
checks=0

T=$(mktemp -d "${TMPDIR:-/tmp}/test_init.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM

ok() {
	checks=$((checks + 1))
}
bad() {
	checks=$((checks + 1))
	fails=$((fails + 1))
	echo "FAIL: $*"
}
# check DESCRIPTION COMMAND...: the command must succeed
check() {
	d=$1
	shift
	if "$@" >"$T/out" 2>&1; then ok; else bad "$d"; sed 's/^/    /' "$T/out"; fi
}
# refute DESCRIPTION COMMAND...: the command must fail
refute() {
	d=$1
	shift
	if "$@" >"$T/out" 2>&1; then bad "$d (succeeded)"; else ok; fi
}
mode_of() {
	stat -c %a "$1"
}

for tool in openssl sqlite3; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "test_init: the $tool command is needed (apt-get install $tool)"
		exit 1
	fi
done
if [ ! -x "$mkcert" ]; then
	echo "test_init: $mkcert not built (make tests/mkcert)"
	exit 1
fi

# The command under test: `credbroker init DIR`. Until the CLI has it, the driver in
# tests/mkcert calls init_deployment() directly (and says so).
do_init() {
	"$cli" init "$1"
}
if [ ! -x "$cli" ] || ! "$cli" init "$T/probe" >"$T/probe.out" 2>&1 ||
    [ ! -f "$T/probe/credbrokerd.conf" ]; then
	echo "test_init: NOTE: \`credbroker init\` is not available; testing init_deployment()" \
	    "through tests/mkcert --init"
	sed 's/^/    /' "$T/probe.out" 2>/dev/null
	do_init() {
		"$mkcert" --init "$1"
	}
fi
rm -rf "$T/probe"

D="$T/dep"
check "init into a new directory" do_init "$D"

# --- the layout, exactly ------------------------------------------------------------
expected="credbroker.db
credbrokerd.conf
credproxy.conf
master.key
pki
pki/admin.key
pki/admin.pem
pki/ca.key
pki/ca.pem
pki/harness.key
pki/harness.pem
pki/proxy.key
pki/proxy.pem
pki/sandbox-ca.key
pki/sandbox-ca.pem
pki/server.key
pki/server.pem"
actual=$(cd "$D" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort)
if [ "$actual" = "$expected" ]; then ok; else
	bad "layout differs"
	printf 'want:\n%s\ngot:\n%s\n' "$expected" "$actual"
fi

for f in master.key credbroker.db pki/ca.key pki/server.key pki/harness.key pki/proxy.key \
    pki/admin.key pki/sandbox-ca.key; do
	m=$(mode_of "$D/$f")
	if [ "$m" = 600 ]; then ok; else bad "$f has mode $m, want 600"; fi
done
for f in pki/ca.pem pki/server.pem pki/harness.pem pki/proxy.pem pki/admin.pem \
    pki/sandbox-ca.pem credbrokerd.conf credproxy.conf; do
	m=$(mode_of "$D/$f")
	if [ "$m" = 644 ]; then ok; else bad "$f has mode $m, want 644"; fi
done
for f in . pki; do
	m=$(mode_of "$D/$f")
	if [ "$m" = 700 ]; then ok; else bad "directory $f has mode $m, want 700"; fi
done
s=$(stat -c %s "$D/master.key")
if [ "$s" -gt 0 ]; then ok; else bad "master.key is empty"; fi

# --- certificates ---------------------------------------------------------------------
P="$D/pki"
check "server.pem verifies under ca.pem for serverAuth" \
    openssl verify -CAfile "$P/ca.pem" -purpose sslserver "$P/server.pem"
refute "server.pem must not be valid for clientAuth" \
    openssl verify -CAfile "$P/ca.pem" -purpose sslclient "$P/server.pem"
for r in harness proxy admin; do
	check "$r.pem verifies under ca.pem for clientAuth" \
	    openssl verify -CAfile "$P/ca.pem" -purpose sslclient "$P/$r.pem"
	refute "$r.pem must not be valid for serverAuth" \
	    openssl verify -CAfile "$P/ca.pem" -purpose sslserver "$P/$r.pem"
	refute "$r.pem must not verify under the sandbox CA" \
	    openssl verify -CAfile "$P/sandbox-ca.pem" "$P/$r.pem"
	eku=$(openssl x509 -in "$P/$r.pem" -noout -ext extendedKeyUsage 2>&1)
	case $eku in
	*"TLS Web Client Authentication"*) ok ;;
	*) bad "$r.pem: extendedKeyUsage lacks clientAuth: $eku" ;;
	esac
	case $eku in
	*"Server Authentication"*) bad "$r.pem: extendedKeyUsage has serverAuth" ;;
	*) ok ;;
	esac
	san=$(openssl x509 -in "$P/$r.pem" -noout -ext subjectAltName 2>&1 | tail -n +2 |
	    tr -d ' ')
	if [ "$san" = "URI:spiffe://credbroker.dev/$r" ]; then ok; else
		bad "$r.pem: SAN is '$san'"
	fi
	subj=$(openssl x509 -in "$P/$r.pem" -noout -subject -nameopt RFC2253)
	if [ "$subj" = "subject=CN=$r" ]; then ok; else bad "$r.pem: $subj"; fi
done
eku=$(openssl x509 -in "$P/server.pem" -noout -ext extendedKeyUsage 2>&1)
case $eku in
*"TLS Web Server Authentication"*) ok ;;
*) bad "server.pem: extendedKeyUsage lacks serverAuth: $eku" ;;
esac
case $eku in
*"Client Authentication"*) bad "server.pem: extendedKeyUsage has clientAuth" ;;
*) ok ;;
esac
san=$(openssl x509 -in "$P/server.pem" -noout -ext subjectAltName 2>&1 | tail -n +2 | tr -d ' ')
if [ "$san" = "DNS:localhost,IPAddress:127.0.0.1" ]; then ok; else bad "server.pem: SAN '$san'"; fi
subj=$(openssl x509 -in "$P/server.pem" -noout -subject -nameopt RFC2253)
if [ "$subj" = "subject=CN=localhost" ]; then ok; else bad "server.pem: $subj"; fi

# the two CAs: self-signed CAs, separate, valid for about ten years
for c in ca sandbox-ca; do
	check "$c.pem is self-signed and valid" openssl verify -CAfile "$P/$c.pem" "$P/$c.pem"
	bc=$(openssl x509 -in "$P/$c.pem" -noout -ext basicConstraints 2>&1)
	case $bc in
	*"CA:TRUE"*) ok ;;
	*) bad "$c.pem is not a CA: $bc" ;;
	esac
	check "$c.pem is valid in 9 years" openssl x509 -in "$P/$c.pem" -noout \
	    -checkend $((9 * 365 * 86400))
	refute "$c.pem expires within 11 years" openssl x509 -in "$P/$c.pem" -noout \
	    -checkend $((11 * 366 * 86400))
done
refute "sandbox-ca.pem must not verify under ca.pem" \
    openssl verify -CAfile "$P/ca.pem" "$P/sandbox-ca.pem"
check "server.pem is valid for the next 30 days" \
    openssl x509 -in "$P/server.pem" -noout -checkend $((30 * 86400))

# every key belongs to its certificate and is P-256
for c in ca server harness proxy admin sandbox-ca; do
	a=$(openssl x509 -in "$P/$c.pem" -noout -pubkey 2>/dev/null | openssl sha256)
	b=$(openssl pkey -in "$P/$c.key" -pubout 2>/dev/null | openssl sha256)
	if [ -n "$a" ] && [ "$a" = "$b" ]; then ok; else bad "$c.key does not match $c.pem"; fi
	case $(openssl pkey -in "$P/$c.key" -noout -text 2>&1) in
	*"prime256v1"*) ok ;;
	*) bad "$c.key is not P-256" ;;
	esac
	case $(openssl x509 -in "$P/$c.pem" -noout -text 2>&1) in
	*"ecdsa-with-SHA256"*) ok ;;
	*) bad "$c.pem is not signed with ecdsa-with-SHA256" ;;
	esac
done

# --- the configuration files --------------------------------------------------------------
words() {
	grep -v '^[[:space:]]*#' "$1" | grep -v '^[[:space:]]*$'
}
want_broker="listen 127.0.0.1:8443
database credbroker.db
master_key master.key
tls_cert pki/server.pem
tls_key pki/server.key
client_ca pki/ca.pem
identity spiffe://credbroker.dev/harness role harness max_ttl 3600 secrets *
identity spiffe://credbroker.dev/proxy role proxy
identity spiffe://credbroker.dev/admin role admin"
got=$(words "$D/credbrokerd.conf")
if [ "$got" = "$want_broker" ]; then ok; else bad "credbrokerd.conf:"; echo "$got"; fi
want_proxy="listen 127.0.0.1:3128
broker_url https://127.0.0.1:8443
broker_ca pki/ca.pem
cert pki/proxy.pem
key pki/proxy.key
sandbox_ca pki/sandbox-ca.pem
sandbox_ca_key pki/sandbox-ca.key"
got=$(words "$D/credproxy.conf")
if [ "$got" = "$want_proxy" ]; then ok; else bad "credproxy.conf:"; echo "$got"; fi
for k in sandbox_id sandbox allow_host allow_private upstream_ca; do
	if grep -q "^# $k " "$D/credproxy.conf"; then ok; else bad "credproxy.conf: no '# $k' example"; fi
done

# --- the database: migrated, keys initialised ------------------------------------------
uv=$(sqlite3 "$D/credbroker.db" 'PRAGMA user_version;' 2>&1)
if [ "$uv" -ge 1 ] 2>/dev/null; then ok; else bad "credbroker.db user_version '$uv'"; fi
ic=$(sqlite3 "$D/credbroker.db" 'PRAGMA integrity_check;' 2>&1)
if [ "$ic" = ok ]; then ok; else bad "credbroker.db integrity: $ic"; fi
tables=$(sqlite3 "$D/credbroker.db" "SELECT count(*) FROM sqlite_master WHERE type='table';" 2>&1)
if [ "$tables" -ge 3 ] 2>/dev/null; then ok; else bad "credbroker.db has $tables tables"; fi
# no key material in clear in the database: the master key's bytes do not appear
mk=$(od -An -tx1 "$D/master.key" | tr -d ' \n')
dbhex=$(od -An -tx1 "$D/credbroker.db" | tr -d ' \n')
case $dbhex in
*"$mk"*) bad "credbroker.db holds the master key file's bytes" ;;
*) ok ;;
esac

# --- refusals: non-empty directory, second init, a file -------------------------------
sum_tree() {
	(cd "$1" && find . -type f | LC_ALL=C sort | xargs sha256sum; find . | LC_ALL=C sort;
	    stat -c '%n %a %s %Y' $(find . | LC_ALL=C sort))
}
before=$(sum_tree "$D")
refute "a second init into the same directory" do_init "$D"
after=$(sum_tree "$D")
if [ "$before" = "$after" ]; then ok; else bad "a second init modified the first"; fi

mkdir "$T/busy"
echo keep >"$T/busy/notes.txt"
refute "init into a non-empty directory" do_init "$T/busy"
if [ "$(ls -A "$T/busy")" = notes.txt ] && [ "$(cat "$T/busy/notes.txt")" = keep ]; then ok; else
	bad "init touched a non-empty directory: $(ls -A "$T/busy")"
fi
mkdir "$T/hidden"
: >"$T/hidden/.x"
refute "init into a directory holding a dot file" do_init "$T/hidden"
: >"$T/afile"
refute "init onto a regular file" do_init "$T/afile"
if [ ! -s "$T/afile" ]; then ok; else bad "init wrote into a file"; fi

mkdir "$T/empty"
check "init into an existing empty directory" do_init "$T/empty"
if [ -f "$T/empty/pki/ca.pem" ] && [ -f "$T/empty/master.key" ]; then ok; else
	bad "init into an empty directory made nothing"
fi
# two deployments never share keys
if ! cmp -s "$T/empty/master.key" "$D/master.key" && ! cmp -s "$T/empty/pki/ca.key" "$P/ca.key"
then ok; else bad "two deployments share key material"; fi

# --- a failure half-way removes what was made -----------------------------------------
# A file-size limit lets the small PEM files through and fails the database.
( trap '' XFSZ; ulimit -f 16; do_init "$T/half" ) >"$T/out" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then ok; else bad "init under a 16 KiB file-size limit succeeded"; fi
if [ ! -e "$T/half" ]; then ok; else
	bad "a failed init left files behind: $(cd "$T/half" && find . | tr '\n' ' ')"
fi
mkdir "$T/half2"
( trap '' XFSZ; ulimit -f 16; do_init "$T/half2" ) >"$T/out" 2>&1
if [ -d "$T/half2" ] && [ -z "$(ls -A "$T/half2")" ]; then ok; else
	bad "a failed init into an existing empty directory left: $(ls -A "$T/half2")"
fi

# --- mkcert: the hostile certificates the integration tests use -----------------------
H="$T/hostile"
mkdir "$H"
check "mkcert: expired client" "$mkcert" --ca "$P/ca.pem" --ca-key "$P/ca.key" --usage client \
    --cn harness --uri spiffe://credbroker.dev/harness --expired --out "$H/expired"
refute "an expired client certificate verifies" \
    openssl verify -CAfile "$P/ca.pem" -purpose sslclient "$H/expired.pem"
check "mkcert: serverAuth-only from our CA" "$mkcert" --ca "$P/ca.pem" --ca-key "$P/ca.key" \
    --usage server --cn admin --uri spiffe://credbroker.dev/admin --out "$H/srvonly"
check "serverAuth-only verifies as a server" \
    openssl verify -CAfile "$P/ca.pem" -purpose sslserver "$H/srvonly.pem"
refute "serverAuth-only verifies as a client" \
    openssl verify -CAfile "$P/ca.pem" -purpose sslclient "$H/srvonly.pem"
check "mkcert: another CA" "$mkcert" --self-signed --usage ca --cn "credbroker development CA" \
    --out "$H/otherca"
check "mkcert: client from another CA" "$mkcert" --ca "$H/otherca.pem" --ca-key "$H/otherca.key" \
    --usage client --cn admin --uri spiffe://credbroker.dev/admin --out "$H/foreign"
refute "a client from another CA verifies under ours" \
    openssl verify -CAfile "$P/ca.pem" -purpose sslclient "$H/foreign.pem"
check "mkcert: unknown identity" "$mkcert" --ca "$P/ca.pem" --ca-key "$P/ca.key" \
    --usage client --cn stranger --uri spiffe://credbroker.dev/stranger --out "$H/stranger"
check "an unknown identity still verifies (the broker's map must refuse it)" \
    openssl verify -CAfile "$P/ca.pem" -purpose sslclient "$H/stranger.pem"
m=$(mode_of "$H/stranger.key")
if [ "$m" = 600 ]; then ok; else bad "mkcert key mode $m"; fi
refute "mkcert overwrites" "$mkcert" --self-signed --usage ca --cn x --out "$H/otherca"
refute "mkcert without a CA" "$mkcert" --usage client --cn x --out "$H/nothing"
refute "mkcert with a bad usage" "$mkcert" --self-signed --usage root --cn x --out "$H/bad"

echo "test_init: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
