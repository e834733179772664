#!/usr/bin/env python3
"""bench/s4_analyse.py SAMPLES BROKER_LOG T_LOADGEN T_END OUT COHORT POLLS [T_SWEEP_END]: scenario 4.
The purge's duration comes from the broker's "purged N ... in B batches, T ms" log line (its end
is when bench/run saw the line); if it did not finish, from the cohort counts polled each second.
The sweep of the lookup tables that follows ("swept N stale lookup entries in B batches, T ms")
is reported apart, and the window "during the purge" runs to its end when there is one.
Resolve latencies (loadgen --samples) are split into during the purge and the steady state
before it: the 15 s before the purge starts, not the restart's first seconds (start-up, new
connections, the queue they leave) — the same load, connections and minute as "during"."""
import json
import re
import sys

samples, logf, t_lg, t_end, out, cohort, pollf = sys.argv[1], sys.argv[2], float(sys.argv[3]), \
    float(sys.argv[4]), sys.argv[5], int(sys.argv[6]), sys.argv[7]
t_sweep = float(sys.argv[8]) if len(sys.argv) > 8 else 0.0
polls = []
try:
	for line in open(pollf):
		t, n = line.split()
		polls.append((float(t), int(n)))
except OSError:
	pass
log = open(logf).read()
m = re.search(r"purged (\d+) expired or revoked grants in (\d+) batches, (\d+) ms", log)
ms = re.search(r"swept (\d+) stale lookup entries in (\d+) batches, (\d+) ms", log)
res = {"cohort": cohort, "purged": 0, "purge_s": None}
# the purge starts at the first poll that sees the cohort shrink (1 s resolution)
start_t = next((t for t, n in polls if 0 <= n < cohort), None)
end_t = None
if m and t_end > 0:
	dur = int(m.group(3)) / 1000.0
	res.update(purged=int(m.group(1)), batches=int(m.group(2)), purge_s=dur)
	end_t = t_end
	start_t = end_t - dur
	if ms and t_sweep > 0:
		res.update(swept=int(ms.group(1)), sweep_batches=int(ms.group(2)),
		    sweep_s=int(ms.group(3)) / 1000.0)
		end_t = t_sweep
elif start_t is not None and polls:
	end_t = polls[-1][0]
	left = polls[-1][1]
	done = cohort - left
	el = end_t - start_t
	res.update(purged=done, unfinished_left=left, purge_s_lower_bound=round(el, 1),
	    purge_s_extrapolated=round(el * cohort / done, 1) if done > 0 else None)
lat_in, lat_out = [], []
if start_t is not None:
	s_ms, e_ms = (start_t - t_lg) * 1000, (end_t - t_lg) * 1000
	with open(samples) as f:
		for line in f:
			t, lat = line.split()
			t = int(t)
			if s_ms <= t <= e_ms:
				lat_in.append(int(lat))
			elif max(5000, s_ms - 15500) < t < s_ms - 500:	# steady state before it
				lat_out.append(int(lat))


def p(a, q):
	a.sort()
	return a[min(len(a) - 1, int(q * len(a)))] if a else None


res.update(n_during=len(lat_in), p50_during=p(lat_in, .5), p99_during=p(lat_in, .99),
    p999_during=p(lat_in, .999), n_before=len(lat_out), p99_before=p(lat_out, .99))
json.dump(res, open(out, "w"))
