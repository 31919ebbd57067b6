#!/usr/bin/env python3
"""stat() latency probe for the benchmark scripts.

Usage: stat-probe.py FILE SECONDS [PID]
stat()s FILE every 1 ms for SECONDS (or until process PID exits, when given; at least once)
and prints
"p50_us p99_us max_us samples".
"""
import os
import sys
import time

path, secs = sys.argv[1], float(sys.argv[2])
pid = int(sys.argv[3]) if len(sys.argv) > 3 else 0
lat = []
end = time.monotonic() + secs
while True:  # at least one sample, also when PID is already gone
    t = time.perf_counter_ns()
    os.stat(path)
    lat.append((time.perf_counter_ns() - t) / 1000)
    time.sleep(0.001)
    if time.monotonic() >= end or (pid != 0 and not os.path.exists(f"/proc/{pid}")):
        break
lat.sort()


def q(p):
    return lat[min(len(lat) - 1, int(len(lat) * p))]


print(f"{q(0.5):.0f} {q(0.99):.0f} {lat[-1]:.0f} {len(lat)}")
