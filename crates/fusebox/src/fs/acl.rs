//! POSIX ACLs as the kernel passes them (`system.posix_acl_access` / `system.posix_acl_default`
//! xattrs, format version 2): parsing, inheritance on create, and keeping an access ACL and
//! the mode bits in step, as local file systems do (the kernel's posix_acl_create and
//! posix_acl_chmod). For file systems that store ACLs themselves (memfs, fusebox-dfs); with
//! FUSE_POSIX_ACL the kernel enforces them, the file system only keeps them right.

use super::Errno;

/// Name of the access ACL xattr.
pub const ACCESS: &str = "system.posix_acl_access";
/// Name of the default ACL xattr (directories only).
pub const DEFAULT: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// One ACL entry: tag, permission bits (rwx), and the uid/gid for USER/GROUP entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AclEntry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// A parsed ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<AclEntry>,
}

impl Acl {
    /// Parse the xattr value; EINVAL when it is not a well-formed version-2 ACL with exactly
    /// one USER_OBJ, GROUP_OBJ and OTHER entry (and a MASK whenever named entries exist).
    pub fn parse(value: &[u8]) -> Result<Acl, Errno> {
        let bad = Errno(libc::EINVAL);
        if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) {
            return Err(bad);
        }
        if u32::from_le_bytes(value[..4].try_into().expect("4 bytes")) != VERSION {
            return Err(bad);
        }
        let entries: Vec<AclEntry> = value[4..]
            .chunks_exact(8)
            .map(|c| AclEntry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let count = |tag| entries.iter().filter(|e| e.tag == tag).count();
        let known = [USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER];
        if entries.iter().any(|e| !known.contains(&e.tag) || e.perm & !7 != 0)
            || count(USER_OBJ) != 1
            || count(GROUP_OBJ) != 1
            || count(OTHER) != 1
            || count(MASK) > 1
            || (count(USER) + count(GROUP) > 0 && count(MASK) == 0)
        {
            return Err(bad);
        }
        Ok(Acl { entries })
    }

    /// The xattr value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = VERSION.to_le_bytes().to_vec();
        for e in &self.entries {
            v.extend_from_slice(&e.tag.to_le_bytes());
            v.extend_from_slice(&e.perm.to_le_bytes());
            v.extend_from_slice(&e.id.to_le_bytes());
        }
        v
    }

    /// True when the ACL says no more than the mode bits (only the three base entries).
    pub fn is_minimal(&self) -> bool {
        self.entries.iter().all(|e| matches!(e.tag, USER_OBJ | GROUP_OBJ | OTHER))
    }

    fn perm(&self, tag: u16) -> Option<u32> {
        self.entries.iter().find(|e| e.tag == tag).map(|e| e.perm as u32)
    }

    /// The permission bits (0o777) the ACL implies: owner, mask (or owning group), other.
    pub fn mode_bits(&self) -> u32 {
        let user = self.perm(USER_OBJ).unwrap_or(0);
        let group = self.perm(MASK).or_else(|| self.perm(GROUP_OBJ)).unwrap_or(0);
        let other = self.perm(OTHER).unwrap_or(0);
        user << 6 | group << 3 | other
    }

    /// chmod: the owner, mask (or owning group) and other entries take the new mode's bits.
    pub fn chmod(&mut self, mode: u32) {
        let has_mask = self.perm(MASK).is_some();
        for e in &mut self.entries {
            match e.tag {
                USER_OBJ => e.perm = ((mode >> 6) & 7) as u16,
                MASK => e.perm = ((mode >> 3) & 7) as u16,
                GROUP_OBJ if !has_mask => e.perm = ((mode >> 3) & 7) as u16,
                OTHER => e.perm = (mode & 7) as u16,
                _ => {}
            }
        }
    }

    /// A new node under a directory whose default ACL is `self`, created with `mode` (no
    /// umask: the default ACL replaces it): the node's access ACL (None when it says no more
    /// than the mode bits) and its mode.
    pub fn inherit(&self, mode: u32) -> (Option<Acl>, u32) {
        let mut acl = self.clone();
        let has_mask = acl.perm(MASK).is_some();
        for e in &mut acl.entries {
            match e.tag {
                USER_OBJ => e.perm &= ((mode >> 6) & 7) as u16,
                MASK => e.perm &= ((mode >> 3) & 7) as u16,
                GROUP_OBJ if !has_mask => e.perm &= ((mode >> 3) & 7) as u16,
                OTHER => e.perm &= (mode & 7) as u16,
                _ => {}
            }
        }
        let mode = (mode & !0o777) | acl.mode_bits();
        ((!acl.is_minimal()).then_some(acl), mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Acl {
        Acl { entries: entries.iter().map(|&(tag, perm, id)| AclEntry { tag, perm, id }).collect() }
    }

    #[test]
    fn round_trips_and_rejects_malformed_values() {
        let a = acl(&[(USER_OBJ, 7, 0), (USER, 5, 65534), (GROUP_OBJ, 5, 0), (MASK, 7, 0), (OTHER, 0, 0)]);
        assert_eq!(Acl::parse(&a.to_bytes()).unwrap(), a);
        assert!(Acl::parse(&[]).is_err());
        assert!(Acl::parse(&[1, 0, 0, 0]).is_err(), "wrong version");
        let mut bytes = a.to_bytes();
        bytes.push(0);
        assert!(Acl::parse(&bytes).is_err(), "truncated entry");
        let no_mask = acl(&[(USER_OBJ, 7, 0), (USER, 5, 65534), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]);
        assert!(Acl::parse(&no_mask.to_bytes()).is_err(), "named entry without a mask");
        let no_other = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0)]);
        assert!(Acl::parse(&no_other.to_bytes()).is_err());
    }

    #[test]
    fn inherit_masks_with_the_create_mode_and_ignores_no_named_entry() {
        let default =
            acl(&[(USER_OBJ, 7, 0), (USER, 5, 65534), (GROUP_OBJ, 7, 0), (MASK, 7, 0), (OTHER, 7, 0)]);
        let (access, mode) = default.inherit(libc::S_IFREG | 0o666);
        assert_eq!(mode, libc::S_IFREG | 0o666);
        let access = access.expect("named entry: not minimal");
        assert_eq!(access.perm(USER), Some(5), "named entries are not masked by the mode");
        assert_eq!(access.perm(MASK), Some(6));
        let minimal = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]);
        assert_eq!(minimal.inherit(0o777), (None, 0o750));
    }

    #[test]
    fn chmod_updates_owner_mask_and_other() {
        let mut a = acl(&[(USER_OBJ, 7, 0), (USER, 7, 1), (GROUP_OBJ, 7, 0), (MASK, 7, 0), (OTHER, 7, 0)]);
        a.chmod(0o640);
        assert_eq!(a.mode_bits(), 0o640);
        assert_eq!(a.perm(GROUP_OBJ), Some(7), "with a mask, the owning group entry is kept");
        let mut b = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 7, 0), (OTHER, 7, 0)]);
        b.chmod(0o604);
        assert_eq!(b.mode_bits(), 0o604);
    }
}
