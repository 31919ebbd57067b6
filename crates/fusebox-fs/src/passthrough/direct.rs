//! Positional IO on backing descriptors, including ones opened with O_DIRECT.
//!
//! When the caller opens with O_DIRECT, so does passthrough, so direct IO reaches the backing
//! disk as the caller asked. O_DIRECT wants aligned memory, offsets and lengths. fusebox's
//! worker buffers put a WRITE's payload on a page boundary and READs go into a page-aligned
//! buffer, so the usual direct request needs no copy. What remains gets a fallback instead of
//! EINVAL: an unaligned payload (e.g. a request copied into a queue) is bounced through an
//! aligned buffer, and an unaligned offset or length (write-back pages trimmed at end of file
//! and sent through an O_DIRECT handle) goes through a buffered descriptor of the same file.

use super::error::errno;
use fusebox::Errno;
use rustix::fs::OFlags;
use rustix::io::Errno as E;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

const ALIGN: usize = 4096;

/// A reusable page-aligned byte buffer.
#[derive(Default)]
pub(crate) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// The first `len` bytes, growing the buffer if needed (contents unspecified).
    pub(crate) fn get(&mut self, len: usize) -> &mut [u8] {
        if self.len < len {
            self.storage = vec![0u8; len + ALIGN];
            self.start = self.storage.as_ptr().align_offset(ALIGN);
            self.len = len;
        }
        &mut self.storage[self.start..self.start + len]
    }
}

fn is_direct(fd: &OwnedFd) -> bool {
    rustix::fs::fcntl_getfl(fd).is_ok_and(|f| f.contains(OFlags::DIRECT))
}

/// The same file opened again without O_DIRECT (through /proc/self/fd).
fn buffered_twin(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(errno)?;
    let access = flags & (OFlags::RDONLY | OFlags::WRONLY | OFlags::RDWR);
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(path, access | OFlags::CLOEXEC, rustix::fs::Mode::empty()).map_err(errno)
}

/// Loop `op` until `len` bytes are done, end of file, or an error (reported only if nothing
/// was done).
fn all(len: usize, mut op: impl FnMut(usize) -> Result<usize, E>) -> Result<usize, E> {
    let mut done = 0;
    while done < len {
        match op(done) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(E::INTR) => continue,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Write all of `data` at `offset`; returns the bytes written.
pub(crate) fn write_at(
    fd: &OwnedFd, data: &[u8], offset: u64, bounce: &mut AlignedBuf,
) -> Result<usize, Errno> {
    let direct = |fd: &OwnedFd, data: &[u8]| {
        all(data.len(), |d| rustix::io::pwrite(fd, &data[d..], offset + d as u64))
    };
    match direct(fd, data) {
        Err(E::INVAL) if is_direct(fd) => {}
        r => return r.map_err(errno),
    }
    let aligned = offset.is_multiple_of(ALIGN as u64) && data.len().is_multiple_of(512);
    if aligned {
        let buf = bounce.get(data.len());
        buf.copy_from_slice(data);
        return direct(fd, buf).map_err(errno);
    }
    let twin = buffered_twin(fd)?;
    direct(&twin, data).map_err(errno)
}

/// Read up to `buf.len()` bytes at `offset` (fewer only at end of file); `buf` is page-aligned.
pub(crate) fn read_at(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let read = |fd: &OwnedFd, buf: &mut [u8]| {
        let len = buf.len();
        all(len, |d| rustix::io::pread(fd.as_fd(), &mut buf[d..], offset + d as u64))
    };
    match read(fd, buf) {
        Err(E::INVAL) if is_direct(fd) => read(&buffered_twin(fd)?, buf).map_err(errno),
        r => r.map_err(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct_file() -> Option<(tempfile::TempDir, OwnedFd)> {
        let dir = tempfile::Builder::new().prefix("fusebox-direct-").tempdir_in("/var/tmp").ok()?;
        // tmpfs and some others refuse O_DIRECT: nothing to test then.
        let f = fusebox_testkit::open_direct(&dir.path().join("f"), true).ok()?;
        Some((dir, f.into()))
    }

    #[test]
    fn unaligned_memory_offsets_and_lengths_still_work_on_o_direct() {
        let Some((_dir, fd)) = direct_file() else { return };
        let mut bounce = AlignedBuf::default();
        // Unaligned memory, aligned offset and length: bounced.
        let data: Vec<u8> = (0..8192 + 1).map(|i| i as u8).collect();
        assert_eq!(write_at(&fd, &data[1..], 0, &mut bounce).unwrap(), 8192);
        // Unaligned offset and length: through the buffered twin.
        assert_eq!(write_at(&fd, b"tail", 8192, &mut bounce).unwrap(), 4);
        let mut back = AlignedBuf::default();
        let buf = back.get(3 * 4096);
        assert_eq!(read_at(&fd, buf, 0).unwrap(), 8196);
        assert_eq!(&buf[..8192], &data[1..]);
        assert_eq!(&buf[8192..8196], b"tail");
        // Unaligned read offset: through the twin as well.
        let mut small = [0u8; 3];
        assert_eq!(read_at(&fd, &mut small, 8193).unwrap(), 3);
        assert_eq!(&small, b"ail");
    }
}
