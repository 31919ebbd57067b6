//! The harness behind `fusebox bench`: six workloads (fio a-d, f and a create/stat/unlink loop e) on native,
//! fusebox variants and external peers, side by side in one run on the same backing storage.
//!
//! Every variant is mounted once at the start. Each round then runs every workload on every
//! variant in turn, so drift over time hits all variants alike; ratios to native are taken per
//! round. Daemon CPU comes from `/proc/PID/stat`, FUSE requests from fusebox's control socket.
//!
//! Runs inside the `fusebox` binary: fusebox variants are mounted by starting that binary
//! again (`std::env::current_exe`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod chart;
pub mod fio;
pub mod meta;
pub mod options;
pub mod progress;
pub mod report;
pub mod storage;
pub mod system;
pub mod tool;

use anyhow::{bail, Context, Result};
use options::{BenchOptions, Builtin, Workload};
use report::{Cell, Failure, Metric, PhaseCell, Report, RequestSample, Requests, SizesReport, VariantInfo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use system::Guard;

/// What serves a variant.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Native,
    Fusebox(Builtin),
    Peer,
}

/// A mounted (or native) variant.
struct Variant {
    name: String,
    kind: Kind,
    /// Where the workloads run.
    dir: PathBuf,
    /// The daemon's pid (FUSE variants).
    pid: Option<u32>,
    /// How it was started.
    command: String,
}

impl Variant {
    fn is_fusebox(&self) -> bool {
        matches!(self.kind, Kind::Fusebox(_))
    }
}

/// Everything measured for one (workload, variant) over the rounds.
#[derive(Default)]
struct Samples {
    values: Vec<f64>,
    cpu: Vec<f64>,
    requests: Vec<RequestSample>,
    phases: [Vec<f64>; 3],
    phase_requests: [Vec<RequestSample>; 3],
}

fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted; cleaned up");
    }
    Ok(())
}

/// A fusebox daemon's request counters once nothing is in flight and two readings 30 ms apart
/// agree (asynchronous RELEASE/FORGET of a job are counted with that job), at most 3 s.
fn settled_counts(mnt: &Path) -> Result<(BTreeMap<String, u64>, u64)> {
    let read = || -> Result<(BTreeMap<String, u64>, u64, u64)> {
        let r = fusebox::session::query_status(mnt).with_context(|| format!("querying {}", mnt.display()))?;
        let ops = r.stats.ops.iter().map(|o| (o.name.clone(), o.count)).collect();
        Ok((ops, r.stats.uring_requests, r.stats.in_flight_sync + r.stats.in_flight_background))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut prev = read()?;
    loop {
        std::thread::sleep(Duration::from_millis(30));
        let cur = read()?;
        if (cur.0 == prev.0 && cur.2 == 0) || Instant::now() > deadline {
            return Ok((cur.0, cur.1));
        }
        prev = cur;
    }
}

/// Requests between two counter readings.
fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, ops: u64) -> RequestSample {
    let by_opcode = after
        .iter()
        .map(|(name, c)| (name.clone(), c.saturating_sub(before.get(name).copied().unwrap_or(0))))
        .filter(|(_, c)| *c > 0)
        .collect();
    RequestSample { ops, by_opcode }
}

/// The daemon's CPU seconds once its work from the job is done (fusebox: counters settled;
/// peers: after a 100 ms pause).
fn daemon_cpu(v: &Variant, counts: &mut Option<(BTreeMap<String, u64>, u64)>) -> Result<Option<f64>> {
    if v.is_fusebox() {
        *counts = Some(settled_counts(&v.dir)?);
    } else if v.pid.is_some() {
        std::thread::sleep(Duration::from_millis(100));
    }
    v.pid.map(system::cpu_seconds).transpose()
}

