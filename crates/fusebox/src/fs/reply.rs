//! One-shot typed reply tokens, faces over the session's [`Responder`]. Each handler gets exactly
//! one; answering consumes it. A token dropped without an answer replies EIO.

use super::types::{Entry, FileAttr, FileHandle, FileLock, FileType, Statfs, Statx, Ttl};
use super::Errno;
use crate::abi;
use crate::session::responder::split;
use crate::session::{BackingId, Interrupt};
use crate::wire::reply::{push_dirent, push_direntplus};
use std::os::fd::BorrowedFd;
use std::time::Duration;
use zerocopy::IntoBytes;

pub use crate::session::responder::{ReplyShared, Responder};

/// The wire form of `entry` with lifetimes `ttl`, its generation raised if the node was
/// retired.
fn entry_out_for(r: &Responder, entry: &Entry, ttl: Ttl) -> abi::fuse_entry_out {
    let mut out = entry_out(entry, ttl);
    out.generation = out.generation.wrapping_add(r.generation_offset(entry.ino.0));
    out
}

pub(crate) fn entry_out(entry: &Entry, ttl: Ttl) -> abi::fuse_entry_out {
    let (es, ens) = split(ttl.entry);
    let (as_, ans) = split(ttl.attr);
    abi::fuse_entry_out {
        nodeid: entry.ino.0,
        generation: entry.generation,
        entry_valid: es,
        attr_valid: as_,
        entry_valid_nsec: ens,
        attr_valid_nsec: ans,
        attr: entry.attr.to_abi(),
    }
}

/// What every reply token can do, for code generic over tokens (e.g. the async adapter).
pub trait Reply: Send + Sized + 'static {
    /// Answer with an error.
    fn fail(self, e: Errno);
    /// The request's interrupt handle (see [`Interrupt`]).
    fn interrupt(&self) -> Interrupt;
    /// Answer with the result: `ok` for the value, or the error.
    fn result<T>(self, r: Result<T, Errno>, ok: impl FnOnce(Self, T)) {
        match r {
            Ok(v) => ok(self, v),
            Err(e) => self.fail(e),
        }
    }
}

/// Builds a reply token around a responder (the sync-as-async face captures answers this way).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) trait FromResponder {
    fn from_responder(r: Responder) -> Self;
}

impl FromResponder for ReplyCopy {
    fn from_responder(inner: Responder) -> Self {
        ReplyCopy { inner, wide: true }
    }
}

macro_rules! token {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        pub struct $name(pub(crate) Responder);
        impl FromResponder for $name {
            fn from_responder(r: Responder) -> Self {
                $name(r)
            }
        }
        impl Reply for $name {
            fn fail(self, e: Errno) {
                self.0.error(e)
            }
            fn interrupt(&self) -> Interrupt {
                self.0.interrupt()
            }
        }
        impl $name {
            /// Answer with an error.
            pub fn error(self, e: Errno) {
                self.0.error(e)
            }
        }
    };
}

token!(
    /// Reply with no payload (UNLINK, FLUSH, FSYNC, …).
    ReplyEmpty
);
impl ReplyEmpty {
    /// Success.
    pub fn ok(self) {
        self.0.ok(&[])
    }
}

