//! The write buffer of one open inode: WRITEs land here and become slices at the next commit
//! (FLUSH, FSYNC, RELEASE, truncate).
//!
//! Bytes not yet uploaded are kept as disjoint *extents* (a later write overwrites an earlier
//! one in memory, adjacent writes merge), each inside one chunk. Extents that reach a full
//! block are split off as *spilled* slices, uploaded in the background and remembered until
//! the commit; later writes over a spilled range go to the extents, which commit after the
//! spilled slices and so stay on top. A spilled slice keeps its bytes until its upload is
//! confirmed (reads find them there), and a commit waits for every upload first.

use crate::layout::{BLOCK_SIZE, CHUNK_SIZE};
use crate::meta::NewSlice;
use bytes::Bytes;
use fusebox::fs::Errno;
use std::collections::{BTreeMap, VecDeque};

/// The background upload of a spilled slice's blocks.
pub type Upload = tokio::task::JoinHandle<Result<(), Errno>>;

/// A spilled slice whose upload is not confirmed yet.
#[derive(Debug)]
struct Unconfirmed {
    slice_id: u64,
    len: u64,
    /// `None`: the upload failed; it is tried again.
    upload: Option<Upload>,
}

/// Data waiting for upload: `data` goes at byte `pos` of chunk `chunk`.
#[derive(Debug, Clone)]
pub struct PendingData {
    /// Chunk index.
    pub chunk: u64,
    /// Start within the chunk.
    pub pos: u64,
    /// The bytes.
    pub data: Bytes,
}

/// The buffer of one inode.
#[derive(Debug, Default)]
pub struct FileWriter {
    /// Disjoint extents by file offset; none crosses a chunk boundary.
    extents: BTreeMap<u64, Vec<u8>>,
    /// Uploaded slices not yet committed, in upload order.
    spilled: Vec<NewSlice>,
    /// Spilled slices still uploading (or to upload again), oldest first.
    uploading: VecDeque<Unconfirmed>,
    /// End of the furthest pending write (0 when clean).
    end: u64,
    /// mtime to commit (writes without the write-back cache; with it the kernel sends times).
    mtime_ns: Option<i64>,
}

impl FileWriter {
    /// True when nothing waits for a commit.
    pub fn is_clean(&self) -> bool {
        self.extents.is_empty() && self.spilled.is_empty() && self.mtime_ns.is_none()
    }

    /// Bytes held in memory: the extents, and spilled slices not yet confirmed uploaded.
    pub fn buffered(&self) -> u64 {
        self.extents.values().map(|v| v.len() as u64).sum::<u64>()
            + self.uploading.iter().map(|u| u.len).sum::<u64>()
    }

    /// End of the furthest pending write.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Pending mtime.
    pub fn mtime_ns(&self) -> Option<i64> {
        self.mtime_ns
    }

    /// Set the mtime the next commit stores (the kernel's, sent with SETATTR under the
    /// write-back cache just before it flushes).
    pub fn set_mtime(&mut self, mtime_ns: i64) {
        self.mtime_ns = Some(mtime_ns);
    }

    /// Buffer `data` at file offset `offset`; `mtime_ns` is recorded when given.
    pub fn write(&mut self, offset: u64, data: &[u8], mtime_ns: Option<i64>) {
        let mut off = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let room = CHUNK_SIZE - off % CHUNK_SIZE;
            let n = rest.len().min(room as usize);
            self.insert(off, &rest[..n]);
            off += n as u64;
            rest = &rest[n..];
        }
        if !data.is_empty() {
            self.end = self.end.max(offset + data.len() as u64);
        }
        if mtime_ns.is_some() {
            self.mtime_ns = mtime_ns;
        }
    }

    /// Insert `data` at `s` (within one chunk), merging with overlapping or adjacent extents
    /// of the same chunk.
    fn insert(&mut self, s: u64, data: &[u8]) {
        let e = s + data.len() as u64;
        let chunk_start = s - s % CHUNK_SIZE;
        let touching: Vec<u64> = self
            .extents
            .range(chunk_start..=e.min(chunk_start + CHUNK_SIZE - 1))
            .filter(|(k, v)| **k + v.len() as u64 >= s)
            .map(|(k, _)| *k)
            .collect();
        let start = touching.first().map_or(s, |k| (*k).min(s));
        let mut buf = match touching.first() {
            Some(k) if *k == start => self.extents.remove(k).unwrap_or_default(),
            _ => Vec::new(),
        };
        for k in touching.iter().skip(if buf.is_empty() { 0 } else { 1 }) {
            let Some(v) = self.extents.remove(k) else { continue };
            let at = (k - start) as usize;
            if buf.len() < at + v.len() {
                buf.resize(at + v.len(), 0);
            }
            buf[at..at + v.len()].copy_from_slice(&v);
        }
        let at = (s - start) as usize;
        if buf.len() < at + data.len() {
            buf.resize(at + data.len(), 0);
        }
        buf[at..at + data.len()].copy_from_slice(data);
        self.extents.insert(start, buf);
    }

    /// Split off the whole, block-aligned blocks of every extent, for upload now; the pieces
    /// before and after them stay. Aligned, so that a file written in any order is stored as
    /// whole blocks (which compaction leaves alone): the kernel's write-back may send a later
    /// range first, and a block cut from where that range began would misalign every block
    /// after it, leaving two partial slices per chunk.
    pub fn take_full_blocks(&mut self) -> Vec<PendingData> {
        let full: Vec<(u64, u64, u64)> = self
            .extents
            .iter()
            .filter_map(|(&k, v)| {
                let (from, to) =
                    (k.next_multiple_of(BLOCK_SIZE), (k + v.len() as u64) / BLOCK_SIZE * BLOCK_SIZE);
                (to > from).then_some((k, from, to))
            })
            .collect();
        let mut out = Vec::new();
        for (k, from, to) in full {
            let Some(v) = self.extents.remove(&k) else { continue };
            let all = Bytes::from(v);
            let (head, tail) = ((from - k) as usize, (to - k) as usize);
            if head > 0 {
                self.extents.insert(k, all[..head].to_vec());
            }
            if tail < all.len() {
                self.extents.insert(to, all[tail..].to_vec());
            }
            out.push(PendingData {
                chunk: from / CHUNK_SIZE,
                pos: from % CHUNK_SIZE,
                data: all.slice(head..tail),
            });
        }
        out
    }

    /// Take every extent, for upload.
    pub fn take_all(&mut self) -> Vec<PendingData> {
        std::mem::take(&mut self.extents)
            .into_iter()
            .map(|(k, v)| PendingData { chunk: k / CHUNK_SIZE, pos: k % CHUNK_SIZE, data: Bytes::from(v) })
            .collect()
    }

    /// Give back extents taken by [`Self::take_all`] whose upload failed (nothing was written
    /// in between: the caller holds the writer).
    pub fn restore(&mut self, pending: Vec<PendingData>) {
        for p in pending {
            self.extents.insert(p.chunk * CHUNK_SIZE + p.pos, Vec::from(p.data));
        }
    }

    /// Remember an uploaded slice until the commit.
    pub fn add_spilled(&mut self, s: NewSlice) {
        self.spilled.push(s);
    }

    /// Remember spilled slice `s` (holding its bytes) whose blocks `upload` is uploading.
    pub fn add_uploading(&mut self, s: NewSlice, upload: Upload) {
        self.uploading.push_back(Unconfirmed { slice_id: s.slice_id, len: s.len, upload: Some(upload) });
        self.spilled.push(s);
    }

    /// Spilled slices whose upload is not confirmed yet.
    pub fn uploads(&self) -> usize {
        self.uploading.len()
    }

    /// The oldest unconfirmed slice: its id and its upload (`None`: failed before, upload it
    /// again). Pair with [`Self::confirm_upload`] or [`Self::upload_failed`].
    /// The slice stays first in the queue (and counted in [`Self::buffered`]) until then.
    pub fn take_oldest_upload(&mut self) -> Option<(u64, Option<Upload>)> {
        let u = self.uploading.front_mut()?;
        Some((u.slice_id, u.upload.take()))
    }

    /// The slice spilled with id `slice_id`, if uncommitted.
    pub fn spilled_slice(&self, slice_id: u64) -> Option<&NewSlice> {
        self.spilled.iter().find(|s| s.slice_id == slice_id)
    }

    /// The oldest unconfirmed slice's blocks are stored: it drops its bytes. Returns how many
    /// bytes that freed.
    pub fn confirm_upload(&mut self) -> u64 {
        let Some(u) = self.uploading.pop_front() else { return 0 };
        if let Some(s) = self.spilled.iter_mut().find(|s| s.slice_id == u.slice_id) {
            s.data = None;
        }
        u.len
    }

    /// The oldest unconfirmed slice's upload failed: it goes to the back of the queue, to be
    /// uploaded again (by the next WRITE that waits for uploads, or the next commit).
    pub fn upload_failed(&mut self) {
        if let Some(u) = self.uploading.pop_front() {
            self.uploading.push_back(u);
        }
    }

    /// The uploaded, uncommitted slices, in order.
    pub fn spilled(&self) -> &[NewSlice] {
        &self.spilled
    }

    /// After a successful commit: forget the committed state.
    pub fn committed(&mut self) {
        self.spilled.clear();
        self.mtime_ns = None;
        if self.extents.is_empty() {
            self.end = 0;
        }
    }

    /// Drop everything (the file is gone, or truncated to zero).
    pub fn discard(&mut self) {
        *self = FileWriter::default();
    }

    /// The pending bytes overlapping `[start, end)` of chunk `chunk`: (position in the chunk,
    /// bytes), copied.
    pub fn overlay(&self, chunk: u64, start: u64, end: u64) -> Vec<(u64, Bytes)> {
        let base = chunk * CHUNK_SIZE;
        self.extents
            .range(base..base + end)
            .filter_map(|(k, v)| {
                let (p, q) = (k - base, k - base + v.len() as u64);
                let (s, e) = (p.max(start), q.min(end));
                (s < e).then(|| (s, Bytes::copy_from_slice(&v[(s - p) as usize..(e - p) as usize])))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Apply the writer's state to a model: spilled slices are data we keep on the side.
    fn render(w: &FileWriter, spilled: &[(NewSlice, Vec<u8>)], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        for (s, d) in spilled {
            let at = (s.chunk * CHUNK_SIZE + s.pos) as usize;
            out[at..at + d.len()].copy_from_slice(d);
        }
        for (k, v) in &w.extents {
            out[*k as usize..*k as usize + v.len()].copy_from_slice(v);
        }
        out
    }

    #[test]
    fn adjacent_writes_merge_and_overwrites_win() {
        let mut w = FileWriter::default();
        w.write(0, b"aaaa", None);
        w.write(4, b"bbbb", None);
        w.write(2, b"XX", Some(5));
        assert_eq!(w.extents.len(), 1);
        assert_eq!(w.extents[&0], b"aaXXbbbb");
        w.write(20, b"c", None);
        w.write(9, b"d", None);
        assert_eq!(w.extents.len(), 3);
        assert_eq!((w.end(), w.mtime_ns()), (21, Some(5)));
        w.write(8, b"eeeeeeeeeeeee", None);
        assert_eq!(w.extents.len(), 1);
        assert_eq!(w.extents[&0], b"aaXXbbbbeeeeeeeeeeeee");
    }

    #[test]
    fn writes_split_at_chunk_boundaries_and_full_blocks_spill() {
        let mut w = FileWriter::default();
        w.write(CHUNK_SIZE - 2, b"abcd", None);
        let all = w.take_all();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].chunk, all[0].pos, &all[0].data[..]), (0, CHUNK_SIZE - 2, &b"ab"[..]));
        assert_eq!((all[1].chunk, all[1].pos, &all[1].data[..]), (1, 0, &b"cd"[..]));
        w.restore(all);
        assert_eq!(w.buffered(), 4);
        // Only whole aligned blocks spill: a block's worth that starts at 10 does not...
        let mut w = FileWriter::default();
        w.write(10, &vec![7u8; BLOCK_SIZE as usize + 5], None);
        assert!(w.take_full_blocks().is_empty());
        // ...until the bytes before it come; what follows the block stays.
        w.write(0, &[1u8; 10], None);
        let full = w.take_full_blocks();
        assert_eq!(full.len(), 1);
        assert_eq!((full[0].pos, full[0].data.len() as u64), (0, BLOCK_SIZE));
        assert_eq!((full[0].data[9], full[0].data[10]), (1, 7));
        assert_eq!(w.buffered(), 15);
        // Two blocks and a half from the middle of one: the whole second and third block.
        let mut w = FileWriter::default();
        w.write(BLOCK_SIZE / 2, &vec![3u8; 3 * BLOCK_SIZE as usize], None);
        let full = w.take_full_blocks();
        assert_eq!(full.len(), 1);
        assert_eq!((full[0].pos, full[0].data.len() as u64), (BLOCK_SIZE, 2 * BLOCK_SIZE));
        assert_eq!(w.buffered(), BLOCK_SIZE);
    }

    proptest! {
        /// Random writes with spills in between render like a byte vector.
        #[test]
        fn buffer_matches_a_byte_vector(ops in proptest::collection::vec((0u64..3000, 1usize..700, any::<bool>()), 1..50)) {
            let mut w = FileWriter::default();
            let mut model = vec![0u8; 4000];
            let mut spilled = Vec::new();
            for (i, (off, len, spill)) in ops.into_iter().enumerate() {
                let data: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
                w.write(off, &data, None);
                model[off as usize..off as usize + len].copy_from_slice(&data);
                if spill {
                    for p in w.take_all() {
                        spilled.push((NewSlice { chunk: p.chunk, pos: p.pos, slice_id: 0, len: p.data.len() as u64, data: None }, p.data.to_vec()));
                    }
                }
                prop_assert_eq!(render(&w, &spilled, 4000), model.clone());
                let ov = w.overlay(0, 100, 2000);
                for (pos, b) in ov {
                    prop_assert_eq!(&b[..], &model[pos as usize..pos as usize + b.len()]);
                }
            }
        }
    }
}
