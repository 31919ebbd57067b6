//! Transport-independent request handling: decode a buffer, run INIT, dispatch to the
//! [`Filesystem`], and make sure every request that needs an answer gets exactly one.

use super::init::{kernel_max_pages_limit, negotiate, Capabilities, InitError, Negotiated};
use super::notify::{Notifier, Retrievals};
use super::order::{ReleaseGuard, ReleaseOrder};
use super::retire::Retirements;
use crate::abi::{self, opcode::*};
use crate::fs::*;
use crate::sched::BackgroundGate;
use crate::sched::{peek_class, RequestClass, Stats};
use crate::transport::ReplyChannel;
use crate::wire::reply::{send_notify, send_reply};
use crate::wire::{in_header, needs_reply, opcode_name, parse, Operation, ParseOptions, Request};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use zerocopy::IntoBytes;

/// What happened to one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Keep serving.
    Continue,
    /// INIT completed with these parameters.
    Initialized(Negotiated),
    /// INIT failed; the session cannot go on.
    InitFailed(InitError),
    /// DESTROY was received: the session ends.
    Destroyed,
}

/// The request-handling core shared by all worker threads of a session.
pub struct Server {
    fs: Arc<dyn Filesystem>,
    caps: Mutex<Capabilities>,
    shared: Arc<ReplyShared>,
    negotiated: OnceLock<Negotiated>,
    destroyed: AtomicBool,
    debug: bool,
    gate: OnceLock<Arc<BackgroundGate>>,
    workers: Arc<AtomicUsize>,
    interrupts: Arc<InterruptRegistry>,
    retrievals: Arc<Retrievals>,
    releases: Arc<ReleaseOrder>,
}

impl Server {
    /// A server for `fs` that will ask for `caps` and tell the kernel `ttl`.
    pub fn new(fs: Arc<dyn Filesystem>, caps: Capabilities, ttl: Ttl, debug: bool) -> Server {
        let shared = Arc::new(ReplyShared {
            ttl,
            stats: Arc::new(Stats::default()),
            splice_write: caps.splice_write,
            retired: Retirements::default(),
            notify_chan: OnceLock::new(),
        });
        Server {
            fs,
            caps: Mutex::new(caps),
            shared,
            negotiated: OnceLock::new(),
            destroyed: AtomicBool::new(false),
            debug,
            gate: OnceLock::new(),
            workers: Arc::new(AtomicUsize::new(0)),
            interrupts: Arc::default(),
            retrievals: Arc::default(),
            releases: Arc::default(),
        }
    }

    /// Attach the background gate of the worker pool (for queue-depth reporting).
    pub(crate) fn set_gate(&self, gate: Arc<BackgroundGate>) {
        let _ = self.gate.set(gate);
    }

    /// The background gate, when classes are on.
    pub fn gate(&self) -> Option<&Arc<BackgroundGate>> {
        self.gate.get()
    }

    /// The live worker count, shared with the pool.
    pub(crate) fn workers_counter(&self) -> Arc<AtomicUsize> {
        self.workers.clone()
    }

    /// Workers alive now.
    pub fn workers(&self) -> usize {
        self.workers.load(Ordering::SeqCst)
    }

    /// Send the framework's own notifications on `dev` (a `/dev/fuse` fd of this session). A
    /// request that came over another transport (an io_uring entry) must not carry them: its
    /// channel takes exactly one reply.
    pub(crate) fn set_notify_channel(&self, dev: Arc<dyn ReplyChannel>) {
        let _ = self.shared.notify_chan.set(dev);
    }

    /// A notifier writing to `chan` (any `/dev/fuse` fd of this session).
    pub fn notifier(&self, chan: Arc<dyn ReplyChannel>) -> Notifier {
        Notifier::new(chan, self.retrievals.clone())
    }

    /// Statistics of this server.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }

