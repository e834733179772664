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

credproxy (`user nobody` in its configuration): it reads the sandbox CA key (left root's
0600, so it must be read before the drop), the upstream CA and the map, binds, then drops.
libcurl reads the broker client certificate, its key and the broker CA at every new
connection to the broker, so those are given to nobody (and a key nobody cannot read is
refused at start-up). Checked: every thread runs as nobody, not dumpable, it proxies a
request with the real credential injected, a SIGHUP map reload (file readable by nobody)
takes effect after the drop, and one the user cannot read is refused while the running
map stays; SIGTERM exits 0.
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import echo_upstream  # noqa: E402
import test_proxy  # noqa: E402

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
            rc = None
            if d.outcome() == "exited":
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

    def proxy_files_for_nobody(self, d):
        """The files credproxy reads after its drop: the broker client certificate and key
        (libcurl reads them at each connection) and the broker CA; pki/ becomes
        traversable. The sandbox CA key stays root's 0600."""
        pki = os.path.join(d.dir, "pki")
        os.chmod(pki, 0o711)
        for f in ("proxy.pem", "proxy.key"):
            os.chown(os.path.join(pki, f), self.pw.pw_uid, self.pw.pw_gid)
        os.chmod(os.path.join(pki, "ca.pem"), 0o644)
        sca = os.stat(os.path.join(pki, "sandbox-ca.key"))
        self.assertEqual((sca.st_uid, sca.st_mode & 0o777), (0, 0o600))

    def through_proxy(self, d, p, token, up_port):
        return test_proxy.echo_through(d, p.port, up_port, token)

    def test_proxy_runs_as_nobody(self):
        uid, gid = str(self.pw.pw_uid), str(self.pw.pw_gid)
        with self.deployment() as d:
            d.start()
            self.proxy_files_for_nobody(d)
            up_ca, crt, key = echo_upstream.make_certs(os.path.join(d.tmp, "upstream"))
            srv, up_port = echo_upstream.serve(crt, key)
            p = None
            try:
                value = "pdp_" + os.urandom(16).hex()
                d.put_secret("pdp", value, ["localhost"])
                g = d.mint("sbx-pdp", "pdp", "localhost", port=up_port)
                # The map names another sandbox for 127.0.0.1 at first: refused until reload.
                p = test_proxy.Proxy(d, "pd", ["--upstream-ca", up_ca, "--allow-private"],
                                     ["user nobody", "sandbox 127.0.0.1/32 sbx-other"])
                pid = p.proc.pid
                # Accepting starts a moment before the drop: wait for the last start-up line.
                cbtest.wait_until(lambda: "listening on" in p.log(), timeout=10 * test_proxy.SLOW,
                                  what="credproxy start-up")
                tasks = os.listdir("/proc/%d/task" % pid)
                self.assertGreater(len(tasks), 1)
                for t in tasks:
                    st = "/proc/%d/task/%s/status" % (pid, t)
                    self.assertEqual(ids(st, "Uid"), [uid] * 4, "thread %s" % t)
                    self.assertEqual(ids(st, "Gid"), [gid] * 4, "thread %s" % t)
                    self.assertIn(ids(st, "Groups"), ([], [gid]), "thread %s" % t)
                self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0,
                                 "credproxy became dumpable again after dropping privileges")
                self.assertIn("running as nobody", p.log())

                st, body, _ = self.through_proxy(d, p, g["token"], up_port)
                self.assertEqual(st, 403, body[:200])

                # SIGHUP after the drop: the file is readable by nobody, the new map applies.
                with open(p.conf) as f:
                    text = f.read()
                with open(p.conf, "w") as f:
                    f.write(text.replace("sbx-other", "sbx-pdp"))
                p.proc.send_signal(signal.SIGHUP)
                cbtest.wait_until(lambda: "reloaded" in p.log(), timeout=10 * test_proxy.SLOW,
                                  what="credproxy reload")
                st, body, got = self.through_proxy(d, p, g["token"], up_port)
                self.assertEqual(st, 200, body[:300])
                self.assertEqual([v for k, v in got if k.lower() == "authorization"],
                                 ["Bearer " + value])
                self.assertNotIn(value.encode(), body)

                # A map the user cannot read: the reload fails, the running map stays.
                os.chmod(p.conf, 0o600)
                with open(p.conf, "w") as f:
                    f.write(text)	# would map 127.0.0.1 to sbx-other again
                p.proc.send_signal(signal.SIGHUP)
                cbtest.wait_until(lambda: "reload failed" in p.log(),
                                  timeout=10 * test_proxy.SLOW, what="refused reload")
                st, body, _ = self.through_proxy(d, p, g["token"], up_port)
                self.assertEqual(st, 200, body[:300])
                self.assertEqual(p.stop(), 0, p.log()[-2000:])
                p = None
            finally:
                if p is not None:
                    p.stop()
                srv.shutdown()
                srv.server_close()

    def test_proxy_key_not_readable_refused(self):
        # The broker client key left root's 0600: libcurl would fail every reconnect to
        # the broker after the drop. credproxy must refuse at start-up and name the file.
        with self.deployment() as d:
            d.start()
            self.proxy_files_for_nobody(d)
            key = os.path.join(d.dir, "pki", "proxy.key")
            os.chown(key, 0, 0)
            os.chmod(key, 0o600)
            conf = os.path.join(d.dir, "credproxy-pdk.conf")
            with open(os.path.join(d.dir, "credproxy.conf")) as f:
                text = f.read()
            with open(conf, "w") as f:
                f.write(text + "user nobody\n")
            r = subprocess.run(test_proxy.VALGRIND + [
                cbtest.binary("credproxy"), "-c", conf, "--listen",
                "127.0.0.1:%d" % cbtest.free_port(), "--sandbox-id", "sbx-pdk"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                timeout=60 * test_proxy.SLOW)
            err = r.stderr.decode(errors="replace")
            self.assertEqual(r.returncode, 1, err)
            self.assertIn("proxy.key", err)
            self.assertIn("nobody", err)

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
