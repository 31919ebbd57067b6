//! memfs through the synchronous [`Filesystem`] API: reply tokens, zero-copy reads.

use super::*;

impl Filesystem for MemFs {
    fn init(&self, caps: &mut Capabilities) -> Result<(), Errno> {
        MemFs::set_capabilities(caps);
        Ok(())
    }

    fn mounted(&self, mount: &MountInfo) {
        self.noatime.store(mount.noatime, std::sync::atomic::Ordering::Relaxed);
        let _ = self.notifier.set(mount.notifier.clone());
    }

    fn lookup(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        reply.result(self.lookup_entry(parent, name), |r, e| r.entry(&e))
    }

    fn forget(&self, ino: NodeId, nlookup: u64) {
        self.do_forget([(ino, nlookup)])
    }

    fn batch_forget(&self, nodes: &[(NodeId, u64)]) {
        self.do_forget(nodes.iter().copied())
    }

    fn getattr(&self, _req: &RequestInfo, ino: NodeId, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.result(self.do_getattr(ino), |r, a| r.attr(&a))
    }

    fn statx(&self, _req: &RequestInfo, ino: NodeId, _fh: Option<FileHandle>, reply: ReplyStatx) {
        let r = self.get(ino).map(|n| {
            let n = read(&n);
            Statx { attr: n.stat(), btime: Some(n.btime), ..Default::default() }
        });
        reply.result(r, |r, s| r.statx(&s))
    }

    fn setattr(&self, req: &RequestInfo, ino: NodeId, attr: &SetAttr, reply: ReplyAttr) {
        reply.result(self.do_setattr(req, ino, attr), |r, a| r.attr(&a))
    }

    fn readlink(&self, _req: &RequestInfo, ino: NodeId, reply: ReplyData) {
        reply.result(self.do_readlink(ino), |r, t| r.data(&t))
    }

