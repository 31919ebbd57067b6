//! FUSE_INTERRUPT: a cloneable [`Interrupt`] handle per request, and the registry of requests in
//! flight that the server consults when the kernel names one to cancel.
//!
//! Protocol (kernel fs/fuse/dev.c, libfuse fuse_lowlevel.c): when the process waiting on a
//! request gets a signal, the kernel queues an INTERRUPT whose `unique` is the request's
//! `unique | FUSE_INT_REQ_BIT` and whose body names the request. The kernel only does so after
//! the request was read, but with several worker threads the INTERRUPT can still be decoded
//! before the worker that read the request has registered it. Such an interrupt is kept as
//! *pending* in the registry shard of its target, so the registration (which takes the same
//! shard lock) sees it. A pending interrupt whose request never shows up (it was answered just
//! before) is answered EAGAIN after [`PENDING_EXPIRY`]: the kernel then re-queues it if the
//! request is still waiting, or drops it. Neither INTERRUPT nor FORGET is ever answered
//! otherwise.

use super::finish::{FinishOnDrop, Finishes};
use crate::transport::ReplyChannel;
use crate::wire::reply::send_reply;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Callback = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    callbacks: Mutex<Vec<Callback>>,
}

/// Whether the kernel asked to cancel a request, and a way to be told when it does.
///
/// Cloneable and `Send + Sync`: move it into another thread or an async task together with
/// the reply token. A handler that sees an interrupt should answer `EINTR` soon (the caller's
/// process is waiting for it); it may also complete normally if the work is already done.
#[derive(Clone, Default)]
pub struct Interrupt(Option<Arc<Inner>>);

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt").field("interrupted", &self.is_interrupted()).finish()
    }
}

impl Interrupt {
    /// A handle that is never interrupted (requests made inside the framework).
    pub fn never() -> Interrupt {
        Interrupt(None)
    }

    /// A handle that is already interrupted: for testing how a file system's handlers react
    /// to an interrupt that arrived before (or while) they run.
    pub fn already_interrupted() -> Interrupt {
        let i = Interrupt::armed();
        i.fire();
        i
    }

    fn armed() -> Interrupt {
        Interrupt(Some(Arc::default()))
    }

    /// True once FUSE_INTERRUPT for this request has arrived.
    pub fn is_interrupted(&self) -> bool {
        self.0.as_ref().is_some_and(|i| i.fired.load(Ordering::Acquire))
    }

    /// Run `f` when the request is interrupted: at once (on this thread) if it already is,
    /// otherwise on the thread that handles the INTERRUPT. Runs at most once; never runs if
    /// the request completes without an interrupt. `f` must not block for long.
    pub fn on_interrupt(&self, f: impl FnOnce() + Send + 'static) {
        let Some(inner) = &self.0 else { return };
        let mut cbs = inner.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        if inner.fired.load(Ordering::Acquire) {
            drop(cbs);
            f();
        } else {
            cbs.push(Box::new(f));
        }
    }

    /// Mark interrupted and run the callbacks registered so far.
    pub(crate) fn fire(&self) {
        let Some(inner) = &self.0 else { return };
        let cbs = {
            let mut cbs = inner.callbacks.lock().unwrap_or_else(|e| e.into_inner());
            inner.fired.store(true, Ordering::Release);
            std::mem::take(&mut *cbs)
        };
        for f in cbs {
            f();
        }
    }
}

/// How long an INTERRUPT whose request is not in flight waits for it before it is answered
/// EAGAIN.
pub const PENDING_EXPIRY: Duration = Duration::from_secs(1);

/// Shards of the registry: a request's shard is chosen by its unique, so workers rarely meet
/// on the same lock.
const SHARDS: usize = 64;

/// Bound on pending interrupts per shard; the oldest is answered EAGAIN beyond it.
const MAX_PENDING: usize = 64;

struct Pending {
    target: u64,
    /// The INTERRUPT's own unique (target | FUSE_INT_REQ_BIT), for the EAGAIN answer.
    unique: u64,
    since: Instant,
    chan: Arc<dyn ReplyChannel>,
}

#[derive(Default)]
struct Shard {
    inflight: HashMap<u64, Interrupt>,
    pending: Vec<Pending>,
}

