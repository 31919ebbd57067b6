# Shared by the benchmark scripts (source it after setting BIN to the fusebox binary). Storage
# and daemon CPU come from the harness itself (`fusebox bench tool`), so every script measures
# them the way `fusebox bench` does.

BENCH_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_SCRIPTS/../../.." && pwd)"

# daemon_cpu PID -> utime+stime seconds of PID (0 without a pid).
daemon_cpu() { [ -z "${1:-}" ] && { echo 0; return; }; "$BIN" bench tool cpu "$1"; }

# loop_up DIR SIZE -> "DEVICE MOUNTPOINT": a SIZE ext4 image in DIR on a direct-IO loop device,
# mounted at DIR/ext4. loop_down DIR undoes it.
loop_up() { "$BIN" bench tool loop-up "$1" "$2"; }
loop_down() { "$BIN" bench tool loop-down "$1"; }

# stat_probe FILE SECONDS [PID] -> "p50_us p99_us max_us samples".
stat_probe() { python3 "$BENCH_SCRIPTS/stat-probe.py" "$@"; }

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# fio_mbps RW FILE -> MB/s of one fio job (psync, 1 MiB blocks, $SIZE_MIB MiB, fsync at the
# end) reading or writing FILE.
fio_mbps() {
    fio --name=j --filename="$2" --rw="$1" --bs=1M --size="${SIZE_MIB}M" --ioengine=psync \
        --end_fsync=1 --output-format=json 2>/dev/null |
        python3 -c 'import json, sys; j = json.load(sys.stdin)["jobs"][0]; k = "write" if j["write"]["bw_bytes"] else "read"; print(round(j[k]["bw_bytes"] / 1e6))'
}

# knobs NAME=DEFAULT...: each NAME keeps the value the environment gives it, else DEFAULT.
knobs() {
    local kv name
    for kv in "$@"; do
        name="${kv%%=*}"
        declare -g "$name=${!name:-${kv#*=}}"
    done
}

# dfs_bench_start NAME [FUSEBOX_BINARY] [KNOB=DEFAULT...]: how the fusebox-dfs benchmark scripts
# begin: in the repository's root, BIN set (default target/release/fusebox) and checked, fio
# checked, the knobs set (see knobs), die() naming NAME, a work directory on disk (not tmpfs)
# in $work with $work/logs, and the PostgreSQL/SeaweedFS helpers of scripts/lib/dfs-services.sh
# loaded.
dfs_bench_start() {
    BENCH_NAME="$1"
    cd "$REPO_ROOT"
    BIN="$(realpath "${2:-target/release/fusebox}")"
    shift 2
    knobs "$@"
    [ -x "$BIN" ] || { echo "no fusebox binary at $BIN (cargo build --release)" >&2; exit 1; }
    command -v fio >/dev/null || { echo "fio is missing (apt-get install fio)" >&2; exit 1; }
    work="$(mktemp -d "/var/tmp/fusebox-$BENCH_NAME.XXXXXX")"
    mkdir -p "$work/logs"
    # shellcheck source=../../../scripts/lib/dfs-services.sh
    . "$REPO_ROOT/scripts/lib/dfs-services.sh"
}
die() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }
