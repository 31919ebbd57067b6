//! Locks shared by every mount (kept in the metadata), the session's start and end, and the
//! open-time coherence check.
//!
//! F_SETLKW waits for a change of the inode's locks: a release on this mount wakes the waiter
//! directly, one on another mount through the change log (NOTIFY on PostgreSQL, a poll on
//! SQLite), and every second the waiter looks anyway. An interrupted wait is dropped by the
//! async adapter, which answers EINTR. A granted lock is a coherence point: what other mounts
//! committed before it is applied to this kernel's caches before the grant is answered, so
//! append under a lock sees the last holder's size.
//!
//! A flock lock is owned by the open file's handle, not by the kernel's lock owner: the kernel
//! names a flock owner by the address of the open file, and releases it with the (background)
//! RELEASE, after that address may already serve a new open file that takes the lock again.
//! Keyed by the address, the late RELEASE dropped the new holder's lock. Handles are never
//! reused.
//!
//! Not done across mounts: deadlock detection (EDEADLK) for record locks that wait on each
//! other through different mounts.

use super::{lock, DfsFs};
use crate::meta::coord::LockRelease;
use fusebox::fs::lockrange::{self, HeldLock};
use fusebox::fs::{Errno, FileHandle, FileLock, LockArgs, MountInfo};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The longest a lock waiter sleeps without looking again (a lost wake-up costs this much).
const LOCK_RECHECK: Duration = Duration::from_secs(1);

/// How long an OPEN that answers ESTALE waits for this mount's handles of the inode to go.
const STALE_HANDLES_WAIT: Duration = Duration::from_millis(500);

impl DfsFs {
    /// Register this mount's session and follow the other mounts' changes.
    pub(super) fn start_session(&self, mount: &MountInfo) {
        self.coherence.start(mount.notifier.clone(), &mount.mountpoint);
    }

    /// Close the session (at unmount): its locks go.
    pub(super) fn end_session(&self) {
        self.coherence.stop();
    }

    /// A handle for a new open file (a number only: OFD locks are released by it).
    pub(super) fn new_handle(&self) -> fusebox::fs::asyncfs::Opened {
        fusebox::fs::asyncfs::Opened {
            fh: FileHandle(self.next_fh.fetch_add(1, Ordering::Relaxed)),
            flags: 0,
        }
    }

    /// OPEN: apply other mounts' changes first; ESTALE when the kernel's inode is stale.
    pub(super) async fn check_open(&self, ino: u64, pid: u32) -> Result<(), Errno> {
        if let Err(e) = self.coherence.check_open(ino, pid).await {
            self.before_estale(ino).await;
            return Err(e);
        }
        if self.coherence.take_resize(ino) {
            self.push_size(ino).await;
        }
        Ok(())
    }

    /// Before the ESTALE that makes the VFS walk to a stale inode again: the walk gets a fresh
    /// inode (with the new size) only if nothing holds the old one. A RELEASE of this mount's
    /// last handle of it may still be on its way (the kernel holds the inode until it is
    /// answered), so wait for this mount's handles of `ino` to go (at most
    /// [`STALE_HANDLES_WAIT`]: a handle open for longer keeps the old inode, a documented
    /// limit), give the kernel a moment to take the answer, and drop its names again.
    async fn before_estale(&self, ino: u64) {
        let deadline = tokio::time::Instant::now() + STALE_HANDLES_WAIT;
        loop {
            let released = self.handles_released.notified();
            if lock(&self.open_handles).get(&ino).is_none_or(|n| *n == 0) {
                break;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let coherence = self.coherence.clone();
        let _ = tokio::task::spawn_blocking(move || coherence.forget_names(ino)).await;
    }

    /// A handle of `ino` was opened here (OPEN, CREATE).
    pub(super) fn handle_opened(&self, ino: u64) {
        *lock(&self.open_handles).entry(ino).or_default() += 1;
    }

    /// A handle of `ino` was released here.
    pub(super) fn handle_released(&self, ino: u64) {
        let mut handles = lock(&self.open_handles);
        if let Some(n) = handles.get_mut(&ino) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                handles.remove(&ino);
            }
        }
        drop(handles);
        self.handles_released.notify_waiters();
    }

    /// Push the size of `ino` to the kernel (it grows a cached size; see `coherence`).
    async fn push_size(&self, ino: u64) {
        let Ok(a) = self.m_read(move |m| m.getattr(ino)).await else { return };
        if !a.is_file() || a.size == 0 {
            return;
        }
        let Ok(last) = self.do_read(ino, a.size - 1, 1).await else { return };
        let Some(&byte) = last.to_vec().first() else { return };
        let c = self.coherence.clone();
        let _ = tokio::task::spawn_blocking(move || c.push_size(ino, a.size, byte)).await;
    }

    /// F_GETLK.
    pub(super) async fn do_getlk(&self, ino: u64, args: LockArgs) -> Result<FileLock, Errno> {
        lockrange::check_request(&args.lock)?;
        let (want, owner) = (args.lock, owner_of(&args));
        let found = self.m(move |m| m.test_lock(ino, owner, args.flock, &want)).await?;
        Ok(found.unwrap_or(FileLock { typ: libc::F_UNLCK, ..args.lock }))
    }

    /// F_SETLK / F_SETLKW (and flock).
    pub(super) async fn do_setlk(&self, ino: u64, args: LockArgs) -> Result<(), Errno> {
        lockrange::check_request(&args.lock)?;
        let unlock = args.lock.typ == libc::F_UNLCK;
        let owner = owner_of(&args);
        if !unlock {
            lock(&self.locked).insert(ino);
        }
        loop {
            let changed = self.coherence.lock_changed.notified();
            tokio::pin!(changed);
            // Registered before the attempt: a release between the attempt and the wait wakes it.
            changed.as_mut().enable();
            let want = HeldLock { owner, flock: args.flock, lock: args.lock, fh: args.fh.0 };
            let conflict = self.m(move |m| m.set_lock(ino, &want)).await?;
            if conflict.is_none() {
                // An unlock or a downgrade may let waiters of this mount in.
                self.coherence.lock_changed.notify_waiters();
                if !unlock {
                    self.coherence.catch_up_async().await;
                    // Always, not only when a change was seen: a LOOKUP answered just before
                    // a commit elsewhere can instantiate the inode with the older size after
                    // the change was applied. The lock holder's appends must start at the end.
                    self.coherence.take_resize(ino);
                    self.push_size(ino).await;
                }
                return Ok(());
            }
            if !args.sleep {
                return Err(Errno::EAGAIN);
            }
            let _ = tokio::time::timeout(LOCK_RECHECK, changed).await;
        }
    }

    /// Drop locks this mount's session holds on `ino` (close, release); the database is asked
    /// only for inodes this mount locked.
    pub(super) async fn release_locks(&self, ino: u64, which: LockRelease) {
        if !lock(&self.locked).contains(&ino) {
            return;
        }
        match self.m(move |m| m.release_locks(ino, which)).await {
            Ok(true) => self.coherence.lock_changed.notify_waiters(),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(ino, errno = e.0, ?which, "releasing locks failed (they go with the session)")
            }
        }
    }
}

/// Who owns the lock `args` asks about: the handle for flock (see the module doc), the kernel's
/// lock owner for record locks.
fn owner_of(args: &LockArgs) -> u64 {
    if args.flock {
        args.fh.0
    } else {
        args.owner
    }
}
