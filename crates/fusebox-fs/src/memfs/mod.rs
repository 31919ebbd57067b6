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

use fusebox::fs::acl;
mod account;
mod chattr;
mod data;
mod node;
mod sync_api;
mod xattrs;

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
    /// Capacity in bytes (`-o size=`) for file data and metadata (names, inodes, xattrs,
    /// symlink targets; see account.rs); `None` = half of the machine's memory, as tmpfs.
    pub size: Option<u64>,
    /// Most inodes (`-o nr_inodes=`); `None` = one per 4 KiB page of the default size, as
    /// tmpfs.
    pub nr_inodes: Option<u64>,
    /// Permission bits of the root directory (`-o mode=`, octal); default 0755.
    pub root_mode: Option<u32>,
    /// Owner of the root directory; default the daemon's uid/gid.
    pub root_owner: Option<(u32, u32)>,
    /// Percent of the capacity and of the inodes kept for root's metadata (`-o
    /// reserved=PCT`, default [`DEFAULT_RESERVED_PERCENT`], as ext4's reserved blocks): other
    /// users and all file data stop short of it, so root can still create, rename and set
    /// attributes on a mount other users filled.
    pub reserved_percent: Option<u64>,
}

/// Default share of the capacity and inodes reserved for root's metadata.
pub const DEFAULT_RESERVED_PERCENT: u64 = 5;

/// The in-memory file system.
pub struct MemFs {
    nodes: RwLock<HashMap<u64, NodeRef>>,
    next_ino: AtomicU64,
    used: AtomicU64,
    limit: u64,
    inode_limit: u64,
    /// Bytes of `limit` and inodes of `inode_limit` only root's metadata may use.
    reserved: u64,
    reserved_inodes: u64,
    locks: Arc<LockTable>,
    /// The last handle handed out: every open file description gets its own, so that its
    /// OFD locks can be dropped when it is released.
    last_fh: std::sync::atomic::AtomicU64,
    /// Mounted `noatime` (from `Filesystem::mounted`); otherwise reads follow relatime.
    noatime: std::sync::atomic::AtomicBool,
    /// Tells the kernel when a read changed an inode's atime (its attributes are cached long).
    notifier: std::sync::OnceLock<fusebox::session::Notifier>,
}

