//! Kernel passthrough on passthrough mounts made by the binary: opens are answered with
//! FOPEN_PASSTHROUGH (counted in the stats) and file data never reaches the daemon; backing ids
//! are released with the last RELEASE of an inode, so none leak over 100,000 open/close cycles;
//! open files hold no daemon descriptor (the kernel holds the backing file);
//! without CAP_SYS_ADMIN (an unprivileged mount through fusermount3) the mount falls back to
//! the write-back cache with one log line.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;
use support::*;

impl Daemon {
    fn status(&self) -> fusebox::session::StatusReport {
        fusebox::session::query_status(&self.mnt).expect("stats")
    }

    /// The status once no request is in flight and no backing id is live (RELEASE arrives
    /// after close(2) returned), or the last one seen after 10 s.
    fn settled(&self) -> fusebox::session::StatusReport {
        let mut last = self.status();
        for _ in 0..500 {
            if last.stats.in_flight_sync + last.stats.in_flight_background == 0
                && last.stats.backing_ids_live == 0
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            last = self.status();
        }
        last
    }

    fn count(r: &fusebox::session::StatusReport, op: &str) -> u64 {
        r.stats.ops.iter().find(|o| o.name == op).map_or(0, |o| o.count)
    }

    /// Descriptors the daemon holds now.
    fn daemon_fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap().count()
    }
}

#[test]
fn opens_use_kernel_passthrough_and_data_bypasses_the_daemon() {
    fusebox_testkit::skip_unless!();
    let d = Daemon::start("passthrough", "kernel_passthrough");
    let flags = d.status().init.flags;
    assert!(flags.iter().any(|f| f == "PASSTHROUGH"), "PASSTHROUGH not negotiated: {flags:?}");
    assert!(!flags.iter().any(|f| f == "WRITEBACK_CACHE"), "the kernel never grants both: {flags:?}");

    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 253) as u8).collect();
    let p = d.mnt.join("f");
    let mut f = fs::File::create(&p).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut back = Vec::new();
    fs::File::open(&p).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == data, "read back different bytes");
    assert_eq!(fs::read(d.src.join("f")).unwrap(), data, "the backing file differs");
    // Appends land at the end (the backing file is opened with the caller's O_APPEND).
    fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"tail").unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), data.len() as u64 + 4);
    // A mapping is the backing file's.
    let f = fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let mut map = fusebox::sys::SharedMap::new(std::os::fd::AsFd::as_fd(&f), 0, 4096).unwrap();
    map.as_mut_slice()[..6].copy_from_slice(b"mapped");
    map.msync().unwrap();
    drop(map);
    let mut head = [0u8; 6];
    fs::File::open(d.src.join("f")).unwrap().read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head, b"mapped");
    drop(f);

    let r = d.settled();
    assert_eq!(Daemon::count(&r, "READ") + Daemon::count(&r, "WRITE"), 0, "data reached the daemon");
    assert!(r.stats.passthrough_opens >= 4, "{} passthrough opens", r.stats.passthrough_opens);
    assert_eq!(r.stats.backing_ids_live, 0, "backing ids still registered after every close");
}

/// Files f0 .. f{n-1} in `dir`, each holding `content`.
fn write_files(dir: &std::path::Path, n: usize, content: &[u8]) {
    for i in 0..n {
        fs::write(dir.join(format!("f{i}")), content).unwrap();
    }
}

/// Files the open/close cycles go round.
const CYCLED_FILES: usize = 16;

