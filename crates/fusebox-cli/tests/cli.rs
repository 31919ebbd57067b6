//! The `fusebox` binary: mount/umount, background and foreground modes, signals, a killed
//! daemon, and every user error (message + exit code).

mod support;

use support::*;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn is_mounted(p: &Path) -> bool {
    fusebox::session::is_mount_point(p)
}

/// A temp dir with a mountpoint; on drop, unmounts whatever is there and kills the foreground
/// child we started (by pid), so a failing test leaves nothing behind.
struct Fixture {
    dir: tempfile::TempDir,
    mnt: PathBuf,
    child: Option<Child>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("fusebox-cli-").tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        Fixture { dir, mnt, child: None }
    }
    /// The pid of the background daemon serving our mountpoint, from its control socket
    /// (scanning /proc could block on a process stuck in another FUSE mount).
    fn daemon_pid(&self) -> Option<u32> {
        fusebox::session::query_status(&self.mnt).ok().map(|r| r.pid)
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = self.daemon_pid() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn background_mount_is_usable_at_once_and_umount_ends_daemon() {
    fusebox_testkit::skip_unless!();
    let fx = Fixture::new();
    let out = run(fusebox().args(["mount", "memfs"]).arg(&fx.mnt).args(["-o", "size=64M"]));
    assert!(out.status.success(), "{}", stderr(&out));
    // The mount is live the moment the command returns.
    fs::write(fx.mnt.join("hello"), b"world").unwrap();
    assert_eq!(fs::read(fx.mnt.join("hello")).unwrap(), b"world");
    let pid = fx.daemon_pid().expect("the daemon answers on its control socket");
    assert!(alive(pid));
    let out = run(fusebox().arg("umount").arg(&fx.mnt));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!is_mounted(&fx.mnt));
    assert!(wait_until(Duration::from_secs(10), || !alive(pid)), "daemon did not exit");
}

#[test]
fn foreground_mount_unmounts_cleanly_on_sigterm_and_sigint() {
    fusebox_testkit::skip_unless!();
    for sig in ["-TERM", "-INT"] {
        let mut fx = Fixture::new();
        let child =
            fusebox().args(["mount", "memfs"]).arg(&fx.mnt).arg("-f").stdin(Stdio::null()).spawn().unwrap();
        let pid = child.id();
        fx.child = Some(child);
        assert!(wait_until(Duration::from_secs(10), || is_mounted(&fx.mnt)), "not mounted");
        fs::write(fx.mnt.join("f"), b"x").unwrap();
        assert!(Command::new("kill").arg(sig).arg(pid.to_string()).status().unwrap().success());
        let mut child = fx.child.take().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || child.try_wait().unwrap().is_some()),
            "daemon still running"
        );
        assert!(child.wait().unwrap().success());
        assert!(!is_mounted(&fx.mnt), "{sig} left the mount behind");
    }
}

#[test]
fn killed_daemon_gives_enotconn_and_umount_removes_the_dead_mount() {
    fusebox_testkit::skip_unless!();
    let mut fx = Fixture::new();
    let child =
        fusebox().args(["mount", "memfs"]).arg(&fx.mnt).arg("-f").stdin(Stdio::null()).spawn().unwrap();
    fx.child = Some(child);
    assert!(wait_until(Duration::from_secs(10), || is_mounted(&fx.mnt)));
    fs::write(fx.mnt.join("f"), b"x").unwrap();
    let mut child = fx.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Calls on the mount fail instead of hanging (run in a thread as a hang guard).
    let probe = fx.mnt.join("f");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(fs::read(&probe).map_err(|e| e.raw_os_error()));
    });
    let res = rx.recv_timeout(Duration::from_secs(20)).expect("read on a dead mount hung");
    assert_eq!(res.unwrap_err(), Some(libc::ENOTCONN));
    let socket = fusebox::session::control_socket_path(&fx.mnt);
    assert!(socket.exists(), "the killed daemon's control socket is left behind");
    let out = run(fusebox().arg("umount").arg(&fx.mnt));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!is_mounted(&fx.mnt));
    assert!(!socket.exists(), "umount did not remove the dead daemon's control socket");
}

/// Run a failing command and check exit code 1 and the message.
fn expect_error(cmd: &mut Command, needle: &str) {
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "expected failure, got {:?}: {err}", out.status);
    assert!(err.contains(needle), "message {err:?} lacks {needle:?}");
    assert!(err.starts_with("fusebox: "), "{err}");
}

