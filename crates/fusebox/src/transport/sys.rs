//! Raw syscalls with safe signatures: mount/umount, fd passing from fusermount3, and the
//! file-handle calls (`name_to_handle_at` / `open_by_handle_at`) the passthrough FS uses.
//! Keeping them here keeps every `unsafe` block of the project in `abi/` and `transport/`.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use super::oslocks::{
    ofd_getlk, ofd_setlk, process_getlk, process_setlk, run_cancellable, Canceller, OfdLock,
};

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// mount(2).
pub fn mount(source: &str, target: &Path, fstype: &str, flags: u64, data: &str) -> io::Result<()> {
    let (s, t, f, d) =
        (cstr(source.as_ref())?, cstr(target.as_os_str())?, cstr(fstype.as_ref())?, cstr(data.as_ref())?);
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags as _, d.as_ptr().cast()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// umount2(2) with `flags` (e.g. `libc::MNT_DETACH`).
pub fn umount(target: &Path, flags: i32) -> io::Result<()> {
    let t = cstr(target.as_os_str())?;
    // SAFETY: `t` is a valid NUL-terminated path.
    if unsafe { libc::umount2(t.as_ptr(), flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The effective uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// CAP_SYS_ADMIN (capability 21), needed for mounting and for kernel passthrough.
pub const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process has capability `cap` in its effective set (from /proc/self/status;
/// false when that cannot be read).
pub fn has_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|eff| cap < 64 && eff & (1 << cap) != 0)
}

/// The real uid and gid of this process.
pub fn getuid_gid() -> (u32, u32) {
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Ask the scheduler for a time slice of `slice` for the calling thread (SCHED_OTHER with
/// `sched_runtime`, honoured by the EEVDF scheduler since Linux 6.12; clamped by the kernel to
/// 0.1–100 ms). A thread with a shorter slice gets an earlier deadline, so when it wakes on a
/// busy CPU it preempts the running task sooner. Keeps the thread's nice value.
pub fn set_thread_slice(slice: std::time::Duration) -> io::Result<()> {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: getpriority reads the thread's nice value; errno is reset first because -1 is a
    // valid result.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t)
    };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: slice.as_nanos().min(u64::MAX as u128) as u64,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid struct sched_attr (size set) that outlives the call; pid 0 is
    // the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the calling thread's nice value (Linux: a thread's own scheduling weight).
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority changes only the scheduling weight of the given thread.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the process umask, returning the old one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// A connected pair of unix stream sockets; the second end is inheritable (no CLOEXEC) so a
/// child such as fusermount3 can use it.
pub fn socketpair_for_child() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETFD on a valid fd we own.
    unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok((ours, theirs))
}

/// Receive one file descriptor sent with SCM_RIGHTS over `sock` (fusermount3's protocol).
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // Room for one cmsghdr carrying one int, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; zeroed is a valid initial state.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    loop {
        // SAFETY: msg points at live buffers (iov, cbuf) sized as declared.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "fusermount3 sent no fd"));
        }
        break;
    }
    // SAFETY: CMSG_FIRSTHDR reads msg_control/msg_controllen set above.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "fusermount3 sent no fd"));
    }
    // SAFETY: cmsg is non-null and points into cbuf; we check its type before reading data.
    unsafe {
        if (*cmsg).cmsg_level != libc::SOL_SOCKET || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected control message"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// An opaque kernel file handle (`struct file_handle`) plus the mount id it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelFileHandle {
    /// `handle_type` of `struct file_handle`.
    pub handle_type: i32,
    /// The handle bytes (at most `MAX_HANDLE_SZ` = 128).
    pub bytes: Vec<u8>,
    /// Mount id reported by `name_to_handle_at`.
    pub mount_id: i32,
}

const MAX_HANDLE_SZ: usize = 128;

#[repr(C)]
struct RawFileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

/// `name_to_handle_at(dirfd, name, …)` with `AT_SYMLINK_NOFOLLOW`; an empty `name` names
/// `dirfd` itself (`AT_EMPTY_PATH`).
pub fn name_to_handle_at(dirfd: BorrowedFd<'_>, name: &OsStr) -> io::Result<KernelFileHandle> {
    let c = cstr(name)?;
    let mut raw =
        RawFileHandle { handle_bytes: MAX_HANDLE_SZ as u32, handle_type: 0, f_handle: [0; MAX_HANDLE_SZ] };
    let mut mount_id: libc::c_int = 0;
    let flags = if name.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    // SAFETY: `raw` is a file_handle with room for MAX_HANDLE_SZ bytes, as handle_bytes says;
    // `c` is NUL-terminated; `mount_id` is a live int.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            dirfd.as_raw_fd(),
            c.as_ptr(),
            &mut raw as *mut RawFileHandle,
            &mut mount_id as *mut libc::c_int,
            flags,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (raw.handle_bytes as usize).min(MAX_HANDLE_SZ);
    Ok(KernelFileHandle { handle_type: raw.handle_type, bytes: raw.f_handle[..len].to_vec(), mount_id })
}

/// `open_by_handle_at(mount_fd, handle, flags)`. Needs CAP_DAC_READ_SEARCH.
pub fn open_by_handle_at(
    mount_fd: BorrowedFd<'_>,
    handle: &KernelFileHandle,
    flags: i32,
) -> io::Result<OwnedFd> {
    let mut raw = RawFileHandle {
        handle_bytes: handle.bytes.len().min(MAX_HANDLE_SZ) as u32,
        handle_type: handle.handle_type,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let n = raw.handle_bytes as usize;
    raw.f_handle[..n].copy_from_slice(&handle.bytes[..n]);
    // SAFETY: `raw` is a valid file_handle whose handle_bytes matches its contents.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd.as_raw_fd(),
            &mut raw as *mut RawFileHandle,
            flags | libc::O_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) })
}

