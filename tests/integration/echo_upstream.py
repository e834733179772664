#!/usr/bin/env python3
"""echo_upstream.py: a local HTTPS (or plain HTTP) upstream that echoes what it received.

Used by tests/integration/test_proxy.py and by the demo. Python standard library only.

    echo_upstream.py --cert F --key F [--listen 127.0.0.1] [--port 0] [--plain] [--log FILE]

prints "PORT <n>" on stdout once it listens; --log FILE appends each request received
(method, path, headers) as a JSON line. Answers, by the last segment of the path:
  any path                         JSON {method, path, headers: [[name, value], ...],
                                   body_sha256, body_len, conn_id, conn_requests}
  /echo-credential-header          the same, and the received Authorization value in the
                                   response header X-Echo-Authorization
  /echo-credential-header-name     the same, with a header named X-Echo-<the last word of
                                   the received Authorization value>
  /echo-credential-chunked?split=N a chunked body "authorization=<value>\\n" whose first
                                   chunk ends at offset N
  /download?bytes=N[&chunked=1]    N deterministic pseudo-random bytes (download_bytes())
  /upload                          the JSON above (body_sha256 of what it received)
  /status?code=N                   an empty answer with that status
  /echo-basic-password             the decoded password of Basic credentials in the body
  /gzip-echo                       the Authorization value in a gzip body, always
  /short-idle                      the JSON above; the connection then closes when idle 0.3 s
  /204-with-body                   a 204 followed, in the same write, by bytes that look like
                                   another answer (STALE_ANSWER): a broken upstream
  /early-hints                     a 103 Early Hints, then the JSON above
  Upgrade: websocket               101, then echoes raw bytes until the peer closes
                                   (/ws-ticks?n=N&ms=M: first N bytes "t", M ms apart)
  /git/...                         git's smart HTTP (git http-backend as a CGI) over the bare
                                   repositories in serve(git_root=DIR); without an
                                   Authorization header, 401 with WWW-Authenticate: Basic
In-process, received(id) returns the headers of the request that carried X-Test-Id: id:
what the upstream really got, whatever the proxy did to the response (for /git/ requests,
which all carry git's one extra header: the list of every such request's headers).

make_certs(dir) makes a throwaway CA and a server certificate for 127.0.0.1 and
localhost with the openssl command-line tool (test-only).
"""
import argparse
import base64
import gzip
import hashlib
import http.server
import itertools
import json
import os
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

MAX_BODY = 1 << 30
MAX_GIT_BODY = 64 << 20
_conn_ids = itertools.count(1)
# In-process use (tests): what the upstream received, by the request's X-Test-Id header.
_received = {}
_received_lock = threading.Lock()


CLOSE_DELIMITED_BODY = b"a body without a length, ended by the close\n" * 20
STALE_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTALE\n"


def received(test_id):
    """The [[name, value], ...] headers of the request that carried X-Test-Id: test_id, or None."""
    with _received_lock:
        return _received.get(test_id)


