//! Open files and directories: real descriptors in a table keyed by the FUSE file handle.
//!
//! Open files hold at most `budget` descriptors together (`-o file_fds=`): past it, the
//! least recently used ones are closed ("parked") and reopened by file handle when the kernel
//! uses them again, so the number of files clients hold open never runs the daemon out of
//! descriptors. A file holding a flock lock is never parked (closing its descriptor would drop
//! the lock), and neither is one in use (an operation keeps its `Arc` until it is done).

use fusebox::{Errno, FileHandle, NodeId};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// An open directory: its descriptor plus a lock serialising seek + getdents on it.
pub(crate) struct DirHandle {
    /// The directory, opened O_RDONLY|O_DIRECTORY.
    pub(crate) fd: OwnedFd,
    /// Held while positioning and reading the directory stream.
    pub(crate) lock: Mutex<()>,
}

/// How to reopen an open file: its node and open flags (without O_CREAT, O_EXCL, O_TRUNC).
#[derive(Clone, Copy)]
struct Origin {
    ino: NodeId,
    flags: i32,
}

/// An open file with its descriptor.
struct OpenFile {
    fd: Arc<OwnedFd>,
    origin: Origin,
    /// Used since the last eviction sweep passed it.
    used: AtomicBool,
    /// Holds a flock lock: never parked.
    keep: AtomicBool,
}

/// The handle tables. File and directory handles share one counter.
pub(crate) struct Handles {
    next: AtomicU64,
    files: RwLock<HashMap<u64, OpenFile>>,
    dirs: RwLock<HashMap<u64, Arc<DirHandle>>>,
    /// Open files whose descriptor is closed, and how to reopen it.
    parked: Mutex<HashMap<u64, Origin>>,
    /// Most open-file descriptors held at once.
    budget: usize,
}

/// Default for `Handles::new`: a quarter of the soft RLIMIT_NOFILE (at least 64), leaving
/// the rest to the inode descriptor cache, directories and the daemon itself.
pub fn default_file_fds() -> usize {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(4096, |n| (n / 4) as usize)
        .max(64)
}

impl Handles {
    /// Tables whose open files hold at most `budget` descriptors (at least 1).
    pub(crate) fn new(budget: usize) -> Handles {
        Handles {
            next: AtomicU64::new(1),
            files: RwLock::default(),
            dirs: RwLock::default(),
            parked: Mutex::default(),
            budget: budget.max(1),
        }
    }

    /// Store an open file of node `ino`, opened with `flags` (reopened with them, less the
    /// creating ones, if it is parked); its handle.
    pub(crate) fn add_file(&self, fd: OwnedFd, ino: NodeId, flags: i32) -> FileHandle {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        let origin = Origin { ino, flags: super::reopen_flags(flags) };
        let file =
            OpenFile { fd: Arc::new(fd), origin, used: AtomicBool::new(true), keep: AtomicBool::new(false) };
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        files.insert(fh, file);
        if files.len() > self.budget {
            self.evict(&mut files);
        }
        FileHandle(fh)
    }

    /// Park open files until an eighth of the budget is free: a clock sweep that spares
    /// files used since it last passed them, files holding a flock lock, and files in use.
    fn evict(&self, files: &mut HashMap<u64, OpenFile>) {
        let target = self.budget - self.budget / 8;
        let mut parked = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        for _pass in 0..2 {
            let candidates: Vec<u64> = files
                .iter()
                .filter(|(_, f)| !f.keep.load(Ordering::Relaxed) && !f.used.swap(false, Ordering::Relaxed))
                .filter(|(_, f)| Arc::strong_count(&f.fd) == 1)
                .map(|(&fh, _)| fh)
                .take(files.len().saturating_sub(target))
                .collect();
            for fh in candidates {
                if let Some(f) = files.remove(&fh) {
                    parked.insert(fh, f.origin);
                }
            }
            if files.len() <= target {
                return;
            }
        }
    }

