//! A shared, writable file mapping, for tests and tools that check mmap(2) through a mount.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A `MAP_SHARED`, read-write mapping of part of a file, unmapped on drop.
///
/// The file must be open for reading and writing. Touching a page of the mapping that lies
/// wholly past the file's end of file raises SIGBUS, so callers map only within the current file
/// size (and keep the file from shrinking below the mapping while it is in use).
pub struct SharedMap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through `&self`/`&mut self`.
unsafe impl Send for SharedMap {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Map `len` bytes of `fd` starting at `offset` (a multiple of the page size) with
    /// `PROT_READ | PROT_WRITE` and `MAP_SHARED`. `len` must be non-zero.
    pub fn new(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<SharedMap> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot alias any Rust object;
        // fd is a live descriptor for the duration of the call.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(SharedMap { ptr, len })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mapping is empty (never: `new` rejects a zero length).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is a live mapping owned by self; the borrow ties the slice to it.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable (changes reach the file; see [`SharedMap::msync`]).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice; `&mut self` guarantees the slice is the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// msync(2) the whole mapping with `MS_SYNC`: write dirty pages to the file and wait.
    pub fn msync(&self) -> io::Result<()> {
        // SAFETY: ptr/len describe exactly the mapping created in `new`.
        if unsafe { libc::msync(self.ptr.as_ptr().cast(), self.len, libc::MS_SYNC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe the mapping created in `new`; no slice outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMap").field("ptr", &self.ptr).field("len", &self.len).finish()
    }
}

/// The memory page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn shared_map_reads_writes_and_syncs() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = tempfile_in_tmp();
        f.write_all(&[7u8; 8192]).unwrap();
        {
            let mut m = SharedMap::new(f.as_fd(), 0, 8192).unwrap();
            assert_eq!(m.len(), 8192);
            assert!(m.as_slice().iter().all(|&b| b == 7));
            m.as_mut_slice()[4095..4097].copy_from_slice(&[1, 2]);
            m.msync().unwrap();
        }
        let mut buf = vec![0u8; 8192];
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[4094..4098], &[7, 1, 2, 7]);
        assert!(SharedMap::new(f.as_fd(), 0, 0).is_err());
    }

    fn tempfile_in_tmp() -> File {
        let p = std::env::temp_dir().join(format!("fusebox-sharedmap-{}", std::process::id()));
        let f =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
