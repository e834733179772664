"""Grants and resolve against the real daemon (issue 3): mint policy, the token refusal
corpus (expired, forged, tampered, every single-byte change), destination checks
(sandbox, host, port, method, path incl. traversal and encoding tricks), revocation
(one grant, a whole sandbox), ownership of grants between harnesses, use counts and the
single-use race, inject and token-less resolves, Basic templates.
"""

import base64
import calendar
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

HOST = "api.github.com"
SECRET = "ghp_" + secrets.token_hex(16)
OTHER_SECRET = "sk-" + secrets.token_hex(16)
HARNESS2 = "spiffe://credbroker.dev/harness2"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def forge(header, claims, key=None, sig=None):
    """A cbt_ token from header/claims dicts, MACed with key (random when None)."""
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    if sig is None:
        mac = hmac.new(key or os.urandom(32), (h + "." + p).encode(), hashlib.sha256).digest()
        sig = b64url(mac)
    return "cbt_%s.%s.%s" % (h, p, sig)


class Resolve(cbtest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = cbtest.Deployment(start=False, conf_lines=[
            "identity %s role harness max_ttl 600 secrets github" % HARNESS2])
        try:
            cls.h2 = cls.d.mkcert("harness2", usage="client", uri=HARNESS2)
            cls.d.start()
            cls.d.put_secret("github", SECRET, [HOST, "uploads.github.com"], max_ttl=3600)
            cls.d.put_secret("llm", OTHER_SECRET, ["llm.example"], max_ttl=60)
            cls.proxy = cls.d.connection("proxy")
        except BaseException:
            cls.d.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.close()
        finally:
            cls.d.stop()

    # --- helpers --------------------------------------------------------------------------
    def sbx(self):
        return "sbx-" + secrets.token_hex(6)

    def resolve(self, token, sandbox, host=HOST, port=443, method="GET", path="/repos/acme/x"):
        try:
            return self.d.resolve(token, sandbox, host, port=port, method=method, path=path,
                                  conn=self.proxy)
        except (OSError, cbtest.http.client.HTTPException):
            # The kept-alive connection was closed: open a new one and retry once.
            self.proxy.close()
            type(self).proxy = self.d.connection("proxy")
            return self.d.resolve(token, sandbox, host, port=port, method=method, path=path,
                                  conn=self.proxy)

    def assertRefused(self, st, js, code=None, statuses=(403,)):
        self.assertIn(st, statuses, js)
        self.assertIsInstance(js, dict)
        self.assertNotIn("headers", js)
        if code is not None:
            self.assertEqual(js.get("error"), code)

    def assertGranted(self, st, js, value="Bearer " + SECRET, name="Authorization"):
        self.assertEqual(st, 200, js)
        self.assertEqual(js["headers"], [{"name": name, "value": value}])
        self.assertGreater(js["expires_in"], 0)

    def mint_repo(self, sandbox, **kw):
        kw.setdefault("methods", ["GET", "POST"])
        kw.setdefault("path_prefix", "/repos/acme/")
        return self.d.mint(sandbox, "github", HOST, **kw)

    # --- mint -----------------------------------------------------------------------------
    def test_mint_answer(self):
        s = self.sbx()
        t0 = int(time.time() * 1000)
        g = self.mint_repo(s)
        # 12 hex digits of the mint time in milliseconds, then 128 random bits
        self.assertRegex(g["grant_id"], "^[0-9a-f]{44}$")
        self.assertTrue(t0 - 1000 <= int(g["grant_id"][:12], 16) <= int(time.time() * 1000) + 1000)
        later = [self.mint_repo(s)["grant_id"] for _ in range(3)]
        self.assertEqual([x[:12] for x in later], sorted(x[:12] for x in later))
        self.assertLessEqual(g["grant_id"][:12], later[0][:12])
        self.assertEqual(len({x[12:] for x in [g["grant_id"]] + later}), 4)
        self.assertTrue(g["token"].startswith("cbt_"))
        self.assertRegex(g["expires_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertNotIn(SECRET, json.dumps(g))

    def test_mint_policy_refusals(self):
        s = self.sbx()
        cases = [
            # (who, body binding overrides, ttl, expected code)
            (self.h2, {"secret": "llm", "host": "llm.example"}, 30, "secret_not_allowed"),
            (self.h2, {"secret": "github", "host": HOST}, 601, "ttl_exceeds_policy"),
            ("harness", {"secret": "github", "host": HOST}, 3601, "ttl_exceeds_policy"),
            ("harness", {"secret": "nosuch", "host": HOST}, 30, "unknown_secret"),
            ("harness", {"secret": "github", "host": "evil.example"}, 30, "host_not_allowed"),
            ("harness", {"secret": "llm", "host": "llm.example"}, 61, "ttl_exceeds_secret"),
        ]
        for who, b, ttl, code in cases:
            body = {"sandbox_id": s, "ttl_s": ttl, "bindings": [b]}
            st, js, raw = self.d.request(who, "POST", "/v1/grants", body=body)
            self.assertEqual((st, js and js.get("error")), (403, code), (b, ttl))
        # The host allowlist is compared normalised.
        g = self.d.mint(s, "github", "API.GitHub.COM.")
        st, js = self.resolve(g["token"], s, path="/")
        self.assertGranted(st, js)

    def test_mint_body_refusals(self):
        s = self.sbx()
        good = {"secret": "github", "host": HOST}
        bodies = [
            {"sandbox_id": s, "ttl_s": 60, "bindings": []},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [good] * 17},
            {"sandbox_id": s, "ttl_s": 0, "bindings": [good]},
            {"sandbox_id": s, "ttl_s": "60", "bindings": [good]},
            {"sandbox_id": s, "ttl_s": 60, "max_uses": 0, "bindings": [good]},
            {"sandbox_id": "bad id", "ttl_s": 60, "bindings": [good]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [good], "extra": 1},
            {"ttl_s": 60, "bindings": [good]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, header="Host")]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, header="Proxy-Authorization")]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, header="Content-Length")]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, template="Bearer")]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, template="{secret}{secret}")]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, methods=[])]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, path_prefix="/a/../b/")]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, port=70000)]},
            {"sandbox_id": s, "ttl_s": 60, "bindings": [dict(good, inject="yes")]},
        ]
        for body in bodies:
            st, js, raw = self.d.request("harness", "POST", "/v1/grants", body=body)
            self.assertEqual(st, 400, (body, raw))
            self.assertIn("error", js)

    # --- token refusal corpus -------------------------------------------------------------
    def test_expired(self):
        s = self.sbx()
        # 5 s, not 1: the granted control must come before the expiry also under valgrind
        # (with 1 s it once came after it there); then wait until the grant's own expiry
        g = self.d.mint(s, "github", HOST, ttl_s=5)
        st, js = self.resolve(g["token"], s, path="/")
        self.assertGranted(st, js)
        expires = calendar.timegm(time.strptime(g["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
        time.sleep(min(6.0, max(0.0, expires - time.time())) + 1.2)
        st, js = self.resolve(g["token"], s, path="/")
        self.assertRefused(st, js, "expired")

    def valid_parts(self, sandbox):
        g = self.mint_repo(sandbox)
        h, p, sig = g["token"][4:].split(".")
        return g, json.loads(b64url_dec(h)), json.loads(b64url_dec(p)), sig

    def test_forged_tokens(self):
        s = self.sbx()
        g, hdr, claims, sig = self.valid_parts(s)
        now = int(time.time())
        future = dict(claims, nbf=now + 3600, iat=now + 3600, exp=now + 7200)
        forged = {
            "alg_none": forge(dict(hdr, alg="none"), claims, sig=""),
            "alg_none_sig": forge(dict(hdr, alg="none"), claims, key=b""),
            "lower_hs256": forge(dict(hdr, alg="hs256"), claims),
            "hs512": forge(dict(hdr, alg="HS512"), claims),
            "rs256": forge(dict(hdr, alg="RS256"), claims),
            "other_key": forge(hdr, claims),
            "unknown_kid": forge(dict(hdr, kid="k0123456789abcdef"), claims),
            "no_kid": forge({"alg": "HS256", "typ": "JWT"}, claims),
            "exp_string": forge(hdr, dict(claims, exp=str(claims["exp"]))),
            "not_yet_valid": forge(hdr, future),
            "tampered_sub": "cbt_%s.%s.%s" % (
                b64url(json.dumps(hdr, separators=(",", ":")).encode()),
                b64url(json.dumps(dict(claims, sub="sbx-evil"), separators=(",", ":")).encode()),
                sig),
            "tampered_exp": "cbt_%s.%s.%s" % (
                g["token"][4:].split(".")[0],
                b64url(json.dumps(dict(claims, exp=claims["exp"] + 86400),
                                  separators=(",", ":")).encode()),
                sig),
            "no_prefix": g["token"][4:],
            "two_parts": g["token"].rsplit(".", 1)[0],
            "empty": "",
            "garbage": "cbt_" + "A" * 100,
            "huge": "cbt_" + "A" * 5000,
        }
        for name, tok in forged.items():
            st, js = self.resolve(tok, "sbx-evil" if name == "tampered_sub" else s)
            self.assertRefused(st, js, statuses=(400, 403))
            if st == 403 and name not in ("tampered_sub",):
                self.assertIn(js["error"], ("invalid_token", "not_yet_valid", "expired"),
                              name)
        # The real token still works.
        st, js = self.resolve(g["token"], s)
        self.assertGranted(st, js)

    def test_every_single_byte_change(self):
        s = self.sbx()
        g = self.mint_repo(s)
        tok = g["token"]
        accepted = []
        for i, c in enumerate(tok):
            variants = set()
            flip = chr(ord(c) ^ 1)
            variants.add(flip if flip in B64URL else "A")
            variants.add("B" if c == "A" else "A")
            variants.add("." if c != "." else "A")
            for v in variants:
                if v == c:
                    continue
                t = tok[:i] + v + tok[i + 1:]
                st, js = self.resolve(t, s)
                if st == 200:
                    accepted.append((i, c, v))
                else:
                    self.assertRefused(st, js, statuses=(400, 403))
        self.assertEqual(accepted, [], "single-byte changes accepted (pos, old, new)")
        st, js = self.resolve(tok, s)
        self.assertGranted(st, js)

    # --- destination checks ---------------------------------------------------------------
    def test_destination_refusals(self):
        s = self.sbx()
        g = self.mint_repo(s)
        t = g["token"]
        cases = [
            (dict(), 200, None),
            (dict(path="/repos/acme/x/issues?state=open", method="POST"), 200, None),
            (dict(host="API.GITHUB.COM."), 200, None),
            (dict(path="/repos/acme/"), 200, None),
            (dict(path="/repos/acme-evil/"), 403, "path_not_allowed"),
            (dict(path="/repos/acme"), 403, "path_not_allowed"),
            (dict(path="/repos/other/x"), 403, "path_not_allowed"),
            (dict(path="/"), 403, "path_not_allowed"),
            (dict(method="DELETE"), 403, "method_not_allowed"),
            (dict(host="uploads.github.com"), 403, "destination_mismatch"),
            (dict(host="api.github.com.evil.example"), 403, "destination_mismatch"),
            (dict(port=8443), 403, "destination_mismatch"),
            (dict(port=80), 403, "destination_mismatch"),
        ]
        for kw, want, code in cases:
            st, js = self.resolve(t, s, **kw)
            if want == 200:
                self.assertGranted(st, js)
            else:
                self.assertRefused(st, js, code)
        # Traversal and encoding tricks: refused (400 invalid_path or 403), never granted.
        for p in ("/repos/acme/../x", "/repos/acme/%2e%2e/x", "/repos/acme%2Fx",
                  "/repos/acme/%2E%2E/admin", "/repos/acme/./x", "/repos/acme/..",
                  "/repos/acme\\..\\x", "repos/acme/x", "/repos/acme/x\r\nHost: evil"):
            st, js = self.resolve(t, s, path=p)
            self.assertRefused(st, js, statuses=(400, 403))
            self.assertIn(js["error"], ("invalid_path", "path_not_allowed", "invalid_value"), p)
        st, js = self.resolve(t, "sbx-other")
        self.assertRefused(st, js, "sandbox_mismatch")

    def test_default_port_and_multi_bindings(self):
        s = self.sbx()
        body = {"sandbox_id": s, "ttl_s": 300, "bindings": [
            {"secret": "github", "host": HOST, "methods": ["GET"], "path_prefix": "/a/"},
            {"secret": "github", "host": "uploads.github.com", "port": 8443,
             "header": "X-Upload-Key", "template": "{secret}"}]}
        st, g, raw = self.d.request("harness", "POST", "/v1/grants", body=body)
        self.assertEqual(st, 201, raw)
        req = {"token": g["token"], "sandbox_id": s, "host": HOST, "method": "GET", "path": "/a/b"}
        st, js, _ = self.d.request("proxy", "POST", "/v1/resolve", body=req)  # no port: 443
        self.assertGranted(st, js)
        st, js = self.resolve(g["token"], s, host="uploads.github.com", port=8443, method="PUT",
                              path="/x")
        self.assertGranted(st, js, value=SECRET, name="X-Upload-Key")
        # The most specific refusal: the first binding got as far as the path.
        st, js = self.resolve(g["token"], s, path="/b/")
        self.assertRefused(st, js, "path_not_allowed")

    # --- revocation and ownership ---------------------------------------------------------
    def test_revoke_one(self):
        s = self.sbx()
        g = self.mint_repo(s)
        self.assertGranted(*self.resolve(g["token"], s))
        st, js, _ = self.d.request("harness", "DELETE", "/v1/grants/" + g["grant_id"])
        self.assertEqual((st, js), (200, {"grant_id": g["grant_id"], "revoked": True}))
        st, js = self.resolve(g["token"], s)
        self.assertRefused(st, js, "revoked")
        st, js, _ = self.d.request("harness", "GET", "/v1/grants/" + g["grant_id"])
        self.assertEqual(st, 200)
        self.assertEqual(js["status"], "revoked")
        self.assertIsNotNone(js["revoked_at"])

    def test_revoke_sandbox(self):
        s = self.sbx()
        g1 = self.mint_repo(s)
        g2 = self.d.mint(s, "github", "uploads.github.com")
        other = self.sbx()
        g3 = self.mint_repo(other)
        st, js, _ = self.d.request("harness", "DELETE", "/v1/sandboxes/%s/grants" % s)
        self.assertEqual((st, js), (200, {"sandbox_id": s, "revoked": 2}))
        self.assertRefused(*self.resolve(g1["token"], s), "revoked")
        self.assertRefused(*self.resolve(g2["token"], s, host="uploads.github.com", path="/"),
                           "revoked")
        self.assertGranted(*self.resolve(g3["token"], other))
        # Again: nothing left to revoke.
        st, js, _ = self.d.request("harness", "DELETE", "/v1/sandboxes/%s/grants" % s)
        self.assertEqual((st, js), (200, {"sandbox_id": s, "revoked": 0}))

    def test_ownership(self):
        s = self.sbx()
        g = self.mint_repo(s)
        path = "/v1/grants/" + g["grant_id"]
        for method in ("GET", "DELETE"):
            st, js, _ = self.d.request(self.h2, method, path)
            self.assertEqual((st, js), (404, {"error": "not_found"}), method)
        # harness2 revoking the sandbox revokes none of harness's grants.
        st, js, _ = self.d.request(self.h2, "DELETE", "/v1/sandboxes/%s/grants" % s)
        self.assertEqual((st, js), (200, {"sandbox_id": s, "revoked": 0}))
        self.assertGranted(*self.resolve(g["token"], s))
        st, js, raw = self.d.request("admin", "GET", path)
        self.assertEqual(st, 200)
        self.assertEqual(js["grant_id"], g["grant_id"])
        self.assertEqual(js["status"], "active")
        self.assertEqual(js["minted_by"], "spiffe://credbroker.dev/harness")
        self.assertNotIn(SECRET.encode(), raw)
        self.assertNotIn(g["token"].encode(), raw)
        for bad in ("/v1/grants/" + "0" * 32, "/v1/grants/xyz", "/v1/grants/" + "A" * 32):
            st, js, _ = self.d.request("harness", "GET", bad)
            self.assertEqual((st, js), (404, {"error": "not_found"}), bad)
        st, js, _ = self.d.request("admin", "DELETE", path)
        self.assertEqual(st, 200)
        self.assertRefused(*self.resolve(g["token"], s), "revoked")

    # --- use counts -----------------------------------------------------------------------
    def test_used_up(self):
        s = self.sbx()
        g = self.mint_repo(s, max_uses=2)
        self.assertGranted(*self.resolve(g["token"], s))
        self.assertGranted(*self.resolve(g["token"], s))
        self.assertRefused(*self.resolve(g["token"], s), "used_up")
        st, js, _ = self.d.request("harness", "GET", "/v1/grants/" + g["grant_id"])
        self.assertEqual((js["status"], js["uses"], js["max_uses"]), ("used_up", 2, 2))

    def test_unlimited_uses_counted(self):
        # An unlimited grant's uses are appended to grant_use_log (schema/005) until a
        # fold: the grant's display counts them all the same, refusals excluded.
        s = self.sbx()
        g = self.mint_repo(s)
        for _ in range(3):
            self.assertGranted(*self.resolve(g["token"], s))
        self.assertRefused(*self.resolve(g["token"], s, method="DELETE"), "method_not_allowed")
        st, js, _ = self.d.request("harness", "GET", "/v1/grants/" + g["grant_id"])
        self.assertEqual(st, 200)
        self.assertEqual((js["status"], js["uses"], js["max_uses"]), ("active", 3, None))

    def test_refused_resolve_does_not_use(self):
        s = self.sbx()
        g = self.mint_repo(s, max_uses=1)
        self.assertRefused(*self.resolve(g["token"], s, method="DELETE"), "method_not_allowed")
        self.assertGranted(*self.resolve(g["token"], s))
        self.assertRefused(*self.resolve(g["token"], s), "used_up")

    def test_single_use_race(self):
        s = self.sbx()
        g = self.mint_repo(s, max_uses=1)
        n = 50
        conns = [self.d.connection("proxy") for _ in range(n)]
        for c in conns:
            c.connect()     # handshakes first, so the resolves really race
        results = [None] * n
        barrier = threading.Barrier(n)

        def go(i):
            try:
                barrier.wait(timeout=30)
                results[i] = self.d.resolve(g["token"], s, HOST, path="/repos/acme/x",
                                            conn=conns[i])
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = ("exc", repr(e))

        threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for c in conns:
            c.close()
        statuses = [r[0] for r in results]
        self.assertEqual(statuses.count(200), 1, results)
        self.assertEqual(statuses.count(403), n - 1, results)
        for r in results:
            if r[0] == 403:
                self.assertEqual(r[1], {"error": "used_up"})

    # --- inject, token-less and templates -------------------------------------------------
    def test_inject_and_tokenless(self):
        s = self.sbx()
        self.d.mint(s, "llm", "llm.example", ttl_s=60, inject=True, header="X-Api-Key",
                    template="{secret}")
        self.d.mint(s, "github", HOST, path_prefix="/repos/acme/")
        # Inject binding: headers for a token-less resolve.
        st, js = self.resolve(None, s, host="llm.example", method="POST", path="/v1/chat")
        self.assertGranted(st, js, value=OTHER_SECRET, name="X-Api-Key")
        self.assertLessEqual(js["expires_in"], 60)
        # Only a swap binding: allowed, nothing injected.
        st, js = self.resolve(None, s, path="/repos/acme/x")
        self.assertEqual((st, js["headers"]), (200, []))
        self.assertNotIn(SECRET, json.dumps(js))
        # Outside every binding of the sandbox, or another sandbox: no grant.
        self.assertRefused(*self.resolve(None, s, path="/repos/other/"), "no_grant")
        self.assertRefused(*self.resolve(None, s, host="evil.example"), "no_grant")
        self.assertRefused(*self.resolve(None, self.sbx(), host="llm.example"), "no_grant")
        # Revoked: gone from token-less resolves too.
        st, js, _ = self.d.request("harness", "DELETE", "/v1/sandboxes/%s/grants" % s)
        self.assertEqual(js["revoked"], 2)
        self.assertRefused(*self.resolve(None, s, host="llm.example"), "no_grant")
        self.assertRefused(*self.resolve(None, s), "no_grant")

    def test_tokenless_inject_use_count(self):
        s = self.sbx()
        self.d.mint(s, "llm", "llm.example", ttl_s=60, inject=True, max_uses=1)
        self.assertGranted(*self.resolve(None, s, host="llm.example", path="/"),
                           value="Bearer " + OTHER_SECRET)
        self.assertRefused(*self.resolve(None, s, host="llm.example", path="/"), "no_grant")

    def test_tokenless_several_grants(self):
        s = self.sbx()
        v2 = "v2-" + secrets.token_hex(8)
        self.d.put_secret("llm2", v2, ["llm.example"], max_ttl=60)
        # Two inject grants set the same header: the oldest grant wins; another header
        # from a third grant is added; a swap binding adds nothing.
        self.d.mint(s, "llm", "llm.example", ttl_s=60, inject=True, template="first {secret}")
        time.sleep(1.1)     # created_at orders the grants (seconds)
        self.d.mint(s, "llm2", "llm.example", ttl_s=60, inject=True,
                    template="second {secret}", header="authorization")
        self.d.mint(s, "llm2", "llm.example", ttl_s=60, inject=True, header="X-Other",
                    template="{secret}")
        self.d.mint(s, "llm2", "llm.example", ttl_s=60)
        st, js = self.resolve(None, s, host="llm.example", path="/")
        self.assertEqual(st, 200, js)
        self.assertEqual(js["headers"], [
            {"name": "Authorization", "value": "first " + OTHER_SECRET},
            {"name": "X-Other", "value": v2}])

    def test_basic_template(self):
        s = self.sbx()
        g = self.d.mint(s, "github", HOST, template="basic:x-access-token")
        want = "Basic " + base64.b64encode(("x-access-token:" + SECRET).encode()).decode()
        self.assertGranted(*self.resolve(g["token"], s, path="/"), value=want)
        g = self.d.mint(s, "github", HOST, template="token {secret}", header="X-Auth")
        self.assertGranted(*self.resolve(g["token"], s, path="/"), value="token " + SECRET,
                           name="X-Auth")

    def test_secret_hosts_narrowed_after_mint(self):
        # The secret's allowlist is checked again at resolve: a new version (or a new
        # secret of the same name) that no longer names the grant's host is not sent there.
        s, t = self.sbx(), self.sbx()
        v1, v2, v3 = ("narrow-%d-" % i + secrets.token_hex(8) for i in (1, 2, 3))
        self.d.put_secret("narrow", v1, ["a.example", "b.example"], max_ttl=60)
        g = self.d.mint(s, "narrow", "b.example", ttl_s=60)
        self.d.mint(t, "narrow", "b.example", ttl_s=60, inject=True)
        self.assertGranted(*self.resolve(g["token"], s, host="b.example", path="/"),
                           value="Bearer " + v1)
        self.d.put_secret("narrow", v2, ["a.example"], max_ttl=60)
        st, js = self.resolve(g["token"], s, host="b.example", path="/")
        self.assertRefused(st, js, "host_not_allowed")
        self.assertNotIn(v2, json.dumps(js))
        self.assertRefused(*self.resolve(None, t, host="b.example", path="/"), "no_grant")
        st, js, _ = self.d.request("admin", "DELETE", "/v1/secrets/narrow")
        self.assertEqual(st, 200, js)
        self.d.put_secret("narrow", v3, ["c.example"], max_ttl=60)
        self.assertRefused(*self.resolve(g["token"], s, host="b.example", path="/"),
                           "host_not_allowed")
        # Widened again: the grant's host is allowed, the current value is sent.
        self.d.put_secret("narrow", v3, ["b.example", "c.example"], max_ttl=60)
        self.assertGranted(*self.resolve(g["token"], s, host="b.example", path="/"),
                           value="Bearer " + v3)

    def test_unknown_grant(self):
        # A validly signed token whose grant row is gone (purged) is refused.
        s = self.sbx()
        g = self.mint_repo(s)
        self.assertGranted(*self.resolve(g["token"], s))
        self.d.kill()
        db = cbtest.sqlite3.connect(os.path.join(self.d.dir, "credbroker.db"))
        with db:
            db.execute("DELETE FROM grants WHERE id = ?", (g["grant_id"],))
        db.close()
        self.d.start()
        self.assertRefused(*self.resolve(g["token"], s), "unknown_grant")

    def test_resolve_body_refusals(self):
        s = self.sbx()
        bad = [
            {"sandbox_id": s, "host": HOST, "method": "GET"},
            {"sandbox_id": s, "host": HOST, "path": "/"},
            {"host": HOST, "method": "GET", "path": "/"},
            {"sandbox_id": s, "host": "bad host", "method": "GET", "path": "/"},
            {"sandbox_id": s, "host": HOST, "method": "get", "path": "/"},
            {"sandbox_id": s, "host": HOST, "method": "GET", "path": "/", "port": 0},
            {"sandbox_id": s, "host": HOST, "method": "GET", "path": "/", "token": 5},
            {"sandbox_id": s, "host": HOST, "method": "GET", "path": "/", "x": 1},
        ]
        for body in bad:
            st, js, raw = self.d.request("proxy", "POST", "/v1/resolve", body=body)
            self.assertEqual(st, 400, (body, raw))
        # The daemon never echoes a secret in any refusal.
        self.assertNotIn(SECRET, self.d.log())


if __name__ == "__main__":
    cbtest.main()
