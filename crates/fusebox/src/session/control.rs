//! The per-mount control socket that `fusebox stats` reads.
//!
//! Each session listens on a unix socket named after its mountpoint:
//! `/run/fusebox/<hash>.sock` as root, `$XDG_RUNTIME_DIR/fusebox/<hash>.sock` (or
//! `/tmp/fusebox-<uid>/<hash>.sock`) otherwise, where `<hash>` is the FNV-1a hash of the absolute
//! mountpoint (unix socket paths are limited to 108 bytes, mountpoints are not). A client
//! connects and reads one JSON [`StatusReport`]; the server closes the connection after it.

use super::init::{Limits, Negotiated};
use super::server::Server;
use crate::session::sched::StatsSnapshot;
use std::io::{self, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the control socket reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusReport {
    /// The mountpoint served.
    pub mountpoint: PathBuf,
    /// The daemon's pid.
    pub pid: u32,
    /// INIT parameters.
    pub init: InitReport,
    /// Request counters.
    pub stats: StatsSnapshot,
    /// Worker pool and request classes.
    pub sched: SchedReport,
}

/// The scheduler's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SchedReport {
    /// "classes" (sync first, bounded background) or "fifo".
    pub mode: String,
    /// Workers alive now.
    pub workers: usize,
    /// Threads of the background lane (0 in fifo mode).
    pub background_threads: usize,
    /// Background requests waiting for a lane thread.
    pub queued_background: usize,
    /// Background requests being served now.
    #[serde(default)]
    pub running_background: usize,
}

/// The negotiated INIT parameters, for display.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct InitReport {
    /// Protocol version in use ("7.45").
    pub protocol: String,
    /// Request sizes and queue limits.
    #[serde(flatten)]
    pub limits: Limits,
    /// Names of the granted flags.
    pub flags: Vec<String>,
}

impl From<&Negotiated> for InitReport {
    fn from(n: &Negotiated) -> Self {
        InitReport {
            protocol: format!("7.{}", n.minor),
            limits: n.limits,
            flags: n.flag_names().into_iter().map(String::from).collect(),
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// Directory holding the control sockets of this user's mounts.
pub fn control_dir() -> PathBuf {
    if crate::sys::geteuid() == 0 {
        return PathBuf::from("/run/fusebox");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("fusebox"),
        None => PathBuf::from(format!("/tmp/fusebox-{}", crate::sys::geteuid())),
    }
}

/// The control socket path of the session mounted at `mountpoint` (absolute).
pub fn control_socket_path(mountpoint: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    control_dir().join(format!("{:016x}.sock", fnv1a(mountpoint.as_os_str().as_bytes())))
}

/// Read the status of the session mounted at `mountpoint`.
pub fn query_status(mountpoint: &Path) -> io::Result<StatusReport> {
    let abs = super::mount::absolute(mountpoint)?;
    let path = control_socket_path(&abs);
    let no_daemon = |e: &dyn std::fmt::Display| {
        io::Error::other(format!(
            "no fusebox daemon answers for {} (control socket {}: {e})",
            abs.display(),
            path.display()
        ))
    };
    let stream = UnixStream::connect(&path).map_err(|e| no_daemon(&e))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    serde_json::from_reader(stream).map_err(|e| no_daemon(&e))
}

/// Remove the control socket of `mountpoint` (absolute) if no daemon answers on it (one left
/// by a killed daemon).
pub fn remove_stale_socket(mountpoint: &Path) {
    let path = control_socket_path(mountpoint);
    if path.exists() && UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// How long a new daemon waits for the socket of its mountpoint to be given up by a daemon
/// still exiting there (a quick unmount and mount again).
const SOCKET_HANDOVER: Duration = Duration::from_secs(2);

/// A listening control socket; dropping it stops the listener and removes the socket file
/// (only if it is still this socket's: a newer daemon may have bound the path meanwhile).
pub struct ControlSocket {
    path: PathBuf,
    /// Device and inode of the socket file bound.
    file: (u64, u64),
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Device and inode of the file at `path`.
fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Bind `path` for the session at `mountpoint`, removing a socket nobody answers on first. A
/// daemon that still answers is given [`SOCKET_HANDOVER`] to exit.
fn bind(mountpoint: &Path, path: &Path) -> io::Result<UnixListener> {
    let deadline = std::time::Instant::now() + SOCKET_HANDOVER;
    loop {
        remove_stale_socket(mountpoint);
        match UnixListener::bind(path) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            r => return r,
        }
    }
}

impl ControlSocket {
    /// Listen for `server`'s session mounted at `mountpoint`.
    pub fn start(mountpoint: &Path, server: Arc<Server>) -> io::Result<ControlSocket> {
        let path = control_socket_path(mountpoint);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let listener = bind(mountpoint, &path)?;
        let file = file_id(&path)?;
        // Blocking accept: the thread sleeps until a client (or the stop connection made by
        // `drop`) arrives, instead of waking 20 times a second to poll.
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, mnt) = (stop.clone(), mountpoint.to_path_buf());
        let thread = std::thread::Builder::new().name("fusebox-control".into()).spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) if stop2.load(Ordering::Relaxed) => return,
                    Ok((stream, _)) => {
                        if let Err(e) = answer(stream, &mnt, &server) {
                            tracing::debug!(error = %e, "control client went away");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket failed");
                        return;
                    }
                }
            }
        })?;
        Ok(ControlSocket { path, file, stop, thread: Some(thread) })
    }

    /// Where the socket listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What the daemon serving `mountpoint` with `server` reports now: the control socket's answer,
