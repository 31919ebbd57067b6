//! [`AsyncAdapter`]: runs an [`AsyncFilesystem`] as a [`Filesystem`] on a tokio runtime.

use super::{AsyncFilesystem, DirEntryPlus, FsResult};
use crate::fs::reply::Reply;
use crate::fs::types::*;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{Notify, Semaphore};

/// Settings of an [`AsyncAdapter`] that owns its runtime.
#[derive(Debug, Clone, Copy)]
pub struct AsyncAdapterOptions {
    /// Threads of the tokio runtime (default: one per CPU, at least 2).
    pub runtime_threads: usize,
    /// Background requests (writeback WRITEs, RELEASE, RELEASEDIR, FORGET) running at once;
    /// the rest wait (default 4).
    pub background_limit: usize,
    /// Threads of the second runtime that runs background requests, and whatever they spawn
    /// (uploads of written data), at nice `BACKGROUND_NICE` (default 1). A stat never waits
    /// for a runtime thread busy with write-back, nor competes with it for a CPU on equal terms.
    pub background_threads: usize,
}

/// Nice value of the background runtime's threads.
pub const BACKGROUND_NICE: i32 = 10;

impl Default for AsyncAdapterOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        AsyncAdapterOptions { runtime_threads: cpus.max(2), background_limit: 4, background_threads: 1 }
    }
}

/// Serves an [`AsyncFilesystem`] through the synchronous [`Filesystem`](crate::Filesystem) interface: each request
/// becomes a task on a tokio runtime and its reply is sent when the task finishes, so replies
/// go out in any order and a worker never waits for a handler.
pub struct AsyncAdapter<F> {
    fs: Arc<F>,
    handle: Handle,
    /// Where background requests run (the same runtime as `handle` when given one).
    background_handle: Handle,
    background: Arc<Semaphore>,
    /// The runtimes, when the adapter created them (shut down with the adapter).
    owned: Vec<Runtime>,
}

impl<F: AsyncFilesystem> AsyncAdapter<F> {
    /// Serve `fs` on a runtime of its own.
    pub fn new(fs: F, opts: AsyncAdapterOptions) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.runtime_threads.max(1))
            .thread_name("fusebox-async")
            .enable_all()
            .build()?;
        let bg = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.background_threads.max(1))
            .thread_name("fusebox-async-bg")
            .on_thread_start(|| {
                if let Err(e) = crate::sys::set_thread_nice(BACKGROUND_NICE) {
                    tracing::debug!(error = %e, "background runtime thread keeps its nice value");
                }
            })
            .enable_all()
            .build()?;
        let mut adapter = Self::with_handle(Arc::new(fs), rt.handle().clone(), opts.background_limit);
        adapter.background_handle = bg.handle().clone();
        adapter.owned = vec![rt, bg];
        Ok(adapter)
    }

    /// Serve `fs` on an existing runtime (e.g. the application's own).
    pub fn with_handle(fs: Arc<F>, handle: Handle, background_limit: usize) -> Self {
        AsyncAdapter {
            fs,
            background_handle: handle.clone(),
            handle,
            background: Arc::new(Semaphore::new(background_limit.max(1))),
            owned: Vec::new(),
        }
    }

    /// The file system being served.
    pub fn inner(&self) -> &Arc<F> {
        &self.fs
    }

    /// Run `work` and answer `reply` with its result. A synchronous request's future is polled
    /// once on the calling worker thread first: one that answers without waiting (a cached or
    /// local lookup) is answered there, without waking a runtime thread, which on a busy
    /// machine is a wake-up the caller would wait for. Otherwise (and for background requests)
    /// it runs as a task; if the kernel interrupts the request first, the task's future is
    /// dropped (cancelled) and the answer is EINTR.
    pub(crate) fn spawn<R, T, W>(
        &self, background: bool, reply: R, work: impl FnOnce(Arc<F>) -> W,
        ok: impl FnOnce(R, T) + Send + 'static,
    ) where
        R: Reply,
        T: Send + 'static,
        W: Future<Output = FsResult<T>> + Send + 'static,
    {
        let mut fut = Box::pin(work(self.fs.clone()));
        if !background {
            // Inside the runtime's context, so the future may spawn and use timers; a noop
            // waker, because a future that is not ready is polled again by its task below,
            // which registers the task's own waker.
            let _runtime = self.handle.enter();
            if let Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                match r {
                    Ok(v) => ok(reply, v),
                    Err(e) => reply.fail(e),
                }
                return;
            }
        }
        let gate = background.then(|| self.background.clone());
        let cancelled = Arc::new(Notify::new());
        let wake = cancelled.clone();
        // notify_one keeps a permit, so an interrupt before the task first polls still counts.
        reply.interrupt().on_interrupt(move || wake.notify_one());
        let handle = if background { &self.background_handle } else { &self.handle };
        handle.spawn(async move {
            let run = async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let _permit = match gate {
                    Some(s) => s.acquire_owned().await.ok(),
                    None => None,
                };
                fut.await
            };
            tokio::select! {
                r = run => match r {
                    Ok(v) => ok(reply, v),
                    Err(e) => reply.fail(e),
                },
                () = cancelled.notified() => reply.fail(Errno::EINTR),
            }
        });
    }

    /// Run a FORGET-like task that has no reply.
    pub(crate) fn spawn_background<W>(&self, work: impl FnOnce(Arc<F>) -> W)
    where
        W: Future<Output = ()> + Send + 'static,
    {
        let work = work(self.fs.clone());
        let gate = self.background.clone();
        self.background_handle.spawn(async move {
            let _permit = gate.acquire_owned().await.ok();
            work.await
        });
    }
}

impl<F: AsyncFilesystem> AsyncAdapter<F> {
    /// Forgets the lookups counted for READDIRPLUS entries that did not fit into the reply.
    pub(crate) fn give_back(&self) -> impl FnOnce(Vec<DirEntryPlus>) + Send + 'static {
        let (fs, handle) = (self.fs.clone(), self.handle.clone());
        move |unsent| {
            let nodes: Vec<NodeId> =
                // `.`, `..` and names without a node were never counted as lookups.
                unsent
                    .into_iter()
                    .filter(|e| e.name != "." && e.name != ".." && e.entry.ino != NodeId(0))
                    .map(|e| e.entry.ino)
                    .collect();
            if nodes.is_empty() {
                return;
            }
            handle.spawn(async move {
                for ino in nodes {
                    fs.forget(ino, 1).await
                }
            });
        }
    }
}

impl<F> Drop for AsyncAdapter<F> {
    fn drop(&mut self) {
        for rt in self.owned.drain(..) {
            // Tasks still running drop their reply tokens, which answer EIO.
            rt.shutdown_background();
        }
    }
}
