//! The table of file system operations: one row per method, from which the synchronous
//! [`Filesystem`] trait, the [`AsyncFilesystem`] trait and the [`AsyncAdapter`] that serves the
//! second through the first are generated.
//!
//! A row reads
//! `name(arg: SyncType => AsyncType, ...) -> ReplyToken => Output { default, lane, map };`:
//! - the synchronous method takes `(&self, req: &RequestInfo, args..., reply: ReplyToken)`;
//! - the async method takes `(&self, req: RequestInfo, args...)` with each argument converted
//!   to its owned `AsyncType` (the same type when `=> AsyncType` is left out) and returns
//!   `FsResult<Output>`;
//! - `default` is `enosys` (answer ENOSYS) or `ok` (succeed: RELEASE, RELEASEDIR);
//! - `lane` is `sync` or `background`: where the adapter runs the task (see
//!   [`AsyncAdapterOptions`](super::asyncfs::AsyncAdapterOptions));
//! - `map` answers the reply token with the async method's value.
//!
//! Methods that do not fit a row (INIT, FORGET, WRITE's payload and class, READDIR's buffer
//! and give-back, xattr size probes, SETLK's interrupt handle) are written out once per trait
//! in the blocks at the top of the table.

#[cfg(feature = "tokio")]
use super::asyncfs::{
    sync_face::{dirents, dirents_plus},
    AsyncAdapter, DirEntry, DirEntryPlus, FsResult, IntoTask, IoctlData, IoctlOut, Opened, SyncAsAsync,
    TaskArg, WriteData,
};

/// The largest extended attribute value (and name list) Linux allows: what the sync-as-async
/// face asks a sync file system for.
#[cfg(feature = "tokio")]
const XATTR_SIZE_MAX: u32 = 65536;
use super::reply::*;
use super::types::*;
use super::MountInfo;
use crate::session::Capabilities;
use std::ffi::OsStr;
#[cfg(feature = "tokio")]
use {super::asyncfs::ReadData, super::Interrupt, std::ffi::OsString, std::future::Future};

macro_rules! sync_default {
    (enosys, $reply:ident) => {
        $reply.error(Errno::ENOSYS)
    };
    (ok, $reply:ident) => {
        $reply.ok()
    };
}

#[cfg(feature = "tokio")]
macro_rules! async_default {
    (enosys) => {
        Err(Errno::ENOSYS)
    };
    (ok) => {
        Ok(())
    };
}

#[cfg(feature = "tokio")]
macro_rules! background_lane {
    (sync) => {
        false
    };
    (background) => {
        true
    };
}

#[cfg(feature = "tokio")]
macro_rules! owned_type {
    ($sync:ty) => {
        $sync
    };
    ($sync:ty, $owned:ty) => {
        $owned
    };
}

