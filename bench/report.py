#!/usr/bin/env python3
"""bench/report.py RESULTS_DIR QUICK COMMIT: prints bench/run's table from the JSON results,
then one markdown row for the history in docs/performance.md. Missing results print as '-'."""
import json
import os
import platform
import subprocess
import sys

rdir, quick, commit = sys.argv[1], sys.argv[2] == "1", sys.argv[3]


def load(name):
	try:
		with open(os.path.join(rdir, name + ".json")) as f:
			return json.load(f)
	except (OSError, ValueError):
		return None


def g(r, k):
	return None if r is None else r.get(k)


def f_rps(x):
	return "-" if x is None else "%.0f/s" % x


def f_us(x):
	return "-" if x is None else ("%.2f ms" % (x / 1000.0))


def f_kib(x):
	return "-" if x is None else "%.1f MiB" % (x / 1024.0)


def ratio(a, b):
	return None if not a or not b else a / b


def f_ratio(x):
	return "-" if x is None else "%.2f" % x


def verdict(ok):
	return "-" if ok is None else ("MET" if ok else "MISSED")


rows = []
s1, s1r, s1b = load("s1"), load("s1_ref"), load("s1b")
s2, s2r = load("s2"), load("s2_ref")
s3, s3d, s3m = load("s3"), load("s3_direct"), load("s3_mitm")
s4, s4run = load("s4"), load("s4_run")
s6, s6r, s6l = load("s6"), load("s6_ref"), load("s6_lgref")
s1c, s1cc, s2b = load("s1c"), load("s1c_churn"), load("s2b")
idle, b64, pidle, start = load("broker_idle"), load("broker_64"), load("proxy_idle"), load("startup")


def lat(r):
	return (f_us(g(r, "p50_us")), f_us(g(r, "p99_us")), f_us(g(r, "p999_us")))


def cpu_per_req(r):
	if r is None or not r.get("requests") or r.get("cpu_ticks") is None:
		return "-"
	return "%.0f" % (r["cpu_ticks"] * 10000.0 / r["requests"])


x = ratio(g(s1, "rps"), g(s1r, "rps"))
rows.append(("1 resolve, 64 conns", f_rps(g(s1, "rps")), *lat(s1), f_kib(g(s1, "hwm_kib")),
    "nginx mTLS " + f_rps(g(s1r, "rps")), f_ratio(x), ">= 0.50 of nginx: " +
    verdict(None if x is None else x >= 0.5)))
p99b = g(s1b, "p99_us")
rows.append(("1b resolve at half max", f_rps(g(s1b, "rps")), *lat(s1b), "-", "-", "-",
    "p99 <= 2 ms: " + verdict(None if p99b is None else p99b <= 2000)))
x = ratio(g(s2, "rps"), g(s2r, "rps"))
rows.append(("2 mint, 64 conns", f_rps(g(s2, "rps")), *lat(s2), f_kib(g(s2, "hwm_kib")),
    "sqlite 1 tx/insert " + f_rps(g(s2r, "rps")), f_ratio(x), ">= 10000/s: " +
    verdict(None if g(s2, "rps") is None else g(s2, "rps") >= 10000)))
x = ratio(g(s3, "rps"), g(s3d, "rps"))
xm = ratio(g(s3, "rps"), g(s3m, "rps"))
added = None if s3 is None or s3d is None else s3["p50_us"] - s3d["p50_us"]
rows.append(("3 proxy, 16 conns", f_rps(g(s3, "rps")), *lat(s3), f_kib(g(s3, "hwm_kib")),
    "direct " + f_rps(g(s3d, "rps")), f_ratio(x), ">= 0.40: " +
    verdict(None if x is None else x >= 0.4)))
rows.append(("3 (added p50)", f_us(added), "", "", "", "", "direct p50 " + f_us(g(s3d, "p50_us")),
    "-", "<= 0.5 ms: " + verdict(None if added is None else added <= 500)))
rows.append(("3 mitmproxy", f_rps(g(s3m, "rps")), *lat(s3m), f_kib(g(s3m, "hwm_kib")),
    "credproxy/mitm", f_ratio(xm), ">= 10x: " + verdict(None if xm is None else xm >= 10)))
ps = g(s4, "purge_s")
p99d = g(s4, "p99_during")
# "without it": the same run's 15 s before the purge (same load, connections, minute) when
# it has enough samples; else scenario 1b's p99 at the same rate
base = g(s4, "p99_before") if (g(s4, "n_before") or 0) >= 1000 else p99b
x = ratio(p99d, base)
sw = g(s4, "sweep_s")
pstr = "-" if ps is None else "%.1f s" % ps
if ps is not None and sw is not None:	# the lookup tables' sweep counts in the purge's time
	pstr = "%.1f+%.1f s" % (ps, sw)
	ps += sw
purge_ok = verdict(None if ps is None else ps <= 60)
if ps is None and g(s4, "purge_s_lower_bound") is not None:
	pstr = "> %.0f s (~%s s)" % (s4["purge_s_lower_bound"], s4.get("purge_s_extrapolated"))
	purge_ok = verdict(False) if s4["purge_s_lower_bound"] > 60 else "-"
rows.append(("4 purge of %s grants" % (g(s4, "cohort") if s4 else "-"), pstr,
    f_us(g(s4, "p50_during")), f_us(p99d),
    f_us(g(s4, "p999_during")), "-", "p99 w/o " + f_us(base) + ", 1b " + f_us(p99b),
    f_ratio(x), "<= 60 s: %s; p99 <= 2x: %s" % (
    purge_ok, verdict(None if x is None else x <= 2))))
