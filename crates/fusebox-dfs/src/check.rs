//! `fusebox dfs fsck` and `fusebox dfs gc`: compare the blocks the metadata references with the
//! objects in the block store.
//!
//! gc lists the objects *before* it reads the metadata, so an object committed in between counts
//! as referenced. An object uploaded but not yet committed (a write session still open, or a
//! crash between upload and commit) is unreferenced: only objects older than the grace period
//! are deleted, so the grace must exceed the longest write session of a live mount.

use crate::blob::{BlobStore, ObjectInfo};
use crate::error::{BlobError, MetaError};
use crate::layout::{block_key, parse_block_key};
use crate::meta::{BlockRef, MetaStore};
use std::collections::HashMap;
use std::sync::Arc;

/// Key prefix of block objects.
pub const BLOCK_PREFIX: &str = "blocks";

/// An error of fsck or gc.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading or repairing the metadata failed.
    #[error("checking the metadata")]
    Meta(#[from] MetaError),
    /// Listing, reading or deleting objects failed.
    #[error("checking the objects")]
    Blob(#[from] BlobError),
}

/// What fsck found.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Blocks the metadata references.
    pub referenced: usize,
    /// Referenced blocks that are not in the store (errors).
    pub missing: Vec<BlockRef>,
    /// Referenced blocks whose object has another size (errors): (block, actual size).
    pub wrong_size: Vec<(BlockRef, u64)>,
    /// Block objects nothing references (garbage, removed by gc).
    pub garbage: Vec<ObjectInfo>,
    /// Objects under `blocks/` whose key fusebox-dfs did not write (left alone).
    pub foreign: Vec<String>,
}

impl FsckReport {
    /// True when metadata and objects agree (garbage is not an error).
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.wrong_size.is_empty()
    }
}

/// Every block the metadata references, read on tokio's blocking pool (an engine's client
/// may block on a runtime of its own, which it may not do inside this one).
async fn referenced_blocks(meta: &Arc<dyn MetaStore>) -> Result<Vec<BlockRef>, CheckError> {
    let meta = meta.clone();
    match tokio::task::spawn_blocking(move || meta.referenced_blocks()).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(MetaError::Engine(format!("reading the referenced blocks: {e}")).into()),
    }
}

/// Split listed objects into blocks (by slice id and index) and foreign keys.
fn classify(objects: Vec<ObjectInfo>) -> (HashMap<(u64, u64), ObjectInfo>, Vec<String>) {
    let (mut blocks, mut foreign) = (HashMap::new(), Vec::new());
    for o in objects {
        match parse_block_key(&o.key) {
            Some(id) => {
                blocks.insert(id, o);
            }
            None => foreign.push(o.key),
        }
    }
    (blocks, foreign)
}

/// Check that every block the metadata references exists with the right size, and list the
/// objects nothing references.
pub async fn fsck(meta: &Arc<dyn MetaStore>, blobs: &dyn BlobStore) -> Result<FsckReport, CheckError> {
    let (mut objects, foreign) = classify(blobs.list(BLOCK_PREFIX.into()).await?);
    let refs = referenced_blocks(meta).await?;
    let mut report = FsckReport { referenced: refs.len(), foreign, ..Default::default() };
    for r in refs {
        match objects.remove(&(r.slice_id, r.index)) {
            None => report.missing.push(r),
            Some(o) if o.size != r.len => report.wrong_size.push((r, o.size)),
            Some(_) => {}
        }
    }
    report.garbage = objects.into_values().collect();
    report.garbage.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(report)
}

/// What gc did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects deleted.
    pub deleted: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub young: u64,
}

/// Delete block objects nothing references that were last modified more than `grace_secs`
/// before `now_secs`.
pub async fn gc(
    meta: &Arc<dyn MetaStore>, blobs: &dyn BlobStore, grace_secs: u64, now_secs: i64,
) -> Result<GcReport, CheckError> {
    // Objects first, then metadata: see the module doc.
    let (objects, _) = classify(blobs.list(BLOCK_PREFIX.into()).await?);
    let refs: std::collections::HashSet<(u64, u64)> =
        referenced_blocks(meta).await?.into_iter().map(|r| (r.slice_id, r.index)).collect();
    let mut report = GcReport::default();
    for ((id, index), o) in objects {
        if refs.contains(&(id, index)) {
            continue;
        }
        if o.modified_secs > now_secs.saturating_sub(grace_secs as i64) {
            report.young += 1;
            continue;
        }
        blobs.delete(block_key(id, index)).await?;
        tracing::debug!(key = o.key, "deleted unreferenced block");
        report.deleted += 1;
        report.bytes += o.size;
    }
    Ok(report)
}
