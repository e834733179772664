"""test_leak_canaries.py: secret values never escape (issue 7).

CANARIES (1,000; 200 with CB_QUICK or CB_VALGRIND) random, prefix-free secret values go
through the whole flow:
  put (admin API, and a share through the CLI reading stdin), a second version of each,
  a data-key and a signing-key rotation, mint (harness), resolve through credproxy (a
  sandbox request with the token through a CONNECT tunnel to a local TLS upstream that
  echoes the credential back in its body and in a header; and token-less requests that
  get five inject bindings, echoed plain and chunked), a direct POST /v1/resolve with
  the proxy certificate for some, metadata reads (secret show/list, grant show, audit,
  metrics), then revocation.
Then every value is searched - raw, hex (both cases), base64 (standard and URL-safe, every
alignment inside a longer stream), URL-encoded and JSON-escaped - in:
  the database and its WAL (copied while the broker runs, and again after it stopped), the
  audit table, the broker's and the proxy's logs, all CLI output, and every response seen
  by the harness, admin and sandbox clients. Expected: no hit anywhere.
Control: the same search finds every current value in what the upstream received and
in the proxy-role resolve answers, the only places allowed to hold them, so the search
itself works.
The search uses `grep -F -f` (Aho-Corasick in GNU grep) over files.
"""

import base64
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import string
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import echo_upstream  # noqa: E402
import test_hostile  # noqa: E402

QUICK = bool(os.environ.get("CB_QUICK") or os.environ.get("CB_VALGRIND"))
CANARIES = int(os.environ.get("CB_CANARIES") or (200 if QUICK else 1000))
CLI_SHARE = 20
DIRECT_SHARE = 50
HOST = "localhost"
ALPHABET = string.ascii_letters + string.digits + "+/="
VALUE_LEN = 30
THREADS = 8


def new_value(rng, taken):
    """A random value no other value is a prefix of (same length, distinct)."""
    for _ in range(100):
        v = "".join(rng.choice(ALPHABET) for _ in range(VALUE_LEN))
        if v not in taken:
            taken.add(v)
            return v
    raise AssertionError("no fresh value")


def b64_forms(v):
    """Substrings that appear in any base64 (std and URL-safe) encoding of a stream that
    holds v at any offset: for each alignment, the groups made of v's bytes only."""
    out = set()
    for k in range(3):
        pad = (-(k + len(v))) % 3
        stream = b"\0" * k + v + b"\0" * pad
        enc = base64.b64encode(stream)
        first = (k + 2) // 3                 # first group wholly inside v
        last = (k + len(v)) // 3             # groups [first, last) are inside v
        if last > first:
            mid = enc[4 * first:4 * last]
            out.add(mid)
            out.add(mid.translate(bytes.maketrans(b"+/", b"-_")))
    return out


def forms(value):
    """Every encoding of value searched for."""
    v = value.encode()
    out = {v, v.hex().encode(), v.hex().upper().encode(),
           urllib.parse.quote(value, safe="").encode(),
           urllib.parse.quote_plus(value).encode(),
           json.dumps(value)[1:-1].encode(),
           json.dumps(value)[1:-1].replace("/", "\\/").encode()}
    out |= b64_forms(v)
    return out


def grep_hits(patterns_file, path):
    """The set of patterns found in file path (grep -a -o -F -f); bounded by grep itself."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return set()
    r = subprocess.run(["grep", "-a", "-o", "-F", "-f", patterns_file, path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if r.returncode not in (0, 1):
        raise AssertionError("grep failed: %r" % r.stderr)
    return set(r.stdout.split(b"\n")) - {b""}


class Seen:
    """Everything a group of clients received, by who saw it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.blobs = {}

    def add(self, who, data):
        with self.lock:
            self.blobs.setdefault(who, bytearray()).extend(data + b"\n")


