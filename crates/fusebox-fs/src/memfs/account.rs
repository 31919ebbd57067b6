//! What memfs charges against its capacity (`-o size=`) besides file data: an estimate of the
//! memory each name, inode and extended attribute holds, so that no user can grow the daemon
//! without bound through metadata (a mount with `allow_other` faces every local user).

use std::ffi::OsStr;

/// Charged per inode (its attributes, table slot and locks).
pub const NODE: u64 = 256;
/// Charged per directory entry on top of its name (two maps and a cookie).
pub const ENTRY: u64 = 96;
/// Charged per extended attribute on top of its name and value.
pub const XATTR: u64 = 64;
/// Names and values of one inode's extended attributes may hold at most this much (ext4
/// allows one block without `ea_inode`); setting more fails with ENOSPC, which callers of
/// setxattr(2) handle as "no room for attributes".
pub const XATTRS_PER_INODE: u64 = 256 * 1024;

/// The charge for directory entry `name`.
pub fn entry(name: &OsStr) -> u64 {
    name.len() as u64 + ENTRY
}

/// The charge for an extended attribute `name` with a value of `len` bytes.
pub fn xattr(name: &OsStr, len: usize) -> u64 {
    name.len() as u64 + len as u64 + XATTR
}

/// The charge for an inode itself, with `extra` bytes of content that is not file data (a
/// symlink's target).
pub fn node(extra: usize) -> u64 {
    NODE + extra as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_grow_with_what_is_stored() {
        assert_eq!(entry(OsStr::new("abc")), 3 + ENTRY);
        assert_eq!(xattr(OsStr::new("user.a"), 100), 6 + 100 + XATTR);
        assert_eq!(node(4000), NODE + 4000);
    }
}
