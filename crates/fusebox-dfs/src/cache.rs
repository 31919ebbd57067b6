//! A bounded on-disk cache of block objects: a directory of files plus a size limit, evicting
//! the least recently used blocks. Blocks are immutable, so a cached copy never goes stale.
//! Files are written to a temporary name and renamed, so a crash never leaves a torn block.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Lru {
    used: u64,
    tick: u64,
    by_key: HashMap<String, (u64, u64)>,
    by_tick: BTreeMap<u64, String>,
}

impl Lru {
    fn touch(&mut self, key: &str) -> bool {
        let Some((tick, _)) = self.by_key.get_mut(key) else { return false };
        self.by_tick.remove(tick);
        self.tick += 1;
        *tick = self.tick;
        self.by_tick.insert(self.tick, key.to_string());
        true
    }
    fn insert(&mut self, key: String, size: u64) {
        self.remove(&key);
        self.tick += 1;
        self.by_tick.insert(self.tick, key.clone());
        self.by_key.insert(key, (self.tick, size));
        self.used += size;
    }
    fn remove(&mut self, key: &str) -> bool {
        let Some((tick, size)) = self.by_key.remove(key) else { return false };
        self.by_tick.remove(&tick);
        self.used -= size;
        true
    }
    fn oldest(&self) -> Option<String> {
        self.by_tick.values().next().cloned()
    }
}

/// The block cache.
#[derive(Debug)]
pub struct BlockCache {
    dir: PathBuf,
    limit: u64,
    lru: Arc<Mutex<Lru>>,
}

/// A file name for `key` (keys contain '/').
fn file_name(key: &str) -> String {
    key.replace('/', "%")
}

impl BlockCache {
    /// A cache in `dir` (created if missing) holding at most `limit` bytes. Blocks already in
    /// `dir` are kept (oldest modification first in line for eviction); leftovers of interrupted
    /// writes are removed.
    pub fn open(dir: &Path, limit: u64) -> std::io::Result<BlockCache> {
        std::fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let md = e.metadata()?;
            if name.ends_with(".tmp") || !md.is_file() {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            found.push((md.modified().ok(), name.replace('%', "/"), md.len()));
        }
        found.sort();
        let mut lru = Lru::default();
        for (_, key, size) in found {
            lru.insert(key, size);
        }
        let cache = BlockCache { dir: dir.to_path_buf(), limit, lru: Arc::new(Mutex::new(lru)) };
        // At open, synchronously: the mount is not serving yet.
        let victims = cache.victims(&mut cache.lock());
        remove_blocks(dir, victims);
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// The cached block `key`, if present.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        if !self.lock().touch(key) {
            return None;
        }
        let path = self.dir.join(file_name(key));
        match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
            Ok(Ok(v)) => Some(Bytes::from(v)),
            _ => {
                // Removed behind our back (or unreadable): forget it.
                self.lock().remove(key);
                None
            }
        }
    }

    /// Store block `key` (errors are logged: the cache is an optimisation). Every file
    /// operation, the eviction's unlinks included, runs on the blocking pool: an unlink of a
    /// 4 MiB file under a write flood can take milliseconds, which a runtime thread serving a
    /// stat must not spend.
    pub async fn put(&self, key: &str, data: Bytes) {
        let size = data.len() as u64;
        if size > self.limit {
            return;
        }
        let (dir, name) = (self.dir.clone(), file_name(key));
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
            let mut file = std::fs::File::create(&tmp)?;
            for piece in crate::blob::write_pieces(&data) {
                std::io::Write::write_all(&mut file, &piece)?;
            }
            drop(file);
            std::fs::rename(&tmp, dir.join(name))
        })
        .await;
        match res {
            Ok(Ok(())) => {
                let victims = {
                    let mut lru = self.lock();
                    lru.insert(key.to_string(), size);
                    self.victims(&mut lru)
                };
                if !victims.is_empty() {
                    let dir = self.dir.clone();
                    let _ = tokio::task::spawn_blocking(move || remove_blocks(&dir, victims)).await;
                }
            }
            Ok(Err(e)) => tracing::warn!(key, error = %e, "block cache write failed"),
            Err(e) => tracing::warn!(key, error = %e, "block cache write task failed"),
        }
    }

    /// Take least recently used blocks out of `lru` until it fits the limit; returns their
    /// keys, whose files the caller removes.
    fn victims(&self, lru: &mut Lru) -> Vec<String> {
        let mut out = Vec::new();
        while lru.used > self.limit {
            let Some(k) = lru.oldest() else { break };
            lru.remove(&k);
            out.push(k);
        }
        out
    }
}

/// Delete the files of cached blocks `keys` in `dir` (an evicted file that is already gone is
/// no error: the cache is an optimisation).
fn remove_blocks(dir: &Path, keys: Vec<String>) {
    for k in keys {
        let _ = std::fs::remove_file(dir.join(file_name(&k)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_recent_blocks_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let c = BlockCache::open(dir.path(), 250).unwrap();
        c.put("blocks/01/1_0", Bytes::from(vec![1u8; 100])).await;
        c.put("blocks/02/2_0", Bytes::from(vec![2u8; 100])).await;
        assert_eq!(c.get("blocks/01/1_0").await.unwrap()[0], 1); // 1 is now the most recent
        c.put("blocks/03/3_0", Bytes::from(vec![3u8; 100])).await;
        assert!(c.get("blocks/02/2_0").await.is_none(), "least recently used goes first");
        assert!(c.get("blocks/01/1_0").await.is_some());
        assert_eq!(c.used(), 200);
        // Reopening keeps the blocks; a too small limit trims them.
        drop(c);
        let c = BlockCache::open(dir.path(), 150).unwrap();
        assert_eq!(c.used(), 100);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
