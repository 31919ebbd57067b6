//! The async flavour of the file system API, for file systems whose handlers wait on networks
//! (object stores, metadata databases, other nodes).
//!
//! An [`AsyncFilesystem`] answers by *returning* a value from an async method instead of
//! consuming a reply token. [`AsyncAdapter`] turns it into a [`Filesystem`](super::Filesystem)
//! that runs each request as a task on a tokio runtime, so it is served by the same transports,
//! worker pool, scheduler classes and stats as a synchronous file system: a worker parses the
//! request, spawns the task and goes back to reading `/dev/fuse` at once.
//!
//! Arguments are owned (`OsString`, `Vec<u8>`): a spawned task outlives the worker's read buffer,
//! so names and WRITE payloads are copied once when the task is created.
//!
//! Cancellation: when the kernel interrupts a request (the caller got a signal), the adapter
//! drops the handler's future and answers EINTR; the handler sees this as ordinary async
//! cancellation (its `.await` never returns, its destructors run).

mod adapter;

pub use adapter::{AsyncAdapter, AsyncAdapterOptions};

use super::types::*;
use super::{Interrupt, MountInfo};
use crate::session::Capabilities;
use std::ffi::OsString;
use std::future::Future;

/// A handle returned by OPEN, OPENDIR and CREATE, with FOPEN_* flags for the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The file handle the kernel passes back in later requests.
    pub fh: FileHandle,
    /// FOPEN_* flags (e.g. `FOPEN_DIRECT_IO`, `FOPEN_KEEP_CACHE`).
    pub flags: u32,
}

/// One directory entry returned by [`AsyncFilesystem::readdir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number (reported as `d_ino`).
    pub ino: u64,
    /// Cookie of the *next* entry: passed back as `offset` to continue after this one.
    pub offset: u64,
    /// The entry's type.
    pub kind: FileType,
    /// The entry's name.
    pub name: OsString,
}

/// One entry returned by [`AsyncFilesystem::readdirplus`]: a name with a full lookup result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryPlus {
    /// The node and attributes, as LOOKUP would answer them.
    pub entry: Entry,
    /// Cookie of the *next* entry.
    pub offset: u64,
    /// The entry's name.
    pub name: OsString,
}

/// Arguments of an async WRITE: like [`WriteArgs`] with an owned payload.
#[derive(Debug, Clone)]
pub struct WriteData {
    /// Handle from OPEN (with writeback cache: any writable handle of the inode).
    pub fh: FileHandle,
    /// Byte offset.
    pub offset: u64,
    /// The bytes to write.
    pub data: Vec<u8>,
    /// FUSE_WRITE_* flags.
    pub write_flags: u32,
    /// The open flags of the file.
    pub flags: i32,
}

impl WriteData {
    /// Borrow as the synchronous API's [`WriteArgs`].
    pub fn as_args(&self) -> WriteArgs<'_> {
        WriteArgs {
            fh: self.fh,
            offset: self.offset,
            data: &self.data,
            write_flags: self.write_flags,
            flags: self.flags,
        }
    }
}

/// The result type of every async handler.
pub type FsResult<T> = Result<T, Errno>;

