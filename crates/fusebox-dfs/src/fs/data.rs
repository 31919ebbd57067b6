//! The data path: buffered WRITEs, commits, READs assembled from slices.
//!
//! Commit order (crash safety): a commit first uploads every block of the new slices and waits
//! for all of them, and only then runs the one metadata transaction that adds the slices, the
//! new size and mtime and bumps the inode version. A crash between the two leaves objects no
//! metadata refers to (garbage for `fusebox dfs gc`), never metadata that refers to a missing
//! object. Blocks are never overwritten: every upload gets a fresh slice id.

use super::{lock, DfsFs, Writer};
use crate::cache::BlockCache;
use crate::layout::{
    block_key, block_len, block_segments, blocks_covering, visible, Layer, Piece, BLOCK_SIZE, CHUNK_SIZE,
};
use crate::meta::store::now_ns;
use crate::meta::MetaStore;
use crate::meta::{Attr, NewSlice, SliceRef};
use crate::recent::RecentBlocks;
use crate::writer::{FileWriter, PendingData};
use crate::{BlobStore, MetaError};
use bytes::Bytes;
use fusebox::fs::asyncfs::ReadData;
use fusebox::fs::Errno;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Where the bytes of a read layer come from.
enum Source {
    /// Block objects of a slice holding `size` bytes.
    Stored { slice_id: u64, size: u64 },
    /// The write buffer, or a slice's bytes kept in the metadata.
    Memory(Bytes),
}

impl Source {
    /// Where the bytes of slice `slice_id` (`size` bytes; `data` when kept in the metadata) are.
    fn of(slice_id: u64, size: u64, data: Option<Bytes>) -> Source {
        match data {
            Some(d) => Source::Memory(d),
            None => Source::Stored { slice_id, size },
        }
    }
}

/// The stored blocks `pieces` read, once each: (slice id, block index) and the block's length.
fn stored_blocks(pieces: &[Piece], sources: &[Source]) -> HashMap<(u64, u64), u64> {
    let mut blocks = HashMap::new();
    for p in pieces {
        if let Source::Stored { slice_id, size } = sources[p.source] {
            for index in blocks_covering(p.off, p.len) {
                blocks.insert((slice_id, index), block_len(size, index));
            }
        }
    }
    blocks
}

/// How far ahead of a sequential reader its blocks are fetched.
const READ_AHEAD: u64 = 8 * BLOCK_SIZE;

/// How far behind the furthest read of a file a READ may start and still count as part of a
/// sequential run (the kernel's READs of one run arrive in any order).
const SEQUENTIAL_WINDOW: u64 = 16 << 20;

/// How many inodes' last read end is remembered for read-ahead of blocks.
const READ_ENDS_KEPT: usize = 1024;

/// Stored metadata is input too: a slice reaching past its data or its chunk would make a copy
/// out of its blocks index out of bounds. EIO (and a log line) for such a slice.
pub(super) fn check_slice(ino: u64, chunk: u64, r: &SliceRef) -> Result<(), Errno> {
    if r.off.checked_add(r.len).is_none_or(|e| e > r.slice_size)
        || r.pos.checked_add(r.len).is_none_or(|e| e > CHUNK_SIZE)
        || r.data.as_ref().is_some_and(|d| d.len() as u64 != r.slice_size)
    {
        let (id, pos, off, len, size) = (r.slice_id, r.pos, r.off, r.len, r.slice_size);
        tracing::error!(ino, chunk, id, pos, off, len, size, kept = ?r.data.as_ref().map(|d| d.len()), "corrupt slice in the metadata");
        return Err(Errno::EIO);
    }
    Ok(())
}

/// Whether blocks of the chunk at file offset `chunk_base`, read by a reader that is
/// `sequential` or not, are a stream's: past a file's first chunk. They skip the disk cache
/// unless [`Engines::cache_all`] (see [`super::DfsOptions::cache_all`]).
fn streamed(sequential: bool, chunk_base: u64) -> bool {
    sequential && chunk_base >= CHUNK_SIZE
}

