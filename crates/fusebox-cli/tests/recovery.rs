//! Recovery after a crash: the passthrough daemon is killed (SIGKILL) while writers, a
//! metadata worker and an fio process use the mount. Every caller must get an error instead of
//! hanging, `fusebox umount` must remove the dead mount, and a new mount over the same SOURCE
//! must show every byte that was fsynced before the kill.

mod support;

use support::*;

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes per record; a writer fsyncs after every `SYNC_EVERY` records.
const RECORD: usize = 4096;
const SYNC_EVERY: u64 = 8;
const WRITERS: u64 = 3;
/// How long a caller may take to see the dead daemon (a hang guard, not a speed assertion).
const LIMIT: Duration = Duration::from_secs(20);

/// The content of record `i` of writer `w` (deterministic, different per record).
fn record(w: u64, i: u64) -> Vec<u8> {
    let mut x = (w << 32 | i) ^ 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(RECORD);
    while v.len() < RECORD {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// Temp dirs, the foreground daemon we started, and cleanup on drop (unmount, kill by pid).
struct Fixture {
    /// Holds src and mnt; removed on drop.
    _dir: tempfile::TempDir,
    src: PathBuf,
    mnt: PathBuf,
    daemon: Option<Child>,
    fio: Option<Child>,
    /// The daemon's `-o` options.
    opts: &'static str,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("fusebox-recovery-").tempdir().unwrap();
        let (src, mnt) = (dir.path().join("src"), dir.path().join("mnt"));
        fs::create_dir(&src).unwrap();
        fs::create_dir(&mnt).unwrap();
        Fixture { _dir: dir, src, mnt, daemon: None, fio: None, opts: "writeback" }
    }

    /// Start `fusebox mount passthrough SRC MNT -f` and wait until the mount is live.
    fn mount(&mut self) {
        let child = fusebox()
            .args(["mount", "passthrough"])
            .arg(&self.src)
            .arg(&self.mnt)
            .args(["-o", self.opts, "-f"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        assert!(
            wait_until(Duration::from_secs(10), || fusebox::session::is_mount_point(&self.mnt)),
            "passthrough did not mount"
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for c in [self.fio.take(), self.daemon.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        if fusebox::session::is_mount_point(&self.mnt) {
            let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        }
    }
}

/// A writer: appends records to its own file and fsyncs every few; `acked` is the length
/// covered by the last successful fsync. Runs until an operation fails; returns that error.
fn writer(mnt: &Path, w: u64, acked: Arc<AtomicU64>) -> JoinHandle<std::io::Error> {
    let path = mnt.join(format!("writer{w}"));
    std::thread::spawn(move || {
        let f = match fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path) {
            Ok(f) => f,
            Err(e) => return e,
        };
        for i in 0.. {
            if let Err(e) = f.write_all_at(&record(w, i), i * RECORD as u64) {
                return e;
            }
            if (i + 1) % SYNC_EVERY == 0 {
                if let Err(e) = f.sync_all() {
                    return e;
                }
                acked.store((i + 1) * RECORD as u64, Ordering::SeqCst);
            }
        }
        unreachable!()
    })
}

/// Namespace churn: create, write, rename and remove small files until an operation fails.
fn churn(mnt: &Path) -> JoinHandle<std::io::Error> {
    let dir = mnt.join("churn");
    std::thread::spawn(move || {
        if let Err(e) = fs::create_dir(&dir) {
            return e;
        }
        for i in 0u64.. {
            let (a, b) = (dir.join(format!("a{i}")), dir.join(format!("b{i}")));
            let r = fs::File::create(&a)
                .and_then(|mut f| f.write_all(b"churn"))
                .and_then(|_| fs::rename(&a, &b))
                .and_then(|_| fs::metadata(&b))
                .and_then(|_| fs::remove_file(&b));
            if let Err(e) = r {
                return e;
            }
        }
        unreachable!()
    })
}

/// Wait for `worker` (on a mount whose daemon was killed) to end by `deadline` and check its
/// error: ENOTCONN from the dead connection, ECONNABORTED for a request in flight at the
/// kill, or EIO from a write-back that could not finish.
fn fails_by(worker: JoinHandle<std::io::Error>, deadline: Instant, who: &str) {
    while !worker.is_finished() {
        assert!(Instant::now() < deadline, "{who} hangs after the daemon was killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = worker.join().unwrap();
    assert!(matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED | libc::EIO)), "{who}: {e}");
}

#[test]
fn killed_daemon_fails_callers_unmounts_and_keeps_fsynced_data() {
    killed_daemon("writeback");
}

/// With kernel passthrough, writes go from the kernel to SOURCE without the daemon; fsync,
/// metadata and new opens still need it, so callers see the kill at their next fsync.
#[test]
fn killed_daemon_with_kernel_passthrough_fails_callers_and_keeps_fsynced_data() {
    killed_daemon("kernel_passthrough");
}

fn killed_daemon(opts: &'static str) {
    fusebox_testkit::skip_unless!();
    let mut fx = Fixture::new();
    fx.opts = opts;
    fx.mount();

    let acked: Vec<Arc<AtomicU64>> = (0..WRITERS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let writers: Vec<_> = (0..WRITERS).map(|w| writer(&fx.mnt, w, acked[w as usize].clone())).collect();
    let churner = churn(&fx.mnt);
    // fio in its own process: random writes with periodic fsync, far longer than the test.
    let fio_dir = fx.mnt.join("fio");
    fs::create_dir(&fio_dir).unwrap();
    fx.fio = Command::new("fio")
        .args(["--name=recovery", "--rw=randwrite", "--bs=4k", "--size=32M", "--fsync=16"])
        .args(["--time_based", "--runtime=300", "--output=/dev/null"])
        .arg(format!("--directory={}", fio_dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("fio not available ({e}); running without it"))
        .ok();

    // Kill only once every writer has fsynced something and the rest have had time to run.
    assert!(
        wait_until(LIMIT, || acked
            .iter()
            .all(|a| a.load(Ordering::SeqCst) >= 4 * SYNC_EVERY * RECORD as u64)),
        "writers made no progress"
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut daemon = fx.daemon.take().unwrap();
    daemon.kill().unwrap(); // SIGKILL: no unmount, no flush
    daemon.wait().unwrap();
    let at_kill: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();

    // Every caller gets an error, promptly.
    let deadline = Instant::now() + LIMIT;
    for (w, h) in writers.into_iter().enumerate() {
        fails_by(h, deadline, &format!("writer {w}"));
    }
    fails_by(churner, deadline, "metadata worker");
    if let Some(mut fio) = fx.fio.take() {
        assert!(
            wait_until(LIMIT, || fio.try_wait().unwrap().is_some()),
            "fio hangs after the daemon was killed"
        );
        assert!(!fio.wait().unwrap().success(), "fio reported success on a dead mount");
    }
    assert_eq!(
        fs::File::create(fx.mnt.join("after-kill")).unwrap_err().raw_os_error(),
        Some(libc::ENOTCONN),
        "a new caller must get ENOTCONN"
    );

    // The dead mount can be removed.
    let out = fusebox().arg("umount").arg(&fx.mnt).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "umount: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!fusebox::session::is_mount_point(&fx.mnt), "the dead mount is still there");

    // A new daemon over the same SOURCE shows every fsynced byte.
    fx.mount();
    for (w, &len) in at_kill.iter().enumerate() {
        let f = fs::File::open(fx.mnt.join(format!("writer{w}"))).unwrap();
        let size = f.metadata().unwrap().len();
        assert!(size >= len, "writer{w}: {size} bytes after remount, {len} were fsynced");
        let mut buf = vec![0u8; RECORD];
        for i in 0..len / RECORD as u64 {
            f.read_exact_at(&mut buf, i * RECORD as u64).unwrap();
            assert!(buf == record(w as u64, i), "writer{w}: record {i} differs after remount");
        }
    }
    let out = fusebox().arg("umount").arg(&fx.mnt).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "umount: {}", String::from_utf8_lossy(&out.stderr));
    let mut daemon = fx.daemon.take().unwrap();
    assert!(wait_until(LIMIT, || daemon.try_wait().unwrap().is_some()), "daemon did not exit after umount");
}
