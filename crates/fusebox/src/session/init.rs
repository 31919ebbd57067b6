//! INIT negotiation: fusebox's fast defaults, intersected with what the kernel offers.

use crate::abi::{self, init_flags::*};

/// Capabilities fusebox asks the kernel for. Defaults are the fast path; a file system switches
/// off what it cannot honour in [`crate::Filesystem::init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Several READs of one file in flight at once (ASYNC_READ).
    pub async_read: bool,
    /// Direct IO split into concurrent requests (ASYNC_DIO).
    pub async_dio: bool,
    /// Lookups and readdirs in one directory in parallel (PARALLEL_DIROPS).
    pub parallel_dirops: bool,
    /// READDIRPLUS, used adaptively (DO_READDIRPLUS + READDIRPLUS_AUTO).
    pub readdirplus: bool,
    /// Let the kernel choose between READDIR and READDIRPLUS (READDIRPLUS_AUTO).
    pub readdirplus_auto: bool,
    /// Drop cached pages when mtime/size change (AUTO_INVAL_DATA).
    pub auto_inval_data: bool,
    /// O_TRUNC handled by OPEN (ATOMIC_O_TRUNC).
    pub atomic_o_trunc: bool,
    /// LOOKUP of "." and ".." (NFS export; EXPORT_SUPPORT).
    pub export_support: bool,
    /// The server clears suid/sgid on write/truncate (HANDLE_KILLPRIV_V2); also makes the
    /// kernel skip the per-write security.capability GETXATTR.
    pub handle_killpriv_v2: bool,
    /// Kernel write-back page cache (WRITEBACK_CACHE).
    pub writeback_cache: bool,
    /// Requests over io_uring (OVER_IO_URING); offered only when the kernel's `enable_uring`
    /// module parameter is on.
    pub io_uring: bool,
    /// POSIX byte-range locks served by the file system (POSIX_LOCKS).
    pub posix_locks: bool,
    /// flock(2) locks served by the file system (FLOCK_LOCKS).
    pub flock_locks: bool,
    /// Cache symlink targets in the page cache (CACHE_SYMLINKS).
    pub cache_symlinks: bool,
    /// The kernel does not apply the caller's umask to new nodes; the file system applies
    /// [`RequestInfo::umask`](crate::RequestInfo::umask) itself (DONT_MASK). Needed with
    /// `posix_acl`, where a parent's default ACL replaces the umask.
    pub dont_mask: bool,
    /// POSIX ACLs stored by the file system as `system.posix_acl_*` xattrs; the kernel checks
    /// them and the file system applies default ACLs to new nodes (POSIX_ACL; implies
    /// default_permissions).
    pub posix_acl: bool,
    /// Maximum pages per request (MAX_PAGES); 256 = 1 MiB. Capped by
    /// /proc/sys/fs/fuse/max_pages_limit.
    pub max_pages: u32,
    /// Largest WRITE payload in bytes.
    pub max_write: u32,
    /// Largest readahead in bytes (never more than the kernel offers).
    pub max_readahead: u32,
    /// Kernel limit on background requests in flight.
    pub max_background: u16,
    /// Background requests at which the kernel reports congestion.
    pub congestion_threshold: u16,
    /// Timestamp granularity in nanoseconds.
    pub time_gran: u32,
    /// Answer READs with data spliced from a file (`fs::ReplyData::splice_from_file`);
    /// announced as SPLICE_WRITE + SPLICE_MOVE. Off by default (see docs/BENCHMARKS.md).
    pub splice_write: bool,
    /// Files opened with FOPEN_DIRECT_IO may still be mmapped (shared mappings; 7.39,
    /// DIRECT_IO_ALLOW_MMAP), so a file system can answer O_DIRECT opens with FOPEN_DIRECT_IO.
    pub direct_io_allow_mmap: bool,
    /// Kernel passthrough (PASSTHROUGH, 7.40): open files may be backed by a file the daemon
    /// registers ([`crate::session::Backing`]), whose reads, writes and mmap bypass the daemon.
    /// The kernel refuses it together with the write-back cache, so when both are asked for
    /// and the kernel offers passthrough, passthrough wins and the write-back cache is not
    /// negotiated; when the kernel does not offer it, the write-back cache stays. Needs
    /// CAP_SYS_ADMIN to register backing files.
    pub passthrough: bool,
    /// How many file systems may stack below this one's backing files (1 or 2; the kernel's
    /// FILESYSTEM_MAX_STACK_DEPTH is 2). With passthrough, this mount itself counts as
    /// stacked at this depth (overlayfs can then not use it as a layer beyond that depth).
    pub max_stack_depth: u32,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            async_read: true,
            async_dio: true,
            parallel_dirops: true,
            readdirplus: true,
            readdirplus_auto: true,
            auto_inval_data: true,
            atomic_o_trunc: true,
            export_support: true,
            handle_killpriv_v2: true,
            writeback_cache: false,
            io_uring: false,
            posix_locks: false,
            flock_locks: false,
            cache_symlinks: false,
            dont_mask: false,
            posix_acl: false,
            max_pages: 256,
            max_write: 1 << 20,
            max_readahead: 1 << 20,
            max_background: 64,
            congestion_threshold: 48,
            time_gran: 1,
            splice_write: false,
            direct_io_allow_mmap: true,
            passthrough: false,
            max_stack_depth: 1,
        }
    }
}

