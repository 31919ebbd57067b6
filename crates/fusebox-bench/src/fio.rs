//! fio command lines of workloads a, b, c, d and f, running fio and reading its JSON output.

use super::options::{Sizes, Workload};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Find `fio` on PATH.
pub fn find_fio() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("fio");
        if let Ok(m) = std::fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    bail!("fio not found: install it (apt-get install fio)")
}

/// The file read by (b), (c) and (f), laid out once per variant before the measurements.
pub const LAYOUT_FILE: &str = "layout.dat";

/// The file a fio workload uses inside a variant's directory.
pub fn file_name(w: Workload) -> &'static str {
    match w {
        Workload::A => "a-seq-write.dat",
        Workload::D => "d-direct-write.dat",
        _ => LAYOUT_FILE,
    }
}

/// True if the workload writes a fresh file (removed before and after its job).
pub fn writes_fresh_file(w: Workload) -> bool {
    matches!(w, Workload::A | Workload::D)
}

/// Block size of a fio workload, bytes (IOs issued = io_bytes / block size).
pub fn block_size(w: Workload) -> u64 {
    match w {
        Workload::B => 1 << 20,
        Workload::D => 64 << 10,
        _ => 4 << 10,
    }
}

fn common(name: &str, dir: &Path, file: &str) -> Vec<String> {
    vec![
        format!("--name={name}"),
        format!("--directory={}", dir.display()),
        format!("--filename={file}"),
        "--output-format=json".into(),
    ]
}

/// fio arguments of the measured job of `w` in `dir` (None for workload e, which is not fio).
pub fn measured_args(w: Workload, dir: &Path, s: &Sizes) -> Option<Vec<String>> {
    let mut a = common(w.name(), dir, file_name(w));
    // Each job: its fixed options, then its sizes.
    let (fixed, sizes) = match w {
        Workload::A => ("--ioengine=psync --rw=write --bs=4k --end_fsync=1", format!("--size={}", s.file)),
        Workload::B => ("--ioengine=psync --rw=read --bs=1M", format!("--size={}", s.file)),
        Workload::C => (
            "--direct=1 --ioengine=io_uring --iodepth=32 --rw=randread --bs=4k",
            format!("--size={} --io_size={} --runtime={}", s.file, s.c_io, s.c_runtime),
        ),
        Workload::D => (
            "--direct=1 --ioengine=vsync --iodepth=16 --iodepth_batch_submit=16 \
             --iodepth_batch_complete_min=16 --bs=64k --rw=write",
            format!("--size={} --runtime={}", s.d_size, s.d_runtime),
        ),
        Workload::F => (
            "--direct=1 --ioengine=psync --numjobs=4 --rw=randread --bs=4k --group_reporting",
            format!("--size={} --io_size={} --runtime={}", s.file, s.f_io, s.f_runtime),
        ),
        Workload::E => return None,
    };
    let extra = fixed.split_whitespace().map(String::from).chain(sizes.split_whitespace().map(String::from));
    a.extend(extra);
    Some(a)
}

/// fio arguments that lay out the file read by (b), (c) and (f) (not measured).
pub fn layout_args(dir: &Path, s: &Sizes) -> Vec<String> {
    let mut a = common("layout", dir, LAYOUT_FILE);
    a.extend([
        "--ioengine=psync".into(),
        "--rw=write".into(),
        "--bs=1M".into(),
        format!("--size={}", s.file),
        "--end_fsync=1".into(),
    ]);
    a
}

/// What we take from one fio run (the job's main direction; with `--group_reporting` the
/// aggregate of all jobs).
#[derive(Debug, Clone, PartialEq)]
pub struct FioResult {
    /// Bytes per second.
    pub bw_bytes: f64,
    /// IOs per second.
    pub iops: f64,
    /// Bytes moved.
    pub io_bytes: u64,
    /// Job runtime, milliseconds.
    pub runtime_ms: u64,
}

