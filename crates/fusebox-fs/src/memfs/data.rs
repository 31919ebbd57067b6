//! Sparse file contents: fixed-size chunks in a B-tree; absent chunks are holes that read as
//! zeros and count no space.

use std::collections::BTreeMap;

/// Bytes per chunk: the unit of allocation, hole detection and space accounting.
pub const CHUNK: usize = 64 * 1024;
const CHUNK64: u64 = CHUNK as u64;

/// A page of zeros that hole reads point at (no allocation per read).
pub static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// The bytes of one regular file.
#[derive(Debug, Default, Clone)]
pub struct SparseData {
    chunks: BTreeMap<u64, Box<[u8]>>,
    size: u64,
}

impl SparseData {
    /// Logical size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Allocated bytes (chunks present).
    pub fn allocated(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK64
    }

    /// Slices covering `[offset, offset+len)` clipped to the size, holes as zeros; for one
    /// vectored reply without copying.
    pub fn read_slices(&self, offset: u64, len: usize) -> Vec<&[u8]> {
        let end = offset.saturating_add(len as u64).min(self.size);
        let mut parts = Vec::new();
        let mut pos = offset;
        while pos < end {
            let idx = pos / CHUNK64;
            let within = (pos % CHUNK64) as usize;
            let take = ((CHUNK64 - within as u64).min(end - pos)) as usize;
            match self.chunks.get(&idx) {
                Some(c) => parts.push(&c[within..within + take]),
                None => parts.push(&ZEROS[..take]),
            }
            pos += take as u64;
        }
        parts
    }

    /// Copy `[offset, offset+len)` into a new vector (for copy_file_range).
    pub fn read_vec(&self, offset: u64, len: usize) -> Vec<u8> {
        self.read_slices(offset, len).concat()
    }

    /// Number of chunks a write of `len` bytes at `offset` would newly allocate.
    pub fn chunks_needed(&self, offset: u64, len: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        let (first, last) = (offset / CHUNK64, (offset + len - 1) / CHUNK64);
        (first..=last).filter(|i| !self.chunks.contains_key(i)).count() as u64
    }

    /// Write `data` at `offset`, growing the size if needed.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let idx = pos / CHUNK64;
            let within = (pos % CHUNK64) as usize;
            let take = (CHUNK - within).min(rest.len());
            let chunk = self.chunks.entry(idx).or_insert_with(|| vec![0u8; CHUNK].into_boxed_slice());
            chunk[within..within + take].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            pos += take as u64;
        }
        self.size = self.size.max(offset + data.len() as u64);
    }

    /// Set the size: shrinking drops data past the end (and zeroes the tail of the last
    /// chunk, so a later extension reads zeros); growing adds a hole.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            let keep = size.div_ceil(CHUNK64);
            self.chunks.split_off(&keep);
            let tail = (size % CHUNK64) as usize;
            if tail != 0 {
                if let Some(c) = self.chunks.get_mut(&(size / CHUNK64)) {
                    c[tail..].fill(0);
                }
            }
        }
        self.size = size;
    }

    /// Allocate zeroed chunks for `[offset, offset+len)`; grows the size unless `keep_size`.
    pub fn allocate(&mut self, offset: u64, len: u64, keep_size: bool) {
        if len == 0 {
            return;
        }
        for idx in offset / CHUNK64..=(offset + len - 1) / CHUNK64 {
            self.chunks.entry(idx).or_insert_with(|| vec![0u8; CHUNK].into_boxed_slice());
        }
        if !keep_size {
            self.size = self.size.max(offset + len);
        }
    }

    /// Zero `[offset, offset+len)`, freeing whole chunks inside it (punch hole / zero range).
    pub fn zero_range(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let mut pos = offset;
        while pos < end {
            let idx = pos / CHUNK64;
            let within = (pos % CHUNK64) as usize;
            let take = (CHUNK64 - within as u64).min(end - pos) as usize;
            if within == 0 && take == CHUNK {
                self.chunks.remove(&idx);
            } else if let Some(c) = self.chunks.get_mut(&idx) {
                c[within..within + take].fill(0);
            }
            pos += take as u64;
        }
    }

    /// SEEK_DATA: the first offset ≥ `offset` inside an allocated chunk, or None (ENXIO).
    pub fn seek_data(&self, offset: u64) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let (&idx, _) = self.chunks.range(offset / CHUNK64..).next()?;
        let pos = offset.max(idx * CHUNK64);
        (pos < self.size).then_some(pos)
    }

    /// SEEK_HOLE: the first offset ≥ `offset` in a hole (the size counts as a hole), or None.
    pub fn seek_hole(&self, offset: u64) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let mut idx = offset / CHUNK64;
        while self.chunks.contains_key(&idx) {
            idx += 1;
        }
        Some(offset.max(idx * CHUNK64).min(self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_across_chunks_and_holes() {
        let mut d = SparseData::default();
        d.write(CHUNK64 * 2 - 3, b"abcdef");
        assert_eq!(d.size(), CHUNK64 * 2 + 3);
        assert_eq!(d.allocated(), 2 * CHUNK64);
        assert_eq!(d.read_vec(CHUNK64 * 2 - 4, 8), b"\0abcdef");
        assert_eq!(d.read_vec(0, 4), vec![0; 4]);
        assert_eq!(d.seek_data(0), Some(CHUNK64));
        assert_eq!(d.seek_hole(0), Some(0));
        assert_eq!(d.seek_hole(CHUNK64), Some(CHUNK64 * 2 + 3));
        assert_eq!(d.seek_data(CHUNK64 * 3), None);
    }

    #[test]
    fn truncate_then_extend_reads_zeros() {
        let mut d = SparseData::default();
        d.write(0, &[7u8; 100]);
        d.truncate(10);
        d.truncate(100);
        assert_eq!(d.read_vec(0, 100), [vec![7u8; 10], vec![0u8; 90]].concat());
    }

    #[test]
    fn punch_hole_frees_whole_chunks() {
        let mut d = SparseData::default();
        d.write(0, &vec![1u8; CHUNK * 3]);
        d.zero_range(10, CHUNK64 * 2);
        assert_eq!(d.allocated(), 2 * CHUNK64);
        assert_eq!(d.size(), 3 * CHUNK64);
        let v = d.read_vec(0, CHUNK * 3);
        assert!(v[..10].iter().all(|&b| b == 1));
        assert!(v[10..CHUNK * 2 + 10].iter().all(|&b| b == 0));
        assert!(v[CHUNK * 2 + 10..].iter().all(|&b| b == 1));
    }

    #[test]
    fn allocate_keep_size() {
        let mut d = SparseData::default();
        d.allocate(0, 10, true);
        assert_eq!((d.size(), d.allocated()), (0, CHUNK64));
        d.allocate(0, 10, false);
        assert_eq!(d.size(), 10);
        assert_eq!(d.chunks_needed(0, CHUNK64 + 1), 1);
    }
}