    /// INIT parameters, once negotiated.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated.get().copied()
    }

    /// The file system being served.
    pub fn filesystem(&self) -> &Arc<dyn Filesystem> {
        &self.fs
    }

    /// Call the file system's `destroy` once (on DESTROY or at session end).
    pub fn destroy_once(&self) {
        if !self.destroyed.swap(true, Ordering::SeqCst) {
            self.fs.destroy();
        }
    }

    /// Handle one request buffer read from `chan`. Never panics: a handler panic is caught
    /// and the request answered EIO (by the dropped reply token).
    pub fn handle(&self, buf: &[u8], chan: &Arc<dyn ReplyChannel>) -> Handled {
        self.received(buf);
        self.handle_classified(buf, chan, peek_class(buf))
    }

    /// Note a request as soon as it is read, before any queueing: a RELEASE is counted against
    /// its inode so that a later OPEN of that inode waits for it (session/order.rs). Every
    /// transport calls this once per request buffer, then `handle_classified`.
    pub(crate) fn received(&self, buf: &[u8]) {
        if let Some(h) = in_header(buf).filter(|h| h.opcode == FUSE_RELEASE) {
            self.releases.noted(h.nodeid);
        }
    }

    /// [`Server::handle`] for a caller that has already classified `buf` with
    /// [`peek_class`] (the worker pool does, to route background requests).
    pub(crate) fn handle_classified(
        &self,
        buf: &[u8],
        chan: &Arc<dyn ReplyChannel>,
        class: RequestClass,
    ) -> Handled {
        let opts = ParseOptions { setxattr_ext: false };
        let req = match parse(buf, opts) {
            Ok(r) => r,
            Err(e) => {
                // Answer EINVAL when we can at least identify the request.
                if let Some(h) = in_header(buf) {
                    tracing::warn!(unique = h.unique, opcode = opcode_name(h.opcode), error = %e, "malformed request");
                    if h.opcode == FUSE_RELEASE {
                        self.releases.released(h.nodeid);
                    }
                    if needs_reply(h.opcode) {
                        let _ = send_reply(&**chan, h.unique, -libc::EINVAL, &[]);
                    }
                } else {
                    tracing::warn!(error = %e, len = buf.len(), "malformed request header");
                }
                return Handled::Continue;
            }
        };
        if self.debug {
            tracing::debug!(
                unique = req.header.unique,
                op = opcode_name(req.header.opcode),
                nodeid = req.header.nodeid,
                uid = req.header.uid,
                pid = req.header.pid,
                "request"
            );
        }
        if let Operation::Init { arg: init } = &req.op {
            return self.init(req.header.unique, init, chan);
        }
        if self.negotiated.get().is_none() {
            tracing::warn!(op = opcode_name(req.header.opcode), "request before INIT");
            if req.header.opcode == FUSE_RELEASE {
                self.releases.released(req.header.nodeid);
            }
            let _ = send_reply(&**chan, req.header.unique, -libc::EIO, &[]);
            return Handled::Continue;
        }
        let destroy = matches!(req.op, Operation::Destroy {});
        let result = catch_unwind(AssertUnwindSafe(|| self.dispatch(req, chan, class)));
        if result.is_err() {
            tracing::error!("file system handler panicked; request answered EIO");
        }
        if destroy {
            Handled::Destroyed
        } else {
            Handled::Continue
        }
    }

    fn init(&self, unique: u64, init: &abi::fuse_init_in, chan: &Arc<dyn ReplyChannel>) -> Handled {
        let mut caps = self.caps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = self.fs.init(&mut caps) {
            tracing::error!(error = %e, "file system refused INIT");
            let _ = send_reply(&**chan, unique, -e.0, &[]);
            return Handled::InitFailed(InitError::TooOld(0));
        }
        match negotiate(init, &caps, kernel_max_pages_limit()) {
            Ok((out, neg)) => {
                let _ = send_reply(&**chan, unique, 0, &[out.as_bytes()]);
                tracing::debug!(
                    minor = neg.minor,
                    max_write = neg.max_write,
                    max_pages = neg.max_pages,
                    max_readahead = neg.max_readahead,
                    max_background = neg.max_background,
                    congestion_threshold = neg.congestion_threshold,
                    time_gran = neg.time_gran,
                    flags = ?neg.flag_names(),
                    "INIT negotiated"
                );
                let _ = self.negotiated.set(neg);
                *self.caps.lock().unwrap_or_else(|e| e.into_inner()) = caps;
                Handled::Initialized(neg)
            }
            Err(e) => {
                tracing::error!(error = %e, "INIT failed");
                let _ = send_reply(&**chan, unique, -libc::EPROTO, &[]);
                Handled::InitFailed(e)
            }
        }
    }

    /// True when the kernel's write-back page cache is on for this session.
    pub fn writeback(&self) -> bool {
        self.negotiated.get().is_some_and(|n| n.has(abi::init_flags::FUSE_WRITEBACK_CACHE))
    }

    /// The open(2) flags a file system sees for OPEN/CREATE/TMPFILE.
    ///
    /// Write-back cache rules, applied here so that no file system can get them wrong:
    /// - O_WRONLY becomes O_RDWR: the kernel reads pages from the server to fill partially
    ///   written pages, through whichever handle it has, so every writable handle must also
    ///   be readable in the backing store.
    /// - O_APPEND is stripped: the kernel owns the file size and computes each write's offset;
    ///   a backing fd opened O_APPEND would write at the backing file's end instead and two
    ///   appenders would overwrite each other.
    fn open_flags(&self, flags: i32) -> i32 {
        if !self.writeback() {
            return flags;
        }
        let mut f = flags & !libc::O_APPEND;
        if f & libc::O_ACCMODE == libc::O_WRONLY {
            f = (f & !libc::O_ACCMODE) | libc::O_RDWR;
        }
        f
    }

    /// HANDLE_KILLPRIV_V2 rule: an OPEN with O_TRUNC by a caller without CAP_FSETID carries
    /// FUSE_OPEN_KILL_SUIDGID, and the server must clear suid (and sgid if group-executable)
    /// as a truncating write would. The framework does it with a SETATTR(kill_suidgid) to the
    /// file system before the OPEN, so no file system needs an extra open argument. Its answer
    /// is captured here, not sent to the kernel.
    fn kill_suidgid_before_open(&self, info: &RequestInfo, ino: NodeId, dev: &Arc<dyn ReplyChannel>) {
        let capture = Arc::new(crate::transport::mem::MemChannel::new());
        let chan: Arc<dyn ReplyChannel> = capture.clone();
        let op = abi::opcode::FUSE_SETATTR;
        self.shared.stats.begin(op, RequestClass::Sync, 0);
        let reply = Responder::new(chan, self.shared.clone(), info.unique, op, RequestClass::Sync);
        let attr = SetAttr { kill_suidgid: true, ..Default::default() };
        self.fs.setattr(info, ino, &attr, ReplyAttr(reply));
        if let Some(out) = capture.next_reply(std::time::Duration::ZERO) {
            let error = i32::from_ne_bytes(out[4..8].try_into().expect("out header"));
            if error != 0 {
                tracing::warn!(ino = ino.0, error, "clearing suid/sgid before a truncating open failed");
            } else {
                notify_attrs_changed(self.shared.notify_channel(dev), ino);
            }
        }
    }

    /// HANDLE_KILLPRIV_V2 rule for FALLOCATE: a local file system clears suid/sgid on any
    /// fallocate by a caller without CAP_FSETID (file_modified), but with KILLPRIV_V2 the
    /// kernel leaves that to the server and FALLOCATE carries no flag saying so. The framework
    /// clears them (same internal SETATTR as a truncating OPEN) when the caller is not root,
    /// the closest a server can get to "has no CAP_FSETID".
    fn fallocate_kills_suidgid(&self, uid: u32) -> bool {
        uid != 0 && self.negotiated.get().is_some_and(|n| n.has(abi::init_flags::FUSE_HANDLE_KILLPRIV_V2))
    }

    /// The reply token of a FLUSH or FSYNC: with the write-back cache its error means data the
    /// kernel holds was not committed, so the node's kernel inode is retired (session/retire.rs).
    fn commit_reply(&self, r: Responder, ino: NodeId) -> Responder {
        if self.writeback() {
            r.retiring_on_error(ino.0)
        } else {
            r
        }
    }

    fn dispatch(&self, req: Request<'_>, chan: &Arc<dyn ReplyChannel>, class: RequestClass) {
        let h = req.header;
        let stats = &self.shared.stats;
        stats.begin(h.opcode, class, h.len as usize);
        let umask = match &req.op {
            Operation::Mknod { arg, .. } => arg.umask,
            Operation::Mkdir { arg, .. } => arg.umask,
            Operation::Create { arg, .. } => arg.umask,
            Operation::Tmpfile { arg } => arg.umask,
            _ => 0,
        };
        let info = RequestInfo { unique: h.unique, uid: h.uid, gid: h.gid, pid: h.pid, umask };
        let ino = NodeId(h.nodeid);
        let r = || {
            let intr = self.interrupts.begin(h.unique);
            let reg = Registration { registry: self.interrupts.clone(), unique: h.unique };
            Responder::new(chan.clone(), self.shared.clone(), h.unique, h.opcode, class).registered(intr, reg)
        };
        let fs = &*self.fs;
        let max_readdir = |size: u32| (size as usize).min(1 << 20);
        match req.op {
            Operation::Lookup { name } => fs.lookup(&info, ino, name, ReplyEntry(r())),
            Operation::Forget { arg } => {
                let start = Instant::now();
                fs.forget(ino, arg.nlookup);
                stats.end(h.opcode, class, false, 0, start.elapsed());
            }
            Operation::BatchForget { list } => {
                let start = Instant::now();
                let nodes: Vec<(NodeId, u64)> = list.iter().map(|f| (NodeId(f.nodeid), f.nlookup)).collect();
                fs.batch_forget(&nodes);
                stats.end(h.opcode, class, false, 0, start.elapsed());
            }
            Operation::Getattr { arg } => {
                let fh = (arg.getattr_flags & abi::FUSE_GETATTR_FH != 0).then_some(FileHandle(arg.fh));
                fs.getattr(&info, ino, fh, ReplyAttr(r()))
            }
            Operation::Setattr { arg } => fs.setattr(&info, ino, &SetAttr::from_abi(&arg), ReplyAttr(r())),
            Operation::Readlink {} => fs.readlink(&info, ino, ReplyData(r())),
            Operation::Symlink { name, target } => fs.symlink(&info, ino, name, target, ReplyEntry(r())),
            Operation::Mknod { arg, name } => fs.mknod(&info, ino, name, arg.mode, arg.rdev, ReplyEntry(r())),
            Operation::Mkdir { arg, name } => {
                fs.mkdir(&info, ino, name, arg.mode | libc::S_IFDIR, ReplyEntry(r()))
            }
            Operation::Unlink { name } => fs.unlink(&info, ino, name, ReplyEmpty(r())),
            Operation::Rmdir { name } => fs.rmdir(&info, ino, name, ReplyEmpty(r())),
            Operation::Rename { arg, name, newname } => {
                fs.rename(&info, ino, name, NodeId(arg.newdir), newname, 0, ReplyEmpty(r()))
            }
            Operation::Rename2 { arg, name, newname } => {
                fs.rename(&info, ino, name, NodeId(arg.newdir), newname, arg.flags, ReplyEmpty(r()))
            }
            Operation::Link { arg, newname } => {
                fs.link(&info, NodeId(arg.oldnodeid), ino, newname, ReplyEntry(r()))
            }
            Operation::Open { arg } => {
                // Work done at an earlier RELEASE of this inode comes first.
                self.releases.wait(h.nodeid);
                if arg.open_flags & abi::FUSE_OPEN_KILL_SUIDGID != 0 {
                    self.kill_suidgid_before_open(&info, ino, chan);
                }
                fs.open(&info, ino, self.open_flags(arg.flags as i32), ReplyOpen(r()))
            }
            Operation::Read { arg } => {
                let args = ReadArgs {
                    fh: FileHandle(arg.fh),
                    offset: arg.offset,
                    size: arg.size,
                    flags: arg.flags as i32,
                };
                fs.read(&info, ino, &args, ReplyData(r().tracking_file(h.nodeid)))
            }
            Operation::Write { arg, data } => {
                let args = WriteArgs {
                    fh: FileHandle(arg.fh),
                    offset: arg.offset,
                    data,
                    write_flags: arg.write_flags,
                    flags: arg.flags as i32,
                };
                let mut reply = r().tracking_file(h.nodeid);
                if args.is_writeback() {
                    reply = reply.retiring_on_error(h.nodeid);
                }
                fs.write(&info, ino, &args, ReplyWrite(reply));
                // A WRITE flagged "kill suid/sgid" may have changed the mode (the file system
                // cleared the bits), which the WRITE reply cannot say: make the kernel forget
                // the cached attributes. With write-back the kernel flags only writes to set-id
                // files (they bypass the cache); write-through flags every write by a caller
                // without CAP_FSETID, so there this costs one extra small write per WRITE.
                if args.kill_suidgid() {
                    notify_attrs_changed(self.shared.notify_channel(chan), ino);
                }
            }
            Operation::Statfs {} => fs.statfs(&info, ino, ReplyStatfs(r())),
            Operation::Release { arg } => {
                // Counted by `received`; uncounted when the answer is sent.
                let guard = ReleaseGuard { order: self.releases.clone(), ino: h.nodeid };
                let reply = ReplyEmpty(r().hold_until_answered(Box::new(guard)));
                fs.release(&info, ino, &release_args(&arg), reply)
            }
            Operation::Fsync { arg } => {
                let datasync = arg.fsync_flags & abi::FUSE_FSYNC_FDATASYNC != 0;
                fs.fsync(&info, ino, FileHandle(arg.fh), datasync, ReplyEmpty(self.commit_reply(r(), ino)))
            }
            Operation::Setxattr { arg, name, value } => {
                fs.setxattr(&info, ino, name, value, arg.flags as i32, ReplyEmpty(r()))
            }
            Operation::Getxattr { arg, name } => fs.getxattr(&info, ino, name, arg.size, ReplyXattr(r())),
            Operation::Listxattr { arg } => fs.listxattr(&info, ino, arg.size, ReplyXattr(r())),
            Operation::Removexattr { name } => fs.removexattr(&info, ino, name, ReplyEmpty(r())),
            Operation::Flush { arg } => {
                let reply = ReplyEmpty(self.commit_reply(r(), ino));
                fs.flush(&info, ino, FileHandle(arg.fh), arg.lock_owner, reply)
            }
            Operation::Opendir { arg } => fs.opendir(&info, ino, arg.flags as i32, ReplyOpen(r())),
            Operation::Readdir { arg } => fs.readdir(
                &info,
                ino,
                FileHandle(arg.fh),
                arg.offset,
                ReplyDirectory::new(r(), max_readdir(arg.size)),
            ),
            Operation::Readdirplus { arg } => fs.readdirplus(
                &info,
                ino,
                FileHandle(arg.fh),
                arg.offset,
                ReplyDirectoryPlus::new(r(), max_readdir(arg.size)),
            ),
            Operation::Releasedir { arg } => fs.releasedir(&info, ino, &release_args(&arg), ReplyEmpty(r())),
            Operation::Fsyncdir { arg } => {
                let datasync = arg.fsync_flags & abi::FUSE_FSYNC_FDATASYNC != 0;
                fs.fsyncdir(&info, ino, FileHandle(arg.fh), datasync, ReplyEmpty(r()))
            }
            Operation::Access { arg } => fs.access(&info, ino, arg.mask as i32, ReplyEmpty(r())),
            Operation::Create { arg, name } => {
                let flags = self.open_flags(arg.flags as i32);
                let args = CreateArgs { mode: arg.mode, umask: arg.umask, flags };
                fs.create(&info, ino, name, &args, ReplyCreate(r()))
            }
            Operation::Tmpfile { arg } => {
                let flags = self.open_flags(arg.flags as i32);
                let args = CreateArgs { mode: arg.mode, umask: arg.umask, flags };
                fs.tmpfile(&info, ino, &args, ReplyCreate(r()))
            }
            Operation::Fallocate { arg } => {
                if self.fallocate_kills_suidgid(h.uid) {
                    self.kill_suidgid_before_open(&info, ino, chan);
                }
                let args = FallocateArgs {
                    fh: FileHandle(arg.fh),
                    offset: arg.offset,
                    length: arg.length,
                    mode: arg.mode as i32,
                };
                fs.fallocate(&info, ino, &args, ReplyEmpty(r()))
            }
            Operation::Lseek { arg } => {
                fs.lseek(&info, ino, FileHandle(arg.fh), arg.offset, arg.whence as i32, ReplyLseek(r()))
            }
            Operation::CopyFileRange { arg } | Operation::CopyFileRange64 { arg } => {
                let wide = h.opcode == FUSE_COPY_FILE_RANGE_64;
                let args = CopyRangeArgs {
                    fh_in: FileHandle(arg.fh_in),
                    off_in: arg.off_in,
                    ino_out: NodeId(arg.nodeid_out),
                    fh_out: FileHandle(arg.fh_out),
                    off_out: arg.off_out,
                    len: arg.len,
                    flags: arg.flags,
                };
                fs.copy_file_range(&info, ino, &args, ReplyCopy { inner: r(), wide })
            }
            Operation::Ioctl { arg, data } => {
                let args = IoctlArgs {
                    fh: FileHandle(arg.fh),
                    flags: arg.flags,
                    cmd: arg.cmd,
                    arg: arg.arg,
                    in_data: data,
                    out_size: arg.out_size,
                };
                fs.ioctl(&info, ino, &args, ReplyIoctl(r()))
            }
            Operation::Destroy {} => {
                self.destroy_once();
                ReplyEmpty(r()).ok()
            }
            Operation::Interrupt { arg } => {
                // Never answered, except EAGAIN when its request does not show up.
                self.interrupts.interrupt(arg.unique, h.unique, chan);
                stats.end(h.opcode, class, false, 0, Default::default());
            }
            Operation::NotifyReply { arg, data } => {
                // The kernel's answer to a retrieve; `unique` is the notify unique we chose.
                let n = (arg.size as usize).min(data.len());
                self.retrievals.complete(h.unique, arg.offset, &data[..n]);
                stats.end(h.opcode, class, false, 0, Default::default());
            }
            Operation::Init { .. } => unreachable!("INIT is handled before dispatch"),
            Operation::Getlk { arg } => fs.getlk(&info, ino, &lock_args(&arg, false), ReplyLock(r())),
            Operation::Setlk { arg } => fs.setlk(&info, ino, &lock_args(&arg, false), ReplyEmpty(r())),
            Operation::Setlkw { arg } => fs.setlk(&info, ino, &lock_args(&arg, true), ReplyEmpty(r())),
            Operation::Bmap { .. }
            | Operation::Poll { .. }
            | Operation::Syncfs { .. }
            | Operation::Statx { .. }
            | Operation::Setupmapping {}
            | Operation::Removemapping {}
            | Operation::Unsupported { .. } => r().error(Errno::ENOSYS),
        }
    }
}

