#!/usr/bin/env bash
# FUSE over io_uring vs /dev/fuse, side by side in one run on the same storage (docs/BENCHMARKS.md).
#
#   bash crates/fusebox-bench/scripts/bench-uring.sh            # needs root, fio, python3 and a release build of fusebox
#
# Environment: FUSEBOX (binary, default target/release/fusebox), ROUNDS (default 3), RUNTIME
# (seconds per fio job, default 10), SIZE (read file, default 256M), FILES (metadata workload,
# default 20000), FSES ("passthrough memfs"),
# LAYOUTS (space-separated NAME=OPTIONS; NAME "devfuse" is the baseline), NATIVE=1 (also the
# plain ext4 directory).
#
# Storage: a 4 GiB ext4 image (lazy init off) on a direct-IO loop device under /var/tmp, the
# passthrough source; memfs needs none. Workloads: O_DIRECT 4 KiB random reads at qd1 (psync)
# and qd32 (libaio) of a SIZE file laid out beforehand, buffered 1 MiB sequential reads of
# it with cold caches, and create+stat+unlink of FILES files (python3, one op at a time).
# Daemon CPU = utime+stime of the daemon from /proc/PID/stat across each job.
set -euo pipefail
cd "$(dirname "$0")/../../.."

BIN="${FUSEBOX:-target/release/fusebox}"
BIN="$(realpath "$BIN")"
. crates/fusebox-bench/scripts/lib.sh
RUNTIME="${RUNTIME:-10}"
FILES="${FILES:-20000}"
SIZE="${SIZE:-256M}"
FSES="${FSES:-passthrough memfs}"
LAYOUTS="${LAYOUTS:-devfuse= uring=io_uring}"
PARAM=/sys/module/fuse/parameters/enable_uring
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no fusebox binary at $BIN (cargo build --release -p fusebox-cli)" >&2; exit 1; }
command -v fio >/dev/null || { echo "needs fio (apt-get install -y fio)" >&2; exit 1; }
[ -e "$PARAM" ] || { echo "this kernel has no FUSE over io_uring ($PARAM)" >&2; exit 1; }

work="$(mktemp -d /var/tmp/fusebox-uring-bench.XXXXXX)"
param_before="$(cat "$PARAM")"
looped=""
mnts=()
declare -A pids=()
cleanup() {
    set +e
    for m in "${mnts[@]}"; do
        mountpoint -q "$m" && "$BIN" umount "$m" >/dev/null 2>&1
        mountpoint -q "$m" && umount -l "$m"
    done
    # A passthrough daemon keeps the ext4 busy until it has exited.
    for p in "${pids[@]}"; do
        [ -n "$p" ] && for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    [ -n "$looped" ] && loop_down "$work"
    echo "$param_before" > "$PARAM"
    rm -rf "$work"
}
trap cleanup EXIT
loop_up "$work" 4G >/dev/null
looped=1
mkdir -p "$work/ext4/src" "$work/ext4/native"
results="$work/results.tsv"
: > "$results"


fio_job() { # name dir extra-args... -> prints the metric (IOPS or MB/s)
    local name="$1" dir="$2"; shift 2
    fio --name="$name" --filename="$dir/bench.file" --size="$SIZE" --output-format=json "$@" >"$work/fio.json"
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

run_job() { # fs layout job dir pid -> appends one result row
    local fs="$1" layout="$2" job="$3" dir="$4" pid="$5" c0 v c1
    drop_caches
    c0="$(daemon_cpu "$pid")"
    case "$job" in
        randread-4k-qd1) v="$(fio_job "$job" "$dir" --rw=randread --bs=4k --direct=1 --ioengine=psync \
            --time_based --runtime="$RUNTIME")" ;;
        randread-4k-qd32) v="$(fio_job "$job" "$dir" --rw=randread --bs=4k --direct=1 --ioengine=libaio \
            --iodepth=32 --time_based --runtime="$RUNTIME")" ;;
        seqread-1m) v="$(fio_job "$job" "$dir" --rw=read --bs=1m)" ;;
        meta) v="$(meta_job "$dir")" ;;
    esac
    c1="$(daemon_cpu "$pid")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$fs" "$layout" "$job" "$v" "$(echo "$c1 - $c0" | bc -l)" >> "$results"
    echo "  $fs $layout $job: $v (daemon CPU $(echo "$c1 - $c0" | bc -l) s)" >&2
}

