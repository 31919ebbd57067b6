//! The worker pool: threads that read `/dev/fuse` (each with its own cloned fd and buffer) and
//! handle requests inline.
//!
//! Policy: the pool starts with `threads` workers. A worker that takes a request and leaves no
//! other worker waiting in `read` tells the pool's grower thread, which looks again after
//! [`GROW_DELAY`]: if still no worker is waiting, the workers are blocked (in the file system,
//! or on the backing storage), so one more is started, up to `max_threads`. A burst that
//! merely keeps every worker busy for a moment starts nobody (before, the pool grew on the
//! spot and reached `max_threads` under a 4-thread direct-IO load on 2 CPUs). When no worker
//! was missing for [`IDLE_EXIT`], the grower hands out retirement tokens for the workers
//! beyond `threads`; a worker takes one after finishing a request and leaves.
//!
//! Every worker waits in `read(2)` on its own cloned fd, where the kernel wakes exactly one
//! waiter per request. Nothing waits in `poll(2)`: poll wakes every poller of the connection
//! for each request (measured: 150–200 context switches per created file once the pool had
//! grown and its extra workers polled before reading).
//!
//! Writeback WRITEs go to the background lane ([`BackgroundGate`]): `background_threads`
//! threads of their own, one per file, so workers only serve requests a process waits on (and
//! RELEASE/FORGET, which are cheaper to serve inline than to hand over). `sched=fifo` disables
//! the lane (workers serve everything).

use super::{peek_class, BackgroundGate, RequestClass};
use crate::session::{Handled, Server};
use crate::transport::buffer::SharedBuffer;
use crate::transport::devfuse::{DevFuse, Received};
use crate::transport::ReplyChannel;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the pool must have had a waiting worker all along before extra workers retire.
pub const IDLE_EXIT: Duration = Duration::from_secs(5);

/// How long every worker must stay busy before the pool grows.
pub const GROW_DELAY: Duration = Duration::from_millis(1);

/// Wakes the grower thread when the pool may be saturated.
#[derive(Default)]
struct Grower {
    /// A worker saw no other worker waiting; the grower has not looked yet.
    pending: Mutex<bool>,
    wake: Condvar,
    /// Set when the pool ends.
    stop: AtomicBool,
    /// Extra workers that should leave after their current request.
    retire: AtomicUsize,
}

/// Sizing and scheduling of a pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Workers started at once (and kept while idle).
    pub threads: usize,
    /// Upper limit when growing under blocking load.
    pub max_threads: usize,
    /// Workers that may handle background requests at once; `None` = no classes (FIFO).
    pub background_threads: Option<usize>,
    /// Size of each worker's read buffer.
    pub bufsize: usize,
    /// Scheduler time slice for workers (`None`: the kernel's default).
    pub worker_slice: Option<Duration>,
}

pub(crate) struct Pool {
    server: Arc<Server>,
    dev: Arc<DevFuse>,
    gate: Option<Arc<BackgroundGate>>,
    config: PoolConfig,
    live: Arc<AtomicUsize>,
    idle: AtomicUsize,
    next_id: AtomicUsize,
    grower: Grower,
    handles: Mutex<Vec<JoinHandle<io::Result<()>>>>,
}

impl Pool {
    pub(crate) fn new(server: Arc<Server>, dev: Arc<DevFuse>, config: PoolConfig) -> Arc<Pool> {
        let gate = config.background_threads.map(|n| Arc::new(BackgroundGate::new(n, config.bufsize)));
        if let Some(g) = &gate {
            server.set_gate(g.clone());
        }
        let live = server.workers_counter();
        Arc::new(Pool {
            server,
            dev,
            gate,
            config,
            live,
            idle: AtomicUsize::new(0),
            next_id: AtomicUsize::new(0),
            grower: Grower::default(),
            handles: Mutex::new(Vec::new()),
        })
    }

    /// Start the background lane and the initial workers, then wait until every worker has
    /// ended (and the lane has finished what it was given).
    pub(crate) fn run(self: &Arc<Self>) -> io::Result<()> {
        let lane = self.start_lane()?;
        let pool = self.clone();
        let grower =
            std::thread::Builder::new().name("fusebox-grow".into()).spawn(move || pool.grow_loop())?;
        let result = self.run_workers();
        self.grower.stop.store(true, Ordering::SeqCst);
        drop(self.grower.pending.lock().unwrap_or_else(|e| e.into_inner()));
        self.grower.wake.notify_all();
        let _ = grower.join();
        if let Some(g) = &self.gate {
            g.close();
        }
        for h in lane {
            if h.join().is_err() {
                tracing::error!("background thread panicked");
            }
        }
        result
    }

    fn start_lane(&self) -> io::Result<Vec<JoinHandle<()>>> {
        let Some(gate) = &self.gate else { return Ok(Vec::new()) };
        (0..gate.limit())
            .map(|i| {
                let (gate, server) = (gate.clone(), self.server.clone());
                // Normal priority on purpose: at nice 10 the lane starved under CPU load and
                // FORGET/RELEASE backlogs kept descriptors open until the daemon hit EMFILE.
                std::thread::Builder::new().name(format!("fusebox-bg-{i}")).spawn(move || {
                    gate.serve(i, |b, c| {
                        server.handle_classified(b, c, RequestClass::Background);
                    })
                })
            })
            .collect()
    }

