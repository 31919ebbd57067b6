//! Per-operation request budget: how many FUSE requests the kernel sends for common
//! operations on mounts made by the binary with its defaults, counted from the daemon's stats.
//! A change that adds a request to any of these fails here.
//!
//! The budgets are the kernel's floor for each configuration (Linux 6.x, fs/fuse/dir.c and
//! file.c), not targets we chose:
//! - The directory's GETATTR: with `default_permissions` (memfs and passthrough always, since
//!   POSIX ACLs require it) the kernel refreshes a directory's attributes before a path walk
//!   checks its permissions, and every create, unlink or rename in it marks them stale
//!   (`fuse_dir_changed`). So the first path walk through a directory after a change costs one
//!   GETATTR, whatever the operation: below, the create after a create and the stat after a
//!   create pay it; the unlink after a stat does not.
//! - create+close: LOOKUP (an O_EXCL create always looks the name up), CREATE, FLUSH (close),
//!   RELEASE, plus the directory's GETATTR.
//! - stat right after create+close: the directory's GETATTR; with the write-back cache also the
//!   file's, because the kernel marks `st_blocks` stale at every FLUSH (`fuse_flush`).
//! - a second stat: nothing (names and attributes are cached).
//! - unlink: UNLINK and FORGET (at most one per file; the kernel may batch them); with the
//!   write-back cache also a SETATTR, because the kernel
//!   owns ctime there and writes the unlinked inode's new ctime back at once
//!   (`fuse_update_ctime` → `sync_inode_metadata`).
//! - a cold sequential read of 8 MiB in 1 MiB calls (passthrough, data written in SOURCE):
//!   8 READs of 1 MiB (readahead raised to 4 MiB by the daemon), plus LOOKUP, OPEN, FLUSH,
//!   RELEASE and at most one GETATTR.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::*;

impl Daemon {
    /// Request counts per opcode, once the daemon is idle and the counts stay put (RELEASE
    /// and FORGET arrive after the system call that caused them has returned).
    fn counts(&self) -> BTreeMap<String, u64> {
        let read = || {
            let r = fusebox::session::query_status(&self.mnt).expect("stats");
            let idle = r.stats.in_flight_sync + r.stats.in_flight_background == 0;
            (idle, r.stats.ops.into_iter().map(|o| (o.name, o.count)).collect::<BTreeMap<_, _>>())
        };
        let mut last = read().1;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(30));
            let (idle, now) = read();
            if idle && now == last {
                return now;
            }
            last = now;
        }
        panic!("request counts never settled: {last:?}");
    }

    /// The requests `op` caused, per opcode. FORGET and BATCH_FORGET are left out: the kernel
    /// queues forgets and a worker may read them after the next operation started (they are
    /// counted over a whole sequence instead, see [`Daemon::forgets`]).
    fn requests(&self, op: impl FnOnce()) -> BTreeMap<String, u64> {
        let before = self.counts();
        op();
        let after = self.counts();
        after
            .into_iter()
            .filter(|(k, _)| k != "FORGET" && k != "BATCH_FORGET")
            .filter_map(|(k, v)| {
                let d = v - before.get(&k).copied().unwrap_or(0);
                (d > 0).then_some((k, d))
            })
            .collect()
    }

    /// FORGET and BATCH_FORGET requests so far.
    fn forgets(&self) -> u64 {
        let c = self.counts();
        c.get("FORGET").copied().unwrap_or(0) + c.get("BATCH_FORGET").copied().unwrap_or(0)
    }
}

fn expect(what: &str, got: BTreeMap<String, u64>, want: &[(&str, u64)]) {
    let want: BTreeMap<String, u64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want, "{what}: requests differ from the budget");
}

fn create_close(p: &Path) {
    std::fs::OpenOptions::new().write(true).create_new(true).open(p).unwrap();
}

/// lstat(2): the basic attributes, as glibc's stat asks for them. (Rust's `std::fs::metadata`
/// asks statx(2) for everything, birth time included, which the daemons answer with FUSE_STATX:
/// one request where GETATTR would be, and one more after each attribute refresh that did
/// not carry a birth time; see `statx_asking_for_the_birth_time_costs_one_request_per_refresh`.)
fn stat(p: &Path) {
    rustix::fs::lstat(p).unwrap();
}

