//! Compaction: a chunk written in many sessions is made of many slices, and every read of it
//! has to fetch and overlay them all. Compaction reads what the chunk shows, writes it as new
//! block objects (one slice per contiguous extent, holes stay holes) and swaps the slice list
//! in one metadata transaction, only if nobody changed the chunk meanwhile
//! ([`MetaStore::replace_slices`](crate::meta::MetaStore::replace_slices)); otherwise the new
//! objects are garbage for `fusebox dfs gc`. Old objects stay until gc's grace period, so a
//! read that planned with the old list still finds its blocks.
//!
//! A mount compacts in the background: after a commit leaves a chunk with
//! [`DfsOptions::compact_slices`](super::DfsOptions::compact_slices) slices or more, one task
//! at a time merges it, when that is worth a rewrite ([`worth_merging`]: not for the whole
//! blocks a sequential write leaves). `fusebox dfs compact` does the same for a whole file
//! system.

use super::data::{check_slice, Engines};
use super::DfsFs;
use crate::layout::{block_len, block_segments, visible, Layer, Piece, BLOCK_SIZE, CHUNK_SIZE};
use crate::meta::SliceRef;
use crate::writer::PendingData;
use bytes::{Bytes, BytesMut};
use fusebox::fs::Errno;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// What a compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Chunks merged.
    pub chunks: u64,
    /// Slices those chunks had before.
    pub slices_before: u64,
    /// Slices they have now.
    pub slices_after: u64,
    /// Bytes written as new block objects.
    pub bytes: u64,
    /// Chunks left alone because they changed while being merged (a commit, a truncation).
    pub raced: u64,
}

/// The mount's background compaction: which chunks are being merged, and one merge at a time.
pub(super) struct Background {
    /// Chunks a task is working on; `true` when a commit touched the chunk meanwhile, so the
    /// task looks at it once more before it stops (a later commit's trigger is never lost).
    busy: Mutex<HashMap<(u64, u64), bool>>,
    gate: tokio::sync::Semaphore,
}

impl Background {
    pub(super) fn new() -> Arc<Background> {
        Arc::new(Background { busy: Mutex::new(HashMap::new()), gate: tokio::sync::Semaphore::new(1) })
    }

    /// Claim `key` for a task; false (and the claimant told to look again) if one has it.
    fn claim(&self, key: (u64, u64)) -> bool {
        let mut busy = super::lock(&self.busy);
        match busy.get_mut(&key) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                busy.insert(key, false);
                true
            }
        }
    }

    /// The task is done with `key`, unless a commit asked it to look again.
    fn release_unless_touched(&self, key: (u64, u64)) -> bool {
        let mut busy = super::lock(&self.busy);
        if busy.get(&key) == Some(&true) {
            busy.insert(key, false);
            return false;
        }
        busy.remove(&key);
        true
    }
}

/// Whether merging a chunk's slices `old` (whose visible `pieces` these are) into one slice per
/// contiguous extent is worth rewriting the chunk: it must make fewer metadata rows, and then
/// either drop bytes that no longer show (overwritten), or fold at least two slices that are
/// not whole runs of full blocks (small commits, each its own row, object or inline bytes). A
/// sequential write stores a chunk as one full block per slice (and maybe a short tail):
/// merging that would download and upload every byte for the same blocks, so it stays.
fn worth_merging(old: &[SliceRef], pieces: &[Piece]) -> bool {
    let extents = 1 + pieces.windows(2).filter(|w| w[0].pos + w[0].len != w[1].pos).count();
    if pieces.is_empty() || extents >= old.len() {
        return false;
    }
    let shown: u64 = pieces.iter().map(|p| p.len).sum();
    let referenced: u64 = old.iter().map(|r| r.len).sum();
    let whole_blocks = |r: &SliceRef| {
        r.data.is_none() && r.off == 0 && r.len == r.slice_size && r.slice_size.is_multiple_of(BLOCK_SIZE)
    };
    referenced > shown || old.iter().filter(|r| !whole_blocks(r)).count() >= 2
}

/// The outcome of one chunk.
enum Merged {
    /// Replaced `before` slices by `after`, writing `bytes`.
    Done { before: u64, after: u64, bytes: u64 },
    /// The chunk changed meanwhile; nothing replaced.
    Raced,
    /// Merging would gain nothing worth rewriting the chunk ([`worth_merging`]).
    Compact,
}

