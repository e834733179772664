"""Malformed requests get a 4xx JSON answer and the daemon keeps serving (issue 3).

Invalid JSON, duplicate keys, huge bodies (413, announced and chunked), wrong types,
unknown and missing fields, bad values, Content-Length with Transfer-Encoding (raw bytes
over a TLS socket), wrong methods, bad query parameters, garbage HTTP. No answer may echo
the secret value that was sent.
"""

import json
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

MAX_BODY = 16384


def put_body(value="v", hosts=("api.example.com",), ttl=600, **extra):
    b = {"value": value, "hosts": list(hosts), "max_ttl_s": ttl}
    b.update(extra)
    return b


class Malformed(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = cbtest.Deployment(conf={"max_body": str(MAX_BODY)})
        cls.d.put_secret("base", "base-value", ["api.example.com"])

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def serving(self):
        st, js, _ = self.d.request("admin", "GET", "/healthz")
        self.assertEqual((st, js), (200, {"status": "ok"}), self.d.log_tail())

    def expect(self, who, method, path, want_status, want_code, raw=None, body=None, field=None,
               headers=None):
        st, js, rb = self.d.request(who, method, path, raw=raw, body=body, headers=headers)
        self.assertEqual(st, want_status, rb[:200])
        self.assertIsInstance(js, dict, rb[:200])
        if want_code is not None:
            self.assertEqual(js.get("error"), want_code, rb[:200])
        if field is not None:
            self.assertEqual(js.get("field"), field, rb[:200])
        self.assertEqual(self.d.last_response.getheader("Content-Type"), "application/json")
        self.assertEqual(self.d.last_response.getheader("Cache-Control"), "no-store")
        self.serving()
        return rb

    def test_invalid_json(self):
        for raw, code in [(b"{", "bad_json"), (b"nope", "bad_json"), (b"", "bad_json"),
                          (b"[1, 2]", "not_an_object"), (b"\"str\"", "not_an_object"),
                          (b'{"value": "x"} trailing', "bad_json"),
                          (b'{"value": "a\\u0000b", "hosts": ["h.example"]}', "bad_json"),
                          (b"\xff\xfe{}", "bad_json"),
                          (b"[" * 200 + b"]" * 200, None)]:
            with self.subTest(raw=raw[:30]):
                self.expect("admin", "PUT", "/v1/secrets/m1", 400, code, raw=raw)
        # The same on the grant and resolve routes (dispatch refuses before the handler).
        self.expect("harness", "POST", "/v1/grants", 400, "bad_json", raw=b"{,}")
        self.expect("proxy", "POST", "/v1/resolve", 400, "bad_json", raw=b"")
        self.expect("admin", "POST", "/v1/keys/rotate", 400, "not_an_object", raw=b"[]")

    def test_duplicate_keys(self):
        secret = "dup-" + secrets.token_hex(8)
        raw = ('{"value": "%s", "value": "other", "hosts": ["a.example"]}' % secret).encode()
        rb = self.expect("admin", "PUT", "/v1/secrets/m2", 400, "duplicate_key", raw=raw)
        self.assertNotIn(secret.encode(), rb)
        self.expect("admin", "POST", "/v1/keys/rotate", 400, "duplicate_key",
                    raw=b'{"kind": "data", "kind": "signing"}')
        self.expect("harness", "POST", "/v1/grants", 400, "duplicate_key",
                    raw=b'{"sandbox_id": "a", "sandbox_id": "b"}')

    def test_huge_bodies(self):
        big = b'{"value": "' + b"x" * (MAX_BODY * 4) + b'"}'
        self.expect("admin", "PUT", "/v1/secrets/m3", 413, "body_too_large", raw=big)
        # Exactly at the limit is read (and refused for its content, not its size).
        at = b'{"value": "' + b"x" * (MAX_BODY - 13) + b'"}'
        self.assertEqual(len(at), MAX_BODY)
        st, js, _ = self.d.request("admin", "PUT", "/v1/secrets/m3", raw=at)
        self.assertEqual(st, 400)
        self.serving()
        # Chunked: no length up front, counted while reading.
        chunk = b"a" * 1024
        body = b"".join(b"400\r\n" + chunk + b"\r\n" for _ in range(MAX_BODY // 1024 + 2)) + b"0\r\n\r\n"
        req = (b"PUT /v1/secrets/m3 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + body)
        out = self.d.raw_exchange("admin", req)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:100])
        self.assertIn(b'{"error":"body_too_large"}', out)
        self.serving()
        # An announced length far beyond the limit is refused before any body is sent.
        req = (b"PUT /v1/secrets/m3 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\n")
        out = self.d.raw_exchange("admin", req)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:100])
        self.serving()

    def test_wrong_types(self):
        cases = [
            (put_body(value=5), "wrong_type", "value"),
            (put_body(value=None), "wrong_type", "value"),
            ({"value": "v", "hosts": "api.example.com"}, "wrong_type", "hosts"),
            (put_body(hosts=[1]), "wrong_type", "hosts"),
            (put_body(ttl="3600"), "wrong_type", "max_ttl_s"),
            (put_body(ttl=1.5), "wrong_type", "max_ttl_s"),
            (put_body(ttl=True), "wrong_type", "max_ttl_s"),
        ]
        for body, code, field in cases:
            with self.subTest(body=body):
                self.expect("admin", "PUT", "/v1/secrets/m4", 400, code, body=body, field=field)
        self.expect("admin", "POST", "/v1/keys/rotate", 400, "wrong_type", body={"kind": 1})

    def test_unknown_and_missing_fields(self):
        self.expect("admin", "PUT", "/v1/secrets/m5", 400, "unknown_field",
                    body=put_body(extra=1), field="extra")
        self.expect("admin", "PUT", "/v1/secrets/m5", 400, "missing_field",
                    body={"value": "v", "max_ttl_s": 5})
        self.expect("admin", "PUT", "/v1/secrets/m5", 400, "missing_field",
                    body={"hosts": ["a.example"]})
        self.expect("admin", "POST", "/v1/keys/rotate", 400, "missing_field", body={})
        self.expect("admin", "POST", "/v1/keys/rotate", 400, "unknown_field",
                    body={"kind": "data", "force": True})
        # Grant bodies are validated by grant.c: 400 with some json.h code.
        st, js, _ = self.d.request("harness", "POST", "/v1/grants", body={"sandbox_id": "x"})
        self.assertEqual(st, 400)
        st, js, _ = self.d.request("harness", "POST", "/v1/grants", body={"bogus": 1})
        self.assertEqual(st, 400)
        self.serving()

    def test_bad_values_never_echoed(self):
        for value in ["line1\nline2", "cr\rhere", "esc\x1b[2J", "del\x7f", "x" * 8193, ""]:
            with self.subTest(n=len(value)):
                marker = value if len(value) < 100 else value[:50]
                rb = self.expect("admin", "PUT", "/v1/secrets/m6", 400, "invalid_value",
                                 body=put_body(value=value), field="value")
                if marker:
                    self.assertNotIn(marker.encode(), rb)
        secret = "never-" + secrets.token_hex(8)
        for body in [put_body(value=secret, hosts=[]), put_body(value=secret, hosts=["bad host"]),
                     put_body(value=secret, ttl=0), put_body(value=secret, ttl=10 ** 12)]:
            with self.subTest(body={k: v for k, v in body.items() if k != "value"}):
                st, js, rb = self.d.request("admin", "PUT", "/v1/secrets/m6", body=body)
                self.assertEqual(st, 400, rb)
                self.assertNotIn(secret.encode(), rb)
        self.expect("admin", "PUT", "/v1/secrets/-bad", 400, "invalid_name", body=put_body())
        self.expect("admin", "POST", "/v1/keys/rotate", 400, "invalid_value", body={"kind": "all"},
                    field="kind")
        st, _, _ = self.d.request("admin", "GET", "/v1/secrets/m6")
        self.assertEqual(st, 404)
        self.assertNotIn(secret, self.d.log())

    def test_cl_and_te(self):
        body = b'{"kind": "signing"}'
        reqs = [
            b"POST /v1/keys/rotate HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), len(body), body),
            b"POST /v1/keys/rotate HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 3\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
            b"POST /v1/keys/rotate HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), len(body), body),
        ]
        for req in reqs:
            with self.subTest(req=req[:80]):
                out = self.d.raw_exchange("admin", req)
                self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:200])
                if b"Transfer-Encoding" in req:
                    self.assertIn(b'{"error":"ambiguous_length"}', out)
                self.serving()

    def test_transfer_codings(self):
        body = b'{"kind": "signing"}'
        for te in [b"gzip", b"gzip, chunked", b"chunked, identity", b"identity", b"chunked;x=1"]:
            with self.subTest(te=te):
                req = (b"POST /v1/keys/rotate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te +
                       b"\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
                out = self.d.raw_exchange("admin", req, timeout=5)
                self.assertTrue(out.startswith(b"HTTP/1.1 501"), out[:100])
                self.assertIn(b'{"error":"unsupported_transfer_encoding"}', out)
        req = (b"POST /v1/keys/rotate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Transfer-Encoding: Chunked\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        out = self.d.raw_exchange("admin", req, timeout=10)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:100])
        self.serving()

    def test_host_header(self):
        for req in [b"GET /healthz HTTP/1.1\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"]:
            with self.subTest(req=req):
                out = self.d.raw_exchange("admin", req)
                self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:100])
                self.assertIn(b'{"error":"bad_host_header"}', out)
        out = self.d.raw_exchange("admin", b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertIn(b" 200 ", out.split(b"\r\n", 1)[0])
        self.serving()

    def test_wrong_methods(self):
        for method, path in [("GET", "/v1/grants"), ("PUT", "/v1/resolve"), ("POST", "/v1/secrets"),
                             ("DELETE", "/v1/audit"), ("POST", "/healthz"), ("GET", "/v1/keys/rotate"),
                             ("PATCH", "/v1/secrets/base"), ("FOO", "/metrics")]:
            with self.subTest(method=method, path=path):
                self.expect("admin", method, path, 405, "method_not_allowed")
        # A 405 says which methods the path has (RFC 9110 requires Allow).
        for method, path, allow in [("PATCH", "/v1/secrets/base", {"PUT", "GET", "DELETE"}),
                                    ("GET", "/v1/grants", {"POST"}),
                                    ("HEAD", "/healthz", {"GET"}),
                                    ("POST", "/v1/grants/" + "a" * 44, {"GET", "DELETE"})]:
            with self.subTest(allow=path):
                out = self.d.raw_exchange("admin", b"%s %s HTTP/1.1\r\nHost: localhost\r\n"
                                          b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                                          % (method.encode(), path.encode()))
                head = out.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
                self.assertIn(" 405 ", head[0], head)
                got = [h.split(":", 1)[1] for h in head[1:] if h.lower().startswith("allow:")]
                self.assertEqual(len(got), 1, head)
                self.assertEqual({m.strip() for m in got[0].split(",")}, allow, head)
        for path in ["/", "/v1", "/v1/secrets/base/x", "/v1/grants/a/b", "/V1/secrets",
                     "/v1/secrets/", "//v1/secrets", "/healthz/"]:
            with self.subTest(path=path):
                self.expect("admin", "GET", path, 404, "not_found")

    def test_nul_in_path(self):
        # A %00 in the path ended the string the handler saw: /v1/secrets/nul%00junk
        # stored (and named) the secret nul. The path is now left as sent, and refused.
        body = {"value": "v", "hosts": ["api.example.com"]}
        self.expect("admin", "PUT", "/v1/secrets/nul%00junk", 400, "invalid_name", body=body)
        self.expect("admin", "GET", "/v1/secrets/nul", 404, "not_found")
        self.expect("admin", "GET", "/v1/secrets/nul%00", 404, "not_found")
        self.expect("harness", "GET", "/v1/grants/x%00y", 404, "not_found")
        # revoking sbx-nul%00junk's grants does not revoke sbx-nul's
        g = self.d.mint("sbx-nul", "base", "api.example.com")
        st, _, raw = self.d.request("harness", "DELETE", "/v1/sandboxes/sbx-nul%00junk/grants")
        self.assertIn(st, (400, 404), raw)
        st, answer = self.d.resolve(g["token"], "sbx-nul", "api.example.com")
        self.assertEqual(st, 200, answer)
        # other escapes are still decoded
        st, js, raw = self.d.request("admin", "PUT", "/v1/secrets/nul%2Dok", body=body)
        self.assertEqual((st, js.get("name")), (201, "nul-ok"), raw)

    def test_bad_query(self):
        for q in ["after=-1", "after=x", "limit=0", "limit=1001", "limit=", "after=1e3",
                  "after=99999999999999999999",
                  # ambiguous or unknown: the first was read, another parser takes the last
                  "after=1&after=2", "limit=1&limit=5", "after=0&bogus=1", "Limit=1", "after",
                  # a NUL in a name or a value: not what another parser reads either
                  "after%00x=5", "after=1%00x", "limit%00=1"]:
            with self.subTest(q=q):
                self.expect("admin", "GET", "/v1/audit?" + q, 400, "invalid_value")
        st, js, _ = self.d.request("admin", "GET", "/v1/audit?after=0&limit=1")
        self.assertEqual(st, 200)
        self.assertEqual(len(js["records"]), 1)

    def test_garbage_http(self):
        for req in [b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/9.9\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n",
                    # far past every buffer: the broker closes while this is still being sent
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nY: " + b"a" * (8 << 20) + b"\r\n\r\n",
                    b"\x00\x01\x02\x03" * 100]:
            with self.subTest(req=req[:20]):
                out = self.d.raw_exchange("admin", req, timeout=5)
                if out:
                    self.assertTrue(out.startswith(b"HTTP/1."), out[:100])
                    self.assertNotRegex(out.split(b"\r\n", 1)[0], rb" [23]\d\d ")
                self.serving()
        # A TLS-less client on the TLS port.
        import socket
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                s.recv(100)
            except OSError:
                pass
        finally:
            s.close()
        self.serving()

    def test_log_has_no_values(self):
        secret = "logcheck-" + secrets.token_hex(8)
        self.d.put_secret("logged", secret, ["api.example.com"])
        self.d.request("admin", "PUT", "/v1/secrets/logged",
                       raw=json.dumps(put_body(value=secret, extra=1)).encode())
        self.assertNotIn(secret, self.d.log())


if __name__ == "__main__":
    cbtest.main()
