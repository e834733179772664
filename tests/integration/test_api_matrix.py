"""Role x endpoint matrix against the real daemon (issue 3).

Callers: the three roles, no certificate, a certificate from another CA, a serverAuth-only
certificate from our CA, an expired certificate from our CA, and a valid client certificate
whose identity the configuration does not know. Every cell must answer as the policy says,
and no response except a resolve answered to the proxy may contain the secret value.
"""

import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

SANDBOX = "sbx-matrix"
HOST = "api.example.com"

# Expected status per (endpoint, caller) for the three authenticated roles.
ALLOWED = {
    "mint": {"harness"},
    "resolve": {"proxy"},
    "grant_show": {"harness", "admin"},
    "grant_revoke": {"harness", "admin"},
    "sandbox_revoke": {"harness", "admin"},
    "secret_put": {"admin"},
    "secret_list": {"admin"},
    "secret_show": {"admin"},
    "secret_delete": {"admin"},
    "key_rotate": {"admin"},
    "audit_list": {"admin"},
    "audit_verify": {"admin"},
    "healthz": {"harness", "proxy", "admin"},
    "metrics": {"harness", "proxy", "admin"},
}
OK_STATUS = {"mint": 201, "secret_put": 201}

# Hostile callers and what they must get on every endpoint.
HOSTILE = {
    "none": (401, "client_certificate_required"),
    "other_ca": (401, "invalid_client_certificate"),
    "server_only": (401, "invalid_client_certificate"),
    "expired": (401, "invalid_client_certificate"),
    "unknown": (403, "unknown_identity"),
}


