//! Values every layer above the wire speaks: node ids, file handles, errno values and cache
//! lifetimes.

use crate::abi;
use std::time::Duration;

/// An inode number as the kernel knows it (`nodeid`). `NodeId::ROOT` is the mount's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The root directory of every FUSE mount.
    pub const ROOT: NodeId = NodeId(abi::FUSE_ROOT_ID);
}

/// A file handle chosen by the file system in OPEN/OPENDIR/CREATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileHandle(pub u64);

/// A positive errno value returned to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

#[allow(missing_docs)]
impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const EXDEV: Errno = Errno(libc::EXDEV);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EFBIG: Errno = Errno(libc::EFBIG);
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const ENOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    pub const ENXIO: Errno = Errno(libc::ENXIO);
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    pub const ENOTCONN: Errno = Errno(libc::ENOTCONN);
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
    pub const EMLINK: Errno = Errno(libc::EMLINK);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const EINTR: Errno = Errno(libc::EINTR);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);

    /// The errno of the calling thread's last failed libc call.
    pub fn last() -> Errno {
        Errno::from(std::io::Error::last_os_error())
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// Cache lifetimes the kernel is told for names and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// How long a name→inode mapping may be cached.
    pub entry: Duration,
    /// How long attributes may be cached.
    pub attr: Duration,
    /// How long the absence of a name may be cached (a LOOKUP answered ENOENT becomes a
    /// negative entry with this lifetime; zero: the kernel asks again every time).
    pub negative: Duration,
}

impl Ttl {
    /// The same lifetime for names, attributes and absent names.
    pub const fn uniform(d: Duration) -> Ttl {
        Ttl { entry: d, attr: d, negative: d }
    }
}

impl Default for Ttl {
    /// One second for names and attributes, no caching of absent names: right for a file
    /// system that others may change behind the daemon's back.
    fn default() -> Self {
        Ttl { entry: Duration::from_secs(1), attr: Duration::from_secs(1), negative: Duration::ZERO }
    }
}
