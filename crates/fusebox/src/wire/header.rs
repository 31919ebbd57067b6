//! A typed view of a raw request buffer's header, for the code that must look at a request
//! before (or instead of) parsing it: the scheduler's class peek, release ordering, the
//! malformed-request path and the io_uring transport. Nothing outside `abi` and `wire` reads
//! header fields at byte offsets.

use super::ops::{opcode_info, ClassRule, RequestClass};
use crate::abi;
use zerocopy::FromBytes;

/// The header of the request in `buf`, or `None` when `buf` is shorter than a header.
pub fn in_header(buf: &[u8]) -> Option<abi::fuse_in_header> {
    abi::fuse_in_header::read_from_prefix(buf).ok().map(|(h, _)| h)
}

/// The class of the request in `buf`, decided from its opcode (and, for WRITE, its flags)
/// without decoding it. A buffer too short to tell is synchronous, never queued as background.
pub fn peek_class(buf: &[u8]) -> RequestClass {
    let Some(h) = in_header(buf) else { return RequestClass::Sync };
    match opcode_info(h.opcode).class {
        ClassRule::Sync => RequestClass::Sync,
        ClassRule::Background => RequestClass::Background,
        ClassRule::WritebackWrite => {
            let body = &buf[core::mem::size_of::<abi::fuse_in_header>()..];
            match abi::fuse_write_in::read_from_prefix(body) {
                Ok((w, _)) if w.write_flags & abi::FUSE_WRITE_CACHE != 0 => RequestClass::Background,
                _ => RequestClass::Sync,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::opcode::*;
    use zerocopy::IntoBytes;

    #[test]
    fn writeback_writes_and_releases_are_background() {
        let frame = |opcode: u32, body: &[u8]| {
            let h = abi::fuse_in_header { len: (40 + body.len()) as u32, opcode, ..Default::default() };
            [h.as_bytes(), body].concat()
        };
        let wb = abi::fuse_write_in { write_flags: abi::FUSE_WRITE_CACHE, ..Default::default() };
        let direct = abi::fuse_write_in::default();
        assert_eq!(peek_class(&frame(FUSE_WRITE, wb.as_bytes())), RequestClass::Background);
        assert_eq!(peek_class(&frame(FUSE_WRITE, direct.as_bytes())), RequestClass::Sync);
        assert_eq!(peek_class(&frame(FUSE_WRITE, &[])), RequestClass::Sync);
        let rel = abi::fuse_release_in::default();
        assert_eq!(peek_class(&frame(FUSE_RELEASE, rel.as_bytes())), RequestClass::Background);
        assert_eq!(peek_class(&frame(FUSE_FORGET, &1u64.to_ne_bytes())), RequestClass::Background);
        assert_eq!(peek_class(&frame(FUSE_GETATTR, &[0u8; 16])), RequestClass::Sync);
        assert_eq!(peek_class(&[0u8; 3]), RequestClass::Sync);
        let h = in_header(&frame(FUSE_GETATTR, &[0u8; 16])).unwrap();
        assert_eq!((h.opcode, h.len), (FUSE_GETATTR, 56));
    }
}