impl Capabilities {
    /// The INIT flag bits these capabilities ask for.
    pub fn wanted_flags(&self) -> u64 {
        let mut f = FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT;
        let mut set = |on: bool, bit: u64| {
            if on {
                f |= bit
            }
        };
        set(self.async_read, FUSE_ASYNC_READ);
        set(self.async_dio, FUSE_ASYNC_DIO);
        set(self.parallel_dirops, FUSE_PARALLEL_DIROPS);
        set(self.readdirplus, FUSE_DO_READDIRPLUS);
        set(self.readdirplus && self.readdirplus_auto, FUSE_READDIRPLUS_AUTO);
        set(self.auto_inval_data, FUSE_AUTO_INVAL_DATA);
        set(self.atomic_o_trunc, FUSE_ATOMIC_O_TRUNC);
        set(self.export_support, FUSE_EXPORT_SUPPORT);
        set(self.handle_killpriv_v2, FUSE_HANDLE_KILLPRIV_V2);
        set(self.writeback_cache, FUSE_WRITEBACK_CACHE);
        set(self.io_uring, FUSE_OVER_IO_URING);
        set(self.posix_locks, FUSE_POSIX_LOCKS);
        set(self.flock_locks, FUSE_FLOCK_LOCKS);
        set(self.cache_symlinks, FUSE_CACHE_SYMLINKS);
        set(self.splice_write, FUSE_SPLICE_WRITE | FUSE_SPLICE_MOVE);
        set(self.dont_mask, FUSE_DONT_MASK);
        set(self.posix_acl, FUSE_POSIX_ACL);
        set(self.direct_io_allow_mmap, FUSE_DIRECT_IO_ALLOW_MMAP);
        set(self.passthrough, FUSE_PASSTHROUGH);
        f
    }
}

/// What INIT settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Protocol minor version in use.
    pub minor: u32,
    /// Flags the kernel offered (flags | flags2 << 32).
    pub kernel_flags: u64,
    /// Flags granted: offered ∩ wanted.
    pub flags: u64,
    /// Request sizes and queue limits.
    pub limits: Limits,
}

/// The request sizes and queue limits INIT settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Limits {
    /// Largest WRITE payload.
    pub max_write: u32,
    /// Pages per request.
    pub max_pages: u32,
    /// Readahead in bytes.
    pub max_readahead: u32,
    /// Background request limit.
    pub max_background: u16,
    /// Congestion threshold.
    pub congestion_threshold: u16,
    /// Timestamp granularity (ns).
    pub time_gran: u32,
}

impl Negotiated {
    /// Whether `flag` (an `abi::init_flags` bit) was granted.
    pub fn has(&self, flag: u64) -> bool {
        self.flags & flag != 0
    }
    /// Size of the read buffer a worker needs: max_write plus one page for the headers.
    pub fn buffer_size(&self) -> usize {
        (self.limits.max_write as usize + 4096).max(abi::FUSE_MIN_READ_BUFFER)
    }
    /// Names of the granted flags, for logs and stats.
    pub fn flag_names(&self) -> Vec<&'static str> {
        FLAG_NAMES.iter().filter(|(bit, _)| self.flags & bit != 0).map(|(_, n)| *n).collect()
    }
}

