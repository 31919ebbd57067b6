//! Locks forwarded to the backing files, so that other mounts of the same source and direct
//! users of it see them.
//!
//! - flock(2): the kernel's lock owner is the open file, which is exactly one FUSE handle and
//!   one backing descriptor, so the lock is `flock(2)` on that descriptor. It is dropped by
//!   RELEASE (FLOCK_UNLOCK, and closing the descriptor).
//! - POSIX record locks: the owner is the calling process's file table, shared by all its
//!   descriptors of the file, so each (inode, owner) gets its own backing descriptor holding
//!   OFD locks (`F_OFD_SETLK`). OFD locks conflict with other descriptors' OFD locks and with
//!   classic POSIX locks of processes using the source directly. close(2) of any of the
//!   owner's descriptors (FLUSH) closes that descriptor, which drops its locks, as POSIX says.
//! - OFD locks (`F_OFD_SETLK` in the caller): the owner is the open file description. The
//!   kernel sends no unlock when its last descriptor is closed, so RELEASE of a handle drops
//!   the lock descriptors whose locks were taken through it (a process's own locks are gone by
//!   then: its close sent FLUSH).
//!
//! Waits (SETLKW, blocking flock) run under [`fusebox::sys::run_cancellable`]: FUSE_INTERRUPT
//! makes them return EINTR.

use super::error::io_errno;
use super::{reopen, Passthrough};
use fusebox::fs::{FileLock, Interrupt, LockArgs};
use fusebox::sys::{self, OfdLock};
use fusebox::{Errno, FileHandle, NodeId};
use rustix::fs::FlockOperation;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// A backing descriptor holding one (inode, lock owner)'s locks, and the handle of the
/// SETLK that last used it.
struct LockFd {
    fd: Arc<OwnedFd>,
    fh: u64,
}

/// Backing descriptors that hold the POSIX locks of each (inode, lock owner).
#[derive(Default)]
pub(crate) struct PosixLockFds {
    fds: Mutex<HashMap<(u64, u64), LockFd>>,
}

impl PosixLockFds {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), LockFd>> {
        self.fds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The descriptor of `key`, now used through handle `fh`.
    fn get(&self, key: (u64, u64), fh: u64) -> Option<Arc<OwnedFd>> {
        self.map().get_mut(&key).map(|l| {
            l.fh = fh;
            l.fd.clone()
        })
    }

    fn insert(&self, key: (u64, u64), fh: u64, fd: OwnedFd) -> Arc<OwnedFd> {
        self.map().entry(key).or_insert_with(|| LockFd { fd: Arc::new(fd), fh }).fd.clone()
    }

    /// Drop the descriptor of (ino, owner): its OFD locks go with it.
    pub(crate) fn release(&self, ino: u64, owner: u64) {
        let fd = self.map().remove(&(ino, owner));
        drop(fd);
    }

    /// Drop the descriptors of `ino` last used through handle `fh` (RELEASE).
    pub(crate) fn release_handle(&self, ino: u64, fh: u64) {
        let mut map = self.map();
        map.retain(|&(i, _), l| i != ino || l.fh != fh);
    }

    /// Descriptors held (tests, diagnostics).
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

fn ofd(l: &FileLock) -> OfdLock {
    OfdLock::new(l.typ, l.start, l.end)
}

/// Run a blocking lock call so that an interrupt of the request cancels it (EINTR).
fn interruptible(intr: &Interrupt, op: impl FnMut() -> std::io::Result<()>) -> Result<(), Errno> {
    sys::run_cancellable(
        |c| {
            let c2 = c.clone();
            intr.on_interrupt(move || c2.cancel());
        },
        op,
    )
    .map_err(io_errno)
}

impl Passthrough {
    /// The descriptor holding (ino, owner)'s POSIX locks; opened on first use. Read-write
    /// when possible (a write lock needs a writable descriptor, a read lock a readable one).
    fn lock_fd(&self, ino: NodeId, args: &LockArgs, create: bool) -> Result<Option<Arc<OwnedFd>>, Errno> {
        let key = (ino.0, args.owner);
        if let Some(fd) = self.posix_locks.get(key, args.fh.0) {
            return Ok(Some(fd));
        }
        if !create {
            return Ok(None);
        }
        let path_fd = self.inodes.fd(ino)?;
        let fd = reopen(&*path_fd, libc::O_RDWR)
            .or_else(|_| reopen(&*path_fd, libc::O_RDONLY))
            .or_else(|_| reopen(&*path_fd, libc::O_WRONLY))?;
        Ok(Some(self.posix_locks.insert(key, args.fh.0, fd)))
    }

