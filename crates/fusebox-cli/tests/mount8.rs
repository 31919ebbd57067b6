//! fusebox as the system's tools use it: mount(8) with `-t fuse.fusebox` through the
//! `mount.fuse.fusebox` helper (the binary under that name), an fstab line mounted by
//! `mount -a` and ended by plain umount(8), and `fusebox umount --abort` for a daemon that hangs.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// Where mount(8) looks for `mount.<type>` helpers.
const HELPER: &str = "/sbin/mount.fuse.fusebox";

/// Points [`HELPER`] at the binary under test while it lives; puts back what was there.
struct HelperLink {
    previous: Option<PathBuf>,
}

impl HelperLink {
    fn install() -> HelperLink {
        let previous = fs::read_link(HELPER).ok();
        if previous.is_none() && Path::new(HELPER).exists() {
            panic!("{HELPER} exists and is not a symbolic link: not replacing it");
        }
        let _ = fs::remove_file(HELPER);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fusebox"), HELPER).expect("creating the helper link");
        HelperLink { previous }
    }
}

impl Drop for HelperLink {
    fn drop(&mut self) {
        let _ = fs::remove_file(HELPER);
        if let Some(p) = &self.previous {
            let _ = std::os::unix::fs::symlink(p, HELPER);
        }
    }
}

/// Mountpoints under one temp dir; whatever is still mounted there is detached on drop.
struct Mounts {
    dir: tempfile::TempDir,
    points: Vec<PathBuf>,
}

impl Mounts {
    fn new(names: &[&str]) -> Mounts {
        let dir = tempfile::Builder::new().prefix("fusebox-mount8-").tempdir().unwrap();
        let points = names.iter().map(|n| dir.path().join(n)).collect::<Vec<_>>();
        for p in &points {
            fs::create_dir(p).unwrap();
        }
        Mounts { dir, points }
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for p in &self.points {
            if fusebox::session::is_mount_point(p) {
                let _ = fusebox::sys::umount(p, libc::MNT_DETACH);
            }
        }
    }
}

fn daemon_pid(mnt: &Path) -> u32 {
    fusebox::session::query_status(mnt).expect("a daemon answers for the mount").pid
}

fn gone(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Plain umount(8) ends the mount, and the daemon exits by itself.
fn umount8_ends_daemon(mnt: &Path) {
    let pid = daemon_pid(mnt);
    run_ok(Command::new("umount").arg(mnt));
    assert!(!fusebox::session::is_mount_point(mnt));
    assert!(
        wait_until(Duration::from_secs(10), || gone(pid)),
        "daemon {pid} outlived umount(8) of {}",
        mnt.display()
    );
}

#[test]
fn mount8_and_fstab() {
    fusebox_testkit::skip_unless!();
    let _helper = HelperLink::install();
    let m = Mounts::new(&["memfs", "pt", "src", "fstab-memfs", "fstab-pt"]);
    let [mem, pt, src, fmem, fpt] = &m.points[..] else { unreachable!() };
    fs::write(src.join("seed"), b"from SOURCE").unwrap();

    // mount -t fuse.fusebox memfs DIR -o size=...
    run_ok(
        Command::new("mount").args(["-t", "fuse.fusebox", "memfs"]).arg(mem).args(["-o", "size=64M,noatime"]),
    );
    fs::write(mem.join("f"), b"hello").unwrap();
    assert_eq!(fs::read(mem.join("f")).unwrap(), b"hello");
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts.lines().find(|l| l.split(' ').nth(1) == Some(mem.to_str().unwrap())).unwrap();
    assert!(
        line.starts_with("memfs ") && line.contains(" fuse.fusebox ") && line.contains("noatime"),
        "{line}"
    );
    umount8_ends_daemon(mem);

    // mount -t fuse.fusebox SOURCE DIR: passthrough.
    run_ok(Command::new("mount").args(["-t", "fuse.fusebox"]).arg(src).arg(pt));
    assert_eq!(fs::read(pt.join("seed")).unwrap(), b"from SOURCE");
    umount8_ends_daemon(pt);

    // An fstab with the boot-time options, mounted by `mount -a` (of this file only).
    let fstab = m.dir.path().join("fstab");
    fs::write(
        &fstab,
        format!(
            "# fusebox test fstab\n\
             memfs {} fuse.fusebox defaults,_netdev,nofail,size=32M 0 0\n\
             {} {} fuse.fusebox defaults,_netdev,nofail,x-systemd.automount 0 0\n",
            fmem.display(),
            src.display(),
            fpt.display()
        ),
    )
    .unwrap();
    run_ok(Command::new("mount").args(["-a", "-t", "fuse.fusebox", "-T"]).arg(&fstab));
    assert!(fusebox::session::is_mount_point(fmem) && fusebox::session::is_mount_point(fpt));
    fs::write(fmem.join("x"), b"1").unwrap();
    assert_eq!(fs::read(fpt.join("seed")).unwrap(), b"from SOURCE");
    // A second `mount -a` leaves mounted entries alone.
    run_ok(Command::new("mount").args(["-a", "-t", "fuse.fusebox", "-T"]).arg(&fstab));
    umount8_ends_daemon(fmem);
    umount8_ends_daemon(fpt);

    // mount(8)'s fake mode runs the helper, which must not mount.
    run_ok(Command::new("mount").args(["-f", "-t", "fuse.fusebox", "memfs"]).arg(mem));
    assert!(!fusebox::session::is_mount_point(mem));
    // A helper error reaches mount(8)'s caller.
    let out = Command::new("mount")
        .args(["-t", "fuse.fusebox", "memfs"])
        .arg(mem)
        .args(["-o", "size=lots"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad value for option 'size'"));
}

#[test]
fn umount_abort_ends_a_hung_daemon() {
    fusebox_testkit::skip_unless!();
    let m = Mounts::new(&["mnt"]);
    let mnt = &m.points[0];
    let mut daemon = Reap(
        fusebox()
            .args(["mount", "memfs"])
            .arg(mnt)
            .args(["-f", "-o", "size=16M"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id();
    assert!(wait_until(Duration::from_secs(20), || fusebox::session::query_status(mnt).is_ok()));
    // The daemon stops answering: anything that touches the mount would hang.
    run_ok(Command::new("kill").args(["-STOP", &pid.to_string()]));
    let (tx, rx) = std::sync::mpsc::channel();
    let target = mnt.clone();
    std::thread::spawn(move || {
        let _ = tx.send(fusebox().args(["umount", "--abort"]).arg(&target).stdin(Stdio::null()).output());
    });
    let out = rx.recv_timeout(Duration::from_secs(20)).expect("umount --abort hung").unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("aborted FUSE connection"), "{err}");
    assert!(!fusebox::session::is_mount_point(mnt));
    // Woken up, the daemon finds its connection gone and exits on its own.
    run_ok(Command::new("kill").args(["-CONT", &pid.to_string()]));
    assert!(
        wait_until(Duration::from_secs(10), || daemon.0.try_wait().is_ok_and(|s| s.is_some())),
        "daemon did not exit after the abort"
    );
    // Nothing mounted there any more: a clear error, not a hang.
    let out = fusebox().args(["umount", "--abort"]).arg(mnt).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a mount point"));
}

/// A daemon we started: if it is still there on drop (a failed test), it is continued, killed
/// and reaped.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if self.0.try_wait().is_ok_and(|s| s.is_none()) {
            let _ = Command::new("kill").args(["-CONT", &self.0.id().to_string()]).status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
