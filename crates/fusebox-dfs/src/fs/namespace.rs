//! [`AsyncFilesystem`] for [`DfsFs`]: namespace, attributes and xattrs as one metadata
//! transaction each; data operations delegate to `data.rs`.

use super::{file_attr, lock, ns, with_buffered, DfsFs};
use crate::meta::coord::LockRelease;
use crate::meta::{Attr, Caller, Inode, NewNode, ROOT_INO};
use fusebox::fs::acl;
use fusebox::fs::asyncfs::{
    dirent_plus_size, dirent_size, AsyncFilesystem, DirEntry, DirEntryPlus, FsResult, Opened, ReadData,
    WriteData,
};
use fusebox::fs::*;
use fusebox::session::Capabilities;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

const NO_HANDLE: Opened = Opened { fh: FileHandle(0), flags: 0 };

/// The mode and initial ACL xattrs of a new node under `parent` (memfs's rule): under a default
/// ACL the node inherits it (a directory also as its default ACL) and the umask does not
/// apply; otherwise the umask does. Symlinks get neither. A setgid parent gives its group, and
/// its bit to new subdirectories.
fn new_node(parent: &Inode, req: &RequestInfo, mode: u32) -> Result<NewNode, Errno> {
    let mut xattrs = Vec::new();
    let mut mode = mode;
    if mode & libc::S_IFMT != libc::S_IFLNK {
        match parent.acl_default.as_deref().and_then(|v| acl::Acl::parse(v).ok()) {
            None => mode &= !(req.umask & 0o7777),
            Some(default) => {
                let (access, m) = default.inherit(mode);
                mode = m;
                if let Some(a) = access {
                    xattrs.push((acl::ACCESS.as_bytes().to_vec(), a.to_bytes()));
                }
                if mode & libc::S_IFMT == libc::S_IFDIR {
                    xattrs.push((acl::DEFAULT.as_bytes().to_vec(), default.to_bytes()));
                }
            }
        }
    }
    let setgid = parent.attr.mode & libc::S_ISGID != 0;
    let gid = if setgid { parent.attr.gid } else { req.gid };
    if setgid && mode & libc::S_IFMT == libc::S_IFDIR {
        mode |= libc::S_ISGID;
    }
    Ok(NewNode { mode, uid: req.uid, gid, rdev: 0, symlink: None, xattrs })
}

fn time_ns(t: TimeOrNow) -> i64 {
    ns(t.resolve())
}

impl DfsFs {
    async fn make(
        &self, req: RequestInfo, parent: NodeId, name: OsString, mode: u32, rdev: u32,
        target: Option<Vec<u8>>,
    ) -> FsResult<Entry> {
        let name = name.into_vec();
        let gen = self.coherence.kept_attrs_gen();
        // A directory this mount created in last, found without a default ACL: the new node is
        // computed from what is kept of it, and the create checks that in its one round trip.
        let known = self.coherence.kept_plain_dir(parent.0);
        let (a, plain, dir) = self
            .m(move |m| {
                let make = |p: &Inode| {
                    let mut n = new_node(p, &req, mode)?;
                    n.rdev = rdev;
                    n.symlink = target.clone();
                    Ok::<_, Errno>(n)
                };
                if let Some(d) = known {
                    let p = Inode { attr: d.clone(), acl_access: None, acl_default: None };
                    let n = make(&p)?;
                    if let Some(a) = m.create_in_known_dir(parent.0, d.version, &name, &n)? {
                        return Ok((a, n.xattrs.is_empty(), Some((d, true))));
                    }
                }
                let (mut plain, mut dir) = (true, None);
                let a = m.create(parent.0, &name, &mut |p| {
                    let n = make(p)?;
                    plain = n.xattrs.is_empty();
                    dir = Some((p.attr.clone(), p.acl_default.is_none()));
                    Ok(n)
                })?;
                Ok((a, plain, dir))
            })
            .await?;
        if plain {
            self.coherence.created_without_xattrs(a.ino);
        }
        if let Some((mut d, no_default_acl)) = dir {
            // What the create did to its directory (MetaStore::create): one more link for a
            // new subdirectory, mtime and ctime of the new inode's birth, the next version.
            d.nlink += u32::from(a.is_dir());
            d.mtime_ns = a.ctime_ns;
            d.ctime_ns = a.ctime_ns;
            d.version += 1;
            if no_default_acl {
                self.coherence.keep_plain_dir(d, gen);
            } else {
                self.coherence.keep_attr(d, gen);
            }
        }
        self.coherence.keep_attr(a.clone(), gen);
        Ok(self.entry(&a))
    }