fn check_metadata_budget(fs: &str, opts: &str, writeback: bool) {
    let d = Daemon::start(fs, opts);
    let dir = d.mnt.join("dir");
    std::fs::create_dir(&dir).unwrap();
    // Warm up: the directory is known and its attributes were just marked stale by a create,
    // as they are in the middle of any sequence of creates.
    create_close(&dir.join("warm"));
    stat(&dir.join("warm"));
    create_close(&dir.join("warm2"));
    let forgets_before = d.forgets();
    const FILES: u64 = 3;
    for i in 0..FILES {
        let what = format!("{fs} -o {opts}, file {i}");
        let f = dir.join(format!("f{i}"));
        let created = d.requests(|| create_close(&f));
        expect(
            &format!("{what}: create+close"),
            created,
            &[("CREATE", 1), ("FLUSH", 1), ("GETATTR", 1), ("LOOKUP", 1), ("RELEASE", 1)],
        );
        let first = d.requests(|| stat(&f));
        expect(&format!("{what}: first stat"), first, &[("GETATTR", if writeback { 2 } else { 1 })]);
        let again = d.requests(|| stat(&f));
        expect(&format!("{what}: second stat"), again, &[]);
        let unlinked = d.requests(|| std::fs::remove_file(&f).unwrap());
        let mut want = vec![("UNLINK", 1)];
        if writeback {
            want.insert(0, ("SETATTR", 1));
        }
        expect(&format!("{what}: unlink"), unlinked, &want);
    }
    // Each unlinked file is forgotten by one FORGET, or several share a BATCH_FORGET.
    let forgets = d.forgets() - forgets_before;
    assert!((1..=FILES).contains(&forgets), "{fs} -o {opts}: {forgets} forget requests for {FILES} unlinks");
}

/// A stat asking for the birth time (Rust's `std::fs::metadata`) right after a create costs
/// two requests: the directory's GETATTR (as for lstat(2)) and a FUSE_STATX for the file,
/// whose attributes came with CREATE but whose birth time did not. With write-back lstat
/// needs the file's GETATTR too, so the birth time is free there; without it is one request
/// more. Repeated, it costs none (the kernel caches the birth time until the next attribute
/// refresh).
fn check_birth_time_budget(fs: &str, opts: &str) {
    let d = Daemon::start(fs, opts);
    let f = d.mnt.join("f");
    create_close(&f);
    let first = d.requests(|| {
        std::fs::symlink_metadata(&f).unwrap();
    });
    let attribute_requests: u64 =
        first.iter().filter(|(k, _)| *k == "GETATTR" || *k == "STATX").map(|(_, v)| v).sum();
    assert!(first.contains_key("STATX"), "{fs} -o {opts}: the birth time was not asked for: {first:?}");
    assert_eq!(attribute_requests, 2, "{fs} -o {opts}: {first:?}");
    let again = d.requests(|| {
        std::fs::symlink_metadata(&f).unwrap();
    });
    expect(&format!("{fs} -o {opts}: second stat with birth time"), again, &[]);
}

#[test]
fn statx_asking_for_the_birth_time_costs_one_request_per_refresh() {
    fusebox_testkit::skip_unless!();
    check_birth_time_budget("memfs", "writeback");
    check_birth_time_budget("memfs", "no_writeback");
    check_birth_time_budget("passthrough", "writeback,attr_timeout=30,entry_timeout=30");
}

#[test]
fn memfs_metadata_requests_stay_within_budget() {
    fusebox_testkit::skip_unless!();
    check_metadata_budget("memfs", "writeback", true);
    check_metadata_budget("memfs", "no_writeback", false);
}

#[test]
fn passthrough_metadata_requests_stay_within_budget() {
    fusebox_testkit::skip_unless!();
    // Timeouts long enough that a slow CI machine does not see cached names expire between
    // two steps (the default is one second without `watch`).
    check_metadata_budget("passthrough", "writeback,attr_timeout=30,entry_timeout=30", true);
    check_metadata_budget(
        "passthrough",
        "no_writeback,kernel_passthrough=off,attr_timeout=30,entry_timeout=30",
        false,
    );
    check_metadata_budget("passthrough", "kernel_passthrough,attr_timeout=30,entry_timeout=30", false);
    check_metadata_budget("passthrough", "watch,writeback", true);
    // The default with `watch`: kernel passthrough, long timeouts.
    check_metadata_budget("passthrough", "watch", false);
}

#[test]
fn sequential_read_uses_full_size_reads() {
    fusebox_testkit::skip_unless!();
    let d = Daemon::start("passthrough", "writeback");
    // Written in SOURCE, so the mount's page cache has none of it.
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.src.join("big"), &data).unwrap();
    let read = d.requests(|| {
        use std::io::Read;
        let mut f = std::fs::File::open(d.mnt.join("big")).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = Vec::new();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == data, "read back different bytes");
    });
    assert_eq!(read.get("READ"), Some(&8), "8 MiB should arrive as 8 READs of 1 MiB: {read:?}");
    let others: u64 = read.iter().filter(|(k, _)| k.as_str() != "READ").map(|(_, v)| v).sum();
    assert!(others <= 5, "LOOKUP, OPEN, FLUSH, RELEASE and at most one GETATTR expected: {read:?}");
}
