//! The background lane: writeback WRITEs are served by a few threads of their own, never by
//! the workers that read `/dev/fuse`. A worker that reads one hands it over and reads again at
//! once, so every worker stays free for requests a process waits on. (RELEASE and FORGET are
//! background requests too, but they cost a `close` or a counter update: a worker serves them
//! inline, because handing them over would cost two context switches, more than the work.)
//!
//! Each lane thread has a queue of its own, and the requests of one file always go to the
//! same thread (by node id): a file's writeback is applied in the order the kernel sent it,
//! and two lane threads never contend for one backing inode's lock.
//!
//! The hand-over does not copy the request: the worker's buffer moves into the queue and the
//! worker takes a spare one (recycled from requests already served). Exactly the one lane
//! thread that owns the file is woken (no notify-all).

use crate::transport::buffer::{recycled, Frame, RequestBuffer, SharedBuffer};
use crate::transport::ReplyChannel;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A background request waiting for a lane thread: its buffer and the channel it must be
/// answered on.
pub struct Queued {
    /// The buffer holding the request.
    pub buf: SharedBuffer,
    /// Length of the request in `buf`.
    pub len: usize,
    /// The channel (cloned fd) that read it: replies must go back there.
    pub chan: Arc<dyn ReplyChannel>,
}

/// One lane thread's queue.
#[derive(Default)]
struct Lane {
    queue: Mutex<VecDeque<Queued>>,
    ready: Condvar,
}

/// The queues and limits of the background lane; its threads call [`BackgroundGate::serve`].
pub struct BackgroundGate {
    lanes: Vec<Lane>,
    bufsize: usize,
    spare: Mutex<Vec<RequestBuffer>>,
    closed: AtomicBool,
    running: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BackgroundGate {
    /// A lane with `limit` (at least 1) threads whose requests fit in `bufsize` bytes.
    pub fn new(limit: usize, bufsize: usize) -> Self {
        BackgroundGate {
            lanes: (0..limit.max(1)).map(|_| Lane::default()).collect(),
            bufsize,
            spare: Mutex::default(),
            closed: AtomicBool::new(false),
            running: AtomicUsize::new(0),
        }
    }

    /// Threads serving background requests.
    pub fn limit(&self) -> usize {
        self.lanes.len()
    }

    /// Background requests waiting for a lane thread.
    pub fn queued(&self) -> usize {
        self.lanes.iter().map(|l| lock(&l.queue).len()).sum()
    }

    /// Background requests being served now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// The lane thread that serves every background request of `nodeid`.
    pub fn lane_of(&self, nodeid: u64) -> usize {
        // Node ids are often sequential: mix the bits so neighbours spread over the lanes.
        (nodeid.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % self.lanes.len()
    }

    /// Queue the request in `buf[..len]` for the lane of `nodeid`. `buf` is swapped for a
    /// spare buffer of the same size, so the caller can read the next request into it at once.
    pub fn submit(&self, nodeid: u64, buf: &mut SharedBuffer, len: usize, chan: &Arc<dyn ReplyChannel>) {
        let spare = lock(&self.spare).pop().unwrap_or_else(|| recycled(self.bufsize));
        let full = buf.replace(spare);
        let lane = &self.lanes[self.lane_of(nodeid)];
        lock(&lane.queue).push_back(Queued { buf: full, len, chan: chan.clone() });
        lane.ready.notify_one();
    }

    /// The body of lane thread `index` (`0..limit()`): serve its queue with `handle` until
    /// [`close`] and the queue is empty.
    ///
    /// [`close`]: BackgroundGate::close
    pub fn serve(&self, index: usize, handle: impl Fn(Frame<'_>, &Arc<dyn ReplyChannel>)) {
        let lane = &self.lanes[index];
        let mut q = lock(&lane.queue);
        loop {
            if let Some(item) = q.pop_front() {
                drop(q);
                self.running.fetch_add(1, Ordering::Relaxed);
                handle(item.buf.frame(item.len), &item.chan);
                self.running.fetch_sub(1, Ordering::Relaxed);
                // Keep enough spares for a burst (those no kept payload holds); free the rest.
                if let Some(buf) = item.buf.into_unique() {
                    let mut spare = lock(&self.spare);
                    if spare.len() < self.lanes.len() * 4 {
                        spare.push(buf);
                    }
                }
                q = lock(&lane.queue);
            } else if self.closed.load(Ordering::SeqCst) {
                return;
            } else {
                q = lane.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// No more requests will come: lane threads finish their queues and return from `serve`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for lane in &self.lanes {
            // Take the lock so a thread between its empty check and its wait sees the flag.
            drop(lock(&lane.queue));
            lane.ready.notify_all();
        }
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
            .map(|i| {
                let (gate, active, peak, done) = (gate.clone(), active.clone(), peak.clone(), done.clone());
                std::thread::spawn(move || {
                    gate.serve(i, |frame, _| {
                        assert_eq!(&frame.bytes[..3], [1, 2, 3]);
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
            .map(|r| {
                let (gate, chan) = (gate.clone(), chan.clone());
                std::thread::spawn(move || {
                    let mut buf = SharedBuffer::new(4096);
                    for i in 0..50u64 {
                        buf.for_reading()[..3].copy_from_slice(&[1, 2, 3]);
                        let before = buf.frame(3).bytes.as_ptr();
                        gate.submit(r * 1000 + i, &mut buf, 3, &chan);
                        assert_ne!(buf.frame(3).bytes.as_ptr(), before, "the reader must get another buffer");
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

    #[test]
    fn one_files_requests_are_served_in_order_by_one_thread() {
        let gate = Arc::new(BackgroundGate::new(3, 64));
        let chan: Arc<dyn ReplyChannel> = Arc::new(MemChannel::new());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lane: Vec<_> = (0..gate.limit())
            .map(|i| {
                let (gate, seen) = (gate.clone(), seen.clone());
                std::thread::spawn(move || {
                    gate.serve(i, |frame, _| seen.lock().unwrap().push((i, frame.bytes[0])));
                })
            })
            .collect();
        let mut buf = SharedBuffer::new(64);
        for seq in 0..100u8 {
            buf.for_reading()[0] = seq;
            gate.submit(7, &mut buf, 1, &chan);
        }
        gate.close();
        for t in lane {
            t.join().unwrap();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 100);
        assert!(seen.iter().all(|(i, _)| *i == gate.lane_of(7)), "served by several threads");
        assert!(seen.iter().map(|(_, s)| *s).eq(0..100u8), "out of order");
        // Different files spread over the lanes.
        let lanes: std::collections::HashSet<_> = (1..64u64).map(|n| gate.lane_of(n)).collect();
        assert_eq!(lanes.len(), 3);
    }
}
