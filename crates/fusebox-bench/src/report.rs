//! The benchmark report: statistics over runs, the plain table, markdown tables and JSON.

use super::system::Machine;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A measured quantity over the runs: median, min and max.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metric {
    /// Median (the mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest run.
    pub min: f64,
    /// Largest run.
    pub max: f64,
    /// Every run, in run order.
    pub runs: Vec<f64>,
}

impl Metric {
    /// Statistics of `runs` (None when no run has a value). A failed run is NaN: it keeps its
    /// place in `runs` (so per-round ratios pair the right runs) and is left out of the
    /// statistics.
    pub fn of(runs: Vec<f64>) -> Option<Metric> {
        let mut s: Vec<f64> = runs.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
        Some(Metric { median, min: s[0], max: s[n - 1], runs })
    }

    /// Per-run ratios `self[i] / native[i]` (same round), as statistics; runs where native is
    /// zero are left out.
    pub fn ratio_to(&self, native: &Metric) -> Option<Metric> {
        Metric::of(
            self.runs
                .iter()
                .zip(&native.runs)
                .filter(|(v, n)| v.is_finite() && n.is_finite() && **n > 0.0)
                .map(|(v, n)| v / n)
                .collect(),
        )
    }
}

/// FUSE requests a daemon handled during one job (from its control socket).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestSample {
    /// Operations the job performed (fio: io_bytes / block size; e: files).
    pub ops: u64,
    /// Requests per opcode name.
    pub by_opcode: BTreeMap<String, u64>,
}

impl RequestSample {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.by_opcode.values().sum()
    }

    /// Requests per operation.
    pub fn per_op(&self) -> f64 {
        if self.ops == 0 {
            0.0
        } else {
            self.total() as f64 / self.ops as f64
        }
    }
}

/// One opcode's share of [`Requests`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpcodeCount {
    /// Opcode name (LOOKUP, WRITE, ...).
    pub name: String,
    /// Requests.
    pub count: u64,
    /// Requests per operation.
    pub per_op: f64,
}

/// Requests per operation of a (workload, variant) cell, from the median run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Requests {
    /// Requests per operation in the median run (lower middle for an even count).
    pub per_op: f64,
    /// Every run's requests per operation.
    pub runs_per_op: Vec<f64>,
    /// Operations in the median run.
    pub ops: u64,
    /// Requests in the median run.
    pub total: u64,
    /// The median run's requests by opcode, most frequent first.
    pub by_opcode: Vec<OpcodeCount>,
}

impl Requests {
    /// Summarise the runs' samples (None when empty).
    pub fn of(samples: &[RequestSample]) -> Option<Requests> {
        let mut idx: Vec<usize> = (0..samples.len()).collect();
        idx.sort_by(|a, b| samples[*a].per_op().total_cmp(&samples[*b].per_op()));
        let m = &samples[*idx.get((samples.len().checked_sub(1)?) / 2)?];
        let mut by_opcode: Vec<OpcodeCount> = m
            .by_opcode
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(name, &count)| OpcodeCount {
                name: name.clone(),
                count,
                per_op: if m.ops == 0 { 0.0 } else { count as f64 / m.ops as f64 },
            })
            .collect();
        by_opcode.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        Some(Requests {
            per_op: m.per_op(),
            runs_per_op: samples.iter().map(RequestSample::per_op).collect(),
            ops: m.ops,
            total: m.total(),
            by_opcode,
        })
    }

    /// `LOOKUP 1, CREATE 1, FLUSH 1, RELEASE 1`: the opcodes of at least 1% of the requests.
    pub fn breakdown(&self) -> String {
        let parts: Vec<String> = self
            .by_opcode
            .iter()
            .filter(|o| o.count * 100 >= self.total)
            .map(|o| format!("{} {}", o.name, short(o.per_op)))
            .collect();
        parts.join(", ")
    }

    /// `4.0 (LOOKUP 1, CREATE 1, FLUSH 1, RELEASE 1)`.
    pub fn describe(&self) -> String {
        match self.breakdown() {
            b if b.is_empty() => req_num(self.per_op),
            b => format!("{} ({b})", req_num(self.per_op)),
        }
    }
}

