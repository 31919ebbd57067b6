//! Request decoding.

use crate::abi::{self, opcode::*};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use zerocopy::FromBytes;

/// Why a request buffer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The buffer is shorter than the fixed part of the request.
    #[error("request too short: need {need} bytes, have {have}")]
    Short {
        /// Bytes required.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// `fuse_in_header.len` disagrees with the number of bytes read.
    #[error("length mismatch: header says {header}, buffer holds {actual}")]
    LenMismatch {
        /// Length claimed by the header.
        header: usize,
        /// Bytes actually read.
        actual: usize,
    },
    /// A name argument is not NUL-terminated.
    #[error("name without terminating NUL")]
    MissingNul,
    /// A size field points past the end of the request.
    #[error("payload size {claimed} exceeds the {available} bytes present")]
    BadSize {
        /// Size claimed by the request.
        claimed: usize,
        /// Bytes present.
        available: usize,
    },
}

/// Parser settings that depend on what INIT negotiated.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// `FUSE_SETXATTR_EXT` was negotiated: `fuse_setxattr_in` is 16 bytes instead of 8.
    pub setxattr_ext: bool,
}

/// A decoded request: its header and its typed operation.
#[derive(Debug)]
pub struct Request<'a> {
    /// The raw header (unique id, node id, caller credentials).
    pub header: abi::fuse_in_header,
    /// The operation and its arguments, borrowing from the read buffer.
    pub op: Operation<'a>,
}

/// The entries of a BATCH_FORGET, decoded lazily from the request buffer.
#[derive(Debug, Clone, Copy)]
pub struct ForgetList<'a>(&'a [u8]);

