//! Blocks read lately, in memory. A block object is up to 4 MiB while the kernel reads in
//! pieces of at most 1 MiB, so a sequential read asks for each block four times (more with
//! smaller reads); without this every ask fetched the whole block again (from the store, or
//! from the disk cache after the first time). Blocks are immutable, so a kept block is never
//! stale. Concurrent asks for one block (readahead sends several READs at once) share one
//! fetch. Bounded in bytes, oldest dropped first.

use bytes::Bytes;
use fusebox::Errno;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Bytes of blocks kept per mount by default (16 blocks of 4 MiB).
pub const DEFAULT_RECENT_BYTES: u64 = 64 << 20;

type Fetch = Arc<OnceCell<Bytes>>;

#[derive(Default)]
struct Kept {
    blocks: HashMap<String, Bytes>,
    /// Keys in the order they were kept (a key may be listed again after it was dropped).
    order: VecDeque<String>,
    bytes: u64,
    /// Fetches under way, shared by everyone asking for the same block meanwhile.
    fetching: HashMap<String, Fetch>,
}

/// Recently read blocks, at most `limit` bytes of them.
pub struct RecentBlocks {
    limit: u64,
    kept: Mutex<Kept>,
}

impl RecentBlocks {
    /// Keep at most `limit` bytes (0: keep nothing, every ask fetches).
    pub fn new(limit: u64) -> RecentBlocks {
        RecentBlocks { limit, kept: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Block `key`: kept, or fetched with `fetch` (once for all who ask meanwhile) and kept.
    /// A failed fetch is not kept: the next ask tries again.
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<Bytes, Errno>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, Errno>>,
    {
        if self.limit == 0 {
            return fetch().await;
        }
        let cell = {
            let mut k = self.lock();
            if let Some(b) = k.blocks.get(key) {
                return Ok(b.clone());
            }
            k.fetching.entry(key.to_string()).or_default().clone()
        };
        let result = cell.get_or_try_init(fetch).await.cloned();
        let mut k = self.lock();
        if k.fetching.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            k.fetching.remove(key);
        }
        if let Ok(b) = &result {
            self.keep(&mut k, key, b.clone());
        }
        result
    }

    fn keep(&self, k: &mut Kept, key: &str, block: Bytes) {
        let len = block.len() as u64;
        if len > self.limit || k.blocks.contains_key(key) {
            return;
        }
        while k.bytes + len > self.limit {
            let Some(old) = k.order.pop_front() else { break };
            if let Some(b) = k.blocks.remove(&old) {
                k.bytes -= b.len() as u64;
            }
        }
        k.blocks.insert(key.to_string(), block);
        k.order.push_back(key.to_string());
        k.bytes += len;
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    #[test]
    fn concurrent_asks_share_one_fetch_and_the_bound_drops_the_oldest() {
        let recent = Arc::new(RecentBlocks::new(10));
        let fetches = Arc::new(AtomicUsize::new(0));
        rt().block_on(async {
            let asks = (0..8).map(|_| {
                let (recent, fetches) = (recent.clone(), fetches.clone());
                tokio::spawn(async move {
                    recent
                        .get_or_fetch("a", || async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok(Bytes::from_static(b"aaaa"))
                        })
                        .await
                })
            });
            for a in futures::future::join_all(asks).await {
                assert_eq!(a.unwrap().unwrap(), &b"aaaa"[..]);
            }
            assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch for eight concurrent asks");
            let fetch = |data: &'static [u8]| {
                let fetches = fetches.clone();
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(Bytes::from_static(data))
                }
            };
            recent.get_or_fetch("b", fetch(b"bbbb")).await.unwrap();
            recent.get_or_fetch("c", fetch(b"cccc")).await.unwrap();
            assert_eq!(recent.bytes(), 8, "a went to make room for c");
            recent.get_or_fetch("b", fetch(b"bbbb")).await.unwrap();
            assert_eq!(fetches.load(Ordering::SeqCst), 3, "b was kept");
            recent.get_or_fetch("a", fetch(b"aaaa")).await.unwrap();
            assert_eq!(fetches.load(Ordering::SeqCst), 4, "a was dropped");
        });
    }

    #[test]
    fn a_failed_fetch_is_not_kept() {
        let recent = RecentBlocks::new(1 << 20);
        rt().block_on(async {
            let r = recent.get_or_fetch("k", || async { Err(Errno::EIO) }).await;
            assert_eq!(r, Err(Errno::EIO));
            let r = recent.get_or_fetch("k", || async { Ok(Bytes::from_static(b"ok")) }).await;
            assert_eq!(r.unwrap(), &b"ok"[..]);
            assert_eq!(recent.bytes(), 2);
        });
    }
}