/// Names of the INIT flags, in bit order.
pub const FLAG_NAMES: &[(u64, &str)] = &[
    (FUSE_ASYNC_READ, "ASYNC_READ"),
    (FUSE_POSIX_LOCKS, "POSIX_LOCKS"),
    (FUSE_ATOMIC_O_TRUNC, "ATOMIC_O_TRUNC"),
    (FUSE_EXPORT_SUPPORT, "EXPORT_SUPPORT"),
    (FUSE_BIG_WRITES, "BIG_WRITES"),
    (FUSE_DONT_MASK, "DONT_MASK"),
    (FUSE_FLOCK_LOCKS, "FLOCK_LOCKS"),
    (FUSE_AUTO_INVAL_DATA, "AUTO_INVAL_DATA"),
    (FUSE_DO_READDIRPLUS, "DO_READDIRPLUS"),
    (FUSE_READDIRPLUS_AUTO, "READDIRPLUS_AUTO"),
    (FUSE_ASYNC_DIO, "ASYNC_DIO"),
    (FUSE_WRITEBACK_CACHE, "WRITEBACK_CACHE"),
    (FUSE_PARALLEL_DIROPS, "PARALLEL_DIROPS"),
    (FUSE_MAX_PAGES, "MAX_PAGES"),
    (FUSE_POSIX_ACL, "POSIX_ACL"),
    (FUSE_CACHE_SYMLINKS, "CACHE_SYMLINKS"),
    (FUSE_HANDLE_KILLPRIV_V2, "HANDLE_KILLPRIV_V2"),
    (FUSE_INIT_EXT, "INIT_EXT"),
    (FUSE_DIRECT_IO_ALLOW_MMAP, "DIRECT_IO_ALLOW_MMAP"),
    (FUSE_PASSTHROUGH, "PASSTHROUGH"),
    (FUSE_OVER_IO_URING, "OVER_IO_URING"),
];

/// Why INIT failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    /// The kernel speaks a different major version.
    #[error("kernel speaks FUSE {0}.{1}, fusebox needs 7.x")]
    Major(u32, u32),
    /// The kernel is too old.
    #[error("kernel speaks FUSE 7.{0}, fusebox needs at least 7.31")]
    TooOld(u32),
}

/// Oldest protocol we accept: 7.31 (Linux 5.4) has MAX_PAGES, EXPLICIT_INVAL_DATA, KILLPRIV_V2 at 7.33.
pub const MIN_MINOR: u32 = 31;

/// Read `/proc/sys/fs/fuse/max_pages_limit` (256 when absent).
pub fn kernel_max_pages_limit() -> u32 {
    std::fs::read_to_string("/proc/sys/fs/fuse/max_pages_limit")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(256)
}

