//! Prometheus metrics: a daemon's status report in the text exposition format (version 0.0.4),
//! printed by `fusebox stats --prometheus` and served over HTTP by `-o metrics=ADDR:PORT`.

use anyhow::{Context, Result};
use fusebox::session::{status_report, Server, StatusReport};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Writes metric families: HELP and TYPE once per family, then its samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label(v))).collect();
            let _ = write!(self.out, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// `report` in the Prometheus text format.
pub fn render(report: &StatusReport) -> String {
    let mut e = Exposition { out: String::new() };
    let mnt = report.mountpoint.display().to_string();
    let i = &report.init;
    e.family("fusebox_info", "gauge", "The mount this daemon serves and its FUSE protocol (always 1).");
    e.sample(
        "fusebox_info",
        &[("mountpoint", &mnt), ("protocol", &i.protocol), ("pid", &report.pid.to_string())],
        1,
    );
    e.single("fusebox_max_write_bytes", "gauge", "Negotiated max_write.", i.limits.max_write.into());
    e.single("fusebox_max_background", "gauge", "Negotiated max_background.", i.limits.max_background.into());
    e.single(
        "fusebox_congestion_threshold",
        "gauge",
        "Negotiated congestion_threshold.",
        i.limits.congestion_threshold.into(),
    );

    let ops = &report.stats.ops;
    type Field = fn(&fusebox::session::sched::OpStats) -> u64;
    let counters: [(&str, &str, Field); 4] = [
        ("fusebox_requests_total", "Requests received, by opcode.", |o| o.count),
        ("fusebox_request_errors_total", "Requests answered with an error, by opcode.", |o| o.errors),
        ("fusebox_request_bytes_total", "Request bytes received, by opcode.", |o| o.bytes_in),
        ("fusebox_reply_bytes_total", "Reply bytes sent, by opcode.", |o| o.bytes_out),
    ];
    for (name, help, field) in counters {
        e.family(name, "counter", help);
        for o in ops {
            e.sample(name, &[("op", &o.name)], field(o));
        }
    }

    let hist = "fusebox_request_duration_seconds";
    e.family(hist, "histogram", "Time from receiving a request to its reply, by opcode.");
    for o in ops {
        let mut cumulative = 0u64;
        for (b, n) in o.latency_buckets.iter().enumerate() {
            cumulative += n;
            // Bucket b holds latencies below 2^(b+1) µs.
            let le = format!("{}", (1u64 << (b + 1)) as f64 / 1e6);
            e.sample(&format!("{hist}_bucket"), &[("op", &o.name), ("le", &le)], cumulative);
        }
        e.sample(&format!("{hist}_bucket"), &[("op", &o.name), ("le", "+Inf")], cumulative);
        e.sample(&format!("{hist}_sum"), &[("op", &o.name)], o.total_us as f64 / 1e6);
        e.sample(&format!("{hist}_count"), &[("op", &o.name)], cumulative);
    }

    let s = &report.stats;
    e.family("fusebox_requests_in_flight", "gauge", "Requests being handled now, by class.");
    e.sample("fusebox_requests_in_flight", &[("class", "sync")], s.in_flight_sync);
    e.sample("fusebox_requests_in_flight", &[("class", "background")], s.in_flight_background);
    let sched = &report.sched;
    e.single("fusebox_workers", "gauge", "Worker threads serving /dev/fuse now.", sched.workers as u64);
    e.single(
        "fusebox_background_threads",
        "gauge",
        "Threads of the background lane (0 with sched=fifo).",
        sched.background_threads as u64,
    );
    e.single(
        "fusebox_background_queued",
        "gauge",
        "Background requests waiting for a lane thread.",
        sched.queued_background as u64,
    );
    e.single(
        "fusebox_background_running",
        "gauge",
        "Background requests being served now.",
        sched.running_background as u64,
    );
    e.single(
        "fusebox_uring_requests_total",
        "counter",
        "Requests that arrived over io_uring.",
        s.uring_requests,
    );
    e.single(
        "fusebox_passthrough_opens_total",
        "counter",
        "Opens answered with kernel passthrough.",
        s.passthrough_opens,
    );
    e.single(
        "fusebox_backing_files",
        "gauge",
        "Backing files registered with the kernel now.",
        s.backing_ids_live,
    );
    e.out
}

/// An HTTP listener bound before the mount (so a port in use is an error the caller sees), that
/// serves the metrics once [`MetricsListener::serve`] hands it the session.
pub struct MetricsListener {
    server: tiny_http::Server,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Bind `addr`.
    pub fn bind(addr: SocketAddr) -> Result<MetricsListener> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("metrics: cannot listen on {addr}"))?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        Ok(MetricsListener { server, addr })
    }

    /// Answer `GET /metrics` (and `/`) from a thread, with the live state of `server`, for as
    /// long as the process runs.
    pub fn serve(self, mountpoint: PathBuf, server: Arc<Server>) -> Result<()> {
        let MetricsListener { server: http, addr } = self;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
        std::thread::Builder::new().name("fusebox-metrics".into()).spawn(move || {
            for req in http.incoming_requests() {
                let reply = match (req.method(), req.url()) {
                    (tiny_http::Method::Get, "/metrics" | "/") => {
                        let body = render(&status_report(&mountpoint, &server));
                        let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                            .expect("a valid header");
                        req.respond(tiny_http::Response::from_string(body).with_header(header))
                    }
                    (tiny_http::Method::Get, _) => req.respond(
                        tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404),
                    ),
                    _ => req.respond(tiny_http::Response::empty(405)),
                };
                if let Err(e) = reply {
                    tracing::debug!(error = %e, "metrics client went away");
                }
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusebox::session::sched::{OpStats, StatsSnapshot};
    use fusebox::session::{InitReport, SchedReport};

    fn report() -> StatusReport {
        let op = OpStats {
            opcode: 15,
            name: "READ".into(),
            count: 5,
            errors: 1,
            bytes_in: 400,
            bytes_out: 8192,
            p50_us: 3,
            p99_us: 7,
            max_us: 6,
            max_in_flight_one_file: 1,
            total_us: 14,
            latency_buckets: vec![1, 2, 1],
        };
        StatusReport {
            mountpoint: "/mnt/a \"b\"".into(),
            pid: 42,
            init: InitReport {
                protocol: "7.45".into(),
                limits: fusebox::session::Limits { max_write: 1 << 20, ..Default::default() },
                ..Default::default()
            },
            stats: StatsSnapshot { ops: vec![op], in_flight_sync: 1, ..Default::default() },
            sched: SchedReport { mode: "classes".into(), workers: 3, ..Default::default() },
        }
    }

    #[test]
    fn renders_counters_gauges_and_a_cumulative_histogram() {
        let text = render(&report());
        for line in [
            "fusebox_info{mountpoint=\"/mnt/a \\\"b\\\"\",protocol=\"7.45\",pid=\"42\"} 1",
            "fusebox_requests_total{op=\"READ\"} 5",
            "fusebox_request_errors_total{op=\"READ\"} 1",
            "fusebox_reply_bytes_total{op=\"READ\"} 8192",
            "fusebox_request_duration_seconds_bucket{op=\"READ\",le=\"0.000002\"} 1",
            "fusebox_request_duration_seconds_bucket{op=\"READ\",le=\"0.000004\"} 3",
            "fusebox_request_duration_seconds_bucket{op=\"READ\",le=\"0.000008\"} 4",
            "fusebox_request_duration_seconds_bucket{op=\"READ\",le=\"+Inf\"} 4",
            "fusebox_request_duration_seconds_sum{op=\"READ\"} 0.000014",
            "fusebox_request_duration_seconds_count{op=\"READ\"} 4",
            "fusebox_requests_in_flight{class=\"sync\"} 1",
            "fusebox_workers 3",
            "# TYPE fusebox_request_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line is `name{labels} value` with a number for value.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