/// Parse fio's `--output-format=json` output; `write` picks the write or read direction.
/// Leading non-JSON lines (fio warnings) are skipped.
pub fn parse_json(out: &str, write: bool) -> Result<FioResult> {
    let start = out.find('{').context("fio printed no JSON")?;
    let v: serde_json::Value = serde_json::from_str(&out[start..]).context("parsing fio's JSON output")?;
    let job = v.get("jobs").and_then(|j| j.get(0)).context("fio JSON has no jobs[0]")?;
    if let Some(err) = job.get("error").and_then(|e| e.as_i64()).filter(|e| *e != 0) {
        bail!("fio job failed with error {err}");
    }
    let dir = job.get(if write { "write" } else { "read" }).context("fio JSON job lacks read/write")?;
    let num = |k: &str| dir.get(k).and_then(|x| x.as_f64()).with_context(|| format!("fio JSON lacks {k}"));
    Ok(FioResult {
        bw_bytes: num("bw_bytes")?,
        iops: num("iops")?,
        io_bytes: num("io_bytes")? as u64,
        runtime_ms: num("runtime")? as u64,
    })
}

/// Run fio with `args`; returns its stdout.
pub fn run(fio: &Path, args: &[String]) -> Result<String> {
    let out = Command::new(fio).args(args).output().context("running fio")?;
    if !out.status.success() {
        bail!(
            "fio {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from `fio --name=seq-write --rw=write --bs=4k --size=1M --ioengine=psync
    /// --end_fsync=1 --output-format=json` (fio-3.33).
    const SAMPLE: &str = include_str!("fio-sample.json");

    #[test]
    fn parses_captured_output() {
        let r = parse_json(SAMPLE, true).unwrap();
        assert_eq!(r.bw_bytes, 34952533.0);
        assert_eq!(r.iops, 8533.333333);
        assert_eq!(r.io_bytes, 1 << 20);
        assert_eq!(r.runtime_ms, 30);
        let r = parse_json(SAMPLE, false).unwrap();
        assert_eq!((r.bw_bytes, r.io_bytes), (0.0, 0));
        // fio sometimes prints warnings before the document.
        let noisy = format!("fio: note: something\n{SAMPLE}");
        assert_eq!(parse_json(&noisy, true).unwrap().io_bytes, 1 << 20);
    }

    #[test]
    fn rejects_broken_output() {
        assert!(parse_json("", true).is_err());
        assert!(parse_json("{\"jobs\": []}", true).is_err());
        assert!(parse_json("{\"jobs\": [{\"error\": 5, \"write\": {}}]}", true).is_err());
        assert!(parse_json(&SAMPLE[..SAMPLE.len() / 2], true).is_err());
    }

    fn has(a: &[String], want: &[&str]) {
        for w in want {
            assert!(a.iter().any(|x| x == w), "{w} in {a:?}");
        }
    }

    #[test]
    fn job_arguments_follow_the_issue() {
        let s = Sizes::FULL;
        let d = Path::new("/d");
        let a = measured_args(Workload::A, d, &s).unwrap();
        has(
            &a,
            &[
                "--ioengine=psync",
                "--rw=write",
                "--bs=4k",
                "--size=268435456",
                "--end_fsync=1",
                "--directory=/d",
            ],
        );
        let b = measured_args(Workload::B, d, &s).unwrap();
        has(&b, &["--ioengine=psync", "--rw=read", "--bs=1M", "--filename=layout.dat"]);
        let c = measured_args(Workload::C, d, &s).unwrap();
        has(&c, &["--direct=1", "--ioengine=io_uring", "--iodepth=32", "--rw=randread", "--bs=4k"]);
        has(&c, &["--io_size=2147483648", "--runtime=20", "--filename=layout.dat"]);
        assert!(!c.iter().any(|x| x.starts_with("--time_based")));
        let dd = measured_args(Workload::D, d, &s).unwrap();
        has(&dd, &["--direct=1", "--ioengine=vsync", "--iodepth=16", "--iodepth_batch_submit=16"]);
        has(
            &dd,
            &[
                "--iodepth_batch_complete_min=16",
                "--bs=64k",
                "--rw=write",
                "--size=1073741824",
                "--runtime=15",
            ],
        );
        let f = measured_args(Workload::F, d, &s).unwrap();
        has(&f, &["--direct=1", "--ioengine=psync", "--numjobs=4", "--rw=randread", "--bs=4k"]);
        has(&f, &["--io_size=536870912", "--runtime=15", "--group_reporting"]);
        assert!(measured_args(Workload::E, d, &s).is_none());
        has(&layout_args(d, &s), &["--filename=layout.dat", "--size=268435456", "--end_fsync=1"]);
        assert_eq!(block_size(Workload::D), 65536);
    }

    #[test]
    fn fresh_files() {
        let got: Vec<bool> = super::super::options::WORKLOADS.iter().map(|w| writes_fresh_file(*w)).collect();
        assert_eq!(got, [true, false, false, true, false, false]);
    }
}
