//! Node ids derived from backing file handles, so that a file handle the kernel gave out
//! (`name_to_handle_at` on the mount: node id + generation) still names the same file after an
//! unmount and a new mount of the same SOURCE, or after the daemon forgot the node.
//!
//! The kernel resolves a handle it no longer caches with a LOOKUP of "." on the node id alone,
//! so the id must hold everything needed to reopen the backing file. It can when the backing
//! file system's handles are an inode number and a generation of 32 bits each (ext4, xfs with
//! 32-bit inode numbers: `FILEID_INO32_GEN`, 8 bytes; tmpfs: 12 bytes with the inode number's
//! high word zero). Such an id is
//!
//! ```text
//! bit 63 = 1 | generation bits 0..31 (31 bits) | inode number (32 bits)
//! ```
//!
//! Bit 63 tells these ids from counter ids (root = 1, then 2, 3, …), used for every file whose
//! handle does not fit (another file system type, a mount inside SOURCE). The generation's
//! top bit is left out: decoding tries both values, and the FUSE generation answered with the
//! entry is the backing file's whole generation, which the kernel compares with the one in the
//! handle. A handle of a deleted file, or of an inode number reused since (its generation
//! differs), reopens nothing: ESTALE, as on the backing file system.

use fusebox::sys::KernelFileHandle;

/// Bit 63: the id encodes a backing file handle.
const ENCODED: u64 = 1 << 63;
/// `FILEID_INO32_GEN`, the handle type of ext4, xfs (32-bit inode numbers) and tmpfs.
const FILEID_INO32_GEN: i32 = 1;

/// Where the inode number and generation sit in the handle's 32-bit words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[ino, gen]` (the generic `export_encode_fh`: ext4, xfs).
    InoGen,
    /// `[gen, ino_lo, ino_hi]` (tmpfs); fits while `ino_hi` is 0.
    GenInoLoHi,
}

/// The encoding of one backing file system's handles (that of SOURCE's root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandleIds {
    layout: Layout,
    mount_id: i32,
}

/// A node id and the FUSE generation that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) id: u64,
    pub(crate) generation: u64,
}

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

impl HandleIds {
    /// The encoding for handles like the root's, or None when they cannot fit in an id.
    pub(crate) fn for_root(root: &KernelFileHandle) -> Option<HandleIds> {
        let layout = match (root.handle_type, root.bytes.len()) {
            (FILEID_INO32_GEN, 8) => Layout::InoGen,
            (FILEID_INO32_GEN, 12) => Layout::GenInoLoHi,
            _ => return None,
        };
        Some(HandleIds { layout, mount_id: root.mount_id })
    }

    /// True when `id` is an encoded id.
    pub(crate) fn is_encoded(id: u64) -> bool {
        id & ENCODED != 0
    }

    /// The id and generation of the file with handle `h`; None when `h` does not fit (another
    /// file system, another layout, an inode number above 32 bits).
    pub(crate) fn encode(&self, h: &KernelFileHandle) -> Option<Encoded> {
        if h.mount_id != self.mount_id || h.handle_type != FILEID_INO32_GEN {
            return None;
        }
        let b = &h.bytes;
        let (ino, gen) = match (self.layout, b.len()) {
            (Layout::InoGen, 8) => (word(b, 0), word(b, 1)),
            (Layout::GenInoLoHi, 12) if word(b, 2) == 0 => (word(b, 1), word(b, 0)),
            _ => return None,
        };
        let id = ENCODED | (u64::from(gen & 0x7fff_ffff) << 32) | u64::from(ino);
        Some(Encoded { id, generation: u64::from(gen) })
    }

    /// The handles encoded id `id` may stand for (its generation's top bit either way); empty
    /// for a counter id.
    pub(crate) fn decode(&self, id: u64) -> Vec<KernelFileHandle> {
        if !Self::is_encoded(id) {
            return Vec::new();
        }
        let ino = id as u32;
        let low = ((id >> 32) as u32) & 0x7fff_ffff;
        [low, low | 0x8000_0000]
            .into_iter()
            .map(|gen| {
                let words: Vec<u32> = match self.layout {
                    Layout::InoGen => vec![ino, gen],
                    Layout::GenInoLoHi => vec![gen, ino, 0],
                };
                KernelFileHandle {
                    handle_type: FILEID_INO32_GEN,
                    bytes: words.iter().flat_map(|w| w.to_ne_bytes()).collect(),
                    mount_id: self.mount_id,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(words: &[u32], mount_id: i32) -> KernelFileHandle {
        KernelFileHandle {
            handle_type: FILEID_INO32_GEN,
            bytes: words.iter().flat_map(|w| w.to_ne_bytes()).collect(),
            mount_id,
        }
    }

    #[test]
    fn ext4_handles_round_trip_through_ids() {
        let ids = HandleIds::for_root(&handle(&[2, 0], 7)).expect("ext4 layout");
        for gen in [0, 1, 0x7fff_ffff, 0x8000_0000, 0xdead_beef] {
            let h = handle(&[123_456, gen], 7);
            let e = ids.encode(&h).unwrap();
            assert!(HandleIds::is_encoded(e.id) && e.id > 1);
            assert_eq!(e.generation, u64::from(gen));
            assert!(ids.decode(e.id).contains(&h), "gen {gen:#x}");
        }
        // Another mount, a longer handle: counter ids.
        assert_eq!(ids.encode(&handle(&[1, 2], 8)), None);
        assert_eq!(ids.encode(&handle(&[1, 2, 3], 7)), None);
        assert!(ids.decode(42).is_empty());
    }

    #[test]
    fn tmpfs_handles_fit_while_the_inode_number_does() {
        let ids = HandleIds::for_root(&handle(&[9, 1, 0], 3)).expect("tmpfs layout");
        let h = handle(&[0xabcd_0123, 77, 0], 3);
        let e = ids.encode(&h).unwrap();
        assert_eq!(e.id as u32, 77);
        assert!(ids.decode(e.id).contains(&h));
        assert_eq!(ids.encode(&handle(&[5, 77, 1], 3)), None);
    }

    #[test]
    fn other_handle_types_use_counter_ids() {
        let btrfs = KernelFileHandle { handle_type: 0x4d, bytes: vec![0; 20], mount_id: 1 };
        assert_eq!(HandleIds::for_root(&btrfs), None);
    }
}
