//! `fusebox bench` command-line options: workloads, variants, peers and sizes.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// A built-in variant: where a workload runs when it is not an external peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// A plain directory on the backing file system (the baseline of every ratio).
    Native,
    /// `fusebox mount passthrough SRC MNT -f` with its defaults (kernel passthrough where the
    /// kernel grants it and the daemon may register backing files, else the write-back cache).
    Passthrough,
    /// passthrough with `-o writeback`: every byte through the daemon, with the write-back
    /// cache (the daemon's own data path).
    PassthroughWb,
    /// The same with `-o io_uring`.
    PassthroughUring,
    /// `fusebox mount memfs MNT -o size=... -f`.
    Memfs,
    /// The same with `-o io_uring`.
    MemfsUring,
    /// passthrough with `-o no_writeback` (write-through); not in the default set.
    PassthroughWt,
}

/// Built-in variants run when `--variants` is not given, in report order.
pub const DEFAULT_BUILTINS: [Builtin; 6] = [
    Builtin::Native,
    Builtin::Passthrough,
    Builtin::PassthroughWb,
    Builtin::PassthroughUring,
    Builtin::Memfs,
    Builtin::MemfsUring,
];

/// Every built-in variant, in report order.
pub const ALL_BUILTINS: [Builtin; 7] = [
    Builtin::Native,
    Builtin::Passthrough,
    Builtin::PassthroughWb,
    Builtin::PassthroughUring,
    Builtin::PassthroughWt,
    Builtin::Memfs,
    Builtin::MemfsUring,
];

impl Builtin {
    /// The name used in progress lines, tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Native => "native",
            Builtin::Passthrough => "fusebox-passthrough",
            Builtin::PassthroughWb => "fusebox-passthrough-wb",
            Builtin::PassthroughUring => "fusebox-passthrough-uring",
            Builtin::PassthroughWt => "fusebox-passthrough-wt",
            Builtin::Memfs => "fusebox-memfs",
            Builtin::MemfsUring => "fusebox-memfs-uring",
        }
    }

    /// True if the variant is served by FUSE over io_uring.
    pub fn uses_uring(self) -> bool {
        matches!(self, Builtin::PassthroughUring | Builtin::MemfsUring)
    }

    /// True if the variant's files live on the backing storage (native and passthrough).
    pub fn uses_backing(self) -> bool {
        !matches!(self, Builtin::Memfs | Builtin::MemfsUring)
    }

    fn parse(s: &str) -> Result<Builtin> {
        let bare = s.strip_prefix("fusebox-").unwrap_or(s);
        ALL_BUILTINS
            .into_iter()
            .find(|b| b.name() == s || b.name().strip_prefix("fusebox-") == Some(bare))
            .with_context(|| {
                let names: Vec<_> = ALL_BUILTINS.iter().map(|b| b.name()).collect();
                format!("unknown variant '{s}' (expected one of {})", names.join(", "))
            })
    }
}

/// An external file system to compare against, run from a command template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its name in the report.
    pub name: String,
    /// The command; `{SRC}` and `{MNT}` are replaced by a fresh source directory and mountpoint.
    pub command: String,
}

impl Peer {
    /// Parse `NAME=COMMAND`; COMMAND must contain `{MNT}` and stay in the foreground.
    pub fn parse(s: &str) -> Result<Peer> {
        let (name, command) = s
            .split_once('=')
            .with_context(|| format!("--peer '{s}': expected NAME='COMMAND {{SRC}} {{MNT}}' (no '=')"))?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("--peer '{s}': NAME must be non-empty letters, digits, '-', '_' or '.'");
        }
        if ALL_BUILTINS.iter().any(|b| b.name() == name) {
            bail!("--peer '{s}': NAME '{name}' is a built-in variant");
        }
        if !command.contains("{MNT}") {
            bail!("--peer '{s}': COMMAND must contain {{MNT}} (where the peer mounts)");
        }
        if command.trim().is_empty() {
            bail!("--peer '{s}': empty COMMAND");
        }
        Ok(Peer { name: name.to_string(), command: command.trim().to_string() })
    }
}

