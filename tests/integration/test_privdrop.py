"""test_privdrop.py: credbrokerd started as root drops to `user nobody` (issue 7).

Needs root (skipped otherwise, with a message). Set-up: the deployment directory and the
database belong to nobody (SQLite creates its -wal/-shm and opens new connections after the
drop); the master key and the TLS key stay root's 0600 files: the daemon reads them as root
before dropping, and the master key must be owned by the user the daemon runs as when it
checks it.

Checked: every thread of the daemon runs with uid/gid nobody (/proc/PID/task/*/status,
all four IDs) and no supplementary groups; it is still not dumpable after the drop (its
/proc files stay root-owned); it serves everything (put, mint, resolve, revoke, a data-key
and a signing-key rotation, audit); it stops cleanly on SIGTERM. A master key with group or
other access is refused even when started as root.
"""

import http.client
import os
import pwd
import shutil
import signal
import ssl
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

HOST = "api.example.com"


def ids(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    raise AssertionError("no %s in %s" % (key, path))


@unittest.skipUnless(os.geteuid() == 0, "needs root (started as root, drops to nobody)")
class PrivDropTest(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            cls.pw = pwd.getpwnam("nobody")
        except KeyError:
            raise unittest.SkipTest("no user 'nobody' on this system")
        if cls.pw.pw_uid == 0:
            raise unittest.SkipTest("'nobody' is uid 0 here")
        # Deployments in a directory nobody can traverse to (the build tree may not be).
        cls.saved_tmp = os.environ.get("CB_TMPDIR")
        cls.root = tempfile.mkdtemp(prefix="cbprivdrop-", dir="/tmp")
        os.chmod(cls.root, 0o711)
        os.environ["CB_TMPDIR"] = cls.root

    @classmethod
    def tearDownClass(cls):
        if cls.saved_tmp is None:
            os.environ.pop("CB_TMPDIR", None)
        else:
            os.environ["CB_TMPDIR"] = cls.saved_tmp
        shutil.rmtree(cls.root, ignore_errors=True)

    def deployment(self):
        d = cbtest.Deployment(conf={"user": "nobody"}, start=False)
        uid, gid = self.pw.pw_uid, self.pw.pw_gid
        os.chmod(d.tmp, 0o711)
        os.chown(d.dir, uid, gid)
        db = os.path.join(d.dir, "credbroker.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.chown(db + suffix, uid, gid)
        return d

    def test_runs_as_nobody(self):
        uid, gid = str(self.pw.pw_uid), str(self.pw.pw_gid)
        with self.deployment() as d:
            d.start()
            pid = d.proc.pid
            tasks = os.listdir("/proc/%d/task" % pid)
            self.assertGreater(len(tasks), 1)
            for t in tasks:
                st = "/proc/%d/task/%s/status" % (pid, t)
                self.assertEqual(ids(st, "Uid"), [uid] * 4, "thread %s" % t)
                self.assertEqual(ids(st, "Gid"), [gid] * 4, "thread %s" % t)
                self.assertIn(ids(st, "Groups"), ([], [gid]), "thread %s" % t)
            # Not dumpable after the credential change: /proc/PID stays root's.
            self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0,
                             "the daemon became dumpable again after dropping privileges")
            self.assertIn("running as nobody", d.log())

            # It still does everything, with connections opened after the drop.
            value = "pd_" + os.urandom(16).hex()
            d.put_secret("pd", value, [HOST])
            g = d.mint("sbx-pd", "pd", HOST)
            st, js = d.resolve(g["token"], "sbx-pd", HOST)
            self.assertEqual(st, 200, js)
            self.assertEqual(js["headers"][0]["value"], "Bearer " + value)
            for kind in ("data", "signing"):
                st, js, raw = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": kind})
                self.assertEqual(st, 200, raw[:300])
            st, js = d.resolve(g["token"], "sbx-pd", HOST)
            self.assertEqual(st, 200, js)
            st, _, raw = d.request("harness", "DELETE", "/v1/grants/" + g["grant_id"])
            self.assertEqual(st, 200, raw[:300])
            st, js = d.resolve(g["token"], "sbx-pd", HOST)
            self.assertEqual((st, js.get("error")), (403, "revoked"))
            self.assertGreater(len(d.audit()), 5)
            db = os.path.join(d.dir, "credbroker.db")
            for suffix in ("-wal", "-shm"):
                if os.path.exists(db + suffix):
                    self.assertEqual(os.stat(db + suffix).st_uid, self.pw.pw_uid,
                                     "credbroker.db%s is not the daemon user's" % suffix)
            self.assertEqual(d.kill(signal.SIGTERM), 0, d.log_tail())
            r = d.cli("audit", "verify", "--db", db)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_restart_as_nobody(self):
        # Files the first run created (WAL, shm) do not stop the second.
        with self.deployment() as d:
            d.start()
            d.put_secret("pd2", "pd_" + os.urandom(8).hex(), [HOST])
            d.kill(signal.SIGKILL)
            d.start()
            g = d.mint("sbx-pd2", "pd2", HOST)
            st, _ = d.resolve(g["token"], "sbx-pd2", HOST)
            self.assertEqual(st, 200)

    def test_database_not_accessible_refused(self):
        # The user cannot open the database (left root's 0600): SQLite connections opened
        # after the drop (readers, the rotation writer) would fail on every request. The
        # daemon must find out at start-up and refuse, not report "ready" and answer 500.
        d = cbtest.Deployment(conf={"user": "nobody"}, start=False)
        try:
            os.chmod(d.tmp, 0o711)
            os.chmod(d.dir, 0o711)
            d.start(wait=False)

            def outcome():
                if d.proc.poll() is not None:
                    return "exited"
                try:
                    return "serving" if d.request("admin", "GET", "/healthz",
                                                  timeout=2)[0] == 200 else None
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    return None
            rc = None
            if cbtest.wait_until(outcome, timeout=30, what="exit or /healthz") == "exited":
                rc = d.proc.returncode
            if rc is None:
                # Serving: show what a client gets.
                st, _, raw = d.request("admin", "GET", "/v1/secrets")
                self.fail("started with a database user nobody cannot open; GET /v1/secrets: "
                          "%d %r" % (st, raw[:100]))
            self.assertNotEqual(rc, 0)
            self.assertIn("credbroker.db", d.log())
        finally:
            d.stop()

    def test_master_key_mode_refused_as_root(self):
        with self.deployment() as d:
            mk = os.path.join(d.dir, "master.key")
            os.chmod(mk, 0o640)
            d.start(wait=False)
            try:
                rc = d.proc.wait(timeout=30)
            finally:
                d.kill()
            self.assertNotEqual(rc, 0)
            self.assertIn("master.key", d.log())
            self.assertRegex(d.log(), r"0640|mode")


if __name__ == "__main__":
    cbtest.main()