/// Run one fio workload on one variant; records into `s`.
fn run_fio(fio_bin: &Path, w: Workload, v: &Variant, o: &BenchOptions, s: &mut Samples) -> Result<String> {
    let file = v.dir.join(fio::file_name(w));
    if fio::writes_fresh_file(w) {
        let _ = std::fs::remove_file(&file);
    }
    // Dropping caches makes the kernel FORGET inodes: settle before the first reading.
    let dropped = system::drop_caches();
    let mut before = None;
    let cpu0 = daemon_cpu(v, &mut before)?;
    let out = fio::run(fio_bin, &fio::measured_args(w, &v.dir, &o.sizes).expect("fio workload"));
    let mut after = None;
    let cpu1 = daemon_cpu(v, &mut after)?;
    if fio::writes_fresh_file(w) {
        let _ = std::fs::remove_file(&file);
    }
    let res = fio::parse_json(&out?, matches!(w, Workload::A | Workload::D))?;
    let value = match w.unit() {
        options::Unit::Iops => res.iops,
        _ => res.bw_bytes / 1e6,
    };
    s.values.push(value);
    let mut line = format!("{:.1} {}", value, w.unit().label());
    if let Some((c0, c1)) = cpu0.zip(cpu1) {
        s.cpu.push(c1 - c0);
        line += &format!(", daemon CPU {:.2} s", c1 - c0);
    }
    if let Some(((b, _), (a, _))) = before.zip(after) {
        let r = diff(&b, &a, res.io_bytes / fio::block_size(w));
        line += &format!(", {:.2} req/IO", r.per_op());
        s.requests.push(r);
    }
    if !dropped {
        line += " (caches not dropped)";
    }
    Ok(line)
}

/// Run workload e on one variant; records into `s`.
fn run_meta(v: &Variant, o: &BenchOptions, stop: &AtomicBool, s: &mut Samples) -> Result<String> {
    let n = o.sizes.files;
    let mut snaps: Vec<BTreeMap<String, u64>> = Vec::new();
    let mut cpu = Vec::new();
    system::drop_caches();
    let secs = meta::run(&v.dir, n, stop, |k| {
        let mut counts = None;
        // CPU around the three phases: before create and after unlink.
        let c = if k == 0 || k == meta::PHASES.len() {
            daemon_cpu(v, &mut counts)?
        } else {
            if v.is_fusebox() {
                counts = Some(settled_counts(&v.dir)?);
            }
            None
        };
        cpu.extend(c);
        snaps.extend(counts.map(|c| c.0));
        Ok(())
    })?;
    let total: f64 = secs.iter().sum();
    let value = n as f64 / total;
    s.values.push(value);
    let mut line = format!("{value:.0} files/s (");
    for (k, sec) in secs.iter().enumerate() {
        s.phases[k].push(n as f64 / sec);
        line += &format!("{}{} {:.0}", if k > 0 { ", " } else { "" }, meta::PHASES[k], n as f64 / sec);
    }
    line += ")";
    if let [c0, c1] = cpu[..] {
        s.cpu.push(c1 - c0);
        line += &format!(", daemon CPU {:.2} s", c1 - c0);
    }
    if snaps.len() == 4 {
        for k in 0..3 {
            let r = diff(&snaps[k], &snaps[k + 1], n as u64);
            line += &format!(", {} {:.1} req/file", meta::PHASES[k], r.per_op());
            s.phase_requests[k].push(r);
        }
        s.requests.push(diff(&snaps[0], &snaps[3], n as u64));
    }
    Ok(line)
}

