//! Kernel passthrough (`-o kernel_passthrough`, on by default where the kernel grants it):
//! regular files are opened with FOPEN_PASSTHROUGH, so their reads, writes and mmap go from the
//! kernel straight to the backing file and never reach the daemon.
//!
//! The kernel keeps one backing file per inode while the inode has passthrough opens, and
//! refuses an open of that inode with another backing file or without passthrough. So every
//! open of an inode shares one [`BackingId`]: the first open registers its descriptor, later
//! opens reuse the id while any open file holds it, and the last RELEASE drops it (which
//! unregisters it). The kernel opens its own backing file per open file, with the caller's
//! open flags, so which descriptor registered the inode does not matter.
//!
//! Registration needs CAP_SYS_ADMIN. When it fails with EPERM the mount logs one line and
//! goes on without passthrough; other failures (a backing file on too deep a stack of file
//! systems, a file that cannot back one) fall back for that inode only.

use fusebox::session::{Backing, BackingId};
use fusebox::{FileHandle, NodeId};
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Backing ids of the passthrough opens of one mount.
#[derive(Default)]
pub(crate) struct KernelPassthrough {
    /// Set at mount when the kernel granted passthrough.
    backing: OnceLock<Backing>,
    /// Registration was refused for lack of privilege: stop trying.
    refused: AtomicBool,
    /// The shared id of each inode with passthrough opens.
    by_inode: Mutex<HashMap<NodeId, Weak<BackingId>>>,
    /// The id each passthrough open file holds until its RELEASE.
    by_handle: Mutex<HashMap<u64, (NodeId, Arc<BackingId>)>>,
}

impl KernelPassthrough {
    /// The mount is live: `backing` is `Some` when the kernel granted passthrough.
    pub(crate) fn mounted(&self, backing: Option<&Backing>) {
        if let Some(b) = backing {
            let _ = self.backing.set(b.clone());
        }
    }

    /// Whether opens use passthrough on this mount.
    pub(crate) fn active(&self) -> bool {
        self.backing.get().is_some() && !self.refused.load(Ordering::Relaxed)
    }

    /// The open file `fh` of `ino`, whose descriptor is `fd`, goes through passthrough: the
    /// id to answer with, or `None` to answer a plain open.
    pub(crate) fn attach(&self, ino: NodeId, fh: FileHandle, fd: BorrowedFd<'_>) -> Option<Arc<BackingId>> {
        let backing = self.backing.get()?;
        if self.refused.load(Ordering::Relaxed) {
            return None;
        }
        let id = {
            let mut by_inode = self.by_inode.lock().unwrap_or_else(|e| e.into_inner());
            match by_inode.get(&ino).and_then(Weak::upgrade) {
                Some(id) => id,
                None => match backing.open(fd) {
                    Ok(id) => {
                        let id = Arc::new(id);
                        by_inode.insert(ino, Arc::downgrade(&id));
                        id
                    }
                    Err(e) => {
                        self.failed(ino, e);
                        return None;
                    }
                },
            }
        };
        self.by_handle.lock().unwrap_or_else(|e| e.into_inner()).insert(fh.0, (ino, id.clone()));
        Some(id)
    }

    fn failed(&self, ino: NodeId, e: std::io::Error) {
        if e.raw_os_error() == Some(libc::EPERM) {
            if !self.refused.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "kernel passthrough refused (registering a backing file needs CAP_SYS_ADMIN): \
                     file data goes through the daemon"
                );
            }
        } else {
            tracing::debug!(node = ino.0, error = %e, "no kernel passthrough for this file");
        }
    }

    /// RELEASE of `fh`: drop its hold on the inode's id; true when it was a passthrough open.
    pub(crate) fn release(&self, fh: FileHandle) -> bool {
        let Some((ino, id)) = self.by_handle.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0) else {
            return false;
        };
        let mut by_inode = self.by_inode.lock().unwrap_or_else(|e| e.into_inner());
        // The last holder unregisters the id (BACKING_CLOSE in BackingId's drop) and the
        // inode's entry goes with it.
        if Arc::strong_count(&id) == 1 {
            by_inode.remove(&ino);
        }
        drop(id);
        true
    }
}
