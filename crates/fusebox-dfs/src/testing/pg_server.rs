//! A real PostgreSQL server for tests: a fresh cluster in a temporary directory, listening on
//! a free 127.0.0.1 port, started from Debian's `postgresql` package (scripts/test.sh
//! installs it) and stopped when the fixture is dropped. As root, the server runs as the
//! `postgres` user (PostgreSQL refuses to run as root).
//!
//! A watchdog ([`ServerProcess`]) stops the server when the test process is gone, so a killed test run leaves
//! no server behind. Without PostgreSQL installed the tests that need it are skipped, unless
//! `FUSEBOX_REQUIRE_POSTGRES=1` (CI) makes that a failure.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::watchdog::ServerProcess;

/// Database user the clusters are created with (trust authentication on 127.0.0.1).
pub const USER: &str = "fusebox";

/// A running PostgreSQL cluster.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    server: Option<ServerProcess>,
}

/// The directory with `initdb` and `postgres` of the newest installed PostgreSQL.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

/// uid and gid of the `postgres` user (from /etc/passwd).
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "postgres").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgServer {
    /// Start a new cluster; `None` (with a note on stderr) when PostgreSQL is not installed
    /// and not required.
    pub fn start() -> Option<PgServer> {
        let what = "PostgreSQL (/usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)";
        let bin = super::installed(bin_dir(), "FUSEBOX_REQUIRE_POSTGRES", what)?;
        let run_as = if is_root() {
            Some(postgres_user().expect("running as root needs the `postgres` user (package postgresql)"))
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("fusebox-pg-").tempdir().unwrap();
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut s = PgServer { dir, bin, port: 0, run_as, server: None };
        let out = s
            .command("initdb")
            .args(["-D"])
            .arg(s.data())
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        s.port = free_port();
        s.run();
        Some(s)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.join(tool));
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c.current_dir(self.dir.path()).stdin(Stdio::null());
        c
    }

    /// Start the server process and a watchdog that stops it when this process is gone, and
    /// wait until it accepts connections.
    fn run(&mut self) {
        let mut c = self.command("postgres");
        c.arg("-D").arg(self.data()).args(["-p", &self.port.to_string(), "-k"]).arg(self.dir.path()).args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ]);
        // Fast shutdown (SIGINT).
        self.server =
            Some(ServerProcess::spawn(&mut c, &self.dir.path().join("server.log"), "INT", self.dir.path()));
        let t = Instant::now();
        while postgres::Client::connect(&self.url("postgres"), postgres::NoTls).is_err() {
            let exited = self.server.as_mut().is_none_or(|s| s.exited());
            assert!(
                !exited && t.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Create a new, empty database; its URL.
    pub fn new_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(&name)
    }

    /// Stop the server (fast shutdown: clients see their connections cut).
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }

    /// Start the stopped server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether this process runs with effective uid 0 (read from /proc: no unsafe code here).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// One server shared by every test of this process (each test takes its own database); the
/// watchdog stops it when the process exits. `None` when PostgreSQL is not available.
pub fn shared() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER.get_or_init(PgServer::start).as_ref()
}
