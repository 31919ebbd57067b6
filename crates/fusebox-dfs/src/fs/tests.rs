//! The file system without a mount: AsyncFilesystem calls against an in-memory object store and
//! a temporary SQLite database, checked against a byte-vector model.

use super::*;
use crate::blob::{BlobStore, ObjectBlobStore, ObjectInfo};
use crate::error::BlobError;
use crate::layout::{BLOCK_SIZE, CHUNK_SIZE};
use crate::meta::sqlite::SqliteMeta;
use crate::meta::{Caller, ROOT_INO};
use bytes::Bytes;
use fusebox::fs::asyncfs::{AsyncFilesystem, WriteData};
use fusebox::fs::{CreateArgs, FileHandle, ReadArgs, ReleaseArgs, RequestInfo, SetAttr, TimeOrNow};
use futures::future::BoxFuture;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

const REQ: RequestInfo = RequestInfo { unique: 1, uid: 0, gid: 0, pid: 1, umask: 0o022 };

/// A block store that fails every put while `fail` is set.
struct Flaky {
    inner: ObjectBlobStore,
    fail: AtomicBool,
}

impl BlobStore for Flaky {
    fn put(&self, key: String, data: Bytes) -> BoxFuture<'_, Result<(), BlobError>> {
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async { Err(BlobError::Store("injected failure".into())) });
        }
        self.inner.put(key, data)
    }
    fn get(&self, key: String) -> BoxFuture<'_, Result<Bytes, BlobError>> {
        self.inner.get(key)
    }
    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), BlobError>> {
        self.inner.delete(key)
    }
    fn list(&self, prefix: String) -> BoxFuture<'_, Result<Vec<ObjectInfo>, BlobError>> {
        self.inner.list(prefix)
    }
}

struct Env {
    dir: tempfile::TempDir,
    blobs: Arc<Flaky>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        SqliteMeta::format(&dir.path().join("m.db"), "mem:", false, Caller { uid: 0, gid: 0 }).unwrap();
        let inner = ObjectBlobStore::new(Arc::new(object_store::memory::InMemory::new()));
        Env { dir, blobs: Arc::new(Flaky { inner, fail: AtomicBool::new(false) }) }
    }
    /// A fresh file system instance (a new mount) on the same database and store.
    fn mount(&self, opts: DfsOptions) -> DfsFs {
        let meta = Arc::new(SqliteMeta::open(&self.dir.path().join("m.db")).unwrap());
        DfsFs::new(meta, self.blobs.clone(), None, opts)
    }
    /// [`Env::mount`] with a block cache in `cache_dir`.
    fn mount_cached(&self, opts: DfsOptions, cache_dir: &std::path::Path) -> DfsFs {
        let meta = Arc::new(SqliteMeta::open(&self.dir.path().join("m.db")).unwrap());
        let cache = crate::cache::BlockCache::open(cache_dir, 1 << 30).unwrap();
        DfsFs::new(meta, self.blobs.clone(), Some(cache), opts)
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// `fs` (a mount other than the writer's) reads `want` back from `ino` in 1 MiB READs, and
/// fsck finds every referenced block and no garbage.
async fn reads_back_whole_and_clean(env: &Env, fs: &DfsFs, ino: u64, want: &[u8]) {
    let report = reads_back_whole(env, fs, ino, want).await;
    assert!(report.garbage.is_empty(), "{report:?}");
}

/// `fs` reads `want` back from `ino`, and fsck finds every referenced block; its report.
async fn reads_back_whole(env: &Env, fs: &DfsFs, ino: u64, want: &[u8]) -> crate::check::FsckReport {
    let mut back = Vec::new();
    while back.len() < want.len() {
        back.extend(read(fs, ino, back.len() as u64, 1 << 20).await);
    }
    assert!(back == want);
    let report = crate::check::fsck(fs.meta(), &*env.blobs).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    report
}

/// Runs `$body` on a runtime with `$env` (a fresh database and store), `$fs` mounted on it
/// with `$opts` and `$ino`, a new file `$name` in the root.
macro_rules! on_a_new_file {
    ($opts:expr, $name:literal, |$env:ident, $fs:ident, $ino:ident| $body:block) => {{
        let $env = Env::new();
        rt().block_on(async {
            let $fs = $env.mount($opts);
            let $ino = create(&$fs, $name).await;
            $body
        })
    }};
}

async fn create(fs: &DfsFs, name: &str) -> u64 {
    let args = CreateArgs { mode: 0o644, umask: 0, flags: libc::O_RDWR };
    fs.create(REQ, NodeId(ROOT_INO), name.into(), args).await.unwrap().0.ino.0
}

async fn write(fs: &DfsFs, ino: u64, offset: u64, data: Vec<u8>) {
    let w = WriteData { fh: FileHandle(0), offset, data: data.into(), write_flags: 0, flags: 0 };
    fs.write(REQ, NodeId(ino), w).await.unwrap();
}

async fn read(fs: &DfsFs, ino: u64, offset: u64, size: u32) -> Vec<u8> {
    let args = ReadArgs { fh: FileHandle(0), offset, size, flags: 0 };
    fs.read(REQ, NodeId(ino), args).await.unwrap().to_vec()
}

async fn flush(fs: &DfsFs, ino: u64) -> Result<(), Errno> {
    fs.flush(REQ, NodeId(ino), FileHandle(0), 0).await
}

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: usize },
    Truncate { size: u64 },
    Flush,
    Remount,
    Compact,
    Read { off: u64, len: u32 },
}

