"""test_seccomp.py: both daemons serve under their seccomp filter by default (issue 7).

With the configuration `credbroker init` writes (no `seccomp` line: the default is yes on
Linux), credbrokerd and credproxy run in seccomp filter mode (`Seccomp: 2` in
/proc/PID/status, on every thread: the filter is installed with TSYNC once the daemon
serves, so threads started before it have it too) and still do the whole job under it:
put, mint, a resolve through the proxy to a real TLS upstream (the proxy dials the broker
and the upstream and resolves "localhost" after the filter is in place), data-key and
signing-key rotation, revoke, audit, metrics, a SIGHUP map reload of the proxy and a SIGTERM
drain of both (exit 0). With `seccomp no` both run without a filter (`Seccomp: 0`).

That a forbidden call (execve, ptrace, mount, socket(AF_PACKET), ...) kills the process is
shown by tests/test_priv.c. valgrind 3.19 cannot run seccomp filters: under CB_VALGRIND
cbtest writes `seccomp no` into both configurations and the filter-on case is skipped.
"""

import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import echo_upstream  # noqa: E402
import test_proxy  # noqa: E402

SANDBOX = "sbx-sc"


def status_field(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    raise AssertionError("no %s in %s" % (key, path))


class SeccompTest(cbtest.TestCase):
    def setUp(self):
        self.up_srv = None
        self.proxies = []
        self.d = None

    def tearDown(self):
        for p in self.proxies:
            if p.proc.poll() is None:
                p.stop()
        if self.up_srv is not None:
            self.up_srv.shutdown()
            self.up_srv.server_close()
        if self.d is not None:
            self.d.stop()

    def start(self, conf, proxy_extra):
        self.d = d = cbtest.Deployment(conf=conf)
        self.up_ca, crt, key = echo_upstream.make_certs(os.path.join(d.tmp, "upstream"))
        self.up_srv, self.up_port = echo_upstream.serve(crt, key)
        self.real = "sc_REAL" + os.urandom(12).hex()
        d.put_secret("sc", self.real, ["localhost"])
        p = test_proxy.Proxy(d, "sc", ["--upstream-ca", self.up_ca, "--allow-private",
                                       "--sandbox-id", SANDBOX], proxy_extra)
        self.proxies.append(p)
        # The sockets accept a moment before the filter is in place: wait for the lines
        # logged after it (credbrokerd "ready", credproxy "listening on").
        cbtest.wait_until(lambda: "ready" in d.log() and "listening on" in p.log(),
                          timeout=10 * test_proxy.SLOW, what="start-up complete")
        return d, p

    def assert_mode(self, pid, want, what):
        """Seccomp mode `want` on the process and on every one of its threads."""
        self.assertEqual(status_field("/proc/%d/status" % pid, "Seccomp"), want, what)
        tasks = os.listdir("/proc/%d/task" % pid)
        for t in tasks:
            self.assertEqual(status_field("/proc/%d/task/%s/status" % (pid, t), "Seccomp"),
                             want, "%s thread %s" % (what, t))
        return len(tasks)

    def through_proxy(self, p, token):
        """GET /echo on the upstream through the proxy's CONNECT tunnel with the token.
        Returns (status, body, headers the upstream received)."""
        return test_proxy.echo_through(self.d, p.port, self.up_port, token)

    def full_flow(self, d, p):
        g = d.mint(SANDBOX, "sc", "localhost", port=self.up_port)
        st, body, got = self.through_proxy(p, g["token"])
        self.assertEqual(st, 200, body[:300])
        self.assertIsNotNone(got, "the upstream saw no request")
        self.assertEqual([v for k, v in got if k.lower() == "authorization"],
                         ["Bearer " + self.real])
        self.assertNotIn(self.real.encode(), body)
        for kind in ("data", "signing"):
            st, _, raw = d.request("admin", "POST", "/v1/keys/rotate", body={"kind": kind})
            self.assertEqual(st, 200, raw[:300])
        # The proxy reconnects to the broker for a new resolve; the map reload reads a file.
        p.proc.send_signal(signal.SIGHUP)
        cbtest.wait_until(lambda: "reloaded" in p.log(), timeout=10 * test_proxy.SLOW,
                          what="credproxy reload")
        st, body, _ = self.through_proxy(p, g["token"])
        self.assertEqual(st, 200, body[:300])
        st, _, raw = d.request("harness", "DELETE", "/v1/grants/" + g["grant_id"])
        self.assertEqual(st, 200, raw[:300])
        st, js = d.resolve(g["token"], SANDBOX, "localhost", port=self.up_port)
        self.assertEqual((st, (js or {}).get("error")), (403, "revoked"))
        st, _, raw = d.request("admin", "GET", "/metrics")
        self.assertEqual(st, 200, raw[:300])
        self.assertGreater(len(d.audit()), 5)

    def test_on_by_default(self):
        if cbtest.VALGRIND:
            self.skipTest("valgrind cannot run seccomp filters (cbtest sets 'seccomp no')")
        d, p = self.start({}, ())
        with open(d.conf_path) as f:
            self.assertNotIn("seccomp", f.read(), "the default config should not say")
        n = self.assert_mode(d.proc.pid, "2", "credbrokerd")
        self.assertGreater(n, 2, "the broker's server threads should be there")
        self.assertEqual(status_field("/proc/%d/status" % d.proc.pid, "NoNewPrivs"), "1")
        self.assertGreater(self.assert_mode(p.proc.pid, "2", "credproxy"), 1)
        self.full_flow(d, p)
        # Threads started after the filter (libcurl's, MHD's per-connection work) have it.
        self.assert_mode(d.proc.pid, "2", "credbrokerd after the flow")
        self.assert_mode(p.proc.pid, "2", "credproxy after the flow")
        self.assertIn("seccomp filter 'broker' installed", d.log())
        self.assertIn("seccomp filter 'proxy' installed", p.log())
        # Draining under the filter: both exit 0 (a forbidden call would be SIGSYS, -31).
        self.assertEqual(p.stop(), 0, p.log()[-2000:])
        self.assertEqual(d.kill(signal.SIGTERM), 0, d.log_tail())

    def test_off_when_configured(self):
        d, p = self.start({"seccomp": "no"}, ["seccomp no"])
        self.assert_mode(d.proc.pid, "0", "credbrokerd")
        self.assert_mode(p.proc.pid, "0", "credproxy")
        self.full_flow(d, p)
        self.assertNotIn("seccomp filter", d.log())
        self.assertNotIn("seccomp filter", p.log())
        self.assertEqual(p.stop(), 0, p.log()[-2000:])
        self.assertEqual(d.kill(signal.SIGTERM), 0, d.log_tail())


if __name__ == "__main__":
    cbtest.main()
