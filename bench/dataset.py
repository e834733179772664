#!/usr/bin/env python3
"""bench/dataset.py: the benchmark data set (used by bench/run).

  dataset.py api --url https://127.0.0.1:PORT --deploy DIR --out DIR [--secrets 1000]
                 [--tokens 2000] [--proxy-sandbox ID --upstream-port PORT]
      Through the broker's API (mTLS, keep-alive, 8 connections): puts the secrets and mints
      real grants. Writes OUT/resolve.bodies (one resolve request body per line, each with its
      own real token), OUT/mint.body, OUT/mint.bodies (one mint body per secret),
      OUT/proxy.token and OUT/resolve.sample (one real answer).
  dataset.py churn --url https://127.0.0.1:PORT --deploy DIR --rate 50 --seconds 20 --out FILE
      While the broker runs: sandboxes ending, RATE a second for SECONDS (one connection): each
      cycle mints a grant for a new sandbox and revokes the sandbox. Writes {"cycles", "bad"}
      (answers other than 201 and 200) to FILE.
  dataset.py sql --db FILE --live 100000 --cohort 1000000 [--cohort-expires EPOCH]
      With the broker STOPPED: inserts live grants and the expiry cohort straight into the
      grants table, copying kid, minted_by and the bindings' shape from a grant minted through
      the API, so every row looks like one the broker wrote.
  dataset.py expire --db FILE --at EPOCH
      With the broker stopped: sets the cohort's expires_at to EPOCH (the lease explosion).
  dataset.py count --db FILE
      Prints the number of grants (read-only, safe while the broker runs: WAL).
  dataset.py poll --db FILE --at EPOCH --out FILE [--interval 1] [--max 600]
      While the broker runs: every interval, appends "unix-time remaining" for the cohort
      (grants with expires_at = EPOCH, counted on the expiry index) until none remain or
      --max polls. Read-only.
Every loop is bounded by its count argument.
"""
import argparse
import http.client
import json
import os
import sqlite3
import ssl
import sys
import threading
import time

BENCH_HOST = "api.bench.test"


def ctx_for(deploy, role):
	ctx = ssl.create_default_context(cafile=os.path.join(deploy, "pki", "ca.pem"))
	ctx.load_cert_chain(os.path.join(deploy, "pki", role + ".pem"),
	    os.path.join(deploy, "pki", role + ".key"))
	return ctx


class Client:
	def __init__(self, url, ctx):
		hp = url.split("://", 1)[1].rstrip("/")
		host, port = hp.rsplit(":", 1)
		self.host, self.port, self.ctx = host, int(port), ctx
		self.conn = None

	def call(self, method, path, body):
		data = json.dumps(body).encode()
		for attempt in range(3):
			if self.conn is None:
				self.conn = http.client.HTTPSConnection(self.host, self.port,
				    context=self.ctx, timeout=30)
			try:
				self.conn.request(method, path, body=data,
				    headers={"Content-Type": "application/json"})
				r = self.conn.getresponse()
				out = r.read()
				return r.status, out
			except (OSError, http.client.HTTPException):
				self.conn.close()
				self.conn = None
				if attempt == 2:
					raise
		raise RuntimeError("unreachable")


def parallel(n_items, nthreads, fn):
	"""Runs fn(i) for i in range(n_items) on nthreads threads; raises the first error."""
	errors = []
	lock = threading.Lock()
	nxt = [0]

	def run():
		while True:
			with lock:
				if nxt[0] >= n_items or errors:
					return
				i = nxt[0]
				nxt[0] += 1
			try:
				fn(i)
			except Exception as e:  # reported below
				with lock:
					errors.append(e)
				return

	ts = [threading.Thread(target=run) for _ in range(nthreads)]
	for t in ts:
		t.start()
	for t in ts:
		t.join()
	if errors:
		raise errors[0]


