//! Honest sizes after failed write-back.
//!
//! With the write-back cache the kernel owns a cached regular file's size: it extends it when a
//! write(2) lands in the page cache and never takes a size from the server for that inode
//! again. When a write-back WRITE then fails (ENOSPC on a full memfs, EFBIG past the backing
//! file system's limit, EIO from a store), or a FLUSH/FSYNC that commits buffered data fails
//! (fusebox-dfs), the error reaches close(2)/fsync(2), but the cached inode would keep the size
//! of data that was never stored, and its pages the bytes.
//!
//! So the framework *retires* the node's kernel inode: it adds one to the generation it
//! reports for that node id from then on, and asks the kernel to revalidate every cached
//! name (`FUSE_NOTIFY_INC_EPOCH`, Linux 6.16+). The next path walk looks the name up again,
//! the kernel sees a new generation for a node id it caches, marks the old inode bad and
//! instantiates a fresh one with the size and bytes the file system really holds.
//!
//! Why at the WRITE's answer: after a failed write-back the kernel returns the error from
//! fsync(2) and close(2) itself, without sending FSYNC or FLUSH, so the failing WRITE is the
//! last request the server sees before the caller learns of the error. The cost: a lookup of
//! the same name by another process while that file's write-back is still running makes the
//! old inode bad, and its remaining dirty pages fail with EIO instead of being tried; the
//! writer gets an error from fsync/close either way. Files whose commit happens at FLUSH or
//! FSYNC (fusebox-dfs) retire when that answer is an error (not ENOSYS).
//!
//! Bounded: at most [`MAX_RETIRED`] nodes are remembered (the oldest are forgotten; forgetting
//! one only gives the kernel one more fresh inode).

use crate::abi;
use crate::transport::ReplyChannel;
use crate::wire::reply::send_notify;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Nodes remembered with a raised generation.
pub const MAX_RETIRED: usize = 65_536;

#[derive(Default)]
struct Table {
    bumps: HashMap<u64, u64>,
    order: VecDeque<u64>,
}

/// The generation offsets of retired nodes.
#[derive(Default)]
pub struct Retirements {
    /// Set once any node was retired: entry replies skip the lookup before that.
    any: AtomicBool,
    table: Mutex<Table>,
}

impl std::fmt::Debug for Retirements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retirements").field("any", &self.any.load(Ordering::Relaxed)).finish()
    }
}

impl Retirements {
    /// What to add to the generation the file system reports for `nodeid`.
    pub fn offset(&self, nodeid: u64) -> u64 {
        if !self.any.load(Ordering::Acquire) {
            return 0;
        }
        self.table.lock().unwrap_or_else(|e| e.into_inner()).bumps.get(&nodeid).copied().unwrap_or(0)
    }

    /// A write-back WRITE of `nodeid` failed: report a new generation for it from now on and
    /// make the kernel revalidate its cached names, with a notification on `chan` (a
    /// `/dev/fuse` fd of the session, never an io_uring entry).
    pub(crate) fn retire(&self, nodeid: u64, chan: &Arc<dyn ReplyChannel>) {
        {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let Table { bumps, order } = &mut *t;
            let n = bumps.entry(nodeid).or_insert(0);
            if *n == 0 {
                order.push_back(nodeid);
            }
            *n += 1;
            while order.len() > MAX_RETIRED {
                if let Some(old) = order.pop_front() {
                    bumps.remove(&old);
                }
            }
        }
        self.any.store(true, Ordering::Release);
        if let Err(e) = send_notify(&**chan, abi::notify_code::FUSE_NOTIFY_INC_EPOCH, &[]) {
            // Kernels before 6.16 do not know the notification: the stale size then lasts
            // until the kernel drops the inode (documented in the README).
            tracing::debug!(error = %e, nodeid, "epoch notification not delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::mem::MemChannel;

    #[test]
    fn retiring_raises_the_generation_and_sends_one_epoch_notice() {
        let r = Retirements::default();
        let chan = Arc::new(MemChannel::default());
        let dyn_chan: Arc<dyn ReplyChannel> = chan.clone();
        assert_eq!(r.offset(7), 0);
        r.retire(7, &dyn_chan);
        r.retire(7, &dyn_chan);
        assert_eq!(r.offset(7), 2);
        assert_eq!(r.offset(8), 0);
        assert_eq!(chan.pending(), 2);
        let sent = chan.next_reply(std::time::Duration::ZERO).unwrap();
        let header = crate::wire::reply::out_header(&sent).unwrap();
        assert_eq!((header.len, header.error), (16, abi::notify_code::FUSE_NOTIFY_INC_EPOCH));
    }

    #[test]
    fn the_table_stays_bounded() {
        let r = Retirements::default();
        let chan: Arc<dyn ReplyChannel> = Arc::new(MemChannel::default());
        for n in 0..(MAX_RETIRED as u64 + 10) {
            r.retire(n, &chan);
        }
        assert_eq!(r.offset(0), 0, "the oldest is forgotten");
        assert_eq!(r.offset(MAX_RETIRED as u64 + 9), 1);
        assert_eq!(r.table.lock().unwrap().bumps.len(), MAX_RETIRED);
    }
}
