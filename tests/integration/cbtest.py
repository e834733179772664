"""cbtest: the shared harness of credbroker's integration tests (Python 3 stdlib only).

Typical use:

    import cbtest

    class T(cbtest.TestCase):
        def test_x(self):
            with cbtest.Deployment() as d:
                d.put_secret("github", "ghp_real", ["api.github.com"])
                g = d.mint("sbx-1", "github", "api.github.com")
                st, js = d.resolve(g["token"], "sbx-1", "api.github.com")
                self.assertEqual(st, 200)

    if __name__ == "__main__":
        cbtest.main()

Environment (set by `make check`, see Makefile.am AM_TESTS_ENVIRONMENT):
    CB_BUILDDIR  the build tree (credbrokerd, credbroker, credproxy, tests/mkcert)
    CB_SRCDIR    the source tree
    CB_KEEP=1    keep deployment directories after the test (for debugging)
    CB_TMPDIR    where deployment directories go (default BUILDDIR/tests/cbtest-tmp)

A Deployment is a directory made by `credbroker init` with `listen` (and credproxy.conf's
`broker_url`) rewritten to a free 127.0.0.1 port, and a running credbrokerd whose stderr goes
to DIR/credbrokerd.log. Always use it as a context manager (or call stop()).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ROLES = ("harness", "proxy", "admin")
START_TIMEOUT = 20.0
# tests/valgrind.sh sets CB_VALGRIND=1: the daemon then runs under memcheck; an exit with
# VALGRIND_RC after SIGTERM means memcheck found errors or definite leaks.
VALGRIND_RC = 99
VALGRIND = bool(os.environ.get("CB_VALGRIND"))
if VALGRIND:
    START_TIMEOUT = 90.0
    REQUEST_TIMEOUT = 120.0
REQUEST_TIMEOUT = 30.0
TestCase = unittest.TestCase


def builddir():
    """The build tree: $CB_BUILDDIR, else the current directory."""
    return os.environ.get("CB_BUILDDIR") or os.getcwd()


def srcdir():
    """The source tree: $CB_SRCDIR, else two levels above this file."""
    return os.environ.get("CB_SRCDIR") or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tmproot():
    """Where deployments are made: $CB_TMPDIR, else BUILDDIR/tests/cbtest-tmp (each build tree
    its own, so that parallel builds never clean up each other's running tests)."""
    root = os.environ.get("CB_TMPDIR") or os.path.join(builddir(), "tests", "cbtest-tmp")
    os.makedirs(root, exist_ok=True)
    return root


def binary(name):
    """Path of a built program ("credbrokerd", "credbroker", "credproxy", "tests/mkcert")."""
    return os.path.join(builddir(), name)


def valgrind_prefix():
    """The command prefix that runs a built program under memcheck when CB_VALGRIND is set."""
    if not VALGRIND:
        return []
    return [os.path.join(builddir(), "libtool"), "--mode=execute", "valgrind", "--quiet",
            "--error-exitcode=%d" % VALGRIND_RC, "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite", "--track-fds=no"]


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    """Calls pred() until it returns a true value (returned) or timeout seconds pass
    (AssertionError). Bounded: at most timeout/interval + 1 calls."""
    deadline = time.monotonic() + timeout
    tries = int(timeout / interval) + 1
    for _ in range(tries):
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def read_head(s, max_head=1000):
    """An HTTP answer's head read from socket s, byte by byte (so nothing after it is
    consumed), at most max_head bytes."""
    head = b""
    for _ in range(max_head):
        b = s.recv(1)
        if not b:
            break
        head += b
        if head.endswith(b"\r\n\r\n"):
            break
    return head


def connect_tunnel(s, host, port, max_head=200):
    """Sends CONNECT host:port on socket s; returns the answer's head."""
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (
        host.encode(), port, host.encode(), port))
    return read_head(s, max_head)


def parse_json(raw):
    """Parsed JSON of raw bytes, or None."""
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _set_keyword(text, keyword, value):
    """Replaces (or appends) the line `keyword ...` of a config text with `keyword value`."""
    out, done = [], False
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == keyword:
            if not done:
                out.append("%s %s" % (keyword, value))
                done = True
            continue
        out.append(line)
    if not done:
        out.append("%s %s" % (keyword, value))
    return "\n".join(out) + "\n"


