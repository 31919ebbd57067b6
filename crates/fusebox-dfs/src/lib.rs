//! fusebox-dfs: a distributed file system for fusebox. Metadata (inodes, names, xattrs, the
//! slice lists of files) lives in a SQL database behind [`meta::MetaStore`] (SQLite or PostgreSQL);
//! file data lives as immutable block objects behind [`blob::BlobStore`] (a local directory
//! or an S3 bucket through `object_store`). [`fs::DfsFs`] serves both through fusebox's async API.
//!
//! Layout of file data ([`layout`]): a file is cut into 64 MiB chunks; each chunk holds slices
//! (one per committed write session and range), newest over oldest; a slice's data is stored
//! as block objects of at most 4 MiB, which are never modified.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod blob;
pub mod cache;
pub mod check;
pub mod error;
pub mod fs;
pub mod layout;
pub mod meta;
pub mod recent;
#[cfg(test)]
pub mod testing;
pub mod url;
pub mod writer;

pub use blob::{BlobStore, ObjectBlobStore};
pub use error::{BlobError, MetaError, UrlError};
pub use fs::{CompactReport, DfsFs, DfsOptions};
pub use meta::postgres::PostgresMeta;
pub use meta::sqlite::SqliteMeta;
pub use meta::MetaStore;
