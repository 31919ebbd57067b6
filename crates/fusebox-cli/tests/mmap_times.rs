//! Writes through a shared mapping move mtime and ctime (POSIX: by the next msync), on memfs
//! and passthrough, write-back cache on and off. The daemon is the `fusebox` binary in its
//! own process: a test that faults on a mapping of a mount served by its own threads can
//! deadlock on its mmap lock.

mod support;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A mount served by `fusebox mount ... -f` in a child process; unmounted and ended on drop.
struct Mount {
    _dir: tempfile::TempDir,
    src: PathBuf,
    mnt: PathBuf,
    daemon: Child,
}

impl Mount {
    fn new(fs_kind: &str, opts: &str) -> Mount {
        let dir = tempfile::Builder::new().prefix("fusebox-mmap-").tempdir().unwrap();
        let (src, mnt) = (dir.path().join("src"), dir.path().join("mnt"));
        fs::create_dir(&src).unwrap();
        fs::create_dir(&mnt).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fusebox"));
        cmd.env_remove("FUSEBOX_DAEMON_CHILD").args(["mount", fs_kind]);
        if fs_kind == "passthrough" {
            cmd.arg(&src);
        }
        let daemon = cmd.arg(&mnt).args(["-o", opts, "-f"]).stdin(Stdio::null()).spawn().unwrap();
        let m = Mount { _dir: dir, src, mnt, daemon };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fusebox::session::is_mount_point(&m.mnt) {
            assert!(Instant::now() < deadline, "{fs_kind} did not mount");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// (mtime, ctime) in nanoseconds.
fn times(p: &Path) -> (i128, i128) {
    let m = fs::metadata(p).unwrap();
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    (ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec()))
}

fn mapped_write_moves_times(fs_kind: &str, wb: &str) {
    let m = Mount::new(fs_kind, wb);
    let p = m.mnt.join("mapped");
    fs::write(&p, vec![b'a'; 8192]).unwrap();
    let f = fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    // An old mtime, so any update is visible; ctime moves with this change.
    f.set_times(fs::FileTimes::new().set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)))
        .unwrap();
    let (m0, c0) = times(&p);
    assert_eq!(m0, 1_000_000 * 1_000_000_000);
    std::thread::sleep(Duration::from_millis(10));

    let mut map = fusebox::sys::SharedMap::new(f.as_fd(), 0, 8192).unwrap();
    map.as_mut_slice()[100..105].copy_from_slice(b"first");
    map.msync().unwrap();
    let (m1, c1) = times(&p);
    assert!(m1 > m0, "{fs_kind} {wb}: mtime did not move after a mapped write + msync");
    assert!(c1 > c0, "{fs_kind} {wb}: ctime did not move after a mapped write + msync");

    // A second write to the (now clean, write-protected) page moves them again.
    std::thread::sleep(Duration::from_millis(10));
    map.as_mut_slice()[5000..5006].copy_from_slice(b"second");
    map.msync().unwrap();
    let (m2, c2) = times(&p);
    assert!(m2 > m1 && c2 > c1, "{fs_kind} {wb}: times did not move after a second mapped write");
    drop(map);
    drop(f);

    let data = fs::read(&p).unwrap();
    assert_eq!(&data[100..105], b"first");
    assert_eq!(&data[5000..5006], b"second");
    if fs_kind == "passthrough" {
        // The backing file has the data and a modification time at least as new.
        let backing = m.src.join("mapped");
        assert_eq!(&fs::read(&backing).unwrap()[5000..5006], b"second");
        let (bm, _) = times(&backing);
        assert!(bm >= m1, "{wb}: the backing file's mtime did not follow the mapped writes");
    }
}

#[test]
fn memfs_mapped_writes_move_mtime_and_ctime() {
    fusebox_testkit::skip_unless!();
    for wb in ["writeback", "no_writeback"] {
        mapped_write_moves_times("memfs", wb);
    }
}

#[test]
fn passthrough_mapped_writes_move_mtime_and_ctime() {
    fusebox_testkit::skip_unless!();
    // The CLI's default for passthrough without `writeback` is kernel passthrough, where the
    // mapping is the backing file's; `kernel_passthrough=off` keeps the daemon's data path.
    for wb in ["writeback", "no_writeback,kernel_passthrough=off", "kernel_passthrough"] {
        mapped_write_moves_times("passthrough", wb);
    }
}
