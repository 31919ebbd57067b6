//! One-shot reply tokens. Each handler gets exactly one; answering consumes it. A token dropped
//! without an answer replies EIO and logs a warning, so a forgotten reply never hangs a caller.

use super::interrupt::{Interrupt, Registration};
use super::types::{Entry, FileAttr, FileHandle, FileLock, FileType, Statfs, Ttl};
use super::Errno;
use crate::abi;
use crate::sched::{RequestClass, Stats};
use crate::session::{BackingId, Retirements};
use crate::transport::splice::Spliced;
use crate::transport::ReplyChannel;
use crate::wire::reply::{push_dirent, push_direntplus, send_reply};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use zerocopy::IntoBytes;

/// Where and how to answer one request. Shared plumbing of all typed tokens.
pub struct Responder {
    chan: Arc<dyn ReplyChannel>,
    shared: Arc<ReplyShared>,
    unique: u64,
    opcode: u32,
    class: RequestClass,
    start: Instant,
    done: bool,
    /// The node of a READ/WRITE counted in the per-file in-flight stats.
    file: Option<u64>,
    /// A write-back WRITE, or a FLUSH/FSYNC under write-back, of this node: an error answer
    /// retires the kernel's inode.
    retire_on_error: Option<std::num::NonZeroU64>,
    intr: Interrupt,
    /// Unregisters the request from the interrupt registry when the token goes away.
    _reg: Option<Registration>,
    /// Dropped after the answer: whatever must follow it (RELEASE ordering) may proceed.
    _after: Option<Box<dyn Send>>,
}

/// Session-wide state the reply tokens need.
pub struct ReplyShared {
    /// Cache lifetimes for entries and attributes.
    pub ttl: Ttl,
    /// Statistics sink.
    pub stats: Arc<Stats>,
    /// Answer [`ReplyData::splice_from_file`] with splice(2) (`-o splice_write`).
    pub splice_write: bool,
    /// Nodes whose kernel inode was retired after a failed write-back (raised generations).
    pub retired: Retirements,
    /// The session's `/dev/fuse`, for notifications the framework sends itself.
    pub(crate) notify_chan: OnceLock<Arc<dyn ReplyChannel>>,
}

impl ReplyShared {
    /// Where the framework's notifications go: the session's `/dev/fuse`, or `fallback` (the
    /// request's channel) when none was set (servers driven directly, e.g. in tests). A
    /// request that came over another transport (an io_uring entry) must not carry them: its
    /// channel takes exactly one reply.
    pub(crate) fn notify_channel<'a>(
        &'a self,
        fallback: &'a Arc<dyn ReplyChannel>,
    ) -> &'a Arc<dyn ReplyChannel> {
        self.notify_chan.get().unwrap_or(fallback)
    }
}

impl Responder {
    pub(crate) fn new(
        chan: Arc<dyn ReplyChannel>,
        shared: Arc<ReplyShared>,
        unique: u64,
        opcode: u32,
        class: RequestClass,
    ) -> Self {
        Responder {
            chan,
            shared,
            unique,
            opcode,
            class,
            start: Instant::now(),
            done: false,
            file: None,
            retire_on_error: None,
            intr: Interrupt::never(),
            _reg: None,
            _after: None,
        }
    }

    /// Count this request in the per-file in-flight stats of `nodeid` until it is answered.
    pub(crate) fn tracking_file(mut self, nodeid: u64) -> Self {
        self.shared.stats.file_enter(nodeid, self.opcode);
        self.file = Some(nodeid);
        self
    }

    /// This is a write-back WRITE of `nodeid` (or a FLUSH/FSYNC committing it): if it fails,
    /// the kernel's cached size and pages hold data the file system does not have, so retire
    /// the inode (session/retire.rs).
    pub(crate) fn retiring_on_error(mut self, nodeid: u64) -> Self {
        self.retire_on_error = std::num::NonZeroU64::new(nodeid);
        self
    }

    /// Leave the per-file in-flight count. Done *before* the reply is written: once it is,
    /// the caller may already have the next request on its way.
    fn leave_file(&mut self) {
        if let Some(nodeid) = self.file.take() {
            self.shared.stats.file_exit(nodeid, self.opcode);
        }
    }

    /// Account for the answered request in the stats.
    fn finish(&mut self, error: bool, bytes: usize) {
        self.done = true;
        self.shared.stats.end(self.opcode, self.class, error, bytes, self.start.elapsed());
    }

