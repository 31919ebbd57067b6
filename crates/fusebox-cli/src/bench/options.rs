//! `fusebox bench` command-line options.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// The modes a benchmark run compares, in report order.
pub const MODES: [Mode; 4] = [Mode::Native, Mode::PassthroughWt, Mode::PassthroughWb, Mode::MemfsWb];

/// Where a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Mode {
    /// A plain directory on the backing file system.
    #[serde(rename = "native")]
    Native,
    /// fusebox passthrough with `-o no_writeback`.
    #[serde(rename = "passthrough-writethrough")]
    PassthroughWt,
    /// fusebox passthrough with the write-back cache (its default).
    #[serde(rename = "passthrough-writeback")]
    PassthroughWb,
    /// fusebox memfs with the write-back cache (its default).
    #[serde(rename = "memfs-writeback")]
    MemfsWb,
}

impl Mode {
    /// The name used in progress lines, tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::PassthroughWt => "passthrough-writethrough",
            Mode::PassthroughWb => "passthrough-writeback",
            Mode::MemfsWb => "memfs-writeback",
        }
    }

    /// True for the modes served by a fusebox daemon.
    pub fn is_fusebox(self) -> bool {
        self != Mode::Native
    }
}

/// The fio workloads, in report order.
pub const WORKLOADS: [Workload; 3] = [Workload::SeqWrite, Workload::SeqRead, Workload::RandWrite];

/// One fio workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Workload {
    /// (a) buffered sequential write, 4 KiB blocks, fsync at the end.
    #[serde(rename = "seq-write-4k")]
    SeqWrite,
    /// (b) buffered sequential read, 1 MiB blocks, cold cache.
    #[serde(rename = "seq-read-1m")]
    SeqRead,
    /// (c) buffered random 4 KiB writes, fsync at the end.
    #[serde(rename = "rand-write-4k")]
    RandWrite,
}

impl Workload {
    /// The name used in progress lines, tables and JSON (also the fio job name).
    pub fn name(self) -> &'static str {
        match self {
            Workload::SeqWrite => "seq-write-4k",
            Workload::SeqRead => "seq-read-1m",
            Workload::RandWrite => "rand-write-4k",
        }
    }

    fn parse(s: &str) -> Result<Workload> {
        Ok(match s {
            "seq-write" | "seq-write-4k" | "a" => Workload::SeqWrite,
            "seq-read" | "seq-read-1m" | "b" => Workload::SeqRead,
            "rand-write" | "rand-write-4k" | "c" => Workload::RandWrite,
            _ => bail!("unknown workload '{s}' (expected seq-write, seq-read or rand-write)"),
        })
    }
}

/// Parsed `fusebox bench` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Use this existing directory as backing storage instead of a loop-mounted ext4 image.
    pub dir: Option<PathBuf>,
    /// Size of the sparse ext4 image, bytes.
    pub image_size: u64,
    /// Directory holding the image.
    pub image_dir: PathBuf,
    /// File size of the sequential workloads, bytes.
    pub seq_size: u64,
    /// File size of the random-write workload, bytes.
    pub rand_size: u64,
    /// Repetitions of each measured job; the median is reported.
    pub runs: usize,
    /// Print JSON instead of a table.
    pub json: bool,
    /// Write an SVG bar chart here.
    pub plot: Option<PathBuf>,
    /// Write this value to each fusebox mount's `/sys/class/bdi/<dev>/max_ratio`.
    pub bdi_max_ratio: Option<u32>,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            dir: None,
            image_size: 3 << 30,
            image_dir: PathBuf::from("/var/tmp"),
            seq_size: 256 << 20,
            rand_size: 64 << 20,
            runs: 1,
            json: false,
            plot: None,
            bdi_max_ratio: None,
            workloads: WORKLOADS.to_vec(),
        }
    }
}

/// Usage of `fusebox bench`.
pub const USAGE: &str = "\
usage: fusebox bench [--dir DIR | --image-size SIZE] [--quick] [--runs N] [--json] [--plot FILE.svg]
                     [--bdi-max-ratio PCT] [--workloads seq-write,seq-read,rand-write]
