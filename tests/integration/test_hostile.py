"""test_hostile.py: hostile clients and sustained load (issue 7).

1. Slowloris against the broker: 1,000 connections from 8 loopback addresses (125 each,
   under the per-address limit) that stay idle before TLS, finish TLS and send nothing, or
   dribble a request one byte at a time. A well-behaved harness/proxy client from
   127.0.0.1 is measured before and during the attack: every request succeeds and each
   takes under LATENCY_BOUND (1 s; 10 s under valgrind) - a generous bound, not a benchmark.
2. The same against credproxy (1,000 idle, dribbling and idle-tunnel connections); the
   well-behaved sandbox client goes through a CONNECT tunnel with a token to a local TLS
   upstream that must receive the real credential.
3. Broker outage seen from credproxy: SIGKILL or SIGSTOP of the broker gives the sandbox a
   502 in bounded time (no hang, no token in the answer); served again once it is back.
4. Mixed load (mint, resolve, revoke, put, data and signing key rotation) for LOAD_SECONDS
   (30 s; 8 s with CB_QUICK or CB_VALGRIND; tests/soak.py runs it for minutes): zero errors,
   and the broker's RSS and open descriptors flat after warm-up (generous tolerance).
"""

import http.client
import os
import random
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import echo_upstream  # noqa: E402

QUICK = bool(os.environ.get("CB_QUICK") or os.environ.get("CB_VALGRIND"))
VALGRIND = bool(os.environ.get("CB_VALGRIND"))
LOAD_SECONDS = float(os.environ.get("CB_LOAD_SECONDS") or (8 if QUICK else 30))
HOSTILE = int(os.environ.get("CB_HOSTILE_CONNS") or (300 if QUICK else 1000))
LATENCY_BOUND = 10.0 if VALGRIND else 1.0
SOURCES = ["127.0.0.%d" % i for i in range(2, 10)]
HOST = "localhost"
NET_ERRORS = (OSError, ssl.SSLError, http.client.HTTPException)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def sanitized(binary):
    """True when the program was built with ASan (its RSS is not a leak signal then)."""
    path = binary
    alt = os.path.join(os.path.dirname(binary), ".libs", os.path.basename(binary))
    if os.path.exists(alt):
        path = alt
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