#[test]
fn mountpoint_errors() {
    let fx = Fixture::new();
    let missing = fx.dir.path().join("missing");
    expect_error(fusebox().args(["mount", "memfs"]).arg(&missing), "does not exist");
    let file = fx.dir.path().join("file");
    fs::write(&file, b"").unwrap();
    expect_error(fusebox().args(["mount", "memfs"]).arg(&file), "is not a directory");
    if can_mount() {
        let out = run(fusebox().args(["mount", "memfs"]).arg(&fx.mnt));
        assert!(out.status.success(), "{}", stderr(&out));
        expect_error(fusebox().args(["mount", "memfs"]).arg(&fx.mnt), "already a mount point");
        assert!(run(fusebox().arg("umount").arg(&fx.mnt)).status.success());
    }
    expect_error(fusebox().arg("umount").arg(&fx.mnt), "is not a mount point");
}

#[test]
fn option_errors() {
    let fx = Fixture::new();
    let m = || {
        let mut c = fusebox();
        c.args(["mount", "memfs"]).arg(&fx.mnt);
        c
    };
    expect_error(m().args(["-o", "bogus"]), "unknown option 'bogus'");
    expect_error(m().args(["-o", "threads=0"]), "bad value for option 'threads'");
    expect_error(m().args(["-o", "attr_timeout=soon"]), "bad value for option 'attr_timeout'");
    expect_error(m().args(["-o", "size=lots"]), "bad value for option 'size'");
    expect_error(m().args(["-o", "fsname"]), "needs a value");
    expect_error(m().args(["-o", "ro=yes"]), "takes no value");
    expect_error(m().args(["-o", "metrics=nowhere"]), "bad value for option 'metrics'");
    expect_usage_error(m().arg("-o"), "a value is required for '-o <OPTS>'");
    expect_usage_error(fusebox().args(["mount", "ext4"]).arg(&fx.mnt), "unrecognized subcommand 'ext4'");
    expect_usage_error(fusebox().arg("frobnicate"), "unrecognized subcommand 'frobnicate'");
    assert!(!is_mounted(&fx.mnt));
}

