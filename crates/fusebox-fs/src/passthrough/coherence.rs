//! Close-to-open across mounts: the kernel of this mount may cache attributes and names for
//! long (`attr_timeout`, `entry_timeout`), while other mounts of the same source, or its direct
//! users, change the files.
//!
//! The daemon remembers a fingerprint (inode number, size, mtime) of what it last told
//! the kernel about each node: every reply with attributes records it, and so do the daemon's
//! own changes (WRITE, SETATTR, FALLOCATE, COPY_FILE_RANGE fstat the file afterwards), so a
//! differing fingerprint means someone else changed the file. At OPEN and LOOKUP it compares:
//!
//! - without the write-back cache, a change is answered by INVAL_INODE (attributes and pages)
//!   before the reply, so the opener reads the new size and bytes;
//! - with the write-back cache the kernel never takes a cached regular file's size from the
//!   server, so the node is *retired*: the backing file gets a new node id at its next lookup,
//!   which the kernel instantiates afresh. A LOOKUP answers the new id at once (the kernel's
//!   revalidation sees a different node id and looks the name up again); an OPEN answers ESTALE,
//!   which makes the VFS redo the path walk with revalidation (`LOOKUP_REVAL`) and open the new
//!   node. A node born from a retirement is never retired again by its first OPEN, so an open
//!   cannot loop on ESTALE while a writer keeps changing the file.
//!
//! Changes nobody opens or looks up (a stat through a cached name, a name renamed or deleted
//! elsewhere) are pushed by the source watcher (`-o watch`, watch.rs), using the same rules.

use super::Passthrough;
use fusebox::{Errno, FileAttr, FileType, NodeId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Bound on remembered retired keys.
const MAX_RETIRED: usize = 4096;

#[derive(Clone, Copy)]
struct Record {
    stamp: u64,
    /// Created for a retired backing file and not opened yet: its first OPEN must not retire it.
    reborn: bool,
    /// The daemon's own changes in progress (WRITE, SETATTR, FALLOCATE, ...): a LOOKUP or
    /// READDIRPLUS that stats the file between the change and its record must not take it
    /// for someone else's (under write-back it would retire the node and the kernel would
    /// drop the inode whose dirty pages are still coming).
    changing: u32,
    /// The own-change clock when the daemon last recorded its own change: a stat taken before
    /// that ([`Coherence::clock`]) is older than the record and must neither replace it nor
    /// count as someone else's change.
    last_own: u64,
}

impl Record {
    fn new(stamp: u64, reborn: bool) -> Record {
        Record { stamp, reborn, changing: 0, last_own: 0 }
    }

    /// Whether a stat taken at clock `seen` is no newer than this record.
    fn outdated(&self, seen: u64) -> bool {
        self.changing > 0 || self.last_own > seen
    }
}

/// Marks a node as being changed by the daemon itself until dropped ([`Coherence::changing`]).
pub(crate) struct Changing<'a> {
    coherence: &'a Coherence,
    node: u64,
    /// Whether a record existed to count this change in (a node without one has nothing a
    /// lookup could compare against; a record made meanwhile must not lose another's count).
    counted: bool,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        if let Some(r) = self.coherence.shard(self.node).get_mut(&self.node) {
            r.changing = r.changing.saturating_sub(1);
        }
    }
}

/// What the kernel was last told about each node, plus the retirement bookkeeping.
#[derive(Default)]
pub(crate) struct Coherence {
    shards: [Mutex<HashMap<u64, Record>>; SHARDS],
    /// Backing keys retired and not yet looked up again.
    retired: Mutex<HashSet<(u64, u64)>>,
    /// The kernel's write-back cache is on (set at INIT).
    pub(crate) writeback: AtomicBool,
    /// Counts the daemon's own changes; read before a stat, it dates the stat.
    own_clock: AtomicU64,
}

/// What a comparison found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Same as told (or nothing told yet).
    None,
    /// Changed by someone else.
    External,
}

