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
mod read_data;
pub(crate) mod sync_face;

pub use adapter::{AsyncAdapter, AsyncAdapterOptions};
pub use read_data::ReadData;
pub use sync_face::SyncAsAsync;

use super::types::*;
use super::Payload;
use std::ffi::OsString;

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

impl DirEntryPlus {
    /// `entry` without a lookup: node id 0, so the kernel lists the name without caching
    /// attributes or counting a lookup (nothing to FORGET).
    pub fn name_only(entry: DirEntry) -> DirEntryPlus {
        let attr = FileAttr { ino: entry.ino, mode: entry.kind.dirent_type() << 12, ..Default::default() };
        DirEntryPlus {
            entry: Entry { ino: NodeId(0), generation: 0, attr },
            offset: entry.offset,
            name: entry.name,
        }
    }
}

/// Arguments of an async WRITE: like [`WriteArgs`] with an owned payload. A large payload
/// keeps the request's buffer (handed over, not copied); a small one is a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteData {
    /// Handle from OPEN (with writeback cache: any writable handle of the inode).
    pub fh: FileHandle,
    /// Byte offset.
    pub offset: u64,
    /// The bytes to write.
    pub data: Payload,
    /// FUSE_WRITE_* flags.
    pub write_flags: u32,
    /// The open flags of the file.
    pub flags: i32,
}

impl WriteData {
    /// Borrow as the synchronous API's [`WriteArgs`].
    pub fn as_args(&self) -> WriteArgs<'_> {
        WriteArgs::new(self.fh, self.offset, &self.data, self.write_flags, self.flags)
    }
}

/// The result type of every async handler.
pub type FsResult<T> = Result<T, Errno>;

pub use super::ops::AsyncFilesystem;

/// Arguments of an async IOCTL: like [`IoctlArgs`] with an owned input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoctlData {
    /// Handle from OPEN.
    pub fh: FileHandle,
    /// FUSE_IOCTL_* flags.
    pub flags: u32,
    /// The ioctl command.
    pub cmd: u32,
    /// The ioctl's argument (a pointer value in the caller, for restricted ioctls).
    pub arg: u64,
    /// Bytes the caller passed in.
    pub in_data: Vec<u8>,
    /// Bytes the caller can take back.
    pub out_size: u32,
}

/// The answer to an async IOCTL: the ioctl(2) return value and the bytes handed back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IoctlOut {
    /// What ioctl(2) returns to the caller.
    pub result: i32,
    /// Output bytes (at most the request's `out_size`).
    pub data: Vec<u8>,
}

/// Turns a synchronous method's borrowed argument into the owned one an async task keeps.
pub(crate) trait IntoTask<T> {
    fn into_task(self) -> T;
}

impl<T: Copy> IntoTask<T> for T {
    fn into_task(self) -> T {
        self
    }
}

impl<T: Copy> IntoTask<T> for &T {
    fn into_task(self) -> T {
        *self
    }
}

impl IntoTask<OsString> for &std::ffi::OsStr {
    fn into_task(self) -> OsString {
        self.to_os_string()
    }
}

impl IntoTask<Vec<u8>> for &[u8] {
    fn into_task(self) -> Vec<u8> {
        self.to_vec()
    }
}

/// Turns an async task's owned argument back into what a synchronous method takes.
pub(crate) trait TaskArg<'a, S> {
    fn sync_arg(&'a self) -> S;
}

impl<T: Copy> TaskArg<'_, T> for T {
    fn sync_arg(&self) -> T {
        *self
    }
}

impl<'a, T: Copy + 'a> TaskArg<'a, &'a T> for T {
    fn sync_arg(&'a self) -> &'a T {
        self
    }
}

impl<'a> TaskArg<'a, &'a std::ffi::OsStr> for OsString {
    fn sync_arg(&'a self) -> &'a std::ffi::OsStr {
        self
    }
}

impl<'a> TaskArg<'a, &'a [u8]> for Vec<u8> {
    fn sync_arg(&'a self) -> &'a [u8] {
        self
    }
}

impl IoctlData {
    /// Borrow as the synchronous API's [`IoctlArgs`].
    pub fn as_args(&self) -> IoctlArgs<'_> {
        IoctlArgs {
            fh: self.fh,
            flags: self.flags,
            cmd: self.cmd,
            arg: self.arg,
            in_data: &self.in_data,
            out_size: self.out_size,
        }
    }
}

impl From<&IoctlArgs<'_>> for IoctlData {
    fn from(self_: &IoctlArgs<'_>) -> IoctlData {
        let a = self_;
        IoctlData {
            fh: a.fh,
            flags: a.flags,
            cmd: a.cmd,
            arg: a.arg,
            in_data: a.in_data.to_vec(),
            out_size: a.out_size,
        }
    }
}

impl From<&WriteArgs<'_>> for WriteData {
    fn from(a: &WriteArgs<'_>) -> Self {
        WriteData {
            fh: a.fh,
            offset: a.offset,
            data: a.payload(),
            write_flags: a.write_flags,
            flags: a.flags,
        }
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