/// Run a command with a bad command line: exit code 2, clap's message, a pointer to the help.
fn expect_usage_error(cmd: &mut Command, needle: &str) {
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "expected a usage error, got {:?}: {err}", out.status);
    assert!(err.contains(needle), "message {err:?} lacks {needle:?}");
    assert!(err.starts_with("error: ") && err.contains("--help"), "{err}");
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn version_help_and_suggestions() {
    let out = run(fusebox().arg("--version"));
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), format!("fusebox {}", env!("CARGO_PKG_VERSION")));
    // Each subcommand has its own help with its options table; `help X` and `X --help` agree.
    for (args, needles) in [
        (vec!["mount", "memfs", "--help"], vec!["Usage: fusebox mount memfs", "size=BYTES", "allow_other"]),
        (
            vec!["mount", "passthrough", "--help"],
            vec!["<SOURCE> <MOUNTPOINT>", "kernel_passthrough", "metrics="],
        ),
        (vec!["mount", "dfs", "--help"], vec!["<META_URL>", "cache_size=BYTES"]),
        (vec!["umount", "--help"], vec!["--abort"]),
        (vec!["stats", "--help"], vec!["--prometheus", "--json"]),
        (vec!["bench", "--help"], vec!["--workloads <LIST>", "Workloads (fio"]),
        (vec!["dfs", "format", "--help"], vec!["--storage <DATA_URL>"]),
        (vec!["help", "umount"], vec!["--abort"]),
        (vec!["--help"], vec!["Exit codes: 0 success", "completions"]),
    ] {
        let out = run(fusebox().args(&args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        for n in needles {
            assert!(stdout(&out).contains(n), "{args:?} lacks {n:?}:\n{}", stdout(&out));
        }
    }
    expect_usage_error(fusebox().args(["mount", "memfss", "/m"]), "a similar subcommand exists: 'memfs'");
    expect_usage_error(fusebox().args(["stats", "/m", "--prometeus"]), "--prometheus");
    // No command at all: the help, as a usage error.
    let out = run(&mut fusebox());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Commands:"), "{}", stderr(&out));
}

#[test]
fn completions_for_each_shell() {
    for (shell, needle) in
        [("bash", "complete -F _fusebox"), ("zsh", "#compdef fusebox"), ("fish", "complete -c fusebox")]
    {
        let out = run(fusebox().args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(needle), "{shell}: no {needle:?}");
        // The script knows the subcommands and their flags.
        assert!(script.contains("passthrough") && script.contains("prometheus"), "{shell}");
    }
    // bash accepts what it generated.
    let out = run(fusebox().args(["completions", "bash"]));
    let check = Command::new("bash").args(["-n", "-c"]).arg(stdout(&out)).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    expect_usage_error(fusebox().args(["completions", "tcsh"]), "invalid value 'tcsh'");
}

#[test]
fn dev_fuse_unavailable_is_reported() {
    if !can_mount() || Command::new("unshare").arg("--version").output().is_err() {
        return;
    }
    let fx = Fixture::new();
    // A private mount namespace where /dev is an empty tmpfs: no /dev/fuse.
    let script = format!(
        "mount -t tmpfs none /dev && exec {} mount memfs {} -f",
        env!("CARGO_BIN_EXE_fusebox"),
        fx.mnt.display()
    );
    let out = run(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/fuse is unavailable"), "{}", stderr(&out));
}

#[test]
fn not_permitted_is_reported() {
    fusebox_testkit::skip_unless!();
    let fx = Fixture::new();
    // The temp dir is root's and 0700: user nobody may not mount there.
    let out = run(fusebox().args(["mount", "memfs"]).arg(&fx.mnt).arg("-f").uid(65534).gid(65534));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not permitted")
            || err.contains("fusermount3 not found")
            || err.contains("does not exist"),
        "{err}"
    );
    assert!(!is_mounted(&fx.mnt));
}

#[test]
fn source_errors() {
    let fx = Fixture::new();
    let missing = fx.dir.path().join("no-such-source");
    expect_error(fusebox().args(["mount", "passthrough"]).arg(&missing).arg(&fx.mnt), "does not exist");
    let file = fx.dir.path().join("plain-file");
    fs::write(&file, b"").unwrap();
    expect_error(fusebox().args(["mount", "passthrough"]).arg(&file).arg(&fx.mnt), "not a directory");
    for (opt, key) in [
        ("fd_cache=0", "fd_cache"),
        ("file_fds=0", "file_fds"),
        ("sync_close=maybe", "sync_close"),
        ("watch=2", "watch"),
        ("fopen_direct_io=sometimes", "fopen_direct_io"),
    ] {
        expect_error(
            fusebox().args(["mount", "passthrough"]).arg(fx.dir.path()).arg(&fx.mnt).args(["-o", opt]),
            &format!("bad value for option '{key}'"),
        );
    }
    expect_usage_error(fusebox().args(["mount", "passthrough"]).arg(&fx.mnt), "<MOUNTPOINT>");
    assert!(!is_mounted(&fx.mnt));
}

#[test]
fn passthrough_sync_close_and_watch_mount() {
    fusebox_testkit::skip_unless!();
    let fx = Fixture::new();
    let src = fx.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let out = run(fusebox()
        .args(["mount", "passthrough"])
        .arg(&src)
        .arg(&fx.mnt)
        .args(["-o", "sync_close,watch,attr_timeout=60,entry_timeout=60"]));
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(fx.mnt.join("f"), b"through the mount").unwrap();
    assert_eq!(fs::read(src.join("f")).unwrap(), b"through the mount");
    // watch: a change made directly in the source shows within 1 s despite 60 s timeouts.
    assert_eq!(fs::metadata(fx.mnt.join("f")).unwrap().len(), 17);
    fs::write(src.join("f"), b"direct").unwrap();
    assert!(wait_until(Duration::from_secs(1), || fs::metadata(fx.mnt.join("f")).unwrap().len() == 6));
    let out = run(fusebox().arg("umount").arg(&fx.mnt));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn stats_reports_counters_and_init_parameters() {
    fusebox_testkit::skip_unless!();
    let fx = Fixture::new();
    let out = run(fusebox().args(["mount", "memfs"]).arg(&fx.mnt));
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(fx.mnt.join("data"), vec![7u8; 3 << 20]).unwrap();
    fs::File::open(fx.mnt.join("data")).unwrap().sync_all().unwrap();
    let out = run(fusebox().arg("stats").arg(&fx.mnt).arg("--json"));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: fusebox::session::StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.init.limits.max_pages, 256);
    assert_eq!(report.init.limits.max_write, 1 << 20);
    for flag in ["WRITEBACK_CACHE", "ASYNC_DIO", "PARALLEL_DIROPS", "HANDLE_KILLPRIV_V2", "DO_READDIRPLUS"] {
        assert!(report.init.flags.iter().any(|f| f == flag), "{flag} missing: {:?}", report.init.flags);
    }
    let write = report.stats.ops.iter().find(|o| o.name == "WRITE").expect("WRITE counted");
    assert!(write.bytes_in >= 3 << 20, "{write:?}");
    assert!(write.count >= 3, "{write:?}");
    assert!(write.p50_us <= write.p99_us && write.p99_us <= write.max_us);
    // The human form names the opcodes.
    let out = run(fusebox().arg("stats").arg(&fx.mnt));
    assert!(String::from_utf8_lossy(&out.stdout).contains("WRITE"));
    assert!(run(fusebox().arg("umount").arg(&fx.mnt)).status.success());
    expect_error(fusebox().arg("stats").arg(&fx.mnt), "no fusebox daemon answers");
}
