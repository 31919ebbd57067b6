//! The [`Filesystem`] implementation: each request handler calls a `Result`-returning helper
//! and answers with its value or errno.

use super::attr::{decode_dev, to_attr};
use super::error::errno;
use super::names::check_name;
use super::{proc_path, reopen, Passthrough};
use fusebox::fs::{
    CopyRangeArgs, CreateArgs, Entry, FallocateArgs, ReadArgs, ReleaseArgs, ReplyAttr, ReplyCopy,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, SetAttr, Statfs, TimeOrNow, WriteArgs,
};
use fusebox::{Capabilities, Errno, FileAttr, FileHandle, FileType, Filesystem, NodeId, RequestInfo};
use rustix::fs::{
    AtFlags, Gid, Mode, OFlags, RawDir, RenameFlags, SeekFrom, Timestamps, Uid, XattrFlags, CWD,
};
use std::cell::RefCell;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

thread_local! {
    /// Per-thread buffer for READ, reused across requests.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const DIR_BUF: usize = 32 * 1024;

fn mode_of(m: u32) -> Mode {
    Mode::from_raw_mode(m & 0o7777)
}

fn time_of(t: Option<TimeOrNow>) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
        Some(TimeOrNow::Now) => rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW },
        Some(TimeOrNow::Time(t)) => rustix::fs::Timespec { tv_sec: t.sec, tv_nsec: t.nsec as _ },
    }
}

fn kind_of(t: rustix::fs::FileType) -> FileType {
    use rustix::fs::FileType as T;
    match t {
        T::Directory => FileType::Directory,
        T::Symlink => FileType::Symlink,
        T::Fifo => FileType::Fifo,
        T::Socket => FileType::Socket,
        T::CharacterDevice => FileType::CharDevice,
        T::BlockDevice => FileType::BlockDevice,
        _ => FileType::Regular,
    }
}

/// The suid/sgid bits a "kill suid/sgid" must clear from `mode` (sgid only with group exec).
fn suidgid_bits(mode: u32) -> u32 {
    let mut bits = mode & libc::S_ISUID;
    if mode & libc::S_IXGRP != 0 {
        bits |= mode & libc::S_ISGID;
    }
    bits
}

impl Passthrough {
    fn do_lookup(&self, parent: NodeId, name: &OsStr) -> Result<Entry, Errno> {
        let b = name.as_bytes();
        if b == b"." || (b == b".." && parent == NodeId::ROOT) {
            // "." is the directory itself; ".." of the root is the root (never above SOURCE).
            let fd = self.inodes.fd(parent)?;
            let st = rustix::fs::fstat(&*fd).map_err(errno)?;
            self.inodes.add_lookup(parent)?;
            return Ok(Entry { ino: parent, generation: 0, attr: to_attr(&st) });
        }
        let dir = self.inodes.fd(parent)?;
        if b == b".." {
            let fd = rustix::fs::openat(
                &*dir,
                "..",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            return self.register(fd, false);
        }
        check_name(name)?;
        self.lookup_at(dir.as_fd(), name)
    }

    fn do_getattr(&self, ino: NodeId, fh: Option<FileHandle>) -> Result<FileAttr, Errno> {
        let st = match fh.and_then(|fh| self.handles.file(fh).ok()) {
            Some(fd) => rustix::fs::fstat(&*fd),
            None => rustix::fs::fstat(&*self.inodes.fd(ino)?),
        }
        .map_err(errno)?;
        Ok(to_attr(&st))
    }

    fn do_setattr(&self, ino: NodeId, a: &SetAttr) -> Result<FileAttr, Errno> {
        let fd = self.inodes.fd(ino)?;
        let open = a.fh.and_then(|fh| self.handles.file(fh).ok());
        if let Some(mode) = a.mode {
            match &open {
                Some(f) => rustix::fs::fchmod(&**f, mode_of(mode)),
                None => rustix::fs::chmodat(CWD, proc_path(&*fd), mode_of(mode), AtFlags::empty()),
            }
            .map_err(errno)?;
        }
        if a.uid.is_some() || a.gid.is_some() {
            let uid = a.uid.filter(|&u| u != u32::MAX).map(Uid::from_raw);
            let gid = a.gid.filter(|&g| g != u32::MAX).map(Gid::from_raw);
            rustix::fs::chownat(&*fd, "", uid, gid, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno)?;
        }
        if let Some(size) = a.size {
            match &open {
                Some(f) => rustix::fs::ftruncate(&**f, size),
                None => {
                    let w = self.open_node(ino, libc::O_WRONLY | libc::O_CLOEXEC)?;
                    rustix::fs::ftruncate(&w, size)
                }
            }
            .map_err(errno)?;
        }
        if a.atime.is_some() || a.mtime.is_some() {
            let ts = Timestamps { last_access: time_of(a.atime), last_modification: time_of(a.mtime) };
            rustix::fs::utimensat(&*fd, "", &ts, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno)?;
        }
        if a.kill_suidgid && a.mode.is_none() {
            let st = rustix::fs::fstat(&*fd).map_err(errno)?;
            let kill = suidgid_bits(st.st_mode);
            if kill != 0 && st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                rustix::fs::chmodat(CWD, proc_path(&*fd), mode_of(st.st_mode & !kill), AtFlags::empty())
                    .map_err(errno)?;
            }
        }
        let st = rustix::fs::fstat(&*fd).map_err(errno)?;
        Ok(to_attr(&st))
    }

