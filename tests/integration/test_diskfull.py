"""test_diskfull.py: credbrokerd when the file system of its database fills up.

Needs root (a tmpfs is mounted per test; skipped otherwise, or when the mount fails, with
the reason). Each test puts a deployment's database (`database` in credbrokerd.conf) on its
own directory of an 8 MiB tmpfs, the rest of the deployment (and the daemon's log) staying
where cbtest makes it; a filler file then takes every free byte. The tmpfs is unmounted
whatever happens.

FullUnderLoadTest: while harness threads mint single-use grants and proxy threads resolve
grants minted before, the disk fills; an admin puts a secret and rotates both keys; 2,000
expired grants wait for the purge. Checked while full: every answer is JSON, 2xx, 403 or
500 `internal_error` (docs/api.yaml: an audit record that cannot be written fails the
request), none hangs; the log does not grow with the failures (the commit thread says once
that batches fail, not once per request or batch). Then the space is freed: the daemon
recovers by itself (new mints and resolves work, a data-key rotation works, the purge
empties the expired grants, the log says that batches commit again), and after a restart:
every grant answered 201 resolves (durable), no single-use grant was honoured twice, every
200 resolve and 201 mint has its audit record, `credbroker audit verify --db` passes and
PRAGMA integrity_check is ok.

StartTest: the daemon started on the full disk refuses to start with a message that
says the file system is full (not "damaged" or "not a readable SQLite database": an
operator would restore a backup for nothing), and an offline --rotate-master-key refuses
the same way changing nothing; once the space is back, the daemon starts with the old
key and the grants minted before resolve.

ReadOnlyTest: a database its user (nobody) may only read (mode 0400): SQLite opens it
read-only without a word (and BEGIN IMMEDIATE still works in WAL mode), so the daemon must
refuse at start-up instead of reporting "ready" and failing writes later.
"""

import base64
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

HOST = "api.example.com"
FS_SIZE = "8m"
EXPIRED = 2000


@unittest.skipUnless(os.geteuid() == 0, "needs root (mounts a tmpfs to fill it)")
class TmpfsCase(cbtest.TestCase):
    """Mounts a tmpfs for each test (skips with the reason when it cannot)."""

    def setUp(self):
        self.mnt = tempfile.mkdtemp(prefix="cbdiskfull-", dir="/tmp")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + FS_SIZE + ",mode=0711",
                            "tmpfs", self.mnt], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        if r.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.decode(errors="replace").strip())
        self.addCleanup(self.unmount)

    def unmount(self):
        subprocess.run(["umount", self.mnt], timeout=30)
        try:
            os.rmdir(self.mnt)
        except OSError:
            pass

    def deployment(self, name, conf=None, owner=None):
        """A deployment (not started) whose database is MNT/name/credbroker.db."""
        d = cbtest.Deployment(conf=conf, start=False)
        data = os.path.join(self.mnt, name)
        os.makedirs(data, mode=0o700)
        db = os.path.join(data, "credbroker.db")
        shutil.copy2(os.path.join(d.dir, "credbroker.db"), db)
        if owner is not None:
            os.chown(data, owner.pw_uid, owner.pw_gid)
            os.chown(db, owner.pw_uid, owner.pw_gid)
        with open(d.conf_path) as f:
            text = f.read()
        with open(d.conf_path, "w") as f:
            f.write(cbtest._set_keyword(text, "database", db))
        d.db = db
        d.filler = os.path.join(data, "filler")
        return d

    def assert_log_intact(self, d):
        """`credbroker audit verify --db` passes on d's database (the daemon stopped)."""
        r = d.cli("audit", "verify", "--db", d.db)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    @staticmethod
    def fill(path):
        """Writes path until the file system has no byte left (bounded)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 65536, 4096, 512, 1):
                for _ in range(64 * 1024 * 1024 // size + 1):
                    try:
                        if os.write(fd, b"\0" * size) < size:
                            break
                    except OSError:
                        break
        finally:
            os.close(fd)

    @staticmethod
    def unfill(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def start_outcome(self, d, timeout=30, as_user=None):
        """Starts d without waiting (as_user: a pwd entry to run it as, without root at
        all, as a systemd User= unit does); "exited" or "serving"."""
        if as_user is None:
            d.start(wait=False)
        else:
            d._log = open(d.log_path, "ab")
            d.proc = subprocess.Popen(
                ["setpriv", "--reuid", str(as_user.pw_uid), "--regid", str(as_user.pw_gid),
                 "--clear-groups", cbtest.binary("credbrokerd"), "-c", d.conf_path],
                stdin=subprocess.DEVNULL, stdout=d._log, stderr=d._log)
        return d.outcome(timeout)


def sandbox_of(js):
    """The sandbox (claim sub) of a mint answer's token."""
    payload = js["token"][len("cbt_"):].split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["sub"]


