//! fusebox: a FUSE server framework built for fast, consistent (distributed) file systems.
//!
//! Layers, bottom up: [`abi`] (wire structs), [`wire`] (typed requests, vectored replies),
//! [`transport`] (`/dev/fuse` with cloned fds), [`session`] (INIT, mount, worker threads),
//! [`sched`] (request classes, stats) and [`fs`] (the [`Filesystem`] trait and reply tokens).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod abi;
pub mod fs;
pub mod session;
#[allow(unsafe_code)]
pub mod sys;
#[allow(unsafe_code)]
pub mod transport;
pub mod wire;

/// Scheduling lives with the session that runs it; the old path stays valid.
pub use session::sched;

pub use fs::{Errno, FileAttr, FileHandle, FileType, Filesystem, NodeId, RequestInfo, Ttl};
pub use session::{Capabilities, Config, MountOptions, Session, SessionError};
