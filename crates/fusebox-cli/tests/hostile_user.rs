//! A hostile local user (issue 19): for 60 s (FUSEBOX_HOSTILE_SECS), an unprivileged user
//! holds files open through a passthrough mount up to its descriptor limit, floods a memfs
//! mount with xattrs, symlinks, empty files with long names, deep trees and data, and tries to
//! reach outside SOURCE through symlinks, while root keeps listing, creating and reading on
//! both mounts. Afterwards every one of root's operations succeeded, both daemons are alive,
//! memfs's RSS stayed below size= plus a documented overhead, and nothing outside SOURCE
//! changed.

mod support;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const USER: &str = "fusebox-hostile";
/// memfs `size=` of the test mount.
const MEMFS_SIZE: u64 = 64 << 20;
/// What memfs may hold beyond `size=`: the daemon's own code, threads, buffers and the
/// allocator's slack (README, "Limits and abuse").
const MEMFS_OVERHEAD: u64 = 96 << 20;

fn rss_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Root's round on one mount: list it, create a file and a directory, read a file written
/// before the flood, rename and remove what it made. Returns the failures.
fn root_round(mnt: &Path, n: u64, with_data: bool) -> Vec<String> {
    let mut failed = Vec::new();
    let mut check = |what: &str, r: std::io::Result<()>| {
        if let Err(e) = r {
            failed.push(format!("{}: {what}: {e}", mnt.display()));
        }
    };
    check("list", fs::read_dir(mnt).map(|d| d.for_each(drop)));
    let f = mnt.join(format!("root-{n}"));
    let content: &[u8] = if with_data { b"root data" } else { b"" };
    check("create", fs::write(&f, content));
    check("mkdir", fs::create_dir(mnt.join(format!("rootdir-{n}"))));
    check(
        "read",
        fs::read(mnt.join("root-kept")).and_then(|v| {
            (v == b"kept by root").then_some(()).ok_or_else(|| std::io::Error::other("wrong bytes"))
        }),
    );
    check("rename", fs::rename(&f, mnt.join(format!("root-renamed-{n}"))));
    check("unlink", fs::remove_file(mnt.join(format!("root-renamed-{n}"))));
    check("rmdir", fs::remove_dir(mnt.join(format!("rootdir-{n}"))));
    failed
}

#[test]
fn an_unprivileged_user_cannot_starve_root_or_grow_the_daemons() {
    fusebox_testkit::skip_unless!();
    let secs: u64 = std::env::var("FUSEBOX_HOSTILE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let user = TestUser::get(USER);
    let memfs = Daemon::start("memfs", &format!("allow_other,size={MEMFS_SIZE},mode=1777"));
    let pt = Daemon::start("passthrough", "allow_other");
    // SOURCE open to everyone (sticky, as /tmp); a root-owned sentinel next to it.
    let chmod = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(&pt.src, 0o1777);
    let outside = pt.src.parent().unwrap().join("outside");
    fs::write(&outside, b"sentinel").unwrap();
    chmod(&outside, 0o644);
    let before_outside = fs::metadata(&outside).unwrap();
    for mnt in [&memfs.mnt, &pt.mnt] {
        fs::write(mnt.join("root-kept"), b"kept by root").unwrap();
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/flood.py");
    let mut flood = Command::new("python3")
        .arg(script)
        .arg(&memfs.mnt)
        .arg(&pt.mnt)
        .arg(secs.to_string())
        .arg(&outside)
        .current_dir("/")
        .uid(user.uid)
        .gid(user.gid)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");

    let start = Instant::now();
    let (mut rounds, mut failures, mut peak_rss) = (0u64, Vec::new(), 0u64);
    while start.elapsed() < Duration::from_secs(secs) {
        failures.extend(root_round(&memfs.mnt, rounds, false));
        failures.extend(root_round(&pt.mnt, rounds, true));
        peak_rss = peak_rss.max(rss_bytes(memfs.child.id()));
        rounds += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    // The flood ends on its own at the deadline; allow it time to close what it holds.
    let waited = wait_until(Duration::from_secs(60), || flood.try_wait().is_ok_and(|s| s.is_some()));
    if !waited {
        let _ = flood.kill();
    }
    let out = flood.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("flood: {report}root: {rounds} rounds, memfs peak RSS {} MiB", peak_rss >> 20);
    assert!(waited, "the flood did not end: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "flood failed: {}", String::from_utf8_lossy(&out.stderr));

    assert!(failures.is_empty(), "{} of root's operations failed, first: {}", failures.len(), failures[0]);
    assert!(rounds >= secs, "root made only {rounds} rounds in {secs} s");
    let counts: serde_json::Value = serde_json::from_str(report.trim()).expect("flood report");
    let n = |k: &str| counts.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    assert!(n("held_open") > 1000, "the user held only {} files open", n("held_open"));
    assert!(n("err_ENOSPC") > 0, "the flood never filled memfs: {report}");
    assert_eq!(n("escape_write_succeeded"), 0, "a write through a symlink reached outside: {report}");
    assert_eq!(fs::read(&outside).unwrap(), b"sentinel", "the file outside SOURCE changed");
    let after = fs::metadata(&outside).unwrap();
    assert_eq!(
        (after.permissions(), after.modified().unwrap()),
        (before_outside.permissions(), before_outside.modified().unwrap())
    );
    let mut memfs = memfs;
    let mut pt = pt;
    assert!(memfs.child.try_wait().unwrap().is_none(), "the memfs daemon died");
    assert!(pt.child.try_wait().unwrap().is_none(), "the passthrough daemon died");
    assert!(
        peak_rss <= MEMFS_SIZE + MEMFS_OVERHEAD,
        "memfs RSS reached {} MiB with size={} MiB",
        peak_rss >> 20,
        MEMFS_SIZE >> 20
    );
}
