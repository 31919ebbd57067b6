//! fsx-style random-operation tests: one file in a mount, random writes (also past EOF, making
//! holes), reads, truncates, fallocate (allocate, keep-size, punch hole), mmap reads and writes
//! (+ msync), copy_file_range (within the file and via a second file), fsync and close/reopen, each
//! checked against an in-memory model; full-file compares periodically and at the end.
//!
//! Environment: `FSX_SRC_DIR` (passthrough source parent, default /dev/shm), `FSX_SEED` (default: from the time; always printed), `FSX_OPS` (default 100,000;
//! 1,000,000 for the ignored soak), `FSX_LOG=1` (print every op), `FSX_FULL_EVERY` (default 500).
//! Soak run: `cargo test --release -p fusebox-fs --test fsx -- --ignored fsx_soak --nocapture`.

mod common;

use fusebox_fs::memfs::{MemFs, MemFsOptions};
use fusebox_fs::passthrough::Passthrough;
use fusebox_testkit::fsx::{Config, Fsx};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_OPS: u64 = 100_000;
const SOAK_OPS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug)]
enum Backend {
    MemFs,
    Passthrough,
}

fn opts(writeback: bool) -> &'static str {
    if writeback {
        "default_permissions,allow_other,writeback"
    } else {
        "default_permissions,allow_other,no_writeback"
    }
}

/// Mount `backend` with or without the write-back cache and run fsx on it with `cfg`.
/// For passthrough, the backing file in the source directory is compared with the model too.
fn run(backend: Backend, writeback: bool, cfg: Config, limit: Duration) {
    run_on(backend, writeback, false, cfg, limit)
}

