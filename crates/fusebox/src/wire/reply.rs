//! Reply encoding: a `fuse_out_header` plus payload slices, sent with one vectored write.

use crate::abi;
use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;

/// Something replies can be written to. A reply must go back on the channel its request came
/// from (each cloned `/dev/fuse` fd has its own processing list in the kernel).
pub trait ReplyChannel: Send + Sync {
    /// Write one complete reply (header + payload) with a single vectored write.
    fn send(&self, iov: &[IoSlice<'_>]) -> io::Result<()>;

    /// The device descriptor, when replies may be spliced into it (only `/dev/fuse` itself).
    fn splice_target(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}
use zerocopy::IntoBytes;

/// The `fuse_out_header` at the front of a reply or notification buffer (`None` when shorter
/// than a header): for transports that stage replies and for tests that read them back.
pub fn out_header(bytes: &[u8]) -> Option<abi::fuse_out_header> {
    use zerocopy::FromBytes;
    abi::fuse_out_header::read_from_prefix(bytes).ok().map(|(h, _)| h)
}

/// Send one reply for request `unique`: `error` is 0 or a negative errno; `parts` are concatenated.
/// Returns the total length written (header included).
pub fn send_reply(chan: &dyn ReplyChannel, unique: u64, error: i32, parts: &[&[u8]]) -> io::Result<usize> {
    let payload: usize = if error == 0 { parts.iter().map(|p| p.len()).sum() } else { 0 };
    let len = core::mem::size_of::<abi::fuse_out_header>() + payload;
    let header = abi::fuse_out_header { len: len as u32, error, unique };
    let body = if error == 0 { parts } else { &[] };
    // The common replies have a handful of parts: keep their iovec array on the stack.
    const INLINE: usize = 8;
    if body.len() < INLINE {
        let mut iov = [IoSlice::new(&[]); INLINE];
        iov[0] = IoSlice::new(header.as_bytes());
        let mut n = 1;
        for p in body.iter().filter(|p| !p.is_empty()) {
            iov[n] = IoSlice::new(p);
            n += 1;
        }
        chan.send(&iov[..n])?;
    } else {
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(1 + body.len());
        iov.push(IoSlice::new(header.as_bytes()));
        iov.extend(body.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)));
        chan.send(&iov)?;
    }
    Ok(len)
}

/// Send a notification (`unique` 0, `error` = notify code).
pub fn send_notify(chan: &dyn ReplyChannel, code: i32, parts: &[&[u8]]) -> io::Result<()> {
    let payload: usize = parts.iter().map(|p| p.len()).sum();
    let len = core::mem::size_of::<abi::fuse_out_header>() + payload;
    let header = abi::fuse_out_header { len: len as u32, error: code, unique: 0 };
    let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(1 + parts.len());
    iov.push(IoSlice::new(header.as_bytes()));
    iov.extend(parts.iter().map(|p| IoSlice::new(p)));
    chan.send(&iov)
}

/// Append one `fuse_dirent` to `buf` if it fits in `max` bytes. Returns false when full.
pub fn push_dirent(buf: &mut Vec<u8>, max: usize, ino: u64, off: u64, typ: u32, name: &[u8]) -> bool {
    let entlen = abi::FUSE_NAME_OFFSET + name.len();
    let padded = abi::fuse_dirent_align(entlen);
    if buf.len() + padded > max {
        return false;
    }
    let d = abi::fuse_dirent { ino, off, namelen: name.len() as u32, r#type: typ };
    buf.extend_from_slice(d.as_bytes());
    buf.extend_from_slice(name);
    buf.resize(buf.len() + (padded - entlen), 0);
    true
}

/// Append one `fuse_direntplus` to `buf` if it fits in `max` bytes. Returns false when full.
pub fn push_direntplus(
    buf: &mut Vec<u8>, max: usize, entry: &abi::fuse_entry_out, off: u64, typ: u32, name: &[u8],
) -> bool {
    let entlen = abi::FUSE_NAME_OFFSET_DIRENTPLUS + name.len();
    let padded = abi::fuse_dirent_align(entlen);
    if buf.len() + padded > max {
        return false;
    }
    buf.extend_from_slice(entry.as_bytes());
    let d = abi::fuse_dirent { ino: entry.attr.ino, off, namelen: name.len() as u32, r#type: typ };
    buf.extend_from_slice(d.as_bytes());
    buf.extend_from_slice(name);
    buf.resize(buf.len() + (padded - entlen), 0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Capture(Mutex<Vec<Vec<u8>>>);
    impl ReplyChannel for Capture {
        fn send(&self, iov: &[IoSlice<'_>]) -> io::Result<()> {
            self.0.lock().unwrap().push(iov.iter().flat_map(|s| s.iter().copied()).collect());
            Ok(())
        }
    }

    #[test]
    fn reply_header_counts_all_parts() {
        let cap = Capture::default();
        send_reply(&cap, 9, 0, &[b"ab", b"", b"cde"]).unwrap();
        let out = cap.0.lock().unwrap().pop().unwrap();
        assert_eq!(out.len(), 21);
        assert_eq!(u32::from_ne_bytes(out[0..4].try_into().unwrap()), 21);
        assert_eq!(u64::from_ne_bytes(out[8..16].try_into().unwrap()), 9);
        assert_eq!(&out[16..], b"abcde");
    }

    #[test]
    fn error_reply_has_no_payload() {
        let cap = Capture::default();
        send_reply(&cap, 1, -libc::ENOENT, &[b"ignored"]).unwrap();
        let out = cap.0.lock().unwrap().pop().unwrap();
        assert_eq!(out.len(), 16);
        assert_eq!(i32::from_ne_bytes(out[4..8].try_into().unwrap()), -libc::ENOENT);
    }

    #[test]
    fn dirents_are_padded_and_bounded() {
        let mut buf = Vec::new();
        assert!(push_dirent(&mut buf, 64, 1, 1, 4, b"a"));
        assert_eq!(buf.len(), 32);
        assert!(push_dirent(&mut buf, 64, 2, 2, 8, b"bbbbbbbb"));
        assert_eq!(buf.len(), 64);
        assert!(!push_dirent(&mut buf, 64, 3, 3, 8, b"c"));
        assert_eq!(buf.len(), 64);
    }
}
