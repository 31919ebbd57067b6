#!/usr/bin/env bash
# Writeback throughput of a passthrough mount (source on /var/tmp) for several kernel background
# limits: 2 GiB sequential 1 MiB writes + fsync (dd) and 256 MiB random 4 KiB writes + fsync
# (fio). Usage (root): bash crates/fusebox-bench/scripts/max-background-sweep.sh   (BIN=path/to/fusebox to override)
set -e
BIN="${BIN:-target/release/fusebox}"
for round in 1 2; do
for mb in 12 32 64 128; do
  W=$(mktemp -d /var/tmp/fbx-mb-XXXX); mkdir $W/src $W/mnt
  $BIN mount passthrough $W/src $W/mnt -o max_background=$mb,congestion_threshold=$((mb*3/4))
  seq=$(dd if=/dev/zero of=$W/mnt/seq bs=1M count=2048 conv=fsync 2>&1 | awk '/copied/ {print $(NF-1)" "$NF}')
  rnd=$(fio --name=r --filename=$W/mnt/rnd --rw=randwrite --bs=4k --size=256m --ioengine=psync --end_fsync=1 --output-format=json 2>/dev/null | python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['write']; print(round(j['bw_bytes']/2**20))")
  echo "round $round max_background=$mb congestion_threshold=$((mb*3/4)): seq 1M write+fsync $seq; rand 4k write+fsync ${rnd} MiB/s"
  $BIN umount $W/mnt; sleep 1; rm -rf $W
done; done
