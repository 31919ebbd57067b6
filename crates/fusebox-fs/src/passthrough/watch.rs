//! `-o watch`: push invalidations for changes made in the source outside this mount (another
//! mount of it, or direct users), so cached names and attributes never stay stale for long
//! even with long timeouts.
//!
//! Every directory the kernel knows gets an inotify watch (added when its node is registered,
//! removed when the node is forgotten). A thread reads the events, deduplicates a batch, and
//! sends:
//! - a name removed or renamed away (DELETE, MOVED_FROM), or a non-directory renamed over a
//!   name (MOVED_TO): INVAL_ENTRY of that name (a replaced name must be looked up again);
//! - a name created (CREATE, or a directory renamed in): INVAL_INODE (attributes) of the
//!   directory only — the kernel caches no negative entries, and unhashing a directory entry
//!   the daemon itself just created could break a process whose working directory it is;
//! - a file modified or its attributes changed (MODIFY, ATTRIB) by someone else (its state
//!   differs from what the daemon last told the kernel or made of it itself, see coherence.rs):
//!   INVAL_INODE of its node (attributes and pages); with the write-back cache, where the kernel
//!   keeps cached sizes, the node is also retired and the name invalidated, so the next access
//!   looks it up as a fresh inode;
//! - a directory's own attributes changed: INVAL_INODE (attributes) of the directory.
//!
//! The daemon's own changes also produce events; they match what the daemon recorded and are
//! skipped (name events are not: a redundant INVAL_ENTRY is cheap). Bound: the latency of inotify plus one poll round (events are handled as they
//! arrive). An overflowed event queue is logged; the next OPEN/LOOKUP still checks (see
//! coherence.rs).

use super::coherence::Coherence;
use super::inodes::Inodes;
use fusebox::session::Notifier;
use fusebox::NodeId;
use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use rustix::fs::AtFlags;
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Maps {
    by_wd: HashMap<i32, NodeId>,
    by_node: HashMap<u64, i32>,
}

/// The inotify instance and its bookkeeping.
pub(crate) struct Watch {
    fd: OwnedFd,
    maps: Mutex<Maps>,
    stop: AtomicBool,
}

enum Action {
    Entry(NodeId, CString),
    Child(NodeId, CString),
    Dir(NodeId),
}

fn mask() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::ONLYDIR
}

impl Watch {
    /// A new inotify instance (non-blocking, close-on-exec).
    pub(crate) fn new() -> std::io::Result<Arc<Watch>> {
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
        Ok(Arc::new(Watch { fd, maps: Mutex::default(), stop: AtomicBool::new(false) }))
    }

    /// Watch directory `node`, whose descriptor is `fd` (O_PATH is fine).
    pub(crate) fn add_dir(&self, node: NodeId, fd: &impl AsRawFd) {
        if self.maps.lock().unwrap_or_else(|e| e.into_inner()).by_node.contains_key(&node.0) {
            return;
        }
        match inotify::add_watch(&self.fd, format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(), mask()) {
            Ok(wd) => {
                let mut m = self.maps.lock().unwrap_or_else(|e| e.into_inner());
                m.by_wd.insert(wd, node);
                m.by_node.insert(node.0, wd);
            }
            Err(e) => tracing::debug!(node = node.0, error = %e, "cannot watch directory"),
        }
    }