    /// Under the write-back cache the kernel sends a file's new mtime (and ctime) with a SETATTR
    /// right before it flushes the data. When the file has uncommitted data, the time goes into
    /// the write buffer and the commit stores it with the data: one metadata transaction per
    /// close instead of two. `None` when `s` is anything else.
    async fn times_into_buffer(&self, ino: u64, s: &SetAttr) -> FsResult<Option<FileAttr>> {
        // The kernel's flush sends mtime and ctime together; utimensat(2) sends no ctime (the
        // file system sets it to now), so it takes the ordinary path.
        let only_times = s.size.is_none()
            && s.mode.is_none()
            && s.uid.is_none()
            && s.gid.is_none()
            && s.atime.is_none()
            && s.ctime.is_some()
            && !s.kill_suidgid;
        let (true, Some(TimeOrNow::Time(t)), Some(w)) = (only_times, s.mtime, self.writer(ino)) else {
            return Ok(None);
        };
        let mut w = w.lock().await;
        if w.is_clean() {
            return Ok(None);
        }
        w.set_mtime(ns(t));
        // Read under the buffer's lock, so no commit of it falls between the read and the merge
        // (a commit drops the kept attributes).
        let a = match self.coherence.kept_attr(ino) {
            Some(a) => a,
            None => self.m_read(move |m| m.getattr(ino)).await?,
        };
        Ok(Some(file_attr(&with_buffered(a, &w))))
    }

    async fn do_setxattr(&self, ino: NodeId, name: OsString, value: Vec<u8>, flags: i32) -> FsResult<()> {
        if name.is_empty() || name.len() > 255 {
            return Err(Errno::ERANGE);
        }
        if value.len() > 65536 {
            return Err(Errno(libc::E2BIG));
        }
        self.coherence.xattrs_may_change(ino.0);
        if name == acl::ACCESS || name == acl::DEFAULT {
            let parsed = acl::Acl::parse(&value)?;
            let access = name == acl::ACCESS;
            let now = crate::meta::store::now_ns();
            self.m(move |m| {
                m.update(ino.0, &mut |n: &mut Inode| {
                    let exists = if access { n.acl_access.is_some() } else { n.acl_default.is_some() };
                    if flags & libc::XATTR_CREATE != 0 && exists {
                        return Err(Errno::EEXIST);
                    }
                    if flags & libc::XATTR_REPLACE != 0 && !exists {
                        return Err(Errno::ENODATA);
                    }
                    if access {
                        // The access ACL and the mode bits are one thing: the mode takes the
                        // ACL's owner/mask/other bits, and an ACL saying no more is not stored.
                        n.attr.mode = (n.attr.mode & !0o777) | parsed.mode_bits();
                        n.acl_access = (!parsed.is_minimal()).then(|| parsed.to_bytes());
                    } else {
                        if !n.attr.is_dir() {
                            return Err(Errno::EACCES);
                        }
                        n.acl_default = Some(parsed.to_bytes());
                    }
                    n.attr.ctime_ns = now;
                    Ok(())
                })
            })
            .await?;
            return Ok(());
        }
        let name = name.into_vec();
        self.m(move |m| m.set_xattr(ino.0, &name, &value, flags)).await
    }

    /// SETATTR, also the truncation of an OPEN with O_TRUNC; what is kept of `ino` goes after
    /// it, whatever the outcome (see `coherence`).
    async fn do_setattr(&self, req: RequestInfo, ino: u64, s: SetAttr) -> FsResult<FileAttr> {
        let r = self.change_attrs(req, ino, s).await;
        self.coherence.drop_kept_attr(ino);
        r
    }

