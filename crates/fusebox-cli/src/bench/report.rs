//! The benchmark report: table, JSON document, SVG chart.

use super::options::{Mode, Workload, MODES, WORKLOADS};
use super::system::Machine;
use std::fmt::Write as _;

/// One (workload, mode) cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// The workload.
    pub workload: Workload,
    /// The mode.
    pub mode: Mode,
    /// Median throughput, MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Throughput of every run, MB/s.
    pub runs_mb_per_s: Vec<f64>,
    /// `mb_per_s` divided by native's for the same workload.
    pub ratio_to_native: Option<f64>,
    /// WRITE requests the daemon handled during the median run (fusebox modes).
    pub write_requests: Option<u64>,
    /// Average WRITE payload, bytes (request size minus 80 bytes of headers).
    pub avg_write_bytes: Option<f64>,
    /// Daemon CPU time (user + system) during the median run, seconds.
    pub daemon_cpu_s: Option<f64>,
    /// The mount's BDI max_ratio (percent) in effect.
    pub bdi_max_ratio: Option<u32>,
}

/// A whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Backing storage of native and passthrough.
    pub storage: String,
    /// Sequential file size, bytes.
    pub seq_size: u64,
    /// Random-write file size, bytes.
    pub rand_size: u64,
    /// Runs per cell (median reported).
    pub runs: usize,
    /// `--bdi-max-ratio`, if given.
    pub bdi_max_ratio_requested: Option<u32>,
    /// Whether page caches could be dropped before each job.
    pub caches_dropped: bool,
    /// The results.
    pub rows: Vec<Row>,
}

impl Report {
    /// Fill in `ratio_to_native` from the native rows.
    pub fn compute_ratios(&mut self) {
        let native: Vec<(Workload, f64)> =
            self.rows.iter().filter(|r| r.mode == Mode::Native).map(|r| (r.workload, r.mb_per_s)).collect();
        for r in &mut self.rows {
            r.ratio_to_native = native
                .iter()
                .find(|(w, _)| *w == r.workload)
                .filter(|(_, n)| *n > 0.0)
                .map(|(_, n)| r.mb_per_s / n);
        }
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

fn size(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1048576.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// The human-readable table.
pub fn render_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:<25} {:>9} {:>9} {:>12} {:>11} {:>10} {:>9}",
        "workload", "mode", "MB/s", "vs native", "WRITE reqs", "avg WRITE", "daemon CPU", "bdi max%"
    );
    for row in &r.rows {
        let _ = writeln!(
            s,
            "{:<14} {:<25} {:>9.1} {:>9} {:>12} {:>11} {:>10} {:>9}",
            row.workload.name(),
            row.mode.name(),
            row.mb_per_s,
            opt(row.ratio_to_native, |x| format!("{x:.2}x")),
            opt(row.write_requests, |x| x.to_string()),
            opt(row.avg_write_bytes, size),
            opt(row.daemon_cpu_s, |x| format!("{x:.2} s")),
            opt(row.bdi_max_ratio, |x| x.to_string()),
        );
    }
    let _ = writeln!(
        s,
        "\n{} CPUs, kernel {}, {}; storage: {}; sequential {} / random {}; median of {} run(s); bdi max_ratio: {}{}",
        r.machine.cpus,
        r.machine.kernel,
        r.machine.fio,
        r.storage,
        size(r.seq_size as f64),
        size(r.rand_size as f64),
        r.runs,
        r.bdi_max_ratio_requested.map(|x| format!("set to {x}%")).unwrap_or_else(|| "kernel default".into()),
        if r.caches_dropped { "" } else { "; WARNING: could not drop caches" }
    );
    s
}

