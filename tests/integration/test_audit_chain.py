"""The audit log against the real daemon (issue 3): every grant request, granted or
refused, leaves exactly one record with the right action and outcome (also under
concurrency, where requests share a commit), records never hold a token or a secret
value, and the chain verification names the record after a row is edited, deleted,
swapped with its neighbour, or the tail is cut off: through GET /v1/audit/verify after a
restart and through the offline `credbroker audit verify --db`.
"""

import json
import os
import secrets
import shutil
import sqlite3
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

HOST = "api.github.com"
SECRET = "ghp_" + secrets.token_hex(16)
HARNESS = "spiffe://credbroker.dev/harness"
PROXY = "spiffe://credbroker.dev/proxy"
COLS = "ts, actor, role, action, outcome, grant_id, sandbox_id, detail, prev_hash, hash"


def last_seq(d):
    recs = d.audit()
    return recs[-1]["seq"] if recs else 0


def grant_records(d, after):
    """Records after seq `after`, without the audit listings' own records."""
    return [r for r in d.audit(after=after) if not r["action"].startswith("audit.")]


class AuditChain(cbtest.TestCase):
    def run_requests(self, d):
        """A scripted mix of requests; returns the (action, outcome, role) each must leave."""
        exp = []
        s = "sbx-aud-" + secrets.token_hex(4)

        def mint(expect, code, **kw):
            b = {"secret": "github", "host": HOST}
            b.update(kw.pop("binding", {}))
            body = {"sandbox_id": kw.pop("sandbox", s), "ttl_s": kw.pop("ttl", 300),
                    "bindings": [b]}
            body.update(kw)
            st, js, raw = d.request(kw.pop("who", "harness"), "POST", "/v1/grants", body=body)
            self.assertEqual(st, expect, raw)
            exp.append(("grant.mint", code, "harness"))
            return js

        def resolve(token, expect, code, sandbox=s, **kw):
            st, js = d.resolve(token, sandbox, kw.pop("host", HOST), **kw)
            self.assertEqual(st, expect, js)
            if expect != 200:
                self.assertEqual(js["error"], code)
            exp.append(("grant.resolve", code, "proxy"))
            return js

        g = mint(201, "ok", binding={"path_prefix": "/repos/acme/"})
        mint(403, "host_not_allowed", binding={"host": "evil.example"})
        mint(403, "unknown_secret", binding={"secret": "nosuch"})
        mint(403, "ttl_exceeds_policy", ttl=7200)
        mint(400, "wrong_type", binding={"secret": None})
        resolve(g["token"], 200, "ok", path="/repos/acme/x")
        resolve(g["token"], 403, "sandbox_mismatch", sandbox="sbx-other", path="/repos/acme/x")
        resolve(g["token"], 403, "path_not_allowed", path="/repos/acme-evil/")
        resolve(g["token"], 403, "destination_mismatch", port=8443, path="/repos/acme/x")
        resolve(g["token"][:-2] + "AA", 403, "invalid_token", path="/repos/acme/x")
        resolve(g["token"], 400, "invalid_path", path="/repos/acme/%2e%2e/x")
        resolve(None, 200, "ok", path="/repos/acme/x")          # swap only: []
        resolve(None, 403, "no_grant", sandbox="sbx-none")
        st, js, _ = d.request("harness", "GET", "/v1/grants/" + g["grant_id"])
        self.assertEqual(st, 200)
        exp.append(("grant.show", "ok", "harness"))
        st, js, _ = d.request("harness", "GET", "/v1/grants/" + "f" * 32)
        self.assertEqual(st, 404)
        exp.append(("grant.show", "not_found", "harness"))
        st, js, _ = d.request("proxy", "POST", "/v1/grants", body={"sandbox_id": s})
        self.assertEqual(st, 403)
        exp.append(("grant.mint", "forbidden", "proxy"))
        st, js, _ = d.request("harness", "DELETE", "/v1/grants/" + g["grant_id"])
        self.assertEqual(st, 200)
        exp.append(("grant.revoke", "ok", "harness"))
        resolve(g["token"], 403, "revoked", path="/repos/acme/x")
        one = mint(201, "ok", max_uses=1)
        resolve(one["token"], 200, "ok", path="/")
        resolve(one["token"], 403, "used_up", path="/")
        st, js, _ = d.request("harness", "DELETE", "/v1/sandboxes/%s/grants" % s)
        self.assertEqual((st, js["revoked"]), (200, 1))
        exp.append(("sandbox.revoke", "ok", "harness"))
        return exp, [g["token"], one["token"]]

    def test_one_record_per_request_and_tampering(self):
        with cbtest.Deployment() as d:
            d.put_secret("github", SECRET, [HOST])
            seq0 = last_seq(d)
            exp, tokens = self.run_requests(d)
            recs = grant_records(d, seq0)
            got = [(r["action"], r["outcome"], r["role"]) for r in recs]
            self.assertEqual(got, exp)
            # Seq strictly increasing by one across the whole log, hashes chained.
            allrecs = d.audit()
            for a, b in zip(allrecs, allrecs[1:]):
                self.assertEqual(b["seq"], a["seq"] + 1)
                self.assertEqual(b["prev_hash"], a["hash"])
            dump = json.dumps(allrecs)
            self.assertNotIn(SECRET, dump)
            for t in tokens:
                self.assertNotIn(t, dump)
                self.assertNotIn(t[4:40], dump)
            # Identities and grant IDs are there.
            ok_resolve = [r for r in recs if r["action"] == "grant.resolve" and r["outcome"] == "ok"]
            self.assertEqual(ok_resolve[0]["actor"], PROXY)
            self.assertRegex(ok_resolve[0]["grant_id"], "^[0-9a-f]{44}$")
            self.assertEqual(recs[0]["actor"], HARNESS)

            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual(st, 200)
            self.assertIs(js["intact"], True, js)

            # Pick the records to tamper with: a refused resolve, and its neighbours.
            target = next(r["seq"] for r in recs if r["outcome"] == "sandbox_mismatch")
            d.kill()
            pristine = self.snapshot(d, "pristine.db")
            c = sqlite3.connect(pristine)
            (top,) = c.execute("SELECT max(seq) FROM audit").fetchone()
            c.close()

            def edit(c):
                c.execute("UPDATE audit SET outcome = 'ok' WHERE seq = ?", (target,))

            def delete(c):
                c.execute("DELETE FROM audit WHERE seq = ?", (target,))

            def swap(c):
                a = c.execute("SELECT %s FROM audit WHERE seq = ?" % COLS, (target,)).fetchone()
                b = c.execute("SELECT %s FROM audit WHERE seq = ?" % COLS,
                              (target + 1,)).fetchone()
                sets = ", ".join("%s = ?" % x.strip() for x in COLS.split(","))
                c.execute("UPDATE audit SET %s WHERE seq = ?" % sets, b + (target,))
                c.execute("UPDATE audit SET %s WHERE seq = ?" % sets, a + (target + 1,))

            def swap_seq(c):
                # Reorder by renumbering: the rows keep their content, trade their seq.
                c.execute("UPDATE audit SET seq = -1 WHERE seq = ?", (target,))
                c.execute("UPDATE audit SET seq = ? WHERE seq = ?", (target, target + 1))
                c.execute("UPDATE audit SET seq = ? WHERE seq = -1", (target + 1,))

            def truncate(c):
                c.execute("DELETE FROM audit WHERE seq > ?", (top - 2,))

            cases = [("edited", edit, target), ("deleted", delete, target),
                     ("swapped", swap, target), ("renumbered", swap_seq, target),
                     ("truncated", truncate, top - 1)]
            for name, fn, bad in cases:
                with self.subTest(name):
                    copy = os.path.join(d.tmp, name + ".db")
                    shutil.copyfile(pristine, copy)
                    c = sqlite3.connect(copy)
                    with c:
                        fn(c)
                    c.close()   # checkpoints: the whole change is in the main file
                    # Offline, with the CLI (truncation is caught by the anchor).
                    r = d.cli("audit", "verify", "--db", copy, "--json")
                    self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                    js = json.loads(r.stdout)
                    self.assertIs(js["intact"], False)
                    self.assertEqual(js["first_bad_seq"], bad, js)
                    self.assertIn(str(bad), js["problem"])
                    # Online, after a restart on the damaged database.
                    self.install(d, copy)
                    d.start()
                    try:
                        st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
                        self.assertEqual(st, 200)
                        self.assertIs(js["intact"], False, js)
                        self.assertEqual(js["first_bad_seq"], bad, js)
                        self.assertIn(str(bad), js["problem"])
                        # The daemon keeps working (and auditing) on it.
                        st, _, _ = d.request("harness", "GET", "/v1/grants/" + "e" * 32)
                        self.assertEqual(st, 404)
                        st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
                        self.assertEqual(js["first_bad_seq"], bad, js)
                    finally:
                        d.kill()
            # The untouched copy verifies, offline and online.
            r = d.cli("audit", "verify", "--db", pristine)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.install(d, pristine)
            d.start()
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertIs(js["intact"], True, js)

    def test_concurrent_requests_share_commits(self):
        with cbtest.Deployment() as d:
            d.put_secret("github", SECRET, [HOST])
            s = "sbx-conc"
            g = d.mint(s, "github", HOST)
            seq0 = last_seq(d)
            n, per = 16, 10
            results = []
            lock = threading.Lock()

            def worker(i):
                c = d.connection("proxy")
                try:
                    for j in range(per):
                        sbx = s if (i + j) % 2 == 0 else "sbx-wrong"
                        st, _ = d.resolve(g["token"], sbx, HOST, path="/", conn=c)
                        with lock:
                            results.append(st)
                finally:
                    c.close()

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            self.assertEqual(len(results), n * per)
            recs = grant_records(d, seq0)
            self.assertEqual(len(recs), n * per)
            outcomes = sorted(r["outcome"] for r in recs)
            self.assertEqual(outcomes.count("ok"), results.count(200))
            self.assertEqual(outcomes.count("sandbox_mismatch"), results.count(403))
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertIs(js["intact"], True, js)

    # --- helpers --------------------------------------------------------------------------
    def snapshot(self, d, name):
        """A consistent single-file copy of the deployment's database (WAL included)."""
        dst = os.path.join(d.tmp, name)
        src = sqlite3.connect(os.path.join(d.dir, "credbroker.db"))
        out = sqlite3.connect(dst)
        try:
            src.backup(out)
        finally:
            out.close()
            src.close()
        return dst

    def install(self, d, db):
        """Puts db in place of the (stopped) daemon's database."""
        path = os.path.join(d.dir, "credbroker.db")
        for ext in ("-wal", "-shm"):
            if os.path.exists(path + ext):
                os.unlink(path + ext)
        shutil.copyfile(db, path)


if __name__ == "__main__":
    cbtest.main()
