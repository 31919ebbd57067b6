//! FUSE over io_uring (kernel 6.14+, protocol 7.42): one ring per queue thread, each with
//! `depth` entries. An entry is a 288-byte header buffer plus a payload buffer that the kernel
//! fills with a request; the answer is written into the same buffers and handed back with
//! `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`, which also asks for the next request.
//!
//! Request layout in an entry: `fuse_in_header` at header offset 0, the opcode's fixed
//! argument (`op_in`) at 128, `fuse_uring_ent_in_out` (commit id, payload size) at 256, and
//! the remaining arguments (names, WRITE data) at the start of the payload buffer. The
//! parser wants one contiguous `/dev/fuse`-style frame, so the two small headers are copied
//! into a slack page just before the payload: no payload byte is copied.
//!
//! Reply layout: `fuse_out_header` at header offset 0, `payload_sz` in `ent_in_out`, all out
//! arguments at the start of the payload buffer.
//!
//! Threads: the ring is owned by its queue thread, which alone submits. A reply written
//! inline (during dispatch, on the queue thread) is committed right after the handler
//! returns. A reply sent later from another thread (a file system that moved its reply
//! token) writes into the entry's buffers, queues the entry index and wakes the queue thread
//! through an eventfd read that is always armed on the ring.

use super::ReplyChannel;
use crate::abi;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use zerocopy::{FromBytes, IntoBytes};

use abi::{FUSE_URING_ENT_IN_OUT_OFFSET as ENT_IN_OUT, FUSE_URING_OP_IN_OFFSET as OP_IN};
/// Bytes before the payload in an entry's data buffer: room for the in header and `op_in`
/// when a request is made contiguous, and keeps the payload page-aligned.
const SLACK: usize = 4096;
/// user_data of the eventfd read.
const WAKE: u64 = u64::MAX;

/// The `fuse_out_header` at the front of a reply (the sender puts all 16 bytes in its first
/// slice; a shorter one was refused before).
fn out_header(first: &[u8]) -> abi::fuse_out_header {
    crate::wire::reply::out_header(first).expect("16-byte out header")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An entry's two buffers, shared between the kernel, the queue thread and a reply.
struct EntryMem {
    header: *mut u8,
    data: *mut u8,
    data_len: usize,
}

// SAFETY: the buffers are plain bytes. Who may touch them is decided by the FUSE-over-io_uring
// protocol and enforced by `Slot::state`: the kernel between a submission and its completion,
// the queue thread while it builds a request frame, one reply sender while the slot is armed.
unsafe impl Send for EntryMem {}
// SAFETY: see `Send`; every access goes through `Slot`, which serializes it.
unsafe impl Sync for EntryMem {}

impl EntryMem {
    fn header_layout() -> Layout {
        Layout::from_size_align(abi::FUSE_URING_REQ_HEADER_SIZE, 64).expect("valid layout")
    }
    fn data_layout(len: usize) -> Layout {
        Layout::from_size_align(len, 4096).expect("valid layout")
    }

    fn new(payload: usize) -> io::Result<EntryMem> {
        let data_len = SLACK + payload;
        // SAFETY: both layouts have a non-zero size.
        let header = unsafe { alloc_zeroed(Self::header_layout()) };
        if header.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        // SAFETY: as above. Zeroed pages are mapped lazily, so an idle entry costs no memory.
        let data = unsafe { alloc_zeroed(Self::data_layout(data_len)) };
        if data.is_null() {
            // SAFETY: `header` came from alloc_zeroed with this layout.
            unsafe { dealloc(header, Self::header_layout()) };
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        Ok(EntryMem { header, data, data_len })
    }

    fn payload_cap(&self) -> usize {
        self.data_len - SLACK
    }

    fn read_header<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        assert!(off + N <= abi::FUSE_URING_REQ_HEADER_SIZE);
        // SAFETY: the range is inside the header allocation (checked above); the kernel is not
        // writing it (the caller holds the entry between completion and commit).
        unsafe { std::ptr::copy_nonoverlapping(self.header.add(off), out.as_mut_ptr(), N) };
        out
    }

    /// The request's `fuse_in_header`.
    fn in_header(&self) -> abi::fuse_in_header {
        let raw: [u8; 40] = self.read_header(0);
        abi::fuse_in_header::read_from_bytes(&raw).expect("40 bytes")
    }

    /// The entry's `fuse_uring_ent_in_out` (commit id, payload size).
    fn ent_in_out(&self) -> abi::fuse_uring_ent_in_out {
        let raw: [u8; 32] = self.read_header(ENT_IN_OUT);
        abi::fuse_uring_ent_in_out::read_from_bytes(&raw).expect("32 bytes")
    }

    /// Write a reply's out header and payload size.
    fn write_out(&self, out: &abi::fuse_out_header, payload: usize) {
        self.write_header(0, out.as_bytes());
        let ent = abi::fuse_uring_ent_in_out { payload_sz: payload as u32, ..self.ent_in_out() };
        self.write_header(ENT_IN_OUT, ent.as_bytes());
    }

    fn write_header(&self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= abi::FUSE_URING_REQ_HEADER_SIZE);
        // SAFETY: inside the header allocation; the writer owns the entry (armed slot).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.header.add(off), bytes.len()) };
    }

    /// Copy `parts` to the payload buffer. The caller checked they fit.
    fn write_payload(&self, parts: &[&[u8]]) {
        let mut at = SLACK;
        for p in parts {
            assert!(at + p.len() <= self.data_len);
            // SAFETY: the range is inside the data allocation (checked); the writer owns the
            // entry and no request frame borrowed from this range is alive (see `Slot::send`).
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), self.data.add(at), p.len()) };
            at += p.len();
        }
    }
}

