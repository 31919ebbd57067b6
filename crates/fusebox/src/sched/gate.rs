//! The background lane: background requests (writeback WRITEs, RELEASE, FORGET) are served by
//! a few threads of their own, never by the workers that read `/dev/fuse`. A worker that reads
//! a background request hands it over and reads again at once, so every worker stays free for
//! requests a process waits on.
//!
//! The hand-over does not copy the request: the worker's buffer moves into the queue and the
//! worker takes a spare one (recycled from requests already served). One waiting lane thread
//! is woken per request (no notify-all).

use crate::transport::buffer::RequestBuffer;
use crate::transport::ReplyChannel;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A background request waiting for a lane thread: its buffer and the channel it must be
/// answered on.
pub struct Queued {
    /// The buffer holding the request.
    pub buf: RequestBuffer,
    /// Length of the request in `buf`.
    pub len: usize,
    /// The channel (cloned fd) that read it: replies must go back there.
    pub chan: Arc<dyn ReplyChannel>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    spare: Vec<RequestBuffer>,
    closed: bool,
}

/// The queue and limits of the background lane; its threads call [`BackgroundGate::serve`].
pub struct BackgroundGate {
    limit: usize,
    bufsize: usize,
    state: Mutex<State>,
    ready: Condvar,
    running: AtomicUsize,
}

impl BackgroundGate {
    /// A lane with `limit` (at least 1) threads whose requests fit in `bufsize` bytes.
    pub fn new(limit: usize, bufsize: usize) -> Self {
        BackgroundGate {
            limit: limit.max(1),
            bufsize,
            state: Mutex::default(),
            ready: Condvar::new(),
            running: AtomicUsize::new(0),
        }
    }

    /// Threads serving background requests.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Background requests waiting for a lane thread.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Background requests being served now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue the request in `buf[..len]`. `buf` is swapped for a spare buffer of the same size,
    /// so the caller can read the next request into it at once.
    pub fn submit(&self, buf: &mut RequestBuffer, len: usize, chan: &Arc<dyn ReplyChannel>) {
        let mut st = self.lock();
        let spare = st.spare.pop().unwrap_or_else(|| RequestBuffer::new(self.bufsize));
        let full = std::mem::replace(buf, spare);
        st.queue.push_back(Queued { buf: full, len, chan: chan.clone() });
        drop(st);
        self.ready.notify_one();
    }

    /// The body of one lane thread: serve queued requests with `handle` until [`close`] and
    /// the queue is empty.
    ///
    /// [`close`]: BackgroundGate::close
    pub fn serve(&self, handle: impl Fn(&[u8], &Arc<dyn ReplyChannel>)) {
        let mut st = self.lock();
        loop {
            if let Some(q) = st.queue.pop_front() {
                drop(st);
                self.running.fetch_add(1, Ordering::Relaxed);
                handle(&q.buf.as_slice()[..q.len], &q.chan);
                self.running.fetch_sub(1, Ordering::Relaxed);
                st = self.lock();
                // Keep enough spares for a burst; free the rest.
                if st.spare.len() < self.limit * 4 {
                    st.spare.push(q.buf);
                }
            } else if st.closed {
                return;
            } else {
                st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// No more requests will come: lane threads finish the queue and return from `serve`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::mem::MemChannel;
    use std::time::Duration;

    #[test]
    fn lane_threads_serve_everything_with_no_copy_and_never_more_than_limit() {
        let gate = Arc::new(BackgroundGate::new(2, 4096));
        let chan: Arc<dyn ReplyChannel> = Arc::new(MemChannel::new());
        let (active, peak, done) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let lane: Vec<_> = (0..gate.limit())
            .map(|_| {
                let (gate, active, peak, done) = (gate.clone(), active.clone(), peak.clone(), done.clone());
                std::thread::spawn(move || {
                    gate.serve(|buf, _| {
                        assert_eq!(&buf[..3], [1, 2, 3]);
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        active.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (gate, chan) = (gate.clone(), chan.clone());
                std::thread::spawn(move || {
                    let mut buf = RequestBuffer::new(4096);
                    for _ in 0..50 {
                        buf.as_mut_slice()[..3].copy_from_slice(&[1, 2, 3]);
                        let before = buf.as_slice().as_ptr();
                        gate.submit(&mut buf, 3, &chan);
                        assert_ne!(buf.as_slice().as_ptr(), before, "the reader must get another buffer");
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
        gate.close();
        for t in lane {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 200, "a queued request was lost");
        assert!(peak.load(Ordering::SeqCst) <= 2, "peak {}", peak.load(Ordering::SeqCst));
        assert_eq!(gate.queued(), 0);
    }
}