/// The six workloads, in report order.
pub const WORKLOADS: [Workload; 6] =
    [Workload::A, Workload::B, Workload::C, Workload::D, Workload::E, Workload::F];

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// (a) buffered sequential write, 4 KiB psync, fsync at the end, fresh file.
    A,
    /// (b) buffered sequential read, 1 MiB psync, cold cache.
    B,
    /// (c) O_DIRECT 4 KiB random reads over io_uring at queue depth 32.
    C,
    /// (d) O_DIRECT 64 KiB sequential writes, vsync batches of 16.
    D,
    /// (e) create, stat, unlink of many empty files in one directory.
    E,
    /// (f) O_DIRECT 4 KiB random reads, psync, 4 jobs.
    F,
}

/// What a workload's main number counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 10^6 bytes per second.
    MbPerS,
    /// IOs per second.
    Iops,
    /// Files per second.
    FilesPerS,
}

impl Unit {
    /// The unit's label.
    pub fn label(self) -> &'static str {
        match self {
            Unit::MbPerS => "MB/s",
            Unit::Iops => "IOPS",
            Unit::FilesPerS => "files/s",
        }
    }
}

impl Workload {
    /// The name used in progress lines, tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::A => "a-seq-write-4k",
            Workload::B => "b-seq-read-1m",
            Workload::C => "c-randread-4k-uring-qd32",
            Workload::D => "d-write-64k-direct-vsync",
            Workload::E => "e-create-stat-unlink",
            Workload::F => "f-randread-4k-direct-4jobs",
        }
    }

    /// The workload's letter.
    pub fn letter(self) -> char {
        self.name().chars().next().expect("non-empty name")
    }

    /// What its main number counts.
    pub fn unit(self) -> Unit {
        match self {
            Workload::A | Workload::B | Workload::D => Unit::MbPerS,
            Workload::C | Workload::F => Unit::Iops,
            Workload::E => Unit::FilesPerS,
        }
    }

    /// True if the workload reads the file laid out before the measurements.
    pub fn reads_layout(self) -> bool {
        matches!(self, Workload::B | Workload::C | Workload::F)
    }

    fn parse(s: &str) -> Result<Workload> {
        WORKLOADS
            .into_iter()
            .find(|w| w.name() == s || s.len() == 1 && s.starts_with(w.letter()))
            .with_context(|| {
                format!("unknown workload '{s}' (expected letters a-f or names like {})", Workload::A.name())
            })
    }
}

/// Sizes of the workloads (full defaults from the issue; `--quick` and `--size-mb` shrink them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Size of (a)'s file and of the layout file read by (b), (c) and (f), bytes.
    pub file: u64,
    /// Size of (d)'s file, bytes.
    pub d_size: u64,
    /// `--io_size` of (c), bytes.
    pub c_io: u64,
    /// `--io_size` of (f) (all jobs together), bytes.
    pub f_io: u64,
    /// `--runtime` of (c), seconds.
    pub c_runtime: u32,
    /// `--runtime` of (d), seconds.
    pub d_runtime: u32,
    /// `--runtime` of (f), seconds.
    pub f_runtime: u32,
    /// Files created, stat'ed and unlinked by (e).
    pub files: usize,
}

impl Sizes {
    /// The sizes.
    pub const FULL: Sizes = Sizes {
        file: 256 << 20,
        d_size: 1 << 30,
        c_io: 2 << 30,
        f_io: 512 << 20,
        c_runtime: 20,
        d_runtime: 15,
        f_runtime: 15,
        files: 20_000,
    };

    /// `--quick`: a quarter of everything, 5 s runtimes.
    pub const QUICK: Sizes = Sizes {
        file: 64 << 20,
        d_size: 256 << 20,
        c_io: 512 << 20,
        f_io: 128 << 20,
        c_runtime: 5,
        d_runtime: 5,
        f_runtime: 5,
        files: 5_000,
    };