    /// Keep `guard` until this request is answered (its drop runs after the reply is sent).
    pub(crate) fn hold_until_answered(mut self, guard: Box<dyn Send>) -> Self {
        self._after = Some(guard);
        self
    }

    /// Attach the request's interrupt handle and its registration (dropped with the token).
    pub(crate) fn registered(mut self, intr: Interrupt, reg: Registration) -> Self {
        self.intr = intr;
        self._reg = Some(reg);
        self
    }

    /// The request's interrupt handle.
    pub fn interrupt(&self) -> Interrupt {
        self.intr.clone()
    }

    fn send(mut self, error: Errno, parts: &[&[u8]]) {
        self.leave_file();
        let err = if error.0 == 0 { 0 } else { -error.0.abs() };
        // ENOSYS: a file system without FLUSH/FSYNC, not a lost write.
        if err != 0 && error != Errno::ENOSYS {
            if let Some(nodeid) = self.retire_on_error {
                // Before the answer: once close(2) returns, a stat must find the new generation.
                self.shared.retired.retire(nodeid.get(), self.shared.notify_channel(&self.chan));
            }
        }
        let bytes = match send_reply(&*self.chan, self.unique, err, parts) {
            Ok(n) => n,
            Err(e) => {
                // ENOENT: the request was interrupted/aborted and the kernel forgot it.
                tracing::debug!(unique = self.unique, error = %e, "reply not delivered");
                0
            }
        };
        self.finish(err != 0, bytes);
    }

    fn ok(self, parts: &[&[u8]]) {
        self.send(Errno(0), parts)
    }

    /// Answer with an error. A LOOKUP answered ENOENT becomes a negative entry when the
    /// session caches absent names (`negative_timeout`), so the kernel does not ask again.
    pub fn error(self, e: Errno) {
        let negative = self.shared.ttl.negative;
        if e == Errno::ENOENT && self.opcode == abi::opcode::FUSE_LOOKUP && !negative.is_zero() {
            let (s, ns) = split(negative);
            let out = abi::fuse_entry_out { entry_valid: s, entry_valid_nsec: ns, ..Default::default() };
            return self.ok(&[out.as_bytes()]);
        }
        self.send(e, &[])
    }

    fn ttl(&self) -> Ttl {
        self.shared.ttl
    }

    /// The wire form of `entry` with lifetimes `ttl`, its generation raised if the node was
    /// retired.
    fn entry_out(&self, entry: &Entry, ttl: Ttl) -> abi::fuse_entry_out {
        let mut out = entry_out(entry, ttl);
        out.generation = out.generation.wrapping_add(self.shared.retired.offset(entry.ino.0));
        out
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done {
            tracing::warn!(
                unique = self.unique,
                opcode = crate::wire::opcode_name(self.opcode),
                "handler dropped its reply without answering; replying EIO"
            );
            self.leave_file();
            let _ = send_reply(&*self.chan, self.unique, -libc::EIO, &[]);
            self.finish(true, 16);
        }
    }
}

fn split(d: Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
}

pub(crate) fn entry_out(entry: &Entry, ttl: Ttl) -> abi::fuse_entry_out {
    let (es, ens) = split(ttl.entry);
    let (as_, ans) = split(ttl.attr);
    abi::fuse_entry_out {
        nodeid: entry.ino.0,
        generation: entry.generation,
        entry_valid: es,
        attr_valid: as_,
        entry_valid_nsec: ens,
        attr_valid_nsec: ans,
        attr: entry.attr.to_abi(),
    }
}

/// What every reply token can do, for code generic over tokens (e.g. the async adapter).
pub trait Reply: Send + Sized + 'static {
    /// Answer with an error.
    fn fail(self, e: Errno);
    /// The request's interrupt handle (see [`Interrupt`]).
    fn interrupt(&self) -> Interrupt;
    /// Answer with the result: `ok` for the value, or the error.
    fn result<T>(self, r: Result<T, Errno>, ok: impl FnOnce(Self, T)) {
        match r {
            Ok(v) => ok(self, v),
            Err(e) => self.fail(e),
        }
    }
}

macro_rules! token {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        pub struct $name(pub(crate) Responder);
        impl Reply for $name {
            fn fail(self, e: Errno) {
                self.0.error(e)
            }
            fn interrupt(&self) -> Interrupt {
                self.0.interrupt()
            }
        }
        impl $name {
            /// Answer with an error.
            pub fn error(self, e: Errno) {
                self.0.error(e)
            }
        }
    };
}

