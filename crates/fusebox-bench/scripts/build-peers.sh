#!/usr/bin/env bash
# Build libfuse's example daemons passthrough_hp, passthrough_ll and memfs_ll as benchmark peers
# for `fusebox bench --peer` (docs/BENCHMARKS.md, "Peers: how they are built and run").
#
#   crates/fusebox-bench/scripts/build-peers.sh SRC_DIR [OUT_DIR]
#
# SRC_DIR is a libfuse source checkout (3.18 or newer); OUT_DIR defaults to /var/tmp/fusebox-peers.
# The examples are built with meson + ninja (buildtype=release) in OUT_DIR/build against the
# libfuse of the same checkout (not the system's libfuse3), so libfuse3-dev is not needed.
# Nothing is installed: missing tools are named with their Debian/Ubuntu package.
# Writes OUT_DIR/peers.env, a bash file defining PEER_ARGS (an array of ready --peer
# arguments) and LIBFUSE_COMMIT:
#
#   . /var/tmp/fusebox-peers/peers.env && fusebox bench "${PEER_ARGS[@]}"
set -euo pipefail

usage() { echo "usage: $0 SRC_DIR [OUT_DIR]   (SRC_DIR: a libfuse >= 3.18 source checkout)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case "$1" in -h|--help) usage ;; esac
SRC="$(realpath "$1")"
OUT="$(realpath -m "${2:-/var/tmp/fusebox-peers}")"
case "$OUT" in *"'"*|*" "*) echo "OUT_DIR must not contain quotes or spaces: $OUT" >&2; exit 2 ;; esac
BUILD="$OUT/build"

# Tools the build needs (command -> Debian package).
missing=()
for pair in meson:meson ninja:ninja-build pkg-config:pkg-config cc:gcc c++:g++; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing build tools; install them with: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
# Optional: without these libfuse builds without FUSE-over-io_uring support (`-o io_uring`);
# the peers below do not use io_uring, so the build still works. udev and systemd development
# files are optional too (they only decide where udev rules and unit files would be installed,
# and this script installs nothing).
optional=()
pkg-config --exists liburing || optional+=(liburing-dev)
pkg-config --exists numa || optional+=(libnuma-dev)
if [ ${#optional[@]} -gt 0 ]; then
    echo "note: without ${optional[*]} this libfuse has no io_uring support (not needed by the default peers)" >&2
fi

[ -f "$SRC/meson.build" ] && [ -f "$SRC/example/passthrough_hp.cc" ] && [ -f "$SRC/example/memfs_ll.cc" ] || {
    echo "$SRC does not look like a libfuse >= 3.18 checkout (needs example/passthrough_hp.cc and example/memfs_ll.cc)" >&2
    exit 1
}
version="$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$SRC/meson.build" | head -n1)"
major="${version%%.*}"
minor="$(echo "$version" | cut -d. -f2)"
case "$major$minor" in *[!0-9]*|"") major=0 minor=0 ;; esac
if [ -z "$version" ] || [ "$major" -lt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -lt 18 ]; }; then
    echo "libfuse version '${version:-unknown}' in $SRC/meson.build: need 3.18 or newer" >&2
    exit 1
fi
if commit="$(git -C "$SRC" rev-parse HEAD 2>/dev/null)"; then
    if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit (with local changes)"
    fi
else
    commit="unknown (not a git checkout)"
fi

mkdir -p "$OUT"
# Only the library and the examples: no fusermount3/mount.fuse3 (utils), no tests.
opts=(--buildtype=release -Dexamples=true -Dutils=false -Dtests=false)
if [ -f "$BUILD/build.ninja" ]; then
    meson setup --reconfigure "${opts[@]}" "$BUILD" "$SRC" >"$OUT/meson.log" 2>&1 ||
        { cat "$OUT/meson.log" >&2; exit 1; }
else
    meson setup "${opts[@]}" "$BUILD" "$SRC" >"$OUT/meson.log" 2>&1 ||
        { cat "$OUT/meson.log" >&2; exit 1; }
fi
ninja -C "$BUILD" example/passthrough_hp example/passthrough_ll example/memfs_ll >"$OUT/ninja.log" 2>&1 ||
    { tail -n 50 "$OUT/ninja.log" >&2; exit 1; }

hp="$BUILD/example/passthrough_hp"
ll="$BUILD/example/passthrough_ll"
mem="$BUILD/example/memfs_ll"
for b in "$hp" "$ll" "$mem"; do
    [ -x "$b" ] || { echo "build did not produce $b" >&2; exit 1; }
done

# The peer command lines. Each stays in the foreground (fusebox bench needs the daemon's pid),
# runs libfuse's multithreaded loop (up to 10 worker threads, libfuse's default) and, where the
# example supports it, one cloned /dev/fuse fd per thread like fusebox does.
#  - passthrough_hp: positional SOURCE MOUNTPOINT; backgrounds itself unless --foreground;
#    --nopassthrough serves READ/WRITE itself (kernel passthrough would bypass the daemon, and
#    passthrough_hp turns the write-back cache off when passthrough is on); with
#    --nopassthrough it enables the write-back cache and caches entries/attributes for a day.
#  - passthrough_ll: source via -o source=, -f for foreground, -o writeback for the write-back
#    cache, -o clone_fd; entry/attr timeout 1 s (cache=normal, its default).
#  - memfs_ll: no source ({SRC} is unused); -o writeback_cache, -o no_timeout (cache entries
#    and attributes for a day; its default is 0 s, a LOOKUP per path walk). Its loop config is
#    not taken from the command line, so -o clone_fd would be accepted and ignored: not given.
cmd_hp="$hp --foreground --nopassthrough --clone-fd {SRC} {MNT}"
# passthrough_hp with its default, kernel passthrough (no write-back cache then).
cmd_hp_kpt="$hp --foreground --clone-fd {SRC} {MNT}"
cmd_ll="$ll -f -o writeback -o clone_fd -o source={SRC} {MNT}"
cmd_mem="$mem -f -o writeback_cache -o no_timeout {MNT}"

{
    echo "# Written by crates/fusebox-bench/scripts/build-peers.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# libfuse $version from $SRC, commit $commit"
    echo "# usage: . $OUT/peers.env && fusebox bench \"\${PEER_ARGS[@]}\""
    printf 'LIBFUSE_COMMIT=%q\n' "$commit"
    printf 'LIBFUSE_VERSION=%q\n' "$version"
    echo "PEER_ARGS=("
    printf "    --peer '%s'\n" "libfuse-passthrough_hp=$cmd_hp" "libfuse-passthrough_hp-kpt=$cmd_hp_kpt" \
        "libfuse-passthrough_ll=$cmd_ll" "libfuse-memfs_ll=$cmd_mem"
    echo ")"
} >"$OUT/peers.env"

echo "libfuse $version, commit $commit"
echo "passthrough_hp: $hp"
echo "passthrough_ll: $ll"
echo "memfs_ll:       $mem"
echo "peer commands ({SRC} and {MNT} are filled in by fusebox bench):"
echo "  libfuse-passthrough_hp=$cmd_hp"
echo "  libfuse-passthrough_hp-kpt=$cmd_hp_kpt"
echo "  libfuse-passthrough_ll=$cmd_ll"
echo "  libfuse-memfs_ll=$cmd_mem"
echo "wrote $OUT/peers.env; use it as:"
echo "  . $OUT/peers.env && fusebox bench \"\${PEER_ARGS[@]}\""
