//! Helpers shared by the CLI's integration tests (each test file includes this module).
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

/// The `fusebox` binary under test, without the daemon-child marker of an outer fusebox.
pub fn fusebox() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fusebox"));
    c.env_remove("FUSEBOX_DAEMON_CHILD");
    c
}

#[allow(unused_imports)] // not every test file uses both
pub use fusebox_testkit::{can_mount, wait_until};

/// A foreground `fusebox mount FS` daemon on its own temp directories (`src` is SOURCE for
/// passthrough); unmounted and reaped on drop, even when the test fails.
pub struct Daemon {
    _dir: tempfile::TempDir,
    /// SOURCE of a passthrough mount (an empty directory for other file systems).
    pub src: std::path::PathBuf,
    /// The mountpoint.
    pub mnt: std::path::PathBuf,
    /// The daemon process.
    pub child: std::process::Child,
}

impl Daemon {
    /// Mount `fs` (`passthrough` gets `src` as SOURCE) with `-o opts` and wait until it
    /// answers `fusebox stats`.
    pub fn start(fs: &str, opts: &str) -> Daemon {
        let dir = tempfile::Builder::new().prefix(&format!("fusebox-{fs}-")).tempdir().unwrap();
        let (src, mnt) = (dir.path().join("src"), dir.path().join("mnt"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let mut cmd = fusebox();
        cmd.args(["mount", fs]);
        if fs == "passthrough" {
            cmd.arg(&src);
        }
        cmd.arg(&mnt).args(["-f", "-o", opts]).stdin(std::process::Stdio::null());
        let child = cmd.spawn().expect("starting fusebox");
        let d = Daemon { _dir: dir, src, mnt, child };
        assert!(
            wait_until(Duration::from_secs(20), || fusebox::session::query_status(&d.mnt).is_ok()),
            "{fs} -o {opts} did not come up"
        );
        d
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = fusebox().arg("umount").arg(&self.mnt).status();
        if !wait_until(Duration::from_secs(10), || self.child.try_wait().is_ok_and(|s| s.is_some())) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// /dev/fuse at mode 0666 (as distributions' udev rules make it; 0600 on these machines) while
/// it lives, so that unprivileged daemons can open it; the old mode comes back on drop. Tests
/// that use it run in nextest's machine-wide group.
pub struct DevFuseOpenToUsers(u32);

impl DevFuseOpenToUsers {
    /// Open /dev/fuse to every user.
    pub fn set() -> DevFuseOpenToUsers {
        use std::os::unix::fs::PermissionsExt;
        let old = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
        DevFuseOpenToUsers(old)
    }
}

impl Drop for DevFuseOpenToUsers {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.0));
    }
}

/// A system user for tests that act as a normal user: created if missing (with its own group),
/// removed on drop if this test created it.
pub struct TestUser {
    /// Its name.
    pub name: &'static str,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    created: bool,
}

impl TestUser {
    /// The user `name`, created if it does not exist.
    pub fn get(name: &'static str) -> TestUser {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, name]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        let mut created = false;
        if id("-u").is_none() {
            let status = Command::new("useradd")
                .args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/usr/sbin/nologin", name])
                .status()
                .expect("useradd (package passwd)");
            assert!(status.success(), "useradd {name} failed");
            created = true;
        }
        TestUser { name, uid: id("-u").unwrap(), gid: id("-g").unwrap(), created }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("userdel").arg(self.name).status();
        }
    }
}

/// Fail the test, showing both streams, unless `out` is a success; returns it.
pub fn assert_success(out: &std::process::Output) -> &std::process::Output {
    assert!(
        out.status.success(),
        "failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `cmd` (stdin from /dev/null) and return its output; fail the test if it failed.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    assert_success(&out);
    out
}
