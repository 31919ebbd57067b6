//! How file data is laid out: a file is cut into chunks of [`CHUNK_SIZE`]; each chunk holds
//! slices (one per committed write session and contiguous range), newest over oldest; the data
//! of a slice is stored as block objects of at most [`BLOCK_SIZE`] bytes, never modified.
//! This module turns a chunk's slice list into the pieces a read must fetch.

/// Bytes per chunk.
pub const CHUNK_SIZE: u64 = 64 << 20;

/// Largest block object.
pub const BLOCK_SIZE: u64 = 4 << 20;

/// The object key of block `index` of slice `slice_id`: `blocks/XX/ID_INDEX`, where XX
/// (the low byte of the id) spreads keys over 256 directories.
pub fn block_key(slice_id: u64, index: u64) -> String {
    format!("blocks/{:02x}/{slice_id}_{index}", slice_id & 0xff)
}

/// The (slice id, block index) a key names, or None for a key fusebox-dfs did not write.
pub fn parse_block_key(key: &str) -> Option<(u64, u64)> {
    let rest = key.strip_prefix("blocks/")?;
    let (dir, file) = rest.split_once('/')?;
    let (id, index) = file.split_once('_')?;
    let (id, index): (u64, u64) = (id.parse().ok()?, index.parse().ok()?);
    (dir == format!("{:02x}", id & 0xff) && block_key(id, index) == key).then_some((id, index))
}

/// Size of block `index` of a slice holding `slice_size` bytes.
pub fn block_len(slice_size: u64, index: u64) -> u64 {
    slice_size.saturating_sub(index * BLOCK_SIZE).min(BLOCK_SIZE)
}

/// The blocks covering `[off, off + len)` of a slice's data.
pub fn blocks_covering(off: u64, len: u64) -> std::ops::Range<u64> {
    if len == 0 {
        return 0..0;
    }
    off / BLOCK_SIZE..(off + len - 1) / BLOCK_SIZE + 1
}

/// `[off, off + len)` of a slice's data block by block: (block index, offset in that block,
/// bytes), in order.
pub fn block_segments(off: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize)> {
    let stop = off + len;
    blocks_covering(off, len).map(move |index| {
        let base = index * BLOCK_SIZE;
        let from = off.max(base);
        let to = stop.min(base + BLOCK_SIZE);
        (index, (from - base) as usize, (to - from) as usize)
    })
}

/// A slice as a read sees it: `len` bytes at `pos` in the chunk, from offset `off` of source
/// `source` (an index into the caller's list of sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Start in the chunk.
    pub pos: u64,
    /// Length.
    pub len: u64,
    /// Offset into the source's data.
    pub off: u64,
    /// Which source holds the bytes.
    pub source: usize,
}

/// A visible piece of a chunk: `len` bytes at `pos`, taken from `source` at `off`.
pub type Piece = Layer;