    /// Open the backing file of `ino` with `flags`: by file handle, or through the pinned
    /// descriptor's `/proc/self/fd` entry.
    fn open_node(&self, ino: NodeId, flags: i32) -> Result<OwnedFd, Errno> {
        let inode = self.inodes.get(ino)?;
        match (&inode.pinned, &inode.handle) {
            (None, Some(h)) => self.inodes.open_handle(h, flags),
            _ => reopen(&*self.inodes.fd_of(ino, &inode)?, flags),
        }
    }

    fn do_create(
        &self,
        req: &RequestInfo,
        parent: NodeId,
        name: &OsStr,
        args: &CreateArgs,
    ) -> Result<(Entry, FileHandle), Errno> {
        check_name(name)?;
        let dir = self.inodes.fd(parent)?;
        let flags = self.open_flags(args.flags) | libc::O_NOFOLLOW;
        let excl = OFlags::from_bits_retain((flags | libc::O_CREAT | libc::O_EXCL) as _);
        let (fd, created) = match rustix::fs::openat(&*dir, name, excl, mode_of(args.mode)) {
            Ok(fd) => (fd, true),
            Err(rustix::io::Errno::EXIST) if args.flags & libc::O_EXCL == 0 => {
                let fd = rustix::fs::openat(&*dir, name, OFlags::from_bits_retain(flags as _), Mode::empty())
                    .map_err(errno)?;
                (fd, false)
            }
            Err(e) => return Err(errno(e)),
        };
        if created {
            self.set_owner(req, dir.as_fd(), fd.as_fd())?;
        }
        let path = reopen(&fd, libc::O_PATH)?;
        let entry = self.register(path, false)?;
        let fh = self.handles.add_file(fd);
        Ok((entry, fh))
    }

