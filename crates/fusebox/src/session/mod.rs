//! Session lifecycle: mount, INIT, serve with N worker threads, unmount.

mod backing;
mod bdi;
#[cfg(feature = "serde")]
mod control;
mod finish;
mod handler;
mod init;
mod interrupt;
mod mount;
mod notify;
mod options;
pub(crate) mod responder;
mod retire;
pub mod sched;
mod server;
mod uring;
#[cfg(feature = "io-uring")]
mod uring_queues;

pub use backing::{Backing, BackingId};
pub use bdi::{bdi_dir, read_knob, DEFAULT_READ_AHEAD_KB};
#[cfg(feature = "serde")]
pub use control::{
    control_dir, control_socket_path, query_status, status_report, ControlSocket, InitReport, SchedReport,
    StatusReport,
};
pub use handler::{Dispatch, Handler, IntoHandler, O_APPEND_CACHED};
pub use init::{kernel_max_pages_limit, negotiate, Capabilities, InitError, Limits, Negotiated, FLAG_NAMES};
pub use interrupt::{Interrupt, PENDING_EXPIRY};
pub(crate) use interrupt::{InterruptRegistry, Registration};
pub use mount::{
    abort, absolute, check_mountpoint, fuse_connection_id, is_mount_point, unmount, MountError,
    FUSE_CONNECTIONS,
};
pub use notify::{Notifier, NotifyError, Retrieval};
pub use options::{parse_bytes, parse_seconds, MountOptions, OptionError, UringOptions};
pub use retire::{Retirements, MAX_RETIRED};
pub use sched::{PoolConfig, IDLE_EXIT};
pub use server::{Handled, Server};
pub use uring::{possible_cpus, uring_supported, UringParamGuard, ENABLE_URING_PARAM};

use crate::transport::devfuse::{DevFuse, Received};
use crate::wire::types::Ttl;
use crate::{sys, transport::ReplyChannel};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

/// What a file system learns when its mount goes live (`Filesystem::mounted`).
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// Sends notifications to this mount's kernel caches.
    pub notifier: Notifier,
    /// Where it is mounted (absolute).
    pub mountpoint: PathBuf,
    /// Registers backing files for kernel passthrough; `None` unless the file system asked for
    /// [`Capabilities::passthrough`] and the kernel granted it.
    pub backing: Option<Backing>,
    /// Mounted with `noatime`: reads must not change access times. (FUSE inodes never get
    /// atime updates from the kernel: the file system applies the mount's atime policy,
    /// relatime unless this is set.)
    pub noatime: bool,
}

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
    /// Cache lifetimes told to the kernel where the options do not set them
    /// (`attr_timeout=`, `entry_timeout=`, `negative_timeout=` override each). A file system
    /// that sees every change (memfs) can afford long ones; docs/ARCHITECTURE.md has the policy.
    pub default_ttl: Ttl,
}

impl Config {
    /// Worker thread count: `threads=` or the default.
    pub fn threads(&self) -> usize {
        self.options.threads.unwrap_or_else(default_threads)
    }

    /// Pool sizing and scheduling from the options. Defaults: grow to 4× the initial workers
    /// (at least 32) under blocking load; half the initial workers (at least 1) for background
    /// requests, so the other half always serves processes that wait.
    pub fn pool(&self, bufsize: usize) -> PoolConfig {
        let threads = self.threads();
        let max_threads = self.options.max_threads.unwrap_or((threads * 4).max(32)).max(threads);
        let background = self.options.background_threads.unwrap_or((threads / 2).max(1));
        PoolConfig {
            threads,
            max_threads,
            background_threads: (!self.options.fifo).then_some(background),
            bufsize,
            worker_slice: self
                .options
                .worker_slice_us
                .filter(|&us| us > 0)
                .map(std::time::Duration::from_micros),
        }
    }
    fn ttl(&self) -> Ttl {
        let d = self.default_ttl;
        let o = &self.options;
        Ttl {
            entry: o.entry_timeout.unwrap_or(d.entry),
            attr: o.attr_timeout.unwrap_or(d.attr),
            negative: o.negative_timeout.unwrap_or(d.negative),
        }
    }
}