    async fn change_attrs(&self, req: RequestInfo, ino: u64, s: SetAttr) -> FsResult<FileAttr> {
        if let Some(a) = self.times_into_buffer(ino, &s).await? {
            return Ok(a);
        }
        // A size change commits the write buffer first and holds it, so no WRITE slips in
        // between the commit and the cut.
        let writer = s.size.map(|_| self.writer_or_new(ino));
        let mut guard = match &writer {
            Some(w) => Some(w.lock().await),
            None => None,
        };
        if let Some(w) = guard.as_deref_mut() {
            self.commit_locked(ino, w).await?;
        }
        let now = crate::meta::store::now_ns();
        let commits = self.commit_count();
        let a = self
            .m(move |m| {
                m.update(ino, &mut |n: &mut Inode| {
                    if let Some(size) = s.size {
                        if n.attr.is_dir() {
                            return Err(Errno::EISDIR);
                        }
                        if !n.attr.is_file() {
                            return Err(Errno::EINVAL);
                        }
                        if size > i64::MAX as u64 {
                            return Err(Errno::EFBIG);
                        }
                        n.attr.size = size;
                        n.attr.mtime_ns = now;
                    }
                    if let Some(mode) = s.mode {
                        n.attr.mode = (n.attr.mode & libc::S_IFMT) | (mode & !libc::S_IFMT);
                        // An access ACL follows chmod (owner, mask, other entries).
                        if let Some(mut acl) = n.acl_access.as_deref().and_then(|v| acl::Acl::parse(v).ok()) {
                            acl.chmod(mode);
                            n.acl_access = Some(acl.to_bytes());
                        }
                    }
                    if let Some(uid) = s.uid {
                        n.attr.uid = uid;
                    }
                    if let Some(gid) = s.gid {
                        n.attr.gid = gid;
                    }
                    if s.kill_suidgid {
                        n.attr.mode &= !setid_bits_to_clear(n.attr.mode, n.attr.gid, &req);
                    }
                    if let Some(t) = s.atime {
                        n.attr.atime_ns = time_ns(t);
                    }
                    if let Some(t) = s.mtime {
                        n.attr.mtime_ns = time_ns(t);
                    }
                    n.attr.ctime_ns = now;
                    // With the write-back cache the kernel owns ctime and sends it explicitly.
                    if let Some(t) = s.ctime {
                        n.attr.ctime_ns = ns(t);
                    }
                    Ok(())
                })
            })
            .await?;
        drop(guard);
        let a = if s.size.is_some() { a } else { self.with_pending(a, commits).await? };
        Ok(file_attr(&a))
    }
}

impl AsyncFilesystem for DfsFs {
    fn init(&self, caps: &mut Capabilities) -> FsResult<()> {
        caps.time_gran = 1;
        // New nodes get the umask or the parent's default ACL here (as memfs does).
        caps.dont_mask = true;
        caps.posix_acl = true;
        // Locks live in the metadata, shared by every mount.
        caps.posix_locks = true;
        caps.flock_locks = true;
        Ok(())
    }

    fn mounted(&self, mount: &MountInfo) {
        self.start_session(mount);
    }

    fn destroy(&self) {
        self.end_session();
    }

    async fn lookup(&self, _req: RequestInfo, parent: NodeId, name: OsString) -> FsResult<Entry> {
        let name = name.into_vec();
        // Bounded: under a constant stream of changes elsewhere the third answer goes out as is.
        let mut attempt = 0;
        loop {
            let (commits, epoch) = (self.commit_count(), self.coherence.data_epoch());
            let n = name.clone();
            let a = self
                .m_read(move |m| match &n[..] {
                    b"." => m.getattr(parent.0),
                    b".." => m.parent_of(parent.0).and_then(|p| m.getattr(p)),
                    _ => m.lookup(parent.0, &n),
                })
                .await?;
            let a = self.with_pending(a, commits).await?;
            // Another mount's data change applied meanwhile may be newer than `a`.
            if self.coherence.data_epoch() == epoch || attempt == 2 {
                return Ok(self.entry(&a));
            }
            attempt += 1;
        }
    }

    async fn forget(&self, ino: NodeId, nlookup: u64) {
        self.do_forget(ino.0, nlookup).await
    }

    async fn getattr(&self, _req: RequestInfo, ino: NodeId, _fh: Option<FileHandle>) -> FsResult<FileAttr> {
        // A file's kept attributes lack what its write buffer adds: read as below.
        if let Some(a) = self.coherence.kept_attr(ino.0).filter(Attr::is_dir) {
            return Ok(file_attr(&a));
        }
        let commits = self.commit_count();
        let a = self.m_read(move |m| m.getattr(ino.0)).await?;
        Ok(file_attr(&self.with_pending(a, commits).await?))
    }

