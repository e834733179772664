#!/usr/bin/env python3
"""test_libclient: every libcredbroker call against the real daemon.

The calls are made by a C program, tests/libclient_it (tests/libclient_it.c), linked
against the built libcredbroker; it prints one "ok"/"FAIL" line per check. This test
runs it on a fresh deployment and checks that every check ran and passed.
"""

import binascii
import json
import os
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

# Every library call appears in at least one check name below.
EXPECTED = [
    "health", "secret put gives a version (1 on a fresh deployment)",
    "secret put on an existing name gives the next version",
    "secret list names both, no value", "secret show: metadata only", "grant mint",
    "proxy may not mint: 403", "grant show: no token, no value",
    "resolve: Authorization: Bearer <latest version>", "token-less resolve injects",
    "grant revoke", "resolve after revoke: revoked", "sandbox revoke counts one grant",
    "key rotate data", "key rotate signing", "audit get: records, no token, no value",
    "audit verify: intact", "secret delete", "wrong CA: connect error naming it",
    "broker down: connect error", "missing certificate: I/O error naming the file",
    "non-blocking resolve: a step before a start is a usage error",
    "non-blocking resolve: a finish before the answer is a usage error",
    "non-blocking resolve: Authorization: Bearer <latest version>",
    "non-blocking resolve refused: sandbox_mismatch, connection kept",
    "non-blocking resolve: abort closes the connection; no start without one",
]


