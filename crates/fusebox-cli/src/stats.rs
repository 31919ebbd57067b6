//! `fusebox stats`: print a running mount's counters and INIT parameters.

use anyhow::Result;
use fusebox::session::{query_status, StatusReport};
use std::fmt::Write as _;
use std::path::Path;

/// How `fusebox stats` prints a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// The raw JSON report.
    Json,
    /// The Prometheus text exposition format.
    Prometheus,
}

impl Format {
    /// The format the flags ask for (clap keeps them exclusive).
    pub fn from_flags(json: bool, prometheus: bool) -> Format {
        match (json, prometheus) {
            (true, _) => Format::Json,
            (_, true) => Format::Prometheus,
            _ => Format::Text,
        }
    }
}

/// Query the daemon serving `mountpoint` and print its report.
pub fn show(mountpoint: &Path, format: Format) -> Result<()> {
    let report = query_status(mountpoint)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Prometheus => print!("{}", crate::metrics::render(&report)),
        Format::Text => print!("{}", render(&report)),
    }
    Ok(())
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

/// The human-readable form of a report.
pub fn render(r: &StatusReport) -> String {
    let mut s = String::new();
    let i = &r.init;
    let _ = writeln!(s, "mount     {} (daemon pid {})", r.mountpoint.display(), r.pid);
    let _ = writeln!(
        s,
        "init      FUSE {}  max_write {}  max_pages {}  max_readahead {}  max_background {}  congestion_threshold {}  time_gran {}ns",
        i.protocol,
        bytes(i.limits.max_write as u64),
        i.limits.max_pages,
        bytes(i.limits.max_readahead as u64),
        i.limits.max_background,
        i.limits.congestion_threshold,
        i.limits.time_gran
    );
    let _ = writeln!(s, "flags     {}", i.flags.join(" "));
    let _ = writeln!(s, "(1-file: most READs/WRITEs of one file in flight at once)");
    let _ =
        writeln!(s, "in flight sync {}  background {}", r.stats.in_flight_sync, r.stats.in_flight_background);
    if i.flags.iter().any(|f| f == "OVER_IO_URING") {
        let _ = writeln!(s, "io_uring  {} requests came over io_uring", r.stats.uring_requests);
    }
    if i.flags.iter().any(|f| f == "PASSTHROUGH") {
        let _ = writeln!(
            s,
            "passthrough  {} opens went to the kernel's passthrough; backing files: {} registered, {} live",
            r.stats.passthrough_opens, r.stats.backing_ids_opened, r.stats.backing_ids_live
        );
    }
    let q = &r.sched;
    let _ = writeln!(
        s,
        "sched     {}  workers {}  background lane: {} threads, {} running, {} queued",
        q.mode, q.workers, q.background_threads, q.running_background, q.queued_background
    );
    let _ = writeln!(
        s,
        "\n{:<18} {:>10} {:>8} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9}",
        "opcode", "count", "errors", "bytes in", "bytes out", "p50", "p99", "max", "1-file"
    );
    for o in &r.stats.ops {
        let _ = writeln!(
            s,
            "{:<18} {:>10} {:>8} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9}",
            o.name,
            o.count,
            o.errors,
            bytes(o.bytes_in),
            bytes(o.bytes_out),
            micros(o.p50_us),
            micros(o.p99_us),
            micros(o.max_us),
            if o.max_in_flight_one_file > 0 { o.max_in_flight_one_file.to_string() } else { "-".into() }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_readable() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1 << 20), "1.0 MiB");
        assert_eq!(micros(15), "15µs");
        assert_eq!(micros(1500), "1.5ms");
        assert_eq!(micros(2_500_000), "2.5s");
    }
}