    async fn setattr(&self, req: RequestInfo, ino: NodeId, attr: SetAttr) -> FsResult<FileAttr> {
        self.do_setattr(req, ino.0, attr).await
    }

    async fn readlink(&self, _req: RequestInfo, ino: NodeId) -> FsResult<Vec<u8>> {
        self.m(move |m| m.readlink(ino.0)).await
    }

    async fn symlink(
        &self, req: RequestInfo, parent: NodeId, name: OsString, target: OsString,
    ) -> FsResult<Entry> {
        if target.len() >= 4096 {
            return Err(Errno::ENAMETOOLONG);
        }
        self.make(req, parent, name, libc::S_IFLNK | 0o777, 0, Some(target.into_vec())).await
    }

    async fn mknod(
        &self, req: RequestInfo, parent: NodeId, name: OsString, mode: u32, rdev: u32,
    ) -> FsResult<Entry> {
        match mode & libc::S_IFMT {
            libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => {}
            _ => return Err(Errno::EINVAL),
        }
        self.make(req, parent, name, mode, rdev, None).await
    }

    async fn mkdir(&self, req: RequestInfo, parent: NodeId, name: OsString, mode: u32) -> FsResult<Entry> {
        self.make(req, parent, name, libc::S_IFDIR | (mode & 0o7777), 0, None).await
    }

    async fn unlink(&self, _req: RequestInfo, parent: NodeId, name: OsString) -> FsResult<()> {
        let name = name.into_vec();
        let a = self.m(move |m| m.unlink(parent.0, &name)).await;
        self.coherence.drop_kept_attrs();
        let a = a?;
        self.after_unlink(a.ino, a.nlink).await;
        Ok(())
    }

    async fn rmdir(&self, _req: RequestInfo, parent: NodeId, name: OsString) -> FsResult<()> {
        let name = name.into_vec();
        let a = self.m(move |m| m.rmdir(parent.0, &name)).await;
        self.coherence.drop_kept_attrs();
        let a = a?;
        self.after_unlink(a.ino, 0).await;
        Ok(())
    }

    async fn rename(
        &self, req: RequestInfo, parent: NodeId, name: OsString, newparent: NodeId, newname: OsString,
        flags: u32,
    ) -> FsResult<()> {
        let (name, newname) = (name.into_vec(), newname.into_vec());
        let caller = Caller { uid: req.uid, gid: req.gid };
        let replaced = self.m(move |m| m.rename(parent.0, &name, newparent.0, &newname, flags, caller)).await;
        self.coherence.drop_kept_attrs();
        let replaced = replaced?;
        if let Some(r) = replaced {
            self.after_unlink(r.ino, r.nlink).await;
        }
        Ok(())
    }

    async fn link(
        &self, _req: RequestInfo, ino: NodeId, newparent: NodeId, newname: OsString,
    ) -> FsResult<Entry> {
        let newname = newname.into_vec();
        let commits = self.commit_count();
        let a = self.m(move |m| m.link(ino.0, newparent.0, &newname)).await;
        self.coherence.drop_kept_attrs();
        let a = a?;
        lock(&self.unlinked).remove(&a.ino);
        let a = self.with_pending(a, commits).await?;
        Ok(self.entry(&a))
    }

    async fn open(&self, req: RequestInfo, ino: NodeId, flags: i32) -> FsResult<Opened> {
        self.check_open(ino.0, req.pid).await?;
        let a = self.m(move |m| m.getattr(ino.0)).await?;
        if a.is_dir() {
            return Err(Errno::EISDIR);
        }
        if flags & libc::O_TRUNC != 0 && a.is_file() {
            let s = SetAttr { size: Some(0), ..Default::default() };
            self.do_setattr(req, ino.0, s).await?;
        }
        self.handle_opened(ino.0);
        Ok(self.new_handle())
    }

    async fn read(&self, _req: RequestInfo, ino: NodeId, args: ReadArgs) -> FsResult<ReadData> {
        self.do_read(ino.0, args.offset, args.size as u64).await
    }

