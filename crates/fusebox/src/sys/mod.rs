//! Every call into the operating system that needs `unsafe`, behind safe signatures, one file
//! per topic. With the transports (`transport/`), this is the only code allowed `unsafe`; the
//! crate root denies it everywhere else.
//!
//! - [`mount`](mount()): mount(2), umount2(2), fusermount3's descriptor passing;
//! - process: credentials, capabilities, umask;
//! - thread: time slice, nice value, CPU placement;
//! - handles: `name_to_handle_at` / `open_by_handle_at`;
//! - fd: close with its error, dup, flock with a limit, FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR;
//! - locks: OFD and process record locks, cancellable blocking calls;
//! - map: a shared file mapping (tests and tools).

mod fd;
mod handles;
mod locks;
mod map;
mod mount;
mod process;
mod thread;

pub use fd::{close, dup, flock_exclusive, fs_get_xattr, fs_set_xattr, FSXATTR_SIZE};
pub use handles::{name_to_handle_at, open_by_handle_at, KernelFileHandle};
pub use locks::{ofd_getlk, ofd_setlk, process_getlk, process_setlk, run_cancellable, Canceller, OfdLock};
pub use map::{page_size, SharedMap};
pub use mount::{mount, recv_fd, socketpair_for_child, umount};
pub use process::{geteuid, getuid_gid, has_capability, set_umask, CAP_SYS_ADMIN};
pub use thread::{current_cpu, pin_to_cpu, set_thread_nice, set_thread_slice};
