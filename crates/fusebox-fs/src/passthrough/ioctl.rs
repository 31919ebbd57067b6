//! IOCTL: inode flags (`FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`, what chattr/lsattr use) and
//! extended attributes (`FS_IOC_FSGETXATTR` / `FS_IOC_FSSETXATTR`) reach the backing file;
//! every other command is ENOTTY. The backing file system enforces the flags (append-only,
//! immutable) on every backing call; see `fusebox::fs::fileattr` for how they arrive.

use super::error::{errno, io_errno};
use super::handles::Handles;
use fusebox::abi::FUSE_IOCTL_DIR;
use fusebox::fs::fileattr::FileattrCmd;
use fusebox::fs::IoctlArgs;
use fusebox::Errno;
use rustix::fs::IFlags;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// An ioctl's result value and the bytes for the caller's output buffer.
type Outcome = Result<(i32, Vec<u8>), Errno>;

/// Serve one IOCTL on an open file or directory.
/// `file` gives an open file's descriptor (reopening a parked one).
pub(crate) fn serve(
    handles: &Handles, file: &dyn Fn(fusebox::FileHandle) -> Result<Arc<OwnedFd>, Errno>,
    args: &IoctlArgs<'_>,
) -> Outcome {
    let Some(cmd) = FileattrCmd::parse(args) else { return Err(Errno(libc::ENOTTY)) };
    let cmd = cmd?;
    let run = |fd: BorrowedFd<'_>| -> Outcome {
        match cmd {
            FileattrCmd::GetFlags => {
                let flags = rustix::fs::ioctl_getflags(fd).map_err(errno)?;
                Ok((0, flags.bits().to_ne_bytes().to_vec()))
            }
            FileattrCmd::SetFlags(flags) => {
                rustix::fs::ioctl_setflags(fd, IFlags::from_bits_retain(flags)).map_err(errno)?;
                Ok((0, Vec::new()))
            }
            FileattrCmd::GetXattr => Ok((0, fusebox::sys::fs_get_xattr(fd).map_err(io_errno)?.to_vec())),
            FileattrCmd::SetXattr(x) => {
                fusebox::sys::fs_set_xattr(fd, &x.to_bytes()).map_err(io_errno)?;
                Ok((0, Vec::new()))
            }
        }
    };
    if args.flags & FUSE_IOCTL_DIR != 0 {
        run(handles.dir(args.fh)?.fd.as_fd())
    } else {
        run(file(args.fh)?.as_fd())
    }
}

/// True when `args` is a command that changes the inode (its ctime moves).
pub(crate) fn changes(args: &IoctlArgs<'_>) -> bool {
    matches!(FileattrCmd::parse(args), Some(Ok(cmd)) if cmd.changes())
}
