//! fsx-style random-operation tests: one file in a mount, random writes (also past EOF, making
//! holes), reads, truncates, fallocate (allocate, keep-size, punch hole), mmap reads and writes
//! (+ msync), copy_file_range (within the file and via a second file), fsync and close/reopen, each
//! checked against an in-memory model; full-file compares periodically and at the end.
//!
//! Environment: `FSX_SRC_DIR` (passthrough source parent, default /dev/shm), `FSX_SEED` (default: from the time; always printed), `FSX_OPS` (default 100,000;
//! 1,000,000 for the ignored soak), `FSX_LOG=1` (print every op), `FSX_FULL_EVERY` (default 500).
//! Soak run: `cargo test --release -p fusebox-fs --test fsx -- --ignored fsx_soak --nocapture`.

mod common;
mod fsx {
    pub mod engine;
}

use common::TestMount;
use fsx::engine::{Config, Fsx};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use fusebox_fs::passthrough::Passthrough;
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
    let name = format!("{backend:?}/{}", if writeback { "writeback" } else { "writethrough" });
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
    let fs: Arc<dyn fusebox::Filesystem> = match backend {
        Backend::MemFs => Arc::new(MemFs::new(MemFsOptions::default())),
        Backend::Passthrough => {
            fusebox::sys::set_umask(0);
            Arc::new(Passthrough::new(sdir.path()).expect("passthrough source"))
        }
    };
    let Some(m) = TestMount::new(fs, opts(writeback)) else { return };
    let (p1, p2): (PathBuf, PathBuf) = (m.path("fsx.file"), m.path("fsx.scratch"));
    let model = common::within(limit, move || Fsx::new(&name, p1, p2, cfg).run().1);
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

fn default_run(backend: Backend, writeback: bool) {
    run(backend, writeback, Config::from_env(DEFAULT_OPS), Duration::from_secs(1200));
}

#[test]
fn fsx_memfs_writeback() {
    default_run(Backend::MemFs, true);
}

#[test]
fn fsx_memfs_writethrough() {
    default_run(Backend::MemFs, false);
}

#[test]
fn fsx_passthrough_writeback() {
    default_run(Backend::Passthrough, true);
}

#[test]
fn fsx_passthrough_writethrough() {
    default_run(Backend::Passthrough, false);
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