    pub(super) fn do_getlk(&self, ino: NodeId, args: &LockArgs) -> Result<FileLock, Errno> {
        let free = FileLock { typ: libc::F_UNLCK, ..args.lock };
        let found = if args.flock {
            // flock has no "test" call; try a non-blocking lock on a fresh description.
            let path_fd = self.inodes.fd(ino)?;
            let probe = reopen(&*path_fd, libc::O_RDONLY)?;
            let op = if args.lock.typ == libc::F_WRLCK {
                FlockOperation::NonBlockingLockExclusive
            } else {
                FlockOperation::NonBlockingLockShared
            };
            match rustix::fs::flock(&probe, op) {
                Ok(()) => None,
                Err(rustix::io::Errno::WOULDBLOCK) => Some(FileLock { pid: 0, ..args.lock }),
                Err(e) => return Err(super::error::errno(e)),
            }
        } else {
            let fd = self.lock_fd(ino, args, true)?.ok_or(Errno::EBADF)?;
            sys::ofd_getlk(fd.as_fd(), &ofd(&args.lock)).map_err(io_errno)?.map(|l| {
                // The backing file knows no owning process of an OFD lock: when one of this
                // mount's owners holds a lock there, report its process.
                let ours = self.lock_record.test(ino.0, args);
                let overlaps = ours.typ != libc::F_UNLCK && ours.start <= l.end && l.start <= ours.end;
                FileLock { start: l.start, end: l.end, typ: l.typ, pid: if overlaps { ours.pid } else { 0 } }
            })
        };
        Ok(found.unwrap_or(free))
    }

    pub(super) fn do_setlk(&self, ino: NodeId, args: &LockArgs, intr: &Interrupt) -> Result<(), Errno> {
        if args.flock {
            let fd = self.file(args.fh)?;
            let op = match (args.lock.typ, args.sleep) {
                (libc::F_UNLCK, _) => FlockOperation::Unlock,
                (libc::F_WRLCK, true) => FlockOperation::LockExclusive,
                (libc::F_WRLCK, false) => FlockOperation::NonBlockingLockExclusive,
                (libc::F_RDLCK, true) => FlockOperation::LockShared,
                (libc::F_RDLCK, false) => FlockOperation::NonBlockingLockShared,
                _ => return Err(Errno::EINVAL),
            };
            let call = || rustix::fs::flock(&*fd, op).map_err(std::io::Error::from);
            let r = if args.sleep { interruptible(intr, call) } else { call().map_err(io_errno) };
            if r.is_ok() {
                self.note_flock(args.fh, args.lock.typ != libc::F_UNLCK);
            }
            return r;
        }
        let unlock = args.lock.typ == libc::F_UNLCK;
        let Some(fd) = self.lock_fd(ino, args, !unlock)? else { return Ok(()) };
        let lock = ofd(&args.lock);
        let r = if args.sleep && !unlock {
            // The backing file detects no deadlocks among OFD locks: check this mount's waits.
            self.lock_record.begin_wait(ino.0, args)?;
            let r = interruptible(intr, || sys::ofd_setlk(fd.as_fd(), &lock, true));
            self.lock_record.end_wait(args.owner);
            r
        } else {
            sys::ofd_setlk(fd.as_fd(), &lock, false).map_err(io_errno)
        };
        if r.is_ok() {
            self.lock_record.record(ino.0, args);
        }
        r
    }

    /// close(2) by `owner` (FLUSH): its POSIX locks on `ino` go.
    pub(super) fn release_posix_locks(&self, ino: NodeId, owner: u64) {
        self.posix_locks.release(ino.0, owner);
        self.lock_record.release_posix(ino.0, owner);
    }

    /// The last descriptor of handle `fh`'s open file description was closed (RELEASE): its
    /// OFD locks go.
    pub(super) fn release_handle_locks(&self, ino: NodeId, fh: FileHandle) {
        self.posix_locks.release_handle(ino.0, fh.0);
        self.lock_record.release_description(ino.0, fh.0);
    }

    /// Number of descriptors currently holding POSIX locks (for tests).
    pub fn posix_lock_descriptors(&self) -> usize {
        self.posix_locks.len()
    }
}
