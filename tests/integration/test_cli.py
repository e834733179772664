#!/usr/bin/env python3
"""test_cli: every `credbroker` command against the real daemon, output and exit codes.

Exit codes (docs/credbroker.1): 0 ok, 1 refused by the broker or verification failed,
2 usage, 3 connection/TLS problem, 4 other error.
"""

import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

VALUE = "ghp_CliTestValue_7f3a9c"


def out(r):
    return r.stdout.decode(errors="replace")


def err(r):
    return r.stderr.decode(errors="replace")


def run(*args, input=None, env=None, timeout=60):
    """credbroker without -d (explicit options, or CREDBROKER_DIR in env)."""
    e = {k: v for k, v in os.environ.items() if k != "CREDBROKER_DIR"}
    if env:
        e.update(env)
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run([cbtest.binary("credbroker")] + [str(a) for a in args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=e)


class CliBase(cbtest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = cbtest.Deployment()

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            cls.d.stop()

    def cli(self, *args, input=None, rc=0):
        r = self.d.cli(*args, input=input)
        self.assertEqual(r.returncode, rc, "credbroker %s: rc %d\nstdout: %s\nstderr: %s"
                         % (" ".join(map(str, args)), r.returncode, out(r), err(r)))
        # No command ever prints a secret value, whatever it is asked.
        self.assertNotIn(VALUE, out(r) + err(r))
        return r


class TestUsage(CliBase):
    def test_help_everywhere(self):
        for args in (["--help"], ["help"], ["init", "--help"], ["secret", "--help"],
                     ["secret", "put", "--help"], ["secret", "list", "--help"],
                     ["secret", "show", "--help"], ["secret", "rm", "--help"],
                     ["grant", "--help"], ["grant", "mint", "--help"],
                     ["grant", "show", "--help"], ["grant", "revoke", "--help"],
                     ["sandbox", "--help"], ["sandbox", "revoke", "--help"],
                     ["key", "--help"], ["key", "rotate", "--help"],
                     ["audit", "--help"], ["audit", "tail", "--help"],
                     ["audit", "verify", "--help"], ["-h"]):
            r = self.cli(*args)
            self.assertIn("usage:", out(r), args)
        # The summary names every option of the man page's synopsis lines.
        self.assertIn("audit verify [--db FILE [--master-key KEYFILE]]", out(self.cli("--help")))

    def test_bad_usage_is_2(self):
        cases = [
            [],
            ["frobnicate"],
            ["--bogus", "secret", "list"],
            ["secret"],
            ["secret", "zap"],
            ["secret", "put"],
            ["secret", "put", "a", "b"],
            ["secret", "put", "a", "--max-ttl", "ten"],
            ["secret", "show"],
            ["secret", "list", "extra"],
            ["secret", "list", "--nope"],
            ["grant", "mint", "--secret", "s", "--host", "h"],
            ["grant", "mint", "--sandbox", "s", "--host", "h"],
            ["grant", "mint", "--sandbox", "s", "--secret", "x", "--host", "h", "--port", "70000"],
            ["grant", "mint", "--sandbox", "s", "--secret", "x", "--host", "h", "--ttl", "-5"],
            ["grant", "mint", "--sandbox", "s", "--secret", "x", "--host", "h", "--max-uses", "0"],
            ["grant", "mint", "--sandbox", "s", "--secret", "x", "--host", "h", "--json",
             "--token-only"],
            ["grant", "mint", "--sandbox"],
            ["grant", "show"],
            ["grant", "revoke", "a", "b"],
            ["sandbox", "revoke"],
            ["key", "rotate", "--kind", "master"],
            ["key", "spin"],
            ["audit", "tail", "--limit", "0"],
            ["audit", "tail", "--limit", "1001"],
            ["audit", "tail", "--after", "x"],
            ["audit", "verify", "--limit", "3"],
            ["audit", "verify", "--master-key", "master.key"],
            ["audit", "tail", "--master-key", "master.key"],
            ["audit", "fix"],
            ["init", "a", "b"],
        ]
        for args in cases:
            r = self.d.cli(*args)
            self.assertEqual(r.returncode, 2, "%r: rc %d %s" % (args, r.returncode, err(r)))
            self.assertTrue(err(r).startswith("credbroker: "), (args, err(r)))
            self.assertEqual(out(r), "", args)

    def test_secret_put_max_ttl_bound_is_the_brokers(self):
        # The broker takes max_ttl_s up to 7 days: the CLI refuses more itself (2, with
        # the real bound), before the value is read or sent.
        r = self.d.cli("secret", "put", "ttl-cap", "--host", "api.example.com", "--max-ttl",
                       "604801", input="v\n")
        self.assertEqual(r.returncode, 2, err(r))
        self.assertIn("1 to 604800", err(r))
        r = self.d.cli("secret", "put", "ttl-cap", "--host", "api.example.com", "--max-ttl",
                       "604800", input="v\n")
        self.assertEqual(r.returncode, 0, err(r))

    def test_secret_put_without_host_is_2(self):
        # The broker refuses a secret with no hosts: a usage error, the value never sent.
        r = self.d.cli("secret", "put", "no-host", input="v\n")
        self.assertEqual(r.returncode, 2, err(r))
        self.assertIn("--host", err(r))
        st, _, _ = self.d.request("admin", "GET", "/v1/secrets/no-host")
        self.assertEqual(st, 404)

    def test_secret_put_bad_name_is_2(self):
        # The broker cannot route a name with a space or a non-ASCII byte (404 not_found, as
        # if the secret did not exist): the CLI says what a name is, before the value is read.
        for name in ("bad name", ".dot", "-dash", "a" * 129, "a%41", "\u00e9"):
            r = self.d.cli("secret", "put", "--host", "api.example.com", "--", name,
                           input="v\n")
            self.assertEqual(r.returncode, 2, (name, err(r)))
            self.assertIn("a secret NAME is", err(r), name)
        r = self.d.cli("secret", "put", "--host", "api.example.com", "--", "a" * 128,
                       input="v\n")
        self.assertEqual(r.returncode, 0, err(r))

    def test_no_broker_given_is_2(self):
        r = run("secret", "list")
        self.assertEqual(r.returncode, 2, err(r))
        self.assertIn("-d DIR", err(r))

    def test_master_kind_points_to_the_daemon(self):
        r = self.d.cli("key", "rotate", "--kind", "master")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--rotate-master-key", err(r))


class TestSecrets(CliBase):
    def resolve_value(self, name, host="api.example.com"):
        g = self.d.mint("sbx-val-" + name, name, host)
        st, js = self.d.resolve(g["token"], "sbx-val-" + name, host)
        self.assertEqual(st, 200, js)
        return js["headers"][0]["value"]

    def test_put_versions_list_show_rm(self):
        r = self.cli("secret", "put", "cli-gh", "--host", "api.example.com", "--host",
                     "uploads.example.com", "--max-ttl", "1800", input=VALUE + "\n")
        self.assertEqual(out(r), "secret cli-gh: version 1 stored\n")
        # One trailing newline was stripped: the broker holds exactly the value.
        self.assertEqual(self.resolve_value("cli-gh"), "Bearer " + VALUE)
        r = self.cli("--json", "secret", "put", "cli-gh", "--host", "api.example.com",
                     input=VALUE + "2")
        self.assertEqual(json.loads(out(r)), {"name": "cli-gh", "version": 2})
        self.assertEqual(self.resolve_value("cli-gh"), "Bearer " + VALUE + "2")

        r = self.cli("secret", "list")
        line = [l for l in out(r).splitlines() if l.startswith("cli-gh ")]
        self.assertEqual(len(line), 1, out(r))
        self.assertIn("api.example.com", line[0])
        r = self.cli("secret", "list", "--json")
        js = json.loads(out(r))
        self.assertIn("cli-gh", [s["name"] for s in js["secrets"]])

        r = self.cli("secret", "show", "cli-gh")
        self.assertIn("name: cli-gh\n", out(r))
        self.assertIn("version: 2\n", out(r))
        self.assertIn("hosts: api.example.com\n", out(r))
        r = self.cli("secret", "show", "cli-gh", "--json")
        js = json.loads(out(r))
        self.assertEqual(js["name"], "cli-gh")
        self.assertNotIn("value", js)

        r = self.cli("secret", "rm", "cli-gh")
        self.assertEqual(out(r), "secret cli-gh deleted\n")
        r = self.cli("secret", "show", "cli-gh", rc=1)
        self.assertIn("HTTP 404 not_found", err(r))
        self.assertEqual(out(r), "")
        r = self.cli("secret", "rm", "cli-gh", rc=1)

    def test_from_file_crlf(self):
        path = os.path.join(self.d.tmp, "value.txt")
        with open(path, "w") as f:
            f.write(VALUE + "f\r\n")
        r = self.cli("secret", "put", "cli-file", "--host", "api.example.com", "--from-file", path)
        self.assertIn("version 1", out(r))
        self.assertEqual(self.resolve_value("cli-file"), "Bearer " + VALUE + "f")
        r = self.cli("secret", "put", "cli-file", "--host", "api.example.com", "--from-file",
                     path + ".missing", rc=4)
        self.assertIn(path + ".missing", err(r))

    def test_bad_values(self):
        for value, why in ((b"", "empty"), (b"\n", "empty"), (b"a\nb", "CR, LF"),
                           (b"a\n\n", "CR, LF"), (b"a\x00b", "control character"),
                           (b"a\x01b", "control character"), (b"a\x1bb", "control character"),
                           (b"a\x7fb", "control character"),
                           (b"x" * 8193, "longer than 8192"), (b"x" * 20000, "longer than 8192")):
            r = self.d.cli("secret", "put", "cli-bad", "--host", "h.example", input=value)
            self.assertEqual(r.returncode, 2, (value[:20], err(r)))
            self.assertIn(why, err(r))
        # Exactly 8192 bytes plus a newline is fine.
        r = self.cli("secret", "put", "cli-big", "--host", "h.example", input=b"y" * 8192 + b"\n")
        self.assertIn("version 1", out(r))
        # Not UTF-8: refused before it travels.
        r = self.d.cli("secret", "put", "cli-bad", "--host", "h.example", input=b"\xff\xfe")
        self.assertEqual(r.returncode, 2, err(r))

    def test_terminal_input_is_not_echoed(self):
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([cbtest.binary("credbroker"), "-d", self.d.dir, "secret", "put",
                                  "cli-tty", "--host", "api.example.com"],
                                 stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            os.close(slave)
            slave = None
            # Wait (bounded) for the prompt before typing.
            deadline = time.time() + 20
            prompt = b""
            while b"not echoed" not in prompt and time.time() < deadline:
                rd, _, _ = select.select([p.stderr], [], [], 0.2)
                if rd:
                    chunk = os.read(p.stderr.fileno(), 256)
                    if not chunk:
                        break
                    prompt += chunk
            self.assertIn(b"Value of secret cli-tty", prompt)
            os.write(master, (VALUE + "t\n").encode())
            try:
                so, se = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate(timeout=10)
                raise
            echoed = b""
            while True:
                rd, _, _ = select.select([master], [], [], 0.2)
                if not rd:
                    break
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                echoed += chunk
            self.assertEqual(p.returncode, 0, se)
            self.assertNotIn(VALUE.encode(), echoed)
            self.assertNotIn(VALUE.encode(), so + se)
            self.assertIn(b"version 1", so)
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        self.assertEqual(self.resolve_value("cli-tty"), "Bearer " + VALUE + "t")

    def test_value_not_taken_from_argv(self):
        # A value on the command line is an extra operand: usage error, nothing stored.
        r = self.d.cli("secret", "put", "cli-argv", VALUE, input="x")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn(VALUE, out(r) + err(r))
        r = self.d.cli("secret", "show", "cli-argv")
        self.assertEqual(r.returncode, 1)


class TestGrants(CliBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.put_secret("cli-api", VALUE, ["api.example.com"], max_ttl=3600)

    def test_token_only(self):
        r = self.cli("grant", "mint", "--sandbox", "sbx-t", "--secret", "cli-api",
                     "--host", "api.example.com", "--token-only")
        tok = out(r)
        self.assertTrue(tok.startswith("cbt_") and tok.endswith("\n"), tok)
        self.assertEqual(len(tok.splitlines()), 1)
        st, js = self.d.resolve(tok.strip(), "sbx-t", "api.example.com")
        self.assertEqual(st, 200, js)
        self.assertEqual(js["headers"], [{"name": "Authorization", "value": "Bearer " + VALUE}])

    def test_mint_every_flag_show_revoke(self):
        r = self.cli("grant", "mint", "--sandbox", "sbx-f", "--secret", "cli-api",
                     "--host", "api.example.com", "--port", "8443", "--method", "GET",
                     "--method", "POST", "--path-prefix", "/repos/acme/", "--header",
                     "X-Api-Key", "--template", "{secret}", "--max-uses", "2", "--ttl", "120",
                     "--json")
        g = json.loads(out(r))
        self.assertEqual(set(g), {"grant_id", "token", "expires_at"})
        st, js = self.d.resolve(g["token"], "sbx-f", "api.example.com", port=8443,
                                method="POST", path="/repos/acme/x")
        self.assertEqual(st, 200, js)
        self.assertEqual(js["headers"], [{"name": "X-Api-Key", "value": VALUE}])
        self.assertLessEqual(js["expires_in"], 120)
        st, js = self.d.resolve(g["token"], "sbx-f", "api.example.com", port=8443,
                                method="DELETE", path="/repos/acme/x")
        self.assertEqual(st, 403)

        r = self.cli("grant", "show", g["grant_id"], "--json")
        js = json.loads(out(r))
        self.assertEqual(js["grant_id"], g["grant_id"])
        self.assertEqual(js["sandbox_id"], "sbx-f")
        b = js["bindings"][0]
        self.assertEqual((b["secret"], b["host"], b["port"], b["methods"], b["path_prefix"],
                          b["header"], b["template"]),
                         ("cli-api", "api.example.com", 8443, ["GET", "POST"], "/repos/acme/",
                          "X-Api-Key", "{secret}"))
        self.assertNotIn("cbt_", out(r))
        r = self.cli("grant", "show", g["grant_id"])
        self.assertIn("grant_id: %s\n" % g["grant_id"], out(r))
        self.assertIn("sandbox_id: sbx-f\n", out(r))

        r = self.cli("grant", "revoke", g["grant_id"])
        self.assertEqual(out(r), "grant %s revoked\n" % g["grant_id"])
        st, js = self.d.resolve(g["token"], "sbx-f", "api.example.com", port=8443,
                                method="GET", path="/repos/acme/x")
        self.assertEqual((st, js.get("error")), (403, "revoked"))
        r = self.cli("grant", "show", "0" * 32, rc=1)
        self.assertIn("404", err(r))

    def test_human_mint_and_inject_and_sandbox_revoke(self):
        r = self.cli("grant", "mint", "--sandbox", "sbx-i", "--secret", "cli-api",
                     "--host", "api.example.com", "--inject", "--header", "X-Key",
                     "--template", "{secret}")
        lines = out(r).splitlines()
        self.assertEqual([l.split(":")[0] for l in lines], ["grant_id", "token", "expires_at"])
        st, js = self.d.resolve(None, "sbx-i", "api.example.com")
        self.assertEqual(st, 200, js)
        self.assertEqual(js["headers"], [{"name": "X-Key", "value": VALUE}])
        self.cli("grant", "mint", "--sandbox", "sbx-i", "--secret", "cli-api",
                 "--host", "api.example.com")
        r = self.cli("sandbox", "revoke", "sbx-i")
        self.assertEqual(out(r), "sandbox sbx-i: 2 grants revoked\n")
        r = self.cli("sandbox", "revoke", "sbx-i", "--json")
        self.assertEqual(json.loads(out(r)), {"sandbox_id": "sbx-i", "revoked": 0})
        st, js = self.d.resolve(None, "sbx-i", "api.example.com")
        self.assertEqual(st, 403)

    def test_refusals_are_1_with_code(self):
        for args, code in (
                (["--secret", "cli-nope", "--host", "api.example.com"], "unknown_secret"),
                (["--secret", "cli-api", "--host", "evil.example.com"], "host_not_allowed"),
                (["--secret", "cli-api", "--host", "api.example.com", "--ttl", "7200"],
                 "ttl_exceeds_policy")):
            r = self.d.cli("grant", "mint", "--sandbox", "sbx-r", *args)
            self.assertEqual(r.returncode, 1, err(r))
            self.assertIn("HTTP 403 " + code, err(r))
            self.assertEqual(out(r), "")


class TestRolesAndConnection(CliBase):
    def with_cert(self, role, *args):
        pem, key = self.d.cert(role)
        return self.d.cli("--cert", pem, "--key", key, *args)

    def test_wrong_role_is_1(self):
        for role, args in (("harness", ["secret", "list"]),
                           ("harness", ["key", "rotate", "--kind", "data"]),
                           ("harness", ["audit", "verify"]),
                           ("harness", ["audit", "tail"]),
                           ("proxy", ["secret", "rm", "x"]),
                           ("admin", ["grant", "mint", "--sandbox", "s", "--secret", "x",
                                      "--host", "h"]),
                           ("proxy", ["sandbox", "revoke", "s"])):
            r = self.with_cert(role, *args)
            self.assertEqual(r.returncode, 1, (role, args, err(r)))
            self.assertIn("HTTP 403 forbidden", err(r))
            self.assertIn("hint:", err(r))

    def test_explicit_options_and_env(self):
        pem, key = self.d.cert("admin")
        r = run("--url", self.d.url, "--cert", pem, "--key", key, "--cacert", self.d.ca,
                "secret", "list", "--json")
        self.assertEqual(r.returncode, 0, err(r))
        self.assertIn("secrets", json.loads(out(r)))
        r = run("secret", "list", env={"CREDBROKER_DIR": self.d.dir})
        self.assertEqual(r.returncode, 0, err(r))
        # Global options may also follow the command.
        r = run("secret", "list", "-d", self.d.dir)
        self.assertEqual(r.returncode, 0, err(r))

    def test_wrong_ca_is_3(self):
        wrong = os.path.join(self.d.dir, "pki", "sandbox-ca.pem")
        r = self.d.cli("--cacert", wrong, "secret", "list")
        self.assertEqual(r.returncode, 3, err(r))
        self.assertIn("not signed by CA " + wrong, err(r))

    def test_missing_certificate_is_4_and_named(self):
        r = self.d.cli("--cert", "/nonexistent/admin.pem", "secret", "list")
        self.assertEqual(r.returncode, 4, err(r))
        self.assertIn("/nonexistent/admin.pem", err(r))

    def test_unreadable_deployment(self):
        r = run("-d", os.path.join(self.d.tmp, "nope"), "secret", "list")
        self.assertEqual(r.returncode, 4, err(r))
        self.assertIn("credbrokerd.conf", err(r))

    def test_broker_down_is_3(self):
        # A port where nothing listens.
        pem, key = self.d.cert("admin")
        r = run("--url", "https://127.0.0.1:%d" % cbtest.free_port(), "--cert", pem,
                "--key", key, "--cacert", self.d.ca, "secret", "list")
        self.assertEqual(r.returncode, 3, err(r))
        self.assertIn("is credbrokerd running", err(r))


class TestKeysAndAudit(CliBase):
    def test_key_rotate(self):
        self.d.put_secret("cli-rot", VALUE, ["api.example.com"])
        r = self.cli("key", "rotate")
        lines = out(r).splitlines()
        self.assertEqual(len(lines), 2, out(r))
        self.assertRegex(lines[0], r"^data key rotated: key_id \d+$")
        self.assertRegex(lines[1], r"^signing key rotated: kid \S+$")
        r = self.cli("key", "rotate", "--kind", "data", "--json")
        js = json.loads(out(r))
        self.assertEqual(js["kind"], "data")
        self.assertGreater(js["key_id"], int(lines[0].split()[-1]))
        r = self.cli("key", "rotate", "--kind", "signing", "--json")
        self.assertEqual(json.loads(out(r))["kind"], "signing")
        # Secrets still decrypt and grants still resolve after both rotations.
        g = self.d.mint("sbx-rot", "cli-rot", "api.example.com")
        st, js = self.d.resolve(g["token"], "sbx-rot", "api.example.com")
        self.assertEqual((st, js["headers"][0]["value"]), (200, "Bearer " + VALUE))

    def test_audit_tail(self):
        for i in range(3):
            self.cli("secret", "list")
        r = self.cli("audit", "tail", "--limit", "3", "--json")
        recs = json.loads(out(r))["records"]
        self.assertEqual(len(recs), 3)
        seqs = [x["seq"] for x in recs]
        self.assertEqual(seqs, sorted(seqs))
        everything = self.d.audit()
        # The walk's own requests come after; the last 3 it saw end at most at the end.
        self.assertLessEqual(seqs[-1], everything[-1]["seq"])
        self.assertGreaterEqual(seqs[-1], everything[-1]["seq"] - 5)
        r = self.cli("audit", "tail", "--after", "1", "--limit", "2", "--json")
        self.assertEqual([x["seq"] for x in json.loads(out(r))["records"]], [2, 3])
        r = self.cli("audit", "tail", "--after", "1", "--limit", "2")
        lines = out(r).splitlines()
        self.assertEqual(len(lines), 2)
        self.assertRegex(lines[0], r"^2  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  \S+  \w+  [\w.]+  \w")
        self.assertNotIn("prev_hash", out(r))
        self.assertNotIn(VALUE, json.dumps(everything))
        r = self.cli("audit", "tail", "--after", "999999")
        self.assertEqual(out(r), "(none)\n")


class TestAuditVerify(cbtest.TestCase):
    """audit verify online, then offline (--db) on copies with a row edited, deleted, reordered."""

    def copy_db(self, d, name):
        dst = os.path.join(d.tmp, name)
        shutil.copyfile(os.path.join(d.dir, "credbroker.db"), dst)
        for ext in ("-wal",):
            src = os.path.join(d.dir, "credbroker.db" + ext)
            if os.path.exists(src):
                shutil.copyfile(src, dst + ext)
        return dst

    def verify(self, d, db, rc):
        r = d.cli("audit", "verify", "--db", db)
        self.assertEqual(r.returncode, rc, out(r) + err(r))
        return out(r)

    def test_verify(self):
        with cbtest.Deployment() as d:
            d.put_secret("cli-aud", VALUE, ["api.example.com"])
            for i in range(4):
                g = d.mint("sbx-a%d" % i, "cli-aud", "api.example.com")
                d.resolve(g["token"], "sbx-a%d" % i, "api.example.com")
            r = d.cli("audit", "verify")
            self.assertEqual(r.returncode, 0, err(r))
            self.assertRegex(out(r), r"^audit chain intact: \d+ records\n$")
            r = d.cli("audit", "verify", "--json")
            js = json.loads(out(r))
            self.assertIs(js["intact"], True)
            n = js["records"]
            self.assertGreater(n, 9)
            d.kill()

            good = self.copy_db(d, "good.db")
            o = self.verify(d, good, 0)
            # no master.key next to the copy: consistent, its anchor not authenticated
            self.assertRegex(o, r"^audit chain intact: \d+ records \(the anchor's MAC was "
                             r"not checked: no usable master key\)\n$")
            r = d.cli("audit", "verify", "--db", good, "--master-key",
                      os.path.join(d.dir, "master.key"))
            self.assertEqual(r.returncode, 0, out(r) + err(r))
            self.assertRegex(out(r), r"^audit chain intact: \d+ records\n$")
            r = d.cli("audit", "verify", "--db", good, "--master-key",
                      os.path.join(d.tmp, "missing.key"))
            self.assertEqual(r.returncode, 4, out(r) + err(r))

            edited = self.copy_db(d, "edited.db")
            with sqlite3.connect(edited) as c:
                c.execute("UPDATE audit SET outcome = 'ok-edited' WHERE seq = 5")
            o = self.verify(d, edited, 1)
            self.assertIn("BROKEN at record 5", o)
            r = d.cli("audit", "verify", "--db", edited, "--json")
            self.assertEqual(r.returncode, 1)
            js = json.loads(out(r))
            self.assertEqual((js["intact"], js["first_bad_seq"]), (False, 5))
            self.assertIn("5", js["problem"])

            deleted = self.copy_db(d, "deleted.db")
            with sqlite3.connect(deleted) as c:
                c.execute("DELETE FROM audit WHERE seq = 6")
            o = self.verify(d, deleted, 1)
            self.assertRegex(o, r"BROKEN at record [67]:")

            reordered = self.copy_db(d, "reordered.db")
            with sqlite3.connect(reordered) as c:
                cols = "ts, actor, role, action, outcome, grant_id, sandbox_id, detail, prev_hash, hash"
                a = c.execute("SELECT %s FROM audit WHERE seq = 7" % cols).fetchone()
                b = c.execute("SELECT %s FROM audit WHERE seq = 8" % cols).fetchone()
                sets = ", ".join("%s = ?" % x.strip() for x in cols.split(","))
                c.execute("UPDATE audit SET %s WHERE seq = 7" % sets, b)
                c.execute("UPDATE audit SET %s WHERE seq = 8" % sets, a)
            o = self.verify(d, reordered, 1)
            self.assertIn("BROKEN at record 7", o)

            r = d.cli("audit", "verify", "--db", os.path.join(d.tmp, "missing.db"))
            self.assertEqual(r.returncode, 4, out(r) + err(r))

            # The daemon down: the online check is a connection problem.
            r = d.cli("audit", "verify")
            self.assertEqual(r.returncode, 3, err(r))
            self.assertIn("is credbrokerd running", err(r))


class TestInit(cbtest.TestCase):
    def test_init(self):
        tmp = tempfile.mkdtemp(prefix="cbtest-init-")
        try:
            d = os.path.join(tmp, "dep")
            r = run("init", d)
            self.assertEqual(r.returncode, 0, err(r))
            self.assertIn("credbrokerd -c %s/credbrokerd.conf" % d, out(r))
            for f in ("master.key", "credbroker.db", "credbrokerd.conf", "credproxy.conf",
                      "pki/ca.pem", "pki/admin.pem", "pki/admin.key", "pki/harness.pem"):
                self.assertTrue(os.path.exists(os.path.join(d, f)), f)
            r = run("init", d)
            self.assertEqual(r.returncode, 4, err(r))
            self.assertIn(d, err(r))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    cbtest.main()
