//! Command-line interface of `fusebox`, on clap's derive API. The `-o` lists stay in mount(8)
//! style: clap collects them, `fusebox::MountOptions` checks them (one-line errors).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes, shown by `fusebox --help`.
const EXIT_CODES: &str = "\
Exit codes: 0 success; 1 the command failed (the message says why); 2 bad command line.
Run `fusebox help COMMAND` or `fusebox COMMAND --help` for a command's options.";

/// Options every file system takes after `-o`.
pub const GENERIC_OPTIONS: &str = "\
-o takes comma-separated options (repeatable), as mount(8) does:
  allow_other, default_permissions, ro, rw, suid, nosuid, dev, nodev, exec, noexec, noatime,
  fsname=NAME, subtype=NAME, threads=N, attr_timeout=SECS, entry_timeout=SECS,
  negative_timeout=SECS, debug, writeback (default for memfs and passthrough), no_writeback,
  async_dio (default), no_async_dio, max_threads=N, background_threads=N, sched=classes|fifo,
  max_background=N, congestion_threshold=N, io_uring (FUSE over io_uring where the kernel
  offers it), read_ahead_kb=KIB, bdi_max_ratio=PCT,
  metrics=ADDR:PORT (serve Prometheus metrics over HTTP from the daemon, e.g. 127.0.0.1:9101)
mount(8) options that only mean something to mount(8) or systemd (defaults, auto, noauto,
nofail, _netdev, user, users, x-*, comment=...) are accepted and ignored.
FUSEBOX_LOG=FILE sends a background daemon's log to FILE.";

/// memfs's own `-o` options.
const MEMFS_OPTIONS: &str = "\
memfs options:
  size=BYTES[K|M|G|T]  data and metadata (default half of RAM)
  nr_inodes=N          default one per 4 KiB of size
  mode=OCTAL           root directory permissions
  reserved=PCT         share of both kept for root's metadata (default 5)";

/// passthrough's own `-o` options.
const PASSTHROUGH_OPTIONS: &str = "\
passthrough options:
  fd_cache=N           O_PATH fds kept open (default 1024)
  file_fds=N           fds kept for open files; the least recently used are reopened on demand
                       (default RLIMIT_NOFILE/4)
  sync_close           close(2) returns after fsync of the backing file and release of its lock
  watch                push invalidations for changes made in SOURCE outside this mount
  kernel_passthrough[=on|off]  file data goes from the kernel straight to SOURCE; default on
                       unless `writeback` is given; needs CAP_SYS_ADMIN and Linux 6.9+, excludes
                       the write-back cache
  fopen_direct_io=off  O_DIRECT opens without FOPEN_DIRECT_IO, when kernel passthrough is off";