    fn run_workers(self: &Arc<Self>) -> io::Result<()> {
        for _ in 0..self.config.threads.max(1) {
            self.live.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = self.spawn() {
                self.live.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
        }
        let mut first_err = None;
        loop {
            let batch: Vec<_> = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
            if batch.is_empty() {
                break;
            }
            for h in batch {
                match h.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => tracing::error!("worker thread panicked"),
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    fn spawn(self: &Arc<Self>) -> io::Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        // The first worker uses the mount's fd; the others clone it, so each has its own
        // processing list in the kernel and no lock is shared on the read path.
        let dev = if id == 0 { self.dev.clone() } else { Arc::new(self.dev.clone_fd()?) };
        let pool = self.clone();
        let h = std::thread::Builder::new().name(format!("fusebox-{id}")).spawn(move || pool.work(dev))?;
        self.handles.lock().unwrap_or_else(|e| e.into_inner()).push(h);
        Ok(())
    }

    /// No worker is waiting for a request any more: have the grower look after [`GROW_DELAY`].
    fn saturated(&self) {
        if self.live() >= self.config.max_threads {
            return;
        }
        let mut pending = self.grower.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !*pending {
            *pending = true;
            self.grower.wake.notify_one();
        }
    }

    /// The grower thread: sleeps until a worker reports saturation, waits [`GROW_DELAY`], and
    /// adds a worker if still none is waiting for a request.
    fn grow_loop(self: Arc<Self>) {
        loop {
            {
                let g = &self.grower;
                let mut pending = g.pending.lock().unwrap_or_else(|e| e.into_inner());
                while !*pending && !g.stop.load(Ordering::SeqCst) {
                    if self.live() > self.config.threads {
                        // Extra workers exist: retire them if no saturation comes for a while.
                        let (p, t) =
                            g.wake.wait_timeout(pending, IDLE_EXIT).unwrap_or_else(|e| e.into_inner());
                        pending = p;
                        if t.timed_out() && !*pending {
                            let surplus = self.live().saturating_sub(self.config.threads);
                            g.retire.store(surplus, Ordering::SeqCst);
                        }
                    } else {
                        pending = g.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
                    }
                }
                if g.stop.load(Ordering::SeqCst) {
                    return;
                }
                // Saturated again: nobody should leave now.
                g.retire.store(0, Ordering::SeqCst);
            }
            std::thread::sleep(GROW_DELAY);
            // Cleared before the look, not after the growth: a worker that reports saturation
            // from here on (the new one, taking the next blocking request) sets it again and
            // is seen by the next round. Cleared afterwards, that report was lost and the pool
            // stayed one worker short while every worker was blocked (seen under load).
            *self.grower.pending.lock().unwrap_or_else(|e| e.into_inner()) = false;
            // Not after the pool ended while we slept: nobody would join the new worker.
            if self.idle.load(Ordering::SeqCst) == 0 && !self.grower.stop.load(Ordering::SeqCst) {
                self.grow_one();
            }
        }
    }

    /// Add one worker if the limit allows.
    fn grow_one(self: &Arc<Self>) {
        let grew = self
            .live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.config.max_threads).then_some(n + 1)
            })
            .is_ok();
        if grew {
            if let Err(e) = self.spawn() {
                self.live.fetch_sub(1, Ordering::SeqCst);
                tracing::debug!(error = %e, "could not add a worker");
            } else {
                tracing::debug!(workers = self.live(), "every worker blocked: added one");
            }
        }
    }

    /// After a request: leave if the grower asked an extra worker to, never going below
    /// `threads`. (Leaving as soon as `threads` others waited was tried: under stress-ng's
    /// bursts the pool then kept growing and shrinking, a thread, a cloned fd and a 1 MiB
    /// buffer each time, and the workload it was meant for did not get faster; see
    /// docs/BENCHMARKS.md.)
    fn try_retire(&self) -> bool {
        let retire = &self.grower.retire;
        if retire.load(Ordering::Relaxed) == 0 {
            return false;
        }
        if retire.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return false;
        }
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n > self.config.threads).then_some(n - 1))
            .is_ok()
    }

    fn work(self: Arc<Self>, dev: Arc<DevFuse>) -> io::Result<()> {
        if let Some(slice) = self.config.worker_slice {
            if let Err(e) = crate::sys::set_thread_slice(slice) {
                tracing::debug!(error = %e, "worker keeps the default time slice");
            }
        }
        let mut buf = SharedBuffer::new(self.config.bufsize);
        let chan: Arc<dyn ReplyChannel> = dev.clone();
        let result = loop {
            if self.try_retire() {
                tracing::debug!(workers = self.live(), "extra worker retired");
                return Ok(());
            }
            self.idle.fetch_add(1, Ordering::SeqCst);
            let r = dev.receive(buf.for_reading());
            let others_waiting = self.idle.fetch_sub(1, Ordering::SeqCst) - 1;
            match r {
                Ok(Received::Request(n)) => {
                    // First, before any queueing: RELEASE-before-OPEN ordering starts here.
                    let bytes = buf.frame(n).bytes;
                    self.server.received(bytes);
                    let class = peek_class(bytes);
                    if let (Some(gate), Some(nodeid)) = (&self.gate, writeback_write(bytes, class)) {
                        gate.submit(nodeid, &mut buf, n, &chan);
                        continue;
                    }
                    if others_waiting == 0 {
                        self.saturated();
                    }
                    if self.server.handle_classified(buf.frame(n), &chan, class) == Handled::Destroyed {
                        break Ok(());
                    }
                }
                Ok(Received::Retry) => continue,
                Ok(Received::Closed) => break Ok(()),
                Err(e) => {
                    tracing::error!(error = %e, "reading /dev/fuse failed; worker stops");
                    break Err(e);
                }
            }
        };
        self.live.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// The node of a writeback WRITE (a background WRITE), the only request the lane serves.
fn writeback_write(buf: &[u8], class: RequestClass) -> Option<u64> {
    let h = crate::wire::in_header(buf)?;
    (class == RequestClass::Background && h.opcode == crate::abi::opcode::FUSE_WRITE).then_some(h.nodeid)
}
