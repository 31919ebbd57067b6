//! Stop a test server when the test process is gone, however it ends.
//!
//! The watchdog is a shell reading a pipe whose write end only this process holds (close on
//! exec, so no other child inherits it). When this process exits, even by SIGKILL, the read
//! ends: the shell sends the server `signal` (it is alive then, so its pid is still its own),
//! SIGKILL if it is still there 10 s later, waits for it to go and removes its directory.

use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running watchdog.
pub struct Watchdog {
    child: Child,
    _pipe: ChildStdin,
}

impl Watchdog {
    /// Watch over the server `pid` whose files live in `dir`.
    pub fn start(pid: u32, signal: &str, dir: &Path) -> Watchdog {
        let script = format!(
            "cat >/dev/null; kill -{signal} {pid} 2>/dev/null; i=0; \
             while kill -0 {pid} 2>/dev/null; do \
                 i=$((i + 1)); [ $i = 50 ] && kill -KILL {pid} 2>/dev/null; sleep 0.2; \
             done; rm -rf \"$1\""
        );
        let mut child = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the watchdog shell");
        let pipe = child.stdin.take().expect("the watchdog's pipe");
        Watchdog { child, _pipe: pipe }
    }

    /// Retire it (the test stops the server itself): it neither signals nor removes anything.
    pub fn dismiss(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