impl Engines {
    /// Merge chunk `chunk` of `ino` into one slice per contiguous extent.
    async fn merge_chunk(&self, ino: u64, chunk: u64) -> Result<Merged, Errno> {
        let old: Vec<SliceRef> = self.m(move |m| m.slices(ino, chunk)).await?;
        let layers: Vec<Layer> = old
            .iter()
            .enumerate()
            .map(|(source, r)| Layer { pos: r.pos, len: r.len, off: r.off, source })
            .collect();
        // Contiguous runs of visible pieces become one new slice each.
        let pieces = visible(&layers, 0, CHUNK_SIZE);
        if !worth_merging(&old, &pieces) {
            return Ok(Merged::Compact);
        }
        let mut runs: Vec<(u64, BytesMut)> = Vec::new();
        for p in pieces {
            let r = &old[p.source];
            check_slice(ino, chunk, r)?;
            let mut bytes = BytesMut::with_capacity(p.len as usize);
            match &r.data {
                Some(d) => bytes.extend_from_slice(&d[p.off as usize..(p.off + p.len) as usize]),
                None => {
                    for (index, from, n) in block_segments(p.off, p.len) {
                        // Not cached: the merged blocks replace it.
                        let len = block_len(r.slice_size, index);
                        let block = self.block(r.slice_id, index, len, false).await?;
                        bytes.extend_from_slice(&block[from..from + n]);
                    }
                }
            }
            match runs.last_mut() {
                Some((pos, data)) if *pos + data.len() as u64 == p.pos => data.extend_from_slice(&bytes),
                _ => runs.push((p.pos, bytes)),
            }
        }
        let pending: Vec<PendingData> =
            runs.into_iter().map(|(pos, data)| PendingData { chunk, pos, data: Bytes::from(data) }).collect();
        let bytes: u64 = pending.iter().map(|p| p.data.len() as u64).sum();
        let new = self.upload(&pending).await?;
        let after = new.len() as u64;
        let before = old.len() as u64;
        if self.m(move |m| m.replace_slices(ino, chunk, &old, &new)).await? {
            Ok(Merged::Done { before, after, bytes })
        } else {
            Ok(Merged::Raced)
        }
    }

    /// Merge every chunk with at least `min_slices` slices, most fragmented first.
    pub(crate) async fn compact_all(&self, min_slices: u64) -> Result<CompactReport, Errno> {
        let mut report = CompactReport::default();
        let mut seen = HashSet::new();
        loop {
            let batch = self.m(move |m| m.fragmented_chunks(min_slices.max(2), 64)).await?;
            // A chunk that raced (or stays fragmented) is not tried again in this pass.
            let fresh: Vec<(u64, u64)> = batch.into_iter().filter(|c| seen.insert(*c)).collect();
            if fresh.is_empty() {
                return Ok(report);
            }
            for (ino, chunk) in fresh {
                match self.merge_chunk(ino, chunk).await? {
                    Merged::Done { before, after, bytes } => {
                        report.chunks += 1;
                        report.slices_before += before;
                        report.slices_after += after;
                        report.bytes += bytes;
                    }
                    Merged::Raced => report.raced += 1,
                    Merged::Compact => {}
                }
            }
        }
    }
}

impl DfsFs {
    /// Merge every chunk of the file system that has `min_slices` slices or more
    /// (`fusebox dfs compact`). Safe while mounts are live.
    pub async fn compact_all(&self, min_slices: u64) -> Result<CompactReport, Errno> {
        self.engines().compact_all(min_slices).await
    }

    /// After a commit to `chunks` of `ino`: merge those that reached the threshold, in a task
    /// of its own (one at a time per mount), so the commit and its close(2) do not wait.
    pub(super) fn compact_later(&self, ino: u64, chunks: Vec<u64>) {
        let threshold = self.opts.compact_slices;
        if threshold == 0 || chunks.is_empty() {
            return;
        }
        let (engines, background) = (self.engines().clone(), self.compaction.clone());
        tokio::spawn(async move {
            for chunk in chunks {
                if !background.claim((ino, chunk)) {
                    continue;
                }
                loop {
                    let result = async {
                        let n = engines.m(move |m| m.slices(ino, chunk)).await?.len() as u64;
                        if n < threshold {
                            return Ok(None);
                        }
                        let _turn = background.gate.acquire().await.map_err(|_| Errno::EIO)?;
                        engines.merge_chunk(ino, chunk).await.map(Some)
                    }
                    .await;
                    match result {
                        Ok(Some(Merged::Done { before, after, bytes })) => {
                            tracing::debug!(ino, chunk, before, after, bytes, "compacted")
                        }
                        Ok(Some(Merged::Raced)) => tracing::debug!(ino, chunk, "compaction raced a commit"),
                        Ok(Some(Merged::Compact)) | Ok(None) => {}
                        // The chunk keeps its slices; a later commit tries again.
                        Err(e) => tracing::warn!(ino, chunk, error = %e, "compaction failed"),
                    }
                    // A commit that came meanwhile (the one a race lost to, say) gets its look.
                    if background.release_unless_touched((ino, chunk)) {
                        break;
                    }
                }
            }
        });
    }
}
