//! Coherence with the other mounts of the file system: this mount's session (registered at
//! mount, kept alive by a heartbeat, closed at unmount) and the change log turned into
//! invalidations of what this mount's kernel caches.
//!
//! A background thread follows the change log (woken by PostgreSQL's NOTIFY, or polling
//! SQLite every [`LOCAL_POLL`]) and for every change another mount made:
//! - a changed name: `inval_entry` on the directory, so the next access looks it up again;
//! - changed attributes: `inval_inode` (attributes only);
//! - changed data: `inval_inode` (pages too), `inval_entry` on every name of the file (an inode
//!   nothing else holds is then evicted and looked up afresh, with the new size: under the
//!   write-back cache the kernel never takes a size from the server for a cached inode). The
//!   inode is marked stale until the kernel forgets it, and its size to refresh: at the next
//!   OPEN or lock grant here, a one-byte `store` of the file's last byte at the new size grows
//!   the size of an inode that stays cached (open); the kernel takes no size from a store of
//!   zero bytes, and a shrunk size cannot be pushed at all (the ESTALE below covers OPEN);
//! - lock changes wake this mount's lock waiters.
//!
//! Files this mount created are known to have no extended attributes until this mount sets
//! one or another mount's change to the inode is applied: their GETXATTR (the kernel asks for
//! `security.capability` before the first write to every file) and LISTXATTR are answered here,
//! without a metadata query. Like every cache fed by the change log, this one may lag another
//! mount's change by the time the log takes to arrive (see [`LOCAL_POLL`], [`REMOTE_POLL`]).
//!
//! A create makes the kernel drop its directory's attributes and ask for them (GETATTR) at the
//! next path walk. The create's own transaction knows them (it locked the directory, read it
//! and changed it in known ways), so the mount keeps them and answers that GETATTR itself, until
//! anything else that may change a directory happens: any other namespace or attribute change
//! here, any change from another mount applied from the log (all kept attributes go then), or
//! the kernel forgetting the directory. The new file's own attributes are kept the same way
//! (and also dropped by a commit of its data here): the SETATTR of mtime the kernel sends before
//! the first close's flush is answered from them with what the write buffer adds. READs keep
//! what they read (a file's attributes, its chunks' slice lists) under the same rules, so a
//! sequential reader asks the metadata once per chunk instead of twice per READ; a slice list
//! is used for [`SLICE_LISTS_KEPT_FOR`] at most.
//!
//! OPEN follows the log itself first (one query when nothing changed), so an open(2) right
//! after another mount's close(2) never misses a commit the thread has not seen yet. An
//! inode still marked stale then (the opener walked a cached name before the invalidation)
//! gets ESTALE once: the VFS walks the path again with revalidation, now through a fresh
//! inode. A lock granted here is a coherence point too: changes published before it are
//! applied before the grant is answered.

use crate::meta::coord::Change;
use crate::meta::{Attr, MetaStore, SliceRef};
use fusebox::fs::{Errno, NodeId};
use fusebox::session::Notifier;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a mount on a local database (SQLite) looks at the change log.
pub const LOCAL_POLL: Duration = Duration::from_millis(100);
/// How long a mount on a networked database waits for a NOTIFY before looking anyway.
pub const REMOTE_POLL: Duration = Duration::from_secs(1);
/// Changes older than this are deleted from the log (a mount that fell further behind
/// invalidates everything its kernel caches).
pub const NOTICE_RETENTION: Duration = Duration::from_secs(600);
/// Changes read from the log per query.
const BATCH: usize = 1000;
/// The VFS retries an open that got ESTALE at once: an OPEN of the same inode by the same
/// thread within this long is taken as that retry and goes through (an open never gets
/// ESTALE twice in a row).
const RETRY_WINDOW: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kernel's lookup count per inode (shared with the file system).
pub(crate) type Lookups = Arc<Mutex<HashMap<u64, u64>>>;

/// How many chunks' slice lists a mount keeps (all are dropped when more would be kept).
const SLICE_LISTS_KEPT: usize = 4096;

/// How long a kept slice list is used. Another mount's compaction changes a chunk's slices
/// without a notice (the data stays the same); the old list's blocks outlive it for a while
/// (`fusebox dfs gc` spares young objects), and a read whose blocks are gone plans again.
const SLICE_LISTS_KEPT_FOR: Duration = Duration::from_secs(30);