/// Mount the built-in `b` (not native) at `mnt`; returns the variant.
fn mount_builtin(
    guard: &mut Guard, b: Builtin, backing: &Path, mnt: &Path, o: &BenchOptions,
) -> Result<(Variant, String)> {
    let pid = std::process::id();
    let uring = if b.uses_uring() { ",io_uring" } else { "" };
    let (args, opts): (Vec<String>, String) = match b {
        Builtin::Memfs | Builtin::MemfsUring => {
            (vec!["memfs".into()], format!("size={}{uring}", o.memfs_size()))
        }
        _ => {
            let src = backing.join(format!("fusebox-bench-src-{}-{pid}", b.name()));
            guard.make_dir(&src)?;
            let src = src.to_str().context("source path is not UTF-8")?.to_string();
            let wt = match b {
                Builtin::PassthroughWt => ",no_writeback,kernel_passthrough=off",
                Builtin::PassthroughWb => ",writeback",
                _ => "",
            };
            (vec!["passthrough".into(), src], format!("{}{wt}", uring.trim_start_matches(',')))
        }
    };
    let opts = if opts.is_empty() { "rw".to_string() } else { opts };
    let cmdline = format!("fusebox mount {} {} -o {opts} -f", args.join(" "), mnt.display());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = guard.mount_fusebox(b.name(), &argv, mnt, &opts)?;
    let v = Variant {
        name: b.name().into(),
        kind: Kind::Fusebox(b),
        dir: mnt.to_path_buf(),
        pid: Some(d.pid()),
        command: cmdline,
    };
    Ok((v, d.dev.clone()))
}

