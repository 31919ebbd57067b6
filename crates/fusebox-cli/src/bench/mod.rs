//! `fusebox bench`: fio against native, passthrough (write-through and writeback) and memfs,
//! side by side in one run on the same backing storage.

pub mod fio;
pub mod options;
pub mod report;
pub mod system;

use anyhow::{bail, Context, Result};
use options::{BenchOptions, Mode, Workload, MODES};
use report::{Report, Row};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use system::Guard;

/// Bytes of headers in a WRITE request (fuse_in_header 40 + fuse_write_in 40).
const WRITE_HEADER_BYTES: u64 = 80;

/// One measured fio run.
#[derive(Debug, Clone)]
struct Sample {
    mb_per_s: f64,
    write_requests: Option<u64>,
    avg_write_bytes: Option<f64>,
    daemon_cpu_s: Option<f64>,
}

/// WRITE (count, bytes_in) of a mount, from its control socket.
fn write_counters(mnt: &Path) -> Result<(u64, u64)> {
    let r = fusebox::session::query_status(mnt).with_context(|| format!("querying {}", mnt.display()))?;
    Ok(r.stats.ops.iter().find(|o| o.name == "WRITE").map(|o| (o.count, o.bytes_in)).unwrap_or((0, 0)))
}

/// Pick the median sample by throughput (the lower middle one for an even count).
fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by(|a, b| a.mb_per_s.total_cmp(&b.mb_per_s));
    samples[(samples.len() - 1) / 2].clone()
}

/// A mode's working directory and, for fusebox modes, its daemon pid and BDI ratio.
struct Target {
    dir: PathBuf,
    pid: Option<u32>,
    bdi_max_ratio: Option<u32>,
}

fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted; cleaned up");
    }
    Ok(())
}

