#!/usr/bin/env bash
# Latency isolation: p50/p99 of stat() on one file of a passthrough mount, idle and while
# another process floods writeback (buffered dd of FLOOD_MIB to another file), for
# sched=classes and sched=fifo. Attribute caching is off so every stat reaches the daemon.
# Usage: [EXTRA_OPTS=max_background=8] bash crates/fusebox-bench/scripts/latency-isolation.sh [FUSEBOX_BINARY]
# (as root; needs python3). With PEER='COMMAND {SRC} {MNT}' it measures that daemon instead
# (run in the foreground and unmounted afterwards; it must not cache attributes, e.g.
# passthrough_hp --nocache), in one row named "peer".
# Without `writeback` in EXTRA_OPTS the passthrough mount uses kernel passthrough where the
# kernel grants it (its default), so the flood's data does not go through the daemon.
set -euo pipefail
PROBE="$(cd "$(dirname "$0")" && pwd)/stat-probe.py"
BIN="${1:-target/release/fusebox}"
FLOOD_MIB="${FLOOD_MIB:-4096}"
SECS="${SECS:-8}"
work=$(mktemp -d /var/tmp/fusebox-lat-XXXXXX)
trap 'for m in "$work"/mnt-*; do umount -l "$m" 2>/dev/null || true; done; rm -rf "$work"' EXIT

probe() { python3 "$PROBE" "$@"; } # FILE SECONDS [PID] -> "p50_us p99_us max_us samples"

printf '%-8s %-7s %9s %9s %10s %8s\n' sched phase p50_us p99_us max_us samples
scheds="${SCHEDS:-classes fifo}"
[ -z "${PEER:-}" ] || scheds=peer
for sched in $scheds; do
    src="$work/src-$sched" mnt="$work/mnt-$sched"
    mkdir -p "$src" "$mnt"
    peer_pid=""
    if [ -n "${PEER:-}" ]; then
        cmd="${PEER//\{SRC\}/$src}"
        cmd="${cmd//\{MNT\}/$mnt}"
        sh -c "exec $cmd" >"$work/peer.log" 2>&1 &
        peer_pid=$!
        for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
        mountpoint -q "$mnt" || { cat "$work/peer.log"; echo "peer did not mount" >&2; exit 1; }
    else
        "$BIN" mount passthrough "$src" "$mnt" -o "sched=$sched,attr_timeout=0,entry_timeout=0${EXTRA_OPTS:+,$EXTRA_OPTS}"
    fi
    echo x > "$mnt/probe"
    read -r p50 p99 max n < <(probe "$mnt/probe" "$SECS")
    printf '%-8s %-7s %9s %9s %10s %8s\n' "$sched" idle "$p50" "$p99" "$max" "$n"
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$mnt/flood" bs=1M count="$FLOOD_MIB" status=none &
    dd_pid=$!
    sleep 0.5
    read -r p50 p99 max n < <(probe "$mnt/probe" "$SECS" "$dd_pid")
    printf '%-8s %-7s %9s %9s %10s %8s\n' "$sched" flood "$p50" "$p99" "$max" "$n"
    wait "$dd_pid"
    sync -f "$mnt/flood"
    echo "   flood: $FLOOD_MIB MiB written and synced at $(python3 -c "import sys; print(round($FLOOD_MIB / ($(date +%s.%N) - $t0)))") MiB/s"
    if [ -n "$peer_pid" ]; then
        umount "$mnt"
        wait "$peer_pid" || true
        rm -rf "$src"
        continue
    fi
    "$BIN" stats "$mnt" --json | python3 -c 'import json,sys; r=json.load(sys.stdin); w=[o for o in r["stats"]["ops"] if o["name"]=="WRITE"]; g=[o for o in r["stats"]["ops"] if o["name"]=="GETATTR"]; print("   WRITEs:", w[0]["count"] if w else 0, "server-side GETATTR p50/p99/max us:", (g[0]["p50_us"], g[0]["p99_us"], g[0]["max_us"]) if g else None, "sched:", r["sched"])'
    "$BIN" umount "$mnt"
    rm -rf "$src"
done