/// close(2) that reports the error (dropping an `OwnedFd` ignores it). On a FUSE mount this
/// is where FLUSH and write-back errors (ENOSPC, EIO) show up.
pub fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` was owned by `fd`, whose ownership we took; it is closed exactly once here
    // and never used again (Linux frees the descriptor even when close reports an error).
    let r = unsafe { libc::close(raw) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Duplicate a borrowed fd into an owned one (close-on-exec).
pub fn dup(fd: impl AsFd) -> io::Result<OwnedFd> {
    fd.as_fd().try_clone_to_owned()
}

/// Size of `struct fsxattr` (FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR): xflags, extsize,
/// nextents, projid, cowextsize (u32 each) and 8 bytes of padding.
pub const FSXATTR_SIZE: usize = 28;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;

/// `ioctl(FS_IOC_FSGETXATTR)`: the file's extended attributes (`struct fsxattr`) as raw bytes.
pub fn fs_get_xattr(fd: BorrowedFd<'_>) -> io::Result<[u8; FSXATTR_SIZE]> {
    let mut buf = [0u8; FSXATTR_SIZE];
    // SAFETY: the command writes exactly one `struct fsxattr` (28 bytes) to `buf`, which is
    // that size and lives across the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR, buf.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf)
}

/// `ioctl(FS_IOC_FSSETXATTR)` with a raw `struct fsxattr`.
pub fn fs_set_xattr(fd: BorrowedFd<'_>, attr: &[u8; FSXATTR_SIZE]) -> io::Result<()> {
    // SAFETY: the command reads exactly one `struct fsxattr` (28 bytes) from `attr`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR, attr.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A `MAP_SHARED`, read-write mapping of part of a file, unmapped on drop.
///
/// The file must be open for reading and writing. Touching a page of the mapping that lies
/// wholly past the file's end of file raises SIGBUS, so callers map only within the current file
/// size (and keep the file from shrinking below the mapping while it is in use).
pub struct SharedMap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through `&self`/`&mut self`.
unsafe impl Send for SharedMap {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Map `len` bytes of `fd` starting at `offset` (a multiple of the page size) with
    /// `PROT_READ | PROT_WRITE` and `MAP_SHARED`. `len` must be non-zero.
    pub fn new(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<SharedMap> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot alias any Rust object;
        // fd is a live descriptor for the duration of the call.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(SharedMap { ptr, len })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mapping is empty (never: `new` rejects a zero length).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is a live mapping owned by self; the borrow ties the slice to it.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable (changes reach the file; see [`SharedMap::msync`]).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice; `&mut self` guarantees the slice is the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// msync(2) the whole mapping with `MS_SYNC`: write dirty pages to the file and wait.
    pub fn msync(&self) -> io::Result<()> {
        // SAFETY: ptr/len describe exactly the mapping created in `new`.
        if unsafe { libc::msync(self.ptr.as_ptr().cast(), self.len, libc::MS_SYNC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe the mapping created in `new`; no slice outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMap").field("ptr", &self.ptr).field("len", &self.len).finish()
    }
}

/// Take an exclusive `flock` on `file` (released on close), waiting at most `limit` for other
/// holders. Returns false on timeout.
pub fn flock_exclusive(file: &std::fs::File, limit: std::time::Duration) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + limit;
    loop {
        // SAFETY: flock on a descriptor we borrow for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(e),
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Pin the calling thread to one CPU (`sched_setaffinity`).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 = this thread; the set pointer and size describe a live local.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}

/// The memory page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn own_sched_field(name: &str) -> Option<u64> {
        let text = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    #[test]
    fn thread_slice_applies_to_the_calling_thread_and_keeps_its_nice_value() {
        std::thread::spawn(|| {
            set_thread_slice(std::time::Duration::from_micros(200)).unwrap();
            if let Some(slice) = own_sched_field("se.slice") {
                assert_eq!(slice, 200_000);
            }
            // SAFETY (test): lowers this thread's nice value (no privilege needed).
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 5) }, 0);
            // SAFETY (test): reads this thread's nice value.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            assert_eq!(nice, 5);
            // A new slice keeps the nice value.
            set_thread_slice(std::time::Duration::from_micros(300)).unwrap();
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            assert_eq!(nice, 5);
        })
        .join()
        .unwrap();
        // SAFETY (test): reads the main thread's nice value, untouched.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(nice, 0);
    }

    #[test]
    fn file_handles_round_trip_when_permitted() {
        let dir = std::env::temp_dir();
        let d = File::open(&dir).unwrap();
        let h = match name_to_handle_at(d.as_fd(), OsStr::new("")) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("skip: name_to_handle_at unsupported here: {e}");
                return;
            }
        };
        match open_by_handle_at(d.as_fd(), &h, libc::O_PATH) {
            Ok(fd) => {
                let h2 = name_to_handle_at(fd.as_fd(), OsStr::new("")).unwrap();
                assert_eq!(h, h2);
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => eprintln!("skip: not permitted"),
            Err(e) => panic!("open_by_handle_at: {e}"),
        }
    }

    #[test]
    fn shared_map_reads_writes_and_syncs() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = tempfile_in_tmp();
        f.write_all(&[7u8; 8192]).unwrap();
        {
            let mut m = SharedMap::new(f.as_fd(), 0, 8192).unwrap();
            assert_eq!(m.len(), 8192);
            assert!(m.as_slice().iter().all(|&b| b == 7));
            m.as_mut_slice()[4095..4097].copy_from_slice(&[1, 2]);
            m.msync().unwrap();
        }
        let mut buf = vec![0u8; 8192];
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[4094..4098], &[7, 1, 2, 7]);
        assert!(SharedMap::new(f.as_fd(), 0, 0).is_err());
    }

    fn tempfile_in_tmp() -> File {
        let p = std::env::temp_dir().join(format!("fusebox-sharedmap-{}", std::process::id()));
        let f =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