/// Run the benchmark and print its report.
pub fn run(o: &BenchOptions) -> Result<()> {
    let fio_bin = fio::find_fio()?;
    if fusebox::sys::geteuid() != 0 {
        bail!("fusebox bench needs root (mounting, loop devices, dropping caches)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let mut guard = Guard::new()?;
    let pid = std::process::id();
    let (backing, storage) = match &o.dir {
        Some(d) => {
            let d = d.canonicalize().with_context(|| format!("--dir {}", d.display()))?;
            let desc = format!("{} ({})", d.display(), system::describe_fs(&d));
            (d, desc)
        }
        None => {
            eprintln!(
                "[setup] ext4 image of {} MiB in {} on a direct-IO loop device",
                o.image_size >> 20,
                o.image_dir.display()
            );
            let m = guard.setup_loop(&o.image_dir, o.image_size)?;
            let desc = format!(
                "ext4 on {} (losetup --direct-io=on, sparse {} MiB image in {} on {})",
                guard.loopdev.as_deref().unwrap_or("?"),
                o.image_size >> 20,
                o.image_dir.display(),
                system::describe_fs(&o.image_dir)
            );
            (m, desc)
        }
    };
    let native_dir = backing.join(format!("fusebox-bench-native-{pid}"));
    let src_dir = backing.join(format!("fusebox-bench-src-{pid}"));
    for d in [&native_dir, &src_dir] {
        std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        guard.made_dirs.push(d.clone());
    }
    let memfs_size = o.seq_size.max(o.rand_size) * 2 + (64 << 20);
    let machine = system::machine(&fio_bin);
    let total = MODES.len() * o.workloads.len() * o.runs;
    let mut step = 0;
    let mut caches_dropped = true;
    let mut rows = Vec::new();
    for mode in MODES {
        check_stop(&stop)?;
        let target = match mode {
            Mode::Native => Target { dir: native_dir.clone(), pid: None, bdi_max_ratio: None },
            _ => {
                let mnt = guard.tmp().join(format!("mnt-{}", mode.name()));
                let src = src_dir.to_str().context("source path is not UTF-8")?.to_string();
                let (fs_args, opts): (Vec<&str>, String) = match mode {
                    Mode::PassthroughWt => (vec!["passthrough", &src], "no_writeback".into()),
                    Mode::PassthroughWb => (vec!["passthrough", &src], "writeback".into()),
                    _ => (vec!["memfs"], format!("writeback,size={memfs_size}")),
                };
                eprintln!(
                    "[mount] {}: fusebox mount {} {} -o {opts} -f",
                    mode.name(),
                    fs_args.join(" "),
                    mnt.display()
                );
                let d = guard.mount(&fs_args, &mnt, &opts)?;
                let (dev, dpid) = (d.dev.clone(), d.pid());
                if let Some(pct) = o.bdi_max_ratio {
                    system::set_bdi_max_ratio(&dev, pct)?;
                }
                let ratio = system::bdi_max_ratio(&dev);
                eprintln!(
                    "[mount] {} live: daemon pid {dpid}, bdi {dev} max_ratio {}",
                    mode.name(),
                    ratio.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
                );
                Target { dir: mnt, pid: Some(dpid), bdi_max_ratio: ratio }
            }
        };
        for &w in &o.workloads {
            let file = target.dir.join(fio::file_name(w));
            let mut samples = Vec::new();
            for run in 0..o.runs {
                check_stop(&stop)?;
                step += 1;
                eprint!("[{step}/{total}] {}: {} run {}/{} ... ", mode.name(), w.name(), run + 1, o.runs);
                if w == Workload::SeqRead {
                    if run == 0 {
                        let _ = std::fs::remove_file(&file);
                        if let Some(a) = fio::setup_args(w, &target.dir, o.seq_size) {
                            fio::run(&fio_bin, &a).context("laying out the read file")?;
                        }
                    }
                } else {
                    let _ = std::fs::remove_file(&file);
                }
                caches_dropped &= system::drop_caches();
                let before_w = match mode.is_fusebox() {
                    true => Some(write_counters(&target.dir)?),
                    false => None,
                };
                let before_cpu = target.pid.map(system::cpu_seconds).transpose()?;
                let out = fio::run(&fio_bin, &fio::measured_args(w, &target.dir, o.seq_size, o.rand_size));
                let after_cpu = target.pid.map(system::cpu_seconds).transpose()?;
                check_stop(&stop)?;
                let res = fio::parse_json(&out?, w != Workload::SeqRead)?;
                let mut s = Sample {
                    mb_per_s: res.bw_bytes / 1e6,
                    write_requests: None,
                    avg_write_bytes: None,
                    daemon_cpu_s: before_cpu.zip(after_cpu).map(|(b, a)| ((a - b) * 1000.0).round() / 1000.0),
                };
                if let Some((c0, b0)) = before_w {
                    let (c1, b1) = write_counters(&target.dir)?;
                    let n = c1.saturating_sub(c0);
                    s.write_requests = Some(n);
                    s.avg_write_bytes = (n > 0).then(|| {
                        b1.saturating_sub(b0).saturating_sub(n * WRITE_HEADER_BYTES) as f64 / n as f64
                    });
                }
                eprintln!(
                    "{:.1} MB/s{}{}",
                    s.mb_per_s,
                    s.write_requests.map(|n| format!(", {n} WRITEs")).unwrap_or_default(),
                    s.daemon_cpu_s.map(|c| format!(", daemon CPU {c:.2} s")).unwrap_or_default()
                );
                samples.push(s);
            }
            let _ = std::fs::remove_file(&file);
            let runs_mb_per_s = samples.iter().map(|s| s.mb_per_s).collect();
            let m = median(samples);
            rows.push(Row {
                workload: w,
                mode,
                mb_per_s: m.mb_per_s,
                runs_mb_per_s,
                ratio_to_native: None,
                write_requests: m.write_requests,
                avg_write_bytes: m.avg_write_bytes,
                daemon_cpu_s: m.daemon_cpu_s,
                bdi_max_ratio: target.bdi_max_ratio,
            });
        }
        if mode.is_fusebox() {
            guard.unmount_last()?;
        }
    }
    drop(guard);
    // Group rows by workload for the report.
    rows.sort_by_key(|r| {
        (options::WORKLOADS.iter().position(|w| *w == r.workload), MODES.iter().position(|m| *m == r.mode))
    });
    let mut report = Report {
        machine,
        storage,
        seq_size: o.seq_size,
        rand_size: o.rand_size,
        runs: o.runs,
        bdi_max_ratio_requested: o.bdi_max_ratio,
        caches_dropped,
        rows,
    };
    report.compute_ratios();
    if let Some(p) = &o.plot {
        let title = format!(
            "fusebox bench: fio psync, {} MiB sequential / {} MiB random, {} CPUs, Linux {}",
            o.seq_size >> 20,
            o.rand_size >> 20,
            report.machine.cpus,
            report.machine.kernel
        );
        std::fs::write(p, report::render_svg(&report, &title))
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("[plot] wrote {}", p.display());
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render_table(&report));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_picks_middle_sample() {
        let s = |mb: f64| Sample {
            mb_per_s: mb,
            write_requests: Some(mb as u64),
            avg_write_bytes: None,
            daemon_cpu_s: None,
        };
        assert_eq!(median(vec![s(3.0), s(1.0), s(2.0)]).write_requests, Some(2));
        assert_eq!(median(vec![s(4.0), s(1.0)]).write_requests, Some(1));
        assert_eq!(median(vec![s(7.0)]).mb_per_s, 7.0);
    }
}
