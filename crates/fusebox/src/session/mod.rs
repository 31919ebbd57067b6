//! Session lifecycle: mount, INIT, serve with N worker threads, unmount.

mod control;
mod init;
mod mount;
mod options;
mod server;

pub use control::{control_dir, control_socket_path, query_status, ControlSocket, InitReport, StatusReport};
pub use init::{kernel_max_pages_limit, negotiate, Capabilities, InitError, Negotiated, FLAG_NAMES};
pub use mount::{absolute, check_mountpoint, is_mount_point, unmount, MountError};
pub use options::{parse_bytes, parse_seconds, MountOptions, OptionError};
pub use server::{Handled, Server};

use crate::fs::{Filesystem, Ttl};
use crate::transport::devfuse::{DevFuse, Received};
use crate::transport::{sys, ReplyChannel};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

/// Why a session could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Mounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// Options were invalid.
    #[error(transparent)]
    Options(#[from] OptionError),
    /// INIT with the kernel failed.
    #[error("INIT failed: {0}")]
    Init(InitError),
    /// The device failed.
    #[error("/dev/fuse: {0}")]
    Io(#[from] std::io::Error),
    /// The connection closed before INIT.
    #[error("the kernel closed the connection before INIT")]
    ClosedBeforeInit,
}

/// Default number of worker threads: four per CPU, between 4 and 16. Handlers run inline on
/// the worker that read the request, and blocking file systems (disk, network) spend most of a
/// request waiting, so several requests per core must be in flight to keep the CPU and the
/// device busy. The kernel keeps at most `max_background` async requests in flight, so more
/// threads than that buy nothing.
pub fn default_threads() -> usize {
    let cpus = thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    (cpus * 4).clamp(4, 16)
}

/// Everything that configures a session.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Generic mount options (`-o`).
    pub options: MountOptions,
    /// INIT capabilities to ask for.
    pub caps: Capabilities,
}

impl Config {
    /// Worker thread count: `threads=` or the default.
    pub fn threads(&self) -> usize {
        self.options.threads.unwrap_or_else(default_threads)
    }
    fn ttl(&self) -> Ttl {
        Ttl { entry: self.options.entry_timeout, attr: self.options.attr_timeout }
    }
}

/// A mounted, initialized FUSE session ready to serve.
pub struct Session {
    server: Arc<Server>,
    dev: Arc<DevFuse>,
    mountpoint: PathBuf,
    threads: usize,
    /// Kept alive while the session runs; removed when it ends.
    _control: Option<ControlSocket>,
}

impl Session {
    /// Check the mountpoint, mount, and complete INIT. When this returns, the mount is live.
    pub fn mount(
        fs: Arc<dyn Filesystem>,
        mountpoint: &Path,
        config: Config,
    ) -> Result<Session, SessionError> {
        config.options.validate()?;
        let mountpoint = check_mountpoint(mountpoint)?;
        // New files get exactly the mode the kernel asks for (it already applied the umask).
        sys::set_umask(0);
        let dev = Arc::new(mount::mount(&mountpoint, &config.options)?);
        let mut caps = config.caps.clone();
        if let Some(wb) = config.options.writeback {
            caps.writeback_cache = wb;
        }
        let server = Arc::new(Server::new(fs, caps, config.ttl(), config.options.debug));
        let mut session = Session { server, dev, mountpoint, threads: config.threads(), _control: None };
        match session.wait_for_init() {
            Ok(()) => {
                session._control = match ControlSocket::start(&session.mountpoint, session.server.clone()) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "no control socket: `fusebox stats` will not work here");
                        None
                    }
                };
                Ok(session)
            }
            Err(e) => {
                let _ = sys::umount(&session.mountpoint, libc::MNT_DETACH);
                Err(e)
            }
        }
    }

    fn wait_for_init(&self) -> Result<(), SessionError> {
        let mut buf = vec![0u8; crate::abi::FUSE_MIN_READ_BUFFER.max(64 * 1024)];
        let chan: Arc<dyn ReplyChannel> = self.dev.clone();
        loop {
            match self.dev.receive(&mut buf)? {
                Received::Retry => continue,
                Received::Closed => return Err(SessionError::ClosedBeforeInit),
                Received::Request(n) => match self.server.handle(&buf[..n], &chan) {
                    Handled::Initialized(_) => return Ok(()),
                    Handled::InitFailed(e) => return Err(SessionError::Init(e)),
                    Handled::Continue | Handled::Destroyed => continue,
                },
            }
        }
    }

    /// The mounted path.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The shared request-handling core (stats, negotiated parameters).
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Serve until the file system is unmounted or the connection aborted. Spawns the worker
    /// threads, each with its own cloned `/dev/fuse` fd and buffer, and waits for them. While
    /// running, the session answers `fusebox stats` on its control socket.
    pub fn run(self) -> Result<(), SessionError> {
        let neg = self.server.negotiated().ok_or(SessionError::ClosedBeforeInit)?;
        let bufsize = neg.buffer_size();
        let mut handles = Vec::with_capacity(self.threads);
        for i in 0..self.threads {
            // Worker 0 uses the original fd; the others clone it so each has its own queue of
            // requests being processed and no lock is shared on the read path.
            let dev = if i == 0 { self.dev.clone() } else { Arc::new(self.dev.clone_fd()?) };
            let server = self.server.clone();
            let handle = thread::Builder::new()
                .name(format!("fusebox-{i}"))
                .spawn(move || worker(server, dev, bufsize))?;
            handles.push(handle);
        }
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => tracing::error!("worker thread panicked"),
            }
        }
        self.server.destroy_once();
        match first_err {
            Some(e) => Err(SessionError::Io(e)),
            None => Ok(()),
        }
    }
}

fn worker(server: Arc<Server>, dev: Arc<DevFuse>, bufsize: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; bufsize];
    let chan: Arc<dyn ReplyChannel> = dev.clone();
    loop {
        match dev.receive(&mut buf) {
            Ok(Received::Request(n)) => {
                if server.handle(&buf[..n], &chan) == Handled::Destroyed {
                    return Ok(());
                }
            }
            Ok(Received::Retry) => continue,
            Ok(Received::Closed) => return Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "reading /dev/fuse failed; worker stops");
                return Err(e);
            }
        }
    }
}