/// Offsets near the start of the file and around the first chunk boundary.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..300_000, (CHUNK_SIZE - 150_000)..(CHUNK_SIZE + 150_000)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (offset(), 1usize..70_000).prop_map(|(off, len)| Op::Write { off, len }),
        1 => offset().prop_map(|size| Op::Truncate { size }),
        2 => Just(Op::Flush),
        1 => Just(Op::Remount),
        1 => Just(Op::Compact),
        3 => (offset(), 1u32..200_000).prop_map(|(off, len)| Op::Read { off, len }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Random writes, overwrites, truncates, commits, compactions and remounts (a new instance
    /// on the same database, after a commit) read back like a Vec<u8>; a small buffer limit
    /// makes writes spill slices before the commit, and a low compaction threshold has
    /// background compaction race the commits.
    #[test]
    fn reads_match_a_byte_vector_model(ops in proptest::collection::vec(op(), 1..40)) {
        let env = Env::new();
        let opts = DfsOptions { file_buffer_limit: 100_000, buffer_limit: 1 << 30, upload_parallelism: 4, compact_slices: 3, inline_max: 300, ..Default::default() };
        rt().block_on(async {
            let mut fs = env.mount(opts.clone());
            let ino = create(&fs, "f").await;
            let mut model: Vec<u8> = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Write { off, len } => {
                        let data: Vec<u8> = (0..len).map(|j| (i * 13 + j) as u8 | 1).collect();
                        if model.len() < off as usize + len {
                            model.resize(off as usize + len, 0);
                        }
                        model[off as usize..off as usize + len].copy_from_slice(&data);
                        write(&fs, ino, off, data).await;
                    }
                    Op::Truncate { size } => {
                        model.resize(size as usize, 0);
                        let s = SetAttr { size: Some(size), ..Default::default() };
                        fs.setattr(REQ, NodeId(ino), s).await.unwrap();
                    }
                    Op::Flush => flush(&fs, ino).await.unwrap(),
                    Op::Remount => {
                        flush(&fs, ino).await.unwrap();
                        fs = env.mount(opts.clone());
                    }
                    Op::Compact => {
                        fs.compact_all(2).await.unwrap();
                    }
                    Op::Read { off, len } => {
                        let got = read(&fs, ino, off, len).await;
                        let end = (off as usize + len as usize).min(model.len());
                        let want = if (off as usize) < end { &model[off as usize..end] } else { &[][..] };
                        prop_assert_eq!(got.len(), want.len(), "read at {} of {}", off, len);
                        prop_assert!(got == want, "read at {} of {} differs", off, len);
                    }
                }
                let a = fs.getattr(REQ, NodeId(ino), None).await.unwrap();
                prop_assert_eq!(a.size, model.len() as u64);
            }
            Ok(())
        })?;
    }
}

/// Slices per chunk of `ino`, chunk 0.
fn slice_count(fs: &DfsFs, ino: u64) -> usize {
    fs.meta().slices(ino, 0).unwrap().len()
}

