//! The block store: immutable objects holding file data, behind the [`BlobStore`] trait.
//! [`ObjectBlobStore`] implements it with the `object_store` crate: a local directory
//! (`file:///dir`) or an S3 bucket (`s3://bucket[/prefix]?endpoint=…&region=…`).
//!
//! S3 requests are bounded in time: 5 s to connect, 60 s per request, at most 3 retries within
//! 15 s; then the operation fails (EIO to the caller). Credentials come from the environment
//! as the AWS tools read them (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, web identity, container or instance credentials), never from the URL;
//! `anonymous=true` sends unsigned requests (a bucket open to anyone). The bucket, prefix,
//! endpoint and region come only from the URL (an `AWS_REGION` is used when it names none).

use crate::error::{BlobError, UrlError};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for a connection to the object store.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a single request (a 4 MiB block up or down) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a failed request, all within [`RETRY_WINDOW`].
const RETRIES: usize = 3;
/// Time after the first attempt in which a request is retried.
const RETRY_WINDOW: Duration = Duration::from_secs(15);

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

/// The S3 store `url` names (see [`ObjectBlobStore::from_url`]).
fn s3_from_url(url: &url::Url) -> Result<ObjectBlobStore, String> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as Key};
    use object_store::{BackoffConfig, ClientOptions, RetryConfig};
    let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or("expected s3://bucket[/prefix]")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials belong in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not in the URL".into());
    }
    // Where the data lives comes only from the URL (it is stored in the metadata, so every
    // mount must read it the same way); from the environment only how to authenticate.
    let mut b = AmazonS3Builder::new().with_bucket_name(bucket).with_virtual_hosted_style_request(false);
    let mut region_from_env = None;
    for (k, v) in std::env::vars() {
        let Some(lower) = k.strip_prefix("AWS_").map(|_| k.to_ascii_lowercase()) else { continue };
        match lower.parse::<Key>() {
            Ok(
                key @ (Key::AccessKeyId
                | Key::SecretAccessKey
                | Key::Token
                | Key::ContainerCredentialsRelativeUri
                | Key::ContainerCredentialsFullUri
                | Key::ContainerAuthorizationTokenFile
                | Key::WebIdentityTokenFile
                | Key::RoleArn
                | Key::RoleSessionName
                | Key::StsEndpoint
                | Key::MetadataEndpoint
                | Key::ImdsV1Fallback),
            ) => b = b.with_config(key, v),
            Ok(Key::Region | Key::DefaultRegion) => region_from_env = region_from_env.or(Some(v)),
            _ => {}
        }
    }
    let (mut endpoint, mut region, mut anonymous) = (None, None, false);
    for (k, v) in url.query_pairs() {
        match &*k {
            "endpoint" => {
                let e = url::Url::parse(&v).map_err(|e| format!("endpoint '{v}': {e}"))?;
                if !matches!(e.scheme(), "http" | "https") {
                    return Err(format!("endpoint '{v}' must be an http:// or https:// URL"));
                }
                endpoint = Some((v.to_string(), e.scheme() == "http"));
            }
            "region" => region = Some(v.to_string()),
            "anonymous" => {
                anonymous = match &*v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("anonymous={v}: expected true or false")),
                }
            }
            other => {
                return Err(format!("unknown parameter '{other}' (expected endpoint, region, anonymous)"))
            }
        }
    }
    let mut options =
        ClientOptions::new().with_connect_timeout(CONNECT_TIMEOUT).with_timeout(REQUEST_TIMEOUT);
    if let Some((e, http)) = &endpoint {
        b = b.with_endpoint(e.clone());
        options = options.with_allow_http(*http);
    }
    if let Some(r) = region.or(region_from_env) {
        b = b.with_region(r);
    }
    let retry =
        RetryConfig { backoff: BackoffConfig::default(), max_retries: RETRIES, retry_timeout: RETRY_WINDOW };
    let s3 = b
        .with_skip_signature(anonymous)
        .with_retry(retry)
        .with_client_options(options)
        .build()
        .map_err(|e| e.to_string())?;
    let prefix = url.path().trim_matches('/');
    let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
    };
    let at = endpoint.map_or(String::new(), |(e, _)| format!(" at {e}"));
    Ok(ObjectBlobStore { inner, local_root: None, name: format!("bucket {bucket}{at}") })
}

/// A [`BlobStore`] on top of an `object_store` implementation.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    /// For a local directory: its path, so puts can be fsynced (object_store does not).
    local_root: Option<PathBuf>,
    /// What the store is, for messages (`bucket b at http://…`, a directory path).
    name: String,
}

