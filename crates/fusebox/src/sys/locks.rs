//! Open-file-description (OFD) record locks and cancellable blocking calls, with safe
//! signatures, for file systems that forward locks to backing files (passthrough).
//!
//! OFD locks (`F_OFD_SETLK`/`F_OFD_SETLKW`/`F_OFD_GETLK`) belong to an open file description,
//! not to a process, so a daemon can hold locks on behalf of many clients, one descriptor per
//! client, and they conflict with classic POSIX locks and other OFD locks taken by anyone else
//! on the same file.
//!
//! A blocking call (a lock wait) is made cancellable by [`run_cancellable`]: the [`Canceller`]
//! it hands out sends the calling thread a signal whose handler does nothing and is installed
//! without `SA_RESTART`, so the blocked syscall returns EINTR.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// A lock request or a lock found by [`ofd_getlk`]. `end` is inclusive; `u64::MAX` (or
/// anything beyond `i64::MAX`) means "to the end of the file".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfdLock {
    /// `F_RDLCK`, `F_WRLCK` or `F_UNLCK`.
    pub typ: i32,
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
    /// Holder's pid as the kernel reports it (-1 for OFD locks).
    pub pid: i32,
}

impl OfdLock {
    /// A request for a lock of type `typ` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) on the bytes
    /// `start..=end` (the pid of a request is 0, as the kernel wants it).
    pub const fn new(typ: i32, start: u64, end: u64) -> OfdLock {
        OfdLock { typ, start, end, pid: 0 }
    }
}

fn to_flock(l: &OfdLock) -> io::Result<libc::flock> {
    if l.start > i64::MAX as u64 || l.end < l.start {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let len = if l.end >= i64::MAX as u64 { 0 } else { (l.end - l.start + 1) as i64 };
    // SAFETY: flock is a plain C struct for which all-zero bytes are a valid value.
    let mut f: libc::flock = unsafe { std::mem::zeroed() };
    f.l_type = l.typ as libc::c_short;
    f.l_whence = libc::SEEK_SET as libc::c_short;
    f.l_start = l.start as libc::off_t;
    f.l_len = len as libc::off_t;
    f.l_pid = 0;
    Ok(f)
}

fn fcntl_lock(fd: BorrowedFd<'_>, cmd: libc::c_int, f: &mut libc::flock) -> io::Result<()> {
    // SAFETY: `f` is a valid, exclusively borrowed struct flock for the duration of the call;
    // the OFD lock commands read and (for GETLK) write exactly one such struct.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, f as *mut libc::flock) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Take or release an OFD lock on `fd`. With `wait`, block until it is granted (EINTR when
/// cancelled, see [`run_cancellable`]); otherwise fail with EAGAIN on conflict.
pub fn ofd_setlk(fd: BorrowedFd<'_>, lock: &OfdLock, wait: bool) -> io::Result<()> {
    let mut f = to_flock(lock)?;
    fcntl_lock(fd, if wait { libc::F_OFD_SETLKW } else { libc::F_OFD_SETLK }, &mut f)
}

/// The first lock (held through another open file description or by a process) that would
/// conflict with `lock`, or `None`.
pub fn ofd_getlk(fd: BorrowedFd<'_>, lock: &OfdLock) -> io::Result<Option<OfdLock>> {
    getlk(fd, libc::F_OFD_GETLK, lock)
}

/// `F_GETLK` or `F_OFD_GETLK` (`cmd`): the first lock that would conflict with `lock`.
fn getlk(fd: BorrowedFd<'_>, cmd: libc::c_int, lock: &OfdLock) -> io::Result<Option<OfdLock>> {
    let mut f = to_flock(lock)?;
    fcntl_lock(fd, cmd, &mut f)?;
    if f.l_type as i32 == libc::F_UNLCK {
        return Ok(None);
    }
    let start = f.l_start as u64;
    // "To the end of the file" is OFFSET_MAX, as the kernel writes it (FUSE rejects more).
    let end = if f.l_len == 0 { i64::MAX as u64 } else { start + f.l_len as u64 - 1 };
    Ok(Some(OfdLock { typ: f.l_type as i32, start, end, pid: f.l_pid }))
}

/// Take or release a classic process-owned POSIX lock (`F_SETLK`/`F_SETLKW`) on `fd`.
pub fn process_setlk(fd: BorrowedFd<'_>, lock: &OfdLock, wait: bool) -> io::Result<()> {
    let mut f = to_flock(lock)?;
    fcntl_lock(fd, if wait { libc::F_SETLKW } else { libc::F_SETLK }, &mut f)
}

/// `F_GETLK`: the first lock that would conflict with a process-owned `lock`, or `None`.
pub fn process_getlk(fd: BorrowedFd<'_>, lock: &OfdLock) -> io::Result<Option<OfdLock>> {
    getlk(fd, libc::F_GETLK, lock)
}

/// The signal used to wake a thread out of a blocking call.
fn wake_signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

extern "C" fn ignore_signal(_: libc::c_int) {}

fn install_wake_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is called with a zero-initialised struct whose handler is a valid
        // `extern "C"` function that does nothing (async-signal-safe); no SA_RESTART, so
        // blocking calls return EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            if libc::sigaction(wake_signal(), &sa, std::ptr::null_mut()) != 0 {
                tracing::warn!(error = %io::Error::last_os_error(), "cannot install the wake-up signal handler");
            }
        }
    });
}