#[test]
fn compaction_merges_a_chunk_keeps_its_bytes_and_holes() {
    on_a_new_file!(
        DfsOptions { compact_slices: 0, inline_max: 0, ..Default::default() },
        "f",
        |env, fs, ino| {
            // Twenty commits of 1000 bytes each, overlapping, then one beyond a hole.
            for i in 0..20u64 {
                write(&fs, ino, i * 900, vec![i as u8 + 1; 1000]).await;
                flush(&fs, ino).await.unwrap();
            }
            write(&fs, ino, 1 << 20, b"after the hole".to_vec()).await;
            flush(&fs, ino).await.unwrap();
            let before = read(&fs, ino, 0, 2 << 20).await;
            assert_eq!(slice_count(&fs, ino), 21);
            let r = fs.compact_all(2).await.unwrap();
            assert_eq!((r.chunks, r.slices_before, r.slices_after, r.raced), (1, 21, 2, 0));
            assert_eq!(r.bytes, 19 * 900 + 1000 + 14);
            assert_eq!(slice_count(&fs, ino), 2, "one slice per extent: the hole stays a hole");
            assert_eq!(read(&fs, ino, 0, 2 << 20).await, before);
            // Another mount (no cache) reads the same; nothing more to do.
            let other = env.mount(DfsOptions::default());
            assert_eq!(read(&other, ino, 0, 2 << 20).await, before);
            assert_eq!(fs.compact_all(2).await.unwrap(), CompactReport::default());
            // The replaced objects are garbage now; fsck says so and finds nothing missing.
            let report = crate::check::fsck(fs.meta(), &*env.blobs).await.unwrap();
            assert!(report.is_ok() && report.garbage.len() >= 21, "{report:?}");
        }
    );
}

#[test]
fn compaction_that_races_a_commit_changes_nothing() {
    on_a_new_file!(DfsOptions { compact_slices: 0, ..Default::default() }, "f", |env, fs, ino| {
        for i in 0..3u64 {
            write(&fs, ino, i * 10, vec![b'a' + i as u8; 10]).await;
            flush(&fs, ino).await.unwrap();
        }
        let old = fs.meta().slices(ino, 0).unwrap();
        // A commit lands between compaction's read of the list and its swap.
        write(&fs, ino, 5, b"NEW".to_vec()).await;
        flush(&fs, ino).await.unwrap();
        let merged = crate::meta::NewSlice {
            chunk: 0,
            pos: 0,
            slice_id: fs.meta().new_slice_id().unwrap(),
            len: 30,
            data: None,
        };
        assert!(!fs.meta().replace_slices(ino, 0, &old, std::slice::from_ref(&merged)).unwrap());
        assert_eq!(slice_count(&fs, ino), 4);
        assert_eq!(read(&fs, ino, 0, 100).await, b"aaaaaNEWaabbbbbbbbbbcccccccccc");
        // A truncation changes the list too.
        let old = fs.meta().slices(ino, 0).unwrap();
        fs.setattr(REQ, NodeId(ino), SetAttr { size: Some(12), ..Default::default() }).await.unwrap();
        assert!(!fs.meta().replace_slices(ino, 0, &old, &[merged]).unwrap());
        assert_eq!(read(&fs, ino, 0, 100).await, b"aaaaaNEWaabb");
    });
}

