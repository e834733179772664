#!/usr/bin/env python3
"""bench/sqlite_ref.py DB SECONDS: scenario 2's reference, the one-fsync-per-grant ceiling.
A plain loop of one INSERT per transaction, WAL, synchronous=FULL, on the disk that holds DB.
Rows are the size of a grant row. Prints one JSON line like loadgen's (latency per commit)."""
import json
import os
import sqlite3
import sys
import time

db_path, seconds = sys.argv[1], float(sys.argv[2])
for suffix in ("", "-wal", "-shm"):
	try:
		os.unlink(db_path + suffix)
	except FileNotFoundError:
		pass
db = sqlite3.connect(db_path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = FULL")
db.execute("CREATE TABLE grants (id TEXT PRIMARY KEY, sandbox_id TEXT, expires_at INTEGER,"
    " bindings TEXT)")
binding = '[{"secret":"s-0001","host":"api.bench.test","port":443,"header":"Authorization",' \
    '"template":"Bearer {secret}","inject":false}]'
lat = []
t_end = time.monotonic() + seconds
t0 = time.monotonic()
n = 0
while n < 10000000:
	t = time.monotonic()
	if t >= t_end:
		break
	db.execute("BEGIN")
	db.execute("INSERT INTO grants VALUES (?, ?, ?, ?)",
	    (os.urandom(16).hex(), "sbx-mint", int(time.time()) + 600, binding))
	db.execute("COMMIT")
	lat.append(time.monotonic() - t)
	n += 1
el = time.monotonic() - t0
lat.sort()


def pct(q):
	return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6 if lat else 0


print(json.dumps({"requests": n, "errors": 0, "rps": round(n / el, 1), "p50_us": round(pct(0.5)),
    "p99_us": round(pct(0.99)), "p999_us": round(pct(0.999))}))
