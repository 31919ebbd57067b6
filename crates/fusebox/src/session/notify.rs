//! Notifications from the file system to the kernel: invalidate cached attributes, data and
//! names, announce deletions, push data into the page cache, and read it back.
//!
//! A [`Notifier`] is cheap to clone, `Send + Sync`, and usable from any thread. Each call is
//! one `write(2)` to `/dev/fuse` that the kernel handles synchronously, so it is fine to call
//! from async code (it does not wait for a worker). [`Notifier::retrieve`] is answered by the
//! kernel with a FUSE_NOTIFY_REPLY request that a worker hands back; its [`Retrieval`] can be
//! waited for ([`Retrieval::wait`]) or awaited (it is a `Future`).
//!
//! Caution (kernel rules): INVAL_ENTRY and DELETE take the parent directory's lock in the
//! kernel; calling them from a handler of a request that holds that lock (e.g. inside LOOKUP,
//! CREATE or RENAME in the same directory) deadlocks. Call them from another thread.

use crate::abi::{self, notify_code::*};
use crate::transport::ReplyChannel;
use crate::wire::reply::send_notify;
use crate::wire::types::NodeId;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use zerocopy::IntoBytes;

/// Why a notification failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The kernel refused it: ENOENT when the inode (or name) is not in its cache, ENOTDIR,
    /// ENOTEMPTY for DELETE of a non-empty directory, ENODEV after unmount, and so on.
    #[error("notification refused: {0}")]
    Io(#[from] io::Error),
    /// A name longer than the kernel accepts (FUSE_NAME_MAX, 1024) or containing NUL/`/`.
    #[error("invalid name for a notification")]
    BadName,
    /// No NOTIFY_REPLY arrived in time for a retrieve.
    #[error("no answer to the retrieve within the timeout")]
    Timeout,
}

#[derive(Default)]
struct Slot {
    data: Option<(u64, Vec<u8>)>,
    waker: Option<Waker>,
}

/// Retrieves waiting for their NOTIFY_REPLY, by notify unique.
#[derive(Default)]
pub(crate) struct Retrievals {
    slots: Mutex<HashMap<u64, Arc<Mutex<Slot>>>>,
    arrived: Condvar,
}

