//! Open files and directories: real descriptors in a table keyed by the FUSE file handle.

use fusebox::{Errno, FileHandle, NodeId};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// An open directory: its descriptor plus a lock serialising seek + getdents on it.
pub(crate) struct DirHandle {
    /// The directory, opened O_RDONLY|O_DIRECTORY.
    pub(crate) fd: OwnedFd,
    /// Held while positioning and reading the directory stream.
    pub(crate) lock: Mutex<()>,
}

/// The handle tables. File and directory handles share one counter.
pub(crate) struct Handles {
    next: AtomicU64,
    files: RwLock<HashMap<u64, Arc<OwnedFd>>>,
    dirs: RwLock<HashMap<u64, Arc<DirHandle>>>,
    /// Open files whose backing descriptor was closed early (sync_close, last close): how to
    /// reopen it if the kernel still uses the handle before RELEASE.
    parked: Mutex<HashMap<u64, (NodeId, i32)>>,
}

impl Handles {
    pub(crate) fn new() -> Handles {
        Handles {
            next: AtomicU64::new(1),
            files: RwLock::default(),
            dirs: RwLock::default(),
            parked: Mutex::default(),
        }
    }

    /// Store an open file; its handle.
    pub(crate) fn add_file(&self, fd: OwnedFd) -> FileHandle {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.files.write().unwrap_or_else(|e| e.into_inner()).insert(fh, Arc::new(fd));
        FileHandle(fh)
    }

    /// The descriptor of an open file.
    pub(crate) fn file(&self, fh: FileHandle) -> Result<Arc<OwnedFd>, Errno> {
        self.files.read().unwrap_or_else(|e| e.into_inner()).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// Forget an open file (its descriptor closes when the last user drops it).
    pub(crate) fn remove_file(&self, fh: FileHandle) -> Option<Arc<OwnedFd>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&fh.0)
    }

    /// Close the backing descriptor of `fh` now, remembering how to reopen it (node `ino`,
    /// open flags `flags`) should the handle be used again before RELEASE.
    pub(crate) fn park(&self, fh: FileHandle, ino: NodeId, flags: i32) {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        if files.remove(&fh.0).is_some() {
            self.parked.lock().unwrap_or_else(|e| e.into_inner()).insert(fh.0, (ino, flags));
        }
    }

    /// How to reopen a parked handle.
    pub(crate) fn parked(&self, fh: FileHandle) -> Option<(NodeId, i32)> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).get(&fh.0).copied()
    }

    /// Put a reopened descriptor back for a parked handle (or keep one another thread put
    /// back first).
    pub(crate) fn unpark(&self, fh: FileHandle, fd: OwnedFd) -> Arc<OwnedFd> {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        files.entry(fh.0).or_insert_with(|| Arc::new(fd)).clone()
    }

    /// Store an open directory; its handle.
    pub(crate) fn add_dir(&self, fd: OwnedFd) -> FileHandle {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(DirHandle { fd, lock: Mutex::new(()) }));
        FileHandle(fh)
    }

    /// An open directory.
    pub(crate) fn dir(&self, fh: FileHandle) -> Result<Arc<DirHandle>, Errno> {
        self.dirs.read().unwrap_or_else(|e| e.into_inner()).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// Forget an open directory.
    pub(crate) fn remove_dir(&self, fh: FileHandle) -> Option<Arc<DirHandle>> {
        self.dirs.write().unwrap_or_else(|e| e.into_inner()).remove(&fh.0)
    }
}
