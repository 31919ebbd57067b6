#!/usr/bin/env python3
"""Two mounts of one shared file system, A and B: small files created, written (4 KiB) and
closed per second on A, with close(2) latency; then close-to-open rounds: a writer on A writes a
random size and content and closes, a reader on B opens and reads at once, and the round is right
when B read exactly what A wrote.

Usage: many-mounts.py DIR_ON_A DIR_ON_B FILES ROUNDS
Prints: files_per_second close_p50_us close_p99_us right_rounds
"""
import os
import random
import sys
import time

a, b, files, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(f"{a}/small", exist_ok=True)
data = os.urandom(4096)
closes = []
t0 = time.perf_counter()
for i in range(files):
    fd = os.open(f"{a}/small/s{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, data)
    t = time.perf_counter()
    os.close(fd)
    closes.append(time.perf_counter() - t)
rate = files / (time.perf_counter() - t0)
closes.sort()


def pct(p):
    return round(closes[min(len(closes) - 1, int(len(closes) * p))] * 1e6)


rng = random.Random(17)
right = 0
for r in range(rounds):
    want = rng.randbytes(rng.randint(1, 65536))
    with open(f"{a}/c2o", "wb") as f:
        f.write(want)
    # B may not see the file at all in the first round (a stale negative entry).
    deadline = time.monotonic() + 5
    while True:
        try:
            with open(f"{b}/c2o", "rb") as f:
                got = f.read()
            break
        except FileNotFoundError:
            if r > 0 or time.monotonic() > deadline:
                got = None
                break
            time.sleep(0.01)
    right += got == want
print(f"{rate:.0f} {pct(0.5)} {pct(0.99)} {right}")
