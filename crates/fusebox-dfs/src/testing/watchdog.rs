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

/// A test server's process with its [`Watchdog`]: started, checked, stopped the same way for
/// every server the tests run.
pub struct ServerProcess {
    child: Child,
    watchdog: Watchdog,
    signal: &'static str,
}

impl ServerProcess {
    /// Spawn `cmd` with stdout and stderr appended to `log`, watched over: `signal` stops it
    /// (by [`Self::stop`], or by the watchdog, which then removes `dir`).
    pub fn spawn(cmd: &mut Command, log: &Path, signal: &'static str, dir: &Path) -> ServerProcess {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("the server's log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the server's log"))
            .stderr(log)
            .spawn()
            .expect("starting the server");
        let watchdog = Watchdog::start(child.id(), signal, dir);
        ServerProcess { child, watchdog, signal }
    }

    /// Whether the server has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Stop it: the signal (sent with kill(1), since the server may run as another user),
    /// SIGKILL if it is still there 15 s later.
    pub fn stop(self) {
        let ServerProcess { mut child, watchdog, signal } = self;
        watchdog.dismiss();
        let _ = Command::new("kill").args([format!("-{signal}"), child.id().to_string()]).status();
        let t = std::time::Instant::now();
        while child.try_wait().ok().flatten().is_none() && t.elapsed() < std::time::Duration::from_secs(15) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
