//! Moving request and reply bytes: `/dev/fuse` (cloned fds, one per worker thread), FUSE over
//! io_uring (one ring per queue thread), an in-memory pair for tests, and the few raw syscalls the session needs (mount, umount, fd passing).
//!
//! This module and `abi` are the only places with `unsafe`.

pub mod buffer;
pub mod devfuse;
pub mod mem;
pub mod oslocks;
pub mod splice;
pub mod sys;
pub mod uring;

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
