//! Kernel passthrough (FUSE_PASSTHROUGH, protocol 7.40): backing files registered with the
//! kernel, so that reads, writes and mmap of an open file go straight to the backing file
//! without a round trip to the daemon.
//!
//! A file system gets a [`Backing`] in [`MountInfo::backing`](super::MountInfo) when the
//! kernel granted passthrough, registers a descriptor with [`Backing::open`] and answers OPEN or
//! CREATE with `fs::ReplyOpen::passthrough`. The returned
//! [`BackingId`] unregisters itself when dropped. The kernel keeps one backing file per inode
//! while the inode has passthrough opens, so a file system should share one `BackingId` among
//! the open files of an inode (docs/ARCHITECTURE.md, "Kernel passthrough").

use crate::session::sched::Stats;
use crate::transport::devfuse::DevFuse;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// Registers backing files with this session's kernel connection. Cheap to clone.
#[derive(Clone)]
pub struct Backing {
    dev: Arc<DevFuse>,
    stats: Arc<Stats>,
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backing").finish_non_exhaustive()
    }
}

impl Backing {
    pub(crate) fn new(dev: Arc<DevFuse>, stats: Arc<Stats>) -> Backing {
        Backing { dev, stats }
    }

    /// Register the open file `file` (a regular file opened for reading or writing, not
    /// O_PATH) as a backing file. The kernel keeps its own reference, so `file` may be closed
    /// afterwards. Fails with EPERM without CAP_SYS_ADMIN, ELOOP when `file` lives on a
    /// stack of file systems deeper than the negotiated `max_stack_depth`, EINVAL for files
    /// that cannot back one (no read_iter/write_iter).
    pub fn open(&self, file: BorrowedFd<'_>) -> io::Result<BackingId> {
        let id = self.dev.backing_open(file)?;
        self.stats.backing_opened();
        Ok(BackingId { id, dev: self.dev.clone(), stats: self.stats.clone() })
    }
}

/// A backing file registered with the kernel. Unregistered (`FUSE_DEV_IOC_BACKING_CLOSE`) when
/// dropped; files the kernel already opened with it keep working.
pub struct BackingId {
    id: u32,
    dev: Arc<DevFuse>,
    stats: Arc<Stats>,
}

impl BackingId {
    /// The id the kernel gave this backing file (what an open reply carries).
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl fmt::Debug for BackingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BackingId").field(&self.id).finish()
    }
}

impl Drop for BackingId {
    fn drop(&mut self) {
        self.stats.backing_closed();
        if let Err(e) = self.dev.backing_close(self.id) {
            // ENODEV/ENOTCONN after unmount: the connection took its ids with it.
            tracing::debug!(id = self.id, error = %e, "backing close failed");
        }
    }
}
