//! The file system: fusebox's [`AsyncFilesystem`](fusebox::fs::asyncfs::AsyncFilesystem) on a [`MetaStore`] and a [`BlobStore`].
//!
//! Namespace operations are one metadata transaction each (run on tokio's blocking pool, since
//! the SQLite engine blocks). File data goes through a per-inode write buffer
//! ([`crate::writer`]) and is committed at FLUSH, FSYNC and RELEASE (see the `data` module for the
//! ordering that keeps a crash from leaving metadata that points at missing data).

mod coherence;
mod compact;
mod data;
mod locks;
mod namespace;

pub use compact::CompactReport;

use crate::blob::BlobStore;
use crate::cache::BlockCache;
use crate::error::MetaError;
use crate::meta::{Attr, MetaStore};
use crate::writer::FileWriter;
use fusebox::fs::{Entry, Errno, FileAttr, NodeId, Timespec};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Tunables of a mount.
#[derive(Debug, Clone)]
pub struct DfsOptions {
    /// Bytes one file may buffer before everything it holds is uploaded (default 64 MiB).
    pub file_buffer_limit: u64,
    /// Bytes all files together may buffer before a writer uploads its buffer (default 256 MiB).
    pub buffer_limit: u64,
    /// Block uploads running at once per commit (default 8).
    pub upload_parallelism: usize,
    /// A commit that leaves a chunk with this many slices or more has the chunk merged in the
    /// background (default 16; 0 = never).
    pub compact_slices: u64,
    /// A commit keeps pieces of at most this many bytes in the metadata instead of uploading
    /// them as block objects (default 64 KiB; 0 = never): a small file's close(2) is then one
    /// metadata transaction, no object PUT.
    pub inline_max: u64,
    /// Bytes of recently read blocks kept in memory, so that the reads of one block's pieces
    /// fetch it once (default 64 MiB; 0 = none).
    pub recent_blocks: u64,
    /// A mount whose heartbeat stopped this long ago is expired by the others: its locks are
    /// released (default 30 s; it beats every quarter of this).
    pub session_timeout: std::time::Duration,
    /// Put every block this mount uploads or fetches into the block cache. Off (the default),
    /// two kinds of blocks skip it: the full blocks a writer uploads (only partial ones, small
    /// files and file ends, are kept), and the blocks a sequential reader fetches past a file's
    /// first chunk (64 MiB). Large files written or streamed once are seldom read again from
    /// the disk cache (the kernel's page cache keeps what was just written or read), a stream
    /// would evict the cache's working set, and each cached byte costs a copy into the local
    /// file system's page cache: measured, half of the daemon's CPU for a 1 GiB write and
    /// 60 % for a 1 GiB read.
    pub cache_all: bool,
}

impl Default for DfsOptions {
    fn default() -> Self {
        DfsOptions {
            file_buffer_limit: 64 << 20,
            buffer_limit: 256 << 20,
            upload_parallelism: 8,
            compact_slices: 16,
            inline_max: 64 << 10,
            recent_blocks: crate::recent::DEFAULT_RECENT_BYTES,
            session_timeout: std::time::Duration::from_secs(30),
            cache_all: false,
        }
    }
}

type Writer = Arc<tokio::sync::Mutex<FileWriter>>;

/// The distributed file system of one mount.
pub struct DfsFs {
    /// Metadata, block store and block cache (cloned into compaction's tasks).
    engines: data::Engines,
    opts: DfsOptions,
    /// Write buffers of inodes that have (or had) pending data.
    writers: Mutex<HashMap<u64, Writer>>,
    /// The kernel's lookup count per inode.
    lookups: coherence::Lookups,
    /// The session and the other mounts' changes.
    coherence: Arc<coherence::Coherence>,
    /// File handles for OPEN and CREATE (OFD locks are released per handle).
    next_fh: AtomicU64,
    /// Inodes this mount took locks on (FLUSH and RELEASE of others skip the database).
    locked: Mutex<HashSet<u64>>,
    /// Inodes whose last name went while the kernel still knew them: deleted at FORGET.
    unlinked: Mutex<HashSet<u64>>,
    /// Bytes buffered by all writers.
    buffered: AtomicU64,
    /// Number of commits so far (see [`DfsFs::with_pending`]).
    commits: AtomicU64,
    /// Background compaction of fragmented chunks.
    compaction: Arc<compact::Background>,
    /// Where the last READ of each recently read inode ended (sequential readers get the
    /// next block fetched ahead).
    read_ends: Mutex<HashMap<u64, u64>>,
    /// Open handles per inode (OPEN and CREATE, until RELEASE).
    open_handles: Mutex<HashMap<u64, u32>>,
    /// Woken at every RELEASE.
    handles_released: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ts(ns: i64) -> Timespec {
    Timespec { sec: ns.div_euclid(1_000_000_000), nsec: ns.rem_euclid(1_000_000_000) as u32 }
}

/// Nanoseconds since the epoch of a fusebox timestamp.
fn ns(t: Timespec) -> i64 {
    t.sec.saturating_mul(1_000_000_000).saturating_add(t.nsec as i64)
}

/// `a` (as committed) with what `w` buffers on top: a larger size, a newer mtime.
fn with_buffered(mut a: Attr, w: &FileWriter) -> Attr {
    a.size = a.size.max(w.end());
    if let Some(t) = w.mtime_ns() {
        a.mtime_ns = t;
        a.ctime_ns = t;
    }
    a
}

/// The attributes the kernel sees.
fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: a.ino,
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: ts(a.atime_ns),
        mtime: ts(a.mtime_ns),
        ctime: ts(a.ctime_ns),
        mode: a.mode,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 1 << 16,
    }
}

