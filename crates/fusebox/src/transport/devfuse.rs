//! The `/dev/fuse` character device: open, clone, read requests, write vectored replies.

use super::ReplyChannel;
use crate::abi;
use std::ffi::CString;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// What a read from `/dev/fuse` produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A request of this many bytes is in the buffer.
    Request(usize),
    /// Nothing this time (interrupted, or the request vanished): read again.
    Retry,
    /// The file system was unmounted or the connection aborted: stop.
    Closed,
}

/// One open `/dev/fuse` file descriptor.
#[derive(Debug)]
pub struct DevFuse {
    fd: OwnedFd,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl DevFuse {
    /// Open `/dev/fuse` (close-on-exec).
    pub fn open() -> io::Result<DevFuse> {
        let path = CString::new("/dev/fuse").expect("no NUL");
        // SAFETY: `path` is a valid NUL-terminated string; open has no other preconditions.
        let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        Ok(DevFuse { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Wrap an fd received from fusermount3.
    pub fn from_owned(fd: OwnedFd) -> DevFuse {
        DevFuse { fd }
    }

    /// A new fd attached to the same connection (`FUSE_DEV_IOC_CLONE`): requests are read from
    /// the shared queue, replies must go back on the fd that read the request.
    pub fn clone_fd(&self) -> io::Result<DevFuse> {
        let new = DevFuse::open()?;
        let old: u32 = self.fd.as_raw_fd() as u32;
        // SAFETY: FUSE_DEV_IOC_CLONE reads one u32 (the source fd) through the pointer, which
        // points at a live local.
        cvt(unsafe { libc::ioctl(new.fd.as_raw_fd(), abi::FUSE_DEV_IOC_CLONE as _, &old as *const u32) })?;
        Ok(new)
    }

    /// Register `backing` with the kernel for passthrough (`FUSE_DEV_IOC_BACKING_OPEN`, needs
    /// CAP_SYS_ADMIN and a negotiated FUSE_PASSTHROUGH) and return its backing id, valid on
    /// this connection until [`DevFuse::backing_close`].
    pub fn backing_open(&self, backing: BorrowedFd<'_>) -> io::Result<u32> {
        let map = abi::fuse_backing_map { fd: backing.as_raw_fd(), flags: 0, padding: 0 };
        // SAFETY: BACKING_OPEN reads one `struct fuse_backing_map` (16 bytes, same layout as
        // `map`) through the pointer, which points at a live local; the kernel takes its own
        // reference to the file, so `backing` may be closed afterwards.
        let id = cvt(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                abi::FUSE_DEV_IOC_BACKING_OPEN as _,
                &map as *const abi::fuse_backing_map,
            )
        })?;
        Ok(id as u32)
    }

    /// Drop the kernel's registration of backing id `id` (`FUSE_DEV_IOC_BACKING_CLOSE`). Files
    /// already opened with it keep their backing file.
    pub fn backing_close(&self, id: u32) -> io::Result<()> {
        // SAFETY: BACKING_CLOSE reads one u32 through the pointer, which points at a live local.
        cvt(unsafe {
            libc::ioctl(self.fd.as_raw_fd(), abi::FUSE_DEV_IOC_BACKING_CLOSE as _, &id as *const u32)
        })?;
        Ok(())
    }

    /// The raw descriptor (for `fd=` in mount options).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read one request into `buf` (which must hold max_write + one page at least).
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<Received> {
        // SAFETY: the pointer and length describe `buf`, which is valid for writes for the
        // duration of the call.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Received::Request(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // ENOENT: the request was interrupted and dropped before we read it.
            Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::ENOENT) => Ok(Received::Retry),
            // ENODEV: unmounted or aborted.
            Some(libc::ENODEV) => Ok(Received::Closed),
            _ => Err(err),
        }
    }
}

impl ReplyChannel for DevFuse {
    fn send(&self, iov: &[IoSlice<'_>]) -> io::Result<()> {
        // SAFETY: IoSlice is ABI-compatible with struct iovec and each slice outlives the call.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr().cast(), iov.len() as libc::c_int) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn splice_target(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.fd.as_fd())
    }
}
