//! The sending side of one request: where its answer goes, the stats it is counted in, its
//! interrupt registration and what must wait for the answer. The typed reply tokens of the
//! file system API (`fs::reply`) are thin faces over a [`Responder`]; a token dropped without an
//! answer replies EIO and logs a warning, so a forgotten reply never hangs a caller.

use super::interrupt::{Interrupt, Registration};
use super::Retirements;
use crate::abi;
use crate::session::sched::{RequestClass, Stats};
use crate::transport::splice::{self, Spliced};
use crate::transport::ReplyChannel;
use crate::wire::reply::send_reply;
use crate::wire::types::{Errno, Ttl};
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
    /// Answer [`ReplyData::splice_from_file`](crate::fs::ReplyData::splice_from_file) with splice(2) (`-o splice_write`).
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
        &'a self, fallback: &'a Arc<dyn ReplyChannel>,
    ) -> &'a Arc<dyn ReplyChannel> {
        self.notify_chan.get().unwrap_or(fallback)
    }
}

impl Responder {
    pub(crate) fn new(
        chan: Arc<dyn ReplyChannel>, shared: Arc<ReplyShared>, unique: u64, opcode: u32, class: RequestClass,
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

    /// Attach an interrupt handle without a registration (answers captured in-process).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn with_interrupt(mut self, intr: Interrupt) -> Self {
        self.intr = intr;
        self
    }

    /// The request's interrupt handle.
    pub fn interrupt(&self) -> Interrupt {
        self.intr.clone()
    }

    pub(crate) fn send(mut self, error: Errno, parts: &[&[u8]]) {
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

    pub(crate) fn ok(self, parts: &[&[u8]]) {
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

    /// Answer with up to `len` bytes of `file` at `offset` spliced into `/dev/fuse`. False when
    /// splicing is off or not possible here (nothing was sent; answer the ordinary way).
    pub(crate) fn splice_from_file(&mut self, file: BorrowedFd<'_>, offset: u64, len: usize) -> bool {
        if !self.shared.splice_write {
            return false;
        }
        let chan = self.chan.clone();
        let Some(dev) = chan.splice_target() else { return false };
        self.leave_file();
        match splice::reply_from_file(dev, self.unique, file, offset, len) {
            Ok(Spliced::Sent(n)) => {
                self.finish(false, std::mem::size_of::<abi::fuse_out_header>() + n);
                true
            }
            Ok(Spliced::Fallback) => false,
            Err(e) => {
                // Like a failed writev: the request is gone (interrupted) or the device is.
                tracing::debug!(unique = self.unique, error = %e, "spliced reply not delivered");
                self.finish(true, 0);
                true
            }
        }
    }

    /// How much `ino`'s generation is raised in entry replies (its retirements).
    pub(crate) fn generation_offset(&self, ino: u64) -> u64 {
        self.shared.retired.offset(ino)
    }

    /// The session-wide reply state.
    pub(crate) fn shared(&self) -> &ReplyShared {
        &self.shared
    }

    pub(crate) fn ttl(&self) -> Ttl {
        self.shared.ttl
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

/// Seconds and nanoseconds of `d`, as the wire wants them.
pub(crate) fn split(d: Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
}