#[test]
fn commits_past_the_threshold_compact_in_the_background() {
    on_a_new_file!(DfsOptions { compact_slices: 4, ..Default::default() }, "f", |env, fs, ino| {
        let mut want = Vec::new();
        for i in 0..6u8 {
            let piece = vec![b'0' + i; 100];
            write(&fs, ino, want.len() as u64, piece.clone()).await;
            want.extend_from_slice(&piece);
            flush(&fs, ino).await.unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Without compaction there would be 6; the fourth commit reached the threshold, so the
        // chunk was merged to one slice, and two more commits came after.
        while slice_count(&fs, ino) > 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(slice_count(&fs, ino) <= 3, "{} slices left", slice_count(&fs, ino));
        assert_eq!(read(&fs, ino, 0, 1000).await, want);
    });
}

#[test]
fn large_writes_spill_whole_blocks_and_commit_at_flush() {
    on_a_new_file!(DfsOptions::default(), "big", |env, fs, ino| {
        let data: Vec<u8> = (0..9 * BLOCK_SIZE as usize + 123).map(|i| (i / 4096) as u8 ^ i as u8).collect();
        for (n, piece) in data.chunks(1 << 20).enumerate() {
            write(&fs, ino, n as u64 * (1 << 20), piece.to_vec()).await;
        }
        // Full blocks went to the store already; nothing is committed before the flush.
        assert!(!env.blobs.list("blocks".into()).await.unwrap().is_empty());
        assert_eq!(fs.meta().getattr(ino).unwrap().size, 0);
        assert_eq!(
            read(&fs, ino, 5 * BLOCK_SIZE - 10, 100).await,
            data[5 * BLOCK_SIZE as usize - 10..][..100]
        );
        flush(&fs, ino).await.unwrap();
        let other = env.mount(DfsOptions::default());
        assert_eq!(other.meta().getattr(ino).unwrap().size, data.len() as u64);
        reads_back_whole_and_clean(&env, &other, ino, &data).await;
        // One whole block per slice: compaction would rewrite every byte for the same number
        // of blocks, so it leaves the chunk alone...
        assert_eq!(slice_count(&fs, ino), 10);
        assert_eq!(fs.compact_all(2).await.unwrap(), CompactReport::default());
        assert_eq!(slice_count(&fs, ino), 10);
        // ...until an overwrite hides bytes of one of them.
        let mut data = data;
        data[7..107].fill(b'x');
        write(&fs, ino, 7, vec![b'x'; 100]).await;
        flush(&fs, ino).await.unwrap();
        let r = fs.compact_all(2).await.unwrap();
        assert_eq!((r.chunks, r.slices_before, r.slices_after), (1, 11, 1));
        // The nine replaced blocks are garbage for gc now (tail and overwrite were inline). A
        // fresh mount reads: this one follows no change log, so it would keep the slice lists
        // of its first read.
        let third = env.mount(DfsOptions::default());
        assert_eq!(reads_back_whole(&env, &third, ino, &data).await.garbage.len(), 9);
    });
}

/// What the block cache keeps by default: of the blocks a mount uploads, the partial ones; of
/// those a reader fetches, all but those a sequential reader streams past the file's first
/// chunk. With `cache_all`, everything.
#[test]
fn the_block_cache_skips_full_written_blocks_and_streams() {
    let env = Env::new();
    let tail = 123u64;
    // One chunk, two blocks more and a tail.
    let data: Vec<u8> = (0..CHUNK_SIZE + 2 * BLOCK_SIZE + tail).map(|i| (i % 251) as u8).collect();
    let cached_bytes = |fs: &DfsFs, want: u64| {
        let cache = fs.engines.cache.clone().unwrap();
        async move {
            // The cache is written in the background.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while cache.used() < want && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            cache.used()
        }
    };
    rt().block_on(async {
        for (all, name) in [(false, "default"), (true, "all")] {
            let cache_dir = env.dir.path().join(name);
            let opts = || DfsOptions { inline_max: 0, cache_all: all, ..Default::default() };
            let fs = env.mount_cached(opts(), &cache_dir);
            let ino = create(&fs, name).await;
            for (n, piece) in data.chunks(1 << 20).enumerate() {
                write(&fs, ino, n as u64 * (1 << 20), piece.to_vec()).await;
            }
            flush(&fs, ino).await.unwrap();
            let want = if all { data.len() as u64 } else { tail };
            assert_eq!(cached_bytes(&fs, want).await, want, "written, cache_all={all}");
            drop(fs);
            // A reader on a new cache streams the file: the first chunk is cached, the blocks
            // past it (the tail too) only with cache_all.
            let cache_dir = env.dir.path().join(format!("{name}-reader"));
            let reader = env.mount_cached(opts(), &cache_dir);
            reads_back_whole_and_clean(&env, &reader, ino, &data).await;
            let want = if all { data.len() as u64 } else { CHUNK_SIZE };
            assert_eq!(cached_bytes(&reader, want).await, want, "streamed, cache_all={all}");
            if !all {
                // A read that is not sequential caches what it fetches, past the chunk too.
                let reader = env.mount_cached(opts(), &cache_dir);
                let at = CHUNK_SIZE + BLOCK_SIZE + 5;
                assert_eq!(read(&reader, ino, at, 10).await, data[at as usize..][..10]);
                let want = CHUNK_SIZE + BLOCK_SIZE;
                assert_eq!(cached_bytes(&reader, want).await, want, "random read");
            }
        }
    });
}

/// The directory attributes a create keeps (and answers GETATTR with) are the database's, and
/// other changes drop them.
#[test]
fn a_directory_answers_getattr_after_a_create_as_the_database_has_it() {
    on_a_new_file!(DfsOptions::default(), "f", |env, fs, ino| {
        let dir = |fs: &DfsFs| file_attr(&fs.meta().getattr(ROOT_INO).unwrap());
        assert!(fs.coherence.kept_attr(ROOT_INO).is_some(), "the create kept its directory's attributes");
        assert_eq!(fs.getattr(REQ, NodeId(ROOT_INO), None).await.unwrap(), dir(&fs));
        fs.mkdir(REQ, NodeId(ROOT_INO), "d".into(), 0o755).await.unwrap();
        assert_eq!(fs.getattr(REQ, NodeId(ROOT_INO), None).await.unwrap(), dir(&fs), "mkdir: one more link");
        fs.unlink(REQ, NodeId(ROOT_INO), "f".into()).await.unwrap();
        assert!(fs.coherence.kept_attr(ROOT_INO).is_none(), "an unlink drops them");
        assert_eq!(fs.getattr(REQ, NodeId(ROOT_INO), None).await.unwrap(), dir(&fs));
        let _ = (env, ino);
    });
}

/// A new file's attributes are kept from its create: the write-back SETATTR of its times is
/// answered from them with what the buffer adds, and the commit drops them.
#[test]
fn a_new_file_answers_the_setattr_of_its_times_from_its_create() {
    on_a_new_file!(DfsOptions::default(), "f", |env, fs, ino| {
        assert!(fs.coherence.kept_attr(ino).is_some(), "the create kept the file's attributes");
        write(&fs, ino, 0, vec![7; 100]).await;
        let t = fusebox::fs::Timespec { sec: 1_000, nsec: 5 };
        let times = SetAttr { mtime: Some(TimeOrNow::Time(t)), ctime: Some(t), ..Default::default() };
        let a = fs.setattr(REQ, NodeId(ino), times).await.unwrap();
        assert_eq!((a.size, a.mtime), (100, t), "the buffer's size and the new time");
        flush(&fs, ino).await.unwrap();
        assert!(fs.coherence.kept_attr(ino).is_none(), "the commit drops them");
        let stored = fs.meta().getattr(ino).unwrap();
        assert_eq!((stored.size, stored.mtime_ns), (100, 1_000_000_000_005));
        let _ = env;
    });
}

#[test]
fn blocks_upload_in_the_background_and_a_failed_upload_is_tried_again_at_the_flush() {
    on_a_new_file!(DfsOptions::default(), "big", |env, fs, ino| {
        let data: Vec<u8> = (0..3 * BLOCK_SIZE as usize + 5).map(|i| (i / 7) as u8).collect();
        env.blobs.fail.store(true, Ordering::SeqCst);
        // The WRITEs that fill blocks do not wait for the blocks' uploads (failing here).
        for (n, piece) in data.chunks(1 << 20).enumerate() {
            write(&fs, ino, n as u64 * (1 << 20), piece.to_vec()).await;
        }
        let at = BLOCK_SIZE as usize - 10;
        assert_eq!(read(&fs, ino, at as u64, 100).await, data[at..][..100], "unconfirmed blocks serve reads");
        assert_eq!(flush(&fs, ino).await, Err(Errno::EIO));
        assert_eq!(fs.meta().getattr(ino).unwrap().size, 0, "no metadata without its objects");
        env.blobs.fail.store(false, Ordering::SeqCst);
        flush(&fs, ino).await.unwrap();
        let other = env.mount(DfsOptions::default());
        reads_back_whole_and_clean(&env, &other, ino, &data).await;
    });
}

#[test]
fn a_failed_upload_fails_the_flush_keeps_the_data_and_leaves_metadata_alone() {
    on_a_new_file!(DfsOptions { inline_max: 0, ..Default::default() }, "f", |env, fs, ino| {
        // inline_max 0: these small pieces are uploaded, not kept in the metadata.
        write(&fs, ino, 0, b"committed".to_vec()).await;
        flush(&fs, ino).await.unwrap();
        let before = fs.meta().getattr(ino).unwrap();
        write(&fs, ino, 4, b"NEW data".to_vec()).await;
        env.blobs.fail.store(true, Ordering::SeqCst);
        assert_eq!(flush(&fs, ino).await, Err(Errno::EIO));
        assert_eq!(fs.meta().getattr(ino).unwrap(), before, "no metadata without its objects");
        assert_eq!(read(&fs, ino, 0, 100).await, b"commNEW data", "the buffer still serves reads");
        let r = fs.release(
            REQ,
            NodeId(ino),
            ReleaseArgs { fh: FileHandle(0), flags: 0, flush: false, lock_owner: None },
        );
        assert_eq!(r.await, Err(Errno::EIO));
        env.blobs.fail.store(false, Ordering::SeqCst);
        flush(&fs, ino).await.unwrap();
        let other = env.mount(DfsOptions::default());
        assert_eq!(read(&other, ino, 0, 100).await, b"commNEW data");
    });
}

#[test]
fn unlinked_open_files_live_until_forget() {
    on_a_new_file!(DfsOptions { inline_max: 0, ..Default::default() }, "f", |env, fs, ino| {
        // inline_max 0: the bytes become a block object, garbage after the forget.
        write(&fs, ino, 0, b"still here".to_vec()).await;
        flush(&fs, ino).await.unwrap();
        fs.unlink(REQ, NodeId(ROOT_INO), "f".into()).await.unwrap();
        assert_eq!(read(&fs, ino, 0, 100).await, b"still here");
        fs.forget(NodeId(ino), 1).await;
        assert_eq!(fs.getattr(REQ, NodeId(ino), None).await, Err(Errno::ENOENT));
        // Its blocks are garbage now.
        let report = crate::check::fsck(fs.meta(), &*env.blobs).await.unwrap();
        assert!(report.is_ok());
        assert_eq!(report.garbage.len(), 1);
        let gc = crate::check::gc(fs.meta(), &*env.blobs, 3600, i64::MAX / 2).await.unwrap();
        assert_eq!((gc.deleted, gc.young), (1, 0));
        assert!(env.blobs.list("blocks".into()).await.unwrap().is_empty());
    });
}

#[test]
fn corrupt_slice_metadata_reads_as_eio_not_a_panic() {
    on_a_new_file!(DfsOptions::default(), "f", |env, fs, ino| {
        write(&fs, ino, 0, b"0123456789".to_vec()).await;
        flush(&fs, ino).await.unwrap();
        let db = rusqlite::Connection::open(env.dir.path().join("m.db")).unwrap();
        db.execute("UPDATE chunk_slices SET off = 8 WHERE ino = ?1", [ino as i64]).unwrap();
        let args = ReadArgs { fh: FileHandle(0), offset: 0, size: 10, flags: 0 };
        assert_eq!(fs.read(REQ, NodeId(ino), args).await.map(|d| d.to_vec()), Err(Errno::EIO));
        // A block object of the wrong size is EIO as well.
        db.execute("UPDATE chunk_slices SET off = 0, slice_size = 20, len = 20 WHERE ino = ?1", [ino as i64])
            .unwrap();
        db.execute("UPDATE inodes SET size = 20 WHERE ino = ?1", [ino as i64]).unwrap();
        let args = ReadArgs { fh: FileHandle(0), offset: 0, size: 20, flags: 0 };
        assert_eq!(fs.read(REQ, NodeId(ino), args).await.map(|d| d.to_vec()), Err(Errno::EIO));
    });
}

/// RELEASE of one open file must not drop the write buffer that a WRITE through another open
/// file of the same inode has taken but not locked yet: that WRITE's bytes would go into a
/// buffer no FLUSH finds (seen as a hole in a file appended to under flock).
#[test]
fn release_keeps_a_write_buffer_another_write_holds() {
    let env = Env::new();
    let fs = env.mount(DfsOptions::default());
    rt().block_on(async {
        let ino = create(&fs, "f").await;
        // A WRITE has fetched the buffer (as do_write does) when a RELEASE comes in.
        let taken = fs.writer_or_new(ino);
        fs.drop_writer_if_clean(ino);
        taken.lock().await.write(0, b"kept", None);
        drop(taken);
        flush(&fs, ino).await.unwrap();
        assert_eq!(read(&fs, ino, 0, 10).await, b"kept");
        // Nobody holds it now: a clean buffer goes.
        fs.drop_writer_if_clean(ino);
        assert!(fs.writer(ino).is_none());
    });
}

/// A commit of small pieces keeps their bytes in the metadata: no object is uploaded (the
/// close succeeds while the store refuses every upload), another mount reads them, a large
/// write still goes to the store, and small overwrites over its blocks read right.
#[test]
fn small_commits_keep_their_bytes_in_the_metadata() {
    let env = Env::new();
    rt().block_on(async {
        let fs = env.mount(DfsOptions::default());
        let inline_max = DfsOptions::default().inline_max;
        let ino = create(&fs, "small").await;
        env.blobs.fail.store(true, Ordering::SeqCst);
        write(&fs, ino, 0, b"a small file".to_vec()).await;
        flush(&fs, ino).await.expect("nothing to upload");
        write(&fs, ino, 2, vec![b'X'; inline_max as usize + 1]).await;
        assert_eq!(flush(&fs, ino).await, Err(Errno::EIO), "a larger piece is uploaded");
        env.blobs.fail.store(false, Ordering::SeqCst);
        flush(&fs, ino).await.unwrap();
        let objects = env.blobs.list(String::new()).await.unwrap().len();
        assert_eq!(objects, 1, "one block object, for the large piece only");
        // Small overwrites over the uploaded block, then a read from another mount.
        write(&fs, ino, 5, b"12345".to_vec()).await;
        flush(&fs, ino).await.unwrap();
        let mut want = b"a ".to_vec();
        want.extend(vec![b'X'; inline_max as usize + 1]);
        want[5..10].copy_from_slice(b"12345");
        let other = env.mount(DfsOptions::default());
        assert_eq!(read(&other, ino, 0, want.len() as u32 + 10).await, want);
        assert_eq!(env.blobs.list(String::new()).await.unwrap().len(), 1);
        // Compaction merges the kept and the stored slices into one stored slice.
        let r = fs.compact_all(2).await.unwrap();
        assert_eq!((r.chunks, r.slices_after), (1, 1), "{r:?}");
        assert_eq!(read(&other, ino, 0, want.len() as u32).await, want);
        let report = crate::check::fsck(fs.meta(), &*env.blobs).await.unwrap();
        assert!(report.is_ok(), "{report:?}");
    });
}

/// The pieces of one block are fetched once (kept in memory), and a sequential reader gets
/// the next READ_AHEAD bytes' blocks fetched ahead, across slices (a file written in 1 MiB
/// pieces spills one slice per block); a random reader does not.
#[test]
fn sequential_reads_fetch_each_block_once_and_the_next_ones_ahead() {
    on_a_new_file!(DfsOptions::default(), "big", |env, fs, ino| {
        const MIB: u64 = 1 << 20;
        let data: Vec<u8> = (0..12 * BLOCK_SIZE as usize).map(|i| (i / 7) as u8).collect();
        for (n, piece) in data.chunks(MIB as usize).enumerate() {
            write(&fs, ino, n as u64 * MIB, piece.to_vec()).await;
        }
        flush(&fs, ino).await.unwrap();
        let reader = env.mount(DfsOptions::default());
        let recent = &reader.engines().recent;
        // A first read is not known to be sequential: its block only.
        assert_eq!(read(&reader, ino, MIB, MIB as u32).await, data[MIB as usize..2 * MIB as usize]);
        assert_eq!(recent.bytes(), BLOCK_SIZE);
        // A READ a little behind (the kernel's READs of a run come in any order) is part of the
        // run: the blocks of the next 32 MiB (1..33 MiB: blocks 0-8) come ahead, 9 not.
        assert_eq!(read(&reader, ino, 0, MIB as u32).await, data[..MIB as usize]);
        let ahead = fusebox_testkit::wait_until(std::time::Duration::from_secs(5), || {
            recent.bytes() == 9 * BLOCK_SIZE
        });
        assert!(ahead, "the next blocks were not fetched ahead: {} bytes kept", recent.bytes());
        // A jump forward is not sequential: its block only, nothing after it.
        let at = 10 * BLOCK_SIZE;
        assert_eq!(read(&reader, ino, at, 4096).await, data[at as usize..][..4096]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(recent.bytes(), 10 * BLOCK_SIZE);
    });
}