    async fn write(&self, req: RequestInfo, ino: NodeId, args: WriteData) -> FsResult<u32> {
        let writeback = args.as_args().is_writeback();
        self.do_write(ino.0, args.offset, &args.data, writeback).await?;
        if args.as_args().kill_suidgid() {
            self.m(move |m| {
                m.update(ino.0, &mut |n: &mut Inode| {
                    n.attr.mode &= !setid_bits_to_clear(n.attr.mode, n.attr.gid, &req);
                    Ok(())
                })
            })
            .await?;
            self.coherence.drop_kept_attr(ino.0);
        }
        Ok(args.data.len() as u32)
    }

    async fn flush(&self, _req: RequestInfo, ino: NodeId, _fh: FileHandle, lock_owner: u64) -> FsResult<()> {
        let r = self.commit(ino.0).await;
        // close(2) drops the closing process's record locks, also when the commit failed.
        self.release_locks(ino.0, LockRelease::Posix(lock_owner)).await;
        r
    }

    async fn release(&self, _req: RequestInfo, ino: NodeId, args: ReleaseArgs) -> FsResult<()> {
        // Pages written back after the last FLUSH (through a shared mapping) commit here.
        let r = self.commit(ino.0).await;
        if let Err(e) = r {
            tracing::error!(ino = ino.0, errno = e.0, "commit at release failed; data stays buffered");
        }
        self.drop_writer_if_clean(ino.0);
        if args.lock_owner.is_some() {
            // flock locks are owned by the handle (fs/locks.rs).
            self.release_locks(ino.0, LockRelease::Flock(args.fh.0)).await;
        }
        self.release_locks(ino.0, LockRelease::Description(args.fh.0)).await;
        self.handle_released(ino.0);
        r
    }

    async fn getlk(&self, _req: RequestInfo, ino: NodeId, args: LockArgs) -> FsResult<FileLock> {
        self.do_getlk(ino.0, args).await
    }

    async fn setlk(
        &self, _req: RequestInfo, ino: NodeId, args: LockArgs, _interrupt: Interrupt,
    ) -> FsResult<()> {
        self.do_setlk(ino.0, args).await
    }

    async fn fsync(&self, _req: RequestInfo, ino: NodeId, _fh: FileHandle, _datasync: bool) -> FsResult<()> {
        let before = self.commit_count();
        self.commit(ino.0).await?;
        // A data commit that finished after this call began is durable with every change
        // before it (MetaStore::commit); without one, what changed without data (a rename, a
        // chmod) still has to reach stable storage.
        if self.commit_count() == before {
            self.m(|m| m.sync()).await?;
        }
        Ok(())
    }

    async fn opendir(&self, _req: RequestInfo, ino: NodeId, _flags: i32) -> FsResult<Opened> {
        let a = self.m(move |m| m.getattr(ino.0)).await?;
        if !a.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(NO_HANDLE)
    }

    async fn readdir(&self, _req: RequestInfo, ino: NodeId, args: ReaddirArgs) -> FsResult<Vec<DirEntry>> {
        let (offset, max_bytes) = (args.offset, args.max_bytes);
        let limit = max_bytes / dirent_size(8) + 1;
        let (parent, items) = self
            .m(move |m| {
                let parent = if offset < 2 { m.parent_of(ino.0)? } else { 0 };
                Ok((parent, m.readdir(ino.0, offset.max(2), limit)?))
            })
            .await?;
        let (mut list, mut used) = (Vec::new(), 0);
        let mut add = |e: DirEntry| {
            used += dirent_size(e.name.len());
            if used > max_bytes {
                return false;
            }
            list.push(e);
            true
        };
        if offset < 1 && !add(DirEntry { ino: ino.0, offset: 1, kind: FileType::Directory, name: ".".into() })
        {
            return Ok(list);
        }
        if offset < 2
            && !add(DirEntry { ino: parent, offset: 2, kind: FileType::Directory, name: "..".into() })
        {
            return Ok(list);
        }
        for it in items {
            let kind = FileType::from_mode(it.attr.mode).unwrap_or(FileType::Regular);
            let e = DirEntry { ino: it.attr.ino, offset: it.cookie, kind, name: OsString::from_vec(it.name) };
            if !add(e) {
                break;
            }
        }
        Ok(list)
    }