const COLORS: [&str; 4] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A grouped bar chart: one group per workload, one bar per mode, labelled with MB/s.
pub fn render_svg(r: &Report, title: &str) -> String {
    let workloads: Vec<Workload> =
        WORKLOADS.into_iter().filter(|w| r.rows.iter().any(|x| x.workload == *w)).collect();
    let modes: Vec<Mode> = MODES.into_iter().filter(|m| r.rows.iter().any(|x| x.mode == *m)).collect();
    let (bar_w, gap, left, top, plot_h) = (48.0, 40.0, 60.0, 60.0, 300.0);
    let group_w = bar_w * modes.len() as f64 + gap;
    let width = left + group_w * workloads.len() as f64 + 20.0;
    let legend_y = top + plot_h + 50.0;
    let height = legend_y + 22.0 * modes.len() as f64 + 10.0;
    let max = r.rows.iter().map(|x| x.mb_per_s).fold(0.0f64, f64::max).max(1.0) * 1.1;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        width / 2.0,
        esc(title)
    );
    let base = top + plot_h;
    let _ =
        writeln!(s, r#"<line x1="{left}" y1="{base}" x2="{:.0}" y2="{base}" stroke="black"/>"#, width - 10.0);
    let _ = writeln!(
        s,
        r#"<text x="14" y="{:.0}" transform="rotate(-90 14 {:.0})" text-anchor="middle">MB/s</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    for (gi, w) in workloads.iter().enumerate() {
        let gx = left + gap / 2.0 + gi as f64 * group_w;
        for (mi, m) in modes.iter().enumerate() {
            let Some(row) = r.rows.iter().find(|x| x.workload == *w && x.mode == *m) else { continue };
            let h = row.mb_per_s / max * plot_h;
            let x = gx + mi as f64 * bar_w;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}: {:.1} MB/s</title></rect>"#,
                x,
                base - h,
                bar_w - 4.0,
                COLORS[mi % COLORS.len()],
                esc(w.name()),
                esc(m.name()),
                row.mb_per_s
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0}</text>"#,
                x + (bar_w - 4.0) / 2.0,
                base - h - 4.0,
                row.mb_per_s
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
            gx + bar_w * modes.len() as f64 / 2.0,
            base + 20.0,
            esc(w.name())
        );
    }
    // Legend swatches are circles so the chart has exactly one <rect> per bar.
    for (mi, m) in modes.iter().enumerate() {
        let y = legend_y + 22.0 * mi as f64;
        let _ = writeln!(
            s,
            r#"<circle cx="{:.0}" cy="{y:.0}" r="6" fill="{}"/>"#,
            left + 6.0,
            COLORS[mi % COLORS.len()]
        );
        let _ = writeln!(s, r#"<text x="{:.0}" y="{:.0}">{}</text>"#, left + 18.0, y + 4.0, esc(m.name()));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut rows = Vec::new();
        for w in WORKLOADS {
            for (i, m) in MODES.into_iter().enumerate() {
                let fb = m.is_fusebox();
                rows.push(Row {
                    workload: w,
                    mode: m,
                    mb_per_s: 100.0 * (i + 1) as f64,
                    runs_mb_per_s: vec![100.0 * (i + 1) as f64],
                    ratio_to_native: None,
                    write_requests: fb.then_some(256),
                    avg_write_bytes: fb.then_some(1048576.0),
                    daemon_cpu_s: fb.then_some(0.5),
                    bdi_max_ratio: fb.then_some(1),
                });
            }
        }
        let mut r = Report {
            machine: Machine { kernel: "6.18".into(), cpus: 2, mem_bytes: 1 << 30, fio: "fio-3.33".into() },
            storage: "ext4 <img>".into(),
            seq_size: 256 << 20,
            rand_size: 64 << 20,
            runs: 1,
            bdi_max_ratio_requested: None,
            caches_dropped: true,
            rows,
        };
        r.compute_ratios();
        r
    }

    #[test]
    fn table_has_every_row_and_ratios() {
        let t = render_table(&sample());
        assert!(t.starts_with("workload"));
        assert_eq!(t.lines().filter(|l| l.starts_with("seq-write-4k")).count(), 4);
        let line =
            t.lines().find(|l| l.contains("passthrough-writeback") && l.starts_with("seq-read")).unwrap();
        assert!(line.contains("300.0") && line.contains("3.00x") && line.contains("1.00 MiB"), "{line}");
        let native = t.lines().find(|l| l.contains("native") && l.starts_with("rand")).unwrap();
        assert!(native.contains("1.00x") && native.contains(" - "), "{native}");
        assert!(t.contains("median of 1 run(s)"));
    }

    #[test]
    fn svg_has_one_rect_per_bar() {
        let svg = render_svg(&sample(), "fusebox <bench>");
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 12);
        assert_eq!(svg.matches("</rect>").count(), 12);
        assert!(svg.contains("fusebox &lt;bench&gt;"));
        for m in MODES {
            assert!(svg.contains(m.name()));
        }
        // Balanced tags for the elements we emit.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn json_document_shape() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["rows"].as_array().unwrap().len(), 12);
        assert_eq!(v["rows"][1]["mode"], "passthrough-writethrough");
        assert_eq!(v["rows"][0]["workload"], "seq-write-4k");
        assert_eq!(v["rows"][0]["write_requests"], serde_json::Value::Null);
    }
}