/// Requests per operation: one decimal, more below 1 (writeback merges 4 KiB writes).
fn req_num(x: f64) -> String {
    if x >= 1.0 || x == 0.0 {
        format!("{x:.1}")
    } else if x >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A number with two decimals (four below 0.01) and no trailing zeros (1, 0.5, 0.33, 0.0039).
fn short(x: f64) -> String {
    let s = if x < 0.01 { format!("{x:.4}") } else { format!("{x:.2}") };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// One phase of workload e in a cell.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseCell {
    /// create, stat or unlink.
    pub phase: String,
    /// Files per second of the phase.
    pub value: Metric,
    /// Per-run ratio to native's same phase.
    pub ratio: Option<Metric>,
    /// Requests per file during the phase (fusebox variants).
    pub requests: Option<Requests>,
}

/// One (workload, variant) cell.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cell {
    /// Workload name (`a-seq-write-4k`, ...).
    pub workload: String,
    /// Variant name.
    pub variant: String,
    /// Unit of `value`: MB/s, IOPS or files/s.
    pub unit: String,
    /// The workload's main number over the runs.
    pub value: Metric,
    /// Per-run ratio to native (same round).
    pub ratio: Option<Metric>,
    /// Daemon CPU (utime + stime, all threads) during the job, seconds (FUSE variants).
    pub daemon_cpu_s: Option<Metric>,
    /// FUSE requests per operation (fusebox variants; for e over all three phases per file).
    pub requests: Option<Requests>,
    /// Workload e's phases.
    pub phases: Vec<PhaseCell>,
}

/// A variant as run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VariantInfo {
    /// Its name.
    pub name: String,
    /// `native`, `fusebox` or `peer`.
    pub kind: String,
    /// How it was mounted (empty for native).
    pub command: String,
    /// Daemon CPU over everything measured on it, seconds (FUSE variants).
    pub daemon_cpu_s: Option<f64>,
    /// Requests that arrived over io_uring during the measurements (fusebox variants).
    pub uring_requests: Option<u64>,
}

/// Sizes used, for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SizesReport {
    /// (a)'s file and the layout file of (b), (c), (f), bytes.
    pub file_bytes: u64,
    /// (d)'s file, bytes.
    pub d_bytes: u64,
    /// (c)'s io_size, bytes.
    pub c_io_bytes: u64,
    /// (f)'s io_size, bytes.
    pub f_io_bytes: u64,
    /// Runtime caps of (c), (d), (f), seconds.
    pub runtimes_s: [u32; 3],
    /// Files of (e).
    pub files: usize,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Backing storage of native, passthrough and peers.
    pub storage: String,
    /// Sizes.
    pub sizes: SizesReport,
    /// Rounds.
    pub runs: usize,
    /// `--bdi-max-ratio`, if given.
    pub bdi_max_ratio_requested: Option<u32>,
    /// Whether page caches could be dropped before each job.
    pub caches_dropped: bool,
    /// Variants in report order (native first).
    pub variants: Vec<VariantInfo>,
    /// Cells, workload-major in report order (a workload no run of a variant completed has
    /// no cell; its failures say why).
    pub cells: Vec<Cell>,
    /// Jobs that failed (a peer running out of descriptors, a daemon that died, ...).
    pub failures: Vec<Failure>,
}

/// One job that did not complete.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// Workload name.
    pub workload: String,
    /// Variant name.
    pub variant: String,
    /// Round (1-based).
    pub run: usize,
    /// What went wrong.
    pub error: String,
}

/// Failures as text lines, empty when none.
fn render_failures(r: &Report) -> String {
    let mut s = String::new();
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\nFailed jobs (left out of the statistics):");
        for f in &r.failures {
            let _ = writeln!(s, "- {} on {}, run {}: {}", f.workload, f.variant, f.run, f.error);
        }
    }
    s
}

impl Report {
    fn workloads(&self) -> Vec<&str> {
        let mut w: Vec<&str> = Vec::new();
        for c in &self.cells {
            if !w.contains(&c.workload.as_str()) {
                w.push(&c.workload);
            }
        }
        w
    }

    fn cell(&self, workload: &str, variant: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.workload == workload && c.variant == variant)
    }
}

/// A value with precision that suits its size.
fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

fn ratio(m: &Metric) -> String {
    format!("{:.2}x", m.median)
}

fn range(m: &Metric, f: fn(f64) -> String) -> String {
    format!("{}-{}", f(m.min), f(m.max))
}

fn ratio_num(x: f64) -> String {
    format!("{x:.2}")
}

