//! The metadata engine: inodes, directory entries, xattrs, symlink targets and the slice lists
//! of files, behind the [`MetaStore`] trait.
//!
//! Every method is one transaction: it either happens completely or not at all, so a crashed
//! daemon or a failed statement never leaves half a rename or a link count off by one.
//! The trait is synchronous (the SQLite engine is a blocking library); the file system calls
//! it from tokio's blocking pool (`docs/ARCHITECTURE.md`, "fusebox-dfs").

pub mod coord;
mod pg_batch;
mod pg_conn;
pub mod postgres;
pub mod schema;
pub mod sql;
pub mod sqlite;
pub mod store;

use crate::error::MetaError;
use bytes::Bytes;
use fusebox::Errno;

/// Result of a metadata operation.
pub type MetaResult<T> = Result<T, MetaError>;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// Longest name of a directory entry.
pub const NAME_MAX: usize = 255;

/// Attributes of an inode as stored (times in nanoseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attr {
    /// Inode number (also the FUSE node id).
    pub ino: u64,
    /// File type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device node.
    pub rdev: u32,
    /// Size in bytes (regular files: end of data; symlinks: target length).
    pub size: u64,
    /// Last access.
    pub atime_ns: i64,
    /// Last data change.
    pub mtime_ns: i64,
    /// Last inode change.
    pub ctime_ns: i64,
    /// Number of names (directories: 2 + subdirectories).
    pub nlink: u32,
    /// Bumped by every change of the inode or its data.
    pub version: u64,
    /// Generation of the inode number (inode numbers are never reused, so it stays 0 today).
    pub generation: u64,
}

impl Attr {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// An inode with the two xattrs whose semantics tie them to the mode (POSIX ACLs), handed to
/// the closures of [`MetaStore::update`] and [`MetaStore::create`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inode {
    /// The attributes.
    pub attr: Attr,
    /// `system.posix_acl_access`, if set.
    pub acl_access: Option<Vec<u8>>,
    /// `system.posix_acl_default`, if set.
    pub acl_default: Option<Vec<u8>>,
}

/// What [`MetaStore::create`] makes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewNode {
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number.
    pub rdev: u32,
    /// Symlink target (symlinks only).
    pub symlink: Option<Vec<u8>>,
    /// Initial xattrs (inherited ACLs).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One directory entry returned by [`MetaStore::readdir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirItem {
    /// Stable cookie of this entry: pass it back to continue after it.
    pub cookie: u64,
    /// The name.
    pub name: Vec<u8>,
    /// The entry's inode.
    pub attr: Attr,
}

/// One slice of a chunk as stored: `len` bytes at `pos` in the chunk, taken from offset `off`
/// of the data of slice `slice_id` (`slice_size` bytes in all: in its block objects, or in
/// `data` for a small slice kept in the metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRef {
    /// Commit order: a higher `seq` was written later and wins where slices overlap.
    pub seq: u64,
    /// Start within the chunk.
    pub pos: u64,
    /// The slice's data (its block objects).
    pub slice_id: u64,
    /// Bytes of data the slice holds.
    pub slice_size: u64,
    /// Offset into the slice's data.
    pub off: u64,
    /// Length used.
    pub len: u64,
    /// The slice's bytes when they are kept in the metadata (no block objects).
    pub data: Option<Bytes>,
}

/// A slice to add with [`MetaStore::commit`]: its blocks must already be in the block store,
/// or its bytes are in `data` (kept in the metadata row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSlice {
    /// Chunk index in the file.
    pub chunk: u64,
    /// Start within the chunk.
    pub pos: u64,
    /// Slice id from [`MetaStore::new_slice_id`].
    pub slice_id: u64,
    /// Bytes of data (the whole slice is used).
    pub len: u64,
    /// The bytes themselves, for a slice kept in the metadata (then `len` is their length).
    pub data: Option<Bytes>,
}

/// A block object referenced by metadata, as fsck and gc see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRef {
    /// The slice.
    pub slice_id: u64,
    /// Block index within the slice.
    pub index: u64,
    /// Expected object size.
    pub len: u64,
}

/// What `fusebox dfs format` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatInfo {
    /// Version of the metadata schema.
    pub version: u32,
    /// Where the data blocks live (`file:///…`).
    pub storage_url: String,
}

/// Usage counters for statfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Number of inodes.
    pub inodes: u64,
    /// Sum of regular file sizes.
    pub bytes: u64,
}

