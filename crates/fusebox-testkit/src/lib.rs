//! Test support shared by every crate's mount tests: mount a file system in-process in a
//! fresh temp dir and unmount it on drop (even when the test panics), skip cleanly when
//! mounting is impossible here (or fail under `FUSEBOX_REQUIRE_MOUNT=1`), hang guards,
//! deterministic data, io_uring gating ([`uring`]) and the POSIX suite ([`posix`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use fusebox::{Config, Filesystem, MountOptions, Session};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why mount tests cannot run here, or None when they can.
pub fn mount_unavailable() -> Option<String> {
    if fusebox::sys::geteuid() != 0 {
        return Some("not running as root".into());
    }
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_err() {
        return Some("/dev/fuse cannot be opened".into());
    }
    None
}

/// True when nothing is `missing`; otherwise prints why the test is skipped and returns false,
/// or fails the test under `FUSEBOX_REQUIRE_MOUNT=1` (CI, where everything must run).
pub fn needs(missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) if std::env::var("FUSEBOX_REQUIRE_MOUNT").as_deref() == Ok("1") => {
            panic!("mount tests required (FUSEBOX_REQUIRE_MOUNT=1) but {why}")
        }
        Some(why) => {
            eprintln!("skipping mount test: {why}");
            false
        }
    }
}

/// True when the test should run; false (after printing why) when it should be skipped.
/// With FUSEBOX_REQUIRE_MOUNT=1 a missing capability fails the test instead.
pub fn can_mount() -> bool {
    needs(mount_unavailable())
}

/// Return from the calling test unless `cond` holds (default: [`can_mount`], which says why
/// it does not, or fails the test under FUSEBOX_REQUIRE_MOUNT=1).
#[macro_export]
macro_rules! skip_unless {
    () => {
        $crate::skip_unless!($crate::can_mount())
    };
    ($cond:expr) => {
        if !$cond {
            return;
        }
    };
}

/// One test per `name => check`: each runs `check` on every item of `items` in turn (the
/// configurations a behaviour must hold on). Doc comments and attributes before a name go on
/// its test.
#[macro_export]
macro_rules! tests_over {
    ($items:expr; $($(#[$meta:meta])* $name:ident => $check:path),* $(,)?) => {$(
        $(#[$meta])*
        #[test]
        fn $name() {
            for item in $items {
                $check(item);
            }
        }
    )*};
}

/// A live mount served by threads of this test process.
pub struct TestMount {
    /// Temp dir holding the mountpoint (and anything else the test wants).
    pub dir: tempfile::TempDir,
    /// The mountpoint.
    pub mnt: PathBuf,
    server: Arc<fusebox::session::Server>,
    notifier: fusebox::session::Notifier,
    thread: Option<JoinHandle<()>>,
    /// The FUSE connection id (the minor number of the mount's st_dev).
    conn: u32,
}

impl TestMount {
    /// Mount `fs` with `-o opts` in a fresh temp dir. Returns None when mounting is not
    /// possible here (see [`can_mount`]).
    pub fn new(fs: Arc<dyn Filesystem>, opts: &str) -> Option<TestMount> {
        if !can_mount() {
            return None;
        }
        // Daemon warnings and errors show up in the test output (RUST_LOG overrides).
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let dir = tempfile::Builder::new().prefix("fusebox-test-").tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        let options = MountOptions::parse(&[opts], &[]).expect("test options");
        let config = Config { options, ..Default::default() };
        let session = Session::mount(fs, &mnt, config).expect("mount");
        let server = session.server().clone();
        let notifier = session.notifier();

        let thread = std::thread::spawn(move || {
            if let Err(e) = session.run() {
                eprintln!("session ended with error: {e}");
            }
        });
        // Only now that workers serve the mount may we stat it.
        let conn = {
            use std::os::unix::fs::MetadataExt;
            let dev = std::fs::metadata(&mnt).expect("stat mountpoint").dev();
            (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
        };
        Some(TestMount { dir, mnt, server, notifier, thread: Some(thread), conn })
    }

    /// Path of `rel` inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Abort the FUSE connection (as `echo 1 > /sys/fs/fuse/connections/N/abort`): pending and
    /// future requests fail at once, workers see ENODEV.
    pub fn abort(&self) {
        let dir = Path::new("/sys/fs/fuse/connections");
        if !dir.join(self.conn.to_string()).exists() {
            let _ = fusebox::sys::mount("fusectl", dir, "fusectl", 0, "");
        }
        let _ = std::fs::write(dir.join(self.conn.to_string()).join("abort"), "1");
    }

    /// The session's notifier.
    pub fn notifier(&self) -> &fusebox::session::Notifier {
        &self.notifier
    }

    /// The server (stats, negotiated parameters).
    pub fn server(&self) -> &Arc<fusebox::session::Server> {
        &self.server
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        // Lazy unmount never blocks on busy files; the kernel then ends the connection and the
        // workers see ENODEV.
        let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !t.is_finished() {
                // A handler is stuck (a failed test left it blocked): abort the connection, so
                // every waiting caller gets an error instead of hanging this process forever
                // (callers waiting on an answer cannot even be killed while we hold the device).
                eprintln!("warning: session still running after unmount; aborting connection {}", self.conn);
                self.abort();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Run `f` on another thread and fail if it takes longer than `limit` (a hang guard, not a
/// performance assertion). A panic inside `f` is propagated as is.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::spawn(f);
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        if Instant::now() > deadline {
            panic!("operation did not finish within {limit:?}: hang");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Deterministic pseudo-random bytes (xorshift), for content checks.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A simple 64-bit FNV-1a checksum.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
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

/// Open `path` for reading and writing with O_DIRECT, created (and truncated) when `create`.
pub fn open_direct(path: &std::path::Path, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).custom_flags(libc::O_DIRECT);
    if create {
        o.create(true).truncate(true);
    }
    o.open(path)
}

/// Run `script` with `sh -c` as user and group nobody (65534, no capabilities) and panic
/// with its stderr unless it succeeds.
pub fn sh_as_nobody(script: &str) {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("sh").arg("-c").arg(script).uid(65534).gid(65534).output().unwrap();
    assert!(out.status.success(), "as nobody: {script}: {}", String::from_utf8_lossy(&out.stderr));
}

pub mod child;
pub mod fsx;
pub mod posix;

/// A page-aligned buffer, as O_DIRECT wants: a window into a slightly larger vector.
pub struct Aligned {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `len` bytes, all `fill`.
    pub fn new(len: usize, fill: u8) -> Aligned {
        let buf = vec![fill; len + 4096];
        let start = buf.as_ptr().align_offset(4096);
        Aligned { buf, start, len }
    }
}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl AsMut<[u8]> for Aligned {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
}
pub mod uring;
