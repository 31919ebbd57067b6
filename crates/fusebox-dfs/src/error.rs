//! Error types of the metadata engine and the block store.

use fusebox::Errno;

/// An error of a [`MetaStore`](crate::meta::MetaStore) operation.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A POSIX outcome of the operation (ENOENT, EEXIST, ENOTEMPTY, …), passed to the caller.
    #[error("{}", std::io::Error::from_raw_os_error(.0.0))]
    Fs(Errno),
    /// The database failed (I/O, locking, constraint): the operation did not happen.
    #[error("metadata database: {0}")]
    Engine(String),
    /// The transaction conflicted with another client's and may succeed when run again
    /// (engines retry it a bounded number of times first).
    #[error("metadata database: conflict with another client: {0}")]
    Conflict(String),
    /// The database does not hold a fusebox-dfs file system, or holds one we cannot use.
    #[error("{0}")]
    Format(String),
    /// Stored metadata breaks an invariant (a dentry without inode, a negative size, …).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// What an operation assumed of the stored metadata no longer held (another client changed
    /// it): nothing happened, and the caller takes the way that assumes nothing.
    #[error("metadata changed since it was last read: {0}")]
    Changed(String),
}

impl From<Errno> for MetaError {
    fn from(e: Errno) -> Self {
        MetaError::Fs(e)
    }
}

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        MetaError::Engine(e.to_string())
    }
}

impl MetaError {
    /// The errno a FUSE caller gets: the POSIX outcome itself, EIO for engine failures (logged).
    pub fn errno(&self) -> Errno {
        match self {
            MetaError::Fs(e) => *e,
            other => {
                tracing::error!(error = %other, "metadata operation failed");
                Errno::EIO
            }
        }
    }
}

/// An error of a [`BlobStore`](crate::blob::BlobStore) operation.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The object does not exist.
    #[error("object {0} not found")]
    NotFound(String),
    /// Any other failure of the store (network, permissions, disk).
    #[error("object store: {0}")]
    Store(String),
}

/// A malformed META_URL or DATA_URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} URL '{url}': {reason}")]
pub struct UrlError {
    /// Which URL ("metadata" or "storage").
    pub what: &'static str,
    /// The URL as given.
    pub url: String,
    /// Why it was rejected.
    pub reason: String,
}
