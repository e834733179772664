#!/usr/bin/env python3
"""test_libclient: every libcredbroker call against the real daemon.

The calls are made by a C program, tests/libclient_it (tests/libclient_it.c), linked
against the built libcredbroker; it prints one "ok"/"FAIL" line per check. This test
runs it on a fresh deployment and checks that every check ran and passed.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

# Every library call appears in at least one check name below.
EXPECTED = [
    "health", "secret put gives a version (1 on a fresh deployment)",
    "secret put on an existing name gives the next version",
    "secret list names both, no value", "secret show: metadata only", "grant mint",
    "proxy may not mint: 403", "grant show: no token, no value",
    "resolve: Authorization: Bearer <latest version>", "token-less resolve injects",
    "grant revoke", "resolve after revoke: revoked", "sandbox revoke counts one grant",
    "key rotate data", "key rotate signing", "audit get: records, no token, no value",
    "audit verify: intact", "secret delete", "wrong CA: connect error naming it",
    "broker down: connect error", "missing certificate: I/O error naming the file",
]


class TestLibClient(cbtest.TestCase):
    def test_every_call(self):
        with cbtest.Deployment() as d:
            down = "https://127.0.0.1:%d" % cbtest.free_port()
            r = subprocess.run([cbtest.binary("tests/libclient_it"), d.dir, d.url, down],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            o = r.stdout.decode(errors="replace")
            self.assertEqual(r.returncode, 0, o + r.stderr.decode(errors="replace")
                             + "\ndaemon log:\n" + d.log_tail())
            self.assertNotIn("FAIL", o)
            passed = [l[len("ok - "):] for l in o.splitlines() if l.startswith("ok - ")]
            for name in EXPECTED:
                self.assertIn(name, passed)
            self.assertRegex(o, r"\n\d+ checks, 0 failed\n$")
            # The library never makes the daemon log a token or a secret value.
            self.assertNotIn("cbt_", d.log())
            self.assertNotIn("ghp_second", d.log())


if __name__ == "__main__":
    cbtest.main()
