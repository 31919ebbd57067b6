//! The file system API: an inode-based trait whose methods all default to ENOSYS, and one-shot
//! typed reply tokens.
//!
//! Methods take `&self` and are called from several worker threads at once: implementations use
//! interior locking. Each method receives a reply token it must consume exactly once; it may
//! answer inline or move the token to another thread and answer later.

pub mod acl;
#[cfg(feature = "tokio")]
pub mod asyncfs;
mod dispatch;
pub mod fileattr;
pub mod lockrange;
mod ops;
mod reply;
mod setid;
mod types;

pub use crate::session::{Interrupt, MountInfo, PENDING_EXPIRY};

pub use crate::transport::buffer::Payload;
pub use ops::Filesystem;
pub use reply::{
    Reply, ReplyAttr, ReplyCopy, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyShared, ReplyStatfs, ReplyStatx,
    ReplyWrite, ReplyXattr, Responder,
};
pub use setid::{caller_in_group, setid_bits_to_clear};
pub use types::*;
