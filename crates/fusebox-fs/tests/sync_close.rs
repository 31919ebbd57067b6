//! Synchronous close: close(2) is the commit point. memfs `size=` with write-back: a write
//! that fits the page cache but not the file system fails at close(2) with ENOSPC, and what fit
//! is intact.

mod common;

use common::{random_bytes, TestMount};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

const CHUNK: usize = 64 * 1024;

#[test]
fn memfs_full_writeback_fails_at_close_and_what_fit_is_intact() {
    // Room for one 1 MiB WRITE plus the file's metadata (names and inodes count against size=).
    const SIZE: u64 = (1 << 20) + (64 << 10);
    let fs = Arc::new(MemFs::new(MemFsOptions { size: Some(SIZE), ..Default::default() }));
    let Some(m) = TestMount::new(fs, "default_permissions,allow_other,writeback") else { return };
    let data = random_bytes(7, 2 << 20);
    let mut f = std::fs::File::create(m.path("big")).unwrap();
    // Into the page cache: the file system is not asked yet, so write(2) succeeds.
    f.write_all(&data).expect("write(2) into the page cache succeeds");
    let err = fusebox::sys::close(OwnedFd::from(f)).expect_err("close(2) must report the failed commit");
    let code = err.raw_os_error().unwrap();
    assert!(code == libc::ENOSPC || code == libc::EIO, "close(2) returned {err}");
    // A fresh open drops the page cache (memfs does not keep it): read what memfs holds.
    let mut back = Vec::new();
    std::fs::File::open(m.path("big")).unwrap().read_to_end(&mut back).unwrap();
    let mut intact = 0;
    for (i, chunk) in back.chunks(CHUNK).enumerate() {
        let want = &data[i * CHUNK..(i * CHUNK + chunk.len()).min(data.len())];
        if chunk == want {
            intact += 1;
        } else {
            assert!(chunk.iter().all(|&b| b == 0), "chunk {i} is neither the data written nor a hole");
        }
    }
    assert!(intact >= 1, "nothing of what fit survived");
    assert!((intact * CHUNK) as u64 <= SIZE, "more than the capacity was stored");
    // The file system keeps working: after freeing space, a write commits cleanly.
    std::fs::remove_file(m.path("big")).unwrap();
    // memfs frees a deleted file's data when the kernel forgets the inode, which follows the
    // unlink asynchronously: wait for the space to come back (it failed with ENOSPC once).
    let free = || rustix::fs::statvfs(&m.mnt).map(|s| s.f_bavail * s.f_frsize).unwrap_or(0);
    assert!(common::wait_until(std::time::Duration::from_secs(5), || free() >= 200_000), "space not freed");
    let mut g = std::fs::File::create(m.path("small")).unwrap();
    g.write_all(&data[..100_000]).unwrap();
    fusebox::sys::close(OwnedFd::from(g)).unwrap();
    assert_eq!(std::fs::read(m.path("small")).unwrap(), &data[..100_000]);
}

// ---- passthrough -o sync_close ----

use common::pt::PtMount;
use fusebox_fs::passthrough::Passthrough;
use rustix::fs::FlockOperation;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

const PT_OPTS: &str = "default_permissions,allow_other";

fn sync_close(p: &Path) -> Result<Passthrough, fusebox_fs::passthrough::PassthroughError> {
    Passthrough::new(p).map(|f| f.with_sync_close(true))
}

/// One round: on the mount open, flock(LOCK_EX), write, close; then directly in the source
/// flock(LOCK_EX|LOCK_NB) and read. Returns (lock was free, data was complete, the daemon still
/// had the backing file open).
fn round(m: &PtMount, seed: u64) -> (bool, bool, bool) {
    let len = 1 + (seed as usize * 7919) % 65536;
    let data = random_bytes(seed, len);
    let f = OpenOptions::new().write(true).create(true).truncate(true).open(m.mnt("f")).unwrap();
    rustix::fs::flock(&f, FlockOperation::LockExclusive).unwrap();
    (&f).write_all(&data).unwrap();
    fusebox::sys::close(OwnedFd::from(f)).expect("close(2)");
    let still_open = io_descriptors_on(&m.src("f")) > 0;
    let direct = File::open(m.src("f")).unwrap();
    let free = rustix::fs::flock(&direct, FlockOperation::NonBlockingLockExclusive).is_ok();
    let mut back = Vec::new();
    (&direct).read_to_end(&mut back).unwrap();
    (free, back == data, still_open)
}

