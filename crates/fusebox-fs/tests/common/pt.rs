//! A passthrough mount over a fresh source directory.
#![allow(dead_code)]

use super::TestMount;
use fusebox::fs::asyncfs::{AsyncAdapter, SyncAsAsync};
use fusebox_fs::passthrough::{Passthrough, PassthroughError};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A passthrough mount of `src` (inside `sdir`, a temp dir separate from the mount's).
/// Fields drop in order: unmount first, then remove the source tree.
pub struct PtMount {
    /// The mount.
    pub m: TestMount,
    /// The file system instance.
    pub fs: Arc<Passthrough>,
    /// The source directory.
    pub src: PathBuf,
    /// Temp dir holding `src` (tests may put "outside" files next to it).
    pub sdir: tempfile::TempDir,
}

impl PtMount {
    /// Mount with `opts` (e.g. "default_permissions,allow_other,writeback").
    pub fn new(opts: &str) -> Option<PtMount> {
        Self::with(Passthrough::new, opts)
    }

    /// Mount a passthrough built by `make` with `opts`. The option `kernel_passthrough` (the
    /// CLI's name) turns on [`Passthrough::with_kernel_passthrough`]; the test-only option
    /// `async_api` serves it through the async API (`AsyncAdapter` over `SyncAsAsync`).
    pub fn with(make: fn(&Path) -> Result<Passthrough, PassthroughError>, opts: &str) -> Option<PtMount> {
        if !super::can_mount() {
            return None;
        }
        // The daemon runs with umask 0: the kernel already applied the caller's umask.
        fusebox::sys::set_umask(0);
        let sdir = tempfile::Builder::new().prefix("fusebox-pt-src-").tempdir().unwrap();
        fs::set_permissions(sdir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let src = sdir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
        let (fs, m) = Self::serve(make, &src, opts)?;
        Some(PtMount { m, fs, src, sdir })
    }

    /// Unmount, then mount the same source again with `opts` (a new daemon instance).
    pub fn remount(self, opts: &str) -> Option<PtMount> {
        let PtMount { m, fs, src, sdir } = self;
        drop(m);
        drop(fs);
        let (fs, m) = Self::serve(Passthrough::new, &src, opts)?;
        Some(PtMount { m, fs, src, sdir })
    }

    fn serve(
        make: fn(&Path) -> Result<Passthrough, PassthroughError>, src: &Path, opts: &str,
    ) -> Option<(Arc<Passthrough>, TestMount)> {
        let kernel = opts.split(',').any(|o| o == "kernel_passthrough");
        let async_api = opts.split(',').any(|o| o == "async_api");
        let opts: Vec<&str> =
            opts.split(',').filter(|o| *o != "kernel_passthrough" && *o != "async_api").collect();
        let fs = Arc::new(make(src).unwrap().with_kernel_passthrough(kernel));
        let served: Arc<dyn fusebox::Filesystem> = if async_api {
            let face = SyncAsAsync::from_arc(fs.clone());
            Arc::new(AsyncAdapter::new(face, Default::default()).expect("tokio runtime"))
        } else {
            fs.clone()
        };
        let m = TestMount::new(served, &opts.join(","))?;
        fs::set_permissions(m.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Some((fs, m))
    }

    /// A path inside the mount.
    pub fn mnt(&self, rel: &str) -> PathBuf {
        self.m.path(rel)
    }

    /// Whether the kernel granted passthrough to this mount.
    pub fn kernel_passthrough(&self) -> bool {
        self.m.server().negotiated().is_some_and(|n| n.has(fusebox::abi::init_flags::FUSE_PASSTHROUGH))
    }

    /// The same path in the source directory.
    pub fn src(&self, rel: &str) -> PathBuf {
        self.src.join(rel)
    }
}
