//! Background mode and signals.
//!
//! Without `-f`, `fusebox mount` re-executes itself in the foreground mode as a child in its own
//! process group, with stdout connected to a pipe, and waits: the child writes `ready` once the
//! mount is live (INIT done), or exits with an error (already printed to the shared stderr).
//! Re-executing avoids fork(2) in a Rust process, which is only safe before any thread starts.

use anyhow::{bail, Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "FUSEBOX_DAEMON_CHILD";

/// True in the re-executed background child.
pub fn is_daemon_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The background daemon failed to start; it already printed why.
#[derive(Debug)]
pub struct ChildFailed(pub i32);

impl std::fmt::Display for ChildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the fusebox daemon exited with status {}", self.0)
    }
}

impl std::error::Error for ChildFailed {}

/// Start the daemon child and return once it reports the mount live. The child's stderr is a
/// pipe that we relay while it starts up, so the caller's stdout/stderr are not held open by
/// the daemon afterwards (`out=$(fusebox mount ...)` returns).
pub fn spawn_and_wait(argv: &[String]) -> Result<()> {
    let exe = std::env::current_exe().context("locating the fusebox executable")?;
    let mut child = Command::new(exe)
        .args(argv)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("starting the fusebox daemon")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let relay = std::thread::spawn(move || {
        let mut out = std::io::stderr();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(out, "{line}");
        }
    });
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).ok();
    if line.trim() == "ready" {
        return Ok(());
    }
    let status = child.wait().context("waiting for the daemon")?;
    let _ = relay.join();
    bail!(ChildFailed(status.code().unwrap_or(1)))
}

/// Tell the waiting parent that the mount is live, and stop writing to its terminal.
pub fn signal_ready() {
    if is_daemon_child() {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
        crate::logging::detach();
    }
}

/// Unmount `mountpoint` when SIGINT or SIGTERM arrives; the workers then see the connection
/// close and the session ends normally.
pub fn unmount_on_signals(mountpoint: &Path) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let mnt = mountpoint.to_path_buf();
    std::thread::Builder::new().name("fusebox-signals".into()).spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "unmounting on signal");
            if let Err(e) = fusebox::session::unmount(&mnt) {
                tracing::warn!(error = %e, "clean unmount failed; detaching");
                let _ = fusebox::sys::umount(&mnt, libc::MNT_DETACH);
            }
        }
    })?;
    Ok(())
}