/// (rounds with the lock still held, with data incomplete, with the backing file still open).
fn rounds(m: &PtMount, n: u64) -> (u64, u64, u64) {
    let (mut busy, mut short, mut open) = (0, 0, 0);
    for i in 0..n {
        let (free, complete, still_open) = round(m, i + 1);
        busy += u64::from(!free);
        short += u64::from(!complete);
        open += u64::from(still_open);
    }
    (busy, short, open)
}

#[test]
fn sync_close_lock_free_and_data_complete_when_close_returns_1000_rounds() {
    for opts in [PT_OPTS.to_string(), format!("{PT_OPTS},writeback"), format!("{PT_OPTS},kernel_passthrough")]
    {
        let Some(m) = PtMount::with(sync_close, &opts) else { return };
        let (busy, short, open) = rounds(&m, 1000);
        assert_eq!(
            (busy, short, open),
            (0, 0, 0),
            "with sync_close ({opts}): lock still held / data incomplete / backing file still open"
        );
    }
}

#[test]
fn without_sync_close_reports_how_often_the_lock_is_still_held() {
    let Some(m) = PtMount::new(PT_OPTS) else { return };
    let (busy, short, open) = rounds(&m, 1000);
    eprintln!(
        "without sync_close: after close(2) the lock was still held in {busy} and the backing file \
         still open in {open} of 1000 rounds"
    );
    // Without write-back every write reached the source before close(2) returned.
    assert_eq!(short, 0);
}

/// Descriptors of this process (the daemon runs in it) open on `path` for I/O (O_PATH
/// descriptors, which the passthrough keeps for inodes, do not count).
fn io_descriptors_on(path: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if std::fs::read_link(e.path()).ok().as_deref() != Some(path) {
            continue;
        }
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", e.file_name().to_string_lossy()))
            .unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .unwrap_or(0);
        if flags & libc::O_PATH as u32 == 0 {
            n += 1;
        }
    }
    n
}

#[test]
fn sync_close_shared_descriptors_release_the_lock_at_the_last_close() {
    let Some(m) = PtMount::with(sync_close, PT_OPTS) else { return };
    let direct_free = || {
        let d = File::open(m.src("f")).unwrap();
        rustix::fs::flock(&d, FlockOperation::NonBlockingLockExclusive).is_ok()
    };
    // dup: the first close keeps the lock; the last drops it; no byte is lost.
    let f = OpenOptions::new().write(true).create(true).truncate(true).open(m.mnt("f")).unwrap();
    rustix::fs::flock(&f, FlockOperation::LockExclusive).unwrap();
    let g = f.try_clone().unwrap();
    (&f).write_all(b"first ").unwrap();
    fusebox::sys::close(OwnedFd::from(f)).unwrap();
    assert!(!direct_free(), "a dup still refers to the open file: the lock must stay");
    (&g).write_all(b"second").unwrap();
    fusebox::sys::close(OwnedFd::from(g)).unwrap();
    assert!(direct_free(), "last close: the lock must be gone when close(2) returns");
    assert_eq!(io_descriptors_on(&m.src("f")), 0, "last close: the backing descriptor must be closed");
    assert_eq!(std::fs::read(m.src("f")).unwrap(), b"first second");
    // fork: a child inherits the descriptor; the parent's close keeps the lock, the child's
    // exit releases it.
    let f = OpenOptions::new().write(true).open(m.mnt("f")).unwrap();
    rustix::fs::flock(&f, FlockOperation::LockExclusive).unwrap();
    rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::empty()).unwrap();
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::CLOEXEC).unwrap();
    (&f).write_all(b"third").unwrap();
    fusebox::sys::close(OwnedFd::from(f)).unwrap();
    assert!(!direct_free(), "the child still holds the open file: the lock must stay");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        common::wait_until(Duration::from_secs(5), direct_free),
        "lock not released after the child exited"
    );
    assert_eq!(std::fs::read(m.src("f")).unwrap(), b"third second");
}

