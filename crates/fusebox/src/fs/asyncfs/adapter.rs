//! [`AsyncAdapter`]: runs an [`AsyncFilesystem`] as a [`Filesystem`] on a tokio runtime.

use super::{AsyncFilesystem, FsResult, WriteData};
use crate::fs::reply::*;
use crate::fs::types::*;
use crate::fs::Filesystem;
use crate::session::Capabilities;
use std::ffi::OsStr;
use std::future::Future;
use std::sync::Arc;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{Notify, Semaphore};

/// Settings of an [`AsyncAdapter`] that owns its runtime.
#[derive(Debug, Clone, Copy)]
pub struct AsyncAdapterOptions {
    /// Threads of the tokio runtime (default: one per CPU, at least 2).
    pub runtime_threads: usize,
    /// Background requests (writeback WRITEs, RELEASE, RELEASEDIR, FORGET) running at once;
    /// the rest wait (default 4).
    pub background_limit: usize,
    /// Threads of the second runtime that runs background requests, and whatever they spawn
    /// (uploads of written data), at nice [`BACKGROUND_NICE`] (default 1). A stat never waits
    /// for a runtime thread busy with write-back, nor competes with it for a CPU on equal terms.
    pub background_threads: usize,
}

/// Nice value of the background runtime's threads.
pub const BACKGROUND_NICE: i32 = 10;

impl Default for AsyncAdapterOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        AsyncAdapterOptions { runtime_threads: cpus.max(2), background_limit: 4, background_threads: 1 }
    }
}

/// Serves an [`AsyncFilesystem`] through the synchronous [`Filesystem`] interface: each request
/// becomes a task on a tokio runtime and its reply is sent when the task finishes, so replies
/// go out in any order and a worker never waits for a handler.
pub struct AsyncAdapter<F> {
    fs: Arc<F>,
    handle: Handle,
    /// Where background requests run (the same runtime as `handle` when given one).
    background_handle: Handle,
    background: Arc<Semaphore>,
    /// The runtimes, when the adapter created them (shut down with the adapter).
    owned: Vec<Runtime>,
}

impl<F: AsyncFilesystem> AsyncAdapter<F> {
    /// Serve `fs` on a runtime of its own.
    pub fn new(fs: F, opts: AsyncAdapterOptions) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.runtime_threads.max(1))
            .thread_name("fusebox-async")
            .enable_all()
            .build()?;
        let bg = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.background_threads.max(1))
            .thread_name("fusebox-async-bg")
            .on_thread_start(|| {
                if let Err(e) = crate::sys::set_thread_nice(BACKGROUND_NICE) {
                    tracing::debug!(error = %e, "background runtime thread keeps its nice value");
                }
            })
            .enable_all()
            .build()?;
        let mut adapter = Self::with_handle(Arc::new(fs), rt.handle().clone(), opts.background_limit);
        adapter.background_handle = bg.handle().clone();
        adapter.owned = vec![rt, bg];
        Ok(adapter)
    }

    /// Serve `fs` on an existing runtime (e.g. the application's own).
    pub fn with_handle(fs: Arc<F>, handle: Handle, background_limit: usize) -> Self {
        AsyncAdapter {
            fs,
            background_handle: handle.clone(),
            handle,
            background: Arc::new(Semaphore::new(background_limit.max(1))),
            owned: Vec::new(),
        }
    }

    /// The file system being served.
    pub fn inner(&self) -> &Arc<F> {
        &self.fs
    }

    /// Run `work` as a task and answer `reply` with its result. If the kernel interrupts the
    /// request first, the task's future is dropped (cancelled) and the answer is EINTR.
    fn spawn<R, T, W>(
        &self,
        background: bool,
        reply: R,
        work: impl FnOnce(Arc<F>) -> W,
        ok: impl FnOnce(R, T) + Send + 'static,
    ) where
        R: Reply,
        T: Send + 'static,
        W: Future<Output = FsResult<T>> + Send + 'static,
    {
        let fut = work(self.fs.clone());
        let gate = background.then(|| self.background.clone());
        let cancelled = Arc::new(Notify::new());
        let wake = cancelled.clone();
        // notify_one keeps a permit, so an interrupt before the task first polls still counts.
        reply.interrupt().on_interrupt(move || wake.notify_one());
        let handle = if background { &self.background_handle } else { &self.handle };
        handle.spawn(async move {
            let run = async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let _permit = match gate {
                    Some(s) => s.acquire_owned().await.ok(),
                    None => None,
                };
                fut.await
            };
            tokio::select! {
                r = run => match r {
                    Ok(v) => ok(reply, v),
                    Err(e) => reply.fail(e),
                },
                () = cancelled.notified() => reply.fail(Errno::EINTR),
            }
        });
    }

    /// Run a FORGET-like task that has no reply.
    fn spawn_background(&self, work: impl Future<Output = ()> + Send + 'static) {
        let gate = self.background.clone();
        self.background_handle.spawn(async move {
            let _permit = gate.acquire_owned().await.ok();
            work.await
        });
    }
}