impl Drop for EntryMem {
    fn drop(&mut self) {
        // SAFETY: both pointers came from alloc_zeroed with these layouts and are freed once.
        unsafe {
            dealloc(self.header, Self::header_layout());
            dealloc(self.data, Self::data_layout(self.data_len));
        }
    }
}

/// What a slot's reply channel knows about the request it currently holds.
#[derive(Default)]
struct SlotState {
    /// A request is held and not yet answered.
    armed: bool,
    /// The queue thread is still inside the handler for it.
    dispatching: bool,
    /// The request frame borrows the payload buffer (it had a payload).
    frame_in_payload: bool,
    /// A reply sent during dispatch of a request with a payload waits here, so the request
    /// bytes the handler may still read are not overwritten.
    staged: Option<Vec<u8>>,
    /// Reply written to the buffers, commit not yet submitted.
    ready: bool,
}

/// Shared by a queue thread and the senders of deferred replies.
struct Shared {
    /// Entries answered from other threads, to be committed by the queue thread.
    remote: Mutex<Vec<usize>>,
    eventfd: OwnedFd,
    stop: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to our eventfd.
        let _ = unsafe { libc::write(self.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// One ring entry and its reply channel.
struct Slot {
    mem: EntryMem,
    idx: usize,
    state: Mutex<SlotState>,
    shared: Arc<Shared>,
}

impl Slot {
    /// Write a complete reply (out header + payload) into the entry's buffers.
    fn write_reply(&self, out: &abi::fuse_out_header, payload: &[&[u8]]) {
        let total: usize = payload.iter().map(|p| p.len()).sum();
        if total > self.mem.payload_cap() {
            tracing::error!(
                len = total,
                cap = self.mem.payload_cap(),
                "reply larger than the ring buffer: EIO"
            );
            let eio = abi::fuse_out_header { len: 16, error: -libc::EIO, unique: out.unique };
            self.mem.write_out(&eio, 0);
            return;
        }
        self.mem.write_payload(payload);
        self.mem.write_out(out, total);
    }
}

impl ReplyChannel for Slot {
    fn send(&self, iov: &[IoSlice<'_>]) -> io::Result<()> {
        let mut st = lock(&self.state);
        if !st.armed {
            tracing::error!(entry = self.idx, "second reply to one io_uring request dropped");
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if iov.is_empty() || iov[0].len() < 16 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        st.armed = false;
        if st.dispatching && st.frame_in_payload {
            // The handler may still read request bytes in the payload buffer: stage.
            st.staged = Some(iov.iter().flat_map(|s| s.iter().copied()).collect());
            st.ready = true;
            return Ok(());
        }
        let all: Vec<&[u8]> = iov.iter().map(|s| &s[..]).collect();
        let header = out_header(all[0]);
        let mut payload: Vec<&[u8]> = Vec::with_capacity(all.len());
        if all[0].len() > 16 {
            payload.push(&all[0][16..]);
        }
        payload.extend_from_slice(&all[1..]);
        self.write_reply(&header, &payload);
        st.ready = true;
        if !st.dispatching {
            drop(st);
            lock(&self.shared.remote).push(self.idx);
            self.shared.wake();
        }
        Ok(())
    }
}

/// What a queue thread calls for each request: the request frame and the channel its one
/// reply must go to.
pub type Handler<'a> = dyn FnMut(&[u8], &Arc<dyn ReplyChannel>) + 'a;

/// A handle that stops a queue thread from elsewhere.
#[derive(Clone)]
pub struct QueueWaker(Arc<Shared>);

impl QueueWaker {
    /// Ask the queue thread to return from [`UringQueue::serve`].
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.wake();
    }
}

/// Why [`UringQueue::serve`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueEnd {
    /// The connection ended (unmount or abort).
    Disconnected,
    /// [`QueueWaker::stop`] was called.
    Stopped,
}

/// One io_uring with `depth` FUSE entries for queue `qid`.
pub struct UringQueue {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    qid: u16,
    slots: Vec<Arc<Slot>>,
    chans: Vec<Arc<dyn ReplyChannel>>,
    /// iovecs of each entry (header, payload) for REGISTER; kept alive with the ring.
    iovecs: Box<[[libc::iovec; 2]]>,
    registered: Vec<bool>,
    shared: Arc<Shared>,
    /// Target of the eventfd read. Leaked on purpose (8 bytes per queue): a read still armed
    /// when the ring is closed may complete after the queue is gone.
    wake_buf: &'static mut u64,
    /// The kernel ended the connection, so it writes no entry buffer any more.
    disconnected: bool,
    /// Completions reaped while registering, handled first by `serve`.
    early: Vec<(u64, i32)>,
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        if !self.disconnected {
            // Entries may still be registered with a live connection, and the kernel may
            // copy a request into them until it sees the ring closed: never free them.
            for s in &self.slots {
                std::mem::forget(s.clone());
            }
        }
    }
}

// SAFETY: the raw pointers in `iovecs` point into the slots' buffers, which the queue owns;
// nothing else in the queue is tied to the creating thread.
unsafe impl Send for UringQueue {}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Build a URING_CMD SQE for the FUSE device (fixed file 0) with `cmd_req` in the command area.
fn fuse_cmd(cmd_op: u32, qid: u16, commit_id: u64) -> opcode::UringCmd80 {
    let req = abi::fuse_uring_cmd_req { flags: 0, commit_id, qid, padding: [0; 6] };
    let mut cmd = [0u8; 80];
    cmd[..24].copy_from_slice(zerocopy::IntoBytes::as_bytes(&req));
    opcode::UringCmd80::new(types::Fixed(0), cmd_op).cmd(cmd)
}

/// Set `sqe->len` of a 128-byte SQE (the crate has no setter for URING_CMD).
fn with_len(entry: squeue::Entry128, len: u32) -> squeue::Entry128 {
    const _: () = assert!(std::mem::size_of::<squeue::Entry128>() == 128);
    // SAFETY: `squeue::Entry128` is `#[repr(C)]`: the kernel's 64-byte `io_uring_sqe`
    // followed by 64 command bytes (size asserted above), and every bit pattern of those
    // bytes is a valid value. `len` is the u32 at byte offset 24 of `io_uring_sqe`.
    unsafe {
        let mut raw: [u8; 128] = std::mem::transmute(entry);
        raw[24..28].copy_from_slice(&len.to_ne_bytes());
        std::mem::transmute::<[u8; 128], squeue::Entry128>(raw)
    }
}

impl UringQueue {
    /// Create a ring for queue `qid` on the FUSE device `dev_fd` with `depth` entries whose
    /// payload buffers hold `payload` bytes (at least the kernel's max(max_write, max_pages
    /// pages, 8 KiB)). `defer` sets up the ring with SINGLE_ISSUER and DEFER_TASKRUN: the
    /// kernel's completion work then runs only when this thread waits in `io_uring_enter`,
    /// instead of interrupting it.
    pub fn new(dev_fd: RawFd, qid: u16, depth: usize, payload: usize, defer: bool) -> io::Result<UringQueue> {
        let sq = (depth + 1).next_power_of_two() as u32;
        let mut builder = IoUring::<squeue::Entry128, cqueue::Entry>::builder();
        builder.setup_cqsize(sq * 2);
        if defer {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        let ring = builder.build(sq)?;
        ring.submitter().register_files(&[dev_fd])?;
        // SAFETY: eventfd has no memory preconditions.
        let efd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
        // SAFETY: `efd` was just returned and is owned by nobody else.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        let shared =
            Arc::new(Shared { remote: Mutex::new(Vec::new()), eventfd, stop: AtomicBool::new(false) });
        let mut slots = Vec::with_capacity(depth);
        let mut iovecs = Vec::with_capacity(depth);
        for idx in 0..depth {
            let mem = EntryMem::new(payload)?;
            iovecs.push([
                libc::iovec { iov_base: mem.header.cast(), iov_len: abi::FUSE_URING_REQ_HEADER_SIZE },
                // SAFETY: SLACK < data_len, so the pointer stays inside the allocation.
                libc::iovec { iov_base: unsafe { mem.data.add(SLACK) }.cast(), iov_len: payload },
            ]);
            slots.push(Arc::new(Slot {
                mem,
                idx,
                state: Mutex::new(SlotState::default()),
                shared: shared.clone(),
            }));
        }
        let chans = slots.iter().map(|s| s.clone() as Arc<dyn ReplyChannel>).collect();
        Ok(UringQueue {
            ring,
            qid,
            slots,
            chans,
            iovecs: iovecs.into_boxed_slice(),
            registered: vec![false; depth],
            shared,
            wake_buf: Box::leak(Box::new(0)),
            disconnected: false,
            early: Vec::new(),
        })
    }

    /// A handle to stop [`UringQueue::serve`] from another thread.
    pub fn waker(&self) -> QueueWaker {
        QueueWaker(self.shared.clone())
    }

    fn push(&mut self, sqe: &squeue::Entry128) -> io::Result<()> {
        // SAFETY: every buffer an SQE names (iovecs and entry buffers, the eventfd word) is
        // owned by this queue and outlives the ring, which is dropped first (field order and
        // `Drop` of IoUring cancel nothing we free before it).
        unsafe { self.ring.submission().push(sqe) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    }

    fn push_register(&mut self, idx: usize) -> io::Result<()> {
        let iov = self.iovecs[idx].as_ptr() as u64;
        let sqe = fuse_cmd(abi::FUSE_IO_URING_CMD_REGISTER, self.qid, 0).addr(Some(iov)).build();
        self.push(&with_len(sqe, 2).user_data(idx as u64))
    }

    fn push_commit(&mut self, idx: usize) -> io::Result<()> {
        let commit_id = self.slots[idx].mem.ent_in_out().commit_id;
        let sqe = fuse_cmd(abi::FUSE_IO_URING_CMD_COMMIT_AND_FETCH, self.qid, commit_id).build();
        self.push(&sqe.user_data(idx as u64))
    }

    fn push_wake_read(&mut self) -> io::Result<()> {
        let fd = types::Fd(self.shared.eventfd.as_raw_fd());
        let buf: *mut u64 = &mut *self.wake_buf;
        let e = opcode::Read::new(fd, buf.cast(), 8).build().user_data(WAKE);
        self.push(&squeue::Entry128::from(e))
    }

    /// Register every entry with the kernel. Errors the kernel reports at once (io_uring
    /// disabled, connection not initialized, buffers too small, bad queue id) are returned;
    /// accepted entries stay pending until a request arrives.
    pub fn register(&mut self) -> io::Result<()> {
        for idx in 0..self.slots.len() {
            self.push_register(idx)?;
        }
        self.push_wake_read()?;
        self.ring.submit()?;
        // Inline failures are completed before io_uring_enter returns. An entry may also
        // already hold a request (the ring became ready while we registered): keep it for
        // `serve`.
        let early: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        if let Some(&(_, res)) = early.iter().find(|&&(ud, res)| ud != WAKE && res < 0) {
            return Err(io::Error::from_raw_os_error(-res));
        }
        self.early = early;
        self.registered.iter_mut().for_each(|r| *r = true);
        Ok(())
    }

    /// Build the contiguous request frame of entry `idx` in its slack page and return its
    /// (start, len) in the data buffer, plus the payload size.
    fn frame(&self, idx: usize) -> (usize, usize, usize) {
        let mem = &self.slots[idx].mem;
        let inh: [u8; 40] = mem.read_header(0);
        let len = abi::fuse_in_header::read_from_bytes(&inh).expect("40 bytes").len as usize;
        let payload = mem.ent_in_out().payload_sz as usize;
        let op_len = len.checked_sub(40 + payload).filter(|&n| n <= 128 && payload <= mem.payload_cap());
        let op_len = match op_len {
            Some(n) => n,
            // Inconsistent sizes: hand over the bare header; the parser answers EINVAL.
            None => {
                let start = SLACK - 40;
                // SAFETY: [start, SLACK) is inside the data allocation and owned by us now.
                unsafe { std::ptr::copy_nonoverlapping(inh.as_ptr(), mem.data.add(start), 40) };
                return (start, 40, 0);
            }
        };
        let op: [u8; 128] = mem.read_header(OP_IN);
        let start = SLACK - op_len - 40;
        // SAFETY: [start, SLACK) lies inside the slack page of the data allocation; the kernel
        // only writes from SLACK on, and nothing else borrows this range now.
        unsafe {
            std::ptr::copy_nonoverlapping(inh.as_ptr(), mem.data.add(start), 40);
            std::ptr::copy_nonoverlapping(op.as_ptr(), mem.data.add(start + 40), op_len);
        }
        (start, len, payload)
    }

    /// Serve requests until the connection ends or [`QueueWaker::stop`]: each request is
    /// passed to `handle` with the entry's reply channel; answered entries are committed
    /// (and fetch the next request) in batches.
    pub fn serve(&mut self, handle: &mut Handler<'_>) -> io::Result<QueueEnd> {
        let mut done: Vec<(u64, i32)> = std::mem::take(&mut self.early);
        loop {
            if done.is_empty() {
                match self.ring.submit_and_wait(1) {
                    Ok(_) => {}
                    Err(e)
                        if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EBUSY) => {
                    }
                    Err(e) => return Err(e),
                }
                done.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
            }
            for &(ud, res) in &done {
                if ud == WAKE {
                    if self.shared.stop.load(Ordering::SeqCst) {
                        return Ok(QueueEnd::Stopped);
                    }
                    self.push_wake_read()?;
                    continue;
                }
                let idx = ud as usize;
                if res < 0 {
                    match -res {
                        libc::EAGAIN | libc::EINTR => {
                            if self.registered[idx] {
                                self.push_commit(idx)?
                            } else {
                                self.push_register(idx)?
                            }
                        }
                        libc::ENOTCONN | libc::ECONNABORTED | libc::ENODEV | libc::ECANCELED => {
                            self.disconnected = true;
                            return Ok(QueueEnd::Disconnected);
                        }
                        e => return Err(io::Error::from_raw_os_error(e)),
                    }
                    continue;
                }
                self.dispatch(idx, handle)?;
            }
            done.clear();
            let remote = std::mem::take(&mut *lock(&self.shared.remote));
            for idx in remote {
                self.commit_if_ready(idx)?;
            }
        }
    }

    fn dispatch(&mut self, idx: usize, handle: &mut Handler<'_>) -> io::Result<()> {
        let (start, len, payload) = self.frame(idx);
        let slot = self.slots[idx].clone();
        {
            let mut st = lock(&slot.state);
            *st = SlotState {
                armed: true,
                dispatching: true,
                frame_in_payload: payload > 0,
                ..Default::default()
            };
        }
        // SAFETY: [start, start+len) is inside the data allocation (start + len ≤ SLACK +
        // payload ≤ data_len); the kernel filled it before the completion and will not touch
        // it until we commit; replies sent during dispatch never write into it (they are
        // staged when the frame reaches into the payload buffer, and otherwise write only
        // from SLACK on, past a frame without payload).
        let frame = unsafe { std::slice::from_raw_parts(slot.mem.data.add(start), len) };
        let opcode = slot.mem.in_header().opcode;
        handle(frame, &self.chans[idx]);
        let mut st = lock(&slot.state);
        st.dispatching = false;
        if let Some(bytes) = st.staged.take() {
            slot.write_reply(&out_header(&bytes), &[&bytes[16..]]);
        }
        if st.armed && !crate::wire::needs_reply(opcode) {
            // The kernel routes these to /dev/fuse; should one arrive here, free the entry.
            st.armed = false;
            let unique = slot.mem.in_header().unique;
            slot.write_reply(&abi::fuse_out_header { len: 16, error: 0, unique }, &[]);
            st.ready = true;
        }
        drop(st);
        self.commit_if_ready(idx)
    }

    fn commit_if_ready(&mut self, idx: usize) -> io::Result<()> {
        let ready = std::mem::take(&mut lock(&self.slots[idx].state).ready);
        if ready {
            self.push_commit(idx)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_offsets_match_the_kernel_struct() {
        assert_eq!(
            ENT_IN_OUT + std::mem::size_of::<abi::fuse_uring_ent_in_out>(),
            abi::FUSE_URING_REQ_HEADER_SIZE
        );
        assert!(std::mem::size_of::<abi::fuse_uring_cmd_req>() <= 80);
        const { assert!(SLACK >= 40 + 128) };
    }

    #[test]
    fn sqe_len_lands_in_the_kernel_field() {
        let e = with_len(fuse_cmd(1, 3, 7).addr(Some(0x1234)).build(), 2);
        // SAFETY: Entry128 is 128 plain bytes (see with_len).
        let raw: [u8; 128] = unsafe { std::mem::transmute(e) };
        assert_eq!(raw[0], io_uring::opcode::UringCmd80::CODE);
        assert_eq!(u32::from_ne_bytes(raw[24..28].try_into().unwrap()), 2);
        assert_eq!(u64::from_ne_bytes(raw[16..24].try_into().unwrap()), 0x1234);
        // cmd_op at offset 8, the command (fuse_uring_cmd_req) at 48: commit_id, then qid.
        assert_eq!(u32::from_ne_bytes(raw[8..12].try_into().unwrap()), 1);
        assert_eq!(u64::from_ne_bytes(raw[56..64].try_into().unwrap()), 7);
        assert_eq!(u16::from_ne_bytes(raw[64..66].try_into().unwrap()), 3);
    }
}
