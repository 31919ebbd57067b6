"""A hostile local user against two allow_other mounts, for SECS seconds (run by
tests/hostile_user.rs as an unprivileged user). Prints one JSON line of counts.

argv: MEMFS_MOUNT PASSTHROUGH_MOUNT SECS SENTINEL (a root-owned file outside SOURCE)
"""
import errno, json, os, sys, threading, time

memfs, pt, secs, sentinel = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
deadline = time.monotonic() + secs
counts = {}
lock = threading.Lock()


def count(key, n=1):
    with lock:
        counts[key] = counts.get(key, 0) + n


def until_deadline(step):
    """Call step(i) until the deadline; errors are counted by errno name, never raised."""
    i = 0
    while time.monotonic() < deadline:
        try:
            step(i)
        except OSError as e:
            count("err_" + errno.errorcode.get(e.errno, str(e.errno)))
            time.sleep(0.005)
        i += 1


def hold_open_files():
    """Create and open files through the passthrough mount until EMFILE; hold them."""
    held = []
    d = os.path.join(pt, "held")
    os.makedirs(d, exist_ok=True)
    i = 0
    while time.monotonic() < deadline:
        try:
            held.append(os.open(os.path.join(d, "f%d" % i), os.O_CREAT | os.O_RDWR, 0o600))
            i += 1
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                count("reached_emfile")
                break
            count("err_open_" + errno.errorcode.get(e.errno, str(e.errno)))
            time.sleep(0.01)
    count("held_open", len(held))
    while time.monotonic() < deadline:
        time.sleep(0.1)
    for fd in held:
        os.close(fd)


def xattrs(i):
    f = os.path.join(memfs, "x%d" % (i // 4))
    if i % 4 == 0:
        open(f, "w").close()
    os.setxattr(f, "user.v%d" % i, b"v" * 65536)
    count("xattr")


def symlinks(i):
    os.symlink("t" * 4000, os.path.join(memfs, "s%d" % i))
    count("symlink")


def empty_files(i):
    open(os.path.join(memfs, ("e%d-" % i).ljust(255, "n")), "w").close()
    count("file")


def deep_tree(i):
    path = os.path.join(memfs, "deep%d" % (i // 200))
    for level in range(i % 200 + 1):
        path = os.path.join(path, "d")
    os.makedirs(path, exist_ok=True)
    count("dir")


def data(i):
    with open(os.path.join(memfs, "data%d" % i), "wb") as f:
        f.write(b"d" * (1 << 20))
    count("data_mib")


def escapes(i):
    """Symlinks and renames that try to reach outside SOURCE through the passthrough mount."""
    link = os.path.join(pt, "esc%d" % (i % 8))
    try:
        os.unlink(link)
    except FileNotFoundError:
        pass
    os.symlink("../outside" if i % 2 else sentinel, link)
    try:
        with open(link, "a") as f:
            f.write("owned\n")
        count("escape_write_succeeded")
    except OSError:
        count("escape_refused")
    d = os.path.join(pt, "swap")
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(pt, "swaplink")
    try:
        os.symlink("..", tmp)
        os.rename(tmp, d) if i % 3 == 0 else os.unlink(tmp)
    except OSError:
        pass


threads = [threading.Thread(target=hold_open_files)]
threads += [threading.Thread(target=until_deadline, args=(f,))
            for f in (xattrs, symlinks, empty_files, deep_tree, data, escapes)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts), flush=True)