def mint_body(sandbox, max_uses=1):
    return {"sandbox_id": sandbox, "ttl_s": 600, "max_uses": max_uses,
            "bindings": [{"secret": "gh", "host": HOST}]}


class FullUnderLoadTest(TmpfsCase):
    def add_expired(self, d, n):
        """n expired grants, written beside the running daemon (as a past load would)."""
        now = int(time.time())
        c = sqlite3.connect(d.db, timeout=10)
        try:
            cols = [r[1] for r in c.execute("PRAGMA table_info(grants)")]
            row = dict(zip(cols, c.execute("SELECT * FROM grants LIMIT 1").fetchone()))
            rows = []
            for i in range(n):
                r = dict(row)
                r.update(id="%044x" % i, expires_at=now - 3600 - i, created_at=now - 7200,
                         not_before=now - 7200)
                rows.append(tuple(r[k] for k in cols))
            c.executemany("INSERT INTO grants VALUES (%s)" % ",".join("?" * len(cols)), rows)
            c.commit()
        finally:
            c.close()

    def count_expired(self, d):
        c = sqlite3.connect(d.db, timeout=10)
        try:
            return c.execute("SELECT count(*) FROM grants WHERE expires_at < ?",
                             (int(time.time()) - 600,)).fetchone()[0]
        finally:
            c.close()

    def test_full_under_load(self):
        d = self.deployment("load", conf={"purge_interval": "1"})
        try:
            d.start()
            d.put_secret("gh", "ghp_real", [HOST])
            pre = [d.mint("sbx-pre", "gh", HOST, max_uses=1) for _ in range(16)]
            self.add_expired(d, EXPIRED)
            lock = threading.Lock()
            answers = []          # (kind, status, body, grant id or None)
            deadline = time.monotonic() + 10

            def record(kind, st, js, gid):
                with lock:
                    answers.append((kind, st, js, gid))

            def minter(k):
                for _ in range(300):
                    if time.monotonic() > deadline:
                        break
                    st, js, _ = d.request("harness", "POST", "/v1/grants",
                                          body=mint_body("sbx-load"), timeout=20)
                    record("mint", st, js, js.get("grant_id") if st == 201 else None)

            def resolver(k):
                for g in pre[k::2]:
                    st, js = d.resolve(g["token"], "sbx-pre", HOST)
                    record("resolve", st, js, g["grant_id"])
                    time.sleep(0.3)

            threads = [threading.Thread(target=minter, args=(k,)) for k in range(3)]
            threads += [threading.Thread(target=resolver, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            log0 = len(d.log().splitlines())
            self.fill(d.filler)
            # An admin at work on the full disk.
            admin = [d.request("admin", "PUT", "/v1/secrets/other",
                               body={"value": "v", "hosts": [HOST]}, timeout=20),
                     d.request("admin", "POST", "/v1/keys/rotate", body={"kind": "data"},
                               timeout=20),
                     d.request("admin", "POST", "/v1/keys/rotate", body={"kind": "signing"},
                               timeout=20)]
            for t in threads:
                t.join(60)
                self.assertFalse(t.is_alive(), "a client thread hangs")
            self.assertTrue(d.alive(), "credbrokerd died on the full disk:\n" + d.log_tail())
            full_log = d.log().splitlines()[log0:]
            self.unfill(d.filler)

            failed = 0
            for kind, st, js, _ in answers:
                self.assertIsNotNone(js, "%s: %d without a JSON body" % (kind, st))
                self.assertIn(st, (200, 201, 403, 500), (kind, st, js))
                if st == 500:
                    self.assertEqual(js, {"error": "internal_error"})
                    failed += 1
            for st, js, _ in admin:
                self.assertIn(st, (200, 201, 500), (st, js))
                self.assertIsNotNone(js)
            # The log says a version is stored only once it is (it said so before the commit).
            self.assertEqual("secret other: version 1 stored" in d.log(), admin[0][0] == 201,
                             "put answered %d" % admin[0][0])
            self.assertGreater(failed, 20, "the disk never refused a write: %r"
                               % [a[:2] for a in answers][:20])
            # What an operator alerts on: the failed group commits are counted.
            st, _, raw = d.request("admin", "GET", "/metrics")
            self.assertEqual(st, 200)
            counts = [int(line.split()[1]) for line in raw.decode().splitlines()
                      if line.startswith("credbroker_commit_failed_batches_total ")]
            self.assertEqual(len(counts), 1, raw[:400])
            self.assertGreater(counts[0], 0)
            # One line per request (the access log) is expected; the failure itself is
            # told once, not once per request or per batch.
            extra = [line for line in full_log if "server_log" not in line]
            self.assertLess(len(extra), 30, "%d log lines besides the access log while %d "
                            "requests failed:\n%s" % (len(extra), failed,
                                                      "\n".join(extra[:12])))

            # Recovery without a restart.
            def recovered():
                st, js, _ = d.request("harness", "POST", "/v1/grants",
                                      body=mint_body("sbx-after"), timeout=20)
                if st == 201:
                    record("mint", st, js, js["grant_id"])
                return st == 201 and "batches commit again" in d.log()
            cbtest.wait_until(recovered, timeout=20, interval=0.5,
                              what="mints again and the log says so")
            st, js, raw = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": "data"})
            self.assertEqual(st, 200, raw)
            cbtest.wait_until(lambda: self.count_expired(d) == 0, timeout=20, interval=0.5,
                              what="the purge to delete the expired grants")

            # Durability, checked after a restart: what was answered is what is on disk.
            d.restart()
            minted = {gid: js for kind, st, js, gid in answers if kind == "mint" and st == 201}
            for gid, js in minted.items():
                st, body = d.resolve(js["token"], sandbox_of(js), HOST)
                self.assertEqual(st, 200, "grant %s answered 201, then %d %r"
                                 % (gid, st, body))
            honoured = {}
            for kind, st, js, gid in answers:
                if kind == "resolve" and st == 200:
                    honoured[gid] = honoured.get(gid, 0) + 1
            for g in pre:
                st, body = d.resolve(g["token"], "sbx-pre", HOST)
                if st == 200:
                    honoured[g["grant_id"]] = honoured.get(g["grant_id"], 0) + 1
                else:
                    self.assertEqual(body, {"error": "used_up"})
            for gid, n in honoured.items():
                self.assertEqual(n, 1, "single-use grant %s honoured %d times" % (gid, n))
            self.assertEqual(len(honoured), len(pre), "a single-use grant was lost")
            self.assertEqual(d.kill(), 0)

            c = sqlite3.connect(d.db)
            try:
                self.assertEqual(c.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
                ok = set(c.execute("SELECT action, grant_id FROM audit WHERE outcome = 'ok'"))
            finally:
                c.close()
            self.assertEqual(cbtest.keys_without_record(d.db), [],
                             "keys active without their key.rotate record")
            for kind, st, js, gid in answers:
                if st in (200, 201):
                    action = "grant.mint" if kind == "mint" else "grant.resolve"
                    self.assertIn((action, gid), ok, "%s %d without its audit record"
                                  % (kind, st))
            self.assert_log_intact(d)
        finally:
            self.unfill(d.filler)
            d.stop()


class StartTest(TmpfsCase):
    def test_start_and_rotate_on_full_disk(self):
        d = self.deployment("start")
        try:
            d.start()
            d.put_secret("gh", "ghp_real", [HOST])
            g = d.mint("sbx-1", "gh", HOST)
            self.assertEqual(d.kill(), 0)
            self.fill(d.filler)

            log0 = len(d.log())
            self.assertEqual(self.start_outcome(d), "exited",
                             "started on a full disk:\n" + d.log_tail())
            self.assertNotEqual(d.kill(), 0)
            said = d.log()[log0:]
            self.assertIn("full", said)
            self.assertNotIn("damaged", said)
            self.assertNotIn("not a readable", said)

            newkey = os.path.join(d.dir, "new.key")
            with open(newkey, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
            os.chmod(newkey, 0o600)
            with open(os.path.join(d.dir, "master.key")) as f:
                oldkey = f.read()
            r = subprocess.run([cbtest.binary("credbrokerd"), "-c", d.conf_path,
                                "--rotate-master-key", "--new-key", newkey],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            err = r.stderr.decode(errors="replace")
            self.assertEqual(r.returncode, 1, err)
            self.assertIn("full", err)
            self.assertNotIn("not a readable", err)
            self.assertTrue(os.path.exists(newkey))
            self.assertFalse(os.path.exists(os.path.join(d.dir, "master.key.old")))
            with open(os.path.join(d.dir, "master.key")) as f:
                self.assertEqual(f.read(), oldkey)

            self.unfill(d.filler)
            self.assertEqual(self.start_outcome(d), "serving", d.log_tail())
            self.assertEqual(d.resolve(g["token"], "sbx-1", HOST)[0], 200)
            self.assertEqual(d.kill(), 0)
            self.assert_log_intact(d)
        finally:
            self.unfill(d.filler)
            d.stop()


class RotationAnswerTest(TmpfsCase):
    def test_rotation_failed_only_with_its_record(self):
        """`rotation_failed` is answered when a record says so (api.yaml); a rotation that
        cannot be written, on a full disk that then loses its record too, is
        `internal_error` (nothing durable), as for any other request."""
        d = self.deployment("rot")
        try:
            d.start()
            d.put_secret("gh", "ghp_real", [HOST])
            c = sqlite3.connect(d.db, timeout=10)
            try:
                good = c.execute("SELECT v FROM meta WHERE k = 'kek_check'").fetchone()[0]
                # As if another process had re-keyed the database: no key can be written.
                c.execute("UPDATE meta SET v = ? WHERE k = 'kek_check'", (b"\0" * len(good),))
                c.commit()
            finally:
                c.close()
            before = len([r for r in d.audit() if r["action"] == "key.rotate"])
            self.fill(d.filler)
            st, js, raw = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": "signing"},
                                    timeout=20)
            self.unfill(d.filler)
            self.assertEqual((st, js), (500, {"error": "internal_error"}), raw)
            recs = [r for r in d.audit() if r["action"] == "key.rotate"]
            self.assertEqual(len(recs), before, "a record of a rotation answered as not durable")
            # With space: the refusal is written, and answered as such.
            st, js, raw = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": "signing"})
            self.assertEqual((st, js), (500, {"error": "rotation_failed"}), raw)
            recs = [r for r in d.audit() if r["action"] == "key.rotate"]
            self.assertEqual([(r["outcome"], r["detail"]) for r in recs[before:]],
                             [("rotation_failed", "signing")])
            c = sqlite3.connect(d.db, timeout=10)
            try:
                c.execute("UPDATE meta SET v = ? WHERE k = 'kek_check'", (good,))
                c.commit()
            finally:
                c.close()
            st, js, raw = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": "signing"})
            self.assertEqual(st, 200, raw)
            self.assertEqual(cbtest.keys_without_record(d.db), [])
        finally:
            self.unfill(d.filler)
            d.stop()


class RefusalAnswerTest(TmpfsCase):
    def test_refusal_without_its_record_fails(self):
        """A refusal whose audit record cannot be written is not answered as the refusal
        (DESIGN: if the audit write fails, the request fails; docs/api.yaml: 500
        `internal_error`), for an admin request refused before the commit (GET of an
        unknown secret) and one refused in the transaction (DELETE of an unknown secret);
        the answer a proxy's refused resolve gets (grant.c) is the same. With space again,
        each is answered as the refusal with its record."""
        d = self.deployment("refusal")
        try:
            d.start()
            d.put_secret("gh", "ghp_real", [HOST])
            calls = [("GET", "/v1/secrets/nosuch", "secret.show"),
                     ("DELETE", "/v1/secrets/nosuch", "secret.delete")]
            # GET /v1/audit appends its own audit.list record: those are left out.
            def recs_since(before):
                return [r for r in d.audit() if r["seq"] > before
                        and r["action"] != "audit.list"]
            before = d.audit()[-1]["seq"]
            self.fill(d.filler)
            try:
                for method, path, _ in calls:
                    st, js, raw = d.request("admin", method, path, timeout=20)
                    self.assertEqual((st, js), (500, {"error": "internal_error"}),
                                     (method, path, raw))
                st, js = d.resolve("cbt_" + "A" * 40, "sbx-1", HOST)[:2]
                self.assertEqual((st, js), (500, {"error": "internal_error"}))
            finally:
                self.unfill(d.filler)
            self.assertEqual(recs_since(before), [],
                             "records of requests answered as not durable")
            for method, path, action in calls:
                st, js, raw = d.request("admin", method, path)
                self.assertEqual((st, js), (404, {"error": "not_found"}), (method, path, raw))
            self.assertEqual([(r["action"], r["outcome"]) for r in recs_since(before)],
                             [(a, "not_found") for _, _, a in calls])
            self.assertEqual(d.kill(), 0)
            self.assert_log_intact(d)
        finally:
            self.unfill(d.filler)
            d.stop()


class ReadOnlyTest(TmpfsCase):
    def test_read_only_database_refused(self):
        try:
            pw = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user 'nobody' on this system")
        if pw.pw_uid == 0:
            self.skipTest("'nobody' is uid 0 here")
        d = self.deployment("ro", conf={"user": "nobody"}, owner=pw)
        try:
            os.chmod(d.tmp, 0o711)
            os.chmod(d.db, 0o400)
            outcome = self.start_outcome(d)
            if outcome == "serving":
                st, _, raw = d.request("admin", "POST", "/v1/keys/rotate",
                                       body={"kind": "signing"})
                self.fail("started with a database nobody can only read; a signing-key "
                          "rotation: %d %r" % (st, raw[:100]))
            self.assertNotEqual(d.kill(), 0)
            self.assertIn("cannot be opened for writing", d.log())
        finally:
            d.stop()

    def test_read_only_database_refused_unprivileged(self):
        """The same database, with the daemon started as its user directly (no `user`
        line, no privilege drop): refused too, not 'ready' with every write failing."""
        if shutil.which("setpriv") is None:
            self.skipTest("no setpriv (util-linux) to start the daemon as nobody")
        try:
            pw = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user 'nobody' on this system")
        if pw.pw_uid == 0:
            self.skipTest("'nobody' is uid 0 here")
        # The whole deployment on the tmpfs (mode 0711): the build tree's ancestors may be
        # closed to nobody (a checkout under /root, a mktemp -d directory).
        saved = os.environ.get("CB_TMPDIR")
        os.environ["CB_TMPDIR"] = self.mnt
        try:
            d = self.deployment("ro-user", owner=pw)
        finally:
            if saved is None:
                del os.environ["CB_TMPDIR"]
            else:
                os.environ["CB_TMPDIR"] = saved
        try:
            for top in (d.tmp, os.path.dirname(d.db)):
                os.chown(top, pw.pw_uid, pw.pw_gid)
                for root, dirs, files in os.walk(top):
                    for n in dirs + files:
                        os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
            os.chmod(d.db, 0o400)
            outcome = self.start_outcome(d, as_user=pw)
            if outcome == "serving":
                st, _, raw = d.request("admin", "POST", "/v1/keys/rotate",
                                       body={"kind": "signing"})
                self.fail("started as nobody on a database nobody can only read; a "
                          "signing-key rotation: %d %r" % (st, raw[:100]))
            self.assertNotEqual(d.kill(), 0)
            self.assertIn("cannot be opened for writing", d.log())
            # Writable again (SQLite gave the -wal and -shm it made the file's mode 0400
            # too): it starts, the check refuses nothing legitimate.
            for n in os.listdir(os.path.dirname(d.db)):
                os.chmod(os.path.join(os.path.dirname(d.db), n), 0o600)
            self.assertEqual(self.start_outcome(d, as_user=pw), "serving", d.log_tail())
            self.assertEqual(d.kill(), 0)
        finally:
            d.stop()


if __name__ == "__main__":
    cbtest.main()