class Matrix(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = cbtest.Deployment()
        d = cls.d
        cls.value = "sv_" + secrets.token_hex(16)
        d.put_secret("matrix", cls.value, [HOST])
        # Hostile certificates.
        oca = d.mkcert("other-ca", usage="ca", cn="other CA", self_signed=True)
        cls.callers = {
            "harness": "harness", "proxy": "proxy", "admin": "admin", "none": None,
            "other_ca": d.mkcert("other-client", usage="client", cn="admin", ca=oca,
                                 uri="spiffe://credbroker.dev/admin"),
            "server_only": d.mkcert("server-only", usage="server", cn="admin",
                                    uri="spiffe://credbroker.dev/admin", dns="localhost"),
            "expired": d.mkcert("expired", usage="client", cn="admin",
                                uri="spiffe://credbroker.dev/admin", expired=True),
            "unknown": d.mkcert("stranger", usage="client", cn="stranger",
                                uri="spiffe://credbroker.dev/stranger"),
        }
        cls.responses = []   # (caller, endpoint, status, raw)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    # Each endpoint: a function (caller) -> (status, json, raw) with fresh objects.
    def _fresh_grant(self, sandbox=SANDBOX):
        return self.d.mint(sandbox, "matrix", HOST, ttl_s=600)

    def _call(self, endpoint, who):
        d = self.d
        if endpoint == "mint":
            return d.request(who, "POST", "/v1/grants", body={
                "sandbox_id": SANDBOX, "ttl_s": 600,
                "bindings": [{"secret": "matrix", "host": HOST}]})
        if endpoint == "resolve":
            g = self._fresh_grant()
            return d.request(who, "POST", "/v1/resolve", body={
                "token": g["token"], "sandbox_id": SANDBOX, "host": HOST, "port": 443,
                "method": "GET", "path": "/"})
        if endpoint == "grant_show":
            g = self._fresh_grant()
            return d.request(who, "GET", "/v1/grants/" + g["grant_id"])
        if endpoint == "grant_revoke":
            g = self._fresh_grant()
            return d.request(who, "DELETE", "/v1/grants/" + g["grant_id"])
        if endpoint == "sandbox_revoke":
            self._fresh_grant("sbx-doomed")
            return d.request(who, "DELETE", "/v1/sandboxes/sbx-doomed/grants")
        if endpoint == "secret_put":
            return d.request(who, "PUT", "/v1/secrets/matrix", body={
                "value": self.value, "hosts": [HOST], "max_ttl_s": 3600})
        if endpoint == "secret_list":
            return d.request(who, "GET", "/v1/secrets")
        if endpoint == "secret_show":
            return d.request(who, "GET", "/v1/secrets/matrix")
        if endpoint == "secret_delete":
            d.put_secret("doomed", "dv_" + secrets.token_hex(8), [HOST])
            return d.request(who, "DELETE", "/v1/secrets/doomed")
        if endpoint == "key_rotate":
            return d.request(who, "POST", "/v1/keys/rotate", body={"kind": "signing"})
        if endpoint == "audit_list":
            return d.request(who, "GET", "/v1/audit?after=0&limit=5")
        if endpoint == "audit_verify":
            return d.request(who, "GET", "/v1/audit/verify")
        if endpoint == "healthz":
            return d.request(who, "GET", "/healthz")
        if endpoint == "metrics":
            return d.request(who, "GET", "/metrics")
        raise AssertionError(endpoint)

    def test_matrix(self):
        bad = []
        for caller, who in self.callers.items():
            for endpoint, allowed in ALLOWED.items():
                st, js, raw = self._call(endpoint, who)
                self.responses.append((caller, endpoint, st, raw))
                if caller in HOSTILE:
                    want_st, want_code = HOSTILE[caller]
                    got_code = js.get("error") if isinstance(js, dict) else None
                    if st != want_st or got_code != want_code:
                        bad.append("%s %s: %d %r (want %d %s)" % (caller, endpoint, st, raw[:80],
                                                                  want_st, want_code))
                elif caller in allowed:
                    want = OK_STATUS.get(endpoint, 200)
                    if st != want:
                        bad.append("%s %s: %d %r (want %d)" % (caller, endpoint, st, raw[:80], want))
                else:
                    if st != 403 or not isinstance(js, dict) or js.get("error") != "forbidden":
                        bad.append("%s %s: %d %r (want 403 forbidden)" % (caller, endpoint, st,
                                                                          raw[:80]))
        self.assertEqual(bad, [], "\n".join(bad))
        # The daemon is still serving, and nobody but the proxy ever saw the value.
        self.assertEqual(self.d.request("admin", "GET", "/healthz")[0], 200)
        leaks = [(c, e, s) for (c, e, s, raw) in self.responses
                 if self.value.encode() in raw and not (c == "proxy" and e == "resolve" and s == 200)]
        self.assertEqual(leaks, [])
        # The proxy's resolve did carry it (so the leak check above can fail).
        got = [raw for (c, e, s, raw) in self.responses if c == "proxy" and e == "resolve" and s == 200]
        self.assertTrue(got and self.value.encode() in got[0])
        self.assertNotIn(self.value, self.d.log())

    def test_role_refusal_is_audited(self):
        before = self.d.audit()
        st, js, _ = self.d.request("harness", "GET", "/v1/secrets/matrix")
        self.assertEqual((st, js), (403, {"error": "forbidden"}))
        after = self.d.audit(after=before[-1]["seq"])
        # The refusal, then the admin's own audit listing of `before` (in order).
        refusals = [r for r in after if r["action"] == "secret.show"]
        self.assertEqual(len(refusals), 1)
        r = refusals[0]
        self.assertEqual((r["actor"], r["role"], r["outcome"]),
                         ("spiffe://credbroker.dev/harness", "harness", "forbidden"))

    def test_hostile_identity_not_in_audit(self):
        """Unauthenticated callers are refused before anything is audited under their name."""
        who = self.callers["unknown"]
        st, _, _ = self.d.request(who, "GET", "/v1/audit")
        self.assertEqual(st, 403)
        recs = self.d.audit()
        self.assertFalse([r for r in recs if "stranger" in r["actor"]])

    def test_long_first_uri_is_not_skipped(self):
        # The identity is the first SAN URI. One too long to be an identity is refused;
        # the broker used to skip it and take the next URI (here: the admin's).
        d = self.d
        out = os.path.join(d.dir, "hostile", "long-uri")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out + ".ext", "w") as f:
            f.write("subjectAltName=URI:spiffe://credbroker.dev/%s,"
                    "URI:spiffe://credbroker.dev/admin\n"
                    "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n" % ("x" * 300))
        pki = os.path.join(d.dir, "pki")
        cbtest._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", out + ".key", "-subj", "/CN=long-uri",
                        "-out", out + ".csr")
        cbtest._openssl("x509", "-req", "-in", out + ".csr", "-CA", os.path.join(pki, "ca.pem"),
                        "-CAkey", os.path.join(pki, "ca.key"), "-CAcreateserial", "-days", "2",
                        "-extfile", out + ".ext", "-out", out + ".pem")
        st, js, raw = d.request((out + ".pem", out + ".key"), "GET", "/v1/secrets")
        self.assertEqual((st, js), (401, {"error": "invalid_client_certificate"}), raw[:200])
        self.assertNotIn(self.value.encode(), raw)

    def test_unknown_path_and_method(self):
        for who in ("harness", "proxy", "admin"):
            st, js, _ = self.d.request(who, "GET", "/v1/nothing")
            self.assertEqual((st, js), (404, {"error": "not_found"}))
            st, js, _ = self.d.request(who, "PATCH", "/v1/secrets")
            self.assertEqual((st, js), (405, {"error": "method_not_allowed"}))
            st, js, _ = self.d.request(who, "GET", "/v1/grants/")
            self.assertEqual(st, 404)


