//! Descriptors: close with its error, dup, flock with a time limit, and the FS_IOC_FSGETXATTR
//! / FS_IOC_FSSETXATTR ioctls.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// close(2) that reports the error (dropping an `OwnedFd` ignores it). On a FUSE mount this
/// is where FLUSH and write-back errors (ENOSPC, EIO) show up.
pub fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` was owned by `fd`, whose ownership we took; it is closed exactly once here
    // and never used again (Linux frees the descriptor even when close reports an error).
    let r = unsafe { libc::close(raw) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Duplicate a borrowed fd into an owned one (close-on-exec).
pub fn dup(fd: impl AsFd) -> io::Result<OwnedFd> {
    fd.as_fd().try_clone_to_owned()
}

/// Size of `struct fsxattr` (FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR): xflags, extsize,
/// nextents, projid, cowextsize (u32 each) and 8 bytes of padding.
pub const FSXATTR_SIZE: usize = 28;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;

/// `ioctl(FS_IOC_FSGETXATTR)`: the file's extended attributes (`struct fsxattr`) as raw bytes.
pub fn fs_get_xattr(fd: BorrowedFd<'_>) -> io::Result<[u8; FSXATTR_SIZE]> {
    let mut buf = [0u8; FSXATTR_SIZE];
    // SAFETY: the command writes exactly one `struct fsxattr` (28 bytes) to `buf`, which is
    // that size and lives across the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR, buf.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf)
}

/// `ioctl(FS_IOC_FSSETXATTR)` with a raw `struct fsxattr`.
pub fn fs_set_xattr(fd: BorrowedFd<'_>, attr: &[u8; FSXATTR_SIZE]) -> io::Result<()> {
    // SAFETY: the command reads exactly one `struct fsxattr` (28 bytes) from `attr`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR, attr.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take an exclusive `flock` on `file` (released on close), waiting at most `limit` for other
/// holders. Returns false on timeout.
pub fn flock_exclusive(file: &std::fs::File, limit: std::time::Duration) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + limit;
    loop {
        // SAFETY: flock on a descriptor we borrow for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(e),
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