token!(
    /// Reply with no payload (UNLINK, FLUSH, FSYNC, …).
    ReplyEmpty
);
impl ReplyEmpty {
    /// Success.
    pub fn ok(self) {
        self.0.ok(&[])
    }
}

token!(
    /// Reply with a directory entry (LOOKUP, MKDIR, MKNOD, SYMLINK, LINK).
    ReplyEntry
);
impl ReplyEntry {
    /// Answer with `entry`, cached for the session's entry/attr timeouts.
    pub fn entry(self, entry: &Entry) {
        let out = self.0.entry_out(entry, self.0.ttl());
        self.0.ok(&[out.as_bytes()])
    }
    /// Answer with `entry` and explicit cache lifetimes.
    pub fn entry_with_ttl(self, entry: &Entry, ttl: Ttl) {
        let out = self.0.entry_out(entry, ttl);
        self.0.ok(&[out.as_bytes()])
    }
    /// "No such name", cached by the kernel for the entry timeout (a negative dentry), even
    /// where the session's `negative_timeout` is zero.
    pub fn negative(self) {
        let (es, ens) = split(self.0.ttl().entry);
        let out = abi::fuse_entry_out { entry_valid: es, entry_valid_nsec: ens, ..Default::default() };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply with attributes (GETATTR, SETATTR).
    ReplyAttr
);
impl ReplyAttr {
    /// Answer with `attr`, cached for the session's attr timeout.
    pub fn attr(self, attr: &FileAttr) {
        let ttl = self.0.ttl().attr;
        self.attr_with_ttl(attr, ttl)
    }
    /// Answer with `attr`, cached by the kernel for `ttl` instead of the session's lifetime.
    pub fn attr_with_ttl(self, attr: &FileAttr, ttl: Duration) {
        let (s, ns) = split(ttl);
        let out = abi::fuse_attr_out { attr_valid: s, attr_valid_nsec: ns, dummy: 0, attr: attr.to_abi() };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply with bytes (READ, READLINK).
    ReplyData
);
impl ReplyData {
    /// Answer with one slice.
    pub fn data(self, data: &[u8]) {
        self.0.ok(&[data])
    }
    /// Answer with several slices, concatenated by one vectored write (no copy).
    pub fn data_vectored(self, parts: &[&[u8]]) {
        self.0.ok(parts)
    }
    /// Answer with up to `len` bytes of the regular file `file` at `offset`, moved with
    /// splice(2) when the session has `-o splice_write` and replies go to `/dev/fuse`. Gives the
    /// token back (`Err`) when splicing is off or not possible for this file or range, so the
    /// caller answers the ordinary way; nothing has been sent then.
    pub fn splice_from_file(
        mut self,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> Result<(), ReplyData> {
        if !self.0.shared.splice_write {
            return Err(self);
        }
        let chan = self.0.chan.clone();
        let Some(dev) = chan.splice_target() else { return Err(self) };
        let r = &mut self.0;
        r.leave_file();
        match crate::transport::splice::reply_from_file(dev, r.unique, file, offset, len) {
            Ok(Spliced::Sent(n)) => {
                r.finish(false, std::mem::size_of::<abi::fuse_out_header>() + n);
                Ok(())
            }
            Ok(Spliced::Fallback) => Err(self),
            Err(e) => {
                // Like a failed writev: the request is gone (interrupted) or the device is.
                tracing::debug!(unique = r.unique, error = %e, "spliced reply not delivered");
                r.finish(true, 0);
                Ok(())
            }
        }
    }
}

token!(
    /// Reply to WRITE: the number of bytes written.
    ReplyWrite
);
impl ReplyWrite {
    /// `n` bytes were written.
    pub fn written(self, n: u32) {
        let out = abi::fuse_write_out { size: n, padding: 0 };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply to OPEN / OPENDIR: a file handle and FOPEN_* flags.
    ReplyOpen
);
impl ReplyOpen {
    /// Opened with handle `fh`; `flags` are FOPEN_* bits (e.g. `abi::FOPEN_KEEP_CACHE`).
    pub fn opened(self, fh: FileHandle, flags: u32) {
        let out = abi::fuse_open_out { fh: fh.0, open_flags: flags, backing_id: 0 };
        self.0.ok(&[out.as_bytes()])
    }