/// Tell the kernel that `ino`'s attributes changed behind its back (FUSE_NOTIFY_INVAL_INODE
/// with a negative offset: attributes only, no page is touched, so this cannot wait on a page
/// lock held by the caller whose request is in flight). Used after the framework or the file
/// system cleared suid/sgid for a request whose reply carries no attributes (OPEN, WRITE,
/// FALLOCATE); otherwise `stat` shows the old mode until `attr_timeout` expires.
fn notify_attrs_changed(chan: &Arc<dyn ReplyChannel>, ino: NodeId) {
    let body = abi::fuse_notify_inval_inode_out { ino: ino.0, off: -1, len: 0 };
    if let Err(e) = send_notify(&**chan, abi::notify_code::FUSE_NOTIFY_INVAL_INODE, &[body.as_bytes()]) {
        // ENOENT: the kernel no longer knows the inode; nothing is cached.
        if e.raw_os_error() != Some(libc::ENOENT) {
            tracing::warn!(ino = ino.0, error = %e, "attribute invalidation failed");
        }
    }
}

fn lock_args(arg: &abi::fuse_lk_in, sleep: bool) -> LockArgs {
    LockArgs {
        fh: FileHandle(arg.fh),
        owner: arg.owner,
        lock: FileLock::from_abi(&arg.lk),
        flock: arg.lk_flags & abi::FUSE_LK_FLOCK != 0,
        sleep,
    }
}