    fn do_tmpfile(
        &self,
        req: &RequestInfo,
        parent: NodeId,
        args: &CreateArgs,
    ) -> Result<(Entry, FileHandle), Errno> {
        let dir = self.inodes.fd(parent)?;
        let mut flags = self.open_flags(args.flags) & !libc::O_TMPFILE;
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            flags |= libc::O_RDWR;
        }
        flags |= libc::O_TMPFILE;
        let fd = rustix::fs::openat(&*dir, ".", OFlags::from_bits_retain(flags as _), mode_of(args.mode))
            .map_err(errno)?;
        self.set_owner(req, dir.as_fd(), fd.as_fd())?;
        // An unlinked file's handle cannot be reopened: this inode pins an O_PATH descriptor.
        let path = reopen(&fd, libc::O_PATH)?;
        let entry = self.register(path, true)?;
        let fh = self.handles.add_file(fd);
        Ok((entry, fh))
    }

    fn do_link(&self, ino: NodeId, newparent: NodeId, newname: &OsStr) -> Result<Entry, Errno> {
        check_name(newname)?;
        let fd = self.inodes.fd(ino)?;
        let dir = self.inodes.fd(newparent)?;
        if let Err(e) = rustix::fs::linkat(&*fd, "", &*dir, newname, AtFlags::EMPTY_PATH) {
            if e != rustix::io::Errno::NOENT && e != rustix::io::Errno::PERM {
                return Err(errno(e));
            }
            rustix::fs::linkat(CWD, proc_path(&*fd), &*dir, newname, AtFlags::SYMLINK_FOLLOW)
                .map_err(errno)?;
        }
        self.lookup_at(dir.as_fd(), newname)
    }

    fn do_open(&self, ino: NodeId, flags: i32) -> Result<FileHandle, Errno> {
        let fd = self.open_node(ino, self.open_flags(flags))?;
        Ok(self.handles.add_file(fd))
    }

    fn do_write(&self, args: &WriteArgs<'_>) -> Result<u32, Errno> {
        let fd = self.handles.file(args.fh)?;
        if args.kill_suidgid() {
            let st = rustix::fs::fstat(&*fd).map_err(errno)?;
            let kill = suidgid_bits(st.st_mode);
            if kill != 0 {
                rustix::fs::fchmod(&*fd, mode_of(st.st_mode & !kill)).map_err(errno)?;
            }
        }
        let mut done = 0;
        while done < args.data.len() {
            match rustix::io::pwrite(&*fd, &args.data[done..], args.offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) if done == 0 => return Err(errno(e)),
                Err(_) => break,
            }
        }
        Ok(done as u32)
    }

    fn do_opendir(&self, ino: NodeId) -> Result<FileHandle, Errno> {
        let fd = self.inodes.fd(ino)?;
        let dir = rustix::fs::openat(
            &*fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(self.handles.add_dir(dir))
    }

    fn do_readdir(&self, fh: FileHandle, offset: u64, reply: &mut ReplyDirectory) -> Result<(), Errno> {
        let dh = self.handles.dir(fh)?;
        let _g = dh.lock.lock().unwrap_or_else(|e| e.into_inner());
        rustix::fs::seek(&dh.fd, SeekFrom::Start(offset)).map_err(errno)?;
        let mut buf: Vec<MaybeUninit<u8>> = Vec::with_capacity(DIR_BUF);
        buf.resize(DIR_BUF, MaybeUninit::uninit());
        let mut it = RawDir::new(&dh.fd, &mut buf);
        while let Some(ent) = it.next() {
            let ent = ent.map_err(errno)?;
            let name = OsStr::from_bytes(ent.file_name().to_bytes());
            if reply.add(ent.ino(), ent.next_entry_cookie(), kind_of(ent.file_type()), name) {
                break;
            }
        }
        Ok(())
    }

    fn do_readdirplus(
        &self,
        fh: FileHandle,
        offset: u64,
        reply: &mut ReplyDirectoryPlus,
    ) -> Result<(), Errno> {
        let dh = self.handles.dir(fh)?;
        let _g = dh.lock.lock().unwrap_or_else(|e| e.into_inner());
        rustix::fs::seek(&dh.fd, SeekFrom::Start(offset)).map_err(errno)?;
        let mut buf: Vec<MaybeUninit<u8>> = Vec::with_capacity(DIR_BUF);
        buf.resize(DIR_BUF, MaybeUninit::uninit());
        let mut it = RawDir::new(&dh.fd, &mut buf);
        let mut added = 0usize;
        while let Some(ent) = it.next() {
            let ent = ent.map_err(errno)?;
            let name = OsStr::from_bytes(ent.file_name().to_bytes());
            let cookie = ent.next_entry_cookie();
            if name == "." || name == ".." {
                let attr = FileAttr {
                    ino: ent.ino(),
                    mode: kind_of(ent.file_type()).mode_bits(),
                    ..Default::default()
                };
                let e = Entry { ino: NodeId(0), generation: 0, attr };
                if reply.add(&e, cookie, name) {
                    break;
                }
                added += 1;
                continue;
            }
            match self.lookup_at(dh.fd.as_fd(), name) {
                Ok(e) => {
                    if reply.add(&e, cookie, name) {
                        self.inodes.forget(e.ino, 1);
                        break;
                    }
                    added += 1;
                }
                Err(Errno::ENOENT) => continue,
                Err(e) if added == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn do_statfs(&self, ino: NodeId) -> Result<Statfs, Errno> {
        let fd = self.inodes.fd(ino)?;
        let s = rustix::fs::fstatvfs(&*fd).map_err(errno)?;
        Ok(Statfs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
        })
    }

    fn do_getxattr(&self, ino: NodeId, name: &OsStr, size: u32) -> Result<Vec<u8>, Errno> {
        let fd = self.inodes.fd(ino)?;
        let path = proc_path(&*fd);
        if size == 0 {
            let n = rustix::fs::getxattr_query(&path, name).map_err(errno)?;
            return Ok(vec![0; n]);
        }
        let mut buf = vec![0u8; size as usize];
        let n = rustix::fs::getxattr(&path, name, &mut buf[..]).map_err(errno)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn do_listxattr(&self, ino: NodeId, size: u32) -> Result<Vec<u8>, Errno> {
        let fd = self.inodes.fd(ino)?;
        let path = proc_path(&*fd);
        if size == 0 {
            let n = rustix::fs::listxattr_query(&path).map_err(errno)?;
            return Ok(vec![0; n]);
        }
        let mut buf = vec![0u8; size as usize];
        let n = rustix::fs::listxattr(&path, &mut buf[..]).map_err(errno)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn do_access(&self, req: &RequestInfo, ino: NodeId, mask: i32) -> Result<(), Errno> {
        let fd = self.inodes.fd(ino)?;
        let st = rustix::fs::fstat(&*fd).map_err(errno)?;
        if mask == libc::F_OK {
            return Ok(());
        }
        let mode = st.st_mode;
        if req.uid == 0 {
            // Root may do anything, except execute a file no one may execute.
            let any_x = mode & 0o111 != 0 || mode & libc::S_IFMT == libc::S_IFDIR;
            return if mask & libc::X_OK != 0 && !any_x { Err(Errno::EACCES) } else { Ok(()) };
        }
        let bits = if req.uid == st.st_uid {
            (mode >> 6) & 7
        } else if req.gid == st.st_gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        if (mask as u32) & 7 & !bits != 0 {
            return Err(Errno::EACCES);
        }
        Ok(())
    }
}

impl Filesystem for Passthrough {
    fn init(&self, caps: &mut Capabilities) -> Result<(), Errno> {
        // Nanosecond timestamps, like the backing file systems we mirror.
        caps.time_gran = 1;
        Ok(())
    }

    fn lookup(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        reply.result(self.do_lookup(parent, name), |r, e| r.entry(&e))
    }

    fn forget(&self, ino: NodeId, nlookup: u64) {
        self.inodes.forget(ino, nlookup)
    }

    fn getattr(&self, _req: &RequestInfo, ino: NodeId, fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.result(self.do_getattr(ino, fh), |r, a| r.attr(&a))
    }

    fn setattr(&self, _req: &RequestInfo, ino: NodeId, attr: &SetAttr, reply: ReplyAttr) {
        reply.result(self.do_setattr(ino, attr), |r, a| r.attr(&a))
    }

    fn readlink(&self, _req: &RequestInfo, ino: NodeId, reply: ReplyData) {
        let r =
            self.inodes.fd(ino).and_then(|fd| rustix::fs::readlinkat(&*fd, "", Vec::new()).map_err(errno));
        reply.result(r, |r, t| r.data(t.as_bytes()))
    }

    fn symlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, target: &OsStr, reply: ReplyEntry) {
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            rustix::fs::symlinkat(target, &*dir, name).map_err(errno)?;
            self.finish_new(req, dir.as_fd(), name)
        });
        reply.result(r, |r, e| r.entry(&e))
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
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            let kind = rustix::fs::FileType::from_raw_mode(mode);
            rustix::fs::mknodat(&*dir, name, kind, mode_of(mode), decode_dev(rdev)).map_err(errno)?;
            self.finish_new(req, dir.as_fd(), name)
        });
        reply.result(r, |r, e| r.entry(&e))
    }

    fn mkdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, reply: ReplyEntry) {
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            rustix::fs::mkdirat(&*dir, name, mode_of(mode)).map_err(errno)?;
            self.finish_new(req, dir.as_fd(), name)
        });
        reply.result(r, |r, e| r.entry(&e))
    }

    fn unlink(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            rustix::fs::unlinkat(&*dir, name, AtFlags::empty()).map_err(errno)
        });
        reply.result(r, |r, _| r.ok())
    }

    fn rmdir(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            rustix::fs::unlinkat(&*dir, name, AtFlags::REMOVEDIR).map_err(errno)
        });
        reply.result(r, |r, _| r.ok())
    }

    fn rename(
        &self,
        _req: &RequestInfo,
        parent: NodeId,
        name: &OsStr,
        newparent: NodeId,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let r = check_name(name).and_then(|_| check_name(newname)).and_then(|_| {
            let from = self.inodes.fd(parent)?;
            let to = self.inodes.fd(newparent)?;
            if flags == 0 {
                rustix::fs::renameat(&*from, name, &*to, newname)
            } else {
                rustix::fs::renameat_with(&*from, name, &*to, newname, RenameFlags::from_bits_retain(flags))
            }
            .map_err(errno)
        });
        reply.result(r, |r, _| r.ok())
    }

    fn link(&self, _req: &RequestInfo, ino: NodeId, newparent: NodeId, newname: &OsStr, reply: ReplyEntry) {
        reply.result(self.do_link(ino, newparent, newname), |r, e| r.entry(&e))
    }

    fn open(&self, _req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        reply.result(self.do_open(ino, flags), |r, fh| r.opened(fh, 0))
    }

    fn read(&self, _req: &RequestInfo, _ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        let fd = match self.handles.file(args.fh) {
            Ok(fd) => fd,
            Err(e) => return reply.error(e),
        };
        let size = args.size as usize;
        READ_BUF.with(|b| {
            let mut b = b.borrow_mut();
            // Page-aligned: a backing file opened O_DIRECT (the caller's flag) rejects others.
            if b.len() < size + 4096 {
                b.resize(size + 4096, 0);
            }
            let at = b.as_ptr().align_offset(4096);
            let b = &mut b[at..at + size];
            let mut done = 0;
            while done < size {
                match rustix::io::pread(&*fd, &mut b[done..size], args.offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) if done == 0 => return reply.error(errno(e)),
                    Err(_) => break,
                }
            }
            reply.data(&b[..done])
        })
    }

    fn write(&self, _req: &RequestInfo, _ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        reply.result(self.do_write(args), |r, n| r.written(n))
    }

    fn flush(&self, _req: &RequestInfo, _ino: NodeId, _fh: FileHandle, _lock_owner: u64, reply: ReplyEmpty) {
        reply.ok()
    }

    fn release(&self, _req: &RequestInfo, _ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        drop(self.handles.remove_file(args.fh));
        reply.ok()
    }

    fn fsync(&self, _req: &RequestInfo, _ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = self.handles.file(fh).and_then(|fd| {
            if datasync { rustix::fs::fdatasync(&*fd) } else { rustix::fs::fsync(&*fd) }.map_err(errno)
        });
        reply.result(r, |r, _| r.ok())
    }

    fn opendir(&self, _req: &RequestInfo, ino: NodeId, _flags: i32, reply: ReplyOpen) {
        reply.result(self.do_opendir(ino), |r, fh| r.opened(fh, 0))
    }

    fn readdir(
        &self,
        _req: &RequestInfo,
        _ino: NodeId,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.do_readdir(fh, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &RequestInfo,
        _ino: NodeId,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        match self.do_readdirplus(fh, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(&self, _req: &RequestInfo, _ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        drop(self.handles.remove_dir(args.fh));
        reply.ok()
    }

    fn fsyncdir(&self, _req: &RequestInfo, _ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = self.handles.dir(fh).and_then(|d| {
            if datasync { rustix::fs::fdatasync(&d.fd) } else { rustix::fs::fsync(&d.fd) }.map_err(errno)
        });
        reply.result(r, |r, _| r.ok())
    }

    fn statfs(&self, _req: &RequestInfo, ino: NodeId, reply: ReplyStatfs) {
        reply.result(self.do_statfs(ino), |r, s| r.statfs(&s))
    }

    fn setxattr(
        &self,
        _req: &RequestInfo,
        ino: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        reply: ReplyEmpty,
    ) {
        let r = self.inodes.fd(ino).and_then(|fd| {
            rustix::fs::setxattr(proc_path(&*fd), name, value, XattrFlags::from_bits_retain(flags as _))
                .map_err(errno)
        });
        reply.result(r, |r, _| r.ok())
    }

    fn getxattr(&self, _req: &RequestInfo, ino: NodeId, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply.result(self.do_getxattr(ino, name, size), |r, v| r.value(size, &v))
    }

    fn listxattr(&self, _req: &RequestInfo, ino: NodeId, size: u32, reply: ReplyXattr) {
        reply.result(self.do_listxattr(ino, size), |r, v| r.value(size, &v))
    }

    fn removexattr(&self, _req: &RequestInfo, ino: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let r =
            self.inodes.fd(ino).and_then(|fd| rustix::fs::removexattr(proc_path(&*fd), name).map_err(errno));
        reply.result(r, |r, _| r.ok())
    }

    fn access(&self, req: &RequestInfo, ino: NodeId, mask: i32, reply: ReplyEmpty) {
        reply.result(self.do_access(req, ino, mask), |r, _| r.ok())
    }

    fn create(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs, reply: ReplyCreate) {
        reply.result(self.do_create(req, parent, name, args), |r, (e, fh)| r.created(&e, fh, 0))
    }

    fn tmpfile(&self, req: &RequestInfo, parent: NodeId, args: &CreateArgs, reply: ReplyCreate) {
        reply.result(self.do_tmpfile(req, parent, args), |r, (e, fh)| r.created(&e, fh, 0))
    }

    fn fallocate(&self, _req: &RequestInfo, _ino: NodeId, args: &FallocateArgs, reply: ReplyEmpty) {
        let r = self.handles.file(args.fh).and_then(|fd| {
            let mode = rustix::fs::FallocateFlags::from_bits_retain(args.mode as u32);
            rustix::fs::fallocate(&*fd, mode, args.offset, args.length).map_err(errno)
        });
        reply.result(r, |r, _| r.ok())
    }

    fn lseek(
        &self,
        _req: &RequestInfo,
        _ino: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let r = self.handles.file(fh).and_then(|fd| {
            let pos = match whence {
                libc::SEEK_DATA => SeekFrom::Data(offset),
                libc::SEEK_HOLE => SeekFrom::Hole(offset),
                _ => return Err(Errno::EINVAL),
            };
            rustix::fs::seek(&*fd, pos).map_err(errno)
        });
        reply.result(r, |r, off| r.offset(off))
    }

    fn copy_file_range(&self, _req: &RequestInfo, _ino_in: NodeId, args: &CopyRangeArgs, reply: ReplyCopy) {
        let r = (|| {
            if args.flags != 0 {
                return Err(Errno::EINVAL);
            }
            let fin = self.handles.file(args.fh_in)?;
            let fout = self.handles.file(args.fh_out)?;
            let (mut oi, mut oo) = (args.off_in, args.off_out);
            let len = usize::try_from(args.len).unwrap_or(usize::MAX);
            rustix::fs::copy_file_range(&*fin, Some(&mut oi), &*fout, Some(&mut oo), len).map_err(errno)
        })();
        match r {
            Ok(n) => reply.copied(n as u64),
            Err(e) => reply.error(e),
        }
    }
}
