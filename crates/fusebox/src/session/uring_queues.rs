//! Serving over io_uring: after INIT granted OVER_IO_URING, start one queue per possible CPU
//! (the kernel puts a request on the queue of the CPU its caller runs on and switches to
//! io_uring only once every queue has an entry), each served by `threads_per_queue` threads
//! with a ring of `depth` entries, pinned to the queue's CPU unless `uring_nopin`.
//! FORGET, INTERRUPT and notification replies keep using `/dev/fuse`, so the worker pool runs
//! beside the rings.

use super::init::Negotiated;
use super::options::UringOptions;
use super::server::Server;
use super::uring::{cpu_online, possible_cpus};
use crate::abi;
use crate::sys;
use crate::transport::devfuse::DevFuse;
use crate::transport::uring::{QueueEnd, QueueWaker, UringQueue};
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Running queue threads.
pub(crate) struct UringRuntime {
    threads: Vec<JoinHandle<()>>,
    wakers: Vec<QueueWaker>,
}

impl UringRuntime {
    /// Stop every queue thread (those still waiting) and wait for all of them.
    pub(crate) fn stop(self) {
        for w in &self.wakers {
            w.stop();
        }
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("io_uring queue thread panicked");
            }
        }
    }
}

/// Payload buffer size the kernel requires: max(8 KiB, max_write, max_pages pages).
fn payload_size(neg: &Negotiated) -> usize {
    let l = &neg.limits;
    (abi::FUSE_MIN_READ_BUFFER).max(l.max_write as usize).max(l.max_pages as usize * sys::page_size())
}

/// Start the io_uring queues if they were asked for. Returns None (after saying why, once)
/// when the session stays on `/dev/fuse`.
pub(crate) fn start(
    server: &Arc<Server>, dev: &Arc<DevFuse>, neg: &Negotiated, opts: &UringOptions,
) -> Option<UringRuntime> {
    if !opts.enabled {
        return None;
    }
    if !neg.has(abi::init_flags::FUSE_OVER_IO_URING) {
        tracing::warn!(
            "io_uring asked for, but the kernel does not offer it (needs Linux 6.14+ and \
             /sys/module/fuse/parameters/enable_uring = Y): serving over /dev/fuse"
        );
        return None;
    }
    match start_queues(server, dev, neg, opts) {
        Ok(rt) => {
            tracing::info!(
                queues = possible_cpus(),
                threads_per_queue = opts.threads_per_queue,
                depth = opts.depth,
                pinned = opts.pin,
                "serving over io_uring"
            );
            Some(rt)
        }
        Err(e) => {
            tracing::warn!(error = %e, "io_uring registration refused: serving over /dev/fuse");
            None
        }
    }
}

fn start_queues(
    server: &Arc<Server>, dev: &Arc<DevFuse>, neg: &Negotiated, opts: &UringOptions,
) -> io::Result<UringRuntime> {
    let payload = payload_size(neg);
    let queues = possible_cpus();
    let mut rt = UringRuntime { threads: Vec::new(), wakers: Vec::new() };
    let (tx, rx) = mpsc::channel::<io::Result<QueueWaker>>();
    let mut spawned = 0;
    for qid in 0..queues {
        // A CPU that is not online runs no callers: its queue only has to exist.
        let threads = if cpu_online(qid) { opts.threads_per_queue } else { 1 };
        for t in 0..threads {
            let server = server.clone();
            let dev = dev.clone();
            let ready = tx.clone();
            let opts = *opts;
            let h = std::thread::Builder::new().name(format!("fusebox-uring-{qid}.{t}")).spawn(move || {
                queue_thread(server, dev, qid, payload, opts, ready);
            });
            match h {
                Ok(h) => {
                    rt.threads.push(h);
                    spawned += 1;
                }
                Err(e) => {
                    drop(tx);
                    collect_and_stop(rt, rx, spawned);
                    return Err(e);
                }
            }
        }
    }
    drop(tx);
    let mut first_err = None;
    for _ in 0..spawned {
        match rx.recv() {
            Ok(Ok(w)) => rt.wakers.push(w),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(io::Error::other("an io_uring queue thread died while starting"));
            }
        }
    }
    if let Some(e) = first_err {
        rt.stop();
        return Err(e);
    }
    Ok(rt)
}

fn collect_and_stop(mut rt: UringRuntime, rx: mpsc::Receiver<io::Result<QueueWaker>>, n: usize) {
    for _ in 0..n {
        if let Ok(Ok(w)) = rx.recv() {
            rt.wakers.push(w);
        }
    }
    rt.stop();
}

fn queue_thread(
    server: Arc<Server>, dev: Arc<DevFuse>, qid: usize, payload: usize, opts: UringOptions,
    ready: mpsc::Sender<io::Result<QueueWaker>>,
) {
    if opts.pin {
        if let Err(e) = sys::pin_to_cpu(qid) {
            // An offline CPU: its queue must still exist, served from anywhere.
            tracing::debug!(qid, error = %e, "could not pin io_uring queue thread");
        }
    }
    let mut queue = match UringQueue::new(dev.raw_fd(), qid as u16, opts.depth, payload, opts.defer_taskrun) {
        Ok(q) => q,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Err(e) = queue.register() {
        let _ = ready.send(Err(e));
        return;
    }
    let _ = ready.send(Ok(queue.waker()));
    drop(ready);
    let stats = server.stats().clone();
    let mut handle = |frame: &[u8], chan: &Arc<dyn crate::transport::ReplyChannel>| {
        stats.uring_request();
        server.handle(frame, chan);
    };
    match queue.serve(&mut handle) {
        Ok(QueueEnd::Disconnected) => tracing::debug!(qid, "io_uring queue: connection ended"),
        Ok(QueueEnd::Stopped) => tracing::debug!(qid, "io_uring queue stopped"),
        Err(e) => tracing::error!(qid, error = %e, "io_uring queue failed"),
    }
}