    /// Scale the byte sizes to a layout file of `mb` MiB, keeping the proportions.
    pub fn scaled(self, mb: u64) -> Sizes {
        let file = mb << 20;
        Sizes { file, d_size: file * 4, c_io: file * 8, f_io: file * 2, ..self }
    }
}

/// Parsed `fusebox bench` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Use this existing directory as backing storage instead of a loop-mounted ext4 image.
    pub dir: Option<PathBuf>,
    /// Size of the sparse ext4 image, bytes (None: computed from the variants and sizes).
    pub image_size: Option<u64>,
    /// Directory holding the image.
    pub image_dir: PathBuf,
    /// Workload sizes.
    pub sizes: Sizes,
    /// Rounds; every round runs every workload on every variant, and medians are reported.
    pub runs: usize,
    /// Print JSON instead of a table.
    pub json: bool,
    /// Print markdown tables instead of the plain table.
    pub markdown: bool,
    /// Write this value to each FUSE mount's `/sys/class/bdi/<dev>/max_ratio`.
    pub bdi_max_ratio: Option<u32>,
    /// Workloads to run, in report order.
    pub workloads: Vec<Workload>,
    /// Built-in variants, in report order (native always first).
    pub builtins: Vec<Builtin>,
    /// True if `--variants` was given (io_uring variants are then required, not skipped).
    pub variants_explicit: bool,
    /// External peers, in command-line order.
    pub peers: Vec<Peer>,
    /// Charts to draw at the end (`--plot`), .svg or .png.
    pub plots: Vec<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            dir: None,
            image_size: None,
            image_dir: PathBuf::from("/var/tmp"),
            sizes: Sizes::FULL,
            runs: 1,
            json: false,
            markdown: false,
            bdi_max_ratio: None,
            workloads: WORKLOADS.to_vec(),
            builtins: DEFAULT_BUILTINS.to_vec(),
            variants_explicit: false,
            peers: Vec::new(),
            plots: Vec::new(),
        }
    }
}

impl BenchOptions {
    /// Variants whose files live on the backing storage (native, passthrough and every peer).
    pub fn backed_variants(&self) -> u64 {
        (self.builtins.iter().filter(|b| b.uses_backing()).count() + self.peers.len()) as u64
    }

    /// Backing image size that holds (d)'s file, the layout file and (a)'s file in every backed
    /// variant's directory at once, plus 512 MiB for ext4 itself; rounded up to GiB.
    pub fn default_image_size(&self) -> u64 {
        let per = self.sizes.d_size + 2 * self.sizes.file;
        let need = self.backed_variants() * per + (512 << 20);
        need.div_ceil(1 << 30).max(1) << 30
    }

    /// Bytes the backing storage must hold at the same moment: every layout file plus the
    /// largest written file (workload files are removed after each job), plus 256 MiB.
    pub fn min_image_size(&self) -> u64 {
        self.backed_variants() * self.sizes.file + self.sizes.d_size.max(self.sizes.file) + (256 << 20)
    }

    /// memfs `size=` for a memfs variant: the layout file, (a)'s and (d)'s files and slack.
    pub fn memfs_size(&self) -> u64 {
        2 * self.sizes.file + self.sizes.d_size + (64 << 20)
    }
}

/// What `fusebox bench --help` prints after the options: the workloads and what runs them.
pub const AFTER_HELP: &str = "\
Workloads (fio unless noted; ratios compare the same round):
  a  psync --rw=write --bs=4k --size=256M --end_fsync=1, fresh file (MB/s)
  b  psync --rw=read --bs=1M of a 256 MiB file laid out beforehand (MB/s)
  c  --direct=1 --ioengine=io_uring --iodepth=32 --rw=randread --bs=4k --io_size=2G --runtime=20 (IOPS)
  d  --direct=1 --ioengine=vsync --iodepth=16 --iodepth_batch_submit=16
     --iodepth_batch_complete_min=16 --bs=64k --rw=write --size=1G --runtime=15 (MB/s)
  e  create, stat, unlink 20000 empty files in one directory, each phase timed (files/s)
  f  --direct=1 --ioengine=psync --numjobs=4 --rw=randread --bs=4k --io_size=512M --runtime=15
     --group_reporting (IOPS)