def download_bytes(n):
    """The deterministic body of /download?bytes=n."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(b"credproxy-download-%d" % counter).digest()
        counter += 1
    return bytes(out[:n])


def make_certs(d):
    """Writes d/upstream-ca.pem, d/upstream.pem, d/upstream.key; returns their paths."""
    os.makedirs(d, exist_ok=True)
    ca_key = os.path.join(d, "upstream-ca.key")
    ca = os.path.join(d, "upstream-ca.pem")
    key = os.path.join(d, "upstream.key")
    csr = os.path.join(d, "upstream.csr")
    crt = os.path.join(d, "upstream.pem")
    ext = os.path.join(d, "upstream.ext")

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=echo-upstream test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-upstream"

    def setup(self):
        super().setup()
        self.conn_id = next(_conn_ids)
        self.conn_requests = 0
        self.prev_auth = ""     # the Authorization of this connection's last request

    def log_message(self, fmt, *args):
        if os.environ.get("ECHO_UPSTREAM_VERBOSE"):
            sys.stderr.write("echo-upstream: " + (fmt % args) + "\n")

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        h = hashlib.sha256()
        n = 0
        if te.lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left > 0:
                    b = self.rfile.read(min(left, 65536))
                    if not b:
                        raise ConnectionError("truncated chunk")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length", "0") or "0")
            if left > MAX_BODY:
                raise ValueError("body too large")
            while left > 0:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    raise ConnectionError("truncated body")
                h.update(b)
                n += len(b)
                left -= len(b)
        return h.hexdigest(), n

    def send_body(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_ws(self, mode, q):
        """101, then echoes. /ws-echo-credential first sends "auth=<Authorization>\n" in
        two writes 50 ms apart, split inside the credential; /ws-tail first sends "tail:"
        and the first byte of the Authorization value, then waits for the client;
        /ws-ticks?n=N&ms=M first sends N bytes "t", one every M ms (a push stream)."""
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        auth = self.headers.get("Authorization", "").encode()
        if mode == "/ws-echo-credential":
            first = b"auth=" + auth[:len(auth) // 2]
            self.connection.sendall(first)
            time.sleep(0.05)
            self.connection.sendall(auth[len(auth) // 2:] + b"\n")
        elif mode == "/ws-tail":
            self.connection.sendall(b"tail:" + auth[:1])
        elif mode == "/ws-ticks":
            for _ in range(min(int(q.get("n", ["10"])[0]), 1000)):
                time.sleep(min(int(q.get("ms", ["100"])[0]), 10000) / 1000)
                self.connection.sendall(b"t")
        while True:
            b = self.connection.recv(65536)
            if not b:
                break
            self.connection.sendall(b)

    def read_body_bytes(self, limit):
        """The request body itself (Content-Length or chunked), at most limit bytes."""
        out = bytearray()
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                if len(out) + size > limit:
                    raise ValueError("body too large")
                out += self.rfile.read(size)
                self.rfile.readline(16)
        else:
            n = int(self.headers.get("Content-Length", "0") or "0")
            if n > limit:
                raise ValueError("body too large")
            out += self.rfile.read(n)
        return bytes(out)

    def handle_git(self, u):
        """git's smart HTTP through `git http-backend` (CGI), the answer sent with a length."""
        body = self.read_body_bytes(MAX_GIT_BODY)
        tid = self.headers.get("X-Test-Id")
        if tid:
            with _received_lock:
                _received.setdefault(tid, []).append([[k, v] for k, v in self.headers.items()])
        auth = self.headers.get("Authorization", "")
        if not auth:
            self.send_body(401, b"credentials needed\n", "text/plain",
                           [("WWW-Authenticate", 'Basic realm="git"')])
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.server.git_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": u.path[len("/git"):],
            "QUERY_STRING": u.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "sandbox",
            "REMOTE_ADDR": self.client_address[0],
        }
        for h in ("Content-Encoding", "Git-Protocol"):
            if self.headers.get(h):
                env["HTTP_" + h.upper().replace("-", "_")] = self.headers[h]
        r = subprocess.run(["git", "http-backend"], input=body, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
        head, _, out = r.stdout.partition(b"\r\n\r\n")
        status, extra, ctype = 200, [], "application/octet-stream"
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k.lower() == "content-type":
                ctype = v.strip()
            elif k:
                extra.append((k, v.strip()))
        self.send_body(status, out, ctype, extra)

    def handle_any(self):
        self.conn_requests += 1
        u = urllib.parse.urlsplit(self.path)
        if u.path.startswith("/git/") and self.server.git_root:
            self.handle_git(u)
            return
        q = urllib.parse.parse_qs(u.query)
        # modes go by the last path segment, so /api/echo-credential-header works too
        mode = "/" + u.path.rsplit("/", 1)[-1]
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.handle_ws(mode, q)
            return
        sha, n = self.read_body()
        if self.server.received_log:
            with _received_lock, open(self.server.received_log, "a") as f:
                f.write(json.dumps({"method": self.command, "path": self.path,
                                    "headers": [[k, v] for k, v in self.headers.items()]}) + "\n")
        tid = self.headers.get("X-Test-Id")
        if tid:
            with _received_lock:
                if len(_received) < 100000:
                    _received[tid] = [[k, v] for k, v in self.headers.items()]
        auth = self.headers.get("Authorization", "")
        prev, self.prev_auth = self.prev_auth, auth
        if mode == "/previous-credential":
            # what this connection's previous request carried (an upstream that keeps it)
            self.send_body(200, ("previous=%s\n" % prev).encode(), "text/plain")
            return
        if mode == "/echo-credential-chunked":
            body = ("authorization=%s\n" % auth).encode()
            split = max(0, min(len(body), int(q.get("split", ["0"])[0])))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[:split], body[split:]):
                if part:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if mode == "/download":
            data = download_bytes(int(q.get("bytes", ["0"])[0]))
            if q.get("chunked", ["0"])[0] == "1":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(data), 65536):
                    part = data[i:i + 65536]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_body(200, data, "application/octet-stream")
            return
        if mode == "/echo-basic-password":
            # the password of Basic credentials, decoded, in the body
            pw = ""
            if auth.lower().startswith("basic "):
                pw = base64.b64decode(auth[6:].strip()).decode(errors="replace").partition(":")[2]
            self.send_body(200, ("password=%s\n" % pw).encode(), "text/plain")
            return
        if mode == "/gzip-echo":
            # compressed whatever the client accepts (a scrubbing proxy must refuse it)
            doc = json.dumps({"authorization": auth}).encode()
            self.send_body(200, gzip.compress(doc), extra=[("Content-Encoding", "gzip")])
            return
        if mode == "/close-delimited":
            # no length: the close ends the body, and Python's ssl closes without
            # close_notify (as many servers do)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(CLOSE_DELIMITED_BODY)
            self.close_connection = True
            return
        if mode == "/204-with-body":
            # a 204 has no body, whatever follows it: the next answer would start there
            self.wfile.write(b"HTTP/1.1 204 No Content\r\nServer: echo-upstream\r\n\r\n"
                             + STALE_ANSWER)
            return
        if mode == "/early-hints":
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")
        if mode == "/short-idle":
            # this connection closes after 0.3 s without a request (kept-alive reuse tests)
            self.connection.settimeout(0.3)
        if mode == "/status":
            self.send_body(int(q.get("code", ["200"])[0]), b"", "text/plain")
            return
        doc = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_sha256": sha,
            "body_len": n,
            "conn_id": self.conn_id,
            "conn_requests": self.conn_requests,
        }
        extra = []
        if mode == "/echo-credential-header":
            extra.append(("X-Echo-Authorization", auth))
        if mode == "/echo-credential-header-name":
            extra.append(("X-Echo-" + auth.split(" ")[-1], "1"))
        self.send_body(200, json.dumps(doc).encode(), extra=extra)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    received_log = None
    git_root = None


def serve(cert, key, listen="127.0.0.1", port=0, plain=False, received_log=None, git_root=None):
    """Starts a server in a background thread; returns (server, port)."""
    srv = Server((listen, port), Handler)
    srv.received_log = received_log
    srv.git_root = git_root
    if not plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv, srv.server_address[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--plain", action="store_true", help="plain HTTP, no TLS")
    ap.add_argument("--log", metavar="FILE",
                    help="append one JSON line per request (method, path, headers) to FILE: "
                         "what the upstream really received, whatever the proxy sends back")
    ap.add_argument("--make-certs", metavar="DIR",
                    help="make a throwaway CA and server certificate in DIR and exit")
    a = ap.parse_args()
    if a.make_certs:
        for p in make_certs(a.make_certs):
            print(p)
        return 0
    if not a.plain and not (a.cert and a.key):
        ap.error("--cert and --key are required unless --plain")
    srv, port = serve(a.cert, a.key, a.listen, a.port, a.plain, a.log)
    print("PORT %d" % port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
