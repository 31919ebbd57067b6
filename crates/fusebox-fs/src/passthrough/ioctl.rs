//! IOCTL: inode flags (`FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`, what chattr/lsattr use) and
//! extended attributes (`FS_IOC_FSGETXATTR` / `FS_IOC_FSSETXATTR`) reach the backing file;
//! every other command is ENOTTY.
//!
//! The kernel sends these from its fileattr path on a private OPEN of the inode, with a 4-byte
//! argument (`unsigned int`) for the flags even though the command number encodes `long`. A
//! SETFLAGS is preceded by an FSGETXATTR (the VFS reads the old attributes in that form).

use super::error::{errno, io_errno};
use super::handles::Handles;
use fusebox::abi::FUSE_IOCTL_DIR;
use fusebox::fs::IoctlArgs;
use fusebox::sys::FSXATTR_SIZE;
use fusebox::Errno;
use rustix::fs::IFlags;
use std::os::fd::AsFd;

/// `FS_IOC_GETFLAGS` and its 32-bit twin `FS_IOC32_GETFLAGS`.
const GETFLAGS: [u32; 2] = [0x8008_6601, 0x8004_6601];
/// `FS_IOC_SETFLAGS` and its 32-bit twin `FS_IOC32_SETFLAGS`.
const SETFLAGS: [u32; 2] = [0x4008_6602, 0x4004_6602];
/// `FS_IOC_FSGETXATTR` and `FS_IOC_FSSETXATTR`.
const FSGETXATTR: u32 = 0x801c_581f;
const FSSETXATTR: u32 = 0x401c_5820;

/// An ioctl's result value and the bytes for the caller's output buffer.
type Outcome = Result<(i32, Vec<u8>), Errno>;

/// Serve one IOCTL on an open file or directory.
/// `file` gives an open file's descriptor (reopening a parked one).
pub(crate) fn serve(
    handles: &Handles,
    file: &dyn Fn(fusebox::FileHandle) -> Result<std::sync::Arc<std::os::fd::OwnedFd>, Errno>,
    args: &IoctlArgs<'_>,
) -> Outcome {
    let with_fd = |f: &dyn Fn(std::os::fd::BorrowedFd<'_>) -> Outcome| {
        if args.flags & FUSE_IOCTL_DIR != 0 {
            let d = handles.dir(args.fh)?;
            f(d.fd.as_fd())
        } else {
            let fd = file(args.fh)?;
            f(fd.as_fd())
        }
    };
    if GETFLAGS.contains(&args.cmd) {
        if (args.out_size as usize) < 4 {
            return Err(Errno::EINVAL);
        }
        with_fd(&|fd| {
            let flags = rustix::fs::ioctl_getflags(fd).map_err(errno)?;
            Ok((0, flags.bits().to_ne_bytes().to_vec()))
        })
    } else if SETFLAGS.contains(&args.cmd) {
        let raw: [u8; 4] = args.in_data.get(..4).and_then(|b| b.try_into().ok()).ok_or(Errno::EINVAL)?;
        let flags = IFlags::from_bits_retain(u32::from_ne_bytes(raw));
        with_fd(&|fd| {
            rustix::fs::ioctl_setflags(fd, flags).map_err(errno)?;
            Ok((0, Vec::new()))
        })
    } else if args.cmd == FSGETXATTR {
        if (args.out_size as usize) < FSXATTR_SIZE {
            return Err(Errno::EINVAL);
        }
        with_fd(&|fd| Ok((0, fusebox::sys::fs_get_xattr(fd).map_err(io_errno)?.to_vec())))
    } else if args.cmd == FSSETXATTR {
        let raw: [u8; FSXATTR_SIZE] =
            args.in_data.get(..FSXATTR_SIZE).and_then(|b| b.try_into().ok()).ok_or(Errno::EINVAL)?;
        with_fd(&|fd| {
            fusebox::sys::fs_set_xattr(fd, &raw).map_err(io_errno)?;
            Ok((0, Vec::new()))
        })
    } else {
        Err(Errno(libc::ENOTTY))
    }
}
