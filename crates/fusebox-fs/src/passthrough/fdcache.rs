//! A bounded least-recently-used cache of O_PATH descriptors, keyed by node id.
//!
//! Inodes do not hold descriptors (a tree of 100,000 files would exceed RLIMIT_NOFILE); they
//! hold kernel file handles, and this cache keeps the descriptors of the recently used ones.
//! A descriptor evicted while an operation still uses it stays open until that operation drops
//! its `Arc`.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

/// Default number of cached descriptors.
pub const DEFAULT_FD_CACHE: usize = 1024;

struct Lru {
    map: HashMap<u64, (Arc<OwnedFd>, u64)>,
    order: BTreeMap<u64, u64>,
    tick: u64,
}

/// The cache. All methods take `&self`; one short mutex section each.
pub(crate) struct FdCache {
    inner: Mutex<Lru>,
    cap: usize,
}

impl FdCache {
    /// A cache holding at most `cap` descriptors (at least 1).
    pub(crate) fn new(cap: usize) -> FdCache {
        FdCache {
            inner: Mutex::new(Lru { map: HashMap::new(), order: BTreeMap::new(), tick: 0 }),
            cap: cap.max(1),
        }
    }

    /// The cached descriptor of `node`, marked as most recently used.
    pub(crate) fn get(&self, node: u64) -> Option<Arc<OwnedFd>> {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        l.tick += 1;
        let tick = l.tick;
        let (fd, old) = {
            let e = l.map.get_mut(&node)?;
            let old = std::mem::replace(&mut e.1, tick);
            (e.0.clone(), old)
        };
        l.order.remove(&old);
        l.order.insert(tick, node);
        Some(fd)
    }

    /// Cache `fd` for `node`, evicting the least recently used entries beyond the bound.
    pub(crate) fn insert(&self, node: u64, fd: Arc<OwnedFd>) {
        let mut evicted = Vec::new();
        {
            let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            l.tick += 1;
            let tick = l.tick;
            if let Some((old_fd, old)) = l.map.insert(node, (fd, tick)) {
                l.order.remove(&old);
                evicted.push(old_fd);
            }
            l.order.insert(tick, node);
            while l.map.len() > self.cap {
                let Some((_, victim)) = l.order.pop_first() else {
                    break;
                };
                if let Some((fd, _)) = l.map.remove(&victim) {
                    evicted.push(fd);
                }
            }
        }
        drop(evicted); // close outside the lock
    }

    /// Forget `node`'s descriptor.
    pub(crate) fn remove(&self, node: u64) {
        let removed = {
            let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let r = l.map.remove(&node);
            if let Some((_, t)) = &r {
                let t = *t;
                l.order.remove(&t);
            }
            r
        };
        drop(removed);
    }

    /// Number of cached descriptors.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> Arc<OwnedFd> {
        Arc::new(std::fs::File::open("/").unwrap().into())
    }

    #[test]
    fn bounded_and_lru() {
        let c = FdCache::new(3);
        for n in 1..=3 {
            c.insert(n, fd());
        }
        assert!(c.get(1).is_some()); // 1 is now the most recent; 2 the least
        c.insert(4, fd());
        assert_eq!(c.len(), 3);
        assert!(c.get(2).is_none());
        assert!(c.get(1).is_some() && c.get(3).is_some() && c.get(4).is_some());
        c.remove(3);
        assert!(c.get(3).is_none());
        assert_eq!(c.len(), 2);
        for n in 10..1000 {
            c.insert(n, fd());
        }
        assert_eq!(c.len(), 3);
    }
}