    async fn readdirplus(
        &self, _req: RequestInfo, ino: NodeId, args: ReaddirArgs,
    ) -> FsResult<Vec<DirEntryPlus>> {
        let (offset, max_bytes) = (args.offset, args.max_bytes);
        let limit = max_bytes / dirent_plus_size(8) + 1;
        let commits = self.commit_count();
        let (me, parent, items) = self
            .m(move |m| {
                let me = m.getattr(ino.0)?;
                let parent = if offset < 2 { Some(m.getattr(m.parent_of(ino.0)?)?) } else { None };
                Ok((me, parent, m.readdir(ino.0, offset.max(2), limit)?))
            })
            .await?;
        let mut list = Vec::new();
        let mut used = 0;
        let plain = |a: &crate::meta::Attr| Entry {
            ino: NodeId(a.ino),
            generation: a.generation,
            attr: file_attr(a),
        };
        // "." and ".." carry attributes but, as the kernel skips them, no lookup count.
        for (cookie, name, a) in [(1u64, ".", Some(me)), (2, "..", parent)] {
            let Some(a) = a else { continue };
            if offset >= cookie {
                continue;
            }
            used += dirent_plus_size(name.len());
            if used > max_bytes {
                return Ok(list);
            }
            list.push(DirEntryPlus { entry: plain(&a), offset: cookie, name: name.into() });
        }
        for it in items {
            used += dirent_plus_size(it.name.len());
            if used > max_bytes {
                break;
            }
            let a = self.with_pending(it.attr, commits).await?;
            list.push(DirEntryPlus {
                entry: self.entry(&a),
                offset: it.cookie,
                name: OsString::from_vec(it.name),
            });
        }
        Ok(list)
    }

    async fn fsyncdir(
        &self, _req: RequestInfo, _ino: NodeId, _fh: FileHandle, _datasync: bool,
    ) -> FsResult<()> {
        // Namespace changes are committed already; this puts them on stable storage.
        self.m(|m| m.sync()).await
    }

    async fn statfs(&self, _req: RequestInfo, _ino: NodeId) -> FsResult<Statfs> {
        let u = self.m(|m| m.usage()).await?;
        let bsize = 4096u64;
        let total = 1u64 << 50;
        let free = total.saturating_sub(u.bytes) / bsize;
        Ok(Statfs {
            blocks: total / bsize,
            bfree: free,
            bavail: free,
            files: u.inodes,
            ffree: (1u64 << 40).saturating_sub(u.inodes),
            bsize: bsize as u32,
            namelen: crate::meta::NAME_MAX as u32,
            frsize: bsize as u32,
        })
    }

    async fn setxattr(
        &self, _req: RequestInfo, ino: NodeId, name: OsString, value: Vec<u8>, flags: i32,
    ) -> FsResult<()> {
        let r = self.do_setxattr(ino, name, value, flags).await;
        self.coherence.drop_kept_attr(ino.0);
        r
    }

    async fn getxattr(&self, _req: RequestInfo, ino: NodeId, name: OsString) -> FsResult<Vec<u8>> {
        if self.coherence.has_no_xattrs(ino.0) {
            return Err(Errno::ENODATA);
        }
        let name = name.into_vec();
        self.m(move |m| m.get_xattr(ino.0, &name)).await
    }

    async fn listxattr(&self, _req: RequestInfo, ino: NodeId) -> FsResult<Vec<u8>> {
        if self.coherence.has_no_xattrs(ino.0) {
            return Ok(Vec::new());
        }
        let names = self.m(move |m| m.list_xattr(ino.0)).await?;
        Ok(names
            .into_iter()
            .flat_map(|mut n| {
                n.push(0);
                n
            })
            .collect())
    }

    async fn removexattr(&self, _req: RequestInfo, ino: NodeId, name: OsString) -> FsResult<()> {
        let name = name.into_vec();
        let r = self.m(move |m| m.remove_xattr(ino.0, &name)).await;
        self.coherence.drop_kept_attr(ino.0);
        r
    }

    async fn create(
        &self, req: RequestInfo, parent: NodeId, name: OsString, args: CreateArgs,
    ) -> FsResult<(Entry, Opened)> {
        let e = self.make(req, parent, name, libc::S_IFREG | (args.mode & 0o7777), 0, None).await?;
        self.handle_opened(e.ino.0);
        Ok((e, self.new_handle()))
    }
}

/// Root inode number (FUSE's root node id is 1 too).
const _: () = assert!(ROOT_INO == fusebox::abi::FUSE_ROOT_ID);