/// A chunk's slice list as a read found it, and when.
type KeptSlices = (Instant, Arc<Vec<SliceRef>>);

/// What [`Coherence`] keeps of inodes (module doc).
#[derive(Default)]
struct Kept {
    /// Attributes by inode.
    attrs: HashMap<u64, Attr>,
    /// Slice lists by inode and chunk, with when they were read.
    slices: HashMap<u64, HashMap<u64, KeptSlices>>,
    /// How many chunks `slices` holds.
    chunks: usize,
    /// Directories whose kept attributes came from a create that found no default ACL.
    plain_dirs: HashSet<u64>,
}

impl Kept {
    fn drop_inode(&mut self, ino: u64) {
        self.attrs.remove(&ino);
        self.plain_dirs.remove(&ino);
        if let Some(chunks) = self.slices.remove(&ino) {
            self.chunks -= chunks.len();
        }
    }
}

/// What the file system and its background thread share.
pub(crate) struct Coherence {
    meta: Arc<dyn MetaStore>,
    lookups: Lookups,
    notifier: OnceLock<Notifier>,
    /// Session timeout: a mount without a heartbeat for this long is expired by the others.
    timeout: Duration,
    /// The last change applied; held while applying, so changes are applied once and in order.
    applied: Mutex<u64>,
    /// Cached inodes whose data another mount changed (see the module doc).
    stale: Mutex<HashSet<u64>>,
    /// Bumped by every data change applied (see [`Coherence::data_epoch`]).
    data_epoch: std::sync::atomic::AtomicU64,
    /// Cached inodes whose size another mount changed, to refresh with a `store`.
    resize: Mutex<HashSet<u64>>,
    /// Inodes this mount created that have no extended attributes (see the module doc); an
    /// inode leaves with its FORGET, so the kernel's inode cache bounds the set.
    no_xattrs: Mutex<HashSet<u64>>,
    /// Attributes and slice lists this mount's own transactions left or its reads found,
    /// until something may change them (module doc).
    kept_attrs: Mutex<Kept>,
    /// Bumped (under `kept_attrs`' lock) whenever kept attributes are dropped: a create keeps
    /// its attributes only if nothing dropped them while it ran.
    kept_attrs_gen: AtomicU64,
    /// (inode, thread) whose OPEN got ESTALE, and when (the retry goes through).
    estale_given: Mutex<HashMap<(u64, u32), Instant>>,
    /// Woken when locks may have been released (here or elsewhere).
    pub(crate) lock_changed: tokio::sync::Notify,
    /// True while a session is open.
    active: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// An invalidation's outcome, logged at trace level only: ENOENT from the kernel (it does not
/// have the inode or name cached) is the common case.
fn quiet(r: Result<(), fusebox::session::NotifyError>) {
    if let Err(e) = r {
        tracing::trace!("invalidation: {e}");
    }
}

impl Coherence {
    pub(crate) fn new(meta: Arc<dyn MetaStore>, lookups: Lookups, timeout: Duration) -> Arc<Coherence> {
        Arc::new(Coherence {
            meta,
            lookups,
            notifier: OnceLock::new(),
            timeout,
            applied: Mutex::new(0),
            stale: Mutex::new(HashSet::new()),
            resize: Mutex::new(HashSet::new()),
            no_xattrs: Mutex::new(HashSet::new()),
            kept_attrs: Mutex::new(Kept::default()),
            kept_attrs_gen: AtomicU64::new(0),
            data_epoch: std::sync::atomic::AtomicU64::new(0),
            estale_given: Mutex::new(HashMap::new()),
            lock_changed: tokio::sync::Notify::new(),
            active: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }

    /// Register this mount and start following the other mounts' changes.
    pub(crate) fn start(self: &Arc<Self>, notifier: Notifier, mountpoint: &std::path::Path) {
        let _ = self.notifier.set(notifier);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let info = format!("{} pid {} {}", host.trim(), std::process::id(), mountpoint.display());
        let opened = self.meta.last_notice().and_then(|seq| {
            *lock(&self.applied) = seq;
            self.meta.open_session(&info)
        });
        match opened {
            Ok(sid) => tracing::debug!(sid, "session opened"),
            Err(e) => {
                // The mount works alone; other mounts' changes show after the kernel's timeouts.
                tracing::error!(error = %e, "cannot open a session: other mounts' changes will not be followed");
                return;
            }
        }
        self.active.store(true, Ordering::SeqCst);
        self.expire();
        // Unlinked inodes no session keeps: left by a mount without a session (a format-1
        // daemon, a tool) that died with them open. (An expired session's are deleted with it.)
        match self.meta.reclaim_orphans() {
            Ok(0) => {}
            Ok(n) => tracing::info!(inodes = n, "deleted unlinked inodes nobody keeps"),
            Err(e) => tracing::warn!(error = %e, "could not reclaim unlinked inodes"),
        }
        let me = self.clone();
        let t = std::thread::Builder::new().name("fusebox-dfs-coherence".into()).spawn(move || me.run());
        match t {
            Ok(t) => *lock(&self.thread) = Some(t),
            Err(e) => tracing::error!("cannot start the coherence thread: {e}"),
        }
    }

    /// Stop following changes and close the session (its locks go).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        if self.active.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.meta.close_session() {
                tracing::warn!(error = %e, "closing the session failed; it expires by itself");
            }
        }
    }