    /// The descriptor of an open file, when it is not parked.
    pub(crate) fn file(&self, fh: FileHandle) -> Result<Arc<OwnedFd>, Errno> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        let f = files.get(&fh.0).ok_or(Errno::EBADF)?;
        f.used.store(true, Ordering::Relaxed);
        Ok(f.fd.clone())
    }

    /// Mark `fh` as holding (or no longer holding) a flock lock: a holder is never parked.
    pub(crate) fn set_keep(&self, fh: FileHandle, keep: bool) {
        if let Some(f) = self.files.read().unwrap_or_else(|e| e.into_inner()).get(&fh.0) {
            f.keep.store(keep, Ordering::Relaxed);
        }
    }

    /// Forget an open file (its descriptor closes when the last user drops it).
    pub(crate) fn remove_file(&self, fh: FileHandle) -> Option<Arc<OwnedFd>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&fh.0).map(|f| f.fd)
    }

    /// Close the descriptor of `fh` now, remembering how to reopen it should the handle be
    /// used again before RELEASE.
    pub(crate) fn park(&self, fh: FileHandle) {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = files.remove(&fh.0) {
            self.parked.lock().unwrap_or_else(|e| e.into_inner()).insert(fh.0, f.origin);
        }
    }

    /// How to reopen a parked handle: its node and open flags.
    pub(crate) fn parked(&self, fh: FileHandle) -> Option<(NodeId, i32)> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).get(&fh.0).map(|o| (o.ino, o.flags))
    }

    /// Put a reopened descriptor back for a parked handle (or keep one another thread put
    /// back first).
    pub(crate) fn unpark(&self, fh: FileHandle, fd: OwnedFd) -> Arc<OwnedFd> {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        let Some(origin) = self.parked.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0) else {
            // Released (or put back) meanwhile: use this descriptor for this one operation.
            return files.get(&fh.0).map_or_else(|| Arc::new(fd), |f| f.fd.clone());
        };
        let file =
            OpenFile { fd: Arc::new(fd), origin, used: AtomicBool::new(true), keep: AtomicBool::new(false) };
        let fd = file.fd.clone();
        files.insert(fh.0, file);
        if files.len() > self.budget {
            self.evict(&mut files);
        }
        fd
    }

    /// Open files holding a descriptor now, and parked ones.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let held = self.files.read().unwrap_or_else(|e| e.into_inner()).len();
        (held, self.parked.lock().unwrap_or_else(|e| e.into_inner()).len())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn past_the_budget_unused_files_are_parked_and_reopenable() {
        let h = Handles::new(8);
        let fhs: Vec<FileHandle> =
            (0..20).map(|i| h.add_file(devnull(), NodeId(i + 2), libc::O_RDWR)).collect();
        let (held, parked) = h.counts();
        assert!(held <= 8, "{held} descriptors held with a budget of 8");
        assert_eq!(held + parked, 20);
        // A parked handle says how to reopen it, without the creating flags.
        let p = *fhs.iter().find(|fh| h.file(**fh).is_err()).expect("something was parked");
        let (ino, flags) = h.parked(p).unwrap();
        assert!(ino.0 >= 2 && flags & libc::O_ACCMODE == libc::O_RDWR);
        let fd = h.unpark(p, devnull());
        assert!(h.file(p).is_ok());
        drop(fd);
        // Released handles leave nothing behind.
        for fh in fhs {
            h.remove_file(fh);
        }
        assert_eq!(h.counts(), (0, 0));
    }

    #[test]
    fn flock_holders_and_files_in_use_are_never_parked() {
        let h = Handles::new(4);
        let locked = h.add_file(devnull(), NodeId(2), libc::O_RDONLY);
        h.set_keep(locked, true);
        let busy = h.add_file(devnull(), NodeId(3), libc::O_RDONLY);
        let in_use = h.file(busy).unwrap();
        for i in 0..20 {
            h.add_file(devnull(), NodeId(10 + i), libc::O_RDONLY);
        }
        assert!(h.file(locked).is_ok(), "a flock holder was parked");
        assert!(h.file(busy).is_ok(), "a file in use was parked");
        drop(in_use);
    }
}
