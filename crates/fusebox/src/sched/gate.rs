//! The background gate: at most `limit` workers handle background requests at once; the rest
//! wait in a FIFO queue. Workers that finish a background request drain the queue before they go
//! back to reading, so queued work never waits for new traffic, and every worker not inside the
//! gate is free for synchronous requests.

use crate::transport::ReplyChannel;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A background request waiting for a slot: its bytes and the channel it must be answered on.
pub struct Queued {
    /// The request as read from the device.
    pub buf: Vec<u8>,
    /// The channel (cloned fd) that read it: replies must go back there.
    pub chan: Arc<dyn ReplyChannel>,
}

/// Bounded concurrency for background requests.
pub struct BackgroundGate {
    limit: usize,
    running: AtomicUsize,
    queue: Mutex<VecDeque<Queued>>,
}

impl BackgroundGate {
    /// A gate letting `limit` (at least 1) background requests run at once.
    pub fn new(limit: usize) -> Self {
        BackgroundGate {
            limit: limit.max(1),
            running: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::new()),
        }
    }

    /// Maximum concurrent background requests.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Background requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn try_enter(&self) -> bool {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.limit).then_some(n + 1))
            .is_ok()
    }

    /// Handle a background request: run it now if a slot is free (then drain the queue),
    /// otherwise queue a copy of it and return at once so this worker can read again.
    pub fn submit(
        &self,
        buf: &[u8],
        chan: &Arc<dyn ReplyChannel>,
        handle: impl Fn(&[u8], &Arc<dyn ReplyChannel>),
    ) {
        if !self.try_enter() {
            self.queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(Queued { buf: buf.to_vec(), chan: chan.clone() });
            // The slot holders may all have left between our check and the push.
            if !self.try_enter() {
                return;
            }
            self.drain(&handle);
            return;
        }
        handle(buf, chan);
        self.drain(&handle);
    }

    /// Holding a slot: run queued requests until the queue is empty, then release the slot.
    fn drain(&self, handle: &impl Fn(&[u8], &Arc<dyn ReplyChannel>)) {
        loop {
            let next = self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            match next {
                Some(q) => handle(&q.buf, &q.chan),
                None => {
                    self.running.fetch_sub(1, Ordering::AcqRel);
                    // Something queued after our last look and before the release: take it.
                    if self.queued() > 0 && self.try_enter() {
                        continue;
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::mem::MemChannel;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn never_more_than_limit_run_and_nothing_is_lost() {
        let gate = Arc::new(BackgroundGate::new(2));
        let chan: Arc<dyn ReplyChannel> = Arc::new(MemChannel::new());
        let (active, peak, done) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, chan, active, peak, done) =
                    (gate.clone(), chan.clone(), active.clone(), peak.clone(), done.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        gate.submit(&[1, 2, 3], &chan, |buf, _| {
                            assert_eq!(buf, [1, 2, 3]);
                            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(200));
                            active.fetch_sub(1, Ordering::SeqCst);
                            done.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 400, "a queued request was lost");
        assert!(peak.load(Ordering::SeqCst) <= 2, "peak {}", peak.load(Ordering::SeqCst));
        assert_eq!(gate.queued(), 0);
    }
}