/// A fingerprint of the attributes that show a change of content or size. Not ctime: this
/// mount's own LINK, UNLINK, RENAME, chmod and xattr changes move it too, and retiring a node
/// for them would give one file two kernel inodes (a hard link would show a stale link count).
pub(crate) fn stamp(a: &FileAttr) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in [a.ino, a.size, a.mtime.sec as u64, a.mtime.nsec as u64] {
        h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Coherence {
    fn shard(&self, node: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Record>> {
        self.shards[(node as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The own-change clock: read it before a stat and pass it with the stat's attributes.
    pub(crate) fn clock(&self) -> u64 {
        self.own_clock.load(Ordering::SeqCst)
    }

    /// Compare `attr` (a stat taken at clock `seen`) with what was told about `node`, then
    /// record it as told. `opening` clears the reborn mark. Returns what changed and whether
    /// the node may be retired.
    pub(crate) fn observe(&self, node: NodeId, attr: &FileAttr, opening: bool, seen: u64) -> (Change, bool) {
        let s = stamp(attr);
        let mut shard = self.shard(node.0);
        let rec = shard.entry(node.0).or_insert(Record::new(s, false));
        if rec.outdated(seen) {
            // Our own change is on its way or came after the stat; its record stands.
            return (Change::None, false);
        }
        let change = if rec.stamp == s { Change::None } else { Change::External };
        let may_retire = !rec.reborn;
        rec.stamp = s;
        if opening {
            rec.reborn = false;
        }
        (change, may_retire)
    }

    /// Record `attr` as the newest state of `node` (the daemon's own change, or a change it
    /// took note of).
    pub(crate) fn record(&self, node: NodeId, attr: &FileAttr) {
        let s = stamp(attr);
        let now = self.own_clock.fetch_add(1, Ordering::SeqCst) + 1;
        let mut shard = self.shard(node.0);
        let r = shard.entry(node.0).or_insert(Record::new(s, false));
        r.stamp = s;
        r.last_own = now;
    }

    /// Record what a reply tells the kernel: `attr` from a stat taken at clock `seen`, unless
    /// the daemon's own change made the record newer since.
    pub(crate) fn told(&self, node: NodeId, attr: &FileAttr, seen: u64) {
        let s = stamp(attr);
        let mut shard = self.shard(node.0);
        let r = shard.entry(node.0).or_insert(Record::new(s, false));
        if !r.outdated(seen) {
            r.stamp = s;
        }
    }

    /// Mark `node` as being changed by the daemon until the returned guard is dropped (after
    /// the change was recorded).
    pub(crate) fn changing(&self, node: NodeId) -> Changing<'_> {
        let counted = self.shard(node.0).get_mut(&node.0).map(|r| r.changing += 1).is_some();
        Changing { coherence: self, node: node.0, counted }
    }

    /// Whether a record exists for `node` with a stamp different from `attr`'s (a stat taken
    /// at clock `seen`; an older stat than the record never differs).
    pub(crate) fn differs(&self, node: NodeId, attr: &FileAttr, seen: u64) -> bool {
        self.shard(node.0).get(&node.0).is_some_and(|r| !r.outdated(seen) && r.stamp != stamp(attr))
    }

    /// A node was just created for backing `key`: if the key was retired, mark it reborn.
    pub(crate) fn born(&self, node: NodeId, key: (u64, u64), attr: &FileAttr) {
        let reborn = self.retired.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        self.shard(node.0).insert(node.0, Record::new(stamp(attr), reborn));
    }

    /// Backing `key` was retired (its next lookup makes a new node).
    pub(crate) fn retired(&self, key: (u64, u64)) {
        let mut set = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        // Keys of files never looked up again (deleted) would pile up: bound the set. Losing a
        // mark only allows one more retirement at that file's first OPEN.
        if set.len() >= MAX_RETIRED {
            set.clear();
        }
        set.insert(key);
    }

    /// The node is gone.
    pub(crate) fn forget(&self, node: NodeId) {
        self.shard(node.0).remove(&node.0);
    }

    /// Write-back cache on for this session.
    pub(crate) fn writeback(&self) -> bool {
        self.writeback.load(Ordering::Relaxed)
    }
}

impl Passthrough {
    fn inval(&self, node: NodeId) {
        if let Some(n) = self.notifier.get() {
            if let Err(e) = n.inval_inode(node, 0, 0) {
                tracing::debug!(node = node.0, error = %e, "invalidating a changed inode failed");
            }
        }
    }

    /// Retire `node`: its backing file gets a new node id at the next lookup.
    fn retire(&self, node: NodeId) {
        if let Some(key) = self.inodes.retire(node) {
            self.coherence.retired(key);
            tracing::debug!(node = node.0, "backing file changed elsewhere: node retired");
        }
    }

    /// LOOKUP (and every other registration) of an existing node found `attr`: deal with a
    /// change made elsewhere. Returns true when the node was retired (the caller registers a
    /// new one).
    pub(super) fn lookup_changed(&self, node: NodeId, attr: &FileAttr, seen: u64) -> bool {
        // Only regular files: the kernel takes directories' and others' attributes from every
        // LOOKUP reply, and retiring a directory would disturb everything below it.
        if attr.kind() != Some(FileType::Regular) || !self.coherence.differs(node, attr, seen) {
            return false;
        }
        if self.coherence.writeback() {
            self.retire(node);
            true
        } else {
            self.coherence.told(node, attr, seen);
            self.inval(node);
            false
        }
    }

    /// OPEN of `node` found `attr` (fstat of the new descriptor): deal with a change made
    /// elsewhere. Err(ESTALE) asks the kernel to look the name up again (write-back).
    pub(super) fn open_changed(&self, node: NodeId, attr: &FileAttr, seen: u64) -> Result<(), Errno> {
        let (change, may_retire) = self.coherence.observe(node, attr, true, seen);
        if change == Change::None || attr.kind() != Some(FileType::Regular) {
            return Ok(());
        }
        if self.coherence.writeback() && may_retire {
            self.retire(node);
            return Err(Errno(libc::ESTALE));
        }
        self.inval(node);
        Ok(())
    }

    /// Record what a reply tells the kernel about `node` (attributes from a stat taken at
    /// clock `seen`).
    pub(super) fn told(&self, node: NodeId, attr: &FileAttr, seen: u64) {
        self.coherence.told(node, attr, seen);
    }

    /// A passthrough open file of `node` (behind `fd`) was synced or released: its mapped
    /// writes went from the kernel to the backing file without telling the FUSE inode, whose
    /// cached mtime, ctime and size stay old. When the backing file differs from what the
    /// kernel was told, drop the kernel's cached attributes (not its pages: it has none for a
    /// passthrough file) and record the new state.
    pub(super) fn passthrough_settled(&self, node: NodeId, fd: &impl std::os::fd::AsFd) {
        let seen = self.coherence.clock();
        let Ok(st) = rustix::fs::fstat(fd) else { return };
        let attr = super::to_attr(&st);
        if self.coherence.differs(node, &attr, seen) {
            self.coherence.record(node, &attr);
            self.attributes_changed(node);
        }
    }

    /// Drop the kernel's cached attributes of `node` (not its pages): they changed in a way
    /// the kernel does not apply itself (a passthrough write, chattr's new ctime).
    pub(super) fn attributes_changed(&self, node: NodeId) {
        if let Some(n) = self.notifier.get() {
            if let Err(e) = n.inval_inode(node, -1, 0) {
                tracing::debug!(node = node.0, error = %e, "invalidating attributes failed");
            }
        }
    }

    /// After the daemon changed the file behind `fd` itself: record its new state, so that
    /// only changes made by others count as changes.
    pub(super) fn own_change(&self, node: NodeId, fd: &impl std::os::fd::AsFd) {
        if let Ok(st) = rustix::fs::fstat(fd) {
            self.coherence.record(node, &super::to_attr(&st));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(size: u64, mtime: i64) -> FileAttr {
        FileAttr {
            ino: 7,
            size,
            mode: libc::S_IFREG | 0o644,
            mtime: fusebox::fs::Timespec { sec: mtime, nsec: 0 },
            ..Default::default()
        }
    }

    #[test]
    fn changes_are_what_differs_from_the_last_record() {
        let c = Coherence::default();
        let n = NodeId(5);
        c.born(n, (1, 7), &attr(10, 1));
        assert!(!c.differs(n, &attr(10, 1), c.clock()));
        assert!(c.differs(n, &attr(11, 1), c.clock()));
        assert!(c.differs(n, &attr(10, 2), c.clock()));
        // The daemon's own change is recorded: no longer a difference.
        c.record(n, &attr(11, 2));
        assert_eq!(c.observe(n, &attr(11, 2), true, c.clock()), (Change::None, true));
        assert_eq!(c.observe(n, &attr(12, 3), true, c.clock()), (Change::External, true));
        assert!(!c.differs(NodeId(99), &attr(1, 1), c.clock()), "nothing told: no difference");
    }

    #[test]
    fn a_node_born_from_a_retirement_is_not_retired_by_its_first_open() {
        let c = Coherence::default();
        c.retired((1, 7));
        c.born(NodeId(8), (1, 7), &attr(10, 1));
        assert_eq!(c.observe(NodeId(8), &attr(20, 2), true, c.clock()), (Change::External, false));
        // After that first open, it may be retired again.
        assert_eq!(c.observe(NodeId(8), &attr(30, 3), true, c.clock()), (Change::External, true));
        // A key retired once does not mark later births.
        c.born(NodeId(9), (1, 7), &attr(10, 1));
        assert_eq!(c.observe(NodeId(9), &attr(20, 2), true, c.clock()), (Change::External, true));
    }

    #[test]
    fn a_stat_older_than_our_own_change_neither_differs_nor_replaces_it() {
        let c = Coherence::default();
        let n = NodeId(5);
        c.record(n, &attr(0, 1));
        // A LOOKUP stats the file (size 0), then our WRITE lands and is recorded (size 10).
        let seen = c.clock();
        c.record(n, &attr(10, 2));
        assert!(!c.differs(n, &attr(0, 1), seen), "the old stat is no change made elsewhere");
        c.told(n, &attr(0, 1), seen);
        assert!(!c.differs(n, &attr(10, 2), c.clock()), "the reply did not roll the record back");
        assert_eq!(c.observe(n, &attr(0, 1), true, seen), (Change::None, false));
        // While our change is in flight nothing counts either.
        let guard = c.changing(n);
        assert!(!c.differs(n, &attr(20, 3), c.clock()));
        drop(guard);
        assert!(c.differs(n, &attr(20, 3), c.clock()), "a later change by someone else still shows");
    }
}
