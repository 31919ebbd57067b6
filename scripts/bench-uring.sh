#!/usr/bin/env bash
# FUSE over io_uring vs /dev/fuse, side by side in one run on the same storage (docs/BENCHMARKS.md).
#
#   bash scripts/bench-uring.sh            # needs root, fio, python3 and a release build of fusebox
#
# Environment: FUSEBOX (binary, default target/release/fusebox), RUNTIME (seconds per fio job,
# default 10), FILES (metadata workload, default 20000), FSES ("passthrough memfs"),
# LAYOUTS (space-separated NAME=OPTIONS; NAME "devfuse" is the baseline), NATIVE=1 (also the
# plain ext4 directory).
#
# Storage: a 2 GiB ext4 image (lazy init off) on a direct-IO loop device under /var/tmp, the
# passthrough source; memfs needs none. Workloads: O_DIRECT 4 KiB random reads at qd1 (psync)
# and qd32 (libaio) of a 512 MiB file laid out beforehand, buffered 1 MiB sequential reads of
# it with cold caches, and create+stat+unlink of FILES files (python3, one op at a time).
# Daemon CPU = utime+stime of the daemon from /proc/PID/stat across each job.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${FUSEBOX:-target/release/fusebox}"
BIN="$(realpath "$BIN")"
RUNTIME="${RUNTIME:-10}"
FILES="${FILES:-20000}"
FSES="${FSES:-passthrough memfs}"
LAYOUTS="${LAYOUTS:-devfuse= uring=io_uring}"
PARAM=/sys/module/fuse/parameters/enable_uring
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no fusebox binary at $BIN (cargo build --release -p fusebox-cli)" >&2; exit 1; }
command -v fio >/dev/null || { echo "needs fio (apt-get install -y fio)" >&2; exit 1; }
[ -e "$PARAM" ] || { echo "this kernel has no FUSE over io_uring ($PARAM)" >&2; exit 1; }

work="$(mktemp -d /var/tmp/fusebox-uring-bench.XXXXXX)"
param_before="$(cat "$PARAM")"
loopdev=""
mnt="$work/mnt"
cleanup() {
    set +e
    mountpoint -q "$mnt" && "$BIN" umount "$mnt" >/dev/null 2>&1
    mountpoint -q "$mnt" && umount -l "$mnt"
    mountpoint -q "$work/ext4" && umount "$work/ext4"
    [ -n "$loopdev" ] && losetup -d "$loopdev"
    echo "$param_before" > "$PARAM"
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt" "$work/ext4"
truncate -s 2G "$work/img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/img"
loopdev="$(losetup --direct-io=on --find --show "$work/img")"
mount "$loopdev" "$work/ext4"
mkdir -p "$work/ext4/src" "$work/ext4/native"
results="$work/results.tsv"
: > "$results"

ticks="$(getconf CLK_TCK)"
cpu_of() { [ -z "$1" ] && { echo 0; return; }; awk -v t="$ticks" '{print ($14+$15)/t}' "/proc/$1/stat"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

fio_job() { # name dir extra-args... -> prints the metric (IOPS or MB/s)
    local name="$1" dir="$2"; shift 2
    fio --name="$name" --filename="$dir/bench.file" --size=512M --output-format=json "$@" >"$work/fio.json"
    python3 - "$work/fio.json" "$name" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]["read"]
print(f'{j["bw_bytes"] / 1e6:.1f}' if sys.argv[2] == "seqread-1m" else f'{j["iops"]:.0f}')
EOF
}

meta_job() { # dir -> files per second
    python3 - "$1" "$FILES" <<'EOF'
import os, sys, time
d, n = os.path.join(sys.argv[1], "meta"), int(sys.argv[2])
os.makedirs(d, exist_ok=True)
names = [os.path.join(d, f"f{i}") for i in range(n)]
t = time.perf_counter()
for p in names:
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
for p in names:
    os.stat(p)
for p in names:
    os.unlink(p)
print(f"{n / (time.perf_counter() - t):.0f}")
os.rmdir(d)
EOF
}

run_all() { # fs layout dir pid
    local fs="$1" layout="$2" dir="$3" pid="$4" c0 v c1
    fio --name=layout --filename="$dir/bench.file" --size=512M --rw=write --bs=1m --end_fsync=1 \
        --output-format=terse >/dev/null
    for job in randread-4k-qd1 randread-4k-qd32 seqread-1m meta; do
        drop_caches
        c0="$(cpu_of "$pid")"
        case "$job" in
            randread-4k-qd1) v="$(fio_job "$job" "$dir" --rw=randread --bs=4k --direct=1 --ioengine=psync \
                --time_based --runtime="$RUNTIME")" ;;
            randread-4k-qd32) v="$(fio_job "$job" "$dir" --rw=randread --bs=4k --direct=1 --ioengine=libaio \
                --iodepth=32 --time_based --runtime="$RUNTIME")" ;;
            seqread-1m) v="$(fio_job "$job" "$dir" --rw=read --bs=1m)" ;;
            meta) v="$(meta_job "$dir")" ;;
        esac
        c1="$(cpu_of "$pid")"
        printf '%s\t%s\t%s\t%s\t%s\n' "$fs" "$layout" "$job" "$v" "$(echo "$c1 - $c0" | bc -l)" >> "$results"
        echo "  $fs $layout $job: $v (daemon CPU $(echo "$c1 - $c0" | bc -l) s)" >&2
    done
    rm -f "$dir/bench.file"
}

if [ "${NATIVE:-0}" = 1 ]; then
    echo "[native]" >&2
    run_all ext4 native "$work/ext4/native" ""
fi
for fs in $FSES; do
    for l in $LAYOUTS; do
        name="${l%%=*}"; opts="${l#*=}"
        echo "[$fs $name: -o ${opts:-(none)}]" >&2
        [ -n "$opts" ] && echo Y > "$PARAM"
        case "$fs" in
            passthrough) "$BIN" mount passthrough "$work/ext4/src" "$mnt" ${opts:+-o "$opts"} ;;
            memfs) "$BIN" mount memfs "$mnt" -o "size=2G${opts:+,$opts}" ;;
        esac
        echo "$param_before" > "$PARAM"
        pid="$("$BIN" stats "$mnt" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')"
        run_all "$fs" "$name" "$mnt" "$pid"
        uring="$("$BIN" stats "$mnt" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"].get("uring_requests", 0))')"
        echo "  requests over io_uring: $uring" >&2
        "$BIN" umount "$mnt"
        # The next daemon reuses the control socket path: let this one finish first.
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
done

python3 - "$results" <<'EOF'
import sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
base = {(f, j): float(v) for f, l, j, v, c in rows if l in ("devfuse", "native")}
units = {"randread-4k-qd1": "IOPS", "randread-4k-qd32": "IOPS", "seqread-1m": "MB/s", "meta": "files/s"}
print(f"{'fs':12} {'layout':14} {'workload':17} {'result':>10} {'unit':8} {'vs devfuse':>10} {'daemon CPU s':>12}")
for f, l, j, v, c in rows:
    b = base.get((f, j))
    ratio = f"{float(v) / b:.2f}x" if b else "-"
    print(f"{f:12} {l:14} {j:17} {float(v):>10.1f} {units[j]:8} {ratio:>10} {float(c):>12.2f}")
EOF