/// dfs's own `-o` options.
const DFS_OPTIONS: &str = "\
dfs options:
  cache_dir=DIR        block cache directory
  cache_size=BYTES     block cache size (default 1G; 0 = off, the default for file://)
  cache_all[=on|off]   cache every block uploaded or fetched; default off: full blocks a
                       writer uploads, and blocks a sequential reader fetches past a file's
                       first 64 MiB, skip the cache
  buffer_size=BYTES    write buffers of all files (default 256M)
  inline_max=BYTES     pieces of a commit up to this size are kept in the metadata database,
                       not uploaded as block objects (default 64K; 0 = never)
  session_timeout=SECS a mount whose heartbeat stopped this long ago is expired by the others,
                       and its locks go (default 30; it beats every quarter of this)
META_URL: sqlite:///path/meta.db or postgres://user@host:port/database";

/// `fusebox`: mount memfs, passthrough or dfs; unmount; stats; benchmarks.
#[derive(Debug, Parser)]
#[command(
    name = "fusebox",
    version,
    about = "A fast FUSE server: mount memfs, passthrough or fusebox-dfs, inspect and benchmark mounts",
    propagate_version = true,
    arg_required_else_help = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A `fusebox` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a file system (returns once the mount is live, unless -f)
    #[command(subcommand)]
    Mount(MountCommand),
    /// Unmount and wait for the daemon to exit
    #[command(visible_alias = "unmount")]
    Umount(UmountArgs),
    /// Print a running mount's counters, INIT parameters and scheduler state
    Stats(StatsArgs),
    /// Benchmark fusebox against native and peers
    Bench(fusebox_bench::options::BenchArgs),
    /// fusebox-dfs administration: format, fsck, gc
    #[command(subcommand)]
    Dfs(crate::dfs::DfsCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// `fusebox mount FS ...`
#[derive(Debug, Subcommand)]
pub enum MountCommand {
    /// An in-memory file system
    #[command(after_help = format!("{MEMFS_OPTIONS}\n\n{GENERIC_OPTIONS}"))]
    Memfs {
        /// Where to mount
        mountpoint: PathBuf,
        #[command(flatten)]
        flags: MountFlags,
    },
    /// A mirror of the directory SOURCE
    #[command(after_help = format!("{PASSTHROUGH_OPTIONS}\n\n{GENERIC_OPTIONS}"))]
    Passthrough {
        /// The directory to mirror
        source: PathBuf,
        /// Where to mount
        mountpoint: PathBuf,
        #[command(flatten)]
        flags: MountFlags,
    },
    /// fusebox-dfs on the metadata database META_URL (see `fusebox dfs format`)
    #[command(after_help = format!("{DFS_OPTIONS}\n\n{GENERIC_OPTIONS}"))]
    Dfs {
        /// sqlite:///path/meta.db or postgres://user@host:port/database
        meta_url: String,
        /// Where to mount
        mountpoint: PathBuf,
        #[command(flatten)]
        flags: MountFlags,
    },
}

/// Which file system to mount, with what it is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsKind {
    /// In-memory file system.
    Memfs,
    /// Mirror of SOURCE.
    Passthrough {
        /// The mirrored directory.
        source: PathBuf,
    },
    /// fusebox-dfs on the metadata database META_URL.
    Dfs {
        /// The metadata URL.
        meta: String,
    },
}

impl MountCommand {
    /// The file system, the mountpoint and the flags.
    pub fn into_parts(self) -> (FsKind, PathBuf, MountFlags) {
        match self {
            MountCommand::Memfs { mountpoint, flags } => (FsKind::Memfs, mountpoint, flags),
            MountCommand::Passthrough { source, mountpoint, flags } => {
                (FsKind::Passthrough { source }, mountpoint, flags)
            }
            MountCommand::Dfs { meta_url, mountpoint, flags } => {
                (FsKind::Dfs { meta: meta_url }, mountpoint, flags)
            }
        }
    }
}

/// Flags every `fusebox mount` takes.
#[derive(Debug, Clone, Default, Args)]
pub struct MountFlags {
    /// Comma-separated mount options (repeatable; listed below)
    #[arg(short = 'o', value_name = "OPTS", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
    /// Stay in the foreground (log to stderr; Ctrl-C unmounts)
    #[arg(short = 'f', long)]
    pub foreground: bool,
}

/// `fusebox umount MOUNTPOINT`
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount to end
    pub mountpoint: PathBuf,
    /// End a mount whose daemon hangs: abort its connection through the fuse control file
    /// system (/sys/fs/fuse/connections), then detach it. Open files get ENOTCONN
    #[arg(long)]
    pub abort: bool,
}

/// `fusebox stats MOUNTPOINT`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The mount to ask
    pub mountpoint: PathBuf,
    /// Print the raw JSON report
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Print the Prometheus text exposition format
    #[arg(long)]
    pub prometheus: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn p(s: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("fusebox").chain(s.split_whitespace()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_mount_forms() {
        let Command::Mount(m) = p("mount memfs /mnt -o size=1G -oallow_other -f").unwrap().command else {
            panic!()
        };
        let (fs, mnt, flags) = m.into_parts();
        assert_eq!((fs, mnt), (FsKind::Memfs, "/mnt".into()));
        assert_eq!(flags.options, ["size=1G", "allow_other"]);
        assert!(flags.foreground);
        let Command::Mount(m) = p("mount passthrough /src /mnt").unwrap().command else { panic!() };
        assert_eq!(m.into_parts().0, FsKind::Passthrough { source: "/src".into() });
        let Command::Umount(u) = p("unmount /mnt --abort").unwrap().command else { panic!() };
        assert!(u.abort && u.mountpoint == std::path::Path::new("/mnt"));
        let Command::Stats(s) = p("stats /mnt --prometheus").unwrap().command else { panic!() };
        assert!(s.prometheus && !s.json);
        let Command::Bench(b) = p("bench --quick --json").unwrap().command else { panic!() };
        let o = b.into_options().unwrap();
        assert!(o.json && o.sizes == fusebox_bench::options::Sizes::QUICK);
        let Command::Bench(b) = p("bench tool cpu 1").unwrap().command else { panic!() };
        use fusebox_bench::options::BenchCommand;
        assert!(matches!(b.command, Some(BenchCommand::Tool { args }) if args == ["cpu", "1"]));
        let Command::Bench(b) = p("bench plot r.json -o a.svg --out b.png").unwrap().command else {
            panic!()
        };
        assert!(matches!(b.command, Some(BenchCommand::Plot { out, .. }) if out.len() == 2));
    }

    #[test]
    fn rejects_bad_command_lines() {
        for bad in [
            "",
            "mount",
            "mount ext4 /mnt",
            "mount passthrough",
            "mount memfs /a /b",
            "mount memfs /a -o",
            "mount memfs /a -x",
            "frobnicate",
            "bench --frob",
            "stats /m --json --prometheus",
            "completions tcsh",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        // Typos get a suggestion.
        let e = p("mount memfss /m").unwrap_err().to_string();
        assert!(e.contains("memfs"), "{e}");
    }
}
