#!/usr/bin/env python3
"""What the S3 service alone sustains, for the many-mounts benchmark's PostgreSQL + S3 row: SIZE_MIB
MiB written as 4 MiB objects (fusebox-dfs's block size), 8 requests at once (its upload
parallelism), then read back the same way, with unsigned requests to a bucket that allows them.

Usage: s3-gateway.py ENDPOINT BUCKET SIZE_MIB
Prints: write_MB_per_s read_MB_per_s
"""
import concurrent.futures
import os
import sys
import time
import urllib.request

endpoint, bucket, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
BLOCK = 4 << 20
count = max(1, size_mib * (1 << 20) // BLOCK)
blocks = [os.urandom(BLOCK) for _ in range(4)]


def url(i):
    return f"{endpoint}/{bucket}/gateway-probe/{i}"


def put(i):
    req = urllib.request.Request(url(i), data=blocks[i % len(blocks)], method="PUT")
    urllib.request.urlopen(req, timeout=120).read()


def get(i):
    got = urllib.request.urlopen(url(i), timeout=120).read()
    if len(got) != BLOCK:
        raise SystemExit(f"object {i}: {len(got)} bytes, expected {BLOCK}")


rates = []
for op in (put, get):
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(op, range(count)))
    rates.append(round(count * BLOCK / (time.perf_counter() - t) / 1e6))
print(*rates)