Caches are dropped before every job. Progress goes to stderr (a bar on a terminal, plain lines
otherwise); results to stdout.
Needs root, fio, /dev/fuse; io_uring variants need /sys/module/fuse/parameters/enable_uring
(set to Y for the run and restored at the end; without it the default set skips them).";

/// `fusebox bench` on the command line, before validation ([`BenchArgs::into_options`]).
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Run six workloads side by side on native, fusebox variants and external peers",
    long_about = "Runs six workloads side by side on native, fusebox variants and external peers, \
                  alternating variants inside each round, and reports medians, min-max and ratios \
                  to native.",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
pub struct BenchArgs {
    /// Back native, passthrough and peers with DIR (default: a sparse ext4 image under
    /// /var/tmp on a direct-IO loop device)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Size of that image (default: room for the a, d and layout files of every backed variant
    /// at once)
    #[arg(long, visible_alias = "image-size", value_name = "SIZE", value_parser = image_size)]
    pub backing_image_size: Option<u64>,
    /// Directory that holds the image
    #[arg(long, value_name = "DIR", hide = true, default_value = "/var/tmp")]
    pub image_dir: PathBuf,
    /// A quarter of the sizes (64 MiB files, 5000 files for e), 5 s runtimes
    #[arg(long)]
    pub quick: bool,
    /// The layout file is N MiB, the other sizes scale along (for tests)
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub size_mb: Option<u64>,
    /// Files of workload e (for tests)
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub files: Option<u32>,
    /// Rounds; medians and min-max over them are reported
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Built-in variants, comma-separated (default: native, fusebox-passthrough (its defaults:
    /// kernel passthrough where granted), fusebox-passthrough-wb (-o writeback: data through the
    /// daemon), fusebox-passthrough-uring, fusebox-memfs, fusebox-memfs-uring; also
    /// fusebox-passthrough-wt = -o no_writeback, kernel_passthrough=off); native always runs
    #[arg(long, value_name = "LIST")]
    pub variants: Option<String>,
    /// An external file system: CMD is run with {SRC} (a fresh directory on the backing storage)
    /// and {MNT} (a fresh mountpoint) filled in, through `sh -c 'exec CMD'`; it must stay in the
    /// foreground (its pid is measured) and is unmounted at the end. Repeatable
    #[arg(long, value_name = "NAME='CMD'", value_parser = Peer::parse)]
    pub peer: Vec<Peer>,
    /// Run only these workloads (letters a-f or names), comma-separated
    #[arg(long, value_name = "LIST")]
    pub workloads: Option<String>,
    /// Print a JSON document instead of a table
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print markdown tables (ratios, daemon CPU, requests/op)
    #[arg(long)]
    pub markdown: bool,
    /// Set each FUSE mount's /sys/class/bdi/DEV/max_ratio (default: the kernel's)
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub bdi_max_ratio: Option<u32>,
    /// Also draw the chart of ratios to native into FILE (.svg or .png); repeatable
    #[arg(long, value_name = "FILE")]
    pub plot: Vec<PathBuf>,
    /// Re-plot a saved run, or the scripts' helpers
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
}

/// `fusebox bench plot ...` and `fusebox bench tool ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Draw the chart of a saved `fusebox bench --json` document
    Plot {
        /// The JSON document
        json: PathBuf,
        /// Where to draw it (.svg or .png); repeatable
        #[arg(short, long, value_name = "FILE", required = true)]
        out: Vec<PathBuf>,
    },
    /// Helpers for the benchmark scripts: cpu PID | loop-up DIR SIZE | loop-down DIR
    #[command(hide = true)]
    Tool {
        /// The helper and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn image_size(v: &str) -> Result<u64> {
    fusebox::session::parse_bytes("--backing-image-size", v)
        .ok()
        .filter(|n| *n >= 64 << 20)
        .with_context(|| format!("'{v}': expected a size of at least 64M"))
}

/// A comma-separated list parsed item by item (plus `always`), in the order of `order`,
/// without repeats.
fn list<T: PartialEq>(
    v: &str, parse: fn(&str) -> Result<T>, order: &[T], always: Option<T>,
) -> Result<Vec<T>> {
    let mut items: Vec<T> = v.split(',').map(str::trim).map(parse).collect::<Result<_>>()?;
    items.extend(always);
    items.sort_by_key(|x| order.iter().position(|o| o == x));
    items.dedup();
    Ok(items)
}

impl BenchArgs {
    /// Check the values against each other and build the harness's options.
    pub fn into_options(self) -> Result<BenchOptions> {
        let mut o = BenchOptions {
            dir: self.dir,
            image_size: self.backing_image_size,
            image_dir: self.image_dir,
            sizes: if self.quick { Sizes::QUICK } else { Sizes::FULL },
            runs: self.runs as usize,
            json: self.json,
            markdown: self.markdown,
            bdi_max_ratio: self.bdi_max_ratio,
            plots: self.plot,
            ..BenchOptions::default()
        };
        if let Some(w) = &self.workloads {
            o.workloads = list(w, Workload::parse, &WORKLOADS, None).context("--workloads")?;
        }
        if let Some(v) = &self.variants {
            o.builtins =
                list(v, Builtin::parse, &ALL_BUILTINS, Some(Builtin::Native)).context("--variants")?;
            o.variants_explicit = true;
        }
        for p in self.peer {
            if o.peers.iter().any(|q| q.name == p.name) {
                bail!("--peer: NAME '{}' given twice", p.name);
            }
            o.peers.push(p);
        }
        for p in &o.plots {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !ext.eq_ignore_ascii_case("svg") && !ext.eq_ignore_ascii_case("png") {
                bail!("--plot {}: the chart is written as .svg or .png", p.display());
            }
        }
        if let Some(mb) = self.size_mb {
            o.sizes = o.sizes.scaled(mb);
        }
        if let Some(n) = self.files {
            o.sizes.files = n as usize;
        }
        if let Some(size) = o.image_size {
            if o.dir.is_none() && size < o.min_image_size() {
                bail!(
                    "--backing-image-size {} MiB is too small: these variants and sizes need at least {} MiB",
                    size >> 20,
                    o.min_image_size().div_ceil(1 << 20)
                );
            }
        }
        Ok(o)
    }
}

/// Parse the arguments after `bench` (as `fusebox bench` does) into checked options.
pub fn parse(args: &[String]) -> Result<BenchOptions> {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    #[command(name = "bench", no_binary_name = true)]
    struct Only {
        #[command(flatten)]
        args: BenchArgs,
    }
    let only = Only::try_parse_from(args).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    if only.args.command.is_some() {
        bail!("`bench tool` and `bench plot` are subcommands, not option lists");
    }
    only.args.into_options()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<BenchOptions> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn args(v: &[&str]) -> Result<BenchOptions> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults() {
        let o = p("").unwrap();
        assert_eq!(o, BenchOptions::default());
        assert_eq!(o.workloads.len(), 6);
        assert_eq!(o.builtins, DEFAULT_BUILTINS.to_vec());
        assert_eq!(o.sizes, Sizes::FULL);
        // native + 3 passthrough variants: 4 x (1G + 2 x 256M) + 512M = 6.5 GiB, rounded up.
        assert_eq!(o.default_image_size(), 7 << 30);
        assert_eq!(o.memfs_size(), (1 << 30) + (576 << 20));
    }

    #[test]
    fn flags() {
        let o = p("--dir /x --quick --runs 3 --markdown --bdi-max-ratio 50").unwrap();
        assert_eq!(o.dir.as_deref(), Some(std::path::Path::new("/x")));
        assert_eq!((o.sizes, o.runs, o.markdown, o.json), (Sizes::QUICK, 3, true, false));
        assert_eq!(o.bdi_max_ratio, Some(50));
        let o = p("--quick --size-mb 8 --files 500 --backing-image-size 2G --workloads e,a,b-seq-read-1m,a")
            .unwrap();
        assert_eq!(
            (o.sizes.file, o.sizes.d_size, o.sizes.c_io, o.sizes.f_io),
            (8 << 20, 32 << 20, 64 << 20, 16 << 20)
        );
        assert_eq!((o.sizes.files, o.sizes.c_runtime, o.image_size), (500, 5, Some(2 << 30)));
        assert_eq!(o.workloads, vec![Workload::A, Workload::B, Workload::E]);
        let o = p("--variants memfs,fusebox-passthrough-wt --image-size 1G --size-mb 4").unwrap();
        assert_eq!(o.builtins, vec![Builtin::Native, Builtin::PassthroughWt, Builtin::Memfs]);
        assert!(o.variants_explicit);
    }

    #[test]
    fn peers() {
        let o = args(&[
            "--peer",
            "hp=/bin/passthrough_hp --foreground {SRC} {MNT}",
            "--peer",
            "mem = memfs_ll -o x=y -f {MNT}",
        ])
        .unwrap();
        assert_eq!(o.peers.len(), 2);
        assert_eq!(
            o.peers[0],
            Peer { name: "hp".into(), command: "/bin/passthrough_hp --foreground {SRC} {MNT}".into() }
        );
        assert_eq!(o.peers[1].name, "mem");
        assert_eq!(o.peers[1].command, "memfs_ll -o x=y -f {MNT}");
        // Each peer adds a backed directory to native and the 3 default passthrough variants.
        assert_eq!(o.backed_variants(), 6);
    }

    #[test]
    fn peer_errors() {
        let e = |v: &[&str]| format!("{:#}", args(v).unwrap_err());
        assert!(e(&["--peer", "hp /bin/x {MNT}"]).contains("no '='"));
        assert!(e(&["--peer", "hp=/bin/x {SRC}"]).contains("must contain {MNT}"));
        assert!(e(&["--peer", "=/bin/x {MNT}"]).contains("NAME must be"));
        assert!(e(&["--peer", "a b=/bin/x {MNT}"]).contains("NAME must be"));
        assert!(e(&["--peer", "native=/bin/x {MNT}"]).contains("built-in"));
        assert!(e(&["--peer", "x=a {MNT}", "--peer", "x=b {MNT}"]).contains("given twice"));
        assert!(e(&["--peer"]).contains("a value is required"));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "--runs 0",
            "--runs",
            "--bdi-max-ratio 101",
            "--image-size 1K",
            "--backing-image-size 128M",
            "--size-mb x",
            "--files 0",
            "--workloads nope",
            "--workloads g",
            "--variants ext4",
            "--json --markdown",
            "--plot chart.pdf",
            "--frob",
            "positional",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(WORKLOADS.map(Workload::letter), ['a', 'b', 'c', 'd', 'e', 'f']);
        assert_eq!(Workload::parse("c").unwrap(), Workload::C);
        assert_eq!(Workload::parse("f-randread-4k-direct-4jobs").unwrap(), Workload::F);
        assert_eq!(Builtin::parse("passthrough-uring").unwrap(), Builtin::PassthroughUring);
        assert_eq!(Builtin::parse("fusebox-memfs").unwrap(), Builtin::Memfs);
        assert!(Builtin::MemfsUring.uses_uring() && !Builtin::Memfs.uses_backing());
        assert_eq!(Workload::E.unit().label(), "files/s");
    }
}
