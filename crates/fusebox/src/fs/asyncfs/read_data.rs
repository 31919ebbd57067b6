//! [`ReadData`]: what an async READ answers, as pieces sent with one vectored write.

use std::fmt;

/// Pieces shorter than this are copied into one buffer instead of getting an iovec of their own,
/// so that a READ over thousands of tiny pieces (a file appended to in small records) stays far
/// below the kernel's iovec limit and costs few of them.
const COPY_BELOW: usize = 16 << 10;

type Part = Box<dyn AsRef<[u8]> + Send + Sync>;

/// The bytes an async READ answers: views of buffers the file system holds anyway (blocks kept in
/// memory, say), sent to the kernel with one vectored write after the reply header, never first
/// copied into one buffer. A `Vec<u8>` converts into it.
#[derive(Default)]
pub struct ReadData {
    /// Large pieces, in order; `small` follows the last of them.
    parts: Vec<Part>,
    /// Short pieces pushed since the last large one, copied together.
    small: Vec<u8>,
    len: usize,
}

impl ReadData {
    /// No bytes (end of file).
    pub fn new() -> ReadData {
        ReadData::default()
    }

    /// Append `part` (any owner of bytes: `Vec<u8>`, `bytes::Bytes`, an `Arc<[u8]>`...).
    pub fn push<T: AsRef<[u8]> + Send + Sync + 'static>(&mut self, part: T) {
        let n = part.as_ref().len();
        if n < COPY_BELOW {
            self.small.extend_from_slice(part.as_ref());
        } else {
            self.flush_small();
            self.parts.push(Box::new(part));
        }
        self.len += n;
    }

    /// Append `n` zero bytes (a hole).
    pub fn push_zeros(&mut self, n: usize) {
        if n < COPY_BELOW {
            self.small.resize(self.small.len() + n, 0);
            self.len += n;
        } else {
            self.push(vec![0u8; n]);
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces in order, for a vectored write.
    pub fn slices(&self) -> Vec<&[u8]> {
        let mut out: Vec<&[u8]> = self.parts.iter().map(|p| (**p).as_ref()).collect();
        if !self.small.is_empty() {
            out.push(&self.small);
        }
        out
    }

    /// The bytes in one buffer (a copy).
    pub fn to_vec(&self) -> Vec<u8> {
        self.slices().concat()
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.parts.push(Box::new(std::mem::take(&mut self.small)));
        }
    }
}

impl From<Vec<u8>> for ReadData {
    fn from(v: Vec<u8>) -> ReadData {
        let mut r = ReadData::new();
        if !v.is_empty() {
            r.len = v.len();
            r.parts.push(Box::new(v));
        }
        r
    }
}

impl fmt::Debug for ReadData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadData").field("len", &self.len).field("pieces", &self.slices().len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_their_order_and_short_ones_are_copied_together() {
        let big = vec![7u8; COPY_BELOW];
        let big_at = big.as_ptr();
        let mut r = ReadData::new();
        r.push(b"ab".to_vec());
        r.push_zeros(3);
        r.push(big);
        r.push(b"cd".to_vec());
        r.push_zeros(COPY_BELOW);
        r.push(Vec::<u8>::new());
        let slices = r.slices();
        assert_eq!(slices.iter().map(|s| s.len()).collect::<Vec<_>>(), [5, COPY_BELOW, 2, COPY_BELOW]);
        assert_eq!(slices[1].as_ptr(), big_at, "a large piece is sent from where it is, not copied");
        let mut want = b"ab\0\0\0".to_vec();
        want.extend(vec![7u8; COPY_BELOW]);
        want.extend(b"cd");
        want.extend(vec![0u8; COPY_BELOW]);
        assert_eq!((r.len(), r.to_vec()), (want.len(), want));
        // A thousand tiny pieces cost one iovec.
        let mut r = ReadData::new();
        (0..1000).for_each(|i| r.push(vec![i as u8; 3]));
        assert_eq!((r.slices().len(), r.len()), (1, 3000));
        assert!(ReadData::from(Vec::new()).is_empty() && ReadData::new().slices().is_empty());
    }
}