impl<'a> ForgetList<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len() / 16
    }
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Iterate `(nodeid, nlookup)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = abi::fuse_forget_one> + 'a {
        self.0.chunks_exact(16).filter_map(|c| abi::fuse_forget_one::read_from_bytes(c).ok())
    }
}

/// One typed FUSE operation. Variants mirror the kernel opcodes.
#[derive(Debug)]
#[allow(missing_docs)]
pub enum Operation<'a> {
    Lookup {
        name: &'a OsStr,
    },
    Forget(abi::fuse_forget_in),
    BatchForget(ForgetList<'a>),
    Getattr(abi::fuse_getattr_in),
    Setattr(abi::fuse_setattr_in),
    Readlink,
    Symlink {
        name: &'a OsStr,
        target: &'a OsStr,
    },
    Mknod {
        arg: abi::fuse_mknod_in,
        name: &'a OsStr,
    },
    Mkdir {
        arg: abi::fuse_mkdir_in,
        name: &'a OsStr,
    },
    Unlink {
        name: &'a OsStr,
    },
    Rmdir {
        name: &'a OsStr,
    },
    /// RENAME and RENAME2 (flags are 0 for plain RENAME).
    Rename {
        newdir: u64,
        flags: u32,
        name: &'a OsStr,
        newname: &'a OsStr,
    },
    Link {
        arg: abi::fuse_link_in,
        newname: &'a OsStr,
    },
    Open(abi::fuse_open_in),
    Read(abi::fuse_read_in),
    /// WRITE; `data` is a slice of the read buffer (no copy).
    Write {
        arg: abi::fuse_write_in,
        data: &'a [u8],
    },
    Statfs,
    Release(abi::fuse_release_in),
    Fsync(abi::fuse_fsync_in),
    Setxattr {
        arg: abi::fuse_setxattr_in,
        name: &'a OsStr,
        value: &'a [u8],
    },
    Getxattr {
        arg: abi::fuse_getxattr_in,
        name: &'a OsStr,
    },
    Listxattr(abi::fuse_getxattr_in),
    Removexattr {
        name: &'a OsStr,
    },
    Flush(abi::fuse_flush_in),
    Init(abi::fuse_init_in),
    Opendir(abi::fuse_open_in),
    Readdir(abi::fuse_read_in),
    Releasedir(abi::fuse_release_in),
    Fsyncdir(abi::fuse_fsync_in),
    Getlk(abi::fuse_lk_in),
    Setlk(abi::fuse_lk_in),
    Setlkw(abi::fuse_lk_in),
    Access(abi::fuse_access_in),
    Create {
        arg: abi::fuse_create_in,
        name: &'a OsStr,
    },
    Interrupt(abi::fuse_interrupt_in),
    Bmap(abi::fuse_bmap_in),
    Destroy,
    Ioctl {
        arg: abi::fuse_ioctl_in,
        data: &'a [u8],
    },
    Poll(abi::fuse_poll_in),
    NotifyReply {
        arg: abi::fuse_notify_retrieve_in,
        data: &'a [u8],
    },
    Fallocate(abi::fuse_fallocate_in),
    Readdirplus(abi::fuse_read_in),
    Lseek(abi::fuse_lseek_in),
    /// COPY_FILE_RANGE and COPY_FILE_RANGE_64 (`wide` tells which reply layout to use).
    CopyFileRange {
        arg: abi::fuse_copy_file_range_in,
        wide: bool,
    },
    Syncfs(abi::fuse_syncfs_in),
    Tmpfile(abi::fuse_create_in),
    Statx(abi::fuse_statx_in),
    /// A known opcode fusebox does not serve (DAX mappings) or an unknown one.
    Unsupported {
        opcode: u32,
    },
}

/// A cursor over the request body.
struct Body<'a> {
    rest: &'a [u8],
}

impl<'a> Body<'a> {
    fn fixed<T: FromBytes>(&mut self) -> Result<T, ParseError> {
        let need = core::mem::size_of::<T>();
        match T::read_from_prefix(self.rest) {
            Ok((value, rest)) => {
                self.rest = rest;
                Ok(value)
            }
            Err(_) => Err(ParseError::Short { need, have: self.rest.len() }),
        }
    }

    fn name(&mut self) -> Result<&'a OsStr, ParseError> {
        let end = self.rest.iter().position(|&b| b == 0).ok_or(ParseError::MissingNul)?;
        let (name, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        Ok(OsStr::from_bytes(name))
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], ParseError> {
        if len > self.rest.len() {
            return Err(ParseError::BadSize { claimed: len, available: self.rest.len() });
        }
        let (data, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(data)
    }

    fn remaining(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// Decode one request. `buf` must be exactly the bytes one `read(2)` returned.
pub fn parse(buf: &[u8], opts: ParseOptions) -> Result<Request<'_>, ParseError> {
    let (header, _) = abi::fuse_in_header::read_from_prefix(buf)
        .map_err(|_| ParseError::Short { need: 40, have: buf.len() })?;
    if header.len as usize != buf.len() {
        return Err(ParseError::LenMismatch { header: header.len as usize, actual: buf.len() });
    }
    // Request extensions (security context, supplementary groups) sit at the end.
    let ext_len = header.total_extlen as usize * 8;
    let body_end = buf
        .len()
        .checked_sub(ext_len)
        .filter(|&end| end >= 40)
        .ok_or(ParseError::BadSize { claimed: ext_len, available: buf.len() - 40 })?;
    let mut b = Body { rest: &buf[40..body_end] };
    let op = match header.opcode {
        FUSE_LOOKUP => Operation::Lookup { name: b.name()? },
        FUSE_FORGET => Operation::Forget(b.fixed()?),
        FUSE_BATCH_FORGET => {
            let arg: abi::fuse_batch_forget_in = b.fixed()?;
            let len = (arg.count as usize).saturating_mul(16);
            Operation::BatchForget(ForgetList(b.bytes(len)?))
        }
        FUSE_GETATTR => Operation::Getattr(b.fixed()?),
        FUSE_SETATTR => Operation::Setattr(b.fixed()?),
        FUSE_READLINK => Operation::Readlink,
        FUSE_SYMLINK => {
            let name = b.name()?;
            Operation::Symlink { name, target: b.name()? }
        }
        FUSE_MKNOD => Operation::Mknod { arg: b.fixed()?, name: b.name()? },
        FUSE_MKDIR => Operation::Mkdir { arg: b.fixed()?, name: b.name()? },
        FUSE_UNLINK => Operation::Unlink { name: b.name()? },
        FUSE_RMDIR => Operation::Rmdir { name: b.name()? },
        FUSE_RENAME => {
            let arg: abi::fuse_rename_in = b.fixed()?;
            let name = b.name()?;
            Operation::Rename { newdir: arg.newdir, flags: 0, name, newname: b.name()? }
        }
        FUSE_RENAME2 => {
            let arg: abi::fuse_rename2_in = b.fixed()?;
            let name = b.name()?;
            Operation::Rename { newdir: arg.newdir, flags: arg.flags, name, newname: b.name()? }
        }
        FUSE_LINK => Operation::Link { arg: b.fixed()?, newname: b.name()? },
        FUSE_OPEN => Operation::Open(b.fixed()?),
        FUSE_READ => Operation::Read(b.fixed()?),
        FUSE_WRITE => {
            let arg: abi::fuse_write_in = b.fixed()?;
            let data = b.bytes(arg.size as usize)?;
            Operation::Write { arg, data }
        }
        FUSE_STATFS => Operation::Statfs,
        FUSE_RELEASE => Operation::Release(b.fixed()?),
        FUSE_FSYNC => Operation::Fsync(b.fixed()?),
        FUSE_SETXATTR => {
            let arg = if opts.setxattr_ext {
                b.fixed()?
            } else {
                let compat: [u32; 2] = b.fixed()?;
                abi::fuse_setxattr_in { size: compat[0], flags: compat[1], ..Default::default() }
            };
            let name = b.name()?;
            let value = b.bytes(arg.size as usize)?;
            Operation::Setxattr { arg, name, value }
        }
        FUSE_GETXATTR => Operation::Getxattr { arg: b.fixed()?, name: b.name()? },
        FUSE_LISTXATTR => Operation::Listxattr(b.fixed()?),
        FUSE_REMOVEXATTR => Operation::Removexattr { name: b.name()? },
        FUSE_FLUSH => Operation::Flush(b.fixed()?),
        FUSE_INIT => Operation::Init(init_in(&mut b)?),
        FUSE_OPENDIR => Operation::Opendir(b.fixed()?),
        FUSE_READDIR => Operation::Readdir(b.fixed()?),
        FUSE_RELEASEDIR => Operation::Releasedir(b.fixed()?),
        FUSE_FSYNCDIR => Operation::Fsyncdir(b.fixed()?),
        FUSE_GETLK => Operation::Getlk(b.fixed()?),
        FUSE_SETLK => Operation::Setlk(b.fixed()?),
        FUSE_SETLKW => Operation::Setlkw(b.fixed()?),
        FUSE_ACCESS => Operation::Access(b.fixed()?),
        FUSE_CREATE => Operation::Create { arg: b.fixed()?, name: b.name()? },
        FUSE_INTERRUPT => Operation::Interrupt(b.fixed()?),
        FUSE_BMAP => Operation::Bmap(b.fixed()?),
        FUSE_DESTROY => Operation::Destroy,
        FUSE_IOCTL => {
            let arg: abi::fuse_ioctl_in = b.fixed()?;
            let data = b.bytes(arg.in_size as usize)?;
            Operation::Ioctl { arg, data }
        }
        FUSE_POLL => Operation::Poll(b.fixed()?),
        FUSE_NOTIFY_REPLY => {
            let arg: abi::fuse_notify_retrieve_in = b.fixed()?;
            Operation::NotifyReply { arg, data: b.remaining() }
        }
        FUSE_FALLOCATE => Operation::Fallocate(b.fixed()?),
        FUSE_READDIRPLUS => Operation::Readdirplus(b.fixed()?),
        FUSE_LSEEK => Operation::Lseek(b.fixed()?),
        FUSE_COPY_FILE_RANGE => Operation::CopyFileRange { arg: b.fixed()?, wide: false },
        FUSE_COPY_FILE_RANGE_64 => Operation::CopyFileRange { arg: b.fixed()?, wide: true },
        FUSE_SYNCFS => Operation::Syncfs(b.fixed()?),
        FUSE_TMPFILE => Operation::Tmpfile(b.fixed()?),
        FUSE_STATX => Operation::Statx(b.fixed()?),
        opcode => Operation::Unsupported { opcode },
    };
    Ok(Request { header, op })
}

/// INIT bodies were shorter in old protocols: accept anything from 16 bytes and zero-fill.
fn init_in(b: &mut Body<'_>) -> Result<abi::fuse_init_in, ParseError> {
    let raw = b.remaining();
    if raw.len() < 16 {
        return Err(ParseError::Short { need: 16, have: raw.len() });
    }
    let mut full = [0u8; 64];
    let n = raw.len().min(64);
    full[..n].copy_from_slice(&raw[..n]);
    Ok(abi::fuse_init_in::read_from_bytes(&full[..]).expect("64-byte buffer"))
}

/// Name of an opcode for logs and stats.
pub fn opcode_name(opcode: u32) -> &'static str {
    match opcode {
        FUSE_LOOKUP => "LOOKUP",
        FUSE_FORGET => "FORGET",
        FUSE_GETATTR => "GETATTR",
        FUSE_SETATTR => "SETATTR",
        FUSE_READLINK => "READLINK",
        FUSE_SYMLINK => "SYMLINK",
        FUSE_MKNOD => "MKNOD",
        FUSE_MKDIR => "MKDIR",
        FUSE_UNLINK => "UNLINK",
        FUSE_RMDIR => "RMDIR",
        FUSE_RENAME => "RENAME",
        FUSE_LINK => "LINK",
        FUSE_OPEN => "OPEN",
        FUSE_READ => "READ",
        FUSE_WRITE => "WRITE",
        FUSE_STATFS => "STATFS",
        FUSE_RELEASE => "RELEASE",
        FUSE_FSYNC => "FSYNC",
        FUSE_SETXATTR => "SETXATTR",
        FUSE_GETXATTR => "GETXATTR",
        FUSE_LISTXATTR => "LISTXATTR",
        FUSE_REMOVEXATTR => "REMOVEXATTR",
        FUSE_FLUSH => "FLUSH",
        FUSE_INIT => "INIT",
        FUSE_OPENDIR => "OPENDIR",
        FUSE_READDIR => "READDIR",
        FUSE_RELEASEDIR => "RELEASEDIR",
        FUSE_FSYNCDIR => "FSYNCDIR",
        FUSE_GETLK => "GETLK",
        FUSE_SETLK => "SETLK",
        FUSE_SETLKW => "SETLKW",
        FUSE_ACCESS => "ACCESS",
        FUSE_CREATE => "CREATE",
        FUSE_INTERRUPT => "INTERRUPT",
        FUSE_BMAP => "BMAP",
        FUSE_DESTROY => "DESTROY",
        FUSE_IOCTL => "IOCTL",
        FUSE_POLL => "POLL",
        FUSE_NOTIFY_REPLY => "NOTIFY_REPLY",
        FUSE_BATCH_FORGET => "BATCH_FORGET",
        FUSE_FALLOCATE => "FALLOCATE",
        FUSE_READDIRPLUS => "READDIRPLUS",
        FUSE_RENAME2 => "RENAME2",
        FUSE_LSEEK => "LSEEK",
        FUSE_COPY_FILE_RANGE => "COPY_FILE_RANGE",
        FUSE_SETUPMAPPING => "SETUPMAPPING",
        FUSE_REMOVEMAPPING => "REMOVEMAPPING",
        FUSE_SYNCFS => "SYNCFS",
        FUSE_TMPFILE => "TMPFILE",
        FUSE_STATX => "STATX",
        FUSE_COPY_FILE_RANGE_64 => "COPY_FILE_RANGE_64",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use zerocopy::IntoBytes;

    /// Build a request frame: header + body, with a correct `len`.
    pub(crate) fn frame(opcode: u32, nodeid: u64, body: &[u8]) -> Vec<u8> {
        let header = abi::fuse_in_header {
            len: (40 + body.len()) as u32,
            opcode,
            unique: 42,
            nodeid,
            uid: 1000,
            gid: 1000,
            pid: 7,
            ..Default::default()
        };
        let mut v = header.as_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn lookup_borrows_name() {
        let buf = frame(FUSE_LOOKUP, 1, b"hello\0");
        let req = parse(&buf, ParseOptions::default()).unwrap();
        assert_eq!(req.header.unique, 42);
        match req.op {
            Operation::Lookup { name } => {
                assert_eq!(name, "hello");
                // The name points into the buffer: no copy was made.
                assert_eq!(name.as_bytes().as_ptr(), buf[40..].as_ptr());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn write_payload_is_a_slice_of_the_buffer() {
        let arg = abi::fuse_write_in { fh: 3, offset: 4096, size: 5, ..Default::default() };
        let mut body = arg.as_bytes().to_vec();
        body.extend_from_slice(b"abcde");
        let buf = frame(FUSE_WRITE, 9, &body);
        let req = parse(&buf, ParseOptions::default()).unwrap();
        let Operation::Write { arg, data } = req.op else { panic!("not a write") };
        assert_eq!((arg.fh, arg.offset), (3, 4096));
        assert_eq!(data, b"abcde");
        assert_eq!(data.as_ptr(), buf[80..].as_ptr());
    }

    #[test]
    fn write_with_size_past_end_is_rejected() {
        let arg = abi::fuse_write_in { size: 100, ..Default::default() };
        let buf = frame(FUSE_WRITE, 9, arg.as_bytes());
        assert!(matches!(
            parse(&buf, ParseOptions::default()),
            Err(ParseError::BadSize { claimed: 100, available: 0 })
        ));
    }

    #[test]
    fn rename2_carries_flags_and_two_names() {
        let arg = abi::fuse_rename2_in { newdir: 5, flags: libc::RENAME_EXCHANGE, padding: 0 };
        let mut body = arg.as_bytes().to_vec();
        body.extend_from_slice(b"a\0b\0");
        let buf = frame(FUSE_RENAME2, 1, &body);
        let Operation::Rename { newdir, flags, name, newname } =
            parse(&buf, ParseOptions::default()).unwrap().op
        else {
            panic!()
        };
        assert_eq!((newdir, flags, name, newname), (5, libc::RENAME_EXCHANGE, "a".as_ref(), "b".as_ref()));
    }

    #[test]
    fn name_without_nul_is_rejected() {
        let buf = frame(FUSE_LOOKUP, 1, b"abc");
        assert_eq!(parse(&buf, ParseOptions::default()).unwrap_err(), ParseError::MissingNul);
    }

    #[test]
    fn length_mismatch_is_rejected() {
        let mut buf = frame(FUSE_GETATTR, 1, &[0u8; 16]);
        buf.push(0);
        assert!(matches!(parse(&buf, ParseOptions::default()), Err(ParseError::LenMismatch { .. })));
    }

    #[test]
    fn short_header_is_rejected() {
        assert!(matches!(parse(&[0u8; 39], ParseOptions::default()), Err(ParseError::Short { .. })));
    }

    #[test]
    fn unknown_opcode_is_unsupported_not_an_error() {
        let buf = frame(9999, 1, &[]);
        assert!(matches!(
            parse(&buf, ParseOptions::default()).unwrap().op,
            Operation::Unsupported { opcode: 9999 }
        ));
    }

    #[test]
    fn batch_forget_lists_entries() {
        let mut body = abi::fuse_batch_forget_in { count: 2, dummy: 0 }.as_bytes().to_vec();
        body.extend_from_slice(abi::fuse_forget_one { nodeid: 10, nlookup: 1 }.as_bytes());
        body.extend_from_slice(abi::fuse_forget_one { nodeid: 11, nlookup: 3 }.as_bytes());
        let buf = frame(FUSE_BATCH_FORGET, 0, &body);
        let Operation::BatchForget(list) = parse(&buf, ParseOptions::default()).unwrap().op else { panic!() };
        let v: Vec<_> = list.iter().map(|f| (f.nodeid, f.nlookup)).collect();
        assert_eq!(v, vec![(10, 1), (11, 3)]);
    }

    #[test]
    fn batch_forget_with_huge_count_is_rejected() {
        let body = abi::fuse_batch_forget_in { count: u32::MAX, dummy: 0 }.as_bytes().to_vec();
        let buf = frame(FUSE_BATCH_FORGET, 0, &body);
        assert!(parse(&buf, ParseOptions::default()).is_err());
    }

    proptest! {
        /// Arbitrary bytes never make the parser panic.
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf, ParseOptions::default());
            let _ = parse(&buf, ParseOptions { setxattr_ext: true });
        }

        /// Well-formed headers with arbitrary bodies and opcodes never panic either.
        #[test]
        fn arbitrary_bodies_never_panic(opcode in 0u32..60, extlen in 0u16..4,
                                        body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buf = frame(opcode, 1, &body);
            buf[36..38].copy_from_slice(&extlen.to_ne_bytes());
            let _ = parse(&buf, ParseOptions::default());
        }
    }
}
