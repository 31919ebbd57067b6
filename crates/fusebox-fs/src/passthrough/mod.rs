//! A passthrough file system: mirrors a source directory, in the spirit of libfuse's
//! `passthrough_hp`.
//!
//! Every operation works relative to the inode it names, with `*at()` system calls on
//! descriptors; no path is ever rebuilt from the root and no symlink inside the source is ever
//! followed (O_NOFOLLOW / AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH everywhere, `/proc/self/fd/N`
//! only to reach the exact inode a descriptor already names). Inodes do not pin descriptors:
//! they keep kernel file handles and a bounded LRU cache of O_PATH descriptors (see
//! [`inodes`](self) for the fallback when handles are unavailable). Open files and directories
//! are real descriptors in a handle table.
//!
//! New files belong to the caller: they are created by the daemon (root) and then chowned to
//! the request's uid/gid, keeping the parent's group when the parent directory is setgid. The
//! daemon is expected to run with umask 0 (the kernel has already applied the caller's umask).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod attr;
mod coherence;
mod direct;
mod error;
mod fdcache;
mod handles;
mod inodes;
mod ioctl;
mod kernel;
mod locks;
mod names;
mod nodeids;
mod ops;
mod sync_close;
mod watch;

pub use error::PassthroughError;
pub use fdcache::DEFAULT_FD_CACHE;
pub use handles::default_file_fds;
pub use names::check_name;

use attr::to_attr;
use error::errno;
use fusebox::fs::fileattr::O_APPEND_CACHED;
use fusebox::fs::Entry;
use fusebox::{sys, Errno, RequestInfo};
use handles::Handles;
use inodes::Inodes;
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// The passthrough file system. See the [module documentation](self).
pub struct Passthrough {
    inodes: std::sync::Arc<Inodes>,
    handles: Handles,
    use_handles: bool,
    euid: u32,
    egid: u32,
    posix_locks: locks::PosixLockFds,
    /// The record locks this mount's owners hold and wait for, mirrored from the backing
    /// file: who holds a conflicting lock (its pid for F_GETLK) and deadlocks among waiters.
    lock_record: std::sync::Arc<crate::locks::LockTable>,
    /// `-o sync_close` (see sync_close.rs).
    sync_close: bool,
    /// O_DIRECT opens answered with FOPEN_DIRECT_IO (ops.rs; `-o fopen_direct_io=off` clears).
    fopen_direct_io: bool,
    /// Handles holding a flock lock.
    flocked: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// Where we are mounted (from `Filesystem::mounted`).
    mountpoint: std::sync::OnceLock<std::path::PathBuf>,
    /// The session's notifier (from `Filesystem::mounted`).
    notifier: std::sync::OnceLock<fusebox::session::Notifier>,
    /// What the kernel was last told about each node (coherence.rs).
    coherence: std::sync::Arc<coherence::Coherence>,
    /// `-o watch`: the source watcher (watch.rs).
    watch: Option<std::sync::Arc<watch::Watch>>,
    /// Ask the kernel for passthrough (`-o kernel_passthrough`, kernel.rs).
    kernel_passthrough: bool,
    /// Backing ids of passthrough opens (kernel.rs).
    kernel: kernel::KernelPassthrough,
    /// Mounted `noatime` (from `Filesystem::mounted`): backing files are opened with
    /// O_NOATIME, so reading through the mount leaves their access times alone.
    noatime: std::sync::atomic::AtomicBool,
}

impl Passthrough {
    /// Mirror the directory `source`, with the default descriptor cache size.
    pub fn new(source: &Path) -> Result<Passthrough, PassthroughError> {
        Self::with_fd_cache(source, DEFAULT_FD_CACHE)
    }

    /// Mirror `source`, caching at most `cache` O_PATH descriptors of inodes.
    pub fn with_fd_cache(source: &Path, cache: usize) -> Result<Passthrough, PassthroughError> {
        Self::build(source, cache, true)
    }