/// [`run`], over FUSE-over-io_uring when `uring` (checked: requests must have used it).
fn run_on(backend: Backend, writeback: bool, uring: bool, cfg: Config, limit: Duration) {
    let mut name = format!("{backend:?}/{}", if writeback { "writeback" } else { "writethrough" });
    if uring {
        name.push_str("/io_uring");
    }
    // Passthrough: the daemon runs with umask 0 (the kernel applied the caller's umask).
    // The source lives in FSX_SRC_DIR, else /dev/shm when present: on the disk-backed /tmp every
    // shrinking truncate waits for a block discard, which makes 100,000 ops take very long.
    let src_parent = std::env::var_os("FSX_SRC_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    let sdir = tempfile::Builder::new().prefix("fusebox-fsx-src-").tempdir_in(&src_parent).unwrap();
    let kind = match backend {
        Backend::MemFs => "memfs".to_string(),
        Backend::Passthrough => format!("passthrough:{}", sdir.path().display()),
    };
    let m = if uring {
        common::uring::with_uring(|| DaemonMount::new(&kind, &format!("{},io_uring", opts(writeback))))
    } else {
        DaemonMount::new(&kind, opts(writeback))
    };
    let Some(m) = m else { return };
    let (p1, p2): (PathBuf, PathBuf) = (m.mnt.join("fsx.file"), m.mnt.join("fsx.scratch"));
    let model = common::within(limit, move || Fsx::new(&name, p1, p2, cfg).run().1);
    if uring {
        let status = fusebox::session::query_status(&m.mnt).expect("daemon status");
        assert!(status.stats.uring_requests > 0, "no request came over io_uring");
    }
    if let Backend::Passthrough = backend {
        let backing = std::fs::read(sdir.path().join("fsx.file")).expect("read backing file");
        assert_eq!(backing.len(), model.len(), "backing file size differs from the model");
        if let Some(i) = backing.iter().zip(&model).position(|(a, b)| a != b) {
            panic!(
                "backing file differs from the model at {i:#x}: {:02x?} != {:02x?}",
                &backing[i..(i + 16).min(backing.len())],
                &model[i..(i + 16).min(model.len())]
            );
        }
    }
    drop(m);
}

/// A mount served by a child process running [`fsx_daemon`]. fsx mmaps files of the mount, so
/// the daemon must not share its process: a page fault holds the process's mmap lock while it
/// waits for the daemon, and a daemon thread that needs that lock (a new thread stack, a
/// malloc'd page) would deadlock with it.
struct DaemonMount {
    m: common::child::ChildMount,
    _dir: tempfile::TempDir,
}

impl DaemonMount {
    fn new(kind: &str, opts: &str) -> Option<DaemonMount> {
        if !common::can_mount() {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("fusebox-fsx-").tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let spec = format!("{kind}|{}|{opts}", mnt.display());
        let m = common::child::ChildMount::spawn("fsx_daemon", "FSX_DAEMON", spec, &mnt);
        Some(DaemonMount { m, _dir: dir })
    }
}

impl std::ops::Deref for DaemonMount {
    type Target = common::child::ChildMount;
    fn deref(&self) -> &common::child::ChildMount {
        &self.m
    }
}

/// Not a test on its own: the daemon half of [`DaemonMount`], run in a child process with
/// `FSX_DAEMON=KIND|MOUNTPOINT|OPTIONS` (KIND `memfs` or `passthrough:SOURCE`).
#[test]
#[ignore]
fn fsx_daemon() {
    let Ok(spec) = std::env::var("FSX_DAEMON") else { return };
    let mut parts = spec.splitn(3, '|');
    let (kind, mnt, opts) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
    let fs: Arc<dyn fusebox::Filesystem> = match kind.strip_prefix("passthrough:") {
        Some(src) => Arc::new(Passthrough::new(std::path::Path::new(src)).expect("passthrough source")),
        None => Arc::new(MemFs::new(MemFsOptions::default())),
    };
    let options = fusebox::MountOptions::parse(&[opts], &[]).unwrap();
    let config = fusebox::Config { options, ..Default::default() };
    let session = fusebox::Session::mount(fs, std::path::Path::new(mnt), config).expect("mount");
    session.run().expect("serve");
}

/// One test per configuration: `name: (backend, write-back, io_uring)`, each the default
/// number of operations (FSX_OPS overrides it).
macro_rules! fsx_tests {
    ($($name:ident: ($backend:ident, $writeback:expr, $uring:expr)),* $(,)?) => {$(
        #[test]
        fn $name() {
            let cfg = Config::from_env(DEFAULT_OPS);
            run_on(Backend::$backend, $writeback, $uring, cfg, Duration::from_secs(1200));
        }
    )*};
}

fsx_tests! {
    fsx_memfs_writeback: (MemFs, true, false),
    fsx_memfs_writethrough: (MemFs, false, false),
    fsx_passthrough_writeback: (Passthrough, true, false),
    fsx_passthrough_writethrough: (Passthrough, false, false),
    fsx_memfs_writeback_io_uring: (MemFs, true, true),
    fsx_passthrough_writeback_io_uring: (Passthrough, true, true),
}

/// The 1,000,000-op soak, all four modes in turn with one seed (FSX_OPS overrides the count).
#[test]
#[ignore]
fn fsx_soak() {
    let cfg = Config::from_env(SOAK_OPS);
    for backend in [Backend::MemFs, Backend::Passthrough] {
        for writeback in [true, false] {
            run(backend, writeback, cfg.clone(), Duration::from_secs(24 * 3600));
        }
    }
}

/// Write-back rule: stores through a shared mapping, pushed by msync, reach the backing file.
#[test]
fn shared_mmap_writes_and_msync_reach_the_backing_file() {
    use std::os::fd::AsFd;
    let sdir = tempfile::Builder::new().prefix("fusebox-mmap-src-").tempdir().unwrap();
    let kind = format!("passthrough:{}", sdir.path().display());
    let Some(m) = DaemonMount::new(&kind, opts(true)) else { return };
    let path = m.mnt.join("mapped");
    std::fs::write(&path, vec![b'-'; 3 * 4096 + 100]).unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut map = fusebox::sys::SharedMap::new(file.as_fd(), 0, 3 * 4096 + 100).unwrap();
    map.as_mut_slice()[10..15].copy_from_slice(b"hello");
    map.as_mut_slice()[3 * 4096 + 90..3 * 4096 + 95].copy_from_slice(b"world");
    map.msync().unwrap();
    let backing = std::fs::read(sdir.path().join("mapped")).unwrap();
    assert_eq!(&backing[10..15], b"hello");
    assert_eq!(&backing[3 * 4096 + 90..3 * 4096 + 95], b"world");
    assert_eq!(backing.len(), 3 * 4096 + 100);
    drop(map);
    drop(file);
    drop(m);
}