#[test]
fn hundred_thousand_open_close_cycles_leak_no_backing_ids() {
    fusebox_testkit::skip_unless!();
    let d = Daemon::start("passthrough", "kernel_passthrough");
    write_files(&d.mnt, CYCLED_FILES, b"x");
    // Counted after the files were made: the daemon caches a descriptor of each.
    let fds_before = d.daemon_fds();
    // Two threads, so opens of one inode overlap with releases of it: the id is shared
    // while any open file holds it and registered afresh after the last release.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let mnt = d.mnt.clone();
            std::thread::spawn(move || {
                for n in 0..50_000usize {
                    let p = mnt.join(format!("f{}", (n * 7 + t) % CYCLED_FILES));
                    let f = if n % 2 == 0 {
                        fs::File::open(&p).unwrap()
                    } else {
                        fs::OpenOptions::new().read(true).write(true).open(&p).unwrap()
                    };
                    let mut b = [0u8; 1];
                    f.read_exact_at(&mut b, 0).unwrap();
                    assert_eq!(&b, b"x");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let r = d.settled();
    assert!(r.stats.passthrough_opens >= 100_000, "{} passthrough opens", r.stats.passthrough_opens);
    assert_eq!(r.stats.backing_ids_live, 0, "backing ids leaked");
    assert!(r.stats.backing_ids_opened <= r.stats.passthrough_opens);
    assert!(d.daemon_fds() <= fds_before + 2, "daemon descriptors grew: {fds_before} -> {}", d.daemon_fds());
}

#[test]
fn open_files_hold_no_daemon_descriptors() {
    fusebox_testkit::skip_unless!();
    // A small cache of O_PATH descriptors (bounded by fd_cache, not by open files).
    let d = Daemon::start("passthrough", "kernel_passthrough,fd_cache=16");
    const FILES: usize = 3000;
    write_files(&d.src, FILES, b"data");
    let before = d.daemon_fds();
    // Held open at once, for reading and for writing: the kernel holds the backing files.
    let held: Vec<fs::File> = (0..FILES)
        .map(|i| {
            let p = d.mnt.join(format!("f{i}"));
            if i % 2 == 0 {
                fs::File::open(p).unwrap()
            } else {
                fs::OpenOptions::new().read(true).write(true).open(p).unwrap()
            }
        })
        .collect();
    let during = d.daemon_fds();
    assert!(during < before + 64, "the daemon holds a descriptor per open file: {before} -> {during}");
    // Operations that need the daemon's descriptor still work (it is reopened on demand).
    for f in held.iter().skip(1).step_by(500) {
        f.sync_all().unwrap();
        f.set_len(2).unwrap();
        let mut b = [0u8; 2];
        f.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"da");
    }
    drop(held);
    assert_eq!(d.settled().stats.backing_ids_live, 0);
}

/// Puts /dev/fuse's mode back on drop (the test opens it to all, as distributions do).
fn as_nobody(cmd: &mut std::process::Command, home: &Path) {
    cmd.uid(65534).gid(65534).env("HOME", home).env_remove("XDG_RUNTIME_DIR").current_dir(home);
}

#[test]
fn without_cap_sys_admin_falls_back_with_one_log_line() {
    fusebox_testkit::skip_unless!();
    if !Path::new("/usr/bin/fusermount3").exists() && !Path::new("/bin/fusermount3").exists() {
        panic!("fusermount3 missing: scripts/test.sh installs fuse3");
    }
    let _mode = DevFuseOpenToUsers::set();

    let dir = tempfile::Builder::new().prefix("fusebox-kpt-user-").tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (src, mnt) = (dir.path().join("src"), dir.path().join("mnt"));
    for p in [&src, &mnt] {
        fs::create_dir(p).unwrap();
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let log = dir.path().join("daemon.log");
    let mut cmd = fusebox();
    cmd.args(["mount", "passthrough"])
        .arg(&src)
        .arg(&mnt)
        .arg("-f")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap());
    as_nobody(&mut cmd, dir.path());
    let mut child = cmd.spawn().unwrap();
    struct Reap<'a>(&'a mut Child, &'a Path);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            if fusebox::session::is_mount_point(self.1) {
                let _ = fusebox::sys::umount(self.1, libc::MNT_DETACH);
            }
            if !wait_until(Duration::from_secs(10), || self.0.try_wait().is_ok_and(|s| s.is_some())) {
                let _ = self.0.kill();
            }
            let _ = self.0.wait();
        }
    }
    let reap = Reap(&mut child, &mnt);
    assert!(
        wait_until(Duration::from_secs(20), || fusebox::session::is_mount_point(&mnt)),
        "unprivileged mount did not come up: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    // The mount works, as the user, through the daemon's data path.
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg("echo hello > mnt/f && cat mnt/f");
    as_nobody(&mut sh, dir.path());
    let out = sh.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n", "{}", String::from_utf8_lossy(&out.stderr));
    let mut stats = fusebox();
    stats.arg("stats").arg(&mnt).arg("--json");
    as_nobody(&mut stats, dir.path());
    let out = stats.output().unwrap();
    assert!(out.status.success(), "stats: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flags: Vec<&str> = v["init"]["flags"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
    assert!(!flags.contains(&"PASSTHROUGH"), "passthrough asked for without the capability: {flags:?}");
    assert!(flags.contains(&"WRITEBACK_CACHE"), "the write-back cache should take its place: {flags:?}");
    // End it the user's way.
    let mut umount = fusebox();
    umount.arg("umount").arg(&mnt);
    as_nobody(&mut umount, dir.path());
    assert!(umount.status().unwrap().success(), "fusebox umount as the user failed");
    drop(reap);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("kernel passthrough")).collect();
    assert_eq!(lines.len(), 1, "expected one line about kernel passthrough in:\n{text}");
    assert!(lines[0].contains("CAP_SYS_ADMIN"), "{}", lines[0]);
}