/// The human-readable table.
pub fn render_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<27} {:<27} {:>10} {:<7} {:>19} {:>6} {:>11} {:>9}  req/op",
        "workload", "variant", "median", "unit", "min-max", "ratio", "ratio range", "daemon s"
    );
    for c in &r.cells {
        let _ = writeln!(
            s,
            "{:<27} {:<27} {:>10} {:<7} {:>19} {:>6} {:>11} {:>9}  {}",
            c.workload,
            c.variant,
            num(c.value.median),
            c.unit,
            range(&c.value, num),
            opt(c.ratio.as_ref(), ratio),
            opt(c.ratio.as_ref(), |m| range(m, ratio_num)),
            opt(c.daemon_cpu_s.as_ref(), |m| format!("{:.2}", m.median)),
            opt(c.requests.as_ref(), |q| req_num(q.per_op)),
        );
        for p in &c.phases {
            let _ = writeln!(
                s,
                "{:<27} {:<27} {:>10} {:<7} {:>19} {:>6} {:>11} {:>9}  {}",
                format!("  {}", p.phase),
                "",
                num(p.value.median),
                c.unit,
                range(&p.value, num),
                opt(p.ratio.as_ref(), ratio),
                opt(p.ratio.as_ref(), |m| range(m, ratio_num)),
                "",
                opt(p.requests.as_ref(), |q| format!(
                    "{} {} req/file ({})",
                    p.phase,
                    req_num(q.per_op),
                    q.breakdown()
                )),
            );
        }
    }
    let _ = writeln!(s, "\ndaemon CPU over everything measured (utime+stime, all threads):");
    for v in r.variants.iter().filter(|v| v.daemon_cpu_s.is_some()) {
        let _ = writeln!(
            s,
            "  {:<27} {:>8.2} s{}",
            v.name,
            v.daemon_cpu_s.unwrap_or(0.0),
            v.uring_requests.map(|n| format!("   ({n} requests over io_uring)")).unwrap_or_default()
        );
    }
    s += &render_failures(r);
    let _ = writeln!(s, "\n{}", footer(r));
    s
}

fn footer(r: &Report) -> String {
    let mib = |b: u64| format!("{} MiB", b >> 20);
    format!(
        "{} CPUs, kernel {}, {}; storage: {}; files {} (d {}), c io_size {}, f io_size {}, \
         runtimes c/d/f {}/{}/{} s, e {} files; median and min-max of {} run(s); bdi max_ratio: {}{}",
        r.machine.cpus,
        r.machine.kernel,
        r.machine.fio,
        r.storage,
        mib(r.sizes.file_bytes),
        mib(r.sizes.d_bytes),
        mib(r.sizes.c_io_bytes),
        mib(r.sizes.f_io_bytes),
        r.sizes.runtimes_s[0],
        r.sizes.runtimes_s[1],
        r.sizes.runtimes_s[2],
        r.sizes.files,
        r.runs,
        r.bdi_max_ratio_requested.map(|x| format!("set to {x}%")).unwrap_or_else(|| "kernel default".into()),
        if r.caches_dropped { "" } else { "; WARNING: could not drop caches" }
    )
}

fn md_row(s: &mut String, cells: &[String]) {
    let _ = writeln!(s, "| {} |", cells.join(" | "));
}

fn md_header(s: &mut String, first: &str, cols: &[&str]) {
    let mut h = vec![first.to_string()];
    h.extend(cols.iter().map(|c| c.to_string()));
    md_row(s, &h);
    let mut sep = vec!["---".to_string()];
    sep.extend(cols.iter().map(|_| "---:".to_string()));
    md_row(s, &sep);
}

