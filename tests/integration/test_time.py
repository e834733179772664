"""test_time.py: grants end at their expiry, also under load, and clock steps (issue 7).

TimeTest: grants with ttl_s 2 (swap and inject) are resolved in a loop across their expiry
while a mixed load runs (test_hostile.mixed_load). Expected: 200 before, and no 200 for a
request sent later than exp + 1 s (exp: the token's own claim, which equals the grant's
expires_at); after it every resolve is 403 "expired" and GET /v1/grants/ID says "expired".
The claims are consistent (iat <= nbf < exp = iat + ttl, exp == expires_at), and
expires_in counts down.

ClockStepTest: the broker runs under libfaketime (Debian package faketime, installed by
scripts/install-deps: a missing library is a failure, not a skip) with its wall clock read
from a file the test rewrites, so its CLOCK_REALTIME steps while CLOCK_MONOTONIC does not
(FAKETIME_DONT_FAKE_MONOTONIC=1), as with a real step of the system clock. The broker's
clock starts 10 minutes ahead of the real one (so that stepping it back never goes before
the certificates' notBefore, which is when `credbroker init` ran). What
docs/threat-model.md ("Time") says, checked:
  - step forward past a grant's exp: refused at once as 403 "expired", GET says
    "expired"; fresh grants minted at the new time work;
  - step back by D: a grant that had expired is honoured again while the new now is
    before its exp (its life is extended by at most D);
  - step back by more than TOKEN_SKEW_S (5 s) before a token's iat/nbf: refused as
    403 "not_yet_valid" (a denial of service for fresh grants, not an extension), fine
    within 5 s, and honoured again once the clock is back.
Under ASan, libasan must come first in LD_PRELOAD: it is put before libfaketime.
"""

import base64
import datetime
import glob
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import test_hostile  # noqa: E402

HOST = "api.example.com"
SLACK = 1.0
BASE_OFFSET = 600     # the broker's clock under libfaketime, seconds ahead of the real one


