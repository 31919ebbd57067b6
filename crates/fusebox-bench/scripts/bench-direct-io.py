#!/usr/bin/env python3
"""Direct-IO benchmark (issue 5): native ext4 vs fusebox passthrough over the same directory.

The backing store is an ext4 image on a loop device attached with direct IO, so O_DIRECT reaches
the disk (set up by `fusebox bench tool loop-up`, the harness's own helper). Every fusebox run is paired with a native run of the same fio job in the same script
run; the report gives ratios and the daemon's CPU time (utime+stime from /proc/PID/stat).

Usage (root, fio installed):
  python3 crates/fusebox-bench/scripts/bench-direct-io.py [--bin target/release/fusebox] [--runtime 10] [--quick]
Prints markdown tables (the ones recorded in docs/BENCHMARKS.md).
"""
import argparse, json, os, subprocess, sys, tempfile, time


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw).stdout


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = tempfile.mkdtemp(prefix="fusebox-dio-", dir="/var/tmp")
        self.loop = None
        self.mounts = []
        self.pids = {}
        self.made = 0

    def setup(self):
        self.loop, self.native = sh(self.a.bin, "bench", "tool", "loop-up", self.work,
                                    f"{self.a.image_gib}G").split()
        self.src = os.path.join(self.native, "src")
        os.mkdir(self.src)
        self.file = "file"
        fio(self.src, ["--name=fill", f"--filename={self.file}", f"--size={self.a.size}", "--rw=write",
                       "--bs=1M", "--direct=1", "--ioengine=psync"])

    def mount(self, opts):
        self.made += 1
        mnt = os.path.join(self.work, f"mnt{self.made}")
        os.mkdir(mnt)
        sh(self.a.bin, "mount", "passthrough", self.src, mnt, "-o", opts)
        self.mounts.append(mnt)
        self.pids[mnt] = status(self.a.bin, mnt)["pid"]
        return mnt

    def umount(self, mnt):
        subprocess.run([self.a.bin, "umount", mnt], capture_output=True)
        self.mounts.remove(mnt)
        # The daemon holds backing files open until it exits: wait, or the image stays busy.
        pid, deadline = self.pids.pop(mnt), time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)

    def cleanup(self):
        for m in list(self.mounts):
            self.umount(m)
        if self.loop:
            subprocess.run([self.a.bin, "bench", "tool", "loop-down", self.work], capture_output=True)
        subprocess.run(["rm", "-rf", self.work])


def status(bin_, mnt):
    return json.loads(sh(bin_, "stats", mnt, "--json"))


def op(report, name):
    for o in report["stats"]["ops"]:
        if o["name"] == name:
            return o
    return {"count": 0, "bytes_in": 0, "bytes_out": 0, "max_in_flight_one_file": 0}


def cpu_seconds(bin_, pid):
    return float(sh(bin_, "bench", "tool", "cpu", str(pid)))


def fio(directory, args):
    out = sh("fio", "--output-format=json", f"--directory={directory}", "--group_reporting", *args)
    job = json.loads(out)["jobs"][0]
    rd, wr = job["read"], job["write"]
    side = rd if rd["io_bytes"] > 0 else wr
    return {"iops": side["iops"], "mib_s": side["bw_bytes"] / (1 << 20), "ios": side["total_ios"]}


def measured(b, mnt, args):
    """Run fio on the mount; returns fio's numbers plus daemon CPU seconds."""
    pid = status(b.a.bin, mnt)["pid"]
    c0 = cpu_seconds(b.a.bin, pid)
    r = fio(mnt, args)
    r["cpu_s"] = cpu_seconds(b.a.bin, pid) - c0
    return r