impl<F> Drop for AsyncAdapter<F> {
    fn drop(&mut self) {
        for rt in self.owned.drain(..) {
            // Tasks still running drop their reply tokens, which answer EIO.
            rt.shutdown_background();
        }
    }
}

fn owned(name: &OsStr) -> std::ffi::OsString {
    name.to_os_string()
}

impl<F: AsyncFilesystem> Filesystem for AsyncAdapter<F> {
    fn init(&self, caps: &mut Capabilities) -> Result<(), Errno> {
        self.fs.init(caps)
    }

    fn mounted(&self, mount: &crate::fs::MountInfo) {
        self.fs.mounted(mount)
    }

    fn destroy(&self) {
        self.fs.destroy()
    }

    fn getlk(&self, req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyLock) {
        let (req, args) = (*req, *args);
        self.spawn(false, reply, |fs| async move { fs.getlk(req, ino, args).await }, |r, l| r.lock(&l))
    }

    fn setlk(&self, req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyEmpty) {
        let (req, args, intr) = (*req, *args, reply.interrupt());
        self.spawn(false, reply, |fs| async move { fs.setlk(req, ino, args, intr).await }, |r, ()| r.ok())
    }

    fn lookup(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        let (req, name) = (*req, owned(name));
        self.spawn(false, reply, |fs| async move { fs.lookup(req, parent, name).await }, |r, e| r.entry(&e))
    }

    fn forget(&self, ino: NodeId, nlookup: u64) {
        let fs = self.fs.clone();
        self.spawn_background(async move { fs.forget(ino, nlookup).await })
    }

    fn batch_forget(&self, nodes: &[(NodeId, u64)]) {
        let (fs, nodes) = (self.fs.clone(), nodes.to_vec());
        self.spawn_background(async move {
            for (ino, n) in nodes {
                fs.forget(ino, n).await
            }
        })
    }

    fn getattr(&self, req: &RequestInfo, ino: NodeId, fh: Option<FileHandle>, reply: ReplyAttr) {
        let req = *req;
        self.spawn(false, reply, |fs| async move { fs.getattr(req, ino, fh).await }, |r, a| r.attr(&a))
    }

    fn setattr(&self, req: &RequestInfo, ino: NodeId, attr: &SetAttr, reply: ReplyAttr) {
        let (req, attr) = (*req, *attr);
        self.spawn(false, reply, |fs| async move { fs.setattr(req, ino, attr).await }, |r, a| r.attr(&a))
    }

    fn readlink(&self, req: &RequestInfo, ino: NodeId, reply: ReplyData) {
        let req = *req;
        self.spawn(false, reply, |fs| async move { fs.readlink(req, ino).await }, |r, t| r.data(&t))
    }