def claims(token):
    """The payload of a cbt_ token (not verified: the broker does that)."""
    jwt = token[len("cbt_"):]
    payload = jwt.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def rfc3339(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class TimeTest(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = cbtest.Deployment()
        cls.value = "tv_" + os.urandom(16).hex()
        cls.d.put_secret("t-s", cls.value, [HOST])

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_claims_consistent(self):
        now = time.time()
        g = self.d.mint("sbx-t0", "t-s", HOST, ttl_s=120)
        c = claims(g["token"])
        self.assertLessEqual(c["iat"], c["nbf"])
        self.assertEqual(c["exp"], c["iat"] + 120)
        self.assertEqual(c["exp"], rfc3339(g["expires_at"]))
        self.assertLessEqual(abs(c["iat"] - now), 2)
        self.assertEqual(c["jti"], g["grant_id"])
        st, js = self.d.resolve(g["token"], "sbx-t0", HOST)
        self.assertEqual(st, 200)
        self.assertLessEqual(js["expires_in"], 120)
        self.assertGreaterEqual(js["expires_in"], 110)

    def test_expiry_under_load(self):
        d = self.d
        load = {}
        t = threading.Thread(target=lambda: load.update(test_hostile.mixed_load(d, 7)),
                             daemon=True)
        t.start()
        time.sleep(1.0)  # load running
        grants = []
        for i in range(3):
            g = d.mint("sbx-t%d" % i, "t-s", HOST, ttl_s=2)
            grants.append(("swap", g, "sbx-t%d" % i))
        gi = d.mint("sbx-ti", "t-s", HOST, ttl_s=2, inject=True)
        grants.append(("inject", gi, "sbx-ti"))
        exp = max(claims(g["token"])["exp"] for _, g, _ in grants)
        seen = []   # (kind, sent at, received at, status, error)
        conn = d.connection("proxy")
        try:
            for _ in range(2000):
                now = time.time()
                if now > exp + 2.5:
                    break
                for kind, g, sbx in grants:
                    gexp = claims(g["token"])["exp"]
                    sent = time.time()
                    st, js = d.resolve(None if kind == "inject" else g["token"], sbx, HOST,
                                       conn=conn)
                    got = time.time()
                    if kind == "inject" and st == 200 and not js.get("headers"):
                        st = 204  # allowed but nothing injected: counts as not honoured
                    seen.append((kind, gexp, sent, got, st, (js or {}).get("error")))
                time.sleep(0.02)
        finally:
            conn.close()
        t.join(timeout=60)
        self.assertFalse(t.is_alive())
        self.assertEqual(load.get("errors"), [], "the background load failed")
        late = [s for s in seen if s[4] == 200 and s[2] > s[1] + SLACK]
        self.assertEqual(late, [], "honoured after exp + %.1fs" % SLACK)
        early = [s for s in seen if s[4] == 200 and s[3] < s[1] - 0.5]
        self.assertTrue(any(s[0] == "swap" for s in early), "no swap resolve before expiry")
        self.assertTrue(any(s[0] == "inject" for s in early), "no inject resolve before expiry")
        after = [s for s in seen if s[2] > s[1] + SLACK]
        self.assertTrue(after, "the loop did not run past expiry")
        for s in after:
            if s[0] == "swap":
                self.assertEqual((s[4], s[5]), (403, "expired"), s)
            else:
                self.assertIn(s[4], (403,), s)
        for kind, g, _ in grants:
            st, js, raw = d.request("harness", "GET", "/v1/grants/" + g["grant_id"])
            self.assertEqual(st, 200, raw[:200])
            self.assertEqual(js["status"], "expired")
        sys.stderr.write("test_time: %d resolves across expiry, last 200 at exp%+.2fs, load %r\n"
                         % (len(seen), max((s[3] - s[1] for s in seen if s[4] == 200),
                                           default=float("nan")), load.get("counts")))

    def test_expires_in_counts_down(self):
        g = self.d.mint("sbx-tc", "t-s", HOST, ttl_s=5)
        st, a = self.d.resolve(g["token"], "sbx-tc", HOST)
        self.assertEqual(st, 200)
        time.sleep(2.1)
        st, b = self.d.resolve(g["token"], "sbx-tc", HOST)
        self.assertEqual(st, 200)
        self.assertLessEqual(b["expires_in"], a["expires_in"] - 2)
        self.assertGreaterEqual(b["expires_in"], 0)


def faketime_env(spec_file):
    """The environment that runs credbrokerd under libfaketime with its offset read from
    spec_file at every call. Fails (not skips) when the library is missing."""
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1") +
                  glob.glob("/usr/lib/faketime/libfaketimeMT.so.1"))
    if not libs:
        raise AssertionError("libfaketime is missing: install the Debian package faketime "
                             "(scripts/install-deps does)")
    preload = [libs[0]]
    # An ASan build: libasan must be the first library loaded, before libfaketime.
    r = subprocess.run(["ldd", cbtest.binary("credbrokerd")], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=30)
    for line in r.stdout.decode(errors="replace").splitlines():
        words = line.split()
        if words and words[0].startswith("libasan.so") and len(words) >= 3:
            preload.insert(0, words[2])
    return {"LD_PRELOAD": ":".join(preload), "FAKETIME_TIMESTAMP_FILE": spec_file,
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


class ClockStepTest(cbtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = cbtest.Deployment(start=False)
        try:
            cls.spec = os.path.join(cls.d.tmp, "faketime.spec")
            cls.step(0)
            cls.d.start(env=faketime_env(cls.spec))
            cls.d.put_secret("cs", "cs_" + os.urandom(16).hex(), [HOST])
        except BaseException:
            cls.d.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.step(0)
        rc = cls.d.stop()
        if rc != 0:
            raise AssertionError("credbrokerd under libfaketime exited with %r" % rc)

    @classmethod
    def step(cls, delta):
        """Sets the broker's clock to the real time + BASE_OFFSET + delta seconds."""
        tmp = cls.spec + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+d\n" % (BASE_OFFSET + delta))
        os.rename(tmp, cls.spec)

    def broker_now(self):
        """The broker's wall clock, from the iat of a fresh grant."""
        return claims(self.d.mint("sbx-cs-now", "cs", HOST, ttl_s=60)["token"])["iat"]

    def test_faked(self):
        # The broker really runs on the fake clock (else the rest proves nothing).
        self.step(0)
        self.assertAlmostEqual(self.broker_now() - time.time(), BASE_OFFSET, delta=3)
        self.step(-100)
        self.assertAlmostEqual(self.broker_now() - time.time(), BASE_OFFSET - 100, delta=3)
        self.step(0)

    def test_step_forward_past_expiry(self):
        d = self.d
        self.step(0)
        g = d.mint("sbx-cs-f", "cs", HOST, ttl_s=30)
        self.assertEqual(d.resolve(g["token"], "sbx-cs-f", HOST)[0], 200)
        # Forward by 60 s: the 30 s grant ends at once, no grace.
        self.step(60)
        st, js = d.resolve(g["token"], "sbx-cs-f", HOST)
        self.assertEqual((st, (js or {}).get("error")), (403, "expired"))
        st, js, raw = d.request("harness", "GET", "/v1/grants/" + g["grant_id"])
        self.assertEqual(st, 200, raw[:200])
        self.assertEqual(js["status"], "expired")
        # Grants minted at the new time work.
        g2 = d.mint("sbx-cs-f2", "cs", HOST, ttl_s=30)
        self.assertGreaterEqual(claims(g2["token"])["iat"], claims(g["token"])["exp"])
        self.assertEqual(d.resolve(g2["token"], "sbx-cs-f2", HOST)[0], 200)
        # Back by the same 60 s: the first grant is honoured again (its exp is still ahead
        # of the broker's clock, and it is not purged before exp + 60 s): a step back
        # extends a grant by at most the size of the step.
        self.step(0)
        self.assertEqual(d.resolve(g["token"], "sbx-cs-f", HOST)[0], 200)

    def test_step_back_before_creation(self):
        d = self.d
        self.step(0)
        g = d.mint("sbx-cs-b", "cs", HOST, ttl_s=600)
        c = claims(g["token"])
        self.assertEqual(d.resolve(g["token"], "sbx-cs-b", HOST)[0], 200)
        # Back by 3 s: within the 5 s skew allowed on iat/nbf, still honoured.
        self.step(-3)
        self.assertEqual(d.resolve(g["token"], "sbx-cs-b", HOST)[0], 200)
        # Back by 60 s, before the token's iat/nbf: refused as not yet valid (not honoured
        # for longer: denial of service for fresh grants until the clock catches up).
        self.step(-60)
        st, js = d.resolve(g["token"], "sbx-cs-b", HOST)
        self.assertEqual((st, (js or {}).get("error")), (403, "not_yet_valid"))
        # A grant minted at the stepped-back time works at that time.
        g2 = d.mint("sbx-cs-b2", "cs", HOST, ttl_s=600)
        self.assertLess(claims(g2["token"])["iat"], c["iat"])
        self.assertEqual(d.resolve(g2["token"], "sbx-cs-b2", HOST)[0], 200)
        # The clock back where it was: the first grant is honoured again.
        self.step(0)
        self.assertEqual(d.resolve(g["token"], "sbx-cs-b", HOST)[0], 200)


if __name__ == "__main__":
    cbtest.main()