/// The stores data operations use, cheap to clone into a task of its own.
#[derive(Clone)]
pub(crate) struct Engines {
    /// Metadata.
    pub meta: Arc<dyn MetaStore>,
    /// Block objects.
    pub blobs: Arc<dyn BlobStore>,
    /// The local block cache.
    pub cache: Option<Arc<BlockCache>>,
    /// Block uploads running at once.
    pub upload_parallelism: usize,
    /// Pieces of a commit up to this many bytes are kept in the metadata, not uploaded.
    pub inline_max: u64,
    /// Every block goes into the block cache, see [`super::DfsOptions::cache_all`].
    pub cache_all: bool,
    /// Blocks read lately, in memory.
    pub recent: Arc<RecentBlocks>,
}

impl Engines {
    /// Run a metadata operation on the blocking pool.
    pub(crate) async fn m<T: Send + 'static>(
        &self, f: impl FnOnce(&dyn MetaStore) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, Errno> {
        let meta = self.meta.clone();
        match tokio::task::spawn_blocking(move || f(&*meta)).await {
            Ok(r) => r.map_err(|e| e.errno()),
            Err(e) => {
                tracing::error!(error = %e, "metadata task failed");
                Err(Errno::EIO)
            }
        }
    }

    /// New slices for `pending`, a slice id each, every one holding its bytes.
    pub(crate) async fn plan(&self, pending: &[PendingData]) -> Result<Vec<NewSlice>, Errno> {
        let mut slices = Vec::with_capacity(pending.len());
        for p in pending {
            let slice_id = self.m(|m| m.new_slice_id()).await?;
            let len = p.data.len() as u64;
            slices.push(NewSlice { chunk: p.chunk, pos: p.pos, slice_id, len, data: Some(p.data.clone()) });
        }
        Ok(slices)
    }

    /// True for a slice whose bytes go into the metadata with the commit (at most
    /// [`Engines::inline_max`] bytes), not into block objects.
    pub(crate) fn kept_inline(&self, s: &NewSlice) -> bool {
        s.len <= self.inline_max
    }