    /// True while this mount has a session.
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    fn run(&self) {
        let poll = if self.meta.reads_are_local() { LOCAL_POLL } else { REMOTE_POLL };
        let beat_every = (self.timeout / 4).max(Duration::from_millis(200));
        let mut next_beat = Instant::now() + beat_every;
        let mut next_prune = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            self.meta.wait_for_notices(poll);
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            self.catch_up();
            let now = Instant::now();
            if now >= next_beat {
                next_beat = now + beat_every;
                if let Err(e) = self.meta.heartbeat() {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
                self.expire();
            }
            if now >= next_prune {
                next_prune = now + NOTICE_RETENTION / 10;
                let before = crate::meta::store::now_ns() - NOTICE_RETENTION.as_nanos() as i64;
                if let Err(e) = self.meta.prune_notices(before) {
                    tracing::debug!(error = %e, "pruning the change log failed");
                }
            }
        }
    }

    /// Expire the sessions of mounts that stopped their heartbeat: their locks and the
    /// unlinked inodes only they kept go, and waiters here look again.
    fn expire(&self) {
        match self.meta.expire_sessions(self.timeout) {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(sessions = ?gone, "expired the sessions of mounts without a heartbeat");
                self.lock_changed.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring sessions failed"),
        }
    }

    fn known(&self, ino: u64) -> bool {
        ino == crate::meta::ROOT_INO || lock(&self.lookups).get(&ino).is_some_and(|n| *n > 0)
    }