/// The visible pieces of `[start, end)` of a chunk whose `layers` are given oldest first:
/// newer layers cover older ones, gaps are holes (zeros, not returned). Pieces come sorted by
/// position and never overlap.
pub fn visible(layers: &[Layer], start: u64, end: u64) -> Vec<Piece> {
    // Painter's algorithm over a sorted list of disjoint pieces.
    let mut out: Vec<Piece> = Vec::new();
    for l in layers {
        let (s, e) = (l.pos.max(start), (l.pos + l.len).min(end));
        if s >= e {
            continue;
        }
        let mut next = Vec::with_capacity(out.len() + 2);
        for p in out.drain(..) {
            let pe = p.pos + p.len;
            if pe <= s || p.pos >= e {
                next.push(p);
                continue;
            }
            if p.pos < s {
                next.push(Piece { len: s - p.pos, ..p });
            }
            if pe > e {
                next.push(Piece { pos: e, len: pe - e, off: p.off + (e - p.pos), ..p });
            }
        }
        next.push(Piece { pos: s, len: e - s, off: l.off + (s - l.pos), source: l.source });
        next.sort_by_key(|p| p.pos);
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_rejected() {
        assert_eq!(block_key(0x1234, 7), "blocks/34/4660_7");
        assert_eq!(parse_block_key("blocks/34/4660_7"), Some((0x1234, 7)));
        for bad in ["blocks/35/4660_7", "blocks/34/4660", "x/34/4660_7", "blocks/34/04660_7", "blocks/34/a_1"]
        {
            assert_eq!(parse_block_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn segments_split_a_range_at_block_boundaries() {
        let b = BLOCK_SIZE as usize;
        assert_eq!(block_segments(10, 20).collect::<Vec<_>>(), [(0, 10, 20)]);
        assert_eq!(
            block_segments(BLOCK_SIZE - 5, BLOCK_SIZE + 10).collect::<Vec<_>>(),
            [(0, b - 5, 5), (1, 0, b), (2, 0, 5)]
        );
        assert_eq!(block_segments(7, 0).count(), 0);
    }

    #[test]
    fn block_ranges() {
        assert_eq!(blocks_covering(0, 0), 0..0);
        assert_eq!(blocks_covering(0, 1), 0..1);
        assert_eq!(blocks_covering(BLOCK_SIZE - 1, 2), 0..2);
        assert_eq!(blocks_covering(BLOCK_SIZE, BLOCK_SIZE), 1..2);
        assert_eq!(block_len(BLOCK_SIZE + 10, 1), 10);
        assert_eq!(block_len(BLOCK_SIZE + 10, 2), 0);
    }

    #[test]
    fn newer_layers_cover_older_ones() {
        let l = |pos, len, source| Layer { pos, len, off: 0, source };
        let v = visible(&[l(0, 100, 0), l(10, 10, 1), l(50, 100, 2)], 0, 200);
        assert_eq!(
            v,
            vec![
                Piece { pos: 0, len: 10, off: 0, source: 0 },
                Piece { pos: 10, len: 10, off: 0, source: 1 },
                Piece { pos: 20, len: 30, off: 20, source: 0 },
                Piece { pos: 50, len: 100, off: 0, source: 2 },
            ]
        );
        assert_eq!(visible(&[l(0, 100, 0)], 40, 60), vec![Piece { pos: 40, len: 20, off: 40, source: 0 }]);
        assert!(visible(&[l(0, 10, 0)], 10, 20).is_empty());
    }

    /// Operations of the reference-model test.
    #[derive(Debug, Clone)]
    enum Op {
        Write { pos: u64, len: u64 },
        Truncate { size: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..4096, 1u64..1024).prop_map(|(pos, len)| Op::Write { pos, len }),
            1 => (0u64..5000).prop_map(|size| Op::Truncate { size }),
        ]
    }

    proptest! {
        /// Random writes, overwrites and truncates applied as slices (with the truncate as a
        /// cut of the slice list, as the metadata engine does it) read back exactly like a
        /// Vec<u8> model with the same operations.
        #[test]
        fn slices_assemble_like_a_byte_vector(ops in proptest::collection::vec(op(), 1..60),
                                              start in 0u64..5000, span in 0u64..5000) {
            let mut model: Vec<u8> = Vec::new();
            let mut layers: Vec<Layer> = Vec::new();
            let mut sources: Vec<Vec<u8>> = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                match *op {
                    Op::Write { pos, len } => {
                        let data: Vec<u8> = (0..len).map(|j| (i as u64 * 31 + j) as u8 | 1).collect();
                        if model.len() < (pos + len) as usize {
                            model.resize((pos + len) as usize, 0);
                        }
                        model[pos as usize..(pos + len) as usize].copy_from_slice(&data);
                        layers.push(Layer { pos, len, off: 0, source: sources.len() });
                        sources.push(data);
                    }
                    Op::Truncate { size } => {
                        model.resize(size as usize, 0);
                        layers.retain(|l| l.pos < size);
                        for l in &mut layers {
                            l.len = l.len.min(size - l.pos);
                        }
                    }
                }
            }
            let end = (start + span).min(model.len() as u64);
            let mut got = vec![0u8; end.saturating_sub(start) as usize];
            for p in visible(&layers, start, end) {
                let src = &sources[p.source][p.off as usize..(p.off + p.len) as usize];
                got[(p.pos - start) as usize..(p.pos - start + p.len) as usize].copy_from_slice(src);
            }
            let want = if start < end { &model[start as usize..end as usize] } else { &[][..] };
            prop_assert_eq!(&got[..], want);
        }
    }
}
