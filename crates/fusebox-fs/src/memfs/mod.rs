//! memfs: an in-memory POSIX file system.
//!
//! Sparse regular files, directories, symlinks, hard links, device nodes, FIFOs, xattrs,
//! nanosecond times, rename flags, fallocate (incl. punch hole), SEEK_DATA/SEEK_HOLE and an
//! optional size limit (ENOSPC). Permissions are stored and enforced by the kernel
//! (`default_permissions`, which the CLI always sets for memfs).
//!
//! Locking: one `RwLock` over the inode table (the namespace), one `RwLock` per inode.
//! Namespace changes hold the table's write lock and then lock the nodes they touch; data
//! operations hold only their node's lock. No thread ever waits for the table while holding a
//! node, so there is no lock cycle.

mod data;
mod node;

use crate::locks::LockTable;
use data::CHUNK;
use fusebox::fs::*;
use fusebox::session::Capabilities;
use node::{Content, DirEntries, Node, FIRST_COOKIE};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

type NodeRef = Arc<RwLock<Node>>;

/// Options of memfs.
#[derive(Debug, Clone, Default)]
pub struct MemFsOptions {
    /// Capacity in bytes (`-o size=`); `None` = unlimited.
    pub size: Option<u64>,
    /// Permission bits of the root directory (`-o mode=`, octal); default 0755.
    pub root_mode: Option<u32>,
    /// Owner of the root directory; default the daemon's uid/gid.
    pub root_owner: Option<(u32, u32)>,
}

/// The in-memory file system.
pub struct MemFs {
    nodes: RwLock<HashMap<u64, NodeRef>>,
    next_ino: AtomicU64,
    used: AtomicU64,
    limit: u64,
    locks: Arc<LockTable>,
}

const NAME_MAX: usize = 255;

fn read(n: &NodeRef) -> RwLockReadGuard<'_, Node> {
    n.read().unwrap_or_else(|e| e.into_inner())
}

fn write(n: &NodeRef) -> RwLockWriteGuard<'_, Node> {
    n.write().unwrap_or_else(|e| e.into_inner())
}