/// Compute the INIT reply for the kernel's `init` given our capabilities.
pub fn negotiate(
    init: &abi::fuse_init_in, caps: &Capabilities, max_pages_limit: u32,
) -> Result<(abi::fuse_init_out, Negotiated), InitError> {
    if init.major != abi::FUSE_KERNEL_VERSION {
        return Err(InitError::Major(init.major, init.minor));
    }
    if init.minor < MIN_MINOR {
        return Err(InitError::TooOld(init.minor));
    }
    let mut kernel_flags = init.flags as u64;
    if kernel_flags & FUSE_INIT_EXT != 0 {
        kernel_flags |= (init.flags2 as u64) << 32;
    }
    let mut flags = caps.wanted_flags() & kernel_flags;
    if flags & FUSE_PASSTHROUGH != 0 {
        // The kernel grants passthrough only without the write-back cache (process_init_reply).
        flags &= !FUSE_WRITEBACK_CACHE;
    }
    let max_pages = caps.max_pages.clamp(1, max_pages_limit.max(1)).min(u16::MAX as u32);
    let max_write = caps.max_write.clamp(4096, max_pages * 4096);
    let neg = Negotiated {
        minor: init.minor.min(abi::FUSE_KERNEL_MINOR_VERSION),
        kernel_flags,
        flags,
        limits: Limits {
            max_write,
            max_pages,
            max_readahead: caps.max_readahead.min(init.max_readahead),
            max_background: caps.max_background,
            congestion_threshold: caps.congestion_threshold.min(caps.max_background),
            time_gran: caps.time_gran.clamp(1, 1_000_000_000),
        },
    };
    let l = &neg.limits;
    let out = abi::fuse_init_out {
        major: abi::FUSE_KERNEL_VERSION,
        minor: abi::FUSE_KERNEL_MINOR_VERSION,
        max_readahead: l.max_readahead,
        flags: flags as u32,
        max_background: l.max_background,
        congestion_threshold: l.congestion_threshold,
        max_write: l.max_write,
        time_gran: l.time_gran,
        max_pages: l.max_pages as u16,
        flags2: (flags >> 32) as u32,
        max_stack_depth: if flags & FUSE_PASSTHROUGH != 0 { caps.max_stack_depth.clamp(1, 2) } else { 0 },
        ..Default::default()
    };
    Ok((out, neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_init(flags: u64) -> abi::fuse_init_in {
        abi::fuse_init_in {
            major: 7,
            minor: 45,
            max_readahead: 128 * 1024,
            flags: flags as u32,
            flags2: (flags >> 32) as u32,
            ..Default::default()
        }
    }

    #[test]
    fn grants_fast_defaults_offered_by_kernel() {
        let offered = u64::MAX;
        let (out, neg) = negotiate(&kernel_init(offered), &Capabilities::default(), 256).unwrap();
        for flag in [
            FUSE_ASYNC_READ,
            FUSE_ASYNC_DIO,
            FUSE_PARALLEL_DIROPS,
            FUSE_DO_READDIRPLUS,
            FUSE_READDIRPLUS_AUTO,
            FUSE_AUTO_INVAL_DATA,
            FUSE_ATOMIC_O_TRUNC,
            FUSE_EXPORT_SUPPORT,
            FUSE_HANDLE_KILLPRIV_V2,
            FUSE_INIT_EXT,
            FUSE_MAX_PAGES,
        ] {
            assert!(neg.has(flag), "{flag:#x} not granted");
        }
        assert!(!neg.has(FUSE_WRITEBACK_CACHE));
        assert!(!neg.has(FUSE_SPLICE_READ));
        assert_eq!((out.max_pages, out.max_write), (256, 1 << 20));
        assert_eq!(out.max_readahead, 128 * 1024);
        assert_eq!(out.minor, 45);
    }

    #[test]
    fn never_grants_what_kernel_did_not_offer() {
        let offered = FUSE_ASYNC_READ | FUSE_MAX_PAGES;
        let (out, neg) = negotiate(&kernel_init(offered), &Capabilities::default(), 256).unwrap();
        assert_eq!(neg.flags, offered);
        assert_eq!(out.flags2, 0);
    }

    #[test]
    fn capabilities_can_be_switched_off_and_pages_are_capped() {
        let caps =
            Capabilities { async_dio: false, readdirplus: false, max_pages: 1024, ..Default::default() };
        let (out, neg) = negotiate(&kernel_init(u64::MAX), &caps, 64).unwrap();
        assert!(!neg.has(FUSE_ASYNC_DIO) && !neg.has(FUSE_DO_READDIRPLUS) && !neg.has(FUSE_READDIRPLUS_AUTO));
        assert_eq!((out.max_pages, out.max_write), (64, 64 * 4096));
    }

    #[test]
    fn locks_are_granted_only_when_the_file_system_serves_them() {
        let (_, neg) = negotiate(&kernel_init(u64::MAX), &Capabilities::default(), 256).unwrap();
        assert!(!neg.has(FUSE_POSIX_LOCKS) && !neg.has(FUSE_FLOCK_LOCKS), "kernel-local locks by default");
        let caps = Capabilities { posix_locks: true, flock_locks: true, ..Default::default() };
        let (_, neg) = negotiate(&kernel_init(u64::MAX), &caps, 256).unwrap();
        assert!(neg.has(FUSE_POSIX_LOCKS) && neg.has(FUSE_FLOCK_LOCKS));
    }

    #[test]
    fn passthrough_wins_over_writeback_when_offered() {
        let caps = Capabilities { passthrough: true, writeback_cache: true, ..Default::default() };
        let (out, neg) = negotiate(&kernel_init(u64::MAX), &caps, 256).unwrap();
        assert!(neg.has(FUSE_PASSTHROUGH) && !neg.has(FUSE_WRITEBACK_CACHE));
        assert_eq!(out.max_stack_depth, 1);
        assert_eq!(out.flags2 as u64, (neg.flags >> 32));
        // A kernel without passthrough keeps the write-back cache and gets no stack depth.
        let (out, neg) = negotiate(&kernel_init(!FUSE_PASSTHROUGH), &caps, 256).unwrap();
        assert!(!neg.has(FUSE_PASSTHROUGH) && neg.has(FUSE_WRITEBACK_CACHE));
        assert_eq!(out.max_stack_depth, 0);
        // Not asked for: never granted.
        let (out, neg) = negotiate(&kernel_init(u64::MAX), &Capabilities::default(), 256).unwrap();
        assert!(!neg.has(FUSE_PASSTHROUGH));
        assert_eq!(out.max_stack_depth, 0);
    }

    #[test]
    fn rejects_wrong_major_and_old_minor() {
        let mut i = kernel_init(0);
        i.major = 8;
        assert!(matches!(negotiate(&i, &Capabilities::default(), 256), Err(InitError::Major(8, _))));
        i.major = 7;
        i.minor = 20;
        assert_eq!(negotiate(&i, &Capabilities::default(), 256), Err(InitError::TooOld(20)));
    }
}
