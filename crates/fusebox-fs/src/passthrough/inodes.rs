//! The inode table: node ids for backing inodes keyed by (st_dev, st_ino). An id is derived
//! from the backing file handle where it fits (nodeids.rs: a kernel file handle then names the
//! same file in every mount of SOURCE), else taken from a counter.
//!
//! An inode does not pin a descriptor: it stores the kernel file handle of its backing file,
//! and descriptors are reopened with `open_by_handle_at` into a bounded [`FdCache`]. Only when
//! the backing file system cannot make handles (EOPNOTSUPP) or the daemon may not open them
//! (EPERM, no CAP_DAC_READ_SEARCH) does an inode pin its O_PATH descriptor; then the number of
//! inodes the kernel remembers is limited by RLIMIT_NOFILE.

use super::error::io_errno;
use super::fdcache::FdCache;
use super::nodeids::HandleIds;
use fusebox::sys::{self, KernelFileHandle};
use fusebox::{Errno, NodeId};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};

/// One backing inode the kernel knows by a node id.
pub(crate) struct Inode {
    /// (st_dev, st_ino) of the backing file.
    pub(crate) key: (u64, u64),
    /// The kernel file handle, when the backing file system makes them.
    pub(crate) handle: Option<KernelFileHandle>,
    /// A pinned O_PATH (or other) descriptor when there is no usable handle.
    pub(crate) pinned: Option<Arc<OwnedFd>>,
    /// The FUSE generation answered with its entries (the backing generation for an id
    /// derived from the handle, else 0).
    pub(crate) generation: u64,
}

struct Node {
    inode: Arc<Inode>,
    nlookup: u64,
}

struct Table {
    nodes: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
    /// Nodes the kernel forgot: a file handle the kernel gave out (name_to_handle_at) names a
    /// node id, and the kernel resolves it later with a LOOKUP of "." on that id. (Giving a
    /// file looked up by name again its old id back was tried: ext4 reuses inode numbers, and
    /// a replaced file was then served under its predecessor's id.)
    forgotten: Forgotten,
    /// Ids forgotten whose per-node state elsewhere is still being dropped (`Inodes::forget`):
    /// not handed out again until it is, or the old node's cleanup would hit the new one.
    releasing: std::collections::HashSet<u64>,
}

/// How long a revival of a node id waits for a FORGET of that id still being processed.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many forgotten nodes are remembered for file handles (about 100 bytes each).
const FORGOTTEN_MAX: usize = 65536;

/// Forgotten nodes, by id and by key, at most [`FORGOTTEN_MAX`], the oldest dropped first.
#[derive(Default)]
struct Forgotten {
    /// Each node with the sequence number it was remembered under.
    by_id: HashMap<u64, (Arc<Inode>, u64)>,
    by_key: HashMap<(u64, u64), u64>,
    /// (id, sequence) in the order remembered. An entry whose sequence `by_id` no longer holds
    /// was recalled or replaced since: it is skipped when it comes up, so a recall (the kernel
    /// looks a reused inode number up again after every create that follows an unlink) costs
    /// no scan. Stale entries are swept once they outnumber the live ones.
    order: VecDeque<(u64, u64)>,
    seq: u64,
}

impl Forgotten {
    /// Remember forgotten node `id` (only nodes with a file handle can be reopened later).
    fn remember(&mut self, id: u64, inode: Arc<Inode>) {
        if inode.handle.is_none() {
            return;
        }
        if let Some(previous) = self.by_key.insert(inode.key, id) {
            self.by_id.remove(&previous);
        }
        while self.by_id.len() >= FORGOTTEN_MAX && self.drop_oldest() {}
        self.seq += 1;
        self.by_id.insert(id, (inode, self.seq));
        self.order.push_back((id, self.seq));
        if self.order.len() > 2 * FORGOTTEN_MAX {
            let by_id = &self.by_id;
            self.order.retain(|(id, seq)| by_id.get(id).is_some_and(|(_, s)| s == seq));
        }
    }

    /// Drop the oldest remembered node; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some((id, seq)) = self.order.pop_front() {
            if self.by_id.get(&id).is_some_and(|(_, s)| *s == seq) {
                let (inode, _) = self.by_id.remove(&id).expect("present");
                self.by_key.remove(&inode.key);
                return true;
            }
        }
        false
    }

    /// Take forgotten node `id` back.
    fn recall(&mut self, id: u64) -> Option<Arc<Inode>> {
        let (inode, _) = self.by_id.remove(&id)?;
        self.by_key.remove(&inode.key);
        Some(inode)
    }

    /// The forgotten node of backing inode `key`, if one is remembered.
    fn id_of(&self, key: (u64, u64)) -> Option<u64> {
        self.by_key.get(&key).copied()
    }
}

