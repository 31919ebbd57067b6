//! Prometheus metrics: `-o metrics=ADDR:PORT` served over HTTP by the daemon and scraped with a
//! real HTTP client (curl), and `fusebox stats --prometheus`.

mod support;

use std::process::{Command, Stdio};
use support::*;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn curl(url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10", "--include", url])
        .output()
        .expect("curl (scripts/test.sh installs it)");
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_are_served_over_http_and_printed_by_stats() {
    fusebox_testkit::skip_unless!();
    let port = free_port();
    let d = Daemon::start("memfs", &format!("size=64M,metrics=127.0.0.1:{port}"));
    for i in 0..10 {
        std::fs::write(d.mnt.join(format!("f{i}")), vec![7u8; 8192]).unwrap();
    }
    assert!(std::fs::read_dir(&d.mnt).unwrap().count() >= 10);
    let (head, body) = curl(&format!("http://127.0.0.1:{port}/metrics"));
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    for family in [
        "# TYPE fusebox_requests_total counter",
        "# TYPE fusebox_request_duration_seconds histogram",
        "# TYPE fusebox_requests_in_flight gauge",
        "# TYPE fusebox_workers gauge",
        "# TYPE fusebox_background_queued gauge",
    ] {
        assert!(body.contains(family), "no {family:?} in\n{body}");
    }
    let creates = sample(&body, "fusebox_requests_total{op=\"CREATE\"}").expect("CREATE counted");
    assert!(creates >= 10.0, "{creates}");
    let count = sample(&body, "fusebox_request_duration_seconds_count{op=\"CREATE\"}").unwrap();
    let inf = sample(&body, "fusebox_request_duration_seconds_bucket{op=\"CREATE\",le=\"+Inf\"}").unwrap();
    assert_eq!(count, inf);
    assert!(sample(&body, "fusebox_workers").unwrap() >= 1.0);
    // Counters only grow between scrapes.
    std::fs::write(d.mnt.join("more"), b"x").unwrap();
    let (_, again) = curl(&format!("http://127.0.0.1:{port}/metrics"));
    assert!(sample(&again, "fusebox_requests_total{op=\"CREATE\"}").unwrap() > creates);
    // Other paths: 404, not a crash.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/nope"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");

    // The same exposition from the control socket.
    let out = fusebox().args(["stats", "--prometheus"]).arg(&d.mnt).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(sample(&text, "fusebox_requests_total{op=\"CREATE\"}").unwrap() >= creates + 1.0);

    // A port in use is an error before anything is mounted.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = fusebox()
        .args(["mount", "memfs"])
        .arg(dir.path())
        .arg("-o")
        .arg(format!("metrics={addr}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("metrics: cannot listen on {addr}")), "{err}");
    assert!(!fusebox::session::is_mount_point(dir.path()));
}
