//! The file system API: an inode-based trait whose methods all default to ENOSYS, and one-shot
//! typed reply tokens.
//!
//! Methods take `&self` and are called from several worker threads at once: implementations use
//! interior locking. Each method receives a reply token it must consume exactly once; it may
//! answer inline or move the token to another thread and answer later.

pub mod acl;
pub mod asyncfs;
mod interrupt;
mod ops;
mod reply;
mod types;

pub use interrupt::{Interrupt, PENDING_EXPIRY};
pub(crate) use interrupt::{InterruptRegistry, Registration};

pub use reply::{
    Reply, ReplyAttr, ReplyCopy, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyShared, ReplyStatfs, ReplyWrite,
    ReplyXattr, Responder,
};
pub use ops::Filesystem;
pub use types::*;

use crate::session::Notifier;

/// What a file system learns when its mount goes live ([`Filesystem::mounted`]).
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// Sends notifications to this mount's kernel caches.
    pub notifier: Notifier,
    /// Where it is mounted (absolute).
    pub mountpoint: std::path::PathBuf,
    /// Registers backing files for kernel passthrough; `None` unless the file system asked for
    /// [`Capabilities::passthrough`] and the kernel granted it.
    pub backing: Option<crate::session::Backing>,
}
