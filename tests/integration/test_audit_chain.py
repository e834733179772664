"""The audit log against the real daemon (issue 3): every grant request, granted or
refused, leaves exactly one record with the right action and outcome (also under
concurrency, where requests share a commit), records never hold a token or a secret
value, and the chain verification names the record after a row is edited, deleted,
swapped with its neighbour, or the tail is cut off: through GET /v1/audit/verify after a
restart and through the offline `credbroker audit verify --db`. A log rewritten whole by
someone who can write the database but not read the master key (every hash recomputed)
fails the anchor's MAC: the daemon refuses to start on it and both verifications say so;
an anchor whose MAC was deleted is adopted at start-up with a record that says so.
"""

import hashlib
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


def field(v):
    if v is None:
        return b"\x00"
    b = v.encode()
    return b"\x01" + len(b).to_bytes(4, "big") + b


def record_hash(prev, r):
    """A record's hash as src/audit.c computes it; r: seq, ts, then the string fields."""
    return hashlib.sha256(prev + b"cbaudit1" + r[0].to_bytes(8, "big") +
                          r[1].to_bytes(8, "big") + b"".join(field(x) for x in r[2:]))


def launder(rows):
    """An edit for rewrite_chain: the refused resolve becomes a granted one."""
    for r in rows:
        if r[4] == "grant.resolve" and r[5] == "sandbox_mismatch":
            r[5] = "ok"
            return None
    raise AssertionError("no refused resolve to launder")