/// All inodes, the descriptor cache and the per-mount descriptors for `open_by_handle_at`.
pub(crate) struct Inodes {
    table: Mutex<Table>,
    cache: FdCache,
    mount_fds: Mutex<HashMap<i32, Arc<OwnedFd>>>,
    /// How handles of SOURCE's file system become node ids, when they fit.
    ids: Option<HandleIds>,
    /// Descriptors pinned for nodes whose backing file was unlinked while the kernel still
    /// knows them: a deleted file cannot be reopened by handle (ESTALE), yet the kernel may
    /// still send requests for it (e.g. a write-back ctime flush right after UNLINK). Dropped
    /// at FORGET.
    unlinked: Mutex<HashMap<u64, Arc<OwnedFd>>>,
    /// Signalled when a forgotten node's state is dropped (an id leaves `releasing`).
    released: Condvar,
}

impl Inodes {
    /// A table holding the root inode, which pins `root_fd`.
    /// `mount_fd` is a real (not O_PATH) descriptor of the root's mount, for
    /// `open_by_handle_at`.
    pub(crate) fn new(
        root_fd: OwnedFd, key: (u64, u64), handle: Option<KernelFileHandle>, mount_fd: OwnedFd, cache: usize,
    ) -> Inodes {
        let root_fd = Arc::new(root_fd);
        let ids = handle.as_ref().and_then(HandleIds::for_root);
        let mut mount_fds = HashMap::new();
        if let Some(h) = &handle {
            mount_fds.insert(h.mount_id, Arc::new(mount_fd));
        }
        let root = Inode { key, handle, pinned: Some(root_fd), generation: 0 };
        let mut nodes = HashMap::new();
        nodes.insert(NodeId::ROOT.0, Node { inode: Arc::new(root), nlookup: 1 });
        let mut by_key = HashMap::new();
        by_key.insert(key, NodeId::ROOT.0);
        Inodes {
            table: Mutex::new(Table {
                nodes,
                by_key,
                next: NodeId::ROOT.0 + 1,
                forgotten: Forgotten::default(),
                releasing: Default::default(),
            }),
            cache: FdCache::new(cache),
            mount_fds: Mutex::new(mount_fds),
            ids,
            unlinked: Mutex::default(),
            released: Condvar::new(),
        }
    }

