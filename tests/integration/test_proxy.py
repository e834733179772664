"""credproxy end to end (issue 5): a real broker, real credproxy processes, a real local
TLS upstream (echo_upstream.py) and real clients (http.client, raw sockets, curl, urllib, git).

Proxies started here:
  shared   a source-address map: 127.0.0.2 -> sbx-a, 127.0.0.3 -> sbx-b (127.0.0.1 unknown),
           --allow-private, --allow-host 127.0.0.1
  sidecar  --sandbox-id sbx-b
  injector --sandbox-id sbx-inj
  strict   --sandbox-id sbx-a without --allow-private
  notrust  --sandbox-id sbx-a without --upstream-ca (the system store)
  clients  --sandbox-id sbx-cli, for git and urllib (they cannot pick a source address)
"""

import base64
import gzip
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import echo_upstream  # noqa: E402

SRC_A = "127.0.0.2"
SRC_B = "127.0.0.3"
TIMEOUT = 30
# tests/valgrind.sh sets CB_VALGRIND=1: the proxies run under memcheck, and timings stretch
# (through libtool: credproxy is a wrapper script around the real binary in .libs/)
VALGRIND = [os.path.join(cbtest.builddir(), "libtool"), "--mode=execute", "valgrind",
            "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
            "--track-fds=no"] if os.environ.get("CB_VALGRIND") else []
SLOW = 10 if VALGRIND else 1



