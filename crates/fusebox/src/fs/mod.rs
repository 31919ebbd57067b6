//! The file system API: an inode-based trait whose methods all default to ENOSYS, and one-shot
//! typed reply tokens.
//!
//! Methods take `&self` and are called from several worker threads at once: implementations use
//! interior locking. Each method receives a reply token it must consume exactly once; it may
//! answer inline or move the token to another thread and answer later.

pub mod acl;
pub mod asyncfs;
mod interrupt;
mod reply;
mod types;

pub use interrupt::{Interrupt, PENDING_EXPIRY};
pub(crate) use interrupt::{InterruptRegistry, Registration};

pub use reply::{
    Reply, ReplyAttr, ReplyCopy, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyShared, ReplyStatfs, ReplyWrite,
    ReplyXattr, Responder,
};
pub use types::*;

use crate::session::{Capabilities, Notifier};

/// What a file system learns when its mount goes live ([`Filesystem::mounted`]).
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// Sends notifications to this mount's kernel caches.
    pub notifier: Notifier,
    /// Where it is mounted (absolute).
    pub mountpoint: std::path::PathBuf,
    /// Registers backing files for kernel passthrough; `None` unless the file system asked for
    /// [`Capabilities::passthrough`] and the kernel granted it.
    pub backing: Option<crate::session::Backing>,
}
use std::ffi::OsStr;

