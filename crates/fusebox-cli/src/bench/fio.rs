//! Running fio and reading its JSON output.

use super::options::Workload;
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

/// The file a workload uses inside a mode's directory.
pub fn file_name(w: Workload) -> &'static str {
    match w {
        Workload::SeqWrite => "seq-write.dat",
        Workload::SeqRead => "seq-read.dat",
        Workload::RandWrite => "rand-write.dat",
    }
}

/// fio arguments of a job writing or reading `size` bytes of `file` in `dir`.
fn job_args(name: &str, dir: &Path, file: &str, rw: &str, bs: &str, size: u64, fsync: bool) -> Vec<String> {
    let mut a = vec![
        format!("--name={name}"),
        format!("--directory={}", dir.display()),
        format!("--filename={file}"),
        format!("--rw={rw}"),
        format!("--bs={bs}"),
        format!("--size={size}"),
        "--ioengine=psync".into(),
        "--numjobs=1".into(),
        "--output-format=json".into(),
    ];
    if fsync {
        a.push("--end_fsync=1".into());
    }
    a
}

/// fio arguments of the measured job of `w`.
pub fn measured_args(w: Workload, dir: &Path, seq_size: u64, rand_size: u64) -> Vec<String> {
    let f = file_name(w);
    match w {
        Workload::SeqWrite => job_args(w.name(), dir, f, "write", "4k", seq_size, true),
        Workload::SeqRead => job_args(w.name(), dir, f, "read", "1m", seq_size, false),
        Workload::RandWrite => job_args(w.name(), dir, f, "randwrite", "4k", rand_size, true),
    }
}

/// fio arguments that lay out the file a read workload needs (not measured), if any.
pub fn setup_args(w: Workload, dir: &Path, seq_size: u64) -> Option<Vec<String>> {
    match w {
        Workload::SeqRead => Some(job_args("layout", dir, file_name(w), "write", "1m", seq_size, true)),
        _ => None,
    }
}

/// What we take from one fio run.
#[derive(Debug, Clone, PartialEq)]
pub struct FioResult {
    /// Bytes per second of the job's main direction.
    pub bw_bytes: f64,
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

    #[test]
    fn job_arguments() {
        let a = measured_args(Workload::SeqWrite, Path::new("/d"), 256 << 20, 64 << 20);
        for want in [
            "--rw=write",
            "--bs=4k",
            "--size=268435456",
            "--end_fsync=1",
            "--directory=/d",
            "--ioengine=psync",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
        let a = measured_args(Workload::RandWrite, Path::new("/d"), 256 << 20, 64 << 20);
        assert!(a.contains(&"--rw=randwrite".to_string()) && a.contains(&"--size=67108864".to_string()));
        assert!(setup_args(Workload::SeqRead, Path::new("/d"), 1 << 20).is_some());
        assert!(setup_args(Workload::SeqWrite, Path::new("/d"), 1 << 20).is_none());
    }
}
