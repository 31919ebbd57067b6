//! The boundary between the session and the file system layer: a session serves a [`Handler`]
//! and knows nothing of file system methods. `fs/dispatch.rs` implements it for every
//! `Filesystem`; the [`Dispatch`] context hands it what the session owns for one request (its
//! reply channel, the write-back rules, release ordering, notifications).

use super::init::Capabilities;
use super::responder::Responder;
use super::sched::order::ReleaseGuard;
use super::server::Server;
use super::MountInfo;
use crate::abi;
use crate::session::sched::{RequestClass, Stats};
use crate::transport::buffer::PayloadSource;
use crate::transport::mem::MemChannel;
use crate::transport::ReplyChannel;
use crate::wire::reply::send_notify;
use crate::wire::types::{Errno, NodeId};
use crate::wire::Request;
use std::sync::Arc;
use zerocopy::IntoBytes;

/// Open(2) flag a file system sees, under the write-back cache, in place of `O_APPEND`.
///
/// With write-back the kernel computes every write's offset itself, so the framework takes
/// `O_APPEND` out of OPEN and CREATE flags (a backing descriptor opened `O_APPEND` would write
/// at the backing file's end instead). It sets this bit instead, so that a file system which
/// enforces append-only files (`chattr +a`) still knows the caller asked to append. The bit
/// is not an open(2) flag: mask it before passing flags to open(2).
pub const O_APPEND_CACHED: i32 = 0x4000_0000;

/// What a session serves.
pub trait Handler: Send + Sync + 'static {
    /// INIT: switch off capabilities the file system cannot honour.
    fn init(&self, caps: &mut Capabilities) -> Result<(), Errno>;
    /// The mount is live, before workers start serving.
    fn mounted(&self, mount: &MountInfo);
    /// The session is ending.
    fn destroy(&self);
    /// Serve one request. INIT, DESTROY, INTERRUPT and NOTIFY_REPLY never come here: the
    /// session answers them itself.
    fn dispatch(&self, req: Request<'_>, ctx: &Dispatch<'_>);
}

/// Turns what `Session::mount` is given into the session's [`Handler`]: implemented by the
/// file system layer for `Arc<F: Filesystem>` and `Arc<dyn Filesystem>`.
pub trait IntoHandler {
    /// The handler.
    fn into_handler(self) -> Arc<dyn Handler>;
}

impl IntoHandler for Arc<dyn Handler> {
    fn into_handler(self) -> Arc<dyn Handler> {
        self
    }
}

/// What the session hands the handler for one request.
pub struct Dispatch<'a> {
    pub(super) server: &'a Server,
    pub(super) chan: &'a Arc<dyn ReplyChannel>,
    pub(super) class: RequestClass,
    pub(super) header: abi::fuse_in_header,
    pub(super) source: PayloadSource<'a>,
}