/// Markdown tables ready for docs/BENCHMARKS.md: ratios to native, daemon CPU, requests/op.
pub fn render_markdown(r: &Report) -> String {
    let mut s = String::new();
    let variants: Vec<&str> = r.variants.iter().map(|v| v.name.as_str()).collect();
    let fuse: Vec<&str> = r.variants.iter().filter(|v| v.kind != "native").map(|v| v.name.as_str()).collect();
    let fusebox: Vec<&str> =
        r.variants.iter().filter(|v| v.kind == "fusebox").map(|v| v.name.as_str()).collect();
    let range_md = |m: &Metric, f: fn(f64) -> String| format!("{}–{}", f(m.min), f(m.max));

    let _ = writeln!(
        s,
        "Ratio to native, median (min–max) over {} run(s) of per-run ratios; native column: absolute.\n",
        r.runs
    );
    md_header(&mut s, "workload", &variants);
    for w in r.workloads() {
        let Some(first) = r.cells.iter().find(|c| c.workload == w) else { continue };
        let mut row = vec![format!("{w} ({})", first.unit)];
        for v in &variants {
            row.push(match r.cell(w, v) {
                None => "-".into(),
                Some(c) if c.variant == "native" => {
                    format!("{} ({})", num(c.value.median), range_md(&c.value, num))
                }
                Some(c) => {
                    opt(c.ratio.as_ref(), |m| format!("{:.2}× ({})", m.median, range_md(m, ratio_num)))
                }
            });
        }
        md_row(&mut s, &row);
        for (k, p) in first.phases.iter().enumerate() {
            let mut row = vec![format!("{w}: {} ({})", p.phase, first.unit)];
            for v in &variants {
                row.push(match r.cell(w, v).and_then(|c| c.phases.get(k).map(|p| (c, p))) {
                    None => "-".into(),
                    Some((c, p)) if c.variant == "native" => {
                        format!("{} ({})", num(p.value.median), range_md(&p.value, num))
                    }
                    Some((_, p)) => {
                        opt(p.ratio.as_ref(), |m| format!("{:.2}× ({})", m.median, range_md(m, ratio_num)))
                    }
                });
            }
            md_row(&mut s, &row);
        }
    }

    if !fuse.is_empty() {
        let _ = writeln!(s, "\nDaemon CPU (utime+stime, all threads), seconds, median over runs.\n");
        md_header(&mut s, "workload", &fuse);
        for w in r.workloads() {
            let mut row = vec![w.to_string()];
            for v in &fuse {
                row.push(opt(r.cell(w, v).and_then(|c| c.daemon_cpu_s.as_ref()), |m| {
                    format!("{:.2}", m.median)
                }));
            }
            md_row(&mut s, &row);
        }
        let mut row = vec!["whole run (sum of all jobs)".to_string()];
        for v in &fuse {
            row.push(opt(r.variants.iter().find(|x| x.name == *v).and_then(|x| x.daemon_cpu_s), |c| {
                format!("{c:.2}")
            }));
        }
        md_row(&mut s, &row);
    }

    if !fusebox.is_empty() {
        let _ = writeln!(
            s,
            "\nFUSE requests per operation (fio: per IO of the job's block size; e: per file), \
             median run, with the opcodes of at least 1% of the requests.\n"
        );
        md_header(&mut s, "workload", &fusebox);
        for w in r.workloads() {
            let Some(first) = r.cells.iter().find(|c| c.workload == w) else { continue };
            if first.phases.is_empty() {
                let mut row = vec![w.to_string()];
                for v in &fusebox {
                    row.push(opt(r.cell(w, v).and_then(|c| c.requests.as_ref()), Requests::describe));
                }
                md_row(&mut s, &row);
            }
            for (k, p) in first.phases.iter().enumerate() {
                let mut row = vec![format!("{w}: {}", p.phase)];
                for v in &fusebox {
                    row.push(opt(
                        r.cell(w, v).and_then(|c| c.phases.get(k)).and_then(|p| p.requests.as_ref()),
                        Requests::describe,
                    ));
                }
                md_row(&mut s, &row);
            }
        }
    }
    s += &render_failures(r);
    let _ = writeln!(s, "\n{}", footer(r));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let m = Metric::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((m.median, m.min, m.max), (2.0, 1.0, 3.0));
        assert_eq!(m.runs, vec![3.0, 1.0, 2.0]);
        let m = Metric::of(vec![4.0, 1.0]).unwrap();
        assert_eq!((m.median, m.min, m.max), (2.5, 1.0, 4.0));
        assert_eq!(Metric::of(vec![7.0]).unwrap().median, 7.0);
        assert!(Metric::of(vec![]).is_none());
    }

    #[test]
    fn ratios_are_per_run() {
        let v = Metric::of(vec![200.0, 90.0, 300.0]).unwrap();
        let n = Metric::of(vec![100.0, 100.0, 0.0]).unwrap();
        let r = v.ratio_to(&n).unwrap();
        // The third run is left out (native 0).
        assert_eq!(r.runs, vec![2.0, 0.9]);
        assert_eq!((r.min, r.max), (0.9, 2.0));
    }

    fn sample_req(ops: u64, pairs: &[(&str, u64)]) -> RequestSample {
        RequestSample { ops, by_opcode: pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect() }
    }

    #[test]
    fn requests_from_median_run() {
        let runs = [
            sample_req(100, &[("LOOKUP", 100), ("CREATE", 100), ("FLUSH", 100), ("RELEASE", 100)]),
            sample_req(100, &[("CREATE", 100)]),
            sample_req(100, &[("CREATE", 100), ("FLUSH", 100), ("RELEASE", 100), ("GETATTR", 0)]),
        ];
        let q = Requests::of(&runs).unwrap();
        assert_eq!((q.per_op, q.total, q.ops), (3.0, 300, 100));
        assert_eq!(q.runs_per_op, vec![4.0, 1.0, 3.0]);
        assert_eq!(q.describe(), "3.0 (CREATE 1, FLUSH 1, RELEASE 1)");
        let q = Requests::of(&[sample_req(3, &[("READ", 1), ("GETATTR", 2)])]).unwrap();
        assert_eq!(q.describe(), "1.0 (GETATTR 0.67, READ 0.33)");
        assert!(Requests::of(&[]).is_none());
        assert_eq!(sample_req(0, &[("READ", 5)]).per_op(), 0.0);
    }

    fn m(v: &[f64]) -> Metric {
        Metric::of(v.to_vec()).unwrap()
    }

    pub(crate) fn sample() -> Report {
        let variants = [("native", "native"), ("fusebox-memfs", "fusebox"), ("peer-x", "peer")];
        let mut cells = Vec::new();
        for (w, unit) in [("a-seq-write-4k", "MB/s"), ("e-create-stat-unlink", "files/s")] {
            let native = m(&[100.0, 120.0]);
            for (i, (v, kind)) in variants.iter().enumerate() {
                let value = m(&[100.0 * (i + 1) as f64, 120.0 * (i + 1) as f64]);
                let fusebox = *kind == "fusebox";
                let req = |ops, pairs: &[(&str, u64)]| {
                    fusebox.then(|| Requests::of(&[sample_req(ops, pairs)]).unwrap())
                };
                let phases = if w.starts_with('e') {
                    ["create", "stat", "unlink"]
                        .iter()
                        .map(|p| PhaseCell {
                            phase: p.to_string(),
                            value: value.clone(),
                            ratio: value.ratio_to(&native),
                            requests: req(
                                10,
                                &[("LOOKUP", 10), ("CREATE", 10), ("FLUSH", 10), ("RELEASE", 10)],
                            ),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                cells.push(Cell {
                    workload: w.into(),
                    variant: v.to_string(),
                    unit: unit.into(),
                    ratio: value.ratio_to(&native),
                    value,
                    daemon_cpu_s: (*kind != "native").then(|| m(&[0.5, 0.7])),
                    requests: req(64, &[("WRITE", 16), ("GETATTR", 1)]),
                    phases,
                });
            }
        }
        Report {
            machine: Machine { kernel: "6.18".into(), cpus: 2, mem_bytes: 1 << 30, fio: "fio-3.33".into() },
            storage: "ext4 <img>".into(),
            sizes: SizesReport {
                file_bytes: 256 << 20,
                d_bytes: 1 << 30,
                c_io_bytes: 2 << 30,
                f_io_bytes: 512 << 20,
                runtimes_s: [20, 15, 15],
                files: 20000,
            },
            runs: 2,
            bdi_max_ratio_requested: None,
            caches_dropped: true,
            variants: variants
                .iter()
                .map(|(n, k)| VariantInfo {
                    name: n.to_string(),
                    kind: k.to_string(),
                    command: String::new(),
                    daemon_cpu_s: (*k != "native").then_some(2.5),
                    uring_requests: (*k == "fusebox").then_some(0),
                })
                .collect(),
            cells,
            failures: Vec::new(),
        }
    }

    #[test]
    fn table_has_every_row_ratios_and_phases() {
        let t = render_table(&sample());
        assert!(t.starts_with("workload"));
        assert_eq!(t.lines().filter(|l| l.starts_with("a-seq-write-4k")).count(), 3);
        let line =
            t.lines().find(|l| l.starts_with("a-seq-write-4k") && l.contains("fusebox-memfs")).unwrap();
        // Runs 200 and 240 over native 100 and 120: ratio 2.00x in both runs.
        assert!(line.contains("220.0") && line.contains("200.0-240.0") && line.contains("2.00x"), "{line}");
        assert!(
            line.contains("2.00-2.00") && line.contains("0.60") && line.trim_end().ends_with("0.27"),
            "{line}"
        );
        let native = t.lines().find(|l| l.starts_with("a-seq") && l.contains("native")).unwrap();
        assert!(native.contains("1.00x") && native.trim_end().ends_with('-'), "{native}");
        assert!(t.contains("create 4.0 req/file (CREATE 1, FLUSH 1, LOOKUP 1, RELEASE 1)"), "{t}");
        assert_eq!(req_num(0.0042), "0.004");
        assert_eq!(short(0.00390625), "0.0039");
        assert_eq!(short(256.0), "256");
        assert_eq!(req_num(4.0), "4.0");
        assert_eq!(t.lines().filter(|l| l.starts_with("  stat")).count(), 3);
        assert!(t.contains("peer-x") && t.contains("2.50 s"));
        assert!(t.contains("median and min-max of 2 run(s)"));
    }

    #[test]
    fn markdown_tables() {
        let md = render_markdown(&sample());
        let tables: Vec<&str> = md.split("\n\n").filter(|b| b.starts_with('|')).collect();
        assert_eq!(tables.len(), 3, "{md}");
        // Ratios: native absolute, others ratios with ranges; e has a row per phase.
        assert!(tables[0].starts_with("| workload | native | fusebox-memfs | peer-x |"));
        assert!(tables[0].contains(
            "| a-seq-write-4k (MB/s) | 110.0 (100.0–120.0) | 2.00× (2.00–2.00) | 3.00× (3.00–3.00) |"
        ));
        assert!(tables[0].contains("| e-create-stat-unlink: unlink (files/s) |"));
        // Daemon CPU: FUSE variants only, plus the whole-run row.
        assert!(tables[1].starts_with("| workload | fusebox-memfs | peer-x |"));
        assert!(tables[1].contains("| whole run (sum of all jobs) | 2.50 | 2.50 |"));
        // Requests: fusebox variants only; e by phase.
        assert!(tables[2].starts_with("| workload | fusebox-memfs |"));
        assert!(tables[2].contains("| a-seq-write-4k | 0.27 (WRITE 0.25, GETATTR 0.02) |"), "{}", tables[2]);
        assert!(tables[2]
            .contains("| e-create-stat-unlink: create | 4.0 (CREATE 1, FLUSH 1, LOOKUP 1, RELEASE 1) |"));
        for t in tables {
            let cols: Vec<usize> = t.lines().map(|l| l.matches('|').count()).collect();
            assert!(cols.iter().all(|c| *c == cols[0]), "ragged table {t}");
        }
    }

    #[test]
    fn json_document_shape() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["cells"].as_array().unwrap().len(), 6);
        assert_eq!(v["cells"][1]["variant"], "fusebox-memfs");
        assert_eq!(v["cells"][1]["ratio"]["median"], 2.0);
        assert_eq!(v["cells"][1]["requests"]["by_opcode"][0]["name"], "WRITE");
        assert_eq!(v["cells"][0]["requests"], serde_json::Value::Null);
        assert_eq!(v["cells"][4]["phases"][0]["phase"], "create");
        assert_eq!(v["variants"][2]["kind"], "peer");
    }

    #[test]
    fn failed_runs_keep_their_place_and_are_listed() {
        // Run 2 of the variant failed: stats over runs 1 and 3, ratios pair the same rounds.
        let v = Metric::of(vec![10.0, f64::NAN, 30.0]).unwrap();
        assert_eq!((v.median, v.min, v.max), (20.0, 10.0, 30.0));
        let native = Metric::of(vec![10.0, 10.0, 10.0]).unwrap();
        assert_eq!(v.ratio_to(&native).unwrap().runs, vec![1.0, 3.0]);
        assert!(Metric::of(vec![f64::NAN]).is_none());
        let mut r = sample();
        r.failures.push(Failure {
            workload: "e-create-stat-unlink".into(),
            variant: "libfuse-x".into(),
            run: 1,
            error: "create f1: Too many open files (os error 24)".into(),
        });
        for text in [render_table(&r), render_markdown(&r)] {
            assert!(
                text.contains("- e-create-stat-unlink on libfuse-x, run 1: create f1: Too many open files"),
                "{text}"
            );
        }
        assert!(render_failures(&sample()).is_empty());
    }
}
