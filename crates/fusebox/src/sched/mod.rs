//! Request classes and per-opcode statistics.
//!
//! *Background* requests are those no process is blocked on: writeback WRITEs (FUSE_WRITE_CACHE),
//! RELEASE/RELEASEDIR and FORGET/BATCH_FORGET. Everything else is *synchronous*.

mod gate;
mod perfile;
mod stats;

pub use gate::{BackgroundGate, Queued};
pub use stats::{OpStats, Stats, StatsSnapshot};

use crate::abi::{self, opcode::*};

/// Whether a process is waiting on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// A process is blocked until the reply arrives.
    Sync,
    /// The kernel sent it on its own behalf (writeback, release, forget).
    Background,
}

/// Classify a raw request buffer without decoding it fully (opcode and, for WRITE, its flags).
pub fn peek_class(buf: &[u8]) -> RequestClass {
    let word = |at: usize| buf.get(at..at + 4).map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")));
    match word(4) {
        Some(FUSE_RELEASE | FUSE_RELEASEDIR | FUSE_FORGET | FUSE_BATCH_FORGET) => RequestClass::Background,
        // fuse_in_header (40) + fuse_write_in.write_flags at offset 20.
        Some(FUSE_WRITE) if word(60).is_some_and(|f| f & abi::FUSE_WRITE_CACHE != 0) => {
            RequestClass::Background
        }
        _ => RequestClass::Sync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writeback_writes_and_releases_are_background() {
        use zerocopy::IntoBytes;
        let frame = |opcode: u32, body: &[u8]| {
            let h = abi::fuse_in_header { len: (40 + body.len()) as u32, opcode, ..Default::default() };
            [h.as_bytes(), body].concat()
        };
        let wb = abi::fuse_write_in { write_flags: abi::FUSE_WRITE_CACHE, ..Default::default() };
        let direct = abi::fuse_write_in::default();
        assert_eq!(peek_class(&frame(FUSE_WRITE, wb.as_bytes())), RequestClass::Background);
        assert_eq!(peek_class(&frame(FUSE_WRITE, direct.as_bytes())), RequestClass::Sync);
        let rel = abi::fuse_release_in::default();
        assert_eq!(peek_class(&frame(FUSE_RELEASE, rel.as_bytes())), RequestClass::Background);
        assert_eq!(peek_class(&frame(FUSE_FORGET, &1u64.to_ne_bytes())), RequestClass::Background);
        assert_eq!(peek_class(&frame(FUSE_GETATTR, &[0u8; 16])), RequestClass::Sync);
        // Too short to tell: synchronous, never dropped into the background queue.
        assert_eq!(peek_class(&[0u8; 3]), RequestClass::Sync);
    }
}