/// A FUSE file system. Every method has a default that answers ENOSYS (or does nothing, for
/// FORGET), so an implementation provides only what it supports.
#[allow(unused_variables)]
pub trait Filesystem: Send + Sync + 'static {
    /// Called once during INIT. Switch off capabilities the file system cannot honour (e.g.
    /// `caps.writeback_cache = false`). The default keeps fusebox's fast defaults.
    fn init(&self, caps: &mut Capabilities) -> Result<(), Errno> {
        Ok(())
    }
    /// The mount is live (INIT done), before workers start serving: keep `mount.notifier` to
    /// push invalidations later. The default ignores it.
    fn mounted(&self, mount: &MountInfo) {}
    /// The session is ending (DESTROY or unmount).
    fn destroy(&self) {}

    /// Look up `name` in `parent`; a successful answer counts one lookup of the inode.
    fn lookup(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::ENOSYS)
    }
    /// The kernel dropped `nlookup` references to `ino`.
    fn forget(&self, ino: NodeId, nlookup: u64) {}
    /// Several FORGETs at once. The default calls [`Filesystem::forget`] for each.
    fn batch_forget(&self, nodes: &[(NodeId, u64)]) {
        for &(ino, n) in nodes {
            self.forget(ino, n)
        }
    }
    /// Attributes of `ino` (`fh` is set when called through an open file).
    fn getattr(&self, req: &RequestInfo, ino: NodeId, fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.error(Errno::ENOSYS)
    }
    /// Change attributes (chmod, chown, truncate, utimens).
    fn setattr(&self, req: &RequestInfo, ino: NodeId, attr: &SetAttr, reply: ReplyAttr) {
        reply.error(Errno::ENOSYS)
    }
    /// The target of symlink `ino`.
    fn readlink(&self, req: &RequestInfo, ino: NodeId, reply: ReplyData) {
        reply.error(Errno::ENOSYS)
    }
    /// Create symlink `name` in `parent` pointing at `target`.
    fn symlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, target: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::ENOSYS)
    }
    /// Create a special or regular file (`mode` includes the type bits).
    fn mknod(
        &self,
        req: &RequestInfo,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::ENOSYS)
    }
    /// Create a directory.
    fn mkdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, reply: ReplyEntry) {
        reply.error(Errno::ENOSYS)
    }
    /// Remove a non-directory name.
    fn unlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// Remove an empty directory.
    fn rmdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// Rename; `flags` may hold RENAME_NOREPLACE or RENAME_EXCHANGE.
    #[allow(clippy::too_many_arguments)]
    fn rename(
        &self,
        req: &RequestInfo,
        parent: NodeId,
        name: &OsStr,
        newparent: NodeId,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS)
    }
    /// Create hard link `newname` in `newparent` to `ino`.
    fn link(&self, req: &RequestInfo, ino: NodeId, newparent: NodeId, newname: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::ENOSYS)
    }
    /// Open a file; `flags` are open(2) flags. Answer with a handle.
    fn open(&self, req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS)
    }
    /// Read up to `args.size` bytes; a short answer means end of file.
    fn read(&self, req: &RequestInfo, ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        reply.error(Errno::ENOSYS)
    }
    /// Write `args.data` at `args.offset`.
    fn write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        reply.error(Errno::ENOSYS)
    }
    /// close(2) of one file descriptor: the synchronous commit point of a close.
    ///
    /// The contract fusebox gives (see docs/ARCHITECTURE.md, "Synchronous close"): when
    /// FLUSH arrives, every byte written through this file has already reached
    /// [`Filesystem::write`] (the kernel writes back dirty pages and waits for those WRITEs
    /// first), and the answer to FLUSH is what close(2) returns. So commit here and report
    /// commit errors (ENOSPC, EIO): close(2) returns them. A failed writeback WRITE already
    /// makes close(2) fail, with or without this method. POSIX record locks of `lock_owner` are
    /// released by close(2): a file system serving locks drops them here.
    fn flush(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, lock_owner: u64, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// The last reference to an open file went away. The kernel sends it after close(2) has
    /// returned; fusebox orders a RELEASE it has received before any later OPEN of the same
    /// inode (the OPEN waits until this method has answered).
    fn release(&self, req: &RequestInfo, ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        reply.ok()
    }
    /// fsync(2)/fdatasync(2).
    fn fsync(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// Open a directory.
    fn opendir(&self, req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS)
    }
    /// List a directory from cookie `offset`.
    fn readdir(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        reply.error(Errno::ENOSYS)
    }
    /// List a directory with attributes from cookie `offset`.
    fn readdirplus(
        &self,
        req: &RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        reply.error(Errno::ENOSYS)
    }
    /// Release a directory handle.
    fn releasedir(&self, req: &RequestInfo, ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        reply.ok()
    }
    /// fsync(2) on a directory.
    fn fsyncdir(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// File system statistics.
    fn statfs(&self, req: &RequestInfo, ino: NodeId, reply: ReplyStatfs) {
        reply.error(Errno::ENOSYS)
    }
    /// Set an extended attribute; `flags` are XATTR_CREATE / XATTR_REPLACE.
    fn setxattr(
        &self,
        req: &RequestInfo,
        ino: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS)
    }
    /// Get an extended attribute (`size` 0 = size probe; see [`ReplyXattr::value`]).
    fn getxattr(&self, req: &RequestInfo, ino: NodeId, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS)
    }
    /// List extended attribute names, NUL-separated.
    fn listxattr(&self, req: &RequestInfo, ino: NodeId, size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS)
    }
    /// Remove an extended attribute.
    fn removexattr(&self, req: &RequestInfo, ino: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// access(2); only sent without `default_permissions`.
    fn access(&self, req: &RequestInfo, ino: NodeId, mask: i32, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// Create and open a regular file.
    fn create(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs, reply: ReplyCreate) {
        reply.error(Errno::ENOSYS)
    }
    /// Create and open an unnamed regular file in `parent` (O_TMPFILE).
    fn tmpfile(&self, req: &RequestInfo, parent: NodeId, args: &CreateArgs, reply: ReplyCreate) {
        reply.error(Errno::ENOSYS)
    }
    /// Preallocate or punch a hole.
    fn fallocate(&self, req: &RequestInfo, ino: NodeId, args: &FallocateArgs, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// SEEK_DATA / SEEK_HOLE (other whences are handled by the kernel).
    fn lseek(
        &self,
        req: &RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS)
    }
    /// copy_file_range(2) between two open files of this file system.
    fn copy_file_range(&self, req: &RequestInfo, ino_in: NodeId, args: &CopyRangeArgs, reply: ReplyCopy) {
        reply.error(Errno::ENOSYS)
    }
    /// Test for a lock (F_GETLK): answer the first conflicting lock, or `args.lock` with
    /// `typ = F_UNLCK` when it could be granted. Only sent when the file system switched on
    /// `Capabilities::posix_locks` in [`Filesystem::init`]; otherwise the kernel keeps locks
    /// locally (per mount).
    fn getlk(&self, req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyLock) {
        reply.error(Errno::ENOSYS)
    }
    /// Take or release a lock (F_SETLK/F_SETLKW, and flock(2) when `args.flock`; flock
    /// requests come only with `Capabilities::flock_locks`). With `args.sleep`, wait for
    /// conflicting locks and answer EINTR when the request is interrupted (`reply.interrupt()`);
    /// otherwise answer EAGAIN on conflict.
    fn setlk(&self, req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }
    /// ioctl(2) on an open file.
    fn ioctl(&self, req: &RequestInfo, ino: NodeId, args: &IoctlArgs<'_>, reply: ReplyIoctl) {
        reply.error(Errno::ENOSYS)
    }
}
