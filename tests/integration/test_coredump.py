"""test_coredump.py: a crashing credbrokerd or credproxy leaves no core file (issue 7).

Each daemon is started with RLIMIT_CORE raised to unlimited (as `ulimit -c unlimited`
would) in an empty working directory, then sent SIGSEGV (and SIGABRT). Expected: the
daemon lowered its own core limit to 0 (/proc/PID/limits), the kernel reports no core
dump in the wait status, and no core* file appears in its working directory.

A control process (sleep) started the same way and sent the same signal shows whether
this system writes core files at all; where it does not (core_pattern piped elsewhere,
limits), the wait status and /proc checks still apply. The system's core_pattern is read,
never changed.
"""

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import test_hostile  # noqa: E402

SIGNALS = (signal.SIGSEGV, signal.SIGABRT)


def core_limit(pid):
    """(soft, hard) of 'Max core file size' in /proc/PID/limits, as strings."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                words = line.split()
                return words[4], words[5]
    raise AssertionError("no core limit in /proc/%d/limits" % pid)


def raise_core_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def wait_status(proc, timeout=30):
    """The raw wait status of proc (os.waitpid, so WCOREDUMP can be read). Bounded."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.02) + 1):
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = -1  # reaped here; keep Popen from waiting again
            return status
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("process %d did not die" % proc.pid)


def cores(d):
    return sorted(f for f in os.listdir(d) if f.startswith("core") or f.startswith("vgcore"))


class CoreDumpTest(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.saved_limit = resource.getrlimit(resource.RLIMIT_CORE)
        with open("/proc/sys/kernel/core_pattern") as f:
            cls.pattern = f.read().strip()
        cls.asan = test_hostile.sanitized(cbtest.binary("credbrokerd"))
        cls.d = cbtest.Deployment()
        cls.d.put_secret("core-s", "cs_" + os.urandom(16).hex(), ["localhost"])

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        resource.setrlimit(resource.RLIMIT_CORE, cls.saved_limit)

    def setUp(self):
        self.cwd = tempfile.mkdtemp(prefix="cbcore-", dir=self.d.tmp)

    def control_dumps(self, sig):
        """True when an ordinary process killed by sig leaves a core here."""
        p = subprocess.Popen(["sleep", "30"], cwd=self.cwd, preexec_fn=raise_core_limit)
        time.sleep(0.1)
        os.kill(p.pid, sig)
        st = wait_status(p)
        found = cores(self.cwd)
        for f in found:
            os.unlink(os.path.join(self.cwd, f))
        return os.WCOREDUMP(st) or bool(found)

    def crash(self, proc, sig, what):
        pid = proc.pid
        soft, hard = core_limit(pid)
        self.assertEqual((soft, hard), ("0", "0"),
                         "%s: the core limit is still %s/%s while serving" % (what, soft, hard))
        os.kill(pid, sig)
        st = wait_status(proc)
        self.assertTrue(os.WIFSIGNALED(st), "%s: exited instead of dying by the signal" % what)
        if self.asan:
            # ASan handles SIGSEGV itself and aborts (abort_on_error).
            self.assertIn(os.WTERMSIG(st), (sig, signal.SIGABRT))
        else:
            self.assertEqual(os.WTERMSIG(st), sig)
        self.assertFalse(os.WCOREDUMP(st), "%s: the kernel dumped a core" % what)
        self.assertEqual(cores(self.cwd), [], "%s: a core file appeared" % what)

    def start_broker(self):
        raise_core_limit()
        old = os.getcwd()
        os.chdir(self.cwd)
        try:
            self.d.start()
        finally:
            os.chdir(old)
        return self.d.proc

    def test_broker(self):
        for sig in SIGNALS:
            control = self.control_dumps(sig)
            if not control:
                sys.stderr.write("note: core_pattern %r: no core for the control process; "
                                 "checking the wait status and limits only\n" % self.pattern)
            self.d.kill()
            proc = self.start_broker()
            # Serving something that holds a secret in memory first.
            g = self.d.mint("sbx-core", "core-s", "localhost")
            st, _ = self.d.resolve(g["token"], "sbx-core", "localhost")
            self.assertEqual(st, 200)
            self.crash(proc, sig, "credbrokerd %s" % signal.Signals(sig).name)
            self.d.proc = None
            if self.d._log:
                self.d._log.close()
                self.d._log = None
        self.start_broker()

    def test_broker_keys_locked(self):
        # The vault's keys live in mlock'ed pages (VmLck), where RLIMIT_MEMLOCK allows.
        if not self.d.alive():
            self.start_broker()
        if self.asan:
            raise unittest.SkipTest("ASan turns mlock into a no-op")
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        if os.geteuid() != 0 and soft != resource.RLIM_INFINITY and soft < 64 * 1024:
            raise unittest.SkipTest("RLIMIT_MEMLOCK too small to expect locked keys")
        with open("/proc/%d/status" % self.d.proc.pid) as f:
            lck = [int(line.split()[1]) for line in f if line.startswith("VmLck:")]
        self.assertEqual(len(lck), 1)
        self.assertGreater(lck[0], 0, "no locked memory: keys may be swapped out")

    def test_proxy(self):
        if not os.access(cbtest.binary("credproxy"), os.X_OK):
            raise unittest.SkipTest("credproxy not built")
        if not self.d.alive():
            self.start_broker()
        for sig in SIGNALS:
            self.control_dumps(sig)
            port = cbtest.free_port()
            log = open(os.path.join(self.d.dir, "credproxy-core.log"), "ab")
            try:
                proc = subprocess.Popen(
                    [cbtest.binary("credproxy"), "-c", os.path.join(self.d.dir, "credproxy.conf"),
                     "--listen", "127.0.0.1:%d" % port, "--sandbox-id", "sbx-core"],
                    cwd=self.cwd, preexec_fn=raise_core_limit, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log)
                try:
                    def up():
                        if proc.poll() is not None:
                            raise AssertionError("credproxy exited with %d" % proc.returncode)
                        try:
                            socket.create_connection(("127.0.0.1", port), timeout=1).close()
                            return True
                        except OSError:
                            return False
                    cbtest.wait_until(up, timeout=15, what="credproxy listening")
                    self.crash(proc, sig, "credproxy %s" % signal.Signals(sig).name)
                finally:
                    if proc.returncode is None:
                        proc.kill()
                        proc.wait(timeout=10)
            finally:
                log.close()
                for f in cores(self.cwd):
                    os.unlink(os.path.join(self.cwd, f))


if __name__ == "__main__":
    cbtest.main()