def echo_through(d, proxy_port, up_port, token):
    """GET /echo on the echo upstream (localhost:up_port) through credproxy's CONNECT tunnel
    on proxy_port, trusting d's sandbox CA, with token as a Bearer credential. Returns
    (status, body, headers the upstream received or None); (0, b"", None) when the
    connection fails. Used by test_privdrop and test_seccomp."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(d.dir, "pki", "sandbox-ca.pem"))
    c = http.client.HTTPSConnection("127.0.0.1", proxy_port, context=ctx, timeout=TIMEOUT)
    c.set_tunnel("localhost", up_port)
    tid = os.urandom(8).hex()
    try:
        c.putrequest("GET", "/echo", skip_accept_encoding=True)
        c.putheader("X-Test-Id", tid)
        c.putheader("Authorization", "Bearer " + token)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read(), echo_upstream.received(tid)
    except (http.client.HTTPException, OSError):
        return 0, b"", None
    finally:
        c.close()

def cpu_seconds(pid):
    """User plus system CPU time of process pid so far, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proxy:
    """A running credproxy; stderr in DIR/credproxy-NAME.log."""

    def __init__(self, d, name, args, conf_extra=(), nofile=None):
        self.d = d
        self.port = cbtest.free_port()
        self.conf = os.path.join(d.dir, "credproxy-%s.conf" % name)
        with open(os.path.join(d.dir, "credproxy.conf")) as f:
            text = f.read()
        with open(self.conf, "w") as f:
            f.write(cbtest.proxy_conf_with(text, conf_extra))
        self.log_path = os.path.join(d.dir, "credproxy-%s.log" % name)
        self._log = open(self.log_path, "ab")

        def limit():
            # RLIMIT_NOFILE, soft and hard, for the proxy alone
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(
            VALGRIND + [cbtest.binary("credproxy"), "-c", self.conf, "--listen", "127.0.0.1:%d" % self.port]
            + list(args), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            preexec_fn=limit if nofile else None)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("credproxy exited with %d:\n%s" % (self.proc.returncode,
                                                                        self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        cbtest.wait_until(up, timeout=15 * SLOW, what="credproxy listening")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout=20 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        else:
            rc = self.proc.returncode
        self._log.close()
        return rc


class ProxyTest(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = d = cbtest.Deployment()
        cls.proxies = []
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        d = cls.d
        updir = os.path.join(d.tmp, "upstream")
        cls.up_ca, up_crt, up_key = echo_upstream.make_certs(updir)
        cls.git_root = os.path.join(d.tmp, "git")
        cls.up_srv, cls.up_port = echo_upstream.serve(up_crt, up_key, git_root=cls.git_root)
        cls.plain_srv, cls.plain_port = echo_upstream.serve(None, None, plain=True)
        cls.sandbox_ca = os.path.join(d.dir, "pki", "sandbox-ca.pem")
        cls.real = "ghp_REAL" + os.urandom(12).hex()
        d.put_secret("gh", cls.real, ["localhost"])
        cls.inj_real = "sk_INJ" + os.urandom(12).hex()
        d.put_secret("inj", cls.inj_real, ["localhost"])
        cls.grant = d.mint("sbx-a", "gh", "localhost", port=cls.up_port)
        cls.token = cls.grant["token"]
        cls.plain_grant = d.mint("sbx-a", "gh", "localhost", port=cls.plain_port)
        cls.plain_grant_b = d.mint("sbx-b", "gh", "localhost", port=cls.plain_port)
        d.mint("sbx-inj", "inj", "localhost", port=cls.up_port, inject=True,
               header="X-Api-Key", template="{secret}")
        common = ["--upstream-ca", cls.up_ca]
        cls.shared = cls._proxy("shared", common + ["--allow-private", "--allow-host", "127.0.0.1"],
                                ["sandbox %s/32 sbx-a" % SRC_A, "sandbox %s sbx-b" % SRC_B])
        cls.sidecar = cls._proxy("sidecar", common + ["--allow-private", "--sandbox-id", "sbx-b"],
                                 ["plaintext_credentials yes"])
        cls.injector = cls._proxy("injector", common + ["--allow-private", "--sandbox-id",
                                                         "sbx-inj"])
        cls.strict = cls._proxy("strict", common + ["--sandbox-id", "sbx-a"])
        cls.notrust = cls._proxy("notrust", ["--allow-private", "--sandbox-id", "sbx-a"])
        # real clients (git, urllib) cannot choose their source address: a sidecar of their own
        cls.clients = cls._proxy("clients", common + ["--allow-private", "--sandbox-id", "sbx-cli"])
        cls.cli_token = d.mint("sbx-cli", "gh", "localhost", port=cls.up_port)["token"]
        shared_map = ["sandbox %s/32 sbx-a" % SRC_A, "sandbox %s sbx-b" % SRC_B]
        cls.limited = cls._proxy("limited", common + ["--allow-private"],
                                 shared_map + ["max_conns_per_sandbox 3"])
        cls.head_s = 2 * SLOW
        cls.headline = cls._proxy("headline", common + ["--allow-private"],
                                  shared_map + ["head_timeout %d" % cls.head_s])
        cls.idle_s = 2 * SLOW
        cls.idler = cls._proxy("idler", common + ["--allow-private"],
                               shared_map + ["idle_timeout %d" % cls.idle_s])

        # few descriptors (256, soft and hard): fewer connections fit than CONNS_MAX
        # (not under valgrind, which needs descriptors of its own: the test is skipped)
        cls.fdlimited = cls._proxy("fdlimited", common + ["--allow-private"],
                                   shared_map + ["resolve_workers 2"],
                                   nofile=None if VALGRIND else 256)

    @classmethod
    def _proxy(cls, name, args, conf_extra=(), nofile=None):
        p = Proxy(cls.d, name, args, conf_extra, nofile)
        cls.proxies.append(p)
        return p

    @classmethod
    def tearDownClass(cls):
        bad = []
        for p in getattr(cls, "proxies", []):
            rc = p.stop()
            if rc != 0:	# SIGTERM drains and exits 0 (also no sanitizer report)
                bad.append("%s exited %s:\n%s" % (p.log_path, rc, p.log()[-3000:]))
        for s in ("up_srv", "plain_srv"):
            srv = getattr(cls, s, None)
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        cls.d.stop()
        if bad:
            raise AssertionError("\n".join(bad))

    # --- clients -------------------------------------------------------------------------
    def sandbox_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.sandbox_ca)
        return ctx

    def conn(self, proxy=None, src=SRC_A, host="localhost", port=None):
        """An HTTPS connection through the proxy's CONNECT tunnel, from source address src."""
        proxy = proxy or self.shared
        c = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=self.sandbox_ctx(),
                                        timeout=TIMEOUT, source_address=(src, 0))
        c.set_tunnel(host, port or self.up_port)
        return c

    def get(self, path, headers=(), proxy=None, src=SRC_A, host="localhost", conn=None,
            method="GET", body=None):
        """One request with headers given as a list of (name, value) pairs (duplicates kept).
        Returns (status, response headers, body bytes)."""
        c = conn or self.conn(proxy, src, host)
        self.last_id = uuid.uuid4().hex
        try:
            c.putrequest(method, path, skip_accept_encoding=True)
            c.putheader("X-Test-Id", self.last_id)
            for k, v in headers:
                c.putheader(k, v)
            if body is not None:
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            return r.status, r.getheaders(), r.read()
        except (http.client.RemoteDisconnected, OSError):
            return 0, [], b""
        finally:
            if conn is None:
                c.close()

    def received(self, test_id=None):
        """Headers the upstream really received for the last request (or test_id)."""
        h = echo_upstream.received(test_id or self.last_id)
        self.assertIsNotNone(h, "the upstream saw no such request")
        return h

    def assert_one_real(self, body, name="Authorization", value=None, test_id=None):
        """The upstream received exactly one `name` header, the real one. body is what the
        sandbox got back: it must not hold the real value."""
        got = [v for k, v in self.received(test_id) if k.lower() == name.lower()]
        self.assertEqual(got, [value or "Bearer " + self.real])
        self.assert_clean(body)

    def assert_clean(self, *blobs):
        for b in blobs:
            if isinstance(b, list):
                b = "\n".join("%s: %s" % kv for kv in b).encode()
            self.assertNotIn(self.real.encode(), b)
            self.assertNotIn(self.inj_real.encode(), b)

    def raw(self, proxy, data, src=SRC_A, timeout=10):
        """Sends raw bytes to the proxy (plain) and returns what came back until close."""
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout,
                                     source_address=(src, 0))
        out = b""
        try:
            s.sendall(data)
            for _ in range(1000):
                try:
                    b = s.recv(65536)
                except (socket.timeout, ConnectionError):
                    break
                if not b:
                    break
                out += b
        finally:
            s.close()
        return out

    def tunnel(self, proxy=None, src=SRC_A, host="localhost", port=None, sni="localhost"):
        """A raw TLS socket inside a CONNECT tunnel (SNI as given, None for none)."""
        proxy = proxy or self.shared
        port = port or self.up_port
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10,
                                     source_address=(src, 0))
        head = cbtest.connect_tunnel(s, host, port)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        ctx = self.sandbox_ctx()
        ctx.check_hostname = False
        return ctx.wrap_socket(s, server_hostname=sni)

    def exchange(self, s, data, max_bytes=1 << 20):
        out = b""
        try:
            s.sendall(data)
            while len(out) < max_bytes:
                try:
                    b = s.recv(65536)
                except (socket.timeout, ssl.SSLError, ConnectionError):
                    break
                if not b:
                    break
                out += b
        finally:
            s.close()
        return out

    def assert_serving(self):
        st, _, body = self.get("/alive", [("Authorization", "Bearer " + self.token)])
        self.assertEqual(st, 200)
        self.assert_one_real(body)

    # --- exactly one credential header --------------------------------------------------
    def test_token_once(self):
        st, hdrs, body = self.get("/echo", [("Authorization", "Bearer " + self.token)])
        self.assertEqual(st, 200, body)
        self.assert_one_real(body)
        self.assert_clean(hdrs, body)

    def test_token_in_unbound_header_refused(self):
        # the grant binds Authorization: a token elsewhere would reach the upstream
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token),
                                         ("X-Token", self.token)])
        self.assert_refused(st, body, code="does not bind")
        self.assertIsNone(echo_upstream.received(self.last_id))

    def test_token_in_url_refused(self):
        # a token in the request line cannot be swapped: it must not reach the upstream
        st, _, body = self.get("/echo?access_token=" + self.token,
                               [("Authorization", "Bearer " + self.token)])
        self.assert_refused(st, body)
        self.assertIsNone(echo_upstream.received(self.last_id))
        st, _, body = self.get("/echo?access_token=" + self.token, [])
        self.assert_refused(st, body, code="would reach the upstream")
        self.assertIsNone(echo_upstream.received(self.last_id))

    def test_token_in_basic_of_unbound_header_refused(self):
        basic = base64.b64encode(("x:" + self.token).encode()).decode()
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token),
                                         ("X-Other-Auth", "Basic " + basic)])
        self.assert_refused(st, body)
        self.assertIsNone(echo_upstream.received(self.last_id))

    def test_host_case_insensitive(self):
        c = self.conn(host="LocalHost")
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)], conn=c)
        c.close()
        self.assertEqual(st, 200, body)
        self.assert_one_real(body)

    def test_token_twice_mixed_case_and_fake(self):
        cases = [
            [("Authorization", "Bearer " + self.token), ("Authorization", "Bearer " + self.token)],
            [("authorization", "Bearer " + self.token), ("AUTHORIZATION", "Bearer " + self.token)],
            [("Authorization", "Bearer fake-of-the-sandbox"), ("Authorization", self.token)],
            [("Authorization", "Bearer fake-of-the-sandbox"), ("aUtHoRiZaTiOn", self.token)],
        ]
        for hdrs in cases:
            st, rh, body = self.get("/echo", hdrs)
            self.assertEqual(st, 200, (hdrs, body))
            self.assert_one_real(body)
            names = [k.lower() for k, _ in self.received()]
            self.assertNotIn("proxy-authorization", names)
            # the token itself never reaches the upstream
            self.assertNotIn("cbt_", json.dumps(self.received()))
            self.assert_clean(rh, body)

    def test_two_tokens_on_kept_connection(self):
        # two tokens in one request are two resolves in a row; on a kept-alive connection's
        # later requests they run on the event loop
        g = self.d.mint("sbx-a", "inj", "localhost", port=self.up_port, header="X-Api-Key",
                        template="{secret}")
        c = self.conn()
        try:
            for i in range(3):
                st, rh, body = self.get("/echo?i=%d" % i,
                                        [("Authorization", "Bearer " + self.token),
                                         ("X-Api-Key", g["token"])], conn=c)
                self.assertEqual(st, 200, (i, body))
                self.assert_one_real(body)
                self.assert_one_real(body, name="X-Api-Key", value=self.inj_real)
                self.assertNotIn("cbt_", json.dumps(self.received()))
                self.assert_clean(rh, body)
        finally:
            c.close()

    def test_inject_on_kept_connection(self):
        c = self.conn(proxy=self.injector, src="127.0.0.1")
        try:
            for i in range(3):
                st, rh, body = self.get("/echo-credential-header?i=%d" % i,
                                        [("X-Api-Key", "sandbox-fake")], conn=c)
                self.assertEqual(st, 200, (i, body))
                self.assert_one_real(body, name="X-Api-Key", value=self.inj_real)
                self.assert_clean(rh, body)
        finally:
            c.close()

    def test_basic_password(self):
        basic = base64.b64encode(("x-access-token:" + self.token).encode()).decode()
        st, rh, body = self.get("/echo", [("Authorization", "Basic " + basic)])
        self.assertEqual(st, 200, body)
        self.assert_one_real(body)

    def test_basic_template_password_scrubbed(self):
        pw = "pw" + os.urandom(10).hex()
        self.d.put_secret("basic", base64.b64encode(("x-access-token:" + pw).encode()).decode(),
                          ["localhost"])
        g = self.d.mint("sbx-a", "basic", "localhost", port=self.up_port,
                        template="Basic {secret}")
        basic = base64.b64encode(("x:" + g["token"]).encode()).decode()
        st, rh, body = self.get("/echo-basic-password", [("Authorization", "Basic " + basic)])
        self.assertEqual(st, 200, body)
        self.assertNotIn(pw.encode(), body)
        self.assertIn(b"password=" + g["token"].encode(), body)

    def test_proxy_authorization_stripped(self):
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token),
                                         ("Proxy-Authorization", "Basic Zm9vOmJhcg==")])
        self.assertEqual(st, 200)
        self.assertNotIn("proxy-authorization", [k.lower() for k, _ in self.received()])

    def test_curl(self):
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("no curl")
        tid = "curl-" + uuid.uuid4().hex
        r = subprocess.run([curl, "-sS", "--interface", SRC_A, "--proxy",
                            "http://127.0.0.1:%d" % self.shared.port, "--cacert", self.sandbox_ca,
                            "-H", "Authorization: Bearer " + self.token, "-H", "X-Test-Id: " + tid,
                            "https://localhost:%d/echo-credential-header" % self.up_port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_one_real(r.stdout, test_id=tid)

    def git(self, *args, cwd=None, proxy=None, extra=()):
        """git with the sandbox's proxy settings; returns the CompletedProcess (never raises)."""
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1",
                   HOME=self.d.tmp, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x",
                   GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@x")
        for k in ("http_proxy", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
            env.pop(k, None)
        opts = []
        if proxy is not None:
            opts = ["-c", "http.proxy=http://127.0.0.1:%d" % proxy.port]
            # the environment's GIT_SSL_CAINFO (set on some machines) overrides http.sslCAInfo
            env["GIT_SSL_CAINFO"] = self.sandbox_ca
        for e in extra:
            opts += ["-c", e]
        return subprocess.run(["git"] + opts + list(args), cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT * SLOW)

    def git_ok(self, *args, **kw):
        r = self.git(*args, **kw)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r

    def test_git_clone_and_push(self):
        """git over smart HTTP through credproxy, the two ways a sandbox holds its token: an
        extra Authorization header (what CI checkouts do), and the password in the URL (git
        asks anonymously first, so the host must be on the allowlist for that probe). The
        upstream (git http-backend) only ever sees the real credential, git only the token."""
        if shutil.which("git") is None:
            self.skipTest("no git")
        work = os.path.join(self.d.tmp, "git-work-" + uuid.uuid4().hex[:8])
        os.makedirs(self.git_root, exist_ok=True)
        bare = os.path.join(self.git_root, os.path.basename(work) + ".git")
        self.git_ok("init", "-q", "--bare", bare)
        self.git_ok("config", "http.receivepack", "true", cwd=bare)
        seed = os.path.join(work, "seed")
        self.git_ok("init", "-q", seed)
        with open(os.path.join(seed, "README"), "w") as f:
            f.write("seed\n")
        self.git_ok("add", "README", cwd=seed)
        self.git_ok("commit", "-q", "-m", "seed", cwd=seed)
        self.git_ok("push", "-q", bare, "HEAD:refs/heads/main", cwd=seed)
        url = "https://localhost:%d/git/%s" % (self.up_port, os.path.basename(bare))
        proxy, token = self.clients, self.cli_token
        basic = base64.b64encode(("x-access-token:" + token).encode()).decode()
        ways = {
            "header": (url, ["http.extraHeader=Authorization: Basic " + basic]),
            "url": (url.replace("https://", "https://x-access-token:%s@" % token), []),
        }
        for way, (u, extra) in ways.items():
            tid = "git-%s-%s" % (way, uuid.uuid4().hex)
            extra = extra + ["http.extraHeader=X-Test-Id: " + tid]
            clone = os.path.join(work, way)
            r = self.git_ok("clone", "-q", "--branch", "main", u, clone, proxy=proxy, extra=extra)
            self.assert_clean(r.stdout, r.stderr)
            with open(os.path.join(clone, "README")) as f:
                self.assertEqual(f.read(), "seed\n")
            with open(os.path.join(clone, way), "w") as f:
                f.write(way + "\n")
            # 3 MiB that do not compress: the pack goes up chunked (above http.postBuffer)
            with open(os.path.join(clone, way + ".bin"), "wb") as f:
                f.write(os.urandom(3 << 20))
            self.git_ok("add", way, way + ".bin", cwd=clone)
            self.git_ok("commit", "-q", "-m", way, cwd=clone)
            r = self.git_ok("push", "-q", "origin", "HEAD:main", cwd=clone, proxy=proxy,
                            extra=extra)
            self.assert_clean(r.stdout, r.stderr)
            # the commit is in the upstream's repository
            r = self.git_ok("log", "--format=%s", "-1", "main", cwd=bare)
            self.assertEqual(r.stdout.decode().strip(), way)
            r = self.git_ok("cat-file", "-s", "main:" + way + ".bin", cwd=bare)
            self.assertEqual(int(r.stdout), 3 << 20)
            # every request the upstream served carried the real credential, never the token
            seen = echo_upstream.received(tid)
            self.assertIsNotNone(seen, way)
            auths = [[v for k, v in h if k.lower() == "authorization"] for h in seen]
            served = [a for a in auths if a]
            self.assertGreaterEqual(len(served), 4, (way, auths))	# refs + pack, both ways
            for a in served:
                self.assertEqual(a, ["Bearer " + self.real])
            self.assertNotIn(token, json.dumps(seen))
            if way == "url":
                self.assertEqual(auths[0], [], "git's first, anonymous probe")
            self.assertIn(["Transfer-Encoding", "chunked"], [kv for h in seen for kv in h])
            # the working copy's config keeps what the sandbox gave git: the token only
            with open(os.path.join(clone, ".git", "config")) as f:
                self.assert_clean(f.read().encode())

    def test_python_urllib(self):
        """Python's urllib as a sandbox would run it: the proxy and the CA from the
        environment (HTTPS_PROXY, SSL_CERT_FILE), the token in the Authorization header."""
        tid = "urllib-" + uuid.uuid4().hex
        prog = ("import json, sys, urllib.request\n"
                "r = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + "
                "sys.argv[2], 'X-Test-Id': sys.argv[3]}, data=b'{\"q\": 1}', method='POST')\n"
                "with urllib.request.urlopen(r, timeout=30) as a:\n"
                "    sys.stdout.write('%d ' % a.status + a.read().decode())\n")
        env = dict(os.environ, HTTPS_PROXY="http://127.0.0.1:%d" % self.clients.port,
                   SSL_CERT_FILE=self.sandbox_ca)
        for k in ("https_proxy", "no_proxy", "NO_PROXY"):
            env.pop(k, None)
        r = subprocess.run([sys.executable, "-c", prog,
                            "https://localhost:%d/v1/echo" % self.up_port, self.cli_token, tid],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        st, _, body = r.stdout.partition(b" ")
        self.assertEqual(st, b"200", r.stdout)
        self.assertEqual(json.loads(body)["method"], "POST")
        self.assert_one_real(body, test_id=tid)
        self.assertNotIn(self.cli_token, json.dumps(self.received(tid)))

    # --- refusals -------------------------------------------------------------------------
    def assert_refused(self, st, body, status=403, code=None):
        self.assertEqual(st, status, body)
        self.assertTrue(body.startswith(b"credproxy: "), body)
        if code is not None:
            self.assertIn(code.encode(), body)
        self.assert_clean(body)

    def test_refused_other_sandbox_by_source(self):
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)], src=SRC_B)
        self.assert_refused(st, body)

    def test_refused_other_sandbox_sidecar(self):
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                               proxy=self.sidecar, src="127.0.0.1")
        self.assert_refused(st, body)

    def test_refused_unknown_source(self):
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                               src="127.0.0.1")
        self.assertEqual(st, 0)	# the CONNECT itself is refused; http.client raises
        out = self.raw(self.shared, b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n"
                       % (self.up_port, self.up_port), src="127.0.0.1")
        self.assertTrue(out.startswith(b"HTTP/1.1 403"), out)
        self.assertIn(b"unknown sandbox", out)

    def test_refused_other_host(self):
        # the grant names localhost; 127.0.0.1 is the same server under another name
        c = self.conn(host="127.0.0.1")
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)], conn=c)
        c.close()
        self.assert_refused(st, body)

    def test_refused_after_revocation(self):
        g = self.d.mint("sbx-a", "gh", "localhost", port=self.up_port)
        c = self.conn()
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + g["token"])], conn=c)
        self.assertEqual(st, 200)
        self.assert_one_real(body)
        st, _, raw = self.d.request("harness", "DELETE", "/v1/grants/" + g["grant_id"])
        self.assertIn(st, (200, 204), raw)
        t0 = time.monotonic()
        # the same kept-alive connection, within one second of the revocation
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + g["token"])], conn=c)
        c.close()
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW)
        self.assert_refused(st, body)

    def test_refused_after_expiry(self):
        g = self.d.mint("sbx-a", "gh", "localhost", port=self.up_port, ttl_s=1)
        time.sleep(2.2)
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + g["token"])])
        self.assert_refused(st, body)

    def test_refused_sni_mismatch(self):
        s = self.tunnel(sni="127.0.0.1")
        out = self.exchange(s, b"GET / HTTP/1.1\r\nHost: localhost:%d\r\nAuthorization: Bearer %s"
                            b"\r\n\r\n" % (self.up_port, self.token.encode()))
        self.assertTrue(out.startswith(b"HTTP/1.1 421"), out)
        s = self.tunnel(sni=None)
        out = self.exchange(s, b"GET / HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % self.up_port)
        self.assertTrue(out.startswith(b"HTTP/1.1 421"), out)

    def test_refused_host_mismatch(self):
        for host in (b"127.0.0.1:%d" % self.up_port, b"localhost:1", b"evil.example"):
            s = self.tunnel()
            out = self.exchange(s, b"GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s"
                                b"\r\n\r\n" % (host, self.token.encode()))
            self.assertTrue(out.startswith(b"HTTP/1.1 421"), (host, out))
        self.assert_serving()

    def test_no_token_not_allowlisted(self):
        # sbx-b holds no grant for localhost and localhost is not on the allowlist
        st, _, body = self.get("/echo", src=SRC_B)
        self.assert_refused(st, body)

    def test_no_token_allowlisted(self):
        c = self.conn(src=SRC_B, host="127.0.0.1")
        st, _, body = self.get("/echo", conn=c)
        c.close()
        self.assertEqual(st, 200, body)

    def test_no_token_swap_grant_passes_untouched(self):
        st, _, body = self.get("/echo", [("Authorization", "Bearer sandbox-own")])
        self.assertEqual(st, 200, body)
        self.assert_one_real(body, value="Bearer sandbox-own")

    def test_private_address_refused(self):
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                               proxy=self.strict, src="127.0.0.1")
        self.assert_refused(st, body, code="private")

    def test_untrusted_upstream_certificate(self):
        # without --upstream-ca the system store does not know the upstream's CA
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                               proxy=self.notrust, src="127.0.0.1")
        self.assert_refused(st, body, status=502, code="certificate")
        self.assertIsNone(echo_upstream.received(self.last_id))

    def test_private_address_classes_refused(self):
        # each literal resolves (in the proxy's worker) to an address that must be refused
        # before any connection is tried; a grant makes the broker say yes first
        targets = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
                   "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::ffff:127.0.0.1",
                   "fe80::1", "fc00::1", "::"]
        self.d.put_secret("priv", "priv-" + os.urandom(8).hex(), targets)
        for t in targets:
            g = self.d.mint("sbx-a", "priv", t, port=443)
            h = "[%s]" % t if ":" in t else t
            s = self.tunnel(proxy=self.strict, src="127.0.0.1", host=h, port=443, sni=None)
            out = self.exchange(s, b"GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s"
                                b"\r\n\r\n" % (h.encode(), g["token"].encode()))
            self.assertTrue(out.startswith(b"HTTP/1.1 403"), (t, out))
            self.assertIn(b"credproxy: refused: private address", out, t)

    # --- inject mode ------------------------------------------------------------------------
    def test_inject(self):
        st, rh, body = self.get("/echo-credential-header", [("X-Api-Key", "sandbox-fake")],
                                proxy=self.injector, src="127.0.0.1")
        self.assertEqual(st, 200, body)
        self.assert_one_real(body, name="X-Api-Key", value=self.inj_real)
        # the echo of the injected value is redacted in the body
        self.assertIn(b"[credproxy:redacted]", body)
        self.assert_clean(rh, body)

    # --- scrubbing --------------------------------------------------------------------------
    def test_scrub_header_echo(self):
        st, rh, body = self.get("/echo-credential-header",
                                [("Authorization", "Bearer " + self.token)])
        self.assertEqual(st, 200)
        echoed = dict((k.lower(), v) for k, v in rh)["x-echo-authorization"]
        # the sandbox sees back what it sent
        self.assertEqual(echoed, "Bearer " + self.token)
        self.assert_clean(rh, body)

    def test_scrub_header_name_echo(self):
        # a credential echoed as part of a response header name cannot be replaced there
        # (a replacement need not be a valid name): the answer is refused, never relayed
        st, hdrs, body = self.get("/echo-credential-header-name",
                                  [("Authorization", "Bearer " + self.token)])
        self.assertEqual(st, 502, body)
        self.assert_clean(hdrs, body)
        # without a credential to scrub, the same answer passes
        st, hdrs, body = self.get("/echo-credential-header-name",
                                  [("Authorization", "Bearer plain-value")])
        self.assertEqual(st, 200, body)
        self.assertIn("X-Echo-plain-value", [k for k, _ in hdrs])

    def test_compressed_echo_refused(self):
        # credentials go out with Accept-Encoding: identity, whatever the sandbox asked for
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token),
                                         ("Accept-Encoding", "gzip, br")])
        self.assertEqual(st, 200)
        enc = [v for k, v in self.received() if k.lower() == "accept-encoding"]
        self.assertEqual(enc, ["identity"])
        # an upstream that compresses anyway cannot be scrubbed: refused, nothing relayed
        st, _, body = self.get("/gzip-echo", [("Authorization", "Bearer " + self.token)])
        self.assert_refused(st, body, status=502, code="cannot be scrubbed")
        # without a credential nothing needs scrubbing: compressed answers pass
        c = self.conn(src=SRC_B, host="127.0.0.1")
        st, rh, body = self.get("/gzip-echo", [("Accept-Encoding", "gzip")], conn=c)
        c.close()
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(gzip.decompress(body))["authorization"], "")

    def test_scrub_chunked_every_split(self):
        n = len("authorization=Bearer %s\n" % self.real)
        c = self.conn()
        try:
            for split in range(n + 1):
                st, rh, body = self.get("/echo-credential-chunked?split=%d" % split,
                                        [("Authorization", "Bearer " + self.token)], conn=c)
                self.assertEqual(st, 200, split)
                self.assert_clean(rh, body)
                self.assertIn(self.token.encode(), body)
        finally:
            c.close()

    # --- bodies and keep-alive ---------------------------------------------------------------
    def test_large_upload(self):
        data = os.urandom(8 << 20)
        want = hashlib.sha256(data).hexdigest()
        st, _, body = self.get("/upload", [("Authorization", "Bearer " + self.token)],
                               method="POST", body=data)
        self.assertEqual(st, 200)
        js = json.loads(body)
        self.assertEqual((js["body_sha256"], js["body_len"]), (want, len(data)))
        # chunked, in pieces
        c = self.conn()
        try:
            c.putrequest("PUT", "/upload")
            c.putheader("Authorization", "Bearer " + self.token)
            c.putheader("Transfer-Encoding", "chunked")
            c.endheaders()
            for i in range(0, len(data), 100003):
                part = data[i:i + 100003]
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
            c.send(b"0\r\n\r\n")
            r = c.getresponse()
            js = json.loads(r.read())
        finally:
            c.close()
        self.assertEqual((js["body_sha256"], js["body_len"]), (want, len(data)))

    def test_large_download(self):
        n = 24 << 20
        want = hashlib.sha256(echo_upstream.download_bytes(n)).hexdigest()
        for q in ("", "&chunked=1"):
            st, _, body = self.get("/download?bytes=%d%s" % (n, q),
                                   [("Authorization", "Bearer " + self.token)])
            self.assertEqual(st, 200)
            self.assertEqual((hashlib.sha256(body).hexdigest(), len(body)), (want, n))

    def test_keep_alive(self):
        c = self.conn()
        ids = set()
        try:
            for i in range(6):
                st, _, body = self.get("/echo?i=%d" % i, [("Authorization", "Bearer " + self.token)],
                                       conn=c)
                self.assertEqual(st, 200)
                self.assert_one_real(body)
                js = json.loads(body)
                self.assertEqual(js["path"], "/echo?i=%d" % i)
                ids.add(js["conn_id"])
        finally:
            c.close()
        self.assertEqual(len(ids), 1, "the upstream connection is reused")

    def test_upstream_closes_idle_connection(self):
        c = self.conn()
        try:
            st, _, body = self.get("/short-idle", [("Authorization", "Bearer " + self.token)],
                                   conn=c)
            self.assertEqual(st, 200)
            first = json.loads(body)["conn_id"]
            time.sleep(0.8)
            st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)], conn=c)
            self.assertEqual(st, 200, body)
            self.assert_one_real(body)
            self.assertNotEqual(json.loads(body)["conn_id"], first)
        finally:
            c.close()

    def test_bytes_after_an_answer_not_read_as_the_next(self):
        # an upstream that sends a body after its 204 (or more than its Content-Length):
        # those bytes are not the answer to the next request on the kept connection
        c = self.conn()
        try:
            st, _, body = self.get("/204-with-body", [("Authorization", "Bearer " + self.token)],
                                   conn=c)
            self.assertEqual((st, body), (204, b""))
            for i in range(2):
                st, _, body = self.get("/echo?i=%d" % i,
                                       [("Authorization", "Bearer " + self.token)], conn=c)
                self.assertEqual(st, 200, body)
                self.assertNotEqual(body, b"STALE\n")
                self.assertEqual(json.loads(body)["path"], "/echo?i=%d" % i)
        finally:
            c.close()

    def test_no_1xx_to_http10_client(self):
        # the upstream gets HTTP/1.1 and may send a 103 or a 100: an HTTP/1.0 client never
        # sees it (it would read it as the final answer); an HTTP/1.1 client does
        for version, interim in ((b"1.0", False), (b"1.1", True)):
            s = self.tunnel()
            out = self.exchange(s, b"GET /early-hints HTTP/%s\r\nHost: localhost:%d\r\n"
                                b"Authorization: Bearer %s\r\nConnection: close\r\n\r\n"
                                % (version, self.up_port, self.token.encode()))
            self.assertEqual(out.startswith(b"HTTP/1.1 103 "), interim, out[:200])
            self.assertIn(b"HTTP/1.1 200 OK\r\n", out)
            self.assertIn(b'"path": "/early-hints"', out)
            self.assert_clean(out)

    def test_one_resolve_worker_serves_concurrent_connections(self):
        # resolve_workers 1: every resolve queues for the one worker; all are still answered,
        # each with the real credential, on keep-alive connections reusing their upstream
        p = Proxy(self.d, "oneworker", ["--upstream-ca", self.up_ca, "--allow-private",
                                        "--sandbox-id", "sbx-a"], ["resolve_workers 1"])
        results, errors = [], []

        def client(k):
            c = self.conn(proxy=p)
            try:
                for i in range(3):
                    tid = uuid.uuid4().hex
                    c.request("GET", "/echo?k=%d&i=%d" % (k, i),
                              headers={"X-Test-Id": tid,
                                       "Authorization": "Bearer " + self.token})
                    r = c.getresponse()
                    body = r.read()
                    results.append((r.status, tid, body, json.loads(body)["conn_id"], k))
            except Exception as e:	# reported by the main thread
                errors.append(repr(e))
            finally:
                c.close()

        try:
            threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=TIMEOUT * 2)
            self.assertFalse(any(t.is_alive() for t in threads))
            self.assertEqual(errors, [])
            self.assertEqual(len(results), 18)
            for st, tid, body, _, _ in results:
                self.assertEqual(st, 200, body)
                self.assert_one_real(body, test_id=tid)
            for k in range(6):
                self.assertEqual(len({cid for _, _, _, cid, kk in results if kk == k}), 1,
                                 "each sandbox connection reuses its upstream connection")
        finally:
            self.assertEqual(p.stop(), 0, p.log()[-3000:])

    def test_resolve_after_broker_restart(self):
        # the workers keep their broker connections alive between resolves; a restart closes
        # them under the workers: the next resolves reconnect and answer, none fails
        # (new sandbox connections); so does it close the event loop's broker connections,
        # used and never used, under kept-alive sandbox connections
        p = Proxy(self.d, "restart", ["--upstream-ca", self.up_ca, "--allow-private",
                                      "--sandbox-id", "sbx-a"], ["resolve_workers 2"])
        kept = []
        try:
            kept = [self.conn(proxy=p) for _ in range(3)]
            for phase in ("before", "after"):
                if phase == "after":
                    self.d.restart()
                for i in range(6):
                    st, _, body = self.get("/echo?%s=%d" % (phase, i),
                                           [("Authorization", "Bearer " + self.token)], proxy=p)
                    self.assertEqual(st, 200, (phase, i, body, p.log()[-2000:]))
                    self.assert_one_real(body)
                for k, c in enumerate(kept):
                    for i in range(3):
                        st, _, body = self.get("/echo?%s=%d-%d" % (phase, k, i),
                                               [("Authorization", "Bearer " + self.token)],
                                               conn=c)
                        self.assertEqual(st, 200, (phase, k, i, body, p.log()[-2000:]))
                        self.assert_one_real(body)
            self.assertNotIn("broker resolve failed", p.log())
        finally:
            for c in kept:
                c.close()
            self.assertEqual(p.stop(), 0, p.log()[-3000:])

    def test_conf_refused(self):
        conf = os.path.join(self.d.dir, "credproxy-badworkers.conf")
        with open(os.path.join(self.d.dir, "credproxy.conf")) as f:
            text = f.read()
        for bad, why in (("resolve_workers 0", b"resolve_workers 1-256"),
                         ("resolve_workers 257", b"resolve_workers 1-256"),
                         ("resolve_workers many", b"resolve_workers 1-256"),
                         # repeats: the last one silently won, a second sandbox_id too
                         ("sandbox_id a\nsandbox_id b", b"sandbox_id given twice"),
                         ("sandbox 127.0.0.9 a\nsandbox 127.0.0.9/32 b",
                          b"sandbox: the network of line")):
            with open(conf, "w") as f:
                f.write(text + bad + "\n")
            r = subprocess.run(VALGRIND + [cbtest.binary("credproxy"), "-c", conf, "--listen",
                                           "127.0.0.1:%d" % cbtest.free_port()],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30 * SLOW)
            self.assertEqual(r.returncode, 1, bad)
            self.assertIn(why, r.stderr, r.stderr)

    def plain_http(self, proxy, token, src=SRC_A):
        """A credentialed absolute-form http:// request: (status, headers, body, test id)."""
        c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT,
                                       source_address=(src, 0))
        try:
            url = "http://localhost:%d/echo-credential-header" % self.plain_port
            tid = uuid.uuid4().hex
            c.request("GET", url, headers={"Authorization": "Bearer " + token,
                                           "X-Test-Id": tid})
            r = c.getresponse()
            return r.status, r.getheaders(), r.read(), tid
        finally:
            c.close()

    def test_plain_http_absolute_form(self):
        # plaintext_credentials yes: the credential may travel in clear
        status, headers, body, tid = self.plain_http(self.sidecar, self.plain_grant_b["token"])
        self.assertEqual(status, 200, body)
        self.assert_one_real(body, test_id=tid)
        self.assert_clean(headers, body)

    def test_plain_http_credential_refused_by_default(self):
        # a grant names host and port, not the scheme: by default no credential goes out in
        # clear, and nothing reaches the upstream
        status, headers, body, tid = self.plain_http(self.shared, self.plain_grant["token"])
        self.assertEqual(status, 403, body)
        self.assertIn(b"TLS only", body)
        self.assertIsNone(echo_upstream.received(tid))
        self.assert_clean(headers, body)

    def test_websocket(self):
        s = self.tunnel()
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (self.up_port, self.token.encode()))
        head = cbtest.read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
        s.sendall(b"ping-frame-bytes")
        got = b""
        for _ in range(100):
            got += s.recv(100)
            if len(got) >= 16:
                break
        s.close()
        self.assertEqual(got, b"ping-frame-bytes")

    def ws_open(self, path, proxy=None):
        """An upgraded connection through the shared proxy, with the token: the socket."""
        s = self.tunnel(proxy=proxy)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (path, self.up_port, self.token.encode()))
        head = cbtest.read_head(s)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        return s

    @staticmethod
    def recv_at_least(s, n, timeout=10):
        s.settimeout(timeout)
        got = b""
        for _ in range(1000):
            if len(got) >= n:
                break
            b = s.recv(4096)
            if not b:
                break
            got += b
        return got

    def test_websocket_echo_of_credential_masked(self):
        # the upstream writes the Authorization it received into the upgraded stream, split
        # in two writes inside the credential: masked, and of the same length (the framing)
        s = self.ws_open(b"/ws-echo-credential")
        try:
            value = b"Bearer " + self.real.encode()
            got = self.recv_at_least(s, len(b"auth=\n") + len(value))
            self.assertNotIn(self.real.encode(), got)
            self.assertEqual(got, b"auth=" + b"*" * len(value) + b"\n")
            s.sendall(b"ping-frame-bytes")
            self.assertEqual(self.recv_at_least(s, 16), b"ping-frame-bytes")
        finally:
            s.close()

    def test_websocket_held_bytes_flushed(self):
        # a stream that ends with what could begin a credential ("B" of "Bearer ...") and
        # then waits for the sandbox: the held byte still arrives (TUNNEL_FLUSH_MS)
        s = self.ws_open(b"/ws-tail")
        try:
            self.assertEqual(self.recv_at_least(s, 6, timeout=10 * SLOW), b"tail:B")
        finally:
            s.close()

    def test_websocket_push_keeps_a_silent_client(self):
        # a tunnel is idle only when neither side sends: a client that only listens to a
        # push stream longer than idle_timeout keeps its connection; silent both ways, closed
        n, ms = 10, 400 * SLOW          # 4 s of ticks against an idle_timeout of 2 s
        s = self.ws_open(b"/ws-ticks?n=%d&ms=%d" % (n, ms), proxy=self.idler)
        try:
            t0 = time.monotonic()
            self.assertEqual(self.recv_at_least(s, n, timeout=5 * self.idle_s), b"t" * n)
            self.assertGreater(time.monotonic() - t0, 1.5 * self.idle_s)
            s.settimeout(5 * self.idle_s)
            t1 = time.monotonic()
            try:
                rest = s.recv(100)
            except (ssl.SSLError, ConnectionError):
                rest = b""
            self.assertEqual(rest, b"")      # closed by the proxy, not by the timeout here
            self.assertLess(time.monotonic() - t1, 3 * self.idle_s)
        finally:
            s.close()

    def test_close_delimited_body_without_close_notify(self):
        # the upstream ends a body without a length by closing TCP without TLS's close_notify:
        # the sandbox gets the whole body, properly ended (curl and urllib failed on it)
        status, headers, body = self.get("/close-delimited",
                                         [("Authorization", "Bearer " + self.token)])
        self.assertEqual(status, 200, body)
        self.assertEqual(body, echo_upstream.CLOSE_DELIMITED_BODY)

    def test_kept_upstream_not_reused_without_its_credential(self):
        # an upstream that returns, to a request without a credential, what the previous
        # request on its connection carried: that request goes on a fresh upstream connection
        c = self.conn()
        try:
            status, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                                       conn=c)
            self.assertEqual(status, 200, body)
            first = json.loads(body)["conn_id"]
            status, _, body = self.get("/previous-credential", conn=c)
            self.assertEqual(status, 200, body)
            self.assert_clean(body)
            self.assertEqual(body, b"previous=\n")
            # with the credential again: the kept connection is reused as before
            status, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                                       conn=c)
            self.assertEqual(status, 200, body)
            again = json.loads(body)
            status, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                                       conn=c)
            self.assertEqual(json.loads(body)["conn_id"], again["conn_id"])
            self.assertNotEqual(again["conn_id"], first)
        finally:
            c.close()

    def open_idle(self, proxy, src):
        return socket.create_connection(("127.0.0.1", proxy.port), timeout=10,
                                        source_address=(src, 0))

    def test_connection_limit_per_sandbox(self):
        # shared mode: a sandbox holds at most max_conns_per_sandbox connections; the others
        # are not starved by it
        held = [self.open_idle(self.limited, SRC_A) for _ in range(3)]
        try:
            def refused():
                s = self.open_idle(self.limited, SRC_A)
                try:
                    s.settimeout(2 * SLOW)
                    return cbtest.read_head(s)
                except OSError:
                    return b""
                finally:
                    s.close()
            head = b""
            for _ in range(50):     # the three are accepted once the proxy has seen them
                head = refused()
                if head:
                    break
                time.sleep(0.1)
            self.assertTrue(head.startswith(b"HTTP/1.1 503"), head)
            # A sandbox that keeps knocking cannot flood the log: a line a second at most.
            line = "connection limit of the sandbox reached"
            before = self.limited.log().count(line)
            t0 = time.monotonic()
            knocked = sum(1 for _ in range(40) if refused().startswith(b"HTTP/1.1 503"))
            took = time.monotonic() - t0
            self.assertGreaterEqual(knocked, 35)
            self.assertLessEqual(self.limited.log().count(line) - before, took + 2,
                                 "%d refusals logged in %.1f s" % (knocked, took))
            other = self.open_idle(self.limited, SRC_B)
            try:
                self.assertTrue(cbtest.connect_tunnel(other, "localhost", self.up_port)
                                .startswith(b"HTTP/1.1 200"))
            finally:
                other.close()
            held.pop().close()
            s = None
            for _ in range(100):    # bounded: the proxy notices the close
                s = self.open_idle(self.limited, SRC_A)
                head = cbtest.connect_tunnel(s, "localhost", self.up_port)
                if head.startswith(b"HTTP/1.1 200"):
                    break
                s.close()
                s = None
                time.sleep(0.1)
            self.assertIsNotNone(s, "a connection of sbx-a is accepted again after one closed")
            s.close()
        finally:
            for s in held:
                s.close()

    def test_descriptor_limit_per_sandbox(self):
        # RLIMIT_NOFILE 256: a sandbox that opens more connections than descriptors are left
        # takes its share of those that fit, not all of them; another sandbox still connects,
        # and its kept connection still reaches the broker and the upstream
        if VALGRIND:
            self.skipTest("valgrind needs descriptors of its own")
        auth = [("Authorization", "Bearer " + self.token)]
        kept = self.conn(self.fdlimited, SRC_A)
        flood = []
        try:
            self.assertEqual(self.get("/echo", auth, conn=kept)[0], 200)
            for _ in range(300):
                try:
                    flood.append(self.open_idle(self.fdlimited, SRC_B))
                except OSError:
                    break
            time.sleep(1)
            t0 = cpu_seconds(self.fdlimited.proc.pid)
            time.sleep(3)
            self.assertLess(cpu_seconds(self.fdlimited.proc.pid) - t0, 1.0)
            c = self.conn(self.fdlimited, SRC_A)
            c.timeout = 10
            st, _, body = self.get("/echo", auth, conn=c)
            c.close()
            self.assertEqual(st, 200, "sbx-a starved by sbx-b's connections")
            # the connection it kept is still served (a resolve for each request)
            self.assertEqual(self.get("/echo", auth, conn=kept)[0], 200)
        finally:
            kept.close()
            for s in flood:
                s.close()
        self.assertIn("at most", self.fdlimited.log())

    def test_head_deadline(self):
        # a head sent one line at a time, each well within the idle timeout: answered 408 and
        # closed once head_timeout has passed since its first byte
        s = self.open_idle(self.headline, SRC_A)
        got = b""
        t0 = time.monotonic()
        try:
            s.settimeout(0.5)
            s.sendall(b"GET http://localhost:%d/ HTTP/1.1\r\n" % self.plain_port)
            for i in range(int(40 * SLOW)):
                try:
                    s.sendall(b"X-Slow-%d: 1\r\n" % i)
                except OSError:
                    break
                try:
                    b = s.recv(4096)
                    if not b:
                        break
                    got += b
                except socket.timeout:
                    pass
                except OSError:
                    break
        finally:
            s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 408"), got)
        self.assertGreaterEqual(time.monotonic() - t0, self.head_s - 0.5)

    def test_head_deadline_after_connect(self):
        # a CONNECT answered, then no TLS handshake: closed after head_timeout (and the
        # short linger), not after the idle timeout
        s = self.open_idle(self.headline, SRC_A)
        try:
            self.assertTrue(cbtest.connect_tunnel(s, "localhost", self.up_port)
                            .startswith(b"HTTP/1.1 200"))
            s.settimeout(self.head_s + 10 * SLOW)
            t0 = time.monotonic()
            try:
                rest = s.recv(4096)
            except ConnectionResetError:
                rest = b""
            self.assertEqual(rest, b"")
            self.assertLess(time.monotonic() - t0, self.head_s + 10 * SLOW)
        finally:
            s.close()

    # --- bad input ----------------------------------------------------------------------------
    def test_bad_input(self):
        hp = b"localhost:%d" % self.plain_port
        cases = [
            b"GET http://" + hp + b"/ HTTP/1.1\r\nHost: " + hp + b"\r\nX-Big: " + b"a" * 40000
            + b"\r\n\r\n",
            b"GET  http://" + hp + b"/ HTTP/1.1\r\nHost: " + hp + b"\r\n\r\n",
            b"BLAH\r\n\r\n",
            b"POST http://" + hp + b"/ HTTP/1.1\r\nHost: " + hp + b"\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET http://" + hp + b"/ HTTP/1.1\nHost: " + hp + b"\n\n",
            b"GET http://" + hp + b"/ HTTP/1.1\r\nHost: " + hp + b"\r\nX-A: b\r\n c\r\n\r\n",
            b"GET http://" + hp + b"/ HTTP/1.1\r\nHost: " + hp + b"\r\nContent-Length: 1\r\n"
            b"Content-Length: 2\r\n\r\n",
            b"GET http://" + hp + b"/ HTTP/7.1\r\nHost: " + hp + b"\r\n\r\n",
        ]
        # a head far larger than the proxy reads at once: the 431 must still arrive whole
        cases.append(cases[0].replace(b"a" * 40000, b"a" * 400000))
        for data in cases:
            out = self.raw(self.shared, data)
            self.assertRegex(out[:12], rb"^HTTP/1\.1 (4\d\d|505)", (data[:80], out[:200]))
        # invalid chunk sizes, inside a tunnel, after the head was accepted
        for chunk in (b"zz\r\n", b"-1\r\n", b"fffffffffffffffffffff\r\n", b"1 2\r\n"):
            s = self.tunnel()
            out = self.exchange(s, b"POST /upload HTTP/1.1\r\nHost: localhost:%d\r\n"
                                b"Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%s"
                                % (self.up_port, self.token.encode(), chunk))
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), (chunk, out[:200]))
        self.assert_serving()
        st, _, body = self.get("/echo", src=SRC_B, host="127.0.0.1")
        self.assertEqual(st, 200)

    def test_zz_logs_hold_no_secret(self):
        # runs last (alphabetical order): nothing the proxies logged holds a credential
        for p in self.proxies:
            log = p.log()
            self.assertNotIn(self.real, log, p.log_path)
            self.assertNotIn(self.inj_real, log, p.log_path)
            self.assertNotIn("cbt_", log, p.log_path)
            self.assertNotIn("AddressSanitizer", log, p.log_path)
            self.assertNotIn("runtime error", log, p.log_path)

    def test_slow_broker_does_not_block_the_loop(self):
        # a new sandbox connection: its resolve (and upstream lookup) runs on a worker
        self.check_slow_broker(None)

    def test_slow_broker_does_not_block_the_loop_kept_connection(self):
        # a kept-alive sandbox connection's later resolves run on the event loop's own
        # broker connections, without blocking: the loop still serves everyone else
        c = self.conn()
        try:
            for i in range(3):
                st, _, body = self.get("/echo?warm=%d" % i,
                                       [("Authorization", "Bearer " + self.token)], conn=c)
                self.assertEqual(st, 200, body)
            self.check_slow_broker(c)
        finally:
            c.close()

    def check_slow_broker(self, conn):
        result = {}

        def slow():
            result["r"] = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                                   conn=conn)

        self.d.proc.send_signal(signal.SIGSTOP)
        try:
            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.3)		# the resolve is now waiting on the stopped broker
            t0 = time.monotonic()
            out = self.raw(self.shared, b"BLAH\r\n\r\n", src=SRC_B)
            s = self.tunnel(src=SRC_B)	# CONNECT answered and TLS handshake done
            s.close()
            self.assertLess(time.monotonic() - t0, 2.0 * SLOW)
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), out)
            self.assertTrue(t.is_alive())
        finally:
            self.d.proc.send_signal(signal.SIGCONT)
        t.join(timeout=TIMEOUT)
        self.assertFalse(t.is_alive())
        st, _, body = result["r"]
        self.assertEqual(st, 200, body)
        self.assert_one_real(body)

    # --- signals ------------------------------------------------------------------------------
    def test_sighup_reloads_map(self):
        p = self._proxy("reload", ["--upstream-ca", self.up_ca, "--allow-private"],
                        ["sandbox %s sbx-b" % SRC_A])
        st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)], proxy=p)
        self.assert_refused(st, body)
        with open(p.conf) as f:
            text = f.read()
        with open(p.conf, "w") as f:
            f.write(text.replace("sandbox %s sbx-b" % SRC_A, "sandbox %s sbx-a" % SRC_A))
        p.proc.send_signal(signal.SIGHUP)

        def ok():
            st, _, body = self.get("/echo", [("Authorization", "Bearer " + self.token)],
                                   proxy=p)
            return st == 200
        cbtest.wait_until(ok, timeout=5 * SLOW, interval=0.2, what="reloaded sandbox map")

        # the allowlist too: a token-less request to 127.0.0.1 (no grant) passes once listed
        def tokenless():
            c = self.conn(proxy=p, host="127.0.0.1")
            st, _, _ = self.get("/echo", conn=c)
            c.close()
            return st
        self.assertEqual(tokenless(), 403)
        with open(p.conf, "a") as f:
            f.write("allow_host 127.0.0.1\n")
        p.proc.send_signal(signal.SIGHUP)
        cbtest.wait_until(lambda: tokenless() == 200, timeout=5 * SLOW, interval=0.2,
                          what="reloaded allowlist")
        # a file that no longer parses keeps the running configuration
        with open(p.conf, "a") as f:
            f.write("no_such_keyword x\n")
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(tokenless(), 200)
        self.assertIsNone(p.proc.poll())

    def test_sigterm_drains(self):
        p = self._proxy("drain", ["--upstream-ca", self.up_ca, "--allow-private",
                                  "--sandbox-id", "sbx-a"])
        c = self.conn(proxy=p)
        c.putrequest("POST", "/upload")
        c.putheader("Authorization", "Bearer " + self.token)
        c.putheader("Content-Length", "10")
        c.endheaders(b"12345")
        time.sleep(0.5)
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        c.send(b"67890")
        r = c.getresponse()
        js = json.loads(r.read())
        c.close()
        self.assertEqual(js["body_len"], 10)
        self.assertEqual(p.proc.wait(timeout=10), 0)