#[test]
fn sync_close_data_survives_kill_9_of_the_daemon_right_after_close() {
    if !common::can_mount() {
        return;
    }
    let dir = tempfile::Builder::new().prefix("fusebox-kill9-").tempdir().unwrap();
    let (src, mnt) = (dir.path().join("src"), dir.path().join("mnt"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["sync_close_daemon", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("SYNC_CLOSE_DAEMON", format!("{}|{}", src.display(), mnt.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = common::wait_until(Duration::from_secs(20), || fusebox::session::is_mount_point(&mnt));
    let data = random_bytes(99, 3 << 20);
    let result = std::panic::catch_unwind(|| {
        assert!(up, "daemon did not mount");
        let mut f = File::create(mnt.join("f")).unwrap();
        f.write_all(&data).unwrap();
        fusebox::sys::close(OwnedFd::from(f)).unwrap();
    });
    // SIGKILL at once: whatever close(2) promised must already be in the source.
    let _ = child.kill();
    let _ = child.wait();
    let _ = fusebox::sys::umount(&mnt, libc::MNT_DETACH);
    result.unwrap();
    assert!(std::fs::read(src.join("f")).unwrap() == data, "data lost by kill -9 after close(2)");
}

/// Not a test on its own: the daemon of the kill -9 test, run in a child process with
/// `SYNC_CLOSE_DAEMON=SOURCE|MOUNTPOINT` (passthrough, sync_close, write-back).
#[test]
#[ignore]
fn sync_close_daemon() {
    let Ok(spec) = std::env::var("SYNC_CLOSE_DAEMON") else { return };
    let (src, mnt) = spec.split_once('|').unwrap();
    fusebox::sys::set_umask(0);
    let fs = Arc::new(sync_close(Path::new(src)).unwrap());
    let options = fusebox::MountOptions::parse(&[&format!("{PT_OPTS},writeback")], &[]).unwrap();
    let config = fusebox::Config { options, ..Default::default() };
    let session = fusebox::Session::mount(fs, Path::new(mnt), config).expect("mount");
    session.run().expect("serve");
}

/// Files per second: create, write `size` bytes, (optionally flock first, fsync last), close.
fn small_files(dir: &Path, n: usize, size: usize, flock: bool, fsync: bool) -> f64 {
    let data = random_bytes(5, size);
    let start = std::time::Instant::now();
    for i in 0..n {
        let f = File::create(dir.join(format!("s{i}"))).unwrap();
        if flock {
            rustix::fs::flock(&f, FlockOperation::LockExclusive).unwrap();
        }
        (&f).write_all(&data).unwrap();
        if fsync {
            f.sync_all().unwrap();
        }
        fusebox::sys::close(OwnedFd::from(f)).unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Not run by default: the numbers in docs/BENCHMARKS.md ("sync_close"). Run with
/// `cargo test --release -p fusebox-fs --test sync_close -- --ignored bench_sync_close --nocapture`.
#[test]
#[ignore]
fn bench_sync_close_small_files() {
    let n: usize = std::env::var("BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let size = 4096;
    let Some(plain) = PtMount::new(PT_OPTS) else { return };
    let Some(sync) = PtMount::with(sync_close, PT_OPTS) else { return };
    println!("{n} files of {size} B each: created, written, closed (files/s)");
    println!("{:<44} {:>10} {:>10}", "", "no flock", "flock");
    let native_dir = plain.sdir.path().join("native");
    std::fs::create_dir(&native_dir).unwrap();
    let row = |name: &str, dir: &Path, fsync: bool| {
        let _ = std::fs::remove_dir_all(dir.join("a"));
        let _ = std::fs::remove_dir_all(dir.join("b"));
        std::fs::create_dir(dir.join("a")).unwrap();
        std::fs::create_dir(dir.join("b")).unwrap();
        let a = small_files(&dir.join("a"), n, size, false, fsync);
        let b = small_files(&dir.join("b"), n, size, true, fsync);
        println!("{name:<44} {a:>10.0} {b:>10.0}");
        (a, b)
    };
    let native = row("native (source file system)", &native_dir, false);
    let native_fsync = row("native + fsync before close", &native_dir, true);
    let pt = row("passthrough", &plain.mnt(""), false);
    let pt_sync = row("passthrough -o sync_close", &sync.mnt(""), false);
    println!(
        "sync_close / passthrough: {:.2} (no flock), {:.2} (flock); sync_close / native+fsync: {:.2}, {:.2}",
        pt_sync.0 / pt.0,
        pt_sync.1 / pt.1,
        pt_sync.0 / native_fsync.0,
        pt_sync.1 / native_fsync.1
    );
    let _ = native;
}