token!(
    /// Reply with a directory entry (LOOKUP, MKDIR, MKNOD, SYMLINK, LINK).
    ReplyEntry
);
impl ReplyEntry {
    /// Answer with `entry`, cached for the session's entry/attr timeouts.
    pub fn entry(self, entry: &Entry) {
        let out = entry_out_for(&self.0, entry, self.0.ttl());
        self.0.ok(&[out.as_bytes()])
    }
    /// Answer with `entry` and explicit cache lifetimes.
    pub fn entry_with_ttl(self, entry: &Entry, ttl: Ttl) {
        let out = entry_out_for(&self.0, entry, ttl);
        self.0.ok(&[out.as_bytes()])
    }
    /// "No such name", cached by the kernel for the entry timeout (a negative dentry), even
    /// where the session's `negative_timeout` is zero.
    pub fn negative(self) {
        let (es, ens) = split(self.0.ttl().entry);
        let out = abi::fuse_entry_out { entry_valid: es, entry_valid_nsec: ens, ..Default::default() };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply with attributes (GETATTR, SETATTR).
    ReplyAttr
);
impl ReplyAttr {
    /// Answer with `attr`, cached for the session's attr timeout.
    pub fn attr(self, attr: &FileAttr) {
        let ttl = self.0.ttl().attr;
        self.attr_with_ttl(attr, ttl)
    }
    /// Answer with `attr`, cached by the kernel for `ttl` instead of the session's lifetime.
    pub fn attr_with_ttl(self, attr: &FileAttr, ttl: Duration) {
        let (s, ns) = split(ttl);
        let out = abi::fuse_attr_out { attr_valid: s, attr_valid_nsec: ns, dummy: 0, attr: attr.to_abi() };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply to STATX.
    ReplyStatx
);
impl ReplyStatx {
    /// Answer with `statx`, its attributes cached for the session's attr timeout.
    pub fn statx(self, statx: &Statx) {
        let ttl = self.0.ttl().attr;
        self.statx_with_ttl(statx, ttl)
    }
    /// Answer with `statx`, its attributes cached for `ttl`.
    pub fn statx_with_ttl(self, statx: &Statx, ttl: Duration) {
        let (s, ns) = split(ttl);
        let out = abi::fuse_statx_out {
            attr_valid: s,
            attr_valid_nsec: ns,
            stat: statx.to_abi(),
            ..Default::default()
        };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply with bytes (READ, READLINK).
    ReplyData
);
impl ReplyData {
    /// Answer with one slice.
    pub fn data(self, data: &[u8]) {
        self.0.ok(&[data])
    }
    /// Answer with several slices, concatenated by one vectored write (no copy).
    pub fn data_vectored(self, parts: &[&[u8]]) {
        self.0.ok(parts)
    }
    /// Answer with up to `len` bytes of the regular file `file` at `offset`, moved with
    /// splice(2) when the session has `-o splice_write` and replies go to `/dev/fuse`. Gives the
    /// token back (`Err`) when splicing is off or not possible for this file or range, so the
    /// caller answers the ordinary way; nothing has been sent then.
    pub fn splice_from_file(
        mut self, file: BorrowedFd<'_>, offset: u64, len: usize,
    ) -> Result<(), ReplyData> {
        if self.0.splice_from_file(file, offset, len) {
            Ok(())
        } else {
            Err(self)
        }
    }
}

token!(
    /// Reply to WRITE: the number of bytes written.
    ReplyWrite
);
impl ReplyWrite {
    /// `n` bytes were written.
    pub fn written(self, n: u32) {
        let out = abi::fuse_write_out { size: n, padding: 0 };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply to OPEN / OPENDIR: a file handle and FOPEN_* flags.
    ReplyOpen
);
impl ReplyOpen {
    /// Opened with handle `fh`; `flags` are FOPEN_* bits (e.g. `abi::FOPEN_KEEP_CACHE`).
    pub fn opened(self, fh: FileHandle, flags: u32) {
        let out = abi::fuse_open_out { fh: fh.0, open_flags: flags, backing_id: 0 };
        self.0.ok(&[out.as_bytes()])
    }

    /// Opened with handle `fh` in kernel passthrough: reads, writes and mmap go to `backing`
    /// without reaching the file system. `flags` may add only FOPEN_NOFLUSH (the kernel
    /// refuses KEEP_CACHE and the like on a passthrough open, and FOPEN_DIRECT_IO would
    /// override passthrough, so both are removed here).
    pub fn passthrough(self, fh: FileHandle, flags: u32, backing: &BackingId) {
        let out = passthrough_open_out(fh, flags, backing);
        self.0.shared().stats.passthrough_open();
        self.0.ok(&[out.as_bytes()])
    }
}

/// FOPEN_* bits the kernel accepts together with FOPEN_PASSTHROUGH (besides the ones that
/// would turn it off).
const PASSTHROUGH_OPEN_FLAGS: u32 = abi::FOPEN_NOFLUSH;

fn passthrough_open_out(fh: FileHandle, flags: u32, backing: &BackingId) -> abi::fuse_open_out {
    abi::fuse_open_out {
        fh: fh.0,
        open_flags: (flags & PASSTHROUGH_OPEN_FLAGS) | abi::FOPEN_PASSTHROUGH,
        backing_id: backing.id() as i32,
    }
}

token!(
    /// Reply to CREATE / TMPFILE: the new entry plus an open handle.
    ReplyCreate
);
impl ReplyCreate {
    /// Created `entry` and opened it as `fh` with FOPEN_* `flags`.
    pub fn created(self, entry: &Entry, fh: FileHandle, flags: u32) {
        let e = entry_out_for(&self.0, entry, self.0.ttl());
        let o = abi::fuse_open_out { fh: fh.0, open_flags: flags, backing_id: 0 };
        self.0.ok(&[e.as_bytes(), o.as_bytes()])
    }