fn check_name(name: &OsStr) -> Result<(), Errno> {
    let b = name.as_bytes();
    if b.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if b.is_empty() || b.contains(&b'/') || b == b"." || b == b".." {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn entry(node: &Node) -> Entry {
    Entry { ino: NodeId(node.attr.ino), generation: 0, attr: node.stat() }
}

impl MemFs {
    /// An empty file system.
    pub fn new(opts: MemFsOptions) -> MemFs {
        let (uid, gid) = opts.root_owner.unwrap_or_else(fusebox::sys::getuid_gid);
        let mode = libc::S_IFDIR | opts.root_mode.unwrap_or(0o755);
        let mut root = Node::new(1, mode, uid, gid, Content::Dir(DirEntries::new(1)));
        root.nlookup = 1;
        let mut nodes = HashMap::new();
        nodes.insert(1, Arc::new(RwLock::new(root)));
        MemFs {
            nodes: RwLock::new(nodes),
            next_ino: AtomicU64::new(2),
            used: AtomicU64::new(0),
            limit: opts.size.unwrap_or(u64::MAX),
            locks: LockTable::new(),
        }
    }

    fn table(&self) -> RwLockReadGuard<'_, HashMap<u64, NodeRef>> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn table_mut(&self) -> RwLockWriteGuard<'_, HashMap<u64, NodeRef>> {
        self.nodes.write().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, ino: NodeId) -> Result<NodeRef, Errno> {
        self.table().get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    /// Reserve `bytes` of capacity or fail with ENOSPC.
    fn reserve(&self, bytes: u64) -> Result<(), Errno> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| Errno::ENOSPC)
    }

    fn release_space(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Drop `ino` from the table when no name and no kernel reference is left.
    fn maybe_evict(&self, table: &mut HashMap<u64, NodeRef>, ino: u64) {
        let Some(n) = table.get(&ino) else { return };
        let (dead, freed) = {
            let n = read(n);
            (
                n.attr.nlink == 0 && n.nlookup == 0 && ino != 1,
                match &n.content {
                    Content::File(d) => d.allocated(),
                    _ => 0,
                },
            )
        };
        if dead {
            table.remove(&ino);
            self.release_space(freed);
            self.locks.forget_inode(ino);
        }
    }

    /// Create a node named `name` in `parent`; counts one lookup.
    fn create_node(
        &self,
        req: &RequestInfo,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        make: impl FnOnce(u64) -> Content,
    ) -> Result<Entry, Errno> {
        check_name(name)?;
        let mut table = self.table_mut();
        let pref = table.get(&parent.0).cloned().ok_or(Errno::ENOENT)?;
        let mut p = write(&pref);
        let (pgid, psetgid) = (p.attr.gid, p.attr.mode & libc::S_ISGID != 0);
        let Content::Dir(dir) = &mut p.content else { return Err(Errno::ENOTDIR) };
        if dir.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let content = make(parent.0);
        let is_dir = matches!(content, Content::Dir(_));
        // A setgid directory gives new entries its group; new subdirectories inherit the bit.
        let gid = if psetgid { pgid } else { req.gid };
        let mode = if psetgid && is_dir { mode | libc::S_ISGID } else { mode };
        let mut node = Node::new(ino, mode, req.uid, gid, content);
        node.nlookup = 1;
        dir.insert(name, ino);
        if is_dir {
            p.attr.nlink += 1;
        }
        p.touch_modified();
        let e = entry(&node);
        table.insert(ino, Arc::new(RwLock::new(node)));
        Ok(e)
    }

    fn lookup_entry(&self, parent: NodeId, name: &OsStr) -> Result<Entry, Errno> {
        let table = self.table();
        let pref = table.get(&parent.0).ok_or(Errno::ENOENT)?;
        let p = read(pref);
        let Content::Dir(dir) = &p.content else { return Err(Errno::ENOTDIR) };
        let ino = match name.as_bytes() {
            b"." => parent.0,
            b".." => dir.parent,
            _ => {
                if name.len() > NAME_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                dir.get(name).ok_or(Errno::ENOENT)?
            }
        };
        let child = table.get(&ino).ok_or(Errno::ENOENT)?;
        let mut c = if ino == parent.0 {
            drop(p);
            write(child)
        } else {
            write(child)
        };
        c.nlookup += 1;
        Ok(entry(&c))
    }

    fn do_setattr(&self, ino: NodeId, a: &SetAttr) -> Result<FileAttr, Errno> {
        let nref = self.get(ino)?;
        let mut n = write(&nref);
        if let Some(size) = a.size {
            let Content::File(d) = &mut n.content else { return Err(Errno::EISDIR) };
            let before = d.allocated();
            d.truncate(size);
            let after = d.allocated();
            if after < before {
                self.release_space(before - after);
            }
            n.touch_modified();
        }
        if let Some(mode) = a.mode {
            n.attr.mode = (n.attr.mode & libc::S_IFMT) | (mode & !libc::S_IFMT);
        }
        if let Some(uid) = a.uid {
            n.attr.uid = uid;
        }
        if let Some(gid) = a.gid {
            n.attr.gid = gid;
        }
        if a.kill_suidgid {
            n.kill_suidgid();
        }
        if let Some(t) = a.atime {
            n.attr.atime = t.resolve();
        }
        if let Some(t) = a.mtime {
            n.attr.mtime = t.resolve();
        }
        n.touch_changed();
        // With the write-back cache the kernel owns ctime and sends it explicitly.
        if let Some(t) = a.ctime {
            n.attr.ctime = t;
        }
        Ok(n.stat())
    }

    fn do_write(&self, ino: NodeId, args: &WriteArgs<'_>) -> Result<u32, Errno> {
        let nref = self.get(ino)?;
        let mut n = write(&nref);
        let end = args.offset.checked_add(args.data.len() as u64).filter(|&e| e <= i64::MAX as u64);
        let Some(_) = end else { return Err(Errno::EFBIG) };
        let Content::File(d) = &mut n.content else { return Err(Errno::EISDIR) };
        let new_chunks = d.chunks_needed(args.offset, args.data.len() as u64);
        self.reserve(new_chunks * CHUNK as u64)?;
        d.write(args.offset, args.data);
        n.touch_modified();
        if args.kill_suidgid() {
            n.kill_suidgid();
        }
        Ok(args.data.len() as u32)
    }

    fn do_unlink(&self, parent: NodeId, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let mut table = self.table_mut();
        let pref = table.get(&parent.0).cloned().ok_or(Errno::ENOENT)?;
        let mut p = write(&pref);
        let Content::Dir(dir) = &mut p.content else { return Err(Errno::ENOTDIR) };
        let ino = dir.get(name).ok_or(Errno::ENOENT)?;
        let cref = table.get(&ino).cloned().ok_or(Errno::ENOENT)?;
        {
            let mut c = write(&cref);
            match (&c.content, want_dir) {
                (Content::Dir(d), true) if !d.is_empty() => return Err(Errno::ENOTEMPTY),
                (Content::Dir(_), true) => c.attr.nlink = 0,
                (Content::Dir(_), false) => return Err(Errno::EISDIR),
                (_, true) => return Err(Errno::ENOTDIR),
                (_, false) => c.attr.nlink -= 1,
            }
            c.touch_changed();
        }
        dir.remove(name);
        if want_dir {
            p.attr.nlink -= 1;
        }
        p.touch_modified();
        drop(p);
        self.maybe_evict(&mut table, ino);
        Ok(())
    }

    fn do_rename(
        &self,
        parent: NodeId,
        name: &OsStr,
        newparent: NodeId,
        newname: &OsStr,
        flags: u32,
    ) -> Result<(), Errno> {
        check_name(newname)?;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0
            || flags == libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE
        {
            return Err(Errno::EINVAL);
        }
        let mut table = self.table_mut();
        let src_ref = table.get(&parent.0).cloned().ok_or(Errno::ENOENT)?;
        let dst_ref = table.get(&newparent.0).cloned().ok_or(Errno::ENOENT)?;
        let same_dir = parent == newparent;
        let dir_ino = |r: &NodeRef, n: &OsStr| match &read(r).content {
            Content::Dir(d) => d.get(n).ok_or(Errno::ENOENT),
            _ => Err(Errno::ENOTDIR),
        };
        let src_ino = dir_ino(&src_ref, name)?;
        let dst_ino = match dir_ino(&dst_ref, newname) {
            Ok(i) => Some(i),
            Err(e) if e == Errno::ENOENT => None,
            Err(e) => return Err(e),
        };
        if dst_ino == Some(src_ino) {
            return Ok(()); // Same inode: POSIX says do nothing.
        }
        let src_is_dir = matches!(read(&table[&src_ino]).content, Content::Dir(_));
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        match (dst_ino, exchange) {
            (None, true) => return Err(Errno::ENOENT),
            (Some(_), false) if flags & libc::RENAME_NOREPLACE != 0 => return Err(Errno::EEXIST),
            _ => {}
        }
        let dst_is_dir = dst_ino.map(|d| matches!(read(&table[&d]).content, Content::Dir(_)));
        if !exchange {
            if let Some(d) = dst_ino {
                match (src_is_dir, dst_is_dir == Some(true)) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) => {
                        if let Content::Dir(dd) = &read(&table[&d]).content {
                            if !dd.is_empty() {
                                return Err(Errno::ENOTEMPTY);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        // Update the directory entries.
        {
            let mut s = write(&src_ref);
            let Content::Dir(sd) = &mut s.content else { return Err(Errno::ENOTDIR) };
            if same_dir {
                if exchange {
                    let d = dst_ino.expect("checked");
                    sd.insert(name, d);
                    sd.insert(newname, src_ino);
                } else {
                    sd.remove(name);
                    sd.insert(newname, src_ino);
                }
                s.touch_modified();
            } else {
                let mut t = write(&dst_ref);
                let Content::Dir(td) = &mut t.content else { return Err(Errno::ENOTDIR) };
                if exchange {
                    let d = dst_ino.expect("checked");
                    sd.insert(name, d);
                    td.insert(newname, src_ino);
                    if src_is_dir != (dst_is_dir == Some(true)) {
                        // A directory moved each way changes both parents' link counts.
                        if src_is_dir {
                            s.attr.nlink -= 1;
                            t.attr.nlink += 1;
                        } else {
                            s.attr.nlink += 1;
                            t.attr.nlink -= 1;
                        }
                    }
                } else {
                    sd.remove(name);
                    td.insert(newname, src_ino);
                    if src_is_dir {
                        s.attr.nlink -= 1;
                        if dst_is_dir != Some(true) {
                            t.attr.nlink += 1;
                        }
                    }
                }
                s.touch_modified();
                t.touch_modified();
            }
        }
        // Fix ".." of moved directories and the ctime of moved inodes.
        let moves = [(src_ino, newparent.0), (dst_ino.unwrap_or(0), parent.0)];
        for (ino, new_parent) in moves.into_iter().take(if exchange { 2 } else { 1 }) {
            let mut n = write(&table[&ino]);
            if let Content::Dir(d) = &mut n.content {
                d.parent = new_parent;
            }
            n.touch_changed();
        }
        // A replaced target loses a link.
        if let (Some(d), false) = (dst_ino, exchange) {
            {
                let mut n = write(&table[&d]);
                if dst_is_dir == Some(true) {
                    n.attr.nlink = 0;
                    if same_dir {
                        drop(n);
                        write(&src_ref).attr.nlink -= 1;
                    } else {
                        drop(n);
                        write(&dst_ref).attr.nlink -= 1;
                    }
                } else {
                    n.attr.nlink -= 1;
                    n.touch_changed();
                }
            }
            self.maybe_evict(&mut table, d);
        }
        Ok(())
    }

    fn do_link(&self, ino: NodeId, newparent: NodeId, newname: &OsStr) -> Result<Entry, Errno> {
        check_name(newname)?;
        let table = self.table_mut();
        let pref = table.get(&newparent.0).cloned().ok_or(Errno::ENOENT)?;
        let cref = table.get(&ino.0).cloned().ok_or(Errno::ENOENT)?;
        let mut p = write(&pref);
        let Content::Dir(dir) = &mut p.content else { return Err(Errno::ENOTDIR) };
        if dir.get(newname).is_some() {
            return Err(Errno::EEXIST);
        }
        let mut c = write(&cref);
        if matches!(c.content, Content::Dir(_)) {
            return Err(Errno::EPERM);
        }
        dir.insert(newname, ino.0);
        c.attr.nlink += 1;
        c.nlookup += 1;
        c.touch_changed();
        p.touch_modified();
        Ok(entry(&c))
    }

    fn do_fallocate(&self, ino: NodeId, args: &FallocateArgs) -> Result<(), Errno> {
        const KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
        const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE;
        const ZERO: i32 = libc::FALLOC_FL_ZERO_RANGE;
        let nref = self.get(ino)?;
        let mut n = write(&nref);
        let Content::File(d) = &mut n.content else { return Err(Errno::ENODEV) };
        if args.offset.checked_add(args.length).is_none_or(|e| e > i64::MAX as u64) {
            return Err(Errno::EFBIG);
        }
        match args.mode {
            0 | KEEP_SIZE => {
                self.reserve(d.chunks_needed(args.offset, args.length) * CHUNK as u64)?;
                d.allocate(args.offset, args.length, args.mode == KEEP_SIZE);
            }
            m if m == PUNCH | KEEP_SIZE => {
                let before = d.allocated();
                d.zero_range(args.offset, args.length);
                self.release_space(before - d.allocated());
            }
            m if m == ZERO || m == ZERO | KEEP_SIZE => {
                // Whole chunks freed by zero_range are re-added by allocate: only chunks not
                // present before need new space.
                self.reserve(d.chunks_needed(args.offset, args.length) * CHUNK as u64)?;
                d.zero_range(args.offset, args.length);
                d.allocate(args.offset, args.length, m & KEEP_SIZE != 0);
            }
            _ => return Err(Errno::EOPNOTSUPP),
        }
        n.touch_modified();
        Ok(())
    }

    fn node_ids(&self) -> usize {
        self.table().len()
    }
}

impl Filesystem for MemFs {
    fn init(&self, caps: &mut Capabilities) -> Result<(), Errno> {
        // Nanosecond timestamps.
        caps.time_gran = 1;
        // Locks are served here, so they are shared by everyone using this mount.
        caps.posix_locks = true;
        caps.flock_locks = true;
        Ok(())
    }

    fn lookup(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        reply.result(self.lookup_entry(parent, name), |r, e| r.entry(&e))
    }

    fn forget(&self, ino: NodeId, nlookup: u64) {
        let mut table = self.table_mut();
        if let Some(n) = table.get(&ino.0) {
            let mut n = write(n);
            n.nlookup = n.nlookup.saturating_sub(nlookup);
        }
        self.maybe_evict(&mut table, ino.0);
    }

    fn batch_forget(&self, nodes: &[(NodeId, u64)]) {
        let mut table = self.table_mut();
        for &(ino, nlookup) in nodes {
            if let Some(n) = table.get(&ino.0) {
                let mut n = write(n);
                n.nlookup = n.nlookup.saturating_sub(nlookup);
            }
            self.maybe_evict(&mut table, ino.0);
        }
    }

    fn getattr(&self, _req: &RequestInfo, ino: NodeId, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.result(self.get(ino).map(|n| read(&n).stat()), |r, a| r.attr(&a))
    }

    fn setattr(&self, _req: &RequestInfo, ino: NodeId, attr: &SetAttr, reply: ReplyAttr) {
        reply.result(self.do_setattr(ino, attr), |r, a| r.attr(&a))
    }

    fn readlink(&self, _req: &RequestInfo, ino: NodeId, reply: ReplyData) {
        let n = match self.get(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let n = read(&n);
        match &n.content {
            Content::Symlink(t) => reply.data(t.as_bytes()),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn symlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, target: &OsStr, reply: ReplyEntry) {
        if target.len() >= 4096 {
            return reply.error(Errno::ENAMETOOLONG);
        }
        let mode = libc::S_IFLNK | 0o777;
        let r = self.create_node(req, parent, name, mode, |_| Content::Symlink(target.to_os_string()));
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
        let content = match mode & libc::S_IFMT {
            libc::S_IFREG => Content::File(Default::default()),
            libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => Content::Special,
            _ => return reply.error(Errno::EINVAL),
        };
        let r = self.create_node(req, parent, name, mode, |_| content).and_then(|e| {
            let n = self.get(e.ino)?;
            let mut n = write(&n);
            n.attr.rdev = rdev;
            Ok(entry(&n))
        });
        reply.result(r, |r, e| r.entry(&e))
    }

    fn mkdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, reply: ReplyEntry) {
        let mode = libc::S_IFDIR | (mode & 0o7777);
        let r = self.create_node(req, parent, name, mode, |p| Content::Dir(DirEntries::new(p)));
        reply.result(r, |r, e| r.entry(&e))
    }

    fn unlink(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.result(self.do_unlink(parent, name, false), |r, ()| r.ok())
    }

    fn rmdir(&self, _req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        reply.result(self.do_unlink(parent, name, true), |r, ()| r.ok())
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
        reply.result(self.do_rename(parent, name, newparent, newname, flags), |r, ()| r.ok())
    }

    fn link(&self, _req: &RequestInfo, ino: NodeId, newparent: NodeId, newname: &OsStr, reply: ReplyEntry) {
        reply.result(self.do_link(ino, newparent, newname), |r, e| r.entry(&e))
    }

    fn open(&self, _req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        let r = self.get(ino).map(|n| {
            let mut n = write(&n);
            if flags & libc::O_TRUNC != 0 {
                if let Content::File(d) = &mut n.content {
                    let before = d.allocated();
                    d.truncate(0);
                    self.release_space(before);
                    n.touch_modified();
                }
            }
        });
        reply.result(r, |r, ()| r.opened(FileHandle(0), 0))
    }

    fn read(&self, _req: &RequestInfo, ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        let n = match self.get(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let n = read(&n);
        match &n.content {
            Content::File(d) => reply.data_vectored(&d.read_slices(args.offset, args.size as usize)),
            Content::Dir(_) => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn write(&self, _req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        reply.result(self.do_write(ino, args), |r, n| r.written(n))
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
        let r = self.get(ino).and_then(|n| match read(&n).content {
            Content::Dir(_) => Ok(()),
            _ => Err(Errno::ENOTDIR),
        });
        reply.result(r, |r, ()| r.opened(FileHandle(0), 0))
    }

    fn readdir(
        &self,
        _req: &RequestInfo,
        ino: NodeId,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let table = self.table();
        let Some(dref) = table.get(&ino.0) else { return reply.error(Errno::ENOENT) };
        let d = read(dref);
        let Content::Dir(dir) = &d.content else { return reply.error(Errno::ENOTDIR) };
        if offset < 1 && reply.add(ino.0, 1, FileType::Directory, OsStr::new(".")) {
            return reply.ok();
        }
        if offset < 2 && reply.add(dir.parent, 2, FileType::Directory, OsStr::new("..")) {
            return reply.ok();
        }
        for (cookie, name, child) in dir.after(offset.max(FIRST_COOKIE - 1)) {
            let kind = table.get(&child).map(|c| read(c).kind()).unwrap_or(FileType::Regular);
            if reply.add(child, cookie, kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn readdirplus(
        &self,
        _req: &RequestInfo,
        ino: NodeId,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let table = self.table();
        let Some(dref) = table.get(&ino.0) else { return reply.error(Errno::ENOENT) };
        let d = read(dref);
        let Content::Dir(dir) = &d.content else { return reply.error(Errno::ENOTDIR) };
        // "." and ".." carry attributes but, as the kernel skips them, no lookup count.
        if offset < 1 && reply.add(&entry(&d), 1, OsStr::new(".")) {
            return reply.ok();
        }
        if offset < 2 {
            let parent = if dir.parent == ino.0 {
                Some(entry(&d))
            } else {
                table.get(&dir.parent).map(|p| entry(&read(p)))
            };
            if let Some(pe) = parent {
                if reply.add(&pe, 2, OsStr::new("..")) {
                    return reply.ok();
                }
            }
        }
        for (cookie, name, child) in dir.after(offset.max(FIRST_COOKIE - 1)) {
            let Some(cref) = table.get(&child) else { continue };
            let mut c = write(cref);
            if reply.add(&entry(&c), cookie, name) {
                break;
            }
            c.nlookup += 1;
        }
        reply.ok()
    }

    fn fsyncdir(&self, _req: &RequestInfo, _ino: NodeId, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        reply.ok()
    }

    fn statfs(&self, _req: &RequestInfo, _ino: NodeId, reply: ReplyStatfs) {
        let bsize = 4096u64;
        let total = if self.limit == u64::MAX { 1 << 44 } else { self.limit };
        let used = self.used.load(Ordering::Relaxed);
        let files = self.node_ids() as u64;
        let free = total.saturating_sub(used) / bsize;
        reply.statfs(&Statfs {
            blocks: total / bsize,
            bfree: free,
            bavail: free,
            files,
            ffree: u32::MAX as u64 - files,
            bsize: bsize as u32,
            namelen: NAME_MAX as u32,
            frsize: bsize as u32,
        })
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
        let r = self.get(ino).and_then(|n| {
            let mut n = write(&n);
            let exists = n.xattrs.contains_key(name);
            if flags & libc::XATTR_CREATE != 0 && exists {
                return Err(Errno::EEXIST);
            }
            if flags & libc::XATTR_REPLACE != 0 && !exists {
                return Err(Errno::ENODATA);
            }
            if name.is_empty() || name.len() > 255 {
                return Err(Errno::ERANGE);
            }
            n.xattrs.insert(name.to_os_string(), value.to_vec());
            n.touch_changed();
            Ok(())
        });
        reply.result(r, |r, ()| r.ok())
    }

    fn getxattr(&self, _req: &RequestInfo, ino: NodeId, name: &OsStr, size: u32, reply: ReplyXattr) {
        let n = match self.get(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let n = read(&n);
        match n.xattrs.get(name) {
            Some(v) => reply.value(size, v),
            None => reply.error(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &RequestInfo, ino: NodeId, size: u32, reply: ReplyXattr) {
        let n = match self.get(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let list: Vec<u8> = read(&n)
            .xattrs
            .keys()
            .flat_map(|k| k.as_bytes().iter().copied().chain(std::iter::once(0)))
            .collect();
        reply.value(size, &list)
    }

    fn removexattr(&self, _req: &RequestInfo, ino: NodeId, name: &OsStr, reply: ReplyEmpty) {
        let r = self.get(ino).and_then(|n| {
            let mut n = write(&n);
            n.xattrs.remove(name).ok_or(Errno::ENODATA)?;
            n.touch_changed();
            Ok(())
        });
        reply.result(r, |r, ()| r.ok())
    }

    fn create(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs, reply: ReplyCreate) {
        let mode = libc::S_IFREG | (args.mode & 0o7777);
        let r = self.create_node(req, parent, name, mode, |_| Content::File(Default::default()));
        reply.result(r, |r, e| r.created(&e, FileHandle(0), 0))
    }

    fn tmpfile(&self, req: &RequestInfo, parent: NodeId, args: &CreateArgs, reply: ReplyCreate) {
        let r = (|| {
            let table = self.table();
            let p = read(table.get(&parent.0).ok_or(Errno::ENOENT)?);
            if !matches!(p.content, Content::Dir(_)) {
                return Err(Errno::ENOTDIR);
            }
            let gid = if p.attr.mode & libc::S_ISGID != 0 { p.attr.gid } else { req.gid };
            drop(p);
            drop(table);
            let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
            let mode = libc::S_IFREG | (args.mode & 0o7777);
            let mut node = Node::new(ino, mode, req.uid, gid, Content::File(Default::default()));
            node.attr.nlink = 0;
            node.nlookup = 1;
            let e = entry(&node);
            self.table_mut().insert(ino, Arc::new(RwLock::new(node)));
            Ok(e)
        })();
        reply.result(r, |r, e| r.created(&e, FileHandle(0), 0))
    }

    fn fallocate(&self, _req: &RequestInfo, ino: NodeId, args: &FallocateArgs, reply: ReplyEmpty) {
        reply.result(self.do_fallocate(ino, args), |r, ()| r.ok())
    }

    fn lseek(
        &self,
        _req: &RequestInfo,
        ino: NodeId,
        _fh: FileHandle,
        offset: u64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let n = match self.get(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let n = read(&n);
        let Content::File(d) = &n.content else { return reply.error(Errno::EINVAL) };
        let r = match whence {
            libc::SEEK_DATA => d.seek_data(offset),
            libc::SEEK_HOLE => d.seek_hole(offset),
            _ => return reply.error(Errno::EINVAL),
        };
        match r {
            Some(off) => reply.offset(off),
            None => reply.error(Errno::ENXIO),
        }
    }

    fn copy_file_range(&self, _req: &RequestInfo, ino_in: NodeId, args: &CopyRangeArgs, reply: ReplyCopy) {
        let r = (|| {
            let src = self.get(ino_in)?;
            let bytes = {
                let s = read(&src);
                let Content::File(d) = &s.content else { return Err(Errno::EISDIR) };
                let len = args.len.min(d.size().saturating_sub(args.off_in)).min(1 << 30);
                d.read_vec(args.off_in, len as usize)
            };
            if bytes.is_empty() {
                return Ok(0);
            }
            let w =
                WriteArgs { fh: args.fh_out, offset: args.off_out, data: &bytes, write_flags: 0, flags: 0 };
            self.do_write(args.ino_out, &w).map(u64::from)
        })();
        reply.result(r, |r, n| r.copied(n))
    }
}

/// Build memfs from `-o` file-system options (`size=`, `mode=`).
pub fn from_options(
    fs_options: &std::collections::BTreeMap<String, Option<String>>,
) -> Result<MemFs, fusebox::session::OptionError> {
    use fusebox::session::OptionError;
    let mut opts = MemFsOptions::default();
    for (k, v) in fs_options {
        let v = v.as_deref().ok_or_else(|| OptionError::MissingValue(k.clone()))?;
        match k.as_str() {
            "size" => opts.size = Some(fusebox::session::parse_bytes(k, v)?),
            "mode" => {
                let m = u32::from_str_radix(v, 8).ok().filter(|m| *m <= 0o7777).ok_or(
                    OptionError::Malformed {
                        key: k.clone(),
                        value: v.into(),
                        reason: "expected octal permission bits, e.g. 755 or 1777",
                    },
                )?;
                opts.root_mode = Some(m);
            }
            _ => return Err(OptionError::Unknown(k.clone())),
        }
    }
    Ok(MemFs::new(opts))
}

/// The `-o` keys memfs understands.
pub const OPTION_KEYS: &[&str] = &["size", "mode"];
