//! The block store: immutable objects holding file data, behind the [`BlobStore`] trait.
//! [`ObjectBlobStore`] implements it with the `object_store` crate (a local directory today;
//! the same code serves S3 once its builder is wired to a URL).

use crate::error::{BlobError, UrlError};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;

/// One stored object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Last modification, seconds since the epoch.
    pub modified_secs: i64,
}

/// A store of immutable objects addressed by key. A `put` is atomic: readers see the whole
/// object or none of it.
pub trait BlobStore: Send + Sync + 'static {
    /// Store `data` under `key` (durably: when this returns, a crash does not lose it).
    fn put(&self, key: String, data: Bytes) -> BoxFuture<'_, Result<(), BlobError>>;
    /// The whole object `key`.
    fn get(&self, key: String) -> BoxFuture<'_, Result<Bytes, BlobError>>;
    /// Delete `key` (deleting a missing key is not an error).
    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), BlobError>>;
    /// Every object whose key starts with `prefix` (a directory-like prefix such as `blocks`).
    fn list(&self, prefix: String) -> BoxFuture<'_, Result<Vec<ObjectInfo>, BlobError>>;
}

fn store_err(key: &str, e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_string()),
        e => BlobError::Store(e.to_string()),
    }
}

/// A [`BlobStore`] on top of an `object_store` implementation.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    /// For a local directory: its path, so puts can be fsynced (object_store does not).
    local_root: Option<PathBuf>,
}

impl ObjectBlobStore {
    /// Wrap any `object_store` (tests use `object_store::memory::InMemory`).
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        ObjectBlobStore { inner, local_root: None }
    }

    /// The store a storage URL names. Supported: `file:///absolute/dir` (created if missing).
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let err = |reason: String| UrlError { what: "storage", url: url.to_string(), reason };
        let parsed = url::Url::parse(url).map_err(|e| err(e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                if parsed.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                    return Err(err("a file URL names a local path: file:///dir".into()));
                }
                let dir = parsed.to_file_path().map_err(|()| err("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| err(e.to_string()))?
                    .with_automatic_cleanup(true);
                Ok(ObjectBlobStore { inner: Arc::new(fs), local_root: Some(dir) })
            }
            "s3" => Err(err("S3 storage is not implemented yet (issue 17)".into())),
            other => Err(err(format!("unsupported scheme '{other}' (expected file)"))),
        }
    }

    /// fsync the file and directory of a local object.
    async fn sync_local(&self, key: &str) -> Result<(), BlobError> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let path = root.join(key);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&path)?.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Store(e.to_string()))?
        .map_err(|e| BlobError::Store(format!("fsync {key}: {e}")))
    }
}

impl BlobStore for ObjectBlobStore {
    fn put(&self, key: String, data: Bytes) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(async move {
            self.inner
                .put(&ObjectPath::from(key.as_str()), data.into())
                .await
                .map_err(|e| store_err(&key, e))?;
            self.sync_local(&key).await
        })
    }

    fn get(&self, key: String) -> BoxFuture<'_, Result<Bytes, BlobError>> {
        Box::pin(async move {
            let r = self.inner.get(&ObjectPath::from(key.as_str())).await.map_err(|e| store_err(&key, e))?;
            r.bytes().await.map_err(|e| store_err(&key, e))
        })
    }

    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(async move {
            match self.inner.delete(&ObjectPath::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(store_err(&key, e)),
            }
        })
    }

    fn list(&self, prefix: String) -> BoxFuture<'_, Result<Vec<ObjectInfo>, BlobError>> {
        Box::pin(async move {
            let prefix = ObjectPath::from(prefix.as_str());
            let mut stream = self.inner.list(Some(&prefix));
            let mut out = Vec::new();
            while let Some(item) = stream.next().await {
                let m = item.map_err(|e| store_err(prefix.as_ref(), e))?;
                out.push(ObjectInfo {
                    key: m.location.to_string(),
                    size: m.size,
                    modified_secs: m.last_modified.timestamp(),
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        for bad in ["", "blocks", "http://x/y", "file://host/dir", "s3://bucket/x"] {
            assert!(ObjectBlobStore::from_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/blocks", dir.path().display());
        let s = ObjectBlobStore::from_url(&url).unwrap();
        s.put("blocks/01/1_0".into(), Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(&s.get("blocks/01/1_0".into()).await.unwrap()[..], b"hello");
        let list = s.list("blocks".into()).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].key.as_str(), list[0].size), ("blocks/01/1_0", 5));
        assert!(matches!(s.get("blocks/01/2_0".into()).await, Err(BlobError::NotFound(_))));
        s.delete("blocks/01/1_0".into()).await.unwrap();
        s.delete("blocks/01/1_0".into()).await.unwrap();
        assert!(s.list("blocks".into()).await.unwrap().is_empty());
    }
}