layout_file() { # dir: the SIZE file the read jobs use (not measured)
    fio --name=layout --filename="$1/bench.file" --size="$SIZE" --rw=write --bs=1m --end_fsync=1 \
        --output-format=terse >/dev/null
}

JOBS="randread-4k-qd1 randread-4k-qd32 seqread-1m meta"
ROUNDS="${ROUNDS:-3}"
# Every layout of one file system is mounted at once (each its own daemon, and for passthrough
# its own source directory) and the jobs alternate between them, ROUNDS times: drift in the
# machine's load (other work on it) hits every layout alike. The median of the rounds counts.
all_fs="$FSES"
[ "${NATIVE:-0}" = 1 ] && all_fs="ext4 $FSES"
for fs in $all_fs; do
    names=(); dirs=()
    if [ "$fs" = ext4 ]; then
        names=(native); dirs=("$work/ext4/native"); pids[native]=""
    else
        for l in $LAYOUTS; do
            name="${l%%=*}"; opts="${l#*=}"
            m="$work/mnt-$fs-$name"; mkdir -p "$m"; mnts+=("$m")
            [ -n "$opts" ] && echo Y > "$PARAM"
            case "$fs" in
                passthrough) mkdir -p "$work/ext4/src-$name"
                    "$BIN" mount passthrough "$work/ext4/src-$name" "$m" ${opts:+-o "$opts"} ;;
                memfs) "$BIN" mount memfs "$m" -o "size=2G${opts:+,$opts}" ;;
            esac
            echo "$param_before" > "$PARAM"
            pids[$name]="$("$BIN" stats "$m" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')"
            names+=("$name"); dirs+=("$m")
        done
    fi
    for i in "${!names[@]}"; do layout_file "${dirs[$i]}"; done
    for r in $(seq "$ROUNDS"); do
        echo "[$fs round $r]" >&2
        for job in $JOBS; do
            for i in "${!names[@]}"; do run_job "$fs" "${names[$i]}" "$job" "${dirs[$i]}" "${pids[${names[$i]}]}"; done
        done
    done
    [ "$fs" = ext4 ] && continue
    for i in "${!names[@]}"; do
        uring="$("$BIN" stats "${dirs[$i]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"].get("uring_requests", 0))')"
        echo "  $fs ${names[$i]}: requests over io_uring: $uring" >&2
        for _ in $(seq 50); do "$BIN" umount "${dirs[$i]}" 2>/dev/null && break; sleep 0.1; done
        mountpoint -q "${dirs[$i]}" && umount -l "${dirs[$i]}"
        p="${pids[${names[$i]}]}"
        while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    done
done

python3 - "$results" "$RUNTIME" "$FILES" <<'EOF'
import sys, statistics
from collections import defaultdict
vals, cpus, order = defaultdict(list), defaultdict(list), []
for line in open(sys.argv[1]):
    f, l, j, v, c = line.rstrip("\n").split("\t")
    if (f, l, j) not in vals:
        order.append((f, l, j))
    vals[(f, l, j)].append(float(v))
    cpus[(f, l, j)].append(float(c))
med = {k: statistics.median(v) for k, v in vals.items()}
units = {"randread-4k-qd1": "IOPS", "randread-4k-qd32": "IOPS", "seqread-1m": "MB/s", "meta": "files/s"}
runtime, files = float(sys.argv[2]), float(sys.argv[3])
def per_op(j, v, c):
    # daemon CPU per operation: fio random reads do IOPS x runtime reads, meta does 3 per file
    ops = v * runtime if j.startswith("randread") else 3 * files if j == "meta" else 0
    return f"{c / ops * 1e6:.1f}" if ops else "-"
print(f"{'fs':12} {'layout':16} {'workload':17} {'median':>10} {'unit':8} {'vs devfuse':>10} {'CPU s':>6} {'CPU us/op':>9}  rounds")
for f, l, j in sorted(order, key=lambda k: (k[0], list(units).index(k[2]), order.index(k))):
    v = med[(f, l, j)]
    b = med.get((f, "devfuse", j)) or med.get((f, "native", j))
    ratio = f"{v / b:.2f}x" if b else "-"
    c = statistics.median(cpus[(f, l, j)])
    print(f"{f:12} {l:16} {j:17} {v:>10.1f} {units[j]:8} {ratio:>10} {c:>6.2f} {per_op(j, v, c):>9}  "
          + " ".join(f"{x:.0f}" for x in vals[(f, l, j)]))
EOF