class TestLibClient(cbtest.TestCase):
    def test_every_call(self):
        with cbtest.Deployment() as d:
            down = "https://127.0.0.1:%d" % cbtest.free_port()
            r = subprocess.run([cbtest.binary("tests/libclient_it"), d.dir, d.url, down],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            o = r.stdout.decode(errors="replace")
            self.assertEqual(r.returncode, 0, o + r.stderr.decode(errors="replace")
                             + "\ndaemon log:\n" + d.log_tail())
            self.assertNotIn("FAIL", o)
            passed = [l[len("ok - "):] for l in o.splitlines() if l.startswith("ok - ")]
            for name in EXPECTED:
                self.assertIn(name, passed)
            self.assertRegex(o, r"\n\d+ checks, 0 failed\n$")
            # The library never makes the daemon log a token or a secret value.
            self.assertNotIn("cbt_", d.log())
            self.assertNotIn("ghp_second", d.log())


def http(status, body, extra=b"", length=None):
    if isinstance(body, str):
        body = body.encode()
    n = len(body) if length is None else length
    return (b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n%s\r\n" % (status, n, extra)) + body


def chunked(status, total):
    out = [b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % status,
           b"1\r\n{\r\n"]
    piece = b" " * 65536
    sent = 1
    while sent < total:
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        sent += len(piece)
    out.append(b"1\r\n}\r\n0\r\n\r\n")
    return b"".join(out)


OK, REFUSED, PROTOCOL, SERVER = 0, -1, -4, -5
GRANT = '{"grant_id":"g","token":"cbt_x","expires_at":"t"}'
RESOLVED = '{"headers":[{"name":"Authorization","value":"Bearer v"}],"expires_in":10}'
RAW_200 = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
# kept alive (no "Connection: close"): the broker's close cannot stand in for the rest
KEPT_HEAD = RAW_200 + b"Content-Length: %d\r\n\r\n" % len(RESOLVED)
KEPT_BODY = RESOLVED.encode()
HOSTILE = [
    # (name, answer, call, expected rc)
    ("sane grant (the fake works)", http(201, GRANT), "mint", OK),
    ("oversized resolve", http(200, '{"headers":[],"expires_in":1}' + " " * (2 << 20)),
     "resolve", PROTOCOL),
    ("oversized chunked", chunked(200, 3 << 20), "show", PROTOCOL),
    ("oversized error answer", http(403, '{"error":"x"}' + " " * (2 << 20)), "show", PROTOCOL),
    ("truncated JSON", http(200, '{"headers":[{"name":"A","value":"v"}'), "resolve", PROTOCOL),
    ("body shorter than Content-Length", http(200, '{"headers":[]', length=500), "resolve",
     PROTOCOL),
    ("HTML page", http(502, "<html>Bad Gateway</html>"), "mint", SERVER),
    ("HTML 200", http(200, "<html>hello</html>"), "mint", PROTOCOL),
    ("wrong-typed grant", http(201, '{"grant_id":1,"token":"cbt_x","expires_at":"t"}'), "mint",
     PROTOCOL),
    ("token without prefix", http(201, GRANT.replace("cbt_x", "abc")), "mint", PROTOCOL),
    ("duplicate keys", http(201, GRANT[:-1] + ',"token":"cbt_y"}'), "mint", PROTOCOL),
    ("CRLF in a header value", http(200, '{"headers":[{"name":"A","value":"v\\r\\nX: 1"}],'
                                          '"expires_in":1}'), "resolve", PROTOCOL),
    ("version as a string", http(201, '{"name":"s","version":"2"}'), "put", PROTOCOL),
    ("negative revoked count", http(200, '{"sandbox_id":"sbx","revoked":-3}'), "sandbox",
     PROTOCOL),
    ("array instead of object", http(200, "[]"), "show", PROTOCOL),
    ("empty 200", http(200, ""), "show", PROTOCOL),
    ("redirect is not followed", http(302, "", b"Location: https://127.0.0.1:1/\r\n"), "health",
     PROTOCOL),
    ("4xx without JSON", http(403, "forbidden"), "show", REFUSED),
    ("5xx", http(500, '{"error":"internal_error"}'), "put", SERVER),
    ("not HTTP at all", b"\x00\x01garbage\r\n\r\n", "health", PROTOCOL),
    # cbc_resolve reads its answer itself (connect-only curl handle): HTTP/1.x with one
    # Content-Length, bounded head and body
    ("sane resolve (the fake works)", http(200, RESOLVED), "resolve", OK),
    ("resolve refused", http(403, '{"error":"revoked"}'), "resolve", REFUSED),
    ("chunked resolve", chunked(200, 100), "resolve", PROTOCOL),
    ("resolve without Content-Length", RAW_200 + b"Connection: close\r\n\r\n" +
     RESOLVED.encode(), "resolve", PROTOCOL),
    ("resolve Content-Length not a number", RAW_200 + b"Content-Length: 2x\r\n\r\n" +
     RESOLVED.encode(), "resolve", PROTOCOL),
    ("resolve Content-Length negative", RAW_200 + b"Content-Length: -1\r\n\r\n" +
     RESOLVED.encode(), "resolve", PROTOCOL),
    ("resolve two different Content-Lengths", RAW_200 + b"Content-Length: %d\r\n"
     b"Content-Length: 3\r\n\r\n%s" % (len(RESOLVED), RESOLVED.encode()), "resolve", PROTOCOL),
    ("resolve head over 16 KiB", RAW_200 + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n",
     "resolve", PROTOCOL),
    ("resolve head never ends", RAW_200 + b"X-Pad: " + b"a" * 300000, "resolve", PROTOCOL),
    ("resolve status line not HTTP/1.x", b"HTTP/2 200\r\nContent-Length: 2\r\n\r\n{}",
     "resolve", PROTOCOL),
    ("resolve status line garbage", b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}",
     "resolve", PROTOCOL),
    # one answer in several TLS records, as libmicrohttpd sends head and body: the lean
    # path reads ahead, so records that arrive together must all be read before it waits
    ("resolve head and body in two records", [KEPT_HEAD, KEPT_BODY], "resolve", OK),
    ("resolve in four records, split inside the head and the body",
     [KEPT_HEAD[:10], KEPT_HEAD[10:], KEPT_BODY[:7], KEPT_BODY[7:]], "resolve", OK),
    ("resolve body a moment after its head", [KEPT_HEAD, 0.3, KEPT_BODY], "resolve", OK),
]


class TestHostileBroker(cbtest.TestCase):
    """Malformed, truncated, oversized and wrong-typed answers over a real TLS connection:
    each is the documented error, never a crash (run the ASan build too)."""

    def test_hostile_answers(self):
        with cbtest.Deployment(start=False) as d:
            fake = cbtest.FakeBroker(d)
            try:
                # every hostile resolve answer again through the non-blocking resolve
                cases = HOSTILE + [(name + " (non-blocking)", answer, "aresolve", want)
                                   for name, answer, call, want in HOSTILE if call == "resolve"]
                for name, answer, call, want in cases:
                    fake.answer = answer
                    r = subprocess.run([cbtest.binary("tests/libclient_it"), "--hostile", d.dir,
                                        fake.url, call, str(want)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, timeout=60)
                    o = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
                    self.assertEqual(r.returncode, 0, "%s: %s" % (name, o))
                    self.assertNotIn("cbt_x", o.split("message:")[-1], name)
                self.assertGreaterEqual(fake.requests, len(cases))
            finally:
                fake.close()


class TestNoResidue(cbtest.TestCase):
    """A resolve answer carries a real credential: once the result is freed, no copy of it
    is left in the client's memory, the TLS layer's read buffer of the connection kept
    open included (libclient_it --residue scans its own writable memory)."""

    def test_value_wiped_after_resolve(self):
        value = "Bearer residue_" + binascii.hexlify(os.urandom(16)).decode()
        body = json.dumps({"headers": [{"name": "Authorization", "value": value}],
                           "expires_in": 10}).encode()
        head = RAW_200 + b"Content-Length: %d\r\n\r\n" % len(body)
        with cbtest.Deployment(start=False) as d:
            fake = cbtest.FakeBroker(d)
            try:
                # kept alive, head and body apart, as libmicrohttpd answers
                fake.answer = [head, body]
                for call in ("resolve", "aresolve"):
                    r = subprocess.run([cbtest.binary("tests/libclient_it"), "--residue", d.dir,
                                        fake.url, call, binascii.hexlify(value.encode()).decode()],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       timeout=60)
                    o = r.stdout.decode(errors="replace")
                    self.assertEqual(r.returncode, 0, "%s: %s" % (call, o))
                    self.assertIn("ok - resolve with the value", o, call)
                    self.assertIn("copies left: 0\n", o, call)
            finally:
                fake.close()


class TestKeepAlive(cbtest.TestCase):
    def test_one_connection_for_many_requests(self):
        with cbtest.Deployment(start=False) as d:
            fake = cbtest.FakeBroker(d)
            try:
                fake.answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 15\r\n\r\n{\"status\":\"ok\"}")
                r = subprocess.run([cbtest.binary("tests/libclient_it"), "--keepalive", d.dir,
                                    fake.url, "20"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=60)
                self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
                self.assertEqual(fake.requests, 20)
                self.assertEqual(fake.connections, 1)
            finally:
                fake.close()

    def test_against_the_daemon(self):
        with cbtest.Deployment() as d:
            r = subprocess.run([cbtest.binary("tests/libclient_it"), "--keepalive", d.dir,
                                d.url, "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
            self.assertEqual(r.stdout.decode().count("ok - health"), 50)


if __name__ == "__main__":
    cbtest.main()
