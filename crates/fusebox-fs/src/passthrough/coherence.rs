//! Close-to-open across mounts: the kernel of this mount may cache attributes and names for
//! long (`attr_timeout`, `entry_timeout`), while other mounts of the same source, or its direct
//! users, change the files.
//!
//! - At OPEN and LOOKUP the daemon compares the backing file's state (size, mtime, ctime,
//!   inode number) with what it last told the kernel about that node (any reply carrying
//!   attributes records it). When they differ, it invalidates the kernel's cached attributes
//!   and pages of the node before answering, so the opener reads the new size and bytes.
//! - Changes nobody opens or looks up (a stat through a cached name, a name renamed or deleted
//!   elsewhere) are pushed by the source watcher (`-o watch`, watch.rs).

use super::Passthrough;
use fusebox::{FileAttr, NodeId};
use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 16;

/// What the kernel was last told about each node.
#[derive(Default)]
pub(crate) struct Told {
    shards: [Mutex<HashMap<u64, u64>>; SHARDS],
}

/// A fingerprint of the attributes that show a change of content or size.
pub(crate) fn stamp(a: &FileAttr) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in [a.ino, a.size, a.mtime.sec as u64, a.mtime.nsec as u64, a.ctime.sec as u64, a.ctime.nsec as u64]
    {
        h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Told {
    fn shard(&self, node: u64) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.shards[(node as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record `attr` as told for `node`; returns the previous stamp.
    pub(crate) fn record(&self, node: NodeId, attr: &FileAttr) -> Option<u64> {
        self.shard(node.0).insert(node.0, stamp(attr))
    }

    /// The node is gone.
    pub(crate) fn forget(&self, node: NodeId) {
        self.shard(node.0).remove(&node.0);
    }
}

impl Passthrough {
    /// We are about to tell the kernel `attr` for `node` (LOOKUP, OPEN): if the backing file
    /// changed since the kernel last heard about it, invalidate its cached attributes and data
    /// first. Without a notifier (not mounted through a session) this only records.
    pub(super) fn refresh_if_changed(&self, node: NodeId, attr: &FileAttr) {
        let before = self.told.record(node, attr);
        if before.is_some_and(|s| s != stamp(attr)) {
            if let Some(n) = self.notifier.get() {
                if let Err(e) = n.inval_inode(node, 0, 0) {
                    tracing::debug!(node = node.0, error = %e, "invalidating a changed inode failed");
                }
            }
        }
    }

    /// Record what a reply tells the kernel about `node`.
    pub(super) fn told(&self, node: NodeId, attr: &FileAttr) {
        self.told.record(node, attr);
    }
}