    /// `node` was forgotten by the kernel.
    pub(crate) fn forget(&self, node: NodeId) {
        let wd = {
            let mut m = self.maps.lock().unwrap_or_else(|e| e.into_inner());
            let wd = m.by_node.remove(&node.0);
            if let Some(wd) = wd {
                m.by_wd.remove(&wd);
            }
            wd
        };
        if let Some(wd) = wd {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    /// Directories watched (tests, diagnostics).
    pub(crate) fn watched(&self) -> usize {
        self.maps.lock().unwrap_or_else(|e| e.into_inner()).by_node.len()
    }

    /// Stop the thread (it notices within one poll round).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Start the thread that turns events into notifications.
    pub(crate) fn spawn(
        self: &Arc<Self>, inodes: Arc<Inodes>, coherence: Arc<Coherence>, notifier: Notifier,
    ) {
        let me = self.clone();
        let r = std::thread::Builder::new()
            .name("fusebox-watch".into())
            .spawn(move || me.run(&inodes, &coherence, &notifier));
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot start the source watcher");
        }
    }

    fn run(&self, inodes: &Inodes, coherence: &Coherence, notifier: &Notifier) {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        while !self.stop.load(Ordering::SeqCst) {
            let mut pfd = [rustix::event::PollFd::new(&self.fd, rustix::event::PollFlags::IN)];
            let timeout = rustix::time::Timespec { tv_sec: 0, tv_nsec: 500_000_000 };
            match rustix::event::poll(&mut pfd, Some(&timeout)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "source watcher stops");
                    return;
                }
            }
            let actions = self.drain(&mut buf);
            for a in actions {
                if !self.apply(a, inodes, coherence, notifier) {
                    tracing::debug!("mount gone: source watcher stops");
                    return;
                }
            }
        }
    }

    /// Read every queued event and turn them into deduplicated actions.
    fn drain(&self, buf: &mut [MaybeUninit<u8>]) -> Vec<Action> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut reader = inotify::Reader::new(&self.fd, buf);
        loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading inotify events failed");
                    break;
                }
            };
            let flags = ev.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                tracing::warn!("inotify queue overflowed: some source changes are not pushed");
                continue;
            }
            if flags.contains(ReadFlags::IGNORED) {
                let mut m = self.maps.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(node) = m.by_wd.remove(&ev.wd()) {
                    m.by_node.remove(&node.0);
                }
                continue;
            }
            let Some(dir) = self.maps.lock().unwrap_or_else(|e| e.into_inner()).by_wd.get(&ev.wd()).copied()
            else {
                continue;
            };
            let action = match ev.file_name() {
                Some(name) if !name.is_empty() => {
                    let name = name.to_owned();
                    if flags.intersects(ReadFlags::DELETE | ReadFlags::MOVED_FROM)
                        || flags.contains(ReadFlags::MOVED_TO) && !flags.contains(ReadFlags::ISDIR)
                    {
                        // The name is gone, or now names another file (a rename over it).
                        Action::Entry(dir, name)
                    } else if flags.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
                        // A new name: the kernel has no entry for it (negative lookups are not
                        // cached), only the directory's attributes changed. Invalidating the
                        // entry would unhash a directory just created through this mount,
                        // perhaps already a process's working directory.
                        Action::Dir(dir)
                    } else {
                        Action::Child(dir, name)
                    }
                }
                _ => Action::Dir(dir),
            };
            if seen.insert(action_key(&action)) {
                out.push(action);
            }
        }
        out
    }

    /// Send the notification for one action. False when the mount is gone.
    #[allow(clippy::unnecessary_cast)]
    fn apply(&self, action: Action, inodes: &Inodes, coherence: &Coherence, notifier: &Notifier) -> bool {
        let r = match action {
            Action::Entry(dir, name) => notifier.inval_entry(dir, OsStr::from_bytes(name.as_bytes())),
            Action::Dir(dir) => notifier.inval_inode(dir, -1, 0),
            Action::Child(dir, name) => {
                let Ok(dfd) = inodes.fd(dir) else { return true };
                let seen = coherence.clock();
                let Ok(st) = rustix::fs::statat(dfd.as_fd(), name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                else {
                    return true;
                };
                let key = (st.st_dev as u64, st.st_ino as u64);
                let Some(node) = inodes.by_key(key) else { return true };
                let attr = super::to_attr(&st);
                let regular = attr.kind() == Some(fusebox::FileType::Regular);
                if !regular || !coherence.differs(node, &attr, seen) {
                    // Attributes only (mode, owner, times, links), or the daemon's own change.
                    return !gone(notifier.inval_inode(node, -1, 0));
                }
                if coherence.writeback() {
                    if let Some(key) = inodes.retire(node) {
                        coherence.retired(key);
                    }
                    let _ = notifier.inval_entry(dir, OsStr::from_bytes(name.as_bytes()));
                } else {
                    coherence.record(node, &attr);
                }
                notifier.inval_inode(node, 0, 0)
            }
        };
        !gone(r)
    }
}

/// The notification failed because the mount is gone.
fn gone(r: Result<(), fusebox::session::NotifyError>) -> bool {
    matches!(r, Err(fusebox::session::NotifyError::Io(e)) if e.raw_os_error() == Some(libc::ENODEV))
}

fn action_key(a: &Action) -> (u8, u64, Vec<u8>) {
    match a {
        Action::Entry(d, n) => (0, d.0, n.as_bytes().to_vec()),
        Action::Child(d, n) => (1, d.0, n.as_bytes().to_vec()),
        Action::Dir(d) => (2, d.0, Vec::new()),
    }
}