/// Who owns the whiteout RENAME_WHITEOUT leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A metadata engine. Each method is one transaction.
pub trait MetaStore: coord::Coordination + Send + Sync + 'static {
    /// The stored format version and storage URL.
    fn info(&self) -> MetaResult<FormatInfo>;
    /// True if a short read (one lookup or getattr) is served from this machine's memory or
    /// disk, never over a network: the file system then runs it on the runtime thread itself
    /// instead of handing it to the blocking pool (a thread hop that costs a wakeup, and under
    /// load milliseconds).
    fn reads_are_local(&self) -> bool;
    /// Put every committed change on stable storage (fsync(2), fsyncdir). A commit of file data
    /// ([`Self::commit`]) is durable by itself, with every change before it.
    fn sync(&self) -> MetaResult<()>;
    /// The inode `name` in directory `parent` names (no "." or ".."; see [`Self::parent_of`]).
    fn lookup(&self, parent: u64, name: &[u8]) -> MetaResult<Attr>;
    /// The directory holding directory `ino` (the root is its own parent).
    fn parent_of(&self, ino: u64) -> MetaResult<u64>;
    /// The attributes of `ino`.
    fn getattr(&self, ino: u64) -> MetaResult<Attr>;
    /// Change `ino`: `f` edits the inode (attributes and ACLs) and may refuse with an errno.
    /// The version is bumped; a smaller size cuts the file's slices in the same transaction.
    fn update(&self, ino: u64, f: &mut dyn FnMut(&mut Inode) -> Result<(), Errno>) -> MetaResult<Attr>;
    /// Create `name` in `parent` as `f` describes it, given the parent inode (for setgid and
    /// default-ACL inheritance). EEXIST if the name exists.
    fn create(
        &self, parent: u64, name: &[u8], f: &mut dyn FnMut(&Inode) -> Result<NewNode, Errno>,
    ) -> MetaResult<Attr>;
    /// [`Self::create`] of `node` in one round trip, for a directory the caller knows: `parent`
    /// was at version `parent_version` and had no default ACL when the caller computed
    /// `node` from it. `Ok(None)` when that no longer holds or the name exists (nothing was
    /// created; [`Self::create`] tells what happened), or when the engine has no round trip
    /// to save.
    fn create_in_known_dir(
        &self, parent: u64, parent_version: u64, name: &[u8], node: &NewNode,
    ) -> MetaResult<Option<Attr>>;
    /// Add the name `newname` in `newparent` for the non-directory `ino`.
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> MetaResult<Attr>;
    /// Remove a non-directory name; returns the inode as it is afterwards (nlink may be 0:
    /// then delete it with [`Self::remove_if_orphan`] once nobody has it open).
    fn unlink(&self, parent: u64, name: &[u8]) -> MetaResult<Attr>;
    /// Remove an empty directory; returns it (nlink 0).
    fn rmdir(&self, parent: u64, name: &[u8]) -> MetaResult<Attr>;
    /// Rename with RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT semantics; returns the
    /// replaced inode, if a name was replaced (its nlink as afterwards).
    fn rename(
        &self, parent: u64, name: &[u8], newparent: u64, newname: &[u8], flags: u32, caller: Caller,
    ) -> MetaResult<Option<Attr>>;
    /// The target of symlink `ino`.
    fn readlink(&self, ino: u64) -> MetaResult<Vec<u8>>;
    /// Up to `limit` entries of directory `ino` with a cookie above `after`, in cookie order.
    fn readdir(&self, ino: u64, after: u64, limit: usize) -> MetaResult<Vec<DirItem>>;
    /// The value of xattr `name`.
    fn get_xattr(&self, ino: u64, name: &[u8]) -> MetaResult<Vec<u8>>;
    /// The names of all xattrs.
    fn list_xattr(&self, ino: u64) -> MetaResult<Vec<Vec<u8>>>;
    /// Set xattr `name` (`flags`: XATTR_CREATE, XATTR_REPLACE); bumps ctime.
    fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> MetaResult<()>;
    /// Remove xattr `name` (ENODATA if absent); bumps ctime.
    fn remove_xattr(&self, ino: u64, name: &[u8]) -> MetaResult<()>;
    /// A fresh slice id, never handed out before (also after a crash).
    fn new_slice_id(&self) -> MetaResult<u64>;
    /// The slices of chunk `chunk` of `ino`, oldest first.
    fn slices(&self, ino: u64, chunk: u64) -> MetaResult<Vec<SliceRef>>;
    /// Commit a write session of regular file `ino`: add `slices` (after everything already
    /// stored), set the size to at least `end`, set mtime/ctime to `mtime_ns` if given, bump
    /// the version. A file deleted meanwhile (by another mount) is left alone: its writes go
    /// nowhere, as writes to an unlinked file do.
    fn commit(&self, ino: u64, slices: &[NewSlice], end: u64, mtime_ns: Option<i64>) -> MetaResult<()>;
    /// Delete `ino` with its xattrs, symlink target and slices if it has no name left;
    /// true if it was deleted. Its block objects become garbage for `fusebox dfs gc`.
    fn remove_if_orphan(&self, ino: u64) -> MetaResult<bool>;
    /// Delete every inode without a name that no live session keeps (left by a daemon that
    /// died with unlinked files open, once its session expired); returns how many.
    fn reclaim_orphans(&self) -> MetaResult<u64>;
    /// Inode count and bytes used.
    fn usage(&self) -> MetaResult<Usage>;
    /// Every block object the slices reference (fsck, gc).
    fn referenced_blocks(&self) -> MetaResult<Vec<BlockRef>>;
    /// Chunks made of at least `min_slices` slices, as (inode, chunk), most fragmented first,
    /// at most `limit` of them: what compaction should merge.
    fn fragmented_chunks(&self, min_slices: u64, limit: usize) -> MetaResult<Vec<(u64, u64)>>;
    /// Compaction's commit: if chunk `chunk` of `ino` still has exactly the slices `old` (as
    /// [`MetaStore::slices`] listed them: no commit, truncation or deletion since), replace them
    /// with `new` (whose blocks are already stored) and return true; otherwise change nothing
    /// and return false. Size, times and version stay: the file's bytes are the same.
    fn replace_slices(&self, ino: u64, chunk: u64, old: &[SliceRef], new: &[NewSlice]) -> MetaResult<bool>;
}

#[cfg(test)]
mod tests;