def cmd_api(a):
	os.makedirs(a.out, exist_ok=True)
	admin = ctx_for(a.deploy, "admin")
	harness = ctx_for(a.deploy, "harness")
	proxy = ctx_for(a.deploy, "proxy")
	tl = threading.local()

	def client(ctx, name):
		c = getattr(tl, name, None)
		if c is None:
			c = Client(a.url, ctx)
			setattr(tl, name, c)
		return c

	def put_secret(i):
		value = "sk-bench-%04d-%s" % (i, os.urandom(20).hex())
		st, out = client(admin, "admin").call("PUT", "/v1/secrets/s-%04d" % i,
		    {"value": value, "hosts": [BENCH_HOST, "localhost"], "max_ttl_s": 86400})
		if st != 201:
			raise RuntimeError("put secret %d: %d %s" % (i, st, out[:200]))

	t0 = time.time()
	parallel(a.secrets, 8, put_secret)
	print("dataset: %d secrets in %.1f s" % (a.secrets, time.time() - t0), file=sys.stderr)

	bodies = [None] * a.tokens

	def mint(i):
		sbx = "sbx-%05d" % (i % 500)
		st, out = client(harness, "harness").call("POST", "/v1/grants", {
		    "sandbox_id": sbx, "ttl_s": 3600,
		    "bindings": [{"secret": "s-%04d" % (i % a.secrets), "host": BENCH_HOST,
		        "port": 443, "methods": ["GET", "POST"], "path_prefix": "/v1/"}]})
		if st != 201:
			raise RuntimeError("mint %d: %d %s" % (i, st, out[:200]))
		tok = json.loads(out)["token"]
		bodies[i] = json.dumps({"token": tok, "sandbox_id": sbx, "host": BENCH_HOST,
		    "port": 443, "method": "POST", "path": "/v1/chat/completions"},
		    separators=(",", ":"))

	t0 = time.time()
	parallel(a.tokens, 8, mint)
	print("dataset: %d real grants minted in %.1f s" % (a.tokens, time.time() - t0),
	    file=sys.stderr)
	with open(os.path.join(a.out, "resolve.bodies"), "w") as f:
		for b in bodies:
			f.write(b + "\n")
	st, out = Client(a.url, proxy).call("POST", "/v1/resolve", json.loads(bodies[0]))
	if st != 200:
		raise RuntimeError("resolve check: %d %s" % (st, out[:200]))
	with open(os.path.join(a.out, "resolve.sample"), "wb") as f:
		f.write(out)
	with open(os.path.join(a.out, "mint.body"), "w") as f:
		json.dump({"sandbox_id": "sbx-mint", "ttl_s": 600, "bindings": [
		    {"secret": "s-0001", "host": BENCH_HOST, "port": 443}]}, f,
		    separators=(",", ":"))
	with open(os.path.join(a.out, "mint.bodies"), "w") as f:
		for i in range(a.secrets):
			f.write(json.dumps({"sandbox_id": "sbx-mint", "ttl_s": 600, "bindings": [
			    {"secret": "s-%04d" % i, "host": BENCH_HOST, "port": 443}]},
			    separators=(",", ":")) + "\n")
	if a.proxy_sandbox:
		st, out = Client(a.url, harness).call("POST", "/v1/grants", {
		    "sandbox_id": a.proxy_sandbox, "ttl_s": 3600,
		    "bindings": [{"secret": "s-0000", "host": "localhost",
		        "port": a.upstream_port}]})
		if st != 201:
			raise RuntimeError("proxy grant: %d %s" % (st, out[:200]))
		with open(os.path.join(a.out, "proxy.token"), "w") as f:
			f.write(json.loads(out)["token"] + "\n")