macro_rules! filesystem_operations {
    (
        $(#[$sync_meta:meta])* sync { $($sync_items:tt)* }
        $(#[$async_meta:meta])* async { $($async_items:tt)* }
        adapter { $($adapter_items:tt)* }
        sync_face { $($sync_face_items:tt)* }
        $(
            $(#[$meta:meta])*
            $name:ident($($arg:ident: $sty:ty $(=> $aty:ty)?),*) -> $reply:ident => $out:ty {
                $default:ident, $lane:ident, $map:expr $(,)?
            };
        )*
    ) => {
        $(#[$sync_meta])*
        #[allow(unused_variables)]
        pub trait Filesystem: Send + Sync + 'static {
            $($sync_items)*
            $(
                $(#[$meta])*
                fn $name(&self, req: &RequestInfo, $($arg: $sty,)* reply: $reply) {
                    sync_default!($default, reply)
                }
            )*
        }

        $(#[$async_meta])*
        #[cfg(feature = "tokio")]
        #[allow(unused_variables)]
        pub trait AsyncFilesystem: Send + Sync + 'static {
            $($async_items)*
            $(
                $(#[$meta])*
                fn $name(
                    &self,
                    req: RequestInfo,
                    $($arg: owned_type!($sty $(, $aty)?),)*
                ) -> impl Future<Output = FsResult<$out>> + Send {
                    async { async_default!($default) }
                }
            )*
        }

        #[cfg(feature = "tokio")]
        impl<F: AsyncFilesystem> Filesystem for AsyncAdapter<F> {
            $($adapter_items)*
            $(
                #[allow(clippy::too_many_arguments)]
                fn $name(&self, req: &RequestInfo, $($arg: $sty,)* reply: $reply) {
                    let req = *req;
                    $(let $arg: owned_type!($sty $(, $aty)?) = IntoTask::into_task($arg);)*
                    self.spawn(
                        background_lane!($lane),
                        reply,
                        move |fs| async move { fs.$name(req, $($arg),*).await },
                        $map,
                    )
                }
            )*
        }

        #[cfg(feature = "tokio")]
        impl<F: Filesystem + ?Sized> AsyncFilesystem for SyncAsAsync<F> {
            $($sync_face_items)*
            $(
                fn $name(
                    &self,
                    req: RequestInfo,
                    $($arg: owned_type!($sty $(, $aty)?),)*
                ) -> impl Future<Output = FsResult<$out>> + Send {
                    let (reply, answer) = self.capture::<$reply>(None);
                    self.fs.$name(&req, $(TaskArg::sync_arg(&$arg),)* reply);
                    answer.value::<$out>()
                }
            )*
        }
    };
}

filesystem_operations! {
    /// A FUSE file system. Every method has a default that answers ENOSYS (or does nothing, for
    /// FORGET), so an implementation provides only what it supports.
    ///
    /// Methods take `&self` and are called from several worker threads at once: implementations
    /// use interior locking. Each method receives a reply token it must consume exactly once; it
    /// may answer inline or move the token to another thread and answer later.
    sync {
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
        /// The kernel dropped `nlookup` references to `ino`.
        fn forget(&self, ino: NodeId, nlookup: u64) {}
        /// Several FORGETs at once. The default calls [`Filesystem::forget`] for each.
        fn batch_forget(&self, nodes: &[(NodeId, u64)]) {
            for &(ino, n) in nodes {
                self.forget(ino, n)
            }
        }
        /// Write `args.data` at `args.offset`.
        fn write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
            reply.error(Errno::ENOSYS)
        }
        /// List a directory from cookie `args.offset` (the reply token stops at `args.max_bytes`).
        fn readdir(&self, req: &RequestInfo, ino: NodeId, args: &ReaddirArgs, reply: ReplyDirectory) {
            reply.error(Errno::ENOSYS)
        }
        /// List a directory with attributes from cookie `args.offset`. The default lists what
        /// [`Filesystem::readdir`] gives, names only ([`ReplyDirectoryPlus::names_only`]): the
        /// kernel then looks each name up when it is used.
        fn readdirplus(&self, req: &RequestInfo, ino: NodeId, args: &ReaddirArgs, reply: ReplyDirectoryPlus) {
            self.readdir(req, ino, args, reply.names_only())
        }
        /// Get an extended attribute (`size` 0 = size probe; see [`ReplyXattr::value`]).
        fn getxattr(&self, req: &RequestInfo, ino: NodeId, name: &OsStr, size: u32, reply: ReplyXattr) {
            reply.error(Errno::ENOSYS)
        }
        /// List extended attribute names, NUL-separated.
        fn listxattr(&self, req: &RequestInfo, ino: NodeId, size: u32, reply: ReplyXattr) {
            reply.error(Errno::ENOSYS)
        }
        /// Take or release a lock (F_SETLK/F_SETLKW, and flock(2) when `args.flock`; flock
        /// requests come only with `Capabilities::flock_locks`). With `args.sleep`, wait for
        /// conflicting locks and answer EINTR when the request is interrupted
        /// (`reply.interrupt()`); otherwise answer EAGAIN on conflict.
        fn setlk(&self, req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyEmpty) {
            reply.error(Errno::ENOSYS)
        }
        /// ioctl(2) on an open file.
        fn ioctl(&self, req: &RequestInfo, ino: NodeId, args: &IoctlArgs<'_>, reply: ReplyIoctl) {
            reply.error(Errno::ENOSYS)
        }
    }

    /// A FUSE file system with async handlers. Every method defaults to ENOSYS (RELEASE and
    /// RELEASEDIR default to success, FORGET to nothing), like [`Filesystem`].
    ///
    /// Methods return `impl Future + Send`: implement them with `async fn`. The futures run on
    /// the adapter's tokio runtime, many at once, so implementations use interior locking
    /// (prefer locks that are never held across an `.await`).
    ///
    /// READDIRPLUS contract: every returned entry except `.` and `..` counts as one LOOKUP;
    /// entries that do not fit into the kernel's buffer are given back with
    /// [`AsyncFilesystem::forget`].
    async {
        /// Called once during INIT (synchronously, before any other request).
        fn init(&self, caps: &mut Capabilities) -> FsResult<()> {
            Ok(())
        }
        /// The mount is live: keep `mount.notifier` to push invalidations (from any task).
        fn mounted(&self, mount: &MountInfo) {}
        /// The session is ending.
        fn destroy(&self) {}
        /// The kernel dropped `nlookup` references to `ino`.
        fn forget(&self, ino: NodeId, nlookup: u64) -> impl Future<Output = ()> + Send {
            async {}
        }
        /// Write; returns the number of bytes written.
        fn write(&self, req: RequestInfo, ino: NodeId, args: WriteData) -> impl Future<Output = FsResult<u32>> + Send {
            async { Err(Errno::ENOSYS) }
        }
        /// Directory entries after cookie `args.offset`; `args.max_bytes` is the kernel's
        /// buffer size (a hint: what does not fit is asked for again). An empty list means end
        /// of directory.
        fn readdir(&self, req: RequestInfo, ino: NodeId, args: ReaddirArgs) -> impl Future<Output = FsResult<Vec<DirEntry>>> + Send {
            async { Err(Errno::ENOSYS) }
        }
        /// Directory entries with attributes (see the READDIRPLUS contract on the trait). The
        /// default lists what [`AsyncFilesystem::readdir`] returns, names only
        /// ([`DirEntryPlus::name_only`]): the kernel then looks each name up when it is used.
        fn readdirplus(&self, req: RequestInfo, ino: NodeId, args: ReaddirArgs) -> impl Future<Output = FsResult<Vec<DirEntryPlus>>> + Send {
            let list = self.readdir(req, ino, args);
            async move { Ok(list.await?.into_iter().map(DirEntryPlus::name_only).collect()) }
        }
        /// The value of an extended attribute (the adapter answers size probes and ERANGE).
        fn getxattr(&self, req: RequestInfo, ino: NodeId, name: OsString) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
            async { Err(Errno::ENOSYS) }
        }
        /// The NUL-separated list of extended attribute names.
        fn listxattr(&self, req: RequestInfo, ino: NodeId) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
            async { Err(Errno::ENOSYS) }
        }
        /// Take or release a lock. With `args.sleep`, wait for conflicting locks; `interrupt`
        /// fires when the caller gives up (the adapter then also drops this future and answers
        /// EINTR), for waits that happen outside the future (e.g. on a blocking thread).
        fn setlk(&self, req: RequestInfo, ino: NodeId, args: LockArgs, interrupt: Interrupt) -> impl Future<Output = FsResult<()>> + Send {
            async { Err(Errno::ENOSYS) }
        }
        /// ioctl(2) on an open file: the ioctl's result and output bytes.
        fn ioctl(&self, req: RequestInfo, ino: NodeId, args: IoctlData) -> impl Future<Output = FsResult<IoctlOut>> + Send {
            async { Err(Errno::ENOSYS) }
        }
    }

    adapter {
        fn init(&self, caps: &mut Capabilities) -> Result<(), Errno> {
            self.inner().init(caps)
        }
        fn mounted(&self, mount: &MountInfo) {
            self.inner().mounted(mount)
        }
        fn destroy(&self) {
            self.inner().destroy()
        }
        fn forget(&self, ino: NodeId, nlookup: u64) {
            self.spawn_background(move |fs| async move { fs.forget(ino, nlookup).await })
        }
        fn batch_forget(&self, nodes: &[(NodeId, u64)]) {
            let nodes = nodes.to_vec();
            self.spawn_background(move |fs| async move {
                for (ino, n) in nodes {
                    fs.forget(ino, n).await
                }
            })
        }
        fn write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
            let (req, background, data) = (*req, args.is_writeback(), WriteData::from(args));
            self.spawn(background, reply, move |fs| async move { fs.write(req, ino, data).await }, |r, n| r.written(n))
        }
        fn readdir(&self, req: &RequestInfo, ino: NodeId, args: &ReaddirArgs, reply: ReplyDirectory) {
            let (req, args) = (*req, *args);
            self.spawn(
                false,
                reply,
                move |fs| async move { fs.readdir(req, ino, args).await },
                |mut r, list| {
                    for e in list {
                        if r.add(e.ino, e.offset, e.kind, &e.name) {
                            break;
                        }
                    }
                    r.ok()
                },
            )
        }
        fn readdirplus(&self, req: &RequestInfo, ino: NodeId, args: &ReaddirArgs, reply: ReplyDirectoryPlus) {
            let (req, args, give_back) = (*req, *args, self.give_back());
            self.spawn(
                false,
                reply,
                move |fs| async move { fs.readdirplus(req, ino, args).await },
                move |mut r, list| {
                    let mut rest = list.into_iter();
                    for e in rest.by_ref() {
                        if r.add(&e.entry, e.offset, &e.name) {
                            give_back(std::iter::once(e).chain(rest).collect());
                            break;
                        }
                    }
                    r.ok()
                },
            )
        }
        fn getxattr(&self, req: &RequestInfo, ino: NodeId, name: &OsStr, size: u32, reply: ReplyXattr) {
            let (req, name) = (*req, name.to_os_string());
            self.spawn(false, reply, move |fs| async move { fs.getxattr(req, ino, name).await }, move |r, v| r.value(size, &v))
        }
        fn listxattr(&self, req: &RequestInfo, ino: NodeId, size: u32, reply: ReplyXattr) {
            let req = *req;
            self.spawn(false, reply, move |fs| async move { fs.listxattr(req, ino).await }, move |r, v| r.value(size, &v))
        }
        fn setlk(&self, req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyEmpty) {
            let (req, args, intr) = (*req, *args, reply.interrupt());
            self.spawn(false, reply, move |fs| async move { fs.setlk(req, ino, args, intr).await }, |r, ()| r.ok())
        }
        fn ioctl(&self, req: &RequestInfo, ino: NodeId, args: &IoctlArgs<'_>, reply: ReplyIoctl) {
            let (req, args) = (*req, IoctlData::from(args));
            self.spawn(false, reply, move |fs| async move { fs.ioctl(req, ino, args).await }, |r, o| r.ioctl(o.result, &o.data))
        }
    }

    sync_face {
        fn init(&self, caps: &mut Capabilities) -> FsResult<()> {
            self.fs.init(caps)
        }
        fn mounted(&self, mount: &MountInfo) {
            self.fs.mounted(mount)
        }
        fn destroy(&self) {
            self.fs.destroy()
        }
        fn forget(&self, ino: NodeId, nlookup: u64) -> impl Future<Output = ()> + Send {
            self.fs.forget(ino, nlookup);
            async {}
        }
        fn write(&self, req: RequestInfo, ino: NodeId, args: WriteData) -> impl Future<Output = FsResult<u32>> + Send {
            let (reply, answer) = self.capture::<ReplyWrite>(None);
            self.fs.write(&req, ino, &args.as_args(), reply);
            answer.value::<u32>()
        }
        fn readdir(&self, req: RequestInfo, ino: NodeId, args: ReaddirArgs) -> impl Future<Output = FsResult<Vec<DirEntry>>> + Send {
            let (r, answer) = self.capture_responder(None);
            self.fs.readdir(&req, ino, &args, ReplyDirectory::new(r, args.max_bytes));
            async move { dirents(&answer.payload().await?) }
        }
        fn readdirplus(&self, req: RequestInfo, ino: NodeId, args: ReaddirArgs) -> impl Future<Output = FsResult<Vec<DirEntryPlus>>> + Send {
            let (r, answer) = self.capture_responder(None);
            self.fs.readdirplus(&req, ino, &args, ReplyDirectoryPlus::new(r, args.max_bytes));
            async move { dirents_plus(&answer.payload().await?) }
        }
        fn getxattr(&self, req: RequestInfo, ino: NodeId, name: OsString) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
            let (reply, answer) = self.capture::<ReplyXattr>(None);
            self.fs.getxattr(&req, ino, &name, XATTR_SIZE_MAX, reply);
            answer.value::<Vec<u8>>()
        }
        fn listxattr(&self, req: RequestInfo, ino: NodeId) -> impl Future<Output = FsResult<Vec<u8>>> + Send {
            let (reply, answer) = self.capture::<ReplyXattr>(None);
            self.fs.listxattr(&req, ino, XATTR_SIZE_MAX, reply);
            answer.value::<Vec<u8>>()
        }
        fn setlk(&self, req: RequestInfo, ino: NodeId, args: LockArgs, interrupt: Interrupt) -> impl Future<Output = FsResult<()>> + Send {
            let (reply, answer) = self.capture::<ReplyEmpty>(Some(interrupt));
            self.fs.setlk(&req, ino, &args, reply);
            answer.value::<()>()
        }
        fn ioctl(&self, req: RequestInfo, ino: NodeId, args: IoctlData) -> impl Future<Output = FsResult<IoctlOut>> + Send {
            let (reply, answer) = self.capture::<ReplyIoctl>(None);
            self.fs.ioctl(&req, ino, &args.as_args(), reply);
            answer.value::<IoctlOut>()
        }
    }

    /// Look up `name` in `parent`; a successful answer counts one lookup of the inode.
    lookup(parent: NodeId, name: &OsStr => OsString) -> ReplyEntry => Entry { enosys, sync, |r, e| r.entry(&e) };
    /// Attributes of `ino` (`fh` is set when called through an open file).
    getattr(ino: NodeId, fh: Option<FileHandle>) -> ReplyAttr => FileAttr { enosys, sync, |r, a| r.attr(&a) };
    /// statx(2) asked for more than GETATTR answers (the birth time): the attributes with the
    /// birth time and attribute flags. ENOSYS (the default) makes the kernel stop asking.
    statx(ino: NodeId, fh: Option<FileHandle>) -> ReplyStatx => Statx { enosys, sync, |r, s| r.statx(&s) };
    /// Change attributes (chmod, chown, truncate, utimens); answer the new ones.
    setattr(ino: NodeId, attr: &SetAttr => SetAttr) -> ReplyAttr => FileAttr { enosys, sync, |r, a| r.attr(&a) };
    /// The target of symlink `ino`.
    readlink(ino: NodeId) -> ReplyData => Vec<u8> { enosys, sync, |r, t| r.data(&t) };
    /// Create symlink `name` in `parent` pointing at `target`.
    symlink(parent: NodeId, name: &OsStr => OsString, target: &OsStr => OsString) -> ReplyEntry => Entry {
        enosys, sync, |r, e| r.entry(&e)
    };
    /// Create a special or regular file (`mode` includes the type bits).
    mknod(parent: NodeId, name: &OsStr => OsString, mode: u32, rdev: u32) -> ReplyEntry => Entry {
        enosys, sync, |r, e| r.entry(&e)
    };
    /// Create a directory.
    mkdir(parent: NodeId, name: &OsStr => OsString, mode: u32) -> ReplyEntry => Entry {
        enosys, sync, |r, e| r.entry(&e)
    };
    /// Remove a non-directory name.
    unlink(parent: NodeId, name: &OsStr => OsString) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// Remove an empty directory.
    rmdir(parent: NodeId, name: &OsStr => OsString) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// Rename; `flags` may hold RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT.
    #[allow(clippy::too_many_arguments)]
    rename(
        parent: NodeId,
        name: &OsStr => OsString,
        newparent: NodeId,
        newname: &OsStr => OsString,
        flags: u32
    ) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// Create hard link `newname` in `newparent` to `ino`.
    link(ino: NodeId, newparent: NodeId, newname: &OsStr => OsString) -> ReplyEntry => Entry {
        enosys, sync, |r, e| r.entry(&e)
    };
    /// Open a file; `flags` are open(2) flags. Answer with a handle.
    open(ino: NodeId, flags: i32) -> ReplyOpen => Opened { enosys, sync, |r, o| r.opened(o.fh, o.flags) };
    /// Read up to `args.size` bytes; a short answer means end of file. The async answer may be
    /// several pieces (`asyncfs::ReadData`), sent with one vectored write.
    read(ino: NodeId, args: &ReadArgs => ReadArgs) -> ReplyData => ReadData {
        enosys, sync, |r, d| r.data_vectored(&d.slices())
    };
    /// close(2) of one file descriptor: the synchronous commit point of a close.
    ///
    /// The contract fusebox gives (see docs/ARCHITECTURE.md, "Synchronous close"): when
    /// FLUSH arrives, every byte written through this file has already reached `write` (the
    /// kernel writes back dirty pages and waits for those WRITEs first), and the answer to
    /// FLUSH is what close(2) returns. So commit here and report commit errors (ENOSPC, EIO):
    /// close(2) returns them. A failed writeback WRITE already makes close(2) fail, with or
    /// without this method. POSIX record locks of `lock_owner` are released by close(2): a file
    /// system serving locks drops them here.
    flush(ino: NodeId, fh: FileHandle, lock_owner: u64) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// The last reference to an open file went away. The kernel sends it after close(2) has
    /// returned; fusebox orders a RELEASE it has received before any later OPEN of the same
    /// inode (the OPEN waits until this method has answered).
    release(ino: NodeId, args: &ReleaseArgs => ReleaseArgs) -> ReplyEmpty => () { ok, background, |r, ()| r.ok() };
    /// fsync(2)/fdatasync(2): make a file's data (and metadata unless `datasync`) durable.
    fsync(ino: NodeId, fh: FileHandle, datasync: bool) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// Open a directory.
    opendir(ino: NodeId, flags: i32) -> ReplyOpen => Opened { enosys, sync, |r, o| r.opened(o.fh, o.flags) };
    /// Release a directory handle.
    releasedir(ino: NodeId, args: &ReleaseArgs => ReleaseArgs) -> ReplyEmpty => () { ok, background, |r, ()| r.ok() };
    /// fsync(2) on a directory.
    fsyncdir(ino: NodeId, fh: FileHandle, datasync: bool) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// File system statistics.
    statfs(ino: NodeId) -> ReplyStatfs => Statfs { enosys, sync, |r, s| r.statfs(&s) };
    /// Set an extended attribute; `flags` are XATTR_CREATE / XATTR_REPLACE.
    setxattr(ino: NodeId, name: &OsStr => OsString, value: &[u8] => Vec<u8>, flags: i32) -> ReplyEmpty => () {
        enosys, sync, |r, ()| r.ok()
    };
    /// Remove an extended attribute.
    removexattr(ino: NodeId, name: &OsStr => OsString) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// access(2); only sent without `default_permissions`.
    access(ino: NodeId, mask: i32) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// Create and open a regular file.
    create(parent: NodeId, name: &OsStr => OsString, args: &CreateArgs => CreateArgs) -> ReplyCreate => (Entry, Opened) {
        enosys, sync, |r, (e, o)| r.created(&e, o.fh, o.flags)
    };
    /// Create and open an unnamed regular file in `parent` (O_TMPFILE).
    tmpfile(parent: NodeId, args: &CreateArgs => CreateArgs) -> ReplyCreate => (Entry, Opened) {
        enosys, sync, |r, (e, o)| r.created(&e, o.fh, o.flags)
    };
    /// Preallocate or punch a hole.
    fallocate(ino: NodeId, args: &FallocateArgs => FallocateArgs) -> ReplyEmpty => () { enosys, sync, |r, ()| r.ok() };
    /// SEEK_DATA / SEEK_HOLE (other whences are handled by the kernel).
    lseek(ino: NodeId, fh: FileHandle, offset: u64, whence: i32) -> ReplyLseek => u64 { enosys, sync, |r, off| r.offset(off) };
    /// copy_file_range(2) between two open files of this file system; answer the bytes copied.
    copy_file_range(ino_in: NodeId, args: &CopyRangeArgs => CopyRangeArgs) -> ReplyCopy => u64 {
        enosys, sync, |r, n| r.copied(n)
    };
    /// Test for a lock (F_GETLK): answer the first conflicting lock, or `args.lock` with
    /// `typ = F_UNLCK` when it could be granted. Only sent when the file system switched on
    /// `Capabilities::posix_locks` in `init`; otherwise the kernel keeps locks locally (per
    /// mount).
    getlk(ino: NodeId, args: &LockArgs => LockArgs) -> ReplyLock => FileLock { enosys, sync, |r, l| r.lock(&l) };
}
