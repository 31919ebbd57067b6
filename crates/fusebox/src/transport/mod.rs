//! Moving request and reply bytes: `/dev/fuse` (cloned fds, one per worker thread), FUSE over
//! io_uring (one ring per queue thread), splicing file data into replies, and an in-memory
//! pair for tests.
//!
//! With [`crate::sys`], this module is the only place allowed `unsafe`.

pub mod buffer;
pub mod devfuse;
pub mod mem;
pub mod splice;
#[cfg(feature = "io-uring")]
pub mod uring;

pub use crate::wire::ReplyChannel;