    /// Opened with handle `fh` in kernel passthrough: reads, writes and mmap go to `backing`
    /// without reaching the file system. `flags` may add only FOPEN_NOFLUSH (the kernel
    /// refuses KEEP_CACHE and the like on a passthrough open, and FOPEN_DIRECT_IO would
    /// override passthrough, so both are removed here).
    pub fn passthrough(self, fh: FileHandle, flags: u32, backing: &BackingId) {
        let out = passthrough_open_out(fh, flags, backing);
        self.0.shared.stats.passthrough_open();
        self.0.ok(&[out.as_bytes()])
    }
}

/// FOPEN_* bits the kernel accepts together with FOPEN_PASSTHROUGH (besides the ones that
/// would turn it off).
const PASSTHROUGH_OPEN_FLAGS: u32 = abi::FOPEN_NOFLUSH;

fn passthrough_open_out(fh: FileHandle, flags: u32, backing: &BackingId) -> abi::fuse_open_out {
    abi::fuse_open_out {
        fh: fh.0,
        open_flags: (flags & PASSTHROUGH_OPEN_FLAGS) | abi::FOPEN_PASSTHROUGH,
        backing_id: backing.id() as i32,
    }
}

token!(
    /// Reply to CREATE / TMPFILE: the new entry plus an open handle.
    ReplyCreate
);
impl ReplyCreate {
    /// Created `entry` and opened it as `fh` with FOPEN_* `flags`.
    pub fn created(self, entry: &Entry, fh: FileHandle, flags: u32) {
        let e = self.0.entry_out(entry, self.0.ttl());
        let o = abi::fuse_open_out { fh: fh.0, open_flags: flags, backing_id: 0 };
        self.0.ok(&[e.as_bytes(), o.as_bytes()])
    }

