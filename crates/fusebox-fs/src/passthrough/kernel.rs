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
//! The kernel also refuses a passthrough open of an inode that has open files without
//! passthrough, so the daemon keeps the same rule: an inode is in passthrough mode while any
//! passthrough open file holds its id, in daemon mode while any other open file exists, and
//! chooses afresh only when nothing is open.
//!
//! Files with set-user-ID or set-group-ID bits or a `security.capability` xattr are served in
//! daemon mode: a write by another user must clear those (HANDLE_KILLPRIV_V2 leaves that to the
//! server's WRITE, which a passthrough write never sends, and the backing write runs with the
//! daemon's CAP_FSETID). A bit set with chmod while the file is open in passthrough mode is
//! cleared by such a write only once every open file was closed.
//!
//! Registration needs CAP_SYS_ADMIN. When it fails with EPERM the mount logs one line and
//! goes on without passthrough; other failures (a backing file on too deep a stack of file
//! systems, a file that cannot back one) fall back for that inode only.

use fusebox::session::{Backing, BackingId};
use fusebox::{FileHandle, NodeId};
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The open files of one inode, by mode.
#[derive(Default)]
struct InodeOpens {
    /// Registered while `passthrough` > 0; dropping it unregisters it.
    id: Option<Arc<BackingId>>,
    passthrough: usize,
    /// Passthrough open files that may write.
    writers: usize,
    /// Open files served by the daemon.
    daemon: usize,
}

/// How one open file is served.
#[derive(Clone, Copy)]
struct HandleMode {
    ino: NodeId,
    passthrough: bool,
    writable: bool,
}

#[derive(Default)]
struct State {
    inodes: HashMap<NodeId, InodeOpens>,
    handles: HashMap<u64, HandleMode>,
}

/// Backing ids and open modes of one mount's open files.
#[derive(Default)]
pub(crate) struct KernelPassthrough {
    /// Set at mount when the kernel granted passthrough.
    backing: OnceLock<Backing>,
    /// Registration was refused for lack of privilege: stop trying.
    refused: AtomicBool,
    state: Mutex<State>,
}

impl KernelPassthrough {
    /// The mount is live: `backing` is `Some` when the kernel granted passthrough.
    pub(crate) fn mounted(&self, backing: Option<&Backing>) {
        if let Some(b) = backing {
            let _ = self.backing.set(b.clone());
        }
    }

    /// Whether opens may use passthrough on this mount.
    pub(crate) fn active(&self) -> bool {
        self.backing.get().is_some() && !self.refused.load(Ordering::Relaxed)
    }

    /// The open file `fh` of `ino`, whose descriptor is `fd`, was opened: the backing id to
    /// answer with (passthrough), or `None` to answer a plain open (daemon mode). Every open
    /// of an active mount comes here, and its RELEASE goes to [`KernelPassthrough::release`].
    pub(crate) fn attach(
        &self, ino: NodeId, fh: FileHandle, fd: BorrowedFd<'_>, writable: bool,
    ) -> Option<Arc<BackingId>> {
        let backing = self.backing.get()?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let opens = state.inodes.entry(ino).or_default();
        let id = if let (true, Some(id)) = (opens.passthrough > 0, &opens.id) {
            Some(id.clone())
        } else if opens.daemon > 0 || self.refused.load(Ordering::Relaxed) || privileged(fd) {
            None
        } else {
            match backing.open(fd) {
                Ok(id) => {
                    let id = Arc::new(id);
                    opens.id = Some(id.clone());
                    Some(id)
                }
                Err(e) => {
                    self.failed(ino, e);
                    None
                }
            }
        };
        let passthrough = id.is_some();
        if passthrough {
            opens.passthrough += 1;
            opens.writers += usize::from(writable);
        } else {
            opens.daemon += 1;
        }
        state.handles.insert(fh.0, HandleMode { ino, passthrough, writable });
        id
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

    /// RELEASE of `fh`; true when it was a passthrough open. The inode's last passthrough
    /// open file unregisters its id (the kernel has dropped its own reference by then: it
    /// sends RELEASE after it let go of the file).
    pub(crate) fn release(&self, fh: FileHandle) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(h) = state.handles.remove(&fh.0) else { return false };
        if let Some(opens) = state.inodes.get_mut(&h.ino) {
            if h.passthrough {
                opens.passthrough -= 1;
                opens.writers -= usize::from(h.writable);
                if opens.passthrough == 0 {
                    opens.id = None;
                }
            } else {
                opens.daemon -= 1;
            }
            if opens.passthrough == 0 && opens.daemon == 0 {
                state.inodes.remove(&h.ino);
            }
        }
        h.passthrough
    }

    /// Whether `ino` has a passthrough open file that may write. Its writes through a shared
    /// mapping reach the backing file without the FUSE inode hearing of them (the mapping is
    /// the backing file's), so its attributes are answered uncached meanwhile.
    pub(crate) fn writing(&self, ino: NodeId) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.inodes.get(&ino).is_some_and(|o| o.writers > 0)
    }
}

/// A file whose writes must clear privileges: set-user-ID, set-group-ID, or file capabilities.
fn privileged(fd: BorrowedFd<'_>) -> bool {
    let setid = rustix::fs::fstat(fd).map_or(true, |st| st.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0);
    setid || rustix::fs::fgetxattr(fd, "security.capability", &mut [0u8; 0]).is_ok()
}
