"""The server under load and abuse, /metrics, and the daemon's life cycle.

- keep-alive carries many requests on one TLS connection;
- 200 parallel connections are all served;
- 300 idle connections (and a slowloris) do not stop a well-behaved client; idle ones time out;
- /metrics is valid Prometheus text and counts what happened;
- exit codes, the database lock, SIGTERM drain, offline master-key rotation;
- under a low descriptor limit, a connection flood neither spins nor starves the readers.
"""

import os
import re
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

METRIC_LINE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                         r'(\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? (?P<value>\S+)$')


def parse_metrics(text):
    """{(name, frozenset(labels)): float}; raises AssertionError on a malformed line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            if line.startswith("#"):
                assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
            continue
        m = METRIC_LINE.match(line)
        assert m, "bad metrics line: %r" % line
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                      m.group("labels") or ""))
        key = (m.group("name"), labels)
        assert key not in out, "duplicate series %r" % line
        out[key] = float(m.group("value"))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())), 0.0)


class Server(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = cbtest.Deployment(conf={"per_ip_limit": "64", "threads": "2"})

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def serving(self, timeout=5.0):
        t = time.monotonic()
        st, _, _ = self.d.request("admin", "GET", "/healthz", timeout=timeout)
        self.assertEqual(st, 200)
        return time.monotonic() - t

    def test_tls_versions(self):
        """TLS 1.2 and 1.3 are served; 1.0 and 1.1 are refused by the server (the client
        offers them and gets the connection closed, not a local "no protocols")."""
        import warnings
        got = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            versions = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2,
                        ssl.TLSVersion.TLSv1_3]
        for v in versions:
            ctx = self.d.ssl_context("admin")
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = v
            ctx.maximum_version = v
            raw = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
            try:
                s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                got[v] = s.recv(100).split(b"\r\n", 1)[0]
                s.close()
            except ssl.SSLError as e:
                self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(e))
                got[v] = "refused"
            finally:
                raw.close()
        self.assertEqual(got[ssl.TLSVersion.TLSv1_2], b"HTTP/1.1 200 OK")
        self.assertEqual(got[ssl.TLSVersion.TLSv1_3], b"HTTP/1.1 200 OK")
        self.assertEqual(got[versions[0]], "refused")
        self.assertEqual(got[versions[1]], "refused")

    def test_keep_alive(self):
        c = self.d.connection("admin")
        try:
            c.connect()
            sock = c.sock
            for i in range(300):
                path = "/healthz" if i % 3 else "/v1/secrets"
                st, js, _ = self.d.request(None, "GET", path, conn=c)
                self.assertEqual(st, 200)
                self.assertNotEqual((self.d.last_response.getheader("Connection") or "").lower(), "close")
                self.assertIs(c.sock, sock, "the connection was not kept alive (request %d)" % i)
            # Errors keep the connection too.
            st, _, _ = self.d.request(None, "GET", "/nope", conn=c)
            self.assertEqual(st, 404)
            st, _, _ = self.d.request(None, "PUT", "/v1/secrets/ka", raw=b"{bad", conn=c)
            self.assertEqual(st, 400)
            st, _, _ = self.d.request(None, "GET", "/healthz", conn=c)
            self.assertEqual(st, 200)
            self.assertIs(c.sock, sock)
        finally:
            c.close()

    def test_parallel_connections(self):
        n = 200
        # Different source addresses so the per-address limit (64 here) is not what we test.
        barrier = threading.Barrier(n, timeout=60)
        results = [None] * n

        def worker(i):
            try:
                ctx = self.d.ssl_context("harness")
                raw = socket.create_connection(("127.0.0.1", self.d.port), timeout=60,
                                               source_address=("127.0.1.%d" % (1 + i % 8), 0))
                s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                barrier.wait()
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                buf = b""
                for _ in range(100):
                    b = s.recv(4096)
                    if not b:
                        break
                    buf += b
                    if b'{"status":"ok"}' in buf:
                        break
                s.close()
                results[i] = buf.split(b"\r\n", 1)[0]
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = repr(e).encode()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        bad = [r for r in results if r != b"HTTP/1.1 200 OK"]
        self.assertEqual(bad, [], "%d of %d failed: %r" % (len(bad), n, bad[:5]))
        self.serving()

    def test_idle_and_slow_clients(self):
        with cbtest.Deployment(conf={"conn_timeout": "3", "per_ip_limit": "64"}) as d:
            self._idle_and_slow(d)

    def _idle_and_slow(self, d):
        idle = []
        try:
            # 300 TCP connections that never say anything, from other addresses (per-address
            # limit 64: most are refused, which is the point of the limit).
            for i in range(300):
                try:
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                                 source_address=("127.0.2.%d" % (1 + i % 4), 0))
                    idle.append(s)
                except OSError:
                    pass
            # A slowloris: TLS up, a request head trickled out.
            slow = d.tls_socket("admin", timeout=10)
            idle.append(slow)
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            for _ in range(5):
                t0 = time.monotonic()
                self.assertEqual(d.request("admin", "GET", "/healthz")[0], 200)
                self.assertLess(time.monotonic() - t0, 2.0, "a well-behaved client waited")
                slow.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.2)
            # A well-behaved client on a kept-alive connection is still fast.
            c = d.connection("proxy")
            t = time.monotonic()
            for _ in range(50):
                self.assertEqual(d.request(None, "GET", "/healthz", conn=c)[0], 200)
            c.close()
            self.assertLess(time.monotonic() - t, 5.0)
            # Idle connections are closed after conn_timeout (3 s).
            time.sleep(4.5)
            closed = 0
            for s in idle[:20]:
                s.settimeout(2)
                try:
                    for _ in range(100):   # a TLS alert may come before the end of stream
                        if s.recv(4096) == b"":
                            closed += 1
                            break
                except (ConnectionResetError, ssl.SSLError, ssl.SSLEOFError):
                    closed += 1
                except socket.timeout:
                    pass
            self.assertEqual(closed, min(20, len(idle)), "idle connections were not timed out")
        finally:
            for s in idle:
                s.close()
        self.assertEqual(d.request("admin", "GET", "/healthz")[0], 200)

    def test_head_deadline(self):
        # Clients without a certificate that trickle a request head (a line every half
        # second, well within conn_timeout) hold every connection (conn_limit 16): each is
        # closed 2 x conn_timeout after it was accepted, and a proxy gets in again.
        timeout = 10 if cbtest.VALGRIND else 2
        slow = 3 if cbtest.VALGRIND else 1
        with cbtest.Deployment(conf={"conn_timeout": str(timeout), "conn_limit": "16",
                                     "per_ip_limit": "1000"}) as d:
            held = []
            for i in range(16):
                t0 = time.monotonic()
                s = d.tls_socket(None, timeout=5 * slow)
                held.append((s, t0))
                s.sendall(b"GET /healthz HTTP/1.1\r\n")
            closed = {}
            stop = threading.Event()

            def trickle():
                for _ in range(200):    # bounded: 100 s at most
                    if stop.is_set() or len(closed) == len(held):
                        return
                    for i, (s, t0) in enumerate(held):
                        if i in closed:
                            continue
                        try:
                            s.sendall(b"X-Slow: 1\r\n")
                        except OSError:
                            closed[i] = time.monotonic() - t0
                    time.sleep(0.5)
            t = threading.Thread(target=trickle)
            t.start()
            try:
                def served():
                    try:
                        return d.request("proxy", "GET", "/healthz", timeout=2 * slow)[0] == 200
                    except (OSError, ssl.SSLError):
                        return False
                cbtest.wait_until(served, timeout=30 * slow, interval=0.5,
                                  what="a proxy served past the trickling clients")
                cbtest.wait_until(lambda: len(closed) == len(held), timeout=30 * slow,
                                  what="every trickling connection closed")
            finally:
                stop.set()
                t.join(30)
                for s, _ in held:
                    s.close()
            self.assertLess(max(closed.values()), 10 * timeout, closed)
            self.assertIn("no request head within %d s" % (2 * timeout), d.log())
            if not cbtest.VALGRIND:
                # a line a pass of the sweeper (a second), not one per connection
                lines = d.log().count("no request head within")
                self.assertLess(lines, len(held), "one log line per swept connection")

    def test_metrics(self):
        st, _, raw = self.d.request("proxy", "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(self.d.last_response.getheader("Content-Type").startswith("text/plain"))
        m0 = parse_metrics(raw.decode())
        for _ in range(7):
            self.assertEqual(self.d.request("harness", "GET", "/healthz")[0], 200)
        for _ in range(3):
            self.assertEqual(self.d.request("admin", "GET", "/v1/nowhere")[0], 404)
        self.assertEqual(self.d.request("harness", "GET", "/v1/secrets")[0], 403)
        self.assertEqual(self.d.request(None, "GET", "/healthz")[0], 401)
        st, _, raw = self.d.request("admin", "GET", "/metrics")
        m1 = parse_metrics(raw.decode())

        def delta(name, **labels):
            return metric(m1, name, **labels) - metric(m0, name, **labels)

        self.assertEqual(delta("credbroker_requests_total", route="GET /healthz", status="200"), 7)
        self.assertEqual(delta("credbroker_requests_total", route="other", status="404"), 3)
        self.assertEqual(delta("credbroker_requests_total", route="GET /v1/secrets", status="403"), 1)
        self.assertEqual(delta("credbroker_requests_total", route="other", status="401"), 1)
        self.assertEqual(delta("credbroker_requests_total", route="GET /metrics", status="200"), 1)
        self.assertIn(("credbroker_active_grants", frozenset()), m1)
        # The histogram is cumulative and ends with +Inf == _count.
        buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in m1.items()
                          if n == "credbroker_resolve_latency_seconds_bucket"), key=lambda x: x[0])
        self.assertTrue(buckets and buckets[-1][0] == float("inf"))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertEqual(buckets[-1][1], metric(m1, "credbroker_resolve_latency_seconds_count"))

    def test_metrics_count_resolves(self):
        d = self.d
        d.put_secret("metered", "mv-secret-value", ["api.metered.example"])
        st, _, raw = d.request("admin", "GET", "/metrics")
        m0 = parse_metrics(raw.decode())
        g = d.mint("sbx-m", "metered", "api.metered.example")
        self.assertEqual(d.resolve(g["token"], "sbx-m", "api.metered.example")[0], 200)
        self.assertEqual(d.resolve(g["token"], "sbx-other", "api.metered.example")[0], 403)
        st, _, raw = d.request("admin", "GET", "/metrics")
        m1 = parse_metrics(raw.decode())
        self.assertEqual(metric(m1, "credbroker_resolve_total", outcome="ok")
                         - metric(m0, "credbroker_resolve_total", outcome="ok"), 1)
        self.assertEqual(metric(m1, "credbroker_resolve_total", outcome="sandbox_mismatch")
                         - metric(m0, "credbroker_resolve_total", outcome="sandbox_mismatch"), 1)
        self.assertEqual(metric(m1, "credbroker_resolve_latency_seconds_count")
                         - metric(m0, "credbroker_resolve_latency_seconds_count"), 2)
        self.assertEqual(metric(m1, "credbroker_requests_total", route="POST /v1/resolve", status="200")
                         - metric(m0, "credbroker_requests_total", route="POST /v1/resolve", status="200"), 1)
        self.assertNotIn(b"mv-secret-value", raw)
        # The mint and both resolves (the refusal too) went through the group commit.
        ops = (metric(m1, "credbroker_commit_ops_total")
               - metric(m0, "credbroker_commit_ops_total"))
        batches = (metric(m1, "credbroker_commit_batches_total")
                   - metric(m0, "credbroker_commit_batches_total"))
        self.assertGreaterEqual(ops, 3)
        self.assertTrue(1 <= batches <= ops, (batches, ops))

    def test_request_log(self):
        self.assertEqual(self.d.request("admin", "GET", "/v1/secrets")[0], 200)
        line = cbtest.wait_until(
            lambda: [l for l in self.d.log().splitlines() if 'route="GET /v1/secrets" status=200' in l],
            timeout=5, what="request log line")[-1]
        for field in ("peer=127.0.0.1:", "identity=spiffe://credbroker.dev/admin", "grant_id=",
                      "latency_us="):
            self.assertIn(field, line)


def cpu_seconds(pid):
    """User plus system CPU time of process pid so far, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def limit_nofile(n):
    """A preexec_fn that sets RLIMIT_NOFILE (soft and hard) to n in the child."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return limit


class DescriptorLimit(cbtest.TestCase):
    """credbrokerd under a low RLIMIT_NOFILE (soft and hard): conn_limit is lowered to the
    connections that fit beside the descriptors the daemon needs, so a flood of idle TCP
    connections neither makes a pool thread spin on accept() failing with EMFILE nor leaves
    the lazily opened readers without a descriptor (every read answered 500)."""

    def setUp(self):
        if cbtest.VALGRIND:
            self.skipTest("valgrind needs descriptors of its own")

    def run_limited(self, d, nofile):
        d._log = open(d.log_path, "ab")
        d.proc = subprocess.Popen([cbtest.binary("credbrokerd"), "-c", d.conf_path],
                                  preexec_fn=limit_nofile(nofile), stdin=subprocess.DEVNULL,
                                  stdout=d._log, stderr=d._log)

    def test_descriptor_flood(self):
        nofile = 128
        with cbtest.Deployment(conf={"threads": "8", "per_ip_limit": "1000",
                                     "conn_timeout": "60"}, start=False) as d:
            self.run_limited(d, nofile)
            d.wait_healthy()
            # One kept connection: the other pool threads hold none when the flood comes.
            kept = [d.connection("admin")]
            flood = []
            try:
                for c in kept:
                    self.assertEqual(d.request(None, "GET", "/healthz", conn=c)[0], 200)
                for i in range(3 * nofile):
                    try:
                        flood.append(socket.create_connection(
                            ("127.0.0.1", d.port), timeout=5,
                            source_address=("127.0.3.%d" % (1 + i % 200), 0)))
                    except OSError:
                        break
                time.sleep(1)
                t0 = cpu_seconds(d.proc.pid)
                time.sleep(3)
                self.assertLess(cpu_seconds(d.proc.pid) - t0, 1.0,
                                "credbrokerd spins with its descriptors taken")
                # The kept connections are served, reads (a reader opened now) included.
                for c in kept:
                    self.assertEqual(d.request(None, "GET", "/v1/secrets", conn=c)[0], 200)
            finally:
                for s in flood:
                    s.close()
                for c in kept:
                    c.close()
            cbtest.wait_until(lambda: d.request("admin", "GET", "/healthz", timeout=5)[0] == 200,
                              timeout=20, what="serving again")
            self.assertTrue(d.alive())
            self.assertIn("conn_limit lowered", d.log())

    def test_too_few_descriptors_refused(self):
        with cbtest.Deployment(conf={"threads": "32"}, start=False) as d:
            self.run_limited(d, 128)
            self.assertEqual(d.proc.wait(timeout=30), 1)
            self.assertIn("too few file descriptors", d.log())


class Lifecycle(cbtest.TestCase):
    def run_daemon(self, *args, timeout=30):
        return subprocess.run([cbtest.binary("credbrokerd")] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)

    def test_usage_and_version(self):
        r = self.run_daemon("--version")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith(b"credbrokerd "))
        self.assertEqual(self.run_daemon("--help").returncode, 0)
        self.assertEqual(self.run_daemon().returncode, 2)
        self.assertEqual(self.run_daemon("-c").returncode, 2)
        self.assertEqual(self.run_daemon("--bogus").returncode, 2)
        self.assertEqual(self.run_daemon("-c", "/nonexistent/credbrokerd.conf").returncode, 2)

    def test_start_errors(self):
        with cbtest.Deployment(start=False) as d:
            with open(d.conf_path, "a") as f:
                f.write("no_such_keyword 1\n")
            r = self.run_daemon("-c", d.conf_path)
            self.assertEqual(r.returncode, 2)
            self.assertIn(b"credbrokerd.conf", r.stderr)
        with cbtest.Deployment() as d:
            d.kill()
            key = os.path.join(d.dir, "master.key")
            os.chmod(key, 0o644)
            r = self.run_daemon("-c", d.conf_path)
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"master.key", r.stderr)
            os.chmod(key, 0o600)
            with open(key, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
            r = self.run_daemon("-c", d.conf_path)
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"wrong master key", r.stderr)
        with cbtest.Deployment() as d:
            d.kill()
            import sqlite3
            db = sqlite3.connect(os.path.join(d.dir, "credbroker.db"))
            db.execute("PRAGMA user_version = 999")
            db.commit()
            db.close()
            r = self.run_daemon("-c", d.conf_path)
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"credbroker.db", r.stderr)
            self.assertIn(b"schema version 999", r.stderr)

    def test_outside_connection_keeps_the_daemons_wal(self):
        # Another process (a backup, sqlite3, an offline verify) that opens the live
        # database and closes it must find the daemon's SQLite locks held: else, as the
        # last user, it checkpoints and deletes the WAL under the daemon. An open() and
        # close() of the file by the daemon itself (each reader's pre-check) released all
        # of its POSIX locks on it.
        with cbtest.Deployment(conf={"threads": "2"}) as d:
            d.put_secret("gh", "ghp_" + os.urandom(8).hex(), ["api.github.com"])
            errs = []

            def work(i):
                try:
                    g = d.mint("sbx-w%d" % i, "gh", "api.github.com")
                    for _ in range(5):
                        st, _ = d.resolve(g["token"], "sbx-w%d" % i, "api.github.com")
                        if st != 200:
                            errs.append(st)
                except Exception as e:  # noqa: BLE001 - reported below
                    errs.append(repr(e))
            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            self.assertEqual(errs, [])
            db = os.path.join(d.dir, "credbroker.db")
            self.assertTrue(os.path.exists(db + "-wal"))
            import sqlite3
            for _ in range(3):
                c = sqlite3.connect(db)
                c.execute("SELECT count(*) FROM audit").fetchone()
                c.close()
            self.assertTrue(os.path.exists(db + "-wal"),
                            "an outside connection's close removed the daemon's WAL")
            g = d.mint("sbx-after", "gh", "api.github.com")
            self.assertEqual(d.resolve(g["token"], "sbx-after", "api.github.com")[0], 200)
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual((st, js["intact"]), (200, True), js)

    def test_lock_and_drain(self):
        with cbtest.Deployment() as d:
            # A second daemon on the same database refuses to start.
            r = self.run_daemon("-c", d.conf_path)
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"in use", r.stderr)
            self.assertTrue(d.alive())
            # SIGTERM (or SIGINT) while a connection is open: clean exit 0, then a restart
            # serves. Four rounds: a stop once aborted in libmicrohttpd's quiesce (SIGABRT)
            # in about 1 stop in 40 under ASan, so each round is another chance to see it.
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT):
                c = d.connection("admin")
                self.assertEqual(d.request(None, "GET", "/healthz", conn=c)[0], 200)
                self.assertEqual(d.kill(sig), 0, d.log_tail())
                c.close()
                d.start()
                self.assertEqual(d.request("admin", "GET", "/healthz")[0], 200)
            self.assertEqual(d.kill(signal.SIGINT), 0, d.log_tail())

    def test_offline_master_key_rotation(self):
        with cbtest.Deployment() as d:
            d.put_secret("kept", "kept-secret-value", ["api.kept.example"])
            newkey = os.path.join(d.tmp, "new.key")
            fd = os.open(newkey, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, (os.urandom(32).hex() + "\n").encode())
            os.close(fd)
            with open(newkey) as f:
                newhex = f.read()
            # Refused while the daemon runs (the database lock).
            r = self.run_daemon("-c", d.conf_path, "--rotate-master-key", "--new-key", newkey)
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"in use", r.stderr)
            # --new-key is required and only with --rotate-master-key.
            self.assertEqual(self.run_daemon("-c", d.conf_path, "--rotate-master-key").returncode, 2)
            self.assertEqual(self.run_daemon("-c", d.conf_path, "--new-key", newkey).returncode, 2)
            d.kill()
            with open(os.path.join(d.dir, "master.key")) as f:
                oldhex = f.read()
            r = self.run_daemon("-c", d.conf_path, "--rotate-master-key", "--new-key", newkey)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d.dir, "master.key")) as f:
                self.assertEqual(f.read(), newhex)
            with open(os.path.join(d.dir, "master.key.old")) as f:
                self.assertEqual(f.read(), oldhex)
            self.assertFalse(os.path.exists(newkey))
            # A second rotation refuses to overwrite master.key.old, touching nothing.
            fd = os.open(newkey, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, (os.urandom(32).hex() + "\n").encode())
            os.close(fd)
            r = self.run_daemon("-c", d.conf_path, "--rotate-master-key", "--new-key", newkey)
            self.assertEqual(r.returncode, 1)
            with open(os.path.join(d.dir, "master.key")) as f:
                self.assertEqual(f.read(), newhex)
            # The daemon starts under the new key and every value still decrypts: a data-key
            # rotation re-seals (so opens) every version.
            d.start()
            st, js, _ = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": "data"})
            self.assertEqual(st, 200, js)
            st, js, _ = d.request("admin", "GET", "/v1/secrets/kept")
            self.assertEqual((st, js["version"]), (200, 1))


if __name__ == "__main__":
    cbtest.main()
