//! Inode flags (chattr/lsattr) as they reach a file system: the kernel's fileattr path sends
//! them as FUSE_IOCTL on a private OPEN of the inode, `FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`
//! with a 4-byte argument (`unsigned int`, although the command number encodes `long`) or
//! `FS_IOC_FSGETXATTR` / `FS_IOC_FSSETXATTR` with a `struct fsxattr`. A SETFLAGS is preceded
//! by a GETFLAGS or FSGETXATTR (the VFS reads the old attributes first and checks the caller
//! may change them: owner, CAP_LINUX_IMMUTABLE for append-only and immutable).
//!
//! The kernel's FUSE inode never carries these flags, so the VFS enforces none of them: a file
//! system that offers append-only or immutable files refuses the changes itself (EPERM).

use super::IoctlArgs;
pub use crate::session::O_APPEND_CACHED;
pub use crate::sys::FSXATTR_SIZE;
use crate::Errno;

/// `FS_IOC_GETFLAGS` and its 32-bit twin `FS_IOC32_GETFLAGS`.
const GETFLAGS: [u32; 2] = [0x8008_6601, 0x8004_6601];
/// `FS_IOC_SETFLAGS` and its 32-bit twin `FS_IOC32_SETFLAGS`.
const SETFLAGS: [u32; 2] = [0x4008_6602, 0x4004_6602];
/// `FS_IOC_FSGETXATTR`.
const FSGETXATTR: u32 = 0x801c_581f;
/// `FS_IOC_FSSETXATTR`.
const FSSETXATTR: u32 = 0x401c_5820;

/// `FS_IMMUTABLE_FL`: no change at all (data, attributes, names, links, xattrs).
pub const IMMUTABLE_FL: u32 = 0x10;
/// `FS_APPEND_FL`: writes only at the end through an O_APPEND open; no truncation, rename,
/// unlink, link, attribute or xattr change.
pub const APPEND_FL: u32 = 0x20;
/// `FS_NODUMP_FL`: skipped by dump(8).
pub const NODUMP_FL: u32 = 0x40;
/// `FS_NOATIME_FL`: reads do not update atime.
pub const NOATIME_FL: u32 = 0x80;

/// The `fsx_xflags` bits of the same four flags (`FS_XFLAG_*`), in the order of
/// [`FLAG_PAIRS`].
const XFLAG_IMMUTABLE: u32 = 0x8;
const XFLAG_APPEND: u32 = 0x10;
const XFLAG_NOATIME: u32 = 0x40;
const XFLAG_NODUMP: u32 = 0x80;
/// Each inode flag with its `fsx_xflags` twin.
const FLAG_PAIRS: [(u32, u32); 4] = [
    (IMMUTABLE_FL, XFLAG_IMMUTABLE),
    (APPEND_FL, XFLAG_APPEND),
    (NODUMP_FL, XFLAG_NODUMP),
    (NOATIME_FL, XFLAG_NOATIME),
];

/// A fileattr command decoded from an IOCTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileattrCmd {
    /// `FS_IOC_GETFLAGS`: answer the flags as 4 bytes.
    GetFlags,
    /// `FS_IOC_SETFLAGS` with the new flags.
    SetFlags(u32),
    /// `FS_IOC_FSGETXATTR`: answer a `struct fsxattr`.
    GetXattr,
    /// `FS_IOC_FSSETXATTR` with the new `struct fsxattr`.
    SetXattr(Fsxattr),
}

impl FileattrCmd {
    /// Decode `args`; `None` when it is not one of the four commands, EINVAL when its argument
    /// or answer room is too small.
    pub fn parse(args: &IoctlArgs<'_>) -> Option<Result<FileattrCmd, Errno>> {
        let cmd = args.cmd;
        let r = if GETFLAGS.contains(&cmd) {
            if (args.out_size as usize) < 4 {
                Err(Errno::EINVAL)
            } else {
                Ok(FileattrCmd::GetFlags)
            }
        } else if SETFLAGS.contains(&cmd) {
            let raw: Option<[u8; 4]> = args.in_data.get(..4).and_then(|b| b.try_into().ok());
            raw.map(|b| FileattrCmd::SetFlags(u32::from_ne_bytes(b))).ok_or(Errno::EINVAL)
        } else if cmd == FSGETXATTR {
            if (args.out_size as usize) < FSXATTR_SIZE {
                Err(Errno::EINVAL)
            } else {
                Ok(FileattrCmd::GetXattr)
            }
        } else if cmd == FSSETXATTR {
            let raw: Option<[u8; FSXATTR_SIZE]> =
                args.in_data.get(..FSXATTR_SIZE).and_then(|b| b.try_into().ok());
            raw.map(|b| FileattrCmd::SetXattr(Fsxattr::from_bytes(&b))).ok_or(Errno::EINVAL)
        } else {
            return None;
        };
        Some(r)
    }

    /// True for the two commands that change the inode.
    pub fn changes(&self) -> bool {
        matches!(self, FileattrCmd::SetFlags(_) | FileattrCmd::SetXattr(_))
    }
}

/// `struct fsxattr` (without its padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fsxattr {
    /// `FS_XFLAG_*` bits.
    pub xflags: u32,
    /// Extent size hint.
    pub extsize: u32,
    /// Number of extents (read only).
    pub nextents: u32,
    /// Project id.
    pub projid: u32,
    /// Copy-on-write extent size hint.
    pub cowextsize: u32,
}

