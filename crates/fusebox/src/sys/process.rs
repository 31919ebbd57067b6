//! The calling process: credentials, capabilities, umask.

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

/// Set the process umask, returning the old one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}