Runs fio against native, passthrough (write-through and writeback) and memfs in one run.
  --dir DIR            back the native and passthrough modes with DIR (default: a sparse ext4
                       image under /var/tmp on a direct-IO loop device; needs root)
  --image-size SIZE    size of that image (default 3G)
  --quick              64 MiB sequential files, 16 MiB random-write file (default 256 MiB / 64 MiB)
  --runs N             repeat each measured job N times and report the median (default 1)
  --json               print a JSON document instead of a table
  --plot FILE.svg      also write a grouped bar chart
  --bdi-max-ratio PCT  set each fusebox mount's /sys/class/bdi/<dev>/max_ratio (default: kernel's)
  --workloads LIST     run only these workloads";

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a str> {
    it.next().map(String::as_str).with_context(|| format!("option {flag} needs a value\n{USAGE}"))
}

/// Parse the arguments after `bench`.
pub fn parse(args: &[String]) -> Result<BenchOptions> {
    let mut o = BenchOptions::default();
    let mut it = args.iter();
    let mut size_mb: Option<u64> = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => o.dir = Some(value(&mut it, a)?.into()),
            "--image-size" => {
                let v = value(&mut it, a)?;
                o.image_size = fusebox::session::parse_bytes("--image-size", v)
                    .ok()
                    .filter(|n| *n >= 64 << 20)
                    .with_context(|| format!("--image-size '{v}': expected a size of at least 64M"))?;
            }
            "--image-dir" => o.image_dir = value(&mut it, a)?.into(),
            "--quick" => {
                o.seq_size = 64 << 20;
                o.rand_size = 16 << 20;
            }
            // Hidden: shrink every file to N MiB (random writes: N/4) for tests.
            "--size-mb" => {
                let v = value(&mut it, a)?;
                size_mb = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .with_context(|| format!("--size-mb '{v}': expected N >= 1"))?,
                );
            }
            "--runs" => {
                let v = value(&mut it, a)?;
                o.runs = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .with_context(|| format!("--runs '{v}': expected N >= 1"))?;
            }
            "--json" => o.json = true,
            "--plot" => o.plot = Some(value(&mut it, a)?.into()),
            "--bdi-max-ratio" => {
                let v = value(&mut it, a)?;
                o.bdi_max_ratio = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n <= 100)
                        .with_context(|| format!("--bdi-max-ratio '{v}': expected a percentage 0-100"))?,
                );
            }
            "--workloads" => {
                o.workloads = value(&mut it, a)?.split(',').map(Workload::parse).collect::<Result<_>>()?;
                if o.workloads.is_empty() {
                    bail!("--workloads needs at least one workload");
                }
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown bench option '{other}'\n{USAGE}"),
        }
    }
    if let Some(mb) = size_mb {
        o.seq_size = mb << 20;
        o.rand_size = (mb << 20) / 4;
        o.rand_size = o.rand_size.max(1 << 20);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<BenchOptions> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(p("").unwrap(), BenchOptions::default());
        let o = p("--dir /x --quick --runs 3 --json --plot a.svg --bdi-max-ratio 50").unwrap();
        assert_eq!(o.dir.as_deref(), Some(std::path::Path::new("/x")));
        assert_eq!((o.seq_size, o.rand_size, o.runs, o.json), (64 << 20, 16 << 20, 3, true));
        assert_eq!(o.plot.as_deref(), Some(std::path::Path::new("a.svg")));
        assert_eq!(o.bdi_max_ratio, Some(50));
        let o = p("--quick --size-mb 8 --image-size 1G --workloads seq-write,c").unwrap();
        assert_eq!((o.seq_size, o.rand_size, o.image_size), (8 << 20, 2 << 20, 1 << 30));
        assert_eq!(o.workloads, vec![Workload::SeqWrite, Workload::RandWrite]);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "--runs 0",
            "--runs",
            "--bdi-max-ratio 101",
            "--image-size 1K",
            "--size-mb x",
            "--workloads nope",
            "--frob",
            "positional",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
