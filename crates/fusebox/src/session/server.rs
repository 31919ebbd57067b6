//! Transport-independent request handling: decode a buffer, run INIT, dispatch to the
//! [`Filesystem`], and make sure every request that needs an answer gets exactly one.

use super::handler::{Dispatch, Handler};
use super::init::{kernel_max_pages_limit, negotiate, Capabilities, InitError, Negotiated};
use super::notify::{Notifier, Retrievals};
use super::responder::{ReplyShared, Responder};
use super::retire::Retirements;
use super::sched::order::ReleaseOrder;
use super::{InterruptRegistry, Registration};
use crate::abi::{self, opcode::*};
use crate::session::sched::BackgroundGate;
use crate::session::sched::{peek_class, RequestClass, Stats};
use crate::transport::buffer::{Frame, PayloadSource};
use crate::transport::ReplyChannel;
use crate::wire::reply::send_reply;
use crate::wire::types::Ttl;
use crate::wire::{in_header, needs_reply, opcode_name, parse, Operation, ParseOptions, Request};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use zerocopy::IntoBytes;

/// What happened to one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Keep serving.
    Continue,
    /// INIT completed with these parameters.
    Initialized(Negotiated),
    /// INIT failed; the session cannot go on.
    InitFailed(InitError),
    /// DESTROY was received: the session ends.
    Destroyed,
}

/// The request-handling core shared by all worker threads of a session.
pub struct Server {
    handler: Arc<dyn Handler>,
    caps: Mutex<Capabilities>,
    shared: Arc<ReplyShared>,
    negotiated: OnceLock<Negotiated>,
    destroyed: AtomicBool,
    debug: bool,
    gate: OnceLock<Arc<BackgroundGate>>,
    workers: Arc<AtomicUsize>,
    interrupts: Arc<InterruptRegistry>,
    retrievals: Arc<Retrievals>,
    releases: Arc<ReleaseOrder>,
}

impl Server {
    /// A server for `fs` that will ask for `caps` and tell the kernel `ttl`.
    pub fn new(handler: Arc<dyn Handler>, caps: Capabilities, ttl: Ttl, debug: bool) -> Server {
        let shared = Arc::new(ReplyShared {
            ttl,
            stats: Arc::new(Stats::default()),
            splice_write: caps.splice_write,
            retired: Retirements::default(),
            notify_chan: OnceLock::new(),
        });
        Server {
            handler,
            caps: Mutex::new(caps),
            shared,
            negotiated: OnceLock::new(),
            destroyed: AtomicBool::new(false),
            debug,
            gate: OnceLock::new(),
            workers: Arc::new(AtomicUsize::new(0)),
            interrupts: Arc::default(),
            retrievals: Arc::default(),
            releases: Arc::default(),
        }
    }

    /// Attach the background gate of the worker pool (for queue-depth reporting).
    pub(crate) fn set_gate(&self, gate: Arc<BackgroundGate>) {
        let _ = self.gate.set(gate);
    }

    /// The background gate, when classes are on.
    pub fn gate(&self) -> Option<&Arc<BackgroundGate>> {
        self.gate.get()
    }

    /// The live worker count, shared with the pool.
    pub(crate) fn workers_counter(&self) -> Arc<AtomicUsize> {
        self.workers.clone()
    }

    /// Workers alive now.
    pub fn workers(&self) -> usize {
        self.workers.load(Ordering::SeqCst)
    }

    /// Send the framework's own notifications on `dev` (a `/dev/fuse` fd of this session). A
    /// request that came over another transport (an io_uring entry) must not carry them: its
    /// channel takes exactly one reply.
    pub(crate) fn set_notify_channel(&self, dev: Arc<dyn ReplyChannel>) {
        let _ = self.shared.notify_chan.set(dev);
    }

    /// A notifier writing to `chan` (any `/dev/fuse` fd of this session).
    pub fn notifier(&self, chan: Arc<dyn ReplyChannel>) -> Notifier {
        Notifier::new(chan, self.retrievals.clone())
    }

    /// Statistics of this server.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }

    /// INIT parameters, once negotiated.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated.get().copied()
    }

    /// What this server serves.
    pub fn handler(&self) -> &Arc<dyn Handler> {
        &self.handler
    }

    /// Call the file system's `destroy` once (on DESTROY or at session end).
    pub fn destroy_once(&self) {
        if !self.destroyed.swap(true, Ordering::SeqCst) {
            self.handler.destroy();
        }
    }

    /// Handle one request buffer read from `chan`. Never panics: a handler panic is caught
    /// and the request answered EIO (by the dropped reply token).
    pub fn handle(&self, buf: &[u8], chan: &Arc<dyn ReplyChannel>) -> Handled {
        self.received(buf);
        self.handle_classified(Frame::borrowed(buf), chan, peek_class(buf))
    }

    /// Note a request as soon as it is read, before any queueing: a RELEASE is counted against
    /// its inode so that a later OPEN of that inode waits for it (session/order.rs). Every
    /// transport calls this once per request buffer, then `handle_classified`.
    pub(crate) fn received(&self, buf: &[u8]) {
        if let Some(h) = in_header(buf).filter(|h| h.opcode == FUSE_RELEASE) {
            self.releases.noted(h.nodeid);
        }
    }

    /// [`Server::handle`] for a caller that has already classified `buf` with
    /// [`peek_class`] (the worker pool does, to route background requests).
    pub(crate) fn handle_classified(
        &self, frame: Frame<'_>, chan: &Arc<dyn ReplyChannel>, class: RequestClass,
    ) -> Handled {
        let buf = frame.bytes;
        let opts = ParseOptions { setxattr_ext: false };
        let req = match parse(buf, opts) {
            Ok(r) => r,
            Err(e) => {
                // Answer EINVAL when we can at least identify the request.
                if let Some(h) = in_header(buf) {
                    tracing::warn!(unique = h.unique, opcode = opcode_name(h.opcode), error = %e, "malformed request");
                    if h.opcode == FUSE_RELEASE {
                        self.releases.released(h.nodeid);
                    }
                    if needs_reply(h.opcode) {
                        let _ = send_reply(&**chan, h.unique, -libc::EINVAL, &[]);
                    }
                } else {
                    tracing::warn!(error = %e, len = buf.len(), "malformed request header");
                }
                return Handled::Continue;
            }
        };
        if self.debug {
            tracing::debug!(
                unique = req.header.unique,
                op = opcode_name(req.header.opcode),
                nodeid = req.header.nodeid,
                uid = req.header.uid,
                pid = req.header.pid,
                "request"
            );
        }
        if let Operation::Init { arg: init } = &req.op {
            return self.init(req.header.unique, init, chan);
        }
        if self.negotiated.get().is_none() {
            tracing::warn!(op = opcode_name(req.header.opcode), "request before INIT");
            if req.header.opcode == FUSE_RELEASE {
                self.releases.released(req.header.nodeid);
            }
            let _ = send_reply(&**chan, req.header.unique, -libc::EIO, &[]);
            return Handled::Continue;
        }
        let destroy = matches!(req.op, Operation::Destroy {});
        let result = catch_unwind(AssertUnwindSafe(|| self.dispatch(req, frame.owner(), chan, class)));
        if result.is_err() {
            tracing::error!("file system handler panicked; request answered EIO");
        }
        if destroy {
            Handled::Destroyed
        } else {
            Handled::Continue
        }
    }

    /// Answer what the session owns (DESTROY, INTERRUPT, NOTIFY_REPLY); hand the rest to the
    /// handler.
    fn dispatch(
        &self, req: Request<'_>, source: PayloadSource<'_>, chan: &Arc<dyn ReplyChannel>, class: RequestClass,
    ) {
        let h = req.header;
        let stats = &self.shared.stats;
        stats.begin(h.opcode, class, h.len as usize);
        let ctx = Dispatch { server: self, chan, class, header: h, source };
        match &req.op {
            Operation::Destroy {} => {
                self.destroy_once();
                ctx.responder().ok(&[])
            }
            Operation::Interrupt { arg } => {
                // Never answered, except EAGAIN when its request does not show up.
                self.interrupts.interrupt(arg.unique, h.unique, chan);
                stats.end(h.opcode, class, false, 0, Default::default());
            }
            Operation::NotifyReply { arg, data } => {
                // The kernel's answer to a retrieve; `unique` is the notify unique we chose.
                let n = (arg.size as usize).min(data.len());
                self.retrievals.complete(h.unique, arg.offset, &data[..n]);
                stats.end(h.opcode, class, false, 0, Default::default());
            }
            _ => self.handler.dispatch(req, &ctx),
        }
    }

    /// A reply token's plumbing for the request with header `h`, registered for interrupts.
    pub(crate) fn responder(
        &self, chan: &Arc<dyn ReplyChannel>, h: &abi::fuse_in_header, class: RequestClass,
    ) -> Responder {
        let intr = self.interrupts.begin(h.unique);
        let reg = Registration::new(self.interrupts.clone(), h.unique);
        Responder::new(chan.clone(), self.shared.clone(), h.unique, h.opcode, class).registered(intr, reg)
    }

    /// The session-wide reply state.
    pub(crate) fn reply_shared(&self) -> &Arc<ReplyShared> {
        &self.shared
    }

    /// Requests registered for interrupts now (tests).
    #[cfg(test)]
    pub(crate) fn interrupts_in_flight(&self) -> usize {
        self.interrupts.inflight()
    }

    /// Interrupts waiting for their request (tests).
    #[cfg(test)]
    pub(crate) fn interrupts_pending(&self) -> usize {
        self.interrupts.pending()
    }

    /// Release ordering (order.rs).
    pub(crate) fn releases(&self) -> &Arc<ReleaseOrder> {
        &self.releases
    }

    /// True when INIT negotiated `flag`.
    pub(crate) fn negotiated_has(&self, flag: u64) -> bool {
        self.negotiated.get().is_some_and(|n| n.has(flag))
    }

    fn init(&self, unique: u64, init: &abi::fuse_init_in, chan: &Arc<dyn ReplyChannel>) -> Handled {
        let mut caps = self.caps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = self.handler.init(&mut caps) {
            tracing::error!(error = %e, "file system refused INIT");
            let _ = send_reply(&**chan, unique, -e.0, &[]);
            return Handled::InitFailed(InitError::TooOld(0));
        }
        match negotiate(init, &caps, kernel_max_pages_limit()) {
            Ok((out, neg)) => {
                let _ = send_reply(&**chan, unique, 0, &[out.as_bytes()]);
                tracing::debug!(
                    minor = neg.minor,
                    limits = ?neg.limits,
                    flags = ?neg.flag_names(),
                    "INIT negotiated"
                );
                let _ = self.negotiated.set(neg);
                *self.caps.lock().unwrap_or_else(|e| e.into_inner()) = caps;
                Handled::Initialized(neg)
            }
            Err(e) => {
                tracing::error!(error = %e, "INIT failed");
                let _ = send_reply(&**chan, unique, -libc::EPROTO, &[]);
                Handled::InitFailed(e)
            }
        }
    }

    /// True when the kernel's write-back page cache is on for this session.
    pub fn writeback(&self) -> bool {
        self.negotiated.get().is_some_and(|n| n.has(abi::init_flags::FUSE_WRITEBACK_CACHE))
    }
}
