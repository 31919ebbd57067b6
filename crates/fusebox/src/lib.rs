//! fusebox: a FUSE server framework built for fast, consistent (distributed) file systems.
//!
//! Layers, bottom up (docs/ARCHITECTURE.md has the rule and one request's life): [`abi`] (the
//! kernel's structs), [`wire`] (the operation table, parsing, reply encoding), [`transport`]
//! (`/dev/fuse` with cloned fds, io_uring), [`session`] (INIT, mount, the worker pool and its
//! scheduling) and [`fs`] (the [`Filesystem`] trait, its async flavour and reply tokens);
//! [`sys`] holds the OS calls that need `unsafe`.
//!
//! A file system implements [`Filesystem`]; every method defaults to ENOSYS and answers by
//! consuming its reply token:
//!
//! ```no_run
//! use fusebox::fs::{FileAttr, ReplyAttr, ReplyEntry, Timespec};
//! use fusebox::{Config, Errno, FileHandle, Filesystem, NodeId, RequestInfo, Session};
//! use std::ffi::OsStr;
//! use std::sync::Arc;
//!
//! /// An empty, read-only root directory.
//! struct Empty;
//!
//! impl Filesystem for Empty {
//!     fn lookup(&self, _req: &RequestInfo, _parent: NodeId, _name: &OsStr, reply: ReplyEntry) {
//!         reply.error(Errno::ENOENT)
//!     }
//!     fn getattr(&self, _req: &RequestInfo, ino: NodeId, _fh: Option<FileHandle>, reply: ReplyAttr) {
//!         if ino != NodeId::ROOT {
//!             return reply.error(Errno::ENOENT);
//!         }
//!         let now = Timespec::from(std::time::SystemTime::now());
//!         let attr = FileAttr {
//!             ino: ino.0,
//!             mode: libc::S_IFDIR | 0o555,
//!             nlink: 2,
//!             atime: now,
//!             mtime: now,
//!             ctime: now,
//!             ..Default::default()
//!         };
//!         reply.attr(&attr)
//!     }
//! }
//!
//! # fn main() -> Result<(), fusebox::SessionError> {
//! let session = Session::mount(Arc::new(Empty), "/mnt/empty".as_ref(), Config::default())?;
//! session.run()
//! # }
//! ```
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
