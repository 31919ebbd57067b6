//! Inodes of memfs: attributes, xattrs and content (file data, directory entries, symlink).

use super::data::SparseData;
use super::xattrs::Xattrs;
use fusebox::fs::fileattr::{APPEND_FL, IMMUTABLE_FL};
use fusebox::fs::{setid_bits_to_clear, FileAttr, FileType, RequestInfo, Timespec};
use fusebox::Errno;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::ops::Bound::{Excluded, Unbounded};

/// A directory's entries with stable readdir cookies: a cookie is assigned once per entry and
/// never reused, so a listing in progress sees every surviving name exactly once.
#[derive(Debug, Default)]
pub struct DirEntries {
    by_name: HashMap<OsString, u64>,
    by_cookie: BTreeMap<u64, (OsString, u64)>,
    next_cookie: u64,
    /// Node id of the parent directory (itself for the root).
    pub parent: u64,
}

/// Cookies 1 and 2 are "." and ".."; real entries start here.
pub const FIRST_COOKIE: u64 = 3;

impl DirEntries {
    /// An empty directory inside `parent`.
    pub fn new(parent: u64) -> Self {
        DirEntries { parent, next_cookie: FIRST_COOKIE, ..Default::default() }
    }
    /// The node id `name` refers to.
    pub fn get(&self, name: &OsStr) -> Option<u64> {
        self.by_name.get(name).map(|c| self.by_cookie[c].1)
    }
    /// Add or replace `name`.
    pub fn insert(&mut self, name: &OsStr, ino: u64) {
        self.remove(name);
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        self.by_name.insert(name.to_os_string(), cookie);
        self.by_cookie.insert(cookie, (name.to_os_string(), ino));
    }
    /// Remove `name`, returning the node id it referred to.
    pub fn remove(&mut self, name: &OsStr) -> Option<u64> {
        let cookie = self.by_name.remove(name)?;
        self.by_cookie.remove(&cookie).map(|(_, ino)| ino)
    }
    /// Number of entries (without "." and "..").
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
    /// True when the directory has no entries.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
    /// Entries with a cookie greater than `after`, in cookie order.
    pub fn after(&self, after: u64) -> impl Iterator<Item = (u64, &OsStr, u64)> {
        self.by_cookie.range((Excluded(after), Unbounded)).map(|(c, (n, i))| (*c, n.as_os_str(), *i))
    }
}

/// What an inode holds.
#[derive(Debug)]
pub enum Content {
    /// Regular file bytes.
    File(SparseData),
    /// Directory entries.
    Dir(DirEntries),
    /// Symlink target.
    Symlink(OsString),
    /// Device, FIFO or socket: no content.
    Special,
}

/// One inode.
#[derive(Debug)]
pub struct Node {
    /// Attributes; `attr.size`/`blocks` of regular files are derived from the data.
    pub attr: FileAttr,
    /// Extended attributes.
    pub xattrs: Xattrs,
    /// The content.
    pub content: Content,
    /// Outstanding kernel references (LOOKUP count minus FORGETs).
    pub nlookup: u64,
    /// When the inode was created (statx's birth time).
    pub btime: Timespec,
    /// Inode flags (chattr): `fusebox::fs::fileattr::*_FL`, the ones memfs supports.
    pub flags: u32,
}

impl Node {
    /// A new node of `kind` with `mode` permission bits, owned by `uid:gid`, times = now.
    pub fn new(ino: u64, mode: u32, uid: u32, gid: u32, content: Content) -> Node {
        let now = Timespec::now();
        let nlink = if matches!(content, Content::Dir(_)) { 2 } else { 1 };
        Node {
            attr: FileAttr {
                ino,
                mode,
                nlink,
                uid,
                gid,
                atime: now,
                mtime: now,
                ctime: now,
                blksize: 4096,
                ..Default::default()
            },
            xattrs: Xattrs::default(),
            content,
            nlookup: 0,
            btime: now,
            flags: 0,
        }
    }

    /// The inode's type.
    pub fn kind(&self) -> FileType {
        self.attr.kind().unwrap_or(FileType::Regular)
    }

    /// Attributes with size and blocks filled in from the content.
    pub fn stat(&self) -> FileAttr {
        let mut a = self.attr;
        match &self.content {
            Content::File(d) => {
                a.size = d.size();
                a.blocks = d.allocated() / 512;
            }
            Content::Dir(d) => a.size = (d.len() as u64 + 2) * 32,
            Content::Symlink(t) => a.size = t.len() as u64,
            Content::Special => {}
        }
        a
    }

    /// Record a content change: mtime and ctime = now.
    pub fn touch_modified(&mut self) {
        let now = Timespec::now();
        self.attr.mtime = now;
        self.attr.ctime = now;
    }

    /// Record a metadata change: ctime = now.
    pub fn touch_changed(&mut self) {
        self.attr.ctime = Timespec::now();
    }

    /// EPERM when the inode is immutable: nothing in it or under it (a directory's entries)
    /// may change.
    pub fn check_not_immutable(&self) -> Result<(), Errno> {
        if self.flags & IMMUTABLE_FL != 0 {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// EPERM when the inode is immutable or append-only: its attributes, names, links and
    /// xattrs are fixed, and a directory's entries may not be removed.
    pub fn check_changeable(&self) -> Result<(), Errno> {
        if self.flags & (IMMUTABLE_FL | APPEND_FL) != 0 {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// True when the inode is append-only.
    pub fn append_only(&self) -> bool {
        self.flags & APPEND_FL != 0
    }

    /// Clear set-user-id, and set-group-id when group-executable (as a write by a
    /// non-owner or a truncate does).
    pub fn kill_suidgid(&mut self, caller: &RequestInfo) {
        let mode = self.attr.mode & !setid_bits_to_clear(self.attr.mode, self.attr.gid, caller);
        if mode != self.attr.mode {
            self.attr.mode = mode;
            self.touch_changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_stable_and_never_reused() {
        let mut d = DirEntries::new(1);
        d.insert(OsStr::new("a"), 10);
        d.insert(OsStr::new("b"), 11);
        d.remove(OsStr::new("a"));
        d.insert(OsStr::new("a"), 12);
        let v: Vec<_> = d.after(0).map(|(c, n, i)| (c, n.to_owned(), i)).collect();
        assert_eq!(v, vec![(4, "b".into(), 11), (5, "a".into(), 12)]);
        // A cookie at the very end of the range (the fuzzer's find) yields nothing.
        assert_eq!(d.after(u64::MAX).count(), 0);
    }
}
