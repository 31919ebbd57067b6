//! Shutting down a daemon serving over io_uring while requests are in flight: `fusebox umount`,
//! SIGTERM and SIGKILL must leave no caller hanging and (for the first two) end the daemon.

use fusebox::session::{query_status, UringParamGuard};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fusebox_testkit::uring::can_mount_uring;
use fusebox_testkit::wait_until;

/// A foreground `fusebox mount memfs -o io_uring` daemon in a temp dir; on drop, unmounts what
/// is left and kills the daemon (by pid) if it still runs.
struct Daemon {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
    child: Child,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::Builder::new().prefix("fusebox-uring-").tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let guard = UringParamGuard::set(true).expect("turning on enable_uring");
        let child = Command::new(env!("CARGO_BIN_EXE_fusebox"))
            .env_remove("FUSEBOX_DAEMON_CHILD")
            .args(["mount", "memfs"])
            .arg(&mnt)
            .args(["-f", "-o", "io_uring"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon { _dir: dir, mnt, child };
        assert!(
            wait_until(Duration::from_secs(10), || fusebox::session::is_mount_point(&d.mnt)),
            "not mounted"
        );
        // Waits for INIT; after it the parameter no longer matters for this connection.
        fs::metadata(&d.mnt).unwrap();
        drop(guard);
        d
    }

    fn exited_within(&mut self, limit: Duration) -> bool {
        wait_until(limit, || self.child.try_wait().unwrap().is_some())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Threads that keep creating, writing, reading and removing files in `dir` until `stop` or
/// their first error.
struct Load {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(dir: &Path) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let threads = (0..4)
            .map(|t| {
                let (dir, stop, ops) = (dir.to_path_buf(), stop.clone(), ops.clone());
                std::thread::spawn(move || {
                    let data = vec![t as u8; 256 << 10];
                    let mut back = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let p = dir.join(format!("load-{t}-{}", i % 8));
                        let r = fs::File::create(&p)
                            .and_then(|mut f| f.write_all(&data))
                            .and_then(|_| fs::File::open(&p))
                            .and_then(|mut f| {
                                back.clear();
                                f.read_to_end(&mut back)
                            })
                            .and_then(|_| fs::remove_file(&p));
                        if r.is_err() {
                            return;
                        }
                        ops.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        Load { stop, ops, threads }
    }

    /// Wait until the load has done `n` rounds.
    fn running(&self, n: u64) -> bool {
        wait_until(Duration::from_secs(20), || self.ops.load(Ordering::Relaxed) >= n)
    }

    /// Stop and join every thread; false if one is still blocked after `limit`.
    fn finish(self, limit: Duration) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + limit;
        for t in self.threads {
            while !t.is_finished() {
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = t.join();
        }
        true
    }
}

fn start_loaded() -> Option<(Daemon, Load)> {
    if !can_mount_uring() {
        return None;
    }
    let d = Daemon::start();
    let load = Load::start(&d.mnt);
    assert!(load.running(20), "no progress on the io_uring mount");
    let status = query_status(&d.mnt).expect("daemon status");
    assert!(status.stats.uring_requests > 0, "requests did not travel over io_uring");
    let out = Command::new(env!("CARGO_BIN_EXE_fusebox")).arg("stats").arg(&d.mnt).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("requests came over io_uring"), "fusebox stats shows no io_uring line:\n{text}");
    Some((d, load))
}

#[test]
fn umount_with_requests_in_flight() {
    let Some((mut d, load)) = start_loaded() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_fusebox")).arg("umount").arg(&d.mnt).output().unwrap();
    // A busy mount may refuse a plain unmount; then detach it as the daemon would.
    if !out.status.success() {
        fusebox::sys::umount(&d.mnt, libc::MNT_DETACH).unwrap();
    }
    assert!(load.finish(Duration::from_secs(20)), "a caller hung after umount");
    assert!(d.exited_within(Duration::from_secs(20)), "daemon still running after umount");
}

#[test]
fn sigterm_with_requests_in_flight() {
    let Some((mut d, load)) = start_loaded() else { return };
    assert!(send_signal(d.child.id(), libc::SIGTERM));
    assert!(load.finish(Duration::from_secs(20)), "a caller hung after SIGTERM");
    assert!(d.exited_within(Duration::from_secs(20)), "daemon still running after SIGTERM");
    assert!(!fusebox::session::is_mount_point(&d.mnt), "SIGTERM left the mount behind");
}

#[test]
fn sigkill_with_requests_in_flight() {
    let Some((mut d, load)) = start_loaded() else { return };
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    assert!(load.finish(Duration::from_secs(20)), "a caller hung after the daemon was killed");
    let err = fs::metadata(d.mnt.join("x")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
}

/// Send `sig` to our child `pid` with the `kill` command (keeps `unsafe` out of the tests).
fn send_signal(pid: u32, sig: i32) -> bool {
    Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap().success()
}
