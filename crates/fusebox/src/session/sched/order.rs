//! RELEASE before a later OPEN of the same inode.
//!
//! The kernel sends RELEASE after close(2) has returned and does not wait for it; the worker
//! pool may even queue it behind other background requests. A process that closes a file and
//! opens it again must not see its OPEN handled before the RELEASE (a file system that commits
//! or unlocks at RELEASE would otherwise race with itself). So a RELEASE is counted against its
//! inode as soon as a worker has read it, and an OPEN of that inode waits until every counted
//! RELEASE has been answered.

use crate::session::finish::{FinishOnDrop, Finishes};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    pending: Mutex<HashMap<u64, usize>>,
    done: Condvar,
}

/// Pending RELEASEs per inode.
#[derive(Default)]
pub(crate) struct ReleaseOrder {
    shards: [Shard; SHARDS],
    total: AtomicUsize,
}

impl ReleaseOrder {
    fn shard(&self, ino: u64) -> &Shard {
        &self.shards[(ino as usize) % SHARDS]
    }

    /// A RELEASE of `ino` was read; pair with [`ReleaseOrder::released`].
    pub(crate) fn noted(&self, ino: u64) {
        let s = self.shard(ino);
        *s.pending.lock().unwrap_or_else(|e| e.into_inner()).entry(ino).or_default() += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
    }

    /// A RELEASE of `ino` was answered.
    pub(crate) fn released(&self, ino: u64) {
        let s = self.shard(ino);
        let mut p = s.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = p.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                p.remove(&ino);
            }
            self.total.fetch_sub(1, Ordering::SeqCst);
        }
        s.done.notify_all();
    }

    /// Wait until no RELEASE of `ino` is pending (at once when none is, without locking).
    pub(crate) fn wait(&self, ino: u64) {
        if self.total.load(Ordering::SeqCst) == 0 {
            return;
        }
        let s = self.shard(ino);
        let mut p = s.pending.lock().unwrap_or_else(|e| e.into_inner());
        while p.contains_key(&ino) {
            p = s.done.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Finishes for ReleaseOrder {
    /// A RELEASE of `ino` was answered (its reply token went away).
    fn finished(&self, ino: u64) {
        self.released(ino);
    }
}

/// Marks a RELEASE answered when the reply token that carries it goes away.
pub(crate) type ReleaseGuard = FinishOnDrop<ReleaseOrder>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn open_waits_for_pending_release_of_its_inode_only() {
        let o = Arc::new(ReleaseOrder::default());
        o.wait(5);
        o.noted(5);
        o.wait(6);
        let o2 = o.clone();
        let t = std::thread::spawn(move || o2.wait(5));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!t.is_finished());
        drop(ReleaseGuard::new(o.clone(), 5));
        t.join().unwrap();
        assert_eq!(o.total.load(Ordering::SeqCst), 0);
    }
}