impl ObjectBlobStore {
    /// Wrap any `object_store` (tests use `object_store::memory::InMemory`).
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        ObjectBlobStore { inner, local_root: None, name: "object store".into() }
    }

    /// The store a storage URL names: `file:///absolute/dir` (created if missing) or
    /// `s3://bucket[/prefix]` with optional query parameters `endpoint` (an S3-compatible
    /// server such as SeaweedFS or MinIO; path-style requests) and `region`. The bucket is not
    /// contacted here: [`Self::check`] does that.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let err = |reason: String| UrlError { what: "storage", url: crate::url::redact(url), reason };
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
                let name = dir.display().to_string();
                Ok(ObjectBlobStore { inner: Arc::new(fs), local_root: Some(dir), name })
            }
            "s3" => s3_from_url(&parsed).map_err(err),
            other => Err(err(format!("unsupported scheme '{other}' (expected file or s3)"))),
        }
    }

    /// Whether the store is a directory on this machine (reading a block from it costs what
    /// reading it from the block cache would).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Check that the store answers and (S3) that the bucket exists: one listing request.
    pub async fn check(&self) -> Result<(), BlobError> {
        let prefix = ObjectPath::from("blocks");
        match self.inner.list_with_delimiter(Some(&prefix)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                if text.contains("NoSuchBucket") {
                    return Err(BlobError::Store(format!("{}: the bucket does not exist", self.name)));
                }
                Err(BlobError::Store(format!("{}: {text}", self.name)))
            }
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

/// Largest piece of a block handed to one write(2) (local directory, block cache). The kernel
/// on many hosts runs without preemption in system calls (PREEMPT_NONE): copying a whole
/// 4 MiB block into the page cache in one write(2) keeps the CPU for milliseconds, and a
/// stat's threads that wake on that CPU wait for it, whatever the writer's priority.
pub(crate) const WRITE_PIECE: usize = 128 << 10;

/// `data` as views of at most [`WRITE_PIECE`] bytes each (no copy).
pub(crate) fn write_pieces(data: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    (0..data.len()).step_by(WRITE_PIECE).map(|at| data.slice(at..(at + WRITE_PIECE).min(data.len())))
}

impl BlobStore for ObjectBlobStore {
    fn put(&self, key: String, data: Bytes) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(async move {
            // One payload of several pieces: the local store writes each with its own write(2).
            let payload: object_store::PutPayload = write_pieces(&data).collect();
            self.inner.put(&ObjectPath::from(key.as_str()), payload).await.map_err(|e| store_err(&key, e))?;
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
    fn write_pieces_cover_a_block_without_copies() {
        let data = Bytes::from((0..(WRITE_PIECE * 2 + 5)).map(|i| i as u8).collect::<Vec<u8>>());
        let pieces: Vec<Bytes> = write_pieces(&data).collect();
        assert_eq!(pieces.iter().map(Bytes::len).collect::<Vec<_>>(), [WRITE_PIECE, WRITE_PIECE, 5]);
        assert_eq!(pieces.concat(), data.to_vec());
        assert_eq!(pieces[1].as_ptr(), data[WRITE_PIECE..].as_ptr(), "a view, not a copy");
        assert_eq!(write_pieces(&Bytes::new()).count(), 0);
    }

    #[test]
    fn urls_are_checked() {
        for (bad, why) in [
            ("", "relative URL"),
            ("blocks", "relative URL"),
            ("http://x/y", "unsupported scheme"),
            ("file://host/dir", "local path"),
            ("s3:///x", "s3://bucket"),
            ("s3://key:secret@bucket", "AWS_ACCESS_KEY_ID"),
            ("s3://b?endpoint=ftp://h", "http:// or https://"),
            ("s3://b?endpont=http://h", "unknown parameter 'endpont'"),
            ("s3://b?anonymous=maybe", "expected true or false"),
        ] {
            let e = ObjectBlobStore::from_url(bad).unwrap_err().to_string();
            assert!(e.contains(why) && !e.contains("secret"), "{bad}: {e}");
        }
        assert!(ObjectBlobStore::from_url(
            "s3://bucket/some/prefix?endpoint=http://127.0.0.1:8333&region=eu"
        )
        .is_ok());
    }

    #[tokio::test]
    async fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/blocks", dir.path().display());
        round_trip(&ObjectBlobStore::from_url(&url).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_store_round_trip_and_checks() {
        let Some(server) = tokio::task::spawn_blocking(crate::testing::s3_server::shared).await.unwrap()
        else {
            return;
        };
        let url = tokio::task::spawn_blocking(|| server.new_bucket()).await.unwrap();
        let s = ObjectBlobStore::from_url(&url).unwrap();
        s.check().await.unwrap();
        round_trip(&s).await;
        // A bucket that does not exist, and a server that does not answer: clear errors, soon.
        let missing = ObjectBlobStore::from_url(&server.url("no-such-bucket")).unwrap();
        let e = missing.check().await.unwrap_err().to_string();
        assert!(e.contains("bucket no-such-bucket") && e.contains("does not exist"), "{e}");
        let dead = ObjectBlobStore::from_url("s3://b?endpoint=http://127.0.0.1:1&anonymous=true").unwrap();
        let t = std::time::Instant::now();
        let e = dead.check().await.unwrap_err().to_string();
        assert!(e.contains("bucket b at http://127.0.0.1:1"), "{e}");
        assert!(t.elapsed() < RETRY_WINDOW * 3, "{:?}", t.elapsed());
    }

    async fn round_trip(s: &ObjectBlobStore) {
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