impl DfsFs {
    /// A file system on `meta` and `blobs`, caching blocks in `cache` if given.
    pub fn new(
        meta: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>, cache: Option<BlockCache>, opts: DfsOptions,
    ) -> DfsFs {
        let lookups = coherence::Lookups::default();
        DfsFs {
            coherence: coherence::Coherence::new(meta.clone(), lookups.clone(), opts.session_timeout),
            lookups,
            next_fh: AtomicU64::new(1),
            locked: Mutex::new(HashSet::new()),
            engines: data::Engines {
                meta,
                blobs,
                cache: cache.map(Arc::new),
                upload_parallelism: opts.upload_parallelism,
                inline_max: opts.inline_max,
                cache_all: opts.cache_all,
                recent: Arc::new(crate::recent::RecentBlocks::new(opts.recent_blocks)),
            },
            opts,
            writers: Mutex::new(HashMap::new()),
            unlinked: Mutex::new(HashSet::new()),
            buffered: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            read_ends: Mutex::new(HashMap::new()),
            open_handles: Mutex::new(HashMap::new()),
            handles_released: tokio::sync::Notify::new(),
            compaction: compact::Background::new(),
        }
    }

    /// The metadata engine.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.engines.meta
    }

    /// A short metadata read (a lookup, a getattr), run on the calling thread when that costs
    /// no runtime thread: always when the engine is local (SQLite: tens of microseconds from
    /// memory, less than the wakeup of a blocking-pool thread), and for a network engine when
    /// the request is being polled on the session worker that read it, outside any task (the
    /// async adapter's first poll): that worker may block like any synchronous handler, and
    /// the hops to a blocking-pool thread and back to a runtime thread are two wake-ups the
    /// caller would wait for. Otherwise (inside a runtime task) on the blocking pool.
    async fn m_read<T: Send + 'static>(
        &self, f: impl FnOnce(&dyn MetaStore) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, Errno> {
        if self.engines.meta.reads_are_local() || tokio::task::try_id().is_none() {
            return f(&*self.engines.meta).map_err(|e| e.errno());
        }
        self.m(f).await
    }

    /// Run a metadata operation on the blocking pool.
    async fn m<T: Send + 'static>(
        &self, f: impl FnOnce(&dyn MetaStore) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, Errno> {
        self.engines.m(f).await
    }

    /// Count one kernel lookup of `a` and make its entry.
    fn entry(&self, a: &Attr) -> Entry {
        *lock(&self.lookups).entry(a.ino).or_insert(0) += 1;
        Entry { ino: NodeId(a.ino), generation: a.generation, attr: file_attr(a) }
    }

    /// The writer of `ino`, if it has one.
    fn writer(&self, ino: u64) -> Option<Writer> {
        lock(&self.writers).get(&ino).cloned()
    }

    /// The writer of `ino`, created if needed.
    fn writer_or_new(&self, ino: u64) -> Writer {
        lock(&self.writers).entry(ino).or_default().clone()
    }

    /// The commit counter, read before fetching attributes that go through
    /// [`DfsFs::with_pending`].
    fn commit_count(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Attributes `a` (read from the metadata after [`DfsFs::commit_count`] returned `commits`)
    /// with what the inode's write buffer adds (size and mtime not committed yet).
    ///
    /// A WRITE the kernel saw complete is either in the buffer or committed. If a commit fell
    /// between the metadata read and this check (and RELEASE then dropped the buffer), `a` would
    /// show neither and the kernel would take a stale size: so with a buffer, or after any
    /// commit since the read, the attributes are read again (with the buffer held).
    async fn with_pending(&self, a: Attr, commits: u64) -> Result<Attr, Errno> {
        let ino = a.ino;
        let Some(w) = self.writer(ino) else {
            if self.commit_count() == commits {
                return Ok(a);
            }
            return self.m_read(move |m| m.getattr(ino)).await;
        };
        let w = w.lock().await;
        let a = self.m(move |m| m.getattr(ino)).await?;
        Ok(with_buffered(a, &w))
    }

    /// `ino` lost a name and now has `nlink`: delete it now if nobody knows it, or at FORGET.
    async fn after_unlink(&self, ino: u64, nlink: u32) {
        if nlink > 0 {
            return;
        }
        let known = lock(&self.lookups).get(&ino).is_some_and(|n| *n > 0);
        if known {
            lock(&self.unlinked).insert(ino);
        } else {
            self.delete_orphan(ino).await;
        }
    }

    /// Delete an inode without names (its blocks become garbage for `fusebox dfs gc`).
    async fn delete_orphan(&self, ino: u64) {
        if let Some(w) = lock(&self.writers).remove(&ino) {
            if let Ok(mut w) = w.try_lock() {
                self.release_buffered(w.buffered());
                w.discard();
            }
        }
        lock(&self.unlinked).remove(&ino);
        if let Err(e) = self.m(move |m| m.remove_if_orphan(ino)).await {
            tracing::warn!(ino, errno = e.0, "deleting an unlinked inode failed (left for the next mount)");
        }
    }

    /// The kernel forgot `n` lookups of `ino`.
    async fn do_forget(&self, ino: u64, n: u64) {
        let gone = {
            let mut l = lock(&self.lookups);
            match l.get_mut(&ino) {
                Some(c) if *c > n => {
                    *c -= n;
                    false
                }
                Some(_) => {
                    l.remove(&ino);
                    self.coherence.forgotten(ino);
                    lock(&self.locked).remove(&ino);
                    true
                }
                None => false,
            }
        };
        if gone && lock(&self.unlinked).contains(&ino) {
            self.delete_orphan(ino).await;
        }
    }
}

#[cfg(test)]
mod tests;
