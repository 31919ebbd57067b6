//! Unprivileged mounts, end to end, as a normal user the test creates: `fusebox mount memfs
//! ~/m` through fusermount3, files owned by that user, `fusebox umount` and `fusermount3 -u`
//! both end it, and allow_other refused with the documented error unless /etc/fuse.conf allows
//! it. /dev/fuse is opened to users (0666, as distributions do) for the test and restored.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::*;

const USER: &str = "fusebox-unpriv";

/// /etc/fuse.conf as this test wants it; the original (or its absence) comes back on drop.
struct FuseConf(Option<String>);

impl FuseConf {
    fn save() -> FuseConf {
        FuseConf(fs::read_to_string("/etc/fuse.conf").ok())
    }
    fn allow_other(&self, on: bool) {
        let kept: String = self
            .0
            .as_deref()
            .unwrap_or("")
            .lines()
            .filter(|l| l.split('#').next().unwrap_or("").trim() != "user_allow_other")
            .map(|l| format!("{l}\n"))
            .collect();
        let text = if on { format!("{kept}user_allow_other\n") } else { kept };
        fs::write("/etc/fuse.conf", text).unwrap();
    }
}

impl Drop for FuseConf {
    fn drop(&mut self) {
        match &self.0 {
            Some(text) => drop(fs::write("/etc/fuse.conf", text)),
            None => drop(fs::remove_file("/etc/fuse.conf")),
        }
    }
}

/// The user's home with a mountpoint `m`; on drop, detaches the mount and kills the daemons
/// this test started (by pid) if they are still there.
struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
    mnt: PathBuf,
    daemons: Vec<u32>,
}

impl Drop for Home {
    fn drop(&mut self) {
        if fusebox::session::is_mount_point(&self.mnt) {
            let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        }
        for pid in &self.daemons {
            if !gone(*pid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

fn gone(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

impl Home {
    fn new(user: &TestUser) -> Home {
        let dir = tempfile::Builder::new().prefix("fusebox-unpriv-").tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home");
        let mnt = home.join("m");
        for p in [&home, &mnt] {
            fs::create_dir(p).unwrap();
            std::os::unix::fs::chown(p, Some(user.uid), Some(user.gid)).unwrap();
        }
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        Home { _dir: dir, home, mnt, daemons: Vec::new() }
    }

    /// `cmd` as the test user, in its home.
    fn as_user<'a>(&self, user: &TestUser, cmd: &'a mut Command) -> &'a mut Command {
        cmd.uid(user.uid)
            .gid(user.gid)
            .env("HOME", &self.home)
            .env("USER", user.name)
            .env_remove("XDG_RUNTIME_DIR")
            .current_dir(&self.home)
            .stdin(Stdio::null())
    }

    fn run(&self, user: &TestUser, cmd: &mut Command) -> Output {
        self.as_user(user, cmd).output().unwrap()
    }

    /// Mount memfs on ~/m as the user (background mode) and remember its daemon.
    fn mount(&mut self, user: &TestUser, opts: &str) -> Output {
        let out = self.run(user, fusebox().args(["mount", "memfs", "m", "-o", opts]));
        if out.status.success() {
            let out = self.run(user, fusebox().args(["stats", "m", "--json"]));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats as the user");
            self.daemons.push(v["pid"].as_u64().unwrap() as u32);
        }
        out
    }

    fn last_daemon_exits(&self) -> bool {
        let pid = *self.daemons.last().unwrap();
        wait_until(Duration::from_secs(10), || gone(pid))
    }
}

fn fusermount3() -> &'static str {
    ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("fusermount3 (scripts/test.sh installs fuse3)")
}

#[test]
fn a_normal_user_mounts_uses_and_unmounts() {
    fusebox_testkit::skip_unless!();
    let user = TestUser::get(USER);
    let _dev = DevFuseOpenToUsers::set();
    let conf = FuseConf::save();
    conf.allow_other(false);
    let mut home = Home::new(&user);

    // Mount through fusermount3; the user's files are the user's.
    assert_success(&home.mount(&user, "size=32M"));
    assert!(fusebox::session::is_mount_point(&home.mnt));
    let out = assert_success(&home.run(
        &user,
        Command::new("sh").args(["-c", "echo hi > m/f && mkdir m/d && cat m/f && stat -c %u:%g m m/f m/d"]),
    ))
    .stdout
    .clone();
    let ids = format!("{}:{}", user.uid, user.gid);
    assert_eq!(String::from_utf8_lossy(&out), format!("hi\n{ids}\n{ids}\n{ids}\n"));
    // Without allow_other nobody else gets in, root included.
    assert_eq!(fs::metadata(home.mnt.join("f")).unwrap_err().raw_os_error(), Some(libc::EACCES));

    // `fusebox umount` as the user (fusermount3 -u underneath) ends the mount and the daemon.
    assert_success(&home.run(&user, fusebox().args(["umount", "m"])));
    assert!(!fusebox::session::is_mount_point(&home.mnt));
    assert!(home.last_daemon_exits());

    // So does fusermount3 -u itself.
    assert_success(&home.mount(&user, "size=32M"));
    assert_success(&home.run(&user, Command::new(fusermount3()).args(["-u", "m"])));
    assert!(!fusebox::session::is_mount_point(&home.mnt));
    assert!(home.last_daemon_exits(), "the daemon outlived fusermount3 -u");

    // allow_other: refused with the documented error while /etc/fuse.conf does not permit it...
    let out = home.mount(&user, "size=32M,allow_other");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("allow_other needs root or a line 'user_allow_other' in /etc/fuse.conf"), "{err}");
    assert!(!fusebox::session::is_mount_point(&home.mnt));
    // ...and granted once it does: then other users (root here) get in.
    conf.allow_other(true);
    assert_success(&home.mount(&user, "size=32M,allow_other"));
    assert_success(&home.run(&user, Command::new("sh").args(["-c", "echo shared > m/s"])));
    assert_eq!(fs::read(home.mnt.join("s")).unwrap(), b"shared\n");
    assert_success(&home.run(&user, fusebox().args(["umount", "m"])));
    assert!(home.last_daemon_exits());
}