    /// Store the blocks of `slices` (those holding their bytes), all in parallel; partial
    /// blocks (and full ones with [`Engines::cache_all`]) also into the block cache.
    pub(crate) async fn put_slices(&self, slices: &[NewSlice]) -> Result<(), Errno> {
        let mut jobs = Vec::new();
        for s in slices {
            let Some(data) = &s.data else { continue };
            for index in 0..s.len.div_ceil(BLOCK_SIZE) {
                let at = (index * BLOCK_SIZE) as usize;
                jobs.push((
                    block_key(s.slice_id, index),
                    data.slice(at..at + block_len(s.len, index) as usize),
                ));
            }
        }
        futures::stream::iter(jobs)
            .map(|(key, data)| async move {
                self.blobs.put(key.clone(), data.clone()).await.map_err(|e| {
                    tracing::error!(key, error = %e, "block upload failed");
                    Errno::EIO
                })?;
                // The local copy is an optimisation: written in the background, so a commit
                // (and the close(2) waiting for it) does not wait for a second disk write.
                let cached = self.cache_all || (data.len() as u64) < BLOCK_SIZE;
                if let Some(c) = self.cache.as_ref().filter(|_| cached) {
                    let c = c.clone();
                    tokio::spawn(async move { c.put(&key, data).await });
                }
                Ok::<(), Errno>(())
            })
            .buffer_unordered(self.upload_parallelism.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Upload `pending` as new slices (one slice id each; all blocks in parallel, also into
    /// the block cache). Returns the slices to commit: a piece of at most
    /// [`Engines::inline_max`] bytes is not uploaded, its bytes go into the metadata.
    pub(crate) async fn upload(&self, pending: &[PendingData]) -> Result<Vec<NewSlice>, Errno> {
        let mut slices = self.plan(pending).await?;
        let stored: Vec<NewSlice> = slices.iter().filter(|s| !self.kept_inline(s)).cloned().collect();
        self.put_slices(&stored).await?;
        for s in &mut slices {
            if !self.kept_inline(s) {
                s.data = None;
            }
        }
        Ok(slices)
    }

    /// One block: kept in memory from a recent read, else from the disk cache or the store
    /// (then put into the disk cache if `keep`, or always with [`Engines::cache_all`]),
    /// fetched once for all concurrent asks.
    pub(crate) async fn block(
        &self, slice_id: u64, index: u64, len: u64, keep: bool,
    ) -> Result<Bytes, Errno> {
        let key = block_key(slice_id, index);
        let keep = keep || self.cache_all;
        self.recent.get_or_fetch(&key, || self.fetch_block(key.clone(), len, keep)).await
    }

    /// One block from the disk cache or the store (then cached if `keep`).
    async fn fetch_block(&self, key: String, len: u64, keep: bool) -> Result<Bytes, Errno> {
        if let Some(c) = &self.cache {
            if let Some(b) = c.get(&key).await {
                if b.len() as u64 == len {
                    return Ok(b);
                }
            }
        }
        let b = self.blobs.get(key.clone()).await.map_err(|e| {
            tracing::error!(key, error = %e, "block read failed");
            Errno::EIO
        })?;
        if (b.len() as u64) != len {
            tracing::error!(key, expected = len, got = b.len(), "block has the wrong size");
            return Err(Errno::EIO);
        }
        // The local copy is written in the background, as at upload: the READ waiting for
        // this block does not wait for a disk write too.
        if let Some(c) = self.cache.as_ref().filter(|_| keep) {
            let (c, data) = (c.clone(), b.clone());
            tokio::spawn(async move { c.put(&key, data).await });
        }
        Ok(b)
    }
}

impl DfsFs {
    fn account(&self, before: u64, after: u64) {
        if after >= before {
            self.buffered.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.release_buffered(before - after);
        }
    }

    pub(super) fn release_buffered(&self, n: u64) {
        let _ =
            self.buffered.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(n)));
    }

    /// The stores (compaction clones them into tasks of its own).
    pub(super) fn engines(&self) -> &Engines {
        &self.engines
    }

    async fn upload(&self, pending: &[PendingData]) -> Result<Vec<NewSlice>, Errno> {
        self.engines.upload(pending).await
    }

    /// Buffer a WRITE; full blocks (and everything, when the buffers are over their limits)
    /// are uploaded at once.
    pub(super) async fn do_write(
        &self, ino: u64, offset: u64, data: &[u8], writeback: bool,
    ) -> Result<(), Errno> {
        offset.checked_add(data.len() as u64).filter(|e| *e <= i64::MAX as u64).ok_or(Errno::EFBIG)?;
        let w = self.writer_or_new(ino);
        let mut w = w.lock().await;
        let before = w.buffered();
        // With the write-back cache the kernel owns mtime and sends it with SETATTR.
        w.write(offset, data, (!writeback).then(now_ns));
        self.account(before, w.buffered());
        let mut spill = w.take_full_blocks();
        let over_limit = w.buffered() > self.opts.file_buffer_limit
            || self.buffered.load(Ordering::Relaxed) > self.opts.buffer_limit;
        if over_limit {
            spill.extend(w.take_all());
        }
        if !spill.is_empty() {
            let slices = match self.engines.plan(&spill).await {
                Ok(s) => s,
                Err(e) => {
                    w.restore(spill);
                    return Err(e);
                }
            };
            for s in slices {
                if self.engines.kept_inline(&s) {
                    self.release_buffered(s.len);
                    w.add_spilled(s);
                    continue;
                }
                // Uploaded in the background: this WRITE (and the next ones) need not wait.
                let (engines, slice) = (self.engines.clone(), s.clone());
                let upload =
                    tokio::spawn(async move { engines.put_slices(std::slice::from_ref(&slice)).await });
                w.add_uploading(s, upload);
            }
        }
        // At most `upload_parallelism` slices of a file in flight; none above the memory limits.
        let in_flight = if over_limit { 0 } else { self.opts.upload_parallelism.max(1) };
        while w.uploads() > in_flight {
            self.finish_oldest_upload(&mut w).await?;
        }
        Ok(())
    }

    /// Wait for the oldest background upload of `w` and confirm it; a failed one is tried once
    /// more here. When that fails too, the slice stays (with its bytes) for the next try and
    /// the request that waited gets the error: nothing written is lost.
    async fn finish_oldest_upload(&self, w: &mut FileWriter) -> Result<(), Errno> {
        let Some((slice_id, upload)) = w.take_oldest_upload() else { return Ok(()) };
        let stored = match upload {
            Some(task) => task.await.unwrap_or(Err(Errno::EIO)).is_ok(),
            None => false,
        };
        if !stored {
            let slice = w.spilled_slice(slice_id).cloned();
            if let Err(e) = self.engines.put_slices(slice.as_slice()).await {
                w.upload_failed();
                return Err(e);
            }
        }
        let freed = w.confirm_upload();
        self.release_buffered(freed);
        Ok(())
    }

    /// Commit the write buffer of `ino`, if it has one (FLUSH, FSYNC, RELEASE).
    pub(super) async fn commit(&self, ino: u64) -> Result<(), Errno> {
        let Some(w) = self.writer(ino) else { return Ok(()) };
        let mut w = w.lock().await;
        self.commit_locked(ino, &mut w).await
    }

    /// Commit a write buffer whose lock the caller holds: upload what is buffered, then one
    /// metadata transaction (see the module doc for why in this order). On failure nothing is
    /// lost: unsent bytes stay buffered, uploaded slices stay pending for the next commit.
    pub(super) async fn commit_locked(&self, ino: u64, w: &mut FileWriter) -> Result<(), Errno> {
        if w.is_clean() {
            return Ok(());
        }
        while w.uploads() > 0 {
            self.finish_oldest_upload(w).await?;
        }
        let pending = w.take_all();
        let bytes: u64 = pending.iter().map(|p| p.data.len() as u64).sum();
        let uploaded = match self.upload(&pending).await {
            Ok(s) => s,
            Err(e) => {
                w.restore(pending);
                return Err(e);
            }
        };
        self.release_buffered(bytes);
        uploaded.into_iter().for_each(|s| w.add_spilled(s));
        let slices = w.spilled().to_vec();
        let (end, mtime) = (w.end(), w.mtime_ns());
        let n = slices.len();
        let mut chunks: Vec<u64> = slices.iter().map(|s| s.chunk).collect();
        chunks.dedup();
        // Kept attributes of size 0 (from the create, or a read, with no commit since): the
        // file had no slices, so its chunks now have this commit's only.
        let was_empty = self.coherence.kept_attr(ino).is_some_and(|a| a.size == 0);
        let committed = self.m(move |m| m.commit(ino, &slices, end, mtime)).await;
        self.coherence.drop_kept_attr(ino);
        committed?;
        self.commits.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(ino, slices = n, end, "committed");
        w.committed();
        if !was_empty || n as u64 >= self.opts.compact_slices {
            self.compact_later(ino, chunks);
        }
        Ok(())
    }

    /// Drop the write buffer of `ino` when it holds nothing and nobody else has it in hand
    /// (after RELEASE). A WRITE through another open file of the inode may have taken the
    /// buffer from the map and not locked it yet: it holds a reference, so the count tells.
    /// (Removing it then lost that WRITE: it went into a buffer no FLUSH would find.)
    pub(super) fn drop_writer_if_clean(&self, ino: u64) {
        let mut writers = lock(&self.writers);
        let unused = writers
            .get(&ino)
            .is_some_and(|w: &Writer| Arc::strong_count(w) == 1 && w.try_lock().is_ok_and(|w| w.is_clean()));
        if unused {
            writers.remove(&ino);
        }
    }

    async fn block(&self, slice_id: u64, index: u64, len: u64, keep: bool) -> Result<Bytes, Errno> {
        self.engines.block(slice_id, index, len, keep).await
    }

    /// True when a read of `[offset, end)` of `ino` starts near where reads of it reached so
    /// far (a sequential reader: the kernel has several of its READs in flight, and they may
    /// come in any order); remembers how far they reached. Kept for the most recent inodes only.
    fn read_is_sequential(&self, ino: u64, offset: u64, end: u64) -> bool {
        let mut ends = lock(&self.read_ends);
        if ends.len() >= READ_ENDS_KEPT && !ends.contains_key(&ino) {
            ends.clear();
        }
        let reached = ends.get(&ino).copied();
        let sequential =
            reached.is_some_and(|r| offset <= r && r.saturating_sub(offset) <= SEQUENTIAL_WINDOW);
        ends.insert(ino, if sequential { reached.unwrap_or(end).max(end) } else { end });
        sequential
    }

    /// The slice list of chunk `chunk` of `ino`: as kept from an earlier read (see
    /// [`super::coherence`]), else from the metadata (then kept).
    async fn slices_of(&self, ino: u64, chunk: u64) -> Result<Arc<Vec<SliceRef>>, Errno> {
        if let Some(kept) = self.coherence.kept_slices(ino, chunk) {
            return Ok(kept);
        }
        let gen = self.coherence.kept_attrs_gen();
        let slices = Arc::new(self.m(move |m| m.slices(ino, chunk)).await?);
        self.coherence.keep_slices(ino, chunk, slices.clone(), gen);
        Ok(slices)
    }

    /// The attributes of `ino`: as kept (see [`super::coherence`]), else from the metadata
    /// (then kept).
    async fn attr_of(&self, ino: u64) -> Result<Attr, Errno> {
        if let Some(kept) = self.coherence.kept_attr(ino) {
            return Ok(kept);
        }
        let gen = self.coherence.kept_attrs_gen();
        let a = self.m(move |m| m.getattr(ino)).await?;
        self.coherence.keep_attr(a.clone(), gen);
        Ok(a)
    }

    /// Which bytes of `[offset, end)` of `ino` come from where: per chunk, its start, the visible
    /// pieces and their sources (committed slices, then `w`'s spilled slices and buffer).
    async fn plan_read(
        &self, ino: u64, offset: u64, end: u64, w: Option<&FileWriter>,
    ) -> Result<Vec<(u64, Vec<Piece>, Vec<Source>)>, Errno> {
        let mut plan = Vec::new();
        for chunk in offset / CHUNK_SIZE..=(end - 1) / CHUNK_SIZE {
            let base = chunk * CHUNK_SIZE;
            let (s, e) = (offset.max(base) - base, end.min(base + CHUNK_SIZE) - base);
            let refs = self.slices_of(ino, chunk).await?;
            let mut sources = Vec::new();
            let mut layers = Vec::new();
            for r in refs.iter() {
                check_slice(ino, chunk, r)?;
                layers.push(Layer { pos: r.pos, len: r.len, off: r.off, source: sources.len() });
                sources.push(Source::of(r.slice_id, r.slice_size, r.data.clone()));
            }
            if let Some(w) = w {
                for sp in w.spilled().iter().filter(|sp| sp.chunk == chunk) {
                    layers.push(Layer { pos: sp.pos, len: sp.len, off: 0, source: sources.len() });
                    sources.push(Source::of(sp.slice_id, sp.len, sp.data.clone()));
                }
                for (pos, bytes) in w.overlay(chunk, s, e) {
                    layers.push(Layer { pos, len: bytes.len() as u64, off: 0, source: sources.len() });
                    sources.push(Source::Memory(bytes));
                }
            }
            plan.push((base, visible(&layers, s, e), sources));
        }
        Ok(plan)
    }

    /// A sequential reader of `ino` reached `from`: fetch the stored blocks of the next
    /// [`READ_AHEAD`] bytes in the background, so that they are in memory when it gets there
    /// (one fetch per block, shared with the READs that want it). Slices are planned anew
    /// (they may be one block each: a file written in 1 MiB pieces spills block by block).
    async fn read_ahead(&self, ino: u64, from: u64, file_size: u64) {
        let to = from.saturating_add(READ_AHEAD).min(file_size);
        if from >= to {
            return;
        }
        let Ok(plan) = self.plan_read(ino, from, to, None).await else { return };
        for (base, pieces, sources) in plan {
            let keep = !streamed(true, base);
            for ((slice_id, index), len) in stored_blocks(&pieces, &sources) {
                let engines = self.engines.clone();
                tokio::spawn(async move { engines.block(slice_id, index, len, keep).await });
            }
        }
    }

    /// READ: `size` bytes at `offset` (fewer at end of file), committed slices overlaid with
    /// pending ones and the write buffer; holes read as zeros. Attributes and slice lists are
    /// kept between READs (see [`super::coherence`]).
    pub(super) async fn do_read(&self, ino: u64, offset: u64, size: u64) -> Result<ReadData, Errno> {
        match self.read_planned(ino, offset, size).await {
            // A kept slice list may name blocks that are gone (another mount compacted the
            // chunk, and gc ran): plan once more from the metadata.
            Err(e) if self.coherence.kept_slices(ino, offset / CHUNK_SIZE).is_some() => {
                tracing::debug!(ino, offset, error = %e, "read with kept slices failed; planning again");
                self.coherence.drop_kept_attr(ino);
                self.read_planned(ino, offset, size).await
            }
            r => r,
        }
    }

    /// [`DfsFs::do_read`], once.
    async fn read_planned(&self, ino: u64, offset: u64, size: u64) -> Result<ReadData, Errno> {
        let attr = self.attr_of(ino).await?;
        if attr.is_dir() {
            return Err(Errno::EISDIR);
        }
        if !attr.is_file() {
            return Err(Errno::EINVAL);
        }
        let writer = self.writer(ino);
        let guard = match &writer {
            Some(w) => Some(w.lock().await),
            None => None,
        };
        let file_size = attr.size.max(guard.as_ref().map_or(0, |w| w.end()));
        let end = offset.saturating_add(size).min(file_size);
        if offset >= end {
            return Ok(ReadData::new());
        }
        // Plan every chunk while holding the writer (a consistent view), fetch afterwards:
        // stored blocks are immutable.
        let plan = self.plan_read(ino, offset, end, guard.as_deref()).await?;
        drop(guard);
        let sequential = self.read_is_sequential(ino, offset, end);
        if sequential {
            self.read_ahead(ino, end, file_size).await;
        }
        // The answer is views of the blocks (and buffers) it comes from, sent with one vectored
        // write: no copy into a buffer of its own.
        let mut out = ReadData::new();
        let mut at = offset;
        for (base, pieces, sources) in plan {
            // Fetch the blocks this chunk needs, in parallel.
            let keep = !streamed(sequential, base);
            let blocks: HashMap<(u64, u64), Bytes> = futures::stream::iter(stored_blocks(&pieces, &sources))
                .map(|((id, index), len)| async move {
                    self.block(id, index, len, keep).await.map(|b| ((id, index), b))
                })
                .buffer_unordered(8)
                .try_collect()
                .await?;
            for p in pieces {
                // Holes read as zeros.
                out.push_zeros((base + p.pos - at) as usize);
                match &sources[p.source] {
                    Source::Memory(b) => out.push(b.slice(p.off as usize..(p.off + p.len) as usize)),
                    Source::Stored { slice_id, .. } => {
                        for (index, from, n) in block_segments(p.off, p.len) {
                            out.push(blocks[&(*slice_id, index)].slice(from..from + n));
                        }
                    }
                }
                at = base + p.pos + p.len;
            }
        }
        out.push_zeros((end - at) as usize);
        Ok(out)
    }
}