/// Requests in flight, by unique, and interrupts that arrived before their request.
pub(crate) struct InterruptRegistry {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for InterruptRegistry {
    fn default() -> Self {
        InterruptRegistry { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl InterruptRegistry {
    fn shard(&self, unique: u64) -> std::sync::MutexGuard<'_, Shard> {
        // Kernel uniques step by 2 (bit 0 marks interrupts): drop it before spreading.
        let i = ((unique >> 1) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register request `unique`; returns its handle (already fired if its INTERRUPT came
    /// first). Pair with [`Finishes::finished`].
    pub(crate) fn begin(&self, unique: u64) -> Interrupt {
        let intr = Interrupt::armed();
        let mut shard = self.shard(unique);
        let early = shard.pending.iter().position(|p| p.target == unique);
        if let Some(i) = early {
            shard.pending.swap_remove(i);
            if let Some(inner) = &intr.0 {
                inner.fired.store(true, Ordering::Release);
            }
        }
        shard.inflight.insert(unique, intr.clone());
        intr
    }

    /// FUSE_INTERRUPT number `unique` names request `target`, read from `chan`.
    pub(crate) fn interrupt(&self, target: u64, unique: u64, chan: &Arc<dyn ReplyChannel>) {
        let mut expired = Vec::new();
        let found = {
            let mut shard = self.shard(target);
            let now = Instant::now();
            let mut i = 0;
            while i < shard.pending.len() {
                if now.duration_since(shard.pending[i].since) >= PENDING_EXPIRY {
                    expired.push(shard.pending.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            match shard.inflight.get(&target) {
                Some(intr) => Some(intr.clone()),
                None => {
                    if shard.pending.len() >= MAX_PENDING {
                        expired.push(shard.pending.remove(0));
                    }
                    if !shard.pending.iter().any(|p| p.target == target) {
                        shard.pending.push(Pending { target, unique, since: now, chan: chan.clone() });
                    }
                    None
                }
            }
        };
        for p in expired {
            tracing::debug!(target = p.target, "interrupt without its request: answering EAGAIN");
            let _ = send_reply(&*p.chan, p.unique, -libc::EAGAIN, &[]);
        }
        match found {
            Some(intr) => {
                tracing::debug!(target, "request interrupted");
                intr.fire()
            }
            None => tracing::debug!(target, "interrupt before its request (or after its answer): pending"),
        }
    }

    /// Requests in flight (for tests and stats).
    #[cfg(test)]
    pub(crate) fn inflight(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().inflight.len()).sum()
    }

    /// Interrupts waiting for their request.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().pending.len()).sum()
    }
}

impl Finishes for InterruptRegistry {
    /// Request `unique` was answered (or its token dropped): it can no longer be interrupted.
    fn finished(&self, unique: u64) {
        self.shard(unique).inflight.remove(&unique);
    }
}

/// Keeps a request registered until its reply token is dropped.
pub(crate) type Registration = FinishOnDrop<InterruptRegistry>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::mem::MemChannel;
    use std::sync::atomic::AtomicUsize;

    fn chan() -> (Arc<MemChannel>, Arc<dyn ReplyChannel>) {
        let c = Arc::new(MemChannel::new());
        let d: Arc<dyn ReplyChannel> = c.clone();
        (c, d)
    }

    #[test]
    fn interrupt_fires_callbacks_once_and_late_callbacks_run_at_once() {
        let reg = InterruptRegistry::default();
        let (mem, c) = chan();
        let intr = reg.begin(10);
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        intr.on_interrupt(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!intr.is_interrupted());
        reg.interrupt(10, 11, &c);
        assert!(intr.is_interrupted());
        assert_eq!(n.load(Ordering::SeqCst), 1);
        reg.interrupt(10, 11, &c);
        assert_eq!(n.load(Ordering::SeqCst), 1, "callbacks run at most once");
        let n3 = n.clone();
        intr.on_interrupt(move || {
            n3.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
        reg.finished(10);
        assert_eq!(reg.inflight(), 0);
        assert_eq!(mem.pending(), 0, "an INTERRUPT is never answered when its request was found");
    }

    #[test]
    fn interrupt_before_request_is_kept_and_applied_at_registration() {
        let reg = InterruptRegistry::default();
        let (mem, c) = chan();
        reg.interrupt(20, 21, &c);
        assert_eq!(reg.pending(), 1);
        let intr = reg.begin(20);
        assert!(intr.is_interrupted());
        assert_eq!(reg.pending(), 0);
        assert_eq!(mem.pending(), 0);
    }

    #[test]
    fn stale_pending_interrupt_is_answered_eagain() {
        let reg = InterruptRegistry::default();
        let (mem, c) = chan();
        reg.interrupt(30, 31, &c);
        // Age the entry instead of sleeping.
        reg.shard(30).pending[0].since -= PENDING_EXPIRY;
        // The next interrupt landing in the same shard sweeps it.
        reg.interrupt(30 + 2 * SHARDS as u64, 31 + 2 * SHARDS as u64, &c);
        let out = mem.next_reply(Duration::from_secs(1)).expect("EAGAIN reply");
        let h = crate::wire::reply::out_header(&out).unwrap();
        assert_eq!((h.error, h.unique), (-libc::EAGAIN, 31));
        assert_eq!(reg.pending(), 1);
    }

    #[test]
    fn never_handle_is_inert() {
        let i = Interrupt::never();
        i.on_interrupt(|| panic!("must not run"));
        i.fire();
        assert!(!i.is_interrupted());
    }
}