    fn symlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, target: &OsStr, reply: ReplyEntry) {
        reply.result(self.do_symlink(req, parent, name, target), |r, e| r.entry(&e))
    }

    fn mknod(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, rdev: u32, reply: ReplyEntry,
    ) {
        reply.result(self.do_mknod(req, parent, name, mode, rdev), |r, e| r.entry(&e))
    }

    fn mkdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, reply: ReplyEntry) {
        reply.result(self.do_mkdir(req, parent, name, mode), |r, e| r.entry(&e))
    }

    fn unlink(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.result(self.do_unlink(parent, name, false), |r, ()| r.ok())
    }

    fn rmdir(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.result(self.do_unlink(parent, name, true), |r, ()| r.ok())
    }

    fn rename(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, newparent: NodeId, newname: &OsStr,
        flags: u32, reply: ReplyEmpty,
    ) {
        reply.result(self.do_rename(req, parent, name, newparent, newname, flags), |r, ()| r.ok())
    }

    fn link(&self, req: &RequestInfo, ino: NodeId, newparent: NodeId, newname: &OsStr, reply: ReplyEntry) {
        reply.result(self.do_link(req, ino, newparent, newname), |r, e| r.entry(&e))
    }

    fn open(&self, _req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        reply.result(self.do_open(ino, flags), |r, ()| r.opened(self.new_fh(), 0))
    }

    fn read(&self, _req: &RequestInfo, ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        let nref = match self.get(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let n = read(&nref);
        // Answer straight from the chunks: no copy into an intermediate buffer.
        let d = match file_data(&n) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        reply.data_vectored(&d.read_slices(args.offset, args.size as usize));
        let due = self.atime_due(&n);
        drop(n);
        if due {
            self.accessed(ino, &nref);
        }
    }

    fn write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        reply.result(self.do_write(req, ino, args), |r, n| r.written(n))
    }

    fn flush(&self, _req: &RequestInfo, ino: NodeId, _fh: FileHandle, lock_owner: u64, reply: ReplyEmpty) {
        // close(2) drops the caller's POSIX locks on the file. Data is in memory already.
        self.locks.release_posix(ino.0, lock_owner);
        reply.ok()
    }

    fn release(&self, _req: &RequestInfo, ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        if let Some(owner) = args.lock_owner {
            self.locks.release_flock(ino.0, owner);
        }
        // The last descriptor of this open file description is closed: its OFD locks go
        // (the kernel sends no unlock for them).
        self.locks.release_description(ino.0, args.fh.0);
        reply.ok()
    }

    fn getlk(&self, _req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyLock) {
        reply.lock(&self.locks.test(ino.0, args))
    }

    fn setlk(&self, _req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyEmpty) {
        let intr = reply.interrupt();
        reply.result(self.locks.set(ino.0, args, &intr), |r, ()| r.ok())
    }

    fn fsync(&self, _req: &RequestInfo, _ino: NodeId, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        reply.ok()
    }

    fn opendir(&self, _req: &RequestInfo, ino: NodeId, _flags: i32, reply: ReplyOpen) {
        reply.result(self.do_opendir(ino), |r, ()| r.opened(FileHandle(0), 0))
    }

    fn readdir(&self, _req: &RequestInfo, ino: NodeId, args: &ReaddirArgs, mut reply: ReplyDirectory) {
        let r =
            self.do_readdir(ino, args.offset, |ino, cookie, kind, name| reply.add(ino, cookie, kind, name));
        reply.result(r, |r, ()| r.ok())
    }

    fn readdirplus(
        &self, _req: &RequestInfo, ino: NodeId, args: &ReaddirArgs, mut reply: ReplyDirectoryPlus,
    ) {
        let r = self.do_readdirplus(ino, args.offset, |e, cookie, name| reply.add(e, cookie, name));
        reply.result(r, |r, ()| r.ok())
    }

    fn fsyncdir(&self, _req: &RequestInfo, _ino: NodeId, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        reply.ok()
    }

    fn statfs(&self, _req: &RequestInfo, _ino: NodeId, reply: ReplyStatfs) {
        reply.statfs(&self.do_statfs())
    }

    fn setxattr(
        &self, req: &RequestInfo, ino: NodeId, name: &OsStr, value: &[u8], flags: i32, reply: ReplyEmpty,
    ) {
        reply.result(self.do_setxattr(req, ino, name, value, flags), |r, ()| r.ok())
    }

    fn getxattr(&self, _req: &RequestInfo, ino: NodeId, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply.result(self.do_getxattr(ino, name), |r, v| r.value(size, &v))
    }

    fn listxattr(&self, _req: &RequestInfo, ino: NodeId, size: u32, reply: ReplyXattr) {
        reply.result(self.do_listxattr(ino), |r, v| r.value(size, &v))
    }

    fn removexattr(&self, _req: &RequestInfo, ino: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.result(self.do_removexattr(ino, name), |r, ()| r.ok())
    }

    fn create(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs, reply: ReplyCreate) {
        reply.result(self.do_create(req, parent, name, args), |r, e| r.created(&e, self.new_fh(), 0))
    }

    fn tmpfile(&self, req: &RequestInfo, parent: NodeId, args: &CreateArgs, reply: ReplyCreate) {
        reply.result(self.do_tmpfile(req, parent, args), |r, e| r.created(&e, self.new_fh(), 0))
    }

    fn fallocate(&self, _req: &RequestInfo, ino: NodeId, args: &FallocateArgs, reply: ReplyEmpty) {
        reply.result(self.do_fallocate(ino, args), |r, ()| r.ok())
    }

    fn lseek(
        &self, _req: &RequestInfo, ino: NodeId, _fh: FileHandle, offset: u64, whence: i32, reply: ReplyLseek,
    ) {
        reply.result(self.do_lseek(ino, offset, whence), |r, off| r.offset(off))
    }

    fn ioctl(&self, _req: &RequestInfo, ino: NodeId, args: &IoctlArgs<'_>, reply: ReplyIoctl) {
        reply.result(self.do_ioctl(ino, args), |r, data| r.ioctl(0, &data))
    }

    fn copy_file_range(&self, req: &RequestInfo, ino_in: NodeId, args: &CopyRangeArgs, reply: ReplyCopy) {
        reply.result(self.do_copy_file_range(req, ino_in, args), |r, n| r.copied(n))
    }
}