class ProxyFakeBrokerTest(cbtest.TestCase):
    """credproxy against a fake broker that answers what a test needs."""

    def test_connection_close_between_two_tokens(self):
        # A broker that closes the connection after every answer ("Connection: close"):
        # the second request of a kept-alive sandbox connection carries two tokens, two
        # resolves in a row; the first runs on the event loop's broker connection, which the
        # close ends; the second must still be resolved (on a worker), not fail with 502.
        with cbtest.Deployment(start=False) as d:
            fake = cbtest.FakeBroker(d)
            updir = os.path.join(d.tmp, "upstream")
            up_ca, up_crt, up_key = echo_upstream.make_certs(updir)
            srv, up_port = echo_upstream.serve(up_crt, up_key)
            p = None

            def answer(body):
                req = json.loads(body)
                name = "X-Api-Key" if req["token"].endswith("two") else "Authorization"
                js = json.dumps({"headers": [{"name": name, "value": "real-" + req["token"][-3:]}],
                                 "expires_in": 60}).encode()
                return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(js), js))

            fake.answer = answer
            try:
                p = Proxy(d, "fake", ["--upstream-ca", up_ca, "--allow-private", "--sandbox-id",
                                      "sbx-a"], ["broker_url " + fake.url])
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.load_verify_locations(os.path.join(d.dir, "pki", "sandbox-ca.pem"))
                c = http.client.HTTPSConnection("127.0.0.1", p.port, context=ctx, timeout=TIMEOUT)
                c.set_tunnel("localhost", up_port)
                try:
                    for i, hdrs in enumerate([{"Authorization": "cbt_one"},
                                              {"Authorization": "cbt_one", "X-Api-Key": "cbt_two"},
                                              {"Authorization": "cbt_one", "X-Api-Key": "cbt_two"}]):
                        tid = uuid.uuid4().hex
                        hdrs["X-Test-Id"] = tid
                        c.request("GET", "/echo?i=%d" % i, headers=hdrs)
                        r = c.getresponse()
                        body = r.read()
                        self.assertEqual(r.status, 200, (i, body, p.log()[-2000:]))
                        got = {k.lower(): v for k, v in echo_upstream.received(tid)}
                        self.assertEqual(got["authorization"], "real-one")
                        if i > 0:
                            self.assertEqual(got["x-api-key"], "real-two")
                        time.sleep(0.3)	# the loop's new broker connection is connected
                finally:
                    c.close()
                self.assertNotIn("broker resolve failed", p.log())
                self.assertGreaterEqual(fake.requests, 5)
            finally:
                if p is not None:
                    self.assertEqual(p.stop(), 0, p.log()[-3000:])
                srv.shutdown()
                srv.server_close()
                fake.close()


if __name__ == "__main__":
    cbtest.main()
