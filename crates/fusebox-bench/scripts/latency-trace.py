#!/usr/bin/env python3
"""Where does a stat(2) on a FUSE mount spend its time while writeback floods the mount?

Splits each probe's latency into: kernel queue + daemon (fuse:fuse_request_send ->
fuse:fuse_request_end tracepoints, per request) and the rest (the client's own syscall path
and wake-up). Runs a passthrough mount, a 1 ms stat loop and a dd flood like
crates/fusebox-bench/scripts/latency-isolation.sh. Usage (root): python3 crates/fusebox-bench/scripts/latency-trace.py [BIN] [-o OPTS]
"""
import os, re, subprocess, sys, tempfile, threading, time

T = "/sys/kernel/tracing"
args = sys.argv[1:]
bin_ = os.path.abspath(args[0] if args and not args[0].startswith("-") else "target/release/fusebox")
opts = args[args.index("-o") + 1] if "-o" in args else ""
flood_mib = int(os.environ.get("FLOOD_MIB", "4096"))


def w(path, val):
    with open(os.path.join(T, path), "w") as f:
        f.write(val)


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0


def pingpong(secs):
    """Round trips between two processes over pipes (two wake-ups each, like one FUSE request)."""
    a_r, a_w = os.pipe(); b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(a_w); os.close(b_r)
        while True:
            d = os.read(a_r, 1)
            if not d:
                os._exit(0)
            os.write(b_w, d)
    os.close(a_r); os.close(b_w)
    out, end_t = [], time.monotonic() + secs
    while time.monotonic() < end_t:
        t0 = time.perf_counter_ns(); os.write(a_w, b"x"); os.read(b_r, 1)
        out.append((time.perf_counter_ns() - t0) / 1000)
        time.sleep(0.001)
    os.close(a_w); os.waitpid(pid, 0); os.close(b_r)
    return out


work = tempfile.mkdtemp(prefix="fusebox-lattrace-", dir="/var/tmp")
src, mnt = os.path.join(work, "src"), os.path.join(work, "mnt")
os.mkdir(src); os.mkdir(mnt)
subprocess.run([bin_, "mount", "passthrough", src, mnt, "-o",
                "attr_timeout=0,entry_timeout=0" + ("," + opts if opts else "")], check=True)
try:
    probe = os.path.join(mnt, "probe")
    open(probe, "w").write("x")
    w("trace", "")
    w("buffer_size_kb", "65536")
    for ev in ("fuse_request_send", "fuse_request_end"):
        w(f"events/fuse/{ev}/enable", "1")
    lat = []  # (start_ns, end_ns) of each stat, CLOCK_MONOTONIC
    def prober(stop):
        while not stop.is_set():
            t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            os.stat(probe)
            lat.append((t0, time.clock_gettime_ns(time.CLOCK_MONOTONIC)))
            time.sleep(0.001)
    w("trace_clock", "mono")
    dd = subprocess.Popen(["dd", "if=/dev/zero", f"of={os.path.join(mnt, 'flood')}", "bs=1M",
                           f"count={flood_mib}", "status=none"])
    time.sleep(0.5)
    stop = threading.Event()
    th = threading.Thread(target=prober, args=(stop,)); th.start()
    dd.wait(); stop.set(); th.join()
    for ev in ("fuse_request_send", "fuse_request_end"):
        w(f"events/fuse/{ev}/enable", "0")
    text = open(os.path.join(T, "trace")).read()
    # The same pipe round trips as the native baseline, during a flood of this mount.
    dd = subprocess.Popen(["dd", "if=/dev/zero", f"of={os.path.join(mnt, 'flood2')}", "bs=1M",
                           f"count={flood_mib}", "status=none"])
    time.sleep(0.5)
    fuse_flood_pp = pingpong(6)
    dd.wait()
    print(f"pipe round trip during a flood of the FUSE mount p50/p99 "
          f"{q(fuse_flood_pp, .5):.0f}/{q(fuse_flood_pp, .99):.0f} us")
finally:
    subprocess.run([bin_, "umount", mnt])
    subprocess.run(["rm", "-rf", work])

nat = tempfile.mkdtemp(prefix="fusebox-lattrace-native-", dir="/var/tmp")
idle_pp = pingpong(4)
dd = subprocess.Popen(["dd", "if=/dev/zero", f"of={os.path.join(nat, 'flood')}", "bs=1M",
                       f"count={flood_mib}", "status=none"])
time.sleep(0.5)
flood_pp = pingpong(6)
dd.wait()
subprocess.run(["rm", "-rf", nat])
print(f"native pipe round trip (2 wake-ups), idle p50/p99 {q(idle_pp, .5):.0f}/{q(idle_pp, .99):.0f} us; "
      f"during a native dd flood p50/p99 {q(flood_pp, .5):.0f}/{q(flood_pp, .99):.0f} us")

send, end = {}, {}
pat = re.compile(r"\s(\d+)\.(\d+): fuse_request_(send|end): connection \d+ req (\d+)(?: opcode \d+ \((\w+)\))?")
for m in pat.finditer(text):
    ts = int(m.group(1)) * 10**9 + int(m.group(2).ljust(9, "0")[:9])
    uniq = int(m.group(4))
    if m.group(3) == "send":
        send[uniq] = (ts, m.group(5))
    else:
        end[uniq] = ts
per_op = {}
sync_spans = []
for u, (ts, op) in send.items():
    if u in end and op in ("FUSE_GETATTR", "FUSE_LOOKUP"):
        per_op.setdefault(op, []).append((end[u] - ts) / 1000)
        sync_spans.append((ts, end[u]))
sync_spans.sort()
inside, total = [], []
for a, b in lat:
    k = sum(e - s for s, e in sync_spans if s >= a and e <= b)
    inside.append(k / 1000)
    total.append((b - a) / 1000)
print(f"stat during flood: {len(total)} samples; p50/p99 total {q(total, .5):.0f}/{q(total, .99):.0f} us")
print(f"  of which in FUSE requests (queued -> answered): p50/p99 {q(inside, .5):.0f}/{q(inside, .99):.0f} us")
rest = [t - i for t, i in zip(total, inside)]
print(f"  outside FUSE requests (syscall path, wake-ups): p50/p99 {q(rest, .5):.0f}/{q(rest, .99):.0f} us")
for op, xs in per_op.items():
    print(f"  {op}: {len(xs)} requests, send->end p50/p99/max {q(xs, .5):.0f}/{q(xs, .99):.0f}/{max(xs):.0f} us")
worst = sorted(range(len(total)), key=lambda i: -total[i])[:5]
print("  worst 5 (total, in-FUSE) us:", [(round(total[i]), round(inside[i])) for i in worst])