    /// Created `entry` and opened it as `fh` in kernel passthrough (see
    /// [`ReplyOpen::passthrough`]).
    pub fn created_passthrough(self, entry: &Entry, fh: FileHandle, flags: u32, backing: &BackingId) {
        let e = self.0.entry_out(entry, self.0.ttl());
        let o = passthrough_open_out(fh, flags, backing);
        self.0.shared.stats.passthrough_open();
        self.0.ok(&[e.as_bytes(), o.as_bytes()])
    }
}

token!(
    /// Reply to STATFS.
    ReplyStatfs
);
impl ReplyStatfs {
    /// Answer with file system statistics.
    pub fn statfs(self, s: &Statfs) {
        let out = abi::fuse_statfs_out {
            st: abi::fuse_kstatfs {
                blocks: s.blocks,
                bfree: s.bfree,
                bavail: s.bavail,
                files: s.files,
                ffree: s.ffree,
                bsize: s.bsize,
                namelen: s.namelen,
                frsize: s.frsize,
                ..Default::default()
            },
        };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply to GETXATTR / LISTXATTR: a size probe (request size 0) or the data.
    ReplyXattr
);
impl ReplyXattr {
    /// Answer a size probe with the value's length.
    pub fn size(self, n: u32) {
        let out = abi::fuse_getxattr_out { size: n, padding: 0 };
        self.0.ok(&[out.as_bytes()])
    }
    /// Answer with the value.
    pub fn data(self, data: &[u8]) {
        self.0.ok(&[data])
    }
    /// Answer according to the requested `size`: a size probe, the data, or ERANGE.
    pub fn value(self, requested: u32, data: &[u8]) {
        if requested == 0 {
            self.size(data.len() as u32)
        } else if data.len() > requested as usize {
            self.error(Errno::ERANGE)
        } else {
            self.data(data)
        }
    }
}

token!(
    /// Reply to LSEEK.
    ReplyLseek
);
impl ReplyLseek {
    /// The resulting offset.
    pub fn offset(self, off: u64) {
        let out = abi::fuse_lseek_out { offset: off };
        self.0.ok(&[out.as_bytes()])
    }
}

/// Reply to COPY_FILE_RANGE (both the 32-bit and the 64-bit variant).
pub struct ReplyCopy {
    pub(crate) inner: Responder,
    pub(crate) wide: bool,
}
impl Reply for ReplyCopy {
    fn fail(self, e: Errno) {
        self.inner.error(e)
    }
    fn interrupt(&self) -> Interrupt {
        self.inner.interrupt()
    }
}
impl ReplyCopy {
    /// `n` bytes were copied.
    pub fn copied(self, n: u64) {
        if self.wide {
            let out = abi::fuse_copy_file_range_out { bytes_copied: n };
            self.inner.ok(&[out.as_bytes()])
        } else {
            let out = abi::fuse_write_out { size: n.min(u32::MAX as u64) as u32, padding: 0 };
            self.inner.ok(&[out.as_bytes()])
        }
    }
    /// Answer with an error.
    pub fn error(self, e: Errno) {
        self.inner.error(e)
    }
}

token!(
    /// Reply to GETLK: the conflicting lock, or the probe back with type F_UNLCK.
    ReplyLock
);
impl ReplyLock {
    /// Answer with `lock` (a conflicting lock, or `typ == F_UNLCK` when there is none).
    pub fn lock(self, lock: &FileLock) {
        let out = abi::fuse_lk_out { lk: lock.to_abi() };
        self.0.ok(&[out.as_bytes()])
    }
}

token!(
    /// Reply to IOCTL.
    ReplyIoctl
);
impl ReplyIoctl {
    /// The ioctl returned `result` and `data` for the caller's output buffer.
    pub fn ioctl(self, result: i32, data: &[u8]) {
        let out = abi::fuse_ioctl_out { result, flags: 0, in_iovs: 0, out_iovs: 0 };
        self.0.ok(&[out.as_bytes(), data])
    }
}

/// Reply to READDIR: fill with [`ReplyDirectory::add`] until it returns `true` (full), then `ok`.
pub struct ReplyDirectory {
    inner: Responder,
    buf: Vec<u8>,
    max: usize,
}
impl Reply for ReplyDirectory {
    fn fail(self, e: Errno) {
        self.inner.error(e)
    }
    fn interrupt(&self) -> Interrupt {
        self.inner.interrupt()
    }
}
impl ReplyDirectory {
    pub(crate) fn new(inner: Responder, max: usize) -> Self {
        ReplyDirectory { inner, buf: Vec::with_capacity(max.min(64 * 1024)), max }
    }
    /// The kernel's buffer size for this reply, in bytes.
    pub fn capacity(&self) -> usize {
        self.max
    }
    /// Add an entry; `offset` is the cookie of the *next* entry. Returns `true` when the buffer is
    /// full and the entry was not added.
    pub fn add(&mut self, ino: u64, offset: u64, kind: FileType, name: &std::ffi::OsStr) -> bool {
        use std::os::unix::ffi::OsStrExt;
        !push_dirent(&mut self.buf, self.max, ino, offset, kind.dirent_type(), name.as_bytes())
    }
    /// Send the entries added so far (none = end of directory).
    pub fn ok(self) {
        let ReplyDirectory { inner, buf, .. } = self;
        inner.ok(&[&buf])
    }
    /// Answer with an error.
    pub fn error(self, e: Errno) {
        self.inner.error(e)
    }
}

/// Reply to READDIRPLUS. Every entry added, except `.` and `..`, counts as one LOOKUP of its
/// inode: the file system must expect a matching FORGET.
pub struct ReplyDirectoryPlus {
    inner: Responder,
    buf: Vec<u8>,
    max: usize,
}
impl Reply for ReplyDirectoryPlus {
    fn fail(self, e: Errno) {
        self.inner.error(e)
    }
    fn interrupt(&self) -> Interrupt {
        self.inner.interrupt()
    }
}
impl ReplyDirectoryPlus {
    pub(crate) fn new(inner: Responder, max: usize) -> Self {
        ReplyDirectoryPlus { inner, buf: Vec::with_capacity(max.min(64 * 1024)), max }
    }
    /// The kernel's buffer size for this reply, in bytes.
    pub fn capacity(&self) -> usize {
        self.max
    }
    /// Add an entry with its attributes; `offset` is the cookie of the next entry. Returns
    /// `true` when full (entry not added, so no lookup counted).
    pub fn add(&mut self, entry: &Entry, offset: u64, name: &std::ffi::OsStr) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let typ = entry.attr.kind().map(FileType::dirent_type).unwrap_or(0);
        let out = self.inner.entry_out(entry, self.inner.ttl());
        !push_direntplus(&mut self.buf, self.max, &out, offset, typ, name.as_bytes())
    }
    /// Send the entries added so far (none = end of directory).
    pub fn ok(self) {
        let ReplyDirectoryPlus { inner, buf, .. } = self;
        inner.ok(&[&buf])
    }
    /// Answer with an error.
    pub fn error(self, e: Errno) {
        self.inner.error(e)
    }
}