    /// The inode of node `id`.
    pub(crate) fn get(&self, id: NodeId) -> Result<Arc<Inode>, Errno> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.nodes.get(&id.0).map(|n| n.inode.clone()).ok_or(Errno(libc::ESTALE))
    }

    /// A descriptor of node `id` (O_PATH unless pinned otherwise): pinned, cached, or reopened
    /// from its file handle.
    pub(crate) fn fd(&self, id: NodeId) -> Result<Arc<OwnedFd>, Errno> {
        let inode = self.get(id)?;
        self.fd_of(id, &inode)
    }

    /// Like [`Inodes::fd`] with the inode already at hand.
    pub(crate) fn fd_of(&self, id: NodeId, inode: &Inode) -> Result<Arc<OwnedFd>, Errno> {
        if let Some(fd) = &inode.pinned {
            return Ok(fd.clone());
        }
        if let Some(fd) = self.unlinked.lock().unwrap_or_else(|e| e.into_inner()).get(&id.0) {
            return Ok(fd.clone());
        }
        if let Some(fd) = self.cache.get(id.0) {
            return Ok(fd);
        }
        let handle = inode.handle.as_ref().ok_or(Errno::EIO)?;
        let fd = Arc::new(self.open_handle(handle, libc::O_PATH)?);
        self.cache.insert(id.0, fd.clone());
        Ok(fd)
    }

    /// Open a node's backing file by handle with `flags` (None when the inode has no handle).
    pub(crate) fn open_handle(&self, handle: &KernelFileHandle, flags: i32) -> Result<OwnedFd, Errno> {
        let mfd = self
            .mount_fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&handle.mount_id)
            .cloned()
            .ok_or(Errno::EIO)?;
        sys::open_by_handle_at(mfd.as_fd(), handle, flags).map_err(io_errno)
    }

    /// True when a descriptor for `open_by_handle_at` on mount `mount_id` is known.
    pub(crate) fn has_mount(&self, mount_id: i32) -> bool {
        self.mount_fds.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&mount_id)
    }

    /// Remember `fd` (a real descriptor, not O_PATH) as the way into mount `mount_id`.
    pub(crate) fn add_mount(&self, mount_id: i32, fd: OwnedFd) {
        self.mount_fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(mount_id)
            .or_insert_with(|| Arc::new(fd));
    }

    /// Count one lookup of the backing inode `fd` refers to (`key` from its stat, `handle`
    /// from `name_to_handle_at`, None to pin `fd`), creating a node when it is new. Returns its
    /// node id and generation. A known key with a different handle is a reused inode number: it
    /// gets a new node. A new node's id comes from its handle unless that id is still taken
    /// (by a retired node of the same file, or one whose generation differs only in the bit
    /// the id leaves out); then from the counter.
    pub(crate) fn lookup(
        &self, fd: OwnedFd, key: (u64, u64), handle: Option<KernelFileHandle>,
    ) -> (NodeId, u64) {
        let fd = Arc::new(fd);
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = t.by_key.get(&key) {
            let node = t.nodes.get_mut(&id).expect("by_key points at a live node");
            let same = match (&node.inode.handle, &handle) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if same {
                node.nlookup += 1;
                let cache = node.inode.pinned.is_none();
                let generation = node.inode.generation;
                drop(t);
                if cache {
                    self.cache.insert(id, fd);
                }
                return (NodeId(id), generation);
            }
        }
        // A forgotten node of this key can no longer be revived: its file now has this id.
        if let Some(old) = t.forgotten.id_of(key) {
            t.forgotten.recall(old);
        }
        let encoded = match (&self.ids, &handle) {
            (Some(ids), Some(h)) => {
                ids.encode(h).filter(|e| !t.nodes.contains_key(&e.id) && !t.releasing.contains(&e.id))
            }
            _ => None,
        };
        let (id, generation) = match encoded {
            Some(e) => (e.id, e.generation),
            None => {
                t.next += 1;
                (t.next - 1, 0)
            }
        };
        let pinned = handle.is_none().then(|| fd.clone());
        let has_handle = handle.is_some();
        t.nodes.insert(id, Node { inode: Arc::new(Inode { key, handle, pinned, generation }), nlookup: 1 });
        t.by_key.insert(key, id);
        drop(t);
        if has_handle {
            self.cache.insert(id, fd);
        }
        (NodeId(id), generation)
    }

    /// Keep node `id`'s descriptor (cached, or reopened by handle) until FORGET, because its
    /// backing file is about to lose its last name and could not be reopened by handle after
    /// that. Nothing happens for an unknown or already pinned node.
    pub(crate) fn pin_for_unlink(&self, id: NodeId) {
        let pinned = match self.get(id) {
            Ok(inode) => inode.pinned.is_some(),
            Err(_) => return,
        };
        if pinned {
            return;
        }
        if let Ok(fd) = self.fd(id) {
            self.unlinked.lock().unwrap_or_else(|e| e.into_inner()).insert(id.0, fd);
        }
    }

    /// True when node `id` lost its last name through this mount (its descriptor is kept
    /// until FORGET).
    pub(crate) fn unlinked_here(&self, id: NodeId) -> bool {
        self.unlinked.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id.0)
    }

    /// Drop `n` lookups of `id`; at zero the node and its cached descriptor go away, and
    /// `cleanup` drops what others keep for it (run outside the table lock, before the id can
    /// name a new node). True when the node went. The root is never removed.
    pub(crate) fn forget(&self, id: NodeId, n: u64, cleanup: impl FnOnce()) -> bool {
        if id == NodeId::ROOT {
            return false;
        }
        let removed = {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let Some(node) = t.nodes.get_mut(&id.0) else {
                return false;
            };
            node.nlookup = node.nlookup.saturating_sub(n);
            if node.nlookup > 0 {
                return false;
            }
            let node = t.nodes.remove(&id.0).expect("present");
            let current = t.by_key.get(&node.inode.key).copied();
            if current == Some(id.0) {
                t.by_key.remove(&node.inode.key);
            }
            // A retired node (see `retire`) is remembered too, unless its file has a newer node.
            // An id derived from a handle needs no memory: it is decoded when asked for.
            if (current.is_none() || current == Some(id.0)) && !HandleIds::is_encoded(id.0) {
                t.forgotten.remember(id.0, node.inode.clone());
            }
            t.releasing.insert(id.0);
            node
        };
        self.cache.remove(id.0);
        self.unlinked.lock().unwrap_or_else(|e| e.into_inner()).remove(&id.0);
        drop(removed);
        cleanup();
        self.table.lock().unwrap_or_else(|e| e.into_inner()).releasing.remove(&id.0);
        self.released.notify_all();
        true
    }

    /// Count one lookup of node `id` (LOOKUP of "." on it), bringing it back when the kernel
    /// forgot it: the kernel resolves a file handle that way, and the node's backing file is
    /// reopened by handle (remembered, or decoded from the id). Returns its generation.
    /// ESTALE when it is not remembered, its file is gone, or the file is known again under
    /// another id. (One step under the table lock for a live node: a FORGET racing with it
    /// cannot remove the node in between.)
    pub(crate) fn add_lookup_or_revive(&self, id: NodeId) -> Result<u64, Errno> {
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // A FORGET of this id may still be dropping the old node's state on another worker
        // (the kernel evicted the inode and asks for it again at once): wait for it to finish,
        // then revive the node. Answering ESTALE here failed a valid file handle.
        while t.releasing.contains(&id.0) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Errno(libc::ESTALE));
            }
            t = self.released.wait_timeout(t, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        if let Some(n) = t.nodes.get_mut(&id.0) {
            n.nlookup += 1;
            return Ok(n.inode.generation);
        }
        // Reopened under the table lock (a rare path: file handles), so that two revivals of
        // one id cannot both miss the node and one of them answer ESTALE.
        let (inode, fd) = match t.forgotten.recall(id.0) {
            Some(inode) => {
                let handle = inode.handle.as_ref().ok_or(Errno(libc::ESTALE))?;
                let fd = self.open_handle(handle, libc::O_PATH).map_err(|_| Errno(libc::ESTALE))?;
                (inode, fd)
            }
            None => self.decode(id).ok_or(Errno(libc::ESTALE))?,
        };
        // The file is known again under another id: this one names nothing any more.
        if t.by_key.contains_key(&inode.key) {
            return Err(Errno(libc::ESTALE));
        }
        let generation = inode.generation;
        t.by_key.insert(inode.key, id.0);
        t.nodes.insert(id.0, Node { inode, nlookup: 1 });
        drop(t);
        self.cache.insert(id.0, Arc::new(fd));
        Ok(generation)
    }

    /// The backing file an id derived from a handle names (nodeids.rs), opened O_PATH, with
    /// its inode; None when `id` is a counter id or no file has that handle any more. The file
    /// found is asked for its own handle, which must give `id` back.
    #[allow(clippy::unnecessary_cast)] // st_dev/st_ino are not u64 on every target
    fn decode(&self, id: NodeId) -> Option<(Arc<Inode>, OwnedFd)> {
        let ids = self.ids.as_ref()?;
        ids.decode(id.0).iter().find_map(|candidate| {
            let fd = self.open_handle(candidate, libc::O_PATH).ok()?;
            let handle = sys::name_to_handle_at(fd.as_fd(), std::ffi::OsStr::new("")).ok()?;
            let e = ids.encode(&handle).filter(|e| e.id == id.0)?;
            let st = rustix::fs::fstat(&fd).ok()?;
            let key = (st.st_dev as u64, st.st_ino as u64);
            let inode = Inode { key, handle: Some(handle), pinned: None, generation: e.generation };
            Some((Arc::new(inode), fd))
        })
    }

    /// The node of backing inode `key` (st_dev, st_ino), if the kernel knows it.
    pub(crate) fn by_key(&self, key: (u64, u64)) -> Option<NodeId> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).by_key.get(&key).map(|&id| NodeId(id))
    }

    /// Retire `id`: the next lookup of its backing file makes a new node (the kernel then
    /// instantiates a fresh inode). The node itself lives on until forgotten. Returns its key
    /// when it was the current node of that key. The root is never retired.
    pub(crate) fn retire(&self, id: NodeId) -> Option<(u64, u64)> {
        if id == NodeId::ROOT {
            return None;
        }
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let key = t.nodes.get(&id.0)?.inode.key;
        if t.by_key.get(&key) == Some(&id.0) {
            t.by_key.remove(&key);
            Some(key)
        } else {
            None
        }
    }

    /// Number of live nodes (including the root).
    pub(crate) fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(ino: u64) -> Arc<Inode> {
        let handle = KernelFileHandle { handle_type: 1, bytes: vec![0; 8], mount_id: 1 };
        Arc::new(Inode { key: (1, ino), handle: Some(handle), pinned: None, generation: 0 })
    }

    /// A table on a fresh directory (file handles as the passthrough uses them) and the
    /// directory.
    fn table_on_tempdir() -> (Inodes, tempfile::TempDir) {
        use rustix::fs::{Mode, OFlags};
        let dir = tempfile::tempdir().unwrap();
        let path = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(dir.path(), path, Mode::empty()).unwrap();
        let mount_fd =
            rustix::fs::open(dir.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        let handle = sys::name_to_handle_at(fd.as_fd(), std::ffi::OsStr::new("")).ok();
        #[allow(clippy::unnecessary_cast)]
        let key = (st.st_dev as u64, st.st_ino as u64);
        (Inodes::new(fd, key, handle, mount_fd, 16), dir)
    }

    /// The kernel evicts an inode (FORGET) and resolves a file handle of it at once (LOOKUP
    /// "." on the same id), on two workers: the revival waits for the FORGET to finish instead
    /// of answering ESTALE (it did, in about one run in ten of the file handle test).
    #[test]
    fn a_revival_racing_with_the_forget_of_its_id_waits_for_it() {
        use rustix::fs::{Mode, OFlags};
        let (inodes, dir) = table_on_tempdir();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let fd =
            rustix::fs::open(dir.path().join("f"), OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        let handle = sys::name_to_handle_at(fd.as_fd(), std::ffi::OsStr::new("")).ok();
        if handle.is_none() {
            eprintln!("skipped: the temporary directory's file system makes no file handles");
            return;
        }
        #[allow(clippy::unnecessary_cast)]
        let (id, generation) = inodes.lookup(fd, (st.st_dev as u64, st.st_ino as u64), handle);
        let (cleaning, may_finish) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            let forget = s.spawn(|| {
                inodes.forget(id, 1, || {
                    cleaning.wait();
                    may_finish.wait();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                })
            });
            cleaning.wait();
            // The FORGET is between dropping the node and finishing its cleanup.
            let revive = s.spawn(|| inodes.add_lookup_or_revive(id));
            may_finish.wait();
            assert!(forget.join().unwrap(), "the node went at its last forget");
            assert_eq!(revive.join().unwrap(), Ok(generation));
        });
        assert!(inodes.fd(id).is_ok(), "the revived node has its descriptor");
    }

    #[test]
    fn forgotten_nodes_are_bounded_oldest_first_and_recalls_do_not_count() {
        let mut f = Forgotten::default();
        // Node 10 is remembered, recalled (revived) and forgotten again: its first place in
        // line is stale and must not evict it early.
        f.remember(10, inode(10));
        assert_eq!(f.recall(10).map(|i| i.key), Some((1, 10)));
        assert!(f.recall(10).is_none());
        for id in 11..11 + FORGOTTEN_MAX as u64 - 1 {
            f.remember(id, inode(id));
        }
        f.remember(10, inode(10));
        assert_eq!(f.by_id.len(), FORGOTTEN_MAX);
        // One more: the oldest live one (11) goes, not 10.
        f.remember(1_000_000, inode(1_000_000));
        assert_eq!(f.by_id.len(), FORGOTTEN_MAX);
        assert!(f.id_of((1, 11)).is_none() && f.id_of((1, 10)) == Some(10));
        // A file known again under a new id replaces its forgotten one, by key.
        f.remember(2_000_000, inode(12));
        assert_eq!(f.id_of((1, 12)), Some(2_000_000));
        assert!(f.recall(12).is_none());
        // Stale entries are swept: the line never holds more than twice the bound.
        for round in 0..3 * FORGOTTEN_MAX as u64 {
            let id = 3_000_000 + round;
            f.remember(id, inode(id));
            f.recall(id);
        }
        assert!(f.order.len() <= 2 * FORGOTTEN_MAX);
        assert_eq!(f.by_id.len(), FORGOTTEN_MAX - 1);
    }
}