/// A mounted, initialized FUSE session ready to serve.
pub struct Session {
    server: Arc<Server>,
    dev: Arc<DevFuse>,
    mountpoint: PathBuf,
    config: Config,
    /// Kept alive while the session runs; removed when it ends.
    #[cfg(feature = "serde")]
    _control: Option<ControlSocket>,
}

impl Session {
    /// Check the mountpoint, mount, and complete INIT. When this returns, the mount is live.
    pub fn mount(fs: impl IntoHandler, mountpoint: &Path, config: Config) -> Result<Session, SessionError> {
        config.options.validate()?;
        let mountpoint = check_mountpoint(mountpoint)?;
        // New files get exactly the mode the kernel asks for (it already applied the umask).
        sys::set_umask(0);
        let dev = Arc::new(mount::mount(&mountpoint, &config.options)?);
        let mut caps = config.caps.clone();
        if let Some(wb) = config.options.writeback {
            caps.writeback_cache = wb;
        }
        caps.splice_write |= config.options.splice_write;
        if let Some(on) = config.options.async_dio {
            caps.async_dio = on;
        }
        caps.io_uring = config.options.uring.enabled;
        if let Some(n) = config.options.max_background {
            caps.max_background = n;
        }
        if let Some(n) = config.options.congestion_threshold {
            caps.congestion_threshold = n;
        }
        let server = Arc::new(Server::new(fs.into_handler(), caps, config.ttl(), config.options.debug));
        server.set_notify_channel(dev.clone());
        #[cfg_attr(not(feature = "serde"), allow(unused_mut))]
        let mut session = Session {
            server,
            dev,
            mountpoint,
            config,
            #[cfg(feature = "serde")]
            _control: None,
        };
        match session.wait_for_init() {
            Ok(()) => {
                bdi::tune(
                    &session.mountpoint,
                    session.config.options.read_ahead_kb,
                    session.config.options.bdi_max_ratio,
                );
                let info = MountInfo {
                    notifier: session.notifier(),
                    mountpoint: session.mountpoint.clone(),
                    backing: session.backing(),
                    noatime: session.config.options.noatime,
                };
                session.server.handler().mounted(&info);
                #[cfg(feature = "serde")]
                {
                    session._control = match ControlSocket::start(&session.mountpoint, session.server.clone())
                    {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "no control socket: `fusebox stats` will not work here");
                            None
                        }
                    };
                }
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

    /// A notifier for this session (invalidations, store, retrieve), usable from any thread.
    pub fn notifier(&self) -> Notifier {
        self.server.notifier(self.dev.clone())
    }

    /// Registers backing files for kernel passthrough, when INIT granted FUSE_PASSTHROUGH.
    pub fn backing(&self) -> Option<Backing> {
        let neg = self.server.negotiated()?;
        (neg.flags & crate::abi::init_flags::FUSE_PASSTHROUGH != 0)
            .then(|| Backing::new(self.dev.clone(), self.server.stats().clone()))
    }

    /// The shared request-handling core (stats, negotiated parameters).
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Serve until the file system is unmounted or the connection aborted. Spawns the worker
    /// threads, each with its own cloned `/dev/fuse` fd and buffer, and waits for them. While
    /// running, the session answers `fusebox stats` on its control socket.
    ///
    /// With `-o io_uring` and a kernel that offers it, requests travel over per-CPU io_uring
    /// queues (session/uring.rs) and the `/dev/fuse` workers (2 unless `threads=`) carry only
    /// FORGET, INTERRUPT and notification replies.
    pub fn run(self) -> Result<(), SessionError> {
        let neg = self.server.negotiated().ok_or(SessionError::ClosedBeforeInit)?;
        #[cfg_attr(not(feature = "io-uring"), allow(unused_mut))]
        let mut pool_config = self.config.pool(neg.buffer_size());
        #[cfg(feature = "io-uring")]
        let uring = uring_queues::start(&self.server, &self.dev, &neg, &self.config.options.uring);
        #[cfg(feature = "io-uring")]
        if uring.is_some() && self.config.options.threads.is_none() {
            pool_config.threads = 2;
        }
        let pool = sched::Pool::new(self.server.clone(), self.dev.clone(), pool_config);
        let result = pool.run();
        #[cfg(feature = "io-uring")]
        if let Some(u) = uring {
            u.stop();
        }
        self.server.destroy_once();
        result.map_err(SessionError::Io)
    }
}
