//! Request buffers laid out so that a WRITE's payload starts on a page boundary.
//!
//! A WRITE request is `fuse_in_header` (40 bytes) + `fuse_write_in` (40 bytes) + data. Reading
//! it into a buffer that starts 80 bytes before a page boundary puts the data on the boundary,
//! so a file system can hand the borrowed payload straight to `pwrite` on a descriptor opened
//! with O_DIRECT (which needs aligned memory) without a bounce copy.

use crate::abi;
use std::sync::{Arc, Mutex};

/// Page size assumed for alignment (the kernel's O_DIRECT requirement is at most this).
pub const PAGE: usize = 4096;

/// Offset of a WRITE's payload within its request.
pub const WRITE_PAYLOAD_OFFSET: usize =
    std::mem::size_of::<abi::fuse_in_header>() + std::mem::size_of::<abi::fuse_write_in>();

/// A request buffer of a fixed length whose WRITE payload offset is page-aligned.
#[derive(Debug)]
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

/// Buffers whose last [`Payload`] was dropped after their reader had moved on: readers take
/// them before allocating (a fresh 1 MiB buffer costs page faults, a recycled one nothing).
static RECYCLED: Mutex<Vec<RequestBuffer>> = Mutex::new(Vec::new());

/// Most buffers [`RECYCLED`] keeps; the rest are freed.
const RECYCLED_MAX: usize = 16;

/// A buffer of `len` usable bytes: a recycled one when there is one.
pub fn recycled(len: usize) -> RequestBuffer {
    let mut pool = RECYCLED.lock().unwrap_or_else(|e| e.into_inner());
    match pool.iter().position(|b| b.len == len) {
        Some(i) => pool.swap_remove(i),
        None => {
            drop(pool);
            RequestBuffer::new(len)
        }
    }
}

fn recycle(buf: RequestBuffer) {
    let mut pool = RECYCLED.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < RECYCLED_MAX {
        pool.push(buf);
    }
}

/// A reader's request buffer that a handler may keep part of after the request: a large
/// WRITE payload handed to an async file system as a [`Payload`] keeps its buffer, and the
/// reader reads the next request into another one.
#[derive(Debug)]
pub struct SharedBuffer {
    buf: Arc<RequestBuffer>,
}

impl SharedBuffer {
    /// A buffer of `len` usable bytes.
    pub fn new(len: usize) -> SharedBuffer {
        SharedBuffer { buf: Arc::new(RequestBuffer::new(len)) }
    }

    /// The usable bytes, writable, for reading the next request into: this buffer if no
    /// payload holds it any more, otherwise a recycled or new one of the same length.
    pub fn for_reading(&mut self) -> &mut [u8] {
        if Arc::get_mut(&mut self.buf).is_none() {
            self.buf = Arc::new(recycled(self.buf.len));
        }
        Arc::get_mut(&mut self.buf).expect("a new buffer has one holder").as_mut_slice()
    }

    /// The request in the first `len` bytes, with this buffer as the owner of its payload.
    pub fn frame(&self, len: usize) -> Frame<'_> {
        Frame { bytes: &self.buf.as_slice()[..len], owner: Some(&self.buf) }
    }

    /// Swap the buffer for `other`, returning the one that held the request.
    pub fn replace(&mut self, other: RequestBuffer) -> SharedBuffer {
        SharedBuffer { buf: std::mem::replace(&mut self.buf, Arc::new(other)) }
    }

    /// The buffer itself, when no payload holds it any more.
    pub fn into_unique(self) -> Option<RequestBuffer> {
        Arc::into_inner(self.buf)
    }
}

/// One received request: its bytes and, when the reader allows it, the buffer that holds
/// them (so that a WRITE payload can be kept without a copy).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The request's bytes, header first.
    pub bytes: &'a [u8],
    owner: Option<&'a Arc<RequestBuffer>>,
}

impl<'a> Frame<'a> {
    /// A request in memory nobody may keep (io_uring ring buffers, tests): payloads are copied.
    pub fn borrowed(bytes: &'a [u8]) -> Frame<'a> {
        Frame { bytes, owner: None }
    }

    /// The buffer a payload taken from this request may keep.
    pub fn owner(&self) -> PayloadSource<'a> {
        PayloadSource { owner: self.owner }
    }
}