def cmd_sql(a):
	db = sqlite3.connect(a.db, isolation_level=None)
	db.execute("PRAGMA cache_size = -262144")
	db.execute("PRAGMA synchronous = OFF")	# a bulk load of a stopped broker's database
	row = db.execute("SELECT minted_by, kid, bindings FROM grants WHERE sandbox_id LIKE 'sbx-0%'"
	    " ORDER BY created_at LIMIT 1").fetchone()
	if row is None:
		raise SystemExit("dataset: no grant minted through the API to copy")
	minted_by, kid, bindings = row
	tmpl = json.loads(bindings)
	now = int(time.time())

	def rows(n, prefix, expires):
		# grant IDs as the broker makes them (token.h): the mint time in milliseconds, in 12
		# hex digits, then 128 random bits; here 1 ms apart, up to their created_at
		t0 = (now - 600) * 1000 - n
		for i in range(n):
			b = [dict(x) for x in tmpl]
			b[0]["secret"] = "s-%04d" % (i % 1000)
			yield ("%012x%s" % (t0 + i, os.urandom(16).hex()), "%s-%06d" % (prefix, i // 10),
			    minted_by, kid,
			    now - 600, now - 600, expires, 0, 0, None, 0,
			    json.dumps(b, separators=(",", ":")))

	sql = ("INSERT INTO grants (id, sandbox_id, minted_by, kid, created_at, not_before,"
	    " expires_at, max_uses, uses, revoked_at, has_inject, bindings)"
	    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
	t0 = time.time()
	db.execute("BEGIN")
	db.executemany(sql, rows(a.live, "sbx-live", now + 86400))
	db.executemany(sql, rows(a.cohort, "sbx-exp", a.cohort_expires or now + 86400))
	db.execute("COMMIT")
	db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
	n = db.execute("SELECT count(*) FROM grants").fetchone()[0]
	print("dataset: inserted %d live + %d cohort grants in %.1f s (%d grants in all)" % (
	    a.live, a.cohort, time.time() - t0, n), file=sys.stderr)


def cmd_expire(a):
	db = sqlite3.connect(a.db, isolation_level=None)
	db.execute("PRAGMA cache_size = -262144")
	t0 = time.time()
	db.execute("BEGIN")
	cur = db.execute("UPDATE grants SET expires_at = ? WHERE sandbox_id >= 'sbx-exp-'"
	    " AND sandbox_id < 'sbx-exp.'", (a.at,))
	db.execute("COMMIT")
	db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
	print("dataset: %d cohort grants now expire at %d (%.1f s)" % (cur.rowcount, a.at,
	    time.time() - t0), file=sys.stderr)


def cmd_churn(a):
	c = Client(a.url, ctx_for(a.deploy, "harness"))
	t0 = time.time()
	n = bad = 0
	while n < a.rate * a.seconds and time.time() - t0 < a.seconds:
		sbx = "sbx-churn-%d-%d" % (int(t0), n)
		st, _ = c.call("POST", "/v1/grants", {"sandbox_id": sbx, "ttl_s": 600, "bindings": [
		    {"secret": "s-0001", "host": BENCH_HOST, "port": 443}]})
		st2, _ = c.call("DELETE", "/v1/sandboxes/%s/grants" % sbx, {})
		bad += (st != 201) + (st2 != 200)
		n += 1
		time.sleep(max(0.0, t0 + n / a.rate - time.time()))
	with open(a.out, "w") as f:
		json.dump({"cycles": n, "bad": bad, "seconds": round(time.time() - t0, 2)}, f)


def cmd_count(a):
	db = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True, timeout=5)
	print(db.execute("SELECT count(*) FROM grants").fetchone()[0])


def cmd_poll(a):
	db = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True, timeout=5)
	with open(a.out, "a") as f:
		for _ in range(a.max):
			t = time.time()
			try:
				n = db.execute("SELECT count(*) FROM grants WHERE expires_at = ?",
				    (a.at,)).fetchone()[0]
			except sqlite3.OperationalError:
				n = -1
			f.write("%.3f %d\n" % (t, n))
			f.flush()
			if n == 0:
				return
			time.sleep(max(0.0, a.interval - (time.time() - t)))


def main():
	p = argparse.ArgumentParser()
	sp = p.add_subparsers(dest="cmd", required=True)
	s = sp.add_parser("api")
	s.add_argument("--url", required=True)
	s.add_argument("--deploy", required=True)
	s.add_argument("--out", required=True)
	s.add_argument("--secrets", type=int, default=1000)
	s.add_argument("--tokens", type=int, default=2000)
	s.add_argument("--proxy-sandbox")
	s.add_argument("--upstream-port", type=int)
	s = sp.add_parser("sql")
	s.add_argument("--db", required=True)
	s.add_argument("--live", type=int, default=100000)
	s.add_argument("--cohort", type=int, default=1000000)
	s.add_argument("--cohort-expires", type=int, default=0)
	s = sp.add_parser("expire")
	s.add_argument("--db", required=True)
	s.add_argument("--at", type=int, required=True)
	s = sp.add_parser("churn")
	s.add_argument("--url", required=True)
	s.add_argument("--deploy", required=True)
	s.add_argument("--rate", type=float, default=50)
	s.add_argument("--seconds", type=float, default=20)
	s.add_argument("--out", required=True)
	s = sp.add_parser("count")
	s.add_argument("--db", required=True)
	s = sp.add_parser("poll")
	s.add_argument("--db", required=True)
	s.add_argument("--at", type=int, required=True)
	s.add_argument("--out", required=True)
	s.add_argument("--interval", type=float, default=1.0)
	s.add_argument("--max", type=int, default=600)
	a = p.parse_args()
	{"api": cmd_api, "sql": cmd_sql, "expire": cmd_expire, "count": cmd_count,
	    "poll": cmd_poll, "churn": cmd_churn}[a.cmd](a)


if __name__ == "__main__":
	main()
