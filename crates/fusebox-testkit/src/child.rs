//! A mount served by a child process: the test binary runs itself with one ignored test (the
//! daemon half) selected and a spec in an environment variable. Used where the daemon must be
//! a process of its own (a real SIGKILL, or mmap of the mount from the test process).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The child daemon and its mountpoint; dropping it unmounts and reaps the child.
pub struct ChildMount {
    /// The mountpoint.
    pub mnt: PathBuf,
    child: Child,
}

impl ChildMount {
    /// Run this test binary's ignored test `daemon_test` with `var=spec` in its environment
    /// and wait (20 s at most) until it has mounted `mnt` and answers.
    pub fn spawn(daemon_test: &str, var: &str, spec: String, mnt: &Path) -> ChildMount {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([daemon_test, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(var, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut m = ChildMount { mnt: mnt.to_path_buf(), child };
        let live = crate::wait_until(Duration::from_secs(20), || {
            fusebox::session::is_mount_point(&m.mnt) || m.child.try_wait().unwrap().is_some()
        });
        assert!(
            live && fusebox::session::is_mount_point(&m.mnt),
            "{daemon_test} did not mount {}",
            mnt.display()
        );
        // The first request waits for INIT: afterwards the mount is usable.
        std::fs::metadata(&m.mnt).expect("stat the new mount");
        m
    }

    /// SIGKILL the daemon (the mount stays, dead, until this is dropped: detaching it while
    /// writers still run would let them create files in the directory underneath).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildMount {
    fn drop(&mut self) {
        let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        crate::wait_until(Duration::from_secs(10), || self.child.try_wait().ok().flatten().is_some());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