class AdminAudit(cbtest.TestCase):
    def test_each_admin_request_leaves_one_record(self):
        """Every admin request routed to a handler leaves exactly one record, in order, with
        its outcome; 404/405, /healthz and /metrics leave none; values never appear."""
        value = "av_" + secrets.token_hex(12)
        with cbtest.Deployment() as d:
            first = d.audit()
            start = first[-1]["seq"] if first else 0
            steps = [
                ("PUT", "/v1/secrets/a1", {"value": value, "hosts": [HOST]}, 201, "secret.put", "ok"),
                ("PUT", "/v1/secrets/a1", {"value": value, "hosts": [HOST], "x": 1}, 400,
                 "secret.put", "unknown_field"),
                ("PUT", "/v1/secrets/a1", {"value": "a\nb", "hosts": [HOST]}, 400, "secret.put",
                 "invalid_value"),
                ("GET", "/v1/secrets/a1", None, 200, "secret.show", "ok"),
                ("GET", "/v1/secrets/zz", None, 404, "secret.show", "not_found"),
                ("GET", "/v1/secrets", None, 200, "secret.list", "ok"),
                ("POST", "/v1/keys/rotate", {"kind": "data"}, 200, "key.rotate", "ok"),
                ("POST", "/v1/keys/rotate", {"kind": "nope"}, 400, "key.rotate", "invalid_value"),
                ("GET", "/v1/audit/verify", None, 200, "audit.verify", "ok"),
                ("GET", "/v1/audit?after=0&limit=2", None, 200, "audit.list", "ok"),
                ("GET", "/healthz", None, 200, None, None),
                ("GET", "/metrics", None, 200, None, None),
                ("GET", "/v1/nothing", None, 404, None, None),
                ("DELETE", "/v1/secrets", None, 405, None, None),
                ("DELETE", "/v1/secrets/a1", None, 200, "secret.delete", "ok"),
                ("DELETE", "/v1/secrets/a1", None, 404, "secret.delete", "not_found"),
            ]
            want = []
            for method, path, body, status, action, outcome in steps:
                st, js, raw = d.request("admin", method, path, body=body)
                self.assertEqual(st, status, (method, path, raw[:200]))
                self.assertNotIn(value.encode(), raw)
                if action:
                    want.append((action, outcome))
            recs = d.audit(after=start)
            got = [(r["action"], r["outcome"]) for r in recs[1:]]   # [0]: the listing of `start`
            self.assertEqual(recs[0]["action"], "audit.list")
            self.assertEqual(got, want)
            for r in recs:
                self.assertEqual(r["actor"], "spiffe://credbroker.dev/admin")
                self.assertNotIn(value, repr(r))
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual((st, js["intact"]), (200, True))


