//! Request buffers laid out so that a WRITE's payload starts on a page boundary.
//!
//! A WRITE request is `fuse_in_header` (40 bytes) + `fuse_write_in` (40 bytes) + data. Reading
//! it into a buffer that starts 80 bytes before a page boundary puts the data on the boundary,
//! so a file system can hand the borrowed payload straight to `pwrite` on a descriptor opened
//! with O_DIRECT (which needs aligned memory) without a bounce copy.

use crate::abi;

/// Page size assumed for alignment (the kernel's O_DIRECT requirement is at most this).
pub const PAGE: usize = 4096;

/// Offset of a WRITE's payload within its request.
pub const WRITE_PAYLOAD_OFFSET: usize =
    std::mem::size_of::<abi::fuse_in_header>() + std::mem::size_of::<abi::fuse_write_in>();

/// A request buffer of a fixed length whose WRITE payload offset is page-aligned.
pub struct RequestBuffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl RequestBuffer {
    /// A zeroed buffer of `len` usable bytes.
    pub fn new(len: usize) -> RequestBuffer {
        let storage = vec![0u8; len + PAGE];
        let payload = storage.as_ptr() as usize + WRITE_PAYLOAD_OFFSET;
        let start = (PAGE - payload % PAGE) % PAGE;
        RequestBuffer { storage, start, len }
    }

    /// The usable bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The usable bytes, writable (for reading a request into).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_payload_lands_on_a_page_boundary() {
        assert_eq!(WRITE_PAYLOAD_OFFSET, 80);
        for len in [4096, 65536, (1 << 20) + 4096] {
            let mut b = RequestBuffer::new(len);
            assert_eq!(b.as_slice().len(), len);
            let payload = b.as_mut_slice()[WRITE_PAYLOAD_OFFSET..].as_ptr() as usize;
            assert_eq!(payload % PAGE, 0);
        }
    }
}