impl Fsxattr {
    /// From the wire bytes.
    pub fn from_bytes(b: &[u8; FSXATTR_SIZE]) -> Fsxattr {
        let word = |i: usize| u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        Fsxattr { xflags: word(0), extsize: word(1), nextents: word(2), projid: word(3), cowextsize: word(4) }
    }

    /// The wire bytes (padding zeroed).
    pub fn to_bytes(&self) -> [u8; FSXATTR_SIZE] {
        let mut b = [0u8; FSXATTR_SIZE];
        for (i, w) in
            [self.xflags, self.extsize, self.nextents, self.projid, self.cowextsize].iter().enumerate()
        {
            b[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        }
        b
    }

    /// The `fsxattr` of a file whose inode flags are `flags` (only the four flags above have
    /// an xflag here; the hints are 0).
    pub fn of_flags(flags: u32) -> Fsxattr {
        let xflags = FLAG_PAIRS.iter().filter(|(f, _)| flags & f != 0).fold(0, |acc, (_, x)| acc | x);
        Fsxattr { xflags, ..Default::default() }
    }

    /// The inode flags this `fsxattr` sets, or EOPNOTSUPP when it asks for anything else
    /// (another xflag, an extent size hint, a project id).
    pub fn to_flags(&self) -> Result<u32, Errno> {
        let known = FLAG_PAIRS.iter().fold(0, |acc, (_, x)| acc | x);
        if self.xflags & !known != 0 || self.extsize != 0 || self.projid != 0 || self.cowextsize != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(FLAG_PAIRS.iter().filter(|(_, x)| self.xflags & x != 0).fold(0, |acc, (f, _)| acc | f))
    }
}

/// True when `flags` (as a file system receives them) ask to append: `O_APPEND`, or
/// [`O_APPEND_CACHED`] under the write-back cache.
pub fn opens_for_append(flags: i32) -> bool {
    flags & (libc::O_APPEND | O_APPEND_CACHED) != 0
}

/// What an inode's flags refuse for an open with `flags`: EPERM for writing or truncating an
/// immutable file, and for writing without O_APPEND or truncating an append-only one.
pub fn check_open(inode_flags: u32, flags: i32) -> Result<(), Errno> {
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
    let truncates = flags & libc::O_TRUNC != 0;
    if inode_flags & IMMUTABLE_FL != 0 && (writes || truncates) {
        return Err(Errno::EPERM);
    }
    if inode_flags & APPEND_FL != 0 && (truncates || writes && !opens_for_append(flags)) {
        return Err(Errno::EPERM);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsxattr_round_trips_and_maps_flags_both_ways() {
        let x = Fsxattr { xflags: 1, extsize: 2, nextents: 3, projid: 4, cowextsize: 5 };
        assert_eq!(Fsxattr::from_bytes(&x.to_bytes()), x);
        let flags = APPEND_FL | NOATIME_FL;
        assert_eq!(Fsxattr::of_flags(flags).xflags, XFLAG_APPEND | XFLAG_NOATIME);
        assert_eq!(Fsxattr::of_flags(flags).to_flags(), Ok(flags));
        assert_eq!(Fsxattr { xflags: 0x1, ..Default::default() }.to_flags(), Err(Errno::EOPNOTSUPP));
        assert_eq!(Fsxattr { projid: 7, ..Default::default() }.to_flags(), Err(Errno::EOPNOTSUPP));
    }

    #[test]
    fn commands_decode_with_their_arguments() {
        let args = |cmd, in_data: &'static [u8], out_size| IoctlArgs {
            fh: crate::FileHandle(1),
            flags: 0,
            cmd,
            arg: 0,
            in_data,
            out_size,
        };
        assert_eq!(FileattrCmd::parse(&args(0x8008_6601, &[], 4)), Some(Ok(FileattrCmd::GetFlags)));
        assert_eq!(FileattrCmd::parse(&args(0x8008_6601, &[], 2)), Some(Err(Errno::EINVAL)));
        assert_eq!(
            FileattrCmd::parse(&args(0x4004_6602, &[0x20, 0, 0, 0], 0)),
            Some(Ok(FileattrCmd::SetFlags(APPEND_FL)))
        );
        assert_eq!(FileattrCmd::parse(&args(0x4004_6602, &[0x20], 0)), Some(Err(Errno::EINVAL)));
        assert_eq!(FileattrCmd::parse(&args(0x5401, &[], 0)), None);
    }

    #[test]
    fn open_checks_follow_the_flags() {
        use libc::{O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};
        assert_eq!(check_open(IMMUTABLE_FL, O_RDONLY), Ok(()));
        assert_eq!(check_open(IMMUTABLE_FL, O_WRONLY | libc::O_APPEND), Err(Errno::EPERM));
        assert_eq!(check_open(APPEND_FL, O_RDWR), Err(Errno::EPERM));
        assert_eq!(check_open(APPEND_FL, O_WRONLY | O_APPEND_CACHED), Ok(()));
        assert_eq!(check_open(APPEND_FL, O_WRONLY | libc::O_APPEND | O_TRUNC), Err(Errno::EPERM));
        assert_eq!(check_open(NODUMP_FL, O_RDWR | O_TRUNC), Ok(()));
    }
}
