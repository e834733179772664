#!/usr/bin/env python3
"""soak.py: the long mode of the reliability suite (issue 7). Not run by `make check`.

    CB_BUILDDIR=BUILD python3 tests/soak.py [--minutes N] [--kills K] [--hostile N]

Runs, on fresh deployments:
  1. the sustained mixed load of tests/integration/test_hostile.py (mint, resolve, revoke,
     put, data and signing key rotations, sandbox requests through credproxy) for N minutes
     (default 10): zero errors, and the broker's and the proxy's RSS and open descriptors
     flat after the first third (same tolerance as CI);
     a progress line every minute;
  2. with --kills K (default 0: skipped), the crash-consistency test with K SIGKILLs;
  3. with --hostile N (default 0: skipped), the slowloris tests with N connections.
Exit status 0 only when everything passed.
"""

import argparse
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--hostile", type=int, default=0)
    a = ap.parse_args()
    if a.kills:
        os.environ["CB_CRASH_KILLS"] = str(a.kills)
    if a.hostile:
        os.environ["CB_HOSTILE_CONNS"] = str(a.hostile)
    import cbtest
    import test_hostile

    seconds = a.minutes * 60

    class Soak(cbtest.TestCase):
        def test_soak_load(self):
            with cbtest.Deployment() as d:
                def report(t, sample, counts):
                    sys.stderr.write("soak: %4.0fs rss %d KiB fds %d %r\n"
                                     % (t, sample[1], sample[2], counts))
                up = test_hostile.Upstream(d)
                proxy = test_hostile.Proxy(d, "soak", ["--sandbox-id", "sbx-soak",
                                                       "--allow-private", "--upstream-ca",
                                                       up.ca])
                proxy.sandbox = "sbx-soak"
                try:
                    r = test_hostile.mixed_load(d, seconds, sample_every=1.0, report=report,
                                                via=(proxy, up))
                finally:
                    proxy.stop()
                    up.stop()
                test_hostile.check_flat(self, r["proxy_samples"], test_hostile.sanitized(
                    cbtest.binary("credproxy")), "credproxy")
                s = r["samples"]
                sys.stderr.write("soak: done: %r; rss %d -> %d KiB (max %d), fds %d -> %d\n"
                                 % (r["counts"], s[0][1], s[-1][1], max(x[1] for x in s),
                                    s[0][2], s[-1][2]))
                self.assertEqual(r["stuck"], 0)
                self.assertEqual(r["errors"], [])
                test_hostile.check_flat(self, s, test_hostile.sanitized(
                    cbtest.binary("credbrokerd")))
                self.assertTrue(d.alive())

    suite = unittest.TestSuite()
    suite.addTest(Soak("test_soak_load"))
    loader = unittest.TestLoader()
    if a.kills:
        import test_crash
        suite.addTest(test_crash.CrashTest("test_sigkill_rounds"))
    if a.hostile:
        suite.addTests(loader.loadTestsFromTestCase(test_hostile.BrokerHostileTest))
        suite.addTests(loader.loadTestsFromTestCase(test_hostile.ProxyHostileTest))
    t0 = time.monotonic()
    r = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.stderr.write("soak: %.0f s\n" % (time.monotonic() - t0))
    return 0 if r.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
