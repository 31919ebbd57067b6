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

pub use crate::wire::ReplyChannel;