rows.append(("5 broker RSS idle", f_kib(g(idle, "rss_kib")), "", "", "", "", "-", "-",
    "<= 16 MiB: " + verdict(None if idle is None else idle["rss_kib"] <= 16384)))
rows.append(("5 broker peak RSS, 64 conns", f_kib(g(b64, "hwm_kib")), "", "", "", "", "-", "-",
    "-"))
per = None
if pidle and pidle.get("ok"):
	per = (pidle["rss1_kib"] - pidle["rss0_kib"]) / pidle["ok"]
rows.append(("5 proxy, %s idle conns" % (g(pidle, "ok") if pidle else "-"),
    "-" if per is None else "%.1f KiB/conn" % per, "", "", "",
    "-" if pidle is None else f_kib(pidle["rss1_kib"]), "-", "-",
    "<= 48 KiB/conn: " + verdict(None if per is None else per <= 48)))
rows.append(("6 new mTLS conns (-c 2)", f_rps(g(s6, "rps")), *lat(s6), "-",
    "s_time nginx " + f_rps(g(s6r, "rps")), f_ratio(ratio(g(s6, "rps"), g(s6r, "rps"))),
    "no target"))
rows.append(("6 same client to nginx", f_rps(g(s6l, "rps")), *lat(s6l), "-",
    "broker/nginx", f_ratio(ratio(g(s6, "rps"), g(s6l, "rps"))), "no target"))
rows.append(("1c resolve, %s sandboxes end/s" % (
    "-" if s1cc is None else "%.0f" % (s1cc["cycles"] / max(s1cc["seconds"], 1))),
    f_rps(g(s1c, "rps")), *lat(s1c), "-", "scenario 1 " + f_rps(g(s1, "rps")),
    f_ratio(ratio(g(s1c, "rps"), g(s1, "rps"))), "no target"))
rows.append(("2b mint across 1000 secrets",
    f_rps(g(s2b, "rps")), *lat(s2b), "-", "scenario 2 " + f_rps(g(s2, "rps")),
    f_ratio(ratio(g(s2b, "rps"), g(s2, "rps"))), "no target"))

hdr = ("scenario", "throughput", "p50", "p99", "p99.9", "peak RSS", "reference", "ratio",
    "target")
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
for r in [hdr] + rows:
	print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())
print()
errs = {n: g(r, "errors") for n, r in (("s1", s1), ("s1b", s1b), ("s2", s2), ("s3", s3),
    ("s3_direct", s3d), ("s3_mitm", s3m), ("s4", s4run), ("s6", s6), ("s1c", s1c),
    ("s2b", s2b)) if r is not None}
if s1cc is not None:
	errs["s1c sandboxes"] = s1cc["bad"]
print("errors (non-2xx or broken connections): " + ", ".join("%s %d" % (k, v or 0)
    for k, v in errs.items()))
print("CPU per request (us, user+sys, all threads): broker resolve %s, mint %s; nginx %s; "
    "resolve while sandboxes end %s, mint across secrets %s" % (
    cpu_per_req(s1), cpu_per_req(s2), cpu_per_req(s1r), cpu_per_req(s1c), cpu_per_req(s2b)))
if start:
	print("broker start-up on the full data set: %.1f s (%s MiB database)" % (start["start_s"],
	    start["db_mib"]))
if s4:
	print("scenario 4: %s purged in %s batches, %s stale lookup entries swept in %s batches (%s s);"
	    " %s resolves during the purge, %s before it%s" % (
	    s4.get("purged"), s4.get("batches"), s4.get("swept"), s4.get("sweep_batches"),
	    s4.get("sweep_s"), s4.get("n_during"), s4.get("n_before"),
	    "" if s4.get("unfinished_left") is None else
	    "; NOT FINISHED: %d left when the run ended" % s4["unfinished_left"]))
rs = load("restart")
if rs:
	print("broker restart before scenario 4: %.1f s" % rs["start_s"])
try:
	model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
	    if l.startswith("model name")][0]
except (OSError, IndexError):
	model = "?"
load1 = os.getloadavg()[0]
print("machine: %d cores, %s, Linux %s, load %.1f; commit %s%s" % (os.cpu_count(), model,
    platform.release(), load1, commit, " (--quick)" if quick else ""))
print()
print("history row for docs/performance.md:")
date = subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M"], capture_output=True,
    text=True).stdout.strip()
print("| %s | %s | %s | %s / %s | %s | %s / %s | %s | %s | %s | %s | %s |" % (
    date, commit, "quick" if quick else "full",
    f_rps(g(s1, "rps")), f_rps(g(s1r, "rps")), f_us(p99b),
    f_rps(g(s2, "rps")), f_rps(g(s2r, "rps")),
    "-" if s3 is None else "%s / %s / %s" % (f_rps(g(s3, "rps")), f_rps(g(s3d, "rps")),
        f_rps(g(s3m, "rps"))),
    "%s, p99 %s" % (pstr, f_us(p99d)),
    f_kib(g(idle, "rss_kib")), "-" if per is None else "%.1f KiB" % per,
    "%s / %s" % (f_rps(g(s6, "rps")), f_rps(g(s6r, "rps")))))