#[derive(Default)]
struct CancelState {
    /// The thread running the call, while it runs.
    thread: Option<libc::pthread_t>,
    cancelled: bool,
}

/// Cancels a call running under [`run_cancellable`]. Cloneable, `Send + Sync`.
#[derive(Clone, Default)]
pub struct Canceller(Arc<Mutex<CancelState>>);

impl Canceller {
    /// Make the call return EINTR (now, or at once if it has not started blocking yet).
    /// Returns when the call has returned or after one second of trying.
    pub fn cancel(&self) {
        for _ in 0..100 {
            {
                let mut st = self.0.lock().unwrap_or_else(|e| e.into_inner());
                st.cancelled = true;
                let Some(t) = st.thread else { return };
                // SAFETY: `t` is the thread that set `thread` in run_cancellable; it clears it
                // (under this lock) before returning, so the thread is alive while we hold the
                // lock and see it here.
                unsafe { libc::pthread_kill(t, wake_signal()) };
            }
            // The signal may have landed just before the thread entered the syscall: retry
            // until it has left.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True once [`Canceller::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).cancelled
    }
}

/// Run the blocking `op` on this thread, cancellable through the [`Canceller`] given to
/// `register` (called before `op` starts). `op` is retried when it fails with EINTR without a
/// cancel; after a cancel the result is EINTR unless `op` already succeeded.
pub fn run_cancellable<T>(
    register: impl FnOnce(Canceller), mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    install_wake_handler();
    let c = Canceller::default();
    // SAFETY: pthread_self has no preconditions.
    c.0.lock().unwrap_or_else(|e| e.into_inner()).thread = Some(unsafe { libc::pthread_self() });
    register(c.clone());
    let result = loop {
        if c.is_cancelled() {
            break Err(io::Error::from_raw_os_error(libc::EINTR));
        }
        match op() {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => break r,
        }
    };
    c.0.lock().unwrap_or_else(|e| e.into_inner()).thread = None;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn ofd_locks_conflict_between_descriptions_and_wait_is_cancellable() {
        let f = tempfile::tempfile().unwrap();
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        let g = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        ofd_setlk(f.as_fd(), &OfdLock::new(libc::F_WRLCK, 0, 9), false).unwrap();
        let e = ofd_setlk(g.as_fd(), &OfdLock::new(libc::F_WRLCK, 5, 5), false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
        let found = ofd_getlk(g.as_fd(), &OfdLock::new(libc::F_RDLCK, 0, u64::MAX)).unwrap().unwrap();
        assert_eq!((found.typ, found.start, found.end), (libc::F_WRLCK, 0, 9));
        assert_eq!(ofd_getlk(g.as_fd(), &OfdLock::new(libc::F_WRLCK, 10, u64::MAX)).unwrap(), None);
        // A blocked wait returns EINTR when cancelled.
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            run_cancellable(
                |c| tx.send(c).unwrap(),
                || ofd_setlk(g.as_fd(), &OfdLock::new(libc::F_WRLCK, 0, 0), true),
            )
        });
        let c = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.cancel();
        assert_eq!(t.join().unwrap().unwrap_err().raw_os_error(), Some(libc::EINTR));
        ofd_setlk(f.as_fd(), &OfdLock::new(libc::F_UNLCK, 0, u64::MAX), false).unwrap();
    }
}