    /// Apply every change published since the last one applied (blocking: run it off the
    /// async runtime). Errors are logged; the next call tries again.
    pub(crate) fn catch_up(&self) {
        if !self.active() {
            return;
        }
        let me = self.meta.session_id();
        let mut applied = lock(&self.applied);
        loop {
            let notices = match self.meta.notices_after(*applied, BATCH) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the change log failed");
                    return;
                }
            };
            if notices.first().is_some_and(|n| n.seq > *applied + 1) && *applied > 0 {
                // Older changes were pruned before this mount read them: drop every cached
                // attribute and page of what the kernel knows (names stay until their timeout).
                tracing::warn!(
                    from = *applied,
                    "the change log moved past this mount; invalidating all cached inodes"
                );
                let all: Vec<u64> = lock(&self.lookups).keys().copied().collect();
                all.into_iter().for_each(|ino| self.apply(Change::Data(ino)));
            }
            for n in &notices {
                *applied = n.seq;
                if n.sid != me || me == 0 {
                    self.apply(n.change.clone());
                }
            }
            if notices.len() < BATCH {
                return;
            }
        }
    }

    fn apply(&self, change: Change) {
        if let Change::Attr(ino) | Change::Data(ino) = change {
            self.xattrs_may_change(ino);
        }
        if !matches!(change, Change::Lock(_)) {
            self.drop_kept_attrs();
        }
        let Some(notifier) = self.notifier.get() else { return };
        match change {
            Change::Entry(parent, name) => {
                if self.known(parent) {
                    quiet(notifier.inval_entry(NodeId(parent), OsStr::from_bytes(&name)));
                }
            }
            Change::Attr(ino) => {
                if self.known(ino) {
                    quiet(notifier.inval_inode(NodeId(ino), -1, 0));
                }
            }
            Change::Data(ino) => {
                if !self.known(ino) {
                    return;
                }
                lock(&self.stale).insert(ino);
                self.data_epoch.fetch_add(1, Ordering::SeqCst);
                quiet(notifier.inval_inode(NodeId(ino), 0, 0));
                self.forget_names(ino);
                lock(&self.resize).insert(ino);
            }
            Change::Lock(_) => self.lock_changed.notify_waiters(),
        }
    }

    /// `inval_entry` on every name of `ino` the kernel may have cached: an inode nothing else
    /// holds then goes, and the next lookup makes a fresh one.
    pub(crate) fn forget_names(&self, ino: u64) {
        let Some(notifier) = self.notifier.get() else { return };
        if let Ok(names) = self.meta.names_of(ino) {
            for (parent, name) in names.iter().filter(|(p, _)| self.known(*p)) {
                quiet(notifier.inval_entry(NodeId(*parent), OsStr::from_bytes(name)));
            }
        }
    }

    /// OPEN of `ino` by thread `pid`: apply what other mounts changed, then ESTALE if the
    /// kernel's inode is stale (see the module doc).
    pub(crate) async fn check_open(self: &Arc<Self>, ino: u64, pid: u32) -> Result<(), Errno> {
        if !self.active() {
            return Ok(());
        }
        self.catch_up_async().await;
        let stale = lock(&self.stale).remove(&ino);
        let now = Instant::now();
        let mut given = lock(&self.estale_given);
        let retry = given.remove(&(ino, pid)).is_some_and(|t| now.duration_since(t) < RETRY_WINDOW);
        if !stale || retry {
            return Ok(());
        }
        given.retain(|_, t| now.duration_since(*t) < RETRY_WINDOW);
        given.insert((ino, pid), now);
        Err(Errno(libc::ESTALE))
    }

    /// [`Coherence::catch_up`] on the blocking pool.
    pub(crate) async fn catch_up_async(self: &Arc<Self>) {
        let me = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || me.catch_up()).await {
            tracing::error!(error = %e, "applying the change log failed");
        }
    }

    /// The kernel forgot `ino`: its next inode is fresh.
    pub(crate) fn forgotten(&self, ino: u64) {
        lock(&self.stale).remove(&ino);
        lock(&self.resize).remove(&ino);
        self.xattrs_may_change(ino);
        lock(&self.kept_attrs).drop_inode(ino);
    }

    /// The generation of the kept attributes; pass it to [`Coherence::keep_attr`].
    pub(crate) fn kept_attrs_gen(&self) -> u64 {
        self.kept_attrs_gen.load(Ordering::SeqCst)
    }

    /// Keep `a`, attributes as a create of this mount left them or a read found them, unless
    /// the kept attributes were dropped since `gen` was read (before the create or read began)
    /// or a later version is kept already.
    pub(crate) fn keep_attr(&self, a: Attr, gen: u64) {
        self.keep(a, gen, false);
    }

    /// [`Coherence::keep_attr`] of a directory a create found without a default ACL.
    pub(crate) fn keep_plain_dir(&self, a: Attr, gen: u64) {
        self.keep(a, gen, true);
    }

    fn keep(&self, a: Attr, gen: u64, plain_dir: bool) {
        let mut kept = lock(&self.kept_attrs);
        if self.kept_attrs_gen.load(Ordering::SeqCst) != gen {
            return;
        }
        if kept.attrs.get(&a.ino).is_none_or(|k| k.version < a.version) {
            // What is known of the default ACL goes with the attributes it was read with.
            if plain_dir {
                kept.plain_dirs.insert(a.ino);
            } else {
                kept.plain_dirs.remove(&a.ino);
            }
            kept.attrs.insert(a.ino, a);
        }
    }

    /// The kept attributes of directory `ino` if a create found it without a default ACL.
    pub(crate) fn kept_plain_dir(&self, ino: u64) -> Option<Attr> {
        let kept = lock(&self.kept_attrs);
        kept.plain_dirs.contains(&ino).then(|| kept.attrs.get(&ino).cloned()).flatten()
    }

    /// The kept attributes of `ino`, if any.
    pub(crate) fn kept_attr(&self, ino: u64) -> Option<Attr> {
        lock(&self.kept_attrs).attrs.get(&ino).cloned()
    }

    /// Keep the slice list of chunk `chunk` of `ino` as a read found it, unless kept
    /// attributes were dropped since `gen` was read (before the read began).
    pub(crate) fn keep_slices(&self, ino: u64, chunk: u64, slices: Arc<Vec<SliceRef>>, gen: u64) {
        let mut kept = lock(&self.kept_attrs);
        if self.kept_attrs_gen.load(Ordering::SeqCst) != gen {
            return;
        }
        if kept.chunks >= SLICE_LISTS_KEPT {
            kept.slices.clear();
            kept.chunks = 0;
        }
        let old = kept.slices.entry(ino).or_default().insert(chunk, (Instant::now(), slices));
        kept.chunks += usize::from(old.is_none());
    }

    /// The kept slice list of chunk `chunk` of `ino`, if any and younger than
    /// [`SLICE_LISTS_KEPT_FOR`].
    pub(crate) fn kept_slices(&self, ino: u64, chunk: u64) -> Option<Arc<Vec<SliceRef>>> {
        let kept = lock(&self.kept_attrs);
        let (at, slices) = kept.slices.get(&ino)?.get(&chunk)?;
        (at.elapsed() < SLICE_LISTS_KEPT_FOR).then(|| slices.clone())
    }

    /// Something may have changed a directory or a link count: drop every kept attribute.
    pub(crate) fn drop_kept_attrs(&self) {
        let mut kept = lock(&self.kept_attrs);
        self.kept_attrs_gen.fetch_add(1, Ordering::SeqCst);
        *kept = Kept::default();
    }

    /// `ino`'s own attributes changed (SETATTR, an xattr, a commit of its data): drop what is
    /// kept of it (a file's change leaves every directory as it was). The generation moves in
    /// any case: a create in `ino` that read it before the change must not keep its reading.
    pub(crate) fn drop_kept_attr(&self, ino: u64) {
        let mut kept = lock(&self.kept_attrs);
        self.kept_attrs_gen.fetch_add(1, Ordering::SeqCst);
        kept.drop_inode(ino);
    }

    /// This mount just created `ino` without extended attributes.
    pub(crate) fn created_without_xattrs(&self, ino: u64) {
        lock(&self.no_xattrs).insert(ino);
    }

    /// True when `ino` is known to have no extended attributes.
    pub(crate) fn has_no_xattrs(&self, ino: u64) -> bool {
        lock(&self.no_xattrs).contains(&ino)
    }

    /// `ino`'s extended attributes are about to change (here) or may have (elsewhere): ask the
    /// metadata from now on.
    pub(crate) fn xattrs_may_change(&self, ino: u64) {
        lock(&self.no_xattrs).remove(&ino);
    }

    /// A counter of applied data changes: a LOOKUP reads it before and after reading the
    /// attributes and reads them again when it moved (the kernel would otherwise instantiate
    /// the inode with a size older than the invalidation it was sent already).
    pub(crate) fn data_epoch(&self) -> u64 {
        self.data_epoch.load(Ordering::SeqCst)
    }

    /// True (once) if another mount changed the size of cached `ino` since the last call.
    pub(crate) fn take_resize(&self, ino: u64) -> bool {
        lock(&self.resize).remove(&ino)
    }

    /// Tell the kernel that `ino` ends at `size` with `last` as its last byte (a `store`,
    /// which grows a cached size; see the module doc). Blocking.
    pub(crate) fn push_size(&self, ino: u64, size: u64, last: u8) {
        if let (Some(n), Some(at)) = (self.notifier.get(), size.checked_sub(1)) {
            if let Err(e) = n.store(NodeId(ino), at, &[last]) {
                tracing::warn!(ino, size, "size refresh: {e}");
            }
        }
    }
}