/// also usable in-process (the CLI's metrics endpoint).
pub fn status_report(mountpoint: &Path, server: &Server) -> StatusReport {
    StatusReport {
        mountpoint: mountpoint.to_path_buf(),
        pid: std::process::id(),
        init: server.negotiated().as_ref().map(InitReport::from).unwrap_or_default(),
        stats: server.stats().snapshot(),
        sched: SchedReport {
            mode: if server.gate().is_some() { "classes" } else { "fifo" }.into(),
            workers: server.workers(),
            background_threads: server.gate().map_or(0, |g| g.limit()),
            queued_background: server.gate().map_or(0, |g| g.queued()),
            running_background: server.gate().map_or(0, |g| g.running()),
        },
    }
}

fn answer(mut stream: UnixStream, mountpoint: &Path, server: &Server) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    serde_json::to_writer(&mut stream, &status_report(mountpoint, server)).map_err(io::Error::other)?;
    stream.flush()
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let ours = file_id(&self.path).is_ok_and(|f| f == self.file);
        if let Some(t) = self.thread.take() {
            // Wake the blocking accept (only through our own file: another daemon's would
            // answer instead); if the connection fails the listener is already gone.
            if (ours && UnixStream::connect(&self.path).is_ok()) || t.is_finished() {
                let _ = t.join();
            }
        }
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::handler::{Dispatch, Handler};
    use crate::session::{Capabilities, MountInfo};
    use crate::wire::Request;

    /// A handler that is never asked anything.
    struct Idle;

    impl Handler for Idle {
        fn init(&self, _: &mut Capabilities) -> Result<(), crate::Errno> {
            Ok(())
        }
        fn mounted(&self, _: &MountInfo) {}
        fn destroy(&self) {}
        fn dispatch(&self, _: Request<'_>, _: &Dispatch<'_>) {}
    }

    /// A daemon started at a mountpoint whose previous daemon is still exiting gets the socket
    /// once that one is gone, and the exiting one does not remove the newer socket.
    #[test]
    fn a_new_daemon_takes_over_the_socket_of_one_still_exiting() {
        let dir = tempfile::tempdir().unwrap();
        let mnt = super::super::mount::absolute(dir.path()).unwrap();
        let server =
            || Arc::new(Server::new(Arc::new(Idle), Capabilities::default(), Default::default(), false));
        let old = ControlSocket::start(&mnt, server()).unwrap();
        assert_eq!(query_status(&mnt).unwrap().mountpoint, mnt);
        let leaving = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(old);
        });
        // Waits for the old daemon's socket to go, then binds.
        let new = ControlSocket::start(&mnt, server()).unwrap();
        leaving.join().unwrap();
        assert!(new.path().exists(), "the old daemon removed the new socket");
        assert_eq!(query_status(&mnt).unwrap().pid, std::process::id());
        let path = new.path().to_path_buf();
        drop(new);
        assert!(!path.exists());
        assert!(query_status(&mnt).is_err());
    }
}
