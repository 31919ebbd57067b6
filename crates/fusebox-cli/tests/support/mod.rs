//! Helpers shared by the CLI's integration tests (each test file includes this module).
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// The `fusebox` binary under test, without the daemon-child marker of an outer fusebox.
pub fn fusebox() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fusebox"));
    c.env_remove("FUSEBOX_DAEMON_CHILD");
    c
}

/// Whether mount tests can run here (root and /dev/fuse). Prints why not and returns false,
/// unless FUSEBOX_REQUIRE_MOUNT=1 (CI), which turns that into a failure.
pub fn can_mount() -> bool {
    let root = fusebox::sys::geteuid() == 0;
    let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_ok();
    if root && dev {
        return true;
    }
    let why = if root { "/dev/fuse cannot be opened" } else { "not root" };
    if std::env::var("FUSEBOX_REQUIRE_MOUNT").as_deref() == Ok("1") {
        panic!("mount tests required but {why}");
    }
    eprintln!("skipping: {why}");
    false
}

/// Poll `cond` every 20 ms until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
