//! What FUSE over io_uring needs from the machine: the CPU count the kernel sizes its queues
//! by, and the `enable_uring` module parameter. The queues themselves are in uring_queues.rs
//! (cargo feature `io-uring`).

use crate::sys;
use std::io;

/// Number of queues the kernel expects: one per possible CPU (nr_cpu_ids).
pub fn possible_cpus() -> usize {
    let parsed =
        std::fs::read_to_string("/sys/devices/system/cpu/possible").ok().and_then(|s| parse_cpu_list(&s));
    parsed.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Whether `cpu` is online now (unknown = yes).
#[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
pub(super) fn cpu_online(cpu: usize) -> bool {
    let Ok(list) = std::fs::read_to_string("/sys/devices/system/cpu/online") else { return true };
    list.trim().split(',').filter(|p| !p.is_empty()).any(|part| {
        let mut ends = part.splitn(2, '-').map(|n| n.trim().parse::<usize>().ok());
        match (ends.next().flatten(), ends.next()) {
            (Some(a), None) => a == cpu,
            (Some(a), Some(Some(b))) => (a..=b).contains(&cpu),
            _ => false,
        }
    })
}

/// Highest CPU + 1 in a list like "0-3,5".
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let last = part.rsplit('-').next()?;
        let n: usize = last.trim().parse().ok()?;
        max = Some(max.map_or(n, |m: usize| m.max(n)));
    }
    max.map(|m| m + 1)
}

/// The fuse module parameter that lets the kernel offer FUSE over io_uring (root may write it).
pub const ENABLE_URING_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Whether the running kernel can do FUSE over io_uring at all (the parameter exists).
pub fn uring_supported() -> bool {
    std::path::Path::new(ENABLE_URING_PARAM).exists()
}

/// Holds `enable_uring` at a chosen value and restores the previous value when dropped.
///
/// The kernel reads the parameter only during INIT (a connection that negotiated
/// OVER_IO_URING keeps it), so hold the guard across `Session::mount` and drop it after.
/// Holders in different processes take turns (an `flock` on a file in /run), so one never
/// restores "off" while another is between mount and INIT.
pub struct UringParamGuard {
    _lock: std::fs::File,
    previous: String,
}

impl UringParamGuard {
    /// Set the parameter to `on` (needs root and a kernel with FUSE over io_uring), waiting
    /// for other holders first.
    pub fn set(on: bool) -> io::Result<UringParamGuard> {
        let dir = if std::path::Path::new("/run").is_dir() { "/run" } else { "/tmp" };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{dir}/fusebox-enable-uring.lock"))?;
        // A holder that hangs (a test process stuck on its own mount) must not stop every
        // later one: after 30 s go ahead without the turn.
        if !sys::flock_exclusive(&lock, std::time::Duration::from_secs(30))? {
            tracing::warn!("another process has held the enable_uring lock for 30 s; going ahead");
        }
        let previous = std::fs::read_to_string(ENABLE_URING_PARAM)?.trim().to_string();
        std::fs::write(ENABLE_URING_PARAM, if on { "Y" } else { "N" })?;
        Ok(UringParamGuard { _lock: lock, previous })
    }
}

impl Drop for UringParamGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(ENABLE_URING_PARAM, &self.previous) {
            tracing::warn!(error = %e, "could not restore {ENABLE_URING_PARAM}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(9));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert!(cpu_online(0));
    }
}