impl<'a> Dispatch<'a> {
    /// Where the request's payload lives, for a handler that keeps it (async WRITE).
    pub(crate) fn payload_source(&self) -> PayloadSource<'a> {
        self.source
    }

    /// A reply token's plumbing for this request, registered for interrupts.
    pub(crate) fn responder(&self) -> Responder {
        self.server.responder(self.chan, &self.header, self.class)
    }

    /// The session's statistics.
    pub(crate) fn stats(&self) -> &Stats {
        self.server.stats()
    }

    /// Close the stats of a request that gets no reply (FORGET).
    pub(crate) fn no_reply_done(&self, start: std::time::Instant) {
        self.stats().end(self.header.opcode, self.class, false, 0, start.elapsed());
    }

    /// A responder whose answer is captured instead of sent (for SETATTRs the framework
    /// issues itself); read the answer from the returned channel.
    pub(crate) fn captured_responder(&self, opcode: u32) -> (Responder, Arc<MemChannel>) {
        let capture = Arc::new(MemChannel::new());
        let chan: Arc<dyn ReplyChannel> = capture.clone();
        self.stats().begin(opcode, RequestClass::Sync, 0);
        (
            Responder::new(
                chan,
                self.server.reply_shared().clone(),
                self.header.unique,
                opcode,
                RequestClass::Sync,
            ),
            capture,
        )
    }

    /// True when the kernel's write-back page cache is on.
    pub(crate) fn writeback(&self) -> bool {
        self.server.writeback()
    }

    /// The open(2) flags a file system sees for OPEN/CREATE/TMPFILE.
    ///
    /// Write-back cache rules, applied here so that no file system can get them wrong:
    /// - O_WRONLY becomes O_RDWR: the kernel reads pages from the server to fill partially
    ///   written pages, through whichever handle it has, so every writable handle must also
    ///   be readable in the backing store.
    /// - O_APPEND becomes [`O_APPEND_CACHED`](O_APPEND_CACHED): the
    ///   kernel owns the file size and computes each write's offset; a backing fd opened
    ///   O_APPEND would write at the backing file's end instead and two appenders would
    ///   overwrite each other. The bit left in its place tells a file system that enforces
    ///   append-only files that the caller asked to append.
    pub(crate) fn open_flags(&self, flags: i32) -> i32 {
        if !self.writeback() {
            return flags;
        }
        let mut f = flags & !libc::O_APPEND;
        if flags & libc::O_APPEND != 0 {
            f |= O_APPEND_CACHED;
        }
        if f & libc::O_ACCMODE == libc::O_WRONLY {
            f = (f & !libc::O_ACCMODE) | libc::O_RDWR;
        }
        f
    }

    /// HANDLE_KILLPRIV_V2 rule for FALLOCATE: a local file system clears suid/sgid on any
    /// fallocate by a caller without CAP_FSETID (file_modified), but with KILLPRIV_V2 the
    /// kernel leaves that to the server and FALLOCATE carries no flag saying so. The framework
    /// clears them (same internal SETATTR as a truncating OPEN) when the caller is not root,
    /// the closest a server can get to "has no CAP_FSETID".
    pub(crate) fn fallocate_kills_suidgid(&self) -> bool {
        self.header.uid != 0 && self.server.negotiated_has(abi::init_flags::FUSE_HANDLE_KILLPRIV_V2)
    }

    /// The reply of a FLUSH or FSYNC: with the write-back cache its error means data the
    /// kernel holds was not committed, so the node's kernel inode is retired (retire.rs).
    pub(crate) fn commit_responder(&self) -> Responder {
        let r = self.responder();
        if self.writeback() {
            r.retiring_on_error(self.header.nodeid)
        } else {
            r
        }
    }

    /// Wait until RELEASEs received earlier for this request's node have been answered.
    pub(crate) fn wait_for_releases(&self) {
        self.server.releases().wait(self.header.nodeid)
    }

    /// The responder of a RELEASE: its answer uncounts the release (see order.rs).
    pub(crate) fn release_responder(&self) -> Responder {
        let guard = ReleaseGuard::new(self.server.releases().clone(), self.header.nodeid);
        self.responder().hold_until_answered(Box::new(guard))
    }

    /// Tell the kernel that `ino`'s attributes changed behind its back (FUSE_NOTIFY_INVAL_INODE
    /// with a negative offset: attributes only, no page is touched, so this cannot wait on a
    /// page lock held by the caller whose request is in flight). Used after the framework or
    /// the file system cleared suid/sgid for a request whose reply carries no attributes (OPEN,
    /// WRITE, FALLOCATE); otherwise `stat` shows the old mode until `attr_timeout` expires.
    pub(crate) fn notify_attrs_changed(&self, ino: NodeId) {
        let chan = self.server.reply_shared().notify_channel(self.chan);
        let body = abi::fuse_notify_inval_inode_out { ino: ino.0, off: -1, len: 0 };
        if let Err(e) = send_notify(&**chan, abi::notify_code::FUSE_NOTIFY_INVAL_INODE, &[body.as_bytes()]) {
            // ENOENT: the kernel no longer knows the inode; nothing is cached.
            if e.raw_os_error() != Some(libc::ENOENT) {
                tracing::warn!(ino = ino.0, error = %e, "attribute invalidation failed");
            }
        }
    }
}