class OpenAPI(cbtest.TestCase):
    def test_api_yaml_matches_route_table(self):
        """docs/api.yaml documents exactly the routes of api_routes[] in src/api.c."""
        import re
        with open(os.path.join(cbtest.srcdir(), "src", "api.c")) as f:
            src = f.read()
        table = src[src.index("api_routes[] = {"):]
        table = table[:table.index("NULL")]
        routes = set(re.findall(r'"([A-Z]+ /[^"]*)"', table))
        documented, path = set(), None
        in_paths = False
        with open(os.path.join(cbtest.srcdir(), "docs", "api.yaml")) as f:
            for line in f:
                if line.rstrip() == "paths:":
                    in_paths = True
                    continue
                if not in_paths:
                    continue
                m = re.match(r"^  (/\S*):\s*$", line)
                if m:
                    path = m.group(1)
                    continue
                m = re.match(r"^    (get|put|post|delete|patch):\s*$", line)
                if m and path:
                    documented.add("%s %s" % (m.group(1).upper(), path))
        self.assertGreaterEqual(len(routes), 14)
        self.assertEqual(documented, routes)

    def spec(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml is not installed")
        with open(os.path.join(cbtest.srcdir(), "docs", "api.yaml")) as f:
            return yaml.safe_load(f)

    def test_api_yaml_is_valid_openapi(self):
        """docs/api.yaml passes an OpenAPI validator (mutualTLS needs 3.1, for one)."""
        try:
            from openapi_spec_validator import validate
        except ImportError:
            self.skipTest("openapi-spec-validator is not installed")
        validate(self.spec())

    def test_answers_match_api_yaml(self):
        """Real answers have a status documented for their route and match its schema."""
        try:
            import jsonschema
        except ImportError:
            self.skipTest("python3-jsonschema is not installed")
        spec = self.spec()

        def check(who, method, route, path, body=None):
            st, js, raw = d.request(who, method, path, body=body)
            answers = spec["paths"][route][method.lower()]["responses"]
            self.assertIn(str(st), answers, "%s %s: %d %r" % (method, path, st, raw[:200]))
            answer = answers[str(st)]
            if "$ref" in answer:
                answer = spec["components"]["responses"][answer["$ref"].split("/")[-1]]
            content = answer.get("content", {}).get("application/json")
            if content is not None and "schema" in content:
                schema = dict(content["schema"], components=spec["components"])
                jsonschema.Draft202012Validator(schema).validate(js)
            return js

        b = {"secret": "oa", "host": HOST}
        with cbtest.Deployment() as d:
            check("admin", "PUT", "/v1/secrets/{name}", "/v1/secrets/oa",
                  {"value": "v", "hosts": [HOST], "max_ttl_s": 600})
            check("admin", "PUT", "/v1/secrets/{name}", "/v1/secrets/oa",
                  {"value": "v\u0000", "hosts": [HOST]})
            check("admin", "PUT", "/v1/secrets/{name}", "/v1/secrets/bad%20name",
                  {"value": "v", "hosts": [HOST]})
            check("admin", "PUT", "/v1/secrets/{name}", "/v1/secrets/.bad",
                  {"value": "v", "hosts": [HOST]})
            check("admin", "GET", "/v1/secrets", "/v1/secrets")
            check("admin", "GET", "/v1/secrets/{name}", "/v1/secrets/oa")
            m = check("harness", "POST", "/v1/grants", "/v1/grants",
                      {"sandbox_id": "sbx-oa", "ttl_s": 60, "max_uses": 1,
                       "bindings": [dict(b, methods=["GET"], path_prefix="/a/")]})
            check("harness", "POST", "/v1/grants", "/v1/grants",
                  {"sandbox_id": "sbx-oa", "ttl_s": 601, "bindings": [b]})
            check("harness", "GET", "/v1/grants/{id}", "/v1/grants/" + m["grant_id"])
            r = {"token": m["token"], "sandbox_id": "sbx-oa", "host": HOST, "port": 443,
                 "method": "GET", "path": "/a/b"}
            check("proxy", "POST", "/v1/resolve", "/v1/resolve", dict(r, token=None))
            check("proxy", "POST", "/v1/resolve", "/v1/resolve", r)
            check("proxy", "POST", "/v1/resolve", "/v1/resolve", r)
            check("proxy", "POST", "/v1/resolve", "/v1/resolve", dict(r, path="/a/%2e%2e/b"))
            check("harness", "DELETE", "/v1/grants/{id}", "/v1/grants/" + m["grant_id"])
            check("harness", "DELETE", "/v1/sandboxes/{sandbox_id}/grants",
                  "/v1/sandboxes/sbx-oa/grants")
            check("admin", "GET", "/v1/grants/{id}", "/v1/grants/" + m["grant_id"])
            check("admin", "POST", "/v1/keys/rotate", "/v1/keys/rotate", {"kind": "signing"})
            check("admin", "GET", "/v1/audit", "/v1/audit?after=0&limit=5")
            check("admin", "GET", "/v1/audit/verify", "/v1/audit/verify")
            check("admin", "DELETE", "/v1/secrets/{name}", "/v1/secrets/oa")
            check("admin", "GET", "/v1/secrets/{name}", "/v1/secrets/oa")
            check("proxy", "GET", "/healthz", "/healthz")


if __name__ == "__main__":
    cbtest.main()
