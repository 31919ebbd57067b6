//! Mount tests over FUSE-over-io_uring: the kernel offers it only while the fuse module's
//! `enable_uring` parameter is on, and looks at it only during INIT.

use fusebox::session::{uring_supported, UringParamGuard, ENABLE_URING_PARAM};

/// True when io_uring mount tests can run here (see [`crate::needs`]).
pub fn can_mount_uring() -> bool {
    let missing = (!uring_supported())
        .then(|| format!("{ENABLE_URING_PARAM} does not exist (kernel without FUSE over io_uring)"));
    crate::can_mount() && crate::needs(missing)
}

/// Run `mount` (which must return only after INIT, as `TestMount::new` does) with
/// `enable_uring` on, restoring the parameter afterwards. None when io_uring (or mounting) is
/// unavailable here: skipped with a message, or a failure under FUSEBOX_REQUIRE_MOUNT=1.
pub fn with_uring<T>(mount: impl FnOnce() -> Option<T>) -> Option<T> {
    if !can_mount_uring() {
        return None;
    }
    let guard = UringParamGuard::set(true).expect("turning on enable_uring");
    let m = mount();
    drop(guard);
    m
}

/// Fail unless most requests of `m` travelled over io_uring (a silent fallback to /dev/fuse
/// fails). FORGET, INTERRUPT and the requests before every queue was registered use
/// /dev/fuse.
pub fn assert_over_uring(m: &crate::TestMount) {
    let stats = m.server().stats();
    let total: u64 = stats.snapshot().ops.iter().map(|o| o.count).sum();
    let uring = stats.uring_requests();
    assert!(uring > 0, "no request came over io_uring ({total} over /dev/fuse)");
    assert!(uring * 2 > total, "only {uring} of {total} requests came over io_uring");
}
