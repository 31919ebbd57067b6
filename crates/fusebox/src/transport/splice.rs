//! Replies whose data comes from a file, moved with splice(2) instead of being copied through
//! user memory (`-o splice_write`, the kernel's FUSE_SPLICE_WRITE path).
//!
//! The reply header is written into a per-thread pipe, the file's pages are spliced in behind
//! it, and the pipe is spliced into `/dev/fuse`: the data is copied once (into the request's
//! pages, by the kernel) instead of twice (pread into a buffer, then writev). Anything
//! unexpected before the reply is committed (a short read, a file that cannot be spliced) is
//! reported as [`Spliced::Fallback`] with the pipe emptied, so the caller can answer the
//! ordinary way.

use crate::abi;
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use zerocopy::IntoBytes;

/// What happened to a spliced reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Spliced {
    /// The reply (header + this many data bytes) was written to the device.
    Sent(usize),
    /// Nothing was sent; answer without splice.
    Fallback,
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new(capacity: usize) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ takes an int size and touches no memory of ours.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, capacity as libc::c_int) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe { read, write, capacity: got as usize })
    }

    /// Throw away whatever the pipe holds.
    fn drain(&self) -> io::Result<()> {
        let mut scratch = [0u8; 64 * 1024];
        loop {
            let mut pfd = libc::pollfd { fd: self.read.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd; zero timeout.
            if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0 {
                return Ok(());
            }
            // SAFETY: reads into `scratch`, which is valid for its whole length.
            let n = unsafe { libc::read(self.read.as_raw_fd(), scratch.as_mut_ptr().cast(), scratch.len()) };
            if n <= 0 {
                return if n == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
            }
        }
    }
}

thread_local! {
    static PIPE: RefCell<Option<Pipe>> = const { RefCell::new(None) };
}

fn splice(from: BorrowedFd, off: Option<&mut i64>, to: BorrowedFd, len: usize) -> io::Result<usize> {
    let off_ptr = off.map_or(std::ptr::null_mut(), |o| o as *mut i64);
    // SAFETY: valid descriptors; `off_ptr` is null or points to a live i64 for the call.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            off_ptr,
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Bytes of a regular file available at `offset`, at most `len`.
fn available(file: BorrowedFd, offset: u64, len: usize) -> io::Result<usize> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills `st` on success; we read it only then.
    if unsafe { libc::fstat(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok((st.st_size as u64).saturating_sub(offset).min(len as u64) as usize)
}

/// Answer request `unique` on `dev` with up to `len` bytes of `file` at `offset`, spliced.
/// Any failure before the reply is committed is [`Spliced::Fallback`] (nothing sent, so the
/// caller must still answer); an `Err` means the reply went to the device and was refused
/// (the request is gone, as when a plain write of the reply fails).
pub fn reply_from_file(
    dev: BorrowedFd, unique: u64, file: BorrowedFd, offset: u64, len: usize,
) -> io::Result<Spliced> {
    let header_len = std::mem::size_of::<abi::fuse_out_header>();
    let len = match available(file, offset, len) {
        Ok(n) if n > 0 => n,
        _ => return Ok(Spliced::Fallback),
    };
    PIPE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let want = (header_len + len).next_power_of_two().max(64 * 1024);
        if slot.as_ref().is_none_or(|p| p.capacity < header_len + len) {
            match Pipe::new(want) {
                Ok(p) => *slot = Some(p),
                Err(e) => {
                    tracing::debug!(error = %e, bytes = want, "no pipe for a spliced reply");
                    return Ok(Spliced::Fallback);
                }
            }
        }
        let pipe = slot.as_ref().expect("pipe just created");
        let header = abi::fuse_out_header { len: (header_len + len) as u32, error: 0, unique };
        // Fill: header, then the file's bytes. On any surprise, empty the pipe and fall back.
        let filled = (|| -> io::Result<bool> {
            let h = header.as_bytes();
            // SAFETY: writes `h`, valid for its length, into our pipe.
            let n = unsafe { libc::write(pipe.write.as_raw_fd(), h.as_ptr().cast(), h.len()) };
            if n != h.len() as isize {
                return Ok(false);
            }
            let mut off = offset as i64;
            let mut got = 0;
            while got < len {
                match splice(file, Some(&mut off), pipe.write.as_fd(), len - got)? {
                    0 => return Ok(false),
                    n => got += n,
                }
            }
            Ok(true)
        })();
        if !matches!(filled, Ok(true)) {
            if pipe.drain().is_err() {
                *slot = None;
            }
            return Ok(Spliced::Fallback);
        }
        match splice(pipe.read.as_fd(), None, dev, header_len + len) {
            Ok(n) if n == header_len + len => Ok(Spliced::Sent(len)),
            other => {
                // The device took part or none of it: the pipe's state is unknown, start afresh.
                *slot = None;
                match other {
                    Err(e) => Err(e),
                    Ok(n) => Err(io::Error::other(format!("short splice to /dev/fuse: {n} bytes"))),
                }
            }
        }
    })
}