/// A FUSE file system with async handlers. Every method defaults to ENOSYS (RELEASE and
/// RELEASEDIR default to success, FORGET to nothing), like [`Filesystem`](super::Filesystem).
///
/// Methods return `impl Future + Send`: implement them with `async fn`. The futures run on the
/// adapter's tokio runtime, many at once, so implementations use interior locking (prefer
/// locks that are never held across an `.await`).
///
/// READDIRPLUS contract: every returned entry except `.` and `..` counts as one LOOKUP; entries
/// that do not fit into the kernel's buffer are given back with [`AsyncFilesystem::forget`].
#[allow(unused_variables)]
pub trait AsyncFilesystem: Send + Sync + 'static {
    /// Called once during INIT (synchronously, before any other request).
    fn init(&self, caps: &mut Capabilities) -> FsResult<()> {
        Ok(())
    }
    /// The mount is live: keep `mount.notifier` to push invalidations (from any task).
    fn mounted(&self, mount: &MountInfo) {}
    /// The session is ending.
    fn destroy(&self) {}
    /// Look up `name` in `parent`; counts one lookup of the returned node.
    fn lookup(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
    ) -> impl Future<Output = FsResult<Entry>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// The kernel dropped `nlookup` references to `ino`.
    fn forget(&self, ino: NodeId, nlookup: u64) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Attributes of `ino`.
    fn getattr(
        &self,
        req: RequestInfo,
        ino: NodeId,
        fh: Option<FileHandle>,
    ) -> impl Future<Output = FsResult<FileAttr>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Change attributes; returns the new ones.
    fn setattr(
        &self,
        req: RequestInfo,
        ino: NodeId,
        attr: SetAttr,
    ) -> impl Future<Output = FsResult<FileAttr>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Target of a symlink.
    fn readlink(&self, req: RequestInfo, ino: NodeId) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Create a symlink `name` → `target`.
    fn symlink(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        target: OsString,
    ) -> impl Future<Output = FsResult<Entry>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Create a file, device node, FIFO or socket.
    fn mknod(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        mode: u32,
        rdev: u32,
    ) -> impl Future<Output = FsResult<Entry>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Create a directory.
    fn mkdir(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        mode: u32,
    ) -> impl Future<Output = FsResult<Entry>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Remove a non-directory.
    fn unlink(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Remove an empty directory.
    fn rmdir(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Rename (`flags`: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT).
    fn rename(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        newparent: NodeId,
        newname: OsString,
        flags: u32,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Create a hard link.
    fn link(
        &self,
        req: RequestInfo,
        ino: NodeId,
        newparent: NodeId,
        newname: OsString,
    ) -> impl Future<Output = FsResult<Entry>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Open a file.
    fn open(
        &self,
        req: RequestInfo,
        ino: NodeId,
        flags: i32,
    ) -> impl Future<Output = FsResult<Opened>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Read up to `args.size` bytes (fewer only at end of file).
    fn read(
        &self,
        req: RequestInfo,
        ino: NodeId,
        args: ReadArgs,
    ) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Write; returns the number of bytes written.
    fn write(
        &self,
        req: RequestInfo,
        ino: NodeId,
        args: WriteData,
    ) -> impl Future<Output = FsResult<u32>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// close(2) of one descriptor: the synchronous commit point.
    fn flush(
        &self,
        req: RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        lock_owner: u64,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// The last reference to an open file is gone.
    fn release(
        &self,
        req: RequestInfo,
        ino: NodeId,
        args: ReleaseArgs,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Ok(()) }
    }
    /// Make a file's data (and metadata unless `datasync`) durable.
    fn fsync(
        &self,
        req: RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        datasync: bool,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Open a directory.
    fn opendir(
        &self,
        req: RequestInfo,
        ino: NodeId,
        flags: i32,
    ) -> impl Future<Output = FsResult<Opened>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Directory entries after cookie `offset`; `max_bytes` is the kernel's buffer size (a hint:
    /// what does not fit is asked for again). An empty list means end of directory.
    fn readdir(
        &self,
        req: RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        offset: u64,
        max_bytes: usize,
    ) -> impl Future<Output = FsResult<Vec<DirEntry>>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Directory entries with attributes (see the READDIRPLUS contract on the trait).
    fn readdirplus(
        &self,
        req: RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        offset: u64,
        max_bytes: usize,
    ) -> impl Future<Output = FsResult<Vec<DirEntryPlus>>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// The last reference to an open directory is gone.
    fn releasedir(
        &self,
        req: RequestInfo,
        ino: NodeId,
        args: ReleaseArgs,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Ok(()) }
    }
    /// fsync(2) on a directory.
    fn fsyncdir(
        &self,
        req: RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        datasync: bool,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// File system statistics.
    fn statfs(&self, req: RequestInfo, ino: NodeId) -> impl Future<Output = FsResult<Statfs>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Set an extended attribute (`flags`: XATTR_CREATE, XATTR_REPLACE).
    fn setxattr(
        &self,
        req: RequestInfo,
        ino: NodeId,
        name: OsString,
        value: Vec<u8>,
        flags: i32,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// The value of an extended attribute (the adapter answers size probes and ERANGE).
    fn getxattr(
        &self,
        req: RequestInfo,
        ino: NodeId,
        name: OsString,
    ) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// The NUL-separated list of extended attribute names.
    fn listxattr(&self, req: RequestInfo, ino: NodeId) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Remove an extended attribute.
    fn removexattr(
        &self,
        req: RequestInfo,
        ino: NodeId,
        name: OsString,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// access(2) check (only without `default_permissions`).
    fn access(&self, req: RequestInfo, ino: NodeId, mask: i32) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Create and open a regular file.
    fn create(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        args: CreateArgs,
    ) -> impl Future<Output = FsResult<(Entry, Opened)>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Create and open an unnamed regular file (O_TMPFILE).
    fn tmpfile(
        &self,
        req: RequestInfo,
        parent: NodeId,
        args: CreateArgs,
    ) -> impl Future<Output = FsResult<(Entry, Opened)>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Allocate or punch space.
    fn fallocate(
        &self,
        req: RequestInfo,
        ino: NodeId,
        args: FallocateArgs,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// SEEK_DATA / SEEK_HOLE.
    fn lseek(
        &self,
        req: RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: i32,
    ) -> impl Future<Output = FsResult<u64>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Test for a lock: the first conflicting lock, or `typ == F_UNLCK` (see
    /// [`Filesystem::getlk`](super::Filesystem::getlk); needs `Capabilities::posix_locks`).
    fn getlk(
        &self,
        req: RequestInfo,
        ino: NodeId,
        args: LockArgs,
    ) -> impl Future<Output = FsResult<FileLock>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Take or release a lock. With `args.sleep`, wait for conflicting locks; `interrupt`
    /// fires when the caller gives up (the adapter then also drops this future and answers
    /// EINTR), for waits that happen outside the future (e.g. on a blocking thread).
    fn setlk(
        &self,
        req: RequestInfo,
        ino: NodeId,
        args: LockArgs,
        interrupt: Interrupt,
    ) -> impl Future<Output = FsResult<()>> + Send {
        async { Err(Errno::ENOSYS) }
    }
    /// Copy a range between two open files; returns the bytes copied.
    fn copy_file_range(
        &self,
        req: RequestInfo,
        ino_in: NodeId,
        args: CopyRangeArgs,
    ) -> impl Future<Output = FsResult<u64>> + Send {
        async { Err(Errno::ENOSYS) }
    }
}

/// Bytes one READDIR entry with a name of `name_len` bytes takes in the kernel's buffer: lets
/// [`AsyncFilesystem::readdir`] return no more than fits into `max_bytes`.
pub fn dirent_size(name_len: usize) -> usize {
    crate::abi::fuse_dirent_align(crate::abi::FUSE_NAME_OFFSET + name_len)
}

/// Bytes one READDIRPLUS entry with a name of `name_len` bytes takes in the kernel's buffer.
pub fn dirent_plus_size(name_len: usize) -> usize {
    crate::abi::fuse_dirent_align(crate::abi::FUSE_NAME_OFFSET_DIRENTPLUS + name_len)
}
