//! The file system layer's side of the session boundary: every [`Filesystem`] is a session
//! [`Handler`]; one request becomes one trait method call with a typed reply token.
//!
//! The session answers INIT, DESTROY, INTERRUPT and NOTIFY_REPLY itself; the write-back
//! rules (open flags, retiring after a failed commit), release ordering and the KILLPRIV
//! SETATTRs are applied here through the [`Dispatch`] context, so no file system can get them
//! wrong.

use super::ops::Filesystem;
use super::reply::*;
use super::types::*;
use crate::abi;
use crate::session::{Capabilities, Dispatch, Handler, IntoHandler, MountInfo};
use crate::wire::{Operation, Request};
use std::sync::Arc;
use std::time::Instant;
use zerocopy::FromBytes;

/// A file system served by a session.
struct Served<F: ?Sized>(Arc<F>);

impl<F: Filesystem + ?Sized> Handler for Served<F> {
    fn init(&self, caps: &mut Capabilities) -> Result<(), Errno> {
        self.0.init(caps)
    }
    fn mounted(&self, mount: &MountInfo) {
        self.0.mounted(mount)
    }
    fn destroy(&self) {
        self.0.destroy()
    }
    fn dispatch(&self, req: Request<'_>, ctx: &Dispatch<'_>) {
        dispatch(&*self.0, req, ctx)
    }
}

impl<F: Filesystem> IntoHandler for Arc<F> {
    fn into_handler(self) -> Arc<dyn Handler> {
        Arc::new(Served(self))
    }
}

impl IntoHandler for Arc<dyn Filesystem> {
    fn into_handler(self) -> Arc<dyn Handler> {
        Arc::new(Served(self))
    }
}

/// HANDLE_KILLPRIV_V2 rule: an OPEN with O_TRUNC by a caller without CAP_FSETID carries
/// FUSE_OPEN_KILL_SUIDGID, and the server must clear suid (and sgid if group-executable) as a
/// truncating write would. The framework does it with a SETATTR(kill_suidgid) to the file
/// system before the OPEN (and before a FALLOCATE), so no file system needs an extra argument.
/// Its answer is captured here, not sent to the kernel.
fn kill_suidgid<F: Filesystem + ?Sized>(fs: &F, ctx: &Dispatch<'_>, info: &RequestInfo, ino: NodeId) {
    let (reply, capture) = ctx.captured_responder(abi::opcode::FUSE_SETATTR);
    let attr = SetAttr { kill_suidgid: true, ..Default::default() };
    fs.setattr(info, ino, &attr, ReplyAttr(reply));
    if let Some(out) = capture.next_reply(std::time::Duration::ZERO) {
        let error = abi::fuse_out_header::read_from_prefix(&out).map_or(-libc::EIO, |(h, _)| h.error);
        if error != 0 {
            tracing::warn!(ino = ino.0, error, "clearing suid/sgid before a truncating open failed");
        } else {
            ctx.notify_attrs_changed(ino);
        }
    }
}