    fn symlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, target: &OsStr, reply: ReplyEntry) {
        let (req, name, target) = (*req, owned(name), owned(target));
        self.spawn(
            false,
            reply,
            |fs| async move { fs.symlink(req, parent, name, target).await },
            |r, e| r.entry(&e),
        )
    }

    fn mknod(
        &self,
        req: &RequestInfo,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (req, name) = (*req, owned(name));
        self.spawn(
            false,
            reply,
            |fs| async move { fs.mknod(req, parent, name, mode, rdev).await },
            |r, e| r.entry(&e),
        )
    }

    fn mkdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, reply: ReplyEntry) {
        let (req, name) = (*req, owned(name));
        self.spawn(
            false,
            reply,
            |fs| async move { fs.mkdir(req, parent, name, mode).await },
            |r, e| r.entry(&e),
        )
    }

    fn unlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let (req, name) = (*req, owned(name));
        self.spawn(false, reply, |fs| async move { fs.unlink(req, parent, name).await }, |r, ()| r.ok())
    }

    fn rmdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let (req, name) = (*req, owned(name));
        self.spawn(false, reply, |fs| async move { fs.rmdir(req, parent, name).await }, |r, ()| r.ok())
    }

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
        let (req, name, newname) = (*req, owned(name), owned(newname));
        self.spawn(
            false,
            reply,
            |fs| async move { fs.rename(req, parent, name, newparent, newname, flags).await },
            |r, ()| r.ok(),
        )
    }

    fn link(&self, req: &RequestInfo, ino: NodeId, newparent: NodeId, newname: &OsStr, reply: ReplyEntry) {
        let (req, newname) = (*req, owned(newname));
        self.spawn(
            false,
            reply,
            |fs| async move { fs.link(req, ino, newparent, newname).await },
            |r, e| r.entry(&e),
        )
    }

    fn open(&self, req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        let req = *req;
        self.spawn(
            false,
            reply,
            |fs| async move { fs.open(req, ino, flags).await },
            |r, o| r.opened(o.fh, o.flags),
        )
    }

    fn read(&self, req: &RequestInfo, ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        let (req, args) = (*req, *args);
        self.spawn(false, reply, |fs| async move { fs.read(req, ino, args).await }, |r, d| r.data(&d))
    }

    fn write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        let background = args.is_writeback();
        let req = *req;
        let data = WriteData {
            fh: args.fh,
            offset: args.offset,
            data: args.data.to_vec(),
            write_flags: args.write_flags,
            flags: args.flags,
        };
        self.spawn(background, reply, |fs| async move { fs.write(req, ino, data).await }, |r, n| r.written(n))
    }

    fn flush(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, lock_owner: u64, reply: ReplyEmpty) {
        let req = *req;
        self.spawn(false, reply, |fs| async move { fs.flush(req, ino, fh, lock_owner).await }, |r, ()| r.ok())
    }

    fn release(&self, req: &RequestInfo, ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        let (req, args) = (*req, *args);
        self.spawn(true, reply, |fs| async move { fs.release(req, ino, args).await }, |r, ()| r.ok())
    }

    fn fsync(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let req = *req;
        self.spawn(false, reply, |fs| async move { fs.fsync(req, ino, fh, datasync).await }, |r, ()| r.ok())
    }

    fn opendir(&self, req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        let req = *req;
        self.spawn(
            false,
            reply,
            |fs| async move { fs.opendir(req, ino, flags).await },
            |r, o| r.opened(o.fh, o.flags),
        )
    }

    fn readdir(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let (req, max) = (*req, reply.capacity());
        self.spawn(
            false,
            reply,
            |fs| async move { fs.readdir(req, ino, fh, offset, max).await },
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

    fn readdirplus(
        &self,
        req: &RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let (req, max) = (*req, reply.capacity());
        let (fs, handle) = (self.fs.clone(), self.handle.clone());
        self.spawn(
            false,
            reply,
            |fs| async move { fs.readdirplus(req, ino, fh, offset, max).await },
            move |mut r, list| {
                let mut rest = list.into_iter();
                for e in rest.by_ref() {
                    if r.add(&e.entry, e.offset, &e.name) {
                        give_back(&fs, &handle, std::iter::once(e).chain(rest));
                        break;
                    }
                }
                r.ok()
            },
        )
    }

    fn releasedir(&self, req: &RequestInfo, ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        let (req, args) = (*req, *args);
        self.spawn(true, reply, |fs| async move { fs.releasedir(req, ino, args).await }, |r, ()| r.ok())
    }

    fn fsyncdir(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let req = *req;
        self.spawn(
            false,
            reply,
            |fs| async move { fs.fsyncdir(req, ino, fh, datasync).await },
            |r, ()| r.ok(),
        )
    }

    fn statfs(&self, req: &RequestInfo, ino: NodeId, reply: ReplyStatfs) {
        let req = *req;
        self.spawn(false, reply, |fs| async move { fs.statfs(req, ino).await }, |r, s| r.statfs(&s))
    }

    fn setxattr(
        &self,
        req: &RequestInfo,
        ino: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        reply: ReplyEmpty,
    ) {
        let (req, name, value) = (*req, owned(name), value.to_vec());
        self.spawn(
            false,
            reply,
            |fs| async move { fs.setxattr(req, ino, name, value, flags).await },
            |r, ()| r.ok(),
        )
    }

    fn getxattr(&self, req: &RequestInfo, ino: NodeId, name: &OsStr, size: u32, reply: ReplyXattr) {
        let (req, name) = (*req, owned(name));
        self.spawn(
            false,
            reply,
            |fs| async move { fs.getxattr(req, ino, name).await },
            move |r, v| r.value(size, &v),
        )
    }

    fn listxattr(&self, req: &RequestInfo, ino: NodeId, size: u32, reply: ReplyXattr) {
        let req = *req;
        self.spawn(
            false,
            reply,
            |fs| async move { fs.listxattr(req, ino).await },
            move |r, v| r.value(size, &v),
        )
    }

    fn removexattr(&self, req: &RequestInfo, ino: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let (req, name) = (*req, owned(name));
        self.spawn(false, reply, |fs| async move { fs.removexattr(req, ino, name).await }, |r, ()| r.ok())
    }

    fn access(&self, req: &RequestInfo, ino: NodeId, mask: i32, reply: ReplyEmpty) {
        let req = *req;
        self.spawn(false, reply, |fs| async move { fs.access(req, ino, mask).await }, |r, ()| r.ok())
    }

    fn create(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs, reply: ReplyCreate) {
        let (req, name, args) = (*req, owned(name), *args);
        self.spawn(
            false,
            reply,
            |fs| async move { fs.create(req, parent, name, args).await },
            |r, (e, o)| r.created(&e, o.fh, o.flags),
        )
    }

    fn tmpfile(&self, req: &RequestInfo, parent: NodeId, args: &CreateArgs, reply: ReplyCreate) {
        let (req, args) = (*req, *args);
        self.spawn(
            false,
            reply,
            |fs| async move { fs.tmpfile(req, parent, args).await },
            |r, (e, o)| r.created(&e, o.fh, o.flags),
        )
    }

    fn fallocate(&self, req: &RequestInfo, ino: NodeId, args: &FallocateArgs, reply: ReplyEmpty) {
        let (req, args) = (*req, *args);
        self.spawn(false, reply, |fs| async move { fs.fallocate(req, ino, args).await }, |r, ()| r.ok())
    }

    fn lseek(
        &self,
        req: &RequestInfo,
        ino: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let req = *req;
        self.spawn(
            false,
            reply,
            |fs| async move { fs.lseek(req, ino, fh, offset, whence).await },
            |r, off| r.offset(off),
        )
    }

    fn copy_file_range(&self, req: &RequestInfo, ino_in: NodeId, args: &CopyRangeArgs, reply: ReplyCopy) {
        let (req, args) = (*req, *args);
        self.spawn(
            false,
            reply,
            |fs| async move { fs.copy_file_range(req, ino_in, args).await },
            |r, n| r.copied(n),
        )
    }
}

/// Forget the lookups counted for READDIRPLUS entries that did not fit into the reply.
fn give_back<F: AsyncFilesystem>(
    fs: &Arc<F>,
    handle: &Handle,
    unsent: impl Iterator<Item = super::DirEntryPlus>,
) {
    let nodes: Vec<NodeId> =
        unsent.filter(|e| e.name != "." && e.name != "..").map(|e| e.entry.ino).collect();
    if nodes.is_empty() {
        return;
    }
    let fs = fs.clone();
    handle.spawn(async move {
        for ino in nodes {
            fs.forget(ino, 1).await
        }
    });
}