def rewrite_chain(db, edit):
    """The attacker without the master key: edit(rows) changes the records, then every
    hash is recomputed as src/audit.c does and the anchor's seq and hash follow, its MAC
    bytes left as they were (or dropped when edit returns "drop-mac")."""
    c = sqlite3.connect(db)
    with c:
        rows = [list(r) for r in c.execute(
            "SELECT seq, ts, actor, role, action, outcome, grant_id, sandbox_id, detail"
            " FROM audit ORDER BY seq")]
        drop_mac = edit(rows) == "drop-mac"
        c.execute("DELETE FROM audit")
        prev = bytes(32)
        for r in rows:
            h = record_hash(prev, r)
            c.execute("INSERT INTO audit (seq, ts, actor, role, action, outcome, grant_id,"
                      " sandbox_id, detail, prev_hash, hash)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", r + [prev, h.digest()])
            prev = h.digest()
        (anchor,) = c.execute("SELECT v FROM meta WHERE k = 'audit_head'").fetchone()
        assert len(anchor) == 72, len(anchor)   # seq || hash || MAC
        anchor = rows[-1][0].to_bytes(8, "big") + prev + (b"" if drop_mac else anchor[40:])
        c.execute("UPDATE meta SET v = ? WHERE k = 'audit_head'", (anchor,))
    c.close()


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

    def test_rewritten_log_fails_the_anchor_mac(self):
        with cbtest.Deployment() as d:
            self.log_with_a_refusal(d)
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual((js["intact"], js["authenticated"]), (True, True), js)
            d.kill()
            pristine = self.snapshot(d, "pristine.db")

            forged = os.path.join(d.tmp, "forged.db")
            shutil.copyfile(pristine, forged)
            rewrite_chain(forged, launder)
            # Offline without a key: consistent, and the output says it is unauthenticated.
            r = d.cli("audit", "verify", "--db", forged, "--json")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(json.loads(r.stdout)["authenticated"], False)
            # With the deployment's master key: broken.
            key = os.path.join(d.dir, "master.key")
            r = d.cli("audit", "verify", "--db", forged, "--master-key", key, "--json")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            js = json.loads(r.stdout)
            self.assertIs(js["intact"], False)
            self.assertIn("MAC", js["problem"])
            # In place (master.key next to the database): found without --master-key.
            self.install(d, forged)
            r = d.cli("audit", "verify", "--db", os.path.join(d.dir, "credbroker.db"))
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(b"fails its MAC", r.stdout)
            # The daemon refuses to start on it, and leaves the log as it was.
            before = self.audit_rows(d)
            d.start(wait=False)
            d.proc.wait(timeout=cbtest.START_TIMEOUT)
            self.assertNotEqual(d.kill(), 0)
            self.assertIn("fails its MAC", open(d.log_path).read())
            self.assertEqual(self.audit_rows(d), before)

            # The same with the MAC deleted: adopted at start-up, and the log says so.
            forged2 = os.path.join(d.tmp, "forged2.db")
            shutil.copyfile(pristine, forged2)
            rewrite_chain(forged2, lambda rows: (launder(rows), "drop-mac")[1])
            r = d.cli("audit", "verify", "--db", forged2, "--master-key", key, "--json")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("no MAC", json.loads(r.stdout)["problem"])
            self.install(d, forged2)
            d.start()
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual((js["intact"], js["authenticated"]), (True, True), js)
            adopted = [x for x in d.audit() if x["action"] == "audit.anchor"]
            self.assertEqual([x["outcome"] for x in adopted], ["adopted"], adopted)
            # ... and the verifications say from where on the log is authenticated
            self.assertEqual(js["authenticated_from"], adopted[0]["seq"], js)
            r = d.cli("audit", "verify")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(b"authenticated from record %d" % adopted[0]["seq"], r.stdout)

    def test_altered_schema_refused(self):
        """Whoever writes the file writes its schema too: the log's table made a view (which
        could show the verification other rows than the listings), or a trigger added. The
        daemon refuses to start on it, untouched, and the offline verification says so."""
        with cbtest.Deployment() as d:
            d.put_secret("github", SECRET, [HOST])
            d.mint("sbx-sc", "github", HOST)
            d.kill()
            db = os.path.join(d.dir, "credbroker.db")
            for sql in ("ALTER TABLE audit RENAME TO audit_real;"
                        " CREATE VIEW audit AS SELECT * FROM audit_real",
                        "CREATE TRIGGER t_x AFTER INSERT ON audit BEGIN SELECT 1; END"):
                with self.subTest(sql=sql):
                    pristine = self.snapshot(d, "pristine.db")
                    c = sqlite3.connect(db)
                    c.executescript(sql)
                    c.close()
                    before = self.audit_rows(d)
                    d.start(wait=False)
                    d.proc.wait(timeout=cbtest.START_TIMEOUT)
                    self.assertNotEqual(d.kill(), 0)
                    self.assertIn("schema is not credbroker's", open(d.log_path).read())
                    self.assertEqual(self.audit_rows(d), before)
                    r = d.cli("audit", "verify", "--db", db, "--json")
                    self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                    self.assertIn("schema is not credbroker's", json.loads(r.stdout)["problem"])
                    self.install(d, pristine)
            d.start()
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual((js["intact"], js["authenticated"]), (True, True), js)

    def test_wiped_log_is_adopted(self):
        """A new deployment's log starts with a MAC'd anchor (no adoption); a log wiped
        later, records and anchor, is not taken for a new one."""
        with cbtest.Deployment() as d:
            d.put_secret("github", SECRET, [HOST])
            self.assertEqual([x for x in d.audit() if x["action"] == "audit.anchor"], [])
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual((js["intact"], js["authenticated"], js["authenticated_from"]),
                             (True, True, 1), js)
            d.kill()
            c = sqlite3.connect(os.path.join(d.dir, "credbroker.db"))
            with c:
                c.execute("DELETE FROM audit")
                c.execute("DELETE FROM meta WHERE k = 'audit_head'")
            c.close()
            d.start()
            recs = d.audit()
            self.assertEqual([(x["seq"], x["action"], x["outcome"]) for x in recs[:1]],
                             [(1, "audit.anchor", "adopted")], recs)
            # The verifications say so, though the adoption record is record 1.
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            self.assertEqual((js["intact"], js["authenticated"], js.get("adopted")),
                             (True, True, 1), js)
            r = d.cli("audit", "verify")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(b"adopted", r.stdout)
            d.kill()
            r = d.cli("audit", "verify", "--db", os.path.join(d.dir, "credbroker.db"),
                      "--master-key", os.path.join(d.dir, "master.key"), "--json")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(json.loads(r.stdout).get("adopted"), 1, r.stdout)

    def test_wiped_log_with_the_kek_check_deleted(self):
        """The attacker wipes the log and its anchor and deletes the master key's check
        value too: the database still has its keys, so it is not a new one, and the start
        must not save a fresh anchor with a valid MAC (the wiped log then verified as
        intact and authenticated from record 1) but adopt the missing one."""
        with cbtest.Deployment() as d:
            d.put_secret("github", SECRET, [HOST])
            d.mint("sbx-wipe", "github", HOST)
            d.kill()
            c = sqlite3.connect(os.path.join(d.dir, "credbroker.db"))
            with c:
                c.execute("DELETE FROM audit")
                c.execute("DELETE FROM meta WHERE k IN ('audit_head', 'kek_check')")
                # the keys stay usable next to the ones the start adds
                c.execute("UPDATE data_keys SET state = 'retiring'")
                c.execute("UPDATE signing_keys SET state = 'verify'")
            c.close()
            d.start()
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            recs = d.audit()
            self.assertEqual([(x["seq"], x["action"], x["outcome"]) for x in recs[:1]],
                             [(1, "audit.anchor", "adopted")], (js, recs))
            self.assertEqual(js["authenticated_from"], 1, js)

    def test_rewritten_log_with_its_anchor_deleted_or_malformed(self):
        """The attacker rewrites the log and deletes the anchor, or leaves a malformed one:
        the daemon must not save a valid MAC over the rewritten chain without a record
        that says so (else both verifications report the forged log authenticated)."""
        with cbtest.Deployment() as d:
            self.log_with_a_refusal(d)
            d.kill()
            pristine = self.snapshot(d, "pristine.db")
            key = os.path.join(d.dir, "master.key")

            for how, sql in (("deleted", "DELETE FROM meta WHERE k = 'audit_head'"),
                             ("malformed", "UPDATE meta SET v = x'00' WHERE k = 'audit_head'")):
                forged = os.path.join(d.tmp, "forged-%s.db" % how)
                shutil.copyfile(pristine, forged)
                rewrite_chain(forged, launder)
                c = sqlite3.connect(forged)
                with c:
                    c.execute(sql)
                c.close()
                self.install(d, forged)
                d.start()
                # a request or two: their batch saves the anchor
                d.mint("sbx-after-" + how, "github", HOST)
                st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
                adopted = [x for x in d.audit() if x["action"] == "audit.anchor"]
                d.kill()
                r = d.cli("audit", "verify", "--db", os.path.join(d.dir, "credbroker.db"),
                          "--master-key", key, "--json")
                if js["intact"] and js["authenticated"]:
                    # authenticated from here on only: a record must say so
                    self.assertEqual([x["outcome"] for x in adopted], ["adopted"],
                                     (how, adopted))
                else:
                    self.assertEqual(r.returncode, 1, (how, r.stdout + r.stderr))

    def test_rewritten_log_under_a_running_daemon(self):
        """The attacker rewrites the log of a running daemon and then holds the database's
        write lock until a batch fails: the commit thread must not take the rewritten
        head for its own and save a valid MAC over it."""
        with cbtest.Deployment() as d:
            self.log_with_a_refusal(d)
            db = os.path.join(d.dir, "credbroker.db")

            # the connection that will hold the write lock, opened before the rewrite
            lock = sqlite3.connect(db, isolation_level=None, timeout=10)
            lock.execute("SELECT count(*) FROM audit").fetchall()
            rewrite_chain(db, launder)
            lock.execute("BEGIN IMMEDIATE")
            res = []
            t = threading.Thread(target=lambda: res.append(d.request(
                "harness", "POST", "/v1/grants", timeout=30,
                body={"sandbox_id": "sbx-locked", "ttl_s": 60,
                      "bindings": [{"secret": "github", "host": HOST}]})[0]))
            t.start()
            t.join(timeout=12)   # the batch waits out the busy timeout (5 s) and fails
            lock.execute("ROLLBACK")
            t.join(timeout=30)
            self.assertFalse(t.is_alive())
            self.assertNotEqual(res, [201], "the batch did not fail")
            d.mint("sbx-after", "github", HOST)
            st, js, _ = d.request("admin", "GET", "/v1/audit/verify")
            lock.close()
            self.assertIs(js["intact"], False, js)

    def test_record_appended_after_the_anchor(self):
        """A forged record appended after the anchored one (its hash chained, the anchor
        and its MAC left as they are): both verifications report it and the daemon does
        not start on it (it would continue the chain, and its MAC cover the record)."""
        with cbtest.Deployment() as d:
            d.put_secret("github", SECRET, [HOST])
            d.mint("sbx-rw", "github", HOST)
            d.kill()
            db = os.path.join(d.dir, "credbroker.db")
            c = sqlite3.connect(db)
            with c:
                seq, ts, prev = c.execute(
                    "SELECT seq, ts, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                r = [seq + 1, ts, HARNESS, "harness", "grant.resolve", "ok", None,
                     "sbx-framed", None]
                h = record_hash(prev, r)
                c.execute("INSERT INTO audit (seq, ts, actor, role, action, outcome, grant_id,"
                          " sandbox_id, detail, prev_hash, hash)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", r + [prev, h.digest()])
            c.close()
            r = d.cli("audit", "verify", "--db", db, "--json")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertEqual(json.loads(r.stdout)["first_bad_seq"], seq + 1)
            d.start(wait=False)
            d.proc.wait(timeout=cbtest.START_TIMEOUT)
            self.assertNotEqual(d.kill(), 0)

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
    def log_with_a_refusal(self, d):
        """A secret, a mint and a refused resolve (for launder to make granted)."""
        d.put_secret("github", SECRET, [HOST])
        g = d.mint("sbx-rw", "github", HOST)
        st, _ = d.resolve(g["token"], "sbx-other", HOST)
        self.assertEqual(st, 403)

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

    def audit_rows(self, d):
        """The audit table and its anchor, as stored."""
        c = sqlite3.connect(os.path.join(d.dir, "credbroker.db"))
        try:
            return (c.execute("SELECT * FROM audit ORDER BY seq").fetchall(),
                    c.execute("SELECT v FROM meta WHERE k = 'audit_head'").fetchall())
        finally:
            c.close()

    def install(self, d, db):
        """Puts db in place of the (stopped) daemon's database."""
        path = os.path.join(d.dir, "credbroker.db")
        for ext in ("-wal", "-shm"):
            if os.path.exists(path + ext):
                os.unlink(path + ext)
        shutil.copyfile(db, path)


if __name__ == "__main__":
    cbtest.main()
