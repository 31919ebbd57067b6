//! Attributes of backing files as FUSE attributes, and device number encodings.

use fusebox::fs::{dev_from_major_minor, dev_major_minor, Timespec};
use fusebox::FileAttr;
use rustix::fs::Stat;

/// The kernel's `new_encode_dev`: the 32-bit device number format FUSE uses.
pub(crate) fn encode_dev(dev: u64) -> u32 {
    dev_from_major_minor(rustix::fs::major(dev), rustix::fs::minor(dev))
}

/// The kernel's `new_decode_dev`: a FUSE device number as a `dev_t`.
pub(crate) fn decode_dev(dev: u32) -> u64 {
    let (major, minor) = dev_major_minor(dev);
    rustix::fs::makedev(major, minor)
}

/// Build a [`FileAttr`] from a `stat` of the backing file (nanosecond times; `ino` is the
/// backing inode number, which is independent of the node id).
#[allow(clippy::unnecessary_cast)]
pub(crate) fn to_attr(st: &Stat) -> FileAttr {
    let ts = |sec: i64, nsec: u64| Timespec { sec, nsec: nsec as u32 };
    FileAttr {
        ino: st.st_ino as u64,
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: ts(st.st_atime as i64, st.st_atime_nsec as u64),
        mtime: ts(st.st_mtime as i64, st.st_mtime_nsec as u64),
        ctime: ts(st.st_ctime as i64, st.st_ctime_nsec as u64),
        mode: st.st_mode as u32,
        nlink: st.st_nlink as u32,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        rdev: encode_dev(st.st_rdev as u64),
        blksize: st.st_blksize as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        for (maj, min) in [(0, 0), (1, 3), (8, 17), (259, 65536), (4095, 0xfffff)] {
            let dev = rustix::fs::makedev(maj, min);
            assert_eq!(decode_dev(encode_dev(dev)), dev, "{maj}:{min}");
        }
    }
}
