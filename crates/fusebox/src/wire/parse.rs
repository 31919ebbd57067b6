//! Request decoding.

use super::ops::{parse_body, Operation};
use crate::abi;
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

/// A cursor over the request body.
pub(super) struct Body<'a> {
    rest: &'a [u8],
}

impl<'a> Body<'a> {
    pub(super) fn fixed<T: FromBytes>(&mut self) -> Result<T, ParseError> {
        let need = core::mem::size_of::<T>();
        match T::read_from_prefix(self.rest) {
            Ok((value, rest)) => {
                self.rest = rest;
                Ok(value)
            }
            Err(_) => Err(ParseError::Short { need, have: self.rest.len() }),
        }
    }

    pub(super) fn name(&mut self) -> Result<&'a OsStr, ParseError> {
        let end = self.rest.iter().position(|&b| b == 0).ok_or(ParseError::MissingNul)?;
        let (name, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        Ok(OsStr::from_bytes(name))
    }

    pub(super) fn bytes(&mut self, len: usize) -> Result<&'a [u8], ParseError> {
        if len > self.rest.len() {
            return Err(ParseError::BadSize { claimed: len, available: self.rest.len() });
        }
        let (data, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(data)
    }

    pub(super) fn remaining(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// `fuse_setxattr_in`: 16 bytes with `FUSE_SETXATTR_EXT`, the 8-byte compat form without.
    pub(super) fn setxattr_in(&mut self, ext: bool) -> Result<abi::fuse_setxattr_in, ParseError> {
        if ext {
            return self.fixed();
        }
        let compat: [u32; 2] = self.fixed()?;
        Ok(abi::fuse_setxattr_in { size: compat[0], flags: compat[1], ..Default::default() })
    }

    /// A BATCH_FORGET's count and its entries.
    pub(super) fn forget_list(&mut self) -> Result<ForgetList<'a>, ParseError> {
        let arg: abi::fuse_batch_forget_in = self.fixed()?;
        let len = (arg.count as usize).saturating_mul(16);
        Ok(ForgetList(self.bytes(len)?))
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
    let op = parse_body(header.opcode, &mut b, opts)?;
    Ok(Request { header, op })
}

/// INIT bodies were shorter in old protocols: accept anything from 16 bytes and zero-fill.
pub(super) fn init_in(b: &mut Body<'_>) -> Result<abi::fuse_init_in, ParseError> {
    let raw = b.remaining();
    if raw.len() < 16 {
        return Err(ParseError::Short { need: 16, have: raw.len() });
    }
    let mut full = [0u8; 64];
    let n = raw.len().min(64);
    full[..n].copy_from_slice(&raw[..n]);
    Ok(abi::fuse_init_in::read_from_bytes(&full[..]).expect("64-byte buffer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::opcode::*;
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
        let Operation::Rename2 { arg, name, newname } = parse(&buf, ParseOptions::default()).unwrap().op
        else {
            panic!()
        };
        assert_eq!(
            (arg.newdir, arg.flags, name, newname),
            (5, libc::RENAME_EXCHANGE, "a".as_ref(), "b".as_ref())
        );
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
        let Operation::BatchForget { list } = parse(&buf, ParseOptions::default()).unwrap().op else {
            panic!()
        };
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
