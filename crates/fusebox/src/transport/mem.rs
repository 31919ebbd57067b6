//! An in-memory reply channel: lets tests drive a session with byte frames and no kernel.

use super::ReplyChannel;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Collects replies written to it; [`MemChannel::next_reply`] takes them out in order.
#[derive(Default)]
pub struct MemChannel {
    replies: Mutex<VecDeque<Vec<u8>>>,
    ready: Condvar,
}

impl MemChannel {
    /// A new, empty channel.
    pub fn new() -> Self {
        Self::default()
    }

    /// The oldest reply not yet taken, waiting up to `timeout` for one.
    pub fn next_reply(&self, timeout: Duration) -> Option<Vec<u8>> {
        let guard = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = self
            .ready
            .wait_timeout_while(guard, timeout, |q| q.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        guard.pop_front()
    }

    /// Number of replies waiting.
    pub fn pending(&self) -> usize {
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl ReplyChannel for MemChannel {
    fn send(&self, iov: &[IoSlice<'_>]) -> io::Result<()> {
        let bytes: Vec<u8> = iov.iter().flat_map(|s| s.iter().copied()).collect();
        self.replies.lock().unwrap_or_else(|e| e.into_inner()).push_back(bytes);
        self.ready.notify_one();
        Ok(())
    }
}
