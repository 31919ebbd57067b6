//! The [`Filesystem`] implementation: each request handler calls a `Result`-returning helper
//! and answers with its value or errno.

use super::attr::{decode_dev, to_attr};
use super::direct::{read_at, write_at, AlignedBuf};
use super::error::errno;
use super::names::check_name;
use super::{proc_path, reopen, Passthrough};
use fusebox::fs::fileattr::O_APPEND_CACHED;
use fusebox::fs::{
    setid_bits_to_clear, CopyRangeArgs, CreateArgs, Entry, FallocateArgs, IoctlArgs, LockArgs, MountInfo,
    ReadArgs, ReaddirArgs, ReleaseArgs, Reply, ReplyAttr, ReplyCopy, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyStatx, ReplyWrite, ReplyXattr, SetAttr, Statfs, Statx, TimeOrNow, Timespec, WriteArgs,
};
use fusebox::{sys, Capabilities, Errno, FileAttr, FileHandle, FileType, Filesystem, NodeId, RequestInfo};
use rustix::fs::{
    AtFlags, Gid, Mode, OFlags, RawDir, RenameFlags, SeekFrom, Timestamps, Uid, XattrFlags, CWD,
};
use std::cell::RefCell;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

thread_local! {
    /// Per-thread page-aligned buffer for READ (O_DIRECT-ready), reused across requests.
    static READ_BUF: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
    /// Per-thread bounce buffer for direct WRITEs whose payload is not aligned.
    static BOUNCE: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

const DIR_BUF: usize = 32 * 1024;

pub(super) fn mode_of(m: u32) -> Mode {
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

/// The mode to create a node with, given the caller's `umask` (DONT_MASK: the kernel left it
/// to us). As on a local file system, a parent directory with a default ACL replaces the
/// umask: the node is created with the full mode and the backing file system applies the
/// inherited ACL (the daemon runs with umask 0). Otherwise the umask applies.
fn new_node_mode(dir: std::os::fd::BorrowedFd<'_>, mode: u32, umask: u32) -> u32 {
    // Any answer but "no such attribute" (or no ACL support) means there is one; ERANGE is a
    // default ACL larger than the probe buffer.
    let mut probe = [0u8; 64];
    let has_default_acl =
        match rustix::fs::getxattr(proc_path(&dir), "system.posix_acl_default", &mut probe[..]) {
            Ok(n) => n > 0,
            Err(e) => e == rustix::io::Errno::RANGE,
        };
    if has_default_acl {
        mode
    } else {
        mode & !(umask & 0o7777)
    }
}

/// The suid/sgid bits a "kill suid/sgid" must clear from `mode` (sgid only with group exec).
/// The set-id bits of the backing file `st` a change by `caller` clears.
fn suidgid_bits(st: &rustix::fs::Stat, caller: &RequestInfo) -> u32 {
    setid_bits_to_clear(st.st_mode, st.st_gid, caller)
}

impl Passthrough {
    fn do_lookup(&self, parent: NodeId, name: &OsStr) -> Result<Entry, Errno> {
        let b = name.as_bytes();
        if b == b"." || (b == b".." && parent == NodeId::ROOT) {
            // "." is the node itself (also a file: the kernel resolves a file handle of a node
            // it forgot this way); ".." of the root is the root (never above SOURCE).
            let generation = self.inodes.add_lookup_or_revive(parent)?;
            let seen = self.coherence.clock();
            let st = self.inodes.fd(parent).and_then(|fd| rustix::fs::fstat(&*fd).map_err(errno));
            // A deleted file (its descriptor pinned until FORGET) is ESTALE for a file handle.
            let st = st.and_then(|st| if st.st_nlink == 0 { Err(Errno(libc::ESTALE)) } else { Ok(st) });
            let st = st.inspect_err(|_| {
                Filesystem::forget(self, parent, 1);
            })?;
            let attr = to_attr(&st);
            self.told(parent, &attr, seen);
            return Ok(Entry { ino: parent, generation, attr });
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
        // An open file's own descriptor if it has one (not reopening a parked one: the
        // inode's descriptor names the same file).
        let seen = self.coherence.clock();
        let st = match fh.and_then(|fh| self.handles.file(fh).ok()) {
            Some(fd) => rustix::fs::fstat(&*fd),
            None => rustix::fs::fstat(&*self.inodes.fd(ino)?),
        }
        .map_err(errno)?;
        let attr = to_attr(&st);
        // With the write-back cache the kernel keeps its own size of a cached regular file,
        // so a GETATTR reply does not tell it a size changed elsewhere: leave the record for
        // OPEN/LOOKUP to notice the change (coherence.rs).
        if !(self.coherence.writeback() && attr.kind() == Some(FileType::Regular)) {
            self.told(ino, &attr, seen);
        }
        Ok(attr)
    }

    fn do_setattr(&self, req: &RequestInfo, ino: NodeId, a: &SetAttr) -> Result<FileAttr, Errno> {
        let fd = self.inodes.fd(ino)?;
        if let Some(attr) = self.times_of_deleted_file(&fd, a)? {
            return Ok(attr);
        }
        let open = a.fh.and_then(|fh| self.file(fh).ok());
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
            let kill = suidgid_bits(&st, req);
            if kill != 0 && st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                rustix::fs::chmodat(CWD, proc_path(&*fd), mode_of(st.st_mode & !kill), AtFlags::empty())
                    .map_err(errno)?;
            }
        }
        let st = rustix::fs::fstat(&*fd).map_err(errno)?;
        Ok(to_attr(&st))
    }

    /// With the write-back cache the kernel writes back the new ctime of every file it unlinks
    /// (one SETATTR per unlink). Once the backing file has no name left, nobody can see its
    /// times in SOURCE, and the kernel keeps its own mtime/ctime for a file still open through
    /// the mount: answer such a times-only SETATTR without touching the backing inode (which
    /// would be a journaled update). `None`: not such a request, apply it normally.
    fn times_of_deleted_file(&self, fd: &impl AsFd, a: &SetAttr) -> Result<Option<FileAttr>, Errno> {
        let times_only = a.mode.is_none()
            && a.uid.is_none()
            && a.gid.is_none()
            && a.size.is_none()
            && !a.kill_suidgid
            && (a.atime.is_some() || a.mtime.is_some() || a.ctime.is_some());
        if !times_only || !self.coherence.writeback() {
            return Ok(None);
        }
        let st = rustix::fs::fstat(fd).map_err(errno)?;
        if st.st_nlink != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(None);
        }
        let mut attr = to_attr(&st);
        let pick = |t: Option<TimeOrNow>, old: Timespec| match t {
            Some(TimeOrNow::Time(t)) => t,
            Some(TimeOrNow::Now) => Timespec::now(),
            None => old,
        };
        attr.atime = pick(a.atime, attr.atime);
        attr.mtime = pick(a.mtime, attr.mtime);
        if let Some(c) = a.ctime {
            attr.ctime = c;
        }
        Ok(Some(attr))
    }

    /// The kernel keeps an unlinked inode until its last reference goes and may still send
    /// requests for it (with write-back, UNLINK marks its ctime dirty and a concurrent sync
    /// flushes it with SETATTR). Once the backing file is deleted it cannot be reopened by
    /// handle, so keep an O_PATH descriptor of a known node about to lose a name until FORGET.
    /// Best effort: if the name cannot be opened, unlinkat reports why.
    #[allow(clippy::unnecessary_cast)] // st_dev/st_ino are not u64 on every target
    fn pin_before_unlink(&self, dir: std::os::fd::BorrowedFd<'_>, name: &OsStr) {
        // One fstatat instead of opening the name: the node's descriptor is usually cached.
        if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if st.st_nlink <= 1 {
                if let Some(id) = self.inodes.by_key((st.st_dev as u64, st.st_ino as u64)) {
                    self.inodes.pin_for_unlink(id);
                }
            }
        }
    }

    /// Open the backing file of `ino` with `flags`: by file handle, or through the pinned
    /// descriptor's `/proc/self/fd` entry.
    pub(super) fn open_node(&self, ino: NodeId, flags: i32) -> Result<OwnedFd, Errno> {
        let inode = self.inodes.get(ino)?;
        match (&inode.pinned, &inode.handle) {
            // A deleted file cannot be reopened by handle; the descriptor kept for it since
            // its unlink (or still cached) can.
            (None, Some(h)) => match self.inodes.open_handle(h, flags) {
                Err(e) if e == Errno(libc::ESTALE) => reopen(&*self.inodes.fd_of(ino, &inode)?, flags),
                r => r,
            },
            _ => reopen(&*self.inodes.fd_of(ino, &inode)?, flags),
        }
    }

    fn do_create(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs,
    ) -> Result<(Entry, FileHandle, u32), Errno> {
        check_name(name)?;
        let dir = self.inodes.fd(parent)?;
        let mut flags = self.open_flags(args.flags) | libc::O_NOFOLLOW;
        let excl = OFlags::from_bits_retain((flags | libc::O_CREAT | libc::O_EXCL) as _);
        let mode = new_node_mode(dir.as_fd(), args.mode, req.umask);
        let mut open_flags = self.direct_open_flags(args.flags);
        let (fd, created) = match rustix::fs::openat(&*dir, name, excl, mode_of(mode)) {
            Ok(fd) => (fd, true),
            Err(rustix::io::Errno::EXIST) if args.flags & libc::O_EXCL == 0 => {
                let existing = |f: i32| {
                    rustix::fs::openat(&*dir, name, OFlags::from_bits_retain(f as _), Mode::empty())
                        .map_err(errno)
                };
                let (fd, used, appending) = open_appending(args.flags, flags, existing)?;
                (flags, open_flags) = (used, open_flags | appending);
                (fd, false)
            }
            Err(e) => return Err(errno(e)),
        };
        if created {
            self.set_owner(req, dir.as_fd(), fd.as_fd(), mode)?;
        } else if args.flags & libc::O_TRUNC != 0 && req.uid != 0 {
            // CREATE reaches an existing file only when it appeared in SOURCE between the
            // kernel's negative LOOKUP and its CREATE (fusebox never lets the kernel cache
            // negative names). A truncating open by a caller without CAP_FSETID (approximated:
            // not root) clears suid/sgid, as the framework does for OPEN.
            let st = rustix::fs::fstat(&fd).map_err(errno)?;
            let kill = suidgid_bits(&st, req);
            if kill != 0 {
                rustix::fs::fchmod(&fd, mode_of(st.st_mode & !kill)).map_err(errno)?;
            }
        }
        let path = reopen(&fd, libc::O_PATH)?;
        let entry = self.register(path, false)?;
        let fh = self.handles.add_file(fd, entry.ino, flags);
        Ok((entry, fh, open_flags))
    }

    fn do_tmpfile(
        &self, req: &RequestInfo, parent: NodeId, args: &CreateArgs,
    ) -> Result<(Entry, FileHandle), Errno> {
        let dir = self.inodes.fd(parent)?;
        let mut flags = self.open_flags(args.flags) & !libc::O_TMPFILE;
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            flags |= libc::O_RDWR;
        }
        flags |= libc::O_TMPFILE;
        let mode = new_node_mode(dir.as_fd(), args.mode, req.umask);
        let fd = rustix::fs::openat(&*dir, ".", OFlags::from_bits_retain(flags as _), mode_of(mode))
            .map_err(errno)?;
        self.set_owner(req, dir.as_fd(), fd.as_fd(), mode)?;
        // An unlinked file's handle cannot be reopened: this inode pins an O_PATH descriptor.
        let path = reopen(&fd, libc::O_PATH)?;
        let entry = self.register(path, true)?;
        let fh = self.handles.add_file(fd, entry.ino, flags);
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

    /// The backing id to answer the open `fh` of `ino` with, when it goes through kernel
    /// passthrough (kernel.rs).
    fn passthrough_id(
        &self, ino: NodeId, fh: FileHandle, flags: i32,
    ) -> Option<std::sync::Arc<fusebox::session::BackingId>> {
        if !self.kernel.active() {
            return None;
        }
        let fd = self.handles.file(fh).ok()?;
        let id = self.kernel.attach(ino, fh, fd.as_fd(), flags & libc::O_ACCMODE != libc::O_RDONLY)?;
        // The kernel holds the backing file now: close the daemon's descriptor, so open files
        // do not count against the daemon's RLIMIT_NOFILE. FSYNC, FALLOCATE, locks and the
        // like reopen it on demand (sync_close.rs, `file`).
        drop(fd);
        self.handles.park(fh);
        Some(id)
    }

    /// Answer GETATTR or SETATTR: uncached while a passthrough open file may write through a
    /// mapping the daemon never hears of (kernel.rs).
    fn reply_attr(&self, ino: NodeId, attr: &FileAttr, reply: ReplyAttr) {
        if self.kernel.writing(ino) {
            reply.attr_with_ttl(attr, std::time::Duration::ZERO)
        } else {
            reply.attr(attr)
        }
    }

    /// Answer STATX by the same rule as [`Passthrough::reply_attr`].
    fn reply_statx(&self, ino: NodeId, statx: &Statx, reply: ReplyStatx) {
        if self.kernel.writing(ino) {
            reply.statx_with_ttl(statx, std::time::Duration::ZERO)
        } else {
            reply.statx(statx)
        }
    }

    /// Answer a CREATE or TMPFILE: through kernel passthrough when it is on.
    fn reply_created(
        &self, r: Result<(Entry, FileHandle), Errno>, flags: i32, open_flags: u32, reply: ReplyCreate,
    ) {
        match r {
            Err(e) => reply.error(e),
            Ok((e, fh)) => match self.passthrough_id(e.ino, fh, flags) {
                Some(id) => reply.created_passthrough(&e, fh, 0, &id),
                None => reply.created(&e, fh, open_flags),
            },
        }
    }

    /// Open-reply flags for an open with `flags`: an O_DIRECT open gets FOPEN_DIRECT_IO and
    /// FOPEN_PARALLEL_DIRECT_WRITES (unless `fopen_direct_io=off`). Without them the kernel sends
    /// O_DIRECT writes through the page-cache path (`generic_file_direct_write`: flush and
    /// invalidation around each write, the inode lock held exclusively); with them the request
    /// goes out at once and writes to one file may run in parallel. The backing descriptor
    /// stays O_DIRECT. mmap keeps working (DIRECT_IO_ALLOW_MMAP is negotiated).
    fn direct_open_flags(&self, flags: i32) -> u32 {
        if self.fopen_direct_io && flags & libc::O_DIRECT != 0 {
            fusebox::abi::FOPEN_DIRECT_IO | fusebox::abi::FOPEN_PARALLEL_DIRECT_WRITES
        } else {
            0
        }
    }

    /// Open `ino` for an OPEN with `flags`: its handle and the open-reply flags.
    fn do_open(&self, ino: NodeId, flags: i32) -> Result<(FileHandle, u32), Errno> {
        // Close-to-open: if the file changed since the kernel last heard about it (another
        // mount, a direct user), drop its cached attributes and pages before it is opened
        // (coherence.rs). A truncating open is checked before it truncates: that change is ours.
        let trunc = flags & libc::O_TRUNC != 0;
        if trunc {
            let seen = self.coherence.clock();
            let st = rustix::fs::fstat(&*self.inodes.fd(ino)?).map_err(errno)?;
            self.check_not_deleted_in_source(ino, &st)?;
            self.open_changed(ino, &to_attr(&st), seen)?;
        }
        let seen = self.coherence.clock();
        let _changing = trunc.then(|| self.coherence.changing(ino));
        let (fd, used, appending) =
            open_appending(flags, self.open_flags(flags), |f| self.open_node(ino, f))?;
        if trunc {
            self.own_change(ino, &fd);
        } else if let Ok(st) = rustix::fs::fstat(&fd) {
            self.check_not_deleted_in_source(ino, &st)?;
            self.open_changed(ino, &to_attr(&st), seen)?;
        }
        Ok((self.handles.add_file(fd, ino, used), self.direct_open_flags(flags) | appending))
    }

    /// An OPEN of a regular file that lost its last name directly in SOURCE (deleted or
    /// replaced there, not through this mount) answers ESTALE: the kernel's name is stale, and
    /// ESTALE makes the VFS walk the path again with revalidation (`LOOKUP_REVAL`), which opens
    /// the new file or fails with ENOENT. (The backing inode can still be opened while the
    /// daemon caches a descriptor of it, which would serve the deleted file's old bytes.) A
    /// file unlinked through this mount, or made with O_TMPFILE, is opened as usual: the
    /// kernel reaches it through a descriptor, not a name.
    fn check_not_deleted_in_source(&self, ino: NodeId, st: &rustix::fs::Stat) -> Result<(), Errno> {
        let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
        if !regular || st.st_nlink != 0 || self.inodes.unlinked_here(ino) {
            return Ok(());
        }
        match self.inodes.get(ino)?.pinned {
            Some(_) => Ok(()),
            None => Err(Errno(libc::ESTALE)),
        }
    }

    fn do_write(&self, req: &RequestInfo, args: &WriteArgs<'_>) -> Result<u32, Errno> {
        let fd = self.file(args.fh)?;
        if args.kill_suidgid() {
            let st = rustix::fs::fstat(&*fd).map_err(errno)?;
            let kill = suidgid_bits(&st, req);
            if kill != 0 {
                rustix::fs::fchmod(&*fd, mode_of(st.st_mode & !kill)).map_err(errno)?;
            }
        }
        let done = BOUNCE.with(|b| write_at(&fd, args.data, args.offset, &mut b.borrow_mut()))?;
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

    /// Walk the open directory `fh` from cookie `offset`: `visit(name, next cookie, inode
    /// number, type, directory fd)` for each entry until it returns `Ok(true)` (stop) or an
    /// error, with the handle's lock held so that concurrent readers do not move its offset.
    fn walk_dir(
        &self, fh: FileHandle, offset: u64,
        mut visit: impl FnMut(&OsStr, u64, u64, FileType, BorrowedFd<'_>) -> Result<bool, Errno>,
    ) -> Result<(), Errno> {
        let dh = self.handles.dir(fh)?;
        let _g = dh.lock.lock().unwrap_or_else(|e| e.into_inner());
        rustix::fs::seek(&dh.fd, SeekFrom::Start(offset)).map_err(errno)?;
        let mut buf: Vec<MaybeUninit<u8>> = Vec::with_capacity(DIR_BUF);
        buf.resize(DIR_BUF, MaybeUninit::uninit());
        let mut it = RawDir::new(&dh.fd, &mut buf);
        while let Some(ent) = it.next() {
            let ent = ent.map_err(errno)?;
            let name = OsStr::from_bytes(ent.file_name().to_bytes());
            if visit(name, ent.next_entry_cookie(), ent.ino(), kind_of(ent.file_type()), dh.fd.as_fd())? {
                break;
            }
        }
        Ok(())
    }

    fn do_readdir(&self, fh: FileHandle, offset: u64, reply: &mut ReplyDirectory) -> Result<(), Errno> {
        self.walk_dir(fh, offset, |name, cookie, ino, kind, _| Ok(reply.add(ino, cookie, kind, name)))
    }

    fn do_readdirplus(
        &self, fh: FileHandle, offset: u64, reply: &mut ReplyDirectoryPlus,
    ) -> Result<(), Errno> {
        let mut added = 0usize;
        self.walk_dir(fh, offset, |name, cookie, ino, kind, dir| {
            let e = if name == "." || name == ".." {
                let attr = FileAttr { ino, mode: kind.mode_bits(), ..Default::default() };
                Entry { ino: NodeId(0), generation: 0, attr }
            } else {
                match self.lookup_at(dir, name) {
                    Ok(e) => e,
                    Err(Errno::ENOENT) => return Ok(false),
                    Err(e) if added == 0 => return Err(e),
                    Err(_) => return Ok(true),
                }
            };
            if reply.add(&e, cookie, name) {
                if e.ino != NodeId(0) {
                    Filesystem::forget(self, e.ino, 1);
                }
                return Ok(true);
            }
            added += 1;
            Ok(false)
        })
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
        // POSIX ACLs live on the backing files; new nodes get the caller's umask or the
        // parent's default ACL from the backing file system (see `new_node_mode`).
        caps.dont_mask = true;
        caps.posix_acl = true;
        // Locks are forwarded to the backing files (see locks.rs).
        caps.posix_locks = true;
        caps.flock_locks = true;
        // Close-to-open handling depends on who owns cached sizes (coherence.rs); granted
        // passthrough turns the write-back cache off again in `mounted`.
        self.coherence.writeback.store(caps.writeback_cache, std::sync::atomic::Ordering::Relaxed);
        caps.passthrough = self.kernel_passthrough && sys::has_capability(sys::CAP_SYS_ADMIN);
        if self.kernel_passthrough && !caps.passthrough {
            tracing::warn!(
                "kernel passthrough needs CAP_SYS_ADMIN to register backing files: \
                 file data goes through the daemon"
            );
        }
        Ok(())
    }

    fn lookup(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        reply.result(self.do_lookup(parent, name), |r, e| r.entry(&e))
    }

    fn forget(&self, ino: NodeId, nlookup: u64) {
        self.inodes.forget(ino, nlookup, || {
            self.coherence.forget(ino);
            if let Some(w) = &self.watch {
                w.forget(ino);
            }
        });
    }

    fn destroy(&self) {
        if let Some(w) = &self.watch {
            w.stop();
        }
    }

    fn getattr(&self, _req: &RequestInfo, ino: NodeId, fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.result(self.do_getattr(ino, fh), |r, a| self.reply_attr(ino, &a, r))
    }

    fn statx(&self, _req: &RequestInfo, ino: NodeId, fh: Option<FileHandle>, reply: ReplyStatx) {
        let r = self.do_getattr(ino, fh).and_then(|attr| {
            // The birth time and attribute flags of the backing file, as statx(2) reports them.
            let fd = self.inodes.fd(ino)?;
            let sx = rustix::fs::statx(
                &*fd,
                "",
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
                rustix::fs::StatxFlags::BTIME,
            )
            .map_err(errno)?;
            let btime = rustix::fs::StatxFlags::from_bits_retain(sx.stx_mask)
                .contains(rustix::fs::StatxFlags::BTIME)
                .then_some(Timespec { sec: sx.stx_btime.tv_sec, nsec: sx.stx_btime.tv_nsec });
            Ok(Statx {
                attr,
                btime,
                attributes: sx.stx_attributes.bits(),
                attributes_mask: sx.stx_attributes_mask.bits(),
            })
        });
        reply.result(r, |r, s| self.reply_statx(ino, &s, r))
    }

    fn setattr(&self, req: &RequestInfo, ino: NodeId, attr: &SetAttr, reply: ReplyAttr) {
        let _changing = self.coherence.changing(ino);
        let r = self.do_setattr(req, ino, attr);
        if let Ok(a) = &r {
            self.coherence.record(ino, a);
        }
        reply.result(r, |r, a| self.reply_attr(ino, &a, r))
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
            self.finish_new(req, dir.as_fd(), name, 0)
        });
        reply.result(r, |r, e| r.entry(&e))
    }

    fn mknod(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, rdev: u32, reply: ReplyEntry,
    ) {
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            let kind = rustix::fs::FileType::from_raw_mode(mode);
            let mode = new_node_mode(dir.as_fd(), mode, req.umask);
            rustix::fs::mknodat(&*dir, name, kind, mode_of(mode), decode_dev(rdev)).map_err(errno)?;
            self.finish_new(req, dir.as_fd(), name, mode)
        });
        reply.result(r, |r, e| r.entry(&e))
    }

    fn mkdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, reply: ReplyEntry) {
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            let mode = new_node_mode(dir.as_fd(), mode, req.umask);
            rustix::fs::mkdirat(&*dir, name, mode_of(mode)).map_err(errno)?;
            self.finish_new(req, dir.as_fd(), name, mode)
        });
        reply.result(r, |r, e| r.entry(&e))
    }

    fn unlink(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let r = check_name(name).and_then(|_| {
            let dir = self.inodes.fd(parent)?;
            self.pin_before_unlink(dir.as_fd(), name);
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
        &self, _req: &RequestInfo, parent: NodeId, name: &OsStr, newparent: NodeId, newname: &OsStr,
        flags: u32, reply: ReplyEmpty,
    ) {
        let r = check_name(name).and_then(|_| check_name(newname)).and_then(|_| {
            let from = self.inodes.fd(parent)?;
            let to = self.inodes.fd(newparent)?;
            if flags & libc::RENAME_EXCHANGE == 0 {
                // A replaced target loses its name like an unlinked file.
                self.pin_before_unlink(to.as_fd(), newname);
            }
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
        match self.do_open(ino, flags) {
            Err(e) => reply.error(e),
            Ok((fh, open_flags)) => match self.passthrough_id(ino, fh, flags) {
                Some(id) => reply.passthrough(fh, 0, &id),
                None => reply.opened(fh, open_flags),
            },
        }
    }

    fn read(&self, _req: &RequestInfo, _ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        let fd = match self.file(args.fh) {
            Ok(fd) => fd,
            Err(e) => return reply.error(e),
        };
        let reply = match reply.splice_from_file(fd.as_fd(), args.offset, args.size as usize) {
            Ok(()) => return,
            Err(reply) => reply,
        };
        READ_BUF.with(|b| {
            let mut b = b.borrow_mut();
            let buf = b.get(args.size as usize);
            match read_at(&fd, buf, args.offset) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(e),
            }
        })
    }

    fn write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        let _changing = self.coherence.changing(ino);
        let r = self.do_write(req, args);
        if r.is_ok() {
            if let Ok(fd) = self.file(args.fh) {
                self.own_change(ino, &*fd);
            }
        }
        reply.result(r, |r, n| r.written(n))
    }

    fn mounted(&self, mount: &MountInfo) {
        self.noatime.store(mount.noatime, std::sync::atomic::Ordering::Relaxed);
        self.kernel.mounted(mount.backing.as_ref());
        if mount.backing.is_some() {
            // Granted passthrough means no write-back cache (the kernel refuses both).
            self.coherence.writeback.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = self.mountpoint.set(mount.mountpoint.clone());
        let _ = self.notifier.set(mount.notifier.clone());
        if let Some(w) = &self.watch {
            if let Ok(fd) = self.inodes.fd(NodeId::ROOT) {
                w.add_dir(NodeId::ROOT, &*fd);
            }
            w.spawn(self.inodes.clone(), self.coherence.clone(), mount.notifier.clone());
        }
    }

    fn flush(&self, _req: &RequestInfo, ino: NodeId, fh: FileHandle, lock_owner: u64, reply: ReplyEmpty) {
        self.release_posix_locks(ino, lock_owner);
        if self.sync_close {
            reply.result(self.sync_close_flush(ino, fh), |r, ()| r.ok())
        } else {
            reply.ok()
        }
    }

    fn release(&self, _req: &RequestInfo, ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        self.note_flock(args.fh, false);
        self.release_handle_locks(ino, args.fh);
        let passthrough = self.kernel.release(args.fh);
        if passthrough && args.flags & libc::O_ACCMODE != libc::O_RDONLY {
            // Its writes went from the kernel to the backing file; mapped ones left the
            // kernel's attributes old (coherence.rs).
            if let Ok(fd) = self.inodes.fd(ino) {
                self.passthrough_settled(ino, &*fd);
            }
        }
        if let Some(fd) = self.handles.remove_file(args.fh) {
            if args.lock_owner.is_some() {
                let _ = rustix::fs::flock(&*fd, rustix::fs::FlockOperation::Unlock);
            }
        }
        reply.ok()
    }

    fn getlk(&self, _req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyLock) {
        reply.result(self.do_getlk(ino, args), |r, l| r.lock(&l))
    }

    fn setlk(&self, _req: &RequestInfo, ino: NodeId, args: &LockArgs, reply: ReplyEmpty) {
        let intr = reply.interrupt();
        reply.result(self.do_setlk(ino, args, &intr), |r, ()| r.ok())
    }

    fn fsync(&self, _req: &RequestInfo, ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = self.file(fh).and_then(|fd| {
            if datasync { rustix::fs::fdatasync(&*fd) } else { rustix::fs::fsync(&*fd) }.map_err(errno)?;
            if self.kernel.active() {
                // msync(2) of a passthrough mapping ends here (coherence.rs).
                self.passthrough_settled(ino, &*fd);
            }
            Ok(())
        });
        reply.result(r, |r, _| r.ok())
    }

    fn ioctl(&self, _req: &RequestInfo, ino: NodeId, args: &IoctlArgs<'_>, reply: ReplyIoctl) {
        match super::ioctl::serve(&self.handles, &|fh| self.file(fh), args) {
            Ok((result, data)) => {
                if super::ioctl::changes(args) {
                    // The backing ctime moved; the kernel's cached attributes do not know.
                    self.attributes_changed(ino);
                }
                reply.ioctl(result, &data)
            }
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &RequestInfo, ino: NodeId, _flags: i32, reply: ReplyOpen) {
        reply.result(self.do_opendir(ino), |r, fh| r.opened(fh, 0))
    }

    fn readdir(&self, _req: &RequestInfo, _ino: NodeId, args: &ReaddirArgs, mut reply: ReplyDirectory) {
        match self.do_readdir(args.fh, args.offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self, _req: &RequestInfo, _ino: NodeId, args: &ReaddirArgs, mut reply: ReplyDirectoryPlus,
    ) {
        match self.do_readdirplus(args.fh, args.offset, &mut reply) {
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
        &self, _req: &RequestInfo, ino: NodeId, name: &OsStr, value: &[u8], flags: i32, reply: ReplyEmpty,
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
        match self.do_create(req, parent, name, args) {
            Ok((e, fh, open_flags)) => self.reply_created(Ok((e, fh)), args.flags, open_flags, reply),
            Err(e) => reply.error(e),
        }
    }

    fn tmpfile(&self, req: &RequestInfo, parent: NodeId, args: &CreateArgs, reply: ReplyCreate) {
        self.reply_created(self.do_tmpfile(req, parent, args), args.flags & !libc::O_TMPFILE, 0, reply)
    }

    fn fallocate(&self, _req: &RequestInfo, ino: NodeId, args: &FallocateArgs, reply: ReplyEmpty) {
        let _changing = self.coherence.changing(ino);
        let r = self.file(args.fh).and_then(|fd| {
            let mode = rustix::fs::FallocateFlags::from_bits_retain(args.mode as u32);
            rustix::fs::fallocate(&*fd, mode, args.offset, args.length).map_err(errno)?;
            self.own_change(ino, &*fd);
            Ok(())
        });
        reply.result(r, |r, _| r.ok())
    }

    fn lseek(
        &self, _req: &RequestInfo, _ino: NodeId, fh: FileHandle, offset: u64, whence: i32, reply: ReplyLseek,
    ) {
        let r = self.file(fh).and_then(|fd| {
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
            let fin = self.file(args.fh_in)?;
            let fout = self.file(args.fh_out)?;
            let _changing = self.coherence.changing(args.ino_out);
            let (mut oi, mut oo) = (args.off_in, args.off_out);
            let len = usize::try_from(args.len).unwrap_or(usize::MAX);
            let n = rustix::fs::copy_file_range(&*fin, Some(&mut oi), &*fout, Some(&mut oo), len)
                .map_err(errno)?;
            self.own_change(args.ino_out, &*fout);
            Ok(n)
        })();
        match r {
            Ok(n) => reply.copied(n as u64),
            Err(e) => reply.error(e),
        }
    }
}

/// Open a backing file by `open` with `flags` (already through `open_flags`). Under the
/// write-back cache the framework's rule drops O_APPEND, which an append-only backing file
/// (chattr +a) refuses with EPERM; when the caller asked to append (`kernel_flags` has
/// [`O_APPEND_CACHED`]) it is opened O_APPEND instead. Returns the descriptor, the flags it was
/// opened with, and open-reply flags: FOPEN_DIRECT_IO for such an O_APPEND descriptor, so each
/// write reaches it as the caller wrote it (written-back pages would come from their page
/// start, and the descriptor would append them whole again).
fn open_appending(
    kernel_flags: i32, flags: i32, open: impl Fn(i32) -> Result<OwnedFd, Errno>,
) -> Result<(OwnedFd, i32, u32), Errno> {
    match open(flags) {
        Err(e) if e == Errno::EPERM && kernel_flags & O_APPEND_CACHED != 0 => {
            let flags = flags | libc::O_APPEND;
            Ok((open(flags)?, flags, fusebox::abi::FOPEN_DIRECT_IO))
        }
        r => r.map(|fd| (fd, flags, 0)),
    }
}