class LeakCanaryTest(cbtest.TestCase):
    def test_canaries(self):
        self.local = threading.local()   # kept-alive connections, per thread and role
        d = cbtest.Deployment()
        up = proxy = None
        try:
            up = test_hostile.Upstream(d)
            proxy = test_hostile.Proxy(d, "leak", ["--sandbox-id", "sbx-leak", "--allow-private",
                                                   "--upstream-ca", up.ca])
            self.run_flow(d, up, proxy)
        finally:
            if proxy:
                proxy.stop()
            if up:
                up.stop()
            d.stop()

    def request(self, seen, d, who, method, path, body=None):
        """One request on a fresh connection; the whole answer (status line, headers,
        body) is kept in seen under who ("proxy-resolve" for the proxy role)."""
        conns = self.local.__dict__.setdefault("conns", {})
        if who not in conns:
            conns[who] = d.connection(who)
        c = conns[who]
        data = json.dumps(body).encode() if body is not None else None
        try:
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            raw = r.read()
        except BaseException:
            c.close()
            del conns[who]
            raise
        head = ("%d %s\n" % (r.status, r.reason)).encode() + b"".join(
            ("%s: %s\n" % kv).encode() for kv in r.getheaders())
        seen.add(who if who != "proxy" else "proxy-resolve", head + raw)
        return r.status, cbtest.parse_json(raw), raw

    def parallel(self, items, fn):
        """fn(item, conns) over items in THREADS threads; re-raises the first failure."""
        errors = []

        def run(part):
            try:
                for it in part:
                    fn(it)
            except BaseException as e:
                errors.append(e)
            finally:
                for c in self.local.__dict__.get("conns", {}).values():
                    c.close()
        ts = [threading.Thread(target=run, args=(items[k::THREADS],), daemon=True)
              for k in range(THREADS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=600)
            self.assertFalse(t.is_alive())
        if errors:
            raise errors[0]

    def run_flow(self, d, up, proxy):
        rng = random.Random(os.urandom(16))
        seen = Seen()
        taken = set()
        names = ["leak-%04d" % i for i in range(CANARIES)]
        v1 = {n: new_value(rng, taken) for n in names}
        v2 = {n: new_value(rng, taken) for n in names}
        cli_out = bytearray()
        cli_lock = threading.Lock()
        t0 = time.monotonic()
        phases = []

        def phase(name):
            phases.append("%s %.1fs" % (name, time.monotonic() - t0))

        def put(n, value):
            if names.index(n) < CLI_SHARE:
                r = d.cli("secret", "put", n, "--host", HOST, "--max-ttl", "3600", input=value)
                with cli_lock:
                    cli_out.extend(r.stdout + r.stderr)
                self.assertEqual(r.returncode, 0, r.stderr)
            else:
                st, _, raw = self.request(seen, d, "admin", "PUT", "/v1/secrets/" + n,
                                          body={"value": value, "hosts": [HOST],
                                                "max_ttl_s": 3600})
                self.assertEqual(st, 201, raw[:200])

        self.parallel(names, lambda n: put(n, v1[n]))
        phase("put")
        st, _, raw = self.request(seen, d, "admin", "POST", "/v1/keys/rotate", {"kind": "data"})
        self.assertEqual(st, 200, raw[:200])
        self.parallel(names, lambda n: put(n, v2[n]))
        for kind in ("data", "signing"):
            st, _, raw = self.request(seen, d, "admin", "POST", "/v1/keys/rotate", {"kind": kind})
            self.assertEqual(st, 200, raw[:200])

        grants = {}

        def mint(n):
            st, js, raw = self.request(seen, d, "harness", "POST", "/v1/grants", body={
                "sandbox_id": "sbx-leak", "ttl_s": 600,
                "bindings": [{"secret": n, "host": HOST, "port": up.port}]})
            self.assertEqual(st, 201, raw[:200])
            grants[n] = js

        phase("put2+rotate")
        self.parallel(names, mint)
        phase("mint")

        tids = {}

        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        sctx.load_verify_locations(os.path.join(d.dir, "pki", "sandbox-ca.pem"))

        def through_proxy(n):
            """A sandbox request with the token, on this thread's kept-alive tunnel."""
            path = "/echo-credential-header" if names.index(n) % 2 else "/echo"
            conns = self.local.__dict__.setdefault("conns", {})
            if "sandbox" not in conns:
                c = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=sctx,
                                                timeout=30)
                c.set_tunnel(HOST, up.port)
                conns["sandbox"] = c
            c = conns["sandbox"]
            tid = os.urandom(8).hex()
            try:
                c.putrequest("GET", path, skip_accept_encoding=True)
                c.putheader("X-Test-Id", tid)
                c.putheader("Authorization", "Bearer " + grants[n]["token"])
                c.endheaders()
                r = c.getresponse()
                body = r.read()
            except BaseException:
                c.close()
                del conns["sandbox"]
                raise
            seen.add("sandbox", ("%d %s\n" % (r.status, r.reason)).encode() + b"".join(
                ("%s: %s\n" % kv).encode() for kv in r.getheaders()) + body)
            self.assertEqual(r.status, 200, body[:200])
            tids[n] = tid

        self.parallel(names, through_proxy)
        # Inject bindings: the sandbox holds nothing; token-less requests get the headers.
        for i, n in enumerate(names[:5]):
            st, _, raw = self.request(seen, d, "harness", "POST", "/v1/grants", body={
                "sandbox_id": "sbx-leak", "ttl_s": 600,
                "bindings": [{"secret": n, "host": HOST, "port": up.port, "inject": True,
                              "header": "X-Canary-%d" % i, "template": "{secret}"}]})
            self.assertEqual(st, 201, raw[:200])
        inject_tids = []
        for path in ("/echo", "/echo-credential-header", "/echo-credential-chunked?split=5"):
            st, hdrs, body, tid = test_hostile.proxy_get(d, proxy, up, None, path)
            seen.add("sandbox", ("%d\n" % st).encode() + b"".join(
                ("%s: %s\n" % kv).encode() for kv in hdrs) + body)
            self.assertEqual(st, 200, body[:200])
            inject_tids.append(tid)
        phase("proxy")

        for n in names[:DIRECT_SHARE]:
            st, js, raw = self.request(seen, d, "proxy", "POST", "/v1/resolve", body={
                "token": grants[n]["token"], "sandbox_id": "sbx-leak", "host": HOST,
                "port": up.port, "method": "GET", "path": "/"})
            self.assertEqual(st, 200, raw[:200])

        # Metadata everyone may read.
        def reads(n):
            self.request(seen, d, "admin", "GET", "/v1/secrets/" + n)
            self.request(seen, d, "harness", "GET", "/v1/grants/" + grants[n]["grant_id"])

        self.parallel(names[:200], reads)
        self.request(seen, d, "admin", "GET", "/v1/secrets")
        self.request(seen, d, "admin", "GET", "/metrics")
        after = 0
        for _ in range(1000):
            st, js, raw = self.request(seen, d, "admin", "GET",
                                       "/v1/audit?after=%d&limit=1000" % after)
            self.assertEqual(st, 200)
            if len(js["records"]) < 1000:
                break
            after = js["records"][-1]["seq"]
        for args in (("secret", "list"), ("secret", "show", names[0]), ("audit", "tail"),
                     ("audit", "verify"), ("grant", "show", grants[names[1]]["grant_id"])):
            r = d.cli(*args)
            cli_out.extend(r.stdout + r.stderr)
            self.assertEqual(r.returncode, 0, (args, r.stderr))

        def revoke(n):
            st, _, raw = self.request(seen, d, "harness", "DELETE",
                                      "/v1/grants/" + grants[n]["grant_id"])
            self.assertEqual(st, 200, raw[:200])

        phase("reads")
        self.parallel(names, revoke)
        phase("revoke")
        r = d.cli("sandbox", "revoke", "sbx-leak")
        cli_out.extend(r.stdout + r.stderr)
        # A sandbox request with a revoked token: refused, and the answer is searched too.
        st, hdrs, body, _ = test_hostile.proxy_get(d, proxy, up, grants[names[0]]["token"])
        seen.add("sandbox", body)
        self.assertNotEqual(st, 200)

        for c in self.local.__dict__.get("conns", {}).values():
            c.close()
        self.local.conns = {}

        # --- collect ----------------------------------------------------------------------
        out = os.path.join(d.tmp, "leak")
        os.makedirs(out)
        db = os.path.join(d.dir, "credbroker.db")
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                shutil.copyfile(db + suffix, os.path.join(out, "db-running" + suffix))
        self.assertTrue(os.path.exists(os.path.join(out, "db-running-wal")), "no WAL to search")
        proxy.stop()
        self.assertEqual(d.kill(signal.SIGTERM), 0)
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                shutil.copyfile(db + suffix, os.path.join(out, "db-stopped" + suffix))
        con = sqlite3.connect(os.path.join(out, "db-stopped"))
        try:
            with open(os.path.join(out, "audit-table"), "w") as f:
                for row in con.execute("SELECT * FROM audit"):
                    f.write(repr(row) + "\n")
            with open(os.path.join(out, "grants-table"), "w") as f:
                for row in con.execute("SELECT * FROM grants"):
                    f.write(repr(row) + "\n")
        finally:
            con.close()
        shutil.copyfile(d.log_path, os.path.join(out, "credbrokerd.log"))
        shutil.copyfile(proxy.log_path, os.path.join(out, "credproxy.log"))
        with open(os.path.join(out, "cli-output"), "wb") as f:
            f.write(bytes(cli_out))
        for who, blob in seen.blobs.items():
            with open(os.path.join(out, "responses-" + who), "wb") as f:
                f.write(bytes(blob))
        with open(os.path.join(out, "upstream-view"), "wb") as f:
            for n in names:
                for k, v in echo_upstream.received(tids[n]) or []:
                    f.write(("%s: %s\n" % (k, v)).encode())
        with open(os.path.join(out, "upstream-view-inject"), "wb") as f:
            for tid in inject_tids:
                for k, v in echo_upstream.received(tid) or []:
                    f.write(("%s: %s\n" % (k, v)).encode())

        pat_of = {}
        for n in names:
            for v in (v1[n], v2[n]):
                for p in forms(v):
                    pat_of[p] = v
        pats = os.path.join(d.tmp, "patterns")
        with open(pats, "wb") as f:
            f.write(b"\n".join(sorted(pat_of)) + b"\n")

        # Control: the allowed places do hold the values, so the search finds them.
        got = {pat_of[h] for h in grep_hits(pats, os.path.join(out, "upstream-view"))}
        self.assertEqual(got, {v2[n] for n in names}, "the upstream did not see every value")
        got = {pat_of[h] for h in grep_hits(pats, os.path.join(out, "responses-proxy-resolve"))}
        self.assertEqual(got, {v2[n] for n in names[:DIRECT_SHARE]})
        got = {pat_of[h] for h in grep_hits(pats, os.path.join(out, "upstream-view-inject"))}
        self.assertEqual(got, {v2[n] for n in names[:5]}, "inject headers not applied")

        searched = sorted(f for f in os.listdir(out) if f not in (
            "upstream-view", "upstream-view-inject", "responses-proxy-resolve"))
        for f in ("db-running", "db-running-wal", "db-stopped", "audit-table", "credbrokerd.log",
                  "credproxy.log", "cli-output", "responses-admin", "responses-harness",
                  "responses-sandbox"):
            self.assertIn(f, searched)
        phase("collect")
        leaks = {}
        total = 0
        for f in searched:
            p = os.path.join(out, f)
            total += os.path.getsize(p)
            hits = grep_hits(pats, p)
            if hits:
                leaks[f] = sorted(hits)[:5]
        sys.stderr.write("test_leak_canaries: %d values x %d forms searched in %d files "
                         "(%d KiB): %d with a hit; %s\n" % (
                             2 * CANARIES, len(pat_of) // (2 * CANARIES), len(searched),
                             total // 1024, len(leaks), ", ".join(phases + ["search"])))
        self.assertEqual(leaks, {}, "secret values found outside the upstream's view")


class ErrorPathTest(cbtest.TestCase):
    """Refused requests that carry a secret value or a token (bad JSON around it, a control
    character, a wrong type next to it, a duplicate key, an oversized value) do not echo it
    in the answer, the log or the audit records."""

    def test_refused_bodies(self):
        with cbtest.Deployment() as d:
            c = ("ERRCANARY" + os.urandom(10).hex()).encode()
            tok = b"cbt_eyJhbGciOiJIUzI1NiJ9." + c
            ok = b'"hosts": ["x.example"], "max_ttl_s": 60'
            puts = [b'{"value": "' + c + b'", ' + ok + b', "bad": ' + c + b'}',
                    b'{"value": ' + c + b'}',
                    b'{"value": "' + c + b'\\n", ' + ok + b'}',
                    b'{"value": "' + c + b'\\u0000", ' + ok + b'}',
                    b'{"value": "' + c + b'", "hosts": ["x.example"], "max_ttl_s": "60"}',
                    b'{"value": "' + c + b'", "value": "' + c + b'", ' + ok + b'}',
                    b'{"value": "' + c * 600 + b'", ' + ok + b'}',
                    b'{"value": "' + c + b'", ' + ok + b'',
                    b'{"value": ["' + c + b'"], ' + ok + b'}']
            seen = b""
            for body in puts:
                st, _, raw = d.request("admin", "PUT", "/v1/secrets/err", raw=body)
                self.assertEqual(st, 400, (body[:60], raw))
                seen += raw
            resolves = [b'{"token": "' + tok + b'", "x": ' + tok + b'}',
                        b'{"token": "' + tok + b'", "sandbox_id": "s", "host": "h", "port": 443,'
                        b' "method": "GET", "path": "/"}',
                        b'{"token": ' + tok + b'}']
            for body in resolves:
                st, _, raw = d.request("proxy", "POST", "/v1/resolve", raw=body)
                self.assertIn(st, (400, 403), raw)
                seen += raw
            st, js, raw = d.request("admin", "GET", "/v1/audit?after=0&limit=1000")
            self.assertEqual(st, 200)
            self.assertGreater(len(js["records"]), 0)
            seen += raw
            d.kill(signal.SIGTERM)
            with open(d.log_path, "rb") as f:
                seen += f.read()
            with open(os.path.join(d.dir, "credbroker.db"), "rb") as f:
                seen += f.read()
            for form in forms(c.decode()):
                self.assertNotIn(form, seen)



MEM_CHUNK = 8 << 20
KEPT_OPEN = 4               # kept-alive connections, two requests each
MEM_REGION_MAX = 1 << 30    # larger writable mappings are sanitizer shadow, not data


def writable_mappings(pid):
    """[(start, end, locked)] of process pid's writable mappings from /proc/PID/smaps,
    locked when any of its pages is mlock()ed; mappings over MEM_REGION_MAX are left out."""
    out = []
    cur = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            words = line.split()
            if words and re.match(r"^[0-9a-f]+-[0-9a-f]+$", words[0]):
                start, end = (int(x, 16) for x in words[0].split("-"))
                cur = [start, end, False] if words[1][:2] == "rw" else None
                if cur is not None and end - start <= MEM_REGION_MAX:
                    out.append(cur)
            elif cur is not None and words[:1] == ["Locked:"] and words[1] != "0":
                cur[2] = True
    return [tuple(m) for m in out]


def mem_hits(pid, needles):
    """({needle: occurrences}, {needle: occurrences in mlock()ed mappings}) in the writable
    memory of running process pid, read through /proc/PID/mem (root, or the same user,
    may). Mappings that cannot be read are skipped; each read is bounded by its size."""
    hits = dict.fromkeys(needles, 0)
    locked = dict.fromkeys(needles, 0)
    keep = max(len(n) for n in needles) - 1
    with open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for start, end, is_locked in writable_mappings(pid):
            tail = b""
            for off in range(start, end, MEM_CHUNK):
                try:
                    mem.seek(off)
                    data = tail + mem.read(min(MEM_CHUNK, end - off))
                except OSError:
                    break
                for n in needles:
                    # a needle inside tail was counted with the chunk before
                    k = data.count(n) - tail.count(n)
                    hits[n] += k
                    if is_locked:
                        locked[n] += k
                tail = data[len(data) - keep:] if keep > 0 else b""
    return hits, locked


def raw_tunnel_get(d, proxy, up, path, token, extra=b""):
    """A GET with the token (and extra header lines) through a CONNECT tunnel on a raw TLS
    socket, for an answer after which credproxy closes: reads until its end of the stream
    (at most 1 MiB) but keeps the socket open, as a sandbox that does not close would.
    Returns (socket, answer)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(d.dir, "pki", "sandbox-ca.pem"))
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    head = cbtest.connect_tunnel(s, HOST, up.port)
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        raise AssertionError("CONNECT: %r" % head)
    t = ctx.wrap_socket(s, server_hostname=HOST)
    t.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n%s\r\n" % (
        path.encode(), HOST.encode(), up.port, token.encode(), extra))
    answer = b""
    for _ in range(1024):
        more = t.recv(1024)
        if not more:
            break
        answer += more
    return t, answer


class ProxyMemoryTest(cbtest.TestCase):
    """credproxy's memory holds no token and no real credential once a request is done,
    while the sandbox keeps its connections open: not in OpenSSL's read buffers on the
    sandbox and upstream sides (SSL_OP_CLEANSE_PLAINTEXT), nor in the parsed request of
    an answer after which credproxy closes, while that answer flushes and the connection
    lingers.
    KEPT_OPEN kept-alive connections send two requests each, whose upstream echoes the
    credential back (credproxy scrubs it). Two raw connections stay open after answers
    that close: a token bound to another port (403), and a request with Connection:
    close (200). Then a token-less request gets a second value from an inject binding
    (echoed back too). Every writable mapping of the running credproxy is then searched
    for the two tokens (whole, and their signatures) and the two values.
    Control: the same search finds the sandbox ID credproxy was started with (its
    configuration and connection state hold it), and the upstream received the values."""

    def test_no_token_or_credential_left(self):
        d = cbtest.Deployment()
        up = proxy = stopped = log = None
        socks = []
        try:
            up = test_hostile.Upstream(d)
            sandbox = "sbx-mem-" + os.urandom(8).hex()
            proxy = test_hostile.Proxy(d, "mem", ["--sandbox-id", sandbox, "--allow-private",
                                                  "--upstream-ca", up.ca])
            value = "memval_" + os.urandom(20).hex()
            d.put_secret("mem", value, [HOST])
            good = d.mint(sandbox, "mem", HOST, port=up.port)["token"]
            denied = d.mint(sandbox, "mem", HOST, port=up.port + 1)["token"]

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(os.path.join(d.dir, "pki", "sandbox-ca.pem"))
            for i in range(2 * KEPT_OPEN):
                if i % 2 == 0:
                    c = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=ctx,
                                                    timeout=30)
                    c.set_tunnel(HOST, up.port)
                    socks.append(c)
                tid = os.urandom(8).hex()
                c.request("GET", "/echo-credential-header",
                          headers={"X-Test-Id": tid, "Authorization": "Bearer " + good})
                r = c.getresponse()
                body = r.read()
                self.assertEqual(r.status, 200, body[:200])
                self.assertNotIn(value.encode(), body)
                got = dict(echo_upstream.received(tid) or [])
                self.assertIn(value, got.get("Authorization", ""))
            # answers after which credproxy closes, and lingers for what the sandbox sends
            t, answer = raw_tunnel_get(d, proxy, up, "/echo", denied)
            socks.append(t)
            self.assertTrue(answer.startswith(b"HTTP/1.1 403 "), answer[:200])
            t, answer = raw_tunnel_get(d, proxy, up, "/echo-credential-header", good,
                                       b"Connection: close\r\n")
            socks.append(t)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])
            self.assertNotIn(value.encode(), answer)
            # an inject binding: a token-less request gets a second value as a header
            injected = "meminj_" + os.urandom(20).hex()
            d.put_secret("meminj", injected, [HOST])
            d.mint(sandbox, "meminj", HOST, port=up.port, inject=True, header="X-Mem-Inject",
                   template="{secret}")
            c = socks[0]
            tid = os.urandom(8).hex()
            c.request("GET", "/echo", headers={"X-Test-Id": tid})
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 200, body[:200])
            self.assertNotIn(injected.encode(), body)
            self.assertEqual(dict(echo_upstream.received(tid) or []).get("X-Mem-Inject"), injected)

            needles = [good.encode(), good.rsplit(".", 1)[1].encode(), denied.encode(),
                       denied.rsplit(".", 1)[1].encode(), value.encode(), injected.encode(),
                       sandbox.encode()]
            # every answer is in: nothing is waiting for more from either side (the
            # moment is for the proxy's callbacks, far shorter than its 2 s linger)
            time.sleep(0.2)
            hits, _ = mem_hits(proxy.proc.pid, needles)
            self.assertGreater(hits[sandbox.encode()], 0, "control: the search finds nothing")
            left = {n.decode()[:20] + "...": k for n, k in hits.items()
                    if k and n != sandbox.encode()}
            self.assertEqual(left, {}, "copies left in credproxy's memory")
        finally:
            for x in socks:
                x.close()
            if proxy:
                stopped = proxy.stop()
                log = proxy.log()
            if up:
                up.stop()
            d.stop()
        self.assertEqual(stopped, 0, log[-2000:])


class BrokerMemoryTest(cbtest.TestCase):
    """The broker's answers to resolves carry the real credential ("Bearer VALUE" in the
    JSON): once sent, no copy of one is left in its memory (server.c wipes each answer's
    buffer; the JSON is never built by realloc). After a put and three resolves (proxy
    role), every writable mapping of the running credbrokerd is searched for the rendered
    credential: none. Control: the raw value is found, in an mlock()ed mapping (but under
    ASan), the cache of decrypted values (docs/threat-model.md, asset 1), so the search
    reads the right memory. The raw value itself is not counted elsewhere: GnuTLS frees
    its decrypted record buffers (here the put's body) without wiping them."""

    def test_no_answer_left(self):
        with cbtest.Deployment() as d:
            value = "brokermem_" + os.urandom(20).hex()
            d.put_secret("bmem", value, [HOST])
            for _ in range(3):
                token = d.mint("sbx-bmem", "bmem", HOST)["token"]
                st, js = d.resolve(token, "sbx-bmem", HOST)
                self.assertEqual(st, 200, js)
                self.assertEqual([h["value"] for h in js["headers"]], ["Bearer " + value])
            rendered = ("Bearer " + value).encode()
            hits, locked = mem_hits(d.proc.pid, [value.encode(), rendered])
            self.assertGreater(hits[value.encode()], 0, "control: the cached value not found")
            if not test_hostile.sanitized(cbtest.binary("credbrokerd")):
                # ASan makes mlock() a no-op
                self.assertGreater(locked[value.encode()], 0, "the cache is not locked")
            self.assertEqual(hits[rendered], 0, "copies of an answer left in the broker")


if __name__ == "__main__":
    cbtest.main()