/// Where a borrowed payload lives: lets [`Payload::take`] keep the buffer instead of copying.
#[derive(Debug, Clone, Copy, Default)]
pub struct PayloadSource<'a> {
    owner: Option<&'a Arc<RequestBuffer>>,
}

/// A payload of at least this share of its buffer is handed over with the buffer; a smaller
/// one is copied, so a kept 4 KiB write never pins a 1 MiB buffer (at most 4x the bytes).
const HAND_OVER_SHARE: usize = 4;

/// An owned WRITE payload. Taken from a request it usually keeps the request's buffer (no
/// copy); small payloads and payloads from memory the reader reuses at once are copied.
pub struct Payload {
    inner: PayloadBytes,
}

enum PayloadBytes {
    Shared { buf: Arc<RequestBuffer>, start: usize, end: usize },
    Owned(Vec<u8>),
}

impl Payload {
    /// `data` as an owned payload: the buffer of `source` is kept when `data` lies in it and
    /// is large enough to be worth it, otherwise the bytes are copied.
    pub fn take(data: &[u8], source: PayloadSource<'_>) -> Payload {
        if let Some(owner) = source.owner {
            let whole = owner.as_slice();
            let base = whole.as_ptr() as usize;
            let at = data.as_ptr() as usize;
            let inside = at >= base && at + data.len() <= base + whole.len();
            if inside && data.len() * HAND_OVER_SHARE >= whole.len() {
                let start = at - base;
                return Payload {
                    inner: PayloadBytes::Shared { buf: owner.clone(), start, end: start + data.len() },
                };
            }
        }
        Payload::from(data.to_vec())
    }

    /// Whether the payload kept its request's buffer (was not copied).
    pub fn is_handed_over(&self) -> bool {
        matches!(self.inner, PayloadBytes::Shared { .. })
    }

    /// The bytes as a vector (a copy unless the payload already owned a vector).
    pub fn into_vec(mut self) -> Vec<u8> {
        match &mut self.inner {
            PayloadBytes::Owned(v) => std::mem::take(v),
            PayloadBytes::Shared { .. } => self.to_vec(),
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload { inner: PayloadBytes::Owned(v) }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            PayloadBytes::Shared { buf, start, end } => &buf.as_slice()[*start..*end],
            PayloadBytes::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Clone for Payload {
    /// A copy of the bytes (a clone never shares the request buffer).
    fn clone(&self) -> Payload {
        Payload::from(self.to_vec())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        **self == **other
    }
}

impl Eq for Payload {}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.len())
            .field("handed_over", &self.is_handed_over())
            .finish()
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let PayloadBytes::Shared { buf, .. } =
            std::mem::replace(&mut self.inner, PayloadBytes::Owned(Vec::new()))
        {
            if let Some(b) = Arc::into_inner(buf) {
                recycle(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_payload_keeps_the_buffer_and_the_reader_moves_on() {
        let mut shared = SharedBuffer::new(64 * 1024);
        shared.for_reading()[100..100 + 32 * 1024].fill(7);
        let frame = shared.frame(100 + 32 * 1024);
        let payload = Payload::take(&frame.bytes[100..], frame.owner());
        assert!(payload.is_handed_over());
        let held = frame.bytes.as_ptr();
        // The reader gets another buffer while the payload holds this one.
        let next = shared.for_reading().as_ptr();
        assert_ne!(next, held);
        assert_eq!(payload.len(), 32 * 1024);
        assert!(payload.iter().all(|&b| b == 7));
        drop(payload);
        // Once the payload is gone the reader's buffer is unique again and is reused.
        assert_eq!(shared.for_reading().as_ptr(), next);
    }

    #[test]
    fn small_payloads_and_borrowed_frames_are_copied() {
        let shared = SharedBuffer::new(64 * 1024);
        let frame = shared.frame(4096);
        let small = Payload::take(&frame.bytes[80..], frame.owner());
        assert!(!small.is_handed_over());
        let bytes = vec![1u8; 8192];
        let copied = Payload::take(&bytes, Frame::borrowed(&bytes).owner());
        assert!(!copied.is_handed_over());
        assert_eq!(copied.into_vec(), bytes);
        // A slice outside the owner's buffer is copied too, never kept by address.
        let elsewhere = Payload::take(&bytes, frame.owner());
        assert!(!elsewhere.is_handed_over());
    }

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