def randread(b, mnt):
    print("\n### O_DIRECT random read, io_uring engine, iodepth 32\n")
    print("| bs | jobs | native IOPS | fusebox IOPS | ratio | native MiB/s | fusebox MiB/s | daemon CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for bs in ["4k", "128k", "1m"]:
        for jobs in [1, 2]:
            args = ["--name=randread", f"--filename={b.file}", "--rw=randread", f"--bs={bs}", "--direct=1",
                    "--ioengine=io_uring", "--iodepth=32", f"--numjobs={jobs}", f"--size={b.a.size}",
                    "--time_based", f"--runtime={b.a.runtime}"]
            n = fio(b.src, args)
            f = measured(b, mnt, args)
            print(f"| {bs} | {jobs} | {n['iops']:.0f} | {f['iops']:.0f} | {f['iops'] / n['iops']:.2f} | "
                  f"{n['mib_s']:.0f} | {f['mib_s']:.0f} | {f['cpu_s']:.1f} |", flush=True)


def vector_io(path, rw, total, per_call):
    """O_DIRECT pwritev/preadv of 4 KiB iovecs, `per_call` per syscall, over `total` bytes.
    (fio's vsync engine caps iodepth at 1, so it cannot issue multi-iovec calls.)"""
    import mmap
    bufs = [memoryview(mmap.mmap(-1, 4096)) for _ in range(per_call)]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        calls, off, t = 0, 0, time.perf_counter()
        while off < total:
            n = os.pwritev(fd, bufs, off) if rw == "write" else os.preadv(fd, bufs, off)
            assert n == 4096 * per_call, n
            off += n
            calls += 1
        secs = time.perf_counter() - t
    finally:
        os.close(fd)
    return {"mib_s": total / secs / (1 << 20), "calls": calls}


def vectored(b, mnt):
    print("\n### O_DIRECT pwritev/preadv with 32 iovecs of 4 KiB vs 32 separate 4 KiB calls\n")
    print("| op | iovecs per call | native MiB/s | fusebox MiB/s | ratio | syscalls | fusebox requests | requests/syscall |")
    print("|---|---|---|---|---|---|---|---|")
    total = 128 << 20
    for rw, opname in [("write", "WRITE"), ("read", "READ")]:
        for per_call in [32, 1]:
            n = vector_io(os.path.join(b.src, "vec"), rw, total, per_call)
            before = op(status(b.a.bin, mnt), opname)["count"]
            f = vector_io(os.path.join(mnt, "vec"), rw, total, per_call)
            reqs = op(status(b.a.bin, mnt), opname)["count"] - before
            print(f"| {rw} | {per_call} | {n['mib_s']:.0f} | {f['mib_s']:.0f} | {f['mib_s'] / n['mib_s']:.2f} | "
                  f"{f['calls']} | {reqs} | {reqs / f['calls']:.2f} |", flush=True)


def async_dio(b):
    print("\n### 16 MiB O_DIRECT reads and writes: async DIO vs `-o no_async_dio`\n")
    print("| job | mount | native MiB/s | fusebox MiB/s | ratio | max requests of the file in flight | daemon CPU s |")
    print("|---|---|---|---|---|---|---|")
    for rw, opname in [("read", "READ"), ("write", "WRITE")]:
        args = [f"--name=big{rw}", f"--filename={b.file}", f"--rw={rw}", "--bs=16m", "--direct=1",
                "--ioengine=psync", f"--size={b.a.size}", "--time_based", f"--runtime={b.a.runtime}"]
        n = fio(b.src, args)
        for opts in ["", "no_async_dio"]:
            mnt = b.mount(opts or "threads=8")
            f = measured(b, mnt, args)
            peak = op(status(b.a.bin, mnt), opname)["max_in_flight_one_file"]
            b.umount(mnt)
            print(f"| {rw} | {opts or 'default (async DIO)'} | {n['mib_s']:.0f} | {f['mib_s']:.0f} | "
                  f"{f['mib_s'] / n['mib_s']:.2f} | {peak} | {f['cpu_s']:.1f} |", flush=True)


def splice_cmp(b):
    print("\n### READ replies: pread + writev vs splice (`-o splice_write`), backing file in page cache\n")
    print("| job | mount | native MiB/s | fusebox MiB/s | ratio | daemon CPU s | CPU ms per GiB |")
    print("|---|---|---|---|---|---|---|")
    for label, direct in [("buffered 1 MiB seq read", 0), ("O_DIRECT 1 MiB seq read", 1)]:
        args = ["--name=seqread", f"--filename={b.file}", "--rw=read", "--bs=1m", f"--direct={direct}",
                "--ioengine=psync", f"--size={b.a.size}", "--invalidate=0"]
        # The backing file is read once natively first, so both runs find it cached (buffered).
        fio(b.src, ["--name=warm", f"--filename={b.file}", "--rw=read", "--bs=1m", f"--size={b.a.size}"])
        n = fio(b.src, args)
        for opts in ["threads=8", "threads=8,splice_write"]:
            mnt = b.mount(opts)
            f = measured(b, mnt, args)
            b.umount(mnt)
            gib = f["mib_s"] and (f["ios"] / 1024)
            print(f"| {label} | {opts} | {n['mib_s']:.0f} | {f['mib_s']:.0f} | {f['mib_s'] / n['mib_s']:.2f} | "
                  f"{f['cpu_s']:.2f} | {1000 * f['cpu_s'] / gib:.0f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/release/fusebox")
    p.add_argument("--runtime", type=int, default=10, help="seconds per timed fio job")
    p.add_argument("--size", default="1g", help="size of the test file")
    p.add_argument("--image-gib", type=int, default=4)
    p.add_argument("--opts", default="", help="extra -o options for the passthrough mount")
    p.add_argument("--only", default="randread,vectored,async,splice", help="sections to run")
    a = p.parse_args()
    a.bin = os.path.abspath(a.bin)
    if os.geteuid() != 0:
        sys.exit("bench-direct-io: needs root (loop device, mount)")
    b = Bench(a)
    try:
        b.setup()
        print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs; backing: ext4 on {b.loop} (direct IO); "
              f"file {a.size}; fusebox {sh(a.bin, '--version').strip() if False else a.bin}")
        only = a.only.split(",")
        mnt = b.mount(a.opts or "threads=8")
        if "randread" in only:
            randread(b, mnt)
        if "vectored" in only:
            vectored(b, mnt)
        b.umount(mnt)
        if "async" in only:
            async_dio(b)
        if "splice" in only:
            splice_cmp(b)
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