    /// Mirror `source` without kernel file handles: every inode pins an O_PATH descriptor, so
    /// the number of inodes the kernel may hold is bounded by RLIMIT_NOFILE. This is the
    /// fallback used automatically when handles are unsupported or not permitted (non-root).
    pub fn with_pinned_fds(source: &Path) -> Result<Passthrough, PassthroughError> {
        Self::build(source, DEFAULT_FD_CACHE, false)
    }

    fn build(source: &Path, cache: usize, try_handles: bool) -> Result<Passthrough, PassthroughError> {
        let open_err = |e: std::io::Error| PassthroughError::Open { path: source.to_owned(), source: e };
        let meta = std::fs::metadata(source).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PassthroughError::SourceMissing(source.to_owned()),
            _ => open_err(e),
        })?;
        if !meta.is_dir() {
            return Err(PassthroughError::NotADirectory(source.to_owned()));
        }
        let fd = rustix::fs::open(source, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| open_err(e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| open_err(e.into()))?;
        // open_by_handle_at needs a real (not O_PATH) descriptor on the mount.
        let mount_fd =
            rustix::fs::openat(&fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| open_err(e.into()))?;
        // Use file handles only when we can both make and open them.
        let handle = try_handles
            .then(|| sys::name_to_handle_at(fd.as_fd(), OsStr::new("")).ok())
            .flatten()
            .filter(|h| sys::open_by_handle_at(mount_fd.as_fd(), h, libc::O_PATH).is_ok());
        if handle.is_none() && try_handles {
            tracing::warn!(
                source = %source.display(),
                "file handles unavailable (unsupported or not permitted): inodes pin descriptors, \
                 so the number of inodes the kernel may remember is bounded by RLIMIT_NOFILE"
            );
        }
        let use_handles = handle.is_some();
        Ok(Passthrough {
            inodes: std::sync::Arc::new(Inodes::new(
                fd,
                (st.st_dev as u64, st.st_ino as u64),
                handle,
                mount_fd,
                cache,
            )),
            handles: Handles::new(handles::default_file_fds()),
            use_handles,
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
            posix_locks: Default::default(),
            lock_record: crate::locks::LockTable::new(),
            sync_close: false,
            fopen_direct_io: true,
            flocked: Default::default(),
            mountpoint: Default::default(),
            notifier: Default::default(),
            coherence: Default::default(),
            watch: None,
            kernel_passthrough: false,
            kernel: Default::default(),
            noatime: Default::default(),
        })
    }

    /// `-o sync_close`: close(2) returns only after the backing file is fsynced and, when it
    /// was the open file's last descriptor, its flock lock in the source is released.
    pub fn with_sync_close(mut self, on: bool) -> Passthrough {
        self.sync_close = on;
        self
    }

    /// Answer O_DIRECT opens with FOPEN_DIRECT_IO and FOPEN_PARALLEL_DIRECT_WRITES (on by
    /// default; `-o fopen_direct_io=off` in the CLI). Measured faster for direct IO, see
    /// docs/ARCHITECTURE.md.
    pub fn with_fopen_direct_io(mut self, on: bool) -> Passthrough {
        self.fopen_direct_io = on;
        self
    }

    /// Keep at most `n` descriptors for open files (handles.rs): past it the least recently
    /// used are closed and reopened by file handle on their next use. Default:
    /// [`default_file_fds`].
    pub fn with_file_fds(mut self, n: usize) -> Passthrough {
        self.handles = Handles::new(n);
        self
    }

    /// Open files holding a backing descriptor now, and open files whose descriptor is closed
    /// until their next use (kernel passthrough, `file_fds=`, sync_close).
    pub fn open_file_descriptors(&self) -> (usize, usize) {
        self.handles.counts()
    }

    /// Kernel passthrough (kernel.rs): ask the kernel to send the data of open regular files
    /// straight to the backing files. Granted only by kernels with FUSE_PASSTHROUGH (6.9+) and
    /// never together with the write-back cache (passthrough wins when both are asked for);
    /// needs CAP_SYS_ADMIN, without which opens fall back to the daemon's data path.
    pub fn with_kernel_passthrough(mut self, on: bool) -> Passthrough {
        self.kernel_passthrough = on;
        self
    }

    /// Cache lifetimes this passthrough tells the kernel by default. Without `watch` others
    /// may change SOURCE unseen, so names and attributes live one second (the OPEN/LOOKUP
    /// checks of coherence.rs catch the rest) and absent names are not cached. With `watch`
    /// every change in SOURCE is pushed as an invalidation, so names and attributes may live a
    /// day; absent names still are not cached (a name created in SOURCE only invalidates its
    /// directory's attributes, see watch.rs).
    pub fn default_ttl(&self) -> fusebox::Ttl {
        match self.watch {
            Some(_) => fusebox::Ttl {
                entry: std::time::Duration::from_secs(86_400),
                attr: std::time::Duration::from_secs(86_400),
                negative: std::time::Duration::ZERO,
            },
            None => fusebox::Ttl::default(),
        }
    }

    /// `-o watch`: watch the source (inotify) and push invalidations for changes made outside
    /// this mount. Without inotify (an error is logged) the mount works without it.
    pub fn with_watch(mut self, on: bool) -> Passthrough {
        self.watch = if on {
            watch::Watch::new()
                .map_err(|e| tracing::warn!(error = %e, "no inotify: changes made outside the mount are not pushed"))
                .ok()
        } else {
            None
        };
        self
    }

    /// Directories watched by `-o watch` (0 without it).
    pub fn watched_directories(&self) -> usize {
        self.watch.as_ref().map_or(0, |w| w.watched())
    }

    /// True when inodes are kept as kernel file handles (not as pinned descriptors).
    pub fn uses_file_handles(&self) -> bool {
        self.use_handles
    }

    /// The node id the kernel knows for the backing file with `st_dev`/`st_ino`, if any.
    pub fn node_of(&self, st_dev: u64, st_ino: u64) -> Option<fusebox::NodeId> {
        self.inodes.by_key((st_dev, st_ino))
    }

    /// Number of inodes the kernel currently holds references to (including the root).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// Count a lookup of the inode `fd` names and describe it. `pin` keeps `fd` in the inode
    /// instead of a file handle (O_TMPFILE files, whose handles cannot be reopened).
    fn register(&self, fd: OwnedFd, pin: bool) -> Result<Entry, Errno> {
        let seen = self.coherence.clock();
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        let key = (st.st_dev as u64, st.st_ino as u64);
        let mut handle = if self.use_handles && !pin {
            sys::name_to_handle_at(fd.as_fd(), OsStr::new("")).ok()
        } else {
            None
        };
        if let Some(h) = &handle {
            if !self.inodes.has_mount(h.mount_id) {
                // A mount inside SOURCE: it is entered through a directory, which gives us a
                // descriptor for open_by_handle_at. Anything else keeps its descriptor pinned.
                let dir = (st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                    .then(|| {
                        rustix::fs::openat(
                            &fd,
                            ".",
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .ok()
                    })
                    .flatten();
                match dir {
                    Some(d) => self.inodes.add_mount(h.mount_id, d),
                    None => handle = None,
                }
            }
        }
        let attr = to_attr(&st);
        // A file changed elsewhere since the kernel last heard of it (coherence.rs).
        let mut before = self.inodes.by_key(key);
        if let Some(old) = before {
            if self.lookup_changed(old, &attr, seen) {
                before = None;
            }
        }
        let (ino, generation) = self.inodes.lookup(fd, key, handle);
        if before == Some(ino) {
            self.told(ino, &attr, seen);
        } else {
            self.coherence.born(ino, key, &attr);
        }
        if let Some(w) = &self.watch {
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                if let Ok(fd) = self.inodes.fd(ino) {
                    w.add_dir(ino, &*fd);
                }
            }
        }
        Ok(Entry { ino, generation, attr })
    }

    /// Look up the single component `name` (already validated) in the directory `dir`.
    fn lookup_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> Result<Entry, Errno> {
        let fd =
            rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(errno)?;
        self.register(fd, false)
    }

    /// After creating `name` in `dir` as the daemon with `mode`: give it to the caller and
    /// look it up.
    fn finish_new(
        &self, req: &RequestInfo, dir: BorrowedFd<'_>, name: &OsStr, mode: u32,
    ) -> Result<Entry, Errno> {
        let fd =
            rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(errno)?;
        self.set_owner(req, dir, fd.as_fd(), mode)?;
        self.register(fd, false)
    }

    /// Make the new file `fd` (in directory `dir`, created with `mode`) owned by the caller;
    /// its group stays the one the backing file system gave it when `dir` is setgid. The
    /// set-id bits it was created with stay: the kernel already dropped S_ISGID where the
    /// caller may not have it, and chown(2) would clear them.
    fn set_owner(
        &self, req: &RequestInfo, dir: BorrowedFd<'_>, fd: BorrowedFd<'_>, mode: u32,
    ) -> Result<(), Errno> {
        if req.uid == self.euid && req.gid == self.egid {
            return Ok(());
        }
        if req.uid == u32::MAX || req.gid == u32::MAX {
            return Err(Errno::EINVAL);
        }
        let parent = rustix::fs::fstat(dir).map_err(errno)?;
        let gid = (parent.st_mode & libc::S_ISGID == 0).then(|| Gid::from_raw(req.gid));
        let setid = mode & (libc::S_ISUID | libc::S_ISGID);
        let before = if setid != 0 { Some(rustix::fs::fstat(fd).map_err(errno)?.st_mode) } else { None };
        rustix::fs::chownat(
            fd,
            "",
            Some(Uid::from_raw(req.uid)),
            gid,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        if let Some(before) = before {
            let after = rustix::fs::fstat(fd).map_err(errno)?.st_mode;
            let lost = before & setid & !after;
            if lost != 0 {
                rustix::fs::chmod(proc_path(&fd), ops::mode_of(after | lost)).map_err(errno)?;
            }
        }
        Ok(())
    }

    /// open(2) flags for a backing open: never create/follow here, close-on-exec; O_NOATIME
    /// on a `noatime` mount (a daemon running as root may use it on any file). (The write-back
    /// cache rules for O_WRONLY and O_APPEND are applied by the framework before the flags
    /// reach us; its O_APPEND_CACHED bit is no open(2) flag.)
    fn open_flags(&self, flags: i32) -> i32 {
        let noatime = self.noatime.load(std::sync::atomic::Ordering::Relaxed) && self.euid == 0;
        let not_here = libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_NOFOLLOW | O_APPEND_CACHED;
        (flags & !not_here) | libc::O_CLOEXEC | if noatime { libc::O_NOATIME } else { 0 }
    }
}

/// `/proc/self/fd/N` for a descriptor: reaches exactly the inode `fd` refers to (a symlink
/// stays the symlink), never a path inside the source.
fn proc_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Flags to reopen an open file's backing descriptor with later (a parked handle): its
/// access mode and status flags, without what only the first open may do.
fn reopen_flags(flags: i32) -> i32 {
    (flags & !(libc::O_TRUNC | libc::O_CREAT | libc::O_EXCL | libc::O_TMPFILE)) | libc::O_CLOEXEC
}

/// Reopen the inode a descriptor refers to with `flags`, through `/proc/self/fd/N`.
fn reopen(fd: &impl AsRawFd, flags: i32) -> Result<OwnedFd, Errno> {
    rustix::fs::open(proc_path(fd), OFlags::from_bits_retain(flags as _) | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno)
}
