//! What the mount tests of fusebox-dfs share: formatted stores (SQLite + local directory, or a
//! real PostgreSQL + S3 pair the fixtures start), file system instances, mounts in this
//! process and mounts served by a child process (for fsx's mmap and for a real SIGKILL).

#![allow(dead_code)] // each test binary uses a part

#[path = "../../src/testing/mod.rs"]
pub mod testing;

use fusebox::fs::asyncfs::{AsyncAdapter, AsyncFilesystem};
use fusebox::fs::{FileHandle, NodeId, ReadArgs, RequestInfo};
use fusebox_dfs::cache::BlockCache;
use fusebox_dfs::meta::Caller;
use fusebox_dfs::url::{format_meta, open_meta};
use fusebox_dfs::{BlobStore, DfsFs, DfsOptions, ObjectBlobStore};
use fusebox_testkit as common;
use fusebox_testkit::child::ChildMount;
use fusebox_testkit::TestMount;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A formatted file system: metadata at `meta_url`, blocks at `blocks_url`, and a temp dir
/// for `cache/` (and for SQLite `meta.db`, for a local store `blocks/`).
pub struct Store {
    /// Temp dir of the store (caches, mountpoints, SQLite file, local blocks).
    pub dir: tempfile::TempDir,
    /// Metadata URL.
    pub meta_url: String,
    /// Block store URL.
    pub blocks_url: String,
}

impl Store {
    /// The embedded pair: SQLite and a local block directory.
    pub fn new() -> Store {
        let dir = tempfile::Builder::new().prefix("fusebox-dfs-").tempdir().unwrap();
        let meta_url = format!("sqlite://{}/meta.db", dir.path().display());
        let blocks_url = format!("file://{}/blocks", dir.path().display());
        Store::format(dir, meta_url, blocks_url)
    }
    /// The shared pair: a fresh database of a real PostgreSQL server and a fresh bucket of a
    /// real S3 server (SeaweedFS); `None` when either is not installed (and not required).
    pub fn postgres_s3() -> Option<Store> {
        let (pg, s3) = (testing::pg_server::shared()?, testing::s3_server::shared()?);
        let dir = tempfile::Builder::new().prefix("fusebox-dfs-pg-").tempdir().unwrap();
        Some(Store::format(dir, pg.new_database(), s3.new_bucket()))
    }
    pub fn format(dir: tempfile::TempDir, meta_url: String, blocks_url: String) -> Store {
        let s = Store { dir, meta_url, blocks_url };
        format_meta(&s.meta_url, &s.blocks_url, false, Caller { uid: 0, gid: 0 }).unwrap();
        s
    }
    /// A file system instance on this store (a fresh metadata connection).
    pub fn fs(&self) -> DfsFs {
        open_fs(&self.meta_url, &self.dir.path().join("cache"), DfsOptions::default())
    }
}

/// A file system instance on `meta_url` (a fresh metadata connection) caching blocks in `cache`.
pub fn open_fs(meta_url: &str, cache: &Path, opts: DfsOptions) -> DfsFs {
    let meta = open_meta(meta_url).unwrap();
    let blobs: Arc<dyn BlobStore> =
        Arc::new(ObjectBlobStore::from_url(&meta.info().unwrap().storage_url).unwrap());
    let cache = BlockCache::open(cache, 256 << 20).unwrap();
    DfsFs::new(meta, blobs, Some(cache), opts)
}

/// A mount of `store` served by threads of this process.
pub fn mount_in_process(store: &Store, opts: &str) -> Option<TestMount> {
    let fs = AsyncAdapter::new(store.fs(), Default::default()).unwrap();
    TestMount::new(Arc::new(fs), opts)
}

/// Mount options with the write-back cache.
pub const WRITEBACK: &str = "default_permissions,allow_other,writeback";
/// Mount options without the write-back cache.
pub const WRITETHROUGH: &str = "default_permissions,allow_other,no_writeback";

/// Read a whole file through an unmounted file system instance.
pub async fn read_unmounted(fs: &DfsFs, ino: u64, len: u64) -> Vec<u8> {
    try_read_unmounted(fs, ino, len).await.unwrap()
}

/// [`read_unmounted`], with the first error instead of a panic.
pub async fn try_read_unmounted(fs: &DfsFs, ino: u64, len: u64) -> Result<Vec<u8>, fusebox::Errno> {
    let req = RequestInfo { unique: 1, uid: 0, gid: 0, pid: 0, umask: 0 };
    let mut out = Vec::new();
    while (out.len() as u64) < len {
        let args = ReadArgs { fh: FileHandle(0), offset: out.len() as u64, size: 1 << 20, flags: 0 };
        let chunk = fs.read(req, NodeId(ino), args).await?;
        if chunk.is_empty() {
            break;
        }
        out.extend(chunk.to_vec());
    }
    Ok(out)
}

/// A mount of `store` at `mnt` served by a child process running [`dfs_daemon_main`].
pub fn daemon_mount(store: &Store, mnt: &Path, opts: &str) -> Option<ChildMount> {
    daemon_mount_with(store, mnt, opts, "cache", DfsOptions::default().session_timeout)
}

/// [`daemon_mount`] with its own block cache directory and session timeout.
pub fn daemon_mount_with(
    store: &Store, mnt: &Path, opts: &str, cache: &str, session_timeout: Duration,
) -> Option<ChildMount> {
    if !common::can_mount() {
        return None;
    }
    let cache = store.dir.path().join(cache);
    let ms = session_timeout.as_millis();
    let spec = format!("{}|{}|{}|{opts}|{ms}", store.meta_url, cache.display(), mnt.display());
    Some(ChildMount::spawn("dfs_daemon", "DFS_DAEMON", spec, mnt))
}

/// The daemon half of [`daemon_mount`], run in a child process by an ignored test named
/// `dfs_daemon` in each test binary, with
/// `DFS_DAEMON=META_URL|CACHE_DIR|MOUNTPOINT|OPTIONS|SESSION_TIMEOUT_MS`.
pub fn dfs_daemon_main() {
    let Ok(spec) = std::env::var("DFS_DAEMON") else { return };
    let p: Vec<&str> = spec.splitn(5, '|').collect();
    let timeout = Duration::from_millis(p[4].parse().expect("session timeout in ms"));
    let opts = DfsOptions { session_timeout: timeout, ..Default::default() };
    let fs = AsyncAdapter::new(open_fs(p[0], Path::new(p[1]), opts), Default::default()).unwrap();
    let options = fusebox::MountOptions::parse(&[p[3]], &[]).unwrap();
    let config = fusebox::Config { options, ..Default::default() };
    let session = fusebox::Session::mount(Arc::new(fs), Path::new(p[2]), config).expect("mount");
    session.run().expect("serve");
}

/// Mount options for several mounts of one store: write-back on, names and attributes cached
/// for a minute (other mounts' changes must arrive by invalidation, not by expiry).
pub const SHARED: &str =
    "default_permissions,allow_other,writeback,entry_timeout=60,attr_timeout=60,negative_timeout=60";

/// A mount of `store` in this process with its own block cache directory `cache` and
/// session timeout.
pub fn mount_with(store: &Store, opts: &str, cache: &str, session_timeout: Duration) -> Option<TestMount> {
    let dfs = DfsOptions { session_timeout, ..Default::default() };
    let fs = open_fs(&store.meta_url, &store.dir.path().join(cache), dfs);
    TestMount::new(Arc::new(AsyncAdapter::new(fs, Default::default()).unwrap()), opts)
}