    /// Created `entry` and opened it as `fh` in kernel passthrough (see
    /// [`ReplyOpen::passthrough`]).
    pub fn created_passthrough(self, entry: &Entry, fh: FileHandle, flags: u32, backing: &BackingId) {
        let e = entry_out_for(&self.0, entry, self.0.ttl());
        let o = passthrough_open_out(fh, flags, backing);
        self.0.shared().stats.passthrough_open();
        self.0.ok(&[e.as_bytes(), o.as_bytes()])
    }
}

token!(
    /// Reply to STATFS.
    ReplyStatfs
);
impl ReplyStatfs {
    /// Answer with file system statistics.
    pub fn statfs(self, s: &Statfs) {
        let out = abi::fuse_statfs_out { st: s.to_abi() };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply to GETXATTR / LISTXATTR: a size probe (request size 0) or the data.
    ReplyXattr
);
impl ReplyXattr {
    /// Answer a size probe with the value's length.
    pub fn size(self, n: u32) {
        let out = abi::fuse_getxattr_out { size: n, padding: 0 };
        self.0.ok(&[out.as_bytes()])
    }
    /// Answer with the value.
    pub fn data(self, data: &[u8]) {
        self.0.ok(&[data])
    }
    /// Answer according to the requested `size`: a size probe, the data, or ERANGE.
    pub fn value(self, requested: u32, data: &[u8]) {
        if requested == 0 {
            self.size(data.len() as u32)
        } else if data.len() > requested as usize {
            self.error(Errno::ERANGE)
        } else {
            self.data(data)
        }
    }
}

token!(
    /// Reply to LSEEK.
    ReplyLseek
);
impl ReplyLseek {
    /// The resulting offset.
    pub fn offset(self, off: u64) {
        let out = abi::fuse_lseek_out { offset: off };
        self.0.ok(&[out.as_bytes()])
    }
}

/// Reply to COPY_FILE_RANGE (both the 32-bit and the 64-bit variant).
pub struct ReplyCopy {
    pub(crate) inner: Responder,
    pub(crate) wide: bool,
}
impl Reply for ReplyCopy {
    fn fail(self, e: Errno) {
        self.inner.error(e)
    }
    fn interrupt(&self) -> Interrupt {
        self.inner.interrupt()
    }
}
impl ReplyCopy {
    /// `n` bytes were copied.
    pub fn copied(self, n: u64) {
        if self.wide {
            let out = abi::fuse_copy_file_range_out { bytes_copied: n };
            self.inner.ok(&[out.as_bytes()])
        } else {
            let out = abi::fuse_write_out { size: n.min(u32::MAX as u64) as u32, padding: 0 };
            self.inner.ok(&[out.as_bytes()])
        }
    }
    /// Answer with an error.
    pub fn error(self, e: Errno) {
        self.inner.error(e)
    }
}

token!(
    /// Reply to GETLK: the conflicting lock, or the probe back with type F_UNLCK.
    ReplyLock
);
impl ReplyLock {
    /// Answer with `lock` (a conflicting lock, or `typ == F_UNLCK` when there is none). An
    /// end past OFFSET_MAX (`u64::MAX` for "to the end of the file") is sent as OFFSET_MAX,
    /// the only form the kernel accepts (it answers EIO to anything larger).
    pub fn lock(self, lock: &FileLock) {
        let end = lock.end.min(i64::MAX as u64);
        let out = abi::fuse_lk_out { lk: FileLock { end, ..*lock }.to_abi() };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply to IOCTL.
    ReplyIoctl
);
impl ReplyIoctl {
    /// The ioctl returned `result` and `data` for the caller's output buffer.
    pub fn ioctl(self, result: i32, data: &[u8]) {
        let out = abi::fuse_ioctl_out { result, flags: 0, in_iovs: 0, out_iovs: 0 };
        self.0.ok(&[out.as_bytes(), data])
    }
}

/// The shared body of the two directory reply tokens: entries packed into one buffer of at
/// most the kernel's size, sent at `ok`.
macro_rules! dir_token {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty = $init:expr),* }) => {
        $(#[$doc])*
        pub struct $name {
            inner: Responder,
            buf: Vec<u8>,
            max: usize,
            $($(#[$fdoc])* $field: $ty,)*
        }
        impl Reply for $name {
            fn fail(self, e: Errno) {
                self.inner.error(e)
            }
            fn interrupt(&self) -> Interrupt {
                self.inner.interrupt()
            }
        }
        impl $name {
            pub(crate) fn new(inner: Responder, max: usize) -> Self {
                $name { inner, buf: Vec::with_capacity(max.min(64 * 1024)), max, $($field: $init,)* }
            }
            /// The kernel's buffer size for this reply, in bytes.
            pub fn capacity(&self) -> usize {
                self.max
            }
            /// Send the entries added so far (none = end of directory).
            pub fn ok(self) {
                let $name { inner, buf, .. } = self;
                inner.ok(&[&buf])
            }
            /// Answer with an error.
            pub fn error(self, e: Errno) {
                self.inner.error(e)
            }
        }
    };
}

dir_token!(
    /// Reply to READDIR: fill with [`ReplyDirectory::add`] until it returns `true` (full), then `ok`.
    ReplyDirectory {
        /// Entries go out as READDIRPLUS entries without a node (see
        /// [`ReplyDirectoryPlus::names_only`]).
        names_as_plus: bool = false
    }
);
dir_token!(
    /// Reply to READDIRPLUS. Every entry added, except `.` and `..`, counts as one LOOKUP of its
    /// inode: the file system must expect a matching FORGET.
    ReplyDirectoryPlus {}
);

impl ReplyDirectory {
    /// Add an entry; `offset` is the cookie of the *next* entry. Returns `true` when the buffer is
    /// full and the entry was not added.
    pub fn add(&mut self, ino: u64, offset: u64, kind: FileType, name: &std::ffi::OsStr) -> bool {
        use std::os::unix::ffi::OsStrExt;
        if self.names_as_plus {
            let out = names_only_entry(ino);
            return !push_direntplus(
                &mut self.buf,
                self.max,
                &out,
                offset,
                kind.dirent_type(),
                name.as_bytes(),
            );
        }
        !push_dirent(&mut self.buf, self.max, ino, offset, kind.dirent_type(), name.as_bytes())
    }
}

/// A READDIRPLUS entry without a node: node id 0 tells the kernel that the file system gave a
/// name and no lookup (no attributes cached, no lookup counted, no FORGET to expect).
fn names_only_entry(ino: u64) -> abi::fuse_entry_out {
    let mut out = abi::fuse_entry_out::default();
    out.attr.ino = ino;
    out
}

impl ReplyDirectoryPlus {
    /// This reply as a [`ReplyDirectory`]: the entries added to it go out as READDIRPLUS entries
    /// with names only (node id 0), which the kernel lists without caching or counting a lookup.
    /// The default [`Filesystem::readdirplus`](crate::Filesystem::readdirplus) serves READDIRPLUS
    /// this way from `readdir`, so a file system need not implement both.
    pub fn names_only(self) -> ReplyDirectory {
        let ReplyDirectoryPlus { inner, buf, max, .. } = self;
        ReplyDirectory { inner, buf, max, names_as_plus: true }
    }

    /// Add an entry with its attributes; `offset` is the cookie of the next entry. Returns
    /// `true` when full (entry not added, so no lookup counted).
    pub fn add(&mut self, entry: &Entry, offset: u64, name: &std::ffi::OsStr) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let typ = entry.attr.kind().map(FileType::dirent_type).unwrap_or(0);
        let out = entry_out_for(&self.inner, entry, self.inner.ttl());
        !push_direntplus(&mut self.buf, self.max, &out, offset, typ, name.as_bytes())
    }
}