pub(super) fn dispatch<F: Filesystem + ?Sized>(fs: &F, req: Request<'_>, ctx: &Dispatch<'_>) {
    let h = req.header;
    let umask = match &req.op {
        Operation::Mknod { arg, .. } => arg.umask,
        Operation::Mkdir { arg, .. } => arg.umask,
        Operation::Create { arg, .. } => arg.umask,
        Operation::Tmpfile { arg } => arg.umask,
        _ => 0,
    };
    let info = RequestInfo { unique: h.unique, uid: h.uid, gid: h.gid, pid: h.pid, umask };
    let ino = NodeId(h.nodeid);
    let r = || ctx.responder();
    match req.op {
        Operation::Lookup { name } => fs.lookup(&info, ino, name, ReplyEntry(r())),
        Operation::Forget { arg } => {
            let start = Instant::now();
            fs.forget(ino, arg.nlookup);
            ctx.no_reply_done(start);
        }
        Operation::BatchForget { list } => {
            let start = Instant::now();
            let nodes: Vec<(NodeId, u64)> = list.iter().map(|f| (NodeId(f.nodeid), f.nlookup)).collect();
            fs.batch_forget(&nodes);
            ctx.no_reply_done(start);
        }
        Operation::Getattr { arg } => {
            let fh = (arg.getattr_flags & abi::FUSE_GETATTR_FH != 0).then_some(FileHandle(arg.fh));
            fs.getattr(&info, ino, fh, ReplyAttr(r()))
        }
        Operation::Statx { arg } => {
            let fh = (arg.getattr_flags & abi::FUSE_GETATTR_FH != 0).then_some(FileHandle(arg.fh));
            fs.statx(&info, ino, fh, ReplyStatx(r()))
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
            ctx.wait_for_releases();
            if arg.open_flags & abi::FUSE_OPEN_KILL_SUIDGID != 0 {
                kill_suidgid(fs, ctx, &info, ino);
            }
            fs.open(&info, ino, ctx.open_flags(arg.flags as i32), ReplyOpen(r()))
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
            let args =
                WriteArgs::new(FileHandle(arg.fh), arg.offset, data, arg.write_flags, arg.flags as i32)
                    .with_source(ctx.payload_source());
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
                ctx.notify_attrs_changed(ino);
            }
        }
        Operation::Statfs {} => fs.statfs(&info, ino, ReplyStatfs(r())),
        Operation::Release { arg } => {
            // Counted when received; uncounted when the answer is sent.
            let reply = ReplyEmpty(ctx.release_responder());
            fs.release(&info, ino, &release_args(&arg), reply)
        }
        Operation::Fsync { arg } => {
            let datasync = arg.fsync_flags & abi::FUSE_FSYNC_FDATASYNC != 0;
            fs.fsync(&info, ino, FileHandle(arg.fh), datasync, ReplyEmpty(ctx.commit_responder()))
        }
        Operation::Setxattr { arg, name, value } => {
            fs.setxattr(&info, ino, name, value, arg.flags as i32, ReplyEmpty(r()))
        }
        Operation::Getxattr { arg, name } => fs.getxattr(&info, ino, name, arg.size, ReplyXattr(r())),
        Operation::Listxattr { arg } => fs.listxattr(&info, ino, arg.size, ReplyXattr(r())),
        Operation::Removexattr { name } => fs.removexattr(&info, ino, name, ReplyEmpty(r())),
        Operation::Flush { arg } => {
            let reply = ReplyEmpty(ctx.commit_responder());
            fs.flush(&info, ino, FileHandle(arg.fh), arg.lock_owner, reply)
        }
        Operation::Opendir { arg } => fs.opendir(&info, ino, arg.flags as i32, ReplyOpen(r())),
        Operation::Readdir { arg } => {
            let args = readdir_args(&arg);
            fs.readdir(&info, ino, &args, ReplyDirectory::new(r(), args.max_bytes))
        }
        Operation::Readdirplus { arg } => {
            let args = readdir_args(&arg);
            fs.readdirplus(&info, ino, &args, ReplyDirectoryPlus::new(r(), args.max_bytes))
        }
        Operation::Releasedir { arg } => fs.releasedir(&info, ino, &release_args(&arg), ReplyEmpty(r())),
        Operation::Fsyncdir { arg } => {
            let datasync = arg.fsync_flags & abi::FUSE_FSYNC_FDATASYNC != 0;
            fs.fsyncdir(&info, ino, FileHandle(arg.fh), datasync, ReplyEmpty(r()))
        }
        Operation::Access { arg } => fs.access(&info, ino, arg.mask as i32, ReplyEmpty(r())),
        Operation::Create { arg, name } => {
            let flags = ctx.open_flags(arg.flags as i32);
            let args = CreateArgs { mode: arg.mode, umask: arg.umask, flags };
            fs.create(&info, ino, name, &args, ReplyCreate(r()))
        }
        Operation::Tmpfile { arg } => {
            let flags = ctx.open_flags(arg.flags as i32);
            let args = CreateArgs { mode: arg.mode, umask: arg.umask, flags };
            fs.tmpfile(&info, ino, &args, ReplyCreate(r()))
        }
        Operation::Fallocate { arg } => {
            if ctx.fallocate_kills_suidgid() {
                kill_suidgid(fs, ctx, &info, ino);
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
            let wide = h.opcode == abi::opcode::FUSE_COPY_FILE_RANGE_64;
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
        Operation::Init { .. }
        | Operation::Destroy {}
        | Operation::Interrupt { .. }
        | Operation::NotifyReply { .. } => unreachable!("answered by the session"),
        Operation::Getlk { arg } => fs.getlk(&info, ino, &lock_args(&arg, false), ReplyLock(r())),
        Operation::Setlk { arg } => fs.setlk(&info, ino, &lock_args(&arg, false), ReplyEmpty(r())),
        Operation::Setlkw { arg } => fs.setlk(&info, ino, &lock_args(&arg, true), ReplyEmpty(r())),
        Operation::Bmap { .. }
        | Operation::Poll { .. }
        | Operation::Syncfs { .. }
        | Operation::Setupmapping {}
        | Operation::Removemapping {}
        | Operation::Unsupported { .. } => r().error(Errno::ENOSYS),
    }
}

/// READDIR(PLUS) arguments; at most 1 MiB of entries per reply whatever the kernel asks.
fn readdir_args(arg: &abi::fuse_read_in) -> ReaddirArgs {
    ReaddirArgs { fh: FileHandle(arg.fh), offset: arg.offset, max_bytes: (arg.size as usize).min(1 << 20) }
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
    use crate::abi::opcode::*;
    use crate::session::{Handled, Server};
    use crate::transport::buffer::Frame;
    use crate::transport::mem::MemChannel;
    use crate::transport::ReplyChannel;
    use crate::wire::RequestClass;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use zerocopy::IntoBytes;

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

    fn setup() -> (Arc<Server>, Arc<MemChannel>, Arc<dyn ReplyChannel>) {
        serving(Arc::new(Careless))
    }

    /// A server for `fs` answering into an in-memory channel (INIT not done yet).
    fn serving(fs: impl IntoHandler) -> (Arc<Server>, Arc<MemChannel>, Arc<dyn ReplyChannel>) {
        let server = Arc::new(Server::new(fs.into_handler(), Capabilities::default(), Ttl::default(), false));
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
        let h = crate::wire::reply::out_header(&r).expect("an out header");
        (h.unique, h.error)
    }

    #[test]
    #[cfg(feature = "tokio")] // for the dirent parser of the sync-as-async face
    fn readdirplus_defaults_to_readdir_names_without_nodes() {
        /// A file system with READDIR only.
        struct ReaddirOnly;
        impl Filesystem for ReaddirOnly {
            fn readdir(&self, _: &RequestInfo, _: NodeId, args: &ReaddirArgs, mut reply: ReplyDirectory) {
                for (i, (ino, name)) in
                    [(1, "."), (7, "file")].into_iter().enumerate().skip(args.offset as usize)
                {
                    if reply.add(ino, i as u64 + 1, FileType::Regular, std::ffi::OsStr::new(name)) {
                        break;
                    }
                }
                reply.ok()
            }
        }
        let (server, chan, dc) = serving(Arc::new(ReaddirOnly));
        init(&server, &chan, &dc);
        let args = abi::fuse_read_in { size: 4096, ..Default::default() };
        server.handle(&frame(FUSE_READDIRPLUS, 9, args.as_bytes()), &dc);
        let r = chan.next_reply(Duration::from_secs(1)).unwrap();
        let h = crate::wire::reply::out_header(&r).unwrap();
        assert_eq!((h.unique, h.error), (9, 0));
        let list = crate::fs::asyncfs::sync_face::dirents_plus(&r[16..]).unwrap();
        let got: Vec<(u64, u64, u64, &str)> = list
            .iter()
            .map(|e| (e.entry.ino.0, e.entry.attr.ino, e.offset, e.name.to_str().unwrap()))
            .collect();
        // Node id 0: the kernel caches nothing and counts no lookup for these names.
        assert_eq!(got, [(0, 1, 1, "."), (0, 7, 2, "file")]);
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
        let (server, chan, dc) = serving(Arc::new(Waiter));
        init(&server, &chan, &dc);
        let lk = abi::fuse_lk_in {
            lk: abi::fuse_file_lock { r#type: libc::F_WRLCK as u32, ..Default::default() },
            ..Default::default()
        };
        // Request first, then its INTERRUPT from another worker.
        let (s2, c2) = (server.clone(), dc.clone());
        let body = lk.as_bytes().to_vec();
        let t = std::thread::spawn(move || s2.handle(&frame(FUSE_SETLKW, 40, &body), &c2));
        while server.interrupts_in_flight() == 0 {
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
        assert_eq!(server.interrupts_in_flight(), 0);
        assert_eq!(server.interrupts_pending(), 0);
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
        let (server, chan, dc) = serving(Arc::new(SlowRelease::default()));
        init(&server, &chan, &dc);
        let rel = frame(FUSE_RELEASE, 60, abi::fuse_release_in::default().as_bytes());
        // A worker reads the RELEASE (and, say, queues it); another worker handles the OPEN.
        server.received(&rel);
        let (s2, c2) = (server.clone(), dc.clone());
        let t = std::thread::spawn(move || {
            s2.handle_classified(Frame::borrowed(&rel), &c2, RequestClass::Background)
        });
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