def keys_without_record(db):
    """The data keys and signing keys of database db (a path) that no `key.rotate` record
    with outcome ok names (detail `data ID` / `signing KID`), the first of each kind (made
    by `init`) aside: a key that became active unaudited."""
    con = sqlite3.connect(db, timeout=10)
    try:
        named = {r[0] for r in con.execute(
            "SELECT detail FROM audit WHERE action = 'key.rotate' AND outcome = 'ok'")}
        data = ["data %d" % r[0] for r in con.execute("SELECT id FROM data_keys ORDER BY id")]
        signing = ["signing %s" % r[0] for r in con.execute(
            "SELECT kid FROM signing_keys ORDER BY rowid")]
    finally:
        con.close()
    return [k for k in data[1:] + signing[1:] if k not in named]


def proxy_conf_with(text, lines):
    """credproxy.conf text plus `lines`: a single-valued keyword replaces its line (the
    proxy refuses one given twice); `sandbox` and `allow_host` lines are added."""
    for line in lines:
        words = line.split(None, 1)
        if words[0] in ("sandbox", "allow_host"):
            text = text.rstrip("\n") + "\n" + line + "\n"
        else:
            text = _set_keyword(text, words[0], words[1] if len(words) > 1 else "")
    return text


class Deployment:
    """A development deployment with a running broker.

    conf: {keyword: value} set in credbrokerd.conf (replacing an existing line), e.g.
          {"max_body": "1024", "conn_timeout": "3"}.
    conf_lines: extra lines appended to credbrokerd.conf (e.g. more `identity` lines).
    start: start the daemon now (default True).
    """

    def __init__(self, conf=None, conf_lines=None, start=True):
        self.tmp = tempfile.mkdtemp(prefix="cbtest-", dir=tmproot())
        self.dir = os.path.join(self.tmp, "dep")
        self.proc = None
        self.port = None
        self.url = None
        self._log = None
        self.init_fallback = False
        try:
            self._init()
            self.ca = os.path.join(self.dir, "pki", "ca.pem")
            self.conf_path = os.path.join(self.dir, "credbrokerd.conf")
            self.log_path = os.path.join(self.dir, "credbrokerd.log")
            self.port = free_port()
            self.url = "https://127.0.0.1:%d" % self.port
            self._rewrite(conf or {}, conf_lines or [])
            if start:
                self.start()
        except BaseException:
            self.stop()
            raise

    # --- set-up -------------------------------------------------------------------------
    def _init(self):
        cli = binary("credbroker")
        if os.access(cli, os.X_OK):
            r = subprocess.run([cli, "init", self.dir], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            if r.returncode == 0 and os.path.exists(os.path.join(self.dir, "credbrokerd.conf")):
                return
            sys.stderr.write("cbtest: `credbroker init` failed (rc %d): %s\n"
                             % (r.returncode, r.stderr.decode(errors="replace").strip()))
        # Fallback while the CLI is not ready: PKI with the openssl command, an empty
        # database (credbrokerd migrates it and vault_open initialises its keys) and a
        # random master key. Only for development; init's own tests cover the real thing.
        sys.stderr.write("cbtest: using the openssl fallback instead of `credbroker init`\n")
        self.init_fallback = True
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        _fallback_init(self.dir)

    def _rewrite(self, conf, conf_lines):
        with open(self.conf_path) as f:
            text = f.read()
        text = _set_keyword(text, "listen", "127.0.0.1:%d" % self.port)
        if VALGRIND:
            # valgrind 3.19 does not implement seccomp(2): the daemons would refuse to
            # start with the filter on (the default); memcheck runs turn it off.
            text = _set_keyword(text, "seccomp", "no")
        for k, v in conf.items():
            text = _set_keyword(text, k, v)
        if conf_lines:
            text += "\n".join(conf_lines) + "\n"
        with open(self.conf_path, "w") as f:
            f.write(text)
        pconf = os.path.join(self.dir, "credproxy.conf")
        if os.path.exists(pconf):
            with open(pconf) as f:
                ptext = f.read()
            ptext = _set_keyword(ptext, "broker_url", self.url)
            if VALGRIND:
                ptext = _set_keyword(ptext, "seccomp", "no")
            with open(pconf, "w") as f:
                f.write(ptext)

    # --- the daemon -----------------------------------------------------------------------
    def start(self, extra_args=(), wait=True, env=None):
        """Starts credbrokerd (stderr appended to DIR/credbrokerd.log); waits for /healthz.
        env: variables added to the daemon's environment (e.g. LD_PRELOAD)."""
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("credbrokerd already running")
        self._log = open(self.log_path, "ab")
        e = None
        if env:
            e = dict(os.environ)
            e.update(env)
        self.proc = subprocess.Popen(valgrind_prefix() + [binary("credbrokerd"), "-c", self.conf_path]
                                     + list(extra_args), env=e,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout=START_TIMEOUT):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("credbrokerd exited with %d during start-up; log:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                st, _, _ = self.request("admin", "GET", "/healthz", timeout=2)
                return st == 200
            except (OSError, ssl.SSLError, http.client.HTTPException):
                return False
        wait_until(up, timeout=timeout, interval=0.1, what="credbrokerd /healthz")

    def outcome(self, timeout=30):
        """For a daemon started without waiting that may refuse to start: "exited" once it
        has, or "serving" once /healthz answers 200 (bounded by timeout)."""
        def seen():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return "serving" if self.request("admin", "GET", "/healthz",
                                                 timeout=2)[0] == 200 else None
            except (OSError, ssl.SSLError, http.client.HTTPException):
                return None
        return wait_until(seen, timeout=timeout, what="exit or /healthz")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGTERM, timeout=60.0 if VALGRIND else 15.0):
        """Sends sig and waits (bounded) for the exit; returns the exit status (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        rc = self.proc.returncode
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        return rc

    def restart(self):
        """Stops the daemon (SIGTERM) and starts it again on the same port and directory."""
        self.kill(signal.SIGTERM)
        self.start()

    def stop(self):
        """Stops the daemon and removes the directory (kept when CB_KEEP=1). Idempotent."""
        rc = None
        try:
            rc = self.kill(signal.SIGTERM)
            if VALGRIND and rc == VALGRIND_RC:
                raise AssertionError("valgrind found errors in credbrokerd; log:\n%s" % self.log_tail())
        finally:
            if self.tmp and os.path.isdir(self.tmp):
                if os.environ.get("CB_KEEP"):
                    sys.stderr.write("cbtest: kept %s\n" % self.tmp)
                else:
                    shutil.rmtree(self.tmp, ignore_errors=True)
                    try:   # leave no empty directory behind (distcheck); busy: others use it
                        os.rmdir(os.path.dirname(self.tmp))
                    except OSError:
                        pass
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def log(self):
        """Everything the daemon wrote to stderr so far (str)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    # --- TLS and HTTP ---------------------------------------------------------------------
    def cert(self, role):
        """(cert.pem, key.pem) paths of a role's client certificate."""
        if role not in ROLES:
            raise ValueError("unknown role %r" % (role,))
        return (os.path.join(self.dir, "pki", role + ".pem"),
                os.path.join(self.dir, "pki", role + ".key"))

    def ssl_context(self, who):
        """A client context trusting the deployment CA; who: role, (cert, key) or None."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca)
        ctx.check_hostname = True
        if who is not None:
            pem, key = self.cert(who) if isinstance(who, str) else who
            ctx.load_cert_chain(pem, key)
        return ctx

    def connection(self, who, timeout=REQUEST_TIMEOUT):
        """A kept-alive http.client.HTTPSConnection presenting who's certificate."""
        return http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=self.ssl_context(who), timeout=timeout)

    def tls_socket(self, who, timeout=REQUEST_TIMEOUT):
        """A connected TLS socket (for raw bytes) presenting who's certificate."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            return self.ssl_context(who).wrap_socket(raw, server_hostname="127.0.0.1")
        except BaseException:
            raw.close()
            raise

    def raw_exchange(self, who, data, timeout=10.0, max_bytes=1 << 20):
        """Sends raw bytes over a fresh TLS connection and returns what came back until
        the server closed or timeout (bounded by max_bytes)."""
        s = self.tls_socket(who, timeout=timeout)
        out = b""
        try:
            try:
                s.sendall(data)
            except (ssl.SSLError, ConnectionError):
                # The server may refuse a request (an oversized head, a body past the limit)
                # and close before it has read all of it: a race with this send. Whatever
                # it answered is still read below; a caller that needs an answer asserts it.
                pass
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

    def request(self, who, method, path, body=None, raw=None, headers=None, conn=None,
                timeout=REQUEST_TIMEOUT):
        """One request. who: a role, (cert, key) or None (no client certificate).
        body: a JSON-serialisable object; raw: bytes sent as they are.
        conn: a connection from connection() to reuse (kept open).
        Returns (status, parsed JSON or None, raw response bytes)."""
        hdrs = dict(headers or {})
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        own = conn is None
        c = self.connection(who, timeout=timeout) if own else conn
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            rb = r.read()
            self.last_response = r
            return r.status, parse_json(rb), rb
        finally:
            if own:
                c.close()

    # --- API shortcuts ----------------------------------------------------------------------
    def put_secret(self, name, value, hosts, max_ttl=3600):
        """PUT /v1/secrets/NAME as admin; asserts 201; returns the JSON answer."""
        st, js, raw = self.request("admin", "PUT", "/v1/secrets/" + name,
                                   body={"value": value, "hosts": list(hosts), "max_ttl_s": max_ttl})
        if st != 201:
            raise AssertionError("put_secret %s: %d %r" % (name, st, raw[:300]))
        return js

    def mint(self, sandbox, secret, host, ttl_s=600, max_uses=None, expect=201, who="harness",
             **binding):
        """POST /v1/grants as harness with one binding {secret, host, **binding} (port,
        methods, path_prefix, header, template, inject). Asserts expect; returns the JSON."""
        b = {"secret": secret, "host": host}
        b.update(binding)
        body = {"sandbox_id": sandbox, "ttl_s": ttl_s, "bindings": [b]}
        if max_uses is not None:
            body["max_uses"] = max_uses
        st, js, raw = self.request(who, "POST", "/v1/grants", body=body)
        if st != expect:
            raise AssertionError("mint: %d (expected %d) %r" % (st, expect, raw[:300]))
        return js

    def resolve(self, token, sandbox, host, port=443, method="GET", path="/", who="proxy",
                conn=None):
        """POST /v1/resolve as proxy (token None: token-less). Returns (status, JSON)."""
        body = {"sandbox_id": sandbox, "host": host, "port": port, "method": method, "path": path}
        if token is not None:
            body["token"] = token
        st, js, _ = self.request(who, "POST", "/v1/resolve", body=body, conn=conn)
        return st, js

    def audit(self, after=0, limit=1000):
        """Every audit record after seq `after`, via GET /v1/audit as admin (paged, bounded)."""
        out = []
        for _ in range(10000):
            st, js, raw = self.request("admin", "GET", "/v1/audit?after=%d&limit=%d" % (after, limit))
            if st != 200:
                raise AssertionError("audit: %d %r" % (st, raw[:300]))
            recs = js["records"]
            out.extend(recs)
            if len(recs) < limit:
                return out
            after = recs[-1]["seq"]
        raise AssertionError("audit: too many pages")

    def cli(self, *args, input=None, timeout=60, env=None):
        """Runs `credbroker -d DIR ARGS...`; returns the CompletedProcess (bytes stdout/stderr)."""
        if isinstance(input, str):
            input = input.encode()
        e = dict(os.environ)
        if env:
            e.update(env)
        return subprocess.run([binary("credbroker"), "-d", self.dir] + [str(a) for a in args],
                              input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=e)

    def mkcert(self, name, usage="client", cn=None, uri=None, dns=None, ip=None, expired=False,
               self_signed=False, ca=None):
        """Makes a certificate with $CB_BUILDDIR/tests/mkcert into DIR/hostile/NAME.{pem,key},
        issued by our CA unless ca=(ca.pem, ca.key) or self_signed. Returns (pem, key)."""
        outdir = os.path.join(self.dir, "hostile")
        os.makedirs(outdir, exist_ok=True)
        prefix = os.path.join(outdir, name)
        if ca is None:
            ca = (self.ca, os.path.join(self.dir, "pki", "ca.key"))
        args = [binary("tests/mkcert"), "--usage", usage, "--cn", cn or name, "--out", prefix]
        if self_signed:
            args.append("--self-signed")
        else:
            args += ["--ca", ca[0], "--ca-key", ca[1]]
        if uri:
            args += ["--uri", uri]
        if dns:
            args += ["--dns", dns]
        if ip:
            args += ["--ip", ip]
        if expired:
            args.append("--expired")
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise AssertionError("mkcert failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
        return prefix + ".pem", prefix + ".key"


class FakeBroker:
    """A TLS server with the deployment's server certificate that answers every request
    with whatever the test sets: `answer`, raw bytes, or a function of the request's body
    that returns them. A list of bytes sends each item as its own TLS record (a float in
    it pauses that many seconds); records with no pause between them leave in one TCP
    segment (TCP_CORK), so that they arrive together. Each connection is served on its own
    thread."""

    def __init__(self, d):
        self.answer = b""
        self.requests = 0
        self.connections = 0
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d.dir, "pki", "server.pem"),
                            os.path.join(d.dir, "pki", "server.key"))
        ctx.load_verify_locations(d.ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = "https://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                raw, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve_one, args=(raw,), daemon=True).start()

    def serve_one(self, raw):
        try:
            raw.settimeout(10)
            conn = self.ctx.wrap_socket(raw, server_side=True)
            # Answers without "Connection: close" keep the connection for the next
            # request (bounded).
            for _ in range(10000):
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                if not head:
                    break
                hdr, _, body = head.partition(b"\r\n\r\n")
                for line in hdr.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        need = int(line.split(b":")[1])
                        while len(body) < need:
                            chunk = conn.recv(4096)
                            if not chunk:
                                break
                            body += chunk
                with self.lock:
                    self.requests += 1
                answer = self.answer(body) if callable(self.answer) else self.answer
                parts = answer if isinstance(answer, list) else [answer]
                for part in parts:
                    if isinstance(part, float):
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                        time.sleep(part)
                    else:
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                        conn.sendall(part)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                if any(b"Connection: close" in p for p in parts if isinstance(p, bytes)):
                    break
            conn.close()
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            raw.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _fallback_cert(pki, name, ca, usage, cn, san):
    key = os.path.join(pki, name + ".key")
    csr = os.path.join(pki, name + ".csr")
    ext = os.path.join(pki, name + ".ext")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    os.chmod(key, 0o600)
    _openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr)
    with open(ext, "w") as f:
        if usage == "ca":
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        else:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
            f.write("extendedKeyUsage=%s\nsubjectAltName=%s\n" % (usage, san))
    if ca is None:
        _openssl("x509", "-req", "-in", csr, "-signkey", key, "-days", "3650", "-sha256",
                 "-extfile", ext, "-out", os.path.join(pki, name + ".pem"))
    else:
        _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                 "-days", "365", "-sha256", "-extfile", ext, "-out", os.path.join(pki, name + ".pem"))
    os.unlink(csr)
    os.unlink(ext)


def _fallback_init(d):
    """What `credbroker init` makes, with the openssl command (development fallback only)."""
    pki = os.path.join(d, "pki")
    os.makedirs(pki, mode=0o700)
    _fallback_cert(pki, "ca", None, "ca", "credbroker dev CA", None)
    ca = (os.path.join(pki, "ca.pem"), os.path.join(pki, "ca.key"))
    _fallback_cert(pki, "server", ca, "serverAuth", "localhost", "DNS:localhost,IP:127.0.0.1")
    for role in ROLES:
        _fallback_cert(pki, role, ca, "clientAuth", role,
                       "URI:spiffe://credbroker.dev/" + role)
    _fallback_cert(pki, "sandbox-ca", None, "ca", "credbroker sandbox CA", None)
    fd = os.open(os.path.join(d, "master.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (os.urandom(32).hex() + "\n").encode())
    os.close(fd)
    sqlite3.connect(os.path.join(d, "credbroker.db")).close()
    with open(os.path.join(d, "credbrokerd.conf"), "w") as f:
        f.write("listen 127.0.0.1:8443\ndatabase credbroker.db\nmaster_key master.key\n"
                "tls_cert pki/server.pem\ntls_key pki/server.key\nclient_ca pki/ca.pem\n"
                "identity spiffe://credbroker.dev/harness role harness max_ttl 3600 secrets *\n"
                "identity spiffe://credbroker.dev/proxy role proxy\n"
                "identity spiffe://credbroker.dev/admin role admin\n")
    with open(os.path.join(d, "credproxy.conf"), "w") as f:
        f.write("listen 127.0.0.1:3128\nbroker_url https://127.0.0.1:8443\nbroker_ca pki/ca.pem\n"
                "cert pki/proxy.pem\nkey pki/proxy.key\nsandbox_ca pki/sandbox-ca.pem\n"
                "sandbox_ca_key pki/sandbox-ca.key\n")


def main():
    """Runs the unittest cases of __main__ and exits 0 only when all passed."""
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    r = prog.result
    ok = r.wasSuccessful() and r.testsRun > 0
    sys.exit(0 if ok else 1)