impl Retrievals {
    /// A NOTIFY_REPLY for `unique` with the data found at `offset`.
    pub(crate) fn complete(&self, unique: u64, offset: u64, data: &[u8]) {
        let slot = self.slots.lock().unwrap_or_else(|e| e.into_inner()).remove(&unique);
        let Some(slot) = slot else {
            tracing::debug!(unique, "NOTIFY_REPLY for an unknown or abandoned retrieve");
            return;
        };
        let waker = {
            let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
            s.data = Some((offset, data.to_vec()));
            s.waker.take()
        };
        // Wake threads blocked in `wait` (they share this condvar) and async waiters.
        let _g = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        self.arrived.notify_all();
        drop(_g);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Sends notifications on a session's `/dev/fuse`. See the `session::notify` module documentation.
#[derive(Clone)]
pub struct Notifier {
    chan: Arc<dyn ReplyChannel>,
    retrievals: Arc<Retrievals>,
    next: Arc<AtomicU64>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

fn check_name(name: &OsStr) -> Result<&[u8], NotifyError> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 1024 || b.contains(&0) || b.contains(&b'/') {
        return Err(NotifyError::BadName);
    }
    Ok(b)
}

impl Notifier {
    pub(crate) fn new(chan: Arc<dyn ReplyChannel>, retrievals: Arc<Retrievals>) -> Notifier {
        // Notify uniques live apart from the kernel's request uniques only by convention;
        // start high so they are easy to tell apart in traces.
        Notifier { chan, retrievals, next: Arc::new(AtomicU64::new(1 << 62)) }
    }

    fn send(&self, code: i32, parts: &[&[u8]]) -> Result<(), NotifyError> {
        send_notify(&*self.chan, code, parts).map_err(NotifyError::Io)
    }

    /// Drop the kernel's cached attributes of `ino` and its cached data in
    /// `[offset, offset + len)` (`len` 0 or negative: to the end of file; `offset` negative:
    /// attributes only).
    pub fn inval_inode(&self, ino: NodeId, offset: i64, len: i64) -> Result<(), NotifyError> {
        let out = abi::fuse_notify_inval_inode_out { ino: ino.0, off: offset, len };
        self.send(FUSE_NOTIFY_INVAL_INODE, &[out.as_bytes()])
    }

    /// Drop the kernel's cached name `name` in directory `parent` (and the parent's
    /// attributes): the next access looks it up again.
    pub fn inval_entry(&self, parent: NodeId, name: &OsStr) -> Result<(), NotifyError> {
        let b = check_name(name)?;
        let out = abi::fuse_notify_inval_entry_out { parent: parent.0, namelen: b.len() as u32, flags: 0 };
        self.send(FUSE_NOTIFY_INVAL_ENTRY, &[out.as_bytes(), b, &[0]])
    }

    /// `name` in `parent`, which was inode `child`, is gone: like [`Notifier::inval_entry`],
    /// and also tells processes watching the directory (inotify) and detaches the inode.
    pub fn delete(&self, parent: NodeId, child: NodeId, name: &OsStr) -> Result<(), NotifyError> {
        let b = check_name(name)?;
        let out = abi::fuse_notify_delete_out {
            parent: parent.0,
            child: child.0,
            namelen: b.len() as u32,
            padding: 0,
        };
        self.send(FUSE_NOTIFY_DELETE, &[out.as_bytes(), b, &[0]])
    }

    /// Put `data` into the kernel's page cache of `ino` at `offset` (extending the cached size
    /// if it ends beyond it).
    pub fn store(&self, ino: NodeId, offset: u64, data: &[u8]) -> Result<(), NotifyError> {
        let size = u32::try_from(data.len())
            .map_err(|_| NotifyError::Io(io::Error::from_raw_os_error(libc::EFBIG)))?;
        let out = abi::fuse_notify_store_out { nodeid: ino.0, offset, size, padding: 0 };
        self.send(FUSE_NOTIFY_STORE, &[out.as_bytes(), data])
    }

    /// Ask the kernel for up to `size` bytes of `ino`'s page cache from `offset`. The answer
    /// holds the cached bytes contiguous from `offset` (possibly none).
    pub fn retrieve(&self, ino: NodeId, offset: u64, size: u32) -> Result<Retrieval, NotifyError> {
        let unique = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Mutex::new(Slot::default()));
        self.retrievals.slots.lock().unwrap_or_else(|e| e.into_inner()).insert(unique, slot.clone());
        let out =
            abi::fuse_notify_retrieve_out { notify_unique: unique, nodeid: ino.0, offset, size, padding: 0 };
        if let Err(e) = self.send(FUSE_NOTIFY_RETRIEVE, &[out.as_bytes()]) {
            self.retrievals.slots.lock().unwrap_or_else(|e| e.into_inner()).remove(&unique);
            return Err(e);
        }
        Ok(Retrieval { unique, slot, retrievals: self.retrievals.clone() })
    }
}

/// A retrieve in progress: [`Retrieval::wait`] for it, or `.await` it.
pub struct Retrieval {
    unique: u64,
    slot: Arc<Mutex<Slot>>,
    retrievals: Arc<Retrievals>,
}

impl Retrieval {
    fn take(&self) -> Option<(u64, Vec<u8>)> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).data.take()
    }

    /// Block until the kernel answers (`(offset, data)`) or `timeout` passes.
    pub fn wait(self, timeout: Duration) -> Result<(u64, Vec<u8>), NotifyError> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.retrievals.slots.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(d) = self.take() {
                return Ok(d);
            }
            let now = Instant::now();
            if now >= deadline {
                guard.remove(&self.unique);
                return Err(NotifyError::Timeout);
            }
            guard = self
                .retrievals
                .arrived
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Future for Retrieval {
    type Output = (u64, Vec<u8>);

    /// Resolves when the kernel answers. (The kernel answers every retrieve it accepted;
    /// combine with a timer of your runtime if you need a bound.)
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.data.take() {
            Some(d) => Poll::Ready(d),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::mem::MemChannel;

    fn notifier() -> (Notifier, Arc<MemChannel>, Arc<Retrievals>) {
        let mem = Arc::new(MemChannel::new());
        let r = Arc::new(Retrievals::default());
        (Notifier::new(mem.clone(), r.clone()), mem, r)
    }

    #[test]
    fn notifications_are_framed_as_the_kernel_expects() {
        let (n, mem, _) = notifier();
        n.inval_entry(NodeId(1), OsStr::new("abc")).unwrap();
        let out = mem.next_reply(Duration::ZERO).unwrap();
        assert_eq!(out.len(), 16 + 16 + 4);
        let h = crate::wire::reply::out_header(&out).unwrap();
        assert_eq!(h.error, FUSE_NOTIFY_INVAL_ENTRY);
        assert_eq!(h.unique, 0, "notifications have unique 0");
        assert_eq!(&out[32..], b"abc\0");
        n.store(NodeId(5), 4096, b"xyz").unwrap();
        assert_eq!(mem.next_reply(Duration::ZERO).unwrap().len(), 16 + 24 + 3);
        assert!(matches!(n.inval_entry(NodeId(1), OsStr::new("a/b")), Err(NotifyError::BadName)));
        assert!(matches!(n.delete(NodeId(1), NodeId(2), OsStr::new("")), Err(NotifyError::BadName)));
    }

    /// The notify unique of a FUSE_NOTIFY_RETRIEVE notification.
    fn retrieve_unique(out: &[u8]) -> u64 {
        use zerocopy::FromBytes;
        abi::fuse_notify_retrieve_out::read_from_prefix(&out[16..]).unwrap().0.notify_unique
    }

    #[test]
    fn retrieve_is_completed_by_notify_reply_blocking_and_async() {
        let (n, mem, r) = notifier();
        let ret = n.retrieve(NodeId(7), 0, 10).unwrap();
        let out = mem.next_reply(Duration::ZERO).unwrap();
        let unique = retrieve_unique(&out);
        let r2 = r.clone();
        std::thread::spawn(move || r2.complete(unique, 0, b"hello"));
        assert_eq!(ret.wait(Duration::from_secs(5)).unwrap(), (0, b"hello".to_vec()));
        // As a future, polled by a minimal executor.
        let mut fut = n.retrieve(NodeId(7), 0, 10).unwrap();
        let out = mem.next_reply(Duration::ZERO).unwrap();
        let unique = retrieve_unique(&out);
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        r.complete(unique, 3, b"lo");
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready((3, b"lo".to_vec())));
        // Nobody answers: timeout, and the slot is cleaned up.
        let ret = n.retrieve(NodeId(7), 0, 10).unwrap();
        assert!(matches!(ret.wait(Duration::from_millis(10)), Err(NotifyError::Timeout)));
        assert!(r.slots.lock().unwrap().is_empty());
    }
}