class Proxy:
    """A credproxy in sidecar mode for one sandbox; stderr in DIR/credproxy-NAME.log."""

    def __init__(self, d, name, args, conf_extra=()):
        self.port = cbtest.free_port()
        self.log_path = os.path.join(d.dir, "credproxy-%s.log" % name)
        self._log = open(self.log_path, "ab")
        conf = os.path.join(d.dir, "credproxy.conf")
        if conf_extra:
            with open(conf) as f:
                text = f.read()
            conf = os.path.join(d.dir, "credproxy-%s.conf" % name)
            with open(conf, "w") as f:
                f.write(cbtest.proxy_conf_with(text, conf_extra))
        self.proc = subprocess.Popen(
            [cbtest.binary("credproxy"), "-c", conf,
             "--listen", "127.0.0.1:%d" % self.port] + list(args),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("credproxy exited with %d" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        cbtest.wait_until(up, timeout=30, what="credproxy listening")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        else:
            rc = self.proc.returncode
        self._log.close()
        return rc


class Upstream:
    """echo_upstream in this process, TLS under its own throwaway CA."""

    def __init__(self, d):
        self.ca, crt, key = echo_upstream.make_certs(os.path.join(d.tmp, "upstream"))
        self.srv, self.port = echo_upstream.serve(crt, key)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def proxy_get(d, proxy, up, token, path="/hostile", timeout=30, headers=()):
    """GET through the proxy's CONNECT tunnel with the token as Bearer credential.
    Returns (status, response headers, body, test id)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(d.dir, "pki", "sandbox-ca.pem"))
    c = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=ctx, timeout=timeout)
    c.set_tunnel(HOST, up.port)
    tid = os.urandom(8).hex()
    try:
        c.putrequest("GET", path, skip_accept_encoding=True)
        c.putheader("X-Test-Id", tid)
        if token:
            c.putheader("Authorization", "Bearer " + token)
        for k, v in headers:
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.getheaders(), r.read(), tid
    finally:
        c.close()


class Hostiles:
    """Up to n hostile connections to 127.0.0.1:port from SOURCES, and a thread that
    dribbles one byte at a time on the 'slow' ones."""

    def __init__(self, port, tls_ctx, dribble, tunnel=None):
        self.port, self.tls_ctx, self.dribble_bytes, self.tunnel = port, tls_ctx, dribble, tunnel
        self.socks = {"idle": [], "tls": [], "slow": []}
        self.pos = {}
        self.stop = threading.Event()
        self.thread = None
        self.sent = 0

    def _connect(self, i):
        return socket.create_connection(("127.0.0.1", self.port), timeout=10,
                                        source_address=(SOURCES[i % len(SOURCES)], 0))

    def _open_some(self, idx):
        for i in idx:
            kind = ("idle", "tls", "slow")[i % 3]
            try:
                s = self._connect(i)
                if kind != "idle":
                    if self.tunnel:
                        s = self.tunnel(s)
                    s = self.tls_ctx.wrap_socket(s, server_hostname=HOST)
                with self.lock:
                    self.socks[kind].append(s)
            except NET_ERRORS:
                pass  # refused or reset: the server defends itself, counted below

    def open(self, n, parallel=4):
        self.lock = threading.Lock()
        ts = [threading.Thread(target=self._open_some, args=(range(k, n, parallel),), daemon=True)
              for k in range(parallel)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=300)
        self.thread = threading.Thread(target=self._dribble, daemon=True)
        self.thread.start()
        return sum(len(v) for v in self.socks.values())

    def _dribble(self):
        for _ in range(100000):
            if self.stop.wait(0.2):
                return
            for s in list(self.socks["slow"]):
                k = id(s)
                p = self.pos.get(k, 0)
                try:
                    s.send(self.dribble_bytes[p % len(self.dribble_bytes):][:1])
                    self.pos[k] = p + 1
                    self.sent += 1
                except NET_ERRORS:
                    self.socks["slow"].remove(s)

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join(timeout=30)
        for v in self.socks.values():
            for s in v:
                try:
                    s.close()
                except OSError:
                    pass


def timed(fn):
    t = time.monotonic()
    r = fn()
    return time.monotonic() - t, r


class BrokerHostileTest(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise_nofile(3 * HOSTILE + 1024)
        cls.d = cbtest.Deployment()
        cls.d.put_secret("h-s", "hs_" + os.urandom(16).hex(), [HOST])

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def good_round(self):
        """A harness mints on a fresh connection; a proxy resolves it on another."""
        d = self.d
        g = d.mint("sbx-good", "h-s", HOST)
        st, js = d.resolve(g["token"], "sbx-good", HOST)
        self.assertEqual(st, 200)
        return st

    def test_slowloris_broker(self):
        d = self.d
        base = max(timed(self.good_round)[0] for _ in range(10))
        ctx = d.ssl_context("harness")
        h = Hostiles(d.port, ctx, b"POST /v1/grants HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n")
        try:
            t, opened = timed(lambda: h.open(HOSTILE))
            sys.stderr.write("test_hostile: %d/%d hostile connections to the broker open in "
                             "%.1fs\n" % (opened, HOSTILE, t))
            self.assertGreaterEqual(opened, HOSTILE * 0.9, "the hostile clients could not connect")
            time.sleep(0.5)
            lat = []
            for _ in range(10):
                lat.append(timed(self.good_round)[0])
                time.sleep(0.1)
            self.assertGreater(h.sent, 0, "the dribbling clients sent nothing")
            sys.stderr.write("test_hostile: broker round latency: before %.0f ms, under attack "
                             "max %.0f ms\n" % (base * 1000, max(lat) * 1000))
            self.assertLess(max(lat), max(LATENCY_BOUND, 10 * base), lat)
            self.assertTrue(d.alive())
        finally:
            h.close()
        # Fine once they are gone.
        self.good_round()

    def test_sigterm_under_attack(self):
        # Hostile connections do not hold up a clean stop.
        d = self.d
        h = Hostiles(d.port, d.ssl_context("harness"), b"POST /v1/grants HTTP/1.1\r\nHost: x\r\n")
        try:
            self.assertGreater(h.open(min(HOSTILE, 300)), 0)
            time.sleep(0.5)
            t, rc = timed(lambda: d.kill(signal.SIGTERM, timeout=60))
        finally:
            h.close()
        self.assertEqual(rc, 0, d.log_tail())
        self.assertLess(t, 10.0, "credbrokerd took %.1fs to stop" % t)
        d.start()
        self.good_round()

    def test_sigterm_under_keepalive_load(self):
        # Kept-alive clients keep sending while the broker stops: once the stop has begun
        # it dispatches nothing new (503 unavailable), so the drain ends at once and no
        # connection is left suspended. Before: the drain waited out its 30 s bound while
        # the load went on ("calls still in flight"), or, when the count touched zero
        # between two requests, MHD_stop_daemon aborted on a suspended connection (SIGABRT;
        # about every other run under memcheck, where the window is wide: tests/valgrind.sh).
        d = self.d
        token = d.mint("sbx-ka", "h-s", HOST)["token"]
        stop, lock, seen, errors = threading.Event(), threading.Lock(), {}, []

        def client():
            try:
                conn = d.connection("proxy", timeout=20)
            except OSError as e:
                errors.append(repr(e))
                return
            try:
                for _ in range(100000):	# bounded; ends when the broker closes
                    st, _ = d.resolve(token, "sbx-ka", HOST, conn=conn)
                    with lock:
                        seen[st] = seen.get(st, 0) + 1
                    if st != 200 or stop.is_set() and seen.get(503, 0) > 0:
                        break
            except (OSError, http.client.HTTPException):
                pass	# the broker closed the connection: expected once it stops
            finally:
                conn.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        cbtest.wait_until(lambda: seen.get(200, 0) >= 50, timeout=30, what="load running")
        before = len(d.log())
        t0 = time.monotonic()
        rc = d.kill(signal.SIGTERM, timeout=60)
        took = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(rc, 0, d.log_tail())
        log = d.log()[before:]
        self.assertNotIn("still in flight", log)
        self.assertNotIn("Fatal error", log)
        self.assertLess(took, 20.0, "credbrokerd took %.1fs to stop" % took)
        self.assertTrue(set(seen) <= {200, 503}, seen)
        d.start()
        self.good_round()


class ProxyHostileTest(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise_nofile(3 * HOSTILE + 1024)
        cls.d = d = cbtest.Deployment()
        cls.up = cls.proxy = None
        try:
            cls.up = Upstream(d)
            cls.real = "hp_" + os.urandom(16).hex()
            d.put_secret("hp", cls.real, [HOST])
            cls.token = d.mint("sbx-hp", "hp", HOST, port=cls.up.port)["token"]
            cls.proxy = Proxy(d, "hostile", ["--sandbox-id", "sbx-hp", "--allow-private",
                                             "--upstream-ca", cls.up.ca])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.proxy:
            cls.proxy.stop()
        if cls.up:
            cls.up.stop()
        cls.d.stop()

    def good_round(self):
        st, hdrs, body, tid = proxy_get(self.d, self.proxy, self.up, self.token)
        self.assertEqual(st, 200, body[:200])
        got = [v for k, v in echo_upstream.received(tid) if k.lower() == "authorization"]
        self.assertEqual(got, ["Bearer " + self.real])
        return st

    def tunnel(self, s):
        head = cbtest.connect_tunnel(s, HOST, self.up.port)
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError("CONNECT refused: %r" % head[:100])
        return s

    def test_broker_outage(self):
        # The broker killed, or hung: the proxy answers 502 in bounded time, never the
        # token, and serves again once the broker is back (same port).
        d = self.d
        self.good_round()
        d.kill(signal.SIGKILL)
        try:
            t, r = timed(lambda: proxy_get(d, self.proxy, self.up, self.token))
            self.assertEqual(r[0], 502, r[2][:200])
            self.assertLess(t, 5.0)
            self.assertNotIn(self.token.encode(), r[2])
        finally:
            d.start()
        self.good_round()
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            t, r = timed(lambda: proxy_get(d, self.proxy, self.up, self.token, timeout=90))
            self.assertEqual(r[0], 502, r[2][:200])
            self.assertLess(t, 60.0)
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        self.good_round()
        self.assertIsNone(self.proxy.proc.poll())

    def test_slowloris_proxy(self):
        base = max(timed(self.good_round)[0] for _ in range(10))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(self.d.dir, "pki", "sandbox-ca.pem"))
        # 'tls' connections are idle inside a finished tunnel; 'slow' ones dribble a request
        # head inside the tunnel; 'idle' ones never say anything.
        h = Hostiles(self.proxy.port, ctx, b"GET /slow HTTP/1.1\r\nHost: localhost\r\nX-A: b\r\n",
                     tunnel=self.tunnel)
        try:
            t, opened = timed(lambda: h.open(HOSTILE))
            sys.stderr.write("test_hostile: %d/%d hostile connections to the proxy open in "
                             "%.1fs\n" % (opened, HOSTILE, t))
            self.assertGreaterEqual(opened, HOSTILE * 0.9)
            time.sleep(0.5)
            lat = []
            for _ in range(10):
                lat.append(timed(self.good_round)[0])
                time.sleep(0.1)
            self.assertGreater(h.sent, 0)
            sys.stderr.write("test_hostile: proxy round latency: before %.0f ms, under attack "
                             "max %.0f ms\n" % (base * 1000, max(lat) * 1000))
            self.assertLess(max(lat), max(LATENCY_BOUND, 10 * base), lat)
            self.assertIsNone(self.proxy.proc.poll())
        finally:
            h.close()
        self.good_round()


# --- sustained mixed load (also used by tests/soak.py) -------------------------------------
def mixed_load(d, seconds, sample_every=0.5, threads=2, report=None, via=None):
    """Runs mint / resolve / revoke / put / rotate against d for `seconds`; with
    via=(proxy, upstream), also sandbox requests through the proxy with fresh grants.
    Returns a dict: errors (list of str), counts, samples [(t, rss_kb, fds)] of the broker
    process, proxy_samples the same of the proxy (via only)."""
    stop = threading.Event()
    lock = threading.Lock()
    live, revoked = [], []
    errors, counts = [], {}
    secrets = ["load-%d" % i for i in range(4)]
    for n in secrets:
        d.put_secret(n, "lv_" + os.urandom(16).hex(), [HOST])

    def note(what, ok=True, msg=None):
        with lock:
            counts[what] = counts.get(what, 0) + 1
            if not ok and len(errors) < 100:
                errors.append("%s: %s" % (what, msg))

    def loop(who, step):
        rng = random.Random(os.urandom(8))
        conn = d.connection(who, timeout=30)
        try:
            for _ in range(10 ** 7):
                if stop.is_set():
                    return
                try:
                    step(rng, conn)
                except NET_ERRORS as e:
                    note("network", False, repr(e))
                    conn.close()
                    conn = d.connection(who, timeout=30)
        finally:
            conn.close()

    def mint(rng, conn):
        body = {"sandbox_id": "sbx-load-%d" % rng.randrange(8), "ttl_s": 300,
                "bindings": [{"secret": rng.choice(secrets), "host": HOST}]}
        st, js, raw = d.request("harness", "POST", "/v1/grants", body=body, conn=conn)
        note("mint", st == 201, "%d %r" % (st, raw[:100]))
        if st == 201:
            with lock:
                live.append((js["grant_id"], js["token"], body["sandbox_id"]))
                del live[:-500]

    def resolve(rng, conn):
        with lock:
            g = rng.choice(live) if live else None
        if g is None:
            time.sleep(0.01)
            return
        body = {"token": g[1], "sandbox_id": g[2], "host": HOST, "port": 443,
                "method": "GET", "path": "/"}
        st, js, raw = d.request("proxy", "POST", "/v1/resolve", body=body, conn=conn)
        with lock:
            was_revoked = g[0] in revoked
        ok = st == 200 or (st == 403 and was_revoked and (js or {}).get("error") in (
            "revoked", "unknown_grant"))
        note("resolve", ok, "%d %r" % (st, raw[:100]))

    def revoke(rng, conn):
        with lock:
            g = live.pop(rng.randrange(len(live))) if len(live) > 50 else None
            if g:
                revoked.append(g[0])
                del revoked[:-5000]
        if g is None:
            time.sleep(0.01)
            return
        st, js, raw = d.request("harness", "DELETE", "/v1/grants/" + g[0], conn=conn)
        note("revoke", st == 200, "%d %r" % (st, raw[:100]))
        time.sleep(0.01)

    def admin(rng, conn):
        r = rng.random()
        if r < 0.1:
            kind = rng.choice(["data", "signing"])
            st, js, raw = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": kind},
                                    conn=conn)
            note("rotate." + kind, st == 200, "%d %r" % (st, raw[:100]))
        else:
            n = rng.choice(secrets)
            st, js, raw = d.request("admin", "PUT", "/v1/secrets/" + n, conn=conn, body={
                "value": "lv_" + os.urandom(16).hex(), "hosts": [HOST], "max_ttl_s": 3600})
            note("put", st == 201, "%d %r" % (st, raw[:100]))
        time.sleep(0.05)

    workers = []
    for _ in range(threads):
        workers.append(threading.Thread(target=loop, args=("harness", mint), daemon=True))
        workers.append(threading.Thread(target=loop, args=("proxy", resolve), daemon=True))
    workers.append(threading.Thread(target=loop, args=("harness", revoke), daemon=True))
    workers.append(threading.Thread(target=loop, args=("admin", admin), daemon=True))

    def sandbox():
        rng = random.Random(os.urandom(8))
        proxy, up = via
        for _ in range(10 ** 7):
            if stop.is_set():
                return
            try:
                st, js, raw = d.request("harness", "POST", "/v1/grants", body={
                    "sandbox_id": proxy.sandbox, "ttl_s": 300, "bindings": [{
                        "secret": rng.choice(secrets), "host": HOST, "port": up.port}]})
                if st != 201:
                    note("proxy.mint", False, "%d %r" % (st, raw[:100]))
                    continue
                for _ in range(3):
                    st, _, body, _ = proxy_get(d, proxy, up, js["token"])
                    note("proxy.get", st == 200, "%d %r" % (st, body[:100]))
                st, _, body, _ = proxy_get(d, proxy, up, "cbt_" + os.urandom(8).hex())
                note("proxy.refused", st == 403, "%d %r" % (st, body[:100]))
            except NET_ERRORS as e:
                note("proxy.network", False, repr(e))
    if via:
        workers.append(threading.Thread(target=sandbox, daemon=True))
    for w in workers:
        w.start()
    samples, proxy_samples = [], []
    pid = d.proc.pid
    t0 = time.monotonic()
    next_report = t0 + 60
    for _ in range(int(seconds / sample_every) + 2):
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        samples.append((now - t0, proc_rss_kb(pid), proc_fds(pid)))
        if via:
            ppid = via[0].proc.pid
            proxy_samples.append((now - t0, proc_rss_kb(ppid), proc_fds(ppid)))
        if report and now >= next_report:
            report(now - t0, samples[-1], counts)
            next_report = now + 60
        time.sleep(sample_every)
    stop.set()
    for w in workers:
        w.join(timeout=60)
    return {"errors": errors, "counts": counts, "samples": samples,
            "proxy_samples": proxy_samples, "stuck": sum(w.is_alive() for w in workers)}


def check_flat(tc, samples, asan, what="broker"):
    """RSS and descriptors after warm-up (the first third) do not keep growing."""
    n = len(samples)
    tc.assertGreaterEqual(n, 6, "too few samples")
    warm = samples[n // 3:]
    rss0, fd0 = warm[0][1], warm[0][2]
    rss_max = max(s[1] for s in warm)
    fd_max = max(s[2] for s in warm)
    rss_tol = 400 * 1024 if asan else max(32 * 1024, rss0 // 2)
    tc.assertLess(rss_max - rss0, rss_tol, "%s RSS grew from %d to %d KiB" % (what, rss0, rss_max))
    tc.assertLessEqual(fd_max - fd0, 32, "%s open fds grew from %d to %d" % (what, fd0, fd_max))


class ManyGrantsTest(cbtest.TestCase):
    """A sandbox holding hundreds of live grants (a busy harness) still gets its inject
    binding and its destination on a token-less resolve, whatever the order of minting.
    (Found by test_leak_canaries: the broker examined only the 256 oldest live grants.)"""

    def test_inject_after_many_swap_grants(self):
        with cbtest.Deployment() as d:
            value = "mg_" + os.urandom(16).hex()
            d.put_secret("mg", value, [HOST, "other.example"])
            conn = d.connection("harness")
            try:
                for _ in range(300):
                    st, _, raw = d.request("harness", "POST", "/v1/grants", conn=conn, body={
                        "sandbox_id": "sbx-many", "ttl_s": 600,
                        "bindings": [{"secret": "mg", "host": HOST}]})
                    self.assertEqual(st, 201, raw[:200])
            finally:
                conn.close()
            # Minted last: an inject binding for one destination, a swap one for another.
            d.mint("sbx-many", "mg", HOST, port=8443, inject=True, header="X-Key",
                   template="{secret}")
            d.mint("sbx-many", "mg", "other.example")
            st, js = d.resolve(None, "sbx-many", HOST, port=8443)
            self.assertEqual(st, 200, js)
            self.assertEqual(js["headers"], [{"name": "X-Key", "value": value}],
                             "the inject binding of the 301st grant was not applied")
            st, js = d.resolve(None, "sbx-many", "other.example")
            self.assertEqual((st, js.get("headers")), (200, []),
                             "the destination of the 302nd grant was refused")


class TokenlessScanTest(cbtest.TestCase):
    """A token-less resolve looks at the sandbox's live grants newest first, up to
    GRANT_TOKENLESS_SCAN_MAX (4096): an inject grant minted before 1,100 others is still
    applied (the broker once looked at the 256 oldest only)."""

    def test_oldest_inject_grant_among_many(self):
        if cbtest.VALGRIND:
            self.skipTest("1,100 mints under memcheck: covered by the default and ASan runs")
        with cbtest.Deployment() as d:
            value = "ts_" + os.urandom(16).hex()
            d.put_secret("ts", value, [HOST, "other.example"])
            d.mint("sbx-scan", "ts", HOST, port=8443, inject=True, header="X-Key",
                   template="{secret}")
            body = {"sandbox_id": "sbx-scan", "ttl_s": 600,
                    "bindings": [{"secret": "ts", "host": "other.example"}]}

            def mint_many(n):
                conn = d.connection("harness")
                try:
                    for _ in range(n):
                        st, _, raw = d.request("harness", "POST", "/v1/grants", conn=conn,
                                               body=body)
                        self.assertEqual(st, 201, raw[:200])
                finally:
                    conn.close()
            threads = [threading.Thread(target=mint_many, args=(1100 // 4,)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            st, js = d.resolve(None, "sbx-scan", HOST, port=8443)
            self.assertEqual(st, 200, js)
            self.assertEqual(js["headers"], [{"name": "X-Key", "value": value}])
            st, js = d.resolve(None, "sbx-scan", "other.example")
            self.assertEqual((st, js.get("headers")), (200, []))
            st, js = d.resolve(None, "sbx-scan", "nowhere.example")
            self.assertEqual((st, js.get("error")), (403, "no_grant"))


class MixedLoadTest(cbtest.TestCase):
    def test_mixed_load(self):
        with cbtest.Deployment() as d:
            up = Upstream(d)
            proxy = None
            try:
                # The proxy opens its broker connections as load needs them, up to
                # resolve_workers for its workers and as many for its event loop: a bounded
                # pool, not a leak, but under valgrind the default 16 + 16 may still be filling
                # after the warm-up that check_flat skips. 4 + 4 fill within it.
                proxy = Proxy(d, "load", ["--sandbox-id", "sbx-load-proxy", "--allow-private",
                                          "--upstream-ca", up.ca], ["resolve_workers 4"])
                proxy.sandbox = "sbx-load-proxy"
                r = mixed_load(d, LOAD_SECONDS, via=(proxy, up))
                s, ps = r["samples"], r["proxy_samples"]
                sys.stderr.write("test_hostile: %.0fs mixed load: %r; broker rss %d -> %d KiB, "
                                 "fds %d -> %d; proxy rss %d -> %d KiB, fds %d -> %d\n"
                                 % (LOAD_SECONDS, r["counts"], s[0][1], s[-1][1], s[0][2],
                                    s[-1][2], ps[0][1], ps[-1][1], ps[0][2], ps[-1][2]))
                self.assertEqual(r["stuck"], 0, "load threads did not stop")
                self.assertEqual(r["errors"], [])
                for what in ("mint", "resolve", "revoke", "put", "proxy.get", "proxy.refused"):
                    self.assertGreater(r["counts"].get(what, 0), 0, what)
                check_flat(self, s, sanitized(cbtest.binary("credbrokerd")))
                check_flat(self, ps, sanitized(cbtest.binary("credproxy")), "credproxy")
                self.assertTrue(d.alive())
                self.assertIsNone(proxy.proc.poll())
                self.assertEqual(proxy.stop(), 0, proxy.log()[-2000:])
                proxy = None
                self.assertEqual(d.kill(signal.SIGTERM), 0, d.log_tail())
            finally:
                if proxy:
                    proxy.stop()
                up.stop()


if __name__ == "__main__":
    cbtest.main()
