//! `-o sync_close`: close(2) on the mount returns only when the backing file is durable and,
//! if that close was the last descriptor of the open file, its flock lock in the source is
//! gone — so a process using the source directly sees the data and can take the lock the
//! moment close(2) returns.
//!
//! The kernel tells the daemon about every close(2) (FLUSH) but not whether it was the last
//! descriptor of the open file (dup, fork and mmap share one open file; RELEASE comes only
//! after the last reference is gone, asynchronously). By the time FLUSH arrives, the closing
//! descriptor has already left its process's table. So the daemon looks for any other reference
//! to a file of this mount with the same inode number: descriptors in `/proc/*/fd` and mappings
//! in `/proc/*/maps`. None means the open file is going away and its flock lock is dropped now;
//! any (even an unrelated open of the same file) means the lock stays until RELEASE — never
//! early. The scan runs only for handles that hold a flock lock. At a last close the backing
//! descriptor is closed too; if the kernel still uses the handle before RELEASE (it may write
//! back pages dirtied through another open of the inode with any writable handle) the file is
//! reopened for it.

use super::error::errno;
use super::Passthrough;
use fusebox::{Errno, FileHandle, NodeId};
use rustix::fs::{FlockOperation, Mode, OFlags, RawDir};
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

impl Passthrough {
    /// Note that `fh` holds (or no longer holds) a flock lock.
    pub(super) fn note_flock(&self, fh: FileHandle, held: bool) {
        let mut set = self.flocked.lock().unwrap_or_else(|e| e.into_inner());
        if held {
            set.insert(fh.0);
        } else {
            set.remove(&fh.0);
        }
        self.handles.set_keep(fh, held);
    }

    /// The FLUSH part of sync_close: fsync the backing file (its errors are close(2)'s) and
    /// drop the flock lock when this was the last descriptor.
    pub(super) fn sync_close_flush(&self, ino: NodeId, fh: FileHandle) -> Result<(), Errno> {
        let fd = self.file(fh)?;
        let flags = rustix::fs::fcntl_getfl(&*fd).map_err(errno)?;
        if flags & OFlags::ACCMODE != OFlags::RDONLY {
            rustix::fs::fsync(&*fd).map_err(errno)?;
        }
        let holds = self.flocked.lock().unwrap_or_else(|e| e.into_inner()).contains(&fh.0);
        if holds && self.last_descriptor(ino) {
            rustix::fs::flock(&*fd, FlockOperation::Unlock).map_err(errno)?;
            self.note_flock(fh, false);
            // The open file is going away: close the backing descriptor now too. Should the
            // kernel still use the handle before RELEASE (write-back of pages dirtied through
            // another open of the inode), it is reopened.
            drop(fd);
            self.handles.park(fh);
        }
        Ok(())
    }

    /// The backing descriptor of open file `fh`, reopened if sync_close parked it.
    pub(super) fn file(&self, fh: FileHandle) -> Result<std::sync::Arc<OwnedFd>, Errno> {
        match self.handles.file(fh) {
            Ok(fd) => Ok(fd),
            Err(e) => match self.handles.parked(fh) {
                Some((ino, flags)) => {
                    let fd = self.open_node(ino, flags)?;
                    Ok(self.handles.unpark(fh, fd))
                }
                None => Err(e),
            },
        }
    }

    /// True when no process holds a descriptor or mapping of this mount's file `ino`.
    #[allow(clippy::unnecessary_cast)]
    fn last_descriptor(&self, ino: NodeId) -> bool {
        let Some(mnt) = self.mountpoint.get() else { return false };
        let Ok(fd) = self.inodes.fd(ino) else { return false };
        let Ok(st) = rustix::fs::fstat(&*fd) else { return false };
        !referenced(mnt, st.st_ino as u64)
    }
}

/// Whether any process has a descriptor or a mapping of a file under `mnt` with inode number
/// `ino`. Errors reading a process (it exited) count as "no reference" for that process; not
/// being able to read `/proc` at all counts as "referenced" (the lock then waits for RELEASE).
/// Written with raw directory reads and reused buffers: it runs on every sync_close FLUSH of a
/// handle holding a flock lock.
pub(crate) fn referenced(mnt: &Path, ino: u64) -> bool {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(proc_fd) = rustix::fs::open("/proc", dir_flags, Mode::empty()) else { return true };
    let prefix = mnt.as_os_str().as_bytes();
    let under = |target: &[u8]| {
        target.starts_with(prefix) && (target.len() == prefix.len() || target[prefix.len()] == b'/')
    };
    let mut pbuf = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut fbuf = vec![MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut link = [0u8; 4096];
    let mut maps: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut path: Vec<u8> = Vec::with_capacity(64);
    let mut procs = RawDir::new(&proc_fd, &mut pbuf);
    while let Some(ent) = procs.next() {
        let Ok(ent) = ent else { return true };
        let pid = ent.file_name().to_bytes();
        if pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let at = |path: &mut Vec<u8>, tail: &[u8]| {
            path.clear();
            path.extend_from_slice(pid);
            path.extend_from_slice(tail);
        };
        at(&mut path, b"/fd");
        if let Ok(fd_dir) = rustix::fs::openat(&proc_fd, OsStr::from_bytes(&path), dir_flags, Mode::empty()) {
            let mut fds = RawDir::new(&fd_dir, &mut fbuf);
            while let Some(Ok(fd)) = fds.next() {
                let name = fd.file_name();
                if name.to_bytes().first() == Some(&b'.') {
                    continue;
                }
                let Ok(n) = rustix::fs::readlinkat_raw(&fd_dir, name, &mut link[..]) else { continue };
                if !under(&link[..n]) {
                    continue;
                }
                let mut info = Vec::new();
                at(&mut path, b"/fdinfo/");
                path.extend_from_slice(name.to_bytes());
                if let Ok(f) = rustix::fs::openat(
                    &proc_fd,
                    OsStr::from_bytes(&path),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    read_all(&f, &mut info);
                }
                let text = String::from_utf8_lossy(&info);
                let fd_ino =
                    text.lines().find_map(|l| l.strip_prefix("ino:")).and_then(|v| v.trim().parse().ok());
                // Without an inode number we cannot tell: assume it is ours.
                if fd_ino.is_none_or(|i: u64| i == ino) {
                    return true;
                }
            }
        }
        at(&mut path, b"/maps");
        if let Ok(f) = rustix::fs::openat(
            &proc_fd,
            OsStr::from_bytes(&path),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            maps.clear();
            read_all(&f, &mut maps);
            for line in maps.split(|&b| b == b'\n') {
                // address perms offset dev inode path
                let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
                let inode = fields.nth(4);
                let path = fields.next();
                if let (Some(i), Some(path)) = (inode, path) {
                    if under(path) && std::str::from_utf8(i).ok().and_then(|s| s.parse().ok()) == Some(ino) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Read a (proc) file to its end into `out`.
fn read_all(f: &OwnedFd, out: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match rustix::io::read(f, &mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn finds_descriptors_of_files_under_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        assert!(!referenced(d.path(), ino));
        let f = std::fs::File::open(&p).unwrap();
        assert!(referenced(d.path(), ino));
        assert!(!referenced(d.path(), ino + 1));
        assert!(!referenced(&d.path().join("elsewhere"), ino));
        drop(f);
        assert!(!referenced(d.path(), ino));
    }
}