/// Half of the machine's memory (tmpfs's default size), or 1 GiB when it cannot be read.
fn half_of_memory() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    });
    total_kib.map_or(1 << 30, |k| k * 1024 / 2)
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
        let limit = opts.size.unwrap_or_else(half_of_memory);
        let inode_limit = opts.nr_inodes.unwrap_or_else(|| half_of_memory() / 4096).max(1);
        let pct = opts.reserved_percent.unwrap_or(DEFAULT_RESERVED_PERCENT).min(100);
        MemFs {
            nodes: RwLock::new(nodes),
            next_ino: AtomicU64::new(2),
            used: AtomicU64::new(0),
            limit,
            inode_limit,
            reserved: limit / 100 * pct,
            reserved_inodes: inode_limit * pct / 100,
            locks: LockTable::new(),
            last_fh: Default::default(),
            noatime: Default::default(),
            notifier: Default::default(),
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

    /// Reserve `bytes` of capacity for file data, or fail with ENOSPC. Data never uses
    /// root's reserve: write-back WRITEs do not say who wrote them.
    fn reserve(&self, bytes: u64) -> Result<(), Errno> {
        self.reserve_up_to(bytes, self.limit - self.reserved)
    }

    /// Reserve `bytes` of capacity for metadata made by `uid` (root may use the reserve).
    fn reserve_meta(&self, bytes: u64, uid: u32) -> Result<(), Errno> {
        let cap = if uid == 0 { self.limit } else { self.limit - self.reserved };
        self.reserve_up_to(bytes, cap)
    }

    fn reserve_up_to(&self, bytes: u64, cap: u64) -> Result<(), Errno> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|&n| n <= cap)
            })
            .map(|_| ())
            .map_err(|_| Errno::ENOSPC)
    }

    fn release_space(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A new inode made by `uid` may join `table` (`nr_inodes=`, less root's reserve for
    /// others), or ENOSPC.
    fn inode_room(&self, table: &HashMap<u64, NodeRef>, uid: u32) -> Result<(), Errno> {
        let cap = if uid == 0 { self.inode_limit } else { self.inode_limit - self.reserved_inodes };
        if table.len() as u64 >= cap {
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    /// Drop `ino` from the table when no name and no kernel reference is left.
    fn maybe_evict(&self, table: &mut HashMap<u64, NodeRef>, ino: u64) {
        let Some(n) = table.get(&ino) else { return };
        let (dead, freed) = {
            let n = read(n);
            let meta = account::node(symlink_len(&n.content)) + n.xattrs.charge();
            (
                n.attr.nlink == 0 && n.nlookup == 0 && ino != 1,
                meta + match &n.content {
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
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, make: impl FnOnce(u64) -> Content,
    ) -> Result<Entry, Errno> {
        check_name(name)?;
        let mut table = self.table_mut();
        let pref = table.get(&parent.0).cloned().ok_or(Errno::ENOENT)?;
        let mut p = write(&pref);
        p.check_not_immutable()?;
        let (mode, acls) = new_node_mode(&p.xattrs, mode, req.umask);
        let (pgid, psetgid) = (p.attr.gid, p.attr.mode & libc::S_ISGID != 0);
        let Content::Dir(dir) = &mut p.content else { return Err(Errno::ENOTDIR) };
        if dir.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        self.inode_room(&table, req.uid)?;
        let content = make(parent.0);
        let acl_cost: u64 = acls.iter().map(|(k, v)| account::xattr(k, v.len())).sum();
        self.reserve_meta(account::node(symlink_len(&content)) + account::entry(name) + acl_cost, req.uid)?;
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let is_dir = matches!(content, Content::Dir(_));
        // A setgid directory gives new entries its group; new subdirectories inherit the bit.
        let gid = if psetgid { pgid } else { req.gid };
        let mode = if psetgid && is_dir { mode | libc::S_ISGID } else { mode };
        let mut node = Node::new(ino, mode, req.uid, gid, content);
        node.xattrs.extend(acls);
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
        // ESTALE for an id memfs no longer has: the kernel resolves a file handle with a LOOKUP
        // of "." on its node id, and a deleted file's handle must not open anything.
        let pref = table.get(&parent.0).ok_or(Errno(libc::ESTALE))?;
        let p = read(pref);
        // "." of any node is the node itself (file handles of files resolve this way); a deleted
        // file, still known while the kernel forgets it, is ESTALE, as its handle is on ext4.
        let ino = if name.as_bytes() == b"." {
            if p.attr.nlink == 0 {
                return Err(Errno(libc::ESTALE));
            }
            parent.0
        } else {
            let Content::Dir(dir) = &p.content else { return Err(Errno::ENOTDIR) };
            if name.as_bytes() == b".." {
                dir.parent
            } else {
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

    fn do_setattr(&self, req: &RequestInfo, ino: NodeId, a: &SetAttr) -> Result<FileAttr, Errno> {
        let nref = self.get(ino)?;
        let mut n = write(&nref);
        check_setattr(&n, a)?;
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
            // An access ACL follows chmod (owner, mask, other entries).
            if let Some(mut acl) = n.xattrs.get(OsStr::new(acl::ACCESS)).and_then(|v| acl::Acl::parse(v).ok())
            {
                acl.chmod(mode);
                n.xattrs.insert(acl::ACCESS.into(), acl.to_bytes());
            }
        }
        if let Some(uid) = a.uid {
            n.attr.uid = uid;
        }
        if let Some(gid) = a.gid {
            n.attr.gid = gid;
        }
        if a.kill_suidgid {
            n.kill_suidgid(req);
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

    fn do_write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>) -> Result<u32, Errno> {
        let nref = self.get(ino)?;
        let mut n = write(&nref);
        let end = args.offset.checked_add(args.data.len() as u64).filter(|&e| e <= i64::MAX as u64);
        let Some(_) = end else { return Err(Errno::EFBIG) };
        // Pages written back from the kernel's cache hold bytes write(2) already took, through
        // a descriptor opened before chattr: refusing them would only lose them (and fail
        // syncfs for everyone). Other writes obey the flags.
        let cached = args.is_writeback();
        if !cached {
            n.check_not_immutable()?;
        }
        let append_only = n.append_only() && !cached;
        let Content::File(d) = &mut n.content else { return Err(Errno::EISDIR) };
        let (offset, data) =
            if append_only { appended_part(d, args.offset, args.data)? } else { (args.offset, args.data) };
        let new_chunks = d.chunks_needed(offset, data.len() as u64);
        self.reserve(new_chunks * CHUNK as u64)?;
        d.write(offset, data);
        n.touch_modified();
        if args.kill_suidgid() {
            n.kill_suidgid(req);
        }
        Ok(args.data.len() as u32)
    }

    fn do_unlink(&self, parent: NodeId, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let mut table = self.table_mut();
        let pref = table.get(&parent.0).cloned().ok_or(Errno::ENOENT)?;
        let mut p = write(&pref);
        p.check_changeable()?;
        let Content::Dir(dir) = &mut p.content else { return Err(Errno::ENOTDIR) };
        let ino = dir.get(name).ok_or(Errno::ENOENT)?;
        let cref = table.get(&ino).cloned().ok_or(Errno::ENOENT)?;
        {
            let mut c = write(&cref);
            c.check_changeable()?;
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
        self.release_space(account::entry(name));
        if want_dir {
            p.attr.nlink -= 1;
        }
        p.touch_modified();
        drop(p);
        self.maybe_evict(&mut table, ino);
        Ok(())
    }

    fn do_rename(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, newparent: NodeId, newname: &OsStr,
        flags: u32,
    ) -> Result<(), Errno> {
        check_name(newname)?;
        let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE | libc::RENAME_WHITEOUT;
        if flags & !known != 0
            || flags & libc::RENAME_EXCHANGE != 0
                && flags & (libc::RENAME_NOREPLACE | libc::RENAME_WHITEOUT) != 0
        {
            return Err(Errno::EINVAL);
        }
        let whiteout = flags & libc::RENAME_WHITEOUT != 0;
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
        // chattr: names leave neither an append-only or immutable directory nor such an
        // inode, and none arrive in an immutable directory.
        read(&src_ref).check_changeable()?;
        read(&table[&src_ino]).check_changeable()?;
        read(&dst_ref).check_not_immutable()?;
        if let Some(d) = dst_ino {
            read(&dst_ref).check_changeable()?;
            read(&table[&d]).check_changeable()?;
        }
        // Account for the names: the source name goes (unless exchanged), the new name comes
        // (unless it replaces one), and a whiteout adds an inode under the old name.
        let (mut charge, mut refund) = (0, 0);
        if !exchange {
            refund += account::entry(name);
            if dst_ino.is_none() {
                charge += account::entry(newname);
            }
        }
        if whiteout {
            self.inode_room(&table, req.uid)?;
            charge += account::entry(name) + account::node(0);
        }
        self.reserve_meta(charge, req.uid)?;
        self.release_space(refund);
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
        // RENAME_WHITEOUT: the old name now holds a whiteout, a 0:0 character device owned by
        // the caller (what overlayfs uses to hide a lower entry).
        if whiteout {
            let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
            let node = Node::new(ino, libc::S_IFCHR, req.uid, req.gid, Content::Special);
            let mut s = write(&src_ref);
            if let Content::Dir(sd) = &mut s.content {
                sd.insert(name, ino);
            }
            drop(s);
            table.insert(ino, Arc::new(RwLock::new(node)));
        }
        Ok(())
    }

    fn do_link(
        &self, req: &RequestInfo, ino: NodeId, newparent: NodeId, newname: &OsStr,
    ) -> Result<Entry, Errno> {
        check_name(newname)?;
        // A directory linked into itself: refused before its lock is taken twice (a malformed
        // LINK deadlocked the worker here; the kernel never sends one, the fuzzer did).
        if ino == newparent {
            return Err(Errno::EPERM);
        }
        let table = self.table_mut();
        let pref = table.get(&newparent.0).cloned().ok_or(Errno::ENOENT)?;
        let cref = table.get(&ino.0).cloned().ok_or(Errno::ENOENT)?;
        let mut p = write(&pref);
        p.check_not_immutable()?;
        let Content::Dir(dir) = &mut p.content else { return Err(Errno::ENOTDIR) };
        if dir.get(newname).is_some() {
            return Err(Errno::EEXIST);
        }
        let mut c = write(&cref);
        c.check_changeable()?;
        if matches!(c.content, Content::Dir(_)) {
            return Err(Errno::EPERM);
        }
        self.reserve_meta(account::entry(newname), req.uid)?;
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
        n.check_not_immutable()?;
        if n.append_only() && args.mode & !KEEP_SIZE != 0 {
            return Err(Errno::EPERM);
        }
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

    /// Whether a read now must update `attr`'s atime: never with `noatime`; otherwise by the
    /// relatime rule (atime not newer than mtime or ctime, or a day old), as ext4 does.
    fn atime_due(&self, n: &Node) -> bool {
        if self.noatime.load(std::sync::atomic::Ordering::Relaxed) || n.flags & fileattr::NOATIME_FL != 0 {
            return false;
        }
        let attr = &n.attr;
        const DAY: i64 = 24 * 60 * 60;
        attr.atime <= attr.mtime || attr.atime <= attr.ctime || Timespec::now().sec - attr.atime.sec >= DAY
    }

    /// A read of `ino` happened: update its atime if due and tell the kernel, whose copy of
    /// the attributes would otherwise keep the old one until it expires.
    fn accessed(&self, ino: NodeId, nref: &NodeRef) {
        {
            let mut n = write(nref);
            if !self.atime_due(&n) {
                return;
            }
            n.attr.atime = Timespec::now();
        }
        self.attributes_changed(ino);
    }

    /// Tell the kernel that `ino`'s attributes changed behind a request that does not
    /// return them (its copy would otherwise stay until it expires).
    fn attributes_changed(&self, ino: NodeId) {
        if let Some(notifier) = self.notifier.get() {
            // ENOENT: the kernel no longer caches the inode; nothing to refresh.
            let _ = notifier.inval_inode(ino, -1, 0);
        }
    }

    /// A handle for a new open file description.
    fn new_fh(&self) -> FileHandle {
        FileHandle(self.last_fh.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }

    fn node_ids(&self) -> usize {
        self.table().len()
    }
}

/// The mode of a new node (`mode` as requested, `umask` the caller's) and the ACL xattrs it
/// starts with, given its parent's xattrs: under a default ACL the node inherits it (a
/// directory also as its own default ACL) and the umask does not apply; otherwise the umask
/// does. Symlinks get neither.
fn new_node_mode(
    parent_xattrs: &xattrs::Xattrs, mode: u32, umask: u32,
) -> (u32, Vec<(std::ffi::OsString, Vec<u8>)>) {
    if mode & libc::S_IFMT == libc::S_IFLNK {
        return (mode, Vec::new());
    }
    let default = parent_xattrs.get(OsStr::new(acl::DEFAULT)).and_then(|v| acl::Acl::parse(v).ok());
    let Some(default) = default else { return (mode & !(umask & 0o7777), Vec::new()) };
    let (access, mode) = default.inherit(mode);
    let mut xattrs = Vec::new();
    if let Some(a) = access {
        xattrs.push((acl::ACCESS.into(), a.to_bytes()));
    }
    if mode & libc::S_IFMT == libc::S_IFDIR {
        xattrs.push((acl::DEFAULT.into(), default.to_bytes()));
    }
    (mode, xattrs)
}

/// The operations both API flavours share: each returns its result instead of replying.
impl MemFs {
    /// INIT: what memfs asks of the kernel.
    fn set_capabilities(caps: &mut Capabilities) {
        // Nanosecond timestamps.
        caps.time_gran = 1;
        // POSIX ACLs are memfs's: the umask, or a parent's default ACL, is applied to new
        // nodes by memfs (`new_node_mode`), and access ACLs move with the mode.
        caps.dont_mask = true;
        caps.posix_acl = true;
        // Locks are served here, so they are shared by everyone using this mount.
        caps.posix_locks = true;
        caps.flock_locks = true;
    }

    fn do_forget(&self, nodes: impl IntoIterator<Item = (NodeId, u64)>) {
        let mut table = self.table_mut();
        for (ino, nlookup) in nodes {
            if let Some(n) = table.get(&ino.0) {
                let mut n = write(n);
                n.nlookup = n.nlookup.saturating_sub(nlookup);
            }
            self.maybe_evict(&mut table, ino.0);
        }
    }

    fn do_getattr(&self, ino: NodeId) -> Result<FileAttr, Errno> {
        self.get(ino).map(|n| read(&n).stat())
    }

    fn do_readlink(&self, ino: NodeId) -> Result<Vec<u8>, Errno> {
        match &read(&self.get(ino)?).content {
            Content::Symlink(t) => Ok(t.as_bytes().to_vec()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn do_symlink(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, target: &OsStr,
    ) -> Result<Entry, Errno> {
        if target.len() >= 4096 {
            return Err(Errno::ENAMETOOLONG);
        }
        let mode = libc::S_IFLNK | 0o777;
        self.create_node(req, parent, name, mode, |_| Content::Symlink(target.to_os_string()))
    }

    fn do_mknod(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32, rdev: u32,
    ) -> Result<Entry, Errno> {
        let content = match mode & libc::S_IFMT {
            libc::S_IFREG => Content::File(Default::default()),
            libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => Content::Special,
            _ => return Err(Errno::EINVAL),
        };
        let e = self.create_node(req, parent, name, mode, |_| content)?;
        let n = self.get(e.ino)?;
        let mut n = write(&n);
        n.attr.rdev = rdev;
        Ok(entry(&n))
    }

    fn do_mkdir(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, mode: u32) -> Result<Entry, Errno> {
        let mode = libc::S_IFDIR | (mode & 0o7777);
        self.create_node(req, parent, name, mode, |p| Content::Dir(DirEntries::new(p)))
    }

    fn do_open(&self, ino: NodeId, flags: i32) -> Result<(), Errno> {
        let n = self.get(ino)?;
        let mut n = write(&n);
        fileattr::check_open(n.flags, flags)?;
        if flags & libc::O_TRUNC != 0 {
            if let Content::File(d) = &mut n.content {
                let before = d.allocated();
                d.truncate(0);
                self.release_space(before);
                n.touch_modified();
            }
        }
        Ok(())
    }

    fn do_opendir(&self, ino: NodeId) -> Result<(), Errno> {
        match read(&self.get(ino)?).content {
            Content::Dir(_) => Ok(()),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Feed the entries after cookie `offset` to `add` until it reports the reply full.
    fn do_readdir(
        &self, ino: NodeId, offset: u64, mut add: impl FnMut(u64, u64, FileType, &OsStr) -> bool,
    ) -> Result<(), Errno> {
        let table = self.table();
        let dref = table.get(&ino.0).ok_or(Errno::ENOENT)?;
        let d = read(dref);
        let Content::Dir(dir) = &d.content else { return Err(Errno::ENOTDIR) };
        if offset < 1 && add(ino.0, 1, FileType::Directory, OsStr::new(".")) {
            return Ok(());
        }
        if offset < 2 && add(dir.parent, 2, FileType::Directory, OsStr::new("..")) {
            return Ok(());
        }
        for (cookie, name, child) in dir.after(offset.max(FIRST_COOKIE - 1)) {
            let kind = table.get(&child).map(|c| read(c).kind()).unwrap_or(FileType::Regular);
            if add(child, cookie, kind, name) {
                break;
            }
        }
        Ok(())
    }

    /// Like [`MemFs::do_readdir`] with attributes; counts a lookup for every entry `add` took.
    fn do_readdirplus(
        &self, ino: NodeId, offset: u64, mut add: impl FnMut(&Entry, u64, &OsStr) -> bool,
    ) -> Result<(), Errno> {
        let table = self.table();
        let dref = table.get(&ino.0).ok_or(Errno::ENOENT)?;
        let d = read(dref);
        let Content::Dir(dir) = &d.content else { return Err(Errno::ENOTDIR) };
        // "." and ".." carry attributes but, as the kernel skips them, no lookup count.
        if offset < 1 && add(&entry(&d), 1, OsStr::new(".")) {
            return Ok(());
        }
        if offset < 2 {
            let parent = if dir.parent == ino.0 {
                Some(entry(&d))
            } else {
                table.get(&dir.parent).map(|p| entry(&read(p)))
            };
            if let Some(pe) = parent {
                if add(&pe, 2, OsStr::new("..")) {
                    return Ok(());
                }
            }
        }
        for (cookie, name, child) in dir.after(offset.max(FIRST_COOKIE - 1)) {
            let Some(cref) = table.get(&child) else { continue };
            let mut c = write(cref);
            if add(&entry(&c), cookie, name) {
                break;
            }
            c.nlookup += 1;
        }
        Ok(())
    }

    fn do_statfs(&self) -> Statfs {
        let bsize = 4096u64;
        let total = self.limit;
        let used = self.used.load(Ordering::Relaxed);
        let nodes = self.node_ids() as u64;
        // As ext4: bfree counts root's reserve, bavail (what others may use) does not.
        Statfs {
            blocks: total / bsize,
            bfree: total.saturating_sub(used) / bsize,
            bavail: (total - self.reserved).saturating_sub(used) / bsize,
            files: self.inode_limit,
            ffree: self.inode_limit.saturating_sub(nodes),
            bsize: bsize as u32,
            namelen: NAME_MAX as u32,
            frsize: bsize as u32,
        }
    }

    fn do_setxattr(
        &self, req: &RequestInfo, ino: NodeId, name: &OsStr, value: &[u8], flags: i32,
    ) -> Result<(), Errno> {
        let n = self.get(ino)?;
        let mut n = write(&n);
        n.check_changeable()?;
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
        if name == acl::ACCESS {
            // The access ACL and the mode bits are one thing: the mode takes the ACL's
            // owner/mask/other bits, and an ACL saying no more than them is not stored.
            let a = acl::Acl::parse(value)?;
            let stored = (!a.is_minimal()).then(|| a.to_bytes());
            self.store_xattr(&mut n, name, stored, req.uid)?;
            n.attr.mode = (n.attr.mode & !0o777) | a.mode_bits();
            n.touch_changed();
            return Ok(());
        }
        if name == acl::DEFAULT {
            if !matches!(n.content, Content::Dir(_)) {
                return Err(Errno::EACCES);
            }
            acl::Acl::parse(value)?;
        }
        self.store_xattr(&mut n, name, Some(value.to_vec()), req.uid)?;
        n.touch_changed();
        Ok(())
    }

    /// Set (`Some`) or remove (`None`) xattr `name` of `n` for `uid`, charging the difference
    /// against the capacity; ENOSPC past the capacity or the per-inode bound.
    fn store_xattr(&self, n: &mut Node, name: &OsStr, value: Option<Vec<u8>>, uid: u32) -> Result<(), Errno> {
        let old = n.xattrs.get(name).map_or(0, |v| account::xattr(name, v.len()));
        let new = value.as_ref().map_or(0, |v| account::xattr(name, v.len()));
        if new > old {
            let total = n.xattrs.charge() - old + new;
            if total > account::XATTRS_PER_INODE {
                return Err(Errno::ENOSPC);
            }
            self.reserve_meta(new - old, uid)?;
        } else {
            self.release_space(old - new);
        }
        match value {
            Some(v) => n.xattrs.insert(name.to_os_string(), v),
            None => {
                n.xattrs.remove(name);
            }
        }
        Ok(())
    }

    fn do_getxattr(&self, ino: NodeId, name: &OsStr) -> Result<Vec<u8>, Errno> {
        read(&self.get(ino)?).xattrs.get(name).cloned().ok_or(Errno::ENODATA)
    }

    fn do_listxattr(&self, ino: NodeId) -> Result<Vec<u8>, Errno> {
        let n = self.get(ino)?;
        let list = read(&n)
            .xattrs
            .keys()
            .flat_map(|k| k.as_bytes().iter().copied().chain(std::iter::once(0)))
            .collect();
        Ok(list)
    }

    fn do_removexattr(&self, ino: NodeId, name: &OsStr) -> Result<(), Errno> {
        let n = self.get(ino)?;
        let mut n = write(&n);
        n.check_changeable()?;
        if !n.xattrs.contains_key(name) {
            return Err(Errno::ENODATA);
        }
        self.store_xattr(&mut n, name, None, 0)?;
        n.touch_changed();
        Ok(())
    }

    fn do_create(
        &self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs,
    ) -> Result<Entry, Errno> {
        let mode = libc::S_IFREG | (args.mode & 0o7777);
        self.create_node(req, parent, name, mode, |_| Content::File(Default::default()))
    }

    fn do_tmpfile(&self, req: &RequestInfo, parent: NodeId, args: &CreateArgs) -> Result<Entry, Errno> {
        let table = self.table();
        let p = read(table.get(&parent.0).ok_or(Errno::ENOENT)?);
        if !matches!(p.content, Content::Dir(_)) {
            return Err(Errno::ENOTDIR);
        }
        p.check_not_immutable()?;
        let gid = if p.attr.mode & libc::S_ISGID != 0 { p.attr.gid } else { req.gid };
        let (mode, acls) = new_node_mode(&p.xattrs, libc::S_IFREG | (args.mode & 0o7777), req.umask);
        drop(p);
        self.inode_room(&table, req.uid)?;
        drop(table);
        let acl_cost: u64 = acls.iter().map(|(k, v)| account::xattr(k, v.len())).sum();
        self.reserve_meta(account::node(0) + acl_cost, req.uid)?;
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let mut node = Node::new(ino, mode, req.uid, gid, Content::File(Default::default()));
        node.xattrs.extend(acls);
        node.attr.nlink = 0;
        node.nlookup = 1;
        let e = entry(&node);
        self.table_mut().insert(ino, Arc::new(RwLock::new(node)));
        Ok(e)
    }

    fn do_lseek(&self, ino: NodeId, offset: u64, whence: i32) -> Result<u64, Errno> {
        let n = self.get(ino)?;
        let n = read(&n);
        let Content::File(d) = &n.content else { return Err(Errno::EINVAL) };
        let found = match whence {
            libc::SEEK_DATA => d.seek_data(offset),
            libc::SEEK_HOLE => d.seek_hole(offset),
            _ => return Err(Errno::EINVAL),
        };
        found.ok_or(Errno::ENXIO)
    }

    fn do_copy_file_range(
        &self, req: &RequestInfo, ino_in: NodeId, args: &CopyRangeArgs,
    ) -> Result<u64, Errno> {
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
        let w = WriteArgs::new(args.fh_out, args.off_out, &bytes, 0, 0);
        self.do_write(req, args.ino_out, &w).map(u64::from)
    }
}

/// What chattr flags refuse of a SETATTR: everything on an immutable inode; on an
/// append-only one a new size, mode or owner and an explicit atime or mtime. Allowed on both:
/// the times with ctime the kernel sends under the write-back cache after writes and link
/// changes (a utimensat that sets only mtime looks the same on the wire and passes too); on an
/// append-only one also the "now" times of touch(1) and clearing set-id bits.
fn check_setattr(n: &Node, a: &SetAttr) -> Result<(), Errno> {
    let explicit = |t: Option<TimeOrNow>| matches!(t, Some(TimeOrNow::Time(_)));
    let kernel_flush = a.ctime.is_some() && a.atime.is_none();
    let only_times = a.size.is_none() && a.mode.is_none() && a.uid.is_none() && a.gid.is_none();
    if kernel_flush && only_times {
        // The times of writes the kernel's cache took before the flags were set (see
        // `do_write`): refusing them fails syncfs for everyone.
        return Ok(());
    }
    n.check_not_immutable()?;
    if !n.append_only() {
        return Ok(());
    }
    if a.size.is_some()
        || a.mode.is_some()
        || a.uid.is_some()
        || a.gid.is_some()
        || explicit(a.atime)
        || explicit(a.mtime)
    {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// The part of a WRITE to an append-only file that lands past its end (a write not from the
/// page cache: write-back off, or copy_file_range). One that starts before the end must repeat
/// the bytes the file holds there (EPERM otherwise); the rest is appended. A WRITE past the
/// end is taken as it is.
fn appended_part<'a>(d: &data::SparseData, offset: u64, bytes: &'a [u8]) -> Result<(u64, &'a [u8]), Errno> {
    let size = d.size();
    if offset >= size {
        return Ok((offset, bytes));
    }
    let overlap = ((size - offset) as usize).min(bytes.len());
    if d.read_vec(offset, overlap) != bytes[..overlap] {
        return Err(Errno::EPERM);
    }
    Ok((size, &bytes[overlap..]))
}

/// Bytes of a symlink's target (what a node holds besides attributes, xattrs and file data).
fn symlink_len(c: &Content) -> usize {
    match c {
        Content::Symlink(t) => t.len(),
        _ => 0,
    }
}

/// The file data of a node, or the error reading it gives.
fn file_data(n: &Node) -> Result<&data::SparseData, Errno> {
    match &n.content {
        Content::File(d) => Ok(d),
        Content::Dir(_) => Err(Errno::EISDIR),
        _ => Err(Errno::EINVAL),
    }
}

/// Build memfs from `-o` file-system options (`size=`, `nr_inodes=`, `mode=`).
pub fn from_options(
    fs_options: &std::collections::BTreeMap<String, Option<String>>,
) -> Result<MemFs, fusebox::session::OptionError> {
    use fusebox::session::OptionError;
    let mut opts = MemFsOptions::default();
    for (k, v) in fs_options {
        let v = v.as_deref().ok_or_else(|| OptionError::MissingValue(k.clone()))?;
        match k.as_str() {
            "size" => opts.size = Some(fusebox::session::parse_bytes(k, v)?),
            "nr_inodes" => {
                opts.nr_inodes = Some(v.parse().ok().filter(|n| *n >= 1).ok_or(OptionError::Malformed {
                    key: k.clone(),
                    value: v.into(),
                    reason: "expected a positive number of inodes",
                })?)
            }
            "reserved" => {
                opts.reserved_percent =
                    Some(v.parse().ok().filter(|n| *n <= 50).ok_or(OptionError::Malformed {
                        key: k.clone(),
                        value: v.into(),
                        reason: "expected a percentage from 0 to 50",
                    })?)
            }
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

/// Cache lifetimes memfs tells the kernel by default: a day for names, attributes and absent
/// names. Nothing changes memfs behind the kernel's back (every change arrives as a request,
/// and the kernel updates or drops its cache for each), so long lifetimes cost no correctness
/// and save a LOOKUP or GETATTR per cached access.
pub const CACHE_TTL: fusebox::Ttl = fusebox::Ttl::uniform(std::time::Duration::from_secs(86_400));

/// The `-o` keys memfs understands.
pub const OPTION_KEYS: &[&str] = &["size", "nr_inodes", "mode", "reserved"];
