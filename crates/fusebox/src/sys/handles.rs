//! Kernel file handles: `name_to_handle_at` / `open_by_handle_at`, which the passthrough
//! file system uses to keep inodes without holding a descriptor each.

use super::mount::cstr;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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
    mount_fd: BorrowedFd<'_>, handle: &KernelFileHandle, flags: i32,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;
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
}