/// Run the benchmark and print its report.
pub fn run(o: &BenchOptions) -> Result<()> {
    let progress = progress::Progress::on_stderr();
    let fio_bin = fio::find_fio()?;
    if fusebox::sys::geteuid() != 0 {
        bail!("fusebox bench needs root (mounting, loop devices, dropping caches)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let mut guard = Guard::new()?;
    let mut builtins = o.builtins.clone();
    if builtins.iter().any(|b| b.uses_uring()) {
        if let Err(e) = guard.enable_uring() {
            if o.variants_explicit {
                return Err(e.context("the io_uring variants need FUSE over io_uring"));
            }
            progress.line(&format!("[skip] io_uring variants: {e:#}"));
            builtins.retain(|b| !b.uses_uring());
        } else {
            progress.line(&format!("[setup] {} = Y for the run (restored at the end)", system::URING_PARAM));
        }
    }
    let pid = std::process::id();
    let (backing, storage) = match &o.dir {
        Some(d) => {
            let d = d.canonicalize().with_context(|| format!("--dir {}", d.display()))?;
            let desc = format!("{} ({})", d.display(), system::describe_fs(&d));
            (d, desc)
        }
        None => {
            let size = o.image_size.unwrap_or_else(|| o.default_image_size());
            progress.line(&format!(
                "[setup] ext4 image of {} MiB in {} on a direct-IO loop device",
                size >> 20,
                o.image_dir.display()
            ));
            let m = guard.setup_loop(&o.image_dir, size)?;
            let desc = format!(
                "ext4 on {} (losetup --direct-io=on, sparse {} MiB image in {} on {})",
                guard.backing.as_ref().map_or("?", |l| l.device.as_str()),
                size >> 20,
                o.image_dir.display(),
                system::describe_fs(&o.image_dir)
            );
            (m, desc)
        }
    };
    let machine = system::machine(&fio_bin);

    // Mount every variant once.
    let mut variants: Vec<Variant> = Vec::new();
    let mut devs: Vec<String> = Vec::new();
    for &b in &builtins {
        check_stop(&stop)?;
        if b == Builtin::Native {
            let dir = backing.join(format!("fusebox-bench-native-{pid}"));
            guard.make_dir(&dir)?;
            variants.push(Variant {
                name: b.name().into(),
                kind: Kind::Native,
                dir,
                pid: None,
                command: String::new(),
            });
            continue;
        }
        let mnt = guard.tmp().join(format!("mnt-{}", b.name()));
        let (v, dev) = mount_builtin(&mut guard, b, &backing, &mnt, o)?;
        progress.line(&format!("[mount] {}: {} (pid {})", v.name, v.command, v.pid.unwrap_or(0)));
        variants.push(v);
        devs.push(dev);
    }
    for p in &o.peers {
        check_stop(&stop)?;
        let src = backing.join(format!("fusebox-bench-src-{}-{pid}", p.name));
        guard.make_dir(&src)?;
        let mnt = guard.tmp().join(format!("mnt-{}", p.name));
        let line = system::peer_command_line(&p.command, &src, &mnt);
        let d = guard.mount_peer(&p.name, &p.command, &src, &mnt)?;
        progress.line(&format!("[mount] {}: {line} (pid {})", p.name, d.pid()));
        devs.push(d.dev.clone());
        variants.push(Variant {
            name: p.name.clone(),
            kind: Kind::Peer,
            dir: mnt,
            pid: Some(d.pid()),
            command: line,
        });
    }
    if let Some(pct) = o.bdi_max_ratio {
        for dev in devs.iter().filter(|d| !d.is_empty()) {
            system::set_bdi_max_ratio(dev, pct)?;
        }
    }
    // Lay out the file read by b, c and f (not measured).
    if o.workloads.iter().any(|w| w.reads_layout()) {
        for v in &variants {
            check_stop(&stop)?;
            progress.line(&format!("[layout] {}: {} MiB {}", v.name, o.sizes.file >> 20, fio::LAYOUT_FILE));
            fio::run(&fio_bin, &fio::layout_args(&v.dir, &o.sizes))
                .with_context(|| format!("laying out the read file on {}", v.name))?;
        }
    }
    // An io_uring variant that fell back to /dev/fuse would measure the wrong thing.
    let mut uring_start = BTreeMap::new();
    for v in variants.iter().filter(|v| matches!(v.kind, Kind::Fusebox(b) if b.uses_uring())) {
        let probe = v.dir.join("uring-probe");
        std::fs::write(&probe, b"x").with_context(|| format!("writing {}", probe.display()))?;
        std::fs::remove_file(&probe)?;
        let (_, n) = settled_counts(&v.dir)?;
        if n == 0 {
            bail!("{}: no request arrived over io_uring (the daemon fell back to /dev/fuse)", v.name);
        }
        uring_start.insert(v.name.clone(), n);
    }

    // Rounds: every workload on every variant in turn.
    let mut samples: BTreeMap<(usize, usize), Samples> = BTreeMap::new();
    let total = o.runs * o.workloads.len() * variants.len();
    progress.set_total(total);
    let mut step = 0;
    let mut caches_dropped = true;
    let mut failures = Vec::new();
    for run in 1..=o.runs {
        for (wi, &w) in o.workloads.iter().enumerate() {
            for (vi, v) in variants.iter().enumerate() {
                check_stop(&stop)?;
                step += 1;
                let label = format!("[{step}/{total}] run {run}/{}: {} on {}", o.runs, w.name(), v.name);
                progress.start_job(&label);
                let s = samples.entry((wi, vi)).or_default();
                let line = match w {
                    Workload::E => run_meta(v, o, &stop, s),
                    _ => run_fio(&fio_bin, w, v, o, s),
                };
                match line {
                    Ok(line) => {
                        caches_dropped &= !line.contains("caches not dropped");
                        progress.finish_job(&label, &line);
                    }
                    Err(e) => {
                        // Recorded, and the run goes on: one variant failing a workload (a peer
                        // out of descriptors, a dead daemon) must not throw away the others.
                        check_stop(&stop)?;
                        let error = format!("{e:#}");
                        progress.finish_job(&label, &format!("FAILED: {error}"));
                        s.values.push(f64::NAN);
                        if w == Workload::E {
                            s.phases.iter_mut().for_each(|p| p.push(f64::NAN));
                        }
                        failures.push(Failure {
                            workload: w.name().into(),
                            variant: v.name.clone(),
                            run,
                            error,
                        });
                    }
                }
            }
        }
    }
    check_stop(&stop)?;
    let mut uring_end = BTreeMap::new();
    for name in uring_start.keys() {
        let v = variants.iter().find(|v| &v.name == name).expect("variant");
        uring_end.insert(name.clone(), settled_counts(&v.dir)?.1);
    }
    drop(guard);

    // The report.
    let mut cells = Vec::new();
    for (wi, &w) in o.workloads.iter().enumerate() {
        let native = &samples[&(wi, 0)];
        let native_value = Metric::of(native.values.clone());
        let native_phases: Vec<Option<Metric>> =
            native.phases.iter().map(|p| Metric::of(p.clone())).collect();
        for (vi, v) in variants.iter().enumerate() {
            let s = &samples[&(wi, vi)];
            // Every run failed: no cell (the failures say why).
            let Some(value) = Metric::of(s.values.clone()) else { continue };
            let ratio = native_value.as_ref().and_then(|n| value.ratio_to(n));
            let phases = if w == Workload::E {
                (0..3)
                    .map(|k| {
                        // A run with a total has all three phases.
                        let value = Metric::of(s.phases[k].clone()).context("no phase samples")?;
                        Ok(PhaseCell {
                            phase: meta::PHASES[k].into(),
                            ratio: native_phases[k].as_ref().and_then(|n| value.ratio_to(n)),
                            value,
                            requests: Requests::of(&s.phase_requests[k]),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            } else {
                Vec::new()
            };
            cells.push(Cell {
                workload: w.name().into(),
                variant: v.name.clone(),
                unit: w.unit().label().into(),
                value,
                ratio,
                daemon_cpu_s: Metric::of(s.cpu.clone()),
                requests: Requests::of(&s.requests),
                phases,
            });
        }
    }
    let variants_info = variants
        .iter()
        .enumerate()
        .map(|(vi, v)| {
            let cpu: Vec<f64> = samples
                .iter()
                .filter(|((_, i), _)| *i == vi)
                .flat_map(|(_, s)| s.cpu.iter().copied())
                .collect();
            VariantInfo {
                name: v.name.clone(),
                kind: match v.kind {
                    Kind::Native => "native",
                    Kind::Fusebox(_) => "fusebox",
                    Kind::Peer => "peer",
                }
                .into(),
                command: v.command.clone(),
                daemon_cpu_s: v.pid.map(|_| cpu.iter().sum()),
                uring_requests: uring_end.get(&v.name).map(|e| e - uring_start[&v.name]),
            }
        })
        .collect();
    let report = Report {
        machine,
        storage,
        sizes: SizesReport {
            file_bytes: o.sizes.file,
            d_bytes: o.sizes.d_size,
            c_io_bytes: o.sizes.c_io,
            f_io_bytes: o.sizes.f_io,
            runtimes_s: [o.sizes.c_runtime, o.sizes.d_runtime, o.sizes.f_runtime],
            files: o.sizes.files,
        },
        runs: o.runs,
        bdi_max_ratio_requested: o.bdi_max_ratio,
        caches_dropped,
        variants: variants_info,
        cells,
        failures,
    };
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if o.markdown {
        print!("{}", report::render_markdown(&report));
    } else {
        print!("{}", report::render_table(&report));
    }
    if !o.plots.is_empty() {
        let bars = chart::Bars::from_report(&report);
        for path in &o.plots {
            chart::draw(&bars, path)?;
            progress.line(&format!("[plot] {}", path.display()));
        }
    }
    // Peers may fail where fusebox does not (that is a finding, reported above); a failure of
    // native or of a fusebox variant makes the run fail.
    let own: Vec<_> = report
        .failures
        .iter()
        .filter(|f| variants.iter().any(|v| v.name == f.variant && !matches!(v.kind, Kind::Peer)))
        .collect();
    if !own.is_empty() {
        bail!("{} job(s) of native or fusebox variants failed (listed above)", own.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_diff() {
        let m = |p: &[(&str, u64)]| p.iter().map(|(n, c)| (n.to_string(), *c)).collect::<BTreeMap<_, _>>();
        let d =
            diff(&m(&[("LOOKUP", 5), ("WRITE", 10)]), &m(&[("LOOKUP", 5), ("WRITE", 18), ("FLUSH", 2)]), 4);
        assert_eq!(d.by_opcode, m(&[("WRITE", 8), ("FLUSH", 2)]));
        assert_eq!(d.per_op(), 2.5);
    }
}