fn release_args(arg: &abi::fuse_release_in) -> ReleaseArgs {
    ReleaseArgs {
        fh: FileHandle(arg.fh),
        flags: arg.flags as i32,
        flush: arg.release_flags & abi::FUSE_RELEASE_FLUSH != 0,
        lock_owner: (arg.release_flags & abi::FUSE_RELEASE_FLOCK_UNLOCK != 0).then_some(arg.lock_owner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::mem::MemChannel;
    use std::time::Duration;

    /// A file system that forgets to answer GETATTR and panics in READLINK.
    struct Careless;
    impl Filesystem for Careless {
        fn getattr(&self, _: &RequestInfo, _: NodeId, _: Option<FileHandle>, reply: ReplyAttr) {
            drop(reply);
        }
        fn readlink(&self, _: &RequestInfo, _: NodeId, _: ReplyData) {
            panic!("bug in the file system");
        }
    }

    fn frame(opcode: u32, unique: u64, body: &[u8]) -> Vec<u8> {
        let h = abi::fuse_in_header {
            len: (40 + body.len()) as u32,
            opcode,
            unique,
            nodeid: 1,
            ..Default::default()
        };
        [h.as_bytes(), body].concat()
    }

    fn setup() -> (Server, Arc<MemChannel>, Arc<dyn ReplyChannel>) {
        let server = Server::new(Arc::new(Careless), Capabilities::default(), Ttl::default(), false);
        let chan = Arc::new(MemChannel::new());
        let dyn_chan: Arc<dyn ReplyChannel> = chan.clone();
        (server, chan, dyn_chan)
    }

    fn init(server: &Server, chan: &MemChannel, dyn_chan: &Arc<dyn ReplyChannel>) {
        let init = abi::fuse_init_in {
            major: 7,
            minor: 45,
            max_readahead: 1 << 20,
            flags: u32::MAX,
            flags2: u32::MAX,
            ..Default::default()
        };
        assert!(matches!(
            server.handle(&frame(FUSE_INIT, 1, init.as_bytes()), dyn_chan),
            Handled::Initialized(_)
        ));
        let reply = chan.next_reply(Duration::from_secs(1)).unwrap();
        assert_eq!(reply.len(), 16 + 64);
    }

    /// (unique, error) of the next reply.
    fn next(chan: &MemChannel) -> (u64, i32) {
        let r = chan.next_reply(Duration::from_secs(1)).expect("a reply");
        (u64::from_ne_bytes(r[8..16].try_into().unwrap()), i32::from_ne_bytes(r[4..8].try_into().unwrap()))
    }

    #[test]
    fn requests_before_init_get_eio() {
        let (server, chan, dc) = setup();
        server.handle(&frame(FUSE_GETATTR, 5, &[0u8; 16]), &dc);
        assert_eq!(next(&chan), (5, -libc::EIO));
    }

    #[test]
    fn unknown_and_unimplemented_opcodes_get_enosys() {
        let (server, chan, dc) = setup();
        init(&server, &chan, &dc);
        server.handle(&frame(4242, 7, &[]), &dc);
        assert_eq!(next(&chan), (7, -libc::ENOSYS));
        server.handle(&frame(FUSE_STATFS, 8, &[]), &dc);
        assert_eq!(next(&chan), (8, -libc::ENOSYS));
        server.handle(&frame(FUSE_LOOKUP, 9, b"x\0"), &dc);
        assert_eq!(next(&chan), (9, -libc::ENOSYS));
    }

    #[test]
    fn malformed_requests_get_einval() {
        let (server, chan, dc) = setup();
        init(&server, &chan, &dc);
        server.handle(&frame(FUSE_LOOKUP, 10, b"no-nul"), &dc);
        assert_eq!(next(&chan), (10, -libc::EINVAL));
        let mut bad_len = frame(FUSE_GETATTR, 11, &[0u8; 16]);
        bad_len[0] = 200;
        server.handle(&bad_len, &dc);
        assert_eq!(next(&chan), (11, -libc::EINVAL));
        // Too short to name a request: nothing to answer, nothing breaks.
        server.handle(&[1, 2, 3], &dc);
        assert_eq!(chan.pending(), 0);
    }

    #[test]
    fn forgotten_reply_and_panicking_handler_answer_eio() {
        let (server, chan, dc) = setup();
        init(&server, &chan, &dc);
        server.handle(&frame(FUSE_GETATTR, 12, &[0u8; 16]), &dc);
        assert_eq!(next(&chan), (12, -libc::EIO));
        server.handle(&frame(FUSE_READLINK, 13, &[]), &dc);
        assert_eq!(next(&chan), (13, -libc::EIO));
        // The server keeps working afterwards.
        server.handle(&frame(4242, 14, &[]), &dc);
        assert_eq!(next(&chan), (14, -libc::ENOSYS));
    }

    #[test]
    fn forget_and_interrupt_get_no_reply() {
        let (server, chan, dc) = setup();
        init(&server, &chan, &dc);
        server.handle(&frame(FUSE_FORGET, 15, &1u64.to_ne_bytes()), &dc);
        server.handle(&frame(FUSE_INTERRUPT, 16, &12u64.to_ne_bytes()), &dc);
        assert_eq!(chan.pending(), 0);
    }

    /// SETLKW waits until interrupted and then answers EINTR.
    struct Waiter;
    impl Filesystem for Waiter {
        fn setlk(&self, _: &RequestInfo, _: NodeId, args: &LockArgs, reply: ReplyEmpty) {
            assert!(args.sleep);
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            reply.interrupt().on_interrupt(move || {
                let _ = tx.send(());
            });
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(()) => reply.error(Errno::EINTR),
                Err(_) => reply.ok(),
            }
        }
    }

    #[test]
    fn interrupt_cancels_a_waiting_request_in_either_order() {
        let server = Arc::new(Server::new(Arc::new(Waiter), Capabilities::default(), Ttl::default(), false));
        let chan = Arc::new(MemChannel::new());
        let dc: Arc<dyn ReplyChannel> = chan.clone();
        init(&server, &chan, &dc);
        let lk = abi::fuse_lk_in {
            lk: abi::fuse_file_lock { r#type: libc::F_WRLCK as u32, ..Default::default() },
            ..Default::default()
        };
        // Request first, then its INTERRUPT from another worker.
        let (s2, c2) = (server.clone(), dc.clone());
        let body = lk.as_bytes().to_vec();
        let t = std::thread::spawn(move || s2.handle(&frame(FUSE_SETLKW, 40, &body), &c2));
        while server.interrupts.inflight() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        server.handle(&frame(FUSE_INTERRUPT, 41, &40u64.to_ne_bytes()), &dc);
        t.join().unwrap();
        assert_eq!(next(&chan), (40, -libc::EINTR));
        // INTERRUPT decoded before its request: kept, and applied when the request registers.
        server.handle(&frame(FUSE_INTERRUPT, 51, &50u64.to_ne_bytes()), &dc);
        assert_eq!(chan.pending(), 0, "an INTERRUPT is not answered");
        server.handle(&frame(FUSE_SETLKW, 50, lk.as_bytes()), &dc);
        assert_eq!(next(&chan), (50, -libc::EINTR));
        assert_eq!(server.interrupts.inflight(), 0);
        assert_eq!(server.interrupts.pending(), 0);
    }

    /// RELEASE takes a while; OPEN records whether it came after.
    #[derive(Default)]
    struct SlowRelease {
        released: AtomicBool,
    }
    impl Filesystem for SlowRelease {
        fn release(&self, _: &RequestInfo, _: NodeId, _: &ReleaseArgs, reply: ReplyEmpty) {
            std::thread::sleep(Duration::from_millis(200));
            self.released.store(true, Ordering::SeqCst);
            reply.ok()
        }
        fn open(&self, _: &RequestInfo, _: NodeId, _: i32, reply: ReplyOpen) {
            if self.released.load(Ordering::SeqCst) {
                reply.opened(FileHandle(1), 0)
            } else {
                reply.error(Errno::EIO)
            }
        }
    }

    #[test]
    fn open_waits_for_an_earlier_release_of_the_same_inode() {
        let server = Arc::new(Server::new(
            Arc::new(SlowRelease::default()),
            Capabilities::default(),
            Ttl::default(),
            false,
        ));
        let chan = Arc::new(MemChannel::new());
        let dc: Arc<dyn ReplyChannel> = chan.clone();
        init(&server, &chan, &dc);
        let rel = frame(FUSE_RELEASE, 60, abi::fuse_release_in::default().as_bytes());
        // A worker reads the RELEASE (and, say, queues it); another worker handles the OPEN.
        server.received(&rel);
        let (s2, c2) = (server.clone(), dc.clone());
        let t = std::thread::spawn(move || s2.handle_classified(&rel, &c2, RequestClass::Background));
        server.handle(&frame(FUSE_OPEN, 62, abi::fuse_open_in::default().as_bytes()), &dc);
        t.join().unwrap();
        let mut got = [next(&chan), next(&chan)];
        got.sort();
        assert_eq!(got, [(60, 0), (62, 0)], "OPEN must run after the RELEASE finished");
        // A malformed RELEASE does not leave OPENs waiting forever.
        let mut bad = frame(FUSE_RELEASE, 64, &[0u8; 4]);
        bad[0] = bad.len() as u8;
        server.handle(&bad, &dc);
        assert_eq!(next(&chan), (64, -libc::EINVAL));
        server.handle(&frame(FUSE_OPEN, 66, abi::fuse_open_in::default().as_bytes()), &dc);
        assert_eq!(next(&chan), (66, 0));
    }

    #[test]
    fn destroy_is_answered_and_ends_the_session() {
        let (server, chan, dc) = setup();
        init(&server, &chan, &dc);
        assert_eq!(server.handle(&frame(FUSE_DESTROY, 17, &[]), &dc), Handled::Destroyed);
        assert_eq!(next(&chan), (17, 0));
    }
}
