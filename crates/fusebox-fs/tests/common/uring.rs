//! Mount tests over FUSE-over-io_uring: the kernel offers it only while the fuse module's
//! `enable_uring` parameter is on, and looks at it only during INIT.
#![allow(dead_code)]

use fusebox::session::{uring_supported, UringParamGuard, ENABLE_URING_PARAM};

/// Run `mount` (which must return only after INIT, as `TestMount::new` does) with
/// `enable_uring` on, restoring the parameter afterwards. None when io_uring (or mounting) is
/// unavailable here: skipped with a message, or a failure under FUSEBOX_REQUIRE_MOUNT=1.
pub fn with_uring<T>(mount: impl FnOnce() -> Option<T>) -> Option<T> {
    if !super::can_mount() {
        return None;
    }
    if !uring_supported() {
        let why = format!("{ENABLE_URING_PARAM} does not exist (kernel without FUSE over io_uring)");
        if std::env::var("FUSEBOX_REQUIRE_MOUNT").as_deref() == Ok("1") {
            panic!("io_uring mount tests required (FUSEBOX_REQUIRE_MOUNT=1) but {why}");
        }
        eprintln!("skipping io_uring mount test: {why}");
        return None;
    }
    let guard = UringParamGuard::set(true).expect("turning on enable_uring");
    let m = mount();
    drop(guard);
    m
}
